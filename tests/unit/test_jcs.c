/* RFC 8785 canonicalisation: the SHA-384 vector of kbs-protocol.md §2.5 and RFC 8785's
 * number and sorting examples. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "b64.h"
#include "hash.h"
#include "jcs.h"

static char *canon(const char *text)
{
	json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
	assert_non_null(j);
	char *s = jcs_serialize(j, NULL);
	json_decref(j);
	return s;
}

static void test_jcs_spec_sha384_vector(void **state)
{
	char *s = canon("{\"b\":1,\"a\":\"test\",\"c\":{\"d\":\"e\"}}");
	uint8_t d[HASH_MAX];
	assert_string_equal(s, "{\"a\":\"test\",\"b\":1,\"c\":{\"d\":\"e\"}}");
	assert_int_equal(hash_digest(HASH_SHA384, s, strlen(s), d), 48);
	char *h = hex_encode(d, 48);
	assert_string_equal(h, "e71ce8e70d814ba6639c3612ebee0ff1f76f650f8dbb5e47157e0f3f525cd22c"
	                       "4597480a186427c813ca941da78870c3");
	free(h);
	free(s);
}

static void test_jcs_numbers_in_ecmascript_form(void **state)
{
	const char *in[] = {"1e21", "1e20", "0.000001",          "1e-7",    "-0.0",
	                    "4.50", "2e-3", "333333333.3333333", "1.5e300", "100"};
	const char *want[] = {"1e+21", "100000000000000000000", "0.000001", "1e-7", "0", "4.5",
	                      "0.002", "333333333.3333333",     "1.5e+300", "100"};
	for (int i = 0; i < 10; i++) {
		char *s = canon(in[i]);
		assert_string_equal(s, want[i]);
		free(s);
	}
}

static void test_jcs_strings_and_nesting(void **state)
{
	char *s = canon(
	    "{\"k\":[\"a/b+c=\",\"\\u000f\\n\\\"\",\"\\u20ac\"],\"\\u00e9\":null,\"A\":true}");
	assert_string_equal(s, "{\"A\":true,\"k\":[\"a/b+c=\",\"\\u000f\\n\\\"\",\"\xe2\x82\xac\"],"
	                       "\"\xc3\xa9\":null}");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_jcs_spec_sha384_vector),
	    cmocka_unit_test(test_jcs_numbers_in_ecmascript_form),
	    cmocka_unit_test(test_jcs_strings_and_nesting),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
