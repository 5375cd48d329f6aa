/*
 * common/http: the evhttp server layer the KBS runs on — replies from the loop and from the
 * worker pool, a slow handler not holding up other requests, keep-alive, the RFC 7807 body,
 * cookies, the body limit (413), the idle timeout, the IMF-fixdate used in Set-Cookie, and
 * where connections live: on the lowest loop while it has room, spread when it is busy, back
 * together when the load drops (http_balance); a reply that reaches a connection after the
 * server stopped, and a TLS client that half-closes after its request.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <stdatomic.h>

#include "http.h"
#include "testcert.h"
#include "testlib.h"

static _Atomic(struct http_req *) held; /* /hold: a request nobody answers until the test does */
static atomic_int admits, releases;

static void slow(void *arg, struct http_req *r)
{
	usleep(400 * 1000);
	http_reply(r, 200, "text/plain", "slow", 4);
}

#define BIG_LEN (16u << 20) /* more than loopback's socket buffers take at once */

/* A reply far larger than a socket buffer, from the pool: the part the socket does not take
 * at once goes on through the bufferevent. */
static void big(void *arg, struct http_req *r)
{
	uint8_t *b = malloc(BIG_LEN);
	assert_non_null(b);
	for (size_t i = 0; i < BIG_LEN; i++)
		b[i] = (uint8_t)(i * 7);
	http_reply(r, 200, "application/octet-stream", b, BIG_LEN);
	free(b);
}

static void pooled(void *arg, struct http_req *r)
{
	http_reply(r, 200, "text/plain", http_req_path(r) + 1, strlen(http_req_path(r) + 1));
}

/* Spends `ms` of this thread's CPU time (a busy loop, whatever else the machine runs). */
static void burn_cpu(double ms)
{
	struct timespec a, b;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
	do
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
	while ((double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6 < ms);
}

static void reply_loop(struct http_req *r)
{
	char b[16];
	int n = snprintf(b, sizeof(b), "loop=%d", http_req_loop(r));
	http_reply(r, 200, "text/plain", b, (size_t)n);
}

static void handler(void *ctx, struct http_req *r)
{
	const char *p = http_req_path(r);
	if (strcmp(p, "/loop") == 0) {
		reply_loop(r);
	} else if (strcmp(p, "/burn") == 0) { /* 4 ms of the loop's CPU */
		burn_cpu(4);
		reply_loop(r);
	} else if (strcmp(p, "/slow") == 0) {
		assert_int_equal(http_req_run_async(r, slow, NULL), 0);
	} else if (strcmp(p, "/hold") == 0) {
		atomic_store(&held, r);
	} else if (strcmp(p, "/big") == 0) {
		assert_int_equal(http_req_run_async(r, big, NULL), 0);
	} else if (strncmp(p, "/pool", 5) == 0) {
		assert_int_equal(http_req_run_async(r, pooled, NULL), 0);
	} else if (strcmp(p, "/problem") == 0) {
		http_reply_problem(r, 401, "https://example/errors/", "Thing", "it \"failed\"");
	} else if (strcmp(p, "/cookie") == 0) {
		char *c = http_req_cookie(r, "kbs-session-id");
		http_reply(r, 200, NULL, c ? c : "none", c ? strlen(c) : 4);
		free(c);
	} else if (strcmp(p, "/echo") == 0) {
		size_t n;
		const uint8_t *b = http_req_body(r, &n);
		char hdr[64];
		snprintf(hdr, sizeof(hdr), "%s|%s", http_req_method_name(r),
		         http_req_query(r) ? http_req_query(r) : "-");
		http_reply_header(r, "X-Info", hdr);
		http_reply(r, 200, "application/octet-stream", b, n);
	} else {
		http_reply(r, 200, "text/plain", "ok", 2);
	}
}

static struct http_server *srv;
static int port;

static int setup(void **state)
{
	signal(SIGPIPE, SIG_IGN);
	const char *socks[] = {"127.0.0.1:0"};
	struct http_server_opts o = {.sockets = socks,
	                             .n_sockets = 1,
	                             .threads = 2,
	                             .pool_threads = 4,
	                             .max_body = 1024,
	                             .timeout_s = 1,
	                             .handler = handler};
	struct err e = {0};
	srv = http_server_new(&o, &e);
	assert_non_null(srv);
	assert_int_equal(http_server_start(srv, &e), 0);
	port = http_server_port(srv, 0);
	assert_true(port > 0);
	return 0;
}

static int teardown(void **state)
{
	http_server_stop(srv);
	http_server_free(srv);
	return 0;
}

static int conn_to(int p)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

static int conn(void)
{
	return conn_to(port);
}

/* Reads one response (headers + Content-Length body) into buf. */
static size_t read_resp(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = 0;
		char *he = strstr(buf, "\r\n\r\n");
		if (he) {
			const char *cl = strcasestr(buf, "Content-Length:");
			size_t want = cl ? strtoul(cl + 15, NULL, 10) : 0;
			if (n >= (size_t)(he + 4 - buf) + want)
				break;
		}
	}
	buf[n] = 0;
	return n;
}

