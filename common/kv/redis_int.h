/*
 * redis_int: what the Redis backend (redis.c) shares with its event-loop client
 * (redis_loop.c): where the store is (parsed once, from the same URL, by redis.c), the
 * sentence of an outage, and the LOADING rule, so both paths answer alike.
 * Internal to common/kv/.
 */
#ifndef CTRUSTEE_KV_REDIS_INT_H
#define CTRUSTEE_KV_REDIS_INT_H

#include <hiredis/hiredis.h>

#include "err.h"
#include "kv/kv.h"

#define REDIS_TIMEOUT_S 2        /* a command's answer, or a connection, within this */
#define REDIS_LOADING_WAIT_MS 20 /* a LOADING answer is asked again after this, up to the above */

/* Host, port, credentials and database of the kv's Redis, as redis.c parsed them. */
struct redis_target {
	char host[400], user[400], pass[400];
	int port, db;
};

/* The target of an open Redis kv: 0, or -1 when kv is another backend. */
int redis_target_of(const struct kv *kv, struct redis_target *out);
#define REDIS_NO_ANSWER "no answer within 2 s" /* REDIS_TIMEOUT_S */

/* err = "redis at HOST:PORT unavailable: <cause>" with ERR_UNAVAILABLE; returns -1. cause
 * NULL: said from the failed context c (its error, a time-out, the server closing). */
int redis_target_unavailable(const struct redis_target *t, const redisContext *c, const char *cause,
                             struct err *err);
/* 1 if r is Redis's LOADING answer (restarted, reading its data set back; it ran nothing). */
int redis_reply_loading(const redisReply *r);

/* A SET's options after its first argc arguments (SET key value): EX ttl (written into ttls,
 * cap bytes) when ttl is not 0, and NX unless overwrite. The new argc (at most argc + 3). */
int redis_set_options(const char **argv, size_t *argvlen, int argc, unsigned ttl, int overwrite,
                      char *ttls, size_t cap);

#endif
