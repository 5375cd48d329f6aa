/*
 * kv: the key-value store interface every daemon keeps its state behind, with Trustee's
 * backends and byte layout (as-rvps.md §7.5, kbs-protocol.md §8):
 *   memory      per-namespace map, lost on exit
 *   local_fs    <dir_path>/<namespace>/<key with each '/' written as the 4 chars \x2F>
 *   local_json  <file_dir_path>/<namespace> = {"key": "<b64url padded value>"}
 *   redis       key "<namespace>:<key>", raw bytes (hiredis; URL from config or REDIS_URL;
 *               "pool_size" connections at most, default 8, each opened when first needed;
 *               the kbs, repository, AS policy and reference value namespaces are read
 *               through a cache Redis's invalidation messages keep fresh, bounded by
 *               "cache_entries" (default 4096) and "cache_bytes" (16 MiB), 0 = off)
 *   postgres    table "<namespace>" (value BYTEA, key TEXT PRIMARY KEY), made if missing (libpq;
 *               backends.postgres {db, username, password, port, host} or POSTGRES_URL;
 *               "pool_size" connections at most, default 5)
 * Backends sit behind one table of rows, one file each (see kv/kv_backend.h).
 * All functions are thread-safe. Valid keys (validated backends): [A-Za-z0-9._/-].
 */
#ifndef CTRUSTEE_KV_H
#define CTRUSTEE_KV_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct kv;

/* A failed call sets err.code = ERR_UNAVAILABLE (err.h) when the store could not be reached
 * (down, timed out, every pooled connection busy): the caller may retry later. Other failures
 * leave code 0. */

/* Namespaces in use. */

#define KV_NS_KBS "kbs"
#define KV_NS_REPOSITORY "repository"
#define KV_NS_SESSION "kbs_protocol_session"
#define KV_NS_AS_POLICY "attestation_service_policy"
#define KV_NS_REFERENCE_VALUE "reference_value"

/* `cfg` is Trustee's StorageBackendConfig object:
 *   {"storage_type": "Memory"|"LocalFs"|"LocalJson"|"Redis"|"Postgres" (snake_case aliases
 *    too), "backends": {"local_fs": {"dir_path"}, "local_json": {"file_dir_path"},
 *                 "redis": {"url", "pool_size", "cache_entries", "cache_bytes"},
 *                 "postgres": {"db", "username", "password", "port", "host", "pool_size"}}}
 * NULL cfg = Memory. */
struct kv *kv_open(const json_t *cfg, struct err *err);
/* Open one backend by type name with its sub-object (used for storage_type overrides). */
struct kv *kv_open_type(const char *storage_type, const json_t *backends, struct err *err);
void kv_close(struct kv *kv);
const char *kv_type_name(const struct kv *kv);

/* overwrite=0: set only if absent. Returns 0 stored, 1 not stored (exists), -1 error. */
int kv_set(struct kv *kv, const char *ns, const char *key, const void *val, size_t len,
           int overwrite, struct err *err);
/* Like kv_set with an expiry in seconds (redis: SET EX; memory: checked on read; local_fs and
 * local_json keep no expiry, nor does postgres: Trustee's tables have no column for it). */
int kv_set_ttl(struct kv *kv, const char *ns, const char *key, const void *val, size_t len,
               int overwrite, unsigned ttl_seconds, struct err *err);
/* Returns 0 found (*val malloc'd, NUL-terminated, not counted in *len), 1 not found, -1 error. */
int kv_get(struct kv *kv, const char *ns, const char *key, uint8_t **val, size_t *len,
           struct err *err);
/* kv_get that never waits on the store: the value when this process already knows it
 * (Memory always; Redis from its invalidation-tracked cache), for callers on an event loop
 * that must not block. Returns 0 found and 1 not found as kv_get, 2 not known without a round
 * trip (call kv_get where blocking is fine), -1 error. */
#define KV_PEEK_UNKNOWN 2
int kv_peek(struct kv *kv, const char *ns, const char *key, uint8_t **val, size_t *len,
            struct err *err);
/* The values of keys[0..n) of one namespace, in one round trip where the backend can (Redis
 * MGET; the others key by key): vals[i] as kv_get's *val, or NULL when absent; lens[i] its
 * length. Returns 0, or -1 with err set and nothing left allocated. */
int kv_get_many(struct kv *kv, const char *ns, const char *const *keys, size_t n, uint8_t **vals,
                size_t *lens, struct err *err);
/* kv_get_many over keys of several namespaces: the value of ns[i]:keys[i] in vals[i], in one
 * round trip where the backend can (Redis MGET). Same returns as kv_get_many. */
int kv_get_each(struct kv *kv, const char *const *ns, const char *const *keys, size_t n,
                uint8_t **vals, size_t *lens, struct err *err);
/* Atomically get and delete (redis GETDEL). Same returns as kv_get. */
int kv_take(struct kv *kv, const char *ns, const char *key, uint8_t **val, size_t *len,
            struct err *err);
/* Returns 0 deleted, 1 not found, -1 error. */
int kv_delete(struct kv *kv, const char *ns, const char *key, struct err *err);
/* Keys in a namespace (prefix stripped), malloc'd array of malloc'd strings. */
int kv_list(struct kv *kv, const char *ns, char ***keys, size_t *n, struct err *err);
void kv_list_free(char **keys, size_t n);
/* One write of a batch: namespace, key and value borrowed from the caller; overwrite = 0 makes
 * it set-if-absent, and the whole batch then stores nothing when that key exists. */
struct kv_write {
	const char *ns, *key;
	const void *val;
	size_t len;
	int overwrite;
};
/* 1 when the backend writes a batch atomically (Redis MULTI/EXEC, one Postgres transaction,
 * memory under its lock); 0 for the file backends, whose callers keep their own rollback. */
int kv_can_batch(const struct kv *kv);
/* Every write of w[0..n) lands or none does, no expiry. Returns 0 stored, 1 nothing stored
 * because a set-if-absent key exists, -1 nothing stored (err set; ERR_UNAVAILABLE on an
 * outage). A backend without batches (kv_can_batch() == 0) refuses with a sentence. */
int kv_set_batch(struct kv *kv, const struct kv_write *w, size_t n, struct err *err);
/* A claim and the value it guards: set claim_ns:key to "1" only if absent and, only when that
 * claim was made, overwrite ns:key with val; both expire after ttl_seconds (0 = never). For a
 * state step that must happen once across replicas (the kbs's Authed -> Attested). Redis
 * does both in one round trip, atomically (a Lua script); the other backends make the two
 * calls in order, so a failure between them leaves the claim without the value (the step is
 * then refused, never done twice). Returns 0 both stored, 1 the claim exists (nothing
 * stored), -1 err set. */
int kv_claim_set(struct kv *kv, const char *claim_ns, const char *ns, const char *key,
                 const void *val, size_t len, unsigned ttl_seconds, struct err *err);
/* 1 if key is made only of [A-Za-z0-9._/-] and non-empty. */
int kv_key_valid(const char *key);

#endif
