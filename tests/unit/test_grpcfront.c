/*
 * grpcfront: the HTTP/1.x request-head parser of the gRPC port's front. A complete head gives
 * the method and the path without its query; a partial head asks for more bytes unless what
 * has arrived is already wrong; malformed heads are refused with a sentence; nothing past the
 * head's empty line is read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "grpcfront.h"

static int parse(const char *s, struct gfront_http_req *r, struct err *e)
{
	return gfront_http_parse((const uint8_t *)s, strlen(s), r, e);
}

static void test_get_with_headers_and_query(void **state)
{
	struct gfront_http_req r;
	struct err e = {0};

	assert_int_equal(parse("GET /.well-known/jwks.json?x=1&y HTTP/1.1\r\nHost: as:50004\r\n"
	                       "Accept: */*\r\n\r\n",
	                       &r, &e),
	                 1);
	assert_string_equal(r.method, "GET");
	assert_string_equal(r.path, "/.well-known/jwks.json");
	assert_int_equal(r.minor, 1);
	assert_int_equal(parse("HEAD /healthz HTTP/1.0\r\n\r\n", &r, &e), 1);
	assert_string_equal(r.method, "HEAD");
	assert_int_equal(r.minor, 0);
}

static void test_partial_head_needs_more(void **state)
{
	struct gfront_http_req r;
	struct err e = {0};

	assert_int_equal(parse("", &r, &e), 0);
	assert_int_equal(parse("GE", &r, &e), 0);
	assert_int_equal(parse("GET /metrics HTTP/1.1\r\nHost: x\r\n", &r, &e), 0);
	assert_int_equal(parse("GET /metrics HTTP/1.1\r\n\r", &r, &e), 0);
}

static void test_malformed_heads_are_refused(void **state)
{
	static const char *bad[] = {
	    "\x16\x03\x01\x00\x05",               /* a TLS record on a plaintext port */
	    "G@T / HTTP/1.1\r\n\r\n",             /* not a token character */
	    "GET relative HTTP/1.1\r\n\r\n",      /* not origin-form */
	    "GET /a\x01 HTTP/1.1\r\n\r\n",        /* control character in the path */
	    "GET / HTTP/2.0\r\n\r\n",             /* not HTTP/1.x */
	    "GET / HTTP/1.1\r\nNoColon\r\n\r\n",  /* header without a name */
	    "GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", /* DEL in a value */
	    "GET / HTTP/1.1\r\nX: a\nY: b\r\n\r\n",
	    "AVERYVERYLONGMETHODNAME / HTTP/1.1\r\n\r\n",
	};
	struct gfront_http_req r;
	struct err e;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&e, 0, sizeof(e));
		assert_int_equal(parse(bad[i], &r, &e), -1);
		assert_true(e.msg[0] != '\0');
	}
}

static void test_long_heads_and_paths_are_refused(void **state)
{
	static char big[GFRONT_HEAD_MAX + 64];
	struct gfront_http_req r;
	struct err e = {0};

	memset(big, 'a', sizeof(big) - 1);
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	assert_int_equal(gfront_http_parse((const uint8_t *)big, sizeof(big) - 1, &r, &e), -1);
	assert_non_null(strstr(e.msg, "longer than"));
	/* a 300-byte path does not fit the 255 the front keeps */
	memset(big, 'p', 305);
	memcpy(big, "GET /", 5);
	memcpy(big + 305, " HTTP/1.1\r\n\r\n", 13);
	assert_int_equal(gfront_http_parse((const uint8_t *)big, 318, &r, &e), -1);
}

static void test_bytes_after_the_head_are_not_read(void **state)
{
	struct gfront_http_req r;
	struct err e = {0};

	static const char in[] = "GET /healthz HTTP/1.1\r\n\r\n\x00\x01garbage";
	static const char nul[] = "G\x00T / HTTP/1.1\r\n\r\n";

	assert_int_equal(gfront_http_parse((const uint8_t *)in, sizeof(in) - 1, &r, &e), 1);
	assert_string_equal(r.path, "/healthz");
	assert_int_equal(gfront_http_parse((const uint8_t *)nul, sizeof(nul) - 1, &r, &e), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_get_with_headers_and_query),
	    cmocka_unit_test(test_partial_head_needs_more),
	    cmocka_unit_test(test_malformed_heads_are_refused),
	    cmocka_unit_test(test_long_heads_and_paths_are_refused),
	    cmocka_unit_test(test_bytes_after_the_head_are_not_read),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
