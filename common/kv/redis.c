/*
 * kv redis backend ("Redis"): key "<namespace>:<key>", the value's raw bytes, Trustee's
 * layout. The URL comes from REDIS_URL or backends.redis.url (redis://[user[:pass]@]host
 * [:port][/db]); every call has a REDIS_TIMEOUT_S timeout.
 *
 * A bounded pool of connections (backends.redis.pool_size, default 8): a caller takes an
 * idle one (or opens a new one while fewer than pool_size exist, or waits up to REDIS_WAIT_S
 * for one to come back), runs its command without any lock held, and returns it, so
 * concurrent callers do not wait on each other's round trips (serialized = 0). A connection
 * that failed is closed, not returned, so the next caller reconnects: after a Redis restart
 * the daemon recovers by itself, at the cost of one retry. An outage sets ERR_UNAVAILABLE.
 *
 * Reads of the namespaces every handshake reads (rcache_covers: the kbs's policy and
 * resources, the AS's policies, the reference values) are served from a process-local cache
 * that Redis's own invalidation messages keep fresh (redis_cache.c states the rule);
 * backends.redis.cache_entries / cache_bytes bound it, 0 turns it off. Writes through this
 * process drop what they wrote from it before returning.
 */
#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "kv/kv_backend.h"
#include "kv/redis_cache.h"
#include "kv/redis_int.h"

extern const struct kv_backend kv_backend_redis;

#define REDIS_WAIT_S 5
#define REDIS_POOL_DEFAULT 8
#define REDIS_POOL_MAX 256
/* The cache of hot-path reads (redis_cache.c): a resource policy, a few policies and
 * resources, and the reference values of a few workloads fit many times over. */
#define REDIS_CACHE_ENTRIES 4096
#define REDIS_CACHE_BYTES (16 << 20)

struct redis {
	pthread_mutex_t mu;     /* guards the pool fields below, never held across a command */
	pthread_cond_t pool_cv; /* signalled when a connection comes back or a slot frees */
	/* pool[0..pool_idle) idle connections; pool_idle <= pool_open <= pool_size */
	redisContext **pool;
	size_t pool_size, pool_idle, pool_open;
	struct redis_target t; /* from the URL, read-only once open */
	struct rcache *cache;  /* NULL: cache_entries or cache_bytes is 0 */
};

/* "redis at HOST:PORT unavailable: <cause>" from a failed context (or errno-less cause). */
static int redis_unavailable(struct redis *rd, const redisContext *c, const char *cause,
                             struct err *err)
{
	return redis_target_unavailable(&rd->t, c, cause, err);
}

int redis_target_unavailable(const struct redis_target *t, const redisContext *c, const char *cause,
                             struct err *err)
{
	if (cause == NULL && c != NULL) {
		cause = c->errstr[0] ? c->errstr : "connection lost";
		if (c->err == REDIS_ERR_IO && (strstr(cause, "temporarily unavailable") != NULL ||
		                               strstr(cause, "timed out") != NULL))
			cause = REDIS_NO_ANSWER;
		else if (c->err == REDIS_ERR_EOF)
			cause = "it closed the connection";
	}
	return err_setc(err, ERR_UNAVAILABLE, "redis at %s:%d unavailable: %s", t->host, t->port,
	                cause ? cause : "out of memory");
}

int redis_target_of(const struct kv *kv, struct redis_target *out)
{
	const struct redis *rd = kv_backend_state(kv, &kv_backend_redis);
	if (rd == NULL)
		return -1;
	*out = rd->t;
	return 0;
}

