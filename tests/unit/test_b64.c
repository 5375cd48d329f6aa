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

/* The decoder as it was written one symbol at a time, kept as the reference the table-driven
 * decoder (four symbols a step) must agree with on every input. */
static int ref_sym(char c, int url, int lenient)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if ((c == '+' || c == '/') && (!url || lenient))
		return c == '+' ? 62 : 63;
	if ((c == '-' || c == '_') && (url || lenient))
		return c == '-' ? 62 : 63;
	return -1;
}

static int ref_decode(const char *s, size_t slen, int variant, uint8_t *buf, size_t *outlen)
{
	int lenient = (variant & B64_LENIENT) != 0, v = variant & 3, url = v != B64_STD;
	size_t n = 0, pads = 0, o = 0;
	uint32_t acc = 0;

	for (size_t i = 0; i < slen; i++) {
		char c = s[i];
		if (lenient && (c == '\n' || c == '\r' || c == ' ' || c == '\t'))
			continue;
		if (c == '=') {
			pads++;
			continue;
		}
		if (pads > 0)
			return -1;
		int d = ref_sym(c, url, lenient);
		if (d < 0)
			return -1;
		acc = acc << 6 | (uint32_t)d;
		if (++n % 4 == 0) {
			buf[o++] = (uint8_t)(acc >> 16);
			buf[o++] = (uint8_t)(acc >> 8);
			buf[o++] = (uint8_t)acc;
			acc = 0;
		}
	}
	size_t rem = n % 4;
	if (rem == 1 || pads > 2)
		return -1;
	if (!lenient) {
		size_t want = rem == 0 ? 0 : 4 - rem;
		if ((v == B64_URL && pads != 0) || (v != B64_URL && pads != want))
			return -1;
	} else if (pads != 0 && (rem == 0 || pads != 4 - rem))
		return -1;
	if (rem == 2) {
		if (!lenient && (acc & 0xF) != 0)
			return -1;
		buf[o++] = (uint8_t)(acc >> 4);
	} else if (rem == 3) {
		if (!lenient && (acc & 0x3) != 0)
			return -1;
		buf[o++] = (uint8_t)(acc >> 10);
		buf[o++] = (uint8_t)(acc >> 2);
	}
	*outlen = o;
	return 0;
}

static void test_b64_decode_agrees_with_the_reference_on_random_text(void **state)
{
	static const char pool[] = "AZaz09+/-_= \n\r\t\x80.QwEr";
	static const int variants[] = {B64_STD, B64_URL, B64_URL_PAD, B64_STD | B64_LENIENT,
	                               B64_URL | B64_LENIENT};
	uint64_t x = 0x9E3779B97F4A7C15ULL;
	int decoded = 0;
	for (int round = 0; round < 200000; round++) {
		char s[40];
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t len = x % sizeof(s);
		/* mostly symbols of one alphabet, now and then anything from the pool */
		for (size_t i = 0; i < len; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			s[i] = (x >> 8) % 16 == 0 ? pool[(x >> 16) % (sizeof(pool) - 1)]
			                          : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrst"
			                            "uvwxyz0123456789+/-_"[(x >> 16) % 66];
		}
		int variant = variants[round % 5];
		uint8_t want[40];
		size_t wl = 0, gl = 0;
		uint8_t *got = NULL;
		int wrc = ref_decode(s, len, variant, want, &wl);
		int grc = b64_decode(s, len, variant, &got, &gl);
		assert_int_equal(grc, wrc);
		if (wrc == 0) {
			assert_int_equal(gl, wl);
			assert_memory_equal(got, want, wl);
			decoded++;
		}
		free(got);
	}
	assert_true(decoded > 10000); /* the inputs did reach valid encodings */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_b64_rfc4648_vectors),
	    cmocka_unit_test(test_b64_strict_decoding_refuses_sloppy_input),
	    cmocka_unit_test(test_hex_round_trip_and_refusals),
	    cmocka_unit_test(test_b64_decode_agrees_with_the_reference_on_random_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
