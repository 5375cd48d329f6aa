/*
 * common/b64: base64 and base64url against the RFC 4648 vectors, the strict decoder's refusals
 * of sloppy input and what B64_LENIENT lets through, and hex both ways.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "b64.h"

static void test_b64_rfc4648_vectors(void **state)
{
	const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	const char *std[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	const char *url[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
	for (int i = 0; i < 7; i++) {
		char *e = b64_encode((const uint8_t *)in[i], strlen(in[i]), B64_STD);
		assert_string_equal(e, std[i]);
		free(e);
		e = b64_encode((const uint8_t *)in[i], strlen(in[i]), B64_URL);
		assert_string_equal(e, url[i]);
		free(e);
		uint8_t *d;
		size_t n;
		assert_int_equal(b64_decode(std[i], strlen(std[i]), B64_STD, &d, &n), 0);
		assert_int_equal(n, strlen(in[i]));
		assert_memory_equal(d, in[i], n);
		free(d);
		assert_int_equal(b64_decode(url[i], strlen(url[i]), B64_URL, &d, &n), 0);
		assert_memory_equal(d, in[i], n);
		free(d);
	}
}

static void test_b64_strict_decoding_refuses_sloppy_input(void **state)
{
	uint8_t *d;
	size_t n;
	/* padding in base64url, missing padding in base64, wrong alphabet, non-zero tail bits */
	assert_int_equal(b64_decode("Zg==", 4, B64_URL, &d, &n), -1);
	assert_int_equal(b64_decode("Zg", 2, B64_STD, &d, &n), -1);
	assert_int_equal(b64_decode("-_8=", 4, B64_STD, &d, &n), -1);
	assert_int_equal(b64_decode("+/8", 3, B64_URL, &d, &n), -1);
	assert_int_equal(b64_decode("Zh==", 4, B64_STD, &d, &n), -1);
	assert_int_equal(b64_decode("Z", 1, B64_URL, &d, &n), -1);
	assert_int_equal(b64_decode("Zg==Zg==", 8, B64_STD, &d, &n), -1);
	/* lenient accepts either alphabet, optional padding and line breaks */
	assert_int_equal(b64_decode("Zm9v\nYmE", 8, B64_URL | B64_LENIENT, &d, &n), 0);
	assert_memory_equal(d, "fooba", 5);
	free(d);
	assert_int_equal(b64_decode("+/8=", 4, B64_URL | B64_LENIENT, &d, &n), 0);
	assert_int_equal(n, 2);
	free(d);
}

static void test_hex_round_trip_and_refusals(void **state)
{
	const uint8_t b[] = {0x00, 0xab, 0xff, 0x10};
	char *h = hex_encode(b, 4);
	uint8_t *d;
	size_t n;
	assert_string_equal(h, "00abff10");
	assert_int_equal(hex_decode("00ABff10", 8, &d, &n), 0);
	assert_memory_equal(d, b, 4);
	free(d);
	free(h);
	assert_int_equal(hex_decode("abc", 3, &d, &n), -1);
	assert_int_equal(hex_decode("zz", 2, &d, &n), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_b64_rfc4648_vectors),
	    cmocka_unit_test(test_b64_strict_decoding_refuses_sloppy_input),
	    cmocka_unit_test(test_hex_round_trip_and_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
