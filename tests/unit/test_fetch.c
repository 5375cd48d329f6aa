/*
 * The one outbound HTTP client (common/fetch.c) against a real HTTP server on a free loopback
 * port: an evhttp server in a thread of this test, whose paths each act out one behaviour of a
 * service (a body of N bytes, a stall, a 503 with Retry-After, a redirect to another scheme).
 */
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>

#include "fetch.h"

static struct event_base *base;
static struct evhttp *http;
static pthread_t loop_thread;
static int port;
static char url[256];

static const char *U(const char *path)
{
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	return url;
}

static void reply(struct evhttp_request *req, int code, const char *body, size_t n)
{
	struct evbuffer *b = evbuffer_new();
	evbuffer_add(b, body, n);
	evhttp_send_reply(req, code, "X", b);
	evbuffer_free(b);
}

/* /bytes/N: N bytes of 'a'. /stall: headers and a first chunk, then nothing. /status/N with
 * optional ?ra=VALUE: that status with Retry-After VALUE. /moved: 302 to an ftp:// URL.
 * /echo-header: the request's X-Test header as the body, and an issuer chain header back. */
static void handle(struct evhttp_request *req, void *arg)
{
	const char *uri = evhttp_request_get_uri(req);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	if (strncmp(uri, "/bytes/", 7) == 0) {
		size_t n = strtoul(uri + 7, NULL, 10);
		char *b = malloc(n + 1);
		memset(b, 'a', n);
		reply(req, 200, b, n);
		free(b);
	} else if (strcmp(uri, "/stall") == 0) {
		struct evbuffer *b = evbuffer_new();
		evhttp_send_reply_start(req, 200, "OK");
		evbuffer_add(b, "part", 4);
		evhttp_send_reply_chunk(req, b);
		evbuffer_free(b);
		/* never ended: the client's deadline must end the call. libevent does not free a
		 * reply its handler started and never ended once the client goes away; that is
		 * this stand-in's doing, not the client's under test, so LeakSanitizer is told. */
#ifdef __SANITIZE_ADDRESS__
		__lsan_ignore_object(req);
#endif
	} else if (strncmp(uri, "/status/", 8) == 0) {
		int code = atoi(uri + 8);
		struct evkeyvalq q;
		evhttp_parse_query(uri, &q);
		const char *ra = evhttp_find_header(&q, "ra");
		if (ra)
			evhttp_add_header(out, "Retry-After", ra);
		reply(req, code, "status body", 11);
		evhttp_clear_headers(&q);
	} else if (strcmp(uri, "/moved") == 0) {
		evhttp_add_header(out, "Location", "ftp://127.0.0.1/secret");
		reply(req, 302, "", 0);
	} else if (strcmp(uri, "/echo-header") == 0) {
		const char *x = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Test");
		evhttp_add_header(out, "Test-Issuer-Chain", "%2D%2D%2D%2Dchain");
		reply(req, 200, x ? x : "", x ? strlen(x) : 0);
	} else {
		reply(req, 404, "not here", 8);
	}
}

static void *loop_main(void *arg)
{
	event_base_dispatch(base);
	return NULL;
}

static int setup(void **state)
{
	evthread_use_pthreads();
	base = event_base_new();
	http = evhttp_new(base);
	evhttp_set_gencb(http, handle, NULL);
	struct evhttp_bound_socket *s = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
	if (!s)
		return -1;
	struct sockaddr_in a;
	socklen_t l = sizeof(a);
	getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&a, &l);
	port = ntohs(a.sin_port);
	return pthread_create(&loop_thread, NULL, loop_main, NULL) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	event_base_loopbreak(base);
	pthread_join(loop_thread, NULL);
	evhttp_free(http);
	event_base_free(base);
	return 0;
}