static redisContext *redis_connect(struct redis *rd, struct err *err)
{
	struct timeval tv = {REDIS_TIMEOUT_S, 0};
	redisReply *r;
	redisContext *c = redisConnectWithTimeout(rd->t.host, rd->t.port, tv);

	if (c == NULL || c->err) {
		redis_unavailable(rd, c, NULL, err);
		redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	if (rd->t.pass[0] != '\0') {
		r = rd->t.user[0] ? redisCommand(c, "AUTH %s %s", rd->t.user, rd->t.pass)
		                  : redisCommand(c, "AUTH %s", rd->t.pass);
		int bad = r == NULL || r->type == REDIS_REPLY_ERROR;
		if (r == NULL)
			redis_unavailable(rd, c, NULL, err);
		else if (bad)
			redis_unavailable(rd, c, "it refused the credentials", err);
		freeReplyObject(r);
		if (bad) {
			redisFree(c);
			return NULL;
		}
	}
	if (rd->t.db != 0) {
		r = redisCommand(c, "SELECT %d", rd->t.db);
		int bad = r == NULL || r->type == REDIS_REPLY_ERROR;
		if (bad)
			redis_unavailable(rd, c, r ? "it refused to select the database" : NULL,
			                  err);
		freeReplyObject(r);
		if (bad) {
			redisFree(c);
			return NULL;
		}
	}
	return c;
}

/* Take a connection: an idle one, a new one, or the first one returned within REDIS_WAIT_S. */
static redisContext *redis_acquire(struct redis *rd, struct err *err)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += REDIS_WAIT_S;
	pthread_mutex_lock(&rd->mu);
	while (rd->pool_idle == 0 && rd->pool_open >= rd->pool_size) {
		if (pthread_cond_timedwait(&rd->pool_cv, &rd->mu, &until) != 0 &&
		    rd->pool_idle == 0 && rd->pool_open >= rd->pool_size) {
			pthread_mutex_unlock(&rd->mu);
			err_setc(err, ERR_UNAVAILABLE,
			         "redis at %s:%d unavailable: all %zu connections stayed busy for "
			         "%d s",
			         rd->t.host, rd->t.port, rd->pool_size, REDIS_WAIT_S);
			return NULL;
		}
	}
	if (rd->pool_idle > 0) {
		redisContext *c = rd->pool[--rd->pool_idle];
		pthread_mutex_unlock(&rd->mu);
		return c;
	}
	rd->pool_open++; /* a slot reserved for the connection opened below */
	pthread_mutex_unlock(&rd->mu);
	redisContext *c = redis_connect(rd, err);
	if (c == NULL) {
		pthread_mutex_lock(&rd->mu);
		rd->pool_open--;
		pthread_cond_signal(&rd->pool_cv);
		pthread_mutex_unlock(&rd->mu);
	}
	return c;
}

/* Give a connection back. A broken one (c->err set) is closed, and so is every idle one:
 * when one connection fails (Redis restarted, a proxy dropped us) the others opened before
 * it are most likely dead too, and a retry must not pick one of them. */
static void redis_release(struct redis *rd, redisContext *c)
{
	redisContext **stale = NULL;
	size_t n_stale = 0;
	pthread_mutex_lock(&rd->mu);
	if (c->err != 0) {
		stale = malloc((rd->pool_idle + 1) * sizeof(*stale));
		if (stale != NULL) {
			memcpy(stale, rd->pool, rd->pool_idle * sizeof(*stale));
			n_stale = rd->pool_idle;
			rd->pool_open -= rd->pool_idle;
			rd->pool_idle = 0;
		}
		rd->pool_open--;
		pthread_cond_broadcast(&rd->pool_cv);
	} else {
		rd->pool[rd->pool_idle++] = c;
		pthread_cond_signal(&rd->pool_cv);
		c = NULL;
	}
	pthread_mutex_unlock(&rd->mu);
	redisFree(c);
	for (size_t i = 0; i < n_stale; i++)
		redisFree(stale[i]);
	free(stale);
}

int redis_reply_loading(const redisReply *r)
{
	return r != NULL && r->type == REDIS_REPLY_ERROR && r->str != NULL &&
	       strncmp(r->str, "LOADING", 7) == 0;
}

/* After a LOADING answer: 0 once REDIS_LOADING_WAIT_MS passed (ask again), -1 with an outage
 * set when *waits add up to REDIS_TIMEOUT_S. */
static int redis_loading_wait(struct redis *rd, int *waits, struct err *err)
{
	if ((*waits)++ >= REDIS_TIMEOUT_S * 1000 / REDIS_LOADING_WAIT_MS) {
		redis_unavailable(rd, NULL, "it is still loading its data set", err);
		return -1;
	}
	struct timespec ts = {0, REDIS_LOADING_WAIT_MS * 1000000L};
	nanosleep(&ts, NULL);
	return 0;
}

/* Run a command on `c`; on a connection error, reconnect once and retry (a pooled connection
 * may be stale after a Redis restart). *cp may be replaced; it is never NULL on return unless
 * no connection could be made. */
