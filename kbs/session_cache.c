/*
 * session_cache: per-replica copies of store-held sessions (session_cache.h says when a copy
 * may stand in for the store). Measured with sessions in Redis, one kbs: a handshake made six
 * session round trips (create, read at /attest, read again inside the attest step, the nonce
 * claim, the Attested write, the read at the resource) and makes three with the copies and
 * the claim that is a set-if-absent of the Attested record (session.c).
 */
#include "session_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct kbs_scache {
	pthread_mutex_t mu; /* guards every slot */
	/* slot[i].id[0] == '\0': empty; else a copy owned by the cache (nonce, token, params) */
	struct kbs_session slot[SCACHE_SLOTS];
};

static unsigned slot_of(const char *id)
{
	unsigned h = 2166136261u;
	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h % SCACHE_SLOTS;
}

/* A deep copy: no string or JSON value is shared between threads. 0 or -1 (out of memory). */
static int copy(struct kbs_session *dst, const struct kbs_session *src)
{
	memset(dst, 0, sizeof(*dst));
	memcpy(dst->id, src->id, sizeof(dst->id));
	memcpy(dst->tee, src->tee, sizeof(dst->tee));
	dst->state = src->state;
	dst->expires = src->expires;
	dst->claims_until = src->claims_until;
	dst->nonce = strdup(src->nonce ? src->nonce : "");
	dst->token = src->token ? strdup(src->token) : NULL;
	dst->extra_params = src->extra_params ? json_deep_copy(src->extra_params) : NULL;
	if (!dst->nonce || (src->token && !dst->token) ||
	    (src->extra_params && !dst->extra_params)) {
		kbs_session_clear(dst);
		return -1;
	}
	return 0;
}

struct kbs_scache *kbs_scache_new(void)
{
	struct kbs_scache *c = calloc(1, sizeof(*c));
	if (c)
		pthread_mutex_init(&c->mu, NULL);
	return c;
}

void kbs_scache_free(struct kbs_scache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < SCACHE_SLOTS; i++)
		if (c->slot[i].id[0])
			kbs_session_clear(&c->slot[i]);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

void kbs_scache_put(struct kbs_scache *c, const struct kbs_session *ss)
{
	struct kbs_session fresh, old;
	int ok;
	if (!c)
		return;
	ok = !(ss->token && strlen(ss->token) > SCACHE_TOKEN_MAX) && copy(&fresh, ss) == 0;
	unsigned i = slot_of(ss->id);
	pthread_mutex_lock(&c->mu);
	old = c->slot[i];
	if (ok)
		c->slot[i] = fresh;
	else if (strcmp(old.id, ss->id) == 0)
		memset(&c->slot[i], 0, sizeof(c->slot[i]));
	else
		memset(&old, 0, sizeof(old)); /* another session's copy stays */
	pthread_mutex_unlock(&c->mu);
	if (old.id[0])
		kbs_session_clear(&old);
}

int kbs_scache_get(struct kbs_scache *c, const char *id, int attested_only, struct kbs_session *out)
{
	int rc = 1;
	memset(out, 0, sizeof(*out));
	if (!c)
		return 1;
	unsigned i = slot_of(id);
	pthread_mutex_lock(&c->mu);
	const struct kbs_session *s = &c->slot[i];
	if (s->id[0] && strcmp(s->id, id) == 0 && s->expires >= (long long)time(NULL) &&
	    (!attested_only || s->state == KBS_SESSION_ATTESTED))
		rc = copy(out, s) == 0 ? 0 : 1;
	pthread_mutex_unlock(&c->mu);
	return rc;
}

int kbs_scache_claims_live(struct kbs_scache *c, const char *id, double now)
{
	int live = 0;
	if (!c)
		return 0;
	unsigned i = slot_of(id);
	pthread_mutex_lock(&c->mu);
	const struct kbs_session *s = &c->slot[i];
	if (s->id[0] && strcmp(s->id, id) == 0 && s->state == KBS_SESSION_ATTESTED && s->token &&
	    s->claims_until > 0 && s->expires >= (long long)now && now < s->claims_until)
		live = 1;
	pthread_mutex_unlock(&c->mu);
	return live;
}
