/*
 * as/ear: the EAR token's protected header is kept per signer. A token's header is byte for
 * byte the base64url of {"typ":"JWT","alg":"ES256","jwk":<signer's jwk>}, and a new signer —
 * a rotated key, a new x5c chain in a new jwk, or the same jwk object edited in place — gets
 * its own header on its next token; every token verifies with its own signer's key only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "as/ear.h"
#include "b64.h"
#include "jose/jose.h"

/* The signer's jwk as as.c makes it: alg, an x5c chain, the public members. */
static json_t *signer_jwk(EVP_PKEY *key, const char *chain_entry)
{
	struct err err;
	json_t *jwk = json_pack("{s:s,s:[s]}", "alg", "ES256", "x5c", chain_entry);
	json_t *pub = jwk_from_pkey(key, 0, &err);
	assert_non_null(pub);
	json_object_update(jwk, pub);
	json_decref(pub);
	return jwk;
}

/* The header segment jws_sign would make for this jwk, computed independently of the cache. */
static char *expected_header(const json_t *jwk)
{
	json_t *h = json_pack("{s:s,s:s,s:O}", "typ", "JWT", "alg", "ES256", "jwk", jwk);
	char *text = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
	char *b = b64_encode((const uint8_t *)text, strlen(text), B64_URL);
	free(text);
	json_decref(h);
	return b;
}

/* Signs one token and checks its header segment is `jwk`'s and that it verifies with key only
 * (not with `other`). */
static void sign_and_check(EVP_PKEY *key, const json_t *jwk, EVP_PKEY *other)
{
	struct err err = {0};
	struct ear_submods s = {0};
	json_t *tc = json_pack("{s:i}", "executables", 3);
	json_t *ev = json_pack("{s:s}", "quote", "q");
	assert_int_equal(ear_submods_add(&s, "cpu", ear_appraisal("p", tc, NULL, ev, &err), &err),
	                 0);
	struct ear_signer signer = {key,
	                            jwk,
	                            "tag:github.com,2023:veraison/ear",
	                            "https://x",
	                            "1",
	                            "CoCo-Attestation-Service",
	                            5};
	char *tok = ear_sign(&signer, &s, 1700000000, &err);
	assert_non_null(tok);
	char *want = expected_header(jwk);
	assert_int_equal(strncmp(tok, want, strlen(want)), 0);
	assert_int_equal(tok[strlen(want)], '.');
	json_t *p = NULL;
	assert_int_equal(jws_verify(tok, key, "ES256", NULL, &p, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(p, "exp")), 1700000000 + 300);
	json_decref(p);
	if (other != NULL)
		assert_int_equal(jws_verify(tok, other, "ES256", NULL, NULL, &err), -1);
	free(want);
	free(tok);
	json_decref(tc);
	json_decref(ev);
	ear_submods_free(&s);
}

static void test_ear_header_follows_the_signer(void **state)
{
	EVP_PKEY *a = EVP_EC_gen("P-256"), *b = EVP_EC_gen("P-256");
	json_t *ja = signer_jwk(a, "Y2hhaW4tb25l"), *jb = signer_jwk(b, "Y2hhaW4tb25l");

	sign_and_check(a, ja, b);
	sign_and_check(a, ja, b); /* the kept header, the same bytes */
	/* key rotation: a new key with its own jwk */
	sign_and_check(b, jb, a);
	/* a new chain for the same key, in a new jwk object */
	json_t *ja2 = signer_jwk(a, "Y2hhaW4tdHdv");
	sign_and_check(a, ja2, b);
	/* the same jwk object given a new chain in place */
	json_object_set_new(ja, "x5c", json_pack("[s,s]", "bGVhZg", "aW50ZXJtZWRpYXRl"));
	sign_and_check(a, ja, b);
	/* a jwk that names key b signed with key a: the header says what the jwk says, and the
	 * token verifies with the key that signed it */
	sign_and_check(a, jb, b);
	/* more signers than kept headers, then the first again */
	for (int i = 0; i < 6; i++) {
		EVP_PKEY *k = EVP_EC_gen("P-256");
		json_t *jk = signer_jwk(k, "c2lnbmVy");
		sign_and_check(k, jk, a);
		json_decref(jk);
		EVP_PKEY_free(k);
	}
	sign_and_check(a, ja2, b);
	json_decref(ja);
	json_decref(ja2);
	json_decref(jb);
	EVP_PKEY_free(a);
	EVP_PKEY_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ear_header_follows_the_signer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
