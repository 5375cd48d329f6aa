/*
 * bench-nvidia: cost of verifying NVIDIA device evidence locally (the nvidia verifier: chain to
 * the NVIDIA Device Identity CA, FWID, SPDM transcript signature, nonce, claims), beside what
 * the verification cannot avoid, measured in the same run: the ECDSA P-384 verifies with
 * OpenSSL over the same bytes, i.e. the transcript's signature under the leaf and each
 * certificate's signature under its issuer (the chain comes with every request). Three cases:
 * one H100 report (Trustee's hopperAttestationReport with chain case 1), one LS10 switch report
 * and nvtrust's whole PPCIe board (8 H100s, 4 LS10 switches and the topology check).
 *
 * Both are timed in this thread's CPU time (CLOCK_THREAD_CPUTIME_ID), alternating one verify
 * and one baseline per round, so a loaded machine (the shared 2 cores often run at load 10)
 * slows neither side more than the other; medians over the rounds.
 * Usage: bench-nvidia [rounds]
 */
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "as/evidence/nvidia_chain.h"
#include "as/evidence/spdm.h"
#include "as/verifiers/verifier.h"
#include "b64.h"
#include "config.h"
#include "tests/bench/bench_time.h"
#include <time.h>

/* The P-384 verifies one device costs at the least: its transcript and its chain. */
struct floor_dev {
	uint8_t *signed_bytes;
	size_t signed_len;
	unsigned char *der;
	int der_len;
	EVP_PKEY *leaf; /* borrowed from chain */
	struct nvidia_chain chain;
};

static void die(const char *what, const char *why)
{
	fprintf(stderr, "bench-nvidia: %s: %s\n", what, why);
	exit(1);
}

static void floor_prepare(const json_t *e, enum spdm_device kind, struct floor_dev *f)
{
	const char *ev = json_string_value(json_object_get(e, "evidence"));
	const char *c64 = json_string_value(json_object_get(e, "certificate"));
	uint8_t *raw, *pem;
	size_t n, pn;
	struct spdm_measurements *m = malloc(sizeof(*m));
	struct err err = {0};

	if (hex_decode(ev, strlen(ev), &raw, &n) < 0 &&
	    b64_decode(ev, strlen(ev), B64_STD | B64_LENIENT, &raw, &n) < 0)
		die("evidence", "neither hex nor base64");
	if (b64_decode(c64, strlen(c64), B64_STD | B64_LENIENT, &pem, &pn) < 0 ||
	    nvidia_chain_parse(pem, pn, &f->chain, &err) < 0 ||
	    spdm_measurements_parse_device(raw, n, SPDM_P384_SIG_LEN, kind, m, &err) < 0)
		die("device", err.msg);
	f->signed_bytes = raw;
	f->signed_len = m->signed_len;
	ECDSA_SIG *s = ECDSA_SIG_new();
	ECDSA_SIG_set0(s, BN_bin2bn(m->signature, 48, NULL),
	               BN_bin2bn(m->signature + 48, 48, NULL));
	f->der = NULL;
	f->der_len = i2d_ECDSA_SIG(s, &f->der);
	ECDSA_SIG_free(s);
	f->leaf = X509_get0_pubkey(nvidia_chain_leaf(&f->chain));
	free(m);
	free(pem);
}

static void floor_free(struct floor_dev *f)
{
	free(f->signed_bytes);
	OPENSSL_free(f->der);
	nvidia_chain_free(&f->chain);
}

/* The transcript signature, then each certificate under its issuer (not the root's own). */
static void floor_run(const struct floor_dev *f)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int n = sk_X509_num(f->chain.certs);
	if (EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, f->leaf) != 1 ||
	    EVP_DigestVerify(md, f->der, (size_t)f->der_len, f->signed_bytes, f->signed_len) != 1)
		die("baseline", "the transcript signature does not verify");
	EVP_MD_CTX_free(md);
	for (int i = 0; i + 1 < n; i++)
		if (X509_verify(sk_X509_value(f->chain.certs, i),
		                X509_get0_pubkey(sk_X509_value(f->chain.certs, i + 1))) != 1)
			die("baseline", "a certificate signature does not verify");
}

/* This thread's CPU time: what the work costs, without the waits of a loaded machine. */
static double cpu_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void floor_run_all(const struct floor_dev *f, size_t n);

/* Rounds of one verify then one baseline; the medians of each into *full and *base. */
static void time_both(const json_t *ev, const char *nonce_hex, int iters, size_t want,
                      const struct floor_dev *f, size_t nf, double *full, double *base)
{
	const struct verifier *v = verifier_find("nvidia");
	uint8_t *nonce;
	size_t nl;
	struct err err = {0};
	double *tm = calloc((size_t)iters, sizeof(double));
	double *tb = calloc((size_t)iters, sizeof(double));

	if (hex_decode(nonce_hex, strlen(nonce_hex), &nonce, &nl) < 0)
		die("nonce", "not hex");
	struct verify_request req = {.evidence = ev, .report_data = nonce, .report_data_len = nl};
	for (int i = 0; i < iters + 5; i++) {
		struct verify_result res = {0};
		double t0 = cpu_us();
		if (v->verify(&req, &res, &err) != 0)
			die("verification failed", err.msg);
		double t1 = cpu_us();
		floor_run_all(f, nf);
		if (i >= 5) { /* the first rounds warm the caches */
			tm[i - 5] = t1 - t0;
			tb[i - 5] = cpu_us() - t1;
		}
		if (res.n != want || verify_result_first_failure(&res) != NULL)
			die("verification", verify_result_first_failure(&res)
			                        ? verify_result_first_failure(&res)
			                        : "unexpected device count");
		verify_result_clear(&res);
	}
	*full = median(tm, iters);
	*base = median(tb, iters);
	free(tm);
	free(tb);
	free(nonce);
}

