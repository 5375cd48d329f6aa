/*
 * common/kv: the key-value store's contract on every backend (memory, local_fs, local_json,
 * Redis, Postgres), each backend's on-disk layout, and Redis and Postgres against a real
 * redis-server / postgres (initdb'd into a temporary directory) on a free port, each including
 * a restart in the middle and the connection pool's bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <pwd.h>

#include "kv/kv.h"
#include "kv/kv_backend.h"
#include "testlib.h"

/* the same behaviour on every backend */
static void kv_contract(struct kv *kv)
{
	struct err err = {0};
	uint8_t *v;
	size_t n;
	char **keys;
	size_t nk;

	assert_int_equal(kv_set(kv, "repository", "repo/type/tag", "secret", 6, 1, &err), 0);
	assert_int_equal(kv_get(kv, "repository", "repo/type/tag", &v, &n, &err), 0);
	assert_int_equal(n, 6);
	assert_memory_equal(v, "secret", 6);
	free(v);
	assert_int_equal(kv_set(kv, "repository", "repo/type/tag", "other", 5, 0, &err), 1);
	assert_int_equal(kv_set(kv, "repository", "repo/type/tag", "bin\0ary", 7, 1, &err), 0);
	assert_int_equal(kv_get(kv, "repository", "repo/type/tag", &v, &n, &err), 0);
	assert_int_equal(n, 7);
	assert_memory_equal(v, "bin\0ary", 7);
	free(v);
	assert_int_equal(kv_get(kv, "repository", "absent", &v, &n, &err), 1);
	assert_int_equal(kv_set(kv, "repository", "a.b-c_d", "1", 1, 1, &err), 0);
	assert_int_equal(kv_list(kv, "repository", &keys, &nk, &err), 0);
	assert_int_equal(nk, 2);
	kv_list_free(keys, nk);
	assert_int_equal(kv_take(kv, "repository", "a.b-c_d", &v, &n, &err), 0);
	free(v);
	assert_int_equal(kv_get(kv, "repository", "a.b-c_d", &v, &n, &err), 1);
	assert_int_equal(kv_delete(kv, "repository", "repo/type/tag", &err), 0);
	assert_int_equal(kv_delete(kv, "repository", "repo/type/tag", &err), 1);
	assert_int_equal(kv_set(kv, "../etc", "k", "v", 1, 1, &err), -1);
	assert_int_equal(kv_set(kv, "repository", "", "v", 1, 1, &err), -1);
}

