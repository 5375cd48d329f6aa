/* Fuzz the verifiers end to end on the evidence document, then the policy-input flattening of
 * what they return: the path every /attest takes through the AS. Input: one byte whose low 7
 * bits pick the TEE; if its top bit is set, a length byte and that many bytes of expected
 * report data follow; the rest is the evidence JSON (as the AS passes it after
 * base64url-decoding).
 * Offline by construction: SNP VCEKs come only from the evidence (an empty OfflineStore,
 * never AMD's KDS), and Intel collateral from a file holding the testdata's dcap-qvl TDX and
 * SGX bundles, with the verification time inside their validity, so the seed quotes verify
 * all the way and mutations start past the signatures. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "as/claims.h"
#include "as/verifiers/verifier.h"
#include "log.h"

static const char *const tees[] = {"sample",      "snp", "tpm", "az-snp-vtpm",
                                   "az-tdx-vtpm", "tdx", "sgx"};
static char collateral[64];

static void remove_collateral(void)
{
	unlink(collateral);
}

/* The two dcap-qvl bundles of the testdata as one array file (none if the testdata is
 * absent: the DCAP verifiers then refuse every quote, which is still worth running). */
static void write_collateral(void)
{
	const char *shared = getenv("CTRUSTEE_SHARED");
	char path[1024];
	json_t *all = json_array();
	static const char *const files[] = {"tdx/dcap-qvl/tdx_quote_collateral.json",
	                                    "sgx/dcap-qvl/sgx_quote_collateral.json"};

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/testdata/evidence/%s",
		         shared ? shared : "../shared", files[i]);
		json_t *b = json_load_file(path, 0, NULL);
		if (b != NULL)
			json_array_append_new(all, b);
	}
	snprintf(collateral, sizeof(collateral), "/tmp/fuzz-verifier-%ld.json", (long)getpid());
	if (json_dump_file(all, collateral, 0) == 0)
		atexit(remove_collateral);
	json_decref(all);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct err err;
	char svc[128];

	log_set_level(LOG_ERROR);
	write_collateral();
	snprintf(svc, sizeof(svc), "file://%s", collateral);
	json_t *cfg =
	    json_pack("{s:{s:[{s:s,s:s}]},s:{s:s,s:s}}", "snp_verifier", "vcek_sources", "type",
	              "OfflineStore", "path", "/nonexistent/ctrustee-fuzz", "dcap_verifier",
	              "collateral_service", svc, "verification_time", "2025-07-01T00:00:00Z");
	if (cfg == NULL || verifiers_init(cfg, &err) < 0) {
		fprintf(stderr, "fuzz_verifier: cannot configure the verifiers: %s\n",
		        cfg ? err.msg : "out of memory");
		abort();
	}
	json_decref(cfg);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *rd = NULL;
	size_t off = 1, rdlen = 0;
	if (size < 1)
		return 0;
	if (data[0] & 0x80) {
		if (size < 2 || size - 2 < data[1])
			return 0;
		rd = data + 2;
		rdlen = data[1];
		off = 2 + rdlen;
	}
	const char *tee = tees[(data[0] & 0x7f) % (sizeof(tees) / sizeof(tees[0]))];
	const struct verifier *v = verifier_find(tee);
	json_t *ev = json_loadb((const char *)data + off, size - off, 0, NULL);
	if (v == NULL || ev == NULL) {
		json_decref(ev);
		return 0;
	}
	struct verify_request req = {.evidence = ev, .report_data = rd, .report_data_len = rdlen};
	struct verify_result res = {0};
	struct err err;
	if (v->verify(&req, &res, &err) == 0) {
		for (size_t i = 0; i < res.n; i++)
			json_decref(claims_policy_input(tee, res.items[i].claims, NULL, NULL, 1));
	}
	verify_result_clear(&res);
	json_decref(ev);
	return 0;
}
