/*
 * redis_cache: values (and absences) of the keys every handshake reads, kept in process memory
 * and invalidated by Redis itself (client-side caching in broadcast mode, Redis >= 6).
 *
 * What invalidates an entry. Two dedicated connections form the "link": a subscriber on
 * __redis__:invalidate (RESP2 Pub/Sub) and a tracking connection that ran
 * CLIENT TRACKING on REDIRECT <subscriber> BCAST PREFIX "kbs:" PREFIX "repository:" ...
 * From then on Redis publishes to the subscriber the name of every key under those prefixes
 * that anyone changes, deletes, expires or evicts (nil for FLUSHALL/FLUSHDB: everything). A
 * prefix ends with ':' so "kbs:" never matches "kbs_protocol_session:...". Redis writes a
 * key's broadcast in the same event-loop turn as the writer's OK, and normally first (it is
 * queued in beforeSleep, and the client queued last is written first). A message sharing its
 * turn with our PING's answer follows the OK by microseconds, so nothing is served while a
 * PING is out (the pong and that turn's messages arrive in one write). FLUSHALL's message also
 * follows its OK within the turn: a reader that learnt of the flush from the flusher (one more
 * hop) finds it received.
 *
 * The freshness rule, all under one mutex:
 *  - before any entry is served, the bytes already received on the link are applied (one
 *    poll() of both sockets; a tracking connection that became readable has closed); when
 *    RCACHE_BACKLOG_BYTES or more were waiting, Redis may still hold messages for us behind
 *    them, so a PING goes out at once and nothing is served until it is answered;
 *  - an entry is served only while the link is up, no PING is out, and the link is "fresh":
 *    the subscriber answered a PING sent less than RCACHE_FRESH_MS ago (pings go out every
 *    RCACHE_PING_MS while the cache is used; an unanswered one for RCACHE_DEAD_MS drops the
 *    link). A PONG proves every invalidation queued before the PING has arrived, so a silent
 *    link serves nothing old;
 *  - a fill happens only when no invalidation, own write or link change bumped `epoch` since
 *    the ticket taken before the read was sent (a read that raced a write inserts nothing);
 *  - this process's own writes drop the key and bump the epoch after the write returns;
 *  - link loss (EOF, CLIENT KILL, Redis restart, a refused command) empties the cache; until
 *    the link is back (re-opened by the next miss, at most once a second while it fails)
 *    every lookup misses.
 * Bounded by entries and bytes, least recently used evicted first; values are wiped on free.
 * Nothing is allocated and no connection opened before the first cached read.
 */
#include <errno.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv/kv.h"
#include "kv/kv_backend.h"
#include "kv/redis_cache.h"
#include "log.h"

#define RCACHE_CHANNEL "__redis__:invalidate"
#define RCACHE_PING_MS 250      /* a PING when the last one is this old */
#define RCACHE_FRESH_MS 1000    /* serve entries this long after a PING that was answered */
#define RCACHE_DEAD_MS 3000     /* a PING unanswered this long: the link is dropped */
#define RCACHE_RETRY_MS 1000    /* link re-opened at most this often after a failure */
#define RCACHE_REFUSED_MS 30000 /* ... and this often when Redis refused a command */
#define RCACHE_DRAIN_ROUNDS 64  /* reads of the subscriber per lookup before giving up */
/* This much waiting on the subscriber means Redis may not have sent all it holds for us: its
 * rest goes out when our socket drains, after later writers' OKs. A PING then goes out at once
 * and nothing is served until its pong, which comes after everything queued before it. */
#define RCACHE_BACKLOG_BYTES 4096

static const char *const covered[] = {KV_NS_KBS, KV_NS_REPOSITORY, KV_NS_AS_POLICY,
                                      KV_NS_REFERENCE_VALUE};

struct rcache_entry {
	struct rcache_entry *hnext;       /* bucket chain */
	struct rcache_entry *prev, *next; /* LRU list, c->lru.next most recent */
	uint64_t hash;
	size_t klen, vlen, cost;
	uint8_t *val; /* owned, NUL-terminated, wiped on free; NULL: the key is absent */
	char *key;    /* "<ns>:<key>", in the same allocation, after the entry */
};

