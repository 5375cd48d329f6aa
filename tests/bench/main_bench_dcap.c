/*
 * bench-dcap: cost of verifying an Intel TDX quote (dcap-qvl's v4 quote and collateral, at a
 * pinned time), beside the ECDSA P-256 verifications DCAP verification cannot avoid, done
 * with OpenSSL on preloaded keys in the same run:
 *
 *   baseline   quote signature + QE report signature + PCK certificate + PCK CA certificate,
 *              and the first two alone (what a quote from an already-seen platform costs)
 *   warm       the tdx verifier end to end (base64 evidence -> claims), collateral and the
 *              PCK chain already checked and cached
 *   core       dcap_verify alone, warm
 *   cold       the same with every cache emptied first: collateral read from the bundle file,
 *              its signatures and chains checked, the PCK chain parsed and verified
 *
 * Medians over many iterations; usage: bench-dcap [iterations]
 */
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "as/evidence/dcap.h"
#include "as/evidence/dcap_internal.h"
#include "as/collateral/intel_pcs.h"
#include "as/verifiers/verifier.h"
#include "b64.h"
#include "tests/bench/bench_time.h"
#include "config.h"

#define WHEN "2025-07-19T10:00:34Z"

static void die(const char *what, const char *why)
{
	fprintf(stderr, "bench-dcap: %s: %s\n", what, why);
	exit(1);
}

/* DER ECDSA signature from raw r||s */
static int der_sig(const uint8_t rs[64], unsigned char **der)
{
	ECDSA_SIG *s = ECDSA_SIG_new();
	ECDSA_SIG_set0(s, BN_bin2bn(rs, 32, NULL), BN_bin2bn(rs + 32, 32, NULL));
	int n = i2d_ECDSA_SIG(s, der);
	ECDSA_SIG_free(s);
	return n;
}

struct verify_op {
	EVP_PKEY *key;
	const unsigned char *sig;
	size_t siglen;
	const unsigned char *data;
	size_t len;
};

static int run_op(const struct verify_op *o)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, o->key) == 1 &&
	         EVP_DigestVerify(md, o->sig, o->siglen, o->data, o->len) == 1;
	EVP_MD_CTX_free(md);
	return ok;
}

/* The to-be-signed bytes and signature of a certificate, for a raw verify. */
static void cert_op(X509 *x, X509 *issuer, struct verify_op *o)
{
	const ASN1_BIT_STRING *sig;
	unsigned char *tbs = NULL;
	X509_get0_signature(&sig, NULL, x);
	int n = i2d_re_X509_tbs(x, &tbs);
	o->key = X509_get0_pubkey(issuer);
	o->sig = ASN1_STRING_get0_data(sig);
	o->siglen = (size_t)ASN1_STRING_length(sig);
	o->data = tbs;
	o->len = (size_t)n;
}

