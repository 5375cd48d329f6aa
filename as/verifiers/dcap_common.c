/*
 * dcap_common: the steps the `tdx` and `sgx` verifiers share — take the quote out of the
 * evidence, find its collateral, verify it, and bind it to the expected report data and
 * init-data hash (as-rvps.md §2.4: REPORT_DATA regularized to 64 bytes; TDX MRCONFIGID to
 * 48, SGX CONFIGID to 64).
 */
#include <stdlib.h>
#include <string.h>

#include "as/verifiers/dcap_common.h"
#include "as/collateral/intel_pcs.h"

int dcap_verifier_init(const json_t *verifier_config, struct err *err)
{
	return intel_pcs_configure(json_object_get(verifier_config, "dcap_verifier"), err);
}

int dcap_evidence_quote(const json_t *evidence, const char *tee, uint8_t **buf, size_t *len,
                        struct err *err)
{
	if (!json_is_object(evidence))
		return err_set(err, "%s evidence must be a JSON object", tee);
	if (verifier_evidence_bytes(evidence, tee, "quote", 0, buf, len, err) < 0)
		return -1;
	if (*len == 0) {
		free(*buf);
		*buf = NULL;
		return err_set(err, "%s evidence `quote` must be a non-empty base64 string", tee);
	}
	return 0;
}

int dcap_evidence_verify(const struct verify_request *req, const struct dcap_quote *q,
                         struct dcap_result *res, struct err *err)
{
	int tdx = dcap_quote_is_tdx(q);
	uint8_t fmspc[6];
	enum dcap_pck_ca ca;

	memset(res, 0, sizeof(*res));
	if (json_is_true(json_object_get(req->options, "parse_only"))) {
		/* evidence-verify --parse-only: claims without any verification, never used by the
		 * AS */
		return 0;
	}
	if (dcap_quote_fmspc(q, fmspc, &ca, err) < 0)
		return -1;
	struct dcap_collateral *c = intel_pcs_get(tdx, fmspc, ca, req->options, err);
	if (c == NULL)
		return -1;
	time_t now = req->now ? req->now : intel_pcs_time();
	int rc = dcap_verify(q, c, now, res, err);
	intel_pcs_release(c);
	if (rc < 0)
		return -1;
	const uint8_t *rd = q->body + (tdx ? DCAP_TD_REPORT_DATA : DCAP_SGX_REPORT_DATA);
	if (verifier_bind(rd, 64, req->report_data, req->report_data_len,
	                  tdx ? "TDX quote report_data" : "SGX quote report_data",
	                  "the expected report data", err) < 0 ||
	    verifier_bind(q->body + (tdx ? DCAP_TD_MR_CONFIG_ID : DCAP_SGX_CONFIG_ID),
	                  tdx ? 48 : 64, req->init_data_hash, req->init_data_hash_len,
	                  tdx ? "TDX quote MRCONFIGID" : "SGX quote CONFIGID", "the init-data hash",
	                  err) < 0) {
		dcap_result_free(res);
		return -1;
	}
	return 0;
}

void dcap_common_claims(const struct dcap_quote *q, const struct dcap_result *res, json_t *claims,
                        int verified)
{
	struct dcap_pck pck;
	const struct dcap_pck_ext *ext = verified ? &res->pck : NULL;
	int have_pck = 0;
	if (!verified && dcap_pck_parse(q->pck_pem, q->pck_pem_len, &pck, NULL) == 0) {
		ext = &pck.ext;
		have_pck = 1;
	}
	if (ext != NULL && ext->has_platform_instance_id) {
		uint8_t be[16];
		for (int i = 0; i < 16; i++)
			be[i] = ext->platform_instance_id[15 - i];
		verifier_claim_hex(claims, "platform_instance_id", be, 16);
	}
	if (verified)
		dcap_result_claims(res, claims);
	if (have_pck)
		dcap_pck_free(&pck);
}
