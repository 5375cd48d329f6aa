/*
 * test_grpcx_client: the gRPC client against servers that misbehave on purpose. A small
 * HTTP/2 server written here on libnghttp2 (one thread per connection) answers each call as
 * its mode says: echo, a trailers-only error, a message over the limit, a connection closed
 * mid-response; a raw TCP listener that reads and never answers stands for a hung peer. It
 * counts accepted connections, so the pool's reuse is visible.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "grpcx.h"
#include "grpcx_wire.h"
#include "testlib.h"

#define METHOD "/test.Echo/Echo"

enum mode { ECHO, TRAILERS_ONLY, TOO_BIG, CLOSE_MID, SILENT };

struct srv {
	int lfd, port;
	enum mode mode;
	volatile int stop;
	int accepts;
	pthread_mutex_t mu;
	pthread_t acceptor;
	pthread_t th[64];
	int fds[64];
	int nth;
};

struct sconn {
	struct srv *s;
	int fd;
	nghttp2_session *ng;
	uint8_t body[4096], resp[4096]; /* the request being received, the answer being sent */
	size_t body_len, resp_len, resp_off;
	int close_after;    /* close the socket once the output is flushed */
	int32_t raw_stream; /* write a raw DATA frame for this stream after flushing */
};

static int send_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static ssize_t body_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
	struct sconn *k = ud;
	size_t n = k->resp_len - k->resp_off < len ? k->resp_len - k->resp_off : len;
	nghttp2_nv tr[] = {{(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, 0}};

	memcpy(buf, k->resp + k->resp_off, n);
	k->resp_off += n;
	if (k->resp_off == k->resp_len) {
		*flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
		nghttp2_submit_trailer(s, id, tr, 1);
	}
	return (ssize_t)n;
}

static int s_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *d, size_t n,
                     void *ud)
{
	struct sconn *k = ud;

	if (k->body_len + n <= sizeof(k->body)) {
		memcpy(k->body + k->body_len, d, n);
		k->body_len += n;
	}
	return 0;
}

#define NVS(n, v)                                                                                  \
	{                                                                                          \
		(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, 0                    \
	}

static int s_on_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct sconn *k = ud;
	nghttp2_nv ok[] = {NVS(":status", "200"), NVS("content-type", "application/grpc")};
	nghttp2_nv err[] = {NVS(":status", "200"), NVS("content-type", "application/grpc"),
	                    NVS("grpc-status", "5"),
	                    NVS("grpc-message", "no%20such%20value: caf%C3%A9 100%25 %zz")};
	nghttp2_data_provider prd = {.read_callback = body_read};

	if (!(f->hd.flags & NGHTTP2_FLAG_END_STREAM) || f->hd.stream_id == 0 ||
	    (f->hd.type != NGHTTP2_DATA && f->hd.type != NGHTTP2_HEADERS))
		return 0;
	switch (k->s->mode) {
	case ECHO: /* the request's DATA, prefix included, is a valid response body */
		memcpy(k->resp, k->body, k->body_len);
		k->resp_len = k->body_len;
		k->resp_off = 0;
		nghttp2_submit_response(s, f->hd.stream_id, ok, 2, &prd);
		break;
	case TRAILERS_ONLY:
		nghttp2_submit_response(s, f->hd.stream_id, err, 4, NULL);
		break;
	case TOO_BIG:
	case CLOSE_MID:
		nghttp2_submit_headers(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NULL, ok, 2, NULL);
		k->raw_stream = f->hd.stream_id;
		break;
	default:
		break;
	}
	k->body_len = 0;
	return 0;
}

/* DATA frame whose message prefix announces `announce` bytes, followed by 10 of them. */
static void raw_data(struct sconn *k, uint32_t announce)
{
	uint8_t fr[9 + 15] = {0, 0, 15, 0, 0};
	uint32_t sid = htonl((uint32_t)k->raw_stream), len = htonl(announce);

	memcpy(fr + 5, &sid, 4);
	fr[9] = 0;
	memcpy(fr + 10, &len, 4);
	memset(fr + 14, 'x', 10);
	send_all(k->fd, fr, sizeof(fr));
	k->raw_stream = 0;
	if (k->s->mode == CLOSE_MID)
		k->close_after = 1;
}

static void *conn_main(void *p)
{
	struct sconn *k = p;
	nghttp2_session_callbacks *cb;
	nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
	uint8_t buf[16384];

	nghttp2_session_callbacks_new(&cb);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, s_on_data);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, s_on_frame);
	nghttp2_session_server_new(&k->ng, cb, k);
	nghttp2_session_callbacks_del(cb);
	nghttp2_submit_settings(k->ng, NGHTTP2_FLAG_NONE, iv, 1);
	while (!k->s->stop) {
		struct pollfd pf = {.fd = k->fd, .events = POLLIN};
		const uint8_t *out;
		ssize_t n;

		if (k->s->mode != SILENT) {
			while ((n = nghttp2_session_mem_send(k->ng, &out)) > 0)
				if (send_all(k->fd, out, (size_t)n) < 0)
					goto out;
			if (k->raw_stream)
				raw_data(k, k->s->mode == TOO_BIG ? GRPCX_WIRE_MAX_MSG + 1 : 100);
			if (k->close_after)
				break;
		}
		if (poll(&pf, 1, 50) <= 0)
			continue;
		n = recv(k->fd, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		if (k->s->mode != SILENT && nghttp2_session_mem_recv(k->ng, buf, (size_t)n) < 0)
			break;
	}
out:
	nghttp2_session_del(k->ng);
	shutdown(k->fd, SHUT_RDWR);
	free(k);
	return NULL;
}

