/*
 * The claims of the token an in-memory session verified at /attest (issue 13): parsed again
 * from the payload text the session keeps instead of the token while the session lives and
 * before their deadline; after it the session is refused with the sentence the full check of
 * its token would give; never for a session that has not attested or whose token was not
 * verified (those keep the token); counted in the byte budget as what the entry holds; and a
 * shared store keeps the token, its claims only in the attesting replica's copy.
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
#include <openssl/x509.h>

#include "b64.h"
#include "kbs/kbs.h"
#include "kv/kv.h"

/* header.<payload, base64url>.signature, with a long header like an AS's (jwk and x5c) */
static char *token_of(const char *payload)
{
	char *seg = b64_encode((const uint8_t *)payload, strlen(payload), B64_URL);
	size_t n = strlen(seg) + 1200;
	char *t = malloc(n);
	char hdr[1100];
	memset(hdr, 'h', sizeof(hdr) - 1);
	hdr[sizeof(hdr) - 1] = '\0';
	snprintf(t, n, "%s.%s.c2lnbmF0dXJl", hdr, seg);
	free(seg);
	return t;
}

/* An EAR-shaped claims set expiring at exp, as compact JSON text. */
static char *ear_payload(long long exp)
{
	char *p = NULL;
	assert_true(asprintf(&p,
	                     "{\"eat_profile\":\"tag:github.com,2024:confidential-containers/"
	                     "Trustee\",\"iat\":%lld,\"submods\":{\"cpu0\":{\"ear.status\":"
	                     "\"affirming\",\"ear.trustworthiness-vector\":{\"executables\":2,"
	                     "\"hardware\":2},\"ear.veraison.annotated-evidence\":{\"sample\":{"
	                     "\"svn\":\"1\",\"debug\":false,\"ratio\":0.5}}}},\"exp\":%lld,"
	                     "\"iss\":\"CoCo-Attestation-Service\"}",
	                     exp - 300, exp) > 0);
	return p;
}

/* A verified session keeps its payload's text, not its token, and its reads hand the policy
 * what the token's payload parses to, in the same order. */
static void test_claims_handed_out_before_their_deadline(void **state)
{
	struct err e = {0};
	struct kbs_sessions *s = kbs_sessions_new(10, &e);
	long long now = (long long)time(NULL);
	char id[33];
	char *payload = ear_payload(now + 300), *tok = token_of(payload);
	json_t *claims = json_loads(payload, 0, NULL), *got = NULL;
	assert_non_null(claims);
	assert_true(kbs_sessions_keep_claims(s));
	assert_int_equal(kbs_sessions_create(s, "tdx", "n", NULL, now + 300, id, &e), 0);
	/* not attested yet: none */
	assert_int_equal(kbs_sessions_claims(s, id, &got), 1);
	assert_null(got);
	assert_true(kbs_sessions_claims_live(s, id) == false);
	assert_int_equal(kbs_sessions_attest_verified(s, id, tok, claims, now + 360.0, &e), 0);
	assert_true(kbs_sessions_claims_live(s, id));
	for (int read = 0; read < 2; read++) {
		assert_int_equal(kbs_sessions_claims(s, id, &got), 0);
		assert_true(json_equal(got, claims));
		assert_ptr_not_equal(got, claims);
		char *a = json_dumps(got, JSON_COMPACT), *b = json_dumps(claims, JSON_COMPACT);
		assert_string_equal(a, b); /* the members in the token's order */
		assert_string_equal(a, payload);
		free(a);
		free(b);
		json_decref(got);
	}
	/* neither the token nor the consumed nonce is kept */
	struct kbs_session ss;
	assert_int_equal(kbs_sessions_get(s, id, &ss), 0);
	assert_int_equal(ss.state, KBS_SESSION_ATTESTED);
	assert_string_equal(ss.tee, "tdx");
	assert_null(ss.token);
	assert_string_equal(ss.nonce, "");
	assert_true(ss.claims_until == now + 360.0);
	kbs_session_clear(&ss);
	/* a second /attest of the session is refused as before */
	assert_int_equal(kbs_sessions_attest_verified(s, id, tok, claims, now + 360.0, &e), 2);
	assert_int_equal(kbs_sessions_claims(s, "0123", &got), 1);
	json_decref(claims);
	free(tok);
	free(payload);
	kbs_sessions_free(s);
}

