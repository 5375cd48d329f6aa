/*
 * vcache: the memo of work the kbs already verified, so a resource read does not decode and
 * verify the same token or certificate chain again (kbs_token_verify was 42% of the kbs's CPU
 * under load before it).
 *
 * What makes an entry valid, and so what invalidates it:
 *   - the key is the SHA-256 of the exact bytes that were verified: bytes that differ in one
 *     place are another key and are verified afresh;
 *   - every entry carries a deadline (a token's exp plus the leeway, a chain's earliest
 *     notAfter) checked on every read; past it the entry is dropped and the caller verifies
 *     again, so the refusal comes from the full check;
 *   - the cache belongs to one kbs_token_verifier, built from one trust store: a new trust
 *     store (a restart) is a new verifier with empty caches.
 * Bounded: VCACHE_SHARDS shards of capacity / VCACHE_SHARDS slots; a full shard drops its
 * least recently used entry. Each shard has its own lock, held for a scan of at most
 * 64 slots (the default capacity) and a copy, so threads reading different tokens rarely meet.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "vcache.h"

#define VCACHE_SHARDS 16

struct slot {
	uint8_t key[32];
	double until;  /* deadline, seconds since the epoch */
	uint64_t used; /* shard tick of the last get or put; 0 = empty */
	void *value;   /* owned */
};

struct shard {
	pthread_mutex_t mu; /* guards every field below */
	uint64_t tick;
	struct slot *slots; /* per_shard of them */
};

struct vcache {
	size_t per_shard;
	void *(*copy)(void *);
	void (*drop)(void *);
	struct shard shards[VCACHE_SHARDS];
};

struct vcache *vcache_new(size_t capacity, void *(*copy)(void *), void (*drop)(void *))
{
	struct vcache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->per_shard = capacity < VCACHE_SHARDS ? 1 : capacity / VCACHE_SHARDS;
	c->copy = copy;
	c->drop = drop;
	for (int i = 0; i < VCACHE_SHARDS; i++) {
		pthread_mutex_init(&c->shards[i].mu, NULL);
		c->shards[i].slots = calloc(c->per_shard, sizeof(struct slot));
		if (!c->shards[i].slots) {
			vcache_free(c);
			return NULL;
		}
	}
	return c;
}

void vcache_free(struct vcache *c)
{
	if (!c)
		return;
	for (int i = 0; i < VCACHE_SHARDS; i++) {
		struct shard *s = &c->shards[i];
		for (size_t j = 0; s->slots && j < c->per_shard; j++)
			if (s->slots[j].used)
				c->drop(s->slots[j].value);
		free(s->slots);
		pthread_mutex_destroy(&s->mu);
	}
	free(c);
}

static struct shard *shard_of(struct vcache *c, const uint8_t key[32])
{
	return &c->shards[key[0] % VCACHE_SHARDS];
}

static struct slot *find(struct vcache *c, struct shard *s, const uint8_t key[32])
{
	for (size_t j = 0; j < c->per_shard; j++)
		if (s->slots[j].used && memcmp(s->slots[j].key, key, 32) == 0)
			return &s->slots[j];
	return NULL;
}

int vcache_get(struct vcache *c, const uint8_t key[32], double now, void **out, double *until)
{
	struct shard *s = shard_of(c, key);
	void *stale = NULL;
	int hit = 0;
	pthread_mutex_lock(&s->mu);
	struct slot *e = find(c, s, key);
	if (e && now < e->until) {
		e->used = ++s->tick;
		*out = c->copy(e->value);
		hit = *out != NULL;
		if (until)
			*until = e->until;
	} else if (e) {
		stale = e->value;
		memset(e, 0, sizeof(*e));
	}
	pthread_mutex_unlock(&s->mu);
	if (stale)
		c->drop(stale);
	return hit;
}

int vcache_take(struct vcache *c, const uint8_t key[32], double now, void **out)
{
	struct shard *s = shard_of(c, key);
	void *v = NULL;
	int hit = 0;
	pthread_mutex_lock(&s->mu);
	struct slot *e = find(c, s, key);
	if (e) {
		v = e->value;
		hit = now < e->until;
		memset(e, 0, sizeof(*e));
	}
	pthread_mutex_unlock(&s->mu);
	if (hit)
		*out = v;
	else if (v)
		c->drop(v);
	return hit;
}

void vcache_put(struct vcache *c, const uint8_t key[32], double until, void *value)
{
	struct shard *s = shard_of(c, key);
	void *old = NULL;
	pthread_mutex_lock(&s->mu);
	struct slot *e = find(c, s, key);
	if (!e) { /* an empty slot, else the least recently used */
		e = &s->slots[0];
		for (size_t j = 0; j < c->per_shard && e->used; j++)
			if (s->slots[j].used < e->used)
				e = &s->slots[j];
	}
	if (e->used)
		old = e->value;
	memcpy(e->key, key, 32);
	e->until = until;
	e->value = value;
	e->used = ++s->tick;
	pthread_mutex_unlock(&s->mu);
	if (old)
		c->drop(old);
}

size_t vcache_count(struct vcache *c)
{
	size_t n = 0;
	for (int i = 0; i < VCACHE_SHARDS; i++) {
		struct shard *s = &c->shards[i];
		pthread_mutex_lock(&s->mu);
		for (size_t j = 0; j < c->per_shard; j++)
			n += s->slots[j].used != 0;
		pthread_mutex_unlock(&s->mu);
	}
	return n;
}
