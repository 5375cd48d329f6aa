/*
 * test_kbs_token: attestation tokens are verified once and remembered (kbs/token.c over
 * kbs/vcache.c) without a remembered result ever standing in for bytes it did not verify:
 * a token that differs by one byte is verified afresh, an expired token is refused though it
 * was remembered, a chain past its notAfter is refused though it was remembered, a header jwk
 * that is not the remembered chain's leaf key is refused, and a new trust store (a restart)
 * refuses what the old one accepted; a header is decoded afresh when its bytes differ; the
 * deadline kbs_token_verify_once gives a session's claims. Plus the memo's own bound and
 * deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "b64.h"
#include "jose/jose.h"
#include "kbs/kbs.h"
#include "kbs/vcache.h"

#define LEEWAY 60 /* token.c's EXP_LEEWAY */

static EVP_PKEY *p256(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	assert_non_null(k);
	return k;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(e);
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
}

/* A certificate for `key`, signed by issuer_key (self-signed when issuer is NULL), valid from
 * an hour ago for `secs` seconds. */
static X509 *cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, int ca,
                  long secs)
{
	X509 *x = X509_new();
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), rand() + 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), secs);
	X509_set_pubkey(x, key);
	X509_NAME *n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
	add_ext(x, issuer ? issuer : x, NID_basic_constraints,
	        ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	add_ext(x, issuer ? issuer : x, NID_key_usage,
	        ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
	assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
	return x;
}

static char *cert_b64(X509 *x)
{
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der);
	assert_true(n > 0);
	char *s = b64_encode(der, (size_t)n, B64_STD);
	OPENSSL_free(der);
	return s;
}

static void write_pem(const char *path, X509 *x)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	PEM_write_X509(f, x);
	fclose(f);
}

/* A token signed by `key` whose header jwk is `jwk_key` with x5c [leaf], header alg `halg`. */
static char *token_alg(EVP_PKEY *key, EVP_PKEY *jwk_key, X509 *leaf, double exp, const char *halg)
{
	struct err e = {0};
	json_t *jwk = jwk_from_pkey(jwk_key, 0, &e);
	assert_non_null(jwk);
	char *b = cert_b64(leaf);
	json_object_set_new(jwk, "alg", json_string("ES256"));
	json_object_set_new(jwk, "x5c", json_pack("[s]", b));
	free(b);
	json_t *h = json_pack("{s:s,s:s,s:o}", "alg", halg, "typ", "JWT", "jwk", jwk);
	json_t *p = json_pack("{s:f,s:s,s:i}", "exp", exp, "iss", "test", "n", rand());
	char *t = jws_sign(h, p, key, "ES256", &e);
	assert_non_null(t);
	json_decref(h);
	json_decref(p);
	return t;
}

static char *token(EVP_PKEY *key, EVP_PKEY *jwk_key, X509 *leaf, double exp)
{
	return token_alg(key, jwk_key, leaf, exp, "ES256");
}

struct fixture {
	char dir[64], ca_path[96], ca2_path[96];
	EVP_PKEY *ca_key, *ca2_key, *signer;
	X509 *ca, *ca2, *leaf;
	struct kbs_config cfg;
	char *paths[1];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_kbs_token.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->ca_path, sizeof(f->ca_path), "%s/ca.pem", f->dir);
	snprintf(f->ca2_path, sizeof(f->ca2_path), "%s/ca2.pem", f->dir);
	f->ca_key = p256();
	f->ca2_key = p256();
	f->signer = p256();
	f->ca = cert(f->ca_key, "test CA", NULL, NULL, 1, 86400);
	f->ca2 = cert(f->ca2_key, "test CA", NULL, NULL, 1, 86400); /* same name, other key */
	f->leaf = cert(f->signer, "test signer", f->ca, f->ca_key, 0, 86400);
	write_pem(f->ca_path, f->ca);
	write_pem(f->ca2_path, f->ca2);
	f->paths[0] = f->ca_path;
	f->cfg.trusted_certs_paths.v = f->paths;
	f->cfg.trusted_certs_paths.n = 1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	unlink(f->ca_path);
	unlink(f->ca2_path);
	rmdir(f->dir);
	EVP_PKEY_free(f->ca_key);
	EVP_PKEY_free(f->ca2_key);
	EVP_PKEY_free(f->signer);
	X509_free(f->ca);
	X509_free(f->ca2);
	X509_free(f->leaf);
	free(f);
	return 0;
}

