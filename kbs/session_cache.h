/*
 * session_cache: a replica's own copies of sessions that live in a shared store (Redis), so
 * that a handshake's later steps do not read back what this replica just read or wrote.
 *
 * Why a copy may be used: an attested session never changes (the protocol has no step after
 * Attested and no logout) until its deadline, which is in the record and checked on every
 * read; so a copy of an Attested record is the stored record. An Authed copy may be stale
 * (another replica may have attested the session since), so it is only good where staleness
 * is decided by the store anyway: the Authed -> Attested claim, made with set-if-absent,
 * refuses a second /attest whatever the copy says. Readers that need to know whether a
 * session attested ask for Attested copies only and read the store otherwise.
 *
 * Bounded: SCACHE_SLOTS direct-mapped slots (a new copy replaces whatever held its slot) and
 * no copy of a token over SCACHE_TOKEN_MAX bytes, so at most ~4.5 MB. Thread-safe.
 */
#ifndef CTRUSTEE_KBS_SESSION_CACHE_H
#define CTRUSTEE_KBS_SESSION_CACHE_H

#include "kbs.h"

#define SCACHE_SLOTS 512
#define SCACHE_TOKEN_MAX 8192

struct kbs_scache;

/* NULL when out of memory: every function below then does nothing (a miss). */
struct kbs_scache *kbs_scache_new(void);
void kbs_scache_free(struct kbs_scache *c);
/* Keeps a copy of *ss in its slot (a token over SCACHE_TOKEN_MAX drops the slot instead). */
void kbs_scache_put(struct kbs_scache *c, const struct kbs_session *ss);
/* Copies id's record into *out (free with kbs_session_clear) when one is held, has not
 * expired and, with attested_only, is Attested. 0 found, 1 not. */
int kbs_scache_get(struct kbs_scache *c, const char *id, int attested_only,
                   struct kbs_session *out);

/* 1 when id's copy is held, Attested, its session not expired, and its claims were verified
 * by this process (claims_until > now); else 0. No copy is made. */
int kbs_scache_claims_live(struct kbs_scache *c, const char *id, double now);

#endif
