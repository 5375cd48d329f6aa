/*
 * The Redis backend's read cache (common/kv/redis_cache.c) against a real redis-server on a
 * free port: every change made by another client (a raw hiredis connection, or a second kv
 * handle standing for another replica) is seen by the very next read and peek; FLUSHALL, a
 * killed invalidation link and a Redis restart leave nothing stale; the bounds hold; a key
 * with an expiry is not kept; "cache_entries": 0 turns it off; AUTH and a database number
 * apply to the link's connections too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "kv/kv.h"
#include "testlib.h"

#define NS KV_NS_REPOSITORY

struct srv {
	int port;
	pid_t pid;
	redisContext *raw; /* another client: what other replicas or an operator do */
};

static struct kv *open_kv(const struct srv *s, const char *extra_json)
{
	char buf[512];
	struct err err = {0};
	snprintf(buf, sizeof(buf),
	         "{\"storage_type\":\"Redis\",\"backends\":{\"redis\":{\"url\":"
	         "\"redis://127.0.0.1:%d\"%s%s}}}",
	         s->port, extra_json ? "," : "", extra_json ? extra_json : "");
	json_t *cfg = json_loads(buf, 0, NULL);
	assert_non_null(cfg);
	struct kv *kv = kv_open(cfg, &err);
	json_decref(cfg);
	if (kv == NULL)
		fail_msg("kv_open: %s", err.msg);
	return kv;
}

static int srv_setup(void **state)
{
	struct srv *s = calloc(1, sizeof(*s));
	unsetenv("REDIS_URL");
	s->port = tl_free_port();
	s->pid = tl_start_redis(s->port);
	s->raw = redisConnect("127.0.0.1", s->port);
	assert_true(s->raw != NULL && s->raw->err == 0);
	*state = s;
	return 0;
}

static int srv_teardown(void **state)
{
	struct srv *s = *state;
	redisFree(s->raw);
	tl_stop(s->pid);
	free(s);
	return 0;
}

static void raw(struct srv *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(s->raw, fmt, ap);
	va_end(ap);
	assert_non_null(r);
	assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
	freeReplyObject(r);
}

/* calls of one command so far, from INFO commandstats */
static long long calls(struct srv *s, const char *cmd)
{
	redisReply *r = redisCommand(s->raw, "INFO commandstats");
	char want[64];
	snprintf(want, sizeof(want), "cmdstat_%s:calls=", cmd);
	assert_non_null(r);
	const char *at = strstr(r->str, want);
	long long n = at ? atoll(at + strlen(want)) : 0;
	freeReplyObject(r);
	return n;
}

/* the store's reads of values: what the cache saves */
static long long reads(struct srv *s)
{
	return calls(s, "get") + calls(s, "mget");
}

