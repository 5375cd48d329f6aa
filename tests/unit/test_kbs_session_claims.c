/*
 * The claims of the token an in-memory session verified at /attest (issue 13): decoded again
 * from the kept token while the session lives and before their deadline, never after it (the
 * caller then takes the token path, whose full check refuses what expired), never for a
 * session that has not attested or whose token was not verified, costing the table nothing
 * beyond the token, and not used at all by a shared store.
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

/* header.payload.signature with a payload segment of `plen` characters */
static char *token_with_payload(size_t plen)
{
	char *t = malloc(plen + 16);
	memcpy(t, "hdr.", 4);
	memset(t + 4, 'p', plen);
	memcpy(t + 4 + plen, ".sig", 5);
	return t;
}

static void test_claims_handed_out_before_their_deadline(void **state)
{
	struct err e = {0};
	struct kbs_sessions *s = kbs_sessions_new(10, &e);
	double now = (double)time(NULL);
	char id[33];
	json_t *claims = json_pack("{s:s}", "k", "v"), *got = NULL;
	const char *tok = "hdr.eyJrIjoidiJ9.sig"; /* payload {"k":"v"} */
	assert_true(kbs_sessions_keep_claims(s));
	assert_int_equal(kbs_sessions_create(s, "tdx", "n", NULL, (long long)now + 300, id, &e), 0);
	/* not attested yet: none */
	assert_int_equal(kbs_sessions_claims(s, id, &got), 1);
	assert_null(got);
	assert_int_equal(kbs_sessions_attest_verified(s, id, tok, claims, now + 60, &e), 0);
	assert_int_equal(kbs_sessions_claims(s, id, &got), 0);
	assert_true(json_equal(got, claims)); /* the token's payload, decoded again */
	assert_ptr_not_equal(got, claims);
	json_decref(got);
	/* the token is what is kept, for the token path too */
	struct kbs_session ss;
	assert_int_equal(kbs_sessions_get(s, id, &ss), 0);
	assert_string_equal(ss.token, tok);
	assert_true(ss.claims_until > now);
	kbs_session_clear(&ss);
	assert_int_equal(kbs_sessions_claims(s, "0123", &got), 1);
	json_decref(claims);
	kbs_sessions_free(s);
}

static void test_claims_past_their_deadline_are_not_used(void **state)
{
	struct err e = {0};
	struct kbs_sessions *s = kbs_sessions_new(10, &e);
	double now = (double)time(NULL);
	char id[33];
	json_t *claims = json_pack("{s:s}", "k", "v"), *got = NULL;
	assert_int_equal(kbs_sessions_create(s, "tdx", "n", NULL, (long long)now + 300, id, &e), 0);
	assert_int_equal(kbs_sessions_attest_verified(s, id, "a.b.c", claims, now - 1, &e), 0);
	assert_int_equal(kbs_sessions_claims(s, id, &got), 1);
	assert_null(got);
	/* the session itself lives on: its token goes to the full check */
	struct kbs_session ss;
	assert_int_equal(kbs_sessions_get(s, id, &ss), 0);
	assert_string_equal(ss.token, "a.b.c");
	kbs_session_clear(&ss);
	/* attested without claims: none either */
	assert_int_equal(kbs_sessions_create(s, "tdx", "n", NULL, (long long)now + 300, id, &e), 0);
	assert_int_equal(kbs_sessions_attest(s, id, "a.b.c", &e), 0);
	assert_int_equal(kbs_sessions_claims(s, id, &got), 1);
	json_decref(claims);
	kbs_sessions_free(s);
}

static void test_claims_of_an_expired_session_are_not_used(void **state)
{
	struct err e = {0};
	struct kbs_sessions *s = kbs_sessions_new(10, &e);
	double now = (double)time(NULL);
	char id[33];
	json_t *claims = json_pack("{s:s}", "k", "v"), *got = NULL;
	assert_int_equal(kbs_sessions_create(s, "tdx", "n", NULL, (long long)now - 2, id, &e), 0);
	/* set_attested refuses an expired session, so nothing is kept */
	assert_int_equal(kbs_sessions_attest_verified(s, id, "a.b.c", claims, now + 60, &e), 1);
	assert_int_equal(kbs_sessions_claims(s, id, &got), 1);
	assert_null(got);
	json_decref(claims);
	kbs_sessions_free(s);
}

