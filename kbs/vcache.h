/*
 * vcache: a bounded map from a SHA-256 digest to a verified result that holds until a
 * deadline. token.c keeps verified token claims by the token's exact bytes, endorsed x5c
 * chains by the chain's bytes and decoded headers; server.c the claims an /attest verified,
 * by session, until the session's first resource read. See vcache.c for the rules.
 */
#ifndef CTRUSTEE_KBS_VCACHE_H
#define CTRUSTEE_KBS_VCACHE_H

#include <stddef.h>
#include <stdint.h>

struct vcache;

/* Values are owned by the cache once put; `copy` makes the caller's own copy of a value on a
 * hit (runs under the entry's shard lock), `drop` frees one. capacity >= 16. */
struct vcache *vcache_new(size_t capacity, void *(*copy)(void *), void (*drop)(void *));
void vcache_free(struct vcache *c);
/* 1, *out = copy(value) and *until (when not NULL) its deadline when `key` is held and
 * now < the deadline; 0 otherwise (an entry past its deadline is dropped, so it is verified
 * afresh). */
int vcache_get(struct vcache *c, const uint8_t key[32], double now, void **out, double *until);
/* 1 and *out = the value itself (the caller's now; the entry is gone) when `key` is held and
 * now < the deadline; 0 otherwise (an entry past its deadline is dropped). */
int vcache_take(struct vcache *c, const uint8_t key[32], double now, void **out);
/* Holds `value` under `key` until `until` (seconds since the epoch), replacing an entry with
 * the same key, else the least recently used entry of its shard when the shard is full. */
void vcache_put(struct vcache *c, const uint8_t key[32], double until, void *value);
/* Entries held now (tests). */
size_t vcache_count(struct vcache *c);

#endif
