/*
 * redis_cache: the Redis backend's process-local cache of the values read on every handshake
 * (the kbs's resource policy and resources, the AS's policies, the RVPS's reference values),
 * kept fresh by Redis's own invalidation messages (client-side caching, broadcast mode).
 * Internal to common/kv/redis.c; see redis_cache.c for the freshness rule.
 */
#ifndef CTRUSTEE_KV_REDIS_CACHE_H
#define CTRUSTEE_KV_REDIS_CACHE_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct rcache;

/* Opens one connection to the store, authenticated and on the right database (redis.c's
 * redis_connect); NULL with err set. */
typedef redisContext *(*rcache_connect_fn)(void *arg, struct err *err);

/* A cache of at most max_entries entries and max_bytes bytes (both > 0); nothing is allocated
 * and no connection opened until the first rcache_ticket. NULL when out of memory. */
struct rcache *rcache_new(size_t max_entries, size_t max_bytes, rcache_connect_fn connect,
                          void *arg);
void rcache_free(struct rcache *c);
/* 1 if keys of namespace ns are cached (KV_NS_KBS, KV_NS_REPOSITORY, KV_NS_AS_POLICY,
 * KV_NS_REFERENCE_VALUE), 0 otherwise (sessions, nonces, audit, provenance, ...). */
int rcache_covers(const char *ns);
/* The value of the Redis key `key` ("<ns>:<key>") if the cache knows it is current: 0 found
 * (*val malloc'd, NUL-terminated), 1 known absent, 2 (KV_PEEK_UNKNOWN) not known, -1 out of
 * memory (err set). Never waits on the network. */
int rcache_lookup(struct rcache *c, const char *key, uint8_t **val, size_t *len, struct err *err);
/* Taken before reading keys from Redis to fill the cache: brings the invalidation link up
 * when it is down (this may block for a connect), and returns a ticket, 0 when no fill may
 * follow. */
uint64_t rcache_ticket(struct rcache *c);
/* Remember what a read that began after rcache_ticket returned `ticket` found: val[0..len)
 * or, with val NULL, that the key is absent. Dropped when anything was invalidated (or the
 * link changed) since the ticket was taken. */
void rcache_fill(struct rcache *c, uint64_t ticket, const char *key, const uint8_t *val,
                 size_t len);
/* This process wrote or deleted `key` (or tried to): drop it, and make every fill from a read
 * that began before now a no-op. Call after the write returned, whatever it returned. */
void rcache_forget(struct rcache *c, const char *key);

#endif