static void *acceptor(void *p)
{
	struct srv *s = p;
	int one = 1;

	while (!s->stop) {
		struct pollfd pf = {.fd = s->lfd, .events = POLLIN};
		struct sconn *k;
		int fd;

		if (poll(&pf, 1, 20) <= 0)
			continue;
		fd = accept(s->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		pthread_mutex_lock(&s->mu);
		s->accepts++;
		if (s->nth == 64) {
			pthread_mutex_unlock(&s->mu);
			close(fd);
			continue;
		}
		k = calloc(1, sizeof(*k));
		k->s = s;
		k->fd = fd;
		s->fds[s->nth] = fd;
		pthread_create(&s->th[s->nth++], NULL, conn_main, k);
		pthread_mutex_unlock(&s->mu);
	}
	return NULL;
}

static struct srv *srv_start(int port, enum mode mode)
{
	struct srv *s = calloc(1, sizeof(*s));
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	socklen_t al = sizeof(a);
	int one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->mode = mode;
	pthread_mutex_init(&s->mu, NULL);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->lfd, 64), 0);
	getsockname(s->lfd, (struct sockaddr *)&a, &al);
	s->port = ntohs(a.sin_port);
	pthread_create(&s->acceptor, NULL, acceptor, s);
	return s;
}

/* Stops accepting, closes every connection, returns the number of accepts. */
static int srv_stop(struct srv *s)
{
	int n;

	s->stop = 1;
	pthread_join(s->acceptor, NULL);
	close(s->lfd);
	for (int i = 0; i < s->nth; i++) {
		pthread_join(s->th[i], NULL);
		close(s->fds[i]);
	}
	n = s->accepts;
	pthread_mutex_destroy(&s->mu);
	free(s);
	return n;
}

static struct grpcx_client *client_for(struct srv *s)
{
	char target[64];
	struct err e;
	struct grpcx_client *c;

	snprintf(target, sizeof(target), "http://127.0.0.1:%d", s->port);
	c = grpcx_client_new(target, &e);
	assert_non_null(c);
	return c;
}

static int call(struct grpcx_client *c, const char *msg, int timeout_ms, struct err *e)
{
	uint8_t *resp = NULL;
	size_t n = 0;
	int st = grpcx_call(c, METHOD, (const uint8_t *)msg, strlen(msg), &resp, &n, timeout_ms, e);

	if (st == GRPCX_OK && (n != strlen(msg) || memcmp(resp, msg, n) != 0))
		st = -2;
	free(resp);
	return st;
}

static void test_deadline_against_a_server_that_never_answers(void **state)
{
	struct srv *s = srv_start(0, SILENT);
	struct grpcx_client *c = client_for(s);
	struct err e;
	long t0 = tl_now_ms();

	assert_int_equal(call(c, "hello", 300, &e), GRPCX_DEADLINE_EXCEEDED);
	assert_true(tl_now_ms() - t0 >= 290);
	assert_true(tl_now_ms() - t0 < 1500);
	assert_non_null(strstr(e.msg, "eadline"));
	grpcx_client_free(c);
	srv_stop(s);
}

static void test_peer_closing_mid_response_is_unavailable(void **state)
{
	struct srv *s = srv_start(0, CLOSE_MID);
	struct grpcx_client *c = client_for(s);
	struct err e;

	assert_int_equal(call(c, "hello", 3000, &e), GRPCX_UNAVAILABLE);
	assert_int_equal(e.code, GRPCX_UNAVAILABLE);
	grpcx_client_free(c);
	srv_stop(s);
}

static void test_response_over_the_size_limit_is_refused(void **state)
{
	struct srv *s = srv_start(0, TOO_BIG);
	struct grpcx_client *c = client_for(s);
	struct err e;
	long t0 = tl_now_ms();

	assert_int_equal(call(c, "hello", 5000, &e), GRPCX_RESOURCE_EXHAUSTED);
	assert_true(tl_now_ms() - t0 < 2000);
	assert_non_null(strstr(e.msg, "larger than the limit"));
	grpcx_client_free(c);
	srv_stop(s);
}

static void test_trailers_only_error_carries_status_and_decoded_message(void **state)
{
	struct srv *s = srv_start(0, TRAILERS_ONLY);
	struct grpcx_client *c = client_for(s);
	struct err e;

	assert_int_equal(call(c, "hello", 3000, &e), GRPCX_NOT_FOUND);
	assert_int_equal(e.code, GRPCX_NOT_FOUND);
	assert_string_equal(e.msg, "no such value: caf\xc3\xa9 100% %zz");
	/* the connection is fine afterwards: a second call on it gets the same answer */
	assert_int_equal(call(c, "again", 3000, &e), GRPCX_NOT_FOUND);
	grpcx_client_free(c);
	assert_int_equal(srv_stop(s), 1);
}

