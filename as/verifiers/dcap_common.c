/*
 * dcap_evidence: the steps the `tdx` and `sgx` verifiers share — take the quote out of the
 * evidence, find its collateral, verify it, and bind it to the expected report data and
 * init-data hash (as-rvps.md §2.4: REPORT_DATA regularized to 64 bytes; TDX MRCONFIGID to
 * 48, SGX CONFIGID to 64).
 */
#include <stdlib.h>
#include <string.h>

#include "as/verifiers/dcap_common.h"
#include "as/collateral/intel_pcs.h"
#include "b64.h"

int dcap_evidence_quote(const json_t *evidence, const char *tee, uint8_t **buf, size_t *len,
                        struct err *err)
{
	json_t *q = json_object_get(evidence, "quote");
	if (!json_is_object(evidence))
		return err_set(err, "%s evidence must be a JSON object", tee);
	if (!json_is_string(q) || json_string_length(q) == 0)
		return err_set(err, "%s evidence `quote` must be a non-empty base64 string", tee);
	if (b64_decode(json_string_value(q), json_string_length(q), B64_STD | B64_LENIENT, buf, len) <
	    0)
		return err_set(err, "%s evidence `quote` is not base64", tee);
	return 0;
}

static int bind(const uint8_t *field, size_t n, const uint8_t *want, size_t wlen,
                const char *what, struct err *err)
{
	uint8_t exp[64];
	if (want == NULL)
		return 0;
	verifier_regularize(want, wlen, exp, n);
	if (memcmp(field, exp, n) != 0)
		return err_set(err, "%s", what);
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
		/* evidence-verify --parse-only: claims without any verification, never used by the AS */
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
	if (bind(rd, 64, req->report_data, req->report_data_len,
	         tdx ? "TDX quote report_data does not match the expected report data"
	             : "SGX quote report_data does not match the expected report data",
	         err) < 0 ||
	    bind(q->body + (tdx ? DCAP_TD_MR_CONFIG_ID : DCAP_SGX_CONFIG_ID), tdx ? 48 : 64,
	         req->init_data_hash, req->init_data_hash_len,
	         tdx ? "TDX quote MRCONFIGID does not match the init-data hash"
	             : "SGX quote CONFIGID does not match the init-data hash",
	         err) < 0) {
		dcap_result_free(res);
		return -1;
	}
	return 0;
}

json_t *dcap_hex(const uint8_t *p, size_t n)
{
	char *h = hex_encode(p, n);
	json_t *s = json_string(h ? h : "");
	free(h);
	return s;
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
		json_object_set_new(claims, "platform_instance_id", dcap_hex(be, 16));
	}
	if (verified)
		dcap_result_claims(res, claims);
	if (have_pck)
		dcap_pck_free(&pck);
}