static void floor_run_all(const struct floor_dev *f, size_t n)
{
	for (size_t k = 0; k < n; k++)
		floor_run(&f[k]);
}

static void report(const char *what, double full, double floor_us, int sigs)
{
	printf("%s: %.1f us CPU median\n", what, full);
	printf("  baseline: %d OpenSSL ECDSA P-384 verifies (transcript + certificates): %.1f us "
	       "CPU median\n",
	       sigs, floor_us);
	printf("  ratio: %.2fx\n", full / floor_us);
}

static json_t *load(const char *path)
{
	json_t *j = json_load_file(path, 0, NULL);
	if (j == NULL)
		die("cannot read", path);
	return j;
}

static int chain_sigs(const struct floor_dev *f, size_t n)
{
	int s = 0;
	for (size_t i = 0; i < n; i++)
		s += sk_X509_num(f[i].chain.certs); /* transcript + (certs - 1) */
	return s;
}

int main(int argc, char **argv)
{
	int iters = argc > 1 ? atoi(argv[1]) : 300;
	const char *shared = getenv("CTRUSTEE_SHARED");
	char dir[1024], p[1200];
	struct err err = {0};
	size_t len;

	if (iters < 10)
		iters = 10;
	snprintf(dir, sizeof(dir), "%s/testdata/evidence/nvidia", shared ? shared : "../shared");

	/* one H100 */
	snprintf(p, sizeof(p), "%s/trustee/hopperAttestationReport.txt", dir);
	char *rep = file_read_all(p, &len, &err);
	snprintf(p, sizeof(p), "%s/trustee/hopper_cert_chain_case1.txt", dir);
	char *chain = rep ? file_read_all(p, &len, &err) : NULL;
	if (chain == NULL)
		die("testdata", err.msg);
	size_t rl = strlen(rep);
	while (rl > 0 && (rep[rl - 1] == '\n' || rep[rl - 1] == '\r'))
		rep[--rl] = '\0';
	char *c64 = b64_encode((const uint8_t *)chain, len, B64_STD);
	json_t *gpu =
	    json_pack("{s:s,s:s,s:s}", "arch", "Hopper", "evidence", rep, "certificate", c64);
	json_t *ev = json_pack("{s:[O]}", "device_evidence_list", gpu);
	struct floor_dev f1;
	floor_prepare(gpu, SPDM_DEVICE_GPU, &f1);
	double full, base;
	time_both(ev, "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb", iters, 1,
	          &f1, 1, &full, &base);
	report("gpu report verification (H100, local: chain, FWID, signature, nonce)", full, base,
	       chain_sigs(&f1, 1));
	json_decref(ev);

	/* one LS10 switch, and the whole board */
	snprintf(p, sizeof(p), "%s/nvtrust/ppcie/switch_evidence.json", dir);
	json_t *sw = load(p);
	snprintf(p, sizeof(p), "%s/nvtrust/ppcie/gpu_evidence.json", dir);
	json_t *gpus = load(p);
	const char *ppcie_nonce =
	    "4760e30534a0621357d458b1a7936551b5dc4cd1e69718adf7ed9fb0252a537e";
	struct floor_dev fb[12];
	for (size_t i = 0; i < 12; i++)
		floor_prepare(i < 8 ? json_array_get(gpus, i) : json_array_get(sw, i - 8),
		              i < 8 ? SPDM_DEVICE_GPU : SPDM_DEVICE_SWITCH, &fb[i]);
	ev = json_pack("{s:[O]}", "device_evidence_list", json_array_get(sw, 0));
	time_both(ev, ppcie_nonce, iters, 1, &fb[8], 1, &full, &base);
	report("switch report verification (LS10, local: chain, signature, nonce)", full, base,
	       chain_sigs(&fb[8], 1));
	json_decref(ev);

	json_t *all = json_copy(gpus);
	json_array_extend(all, sw);
	ev = json_pack("{s:o}", "device_evidence_list", all);
	time_both(ev, ppcie_nonce, iters / 10 > 10 ? iters / 10 : 10, 13, fb, 12, &full, &base);
	report("PPCIe board verification (8 H100 + 4 LS10 + topology)", full, base,
	       chain_sigs(fb, 12));

	json_decref(ev);
	for (size_t i = 0; i < 12; i++)
		floor_free(&fb[i]);
	floor_free(&f1);
	json_decref(sw);
	json_decref(gpus);
	json_decref(gpu);
	free(c64);
	free(rep);
	free(chain);
	return 0;
}
