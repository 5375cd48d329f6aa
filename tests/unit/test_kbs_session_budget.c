/*
 * The session table's budgets beyond its count (issue 14 V1, V2): test TEEs yield to real
 * ones, the table is bounded in bytes, a token over the cap is refused, in memory and in a
 * key-value store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "kbs/kbs.h"
#include "kv/kv.h"

static const struct kbs_session_limits yield = {.test_tees_yield = true};

static int present(struct kbs_sessions *s, const char *id)
{
	struct kbs_session ss;
	int rc = kbs_sessions_get(s, id, &ss);
	if (rc == 0)
		kbs_session_clear(&ss);
	return rc == 0;
}

static void test_tee_is_test(void **state)
{
	assert_true(kbs_tee_is_test("sample"));
	assert_true(kbs_tee_is_test("sampledevice"));
	assert_false(kbs_tee_is_test("tdx"));
	assert_false(kbs_tee_is_test("samples"));
	assert_false(kbs_tee_is_test(""));
}

/* A table full of attested sample sessions: a sample /auth is refused as before, a real
 * TEE's /auth evicts the oldest of them. */
static void test_attested_sample_sessions_yield_to_a_real_tee(void **state)
{
	struct err e = {0};
	struct kbs_sessions *s = kbs_sessions_new(3, &e);
	kbs_sessions_set_limits(s, &yield);
	long long now = (long long)time(NULL);
	char ids[3][33], id[33];
	for (int i = 0; i < 3; i++) {
		assert_int_equal(
		    kbs_sessions_create(s, "sample", "n", NULL, now + 300 + i, ids[i], &e), 0);
		assert_int_equal(kbs_sessions_attest(s, ids[i], "tok", &e), 0);
	}
	assert_int_equal(kbs_sessions_create(s, "sampledevice", "n", NULL, now + 310, id, &e), -2);
	assert_non_null(strstr(e.msg, "session table full"));
	assert_int_equal(kbs_sessions_create(s, "tdx", "n", NULL, now + 311, id, &e), 0);
	unsigned long long ex, un;
	kbs_sessions_evictions(s, &ex, &un);
	assert_int_equal(ex + un, 0); /* a test_tee eviction, counted apart */
	assert_false(present(s, ids[0]));
	assert_true(present(s, ids[1]) && present(s, ids[2]) && present(s, id));
	/* the real session attests: its token finds room, nobody else is evicted */
	assert_int_equal(kbs_sessions_attest(s, id, "real", &e), 0);
	assert_int_equal(kbs_sessions_count(s), 3);
	kbs_sessions_free(s);
}

/* A sample flood never pushes a real attester out between its /auth and its /attest, and an
 * unattested sample session goes before an attested one. */
