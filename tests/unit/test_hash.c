/*
 * common/hash: SHA-2 selected by the names configs and evidence use, digest lengths and a
 * FIPS 180 vector.
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
#include "hash.h"

static void test_hash_names_and_digests(void **state)
{
	uint8_t out[HASH_MAX];
	assert_int_equal(hash_alg_from_name("SHA384"), HASH_SHA384);
	assert_int_equal(hash_alg_from_name("sha-256"), HASH_SHA256);
	assert_int_equal(hash_alg_from_name("sm3"), HASH_NONE);
	assert_int_equal(hash_digest(HASH_SHA256, "abc", 3, out), 32);
	char *h = hex_encode(out, 32);
	assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	free(h);
	assert_int_equal(hash_digest(HASH_SHA512, "", 0, out), 64);
	assert_int_equal(hash_len(HASH_SHA384), 48);
}

/* The digests are fetched once and kept: every algorithm still gives its FIPS 180 value on a
 * second call, and an unknown one gives nothing. */
static void test_hash_kept_digests_repeat_and_refuse_unknown(void **state)
{
	uint8_t out[HASH_MAX];
	for (int i = 0; i < 2; i++) {
		assert_int_equal(hash_digest(HASH_SHA384, "abc", 3, out), 48);
		char *h = hex_encode(out, 48);
		assert_string_equal(h, "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded163"
		                       "1a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7");
		free(h);
		assert_int_equal(hash_digest(HASH_SHA256, "abc", 3, out), 32);
		assert_int_equal(out[0], 0xba);
	}
	assert_int_equal(hash_digest(HASH_NONE, "abc", 3, out), 0);
	assert_int_equal(hash_digest((enum hash_alg)42, "abc", 3, out), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hash_names_and_digests),
	    cmocka_unit_test(test_hash_kept_digests_repeat_and_refuse_unknown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