static void want_get(struct kv *kv, const char *key, const char *want)
{
	struct err err = {0};
	uint8_t *v = NULL;
	size_t n = 0;
	int rc = kv_get(kv, NS, key, &v, &n, &err);
	if (want == NULL) {
		assert_int_equal(rc, 1);
		return;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(v, want, n);
	free(v);
}

/* kv_peek's answer; the value must be `want` when found */
static int peek(struct kv *kv, const char *ns, const char *key, const char *want)
{
	struct err err = {0};
	uint8_t *v = NULL;
	size_t n = 0;
	int rc = kv_peek(kv, ns, key, &v, &n, &err);
	if (rc == 0) {
		assert_non_null(want);
		assert_int_equal(n, strlen(want));
		assert_memory_equal(v, want, n);
	}
	free(v);
	return rc;
}

static void test_cache_serves_repeated_reads_without_the_store(void **state)
{
	struct srv *s = *state;
	struct kv *kv = open_kv(s, NULL);
	raw(s, "SET " NS ":a one");
	want_get(kv, "a", "one");
	long long before = reads(s);
	for (int i = 0; i < 20; i++)
		want_get(kv, "a", "one");
	assert_int_equal(reads(s), before);
	kv_close(kv);
}

static void test_cache_sees_a_change_by_another_client(void **state)
{
	struct srv *s = *state;
	struct kv *kv = open_kv(s, NULL);
	raw(s, "SET " NS ":k v1");
	want_get(kv, "k", "v1");
	assert_int_equal(peek(kv, NS, "k", "v1"), 0);
	raw(s, "SET " NS ":k v2");
	assert_int_not_equal(peek(kv, NS, "k", "v2"), 1);
	want_get(kv, "k", "v2");
	raw(s, "DEL " NS ":k");
	assert_int_not_equal(peek(kv, NS, "k", "v2"), 0);
	want_get(kv, "k", NULL);
	assert_int_equal(peek(kv, NS, "k", NULL), 1); /* the absence is cached too */
	kv_close(kv);
}

static void test_cache_absent_then_written_is_seen(void **state)
{
	struct srv *s = *state;
	struct kv *kv = open_kv(s, NULL);
	want_get(kv, "later", NULL);
	want_get(kv, "later", NULL);
	raw(s, "SET " NS ":later here");
	want_get(kv, "later", "here");
	/* a write through another handle (another replica) too */
	struct kv *other = open_kv(s, NULL);
	struct err err = {0};
	assert_int_equal(kv_set(other, NS, "later", "again", 5, 1, &err), 0);
	want_get(kv, "later", "again");
	assert_int_equal(kv_delete(other, NS, "later", &err), 0);
	want_get(kv, "later", NULL);
	kv_close(other);
	kv_close(kv);
}

static void test_cache_flushall_is_seen(void **state)
{
	struct srv *s = *state;
	struct kv *kv = open_kv(s, NULL);
	raw(s, "MSET " NS ":f1 a " NS ":f2 b");
	want_get(kv, "f1", "a");
	want_get(kv, "f2", "b");
	raw(s, "FLUSHALL");
	/* Redis writes the flush message in the same event-loop turn as FLUSHALL's reply but
	 * after it (a key's message goes first): one more round trip by anyone and it is ours */
	raw(s, "PING");
	want_get(kv, "f1", NULL);
	want_get(kv, "f2", NULL);
	kv_close(kv);
}

/* The id of the client named `name` in CLIENT LIST, -1 when none. */
static long long client_id(struct srv *s, const char *name)
{
	redisReply *r = redisCommand(s->raw, "CLIENT LIST");
	char want[80];
	long long id = -1;
	snprintf(want, sizeof(want), " name=%s ", name);
	assert_non_null(r);
	for (const char *l = r->str; *l != '\0' && id < 0;) {
		size_t len = strcspn(l, "\n");
		if (memmem(l, len, want, strlen(want)) != NULL)
			id = atoll(l + 3); /* "id=N ..." */
		l += len + (l[len] == '\n');
	}
	freeReplyObject(r);
	return id;
}

/* Either link connection killed: no stale read, and the cache comes back by itself. */
static void test_cache_killed_link_serves_nothing_stale_and_recovers(void **state)
{
	struct srv *s = *state;
	struct kv *kv = open_kv(s, NULL);
	raw(s, "SET " NS ":x 1");
	want_get(kv, "x", "1");
	raw(s, "CLIENT KILL TYPE pubsub");
	raw(s, "SET " NS ":x 2");
	assert_int_not_equal(peek(kv, NS, "x", "1"), 0);
	want_get(kv, "x", "2");
	assert_int_equal(peek(kv, NS, "x", "2"), 0); /* link back, cache refilled */

	long long id = client_id(s, "ctrustee-kvcache-track");
	assert_true(id > 0);
	raw(s, "CLIENT KILL ID %lld", id);
	raw(s, "SET " NS ":x 3");
	assert_int_not_equal(peek(kv, NS, "x", "2"), 0);
	want_get(kv, "x", "3");
	assert_int_equal(peek(kv, NS, "x", "3"), 0);
	kv_close(kv);
}

static void test_cache_redis_restart_with_a_different_value_is_seen(void **state)
{
	struct srv *s = *state;
	struct kv *kv = open_kv(s, NULL);
	raw(s, "SET " NS ":r before");
	want_get(kv, "r", "before");
	redisFree(s->raw);
	tl_stop(s->pid);
	s->pid = tl_start_redis(s->port);
	s->raw = redisConnect("127.0.0.1", s->port);
	assert_true(s->raw != NULL && s->raw->err == 0);
	raw(s, "SET " NS ":r after");
	assert_int_not_equal(peek(kv, NS, "r", "before"), 0);
	want_get(kv, "r", "after");
	want_get(kv, "r", "after");
	assert_int_equal(peek(kv, NS, "r", "after"), 0);
	kv_close(kv);
}

/* more keys than cache_entries (and values beyond cache_bytes): the most recent stay */
static void test_cache_is_bounded(void **state)
{
	struct srv *s = *state;
	char key[32], val[1001];
	struct kv *kv = open_kv(s, "\"cache_entries\":8");
	for (int i = 0; i < 50; i++)
		raw(s, "SET " NS ":b%d v%d", i, i);
	for (int i = 0; i < 50; i++) {
		snprintf(key, sizeof(key), "b%d", i);
		snprintf(val, sizeof(val), "v%d", i);
		want_get(kv, key, val);
	}
	int hits = 0;
	for (int i = 0; i < 50; i++) {
		snprintf(key, sizeof(key), "b%d", i);
		snprintf(val, sizeof(val), "v%d", i);
		int rc = peek(kv, NS, key, val);
		hits += rc == 0;
		if (i >= 42)
			assert_int_equal(rc, 0);
	}
	assert_int_equal(hits, 8);
	kv_close(kv);

	kv = open_kv(s, "\"cache_bytes\":4096");
	memset(val, 'z', 1000);
	val[1000] = '\0';
	for (int i = 0; i < 10; i++) {
		raw(s, "SET " NS ":big%d %s", i, val);
		snprintf(key, sizeof(key), "big%d", i);
		want_get(kv, key, val);
	}
	hits = 0;
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "big%d", i);
		hits += peek(kv, NS, key, val) == 0;
	}
	assert_true(hits >= 1 && hits * 1000 <= 4096);
	kv_close(kv);
}

