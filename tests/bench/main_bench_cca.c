/*
 * bench-cca: cost of verifying an Arm CCA token (local mode, Trustee's example token with its
 * TA and RV stores), beside what the verification cannot avoid, measured in the same run: the
 * two ECDSA P-384 verifies (platform token under the CPAK, realm token under the RAK) with
 * OpenSSL over the same Sig_structure bytes, plus the SHA-256 of the RAK for the binding.
 *
 * Medians over many iterations; usage: bench-cca [iterations]
 */
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "as/evidence/cca_token.h"
#include "as/verifiers/verifier.h"
#include "b64.h"
#include "config.h"
#include "jose/jose.h"
#include "tests/bench/bench_time.h"

/* A CBOR head into p; returns its length (the Sig_structure needs lengths up to 64 KiB). */
static size_t head(uint8_t *p, int mt, size_t n)
{
	if (n < 24) {
		p[0] = (uint8_t)(mt << 5 | n);
		return 1;
	}
	if (n < 256) {
		p[0] = (uint8_t)(mt << 5 | 24), p[1] = (uint8_t)n;
		return 2;
	}
	p[0] = (uint8_t)(mt << 5 | 25), p[1] = (uint8_t)(n >> 8), p[2] = (uint8_t)n;
	return 3;
}

/* The signed bytes and the DER signature of one COSE_Sign1, built once. */
struct signed_bytes {
	uint8_t *tbs;
	size_t tbs_len;
	unsigned char *der;
	int der_len;
};

static void prepare(const struct cose_sign1 *s, struct signed_bytes *o)
{
	uint8_t *q = o->tbs = malloc(32 + s->protected_len + s->payload_len);
	q += head(q, 4, 4);
	q += head(q, 3, 10);
	memcpy(q, "Signature1", 10);
	q += 10;
	q += head(q, 2, s->protected_len);
	memcpy(q, s->protected_raw, s->protected_len);
	q += s->protected_len;
	q += head(q, 2, 0);
	q += head(q, 2, s->payload_len);
	memcpy(q, s->payload, s->payload_len);
	o->tbs_len = (size_t)(q + s->payload_len - o->tbs);
	ECDSA_SIG *es = ECDSA_SIG_new();
	ECDSA_SIG_set0(es, BN_bin2bn(s->sig, 48, NULL), BN_bin2bn(s->sig + 48, 48, NULL));
	o->der = NULL;
	o->der_len = i2d_ECDSA_SIG(es, &o->der);
	ECDSA_SIG_free(es);
}

static void p384_verify(const struct signed_bytes *b, EVP_PKEY *k)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, k);
	if (EVP_DigestVerify(md, b->der, (size_t)b->der_len, b->tbs, b->tbs_len) != 1) {
		fprintf(stderr, "bench-cca: baseline verify failed\n");
		exit(1);
	}
	EVP_MD_CTX_free(md);
}

int main(int argc, char **argv)
{
	int iters = argc > 1 ? atoi(argv[1]) : 2000;
	const char *shared = getenv("CTRUSTEE_SHARED");
	char dir[1024], ta[1200], rv[1200], tok[1200];
	struct err err = {0};
	size_t len;

	if (iters < 10)
		iters = 10;
	snprintf(dir, sizeof(dir), "%s/testdata/evidence/cca/trustee",
	         shared ? shared : "../shared");
	snprintf(ta, sizeof(ta), "%s/tastore.json", dir);
	snprintf(rv, sizeof(rv), "%s/rvstore.json", dir);
	snprintf(tok, sizeof(tok), "%s/cca-example-token.cbor", dir);
	uint8_t *buf = (uint8_t *)file_read_all(tok, &len, &err);
	json_t *vc = json_pack("{s:{s:s,s:s,s:s}}", "cca_verifier", "type", "local", "ta-store", ta,
	                       "rv-store", rv);
	const struct verifier *v = verifier_find("cca");
	if (buf == NULL || v == NULL || v->init(vc, &err) < 0) {
		fprintf(stderr, "bench-cca: %s\n", err.msg);
		return 1;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < len; i++)
		json_array_append_new(arr, json_integer(buf[i]));
	json_t *ev = json_pack("{s:o}", "token", arr);
	struct cca_token t;
	if (cca_token_parse(buf, len, &t, &err) < 0) {
		fprintf(stderr, "bench-cca: %s\n", err.msg);
		return 1;
	}
	struct verify_request req = {
	    .evidence = ev, .report_data = t.r.challenge.p, .report_data_len = t.r.challenge.len};
	double *tm = calloc((size_t)iters, sizeof(double));
	for (int i = 0; i < iters + 20; i++) {
		struct verify_result res = {0};
		double t0 = now_us();
		if (v->verify(&req, &res, &err) != 0) {
			fprintf(stderr, "bench-cca: verification failed: %s\n", err.msg);
			return 1;
		}
		if (i >= 20) /* the first runs warm the caches */
			tm[i - 20] = now_us() - t0;
		verify_result_clear(&res);
	}
	double full = median(tm, iters);

	/* the floor: both P-384 verifies and the RAK hash, keys already imported */
	json_t *tas = json_load_file(ta, 0, NULL);
	EVP_PKEY *cpak = jwk_to_pkey(json_object_get(json_array_get(tas, 0), "pkey"), &err);
	EVP_PKEY *rak = cca_token_rak(&t, &err);
	struct signed_bytes pb, rb;
	prepare(&t.platform, &pb);
	prepare(&t.realm, &rb);
	for (int i = 0; i < iters; i++) {
		uint8_t d[32];
		double t0 = now_us();
		p384_verify(&pb, cpak);
		p384_verify(&rb, rak);
		EVP_Digest(t.r.rak.p, t.r.rak.len, d, NULL, EVP_sha256(), NULL);
		tm[i] = now_us() - t0;
	}
	double floor_us = median(tm, iters);
	printf("cca token verification (local, TA + RV stores): %.1f us median\n", full);
	printf("  baseline: two OpenSSL ECDSA P-384 verifies + SHA-256: %.1f us median\n",
	       floor_us);
	printf("  ratio: %.2fx\n", full / floor_us);

	free(tm);
	free(pb.tbs);
	free(rb.tbs);
	OPENSSL_free(pb.der);
	OPENSSL_free(rb.der);
	EVP_PKEY_free(cpak);
	EVP_PKEY_free(rak);
	json_decref(tas);
	cca_token_clear(&t);
	json_decref(ev);
	json_decref(vc);
	free(buf);
	return 0;
}