/* Past the claims' deadline the session is refused with the sentence the full check of its
 * token gives then (token.c, verify_full): "token expired" once past its exp plus the leeway.
 * Claims whose deadline is a chain's notAfter, before the exp, are not kept: the token is,
 * for each read to verify (past the notAfter the full check may still take the token by a
 * trusted_jwk_sets key), and nothing lapses on its own. */
static void test_a_read_past_the_claims_deadline_is_refused_as_its_token(void **state)
{
	struct err e = {0};
	struct kbs_sessions *s = kbs_sessions_new(10, &e);
	long long now = (long long)time(NULL);
	char expired[33], chain[33], plain[33];
	/* exp 70 s ago: past exp plus the 60 s leeway */
	char *p1 = ear_payload(now - 70), *t1 = token_of(p1);
	char *p2 = ear_payload(now + 300), *t2 = token_of(p2);
	json_t *c1 = json_loads(p1, 0, NULL), *c2 = json_loads(p2, 0, NULL), *got = NULL;
	assert_int_equal(kbs_sessions_create(s, "tdx", "n", NULL, now + 300, expired, &e), 0);
	assert_int_equal(kbs_sessions_attest_verified(
	                     s, expired, t1, c1, (double)(now - 70 + KBS_TOKEN_EXP_LEEWAY), &e),
	                 0);
	/* a chain whose notAfter (in 100 s) comes before the token's exp */
	assert_int_equal(kbs_sessions_create(s, "tdx", "n", NULL, now + 300, chain, &e), 0);
	assert_int_equal(kbs_sessions_attest_verified(s, chain, t2, c2, (double)(now + 100), &e),
	                 0);
	assert_false(kbs_sessions_claims_live(s, expired));
	assert_int_equal(kbs_sessions_claims(s, expired, &got), 1);
	assert_null(got);
	/* the session itself lives on, refused by its reads */
	struct kbs_session ss;
	assert_int_equal(kbs_sessions_get(s, expired, &ss), 0);
	assert_int_equal(ss.state, KBS_SESSION_ATTESTED);
	assert_null(ss.token);
	assert_non_null(ss.claims_lapse);
	assert_string_equal(ss.claims_lapse, "token expired");
	kbs_session_clear(&ss);
	/* the chain's: no claims kept, the token whole, nothing lapsing */
	assert_false(kbs_sessions_claims_live(s, chain));
	assert_int_equal(kbs_sessions_claims(s, chain, &got), 1);
	assert_int_equal(kbs_sessions_get(s, chain, &ss), 0);
	assert_string_equal(ss.token, t2);
	assert_null(ss.claims_lapse);
	assert_true(ss.claims_until == 0);
	kbs_session_clear(&ss);
	/* attested without claims: the token is kept for the reads to verify, nothing lapses */
	assert_int_equal(kbs_sessions_create(s, "tdx", "n", NULL, now + 300, plain, &e), 0);
	assert_int_equal(kbs_sessions_attest(s, plain, t1, &e), 0);
	assert_int_equal(kbs_sessions_claims(s, plain, &got), 1);
	assert_int_equal(kbs_sessions_get(s, plain, &ss), 0);
	assert_string_equal(ss.token, t1);
	assert_null(ss.claims_lapse);
	assert_true(ss.claims_until == 0);
	kbs_session_clear(&ss);
	json_decref(c1);
	json_decref(c2);
	free(t1);
	free(t2);
	free(p1);
	free(p2);
	kbs_sessions_free(s);
}

/* Claims with a token whose payload segment is not base64url: the table keeps the token, not
 * the claims, and its reads verify it. */
