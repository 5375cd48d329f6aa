/*
 * az-snp-vtpm verifier (as-rvps.md §5.6): an Azure SEV-SNP confidential VM. The vTPM's
 * quote carries the nonce; the HCL report ties the vTPM's attestation key to an SNP report
 * (SNP report_data[0..32] = SHA-256 of the HCL variable data that holds the AK); the SNP
 * report is verified to AMD's roots like the `snp` verifier does. Claims are strings.
 *
 * Evidence v1/v2: {"version", "tpm_quote": {hex signature, message, pcrs}, "hcl_report":
 * b64url, "vcek": b64url DER}; v0: {"quote": {byte arrays}, "report": [bytes], "vcek": PEM}.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "as/evidence/hcl_report.h"
#include "as/evidence/snp_report.h"
#include "as/evidence/tpm_quote.h"
#include "as/verifiers/verifier.h"
#include "b64.h"

struct az_evidence {
	int version;
	struct tpm_quote quote;
	uint8_t *hcl;
	size_t hcl_len;
	uint8_t *vcek;
	size_t vcek_len;
};

static void az_evidence_free(struct az_evidence *e)
{
	tpm_quote_free(&e->quote);
	free(e->hcl);
	free(e->vcek);
}

static int parse_evidence(const json_t *ev, struct az_evidence *e, struct err *err)
{
	json_t *ver = json_object_get(ev, "version");

	memset(e, 0, sizeof(*e));
	if (!json_is_object(ev))
		return err_set(err, "az-snp-vtpm evidence must be a JSON object");
	if (json_is_integer(ver)) {
		e->version = (int)json_integer_value(ver);
		if (e->version != 1 && e->version != 2)
			return err_set(err, "az-snp-vtpm evidence version %d is not 0, 1 or 2",
			               e->version);
		if (tpm_quote_from_json(json_object_get(ev, "tpm_quote"), TPM_JSON_HEX_RAW,
		                        &e->quote, err) < 0)
			return -1;
		if (verifier_evidence_bytes(ev, "az-snp-vtpm", "hcl_report", VERIFIER_B64URL,
		                            &e->hcl, &e->hcl_len, err) < 0 ||
		    verifier_evidence_bytes(ev, "az-snp-vtpm", "vcek", VERIFIER_B64URL, &e->vcek,
		                            &e->vcek_len, err) < 0)
			return -1;
		return 0;
	}
	e->version = 0;
	if (tpm_quote_from_json(json_object_get(ev, "quote"), TPM_JSON_BYTES_RAW, &e->quote, err) <
	    0)
		return -1;
	if (tpm_json_bytes(json_object_get(ev, "report"), TPM_JSON_BYTES_RAW, &e->hcl, &e->hcl_len,
	                   err) < 0)
		return err_prefix(err, "az-snp-vtpm evidence `report`");
	json_t *pem = json_object_get(ev, "vcek");
	if (!json_is_string(pem))
		return err_set(err, "az-snp-vtpm evidence `vcek` must be a PEM string");
	e->vcek_len = json_string_length(pem);
	e->vcek = malloc(e->vcek_len + 1);
	if (e->vcek == NULL)
		return err_set(err, "out of memory");
	memcpy(e->vcek, json_string_value(pem), e->vcek_len + 1);
	return 0;
}

static json_t *az_claims(const struct snp_report *r, const struct tpm_quote *q)
{
	json_t *c = verifier_snp_claims(r, 1), *tpm = json_object();
	char *s;

	s = b64_encode(r->measurement, 48, B64_STD);
	json_object_set_new(c, "measurement", json_string(s ? s : ""));
	free(s);
	tpm_pcr_claims(q, tpm);
	json_object_set_new(c, "tpm", tpm);
	if (!verifier_tpm_binding_claims(c, q) || q->n_pcrs <= 8) {
		/* no PCR8 quoted: the SNP HOST_DATA stands for the init data */
		s = b64_encode(r->host_data, 32, B64_STD);
		json_object_set_new(c, "init_data", json_string(s ? s : ""));
		free(s);
	}
	return c;
}

static int az_snp_verify(const struct verify_request *req, struct verify_result *out,
                         struct err *err)
{
	struct az_evidence e;
	struct hcl_report h = {0};
	struct snp_report r;
	struct snp_vek vek = {0};
	EVP_PKEY *ak = NULL;
	int rc = -1;

	if (req->report_data == NULL)
		return err_set(err, "az-snp-vtpm needs the expected report data, which was not "
		                    "provided");
	if (parse_evidence(req->evidence, &e, err) < 0)
		goto out;
	if (hcl_report_parse(e.hcl, e.hcl_len, &h, err) < 0)
		goto out;
	if (h.report_type != HCL_REPORT_TYPE_SNP) {
		err_set(err, "HCL report holds a TDX report, not an SNP report");
		goto out;
	}
	if ((ak = hcl_ak_pub(&h, err)) == NULL)
		goto out;
	if (tpm_quote_verify(&e.quote, ak, err) < 0 ||
	    tpm_check_nonce(&e.quote, req->report_data, req->report_data_len, 0, err) < 0)
		goto out;
	if (snp_report_parse(h.hw_report, SNP_REPORT_SIZE, SNP_GEN_UNKNOWN, &r, err) < 0)
		goto out;
	if (CRYPTO_memcmp(r.report_data, h.var_data_sha256, 32) != 0) {
		err_set(err, "HCL variable data digest doesn't match SNP report data");
		goto out;
	}
	if (e.version == 2 &&
	    hcl_check_user_data(&h, req->report_data, req->report_data_len, err) < 0)
		goto out;
	if (snp_vek_load(e.vcek, e.vcek_len, &vek, err) < 0)
		goto out;
	if (r.gen == SNP_GEN_UNKNOWN)
		snp_report_set_gen(&r, vek.gen);
	if (snp_vek_verify_chain(&vek, r.gen, NULL, NULL, req->now ? req->now : time(NULL), err) <
	        0 ||
	    snp_report_verify(&r, &vek, err) < 0)
		goto out;
	if (req->init_data_hash != NULL &&
	    tpm_check_pcr8(&e.quote, req->init_data_hash, req->init_data_hash_len, err) < 0)
		goto out;
	rc = verify_result_add(out, "cpu", az_claims(&r, &e.quote), err);
out:
	EVP_PKEY_free(ak);
	snp_vek_free(&vek);
	hcl_report_free(&h);
	az_evidence_free(&e);
	return rc;
}

const struct verifier verifier_az_snp_vtpm = {
    .tee = "az-snp-vtpm",
    .verify = az_snp_verify,
};