static redisReply *redis_cmd_on(struct redis *rd, redisContext **cp, struct err *err, int argc,
                                const char **argv, const size_t *argvlen)
{
	int loading_waits = 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (*cp == NULL && (*cp = redis_acquire(rd, err)) == NULL)
			return NULL;
		redisReply *r = redisCommandArgv(*cp, argc, argv, argvlen);
		if (redis_reply_loading(r)) {
			freeReplyObject(r);
			if (redis_loading_wait(rd, &loading_waits, err) < 0)
				return NULL;
			attempt--;
			continue;
		}
		if (r != NULL) {
			if (r->type == REDIS_REPLY_ERROR) {
				err_set(err, "redis at %s:%d refused %s: %s", rd->t.host,
				        rd->t.port, argv[0], r->str);
				freeReplyObject(r);
				return NULL;
			}
			return r;
		}
		redis_unavailable(rd, *cp, NULL, err);
		redis_release(rd, *cp); /* closes it: err is set */
		*cp = NULL;
	}
	return NULL;
}

/* One command on a pooled connection. */
static redisReply *redis_cmd(struct redis *rd, struct err *err, int argc, const char **argv,
                             const size_t *argvlen)
{
	redisContext *c = NULL;
	redisReply *r = redis_cmd_on(rd, &c, err, argc, argv, argvlen);
	if (c != NULL)
		redis_release(rd, c);
	return r;
}

int redis_set_options(const char **argv, size_t *argvlen, int argc, unsigned ttl, int overwrite,
                      char *ttls, size_t cap)
{
	if (ttl) {
		snprintf(ttls, cap, "%u", ttl);
		argv[argc] = "EX";
		argvlen[argc++] = 2;
		argv[argc] = ttls;
		argvlen[argc++] = strlen(ttls);
	}
	if (!overwrite) {
		argv[argc] = "NX";
		argvlen[argc++] = 2;
	}
	return argc;
}

static void redis_key(char *out, size_t cap, const char *ns, const char *key)
{
	snprintf(out, cap, "%s:%s", ns, key);
}

/* Drop what this process just wrote (or tried to) from the cache. */
static void redis_forget(struct redis *rd, const char *ns, const char *key)
{
	char k[1024];
	if (rd->cache == NULL || !rcache_covers(ns))
		return;
	redis_key(k, sizeof(k), ns, key);
	rcache_forget(rd->cache, k);
}

static int redis_set(void *state, const char *ns, const char *key, const void *val, size_t len,
                     int overwrite, unsigned ttl, struct err *err)
{
	struct redis *rd = state;
	char k[1024], ttls[16];
	const char *argv[6] = {"SET", k, val};
	size_t argvlen[6] = {3, 0, len};
	int argc = 3;

	redis_key(k, sizeof(k), ns, key);
	argvlen[1] = strlen(k);
	argc = redis_set_options(argv, argvlen, argc, ttl, overwrite, ttls, sizeof(ttls));
	redisReply *r = redis_cmd(rd, err, argc, argv, argvlen);
	redis_forget(rd, ns, key);
	if (r == NULL)
		return -1;
	int rc = r->type == REDIS_REPLY_NIL ? 1 : 0;
	freeReplyObject(r);
	return rc;
}

/* Copy a string reply into a malloc'd, NUL-terminated buffer and wipe the reply's bytes
 * (resources and sessions are secrets). 0, 1 nil, -1 err set. */
static int redis_copy_value(const redisReply *e, const char *k, uint8_t **val, size_t *len,
                            struct err *err)
{
	if (e->type == REDIS_REPLY_NIL)
		return 1;
	if (e->type != REDIS_REPLY_STRING)
		return err_set(err, "redis: %s holds a non-string value", k);
	if ((*val = malloc(e->len + 1)) == NULL)
		return err_set(err, "out of memory");
	memcpy(*val, e->str, e->len);
	(*val)[e->len] = 0;
	*len = e->len;
	OPENSSL_cleanse(e->str, e->len);
	return 0;
}

/* GET, or GETDEL when take: one command, never through the cache. */
static int redis_read(struct redis *rd, const char *ns, const char *key, uint8_t **val, size_t *len,
                      int take, struct err *err)
{
	char k[1024];
	redis_key(k, sizeof(k), ns, key);
	const char *argv[2] = {take ? "GETDEL" : "GET", k};
	size_t argvlen[2] = {strlen(argv[0]), strlen(k)};
	redisReply *r = redis_cmd(rd, err, 2, argv, argvlen);
	if (r == NULL)
		return -1;
	int rc = redis_copy_value(r, k, val, len, err);
	freeReplyObject(r);
	return rc;
}