static void test_a_payload_that_does_not_decode_keeps_the_token(void **state)
{
	struct err e = {0};
	struct kbs_sessions *s = kbs_sessions_new(10, &e);
	double now = (double)time(NULL);
	char id[33];
	json_t *claims = json_pack("{s:s}", "k", "v"), *got = NULL;
	assert_int_equal(kbs_sessions_create(s, "tdx", "n", NULL, (long long)now + 300, id, &e), 0);
	assert_int_equal(kbs_sessions_attest_verified(s, id, "a.b.c", claims, now + 60, &e), 0);
	assert_int_equal(kbs_sessions_claims(s, id, &got), 1);
	assert_null(got);
	struct kbs_session ss;
	assert_int_equal(kbs_sessions_get(s, id, &ss), 0);
	assert_string_equal(ss.token, "a.b.c");
	assert_true(ss.claims_until == 0);
	assert_null(ss.claims_lapse);
	kbs_session_clear(&ss);
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
	assert_int_equal(
	    kbs_sessions_attest_verified(s, id, "a.eyJrIjoidiJ9.c", claims, now + 60, &e), 1);
	assert_int_equal(kbs_sessions_claims(s, id, &got), 1);
	assert_null(got);
	json_decref(claims);
	kbs_sessions_free(s);
}

/* The byte budget counts what an entry holds: a verified session its payload's text, one not
 * verified here its token, an Authed one its nonce; all of it given back when they go. */
static void test_a_verified_session_costs_its_payload_not_its_token(void **state)
{
	struct err e = {0};
	struct kbs_sessions *s = kbs_sessions_new(10, &e);
	long long now = (long long)time(NULL);
	char a[33], b[33];
	char *payload = ear_payload(now + 300), *tok = token_of(payload);
	json_t *claims = json_loads(payload, 0, NULL);
	assert_int_equal(kbs_sessions_bytes(s), 0);
	assert_int_equal(kbs_sessions_create(s, "tdx", "nonce", NULL, now + 300, a, &e), 0);
	size_t authed = kbs_sessions_bytes(s);
	assert_true(authed > strlen("nonce") && authed < 256); /* the entry and its nonce */
	assert_int_equal(kbs_sessions_attest_verified(s, a, tok, claims, now + 360.0, &e), 0);
	size_t verified = kbs_sessions_bytes(s);
	assert_int_equal(verified, authed - strlen("nonce") + strlen(payload));
	assert_int_equal(kbs_sessions_create(s, "tdx", "nonce", NULL, now + 300, b, &e), 0);
	assert_int_equal(kbs_sessions_bytes(s), verified + authed);
	assert_int_equal(kbs_sessions_attest(s, b, tok, &e), 0);
	size_t both = kbs_sessions_bytes(s);
	assert_int_equal(both, verified + authed - strlen("nonce") + strlen(tok));
	kbs_sessions_free(s);

	/* so a budget that holds one session with its token holds two verified ones */
	s = kbs_sessions_new(10, &e);
	struct kbs_session_limits l = {.max_bytes = both - verified + 1};
	kbs_sessions_set_limits(s, &l);
	char c[33];
	for (int i = 0; i < 2; i++) {
		assert_int_equal(kbs_sessions_create(s, "tdx", "nonce", NULL, now + 300, c, &e), 0);
		assert_int_equal(kbs_sessions_attest_verified(s, c, tok, claims, now + 360.0, &e),
		                 0);
	}
	assert_int_equal(kbs_sessions_bytes(s), 2 * verified);
	assert_int_equal(kbs_sessions_create(s, "tdx", "nonce", NULL, now + 300, c, &e), 0);
	assert_int_equal(kbs_sessions_attest(s, c, tok, &e), -2);
	assert_non_null(strstr(e.msg, "max_sessions_bytes"));
	assert_int_equal(kbs_sessions_count(s), 3);
	json_decref(claims);
	free(tok);
	free(payload);
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
	    cmocka_unit_test(test_a_read_past_the_claims_deadline_is_refused_as_its_token),
	    cmocka_unit_test(test_a_payload_that_does_not_decode_keeps_the_token),
	    cmocka_unit_test(test_claims_of_an_expired_session_are_not_used),
	    cmocka_unit_test(test_a_verified_session_costs_its_payload_not_its_token),
	    cmocka_unit_test(test_a_store_keeps_claims_only_in_the_attesting_copy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
