/*
 * common/jose: JWK import (curves, coordinate sizes, points off the curve, Ed25519) and JWE
 * decryption refusing content keys of any size but 32 bytes. The byte-level interop with an
 * independent implementation is tests/unit/test_jose_oracle.py.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/ec.h>
#include <openssl/rsa.h>

#include "b64.h"
#include "jose/jose.h"

static void test_jwk_import_checks_curves_and_sizes(void **state)
{
	struct err err = {0};
	/* RFC 7517 A.1 EC example key (P-256) */
	json_t *ec = json_pack("{s:s,s:s,s:s,s:s}", "kty", "EC", "crv", "P-256", "x",
	                       "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4", "y",
	                       "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM");
	EVP_PKEY *pk = jwk_to_pkey(ec, &err);
	assert_non_null(pk);
	EVP_PKEY_free(pk);
	/* a point off the curve is refused */
	json_object_set_new(ec, "y", json_string("4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyQ"));
	assert_null(jwk_to_pkey(ec, &err));
	/* short coordinates are refused */
	json_object_set_new(ec, "x", json_string("AAAA"));
	assert_null(jwk_to_pkey(ec, &err));
	assert_non_null(strstr(err.msg, "exactly 32"));
	json_decref(ec);
	json_t *bad = json_pack("{s:s}", "kty", "oct");
	assert_null(jwk_to_pkey(bad, &err));
	json_decref(bad);
	json_t *ed = json_pack("{s:s,s:s,s:s}", "kty", "OKP", "crv", "Ed25519", "x",
	                       "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
	pk = jwk_to_pkey(ed, &err);
	assert_non_null(pk);
	EVP_PKEY_free(pk);
	json_decref(ed);
}

/* A JWE whose encrypted_key decrypts or unwraps to anything but a 32-byte content key is refused
 * with a sentence, however long the sender made it (an RSA key lets the sender choose up to the
 * modulus size; the fuzzer found an over-long AES-KW input written past the key buffer). */
static json_t *jwe_with_key(const char *alg, const json_t *epk, const uint8_t *ek, size_t ekl)
{
	json_t *h = json_pack("{s:s, s:s}", "alg", alg, "enc", "A256GCM");
	if (epk)
		json_object_set(h, "epk", (json_t *)epk);
	char *ht = json_dumps(h, JSON_COMPACT);
	char *hb = b64_encode((const uint8_t *)ht, strlen(ht), B64_URL);
	char *ekb = b64_encode(ek, ekl, B64_URL);
	json_t *jwe =
	    json_pack("{s:s, s:s, s:s, s:s, s:s}", "protected", hb, "encrypted_key", ekb, "iv",
	              "AAAAAAAAAAAAAAAA", "ciphertext", "AAAA", "tag", "AAAAAAAAAAAAAAAAAAAAAA");
	free(ht);
	free(hb);
	free(ekb);
	json_decref(h);
	return jwe;
}

static void test_jwe_decrypt_refuses_wrong_content_key_sizes(void **state)
{
	struct err err;
	uint8_t *plain = NULL, big[245], ek[512];
	size_t len = 0;
	memset(big, 0x41, sizeof(big));

	EVP_PKEY *rsa = EVP_RSA_gen(2048);
	assert_non_null(rsa);
	const struct {
		const char *alg;
		int pad;
		size_t n;
	} cases[] = {{"RSA-OAEP-256", RSA_PKCS1_OAEP_PADDING, 190},
	             {"RSA1_5", RSA_PKCS1_PADDING, 245},
	             {"RSA1_5", RSA_PKCS1_PADDING, 16}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(rsa, NULL);
		size_t ekl = sizeof(ek);
		assert_int_equal(EVP_PKEY_encrypt_init(c), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(c, cases[i].pad), 1);
		if (cases[i].pad == RSA_PKCS1_OAEP_PADDING) {
			assert_int_equal(EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha256()), 1);
			assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha256()), 1);
		}
		assert_int_equal(EVP_PKEY_encrypt(c, ek, &ekl, big, cases[i].n), 1);
		EVP_PKEY_CTX_free(c);
		json_t *jwe = jwe_with_key(cases[i].alg, NULL, ek, ekl);
		assert_int_equal(jwe_decrypt(jwe, rsa, &plain, &len, &err), -1);
		assert_null(plain);
		assert_string_equal(err.msg, "content key is not 32 bytes");
		json_decref(jwe);
	}
	EVP_PKEY_free(rsa);

	EVP_PKEY *ec = EVP_EC_gen("P-256"), *eph = EVP_EC_gen("P-256");
	json_t *epk = jwk_from_pkey(eph, 0, &err);
	assert_non_null(epk);
	const size_t sizes[] = {0, 8, 24, 32, 48, 88, 400};
	memset(ek, 0xA6, sizeof(ek));
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		json_t *jwe = jwe_with_key("ECDH-ES+A256KW", epk, ek, sizes[i]);
		assert_int_equal(jwe_decrypt(jwe, ec, &plain, &len, &err), -1);
		assert_null(plain);
		assert_non_null(strstr(err.msg, "ECDH-ES+A256KW wraps a 32-byte key in 40"));
		json_decref(jwe);
	}
	/* the right length with the wrong key fails the unwrap's integrity check */
	json_t *jwe = jwe_with_key("ECDH-ES+A256KW", epk, ek, 40);
	assert_int_equal(jwe_decrypt(jwe, ec, &plain, &len, &err), -1);
	assert_string_equal(err.msg, "cannot unwrap the content key");
	json_decref(jwe);
	json_decref(epk);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(eph);
}