static void assert_value(struct kv *kv, const char *ns, const char *key, const char *want)
{
	struct err err = {0};
	uint8_t *v = NULL;
	size_t n;
	int rc = kv_get(kv, ns, key, &v, &n, &err);
	if (want == NULL) {
		assert_int_equal(rc, 1);
		return;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(v, want, n);
	free(v);
}

/* A batch on a backend that has the slot: all of it lands, across namespaces; one whose
 * set-if-absent key exists stores nothing, not even the writes queued before it. */
static void kv_batch_contract(struct kv *kv)
{
	struct err err = {0};
	assert_int_equal(kv_can_batch(kv), 1);
	struct kv_write ok[] = {
	    {"reference_value", "batch/a", "A1", 2, 1},
	    {"rvps_provenance", "batch/a", "P1", 2, 1},
	    {"reference_value", "batch/b", "B1", 2, 1},
	    {"rvps_audit", "batch-0001", "E1", 2, 0},
	};
	assert_int_equal(kv_set_batch(kv, ok, 4, &err), 0);
	assert_value(kv, "reference_value", "batch/a", "A1");
	assert_value(kv, "rvps_provenance", "batch/a", "P1");
	assert_value(kv, "reference_value", "batch/b", "B1");
	assert_value(kv, "rvps_audit", "batch-0001", "E1");
	struct kv_write clash[] = {
	    {"reference_value", "batch/a", "A2", 2, 1},
	    {"reference_value", "batch/c", "C2", 2, 1},
	    {"rvps_audit", "batch-0001", "E2", 2, 0}, /* exists: the whole batch stays out */
	};
	assert_int_equal(kv_set_batch(kv, clash, 3, &err), 1);
	assert_value(kv, "reference_value", "batch/a", "A1");
	assert_value(kv, "reference_value", "batch/c", NULL);
	assert_value(kv, "rvps_audit", "batch-0001", "E1");
	/* a key kv.c refuses stops the batch before anything is sent */
	struct kv_write bad[] = {
	    {"reference_value", "batch/d", "D", 1, 1},
	    {"reference_value", "", "x", 1, 1},
	};
	assert_int_equal(kv_set_batch(kv, bad, 2, &err), -1);
	assert_value(kv, "reference_value", "batch/d", NULL);
	/* the same key twice: the last write wins */
	struct kv_write twice[] = {
	    {"reference_value", "batch/e", "first", 5, 1},
	    {"reference_value", "batch/e", "last", 4, 1},
	};
	assert_int_equal(kv_set_batch(kv, twice, 2, &err), 0);
	assert_value(kv, "reference_value", "batch/e", "last");
	/* kv_get_many: the values present, NULL for the absent, in the order asked */
	const char *keys[] = {"batch/a", "batch/none", "batch/e"};
	uint8_t *vals[3];
	size_t lens[3];
	assert_int_equal(kv_get_many(kv, "reference_value", keys, 3, vals, lens, &err), 0);
	assert_true(vals[0] != NULL && lens[0] == 2 && memcmp(vals[0], "A1", 3) == 0);
	assert_null(vals[1]);
	assert_true(vals[2] != NULL && lens[2] == 4 && strcmp((char *)vals[2], "last") == 0);
	free(vals[0]);
	free(vals[2]);
	const char *badkeys[] = {"batch/a", ""};
	assert_int_equal(kv_get_many(kv, "reference_value", badkeys, 2, vals, lens, &err), -1);
}

static void test_kv_memory_batch_is_all_or_none(void **state)
{
	struct err err = {0};
	struct kv *kv = kv_open(NULL, &err);
	assert_non_null(kv);
	kv_batch_contract(kv);
	kv_close(kv);
}

/* The file backends have no batch: the slot is NULL and kv_set_batch says so, storing
 * nothing (their callers keep their own rollback). */
static void test_kv_file_backends_refuse_a_batch(void **state)
{
	char dir[] = "/tmp/ctrustee-kvbatch-XXXXXX";
	struct err err = {0};
	assert_non_null(mkdtemp(dir));
	json_t *cfg = json_pack("{s:s,s:{s:{s:s}}}", "storage_type", "LocalFs", "backends",
	                        "local_fs", "dir_path", dir);
	struct kv *kv = kv_open(cfg, &err);
	assert_non_null(kv);
	assert_int_equal(kv_can_batch(kv), 0);
	struct kv_write w[] = {{"reference_value", "a", "v", 1, 1}};
	assert_int_equal(kv_set_batch(kv, w, 1, &err), -1);
	assert_non_null(strstr(err.msg, "the LocalFs store cannot write a batch atomically"));
	assert_value(kv, "reference_value", "a", NULL);
	kv_close(kv);
	json_decref(cfg);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* Against a real redis-server: the batch contract, then a batch Redis refuses midway (an ACL
 * user may write only keys reference_value:ok*): the write queued before the refused one is
 * not kept, where one SET after another would have kept it. */
static void test_kv_redis_batch_is_all_or_none(void **state)
{
	int port = tl_free_port();
	char url[128];
	struct err err = {0};
	pid_t pid = tl_start_redis(port);

	unsetenv("REDIS_URL");
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
	json_t *cfg = json_pack("{s:s,s:{s:{s:s}}}", "storage_type", "Redis", "backends", "redis",
	                        "url", url);
	struct kv *kv = kv_open(cfg, &err);
	assert_non_null(kv);
	kv_batch_contract(kv);
	redisContext *c = redisConnect("127.0.0.1", port);
	assert_true(c != NULL && c->err == 0);
	redisReply *r = redisCommand(c, "ACL SETUSER limited on >pw ~reference_value:ok* +@all");
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_STATUS);
	freeReplyObject(r);
	json_decref(cfg);
	kv_close(kv);
	snprintf(url, sizeof(url), "redis://limited:pw@127.0.0.1:%d", port);
	cfg = json_pack("{s:s,s:{s:{s:s}}}", "storage_type", "Redis", "backends", "redis", "url",
	                url);
	assert_non_null(kv = kv_open(cfg, &err));
	struct kv_write w[] = {
	    {"reference_value", "ok1", "v1", 2, 1},
	    {"reference_value", "denied", "v2", 2, 1},
	};
	err_clear(&err);
	assert_int_equal(kv_set_batch(kv, w, 2, &err), -1);
	assert_non_null(strstr(err.msg, "refused the batch, nothing stored"));
	assert_non_null(strstr(err.msg, "NOPERM"));
	r = redisCommand(c, "EXISTS reference_value:ok1 reference_value:denied");
	assert_non_null(r);
	assert_int_equal(r->integer, 0);
	freeReplyObject(r);
	/* the same writes one by one keep the first: what the batch exists to prevent */
	assert_int_equal(kv_set(kv, "reference_value", "ok1", "v1", 2, 1, &err), 0);
	assert_int_equal(kv_set(kv, "reference_value", "denied", "v2", 2, 1, &err), -1);
	r = redisCommand(c, "EXISTS reference_value:ok1");
	assert_int_equal(r->integer, 1);
	freeReplyObject(r);
	/* an outage: nothing stored, ERR_UNAVAILABLE */
	tl_stop(pid);
	err_clear(&err);
	assert_int_equal(kv_set_batch(kv, w, 1, &err), -1);
	assert_int_equal(err.code, ERR_UNAVAILABLE);
	redisFree(c);
	kv_close(kv);
	json_decref(cfg);
}

/* kv_claim_set: the value is written only by the call that made the claim, with the TTL on
 * both keys on Redis (one atomic script there, two calls elsewhere). */
static void claim_contract(struct kv *kv)
{
	struct err err = {0};
	uint8_t *v = NULL;
	size_t len = 0;
	assert_int_equal(
	    kv_claim_set(kv, "kbs_protocol_nonce", KV_NS_SESSION, "s1", "won", 3, 300, &err), 0);
	assert_int_equal(
	    kv_claim_set(kv, "kbs_protocol_nonce", KV_NS_SESSION, "s1", "lost", 4, 300, &err), 1);
	assert_int_equal(kv_get(kv, KV_NS_SESSION, "s1", &v, &len, &err), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(v, "won", 3);
	free(v);
	assert_int_equal(kv_get(kv, "kbs_protocol_nonce", "s1", &v, &len, &err), 0);
	free(v);
	/* ttl 0: no expiry, still one winner */
	assert_int_equal(
	    kv_claim_set(kv, "kbs_protocol_nonce", KV_NS_SESSION, "s2", "x", 1, 0, &err), 0);
	assert_int_equal(
	    kv_claim_set(kv, "kbs_protocol_nonce", KV_NS_SESSION, "s2", "y", 1, 0, &err), 1);
}

static void test_kv_memory_claim_set(void **state)
{
	struct err err = {0};
	struct kv *kv = kv_open(NULL, &err);
	assert_non_null(kv);
	claim_contract(kv);
	kv_close(kv);
}

static void test_kv_redis_claim_set_is_one_step(void **state)
{
	int port = tl_free_port();
	char url[128];
	struct err err = {0};
	pid_t pid = tl_start_redis(port);

	unsetenv("REDIS_URL");
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
	json_t *cfg = json_pack("{s:s,s:{s:{s:s}}}", "storage_type", "Redis", "backends", "redis",
	                        "url", url);
	struct kv *kv = kv_open(cfg, &err);
	assert_non_null(kv);
	redisContext *c = redisConnect("127.0.0.1", port);
	assert_true(c != NULL && c->err == 0);
	freeReplyObject(redisCommand(c, "CONFIG RESETSTAT"));
	claim_contract(kv);
	/* four claims, four commands: each is one round trip (the SETs inside the script are
	 * counted too: 2 + 1 + 2 + 1) */
	redisReply *r = redisCommand(c, "INFO commandstats");
	assert_non_null(r);
	assert_non_null(strstr(r->str, "cmdstat_eval:calls=4,"));
	assert_non_null(strstr(r->str, "cmdstat_set:calls=6,"));
	freeReplyObject(r);
	for (int i = 0; i < 2; i++) {
		r = redisCommand(c, "TTL %s",
		                 i ? "kbs_protocol_nonce:s1" : "kbs_protocol_session:s1");
		assert_true(r->integer > 290 && r->integer <= 300);
		freeReplyObject(r);
	}
	r = redisCommand(c, "TTL kbs_protocol_session:s2");
	assert_int_equal(r->integer, -1);
	freeReplyObject(r);
	tl_stop(pid);
	err_clear(&err);
	assert_int_equal(
	    kv_claim_set(kv, "kbs_protocol_nonce", KV_NS_SESSION, "s3", "v", 1, 9, &err), -1);
	assert_int_equal(err.code, ERR_UNAVAILABLE);
	redisFree(c);
	kv_close(kv);
	json_decref(cfg);
}

static void test_kv_memory(void **state)
{
	struct err err = {0};
	struct kv *kv = kv_open(NULL, &err);
	assert_non_null(kv);
	assert_string_equal(kv_type_name(kv), "Memory");
	kv_contract(kv);
	kv_close(kv);
}

/* kv_peek answers from memory on Memory and says "unknown" (never a stale or invented value)
 * on a backend that would have to read its store. */
static void test_kv_peek_answers_only_without_a_round_trip(void **state)
{
	struct err err = {0};
	uint8_t *v;
	size_t n;
	struct kv *kv = kv_open(NULL, &err);
	assert_non_null(kv);
	assert_int_equal(kv_peek(kv, "repository", "a/b/c", &v, &n, &err), 1);
	assert_int_equal(kv_set(kv, "repository", "a/b/c", "one", 3, 1, &err), 0);
	assert_int_equal(kv_peek(kv, "repository", "a/b/c", &v, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(v, "one", 3);
	free(v);
	assert_int_equal(kv_peek(kv, "../x", "k", &v, &n, &err), -1);
	kv_close(kv);

	char dir[] = "/tmp/ctrustee-kvpeek-XXXXXX";
	assert_non_null(mkdtemp(dir));
	json_t *cfg = json_pack("{s:s,s:{s:{s:s}}}", "storage_type", "LocalFs", "backends",
	                        "local_fs", "dir_path", dir);
	kv = kv_open(cfg, &err);
	assert_non_null(kv);
	assert_int_equal(kv_set(kv, "repository", "a", "v", 1, 1, &err), 0);
	assert_int_equal(kv_peek(kv, "repository", "a", &v, &n, &err), KV_PEEK_UNKNOWN);
	assert_null(v);
	kv_close(kv);
	json_decref(cfg);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_kv_local_fs_layout(void **state)
{
	char dir[] = "/tmp/ctrustee-kvfs-XXXXXX", path[256];
	struct err err = {0};
	assert_non_null(mkdtemp(dir));
	json_t *cfg = json_pack("{s:s,s:{s:{s:s}}}", "storage_type", "LocalFs", "backends",
	                        "local_fs", "dir_path", dir);
	struct kv *kv = kv_open(cfg, &err);
	assert_non_null(kv);
	kv_contract(kv);
	assert_int_equal(kv_set(kv, "repository", "r/t/g", "x", 1, 1, &err), 0);
	snprintf(path, sizeof(path), "%s/repository/r\\x2Ft\\x2Fg", dir);
	struct stat st;
	assert_int_equal(stat(path, &st), 0); /* Trustee's file naming */
	assert_int_equal(kv_set(kv, "repository", "bad key!", "x", 1, 1, &err), -1);
	kv_close(kv);
	json_decref(cfg);
	tl_rm_rf(dir);
}

static void test_kv_local_json_layout(void **state)
{
	char dir[] = "/tmp/ctrustee-kvjs-XXXXXX", path[256];
	struct err err = {0};
	assert_non_null(mkdtemp(dir));
	json_t *cfg = json_pack("{s:s,s:{s:{s:s}}}", "storage_type", "local_json", "backends",
	                        "local_json", "file_dir_path", dir);
	struct kv *kv = kv_open(cfg, &err);
	assert_non_null(kv);
	kv_contract(kv);
	assert_int_equal(kv_set(kv, "kbs", "resource-policy.rego", "\xfb\xff", 2, 1, &err), 0);
	snprintf(path, sizeof(path), "%s/kbs", dir);
	json_t *doc = json_load_file(path, 0, NULL);
	assert_non_null(doc);
	/* values are URL-safe padded base64 */
	assert_string_equal(json_string_value(json_object_get(doc, "resource-policy.rego")),
	                    "-_8=");
	json_decref(doc);
	kv_close(kv);
	json_decref(cfg);
	tl_rm_rf(dir);
}

static void test_kv_redis_with_restart(void **state)
{
	int port = tl_free_port();
	char url[64];
	struct err err = {0};
	uint8_t *v;
	size_t n;
	pid_t pid = tl_start_redis(port);

	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
	unsetenv("REDIS_URL");
	json_t *cfg = json_pack("{s:s,s:{s:{s:s}}}", "storage_type", "Redis", "backends", "redis",
	                        "url", url);
	struct kv *kv = kv_open(cfg, &err);
	assert_non_null(kv);
	kv_contract(kv);
	/* TTL: the key disappears after its second (looked for every 50 ms) */
	long t0 = tl_now_ms();
	assert_int_equal(kv_set_ttl(kv, "kbs_protocol_session", "s1", "x", 1, 1, 1, &err), 0);
	assert_int_equal(kv_get(kv, "kbs_protocol_session", "s1", &v, &n, &err), 0);
	free(v);
	int got = 0;
	while ((got = kv_get(kv, "kbs_protocol_session", "s1", &v, &n, &err)) == 0 &&
	       tl_now_ms() - t0 < 5000) {
		free(v);
		usleep(50 * 1000);
	}
	assert_int_equal(got, 1);
	assert_true(tl_now_ms() - t0 >= 900);
	/* outage: a clear error, then recovery on its own once Redis is back */
	tl_stop(pid);
	assert_int_equal(kv_get(kv, "repository", "k", &v, &n, &err), -1);
	char want[96];
	snprintf(want, sizeof(want), "redis at 127.0.0.1:%d unavailable: ", port);
	assert_non_null(strstr(err.msg, want));
	pid = tl_start_redis(port);
	assert_int_equal(kv_set(kv, "repository", "k", "v", 1, 1, &err), 0);
	assert_int_equal(kv_get(kv, "repository", "k", &v, &n, &err), 0);
	free(v);
	kv_close(kv);
	json_decref(cfg);
	tl_stop(pid);
}

/* A restarted Redis answers LOADING while it reads its data set back; that is not a refusal:
 * the read waits for the data (up to the call's timeout) and gets the stored value. The
 * loading is slowed to ~1 s with Redis's key-load-delay (200 keys x 5 ms). */
static void test_kv_redis_read_waits_out_loading(void **state)
{
	char dir[] = "/tmp/ctrustee-kvload-XXXXXX", url[64], p[16], value[64];
	struct err err = {0};
	uint8_t *v;
	size_t n;
	int port = tl_free_port();
	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%d", port);
	char *first[] = {"redis-server", "--port", p,        "--bind", "127.0.0.1",
	                 "--dir",        dir,      "--save", "",       "--appendonly",
	                 "no",           NULL};
	pid_t pid = tl_spawn(first);
	tl_wait_port(port, "redis-server");
	redisContext *c = redisConnect("127.0.0.1", port);
	assert_true(c != NULL && c->err == 0);
	for (int i = 0; i < 200; i++) {
		snprintf(value, sizeof(value), "value %d of a data set that takes a while", i);
		freeReplyObject(redisCommand(c, "SET repository:k%d %s", i, value));
	}
	redisReply *r = redisCommand(c, "SAVE");
	assert_true(r != NULL && r->type == REDIS_REPLY_STATUS);
	freeReplyObject(r);
	redisFree(c);
	tl_stop(pid);
	char *again[] = {"redis-server",
	                 "--port",
	                 p,
	                 "--bind",
	                 "127.0.0.1",
	                 "--dir",
	                 dir,
	                 "--save",
	                 "",
	                 "--appendonly",
	                 "no",
	                 "--key-load-delay",
	                 "5000",
	                 "--loading-process-events-interval-bytes",
	                 "1024",
	                 NULL};
	pid = tl_spawn(again);
	tl_wait_port(port, "redis-server");
	c = redisConnect("127.0.0.1", port);
	r = redisCommand(c, "GET repository:k199");
	assert_true(r != NULL && r->type == REDIS_REPLY_ERROR &&
	            strncmp(r->str, "LOADING", 7) == 0);
	freeReplyObject(r);
	redisFree(c);

	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
	unsetenv("REDIS_URL");
	json_t *cfg = json_pack("{s:s,s:{s:{s:s}}}", "storage_type", "Redis", "backends", "redis",
	                        "url", url);
	struct kv *kv = kv_open(cfg, &err);
	assert_non_null(kv);
	int rc = kv_get(kv, "repository", "k199", &v, &n, &err);
	if (rc != 0)
		fail_msg("kv_get during loading: %d %s", rc, err.msg);
	assert_string_equal((char *)v, "value 199 of a data set that takes a while");
	free(v);
	kv_close(kv);
	json_decref(cfg);
	tl_stop(pid);
	tl_rm_rf(dir);
}

/* Pooled connections to the Redis on `port`: every client but this probe and the cache's
 * invalidation link (two connections named ctrustee-kvcache-*). */
static long long redis_clients(int port)
{
	redisContext *c = redisConnect("127.0.0.1", port);
	assert_true(c != NULL && c->err == 0);
	redisReply *r = redisCommand(c, "CLIENT LIST");
	assert_true(r != NULL && r->type == REDIS_REPLY_STRING);
	long long n = -1; /* this probe */
	for (const char *l = r->str; *l != '\0';) {
		size_t len = strcspn(l, "\n");
		if (len > 0 && memmem(l, len, "name=ctrustee-kvcache-", 22) == NULL)
			n++;
		l += len + (l[len] == '\n');
	}
	freeReplyObject(r);
	redisFree(c);
	return n;
}

struct reader {
	struct kv *kv;
	int rc;
};

static void *read_once(void *arg)
{
	struct reader *r = arg;
	struct err err = {0};
	uint8_t *v = NULL;
	size_t n;
	r->rc = kv_get(r->kv, "repository", "shared", &v, &n, &err);
	free(v);
	return NULL;
}

/* Callers run on their own connections, at most pool_size of them: with Redis stopped
 * (SIGSTOP) every reader holds its connection until Redis answers again. A failed connection
 * takes the idle ones with it, so a restart costs one retry, not one per connection. */
static void test_kv_redis_pool_bounds_concurrent_connections(void **state)
{
	int port = tl_free_port();
	char url[64];
	struct err err = {0};
	pid_t pid = tl_start_redis(port);
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
	unsetenv("REDIS_URL");
	json_t *bad = json_pack("{s:s,s:{s:{s:s,s:i}}}", "storage_type", "Redis", "backends",
	                        "redis", "url", url, "pool_size", 0);
	assert_null(kv_open(bad, &err));
	assert_non_null(strstr(err.msg, "pool_size"));
	json_decref(bad);
	json_t *cfg = json_pack("{s:s,s:{s:{s:s,s:i}}}", "storage_type", "Redis", "backends",
	                        "redis", "url", url, "pool_size", 4);
	struct kv *kv = kv_open(cfg, &err);
	assert_non_null(kv);
	assert_int_equal(kv_set(kv, "repository", "shared", "v", 1, 1, &err), 0);
	assert_int_equal(redis_clients(port), 1); /* one opened at start, reused */
	struct reader rd[6];
	pthread_t t[6];
	kill(pid, SIGSTOP);
	for (int i = 0; i < 6; i++) {
		rd[i] = (struct reader){kv, -2};
		assert_int_equal(pthread_create(&t[i], NULL, read_once, &rd[i]), 0);
	}
	usleep(500 * 1000); /* all six are waiting: four on Redis, two for a connection */
	kill(pid, SIGCONT);
	for (int i = 0; i < 6; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(rd[i].rc, 0);
	}
	assert_int_equal(redis_clients(port), 4);
	/* after a restart all four are dead: the first call still succeeds, on a new one */
	tl_stop(pid);
	pid = tl_start_redis(port);
	assert_int_equal(kv_set(kv, "repository", "shared", "w", 1, 1, &err), 0);
	assert_int_equal(redis_clients(port), 1);
	kv_close(kv);
	json_decref(cfg);
	tl_stop(pid);
}

/* A throwaway postgres: a copy of a data directory initdb'd once per run (initdb takes ~1.7 s,
 * the copy ~0.2 s, and five tests each want a fresh server), as the "postgres" user when the
 * tests run as root, which initdb refuses; started on 127.0.0.1:port with its socket in its
 * own temporary directory. The cmocka teardown stops it and removes the directory, also after
 * a failure; the group teardown removes the initdb'd template. */
struct pgsrv {
	char dir[64];
	char bindir[256];
	int port;
	pid_t pid;
};

static void pg_drop_root(void)
{
	if (geteuid() != 0)
		return;
	struct passwd *pw = getpwnam("postgres");
	if (pw == NULL || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
		_exit(125);
}

static pid_t pg_spawn(struct pgsrv *pg, const char *prog, char *const args[])
{
	char path[400], log[128];
	snprintf(path, sizeof(path), "%s/%s", pg->bindir, prog);
	snprintf(log, sizeof(log), "%s/log", pg->dir);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		pg_drop_root();
		if (freopen("/dev/null", "w", stdout) == NULL || freopen(log, "a", stderr) == NULL)
			_exit(126);
		execv(path, args);
		_exit(127);
	}
	return pid;
}

static void pg_start(struct pgsrv *pg)
{
	char data[128], port[16], conn[128];
	snprintf(data, sizeof(data), "%s/data", pg->dir);
	snprintf(port, sizeof(port), "%d", pg->port);
	char *argv[] = {"postgres", "-D",        data,
	                "-p",       port,        "-k",
	                pg->dir,    "-c",        "listen_addresses=127.0.0.1",
	                "-c",       "fsync=off", NULL};
	pg->pid = pg_spawn(pg, "postgres", argv);
	snprintf(conn, sizeof(conn), "host=127.0.0.1 port=%d dbname=postgres user=postgres",
	         pg->port);
	for (int i = 0; i < 200; i++) {
		if (PQping(conn) == PQPING_OK)
			return;
		usleep(50000);
	}
	fail_msg("postgres did not start (see %s/log)", pg->dir);
}

/* Fast shutdown (SIGINT): clients are disconnected, the data stays. */
static void pg_stop(struct pgsrv *pg)
{
	if (pg->pid > 0) {
		kill(pg->pid, SIGCONT);
		kill(pg->pid, SIGINT);
		waitpid(pg->pid, NULL, 0);
		pg->pid = 0;
	}
}

/* "/tmp/ctrustee-kvpg-XXXXXX" made and, as root, given to the postgres user */
static void pg_mkdir(char *dir)
{
	assert_non_null(mkdtemp(dir));
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam("postgres");
		assert_non_null(pw);
		assert_int_equal(chown(dir, pw->pw_uid, pw->pw_gid), 0);
	}
}

/* The initdb'd data directory every pg_setup copies: made by the first one, removed by
 * pg_group_teardown. */
static struct pgsrv pg_template;

static void pg_template_make(void)
{
	snprintf(pg_template.dir, sizeof(pg_template.dir), "/tmp/ctrustee-kvpg-XXXXXX");
	pg_mkdir(pg_template.dir);
	FILE *f = popen("pg_config --bindir", "r");
	assert_non_null(f);
	assert_non_null(fgets(pg_template.bindir, sizeof(pg_template.bindir), f));
	pclose(f);
	pg_template.bindir[strcspn(pg_template.bindir, "\n")] = '\0';
	char data[128];
	snprintf(data, sizeof(data), "%s/data", pg_template.dir);
	char *argv[] = {"initdb", "-D",        data, "-U",   "postgres", "-A",
	                "trust",  "--no-sync", "-E", "UTF8", NULL};
	int st = 0;
	waitpid(pg_spawn(&pg_template, "initdb", argv), &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("initdb failed (see %s/log)", pg_template.dir);
}

static int pg_setup(void **state)
{
	if (pg_template.bindir[0] == '\0')
		pg_template_make();
	struct pgsrv *pg = calloc(1, sizeof(*pg));
	assert_non_null(pg);
	*state = pg;
	snprintf(pg->dir, sizeof(pg->dir), "/tmp/ctrustee-kvpg-XXXXXX");
	pg_mkdir(pg->dir);
	memcpy(pg->bindir, pg_template.bindir, sizeof(pg->bindir));
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "cp -a '%s/data' '%s/data'", pg_template.dir, pg->dir);
	assert_int_equal(system(cmd), 0);
	pg->port = tl_free_port();
	pg_start(pg);
	return 0;
}

static int pg_teardown(void **state)
{
	struct pgsrv *pg = *state;
	if (pg != NULL) {
		pg_stop(pg);
		tl_rm_rf(pg->dir);
		free(pg);
	}
	return 0;
}

static int pg_group_teardown(void **state)
{
	if (pg_template.bindir[0] != '\0')
		tl_rm_rf(pg_template.dir);
	return 0;
}

static json_t *pg_cfg(const struct pgsrv *pg, int pool_size)
{
	unsetenv("POSTGRES_URL");
	return pool_size
	           ? json_pack("{s:s,s:{s:{s:s,s:i,s:s,s:s,s:i}}}", "storage_type", "Postgres",
	                       "backends", "postgres", "host", "127.0.0.1", "port", pg->port, "db",
	                       "postgres", "username", "postgres", "pool_size", pool_size)
	           : json_pack("{s:s,s:{s:{s:s,s:i,s:s,s:s}}}", "storage_type", "Postgres",
	                       "backends", "postgres", "host", "127.0.0.1", "port", pg->port, "db",
	                       "postgres", "username", "postgres");
}

/* A connection of our own, to look at the tables as Trustee (or an operator) would. */
static PGconn *pg_probe(const struct pgsrv *pg)
{
	char conn[128];
	snprintf(conn, sizeof(conn), "host=127.0.0.1 port=%d dbname=postgres user=postgres",
	         pg->port);
	PGconn *c = PQconnectdb(conn);
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	return c;
}

static void test_kv_postgres_with_restart(void **state)
{
	struct pgsrv *pg = *state;
	struct err err = {0};
	uint8_t *v;
	size_t n;
	json_t *cfg = pg_cfg(pg, 0);
	struct kv *kv = kv_open(cfg, &err);
	assert_non_null(kv);
	assert_string_equal(kv_type_name(kv), "Postgres");
	kv_contract(kv);
	/* no expiry is stored (Trustee's tables have no column for it): the value stays */
	assert_int_equal(kv_set_ttl(kv, "kbs_protocol_session", "s1", "x", 1, 1, 1, &err), 0);
	assert_int_equal(kv_get(kv, "kbs_protocol_session", "s1", &v, &n, &err), 0);
	free(v);
	/* outage: a clear error, then recovery on its own once the server is back */
	pg_stop(pg);
	memset(&err, 0, sizeof(err));
	assert_int_equal(kv_get(kv, "repository", "k", &v, &n, &err), -1);
	assert_int_equal(err.code, ERR_UNAVAILABLE);
	char want[96];
	snprintf(want, sizeof(want), "postgres at 127.0.0.1:%d unavailable: ", pg->port);
	assert_non_null(strstr(err.msg, want));
	pg_start(pg);
	assert_int_equal(kv_set(kv, "repository", "k", "v", 1, 1, &err), 0);
	assert_int_equal(kv_get(kv, "repository", "k", &v, &n, &err), 0);
	assert_memory_equal(v, "v", 1);
	free(v);
	kv_close(kv);
	json_decref(cfg);
}

/* Trustee's layout: a table per namespace, (value BYTEA, key TEXT PRIMARY KEY); a table its
 * Helm chart's init script made is read and written as it is, and ours reads the same to
 * Trustee's statements. */
static void test_kv_postgres_trustee_table_layout(void **state)
{
	struct pgsrv *pg = *state;
	struct err err = {0};
	uint8_t *v;
	size_t n;
	PGconn *c = pg_probe(pg);
	PGresult *r = PQexec(c, "CREATE TABLE IF NOT EXISTS kbs (value BYTEA, key TEXT PRIMARY "
	                        "KEY); INSERT INTO kbs (key, value) VALUES "
	                        "('resource-policy.rego', '\\xfbff00')");
	assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	json_t *cfg = pg_cfg(pg, 0);
	struct kv *kv = kv_open(cfg, &err);
	assert_non_null(kv);
	assert_int_equal(kv_get(kv, "kbs", "resource-policy.rego", &v, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(v, "\xfb\xff\x00", 3);
	free(v);
	assert_int_equal(kv_set(kv, "repository", "r/t/g", "\x01q", 2, 1, &err), 0);
	r = PQexec(c, "SELECT encode(value, 'hex'), pg_typeof(value)::text, pg_typeof(key)::text "
	              "FROM repository WHERE key = 'r/t/g'");
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	assert_int_equal(PQntuples(r), 1);
	assert_string_equal(PQgetvalue(r, 0, 0), "0171");
	assert_string_equal(PQgetvalue(r, 0, 1), "bytea");
	assert_string_equal(PQgetvalue(r, 0, 2), "text");
	PQclear(r);
	/* a key that would be SQL travels as a parameter; kv.c refuses it before that anyway */
	assert_int_equal(kv_set(kv, "repository", "x'; DROP TABLE repository; --", "v", 1, 1, &err),
	                 -1);
	assert_int_equal(kv_get(kv, "repository", "r/t/g", &v, &n, &err), 0);
	free(v);
	/* the table dropped under us (a recreated database) is made again */
	r = PQexec(c, "DROP TABLE repository");
	assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	assert_int_equal(kv_get(kv, "repository", "r/t/g", &v, &n, &err), 1);
	assert_int_equal(kv_set(kv, "repository", "r/t/g", "w", 1, 0, &err), 0);
	PQfinish(c);
	kv_close(kv);
	json_decref(cfg);
}

/* Against a real postgres: the batch contract, then a batch the server refuses midway (a
 * table whose CHECK refuses the second write): the first write, in another table, is rolled
 * back with it; the connection stays usable. */
static void test_kv_postgres_batch_is_all_or_none(void **state)
{
	struct pgsrv *pg = *state;
	struct err err = {0};
	PGconn *c = pg_probe(pg);
	PGresult *r = PQexec(c, "CREATE TABLE strict_ns (value BYTEA CHECK (length(value) < 3), "
	                        "key TEXT PRIMARY KEY)");
	assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	json_t *cfg = pg_cfg(pg, 1);
	struct kv *kv = kv_open(cfg, &err);
	assert_non_null(kv);
	kv_batch_contract(kv);
	struct kv_write w[] = {
	    {"reference_value", "first", "kept?", 5, 1},
	    {"strict_ns", "second", "too long", 8, 1},
	};
	assert_int_equal(kv_set_batch(kv, w, 2, &err), -1);
	assert_non_null(strstr(err.msg, "refused the statement"));
	r = PQexec(c, "SELECT count(*) FROM reference_value WHERE key = 'first'");
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	assert_string_equal(PQgetvalue(r, 0, 0), "0");
	PQclear(r);
	/* pool_size 1: the same connection, out of the failed transaction, writes again */
	w[1].val = "ok";
	w[1].len = 2;
	assert_int_equal(kv_set_batch(kv, w, 2, &err), 0);
	assert_value(kv, "reference_value", "first", "kept?");
	assert_value(kv, "strict_ns", "second", "ok");
	PQfinish(c);
	kv_close(kv);
	json_decref(cfg);
}

/* POSTGRES_URL wins over backends.postgres, as in Trustee. */
static void test_kv_postgres_url_from_environment_wins(void **state)
{
	struct pgsrv *pg = *state;
	struct err err = {0};
	char url[128];
	uint8_t *v;
	size_t n;
	json_t *cfg = json_pack("{s:s,s:{s:{s:s,s:i}}}", "storage_type", "postgres", "backends",
	                        "postgres", "host", "127.0.0.1", "port", 1);
	snprintf(url, sizeof(url), "postgresql://postgres@127.0.0.1:%d/postgres", pg->port);
	setenv("POSTGRES_URL", url, 1);
	struct kv *kv = kv_open(cfg, &err);
	unsetenv("POSTGRES_URL");
	assert_non_null(kv);
	assert_int_equal(kv_set(kv, "reference_value", "rv", "1", 1, 1, &err), 0);
	assert_int_equal(kv_get(kv, "reference_value", "rv", &v, &n, &err), 0);
	free(v);
	kv_close(kv);
	json_decref(cfg);
	cfg = json_pack("{s:s}", "storage_type", "Postgres");
	assert_null(kv_open(cfg, &err)); /* no backends.postgres and no POSTGRES_URL */
	assert_non_null(strstr(err.msg, "backends.postgres is required"));
	json_decref(cfg);
}

/* Our connections to the server, the probe's excluded. */
static long long pg_clients(const struct pgsrv *pg)
{
	PGconn *c = pg_probe(pg);
	PGresult *r =
	    PQexec(c, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ctrustee'");
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	long long n = atoll(PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
	return n;
}

/* As for Redis: callers run on their own connections, at most pool_size of them; with the
 * server stopped (SIGSTOP) every reader holds its connection until it answers again, within
 * the statement deadline. A failed connection takes the idle ones with it, so a restart
 * costs one retry, not one per connection. */
static void test_kv_postgres_pool_bounds_concurrent_connections(void **state)
{
	struct pgsrv *pg = *state;
	struct err err = {0};
	json_t *bad = json_pack("{s:s,s:{s:{s:s,s:i,s:i}}}", "storage_type", "Postgres", "backends",
	                        "postgres", "host", "127.0.0.1", "port", pg->port, "pool_size", 0);
	assert_null(kv_open(bad, &err));
	assert_non_null(strstr(err.msg, "pool_size"));
	json_decref(bad);
	json_t *cfg = pg_cfg(pg, 4);
	struct kv *kv = kv_open(cfg, &err);
	assert_non_null(kv);
	assert_int_equal(kv_set(kv, "repository", "shared", "v", 1, 1, &err), 0);
	assert_int_equal(pg_clients(pg), 1); /* one opened at start, reused */
	struct reader rd[6];
	pthread_t t[6];
	/* SIGSTOP the postmaster and every backend: the whole server stops answering */
	PGconn *c = pg_probe(pg);
	PGresult *r = PQexec(c, "SELECT pid FROM pg_stat_activity WHERE application_name = "
	                        "'ctrustee'");
	assert_int_equal(PQntuples(r), 1);
	pid_t backend = (pid_t)atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
	kill(pg->pid, SIGSTOP);
	kill(backend, SIGSTOP);
	for (int i = 0; i < 6; i++) {
		rd[i] = (struct reader){kv, -2};
		assert_int_equal(pthread_create(&t[i], NULL, read_once, &rd[i]), 0);
	}
	usleep(500 *
	       1000); /* all six wait: one on its statement, three connecting, two for a slot */
	kill(backend, SIGCONT);
	kill(pg->pid, SIGCONT);
	for (int i = 0; i < 6; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(rd[i].rc, 0);
	}
	assert_int_equal(pg_clients(pg), 4);
	/* after a restart all four are dead: the first call still succeeds, on a new one */
	pg_stop(pg);
	pg_start(pg);
	assert_int_equal(kv_set(kv, "repository", "shared", "w", 1, 1, &err), 0);
	assert_int_equal(pg_clients(pg), 1);
	kv_close(kv);
	json_decref(cfg);
}

static void test_kv_refuses_unknown_backend(void **state)
{
	struct err err = {0};
	json_t *cfg = json_pack("{s:s}", "storage_type", "Postgresql");
	assert_null(kv_open(cfg, &err));
	assert_non_null(strstr(err.msg, "Postgresql"));
	json_decref(cfg);
	assert_true(kv_key_valid("default/key/read"));
	assert_false(kv_key_valid("a:b"));
	assert_false(kv_key_valid(""));
}

/* The table is the registry: every row names each slot kv.c calls without a NULL check, and
 * its storage_type and alias open that very row. */
static void test_kv_backend_rows_name_every_mandatory_slot(void **state)
{
	size_t rows = 0;
	for (const struct kv_backend *const *r = kv_backends; *r != NULL; r++, rows++) {
		const struct kv_backend *be = *r;
		assert_non_null(be->name);
		assert_non_null(be->alias);
		assert_non_null(be->open);
		assert_non_null(be->close);
		assert_non_null(be->set);
		assert_non_null(be->get);
		assert_non_null(be->take);
		assert_non_null(be->del);
		assert_non_null(be->list);
		for (const struct kv_backend *const *o = kv_backends; *o != *r; o++) {
			assert_string_not_equal((*o)->name, be->name);
			assert_string_not_equal((*o)->alias, be->alias);
		}
	}
	assert_int_equal(rows, 5); /* Memory, LocalFs, LocalJson, Redis, Postgres */
	/* by name and by alias, each row opens as itself (Redis connects lazily, so no server
	 * is needed: a refused first connection only logs) */
	char dir[] = "/tmp/ctrustee-kvrows-XXXXXX";
	assert_non_null(mkdtemp(dir));
	unsetenv("REDIS_URL");
	unsetenv("POSTGRES_URL");
	json_t *backends =
	    json_pack("{s:{s:s},s:{s:s},s:{s:s},s:{s:s,s:i}}", "local_fs", "dir_path", dir,
	              "local_json", "file_dir_path", dir, "redis", "url", "redis://127.0.0.1:1",
	              "postgres", "host", "127.0.0.1", "port", 1);
	for (const struct kv_backend *const *r = kv_backends; *r != NULL; r++) {
		const char *names[2] = {(*r)->name, (*r)->alias};
		for (int i = 0; i < 2; i++) {
			struct err err = {0};
			struct kv *kv = kv_open_type(names[i], backends, &err);
			assert_non_null(kv);
			assert_string_equal(kv_type_name(kv), (*r)->name);
			kv_close(kv);
		}
	}
	json_decref(backends);
	tl_rm_rf(dir);
}

/* An unknown storage_type opens nothing and says, in a sentence, which ones exist. */
static void test_kv_unknown_storage_type_is_refused_with_a_sentence(void **state)
{
	struct err err = {0};
	json_t *cfg = json_pack("{s:s}", "storage_type", "Cassandra");
	assert_null(kv_open(cfg, &err));
	assert_string_equal(
	    err.msg,
	    "storage_type \"Cassandra\" is not one of Memory, LocalFs, LocalJson, Redis, Postgres");
	json_decref(cfg);
	memset(&err, 0, sizeof(err));
	assert_null(kv_open_type("REDIS", NULL, &err)); /* names are exact, not case-folded */
	assert_non_null(strstr(err.msg, "\"REDIS\" is not one of"));
	memset(&err, 0, sizeof(err));
	cfg = json_pack("{s:i}", "storage_type", 3);
	assert_null(kv_open(cfg, &err));
	assert_string_equal(err.msg, "storage_type must be a string");
	json_decref(cfg);
}

/* A store that cannot be reached fails with ERR_UNAVAILABLE, so callers answer "retry";
 * a refusal of the input (a bad key) leaves the code 0. */
static void test_kv_unreachable_store_is_err_unavailable(void **state)
{
	struct err err = {0};
	uint8_t *v = NULL;
	size_t n;
	unsetenv("REDIS_URL");
	json_t *cfg = json_pack("{s:s,s:{s:{s:s}}}", "storage_type", "Redis", "backends", "redis",
	                        "url", "redis://127.0.0.1:1");
	struct kv *kv = kv_open(cfg, &err);
	assert_non_null(kv);
	memset(&err, 0, sizeof(err));
	assert_int_equal(kv_get(kv, "repository", "k", &v, &n, &err), -1);
	assert_int_equal(err.code, ERR_UNAVAILABLE);
	assert_non_null(strstr(err.msg, "redis at 127.0.0.1:1 unavailable: "));
	memset(&err, 0, sizeof(err));
	assert_int_equal(kv_set(kv, "repository", "a:b", "v", 1, 1, &err), -1);
	assert_int_equal(err.code, 0);
	kv_close(kv);
	json_decref(cfg);
	/* the same for Postgres */
	unsetenv("POSTGRES_URL");
	cfg = json_pack("{s:s,s:{s:{s:s,s:i}}}", "storage_type", "Postgres", "backends", "postgres",
	                "host", "127.0.0.1", "port", 1);
	kv = kv_open(cfg, &err);
	assert_non_null(kv);
	memset(&err, 0, sizeof(err));
	assert_int_equal(kv_get(kv, "repository", "k", &v, &n, &err), -1);
	assert_int_equal(err.code, ERR_UNAVAILABLE);
	assert_non_null(strstr(err.msg, "postgres at 127.0.0.1:1 unavailable: "));
	memset(&err, 0, sizeof(err));
	assert_int_equal(kv_set(kv, "repository", "a:b", "v", 1, 1, &err), -1);
	assert_int_equal(err.code, 0);
	kv_close(kv);
	json_decref(cfg);
}

/* local_json: a take whose rewrite of the namespace document fails returns -1, hands out no
 * value and leaves the value stored (it was not taken). The rewrite is made to fail by a
 * directory where its temporary file would go, which stops root as well. */
static void test_kv_local_json_failed_take_keeps_the_value(void **state)
{
	char dir[] = "/tmp/ctrustee-kvtake-XXXXXX", block[256];
	struct err err = {0};
	uint8_t *v = (uint8_t *)"unset";
	size_t n = 7;
	assert_non_null(mkdtemp(dir));
	json_t *cfg = json_pack("{s:s,s:{s:{s:s}}}", "storage_type", "LocalJson", "backends",
	                        "local_json", "file_dir_path", dir);
	struct kv *kv = kv_open(cfg, &err);
	assert_non_null(kv);
	assert_int_equal(kv_set(kv, "kbs", "once", "secret", 6, 1, &err), 0);
	snprintf(block, sizeof(block), "%s/kbs.tmp.%d", dir, (int)getpid());
	assert_int_equal(mkdir(block, 0700), 0);
	assert_int_equal(kv_take(kv, "kbs", "once", &v, &n, &err), -1);
	assert_null(v);
	assert_non_null(strstr(err.msg, "cannot write"));
	assert_int_equal(rmdir(block), 0);
	assert_int_equal(kv_take(kv, "kbs", "once", &v, &n, &err), 0);
	assert_memory_equal(v, "secret", 6);
	free(v);
	assert_int_equal(kv_get(kv, "kbs", "once", &v, &n, &err), 1);
	kv_close(kv);
	json_decref(cfg);
	tl_rm_rf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kv_memory),
	    cmocka_unit_test(test_kv_peek_answers_only_without_a_round_trip),
	    cmocka_unit_test(test_kv_memory_batch_is_all_or_none),
	    cmocka_unit_test(test_kv_file_backends_refuse_a_batch),
	    cmocka_unit_test(test_kv_redis_batch_is_all_or_none),
	    cmocka_unit_test(test_kv_memory_claim_set),
	    cmocka_unit_test(test_kv_redis_claim_set_is_one_step),
	    cmocka_unit_test_setup_teardown(test_kv_postgres_batch_is_all_or_none, pg_setup,
	                                    pg_teardown),
	    cmocka_unit_test(test_kv_local_fs_layout),
	    cmocka_unit_test(test_kv_local_json_layout),
	    cmocka_unit_test(test_kv_redis_with_restart),
	    cmocka_unit_test(test_kv_redis_read_waits_out_loading),
	    cmocka_unit_test(test_kv_redis_pool_bounds_concurrent_connections),
	    cmocka_unit_test_setup_teardown(test_kv_postgres_with_restart, pg_setup, pg_teardown),
	    cmocka_unit_test_setup_teardown(test_kv_postgres_trustee_table_layout, pg_setup,
	                                    pg_teardown),
	    cmocka_unit_test_setup_teardown(test_kv_postgres_url_from_environment_wins, pg_setup,
	                                    pg_teardown),
	    cmocka_unit_test_setup_teardown(test_kv_postgres_pool_bounds_concurrent_connections,
	                                    pg_setup, pg_teardown),
	    cmocka_unit_test(test_kv_refuses_unknown_backend),
	    cmocka_unit_test(test_kv_backend_rows_name_every_mandatory_slot),
	    cmocka_unit_test(test_kv_unknown_storage_type_is_refused_with_a_sentence),
	    cmocka_unit_test(test_kv_unreachable_store_is_err_unavailable),
	    cmocka_unit_test(test_kv_local_json_failed_take_keeps_the_value),
	};
	return cmocka_run_group_tests(tests, NULL, pg_group_teardown);
}