static void test_sample_auth_evicts_only_unattested_samples(void **state)
{
	struct err e = {0};
	struct kbs_sessions *s = kbs_sessions_new(3, &e);
	kbs_sessions_set_limits(s, &yield);
	long long now = (long long)time(NULL);
	char real[33], done[33], pend[33], id[33];
	assert_int_equal(kbs_sessions_create(s, "tdx", "n", NULL, now + 300, real, &e), 0);
	assert_int_equal(kbs_sessions_create(s, "sample", "n", NULL, now + 301, done, &e), 0);
	assert_int_equal(kbs_sessions_attest(s, done, "tok", &e), 0);
	assert_int_equal(kbs_sessions_create(s, "sample", "n", NULL, now + 302, pend, &e), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(kbs_sessions_create(s, "sample", "n", NULL, now + 303 + i, id, &e),
		                 0);
	assert_true(present(s, real) && present(s, done) && present(s, id));
	assert_false(present(s, pend));
	unsigned long long ex, un;
	kbs_sessions_evictions(s, &ex, &un);
	assert_int_equal(un, 10);
	/* no unattested sample left: the next sample /auth is refused, the real one stays */
	assert_int_equal(kbs_sessions_attest(s, id, "tok", &e), 0);
	assert_int_equal(kbs_sessions_create(s, "sample", "n", NULL, now + 320, pend, &e), -2);
	assert_true(present(s, real));
	/* a real /auth evicts the attested samples (oldest first) before the unattested real */
	assert_int_equal(kbs_sessions_create(s, "tdx", "n", NULL, now + 321, id, &e), 0);
	assert_false(present(s, done));
	assert_true(present(s, real));
	kbs_sessions_free(s);
}

/* The bytes bound: tokens count, attested real sessions are never evicted for it. */
static void test_table_bounded_in_bytes(void **state)
{
	struct err e = {0};
	struct kbs_sessions *s = kbs_sessions_new(1000, &e);
	struct kbs_session_limits l = {.max_bytes = 3000, .test_tees_yield = true};
	kbs_sessions_set_limits(s, &l);
	long long now = (long long)time(NULL);
	char tok[1001];
	memset(tok, 't', 1000);
	tok[1000] = 0;
	char a[33], b[33], c[33], d[33];
	assert_int_equal(kbs_sessions_create(s, "tdx", "n", NULL, now + 300, a, &e), 0);
	assert_int_equal(kbs_sessions_attest(s, a, tok, &e), 0);
	assert_int_equal(kbs_sessions_create(s, "tdx", "n", NULL, now + 301, b, &e), 0);
	assert_int_equal(kbs_sessions_attest(s, b, tok, &e), 0);
	assert_int_equal(kbs_sessions_create(s, "tdx", "n", NULL, now + 302, c, &e), 0);
	/* c's token does not fit beside a and b: /attest is refused, a and b are kept */
	assert_int_equal(kbs_sessions_attest(s, c, tok, &e), -2);
	assert_non_null(strstr(e.msg, "max_sessions_bytes"));
	assert_true(present(s, a) && present(s, b) && present(s, c));
	/* a sample session with a token fits; a real /auth's entry evicts it to make room */
	kbs_sessions_free(s);
	s = kbs_sessions_new(1000, &e);
	kbs_sessions_set_limits(s, &l);
	assert_int_equal(kbs_sessions_create(s, "tdx", "n", NULL, now + 300, a, &e), 0);
	assert_int_equal(kbs_sessions_attest(s, a, tok, &e), 0);
	assert_int_equal(kbs_sessions_create(s, "sample", "n", NULL, now + 301, b, &e), 0);
	assert_int_equal(kbs_sessions_attest(s, b, tok, &e), 0);
	assert_int_equal(kbs_sessions_create(s, "tdx", "n", NULL, now + 302, c, &e), 0);
	assert_int_equal(kbs_sessions_attest(s, c, tok, &e), 0);
	assert_false(present(s, b));
	assert_true(present(s, a) && present(s, c));
	/* only attested real sessions are left and another token does not fit */
	assert_int_equal(kbs_sessions_create(s, "tdx", "n", NULL, now + 303, d, &e), 0);
	assert_int_equal(kbs_sessions_attest(s, d, tok, &e), -2);
	kbs_sessions_free(s);
}

static void test_token_over_the_cap_is_refused(void **state)
{
	struct err e = {0};
	struct kbs_session_limits l = {.max_token_size = 1024};
	long long now = (long long)time(NULL);
	char big[2001], id[33];
	memset(big, 'x', 2000);
	big[2000] = 0;
	struct kv *kv = kv_open(NULL, &e);
	assert_non_null(kv);
	struct kbs_sessions *tables[2] = {kbs_sessions_new(10, &e), kbs_sessions_new_kv(kv, &e)};
	for (int i = 0; i < 2; i++) {
		struct kbs_sessions *s = tables[i];
		kbs_sessions_set_limits(s, &l);
		assert_int_equal(kbs_sessions_create(s, "sample", "n", NULL, now + 300, id, &e), 0);
		memset(&e, 0, sizeof(e));
		assert_int_equal(kbs_sessions_attest(s, id, big, &e), 3);
		assert_non_null(strstr(e.msg, "2000 bytes"));
		assert_non_null(strstr(e.msg, "max_session_token_size (1024)"));
		struct kbs_session ss;
		assert_int_equal(kbs_sessions_get(s, id, &ss), 0);
		assert_int_equal(ss.state, KBS_SESSION_AUTHED);
		assert_null(ss.token);
		kbs_session_clear(&ss);
		/* a token within the cap is kept */
		assert_int_equal(kbs_sessions_attest(s, id, "small", &e), 0);
		kbs_sessions_free(s);
	}
	kv_close(kv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tee_is_test),
	    cmocka_unit_test(test_attested_sample_sessions_yield_to_a_real_tee),
	    cmocka_unit_test(test_sample_auth_evicts_only_unattested_samples),
	    cmocka_unit_test(test_table_bounded_in_bytes),
	    cmocka_unit_test(test_token_over_the_cap_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
