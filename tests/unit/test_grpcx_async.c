/*
 * The loop-driven gRPC client (common/grpcx_async.c) against our gRPC server (grpcx.c, a real
 * listening server in this process): answers, statuses, many streams on one loop, deadlines,
 * a server that goes away and comes back on the same port, the budget, the bearer, what
 * grpcx_async_new refuses, and that an outcome is never delivered inside grpcx_async_call.
 * Host names are resolved on the loop: localhost (from /etc/hosts) answers, a name that does
 * not resolve fails with UNAVAILABLE naming it, and a client freed mid-resolve answers its call.
 * TLS on the loop against our TLS server: answers (many streams, a large message), a wrong CA,
 * a certificate for another name, mutual TLS with and without a client certificate, and a
 * plaintext server, each refused with the blocking client's sentence.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "grpcx.h"
#include "testcert.h"

#define ECHO "/test.Echo/Echo"
#define SLOW "/test.Echo/Slow"
#define DENY "/test.Echo/Deny"
#define WHO "/test.Echo/Who"

static int echo(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp, size_t *resp_len,
                struct err *err)
{
	*resp = malloc(req_len + 1);
	if (req_len)
		memcpy(*resp, req, req_len);
	*resp_len = req_len;
	return GRPCX_OK;
}

static int slow(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp, size_t *resp_len,
                struct err *err)
{
	usleep(400 * 1000);
	return echo(ctx, req, req_len, resp, resp_len, err);
}

static int deny(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp, size_t *resp_len,
                struct err *err)
{
	err_set(err, "not for you: %.*s", (int)req_len, (const char *)req);
	return GRPCX_PERMISSION_DENIED;
}

/* The authorization metadata the call carried, as the answer. */
static int who(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp, size_t *resp_len,
               struct err *err)
{
	char v[256];
	int n = grpcx_request_metadata("authorization", v, sizeof(v));
	if (n < 0)
		n = snprintf(v, sizeof(v), "none");
	*resp = (uint8_t *)strdup(v);
	*resp_len = (size_t)n;
	return GRPCX_OK;
}

static struct grpcx_server *server_on(const char *addr)
{
	struct err e = {0};
	struct grpcx_server *s = grpcx_server_new(addr, 4, &e);

	if (s == NULL)
		return NULL;
	grpcx_server_add(s, ECHO, echo, NULL);
	grpcx_server_add(s, SLOW, slow, NULL);
	grpcx_server_add(s, DENY, deny, NULL);
	grpcx_server_add(s, WHO, who, NULL);
	if (grpcx_server_start(s, &e) < 0) {
		grpcx_server_free(s);
		return NULL;
	}
	return s;
}

static void server_stop(struct grpcx_server *s)
{
	grpcx_server_shutdown(s);
	grpcx_server_free(s);
}

/* One call's outcome as the callback saw it. */
struct outcome {
	int done;
	int status;
	char msg[ERR_MSG_MAX];
	char resp[256];
	size_t resp_len;
	long ms; /* from start to the callback */
	long started;
};

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_done(void *arg, int status, uint8_t *resp, size_t resp_len, struct err *err)
{
	struct outcome *o = arg;

	o->done++;
	o->status = status;
	o->ms = now_ms() - o->started;
	snprintf(o->msg, sizeof(o->msg), "%s", err->msg);
	if (resp != NULL) {
		assert_int_equal(status, GRPCX_OK);
		o->resp_len = resp_len;
		snprintf(o->resp, sizeof(o->resp), "%.*s", (int)resp_len, (const char *)resp);
		free(resp);
	} else {
		assert_int_not_equal(status, GRPCX_OK);
	}
}

static int call(struct grpcx_async *c, const char *method, const char *msg, int timeout_ms,
                struct outcome *o)
{
	struct err e = {0};
	o->started = now_ms();
	return grpcx_async_call(c, method, (const uint8_t *)msg, strlen(msg), timeout_ms, on_done,
	                        o, &e);
}

