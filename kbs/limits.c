/*
 * limits: how many /auth and /attest calls may be in progress at once, in all and per client
 * address (kbs-protocol.md has no such limit; Trustee relies on its worker count). A call is
 * counted from the moment its request is read until its reply is sent, queued time included,
 * so a flood cannot grow the worker queue without bound; one over the limit is answered 429
 * at once by the caller. Client addresses in flight are kept in a small open hash table; an
 * entry is dropped when its count returns to zero, so the table never outgrows the calls in
 * progress.
 *
 * Behind a proxy every client has the proxy's address: leave the per-address limit off (0)
 * there and put it in the proxy.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kbs.h"

#define ADDR_MAX 64

struct slot {
	char addr[ADDR_MAX];
	int n; /* 0 = free */
};

struct kbs_limiter {
	pthread_mutex_t mu;
	long long max, per_addr;
	long long inflight;
	struct slot *t;
	size_t cap, used;
};

static unsigned hash_addr(const char *a)
{
	unsigned h = 2166136261u;
	for (; *a; a++)
		h = (h ^ (unsigned char)*a) * 16777619u;
	return h;
}

struct kbs_limiter *kbs_limiter_new(long long max, long long per_addr)
{
	struct kbs_limiter *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	pthread_mutex_init(&l->mu, NULL);
	l->max = max;
	l->per_addr = per_addr;
	return l;
}

void kbs_limiter_free(struct kbs_limiter *l)
{
	if (!l)
		return;
	pthread_mutex_destroy(&l->mu);
	free(l->t);
	free(l);
}

/* Linear probing with backward-shift deletion keeps lookups correct without tombstones. */
static struct slot *lookup(struct kbs_limiter *l, const char *addr, int create)
{
	if (create && (l->used + 1) * 2 > l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 64;
		struct slot *nt = calloc(ncap, sizeof(*nt));
		if (!nt)
			return NULL;
		for (size_t i = 0; i < l->cap; i++) {
			if (!l->t[i].n)
				continue;
			size_t j = hash_addr(l->t[i].addr) & (ncap - 1);
			while (nt[j].n)
				j = (j + 1) & (ncap - 1);
			nt[j] = l->t[i];
		}
		free(l->t);
		l->t = nt;
		l->cap = ncap;
	}
	if (!l->cap)
		return NULL;
	size_t i = hash_addr(addr) & (l->cap - 1);
	while (l->t[i].n) {
		if (strcmp(l->t[i].addr, addr) == 0)
			return &l->t[i];
		i = (i + 1) & (l->cap - 1);
	}
	if (!create)
		return NULL;
	strncpy(l->t[i].addr, addr, ADDR_MAX - 1);
	l->t[i].addr[ADDR_MAX - 1] = 0;
	l->used++;
	return &l->t[i];
}

static void remove_slot(struct kbs_limiter *l, struct slot *s)
{
	size_t i = (size_t)(s - l->t), mask = l->cap - 1;
	l->t[i].n = 0;
	l->used--;
	for (size_t j = (i + 1) & mask; l->t[j].n; j = (j + 1) & mask) {
		size_t home = hash_addr(l->t[j].addr) & mask;
		/* move j back into the hole at i if its home is not in (i, j] */
		if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
			l->t[i] = l->t[j];
			l->t[j].n = 0;
			i = j;
		}
	}
}

int kbs_limiter_enter(struct kbs_limiter *l, const char *addr)
{
	int rc = 0;
	pthread_mutex_lock(&l->mu);
	if (l->max > 0 && l->inflight >= l->max) {
		rc = 1;
	} else if (l->per_addr > 0) {
		struct slot *s = lookup(l, addr, 1);
		if (!s)
			rc = 1;
		else if (s->n >= l->per_addr)
			rc = 2;
		else
			s->n++;
	}
	if (rc == 0)
		l->inflight++;
	pthread_mutex_unlock(&l->mu);
	return rc;
}

void kbs_limiter_leave(struct kbs_limiter *l, const char *addr)
{
	pthread_mutex_lock(&l->mu);
	if (l->inflight > 0)
		l->inflight--;
	if (l->per_addr > 0) {
		struct slot *s = lookup(l, addr, 0);
		if (s && --s->n <= 0)
			remove_slot(l, s);
	}
	pthread_mutex_unlock(&l->mu);
}

long long kbs_limiter_inflight(struct kbs_limiter *l)
{
	pthread_mutex_lock(&l->mu);
	long long n = l->inflight;
	pthread_mutex_unlock(&l->mu);
	return n;
}