struct rcache {
	pthread_mutex_t mu; /* guards everything below; the only lock, never held across a read
	                     * of the store (only link_open waits on the network, without it) */
	size_t max_entries, max_bytes;
	struct rcache_entry **buckets; /* nbuckets (a power of 2), allocated at the first fill */
	size_t nbuckets, n, bytes;     /* n <= max_entries, bytes <= max_bytes */
	struct rcache_entry lru;       /* sentinel of the LRU ring */
	uint64_t epoch;                /* >= 1; bumped by invalidations, own writes, link changes */
	/* the link: both NULL or both open (and then tracking is on, redirected to sub) */
	redisContext *sub, *track;
	int connecting;            /* a thread is in link_open (sub and track stay NULL) */
	int ping_out;              /* a PING was sent at ping_ms and is not answered yet */
	int backlog;               /* a drain found RCACHE_BACKLOG_BYTES waiting: Redis may hold
	                            * more for us, so a PING goes out now */
	long long ping_ms;         /* when the last PING was sent */
	long long fresh_until;     /* entries may be served before this (monotonic ms) */
	long long retry_at;        /* link_open not tried again before this */
	int warned;                /* the link's failure was logged since it last worked */
	rcache_connect_fn connect; /* redis.c's connect (AUTH, SELECT) */
	void *arg;
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t hash_key(const char *k, size_t n)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)k[i]) * 1099511628211ULL;
	return h;
}

int rcache_covers(const char *ns)
{
	for (size_t i = 0; i < sizeof(covered) / sizeof(covered[0]); i++)
		if (strcmp(ns, covered[i]) == 0)
			return 1;
	return 0;
}

struct rcache *rcache_new(size_t max_entries, size_t max_bytes, rcache_connect_fn connect,
                          void *arg)
{
	struct rcache *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	pthread_mutex_init(&c->mu, NULL);
	c->max_entries = max_entries;
	c->max_bytes = max_bytes;
	c->lru.next = c->lru.prev = &c->lru;
	c->epoch = 1;
	c->connect = connect;
	c->arg = arg;
	return c;
}

/* ---- the table: lookups, LRU order, eviction (c->mu held) ---- */

static struct rcache_entry *find(struct rcache *c, const char *k, size_t klen, uint64_t h)
{
	if (c->buckets == NULL)
		return NULL;
	for (struct rcache_entry *e = c->buckets[h & (c->nbuckets - 1)]; e; e = e->hnext)
		if (e->hash == h && e->klen == klen && memcmp(e->key, k, klen) == 0)
			return e;
	return NULL;
}

