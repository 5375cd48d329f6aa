/*
 * sgx verifier (as-rvps.md §5.4): an Intel SGX ECDSA quote (v3) verified with DCAP
 * collateral (dcap.h) and bound to the expected report data and init-data hash (CONFIGID).
 *
 * Evidence: {"quote": base64}.
 */
#include <stdlib.h>
#include <string.h>

#include "as/verifiers/dcap_common.h"
#include "as/collateral/intel_pcs.h"

static int sgx_init(const json_t *verifier_config, struct err *err)
{
	return intel_pcs_configure(json_object_get(verifier_config, "dcap_verifier"), err);
}

struct field {
	const char *name;
	size_t off, len;
};

static const struct field header_fields[] = {
    {"version", 0, 2},   {"att_key_type", 2, 2}, {"att_key_data_0", 4, 4}, {"qe_svn", 8, 2},
    {"pce_svn", 10, 2},  {"vendor_id", 12, 16},  {"user_data", 28, 20},
};

static const struct field body_fields[] = {
    {"cpu_svn", 0, 16},       {"misc_select", 16, 4},      {"reserved1", 20, 12},
    {"isv_ext_prod_id", 32, 16}, {"attributes.flags", 48, 8}, {"attributes.xfrm", 56, 8},
    {"mr_enclave", 64, 32},   {"reserved2", 96, 32},       {"mr_signer", 128, 32},
    {"reserved3", 160, 32},   {"config_id", 192, 64},      {"isv_prod_id", 256, 2},
    {"isv_svn", 258, 2},      {"config_svn", 260, 2},      {"reserved4", 262, 42},
    {"isv_family_id", 304, 16}, {"report_data", 320, 64},
};

static json_t *fields(const uint8_t *base, const struct field *f, size_t n)
{
	json_t *o = json_object();
	for (size_t i = 0; i < n; i++)
		json_object_set_new(o, f[i].name, dcap_hex(base + f[i].off, f[i].len));
	return o;
}

static int sgx_verify(const struct verify_request *req, struct verify_result *out,
                      struct err *err)
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
	json_object_set_new(c, "header", fields(q.header, header_fields, 7));
	json_object_set_new(c, "body", fields(q.body, body_fields,
	                                      sizeof(body_fields) / sizeof(body_fields[0])));
	json_object_set_new(c, "report_data", dcap_hex(q.body + DCAP_SGX_REPORT_DATA, 64));
	json_object_set_new(c, "init_data", dcap_hex(q.body + DCAP_SGX_CONFIG_ID, 64));
	dcap_common_claims(&q, &res, c, !parse_only);
	snprintf(out->items[0].tee_class, sizeof(out->items[0].tee_class), "cpu");
	out->items[0].claims = c;
	out->n = 1;
	rc = 0;
out:
	dcap_result_free(&res);
	free(buf);
	return rc;
}

const struct verifier verifier_sgx = {
    .tee = "sgx",
    .init = sgx_init,
    .verify = sgx_verify,
};