/* Runs the loop until n outcomes are in (or 10 s pass). */
static void run_until(struct event_base *b, struct outcome *o, int n)
{
	long until = now_ms() + 10000;
	for (;;) {
		int done = 0;
		for (int i = 0; i < n; i++)
			done += o[i].done;
		if (done >= n || now_ms() > until)
			break;
		event_base_loop(b, EVLOOP_ONCE);
	}
	for (int i = 0; i < n; i++)
		assert_int_equal(o[i].done, 1);
}

struct fixture {
	struct grpcx_server *s;
	struct event_base *b;
	struct grpcx_async *c;
	char target[64];
	int port;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct err e = {0};

	if (f == NULL || (f->s = server_on("127.0.0.1:0")) == NULL) {
		free(f);
		return -1;
	}
	f->port = grpcx_server_port(f->s);
	snprintf(f->target, sizeof(f->target), "127.0.0.1:%d", f->port);
	f->b = event_base_new();
	f->c = f->b ? grpcx_async_new(f->b, f->target, GRPCX_ASYNC_MAX, &e) : NULL;
	*state = f;
	return f->c != NULL ? 0 : -1;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	grpcx_async_free(f->c);
	if (f->b)
		event_base_free(f->b);
	if (f->s)
		server_stop(f->s);
	free(f);
	return 0;
}

static void test_async_echo_answers(void **state)
{
	struct fixture *f = *state;
	struct outcome o = {0};

	assert_int_equal(call(f->c, ECHO, "hello", 5000, &o), 0);
	run_until(f->b, &o, 1);
	assert_int_equal(o.status, GRPCX_OK);
	assert_string_equal(o.resp, "hello");
}

static void test_async_outcome_never_inside_the_call(void **state)
{
	struct fixture *f = *state;
	struct outcome o = {0};
	struct grpcx_async *c;
	struct err e = {0};
	char t[64];
	int dead;

	/* a port nobody listens on: the connect fails, later */
	struct grpcx_server *s = server_on("127.0.0.1:0");
	dead = grpcx_server_port(s);
	server_stop(s);
	snprintf(t, sizeof(t), "http://127.0.0.1:%d", dead);
	c = grpcx_async_new(f->b, t, 4, &e);
	assert_non_null(c);
	assert_int_equal(call(c, ECHO, "x", 5000, &o), 0);
	assert_int_equal(o.done, 0);
	run_until(f->b, &o, 1);
	assert_int_equal(o.status, GRPCX_UNAVAILABLE);
	assert_non_null(strstr(o.msg, "The server is unavailable: cannot connect"));
	grpcx_async_free(c);
}

static void test_async_status_and_message(void **state)
{
	struct fixture *f = *state;
	struct outcome o = {0};

	assert_int_equal(call(f->c, DENY, "abc", 5000, &o), 0);
	run_until(f->b, &o, 1);
	assert_int_equal(o.status, GRPCX_PERMISSION_DENIED);
	assert_string_equal(o.msg, "not for you: abc");
}

static void test_async_many_streams_on_one_loop(void **state)
{
	struct fixture *f = *state;
	enum { N = GRPCX_ASYNC_MAX };
	struct outcome *o = calloc(N, sizeof(*o));
	char msg[N][24];

	for (int i = 0; i < N; i++) {
		snprintf(msg[i], sizeof(msg[i]), "call %d", i);
		assert_int_equal(call(f->c, i % 2 ? SLOW : ECHO, msg[i], 10000, &o[i]), 0);
	}
	long t0 = now_ms();
	run_until(f->b, o, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(o[i].status, GRPCX_OK);
		assert_string_equal(o[i].resp, msg[i]);
	}
	/* 48 slow calls of 400 ms on 4 workers: concurrent streams, not one after another */
	assert_true(now_ms() - t0 < 48 * 400);
	free(o);
}