/* MGET names[0..m) and, when ttls is not NULL, PTTL of each in the same pipeline (ttls[i]:
 * -1 the key has no expiry). One pooled connection, replaced once if it turns out broken.
 * The MGET reply, or NULL with err set. */
static redisReply *redis_mget(struct redis *rd, char *const *names, size_t m, long long *ttls,
                              struct err *err)
{
	const char **argv = malloc((m + 1) * sizeof(*argv));
	size_t *argvlen = malloc((m + 1) * sizeof(*argvlen));
	redisReply *mget = NULL;

	if (argv == NULL || argvlen == NULL) {
		err_set(err, "out of memory");
		goto out;
	}
	argv[0] = "MGET";
	argvlen[0] = 4;
	for (size_t i = 0; i < m; i++) {
		argv[i + 1] = names[i];
		argvlen[i + 1] = strlen(names[i]);
	}
	if (ttls == NULL) {
		mget = redis_cmd(rd, err, (int)m + 1, argv, argvlen);
		goto out;
	}
	int loading_waits = 0;
	for (int attempt = 0; attempt < 2 && mget == NULL; attempt++) {
		redisContext *c = redis_acquire(rd, err);
		if (c == NULL)
			break;
		redisAppendCommandArgv(c, (int)m + 1, argv, argvlen);
		for (size_t i = 0; i < m; i++) {
			const char *pv[2] = {"PTTL", names[i]};
			size_t pl[2] = {4, argvlen[i + 1]};
			redisAppendCommandArgv(c, 2, pv, pl);
		}
		int lost = 0;
		for (size_t i = 0; i <= m; i++) {
			redisReply *r = NULL;
			if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL) {
				redis_unavailable(rd, c, NULL, err);
				lost = 1;
				break;
			}
			if (i == 0) {
				mget = r;
				continue;
			}
			ttls[i - 1] = r->type == REDIS_REPLY_INTEGER ? r->integer : -3;
			freeReplyObject(r);
		}
		if (lost && mget != NULL) {
			freeReplyObject(mget);
			mget = NULL;
		}
		redis_release(rd, c); /* closes it when lost */
		if (!lost && redis_reply_loading(mget)) {
			freeReplyObject(mget);
			mget = NULL;
			if (redis_loading_wait(rd, &loading_waits, err) < 0)
				break;
			attempt--;
			continue;
		}
		if (!lost && mget->type == REDIS_REPLY_ERROR) {
			err_set(err, "redis at %s:%d refused MGET: %s", rd->t.host, rd->t.port,
			        mget->str);
			freeReplyObject(mget);
			mget = NULL;
			break;
		}
	}
out:
	free(argv);
	free(argvlen);
	return mget;
}

/* Read ns[i]:keys[i] for the m indexes i in idx[0..m) with one MGET into vals/lens. With a
 * ticket (rcache_ticket), what was found under a cached namespace is remembered, a value or
 * an absence, but not a key with an expiry: it would outlive it here until Redis noticed. */
static int redis_fetch(struct redis *rd, const char *const *ns, const char *const *keys,
                       const size_t *idx, size_t m, uint64_t ticket, uint8_t **vals, size_t *lens,
                       struct err *err)
{
	char **names = calloc(m, sizeof(*names));
	long long *ttls = ticket ? calloc(m, sizeof(*ttls)) : NULL;
	redisReply *r = NULL;
	int rc = -1;

	if (names == NULL || (ticket && ttls == NULL)) {
		err_set(err, "out of memory");
		goto out;
	}
	for (size_t j = 0; j < m; j++) {
		size_t l = strlen(ns[idx[j]]) + strlen(keys[idx[j]]) + 2;
		if ((names[j] = malloc(l)) == NULL) {
			err_set(err, "out of memory");
			goto out;
		}
		snprintf(names[j], l, "%s:%s", ns[idx[j]], keys[idx[j]]);
	}
	if ((r = redis_mget(rd, names, m, ttls, err)) == NULL)
		goto out;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != m) {
		err_set(err, "redis: MGET answered %zu values for %zu keys", r->elements, m);
		goto out;
	}
	for (size_t j = 0; j < m; j++) {
		size_t i = idx[j];
		if (redis_copy_value(r->element[j], names[j], &vals[i], &lens[i], err) < 0)
			goto out;
		/* PTTL: -1 a key without expiry, -2 no key; anything else is not kept */
		if (ticket && ttls[j] == (vals[i] != NULL ? -1 : -2) && rcache_covers(ns[i]))
			rcache_fill(rd->cache, ticket, names[j], vals[i], lens[i]);
	}
	rc = 0;