static void test_cache_peek_is_unknown_when_cold_and_a_hit_after_a_read(void **state)
{
	struct srv *s = *state;
	struct kv *kv = open_kv(s, NULL);
	raw(s, "SET " NS ":p val");
	raw(s, "SET " KV_NS_SESSION ":p sess");
	assert_int_equal(peek(kv, NS, "p", NULL), KV_PEEK_UNKNOWN);
	want_get(kv, "p", "val");
	assert_int_equal(peek(kv, NS, "p", "val"), 0);
	/* sessions are never cached */
	struct err err = {0};
	uint8_t *v = NULL;
	size_t n;
	assert_int_equal(kv_get(kv, KV_NS_SESSION, "p", &v, &n, &err), 0);
	free(v);
	assert_int_equal(peek(kv, KV_NS_SESSION, "p", NULL), KV_PEEK_UNKNOWN);
	kv_close(kv);
}

/* A key with an expiry would outlive it in the cache until Redis noticed: never kept. */
static void test_cache_keeps_no_key_with_an_expiry(void **state)
{
	struct srv *s = *state;
	struct kv *kv = open_kv(s, NULL);
	raw(s, "SET " NS ":t v EX 100");
	want_get(kv, "t", "v");
	assert_int_equal(peek(kv, NS, "t", NULL), KV_PEEK_UNKNOWN);
	kv_close(kv);
}

static void test_cache_entries_zero_turns_it_off(void **state)
{
	struct srv *s = *state;
	struct kv *kv = open_kv(s, "\"cache_entries\":0");
	raw(s, "SET " NS ":z v");
	long long before = reads(s);
	want_get(kv, "z", "v");
	want_get(kv, "z", "v");
	assert_int_equal(reads(s), before + 2);
	assert_int_equal(peek(kv, NS, "z", NULL), KV_PEEK_UNKNOWN);
	assert_int_equal(client_id(s, "ctrustee-kvcache-sub"), -1);
	kv_close(kv);
	struct err err = {0};
	json_t *bad = json_pack("{s:s,s:{s:{s:s,s:i}}}", "storage_type", "Redis", "backends",
	                        "redis", "url", "redis://127.0.0.1:1", "cache_bytes", -1);
	assert_null(kv_open(bad, &err));
	assert_non_null(strstr(err.msg, "cache_bytes"));
	json_decref(bad);
}

/* A storm of writes by another client (thousands of invalidations this process has not read
 * yet, more than one read of the subscriber takes), then one more write: the next read sees
 * that last write, whatever Redis still held for the subscriber behind the storm. */
static void test_cache_write_after_an_invalidation_storm_is_seen(void **state)
{
	struct srv *s = *state;
	struct kv *a = open_kv(s, NULL);
	char key[32];
	raw(s, "SET " NS ":storm 0");
	want_get(a, "storm", "0");
	want_get(a, "storm", "0");
	for (int round = 1; round <= 3; round++) {
		for (int i = 0; i < 4000; i++) {
			snprintf(key, sizeof(key), NS ":s%d", i);
			redisAppendCommand(s->raw, "SET %s %d", key, round);
		}
		for (int i = 0; i < 4000; i++) {
			redisReply *r = NULL;
			assert_int_equal(redisGetReply(s->raw, (void **)&r), REDIS_OK);
			freeReplyObject(r);
		}
		raw(s, "SET " NS ":storm %d", round);
		snprintf(key, sizeof(key), "%d", round);
		want_get(a, "storm", key);
		want_get(a, "storm", key);
	}
	kv_close(a);
}

struct race {
	struct kv *reader_kv;
	volatile int done; /* the last value whose write returned */
	volatile int stop;
	int stale, served; /* reads that returned less than `done` read before them */
	pthread_mutex_t mu;
};

