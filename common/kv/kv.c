/*
 * kv: the key-value store behind every daemon's state (see kv.h for the byte layout).
 *
 * One interface, one table of backends (kv_backend.h), one file per backend under common/kv/
 * owning that backend's state. This file finds the row by Trustee's storage_type (or its
 * snake_case alias), checks every namespace and key once for all backends, and dispatches;
 * for the single-process backends (serialized = 1) it holds one mutex around each call, the
 * others (Redis) run calls concurrently on their own connection pool.
 */
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv.h"
#include "kv/kv_backend.h"

/* The backends, each defined by its own file. A new backend adds its row's name here and
 * one line to the table. */
extern const struct kv_backend kv_backend_memory, kv_backend_local_fs, kv_backend_local_json,
    kv_backend_redis, kv_backend_postgres;

const struct kv_backend *const kv_backends[] = {
    &kv_backend_memory, &kv_backend_local_fs, &kv_backend_local_json,
    &kv_backend_redis,  &kv_backend_postgres, NULL,
};

struct kv {
	const struct kv_backend *be; /* a row of kv_backends */
	void *state;                 /* owned by be: from be->open, released by be->close */
	pthread_mutex_t mu;          /* held around every call when be->serialized */
};

int kv_key_valid(const char *key)
{
	if (key == NULL || *key == '\0')
		return 0;
	for (const char *p = key; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '/' || *p == '-'))
			return 0;
	return 1;
}

/* A namespace becomes a directory or a key prefix: no empty, "." or ".." segment. */
static int ns_valid(const char *ns)
{
	size_t n = ns ? strlen(ns) : 0;
	if (n == 0 || ns[0] == '/' || ns[n - 1] == '/' || strstr(ns, "//") != NULL)
		return 0;
	for (const char *seg = ns; seg; seg = strchr(seg, '/') ? strchr(seg, '/') + 1 : NULL) {
		size_t l = strcspn(seg, "/");
		if ((l == 1 && seg[0] == '.') || (l == 2 && seg[0] == '.' && seg[1] == '.'))
			return 0;
	}
	return 1;
}

int kv_keys_push(char ***keys, size_t *n, size_t *cap, const char *k)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		char **nk = realloc(*keys, nc * sizeof(char *));
		if (nk == NULL)
			return -1;
		*keys = nk;
		*cap = nc;
	}
	(*keys)[*n] = strdup(k);
	return (*keys)[(*n)++] == NULL ? -1 : 0;
}

void kv_wipe_free(void *p, size_t n)
{
	if (p != NULL) {
		OPENSSL_cleanse(p, n);
		free(p);
	}
}

/* NULL names Memory, Trustee's default. */
static const struct kv_backend *backend_by_name(const char *t)
{
	for (size_t i = 0; kv_backends[i] != NULL; i++) {
		const struct kv_backend *be = kv_backends[i];
		if (t == NULL ? be == &kv_backend_memory
		              : strcmp(t, be->name) == 0 || strcmp(t, be->alias) == 0)
			return be;
	}
	return NULL;
}

/* "storage_type \"X\" is not one of Memory, LocalFs, ...": the list comes from the table. */
static void refuse_type(const char *type, struct err *err)
{
	char names[256] = "";
	size_t o = 0;
	for (size_t i = 0; kv_backends[i] != NULL && o < sizeof(names); i++)
		o += (size_t)snprintf(names + o, sizeof(names) - o, "%s%s", i ? ", " : "",
		                      kv_backends[i]->name);
	err_set(err, "storage_type \"%s\" is not one of %s", type, names);
}

struct kv *kv_open_type(const char *type, const json_t *backends, struct err *err)
{
	const struct kv_backend *be = backend_by_name(type);
	struct kv *kv;

	if (be == NULL) {
		refuse_type(type, err);
		return NULL;
	}
	kv = calloc(1, sizeof(*kv));
	if (kv == NULL) {
		err_set(err, "out of memory");
		return NULL;
	}
	kv->be = be;
	if ((kv->state = be->open(backends, err)) == NULL) {
		free(kv);
		return NULL;
	}
	pthread_mutex_init(&kv->mu, NULL);
	return kv;
}