static void rt(int fd, const char *req, char *buf, size_t cap)
{
	assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	read_resp(fd, buf, cap);
}

static void test_reply_and_keepalive(void **state)
{
	char buf[4096];
	int fd = conn();
	rt(fd, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK"));
	assert_non_null(strstr(buf, "\r\n\r\nok"));
	rt(fd, "POST /echo?a=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", buf,
	   sizeof(buf));
	assert_non_null(strstr(buf, "X-Info: POST|a=1"));
	assert_non_null(strstr(buf, "\r\n\r\nhello"));
	close(fd);
}

static void test_slow_handler_does_not_block_others(void **state)
{
	char buf[4096];
	int a = conn(), b = conn();
	const char *req = "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n";
	double t0 = tl_now_s();
	assert_int_equal(write(a, req, strlen(req)), (ssize_t)strlen(req));
	usleep(50 * 1000);
	rt(b, "GET /fast HTTP/1.1\r\nHost: a\r\n\r\n", buf, sizeof(buf));
	assert_non_null(strstr(buf, "200 OK"));
	assert_true(tl_now_s() - t0 < 0.3);
	read_resp(a, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\r\n\r\nslow"));
	assert_true(tl_now_s() - t0 >= 0.39);
	close(a);
	close(b);
}

/* A pool reply the client starts reading only later arrives whole, and the connection then
 * serves its next request. */
static void test_large_reply_read_late(void **state)
{
	int fd = conn();
	const char *req = "GET /big HTTP/1.1\r\nHost: a\r\n\r\n";
	assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	usleep(50 * 1000); /* the whole reply is due within the 1 s timeout */
	size_t cap = BIG_LEN + 4096, n = 0;
	char *buf = malloc(cap);
	assert_non_null(buf);
	n = read_resp(fd, buf, cap);
	char *body = strstr(buf, "\r\n\r\n");
	assert_non_null(body);
	body += 4;
	assert_int_equal(n - (size_t)(body - buf), BIG_LEN);
	for (size_t i = 0; i < BIG_LEN; i += 4099)
		assert_int_equal((uint8_t)body[i], (uint8_t)(i * 7));
	rt(fd, "GET /pool-after HTTP/1.1\r\nHost: a\r\n\r\n", buf, 4096);
	assert_non_null(strstr(buf, "\r\n\r\npool-after"));
	free(buf);
	close(fd);
}

/* Two requests in one write, both answered from the pool: two replies, in order. */
static void test_pipelined_pool_replies_in_order(void **state)
{
	char buf[4096];
	int fd = conn();
	const char *req =
	    "GET /pool1 HTTP/1.1\r\nHost: a\r\n\r\nGET /pool2 HTTP/1.1\r\nHost: a\r\n\r\n";
	assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	size_t n = 0;
	while (n < sizeof(buf) - 1) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = 0;
		if (strstr(buf, "pool2"))
			break;
	}
	char *a = strstr(buf, "\r\n\r\npool1"), *b = strstr(buf, "\r\n\r\npool2");
	assert_non_null(a);
	assert_non_null(b);
	assert_true(a < b);
	close(fd);
}

static void test_many_deferred_replies(void **state)
{
	enum { N = 12 };
	int fds[N];
	char buf[4096];
	double t0 = tl_now_s();
	for (int i = 0; i < N; i++) {
		fds[i] = conn();
		const char *req = "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n";
		assert_int_equal(write(fds[i], req, strlen(req)), (ssize_t)strlen(req));
	}
	for (int i = 0; i < N; i++) {
		read_resp(fds[i], buf, sizeof(buf));
		assert_non_null(strstr(buf, "\r\n\r\nslow"));
		close(fds[i]);
	}
	/* 12 jobs of 0.4 s on 4 workers: three rounds */
	assert_true(tl_now_s() - t0 < 2.5);
}

static void test_problem_body(void **state)
{
	char buf[4096];
	int fd = conn();
	rt(fd, "GET /problem HTTP/1.1\r\nHost: a\r\n\r\n", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 401 Unauthorized"));
	assert_non_null(strstr(buf, "Content-Type: application/json"));
	assert_non_null(strstr(buf, "\r\n\r\n{\"type\":\"https://example/errors/Thing\","
	                            "\"detail\":\"it \\\"failed\\\"\"}"));
	close(fd);
	char *s = http_problem_body("p/", "V", "d");
	assert_string_equal(s, "{\"type\":\"p/V\",\"detail\":\"d\"}");
	free(s);
}

static void test_cookie_parsing(void **state)
{
	char buf[4096];
	int fd = conn();
	rt(fd,
	   "GET /cookie HTTP/1.1\r\nHost: a\r\nCookie: a=b; kbs-session-id=0123abcd ; c=d\r\n\r\n",
	   buf, sizeof(buf));
	assert_non_null(strstr(buf, "\r\n\r\n0123abcd"));
	rt(fd, "GET /cookie HTTP/1.1\r\nHost: a\r\nCookie: xkbs-session-id=1\r\n\r\n", buf,
	   sizeof(buf));
	assert_non_null(strstr(buf, "\r\n\r\nnone"));
	close(fd);
}

static void test_body_limit_413(void **state)
{
	char buf[4096];
	int fd = conn();
	rt(fd, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2048\r\n\r\n", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 413"));
	close(fd);
	fd = conn();
	char big[1100];
	memset(big, 'x', sizeof(big));
	char req[1300];
	int n = snprintf(req, sizeof(req),
	                 "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1024\r\n\r\n");
	memcpy(req + n, big, 1024);
	assert_int_equal(write(fd, req, (size_t)n + 1024), n + 1024);
	read_resp(fd, buf, sizeof(buf));
	assert_non_null(strstr(buf, "200 OK"));
	close(fd);
}

static void test_idle_client_is_closed(void **state)
{
	int fd = conn();
	const char *part = "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab";
	assert_int_equal(write(fd, part, strlen(part)), (ssize_t)strlen(part));
	char buf[512];
	double t0 = tl_now_s();
	read_resp(fd, buf, sizeof(buf)); /* returns on close (or a 400/408) */
	double dt = tl_now_s() - t0;
	assert_true(dt >= 0.5 && dt < 4.5);
	close(fd);
}

static void test_client_gone_before_deferred_reply(void **state)
{
	char buf[4096];
	for (int i = 0; i < 4; i++) {
		int fd = conn();
		const char *req = "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n";
		assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
		usleep(20 * 1000);
		close(fd); /* the reply will find no connection */
	}
	usleep(600 * 1000);
	int fd = conn();
	rt(fd, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", buf, sizeof(buf));
	assert_non_null(strstr(buf, "200 OK"));
	close(fd);
}

static void test_http_date(void **state)
{
	char b[64];
	http_date(0, b, sizeof(b));
	assert_string_equal(b, "Thu, 01 Jan 1970 00:00:00 GMT");
	http_date(1788257100, b, sizeof(b));
	assert_string_equal(b, "Tue, 01 Sep 2026 10:05:00 GMT");
	assert_string_equal(http_reason(413), "Payload Too Large");
}

/* A client that half-closes after its request (the server reads on while the handler runs)
 * still gets its reply, and more than a head's worth sent behind a busy request waits. */
static void test_half_closed_client_gets_reply(void **state)
{
	char buf[4096];
	int fd = conn();
	const char *req = "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n";
	assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	usleep(50 * 1000);
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	read_resp(fd, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\r\n\r\nslow"));
	close(fd);

	fd = conn();
	size_t junk = 128u << 10; /* 2x max_headers, behind a request that takes 400 ms */
	char *flood = malloc(strlen(req) + junk);
	assert_non_null(flood);
	memcpy(flood, req, strlen(req));
	memset(flood + strlen(req), 'x', junk);
	assert_int_equal(write(fd, flood, strlen(req) + junk), (ssize_t)(strlen(req) + junk));
	size_t n = 0; /* everything until the server's half-close */
	for (ssize_t r; n < sizeof(buf) - 1 && (r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0;)
		n += (size_t)r;
	buf[n] = 0;
	char *slow_at = strstr(buf, "\r\n\r\nslow");
	assert_non_null(slow_at); /* the reply, then the junk refused as a head */
	assert_non_null(strstr(slow_at, "HTTP/1.1 400 Bad Request"));
	free(flood);
	close(fd);
}

/* The rule itself: the lowest loop with room, spread over the threshold, together again
 * under 3/4 of it, and nothing in between (so a connection does not move back and forth). */
static void test_balance_rule(void **state)
{
	const double idle[] = {0, 0, 0}, busy0[] = {0.7, 0.1, 0}, mid[] = {0.5, 0.3},
	             low[] = {0.2, 0.15}, hot2[] = {0.9, 0.9, 0.2}, all[] = {0.95, 0.9},
	             warm[] = {0.65, 0.35};
	double t = 0.6;
	assert_int_equal(http_balance(idle, 3, -1, t), 0); /* new: the lowest loop */
	assert_int_equal(http_balance(idle, 3, 2, t), 0);  /* idle: all together on loop 0 */
	assert_int_equal(http_balance(busy0, 3, -1, t), 1);
	assert_int_equal(http_balance(busy0, 3, 0, t), 1); /* loop 0 over: spread */
	assert_int_equal(http_balance(busy0, 3, 1, t), 1); /* 0.8 together: stay */
	assert_int_equal(http_balance(mid, 2, -1, t), 0);
	assert_int_equal(http_balance(mid, 2, 0, t), 0);
	assert_int_equal(http_balance(mid, 2, 1, t), 1);
	assert_int_equal(http_balance(low, 2, 1, t), 0); /* 0.35 together: back to loop 0 */
	assert_int_equal(http_balance(hot2, 3, -1, t), 2);
	assert_int_equal(http_balance(hot2, 3, 0, t), 2);
	assert_int_equal(http_balance(hot2, 3, 1, t), 2);
	assert_int_equal(http_balance(all, 2, -1, t), 1); /* no room anywhere: the least busy */
	assert_int_equal(http_balance(all, 2, 0, t), 0);  /* and nothing to gain by moving */
	assert_int_equal(http_balance(warm, 2, 0, t), 0); /* over, but 1 is not under half */
	assert_int_equal(http_balance(busy0, 1, 0, t), 0);
}

static int loop_of(const char *resp)
{
	const char *p = strstr(resp, "\r\n\r\nloop=");
	assert_non_null(p);
	return atoi(p + 9);
}

/* A lightly loaded server answers every connection from one loop (its wake-ups batch). */
static void test_light_load_stays_on_one_loop(void **state)
{
	char buf[4096];
	int fds[4];
	for (int i = 0; i < 4; i++)
		fds[i] = conn();
	for (int round = 0; round < 10; round++)
		for (int i = 0; i < 4; i++) {
			rt(fds[i], "GET /loop HTTP/1.1\r\nHost: a\r\n\r\n", buf, sizeof(buf));
			assert_int_equal(loop_of(buf), 0);
		}
	for (int i = 0; i < 4; i++)
		close(fds[i]);
}

/* A loop busier than the threshold hands kept-alive connections to the quiet loop between
 * requests, and they come back together once the load is gone; a moved connection goes on
 * serving requests with bodies. */
static void test_busy_loop_spreads_then_concentrates(void **state)
{
	const char *socks[] = {"127.0.0.1:0"};
	struct http_server_opts o = {.sockets = socks,
	                             .n_sockets = 1,
	                             .threads = 2,
	                             .pool_threads = 1,
	                             .max_body = 1024,
	                             .timeout_s = 5,
	                             .balance_busy = 0.2,
	                             .handler = handler};
	struct err e = {0};
	struct http_server *s = http_server_new(&o, &e);
	assert_non_null(s);
	assert_int_equal(http_server_start(s, &e), 0);
	int p = http_server_port(s, 0), fds[4], on1 = 0;
	char buf[4096];
	for (int i = 0; i < 4; i++)
		fds[i] = conn_to(p);
	double t0 = tl_now_s();
	while (!on1 && tl_now_s() - t0 < 5)
		for (int i = 0; i < 4; i++) {
			rt(fds[i], "GET /burn HTTP/1.1\r\nHost: a\r\n\r\n", buf, sizeof(buf));
			on1 += loop_of(buf) == 1;
		}
	assert_true(on1 > 0);
	usleep(400 * 1000); /* both loops' measures go stale: quiet */
	int together = 0;
	t0 = tl_now_s();
	while (!together && tl_now_s() - t0 < 5) {
		together = 1;
		for (int i = 0; i < 4; i++) {
			rt(fds[i], "GET /loop HTTP/1.1\r\nHost: a\r\n\r\n", buf, sizeof(buf));
			together &= loop_of(buf) == 0;
		}
		usleep(20 * 1000);
	}
	assert_true(together);
	for (int i = 0; i < 4; i++) {
		rt(fds[i], "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", buf,
		   sizeof(buf));
		assert_non_null(strstr(buf, "\r\n\r\nhello"));
		close(fds[i]);
	}
	http_server_stop(s);
	http_server_free(s);
}

static int admit(void *ctx, const char *peer)
{
	atomic_fetch_add(&admits, 1);
	return 1;
}

static void release(void *ctx, const char *peer)
{
	atomic_fetch_add(&releases, 1);
}

/* A request on a connection that had spread to loop 1, answered after the server stopped (as
 * the kbs's loop clients answer their calls in flight when they close): the reply goes out
 * and the connection is closed and released once, on its own loop; it is not moved back to
 * loop 0, which http_server_free may have freed by then. */
static void test_reply_after_stop_stays_on_its_loop(void **state)
{
	const char *socks[] = {"127.0.0.1:0"};
	struct http_server_opts o = {.sockets = socks,
	                             .n_sockets = 1,
	                             .threads = 2,
	                             .pool_threads = 1,
	                             .timeout_s = 5,
	                             .balance_busy = 0.2,
	                             .handler = handler,
	                             .admit = admit,
	                             .release = release};
	struct err e = {0};
	struct http_server *s = http_server_new(&o, &e);
	assert_non_null(s);
	assert_int_equal(http_server_start(s, &e), 0);
	int p = http_server_port(s, 0), a = conn_to(p), b = -1;
	char buf[4096];
	atomic_store(&held, NULL);
	atomic_store(&admits, 0);
	atomic_store(&releases, 0);
	for (int tries = 0; tries < 50 && b < 0; tries++) { /* loop 0 busy: a new one spreads */
		double t0 = tl_now_s();
		while (tl_now_s() - t0 < 0.15)
			rt(a, "GET /burn HTTP/1.1\r\nHost: a\r\n\r\n", buf, sizeof(buf));
		int c = conn_to(p);
		rt(c, "GET /loop HTTP/1.1\r\nHost: a\r\n\r\n", buf, sizeof(buf));
		if (loop_of(buf) == 1)
			b = c;
		else
			close(c);
	}
	assert_true(b >= 0);
	const char *req = "GET /hold HTTP/1.1\r\nHost: a\r\n\r\n";
	assert_int_equal(write(b, req, strlen(req)), (ssize_t)strlen(req));
	while (atomic_load(&held) == NULL)
		usleep(1000);
	assert_int_equal(http_req_loop(atomic_load(&held)), 1);
	close(a);
	usleep(400 * 1000); /* the loops' measures go stale: quiet, so the rule says loop 0 */
	http_server_stop(s);
	http_reply(atomic_load(&held), 200, "text/plain", "late", 4);
	http_server_free(s);
	read_resp(b, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\r\n\r\nlate"));
	assert_int_equal(atomic_load(&releases), atomic_load(&admits));
	close(b);
}

/* A TLS server on PEM texts (testcert.h). */
static SSL_CTX *tls_server_ctx(void)
{
	char *cert, *key;
	tc_self_signed("localhost", "IP:127.0.0.1", &cert, &key);
	SSL_CTX *c = SSL_CTX_new(TLS_server_method());
	BIO *bc = BIO_new_mem_buf(cert, -1), *bk = BIO_new_mem_buf(key, -1);
	X509 *x = PEM_read_bio_X509(bc, NULL, NULL, NULL);
	EVP_PKEY *k = PEM_read_bio_PrivateKey(bk, NULL, NULL, NULL);
	assert_true(c && x && k);
	assert_int_equal(SSL_CTX_use_certificate(c, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(c, k), 1);
	X509_free(x);
	EVP_PKEY_free(k);
	BIO_free(bc);
	BIO_free(bk);
	free(cert);
	free(key);
	return c;
}

/* A TLS client that half-closes (a TCP FIN, with or without its close_notify) after a request
 * the pool answers later still gets the reply: OpenSSL reports the bare FIN as an error, so
 * a TLS connection is not read while its request is with the handler. */
static void test_tls_half_closed_client_gets_reply(void **state)
{
	const char *socks[] = {"127.0.0.1:0"};
	SSL_CTX *sc = tls_server_ctx();
	struct http_server_opts o = {.sockets = socks,
	                             .n_sockets = 1,
	                             .threads = 2,
	                             .pool_threads = 2,
	                             .timeout_s = 5,
	                             .tls_ctx = sc,
	                             .handler = handler};
	struct err e = {0};
	struct http_server *s = http_server_new(&o, &e);
	assert_non_null(s);
	SSL_CTX_free(sc);
	assert_int_equal(http_server_start(s, &e), 0);
	SSL_CTX *cc = SSL_CTX_new(TLS_client_method());
	for (int notify = 0; notify < 2; notify++) {
		int fd = conn_to(http_server_port(s, 0));
		SSL *ssl = SSL_new(cc);
		SSL_set_fd(ssl, fd);
		assert_int_equal(SSL_connect(ssl), 1);
		const char *req = "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n";
		assert_int_equal(SSL_write(ssl, req, (int)strlen(req)), (int)strlen(req));
		usleep(50 * 1000);
		if (notify)
			SSL_shutdown(ssl);
		assert_int_equal(shutdown(fd, SHUT_WR), 0);
		char buf[4096];
		int n = 0, r;
		while (n < (int)sizeof(buf) - 1 &&
		       (r = SSL_read(ssl, buf + n, (int)sizeof(buf) - 1 - n)) > 0) {
			n += r;
			buf[n] = 0;
			if (strstr(buf, "\r\n\r\nslow"))
				break;
		}
		buf[n] = 0;
		assert_non_null(strstr(buf, "\r\n\r\nslow"));
		SSL_free(ssl);
		close(fd);
	}
	SSL_CTX_free(cc);
	http_server_stop(s);
	http_server_free(s);
}

static void test_bad_socket_spec(void **state)
{
	const char *socks[] = {"127.0.0.1"};
	struct http_server_opts o = {.sockets = socks, .n_sockets = 1, .handler = handler};
	struct err e = {0};
	assert_null(http_server_new(&o, &e));
	assert_non_null(strstr(e.msg, "ip:port"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reply_and_keepalive),
	    cmocka_unit_test(test_slow_handler_does_not_block_others),
	    cmocka_unit_test(test_many_deferred_replies),
	    cmocka_unit_test(test_large_reply_read_late),
	    cmocka_unit_test(test_pipelined_pool_replies_in_order),
	    cmocka_unit_test(test_problem_body),
	    cmocka_unit_test(test_cookie_parsing),
	    cmocka_unit_test(test_body_limit_413),
	    cmocka_unit_test(test_idle_client_is_closed),
	    cmocka_unit_test(test_client_gone_before_deferred_reply),
	    cmocka_unit_test(test_http_date),
	    cmocka_unit_test(test_bad_socket_spec),
	    cmocka_unit_test(test_half_closed_client_gets_reply),
	    cmocka_unit_test(test_balance_rule),
	    cmocka_unit_test(test_light_load_stays_on_one_loop),
	    cmocka_unit_test(test_busy_loop_spreads_then_concentrates),
	    cmocka_unit_test(test_reply_after_stop_stays_on_its_loop),
	    cmocka_unit_test(test_tls_half_closed_client_gets_reply),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