static void unlink_entry(struct rcache *c, struct rcache_entry *e)
{
	struct rcache_entry **pp = &c->buckets[e->hash & (c->nbuckets - 1)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	e->prev->next = e->next;
	e->next->prev = e->prev;
	c->n--;
	c->bytes -= e->cost;
	kv_wipe_free(e->val, e->vlen);
	free(e);
}

static void drop_all(struct rcache *c)
{
	while (c->lru.next != &c->lru)
		unlink_entry(c, c->lru.next);
}

static void drop_key(struct rcache *c, const char *k, size_t klen)
{
	struct rcache_entry *e = find(c, k, klen, hash_key(k, klen));
	if (e != NULL)
		unlink_entry(c, e);
}

static int alloc_buckets(struct rcache *c)
{
	size_t nb = 16;
	while (nb < c->max_entries && nb < ((size_t)1 << 20))
		nb <<= 1;
	if ((c->buckets = calloc(nb, sizeof(*c->buckets))) == NULL)
		return -1;
	c->nbuckets = nb;
	return 0;
}

static void insert(struct rcache *c, const char *k, const uint8_t *val, size_t len)
{
	size_t klen = strlen(k), cost = sizeof(struct rcache_entry) + klen + 1 + len + 1;
	uint64_t h = hash_key(k, klen);

	if (cost > c->max_bytes || (c->buckets == NULL && alloc_buckets(c) < 0))
		return;
	drop_key(c, k, klen);
	while (c->n > 0 && (c->n + 1 > c->max_entries || c->bytes + cost > c->max_bytes))
		unlink_entry(c, c->lru.prev);
	struct rcache_entry *e = calloc(1, sizeof(*e) + klen + 1);
	if (e == NULL)
		return;
	e->key = (char *)(e + 1);
	if (val != NULL) {
		if ((e->val = malloc(len + 1)) == NULL) {
			free(e);
			return;
		}
		memcpy(e->val, val, len);
		e->val[len] = 0;
	}
	memcpy(e->key, k, klen + 1);
	e->klen = klen;
	e->vlen = len;
	e->hash = h;
	e->cost = cost;
	e->hnext = c->buckets[h & (c->nbuckets - 1)];
	c->buckets[h & (c->nbuckets - 1)] = e;
	e->next = c->lru.next;
	e->prev = &c->lru;
	e->next->prev = e;
	c->lru.next = e;
	c->n++;
	c->bytes += cost;
}

/* ---- the link (c->mu held unless said otherwise) ---- */

static void link_down(struct rcache *c, const char *why)
{
	if (c->sub == NULL)
		return;
	log_info("kv redis cache: invalidation link lost (%s); reads go to Redis until it is "
	         "back",
	         why);
	redisFree(c->sub);
	redisFree(c->track);
	c->sub = c->track = NULL;
	c->ping_out = 0;
	c->fresh_until = 0;
	c->retry_at = 0;
	c->epoch++;
	drop_all(c);
}

static int str_is(const redisReply *r, const char *s)
{
	return r->type == REDIS_REPLY_STRING && r->len == strlen(s) &&
	       memcmp(r->str, s, r->len) == 0;
}

/* One message on the subscriber: an invalidation (a list of keys, or nil: everything) or the
 * answer to our PING. 0, or -1 when it makes no sense (the link is then dropped). */
static int apply_message(struct rcache *c, const redisReply *r)
{
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 2)
		return -1;
	if (str_is(r->element[0], "pong")) {
		if (c->ping_out)
			c->fresh_until = c->ping_ms + RCACHE_FRESH_MS;
		c->ping_out = 0;
		return 0;
	}
	if (!str_is(r->element[0], "message") || r->elements != 3)
		return str_is(r->element[0], "subscribe") ? 0 : -1;
	const redisReply *keys = r->element[2];
	c->epoch++;
	if (keys->type == REDIS_REPLY_NIL) {
		drop_all(c);
		return 0;
	}
	if (keys->type != REDIS_REPLY_ARRAY)
		return -1;
	for (size_t i = 0; i < keys->elements; i++)
		if (keys->element[i]->type == REDIS_REPLY_STRING)
			drop_key(c, keys->element[i]->str, keys->element[i]->len);
	return 0;
}

/* Read what the subscriber already has for us and apply it. 1 when nothing received is left
 * unapplied, 0 when the link is down or still busy. */
static int drain(struct rcache *c)
{
	for (int round = 0; round < RCACHE_DRAIN_ROUNDS && c->sub != NULL; round++) {
		struct pollfd p[2] = {{.fd = c->sub->fd, .events = POLLIN | POLLRDHUP},
		                      {.fd = c->track->fd, .events = POLLIN | POLLRDHUP}};
		if (poll(p, 2, 0) < 0) {
			if (errno == EINTR)
				continue;
			link_down(c, "poll failed");
			return 0;
		}
		if (p[1].revents != 0) { /* it never receives anything: closed */
			link_down(c, "the tracking connection closed");
			return 0;
		}
		if (p[0].revents == 0)
			return 1;
		int avail = 0;
		if (ioctl(c->sub->fd, FIONREAD, &avail) == 0 && avail >= RCACHE_BACKLOG_BYTES)
			c->backlog = 1;
		if (redisBufferRead(c->sub) != REDIS_OK) {
			link_down(c, "the subscriber connection closed");
			return 0;
		}
		void *reply = NULL;
		int rc;
		while ((rc = redisGetReplyFromReader(c->sub, &reply)) == REDIS_OK &&
		       reply != NULL) {
			int bad = apply_message(c, reply);
			freeReplyObject(reply);
			reply = NULL;
			if (bad) {
				link_down(c, "unexpected message on the subscriber");
				return 0;
			}
		}
		if (rc != REDIS_OK) {
			link_down(c, "unreadable message on the subscriber");
			return 0;
		}
	}
	return 0;
}