static struct kbs_token_verifier *verifier(struct fixture *f)
{
	struct err e = {0};
	struct kbs_token_verifier *v = kbs_token_verifier_new(&f->cfg, &e);
	if (!v)
		fail_msg("verifier: %s", e.msg);
	return v;
}

/* 1 if the token verifies; the refusal goes to why. */
static int verifies(struct kbs_token_verifier *v, const char *t, char *why, size_t cap)
{
	struct err e = {0};
	json_t *c = kbs_token_verify(v, t, &e);
	snprintf(why, cap, "%s", e.msg);
	if (c) {
		assert_string_equal(json_string_value(json_object_get(c, "iss")), "test");
		json_decref(c);
	}
	return c != NULL;
}

static void test_token_verified_again_from_memo(void **state)
{
	struct fixture *f = *state;
	struct kbs_token_verifier *v = verifier(f);
	char *t = token(f->signer, f->signer, f->leaf, (double)time(NULL) + 300);
	char why[ERR_MSG_MAX];
	for (int i = 0; i < 3; i++)
		assert_true(verifies(v, t, why, sizeof(why)));
	free(t);
	kbs_token_verifier_free(v);
}

static void test_token_one_byte_different_is_verified_afresh(void **state)
{
	struct fixture *f = *state;
	struct kbs_token_verifier *v = verifier(f);
	char *t = token(f->signer, f->signer, f->leaf, (double)time(NULL) + 300);
	char why[ERR_MSG_MAX];
	assert_true(verifies(v, t, why, sizeof(why)));
	char *dot1 = strchr(t, '.'), *dot2 = strrchr(t, '.');
	/* one byte of the claims, then one byte in the middle of the signature */
	char *flips[] = {dot1 + 3, dot2 + 20};
	for (int i = 0; i < 2; i++) {
		char keep = *flips[i];
		*flips[i] = keep == 'A' ? 'B' : 'A';
		assert_false(verifies(v, t, why, sizeof(why)));
		*flips[i] = keep;
	}
	assert_true(verifies(v, t, why, sizeof(why)));
	free(t);
	kbs_token_verifier_free(v);
}

static void test_token_expired_is_refused_though_remembered(void **state)
{
	struct fixture *f = *state;
	struct kbs_token_verifier *v = verifier(f);
	/* good for one more second (exp plus the leeway) */
	char *t = token(f->signer, f->signer, f->leaf, (double)time(NULL) - LEEWAY + 1);
	char why[ERR_MSG_MAX];
	assert_true(verifies(v, t, why, sizeof(why)));
	sleep(2);
	assert_false(verifies(v, t, why, sizeof(why)));
	assert_non_null(strstr(why, "expired"));
	free(t);
	kbs_token_verifier_free(v);
}

static void test_chain_past_not_after_is_refused_though_remembered(void **state)
{
	struct fixture *f = *state;
	struct kbs_token_verifier *v = verifier(f);
	X509 *leaf = cert(f->signer, "short signer", f->ca, f->ca_key, 0, 2);
	char *t1 = token(f->signer, f->signer, leaf, (double)time(NULL) + 300);
	char *t2 = token(f->signer, f->signer, leaf, (double)time(NULL) + 300);
	char why[ERR_MSG_MAX];
	assert_true(verifies(v, t1, why, sizeof(why)));
	sleep(3);
	assert_false(verifies(v, t1, why, sizeof(why))); /* the remembered token */
	assert_non_null(strstr(why, "expired"));
	assert_false(verifies(v, t2, why, sizeof(why))); /* a new token on the remembered chain */
	assert_non_null(strstr(why, "expired"));
	free(t1);
	free(t2);
	X509_free(leaf);
	kbs_token_verifier_free(v);
}

