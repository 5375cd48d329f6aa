/*
 * kv local_json backend ("LocalJson"): one JSON document per namespace, Trustee's layout
 * <file_dir_path>/<namespace> = {"key": "<base64url padded value>"}. Every call reads and
 * rewrites the whole document (atomically), which suits the few policies and reference
 * values it holds; kv.c serialises calls. No expiry: a TTL is not kept in the document.
 * Any key is accepted (it is a JSON member name, not a file name).
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "kv/kv_backend.h"

#define LOCAL_JSON_DEFAULT_DIR "/opt/confidential-containers/storage/local_json"

struct local_json {
	char dir[512]; /* file_dir_path */
};

static void *lj_open(const json_t *backends, struct err *err)
{
	const json_t *o = json_object_get(backends, "local_json");
	if (backends != NULL && o == NULL) {
		err_set(err, "storage_backend.backends.local_json is required for LocalJson");
		return NULL;
	}
	struct local_json *lj = calloc(1, sizeof(*lj));
	if (lj == NULL) {
		err_set(err, "out of memory");
		return NULL;
	}
	const char *dir = json_string_value(json_object_get(o, "file_dir_path"));
	snprintf(lj->dir, sizeof(lj->dir), "%s", dir ? dir : LOCAL_JSON_DEFAULT_DIR);
	return lj;
}

static void lj_close(void *state)
{
	free(state);
}

/* Wipe a string member's bytes when this document holds the only reference to it. */
static void lj_wipe_value(json_t *v)
{
	if (json_is_string(v) && v->refcount == 1)
		OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
}

/* Drops a namespace document loaded by lj_load, wiping every value (base64 of a stored
 * value) first: this reference is the only one. */
static void lj_free(json_t *j)
{
	const char *k;
	json_t *v;
	if (json_is_object(j) && j->refcount == 1)
		json_object_foreach(j, k, v)
		{
			lj_wipe_value(v);
		}
	json_decref(j);
}

static json_t *lj_load(const struct local_json *lj, const char *ns, char *path, size_t cap,
                       struct err *err)
{
	uint8_t *buf;
	size_t len;
	snprintf(path, cap, "%s/%s", lj->dir, ns);
	int rc = kv_file_read(path, &buf, &len, err);
	if (rc == 1)
		return json_object();
	if (rc < 0)
		return NULL;
	json_t *j = json_loadb((const char *)buf, len, 0, NULL);
	kv_wipe_free(buf, len);
	if (!json_is_object(j)) {
		lj_free(j);
		err_set(err, "%s is not a JSON object", path);
		return NULL;
	}
	return j;
}

static int lj_store(const char *path, json_t *j, struct err *err)
{
	char *text = json_dumps(j, JSON_COMPACT);
	if (text == NULL)
		return err_set(err, "out of memory");
	size_t n = strlen(text);
	int rc = kv_file_write_atomic(path, text, n, err);
	kv_wipe_free(text, n);
	return rc;
}

static int lj_set(void *state, const char *ns, const char *key, const void *val, size_t len,
                  int overwrite, unsigned ttl, struct err *err)
{
	const struct local_json *lj = state;
	char path[1024];
	json_t *j;
	kv_mkdirs(lj->dir);
	if ((j = lj_load(lj, ns, path, sizeof(path), err)) == NULL)
		return -1;
	if (!overwrite && json_object_get(j, key) != NULL) {
		lj_free(j);
		return 1;
	}
	char *enc = b64_encode(val, len, B64_URL_PAD);
	if (enc == NULL) {
		lj_free(j);
		return err_set(err, "out of memory");
	}
	lj_wipe_value(json_object_get(j, key));
	json_object_set_new(j, key, json_string(enc));
	kv_wipe_free(enc, strlen(enc));
	int rc = lj_store(path, j, err);
	lj_free(j);
	return rc;
}

static int lj_read(const struct local_json *lj, const char *ns, const char *key, uint8_t **val,
                   size_t *len, int take, struct err *err)
{
	char path[1024];
	json_t *j = lj_load(lj, ns, path, sizeof(path), err), *v;
	if (j == NULL)
		return -1;
	v = json_object_get(j, key);
	if (!json_is_string(v)) {
		lj_free(j);
		return 1;
	}
	int rc = b64_decode(json_string_value(v), json_string_length(v), B64_URL_PAD | B64_LENIENT,
	                    val, len) < 0
	             ? err_set(err, "%s: value of %s is not base64url", path, key)
	             : 0;
	if (rc == 0 && take) {
		OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
		json_object_del(j, key);
		if ((rc = lj_store(path, j, err)) < 0) { /* still stored: not taken */
			kv_wipe_free(*val, *len);
			*val = NULL;
		}
	}
	lj_free(j);
	return rc;
}

static int lj_get(void *state, const char *ns, const char *key, uint8_t **val, size_t *len,
                  struct err *err)
{
	return lj_read(state, ns, key, val, len, 0, err);
}

static int lj_take(void *state, const char *ns, const char *key, uint8_t **val, size_t *len,
                   struct err *err)
{
	return lj_read(state, ns, key, val, len, 1, err);
}

static int lj_del(void *state, const char *ns, const char *key, struct err *err)
{
	char path[1024];
	json_t *j = lj_load(state, ns, path, sizeof(path), err);
	if (j == NULL)
		return -1;
	json_t *v = json_object_get(j, key);
	if (v == NULL) {
		lj_free(j);
		return 1;
	}
	lj_wipe_value(v);
	json_object_del(j, key);
	int rc = lj_store(path, j, err);
	lj_free(j);
	return rc;
}

static int lj_list(void *state, const char *ns, char ***keys, size_t *n, struct err *err)
{
	char path[1024];
	size_t cap = 0;
	const char *k;
	json_t *v, *j = lj_load(state, ns, path, sizeof(path), err);
	if (j == NULL)
		return -1;
	json_object_foreach(j, k, v)
	{
		if (kv_keys_push(keys, n, &cap, k) < 0) {
			lj_free(j);
			return err_set(err, "out of memory");
		}
	}
	lj_free(j);
	return 0;
}

const struct kv_backend kv_backend_local_json = {
    .name = "LocalJson",
    .alias = "local_json",
    .validates_keys = 0,
    .serialized = 1,
    .open = lj_open,
    .close = lj_close,
    .set = lj_set,
    .get = lj_get,
    .take = lj_take,
    .del = lj_del,
    .list = lj_list,
};