/* A verified token costs the table its own bytes only: what fits unverified fits verified. */
static void test_verified_tokens_cost_no_more_bytes(void **state)
{
	struct err e = {0};
	struct kbs_sessions *s = kbs_sessions_new(10, &e);
	struct kbs_session_limits l = {.max_bytes = 3000};
	kbs_sessions_set_limits(s, &l);
	long long now = (long long)time(NULL);
	char a[33], b[33];
	char *tok = token_with_payload(400);
	json_t *claims = json_pack("{s:s}", "k", "v"), *got = NULL;
	assert_int_equal(kbs_sessions_create(s, "tdx", "n", NULL, now + 300, a, &e), 0);
	assert_int_equal(kbs_sessions_attest(s, a, tok, &e), 0);
	assert_int_equal(kbs_sessions_create(s, "tdx", "n", NULL, now + 300, b, &e), 0);
	assert_int_equal(kbs_sessions_attest_verified(s, b, tok, claims, now + 60.0, &e), 0);
	/* a payload that is not JSON gives no claims: the caller takes the token path */
	assert_int_equal(kbs_sessions_claims(s, b, &got), 1);
	assert_null(got);
	json_decref(claims);
	free(tok);
	kbs_sessions_free(s);
}

/* A shared store keeps the token alone; the replica that verified it at /attest keeps the
 * claims in its own copy, any other replica reading the session verifies the token. */
static void test_a_store_keeps_claims_only_in_the_attesting_copy(void **state)
{
	struct err e = {0};
	json_t *cfg = json_pack("{s:s}", "storage_type", "Memory");
	struct kv *kv = kv_open(cfg, &e);
	assert_non_null(kv);
	struct kbs_sessions *s = kbs_sessions_new_kv(kv, &e);
	struct kbs_sessions *other = kbs_sessions_new_kv(kv, &e);
	assert_true(kbs_sessions_keep_claims(s));
	long long now = (long long)time(NULL);
	char id[33], id2[33], id3[33];
	/* payload {"k":"v"} */
	const char *tok = "eyJhbGciOiJFUzI1NiJ9.eyJrIjoidiJ9.c2ln";
	json_t *claims = json_pack("{s:s}", "k", "v"), *got = NULL;
	assert_int_equal(kbs_sessions_create(s, "tdx", "n", NULL, now + 300, id, &e), 0);
	assert_int_equal(kbs_sessions_attest_verified(s, id, tok, claims, now + 60.0, &e), 0);
	assert_true(kbs_sessions_claims_live(s, id));
	assert_int_equal(kbs_sessions_claims(s, id, &got), 0);
	assert_string_equal(json_string_value(json_object_get(got, "k")), "v");
	json_decref(got);
	got = NULL;
	/* another replica: no claims, the stored record carries no mark of them */
	assert_false(kbs_sessions_claims_live(other, id));
	assert_int_equal(kbs_sessions_claims(other, id, &got), 1);
	struct kbs_session ss;
	assert_int_equal(kbs_sessions_get(other, id, &ss), 0);
	assert_string_equal(ss.token, tok);
	assert_true(ss.claims_until == 0);
	kbs_session_clear(&ss);
	assert_false(kbs_sessions_claims_live(other, id));
	/* claims past their deadline, or a token that was not verified: none */
	assert_int_equal(kbs_sessions_create(s, "tdx", "n", NULL, now + 300, id2, &e), 0);
	assert_int_equal(kbs_sessions_attest_verified(s, id2, tok, claims, now - 1.0, &e), 0);
	assert_false(kbs_sessions_claims_live(s, id2));
	assert_int_equal(kbs_sessions_claims(s, id2, &got), 1);
	assert_int_equal(kbs_sessions_create(s, "tdx", "n", NULL, now + 300, id3, &e), 0);
	assert_int_equal(kbs_sessions_attest_verified(s, id3, tok, NULL, 0, &e), 0);
	assert_false(kbs_sessions_claims_live(s, id3));
	assert_int_equal(kbs_sessions_claims(s, id3, &got), 1);
	json_decref(claims);
	kbs_sessions_free(s);
	kbs_sessions_free(other);
	kv_close(kv);
	json_decref(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_claims_handed_out_before_their_deadline),
	    cmocka_unit_test(test_claims_past_their_deadline_are_not_used),
	    cmocka_unit_test(test_claims_of_an_expired_session_are_not_used),
	    cmocka_unit_test(test_verified_tokens_cost_no_more_bytes),
	    cmocka_unit_test(test_a_store_keeps_claims_only_in_the_attesting_copy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
