/*
 * test_grpcx: the gRPC layer end to end inside one process — a grpcx server on a free
 * loopback port and grpcx clients calling it: unary echo, concurrency, status codes,
 * deadlines, the health service, message sizes, dead peers and peer restarts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "grpcx.h"
#include "health.pb-c.h"
#include "testcert.h"
#include "testlib.h"

#define ECHO "/test.Echo/Echo"
#define SLOW "/test.Echo/Slow"
#define FAIL "/test.Echo/Fail"

static int echo(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp, size_t *resp_len,
                struct err *err)
{
	*resp = malloc(req_len + 1);
	if (req_len)
		memcpy(*resp, req, req_len);
	*resp_len = req_len;
	return GRPCX_OK;
}

/* Sleeps the number of milliseconds given as the request text, then echoes. */
static int slow(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp, size_t *resp_len,
                struct err *err)
{
	char buf[32] = {0};
	memcpy(buf, req, req_len < sizeof(buf) - 1 ? req_len : sizeof(buf) - 1);
	usleep((useconds_t)atoi(buf) * 1000);
	return echo(ctx, req, req_len, resp, resp_len, err);
}

static int fail_handler(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp,
                        size_t *resp_len, struct err *err)
{
	err_set(err, "Register reference value: it went wrong");
	return GRPCX_ABORTED;
}

struct fixture {
	struct grpcx_server *s;
	struct grpcx_client *c;
	int port;
};

static struct grpcx_server *start_server(const char *addr, struct err *e)
{
	struct grpcx_server *s = grpcx_server_new(addr, 4, e);
	if (s == NULL)
		return NULL;
	grpcx_server_add(s, ECHO, echo, NULL);
	grpcx_server_add(s, SLOW, slow, NULL);
	grpcx_server_add(s, FAIL, fail_handler, NULL);
	grpcx_server_set_serving(s, "test.Echo", 1);
	grpcx_server_set_serving(s, "test.Down", 0);
	if (grpcx_server_start(s, e) < 0) {
		grpcx_server_free(s);
		return NULL;
	}
	return s;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct err e;
	char target[64];