static void test_async_deadline_then_the_link_still_serves(void **state)
{
	struct fixture *f = *state;
	struct outcome o[2] = {0};

	assert_int_equal(call(f->c, SLOW, "late", 100, &o[0]), 0);
	run_until(f->b, &o[0], 1);
	assert_int_equal(o[0].status, GRPCX_DEADLINE_EXCEEDED);
	assert_true(o[0].ms >= 90 && o[0].ms < 380);
	assert_int_equal(call(f->c, ECHO, "next", 5000, &o[1]), 0);
	run_until(f->b, &o[1], 1);
	assert_int_equal(o[1].status, GRPCX_OK);
	assert_string_equal(o[1].resp, "next");
}

static void test_async_server_gone_then_back(void **state)
{
	struct fixture *f = *state;
	struct outcome o[3] = {0};
	char addr[64];

	assert_int_equal(call(f->c, ECHO, "one", 5000, &o[0]), 0);
	run_until(f->b, &o[0], 1);
	assert_int_equal(o[0].status, GRPCX_OK);
	server_stop(f->s);
	f->s = NULL;
	assert_int_equal(call(f->c, ECHO, "two", 5000, &o[1]), 0);
	run_until(f->b, &o[1], 1);
	assert_int_equal(o[1].status, GRPCX_UNAVAILABLE);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", f->port);
	f->s = server_on(addr);
	assert_non_null(f->s);
	assert_int_equal(call(f->c, ECHO, "three", 5000, &o[2]), 0);
	run_until(f->b, &o[2], 1);
	assert_int_equal(o[2].status, GRPCX_OK);
	assert_string_equal(o[2].resp, "three");
}

static void test_async_budget_refuses_without_callback(void **state)
{
	struct fixture *f = *state;
	struct outcome o[3] = {0};
	struct err e = {0};
	struct grpcx_async *c = grpcx_async_new(f->b, f->target, 2, &e);

	assert_non_null(c);
	assert_int_equal(call(c, ECHO, "a", 5000, &o[0]), 0);
	assert_int_equal(grpcx_async_full(c), 0);
	assert_int_equal(call(c, ECHO, "b", 5000, &o[1]), 0);
	assert_int_equal(grpcx_async_full(c), 1);
	assert_int_equal(call(c, ECHO, "c", 5000, &o[2]), -1);
	run_until(f->b, o, 2);
	assert_int_equal(o[2].done, 0);
	assert_int_equal(grpcx_async_full(c), 0);
	grpcx_async_free(c);
}

static void test_async_sends_the_bearer(void **state)
{
	struct fixture *f = *state;
	struct outcome o[2] = {0};
	struct err e = {0};

	assert_int_equal(call(f->c, WHO, "", 5000, &o[0]), 0);
	run_until(f->b, &o[0], 1);
	assert_string_equal(o[0].resp, "none");
	assert_int_equal(grpcx_async_set_bearer(f->c, "tok123", &e), 0);
	assert_int_equal(call(f->c, WHO, "", 5000, &o[1]), 0);
	run_until(f->b, &o[1], 1);
	assert_string_equal(o[1].resp, "Bearer tok123");
}

/* The same server by name: localhost comes from /etc/hosts, through evdns on the loop. */
static void test_async_host_name_answers(void **state)
{
	struct fixture *f = *state;
	const char *forms[] = {"http://localhost:%d", "localhost:%d", "dns:///localhost:%d"};

	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		struct outcome o[2] = {0};
		struct err e = {0};
		struct grpcx_async *c;
		char t[64];

		snprintf(t, sizeof(t), forms[i], f->port);
		c = grpcx_async_new(f->b, t, 4, &e);
		assert_non_null(c);
		assert_int_equal(call(c, ECHO, "by name", 5000, &o[0]), 0);
		assert_int_equal(o[0].done, 0);
		run_until(f->b, &o[0], 1);
		assert_int_equal(o[0].status, GRPCX_OK);
		assert_string_equal(o[0].resp, "by name");
		assert_int_equal(call(c, ECHO, "again", 5000, &o[1]), 0);
		run_until(f->b, &o[1], 1);
		assert_string_equal(o[1].resp, "again");
		grpcx_async_free(c);
	}
}

