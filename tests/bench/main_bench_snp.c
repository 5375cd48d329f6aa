/*
 * bench-snp: cost of verifying SNP and TPM evidence, beside the OpenSSL operations the
 * verification cannot avoid, measured in the same run.
 *
 *   SNP report (warm: VCEK from the evidence, chain verified) vs one ECDSA P-384 verify
 *   TPM quote (trustee fixture, RSA-2048 AK) vs one RSA-2048 PKCS#1 verify
 *
 * Medians over many iterations; usage: bench-snp [iterations]
 */
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "as/evidence/snp_report.h"
#include "as/evidence/tpm_quote.h"
#include "as/verifiers/verifier.h"
#include "b64.h"
#include "tests/bench/bench_time.h"

static json_t *load(const char *dir, const char *rel)
{
	char p[1200];
	snprintf(p, sizeof(p), "%s/testdata/evidence/%s", dir, rel);
	json_t *j = json_load_file(p, 0, NULL);
	if (j == NULL) {
		fprintf(stderr, "bench-snp: cannot load %s\n", p);
		exit(1);
	}
	return j;
}

/* one P-384 verify of the same report bytes with the same VCEK key */
static double raw_p384(const struct snp_report *r, EVP_PKEY *pk, int iters)
{
	double *t = calloc((size_t)iters, sizeof(double));
	uint8_t rb[48], sb[48];
	for (int i = 0; i < 48; i++) {
		rb[i] = r->raw[0x2A0 + 47 - i];
		sb[i] = r->raw[0x2E8 + 47 - i];
	}
	ECDSA_SIG *sig = ECDSA_SIG_new();
	ECDSA_SIG_set0(sig, BN_bin2bn(rb, 48, NULL), BN_bin2bn(sb, 48, NULL));
	unsigned char *der = NULL;
	int dl = i2d_ECDSA_SIG(sig, &der);
	for (int i = 0; i < iters; i++) {
		double t0 = now_us();
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, pk);
		if (EVP_DigestVerify(md, der, (size_t)dl, r->raw, SNP_SIGNED_SIZE) != 1) {
			fprintf(stderr, "bench-snp: baseline verify failed\n");
			exit(1);
		}
		EVP_MD_CTX_free(md);
		t[i] = now_us() - t0;
	}
	double m = median(t, iters);
	OPENSSL_free(der);
	ECDSA_SIG_free(sig);
	free(t);
	return m;
}

static double run_verifier(const char *tee, json_t *ev, int iters)
{
	const struct verifier *v = verifier_find(tee);
	double *t = calloc((size_t)iters, sizeof(double));
	struct verify_request req = {.evidence = ev};
	for (int i = 0; i < iters; i++) {
		struct verify_result res = {0};
		struct err err = {0};
		double t0 = now_us();
		if (v->verify(&req, &res, &err) != 0) {
			fprintf(stderr, "bench-snp: %s verification failed: %s\n", tee, err.msg);
			exit(1);
		}
		t[i] = now_us() - t0;
		verify_result_clear(&res);
	}
	double m = median(t, iters);
	free(t);
	return m;
}

static double raw_rsa(const struct tpm_quote *q, EVP_PKEY *ak, const uint8_t *sig, size_t siglen,
                      int iters)
{
	double *t = calloc((size_t)iters, sizeof(double));
	for (int i = 0; i < iters; i++) {
		double t0 = now_us();
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, ak);
		if (EVP_DigestVerify(md, sig, siglen, q->message, q->message_len) != 1) {
			fprintf(stderr, "bench-snp: RSA baseline failed\n");
			exit(1);
		}
		EVP_MD_CTX_free(md);
		t[i] = now_us() - t0;
	}
	double m = median(t, iters);
	free(t);
	return m;
}

int main(int argc, char **argv)
{
	int iters = argc > 1 ? atoi(argv[1]) : 2000;
	const char *shared = getenv("CTRUSTEE_SHARED");
	char dir[1024];
	struct err err = {0};

	snprintf(dir, sizeof(dir), "%s", shared ? shared : "../shared");
	if (iters < 10)
		iters = 10;

	/* SNP: Genoa JSON evidence with its VCEK in cert_chain */
	json_t *ev = load(dir, "snp/trustee/e2e-evidence.json");
	struct snp_report r;
	if (snp_report_from_json(json_object_get(ev, "attestation_report"), &r, &err) < 0) {
		fprintf(stderr, "bench-snp: %s\n", err.msg);
		return 1;
	}
	json_t *data =
	    json_object_get(json_array_get(json_object_get(ev, "cert_chain"), 0), "data");
	size_t n = json_array_size(data), i;
	uint8_t *der = malloc(n);
	json_t *b;
	json_array_foreach(data, i, b) der[i] = (uint8_t)json_integer_value(b);
	struct snp_vek vek;
	if (snp_vek_load(der, n, &vek, &err) < 0) {
		fprintf(stderr, "bench-snp: %s\n", err.msg);
		return 1;
	}
	run_verifier("snp", ev, 20); /* warm-up: roots parsed, caches filled */
	double snp = run_verifier("snp", ev, iters);
	double p384 = raw_p384(&r, X509_get0_pubkey(vek.cert), iters);
	printf("snp report verification (warm, VCEK in evidence): %.1f us median\n", snp);
	printf("  baseline: one OpenSSL ECDSA P-384 verify:       %.1f us median\n", p384);
	printf("  ratio: %.2fx\n", snp / p384);

	/* TPM: trustee fixture (RSA-2048 AK, TPMT_SIGNATURE) */
	json_t *tev = load(dir, "tpm/trustee/tpm_evidence.json");
	struct tpm_quote q;
	if (tpm_quote_from_json(json_object_get(tev, "tpm_quote"), TPM_JSON_B64_TPMT, &q, &err) <
	    0) {
		fprintf(stderr, "bench-snp: %s\n", err.msg);
		return 1;
	}
	const char *akb64 = json_string_value(json_object_get(tev, "ak_public"));
	uint8_t *akder;
	size_t aklen;
	b64_decode(akb64, strlen(akb64), B64_STD, &akder, &aklen);
	const unsigned char *p = akder;
	EVP_PKEY *ak = d2i_PUBKEY(NULL, &p, (long)aklen);
	run_verifier("tpm", tev, 20);
	double tpm = run_verifier("tpm", tev, iters);
	/* TPMT_SIGNATURE: alg(2) hash(2) size(2) sig */
	double rsa = raw_rsa(&q, ak, q.signature + 6, q.signature_len - 6, iters);
	printf("tpm quote verification:                           %.1f us median\n", tpm);
	printf("  baseline: one OpenSSL RSA-2048 PKCS#1 verify:   %.1f us median\n", rsa);
	printf("  ratio: %.2fx\n", tpm / rsa);

	EVP_PKEY_free(ak);
	free(akder);
	tpm_quote_free(&q);
	snp_vek_free(&vek);
	free(der);
	json_decref(ev);
	json_decref(tev);
	return 0;
}