static void test_remembered_chain_does_not_endorse_another_key(void **state)
{
	struct fixture *f = *state;
	struct kbs_token_verifier *v = verifier(f);
	EVP_PKEY *other = p256();
	char *good = token(f->signer, f->signer, f->leaf, (double)time(NULL) + 300);
	char *bad = token(other, other, f->leaf, (double)time(NULL) + 300);
	char why[ERR_MSG_MAX];
	assert_true(verifies(v, good, why, sizeof(why))); /* the chain is now remembered */
	assert_false(verifies(v, bad, why, sizeof(why)));
	assert_non_null(strstr(why, "differs from the header jwk"));
	free(good);
	free(bad);
	EVP_PKEY_free(other);
	kbs_token_verifier_free(v);
}

/* The chain memo is keyed by the header that carries the chain: a header with the same jwk but
 * another x5c (a leaf for the same key from an untrusted CA) is judged on its own chain, after
 * the trusted one was remembered and before it is asked again. */
static void test_remembered_chain_is_the_headers_own(void **state)
{
	struct fixture *f = *state;
	struct kbs_token_verifier *v = verifier(f);
	X509 *rogue = cert(f->signer, "test signer", f->ca2, f->ca2_key, 0, 86400);
	char *good = token(f->signer, f->signer, f->leaf, (double)time(NULL) + 300);
	char *bad = token(f->signer, f->signer, rogue, (double)time(NULL) + 300);
	char why[ERR_MSG_MAX];
	assert_true(verifies(v, good, why, sizeof(why))); /* the trusted chain is remembered */
	assert_false(verifies(v, bad, why, sizeof(why)));
	assert_non_null(strstr(why, "does not verify"));
	assert_true(verifies(v, good, why, sizeof(why)));
	free(good);
	free(bad);
	X509_free(rogue);
	kbs_token_verifier_free(v);
}

static void test_new_trust_store_is_seen(void **state)
{
	struct fixture *f = *state;
	struct kbs_token_verifier *v = verifier(f);
	char *t = token(f->signer, f->signer, f->leaf, (double)time(NULL) + 300);
	char why[ERR_MSG_MAX];
	assert_true(verifies(v, t, why, sizeof(why)));
	kbs_token_verifier_free(v);
	/* the operator replaces the trusted CA file and restarts: the same config, new bytes */
	write_pem(f->ca_path, f->ca2);
	v = verifier(f);
	assert_false(verifies(v, t, why, sizeof(why)));
	assert_non_null(strstr(why, "does not verify"));
	kbs_token_verifier_free(v);
	write_pem(f->ca_path, f->ca);
	v = verifier(f);
	assert_true(verifies(v, t, why, sizeof(why)));
	free(t);
	kbs_token_verifier_free(v);
}

/* Tokens of one signer share their header bytes, and its parse is kept; a header that differs
 * is decoded afresh and judged on what it says (here an alg that is not the key's). */
static void test_header_kept_by_its_bytes(void **state)
{
	struct fixture *f = *state;
	struct kbs_token_verifier *v = verifier(f);
	char *t1 = token(f->signer, f->signer, f->leaf, (double)time(NULL) + 300);
	char *t2 = token(f->signer, f->signer, f->leaf, (double)time(NULL) + 300);
	char *t3 = token_alg(f->signer, f->signer, f->leaf, (double)time(NULL) + 300, "ES384");
	char why[ERR_MSG_MAX];
	assert_int_equal(strchr(t1, '.') - t1, strchr(t2, '.') - t2);
	assert_memory_equal(t1, t2, (size_t)(strchr(t1, '.') - t1)); /* the same header */
	assert_true(verifies(v, t1, why, sizeof(why)));
	assert_true(verifies(v, t2, why, sizeof(why)));
	assert_false(verifies(v, t3, why, sizeof(why)));
	assert_non_null(strstr(why, "ES384"));
	assert_true(verifies(v, t1, why, sizeof(why)));
	free(t1);
	free(t2);
	free(t3);
	kbs_token_verifier_free(v);
}