/* A name that does not resolve: UNAVAILABLE naming the host, delivered later; the next call
 * within the second is refused from the remembered answer, not a new query. */
static void test_async_host_name_that_does_not_resolve(void **state)
{
	struct fixture *f = *state;
	struct outcome o[2] = {0};
	struct err e = {0};
	struct grpcx_async *c = grpcx_async_new(f->b, "http://no-such-host.invalid:50004", 4, &e);

	assert_non_null(c);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(call(c, ECHO, "x", 8000, &o[i]), 0);
		assert_int_equal(o[i].done, 0);
		run_until(f->b, &o[i], 1);
		assert_int_equal(o[i].status, GRPCX_UNAVAILABLE);
		assert_non_null(strstr(o[i].msg, "The server is unavailable: cannot resolve the "
		                                 "server's host name no-such-host.invalid"));
	}
	assert_true(o[1].ms < 50);
	grpcx_async_free(c);
}

/* By name, the server goes away and comes back: the failed connection makes the next one
 * look the name up again (after a second), and it is reached. */
static void test_async_host_name_server_gone_then_back(void **state)
{
	struct fixture *f = *state;
	struct outcome o[3] = {0};
	struct err e = {0};
	struct grpcx_async *c;
	char t[64], addr[64];

	snprintf(t, sizeof(t), "localhost:%d", f->port);
	c = grpcx_async_new(f->b, t, 4, &e);
	assert_non_null(c);
	assert_int_equal(call(c, ECHO, "one", 5000, &o[0]), 0);
	run_until(f->b, &o[0], 1);
	assert_int_equal(o[0].status, GRPCX_OK);
	server_stop(f->s);
	f->s = NULL;
	assert_int_equal(call(c, ECHO, "two", 5000, &o[1]), 0);
	run_until(f->b, &o[1], 1);
	assert_int_equal(o[1].status, GRPCX_UNAVAILABLE);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", f->port);
	f->s = server_on(addr);
	assert_non_null(f->s);
	usleep(1100 * 1000); /* past the resolve rate bound */
	assert_int_equal(call(c, ECHO, "three", 5000, &o[2]), 0);
	run_until(f->b, &o[2], 1);
	assert_int_equal(o[2].status, GRPCX_OK);
	assert_string_equal(o[2].resp, "three");
	grpcx_async_free(c);
}

/* Freed while its name is being asked of the name servers: the call is answered, and the
 * late answer of the cancelled query touches nothing freed (ASan). */
static void test_async_free_while_resolving(void **state)
{
	struct fixture *f = *state;
	struct outcome o = {0};
	struct err e = {0};
	struct grpcx_async *c = grpcx_async_new(f->b, "http://still-resolving.invalid:1", 4, &e);

	assert_non_null(c);
	assert_int_equal(call(c, ECHO, "x", 5000, &o), 0);
	grpcx_async_free(c);
	assert_int_equal(o.done, 1);
	assert_int_equal(o.status, GRPCX_UNAVAILABLE);
	for (int i = 0; i < 20; i++)
		event_base_loop(f->b, EVLOOP_NONBLOCK);
}

/* ---- TLS */

/* A self-signed P-256 certificate (a CA too) with subjectAltName san; PEM texts malloc'd. */
static void make_cert(const char *san, char **cert_pem, char **key_pem)
{
	tc_self_signed("test", san, cert_pem, key_pem);
}

/* A TLS server (its certificate for 127.0.0.1 and localhost), with client_ca: mutual TLS. */
struct tls_fixture {
	char *cert, *key;   /* the server's, also the CA clients trust */
	char *ccert, *ckey; /* a client certificate, its own CA */
	struct grpcx_server *s;
	struct event_base *b;
	int port;
};

static struct tls_fixture *tls_up(int mutual)
{
	struct tls_fixture *f = calloc(1, sizeof(*f));
	struct err e = {0};