int main(int argc, char **argv)
{
	int iters = argc > 1 ? atoi(argv[1]) : 2000;
	const char *shared = getenv("CTRUSTEE_SHARED");
	char qpath[1200], cpath[1200];
	struct err err = {0};
	size_t qlen;

	if (iters < 10)
		iters = 10;
	snprintf(qpath, sizeof(qpath), "%s/testdata/evidence/tdx/dcap-qvl/tdx_quote",
	         shared ? shared : "../shared");
	snprintf(cpath, sizeof(cpath),
	         "%s/testdata/evidence/tdx/dcap-qvl/tdx_quote_collateral.json",
	         shared ? shared : "../shared");
	uint8_t *quote = (uint8_t *)file_read_all(qpath, &qlen, &err);
	if (quote == NULL)
		die("quote", err.msg);
	time_t when;
	dcap_parse_time(WHEN, &when);
	struct dcap_quote q;
	if (dcap_quote_parse(quote, qlen, &q, &err) < 0)
		die("quote", err.msg);

	/* baseline: the four P-256 verifications on preloaded keys */
	struct dcap_pck pck;
	if (dcap_pck_parse(q.pck_pem, q.pck_pem_len, &pck, &err) < 0)
		die("PCK chain", err.msg);
	EVP_PKEY *ak = dcap_p256_key(q.att_key);
	if (ak == NULL)
		die("attestation key", "not a P-256 point");
	unsigned char *qsig = NULL, *rsig = NULL;
	struct verify_op ops[4] = {
	    {ak, NULL, 0, q.signed_data, q.signed_len},
	    {X509_get0_pubkey(pck.leaf), NULL, 0, q.qe_report, DCAP_SGX_REPORT_SIZE},
	};
	ops[0].siglen = (size_t)der_sig(q.signature, &qsig);
	ops[0].sig = qsig;
	ops[1].siglen = (size_t)der_sig(q.qe_report_sig, &rsig);
	ops[1].sig = rsig;
	cert_op(pck.leaf, pck.ca, &ops[2]);
	cert_op(pck.ca, pck.root, &ops[3]);
	double *t = calloc((size_t)iters, sizeof(double));
	for (int i = 0; i < iters; i++) {
		double t0 = now_us();
		for (int k = 0; k < 4; k++)
			if (!run_op(&ops[k]))
				die("baseline", "an ECDSA verification failed");
		t[i] = now_us() - t0;
	}
	double base = median(t, iters);
	for (int i = 0; i < iters; i++) {
		double t0 = now_us();
		for (int k = 0; k < 2; k++)
			if (!run_op(&ops[k]))
				die("baseline", "an ECDSA verification failed");
		t[i] = now_us() - t0;
	}
	double base2 = median(t, iters);

	/* the tdx verifier end to end, warm */
	char *b64 = b64_encode(quote, qlen, B64_STD);
	json_t *ev = json_pack("{s:s, s:n}", "quote", b64, "cc_eventlog");
	json_t *opts = json_pack("{s:s}", "collateral", cpath);
	const struct verifier *v = verifier_find("tdx");
	if (v == NULL)
		die("tdx", "no tdx verifier in this build");
	struct verify_request req = {.evidence = ev, .now = when, .options = opts};
	for (int i = 0; i < iters + 1; i++) {
		struct verify_result res = {0};
		double t0 = now_us();
		if (v->verify(&req, &res, &err) != 0)
			die("tdx verifier", err.msg);
		if (i > 0)
			t[i - 1] = now_us() - t0;
		verify_result_clear(&res);
	}
	double warm = median(t, iters);

	/* dcap_verify alone, warm */
	struct dcap_collateral c;
	if (dcap_collateral_load_file(cpath, &c, &err) < 0)
		die("collateral", err.msg);
	for (int i = 0; i < iters + 1; i++) {
		struct dcap_result r;
		double t0 = now_us();
		if (dcap_verify(&q, &c, when, &r, &err) != 0)
			die("dcap_verify", err.msg);
		if (i > 0)
			t[i - 1] = now_us() - t0;
		dcap_result_free(&r);
	}
	double core = median(t, iters);
	dcap_collateral_free(&c);

	/* cold: nothing cached */
	int cold_iters = iters / 10 < 20 ? 20 : iters / 10;
	for (int i = 0; i < cold_iters; i++) {
		struct verify_result res = {0};
		intel_pcs_reset();
		dcap_pck_cache_reset();
		double t0 = now_us();
		if (v->verify(&req, &res, &err) != 0)
			die("tdx verifier (cold)", err.msg);
		t[i] = now_us() - t0;
		verify_result_clear(&res);
	}
	double cold = median(t, cold_iters);

	printf("TDX quote v4 (dcap-qvl, %d iterations, medians)\n", iters);
	printf("  baseline: 4 ECDSA P-256 verifies (OpenSSL) %8.1f us\n", base);
	printf("  baseline: the 2 per-quote signatures only   %8.1f us  (quote + QE report; the\n"
	       "            PCK chain is verified once per chain and cached by its bytes)\n",
	       base2);
	printf("  tdx verifier, warm collateral cache         %8.1f us  "
	       "(%.2fx baseline, %.2fx the 2)\n",
	       warm, warm / base, warm / base2);
	printf("  dcap_verify alone, warm                     %8.1f us  (%.2fx baseline)\n", core,
	       core / base);
	printf("  tdx verifier, cold (load + check collateral) %7.1f us  (%.2fx baseline)\n", cold,
	       cold / base);
	printf("  per-quote throughput, warm, one core         %7.0f quotes/s\n", 1e6 / warm);
	free(t);
	free(b64);
	free(qsig);
	free(rsig);
	free(quote);
	free((void *)ops[2].data);
	free((void *)ops[3].data);
	EVP_PKEY_free(ak);
	dcap_pck_free(&pck);
	json_decref(ev);
	json_decref(opts);
	return 0;
}
