/*
 * common/kv: the key-value store's contract on every backend (memory, local_fs, local_json,
 * Redis), each backend's on-disk layout, and Redis against a real redis-server on a free port,
 * including a restart in the middle and the connection pool's bound.
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

#include "kv/kv.h"
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

static void test_kv_memory(void **state)
{
	struct err err = {0};
	struct kv *kv = kv_open(NULL, &err);
	assert_non_null(kv);
	assert_string_equal(kv_type_name(kv), "Memory");
	kv_contract(kv);
	kv_close(kv);
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
	/* TTL: the key disappears */
	assert_int_equal(kv_set_ttl(kv, "kbs_protocol_session", "s1", "x", 1, 1, 1, &err), 0);
	assert_int_equal(kv_get(kv, "kbs_protocol_session", "s1", &v, &n, &err), 0);
	free(v);
	sleep(2);
	assert_int_equal(kv_get(kv, "kbs_protocol_session", "s1", &v, &n, &err), 1);
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

/* Clients connected to the Redis on `port`, this probe's own connection excluded. */
static long long redis_clients(int port)
{
	redisContext *c = redisConnect("127.0.0.1", port);
	assert_true(c != NULL && c->err == 0);
	redisReply *r = redisCommand(c, "INFO clients");
	assert_non_null(r);
	const char *at = strstr(r->str, "connected_clients:");
	assert_non_null(at);
	long long n = atoll(at + strlen("connected_clients:")) - 1;
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kv_memory),
	    cmocka_unit_test(test_kv_local_fs_layout),
	    cmocka_unit_test(test_kv_local_json_layout),
	    cmocka_unit_test(test_kv_redis_with_restart),
	    cmocka_unit_test(test_kv_redis_pool_bounds_concurrent_connections),
	    cmocka_unit_test(test_kv_refuses_unknown_backend),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