out:
	if (r != NULL)
		freeReplyObject(r);
	for (size_t j = 0; names != NULL && j < m; j++)
		free(names[j]);
	free(names);
	free(ttls);
	return rc; /* kv_get_each and kv_get_many free what was copied when rc < 0 */
}

/* ns[i]:keys[i]: what the cache knows, the rest in one MGET (remembered when cacheable). */
static int redis_get_each(void *state, const char *const *ns, const char *const *keys, size_t n,
                          uint8_t **vals, size_t *lens, struct err *err)
{
	struct redis *rd = state;
	size_t *idx = malloc(n * sizeof(*idx)), m = 0;
	int covered = 0, rc = -1;
	char k[1024];

	if (idx == NULL)
		return err_set(err, "out of memory");
	for (size_t i = 0; i < n; i++) {
		if (rd->cache != NULL && rcache_covers(ns[i])) {
			redis_key(k, sizeof(k), ns[i], keys[i]);
			int h = rcache_lookup(rd->cache, k, &vals[i], &lens[i], err);
			if (h < 0)
				goto out;
			if (h != KV_PEEK_UNKNOWN)
				continue;
			covered = 1;
		}
		idx[m++] = i;
	}
	rc = m == 0 ? 0
	            : redis_fetch(rd, ns, keys, idx, m, covered ? rcache_ticket(rd->cache) : 0,
	                          vals, lens, err);
out:
	free(idx);
	return rc;
}

/* MGET of keys of one namespace. */
static int redis_get_many(void *state, const char *ns, const char *const *keys, size_t n,
                          uint8_t **vals, size_t *lens, struct err *err)
{
	const char **nss = malloc(n * sizeof(*nss));
	if (nss == NULL)
		return err_set(err, "out of memory");
	for (size_t i = 0; i < n; i++)
		nss[i] = ns;
	int rc = redis_get_each(state, nss, keys, n, vals, lens, err);
	free(nss);
	return rc;
}

static int redis_get(void *state, const char *ns, const char *key, uint8_t **val, size_t *len,
                     struct err *err)
{
	struct redis *rd = state;
	if (rd->cache == NULL || !rcache_covers(ns))
		return redis_read(rd, ns, key, val, len, 0, err);
	int rc = redis_get_each(rd, &ns, &key, 1, val, len, err);
	return rc < 0 ? -1 : *val == NULL ? 1 : 0;
}

/* From the cache only: never a round trip. */
static int redis_peek(void *state, const char *ns, const char *key, uint8_t **val, size_t *len,
                      struct err *err)
{
	struct redis *rd = state;
	char k[1024];
	if (rd->cache == NULL || !rcache_covers(ns))
		return KV_PEEK_UNKNOWN;
	redis_key(k, sizeof(k), ns, key);
	return rcache_lookup(rd->cache, k, val, len, err);
}

static int redis_take(void *state, const char *ns, const char *key, uint8_t **val, size_t *len,
                      struct err *err)
{
	int rc = redis_read(state, ns, key, val, len, 1, err);
	redis_forget(state, ns, key);
	return rc;
}

static int redis_del(void *state, const char *ns, const char *key, struct err *err)
{
	struct redis *rd = state;
	char k[1024];
	redis_key(k, sizeof(k), ns, key);
	const char *argv[2] = {"DEL", k};
	size_t argvlen[2] = {3, strlen(k)};
	redisReply *r = redis_cmd(rd, err, 2, argv, argvlen);
	redis_forget(rd, ns, key);
	if (r == NULL)
		return -1;
	int rc = r->type == REDIS_REPLY_INTEGER && r->integer > 0 ? 0 : 1;
	freeReplyObject(r);
	return rc;
}