/* Keep the link proven: a PING every RCACHE_PING_MS while the cache is used. */
static void keep_alive(struct rcache *c, long long now)
{
	if (c->sub == NULL)
		return;
	if (c->ping_out) {
		if (now - c->ping_ms > RCACHE_DEAD_MS)
			link_down(c, "no answer to PING");
		return;
	}
	if (now - c->ping_ms < RCACHE_PING_MS && !c->backlog)
		return;
	c->backlog = 0;
	int done = 0;
	redisAppendCommand(c->sub, "PING");
	while (!done)
		if (redisBufferWrite(c->sub, &done) != REDIS_OK) {
			link_down(c, "PING not sent");
			return;
		}
	c->ping_out = 1;
	c->ping_ms = now;
}

/* 1 when a reply is what `ok` says, else 0 with err set (a refusal marked by *refused). */
static int expect(redisContext *ctx, redisReply *r, int ok, const char *what, int *refused,
                  struct err *err)
{
	if (r == NULL)
		err_set(err, "%s: %s", what, ctx->errstr[0] ? ctx->errstr : "connection lost");
	else if (!ok) {
		*refused = 1;
		err_set(err, "%s refused: %s", what,
		        r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
	}
	freeReplyObject(r);
	return r != NULL && ok;
}

/* Open the subscriber, then turn tracking on for the covered prefixes, redirected to it.
 * Called without c->mu; 0 with *subp and *trackp open, -1 err set. */
static int link_open(struct rcache *c, redisContext **subp, redisContext **trackp, int *refused,
                     struct err *err)
{
	redisContext *sub = c->connect(c->arg, err), *track = NULL;
	redisReply *r;
	long long id = -1;
	int ok = 0;