static long ms_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static void test_fetch_returns_body_status_and_sends_headers(void **state)
{
	static const char *const hdrs[] = {"X-Test: hello there", NULL};
	struct fetch_opts o = {.headers = hdrs};
	o.keep[0] = "Test-Issuer-Chain";
	struct fetch_result r;
	struct err e = {0};
	assert_int_equal(fetch_get(U("/echo-header"), &o, &r, &e), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 11);
	assert_string_equal(r.body, "hello there");
	assert_string_equal(r.kept[0], "%2D%2D%2D%2Dchain");
	assert_int_equal(r.retry_after, -1);
	fetch_result_free(&r);
	assert_null(r.body);
	assert_null(r.kept[0]);
}

static void test_fetch_refuses_an_answer_over_the_cap(void **state)
{
	struct fetch_opts o = {.max_bytes = 1000};
	struct fetch_result r;
	struct err e = {0};
	assert_int_equal(fetch_get(U("/bytes/1000"), &o, &r, &e), 0);
	assert_int_equal(r.len, 1000);
	fetch_result_free(&r);
	assert_int_equal(fetch_get(U("/bytes/1001"), &o, &r, &e), -1);
	assert_int_equal(r.status, 0);
	assert_null(r.body);
	assert_int_equal(r.len, 0);
	assert_non_null(strstr(e.msg, "larger than 1000 bytes"));
	assert_int_not_equal(e.code, ERR_UNAVAILABLE);
	fetch_result_free(&r);
	/* a large body arrives in many pieces: the cap holds across them */
	o.max_bytes = 300000;
	assert_int_equal(fetch_get(U("/bytes/300001"), &o, &r, &e), -1);
	assert_non_null(strstr(e.msg, "larger than 300000 bytes"));
	fetch_result_free(&r);
	assert_int_equal(fetch_get(U("/bytes/300000"), &o, &r, &e), 0);
	assert_int_equal(r.len, 300000);
	assert_int_equal(r.body[299999], 'a');
	assert_int_equal(r.body[300000], 0);
	fetch_result_free(&r);
}

static void test_fetch_deadline_ends_a_stalled_answer(void **state)
{
	struct fetch_opts o = {.timeout_ms = 700};
	struct fetch_result r;
	struct err e = {0};
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(fetch_get(U("/stall"), &o, &r, &e), -1);
	long took = ms_since(&t0);
	assert_true(took >= 600 && took < 5000);
	assert_int_equal(e.code, ERR_UNAVAILABLE);
	assert_non_null(strstr(e.msg, "Timeout"));
	assert_int_equal(r.status, 0);
	assert_null(r.body); /* the partial body is not handed out */
	fetch_result_free(&r);
}

static void test_fetch_404_is_a_refusal_and_503_an_outage(void **state)
{
	struct fetch_result r;
	struct err e = {0};
	assert_int_equal(fetch_get(U("/status/404"), NULL, &r, &e), -1);
	assert_int_equal(r.status, 404);
	assert_int_equal(e.code, 0);
	assert_non_null(strstr(e.msg, "answered HTTP 404"));
	assert_string_equal(r.body, "status body"); /* the caller may word its own refusal */
	fetch_result_free(&r);
	e.code = 0;
	assert_int_equal(fetch_get(U("/status/503"), NULL, &r, &e), -1);
	assert_int_equal(r.status, 503);
	assert_int_equal(e.code, ERR_UNAVAILABLE);
	fetch_result_free(&r);
	e.code = 0;
	assert_int_equal(fetch_get(U("/status/429?ra=7"), NULL, &r, &e), -1);
	assert_int_equal(e.code, ERR_UNAVAILABLE);
	assert_int_equal(r.retry_after, 7);
	fetch_result_free(&r);
	e.code = 0;
	assert_int_equal(fetch_get(U("/status/403"), NULL, &r, &e), -1);
	assert_int_equal(e.code, 0);
	fetch_result_free(&r);
}

