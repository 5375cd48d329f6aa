/*
 * policy_cache: compiled attestation policies, keyed by policy key and their text (the
 * bytes compared; the SHA-256 kept for as_policy_ref_digest). The AS still reads the text from
 * storage on every appraisal (so a SetPolicy, here or on another replica sharing the store, takes
 * effect at once) but compiles it only when those bytes were not seen before. Bounded: the least
 * recently used entry goes first.
 */
#ifndef CTRUSTEE_AS_POLICY_CACHE_H
#define CTRUSTEE_AS_POLICY_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "rego/rego.h"

struct as_policy_cache;
struct as_policy_ref; /* one caller's hold on a compiled policy */

/* max entries (0 = 64). NULL when out of memory. */
struct as_policy_cache *as_policy_cache_new(size_t max);
void as_policy_cache_free(struct as_policy_cache *c);

/* The compiled form of `text` stored under `key`, compiled now unless cached. The caller
 * holds it until as_policy_cache_release, even if it is evicted or replaced meanwhile.
 * NULL with err set when the text does not compile. */
struct as_policy_ref *as_policy_cache_get(struct as_policy_cache *c, const char *key,
                                          const char *text, size_t len,
                                          const struct rego_host_function *host_decls,
                                          size_t n_host, struct err *err);
const struct rego_policy *as_policy_ref_policy(const struct as_policy_ref *r);
/* The SHA-256 of the text it was compiled from (32 bytes, valid while held). */
const uint8_t *as_policy_ref_digest(const struct as_policy_ref *r);
void as_policy_cache_release(struct as_policy_cache *c, struct as_policy_ref *r);

/* Counters since start: lookups answered from the cache, and compilations. */
void as_policy_cache_stats(struct as_policy_cache *c, unsigned long long *hits,
                           unsigned long long *compiles);

#endif
