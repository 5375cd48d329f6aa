/*
 * test_grpc_server: the gRPC server's own HTTP/2 handling (grpcx_h2.c) seen from a raw
 * HTTP/2 client (an nghttp2 client session on a plain socket), for what a well-behaved
 * gRPC client never sends: compressed or oversized messages, an expired grpc-timeout, a
 * wrong content-type, a stream reset while its handler runs, broken HTTP/2; and try handlers
 * answered on the event loop or deferred to a worker. Plus the pure
 * parsers of grpcx_wire.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "grpcx_wire.h"
#include "grpcx.h"
#include "testlib.h"

#define ECHO "/test.Echo/Echo"
#define SLOW "/test.Echo/Slow"

static int ran; /* handler runs (atomic) */

static int echo(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp, size_t *resp_len,
                struct err *err)
{
	__atomic_add_fetch(&ran, 1, __ATOMIC_RELAXED);
	*resp = malloc(req_len + 1);
	if (req_len)
		memcpy(*resp, req, req_len);
	*resp_len = req_len;
	return GRPCX_OK;
}

static int slow(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp, size_t *resp_len,
                struct err *err)
{
	usleep(300 * 1000);
	return echo(ctx, req, req_len, resp, resp_len, err);
}

/* /test.Echo/Try: try_echo answers on the loop (tried counts it), unless the message starts
 * with "defer": then try_worker runs on a worker (ran counts it; "defer-slow" sleeps first). */
#define TRY "/test.Echo/Try"
static int tried;

static int try_echo(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp, size_t *resp_len,
                    struct err *err)
{
	__atomic_add_fetch(&tried, 1, __ATOMIC_RELAXED);
	if (req_len >= 5 && memcmp(req, "defer", 5) == 0)
		return GRPCX_DEFER;
	*resp = malloc(req_len + 1);
	if (req_len)
		memcpy(*resp, req, req_len);
	*resp_len = req_len;
	return GRPCX_OK;
}

static int try_worker(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp,
                      size_t *resp_len, struct err *err)
{
	if (req_len == 10 && memcmp(req, "defer-slow", 10) == 0)
		usleep(300 * 1000);
	return echo(ctx, req, req_len, resp, resp_len, err);
}

/* /test.Echo/Big: BIG_LEN bytes whatever the request. */
#define BIG "/test.Echo/Big"
#define BIG_LEN 100000
static int big(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp, size_t *resp_len,
               struct err *err)
{
	*resp = calloc(1, BIG_LEN);
	*resp_len = BIG_LEN;
	return GRPCX_OK;
}

struct fixture {
	struct grpcx_server *s;
	int port;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct err e;

	f->s = grpcx_server_new("127.0.0.1:0", 2, &e);
	if (f->s == NULL) {
		free(f);
		return -1;
	}
	grpcx_server_add(f->s, ECHO, echo, NULL);
	grpcx_server_add(f->s, SLOW, slow, NULL);
	grpcx_server_add_try(f->s, TRY, try_echo, try_worker, NULL);
	grpcx_server_add(f->s, BIG, big, NULL);
	if (grpcx_server_start(f->s, &e) < 0) {
		grpcx_server_free(f->s);
		free(f);
		return -1;
	}
	f->port = grpcx_server_port(f->s);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	grpcx_server_shutdown(f->s);
	grpcx_server_free(f->s);
	free(f);
	return 0;
}

static int connect_to(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* ------------------------------------------------------------------------------------ */
/* a raw HTTP/2 client */

struct stream_result {
	int32_t id;
	int http_status, grpc_status, closed;
	char grpc_message[256];
	size_t data;
};

struct client {
	int fd;
	nghttp2_session *ss;
	struct stream_result r[4];
	int n;
};

static struct stream_result *result_of(struct client *c, int32_t id)
{
	for (int i = 0; i < c->n; i++)
		if (c->r[i].id == id)
			return &c->r[i];
	return NULL;
}

static ssize_t cl_send(nghttp2_session *ss, const uint8_t *data, size_t len, int flags, void *u)
{
	struct client *c = u;
	ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);

	return n < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : n;
}

