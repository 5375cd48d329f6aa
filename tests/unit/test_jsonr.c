/* jsonr_object against json_loadb(JSON_REJECT_DUPLICATES): the same values in the same order
 * for the texts it takes (escapes, UTF-8, integers at 18 digits, nesting, white space, random
 * documents), and NULL, leaving the decision to jansson, for every text jansson refuses and
 * for the kinds it leaves to jansson (reals, long integers, surrogate escapes, deep nesting);
 * and, on random mutations of valid documents, never a text jansson refuses or reads
 * differently. */
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
#include "jsonr.h"
#include "testjson.h"

/* fast, jsonr's reading of text (taken), equals jansson's: the same values, and the same
 * text when written out again (which compares order and integer kinds too). */
static void assert_read_as_jansson(json_t *fast, const char *text, size_t len)
{
	json_t *slow = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	assert_non_null(slow);
	assert_true(json_equal(fast, slow));
	char *a = json_dumps(fast, JSON_COMPACT | JSON_PRESERVE_ORDER);
	char *b = json_dumps(slow, JSON_COMPACT | JSON_PRESERVE_ORDER);
	assert_string_equal(a, b);
	free(a);
	free(b);
	json_decref(fast);
	json_decref(slow);
}

/* jsonr's reading of text equals jansson's, and it took the text. */
static void assert_taken(const char *text, size_t len)
{
	json_t *fast = jsonr_object(text, len);
	assert_non_null(fast);
	assert_read_as_jansson(fast, text, len);
}

/* Either not taken, or read as jansson reads it; *taken counts the second. */
static void assert_never_differs(const char *text, size_t len, int *taken)
{
	json_t *fast = jsonr_object(text, len);
	if (fast == NULL)
		return;
	assert_read_as_jansson(fast, text, len);
	(*taken)++;
}

#define TAKEN(s) assert_taken(s, sizeof(s) - 1)

static void test_jsonr_reads_as_jansson_does(void **state)
{
	TAKEN("{}");
	TAKEN(" \t\r\n{ \"a\" : [ 1 , -2 , 0 , -0 , true , false , null , [ ] , { } ] }\n ");
	TAKEN("{\"iat\":1796689303,\"max\":999999999999999999,\"min\":-999999999999999999}");
	TAKEN("{\"esc\":\"q\\\" b\\\\ s\\/ "
	      "\\b\\f\\n\\r\\t\",\"u\":\"\\u0041\\u00e9\\u20AC\\uffff\"}");
	TAKEN("{\"utf8\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf \x7f\"}");
	TAKEN("{\"z\":1,\"a\":2,\"m\":{\"y\":[{\"k\":\"v\"}],\"b\":\"\"},\"\":\"empty key\"}");
	TAKEN("{\"k\\u00e9y\":1,\"k\xc3\xa9y2\":2}");
	/* a key whose text has an escape, then a value that also decodes into the scratch */
	TAKEN("{\"a\\nb\":\"c\\td\",\"e\\\"\":[\"\\u00ff\",\"x\\\\\"]}");
}

static void test_jsonr_refuses_what_jansson_refuses(void **state)
{
	const char *bad[] = {
	    "",
	    "[",
	    "\"s",
	    "1",
	    "{",
	    "{\"a\":}",
	    "{\"a\"}",
	    "{\"a\":1,}",
	    "{,}",
	    "{\"a\":1}x",
	    "{\"a\":01}",
	    "{\"a\":+1}",
	    "{\"a\":-}",
	    "{\"a\":tru}",
	    "{\"a\":nul}",
	    "{\"a\":[1,]}",
	    "{'a':1}",
	    "{\"a\":1 \"b\":2}",
	    "{\"a\":1,\"a\":2}",
	    "{\"a\":\"\x01\"}",
	    "{\"a\":\"\xc0\xaf\"}",
	    "{\"a\":\"\xed\xa0\x80\"}",
	    "{\"a\":\"\\u0000\"}",
	    "{\"a\":\"\\x\"}",
	    "{\"a\":\"\\u12G4\"}",
	    "{\"a\":\"open}",
	    "{\"a\":1}\x00",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = strlen(bad[i]) + (i == sizeof(bad) / sizeof(bad[0]) - 1);
		json_t *slow = json_loadb(bad[i], len, JSON_REJECT_DUPLICATES, NULL);
		assert_null(slow); /* jansson refuses each of these */
		assert_null(jsonr_object(bad[i], len));
	}
	/* texts that are not an object are left to jansson, which takes these */
	assert_null(jsonr_object("[]", 2));
	assert_null(jsonr_object("\"s\"", 3));
}

static void test_jsonr_leaves_reals_and_edge_numbers_to_jansson(void **state)
{
	const char *left[] = {"{\"a\":1.5}", "{\"a\":1e3}", "{\"a\":1234567890123456789}",
	                      "{\"a\":\"\\ud83d\\ude00\"}", "{\"a\":-9223372036854775808}"};
	for (size_t i = 0; i < sizeof(left) / sizeof(left[0]); i++) {
		assert_null(jsonr_object(left[i], strlen(left[i])));
		json_t *slow = json_loadb(left[i], strlen(left[i]), JSON_REJECT_DUPLICATES, NULL);
		assert_non_null(
		    slow); /* jansson takes them: the caller's fallback still reads them */
		json_decref(slow);
	}
	char deep[300];
	size_t n = 0;
	deep[n++] = '{';
	memcpy(deep + n, "\"a\":", 4), n += 4;
	for (int i = 0; i < 100; i++)
		deep[n++] = '[';
	for (int i = 0; i < 100; i++)
		deep[n++] = ']';
	deep[n++] = '}';
	assert_null(jsonr_object(deep, n));
	/* and jose_decode_segment still reads a real, through jansson */
	json_t *j = jose_decode_segment("eyJyIjowLjI1fQ", 14, "payload", &(struct err){0});
	assert_non_null(j);
	assert_true(json_is_real(json_object_get(j, "r")));
	json_decref(j);
}

static const struct tj_kinds kinds = {0, 0};

static void test_jsonr_random_documents_and_mutations(void **state)
{
	tj_seed(0x2545F4914F6CDD1DULL); /* the same documents on every run */
	static const char subst[] = "{}[]\",:\\ 0-1e.tfnu\x80\xc3";
	int taken = 0;
	for (int i = 0; i < 2000; i++) {
		json_t *v = json_object();
		json_object_set_new(v, "doc", tj_value(0, &kinds));
		char *text = json_dumps(v, (i & 1) ? JSON_COMPACT : JSON_INDENT(1));
		size_t len = strlen(text);
		assert_taken(text, len);
		for (int m = 0; m < 20 && len > 0; m++) { /* one byte changed, or the text cut */
			char *t = malloc(len);
			memcpy(t, text, len);
			size_t at = tj_next() % len, l = len;
			if (m % 4 == 3)
				l = at;
			else
				t[at] = subst[tj_next() % (sizeof(subst) - 1)];
			assert_never_differs(t, l, &taken);
			free(t);
		}
		free(text);
		json_decref(v);
	}
	assert_true(taken > 2000); /* the mutations did reach texts it takes */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_jsonr_reads_as_jansson_does),
	    cmocka_unit_test(test_jsonr_refuses_what_jansson_refuses),
	    cmocka_unit_test(test_jsonr_leaves_reals_and_edge_numbers_to_jansson),
	    cmocka_unit_test(test_jsonr_random_documents_and_mutations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