static void *race_reader(void *arg)
{
	struct race *r = arg;
	struct err err = {0};
	int stale = 0, served = 0;
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		int done = __atomic_load_n(&r->done, __ATOMIC_ACQUIRE);
		uint8_t *v = NULL;
		size_t n;
		if (kv_get(r->reader_kv, NS, "race", &v, &n, &err) != 0) {
			print_message("# a read failed: %s\n", err.msg);
			stale++;
			continue;
		}
		if (atoi((char *)v) < done)
			print_message("# stale: read %s after write %d returned\n", (char *)v,
			              done);
		stale += atoi((char *)v) < done;
		served++;
		free(v);
	}
	pthread_mutex_lock(&r->mu);
	r->stale += stale;
	r->served += served;
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* Replica A reads from four threads while replica B writes: once a write has returned, no
 * read that starts after it sees an older value; and most reads are still served from A's
 * memory. */
static void test_cache_concurrent_readers_see_every_completed_write(void **state)
{
	struct srv *s = *state;
	struct kv *a = open_kv(s, NULL), *b = open_kv(s, NULL);
	struct race r = {.reader_kv = a};
	struct err err = {0};
	char val[16];
	pthread_t t[4];
	pthread_mutex_init(&r.mu, NULL);
	assert_int_equal(kv_set(b, NS, "race", "0", 1, 1, &err), 0);
	want_get(a, "race", "0");
	long long before = reads(s);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, race_reader, &r), 0);
	for (int i = 1; i <= 300; i++) {
		snprintf(val, sizeof(val), "%d", i);
		if (i % 2)
			assert_int_equal(kv_set(b, NS, "race", val, strlen(val), 1, &err), 0);
		else
			raw(s, "SET " NS ":race %s", val);
		__atomic_store_n(&r.done, i, __ATOMIC_RELEASE);
		usleep(2000);
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	long long store_reads = reads(s) - before;
	print_message("# %d reads, %lld from the store, %d stale\n", r.served, store_reads,
	              r.stale);
	assert_int_equal(r.stale, 0);
	assert_true(r.served > 2 * store_reads);
	pthread_mutex_destroy(&r.mu);
	kv_close(a);
	kv_close(b);
}

/* The link's two connections authenticate and select the URL's database like the pool's. */
static void test_cache_link_uses_auth_and_the_database(void **state)
{
	int port = tl_free_port();
	char p[16], url[96];
	struct err err = {0};
	snprintf(p, sizeof(p), "%d", port);
	char *argv[] = {"redis-server", "--port",        p,        "--bind",
	                "127.0.0.1",    "--save",        "",       "--appendonly",
	                "no",           "--requirepass", "s3cret", NULL};
	pid_t pid = tl_spawn(argv);
	tl_wait_port(port, "redis-server");
	snprintf(url, sizeof(url), "redis://:s3cret@127.0.0.1:%d/3", port);
	json_t *cfg = json_pack("{s:s,s:{s:{s:s}}}", "storage_type", "Redis", "backends", "redis",
	                        "url", url);
	struct kv *kv = kv_open(cfg, &err);
	json_decref(cfg);
	assert_non_null(kv);
	struct srv s = {.port = port, .pid = pid, .raw = redisConnect("127.0.0.1", port)};
	assert_true(s.raw != NULL && s.raw->err == 0);
	raw(&s, "AUTH s3cret");
	raw(&s, "SELECT 3");
	raw(&s, "SET " NS ":db v3");
	want_get(kv, "db", "v3");
	assert_int_equal(peek(kv, NS, "db", "v3"), 0); /* the link is up */
	raw(&s, "SET " NS ":db w3");
	want_get(kv, "db", "w3");
	kv_close(kv);
	redisFree(s.raw);
	tl_stop(pid);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, srv_setup, srv_teardown)
	    T(test_cache_serves_repeated_reads_without_the_store),
	    T(test_cache_sees_a_change_by_another_client),
	    T(test_cache_absent_then_written_is_seen),
	    T(test_cache_flushall_is_seen),
	    T(test_cache_killed_link_serves_nothing_stale_and_recovers),
	    T(test_cache_redis_restart_with_a_different_value_is_seen),
	    T(test_cache_is_bounded),
	    T(test_cache_peek_is_unknown_when_cold_and_a_hit_after_a_read),
	    T(test_cache_keeps_no_key_with_an_expiry),
	    T(test_cache_entries_zero_turns_it_off),
	    T(test_cache_concurrent_readers_see_every_completed_write),
	    T(test_cache_write_after_an_invalidation_storm_is_seen),
	    cmocka_unit_test(test_cache_link_uses_auth_and_the_database),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