static int cl_header(nghttp2_session *ss, const nghttp2_frame *fr, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *u)
{
	struct stream_result *r = result_of(u, fr->hd.stream_id);
	char v[256];

	if (r == NULL)
		return 0;
	snprintf(v, sizeof(v), "%.*s", (int)vl, value);
	if (nl == 7 && memcmp(name, ":status", 7) == 0)
		r->http_status = atoi(v);
	else if (nl == 11 && memcmp(name, "grpc-status", 11) == 0)
		r->grpc_status = atoi(v);
	else if (nl == 12 && memcmp(name, "grpc-message", 12) == 0)
		snprintf(r->grpc_message, sizeof(r->grpc_message), "%s", v);
	return 0;
}

static int cl_data(nghttp2_session *ss, uint8_t flags, int32_t id, const uint8_t *d, size_t len,
                   void *u)
{
	struct stream_result *r = result_of(u, id);

	if (r)
		r->data += len;
	return 0;
}

static int cl_close(nghttp2_session *ss, int32_t id, uint32_t code, void *u)
{
	struct stream_result *r = result_of(u, id);

	if (r)
		r->closed = 1;
	return 0;
}

static void client_open(struct client *c, int port)
{
	nghttp2_session_callbacks *cb;

	memset(c, 0, sizeof(*c));
	c->fd = connect_to(port);
	nghttp2_session_callbacks_new(&cb);
	nghttp2_session_callbacks_set_send_callback(cb, cl_send);
	nghttp2_session_callbacks_set_on_header_callback(cb, cl_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, cl_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, cl_close);
	assert_int_equal(nghttp2_session_client_new(&c->ss, cb, c), 0);
	nghttp2_session_callbacks_del(cb);
	nghttp2_submit_settings(c->ss, NGHTTP2_FLAG_NONE, NULL, 0);
}

static void client_close(struct client *c)
{
	nghttp2_session_del(c->ss);
	close(c->fd);
}

struct body {
	const uint8_t *p;
	size_t len, off;
	int hold;     /* keep the stream open after the bytes (no END_STREAM) */
	size_t chunk; /* at most this many bytes per DATA frame (0: any) */
};

