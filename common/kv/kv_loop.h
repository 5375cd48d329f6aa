/*
 * kv_loop: one event loop's non-blocking client to a Redis kv, for requests answered on the
 * loop that read them (the kbs's sessions). It talks to the store the kv was opened on (the
 * URL, credentials and database redis.c parsed) and answers as the kv's own calls do: an
 * outage sets ERR_UNAVAILABLE with the same sentence, a Redis still LOADING its data set is
 * asked again every 20 ms for up to 2 s (a loop timer, never a sleep), a command unanswered
 * after 2 s fails, and a command whose connection broke is sent once more on a new one.
 *
 * Only the loop's own thread may call these. A call either fails at once (-1, err set,
 * nothing will be called back) or returns 0 and calls back exactly once, later, on the loop.
 */
#ifndef CTRUSTEE_KV_LOOP_H
#define CTRUSTEE_KV_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "kv/kv.h"

struct event_base;
struct kv_loop;

/* A client on base for kv's store, at most max_inflight calls at once (kv_loop_full). NULL
 * with err set when kv is not Redis (or a host name's resolver cannot be set up). Connects
 * when first used, a host name looked up on the loop first; a URL's credentials and database
 * are sent first, and no command goes out on a connection before Redis has accepted them. */
struct kv_loop *kv_loop_new(struct kv *kv, struct event_base *base, size_t max_inflight,
                            struct err *err);
/* Calls in flight are called back with an outage first. From the loop's thread or after the
 * loop stopped. */
void kv_loop_free(struct kv_loop *l);
/* 1 when max_inflight calls are in flight: the caller should take its blocking path. */
int kv_loop_full(const struct kv_loop *l);

/* rc as kv_set_ttl: 0 stored, 1 not stored (exists), -1 err set. */
typedef void (*kv_loop_set_fn)(void *arg, int rc, struct err *err);
/* kv_set_ttl's write (SET EX [NX]); val is copied. */
int kv_loop_set_ttl(struct kv_loop *l, const char *ns, const char *key, const void *val, size_t len,
                    int overwrite, unsigned ttl_seconds, kv_loop_set_fn cb, void *arg,
                    struct err *err);

/* rc 0 with vals[i]/lens[i] as kv_get_each's (malloc'd, NUL-terminated, NULL when absent; the
 * callee owns them and wipes them), or -1 with err set and vals NULL. */
typedef void (*kv_loop_get_fn)(void *arg, int rc, uint8_t **vals, size_t *lens, struct err *err);
/* kv_get_each of n <= KV_LOOP_MAX_KEYS keys in one MGET. */
#define KV_LOOP_MAX_KEYS 8
int kv_loop_get_each(struct kv_loop *l, const char *const *ns, const char *const *keys, size_t n,
                     kv_loop_get_fn cb, void *arg, struct err *err);

/* kv_delete with nobody waiting for the answer (a dead record seen on a read). */
void kv_loop_delete(struct kv_loop *l, const char *ns, const char *key);

#endif