struct kv *kv_open(const json_t *cfg, struct err *err)
{
	if (cfg == NULL || json_is_null(cfg))
		return kv_open_type("Memory", NULL, err);
	json_t *t = json_object_get(cfg, "storage_type");
	if (t != NULL && !json_is_string(t)) {
		err_set(err, "storage_type must be a string");
		return NULL;
	}
	return kv_open_type(t ? json_string_value(t) : "Memory", json_object_get(cfg, "backends"),
	                    err);
}

void kv_close(struct kv *kv)
{
	if (kv == NULL)
		return;
	kv->be->close(kv->state);
	pthread_mutex_destroy(&kv->mu);
	free(kv);
}

const char *kv_type_name(const struct kv *kv)
{
	return kv->be->name;
}

void *kv_backend_state(const struct kv *kv, const struct kv_backend *be)
{
	return kv != NULL && kv->be == be ? kv->state : NULL;
}

static int check(const struct kv *kv, const char *ns, const char *key, struct err *err)
{
	if (!ns_valid(ns))
		return err_set(err, "invalid storage namespace \"%s\"", ns ? ns : "");
	if (key == NULL || *key == '\0')
		return err_set(err, "empty storage key");
	if (kv->be->validates_keys && !kv_key_valid(key))
		return err_set(err, "storage key \"%s\" has characters outside [A-Za-z0-9._/-]",
		               key);
	return 0;
}

static void enter(struct kv *kv)
{
	if (kv->be->serialized)
		pthread_mutex_lock(&kv->mu);
}

static void leave(struct kv *kv)
{
	if (kv->be->serialized)
		pthread_mutex_unlock(&kv->mu);
}

int kv_set_ttl(struct kv *kv, const char *ns, const char *key, const void *val, size_t len,
               int overwrite, unsigned ttl_seconds, struct err *err)
{
	if (check(kv, ns, key, err) < 0)
		return -1;
	enter(kv);
	int rc = kv->be->set(kv->state, ns, key, val, len, overwrite, ttl_seconds, err);
	leave(kv);
	return rc;
}

int kv_set(struct kv *kv, const char *ns, const char *key, const void *val, size_t len,
           int overwrite, struct err *err)
{
	return kv_set_ttl(kv, ns, key, val, len, overwrite, 0, err);
}

int kv_get(struct kv *kv, const char *ns, const char *key, uint8_t **val, size_t *len,
           struct err *err)
{
	*val = NULL;
	*len = 0;
	if (check(kv, ns, key, err) < 0)
		return -1;
	enter(kv);
	int rc = kv->be->get(kv->state, ns, key, val, len, err);
	leave(kv);
	return rc;
}

int kv_peek(struct kv *kv, const char *ns, const char *key, uint8_t **val, size_t *len,
            struct err *err)
{
	*val = NULL;
	*len = 0;
	if (check(kv, ns, key, err) < 0)
		return -1;
	if (kv->be->peek == NULL)
		return KV_PEEK_UNKNOWN;
	enter(kv);
	int rc = kv->be->peek(kv->state, ns, key, val, len, err);
	leave(kv);
	return rc;
}

int kv_take(struct kv *kv, const char *ns, const char *key, uint8_t **val, size_t *len,
            struct err *err)
{
	*val = NULL;
	*len = 0;
	if (check(kv, ns, key, err) < 0)
		return -1;
	enter(kv);
	int rc = kv->be->take(kv->state, ns, key, val, len, err);
	leave(kv);
	return rc;
}

int kv_delete(struct kv *kv, const char *ns, const char *key, struct err *err)
{
	if (check(kv, ns, key, err) < 0)
		return -1;
	enter(kv);
	int rc = kv->be->del(kv->state, ns, key, err);
	leave(kv);
	return rc;
}