static ssize_t read_body(nghttp2_session *ss, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *u)
{
	struct body *b = src->ptr;
	size_t n = b->len - b->off < length ? b->len - b->off : length;

	if (b->chunk && n > b->chunk)
		n = b->chunk;
	if (n == 0 && b->hold)
		return NGHTTP2_ERR_DEFERRED;
	memcpy(buf, b->p + b->off, n);
	b->off += n;
	if (b->off == b->len && !b->hold)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

#define HDR(n, v)                                                                                  \
	{                                                                                          \
		(uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE         \
	}

/* Submit a POST to path with content-type ctype, an optional extra header, body b. */
static int32_t client_request(struct client *c, const char *path, const char *ctype,
                              const char *xname, const char *xvalue, struct body *b)
{
	nghttp2_nv nv[] = {HDR(":method", "POST"),
	                   HDR(":scheme", "http"),
	                   HDR(":path", path),
	                   HDR(":authority", "localhost"),
	                   HDR("content-type", ctype),
	                   HDR("te", "trailers"),
	                   HDR(xname ? xname : "x-none", xvalue ? xvalue : "")};
	nghttp2_data_provider dp = {.source.ptr = b, .read_callback = read_body};
	int32_t id = nghttp2_submit_request(c->ss, NULL, nv, 7, &dp, NULL);

	assert_true(id > 0);
	c->r[c->n++].id = id;
	return id;
}

/* Exchange frames until stream id is closed (or the connection ends, or 5 s pass). */
static void client_run(struct client *c, int32_t id)
{
	long end = tl_now_ms() + 5000;
	uint8_t buf[16384];

	while (tl_now_ms() < end && !(id && result_of(c, id)->closed)) {
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		ssize_t n;

		if (nghttp2_session_send(c->ss) != 0)
			return;
		if (id == 0 && !nghttp2_session_want_write(c->ss))
			return;
		if (poll(&p, 1, 100) <= 0)
			continue;
		n = recv(c->fd, buf, sizeof(buf), 0);
		if (n <= 0 || nghttp2_session_mem_recv(c->ss, buf, (size_t)n) < 0)
			return;
	}
}

/* A gRPC message: prefix (flag) + bytes. */
static uint8_t *message(int flag, const char *text, size_t *len)
{
	size_t n = strlen(text);
	uint8_t *m = malloc(5 + n);

	grpcx_wire_prefix_write(m, (uint32_t)n);
	m[0] = (uint8_t)flag;
	memcpy(m + 5, text, n);
	*len = 5 + n;
	return m;
}

/* One call on a fresh connection; the result of its stream. */
static struct stream_result one_call(int port, const char *path, const char *ctype,
                                     const char *xname, const char *xvalue, const uint8_t *body,
                                     size_t len)
{
	struct client c;
	struct body b = {body, len, 0};
	struct stream_result r;
	int32_t id;

	client_open(&c, port);
	id = client_request(&c, path, ctype, xname, xvalue, &b);
	client_run(&c, id);
	r = *result_of(&c, id);
	client_close(&c);
	return r;
}

/* ------------------------------------------------------------------------------------ */
/* tests */

static void test_raw_client_call_round_trips(void **state)
{
	struct fixture *f = *state;
	size_t len;
	uint8_t *m = message(0, "hello", &len);
	struct stream_result r =
	    one_call(f->port, ECHO, "application/grpc+proto", NULL, NULL, m, len);

	assert_true(r.closed);
	assert_int_equal(r.http_status, 200);
	assert_int_equal(r.grpc_status, GRPCX_OK);
	assert_int_equal(r.data, len);
	free(m);
}

static void test_compressed_message_is_unimplemented(void **state)
{
	struct fixture *f = *state;
	size_t len;
	uint8_t *m = message(1, "not really gzip", &len);
	struct stream_result r =
	    one_call(f->port, ECHO, "application/grpc", "grpc-encoding", "gzip", m, len);

	assert_int_equal(r.grpc_status, GRPCX_UNIMPLEMENTED);
	assert_string_equal(r.grpc_message, "compression is not supported");
	free(m);
}

static void test_message_over_64_mib_is_refused_from_its_prefix(void **state)
{
	struct fixture *f = *state;
	uint8_t pre[5];
	struct stream_result r;

	/* the prefix announces 64 MiB + 1; the server answers without waiting for the bytes */
	grpcx_wire_prefix_write(pre, 64u * 1024 * 1024 + 1);
	r = one_call(f->port, ECHO, "application/grpc", NULL, NULL, pre, sizeof(pre));
	assert_int_equal(r.grpc_status, GRPCX_RESOURCE_EXHAUSTED);
	assert_non_null(strstr(r.grpc_message, "64 MiB"));
}

static void test_expired_grpc_timeout_never_runs_the_handler(void **state)
{
	struct fixture *f = *state;
	size_t len;
	uint8_t *m = message(0, "late", &len);
	int before = __atomic_load_n(&ran, __ATOMIC_RELAXED);
	struct stream_result r =
	    one_call(f->port, ECHO, "application/grpc", "grpc-timeout", "1n", m, len);

	assert_int_equal(r.grpc_status, GRPCX_DEADLINE_EXCEEDED);
	assert_int_equal(__atomic_load_n(&ran, __ATOMIC_RELAXED), before);
	free(m);
}

static void test_bad_grpc_timeout_is_refused(void **state)
{
	struct fixture *f = *state;
	size_t len;
	uint8_t *m = message(0, "x", &len);
	struct stream_result r =
	    one_call(f->port, ECHO, "application/grpc", "grpc-timeout", "123456789S", m, len);

	assert_int_equal(r.grpc_status, GRPCX_INTERNAL);
	assert_non_null(strstr(r.grpc_message, "grpc-timeout"));
	free(m);
}

static void test_request_headers_over_16_kib_are_refused(void **state)
{
	struct fixture *f = *state;
	size_t len;
	uint8_t *m = message(0, "x", &len);
	char *big = malloc(20001);
	struct stream_result r;

	memset(big, 'a', 20000);
	big[20000] = '\0';
	r = one_call(f->port, ECHO, "application/grpc", "x-big", big, m, len);
	assert_int_equal(r.grpc_status, GRPCX_RESOURCE_EXHAUSTED);
	assert_non_null(strstr(r.grpc_message, "16384"));
	free(big);
	free(m);
}

static void test_wrong_content_type_is_http_415(void **state)
{
	struct fixture *f = *state;
	size_t len;
	uint8_t *m = message(0, "x", &len);
	struct stream_result r = one_call(f->port, ECHO, "application/json", NULL, NULL, m, len);

	assert_int_equal(r.http_status, 415);
	free(m);
}

static void test_two_messages_in_a_unary_call_are_refused(void **state)
{
	struct fixture *f = *state;
	size_t len;
	uint8_t *m = message(0, "one", &len), two[16];
	struct stream_result r;

	memcpy(two, m, len);
	memcpy(two + len, m, len);
	r = one_call(f->port, ECHO, "application/grpc", NULL, NULL, two, 2 * len);
	assert_int_equal(r.grpc_status, GRPCX_UNIMPLEMENTED);
	assert_non_null(strstr(r.grpc_message, "exactly one"));
	free(m);
}

static void test_stream_reset_while_the_handler_runs(void **state)
{
	struct fixture *f = *state;
	struct client c;
	size_t len;
	uint8_t *m = message(0, "slow", &len);
	struct body b1 = {m, len, 0}, b2 = {m, len, 0};
	int32_t slow_id, echo_id;
	int before = __atomic_load_n(&ran, __ATOMIC_RELAXED);

	client_open(&c, f->port);
	slow_id = client_request(&c, SLOW, "application/grpc", NULL, NULL, &b1);
	nghttp2_session_send(c.ss);
	usleep(100 * 1000); /* the handler is sleeping now */
	nghttp2_submit_rst_stream(c.ss, NGHTTP2_FLAG_NONE, slow_id, NGHTTP2_CANCEL);
	echo_id = client_request(&c, ECHO, "application/grpc", NULL, NULL, &b2);
	client_run(&c, echo_id);
	assert_int_equal(result_of(&c, echo_id)->grpc_status, GRPCX_OK);
	usleep(400 * 1000); /* the slow handler ends; its reply has no stream to go to */
	client_run(&c, 0);
	assert_int_equal(result_of(&c, slow_id)->data, 0);
	assert_int_equal(__atomic_load_n(&ran, __ATOMIC_RELAXED), before + 2);
	client_close(&c);
	free(m);
}

static void test_try_handler_answers_on_the_loop(void **state)
{
	struct fixture *f = *state;
	size_t len;
	uint8_t *m = message(0, "hello", &len);
	int t0 = __atomic_load_n(&tried, __ATOMIC_RELAXED),
	    r0 = __atomic_load_n(&ran, __ATOMIC_RELAXED);
	struct stream_result r = one_call(f->port, TRY, "application/grpc", NULL, NULL, m, len);

	assert_int_equal(r.grpc_status, GRPCX_OK);
	assert_int_equal(r.data, len);
	assert_int_equal(__atomic_load_n(&tried, __ATOMIC_RELAXED), t0 + 1);
	assert_int_equal(__atomic_load_n(&ran, __ATOMIC_RELAXED), r0);
	free(m);
}

static void test_try_handler_defers_to_a_worker(void **state)
{
	struct fixture *f = *state;
	size_t len;
	uint8_t *m = message(0, "defer me", &len);
	int t0 = __atomic_load_n(&tried, __ATOMIC_RELAXED),
	    r0 = __atomic_load_n(&ran, __ATOMIC_RELAXED);
	struct stream_result r = one_call(f->port, TRY, "application/grpc", NULL, NULL, m, len);

	assert_int_equal(r.grpc_status, GRPCX_OK);
	assert_int_equal(r.data, len);
	assert_int_equal(__atomic_load_n(&tried, __ATOMIC_RELAXED), t0 + 1);
	assert_int_equal(__atomic_load_n(&ran, __ATOMIC_RELAXED), r0 + 1);
	free(m);
}

static void test_health_check_answers_on_the_loop(void **state)
{
	struct fixture *f = *state;
	size_t len;
	uint8_t *m = message(0, "", &len); /* an empty HealthCheckRequest: the whole server */
	int r0 = __atomic_load_n(&ran, __ATOMIC_RELAXED);
	struct stream_result r = one_call(f->port, "/grpc.health.v1.Health/Check",
	                                  "application/grpc", NULL, NULL, m, len);

	assert_int_equal(r.grpc_status, GRPCX_OK);
	assert_int_equal(r.data, 5 + 2); /* status: SERVING */
	assert_int_equal(__atomic_load_n(&ran, __ATOMIC_RELAXED), r0);
	free(m);
}

/* Both workers busy with slow calls on a connection: a call the loop answers on the same
 * connection is not queued behind them. */
static void test_slow_worker_calls_do_not_delay_loop_answers(void **state)
{
	struct fixture *f = *state;
	struct client c;
	size_t len, tlen;
	uint8_t *m = message(0, "slow", &len), *t = message(0, "quick", &tlen);
	struct body b1 = {m, len, 0}, b2 = {m, len, 0}, b3 = {t, tlen, 0};
	int32_t s1, s2, quick;
	long start;

	client_open(&c, f->port);
	s1 = client_request(&c, SLOW, "application/grpc", NULL, NULL, &b1);
	s2 = client_request(&c, SLOW, "application/grpc", NULL, NULL, &b2);
	nghttp2_session_send(c.ss);
	usleep(50 * 1000); /* both workers sleep in the slow handler now */
	start = tl_now_ms();
	quick = client_request(&c, TRY, "application/grpc", NULL, NULL, &b3);
	client_run(&c, quick);
	assert_int_equal(result_of(&c, quick)->grpc_status, GRPCX_OK);
	assert_true(tl_now_ms() - start < 200);
	assert_false(result_of(&c, s1)->closed);
	assert_false(result_of(&c, s2)->closed);
	client_run(&c, s1);
	client_run(&c, s2);
	assert_int_equal(result_of(&c, s1)->grpc_status, GRPCX_OK);
	assert_int_equal(result_of(&c, s2)->grpc_status, GRPCX_OK);
	client_close(&c);
	free(m);
	free(t);
}

static void test_stream_reset_during_a_deferred_call(void **state)
{
	struct fixture *f = *state;
	struct client c;
	size_t len, qlen;
	uint8_t *m = message(0, "defer-slow", &len), *q = message(0, "quick", &qlen);
	struct body b1 = {m, len, 0}, b2 = {q, qlen, 0};
	int32_t slow_id, quick_id;
	int r0 = __atomic_load_n(&ran, __ATOMIC_RELAXED);

	client_open(&c, f->port);
	slow_id = client_request(&c, TRY, "application/grpc", NULL, NULL, &b1);
	nghttp2_session_send(c.ss);
	usleep(100 * 1000); /* deferred: the worker is sleeping in try_worker now */
	nghttp2_submit_rst_stream(c.ss, NGHTTP2_FLAG_NONE, slow_id, NGHTTP2_CANCEL);
	quick_id = client_request(&c, TRY, "application/grpc", NULL, NULL, &b2);
	client_run(&c, quick_id);
	assert_int_equal(result_of(&c, quick_id)->grpc_status, GRPCX_OK);
	usleep(400 * 1000); /* the worker ends; its reply has no stream to go to */
	client_run(&c, 0);
	assert_int_equal(result_of(&c, slow_id)->data, 0);
	assert_int_equal(__atomic_load_n(&ran, __ATOMIC_RELAXED), r0 + 1);
	client_close(&c);
	free(m);
	free(q);
}

static void test_expired_grpc_timeout_on_the_loop_never_runs_the_try_handler(void **state)
{
	struct fixture *f = *state;
	size_t len;
	uint8_t *m = message(0, "late", &len);
	int t0 = __atomic_load_n(&tried, __ATOMIC_RELAXED);
	struct stream_result r =
	    one_call(f->port, TRY, "application/grpc", "grpc-timeout", "1n", m, len);

	assert_int_equal(r.grpc_status, GRPCX_DEADLINE_EXCEEDED);
	assert_int_equal(__atomic_load_n(&tried, __ATOMIC_RELAXED), t0);
	free(m);
}

/* Replies the socket cannot take at once (a client with large flow-control windows reads
 * nothing for a while through a small receive buffer), one after another: workers write what
 * fits, the loop sends the rest, and every reply arrives whole and in order. */
static void test_replies_larger_than_the_socket_takes_arrive_whole(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
	nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 8 << 20}};
	struct client c;
	size_t len;
	uint8_t *m = message(0, "big", &len);
	struct body b[4];
	int32_t id[4];
	int small = 4096;

	client_open(&c, f->port);
	close(c.fd);
	c.fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(c.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	nghttp2_submit_settings(c.ss, NGHTTP2_FLAG_NONE, iv, 1);
	nghttp2_submit_window_update(c.ss, NGHTTP2_FLAG_NONE, 0, 32 << 20);
	for (int i = 0; i < 4; i++) {
		b[i] = (struct body){m, len, 0};
		id[i] = client_request(&c, BIG, "application/grpc", NULL, NULL, &b[i]);
		nghttp2_session_send(c.ss);
		usleep(50 * 1000); /* answered by a worker; the loop is idle */
	}
	for (int i = 0; i < 4; i++) {
		client_run(&c, id[i]);
		assert_int_equal(result_of(&c, id[i])->grpc_status, GRPCX_OK);
		assert_int_equal(result_of(&c, id[i])->data, 5 + BIG_LEN);
	}
	client_close(&c);
	free(m);
}

static void test_broken_http2_gets_goaway_and_others_are_served(void **state)
{
	struct fixture *f = *state;
	static const uint8_t bad[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	                             "\x00\x00\x00\x04\x00\x00\x00\x00\x00" /* SETTINGS */
	                             "\x00\x00\x04\x00\x01\x00\x00\x00\x00" /* DATA on stream 0 */
	                             "abcd";
	uint8_t buf[4096];
	size_t got = 0;
	int fd = connect_to(f->port), goaway = 0;
	long end = tl_now_ms() + 5000;
	size_t len;
	uint8_t *m = message(0, "still here", &len);
	struct stream_result r;

	assert_int_equal(send(fd, bad, sizeof(bad) - 1, 0), (ssize_t)(sizeof(bad) - 1));
	while (tl_now_ms() < end && got < sizeof(buf)) {
		ssize_t n = recv(fd, buf + got, sizeof(buf) - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	/* walk the frames the server sent: one of them is a GOAWAY (type 7) */
	for (size_t i = 0; i + 9 <= got;) {
		size_t flen = (size_t)buf[i] << 16 | (size_t)buf[i + 1] << 8 | buf[i + 2];
		if (buf[i + 3] == 7)
			goaway = 1;
		i += 9 + flen;
	}
	assert_true(goaway);
	r = one_call(f->port, ECHO, "application/grpc", NULL, NULL, m, len);
	assert_int_equal(r.grpc_status, GRPCX_OK);
	free(m);
}

static void test_claimed_lengths_do_not_use_up_the_buffer_budget(void **state)
{
	struct fixture *f = *state;
	struct client c[6];
	uint8_t claim[1029] = {0};
	struct body b[6];
	size_t len;
	uint8_t *m = message(0, "small", &len);
	struct stream_result r;

	/* six connections each announce a message of 64 MiB - 105 bytes and send 1 KiB of it in
	 * two DATA frames: were the claimed sizes reserved, four would hold all but 400 bytes of
	 * the 256 MiB budget and the small call below would be refused */
	grpcx_wire_prefix_write(claim, 64u * 1024 * 1024 - 105);
	for (int i = 0; i < 6; i++) {
		b[i] = (struct body){claim, sizeof(claim), 0, 1, 600};
		client_open(&c[i], f->port);
		client_request(&c[i], ECHO, "application/grpc", NULL, NULL, &b[i]);
		assert_int_equal(nghttp2_session_send(c[i].ss), 0);
	}
	usleep(100 * 1000);
	r = one_call(f->port, ECHO, "application/grpc", NULL, NULL, m, len);
	assert_int_equal(r.grpc_status, GRPCX_OK);
	for (int i = 0; i < 6; i++)
		client_close(&c[i]);
	free(m);
}

/* Read frames until the server closes (or 5 s): the error code of its GOAWAY, -1 if none. */
static int read_goaway(int fd)
{
	uint8_t buf[65536];
	size_t got = 0, i = 0;
	long end = tl_now_ms() + 5000;
	int code = -1;

	while (tl_now_ms() < end && got < sizeof(buf)) {
		ssize_t n = recv(fd, buf + got, sizeof(buf) - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	while (i + 9 <= got) {
		size_t flen = (size_t)buf[i] << 16 | (size_t)buf[i + 1] << 8 | buf[i + 2];
		if (buf[i + 3] == 7 && i + 9 + 8 <= got)
			code =
			    buf[i + 13] << 24 | buf[i + 14] << 16 | buf[i + 15] << 8 | buf[i + 16];
		i += 9 + flen;
	}
	return code;
}

static void test_rapid_reset_gets_goaway_enhance_your_calm(void **state)
{
	struct fixture *f = *state;
	static const uint8_t hello[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	                               "\x00\x00\x00\x04\x00\x00\x00\x00\x00";
	uint8_t burst[300 * 29], *p = burst;
	int fd = connect_to(f->port);
	size_t len;
	uint8_t *m = message(0, "still here", &len);
	struct stream_result r;

	/* 300 times: HEADERS (POST http /, HPACK indexed) then RST_STREAM CANCEL */
	for (uint32_t k = 0; k < 300; k++) {
		uint32_t id = 2 * k + 1;
		uint8_t h[] = {0, 0, 3, 1, 4, id >> 24, id >> 16, id >> 8, id, 0x83, 0x86, 0x84};
		uint8_t rst[] = {0, 0, 4, 3, 0, id >> 24, id >> 16, id >> 8, id, 0, 0, 0, 8};

		memcpy(p, h, sizeof(h));
		memcpy(p + sizeof(h), rst, sizeof(rst));
		p += sizeof(h) + sizeof(rst);
	}
	assert_int_equal(send(fd, hello, sizeof(hello) - 1, 0), (ssize_t)(sizeof(hello) - 1));
	assert_int_equal(send(fd, burst, (size_t)(p - burst), 0), (ssize_t)(p - burst));
	assert_int_equal(read_goaway(fd), NGHTTP2_ENHANCE_YOUR_CALM);
	close(fd);
	r = one_call(f->port, ECHO, "application/grpc", NULL, NULL, m, len);
	assert_int_equal(r.grpc_status, GRPCX_OK);
	free(m);
}

static void test_grpc_timeout_parser(void **state)
{
	struct err e;
	int64_t ns;

	assert_int_equal(grpcx_wire_timeout_parse((const uint8_t *)"100m", 4, &ns, &e), 0);
	assert_true(ns == 100000000LL);
	assert_int_equal(grpcx_wire_timeout_parse((const uint8_t *)"99999999H", 9, &ns, &e), 0);
	assert_true(ns == INT64_MAX);
	assert_int_equal(grpcx_wire_timeout_parse((const uint8_t *)"5", 1, &ns, &e), -1);
	assert_int_equal(grpcx_wire_timeout_parse((const uint8_t *)"5x", 2, &ns, &e), -1);
	assert_int_equal(grpcx_wire_timeout_parse((const uint8_t *)"-5S", 3, &ns, &e), -1);
}

static void test_grpc_message_percent_encoding(void **state)
{
	char out[32];

	grpcx_wire_pct_encode((const uint8_t *)"50% d\xc3\xa9j\xc3\xa0\n", 11, out, sizeof(out));
	assert_string_equal(out, "50%25 d%C3%A9j%C3%A0%0A");
	/* truncated at a whole escape */
	assert_int_equal(grpcx_wire_pct_encode((const uint8_t *)"a\n", 2, out, 4), 1);
	assert_string_equal(out, "a");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_grpc_timeout_parser),
	    cmocka_unit_test(test_grpc_message_percent_encoding),
	    cmocka_unit_test_setup_teardown(test_raw_client_call_round_trips, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_compressed_message_is_unimplemented, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_message_over_64_mib_is_refused_from_its_prefix,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expired_grpc_timeout_never_runs_the_handler, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_bad_grpc_timeout_is_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_content_type_is_http_415, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_request_headers_over_16_kib_are_refused, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_two_messages_in_a_unary_call_are_refused, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_stream_reset_while_the_handler_runs, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_try_handler_answers_on_the_loop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_try_handler_defers_to_a_worker, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_health_check_answers_on_the_loop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_slow_worker_calls_do_not_delay_loop_answers, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_stream_reset_during_a_deferred_call, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        test_expired_grpc_timeout_on_the_loop_never_runs_the_try_handler, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_replies_larger_than_the_socket_takes_arrive_whole,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_broken_http2_gets_goaway_and_others_are_served,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rapid_reset_gets_goaway_enhance_your_calm, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_claimed_lengths_do_not_use_up_the_buffer_budget,
	                                    setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