static int redis_list(void *state, const char *ns, char ***keys, size_t *n, struct err *err)
{
	struct redis *rd = state;
	char pattern[600], cursor[32] = "0";
	size_t cap = 0, plen = strlen(ns) + 1;
	snprintf(pattern, sizeof(pattern), "%s:*", ns);
	redisContext *c = NULL; /* one connection for the whole walk */
	int rc = 0;
	do {
		const char *argv[6] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "500"};
		size_t argvlen[6] = {4, strlen(cursor), 5, strlen(pattern), 5, 3};
		redisReply *r = redis_cmd_on(rd, &c, err, 6, argv, argvlen);
		if (r == NULL) {
			rc = -1;
			break;
		}
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    r->element[1]->type != REDIS_REPLY_ARRAY) {
			freeReplyObject(r);
			rc = err_set(err, "redis at %s:%d sent an unexpected SCAN reply",
			             rd->t.host, rd->t.port);
			break;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		for (size_t i = 0; i < r->element[1]->elements; i++) {
			const redisReply *e = r->element[1]->element[i];
			if (e->type == REDIS_REPLY_STRING && e->len >= plen &&
			    kv_keys_push(keys, n, &cap, e->str + plen) < 0) {
				rc = err_set(err, "out of memory");
				break;
			}
		}
		freeReplyObject(r);
	} while (rc == 0 && strcmp(cursor, "0") != 0);
	if (c != NULL)
		redis_release(rd, c);
	return rc;
}

/* WATCH the set-if-absent keys and count those that exist: 0 none (the watch stays until
 * EXEC), 1 one exists (unwatched), -1 err set. */
static int redis_watch_absent(struct redis *rd, redisContext **cp, char **keys,
                              const struct kv_write *w, size_t n, struct err *err)
{
	const char **argv = malloc((n + 1) * sizeof(*argv));
	size_t *argvlen = malloc((n + 1) * sizeof(*argvlen)), m = 0;
	int rc = -1;

	if (argv == NULL || argvlen == NULL) {
		rc = err_set(err, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (!w[i].overwrite) {
			argv[m + 1] = keys[i];
			argvlen[++m] = strlen(keys[i]);
		}
	rc = 0;
	for (int step = 0; step < 2 && m > 0 && rc == 0; step++) {
		argv[0] = step == 0 ? "WATCH" : "EXISTS";
		argvlen[0] = strlen(argv[0]);
		redisReply *r = redis_cmd_on(rd, cp, err, (int)m + 1, argv, argvlen);
		if (r == NULL)
			rc = -1;
		else if (step == 1 && r->type == REDIS_REPLY_INTEGER && r->integer > 0)
			rc = 1;
		freeReplyObject(r);
	}
	if (rc == 1) {
		const char *unwatch = "UNWATCH";
		size_t ul = 7;
		freeReplyObject(redis_cmd_on(rd, cp, err, 1, &unwatch, &ul));
	}
out:
	free(argv);
	free(argvlen);
	return rc;
}

/* MULTI, every SET, EXEC, pipelined on the one connection *cp. Redis discards the whole
 * transaction when a command is refused while queued (ACL, memory: EXECABORT) or when the
 * connection drops before EXEC, and EXEC applies all of it at once; a watched key changed in
 * between makes EXEC answer nil. 0, 1 (watched key appeared), -1 err set, -2 connection lost
 * before EXEC was answered (err set, nothing stored: the caller may retry). */
static int redis_multi_exec(struct redis *rd, redisContext *c, char **keys,
                            const struct kv_write *w, size_t n, struct err *err)
{
	redisReply *r = NULL;
	char refused[300] = "";
	int rc = 0;

	redisAppendCommand(c, "MULTI");
	for (size_t i = 0; i < n; i++) {
		const char *argv[3] = {"SET", keys[i], w[i].len ? w[i].val : ""};
		size_t argvlen[3] = {3, strlen(keys[i]), w[i].len};
		redisAppendCommandArgv(c, 3, argv, argvlen);
	}
	redisAppendCommand(c, "EXEC");
	for (size_t i = 0; i < n + 2; i++) {
		if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL) {
			redis_unavailable(rd, c, NULL, err);
			return -2;
		}
		if (i < n + 1 && r->type == REDIS_REPLY_ERROR && refused[0] == '\0')
			snprintf(refused, sizeof(refused), "%s%s", i == 0 ? "MULTI: " : "", r->str);
		if (i == n + 1) {
			if (r->type == REDIS_REPLY_NIL)
				rc = 1;
			else if (r->type != REDIS_REPLY_ARRAY || refused[0] != '\0')
				rc = err_set(
				    err, "redis at %s:%d refused the batch, nothing stored: %s",
				    rd->t.host, rd->t.port,
				    refused[0] ? refused : (r->str ? r->str : "no EXEC result"));
		}
		freeReplyObject(r);
	}
	return rc;
}

/* All or none: one pooled connection; set-if-absent keys watched and checked, then MULTI,
 * the SETs and EXEC in one pipeline (one round trip for the whole batch). A connection that
 * turns out stale before EXEC is answered leaves nothing stored and is replaced once. */
static int redis_set_batch(void *state, const struct kv_write *w, size_t n, struct err *err)
{
	struct redis *rd = state;
	redisContext *c = NULL;
	char **keys = calloc(n, sizeof(*keys));
	int rc = -1;

	if (keys == NULL)
		return err_set(err, "out of memory");
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(w[i].ns) + strlen(w[i].key) + 2;
		if ((keys[i] = malloc(l)) == NULL) {
			err_set(err, "out of memory");
			goto out;
		}
		snprintf(keys[i], l, "%s:%s", w[i].ns, w[i].key);
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		rc = redis_watch_absent(rd, &c, keys, w, n, err);
		if (rc != 0)
			break;
		if (c == NULL && (c = redis_acquire(rd, err)) == NULL) {
			rc = -1;
			break;
		}
		rc = redis_multi_exec(rd, c, keys, w, n, err);
		if (rc != -2)
			break;
		redis_release(rd, c); /* closes it: c->err is set */
		c = NULL;
		rc = -1;
	}
	if (c != NULL)
		redis_release(rd, c);
	for (size_t i = 0; i < n; i++)
		redis_forget(rd, w[i].ns, w[i].key);
out:
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
	return rc;
}