/* Signing and verifying work on copies of a context prepared once per key: with more keys than
 * the table holds (so slots are replaced), every key still signs tokens that verify under it
 * and only under it, a flipped signature bit is refused, and a key freed and replaced by a new
 * one (a rotation) verifies with the new key only. */
static void test_jws_prepared_contexts_follow_the_key(void **state)
{
	struct err err;
	const char *curves[] = {"P-256", "P-384", "P-521"}, *algs[] = {"ES256", "ES384", "ES512"};
	EVP_PKEY *k[20];
	char *tok[20];
	json_t *hdr = json_pack("{s:s}", "typ", "JWT"), *pl = json_pack("{s:i}", "n", 1);

	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 20; i++) {
			if (round == 0)
				assert_non_null(k[i] = EVP_EC_gen(curves[i % 3]));
			json_object_set_new(hdr, "alg", json_string(algs[i % 3]));
			assert_non_null(tok[i] = jws_sign(hdr, pl, k[i], algs[i % 3], &err));
		}
		for (int i = 0; i < 20; i++) {
			json_t *p = NULL;
			assert_int_equal(jws_verify(tok[i], k[i], algs[i % 3], NULL, &p, &err), 0);
			assert_int_equal(json_integer_value(json_object_get(p, "n")), 1);
			json_decref(p);
			/* the same curve, another key */
			assert_int_equal(
			    jws_verify(tok[i], k[(i + 3) % 20], algs[i % 3], NULL, NULL, &err), -1);
			char *bad = strdup(tok[i]);
			char *last = bad + strlen(bad) - 2;
			*last = *last == 'A' ? 'B' : 'A';
			assert_int_equal(jws_verify(bad, k[i], algs[i % 3], NULL, NULL, &err), -1);
			free(bad);
			free(tok[i]);
		}
	}
	/* rotation: the old key is gone, the new one signs; old tokens fail under the new key */
	char *old = jws_sign(hdr, pl, k[0], "ES256", &err);
	EVP_PKEY_free(k[0]);
	assert_non_null(k[0] = EVP_EC_gen("P-256"));
	json_object_set_new(hdr, "alg", json_string("ES256"));
	char *fresh = jws_sign(hdr, pl, k[0], "ES256", &err);
	assert_int_equal(jws_verify(fresh, k[0], "ES256", NULL, NULL, &err), 0);
	assert_int_equal(jws_verify(old, k[0], "ES256", NULL, NULL, &err), -1);
	free(old);
	free(fresh);
	for (int i = 0; i < 20; i++)
		EVP_PKEY_free(k[i]);
	json_decref(hdr);
	json_decref(pl);
}

/* 1 if sig (over msg) verifies as RSA-PSS SHA-256 with salt length 32, checked by OpenSSL
 * directly, not through jose's kept contexts. */
static int pss_verifies(EVP_PKEY *k, const char *msg, size_t ml, const uint8_t *sig, size_t sl)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pc = NULL;
	int ok = EVP_DigestVerifyInit(md, &pc, EVP_sha256(), NULL, k) == 1 &&
	         EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) == 1 &&
	         EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, 32) == 1 &&
	         EVP_DigestVerify(md, sig, sl, (const uint8_t *)msg, ml) == 1;
	EVP_MD_CTX_free(md);
	return ok;
}

