/*
 * kv_loop (common/kv/redis_loop.c), the event loop's Redis client, against a real
 * redis-server: a Redis named by host name is looked up on the loop and then written and read;
 * each call is answered exactly once; a client freed while its name is still being asked of
 * the name servers answers the calls waiting on it and is not touched by the late answer
 * (ASan); a name that does not resolve fails its calls within their deadline, as an outage
 * worded as the blocking backend words it; an address of a name that fails at once is
 * passed over for the next.
 * The kbs's own paths over this client are in tests/integration/test_kbs_redis_loop.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <sched.h>
#include <sys/mount.h>

#include "kv/kv.h"
#include "kv/kv_loop.h"
#include "testlib.h"

/* What one call was answered. */
struct answer {
	int calls; /* callbacks so far: must end at exactly 1 */
	int rc;
	char val[64];
	int code;
	char msg[ERR_MSG_MAX];
};

static void on_set(void *arg, int rc, struct err *err)
{
	struct answer *a = arg;
	a->calls++;
	a->rc = rc;
	a->code = err ? err->code : 0;
	snprintf(a->msg, sizeof(a->msg), "%s", err ? err->msg : "");
}

static void on_get(void *arg, int rc, uint8_t **vals, size_t *lens, struct err *err)
{
	struct answer *a = arg;
	a->calls++;
	a->rc = rc;
	a->code = err ? err->code : 0;
	snprintf(a->msg, sizeof(a->msg), "%s", err ? err->msg : "");
	if (rc == 0 && vals[0]) {
		snprintf(a->val, sizeof(a->val), "%.*s", (int)lens[0], (const char *)vals[0]);
		free(vals[0]); /* the callback owns the values */
	}
}

static struct kv *redis_kv(const char *url)
{
	struct err e = {0};
	unsetenv("REDIS_URL");
	json_t *cfg = json_pack("{s:s,s:{s:{s:s}}}", "storage_type", "Redis", "backends", "redis",
	                        "url", url);
	struct kv *kv = kv_open(cfg, &e);
	json_decref(cfg);
	if (kv == NULL)
		fail_msg("kv_open %s: %s", url, e.msg);
	return kv;
}

/* A loop client on its own event base, for kv's store at url. */
struct client {
	struct kv *kv;
	struct event_base *b;
	struct kv_loop *l;
};

static void client_up(struct client *c, const char *url)
{
	struct err e = {0};
	c->kv = redis_kv(url);
	c->b = event_base_new();
	assert_non_null(c->b);
	c->l = kv_loop_new(c->kv, c->b, 8, &e);
	if (c->l == NULL)
		fail_msg("kv_loop_new %s: %s", url, e.msg);
}

/* l may have been freed already (NULL). */
static void client_down(struct client *c)
{
	kv_loop_free(c->l);
	kv_close(c->kv);
	event_base_free(c->b);
}

