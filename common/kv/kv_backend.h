/*
 * kv_backend: what a storage backend provides, and the table kv.c dispatches through.
 *
 * Each backend is one file under common/kv/ defining one row, every slot named in one
 * initializer; it owns its state (the pointer its open returns) and nothing else does. kv.c
 * keeps no backend state: it finds the row by storage_type, checks namespaces and keys, and
 * calls through. A new backend is one file plus its row named in kv.c (the
 * declaration and one line of kv_backends[]).
 * Internal to common/kv/ and its unit test; callers use kv.h.
 */
#ifndef CTRUSTEE_KV_BACKEND_H
#define CTRUSTEE_KV_BACKEND_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "kv/kv.h"

struct kv_backend {
	const char *name;  /* Trustee's storage_type, e.g. "LocalFs"; kv_type_name() */
	const char *alias; /* the snake_case spelling Trustee also accepts, e.g. "local_fs" */
	/* 1: keys must pass kv_key_valid() (they become file names or Redis key parts) */
	int validates_keys;
	/* 1: kv.c holds one mutex around every call (single-process backends); 0: the backend
	 * is safe to call from many threads at once (it pools its own connections) */
	int serialized;
	/* backends: Trustee's StorageBackendConfig "backends" object (may be NULL); the row
	 * reads only its own member. Returns the backend's state, NULL with err set. */
	void *(*open)(const json_t *backends, struct err *err);
	void (*close)(void *state);
	/* The kv.h contract, namespace and key already checked: set returns 0 stored, 1 exists
	 * (overwrite=0), -1; get/take return 0 found (*val malloc'd, NUL-terminated), 1 not found,
	 * -1; del returns 0, 1 not found, -1; list appends with kv_keys_push and returns 0 or -1.
	 * ttl: seconds, 0 = never. A failure because the store cannot be reached sets err.code
	 * to ERR_UNAVAILABLE. */
	int (*set)(void *state, const char *ns, const char *key, const void *val, size_t len,
	           int overwrite, unsigned ttl, struct err *err);
	int (*get)(void *state, const char *ns, const char *key, uint8_t **val, size_t *len,
	           struct err *err);
	int (*take)(void *state, const char *ns, const char *key, uint8_t **val, size_t *len,
	            struct err *err);
	int (*del)(void *state, const char *ns, const char *key, struct err *err);
	int (*list)(void *state, const char *ns, char ***keys, size_t *n, struct err *err);
	/* Optional (NULL: every peek answers KV_PEEK_UNKNOWN): kv_peek, namespace and key
	 * checked; must not wait on anything slower than a local lock. */
	int (*peek)(void *state, const char *ns, const char *key, uint8_t **val, size_t *len,
	            struct err *err);
	/* Optional (NULL: kv.c calls get once per key): the values of keys[0..n) of ns, every key
	 * already checked, as kv_get_many returns them. */
	int (*get_many)(void *state, const char *ns, const char *const *keys, size_t n,
	                uint8_t **vals, size_t *lens, struct err *err);
	/* Optional (NULL: kv.c calls get once per key): kv_get_each, ns[i]:keys[i] checked. */
	int (*get_each)(void *state, const char *const *ns, const char *const *keys, size_t n,
	                uint8_t **vals, size_t *lens, struct err *err);
	/* Optional (NULL: the backend cannot, kv_can_batch() is 0): the writes of w[0..n), every
	 * namespace and key already checked, applied all or none; returns as kv_set_batch. An
	 * outage during it must leave nothing of the batch stored. */
	int (*set_batch)(void *state, const struct kv_write *w, size_t n, struct err *err);
	/* Optional (NULL: kv.c makes the two calls): kv_claim_set in one atomic step, namespaces
	 * and key already checked; returns as kv_claim_set. */
	int (*claim_set)(void *state, const char *claim_ns, const char *ns, const char *key,
	                 const void *val, size_t len, unsigned ttl, struct err *err);
};

/* Every backend, NULL-terminated, in the order kv_open's refusal names them (kv.c). */
extern const struct kv_backend *const kv_backends[];

/* The state of kv when it was opened with backend be, else NULL (for a backend's own
 * companions, such as redis_loop.c). */
void *kv_backend_state(const struct kv *kv, const struct kv_backend *be);

/* Helpers the backend files share (kv.c; the file ones in kv_file.c). */
/* Append a copy of k to a growing key array (*n used of *cap). -1 out of memory. */
int kv_keys_push(char ***keys, size_t *n, size_t *cap, const char *k);
/* Wipe and free a buffer that held stored values (resources, sessions, policies are secrets). */
void kv_wipe_free(void *p, size_t n);
/* Whole file into one malloc'd, NUL-terminated buffer via read(2), no stdio copy left behind.
 * 0 read, 1 absent, -1 err set. */
int kv_file_read(const char *path, uint8_t **val, size_t *len, struct err *err);
/* Write to <path>.tmp.<pid>, fsync, rename over path (mode 0600). 0 or -1 err set. */
int kv_file_write_atomic(const char *path, const void *val, size_t len, struct err *err);
/* mkdir -p with mode 0700, errors ignored (the write that follows reports them). */
void kv_mkdirs(const char *path);

#endif