static void test_percent_decoding_of_grpc_message(void **state)
{
	char out[16];

	assert_int_equal(grpcx_percent_decode((const uint8_t *)"a%20b", 5, out, sizeof(out)), 3);
	assert_string_equal(out, "a b");
	grpcx_percent_decode((const uint8_t *)"100%", 4, out, sizeof(out));
	assert_string_equal(out, "100%");
	grpcx_percent_decode((const uint8_t *)"%4", 2, out, sizeof(out));
	assert_string_equal(out, "%4");
	grpcx_percent_decode((const uint8_t *)"x%00y", 5, out, sizeof(out));
	assert_string_equal(out, "x");
	/* cut to the buffer, always terminated */
	assert_int_equal(
	    grpcx_percent_decode((const uint8_t *)"0123456789abcdefghij", 20, out, sizeof(out)),
	    15);
	assert_string_equal(out, "0123456789abcde");
}

static void test_sequential_calls_reuse_one_connection(void **state)
{
	struct srv *s = srv_start(0, ECHO);
	struct grpcx_client *c = client_for(s);
	struct err e;
	char msg[32];

	for (int i = 0; i < 50; i++) {
		snprintf(msg, sizeof(msg), "call %d", i);
		assert_int_equal(call(c, msg, 3000, &e), GRPCX_OK);
	}
	grpcx_client_free(c);
	assert_int_equal(srv_stop(s), 1);
}

struct conc {
	struct grpcx_client *c;
	int id, ok;
};

static void *conc_main(void *p)
{
	struct conc *a = p;
	struct err e;
	char msg[48];

	for (int i = 0; i < 40; i++) {
		snprintf(msg, sizeof(msg), "thread %d call %d", a->id, i);
		if (call(a->c, msg, 10000, &e) == GRPCX_OK)
			a->ok++;
	}
	return NULL;
}

static void test_concurrent_calls_from_16_threads(void **state)
{
	struct srv *s = srv_start(0, ECHO);
	struct grpcx_client *c = client_for(s);
	pthread_t th[16];
	struct conc a[16];

	for (int i = 0; i < 16; i++) {
		a[i] = (struct conc){.c = c, .id = i};
		pthread_create(&th[i], NULL, conc_main, &a[i]);
	}
	for (int i = 0; i < 16; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(a[i].ok, 40);
	}
	grpcx_client_free(c);
	/* at most one connection per thread */
	assert_true(srv_stop(s) <= 16);
}

static void test_restarted_peer_is_reached_on_the_next_call(void **state)
{
	struct srv *s = srv_start(0, ECHO);
	struct grpcx_client *c = client_for(s);
	struct err e;
	int port = s->port;
	long t0;

	assert_int_equal(call(c, "before", 3000, &e), GRPCX_OK);
	srv_stop(s);
	t0 = tl_now_ms();
	assert_int_equal(call(c, "during", 10000, &e), GRPCX_UNAVAILABLE);
	assert_true(tl_now_ms() - t0 < 1000);
	s = srv_start(port, ECHO);
	assert_int_equal(call(c, "after", 3000, &e), GRPCX_OK);
	grpcx_client_free(c);
	srv_stop(s);
}

static void test_bad_targets_are_refused(void **state)
{
	struct grpcx_target t;
	struct err e;

	assert_int_equal(grpcx_target_parse("dns:///example.org:443", &t, &e), 0);
	assert_string_equal(t.authority, "example.org:443");
	assert_int_equal(grpcx_target_parse("https://[::1]:50004/", &t, &e), 0);
	assert_true(t.tls && t.is_ip);
	assert_string_equal(t.host, "::1");
	assert_string_equal(t.authority, "[::1]:50004");
	assert_int_equal(grpcx_target_parse("127.0.0.1", &t, &e), -1);
	assert_int_equal(grpcx_target_parse("127.0.0.1:99999", &t, &e), -1);
	assert_int_equal(grpcx_target_parse("::1:80", &t, &e), -1);
	assert_null(grpcx_client_new("http://", &e));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_deadline_against_a_server_that_never_answers),
	    cmocka_unit_test(test_peer_closing_mid_response_is_unavailable),
	    cmocka_unit_test(test_response_over_the_size_limit_is_refused),
	    cmocka_unit_test(test_trailers_only_error_carries_status_and_decoded_message),
	    cmocka_unit_test(test_percent_decoding_of_grpc_message),
	    cmocka_unit_test(test_sequential_calls_reuse_one_connection),
	    cmocka_unit_test(test_concurrent_calls_from_16_threads),
	    cmocka_unit_test(test_restarted_peer_is_reached_on_the_next_call),
	    cmocka_unit_test(test_bad_targets_are_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