	if (sub == NULL)
		return -1;
	r = redisCommand(sub, "CLIENT SETNAME ctrustee-kvcache-sub");
	if (!expect(sub, r, r && r->type == REDIS_REPLY_STATUS, "CLIENT SETNAME", refused, err))
		goto out;
	r = redisCommand(sub, "CLIENT ID");
	if (r != NULL && r->type == REDIS_REPLY_INTEGER)
		id = r->integer;
	if (!expect(sub, r, id >= 0, "CLIENT ID", refused, err))
		goto out;
	r = redisCommand(sub, "SUBSCRIBE " RCACHE_CHANNEL);
	if (!expect(sub, r,
	            r && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
	                str_is(r->element[0], "subscribe"),
	            "SUBSCRIBE " RCACHE_CHANNEL, refused, err))
		goto out;
	if ((track = c->connect(c->arg, err)) == NULL)
		goto out;
	r = redisCommand(track, "CLIENT SETNAME ctrustee-kvcache-track");
	if (!expect(track, r, r && r->type == REDIS_REPLY_STATUS, "CLIENT SETNAME", refused, err))
		goto out;
	r = redisCommand(track,
	                 "CLIENT TRACKING on REDIRECT %lld BCAST PREFIX %s PREFIX %s PREFIX %s "
	                 "PREFIX %s",
	                 id, KV_NS_KBS ":", KV_NS_REPOSITORY ":", KV_NS_AS_POLICY ":",
	                 KV_NS_REFERENCE_VALUE ":");
	ok = expect(track, r, r && r->type == REDIS_REPLY_STATUS, "CLIENT TRACKING", refused, err);
out:
	if (!ok) {
		redisFree(sub);
		redisFree(track);
		return -1;
	}
	*subp = sub;
	*trackp = track;
	return 0;
}

/* Bring the link up if it is down and may be tried (c->mu held; released while connecting). */
static void link_up(struct rcache *c)
{
	long long start = now_ms();
	if (c->sub != NULL || c->connecting || start < c->retry_at)
		return;
	c->connecting = 1;
	pthread_mutex_unlock(&c->mu);
	redisContext *sub = NULL, *track = NULL;
	struct err err = {0};
	int refused = 0;
	int rc = link_open(c, &sub, &track, &refused, &err);
	pthread_mutex_lock(&c->mu);
	c->connecting = 0;
	if (rc < 0) {
		c->retry_at = now_ms() + (refused ? RCACHE_REFUSED_MS : RCACHE_RETRY_MS);
		if (!c->warned)
			log_warn("kv redis cache: no invalidation link, every read goes to Redis "
			         "(%s)",
			         err.msg);
		c->warned = 1;
		return;
	}
	c->sub = sub;
	c->track = track;
	c->warned = 0;
	c->epoch++;
	drop_all(c);
	/* nothing was tracked before the subscription, so the link is current as of `start` */
	c->ping_ms = start;
	c->ping_out = 0;
	c->fresh_until = start + RCACHE_FRESH_MS;
}

/* ---- the interface ---- */

int rcache_lookup(struct rcache *c, const char *key, uint8_t **val, size_t *len, struct err *err)
{
	int rc = KV_PEEK_UNKNOWN;
	size_t klen = strlen(key);

	pthread_mutex_lock(&c->mu);
	long long now = now_ms();
	if (!drain(c))
		goto out;
	keep_alive(c, now);
	/* Nothing is served while a PING is out. Redis writes a pass's replies client by
	 * client, and a subscriber whose PING it answered in the same pass as a write is
	 * already queued behind that writer: the writer can have its OK before our socket has
	 * the pong and the invalidation that follow in one write. Once the pong is here, so is
	 * every invalidation of that pass. */
	if (c->sub == NULL || c->ping_out || now >= c->fresh_until)
		goto out;
	struct rcache_entry *e = find(c, key, klen, hash_key(key, klen));
	if (e == NULL)
		goto out;
	e->prev->next = e->next; /* most recently used */
	e->next->prev = e->prev;
	e->next = c->lru.next;
	e->prev = &c->lru;
	e->next->prev = e;
	c->lru.next = e;
	if (e->val == NULL) {
		rc = 1;
		goto out;
	}
	if ((*val = malloc(e->vlen + 1)) == NULL) {
		rc = err_set(err, "out of memory");
		goto out;
	}
	memcpy(*val, e->val, e->vlen + 1);
	*len = e->vlen;
	rc = 0;
out:
	pthread_mutex_unlock(&c->mu);
	return rc;
}

uint64_t rcache_ticket(struct rcache *c)
{
	pthread_mutex_lock(&c->mu);
	drain(c);
	link_up(c);
	uint64_t t = c->sub != NULL ? c->epoch : 0;
	pthread_mutex_unlock(&c->mu);
	return t;
}

void rcache_fill(struct rcache *c, uint64_t ticket, const char *key, const uint8_t *val, size_t len)
{
	if (ticket == 0)
		return;
	pthread_mutex_lock(&c->mu);
	drain(c); /* an invalidation that arrived during the read bumps the epoch first */
	if (c->sub != NULL && c->epoch == ticket)
		insert(c, key, val, len);
	pthread_mutex_unlock(&c->mu);
}

void rcache_forget(struct rcache *c, const char *key)
{
	pthread_mutex_lock(&c->mu);
	c->epoch++;
	drop_key(c, key, strlen(key));
	pthread_mutex_unlock(&c->mu);
}

void rcache_free(struct rcache *c)
{
	if (c == NULL)
		return;
	redisFree(c->sub);
	redisFree(c->track);
	drop_all(c);
	free(c->buckets);
	pthread_mutex_destroy(&c->mu);
	free(c);
}