/* Runs b until a has been answered or ms passed. */
static void run_until(struct event_base *b, const struct answer *a, long ms)
{
	long until = tl_now_ms() + ms;
	while (a->calls == 0 && tl_now_ms() < until)
		event_base_loop(b, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

/* A few more turns of the loop, for any late or second callback to show itself. */
static void drain(struct event_base *b)
{
	long until = tl_now_ms() + 100;
	while (tl_now_ms() < until)
		event_base_loop(b, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

static void test_kv_loop_host_name(void **state)
{
	int port = tl_free_port();
	pid_t pid = tl_start_redis(port);
	char url[64];
	struct err e = {0};
	snprintf(url, sizeof(url), "redis://localhost:%d", port);
	struct client c;
	client_up(&c, url);
	struct kv *kv = c.kv;
	struct event_base *b = c.b;
	struct kv_loop *l = c.l;

	struct answer set = {0}, again = {0}, got = {0};
	assert_int_equal(kv_loop_set_ttl(l, "ns", "k", "v1", 2, 0, 60, on_set, &set, &e), 0);
	run_until(b, &set, 3000);
	assert_int_equal(set.calls, 1);
	assert_int_equal(set.rc, 0);
	/* NX: the second write of the key is not stored */
	assert_int_equal(kv_loop_set_ttl(l, "ns", "k", "v2", 2, 0, 60, on_set, &again, &e), 0);
	run_until(b, &again, 3000);
	assert_int_equal(again.rc, 1);
	const char *ns[] = {"ns"}, *keys[] = {"k"};
	assert_int_equal(kv_loop_get_each(l, ns, keys, 1, on_get, &got, &e), 0);
	run_until(b, &got, 3000);
	assert_int_equal(got.rc, 0);
	assert_string_equal(got.val, "v1");
	drain(b);
	assert_int_equal(set.calls + again.calls + got.calls, 3);

	/* and the blocking backend reads what the loop wrote */
	uint8_t *v = NULL;
	size_t n = 0;
	assert_int_equal(kv_get(kv, "ns", "k", &v, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(v, "v1", 2);
	free(v);
	client_down(&c);
	tl_stop(pid);
}

/* A name asked of the name servers (.invalid: nobody answers with an address). */
#define UNRESOLVED "redis://still-resolving.invalid:6379"

static void test_kv_loop_free_while_resolving(void **state)
{
	struct err e = {0};
	struct client c;
	client_up(&c, UNRESOLVED);
	struct kv_loop *l = c.l;
	struct answer a = {0}, g = {0};
	const char *ns[] = {"ns"}, *keys[] = {"k"};
	int rc = kv_loop_set_ttl(l, "ns", "k", "v", 1, 0, 60, on_set, &a, &e);
	if (rc < 0) { /* no name server at all: refused at once, and nothing is called back */
		assert_int_equal(e.code, ERR_UNAVAILABLE);
		kv_loop_free(l);
		assert_int_equal(a.calls, 0);
	} else {
		assert_int_equal(kv_loop_get_each(l, ns, keys, 1, on_get, &g, &e), 0);
		kv_loop_free(l);
		assert_int_equal(a.calls, 1);
		assert_int_equal(g.calls, 1);
		assert_int_equal(a.rc, -1);
		assert_int_equal(g.rc, -1);
		assert_int_equal(a.code, ERR_UNAVAILABLE);
	}
	drain(c.b); /* the cancelled query's late answer touches nothing freed */
	assert_true(a.calls <= 1 && g.calls <= 1);
	c.l = NULL; /* freed above */
	client_down(&c);
}

/* A name that does not resolve: an outage within the command's deadline, in the words the
 * blocking backend (the pool) uses for the same name when the name servers answer; when they
 * do not answer in time, the deadline's own sentence. */
static void test_kv_loop_name_does_not_resolve(void **state)
{
	struct err e = {0};
	struct client c;
	client_up(&c, UNRESOLVED);
	struct kv *kv = c.kv;
	struct event_base *b = c.b;
	struct kv_loop *l = c.l;
	struct answer a = {0};
	double t0 = tl_now_s();
	if (kv_loop_set_ttl(l, "ns", "k", "v", 1, 0, 60, on_set, &a, &e) < 0) {
		a.calls = 1;
		a.rc = -1;
		a.code = e.code;
		snprintf(a.msg, sizeof(a.msg), "%s", e.msg);
	}
	run_until(b, &a, 6000);
	double took = tl_now_s() - t0;
	drain(b);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.rc, -1);
	assert_int_equal(a.code, ERR_UNAVAILABLE);
	assert_true(took < 3.0); /* the command's 2 s deadline, whatever the name servers do */
	if (took < 1.5) {
		uint8_t *v = NULL;
		size_t n = 0;
		struct err pe = {0};
		assert_int_equal(kv_get(kv, "ns", "k", &v, &n, &pe), -1);
		assert_string_equal(a.msg, pe.msg);
	} else {
		assert_string_equal(a.msg, "redis at still-resolving.invalid:6379 unavailable: its "
		                           "host name did not resolve within 2 s");
	}
	client_down(&c);
}

/* The child of test_kv_loop_dead_address_skipped, in its own mount namespace where the name
 * "rhost" has two addresses, one of them unreachable at once (255.255.255.255: connect fails
 * with no route). Each connection is cut after its write, so the loop moves on to the next
 * address: every write must still be stored. 0, 77 no namespace here, else the failing step. */
static int dead_address_child(int port)
{
	char hosts[] = "/tmp/ctrustee-hosts-XXXXXX", url[64];
	int fd = mkstemp(hosts);
	const char *text = "255.255.255.255 rhost\n127.0.0.1 rhost\n";
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		return 2;
	close(fd);
	if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount(hosts, "/etc/hosts", NULL, MS_BIND, NULL) != 0) {
		unlink(hosts);
		return 77;
	}
	snprintf(url, sizeof(url), "redis://rhost:%d", port);
	struct err e = {0};
	unsetenv("REDIS_URL");
	json_t *cfg = json_pack("{s:s,s:{s:{s:s}}}", "storage_type", "Redis", "backends", "redis",
	                        "url", url);
	struct kv *kv = kv_open(cfg, &e);
	json_decref(cfg);
	struct event_base *b = event_base_new();
	struct kv_loop *l = kv ? kv_loop_new(kv, b, 8, &e) : NULL;
	redisContext *c = redisConnect("127.0.0.1", port);
	if (l == NULL || c == NULL || c->err)
		return 3;
	int rc = 0;
	for (int i = 0; i < 4 && rc == 0; i++) {
		struct answer a = {0};
		char key[16];
		snprintf(key, sizeof(key), "k%d", i);
		if (kv_loop_set_ttl(l, "ns", key, "v", 1, 1, 60, on_set, &a, &e) != 0) {
			fprintf(stderr, "# write %d refused at once: %s\n", i, e.msg);
			rc = 10 + i;
			break;
		}
		run_until(b, &a, 5000);
		if (a.calls != 1 || a.rc != 0) {
			fprintf(stderr, "# write %d: %d answers, rc %d: %s\n", i, a.calls, a.rc,
			        a.msg);
			rc = 20 + i;
		}
		redisReply *r = redisCommand(c, "CLIENT KILL TYPE normal SKIPME yes");
		freeReplyObject(r);
		drain(b);
	}
	kv_loop_free(l);
	kv_close(kv);
	event_base_free(b);
	redisFree(c);
	umount("/etc/hosts");
	unlink(hosts);
	return rc;
}

/* A host name with an address that fails at once among its addresses: the loop tries the
 * next one then and there, rather than failing every call on the dead address. */
static void test_kv_loop_dead_address_skipped(void **state)
{
	int port = tl_free_port();
	pid_t redis = tl_start_redis(port), pid = fork();
	int status = 0;
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(dead_address_child(port));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	tl_stop(redis);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		skip(); /* no mount namespace for this process (not root) */
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kv_loop_host_name),
	    cmocka_unit_test(test_kv_loop_free_while_resolving),
	    cmocka_unit_test(test_kv_loop_name_does_not_resolve),
	    cmocka_unit_test(test_kv_loop_dead_address_skipped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
