/* jsonw_compact against json_dumps(JSON_COMPACT | JSON_PRESERVE_ORDER): the same bytes on
 * every escape, on UTF-8 at the edges of well-formedness, on integers at their limits, on
 * insertion order and on random documents; NULL (the caller then asks jansson) on a real, on
 * a string jansson would refuse and on nesting past the limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "jose/jose_int.h"
#include "jsonw.h"
#include "testjson.h"

/* Both texts of v, compared; jsonw's length checked too. */
static void assert_same(const json_t *v)
{
	size_t n = 0;
	char *want = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
	char *got = jsonw_compact(v, &n);
	assert_non_null(want);
	assert_non_null(got);
	assert_string_equal(got, want);
	assert_int_equal(n, strlen(want));
	free(want);
	free(got);
}

static void test_jsonw_every_ascii_byte_escaped_as_jansson_does(void **state)
{
	char s[128];
	for (int i = 0; i < 127; i++)
		s[i] = (char)(i + 1);
	json_t *o = json_object();
	json_object_set_new(o, "all", json_stringn(s, 127));
	json_object_setn_new(o, s, 127, json_true()); /* the same bytes as a key */
	json_object_set_new(o, "slash/quote\"back\\", json_stringn("a\0b", 3));
	assert_same(o);
	char *got = jsonw_compact(o, NULL);
	assert_non_null(strstr(got, "\"a\\u0000b\"")); /* an embedded NUL, upper-case \u form */
	assert_non_null(strstr(got, "\\u001F"));
	free(got);
	json_decref(o);
}

static void test_jsonw_utf8_passes_through(void **state)
{
	/* 2, 3 and 4 byte forms, and the edges of each range that are still well-formed */
	const char *ok[] = {"\xc2\x80",         "\xdf\xbf",         "\xe0\xa0\x80",
	                    "\xed\x9f\xbf",     "\xee\x80\x80",     "\xef\xbf\xbf",
	                    "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf", "caf\xc3\xa9 \xe2\x82\xac"};
	json_t *a = json_array();
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		json_array_append_new(a, json_string(ok[i]));
	assert_int_equal(json_array_size(a), sizeof(ok) / sizeof(ok[0]));
	assert_same(a);
	json_decref(a);
}

static void test_jsonw_refuses_what_jansson_refuses(void **state)
{
	/* overlong, surrogate, above U+10FFFF, cut short, a lone continuation byte */
	const char *bad[] = {"\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
	                     "\xe2\x82", "\x80",         "\xff"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *o = json_pack("{s:o}", "k", json_stringn_nocheck(bad[i], strlen(bad[i])));
		assert_null(jsonw_compact(o, NULL));
		char *j = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		assert_null(j); /* jansson refuses it too: the fallback decides the same */
		json_decref(o);
	}
	/* a scalar at the top: json_dumps without JSON_ENCODE_ANY writes nothing */
	json_t *top[] = {json_string("x"), json_integer(5), json_true(), json_null()};
	for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++) {
		assert_null(jsonw_compact(top[i], NULL));
		assert_null(json_dumps(top[i], JSON_COMPACT | JSON_PRESERVE_ORDER));
		json_decref(top[i]);
	}
}

static void test_jsonw_integers_and_literals(void **state)
{
	json_t *a =
	    json_pack("[I,I,I,I,I,b,b,n,{},[]]", (json_int_t)0, (json_int_t)-1,
	              (json_int_t)1796689303, (json_int_t)INT64_MAX, (json_int_t)INT64_MIN, 1, 0);
	assert_non_null(a);
	assert_same(a);
	json_decref(a);
}

static void test_jsonw_keeps_insertion_order(void **state)
{
	json_t *o = json_object();
	const char *keys[] = {"z", "eat_profile", "a", "iat", "m", "submods"};
	for (size_t i = 0; i < 6; i++)
		json_object_set_new(o, keys[i], json_integer((json_int_t)i));
	json_object_del(o, "a");
	json_object_set_new(o, "a", json_null()); /* re-added: now last */
	char *got = jsonw_compact(o, NULL);
	assert_string_equal(got, "{\"z\":0,\"eat_profile\":1,\"iat\":3,\"m\":4,\"submods\":5,"
	                         "\"a\":null}");
	free(got);
	assert_same(o);
	json_decref(o);
}

static void test_jsonw_leaves_reals_and_deep_nesting_to_jansson(void **state)
{
	json_t *o = json_pack("{s:[i,f]}", "x", 1, 0.5);
	assert_null(jsonw_compact(o, NULL));
	json_decref(o);
	json_t *deep = json_array(), *cur = deep;
	for (int i = 0; i < 600; i++) {
		json_t *n = json_array();
		json_array_append_new(cur, n);
		cur = n;
	}
	assert_null(jsonw_compact(deep, NULL));
	json_decref(deep);
	/* and jose_b64url_json still serialises both, through jansson */
	o = json_pack("{s:f}", "r", 0.25);
	char *b = jose_b64url_json(o);
	assert_string_equal(b, "eyJyIjowLjI1fQ"); /* {"r":0.25} */
	free(b);
	json_decref(o);
}

static const struct tj_kinds kinds = {1, 1};

static void test_jsonw_random_documents_match_jansson(void **state)
{
	tj_seed(0x9E3779B97F4A7C15ULL); /* the same documents on every run */
	for (int i = 0; i < 3000; i++) {
		json_t *v = json_object();
		json_object_set_new(v, "doc", tj_value(0, &kinds));
		assert_same(v);
		json_decref(v);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_jsonw_every_ascii_byte_escaped_as_jansson_does),
	    cmocka_unit_test(test_jsonw_utf8_passes_through),
	    cmocka_unit_test(test_jsonw_refuses_what_jansson_refuses),
	    cmocka_unit_test(test_jsonw_integers_and_literals),
	    cmocka_unit_test(test_jsonw_keeps_insertion_order),
	    cmocka_unit_test(test_jsonw_leaves_reals_and_deep_nesting_to_jansson),
	    cmocka_unit_test(test_jsonw_random_documents_match_jansson),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