/* A context copied from a kept one keeps its settings: the second and third PS256 signature
 * with one key are still PSS (checked by OpenSSL directly), and a PSS signature made outside
 * verifies on every use of the kept verification context; EdDSA and RS256 likewise repeat. */
static void test_jws_kept_contexts_keep_padding(void **state)
{
	struct err err;
	EVP_PKEY *rsa = EVP_RSA_gen(2048), *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	json_t *pl = json_pack("{s:i}", "n", 1);
	const char *algs[] = {"PS256", "RS256", "EdDSA"};

	for (int a = 0; a < 3; a++) {
		EVP_PKEY *k = a == 2 ? ed : rsa;
		json_t *hdr = json_pack("{s:s}", "alg", algs[a]);
		for (int i = 0; i < 3; i++) {
			char *tok = jws_sign(hdr, pl, k, algs[a], &err);
			assert_non_null(tok);
			assert_int_equal(jws_verify(tok, k, algs[a], NULL, NULL, &err), 0);
			if (a == 0) {
				char *d2 = strrchr(tok, '.');
				uint8_t *sig = NULL;
				size_t sl = 0;
				assert_int_equal(
				    b64_decode(d2 + 1, strlen(d2 + 1), B64_URL, &sig, &sl), 0);
				assert_true(pss_verifies(k, tok, (size_t)(d2 - tok), sig, sl));
				/* a PSS signature made outside, over the same input */
				EVP_MD_CTX *md = EVP_MD_CTX_new();
				EVP_PKEY_CTX *pc = NULL;
				uint8_t out[256];
				size_t ol = sizeof(out);
				assert_int_equal(EVP_DigestSignInit(md, &pc, EVP_sha256(), NULL, k),
				                 1);
				assert_int_equal(
				    EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING), 1);
				assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, 32), 1);
				assert_int_equal(EVP_DigestSign(md, out, &ol, (const uint8_t *)tok,
				                                (size_t)(d2 - tok)),
				                 1);
				EVP_MD_CTX_free(md);
				char *s64 = b64_encode(out, ol, B64_URL);
				char *theirs = malloc((size_t)(d2 - tok) + strlen(s64) + 2);
				sprintf(theirs, "%.*s.%s", (int)(d2 - tok), tok, s64);
				assert_int_equal(jws_verify(theirs, k, "PS256", NULL, NULL, &err),
				                 0);
				free(theirs);
				free(s64);
				free(sig);
			}
			free(tok);
		}
		json_decref(hdr);
	}
	json_decref(pl);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ed);
}

/* Encrypts to `tee` and decrypts with `priv` `n` times; returns the epk x of the last JWE. */
static char *jwe_round_trips(const json_t *tee, EVP_PKEY *priv, int n)
{
	struct err err;
	char *x = NULL;
	for (int i = 0; i < n; i++) {
		json_t *jwe = jwe_encrypt(tee, (const uint8_t *)"resource", 8, &err);
		uint8_t *plain = NULL;
		size_t len = 0;
		if (jwe == NULL || jwe_decrypt(jwe, priv, &plain, &len, &err) != 0 || len != 8 ||
		    memcmp(plain, "resource", 8) != 0) {
			json_decref(jwe);
			free(plain);
			free(x);
			return NULL;
		}
		free(plain);
		const char *prot = json_string_value(json_object_get(jwe, "protected"));
		uint8_t *h = NULL;
		size_t hl = 0;
		free(x);
		x = NULL;
		if (b64_decode(prot, strlen(prot), B64_URL, &h, &hl) == 0) {
			json_t *hj = json_loadb((const char *)h, hl, 0, NULL);
			x = strdup(
			    json_string_value(json_object_get(json_object_get(hj, "epk"), "x")));
			json_decref(hj);
		}
		free(h);
		json_decref(jwe);
	}
	return x;
}

struct jwe_thread {
	const json_t *tee;
	EVP_PKEY *priv;
	char *x;
};

static void *jwe_thread_main(void *p)
{
	struct jwe_thread *t = p;
	t->x = jwe_round_trips(t->tee, t->priv, 20);
	return NULL;
}

/* The ephemeral key is fresh on every JWE though its generation context is kept per thread,
 * on each curve, and on several threads at once. */