	make_cert("IP:127.0.0.1,DNS:localhost", &f->cert, &f->key);
	make_cert("DNS:client.test", &f->ccert, &f->ckey);
	f->s =
	    grpcx_server_new_tls("127.0.0.1:0", 4, f->cert, f->key, mutual ? f->ccert : NULL, &e);
	assert_non_null(f->s);
	grpcx_server_add(f->s, ECHO, echo, NULL);
	grpcx_server_add(f->s, SLOW, slow, NULL);
	assert_int_equal(grpcx_server_start(f->s, &e), 0);
	f->port = grpcx_server_port(f->s);
	f->b = event_base_new();
	return f;
}

static void tls_down(struct tls_fixture *f)
{
	server_stop(f->s);
	event_base_free(f->b);
	free(f->cert);
	free(f->key);
	free(f->ccert);
	free(f->ckey);
	free(f);
}

/* One call on a new client of target: its outcome. */
static struct outcome tls_call_once(struct tls_fixture *f, const char *fmt, const char *ca,
                                    const char *cert, const char *key)
{
	struct outcome o = {0};
	struct err e = {0};
	struct grpcx_async *c;
	char t[64];

	snprintf(t, sizeof(t), fmt, f->port);
	c = grpcx_async_new_tls(f->b, t, ca, cert, key, 4, &e);
	assert_non_null(c);
	assert_int_equal(call(c, ECHO, "over tls", 5000, &o), 0);
	run_until(f->b, &o, 1);
	grpcx_async_free(c);
	return o;
}

static void test_async_tls_answers(void **state)
{
	struct tls_fixture *f = tls_up(0);
	enum { N = 48 };
	struct outcome *o = calloc(N + 1, sizeof(*o));
	struct err e = {0};
	char t[64], msg[N][24];
	struct grpcx_async *c;
	size_t big = 1 << 20;
	char *req = malloc(big + 1);

	for (int i = 0; i < 2; i++) {
		struct outcome one = tls_call_once(
		    f, i ? "https://localhost:%d" : "https://127.0.0.1:%d", f->cert, NULL, NULL);
		assert_int_equal(one.status, GRPCX_OK);
		assert_string_equal(one.resp, "over tls");
	}
	/* many streams, some slow, on one TLS connection; then 1 MiB each way */
	snprintf(t, sizeof(t), "https://127.0.0.1:%d", f->port);
	c = grpcx_async_new_tls(f->b, t, f->cert, NULL, NULL, GRPCX_ASYNC_MAX, &e);
	assert_non_null(c);
	for (int i = 0; i < N; i++) {
		snprintf(msg[i], sizeof(msg[i]), "tls call %d", i);
		assert_int_equal(call(c, i % 2 ? SLOW : ECHO, msg[i], 10000, &o[i]), 0);
	}
	run_until(f->b, o, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(o[i].status, GRPCX_OK);
		assert_string_equal(o[i].resp, msg[i]);
	}
	memset(req, 'z', big);
	req[big] = '\0';
	assert_int_equal(call(c, ECHO, req, 10000, &o[N]), 0);
	run_until(f->b, &o[N], 1);
	assert_int_equal(o[N].status, GRPCX_OK);
	assert_int_equal(o[N].resp_len, big);
	grpcx_async_free(c);
	free(req);
	free(o);
	tls_down(f);
}

static void test_async_tls_refusals_say_why(void **state)
{
	struct tls_fixture *f = tls_up(0);
	char *other, *okey, *wrong, *wkey;
	struct outcome o;

	make_cert("IP:127.0.0.1,DNS:localhost", &other, &okey);
	o = tls_call_once(f, "https://127.0.0.1:%d", other, NULL, NULL);
	assert_int_equal(o.status, GRPCX_UNAVAILABLE);
	assert_non_null(strstr(o.msg, "TLS connection failed: the server's certificate is "
	                              "refused"));
	/* the server's certificate names neither this IP nor this name */
	make_cert("DNS:elsewhere.test", &wrong, &wkey);
	server_stop(f->s);
	f->s = grpcx_server_new_tls("127.0.0.1:0", 2, wrong, wkey, NULL, &(struct err){0});
	grpcx_server_add(f->s, ECHO, echo, NULL);
	assert_int_equal(grpcx_server_start(f->s, &(struct err){0}), 0);
	f->port = grpcx_server_port(f->s);
	o = tls_call_once(f, "https://127.0.0.1:%d", wrong, NULL, NULL);
	assert_int_equal(o.status, GRPCX_UNAVAILABLE);
	assert_non_null(strstr(o.msg, "IP address mismatch"));
	o = tls_call_once(f, "https://localhost:%d", wrong, NULL, NULL);
	assert_non_null(strstr(o.msg, "hostname mismatch"));
	free(other);
	free(okey);
	free(wrong);
	free(wkey);
	tls_down(f);
}