	f->s = start_server("127.0.0.1:0", &e);
	if (f->s == NULL) {
		fprintf(stderr, "server: %s\n", e.msg);
		free(f);
		return -1;
	}
	f->port = grpcx_server_port(f->s);
	snprintf(target, sizeof(target), "http://127.0.0.1:%d", f->port);
	f->c = grpcx_client_new(target, &e);
	if (f->c == NULL) {
		grpcx_server_free(f->s);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	grpcx_client_free(f->c);
	grpcx_server_shutdown(f->s);
	grpcx_server_free(f->s);
	free(f);
	return 0;
}

static void test_server_listens_on_a_picked_port(void **state)
{
	struct fixture *f = *state;
	assert_true(f->port > 0);
}

static void test_unary_echo_returns_the_request_bytes(void **state)
{
	struct fixture *f = *state;
	struct err e;
	uint8_t *resp;
	size_t n;
	const uint8_t msg[] = {0x0a, 0x03, 'a', 0x00, 'b'};

	assert_int_equal(grpcx_call(f->c, ECHO, msg, sizeof(msg), &resp, &n, 5000, &e), GRPCX_OK);
	assert_int_equal(n, sizeof(msg));
	assert_memory_equal(resp, msg, sizeof(msg));
	free(resp);
}

static void test_empty_message_round_trips(void **state)
{
	struct fixture *f = *state;
	struct err e;
	uint8_t *resp;
	size_t n = 99;

	assert_int_equal(grpcx_call(f->c, ECHO, (const uint8_t *)"", 0, &resp, &n, 5000, &e),
	                 GRPCX_OK);
	assert_non_null(resp);
	assert_int_equal(n, 0);
	free(resp);
}

static void test_large_message_round_trips(void **state)
{
	struct fixture *f = *state;
	struct err e;
	uint8_t *resp;
	size_t n, len = 20u * 1024 * 1024;
	uint8_t *big = malloc(len);

	for (size_t i = 0; i < len; i++)
		big[i] = (uint8_t)(i * 31 + 7);
	assert_int_equal(grpcx_call(f->c, ECHO, big, len, &resp, &n, 30000, &e), GRPCX_OK);
	assert_int_equal(n, len);
	assert_memory_equal(resp, big, len);
	free(resp);
	free(big);
}

static void test_handler_error_carries_status_and_message(void **state)
{
	struct fixture *f = *state;
	struct err e;
	uint8_t *resp;
	size_t n;

	assert_int_equal(grpcx_call(f->c, FAIL, (const uint8_t *)"x", 1, &resp, &n, 5000, &e),
	                 GRPCX_ABORTED);
	assert_null(resp);
	assert_string_equal(e.msg, "Register reference value: it went wrong");
}

static void test_unknown_method_is_unimplemented(void **state)
{
	struct fixture *f = *state;
	struct err e;
	uint8_t *resp;
	size_t n;

	assert_int_equal(
	    grpcx_call(f->c, "/test.Echo/Nope", (const uint8_t *)"x", 1, &resp, &n, 5000, &e),
	    GRPCX_UNIMPLEMENTED);
	assert_non_null(strstr(e.msg, "/test.Echo/Nope"));
	/* and the server keeps serving */
	assert_int_equal(grpcx_call(f->c, ECHO, (const uint8_t *)"y", 1, &resp, &n, 5000, &e),
	                 GRPCX_OK);
	free(resp);
}

static void test_deadline_exceeded_returns_in_time(void **state)
{
	struct fixture *f = *state;
	struct err e;
	uint8_t *resp;
	size_t n;
	long t0 = tl_now_ms();

	assert_int_equal(grpcx_call(f->c, SLOW, (const uint8_t *)"1000", 4, &resp, &n, 150, &e),
	                 GRPCX_DEADLINE_EXCEEDED);
	assert_true(tl_now_ms() - t0 < 800);
	/* the handler itself runs to its end: let it free its worker for the next tests */
	usleep(1000 * 1000);
}

struct conc_arg {
	struct grpcx_client *c;
	int id, ok;
};

static void *conc_thread(void *p)
{
	struct conc_arg *a = p;
	for (int i = 0; i < 50; i++) {
		char msg[64];
		uint8_t *resp;
		size_t n;
		struct err e;
		int len = snprintf(msg, sizeof(msg), "thread %d call %d", a->id, i);

		if (grpcx_call(a->c, ECHO, (uint8_t *)msg, (size_t)len, &resp, &n, 10000, &e) ==
		        GRPCX_OK &&
		    n == (size_t)len && memcmp(resp, msg, n) == 0)
			a->ok++;
		free(resp);
	}
	return NULL;
}

static void test_concurrent_calls_from_many_threads(void **state)
{
	struct fixture *f = *state;
	pthread_t th[8];
	struct conc_arg a[8];

	for (int i = 0; i < 8; i++) {
		a[i].c = f->c;
		a[i].id = i;
		a[i].ok = 0;
		pthread_create(&th[i], NULL, conc_thread, &a[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(a[i].ok, 50);
	}
}

struct slow_arg {
	struct grpcx_client *c;
	int status;
};

static void *slow_thread(void *p)
{
	struct slow_arg *a = p;
	uint8_t *resp;
	size_t n;
	struct err e;

	a->status = grpcx_call(a->c, SLOW, (const uint8_t *)"1500", 4, &resp, &n, 5000, &e);
	free(resp);
	return NULL;
}

static void test_slow_handlers_do_not_block_other_calls(void **state)
{
	struct fixture *f = *state;
	pthread_t th[3];
	struct slow_arg a[3];
	uint8_t *resp;
	size_t n;
	struct err e;
	long t0;

	for (int i = 0; i < 3; i++) {
		a[i].c = f->c;
		pthread_create(&th[i], NULL, slow_thread, &a[i]);
	}
	usleep(100 * 1000);
	t0 = tl_now_ms();
	for (int i = 0; i < 10; i++) {
		assert_int_equal(
		    grpcx_call(f->c, ECHO, (const uint8_t *)"q", 1, &resp, &n, 5000, &e), GRPCX_OK);
		free(resp);
	}
	assert_true(tl_now_ms() - t0 < 1000);
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(a[i].status, GRPCX_OK);
	}
}

/* Workers beyond the running cap (2 per CPU, common/grpcx.c) are for calls that block: with
 * 39 of 40 workers in slow calls, quick calls still get the idle one within the stall time,
 * not after the slow calls end (on up to 19 CPUs the cap is below 39, so this goes through
 * the stall timer). */
static void test_calls_behind_blocked_workers_get_an_idle_one(void **state)
{
	enum { WORKERS = 40, SLOW_CALLS = WORKERS - 1 };
	struct grpcx_server *s;
	struct grpcx_client *c;
	pthread_t th[SLOW_CALLS];
	struct slow_arg a[SLOW_CALLS];
	char target[64];
	uint8_t *resp;
	size_t n;
	struct err e;
	long t0;

	(void)state;
	s = grpcx_server_new("127.0.0.1:0", WORKERS, &e);
	assert_non_null(s);
	grpcx_server_add(s, ECHO, echo, NULL);
	grpcx_server_add(s, SLOW, slow, NULL);
	assert_int_equal(grpcx_server_start(s, &e), 0);
	snprintf(target, sizeof(target), "http://127.0.0.1:%d", grpcx_server_port(s));
	c = grpcx_client_new(target, &e);
	assert_non_null(c);
	for (int i = 0; i < SLOW_CALLS; i++) {
		a[i].c = c;
		pthread_create(&th[i], NULL, slow_thread, &a[i]);
	}
	usleep(300 * 1000); /* every slow call holds its worker */
	t0 = tl_now_ms();
	for (int i = 0; i < 10; i++) {
		assert_int_equal(grpcx_call(c, ECHO, (const uint8_t *)"q", 1, &resp, &n, 5000, &e),
		                 GRPCX_OK);
		free(resp);
	}
	assert_true(tl_now_ms() - t0 < 800); /* the slow calls take 1500 ms */
	for (int i = 0; i < SLOW_CALLS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(a[i].status, GRPCX_OK);
	}
	grpcx_client_free(c);
	grpcx_server_shutdown(s);
	grpcx_server_free(s);
}

static int health(struct grpcx_client *c, const char *service, int *serving, struct err *e)
{
	Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	Grpc__Health__V1__HealthCheckResponse *out;
	uint8_t buf[256], *resp;
	size_t n, len;
	int st;

	req.service = (char *)service;
	len = grpc__health__v1__health_check_request__pack(&req, buf);
	st = grpcx_call(c, "/grpc.health.v1.Health/Check", buf, len, &resp, &n, 5000, e);
	if (st != GRPCX_OK)
		return st;
	out = grpc__health__v1__health_check_response__unpack(NULL, n, resp);
	free(resp);
	if (out == NULL)
		return -1;
	*serving = out->status;
	grpc__health__v1__health_check_response__free_unpacked(out, NULL);
	return st;
}

static void test_health_check_reports_serving_status(void **state)
{
	struct fixture *f = *state;
	struct err e;
	int st = -1;

	assert_int_equal(health(f->c, "", &st, &e), GRPCX_OK);
	assert_int_equal(st, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
	assert_int_equal(health(f->c, "test.Echo", &st, &e), GRPCX_OK);
	assert_int_equal(st, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
	assert_int_equal(health(f->c, "test.Down", &st, &e), GRPCX_OK);
	assert_int_equal(st, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);
	assert_int_equal(health(f->c, "no.Such", &st, &e), GRPCX_NOT_FOUND);
	/* status changes are seen at once */
	grpcx_server_set_serving(f->s, "test.Down", 1);
	assert_int_equal(health(f->c, "test.Down", &st, &e), GRPCX_OK);
	assert_int_equal(st, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
	grpcx_server_set_serving(f->s, "test.Down", 0);
}

static void test_health_rejects_garbage_request(void **state)
{
	struct fixture *f = *state;
	struct err e;
	uint8_t *resp;
	size_t n;
	const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff};

	assert_int_equal(grpcx_call(f->c, "/grpc.health.v1.Health/Check", junk, sizeof(junk), &resp,
	                            &n, 5000, &e),
	                 GRPCX_INVALID_ARGUMENT);
}

static int dead_port(void)
{
	struct err e;
	struct grpcx_server *s = grpcx_server_new("127.0.0.1:0", 1, &e);
	int port = grpcx_server_port(s);
	grpcx_server_free(s); /* never started: the port is released */
	return port;
}

static void test_dead_peer_fails_fast_with_unavailable(void **state)
{
	struct err e;
	char target[64];
	struct grpcx_client *c;
	uint8_t *resp;
	size_t n;
	long t0;

	snprintf(target, sizeof(target), "127.0.0.1:%d", dead_port());
	c = grpcx_client_new(target, &e);
	assert_non_null(c);
	for (int i = 0; i < 3; i++) {
		t0 = tl_now_ms();
		assert_int_equal(grpcx_call(c, ECHO, (const uint8_t *)"x", 1, &resp, &n, 10000, &e),
		                 GRPCX_UNAVAILABLE);
		assert_true(tl_now_ms() - t0 < 2000);
	}
	grpcx_client_free(c);
}

static void test_client_reconnects_after_peer_restart(void **state)
{
	struct err e;
	char addr[64];
	struct grpcx_server *s;
	struct grpcx_client *c;
	uint8_t *resp;
	size_t n;
	int port, st = -1;

	s = start_server("127.0.0.1:0", &e);
	assert_non_null(s);
	port = grpcx_server_port(s);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	c = grpcx_client_new(addr, &e);
	assert_int_equal(grpcx_call(c, ECHO, (const uint8_t *)"a", 1, &resp, &n, 5000, &e),
	                 GRPCX_OK);
	free(resp);
	grpcx_server_shutdown(s);
	grpcx_server_free(s);

	/* during the outage: fast UNAVAILABLE, never a hang */
	long t0 = tl_now_ms();
	st = grpcx_call(c, ECHO, (const uint8_t *)"b", 1, &resp, &n, 10000, &e);
	assert_int_equal(st, GRPCX_UNAVAILABLE);
	assert_true(tl_now_ms() - t0 < 2000);

	s = start_server(addr, &e);
	assert_non_null(s);
	/* the next call (or one right after it) reaches the new server */
	for (int i = 0; i < 20; i++) {
		st = grpcx_call(c, ECHO, (const uint8_t *)"c", 1, &resp, &n, 5000, &e);
		free(resp);
		if (st == GRPCX_OK)
			break;
		usleep(100 * 1000);
	}
	assert_int_equal(st, GRPCX_OK);
	grpcx_client_free(c);
	grpcx_server_shutdown(s);
	grpcx_server_free(s);
}

static void test_second_server_on_a_taken_port_fails(void **state)
{
	struct fixture *f = *state;
	struct err e;
	char addr[64];

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", f->port);
	assert_null(grpcx_server_new(addr, 1, &e));
	assert_non_null(strstr(e.msg, addr));
}

static void test_shutdown_lets_running_calls_finish(void **state)
{
	struct err e;
	char addr[64];
	struct grpcx_server *s = start_server("127.0.0.1:0", &e);
	pthread_t th;
	struct slow_arg a;
	long t0;

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", grpcx_server_port(s));
	a.c = grpcx_client_new(addr, &e);
	pthread_create(&th, NULL, slow_thread, &a);
	usleep(200 * 1000);
	t0 = tl_now_ms();
	grpcx_server_shutdown(s);
	grpcx_server_wait(s);
	pthread_join(th, NULL);
	assert_int_equal(a.status, GRPCX_OK);
	assert_true(tl_now_ms() - t0 < 3000);
	grpcx_server_free(s);
	grpcx_client_free(a.c);
}

/* A self-signed P-256 certificate for 127.0.0.1 / localhost; PEM texts malloc'd. */
static void make_cert(char **cert_pem, char **key_pem)
{
	tc_self_signed("localhost", "IP:127.0.0.1,DNS:localhost", cert_pem, key_pem);
}

static struct grpcx_server *start_tls_server(const char *cert, const char *key,
                                             const char *client_ca, char *addr, size_t addr_len)
{
	struct err e;
	struct grpcx_server *s = grpcx_server_new_tls("127.0.0.1:0", 2, cert, key, client_ca, &e);

	assert_non_null(s);
	grpcx_server_add(s, ECHO, echo, NULL);
	assert_int_equal(grpcx_server_start(s, &e), 0);
	snprintf(addr, addr_len, "127.0.0.1:%d", grpcx_server_port(s));
	return s;
}

static void test_tls_server_and_client(void **state)
{
	char *cert, *key, addr[64];
	struct grpcx_server *s;
	struct grpcx_client *c;
	struct err e;
	uint8_t *resp;
	size_t n;

	make_cert(&cert, &key);
	s = start_tls_server(cert, key, NULL, addr, sizeof(addr));
	c = grpcx_client_new_tls(addr, cert, NULL, NULL, &e);
	assert_non_null(c);
	assert_int_equal(grpcx_call(c, ECHO, (const uint8_t *)"tls", 3, &resp, &n, 5000, &e),
	                 GRPCX_OK);
	assert_int_equal(n, 3);
	assert_memory_equal(resp, "tls", 3);
	free(resp);
	grpcx_client_free(c);

	/* a plaintext client cannot talk to the TLS port */
	c = grpcx_client_new(addr, &e);
	assert_int_equal(grpcx_call(c, ECHO, (const uint8_t *)"x", 1, &resp, &n, 3000, &e),
	                 GRPCX_UNAVAILABLE);
	grpcx_client_free(c);
	grpcx_server_free(s);
	free(cert);
	free(key);
}

static void test_mutual_tls_requires_a_client_certificate(void **state)
{
	char *cert, *key, *ccert, *ckey, addr[64];
	struct grpcx_server *s;
	struct grpcx_client *c;
	struct err e;
	uint8_t *resp;
	size_t n;

	make_cert(&cert, &key);
	make_cert(&ccert, &ckey);
	s = start_tls_server(cert, key, ccert, addr, sizeof(addr));
	c = grpcx_client_new_tls(addr, cert, NULL, NULL, &e);
	assert_int_not_equal(grpcx_call(c, ECHO, (const uint8_t *)"x", 1, &resp, &n, 3000, &e),
	                     GRPCX_OK);
	grpcx_client_free(c);
	c = grpcx_client_new_tls(addr, cert, ccert, ckey, &e);
	assert_int_equal(grpcx_call(c, ECHO, (const uint8_t *)"m", 1, &resp, &n, 5000, &e),
	                 GRPCX_OK);
	free(resp);
	grpcx_client_free(c);
	grpcx_server_free(s);
	free(cert);
	free(key);
	free(ccert);
	free(ckey);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_server_listens_on_a_picked_port),
	    cmocka_unit_test(test_unary_echo_returns_the_request_bytes),
	    cmocka_unit_test(test_empty_message_round_trips),
	    cmocka_unit_test(test_large_message_round_trips),
	    cmocka_unit_test(test_handler_error_carries_status_and_message),
	    cmocka_unit_test(test_unknown_method_is_unimplemented),
	    cmocka_unit_test(test_deadline_exceeded_returns_in_time),
	    cmocka_unit_test(test_concurrent_calls_from_many_threads),
	    cmocka_unit_test(test_slow_handlers_do_not_block_other_calls),
	    cmocka_unit_test(test_calls_behind_blocked_workers_get_an_idle_one),
	    cmocka_unit_test(test_health_check_reports_serving_status),
	    cmocka_unit_test(test_health_rejects_garbage_request),
	    cmocka_unit_test(test_second_server_on_a_taken_port_fails),
	    cmocka_unit_test(test_dead_peer_fails_fast_with_unavailable),
	    cmocka_unit_test(test_client_reconnects_after_peer_restart),
	    cmocka_unit_test(test_shutdown_lets_running_calls_finish),
	    cmocka_unit_test(test_tls_server_and_client),
	    cmocka_unit_test(test_mutual_tls_requires_a_client_certificate),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
