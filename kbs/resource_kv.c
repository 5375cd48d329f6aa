/*
 * resource_kv: the `resource` plugin's default backend, "kvstorage": resources live in the
 * daemon's own key-value store ([storage_backend]) under namespace `repository`, key
 * repo/type/tag, the bytes as they are (Trustee's layout), so replicas sharing a Redis share
 * their resources. The store belongs to the daemon: this backend borrows it.
 */
#include <string.h>

#include "kbs.h"
#include "kv/kv.h"
#include "log.h"

/* Storage errors name hosts and files: the log gets the sentence, the client the same without
 * them (a word starting with '/' becomes "<path>"). Only an outage (ERR_UNAVAILABLE) is called
 * one; anything else, such as a key the store cannot hold, is a refusal of this request. */
static int storage_failed(const char *path, struct err *err)
{
	char cause[ERR_MSG_MAX], clean[ERR_MSG_MAX];
	size_t o = 0;

	log_warn("kbs: resource %s: storage: %s", path, err->msg);
	kbs_scrub_hosts(err->msg, cause, sizeof(cause));
	for (const char *p = cause; *p && o + 8 < sizeof(clean);) {
		if (*p == '/' && (p == cause || p[-1] == ' ')) {
			memcpy(clean + o, "<path>", 6);
			o += 6;
			while (*p && *p != ' ' && !(*p == ':' && (p[1] == ' ' || !p[1])))
				p++;
		} else {
			clean[o++] = *p++;
		}
	}
	clean[o] = '\0';
	if (err->code == ERR_UNAVAILABLE)
		return err_setc(err, ERR_UNAVAILABLE,
		                "resource storage unavailable: %.900s; try again", clean);
	return err_set(err, "resource storage refused the request: %.900s", clean);
}

static void *kvs_open(const json_t *plugin, struct kv *kv, struct err *err)
{
	if (kv == NULL)
		err_set(err, "[[plugins]] resource (kvstorage): the daemon has no storage backend");
	return kv;
}

static int kvs_get(void *be, const char *path, uint8_t **val, size_t *len, struct err *err)
{
	int rc = kv_get(be, KV_NS_REPOSITORY, path, val, len, err);
	return rc < 0 ? storage_failed(path, err) : rc;
}

/* The store's kv_peek: what this process knows without a round trip (Memory always, Redis from
 * its tracked cache). */
static int kvs_peek(void *be, const char *path, uint8_t **val, size_t *len, struct err *err)
{
	int rc = kv_peek(be, KV_NS_REPOSITORY, path, val, len, err);
	if (rc == KV_PEEK_UNKNOWN)
		return KBS_RESOURCE_UNKNOWN;
	return rc < 0 ? storage_failed(path, err) : rc;
}

static int kvs_set(void *be, const char *path, const uint8_t *val, size_t len, struct err *err)
{
	return kv_set(be, KV_NS_REPOSITORY, path, val, len, 1, err) < 0 ? storage_failed(path, err)
	                                                                : 0;
}

static int kvs_del(void *be, const char *path, struct err *err)
{
	int rc = kv_delete(be, KV_NS_REPOSITORY, path, err);
	return rc < 0 ? storage_failed(path, err) : rc;
}

static void kvs_free(void *be)
{
	(void)be; /* the store belongs to the daemon */
}

const struct kbs_resource_backend kbs_resource_kvstorage = {
    .name = "kvstorage",
    .open = kvs_open,
    .get = kvs_get,
    .peek = kvs_peek,
    .set = kvs_set,
    .del = kvs_del,
    .free = kvs_free,
};