static void test_fetch_unreachable_is_an_outage(void **state)
{
	/* a port that was free a moment ago: nothing listens there */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	bind(s, (struct sockaddr *)&a, sizeof(a));
	getsockname(s, (struct sockaddr *)&a, &l);
	close(s);
	char u[64];
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/", ntohs(a.sin_port));
	struct fetch_result r;
	struct err e = {0};
	assert_int_equal(fetch_get(u, NULL, &r, &e), -1);
	assert_int_equal(r.status, 0);
	assert_int_equal(e.code, ERR_UNAVAILABLE);
	assert_non_null(strstr(e.msg, u));
	fetch_result_free(&r);
}

static void test_fetch_retry_after_as_seconds_and_as_date(void **state)
{
	struct fetch_result r;
	struct err e = {0};
	/* a date 120 s ahead, in the IMF-fixdate form HTTP uses */
	char date[64], path[160];
	time_t when = time(NULL) + 120;
	struct tm tm;
	gmtime_r(&when, &tm);
	strftime(date, sizeof(date), "%a,%%20%d%%20%b%%20%Y%%20%H:%M:%S%%20GMT", &tm);
	snprintf(path, sizeof(path), "/status/503?ra=%s", date);
	assert_int_equal(fetch_get(U(path), NULL, &r, &e), -1);
	assert_true(r.retry_after >= 115 && r.retry_after <= 120);
	fetch_result_free(&r);
	/* the parser alone: delay, past date, nonsense */
	long now = 1700000000;
	assert_int_equal(fetch_parse_retry_after("120", now), 120);
	assert_int_equal(fetch_parse_retry_after(" 0 ", now), 0);
	assert_int_equal(fetch_parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now), 30);
	assert_int_equal(fetch_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), 0);
	assert_int_equal(fetch_parse_retry_after("soon", now), -1);
	assert_int_equal(fetch_parse_retry_after("12abc", now), -1);
	assert_int_equal(fetch_parse_retry_after("-5", now), -1);
	assert_int_equal(fetch_parse_retry_after("", now), -1);
}

static void test_fetch_speaks_only_http_and_follows_no_redirect(void **state)
{
	struct fetch_result r;
	struct err e = {0};
	assert_int_equal(fetch_get(U("/moved"), NULL, &r, &e), -1);
	assert_int_equal(r.status, 302); /* the answer itself, not where it points */
	assert_int_equal(e.code, 0);
	fetch_result_free(&r);
	assert_int_equal(fetch_get("file:///etc/hostname", NULL, &r, &e), -1);
	assert_int_equal(r.status, 0);
	assert_int_not_equal(e.code, ERR_UNAVAILABLE);
	fetch_result_free(&r);
	assert_int_equal(fetch_get("ftp://127.0.0.1/x", NULL, &r, &e), -1);
	assert_int_equal(r.status, 0);
	fetch_result_free(&r);
}

static void test_fetch_request_sends_method_and_body(void **state)
{
	static const char *const hdrs[] = {"X-Test: by put", NULL};
	struct fetch_opts o = {.headers = hdrs};
	struct fetch_result r;
	struct err e = {0};
	assert_int_equal(fetch_request("PUT", U("/echo-header"), "{}", 2, &o, &r, &e), 0);
	assert_string_equal(r.body, "by put");
	fetch_result_free(&r);
	fetch_result_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fetch_returns_body_status_and_sends_headers),
	    cmocka_unit_test(test_fetch_refuses_an_answer_over_the_cap),
	    cmocka_unit_test(test_fetch_deadline_ends_a_stalled_answer),
	    cmocka_unit_test(test_fetch_404_is_a_refusal_and_503_an_outage),
	    cmocka_unit_test(test_fetch_unreachable_is_an_outage),
	    cmocka_unit_test(test_fetch_retry_after_as_seconds_and_as_date),
	    cmocka_unit_test(test_fetch_speaks_only_http_and_follows_no_redirect),
	    cmocka_unit_test(test_fetch_request_sends_method_and_body),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