int kv_list(struct kv *kv, const char *ns, char ***keys, size_t *n, struct err *err)
{
	*keys = NULL;
	*n = 0;
	if (!ns_valid(ns))
		return err_set(err, "invalid storage namespace \"%s\"", ns ? ns : "");
	enter(kv);
	int rc = kv->be->list(kv->state, ns, keys, n, err);
	leave(kv);
	if (rc < 0) {
		kv_list_free(*keys, *n);
		*keys = NULL;
		*n = 0;
	}
	return rc;
}

static void free_many(uint8_t **vals, const size_t *lens, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (vals[i] != NULL)
			kv_wipe_free(vals[i], lens[i]);
		vals[i] = NULL;
	}
}

/* kv_get_many (one namespace: ns1) and kv_get_each (one per key: nss) in one body. */
static int get_multi(struct kv *kv, const char *ns1, const char *const *nss,
                     const char *const *keys, size_t n, uint8_t **vals, size_t *lens,
                     struct err *err)
{
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		vals[i] = NULL;
		lens[i] = 0;
		if (check(kv, nss ? nss[i] : ns1, keys[i], err) < 0)
			return -1;
	}
	if (n == 0)
		return 0;
	enter(kv);
	if (nss == NULL && kv->be->get_many != NULL) {
		rc = kv->be->get_many(kv->state, ns1, keys, n, vals, lens, err);
	} else if (nss != NULL && kv->be->get_each != NULL) {
		rc = kv->be->get_each(kv->state, nss, keys, n, vals, lens, err);
	} else {
		for (size_t i = 0; i < n && rc >= 0; i++) {
			int g = kv->be->get(kv->state, nss ? nss[i] : ns1, keys[i], &vals[i],
			                    &lens[i], err);
			if (g == 1)
				vals[i] = NULL;
			rc = g < 0 ? -1 : 0;
		}
	}
	leave(kv);
	if (rc < 0)
		free_many(vals, lens, n);
	return rc < 0 ? -1 : 0;
}

int kv_get_many(struct kv *kv, const char *ns, const char *const *keys, size_t n, uint8_t **vals,
                size_t *lens, struct err *err)
{
	return get_multi(kv, ns, NULL, keys, n, vals, lens, err);
}

int kv_get_each(struct kv *kv, const char *const *ns, const char *const *keys, size_t n,
                uint8_t **vals, size_t *lens, struct err *err)
{
	return get_multi(kv, NULL, ns, keys, n, vals, lens, err);
}

int kv_can_batch(const struct kv *kv)
{
	return kv->be->set_batch != NULL;
}

int kv_set_batch(struct kv *kv, const struct kv_write *w, size_t n, struct err *err)
{
	if (kv->be->set_batch == NULL)
		return err_set(err, "the %s store cannot write a batch atomically", kv->be->name);
	for (size_t i = 0; i < n; i++)
		if (check(kv, w[i].ns, w[i].key, err) < 0)
			return -1;
	if (n == 0)
		return 0;
	enter(kv);
	int rc = kv->be->set_batch(kv->state, w, n, err);
	leave(kv);
	return rc;
}

int kv_claim_set(struct kv *kv, const char *claim_ns, const char *ns, const char *key,
                 const void *val, size_t len, unsigned ttl_seconds, struct err *err)
{
	if (check(kv, claim_ns, key, err) < 0 || check(kv, ns, key, err) < 0)
		return -1;
	if (kv->be->claim_set != NULL) {
		enter(kv);
		int rc =
		    kv->be->claim_set(kv->state, claim_ns, ns, key, val, len, ttl_seconds, err);
		leave(kv);
		return rc;
	}
	int rc = kv_set_ttl(kv, claim_ns, key, "1", 1, 0, ttl_seconds, err);
	return rc != 0 ? rc : kv_set_ttl(kv, ns, key, val, len, 1, ttl_seconds, err);
}

void kv_list_free(char **keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
}