static void test_async_mutual_tls(void **state)
{
	struct tls_fixture *f = tls_up(1);
	struct outcome o;

	o = tls_call_once(f, "https://127.0.0.1:%d", f->cert, NULL, NULL);
	assert_int_equal(o.status, GRPCX_UNAVAILABLE);
	assert_non_null(strstr(o.msg, "TLS connection failed: the server refused the TLS session"));
	assert_non_null(
	    strstr(o.msg, "certificate required (no client certificate is configured)"));
	o = tls_call_once(f, "https://127.0.0.1:%d", f->cert, f->ccert, f->ckey);
	assert_int_equal(o.status, GRPCX_OK);
	assert_string_equal(o.resp, "over tls");
	tls_down(f);
}

/* TLS to a plaintext server, and plaintext to a TLS one: refused, never answered. */
static void test_async_tls_against_plaintext(void **state)
{
	struct fixture *f = *state;
	struct tls_fixture *tf = tls_up(0);
	struct outcome o[2] = {0};
	struct err e = {0};
	struct grpcx_async *c;
	char t[64];

	snprintf(t, sizeof(t), "https://127.0.0.1:%d", f->port);
	c = grpcx_async_new_tls(f->b, t, tf->cert, NULL, NULL, 4, &e);
	assert_int_equal(call(c, ECHO, "x", 5000, &o[0]), 0);
	run_until(f->b, &o[0], 1);
	assert_int_equal(o[0].status, GRPCX_UNAVAILABLE);
	assert_non_null(strstr(o[0].msg, "TLS connection failed"));
	grpcx_async_free(c);
	snprintf(t, sizeof(t), "http://127.0.0.1:%d", tf->port);
	c = grpcx_async_new(tf->b, t, 4, &e);
	assert_int_equal(call(c, ECHO, "x", 5000, &o[1]), 0);
	run_until(tf->b, &o[1], 1);
	assert_int_equal(o[1].status, GRPCX_UNAVAILABLE);
	grpcx_async_free(c);
	tls_down(tf);
}

static void test_async_free_answers_calls_in_flight(void **state)
{
	struct fixture *f = *state;
	struct outcome o = {0};
	struct err e = {0};
	struct grpcx_async *c = grpcx_async_new(f->b, f->target, 4, &e);

	assert_int_equal(call(c, SLOW, "x", 5000, &o), 0);
	event_base_loop(f->b, EVLOOP_NONBLOCK);
	grpcx_async_free(c);
	assert_int_equal(o.done, 1);
	assert_int_equal(o.status, GRPCX_UNAVAILABLE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_async_echo_answers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_async_outcome_never_inside_the_call, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_async_status_and_message, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_async_many_streams_on_one_loop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_async_deadline_then_the_link_still_serves, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_async_server_gone_then_back, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_async_budget_refuses_without_callback, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_async_sends_the_bearer, setup, teardown),
	    cmocka_unit_test(test_async_tls_answers),
	    cmocka_unit_test(test_async_tls_refusals_say_why),
	    cmocka_unit_test(test_async_mutual_tls),
	    cmocka_unit_test_setup_teardown(test_async_tls_against_plaintext, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_async_host_name_answers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_async_host_name_that_does_not_resolve, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_async_host_name_server_gone_then_back, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_async_free_while_resolving, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_async_free_answers_calls_in_flight, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