static void test_jwe_ephemeral_key_fresh_per_resource(void **state)
{
	struct err err;
	const char *curves[] = {"P-256", "P-521"};
	for (int c = 0; c < 2; c++) {
		EVP_PKEY *priv = EVP_EC_gen(curves[c]);
		json_t *tee = jwk_from_pkey(priv, 0, &err);
		json_object_set_new(tee, "alg", json_string("ECDH-ES+A256KW"));
		char *a = jwe_round_trips(tee, priv, 1), *b = jwe_round_trips(tee, priv, 1);
		assert_non_null(a);
		assert_non_null(b);
		assert_string_not_equal(a, b);
		struct jwe_thread t[2] = {{tee, priv, NULL}, {tee, priv, NULL}};
		pthread_t th[2];
		for (int i = 0; i < 2; i++)
			assert_int_equal(pthread_create(&th[i], NULL, jwe_thread_main, &t[i]), 0);
		for (int i = 0; i < 2; i++) {
			pthread_join(th[i], NULL);
			assert_non_null(t[i].x);
		}
		assert_string_not_equal(t[0].x, t[1].x);
		free(t[0].x);
		free(t[1].x);
		free(a);
		free(b);
		json_decref(tee);
		EVP_PKEY_free(priv);
	}
}

/* jose_ec_point gives each curve's coordinates as OpenSSL's numbers do, also for a key set to
 * the compressed point format (its encoded public key stays 04 || x || y), refuses a wrong size
 * and a key that is not EC, and jwk_from_pkey writes the same x and y from it. */
static void test_ec_point_matches_the_numbers(void **state)
{
	static const struct {
		const char *group;
		size_t size;
	} curves[] = {{"P-256", 32}, {"P-384", 48}, {"P-521", 66}};
	for (size_t i = 0; i < 3; i++) {
		EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curves[i].group);
		assert_non_null(k);
		size_t n = curves[i].size;
		uint8_t x[66], y[66], bx[66], by[66];
		BIGNUM *bnx = NULL, *bny = NULL;
		assert_int_equal(EVP_PKEY_get_bn_param(k, "qx", &bnx), 1);
		assert_int_equal(EVP_PKEY_get_bn_param(k, "qy", &bny), 1);
		assert_int_equal(BN_bn2binpad(bnx, bx, (int)n), (int)n);
		assert_int_equal(BN_bn2binpad(bny, by, (int)n), (int)n);
		assert_int_equal(jose_ec_point(k, n, x, y), 0);
		assert_memory_equal(x, bx, n);
		assert_memory_equal(y, by, n);
		assert_int_equal(jose_ec_point(k, n == 32 ? 48 : 32, x, y), -1);
		assert_int_equal(jose_ec_point(k, 0, x, y), -1);
		for (int compressed = 0; compressed < 2; compressed++) {
			if (compressed) {
				assert_int_equal(
				    EVP_PKEY_set_utf8_string_param(k, "point-format", "compressed"),
				    1);
				/* the encoded key stays uncompressed whatever the point format */
				assert_int_equal(jose_ec_point(k, n, x, y), 0);
				assert_memory_equal(x, bx, n);
				assert_memory_equal(y, by, n);
			}
			struct err e = {0};
			json_t *j = jwk_from_pkey(k, 0, &e);
			assert_non_null(j);
			size_t l = 0;
			const char *sx = json_string_value(json_object_get(j, "x"));
			const char *sy = json_string_value(json_object_get(j, "y"));
			uint8_t *dx = NULL, *dy = NULL;
			assert_int_equal(b64_decode(sx, strlen(sx), B64_URL, &dx, &l), 0);
			assert_int_equal(l, n);
			assert_memory_equal(dx, bx, n);
			free(dx);
			assert_int_equal(b64_decode(sy, strlen(sy), B64_URL, &dy, &l), 0);
			assert_int_equal(l, n);
			assert_memory_equal(dy, by, n);
			free(dy);
			json_decref(j);
		}
		BN_free(bnx);
		BN_free(bny);
		EVP_PKEY_free(k);
	}
	uint8_t x[66], y[66];
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	assert_int_equal(jose_ec_point(ed, 32, x, y), -1);
	EVP_PKEY_free(ed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_jwk_import_checks_curves_and_sizes),
	    cmocka_unit_test(test_jwe_decrypt_refuses_wrong_content_key_sizes),
	    cmocka_unit_test(test_jws_prepared_contexts_follow_the_key),
	    cmocka_unit_test(test_jws_kept_contexts_keep_padding),
	    cmocka_unit_test(test_jwe_ephemeral_key_fresh_per_resource),
	    cmocka_unit_test(test_ec_point_matches_the_numbers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