/* The claim and its value in one round trip. A script runs atomically, so no other client
 * sees the claim without the value; SET ... NX answers nil (Lua false) when the claim exists.
 * Redis caches the compiled script by its hash after the first EVAL. */
static const char claim_lua[] =
    "if redis.call('SET', KEYS[1], '1', 'NX', unpack(ARGV, 2)) then "
    "redis.call('SET', KEYS[2], ARGV[1], unpack(ARGV, 2)) return 1 end return 0";

static int redis_claim_set(void *state, const char *claim_ns, const char *ns, const char *key,
                           const void *val, size_t len, unsigned ttl, struct err *err)
{
	struct redis *rd = state;
	char ck[1024], k[1024], ttls[16];
	const char *argv[8] = {"EVAL", claim_lua, "2", ck, k, len ? val : "", "EX", ttls};
	size_t argvlen[8] = {4, sizeof(claim_lua) - 1, 1, 0, 0, len, 2, 0};

	redis_key(ck, sizeof(ck), claim_ns, key);
	redis_key(k, sizeof(k), ns, key);
	argvlen[3] = strlen(ck);
	argvlen[4] = strlen(k);
	snprintf(ttls, sizeof(ttls), "%u", ttl);
	argvlen[7] = strlen(ttls);
	redisReply *r = redis_cmd(rd, err, ttl ? 8 : 6, argv, argvlen);
	redis_forget(rd, claim_ns, key);
	redis_forget(rd, ns, key);
	if (r == NULL)
		return -1;
	int rc = r->type != REDIS_REPLY_INTEGER
	             ? err_set(err, "redis at %s:%d: the claim script answered type %d", rd->t.host,
	                       rd->t.port, r->type)
	         : r->integer == 1 ? 0
	                           : 1;
	freeReplyObject(r);
	return rc;
}

static void redis_close(void *state)
{
	struct redis *rd = state;
	rcache_free(rd->cache);
	for (size_t i = 0; i < rd->pool_idle; i++)
		redisFree(rd->pool[i]);
	free(rd->pool);
	pthread_cond_destroy(&rd->pool_cv);
	pthread_mutex_destroy(&rd->mu);
	OPENSSL_cleanse(rd->t.pass, sizeof(rd->t.pass));
	free(rd);
}