/* kbs_token_verify_once: the full check, and the deadline a session may keep its claims to. */
static void test_verify_once_gives_the_deadline(void **state)
{
	struct fixture *f = *state;
	struct kbs_token_verifier *v = verifier(f);
	double exp = (double)time(NULL) + 300, until = -1;
	char *t = token(f->signer, f->signer, f->leaf, exp);
	struct err e = {0};
	json_t *c = kbs_token_verify_once(v, t, &until, &e);
	assert_non_null(c);
	assert_true(until == exp + LEEWAY);
	json_decref(c);
	/* a chain whose leaf ends sooner than the token: its notAfter */
	X509 *leaf = cert(f->signer, "short signer", f->ca, f->ca_key, 0, 100);
	char *t2 = token(f->signer, f->signer, leaf, exp);
	c = kbs_token_verify_once(v, t2, &until, &e);
	assert_non_null(c);
	assert_true(until < exp && until > (double)time(NULL) + 90);
	json_decref(c);
	/* refused: no claims, no deadline */
	t[strlen(t) - 5] = t[strlen(t) - 5] == 'A' ? 'B' : 'A';
	assert_null(kbs_token_verify_once(v, t, &until, &e));
	assert_true(until == 0);
	free(t);
	free(t2);
	X509_free(leaf);
	kbs_token_verifier_free(v);
}

/* --- the memo itself */

static void *dup_s(void *v)
{
	return strdup(v);
}

static void test_vcache_bounded_lru_and_deadline(void **state)
{
	struct vcache *c = vcache_new(32, dup_s, free); /* 16 shards of 2 */
	uint8_t k[3][32] = {{0}, {0}, {0}};
	for (int i = 0; i < 3; i++)
		k[i][1] = (uint8_t)i; /* one shard (byte 0), three keys */
	void *out;
	double until = 0;
	vcache_put(c, k[0], 100, strdup("a"));
	vcache_put(c, k[1], 100, strdup("b"));
	assert_int_equal(vcache_get(c, k[0], 50, &out, &until), 1); /* k[1] is now the LRU */
	assert_string_equal(out, "a");
	assert_true(until == 100);
	free(out);
	vcache_put(c, k[2], 100, strdup("c"));
	assert_int_equal(vcache_count(c), 2);
	assert_int_equal(vcache_get(c, k[1], 50, &out, NULL), 0);
	assert_int_equal(vcache_get(c, k[2], 50, &out, NULL), 1);
	free(out);
	assert_int_equal(vcache_get(c, k[0], 100, &out, NULL), 0); /* at its deadline: gone */
	assert_int_equal(vcache_count(c), 1);
	for (int i = 0; i < 1000; i++) { /* never more than capacity */
		uint8_t key[32] = {(uint8_t)i, (uint8_t)(i >> 8)};
		vcache_put(c, key, 100, strdup("x"));
	}
	assert_true(vcache_count(c) <= 32);
	vcache_free(c);
}

/* The claims an /attest verified wait for the session's first read (server.c): taken once,
 * never past their deadline. */
static void test_vcache_take_once_and_never_late(void **state)
{
	struct vcache *c = vcache_new(16, dup_s, free);
	uint8_t k[32] = {7}, other[32] = {8};
	void *out = NULL;
	vcache_put(c, k, 100, strdup("claims"));
	assert_int_equal(vcache_take(c, other, 50, &out), 0);
	assert_int_equal(vcache_take(c, k, 50, &out), 1);
	assert_string_equal(out, "claims");
	free(out);
	assert_int_equal(vcache_count(c), 0); /* taken: the next read decodes the token */
	assert_int_equal(vcache_take(c, k, 50, &out), 0);
	vcache_put(c, k, 100, strdup("late"));
	out = NULL;
	assert_int_equal(vcache_take(c, k, 100, &out), 0); /* at its deadline: dropped */
	assert_null(out);
	assert_int_equal(vcache_count(c), 0);
	vcache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_token_verified_again_from_memo, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_token_one_byte_different_is_verified_afresh, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_token_expired_is_refused_though_remembered, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_chain_past_not_after_is_refused_though_remembered,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_remembered_chain_does_not_endorse_another_key,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_remembered_chain_is_the_headers_own, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_new_trust_store_is_seen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_header_kept_by_its_bytes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_verify_once_gives_the_deadline, setup, teardown),
	    cmocka_unit_test(test_vcache_bounded_lru_and_deadline),
	    cmocka_unit_test(test_vcache_take_once_and_never_late),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
