/*
 * loopdns: what the event loops' clients (the gRPC client grpcx_async.c, the Redis client
 * kv/redis_loop.c) share about resolving a host name on the loop with libevent's evdns, so
 * that a name that does not resolve is worded as the blocking clients word it: those call the
 * C library's getaddrinfo, and their sentences come from its gai_strerror.
 */
#ifndef CTRUSTEE_LOOPDNS_H
#define CTRUSTEE_LOOPDNS_H

/* A resolver on the loop for names is asked again at most this often (after a failure, or
 * after a connection to the address it gave failed). */
#define LOOPDNS_MIN_MS 1000

/* evdns's failure code (EVUTIL_EAI_*) as the C library's getaddrinfo words the same failure. */
const char *loopdns_gai_sentence(int evutil_rc);

struct event_base;
struct evdns_base;
/* Frees a client's resolver (NULL: nothing). cancelled: a lookup on it was cancelled, whose
 * answer (EVUTIL_EAI_CANCEL) a deferred callback of the loop still has to deliver, reading
 * the resolver: then it is freed on the loop's next turn, after that answer; a loop that
 * never turns again leaves it to the process's exit. */
void loopdns_free(struct event_base *base, struct evdns_base *dns, int cancelled);

#endif