/* redis://[user[:pass]@]host[:port][/db] */
static int parse_redis_url(struct redis *rd, const char *url, struct err *err)
{
	const char *p = url;
	char hostport[300];

	rd->t.port = 6379;
	rd->t.db = 0;
	if (strncmp(p, "redis://", 8) != 0)
		return err_set(err, "redis url \"%s\" must start with redis://", url);
	p += 8;
	const char *at = strrchr(p, '@');
	if (at != NULL) {
		char cred[400];
		snprintf(cred, sizeof(cred), "%.*s", (int)(at - p), p);
		char *colon = strchr(cred, ':');
		if (colon) {
			*colon = '\0';
			snprintf(rd->t.user, sizeof(rd->t.user), "%s", cred);
			snprintf(rd->t.pass, sizeof(rd->t.pass), "%s", colon + 1);
		} else {
			snprintf(rd->t.pass, sizeof(rd->t.pass), "%s", cred);
		}
		p = at + 1;
	}
	snprintf(hostport, sizeof(hostport), "%.*s", (int)strcspn(p, "/"), p);
	const char *slash = strchr(p, '/');
	if (slash && slash[1])
		rd->t.db = atoi(slash + 1);
	char *colon = strrchr(hostport, ':');
	if (colon && strchr(hostport, ']') < colon) {
		*colon = '\0';
		rd->t.port = atoi(colon + 1);
	}
	char *h = hostport;
	if (h[0] == '[') {
		h++;
		h[strcspn(h, "]")] = '\0';
	}
	snprintf(rd->t.host, sizeof(rd->t.host), "%s", h[0] ? h : "127.0.0.1");
	if (rd->t.port <= 0 || rd->t.port > 65535)
		return err_set(err, "redis url \"%s\" has an invalid port", url);
	return 0;
}

static redisContext *redis_connect_cb(void *rd, struct err *err)
{
	return redis_connect(rd, err);
}

/* backends.redis.cache_entries / cache_bytes (0 turns the cache off). 0 or -1 err set. */
static int redis_open_cache(struct redis *rd, const json_t *o, struct err *err)
{
	static const struct {
		const char *name;
		json_int_t def, max;
	} lim[2] = {{"cache_entries", REDIS_CACHE_ENTRIES, 1 << 20},
	            {"cache_bytes", REDIS_CACHE_BYTES, (json_int_t)1 << 30}};
	json_int_t v[2];
	for (int i = 0; i < 2; i++) {
		json_t *j = json_object_get(o, lim[i].name);
		v[i] = j ? json_integer_value(j) : lim[i].def;
		if (j && (!json_is_integer(j) || v[i] < 0 || v[i] > lim[i].max))
			return err_set(
			    err,
			    "storage_backend.backends.redis.%s must be an integer from 0 "
			    "to %lld",
			    lim[i].name, (long long)lim[i].max);
	}
	if (v[0] == 0 || v[1] == 0)
		return 0;
	rd->cache = rcache_new((size_t)v[0], (size_t)v[1], redis_connect_cb, rd);
	return rd->cache == NULL ? err_set(err, "out of memory") : 0;
}

static void *redis_open(const json_t *backends, struct err *err)
{
	const json_t *o = json_object_get(backends, "redis");
	const char *url = getenv("REDIS_URL");
	if (url == NULL || *url == '\0')
		url = json_string_value(json_object_get(o, "url"));
	json_t *ps = json_object_get(o, "pool_size");
	json_int_t size = ps ? json_integer_value(ps) : REDIS_POOL_DEFAULT;
	if (ps && (!json_is_integer(ps) || size < 1 || size > REDIS_POOL_MAX)) {
		err_set(err,
		        "storage_backend.backends.redis.pool_size must be an integer from 1 to %d",
		        REDIS_POOL_MAX);
		return NULL;
	}
	struct redis *rd = calloc(1, sizeof(*rd));
	if (rd == NULL || (rd->pool = calloc((size_t)size, sizeof(*rd->pool))) == NULL) {
		free(rd);
		err_set(err, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&rd->mu, NULL);
	pthread_cond_init(&rd->pool_cv, NULL);
	rd->pool_size = (size_t)size;
	if (parse_redis_url(rd, url ? url : "redis://127.0.0.1:6379", err) < 0) {
		redis_close(rd);
		return NULL;
	}
	if (redis_open_cache(rd, o, err) < 0) {
		redis_close(rd);
		return NULL;
	}
	struct err cerr = {0};
	redisContext *c = redis_connect(rd, &cerr);
	if (c == NULL) { /* not fatal: each call connects again */
		log_warn("%s (will retry on use)", cerr.msg);
	} else {
		rd->pool[rd->pool_idle++] = c;
		rd->pool_open = 1;
	}
	return rd;
}

const struct kv_backend kv_backend_redis = {
    .name = "Redis",
    .alias = "redis",
    .validates_keys = 1,
    .serialized = 0,
    .open = redis_open,
    .close = redis_close,
    .set = redis_set,
    .get = redis_get,
    .take = redis_take,
    .del = redis_del,
    .list = redis_list,
    .set_batch = redis_set_batch,
    .get_many = redis_get_many,
    .get_each = redis_get_each,
    .claim_set = redis_claim_set,
    .peek = redis_peek,
};
