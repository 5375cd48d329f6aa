/*
 * sgx verifier (as-rvps.md §5.4): an Intel SGX ECDSA quote (v3) verified with DCAP
 * collateral (dcap.h) and bound to the expected report data and init-data hash (CONFIGID).
 *
 * Evidence: {"quote": base64}.
 */
#include <stdlib.h>
#include <string.h>

#include "as/verifiers/dcap_common.h"

static const struct verifier_field header_fields[] = {
    {"version", 0, 2},  {"att_key_type", 2, 2}, {"att_key_data_0", 4, 4}, {"qe_svn", 8, 2},
    {"pce_svn", 10, 2}, {"vendor_id", 12, 16},  {"user_data", 28, 20},
};

static const struct verifier_field body_fields[] = {
    {"cpu_svn", 0, 16},          {"misc_select", 16, 4},      {"reserved1", 20, 12},
    {"isv_ext_prod_id", 32, 16}, {"attributes.flags", 48, 8}, {"attributes.xfrm", 56, 8},
    {"mr_enclave", 64, 32},      {"reserved2", 96, 32},       {"mr_signer", 128, 32},
    {"reserved3", 160, 32},      {"config_id", 192, 64},      {"isv_prod_id", 256, 2},
    {"isv_svn", 258, 2},         {"config_svn", 260, 2},      {"reserved4", 262, 42},
    {"isv_family_id", 304, 16},  {"report_data", 320, 64},
};

static int sgx_verify(const struct verify_request *req, struct verify_result *out, struct err *err)
{
	uint8_t *buf = NULL;
	size_t len;
	struct dcap_quote q;
	struct dcap_result res = {0};
	int rc = -1, parse_only = json_is_true(json_object_get(req->options, "parse_only"));

	if (dcap_evidence_quote(req->evidence, "sgx", &buf, &len, err) < 0)
		return -1;
	if (dcap_quote_parse(buf, len, &q, err) < 0)
		goto out;
	if (dcap_quote_is_tdx(&q)) {
		err_set(err, "sgx evidence holds a TDX quote (version %u)", q.version);
		goto out;
	}
	if (dcap_evidence_verify(req, &q, &res, err) < 0)
		goto out;
	json_t *c = json_object();
	json_object_set_new(c, "header",
	                    verifier_fields(q.header, DCAP_HEADER_SIZE, header_fields, 7));
	json_object_set_new(c, "body",
	                    verifier_fields(q.body, q.body_len, body_fields,
	                                    sizeof(body_fields) / sizeof(body_fields[0])));
	verifier_claim_hex(c, "report_data", q.body + DCAP_SGX_REPORT_DATA, 64);
	verifier_claim_hex(c, "init_data", q.body + DCAP_SGX_CONFIG_ID, 64);
	dcap_common_claims(&q, &res, c, !parse_only);
	rc = verify_result_add(out, "cpu", c, err);
out:
	dcap_result_free(&res);
	free(buf);
	return rc;
}

const struct verifier verifier_sgx = {
    .tee = "sgx",
    .init = dcap_verifier_init,
    .verify = sgx_verify,
};
