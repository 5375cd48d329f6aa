/*
 * resource: the `resource` plugin's storage behind one table of functions, curl-vtls style:
 * kvstorage (the daemon's key-value store, namespace `repository`, Trustee's layout) or Vault
 * KV v1 (resource_vault.c). The server calls kbs_resources_*; which store answers is decided
 * once, at start-up.
 */
#include <stdlib.h>
#include <string.h>

#include "kbs.h"
#include "kv/kv.h"
#include "log.h"

struct kbs_resources {
	const struct kbs_resource_backend *be;
	void *state;
};

/* Storage errors name hosts: the log gets the sentence, the client the same without them. */
static int storage_failed(const char *path, struct err *err)
{
	char cause[ERR_MSG_MAX];
	log_warn("kbs: resource %s: storage: %s", path, err->msg);
	kbs_scrub_hosts(err->msg, cause, sizeof(cause));
	return err_set(err, "resource storage unavailable: %.900s; try again", cause);
}

static int kvs_get(void *be, const char *path, uint8_t **val, size_t *len, struct err *err)
{
	int rc = kv_get(be, KV_NS_REPOSITORY, path, val, len, err);
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

static const struct kbs_resource_backend kvstorage_backend = {"kvstorage", kvs_get, kvs_set,
                                                              kvs_del, kvs_free};

struct kbs_resources *kbs_resources_new(const struct kbs_config *cfg, struct kv *kv,
                                        struct err *err)
{
	struct kbs_resources *r = calloc(1, sizeof(*r));
	if (!r) {
		err_set(err, "out of memory");
		return NULL;
	}
	if (cfg->resource_backend && strcmp(cfg->resource_backend, "vault") == 0) {
		r->be = &kbs_vault_backend;
		r->state = kbs_vault_new(cfg->resource_plugin_cfg, err);
		if (!r->state) {
			free(r);
			return NULL;
		}
	} else {
		r->be = &kvstorage_backend;
		r->state = kv;
	}
	return r;
}

void kbs_resources_free(struct kbs_resources *r)
{
	if (!r)
		return;
	r->be->free(r->state);
	free(r);
}

const char *kbs_resources_name(const struct kbs_resources *r)
{
	return r->be->name;
}

int kbs_resources_get(struct kbs_resources *r, const char *path, uint8_t **val, size_t *len,
                      struct err *err)
{
	*val = NULL;
	*len = 0;
	return r->be->get(r->state, path, val, len, err);
}

int kbs_resources_set(struct kbs_resources *r, const char *path, const uint8_t *val, size_t len,
                      struct err *err)
{
	return r->be->set(r->state, path, val, len, err);
}

int kbs_resources_delete(struct kbs_resources *r, const char *path, struct err *err)
{
	return r->be->del(r->state, path, err);
}
