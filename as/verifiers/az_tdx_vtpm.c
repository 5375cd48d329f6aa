/*
 * az-tdx-vtpm verifier (as-rvps.md §5.7): an Azure TDX confidential VM. The vTPM quote
 * carries the nonce, the HCL report names the vTPM's AK, and the TD quote (verified by the
 * `tdx` verifier with its DCAP collateral) commits to the HCL variable data in
 * report_data[0..32]. Claims are the TDX claims plus `tpm.pcrNN`, with report_data and
 * init_data taken from the vTPM (nonce, PCR8).
 *
 * Evidence v1/v2: {"version", "tpm_quote": {hex…}, "hcl_report": b64url, "td_quote": b64url};
 * v0: {"tpm_quote": {byte arrays}, "hcl_report": [bytes], "td_quote": [bytes]}.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as/evidence/hcl_report.h"
#include "as/evidence/tpm_quote.h"
#include "as/verifiers/verifier.h"
#include "b64.h"

static int bytes_field(const json_t *ev, const char *k, int v0, uint8_t **out, size_t *len,
                       struct err *err)
{
	json_t *v = json_object_get(ev, k);
	if (v0)
		return tpm_json_bytes(v, TPM_JSON_BYTES_RAW, out, len, err) < 0
		           ? err_prefix(err, "az-tdx-vtpm evidence `%s`", k)
		           : 0;
	return verifier_evidence_bytes(ev, "az-tdx-vtpm", k, VERIFIER_B64URL, out, len, err);
}

/* Verify the TD quote through the tdx verifier; returns its claims (new reference). */
static json_t *verify_td_quote(const struct verify_request *req, const uint8_t *q, size_t qlen,
                               struct err *err)
{
	const struct verifier *tdx = verifier_find("tdx");
	struct verify_result res = {0};
	json_t *claims = NULL;

	if (tdx == NULL) {
		err_set(err, "az-tdx-vtpm: the TD quote cannot be verified because this build has "
		             "no tdx verifier");
		return NULL;
	}
	char *b64 = b64_encode(q, qlen, B64_STD);
	json_t *ev = json_pack("{s:s}", "quote", b64 ? b64 : "");
	struct verify_request sub = {.evidence = ev, .now = req->now, .options = req->options};
	if (tdx->verify(&sub, &res, err) == 0 && res.n == 1)
		claims = json_incref(res.items[0].claims);
	else if (res.n != 1 && err != NULL && err->msg[0] == '\0')
		err_set(err, "tdx verifier returned no claims");
	verify_result_clear(&res);
	json_decref(ev);
	free(b64);
	if (claims == NULL)
		err_prefix(err, "TD quote");
	return claims;
}

static int az_tdx_verify(const struct verify_request *req, struct verify_result *out,
                         struct err *err)
{
	const json_t *ev = req->evidence;
	json_t *ver = json_object_get(ev, "version"), *claims = NULL;
	struct tpm_quote q = {0};
	struct hcl_report h = {0};
	uint8_t *hcl = NULL, *td = NULL;
	size_t hcl_len, td_len;
	EVP_PKEY *ak = NULL;
	int v0 = !json_is_integer(ver), version = v0 ? 0 : (int)json_integer_value(ver), rc = -1;

	if (req->report_data == NULL)
		return err_set(err, "az-tdx-vtpm needs the expected report data, which was not "
		                    "provided");
	if (!json_is_object(ev))
		return err_set(err, "az-tdx-vtpm evidence must be a JSON object");
	if (!v0 && version != 1 && version != 2)
		return err_set(err, "az-tdx-vtpm evidence version %d is not 0, 1 or 2", version);
	if (tpm_quote_from_json(json_object_get(ev, "tpm_quote"),
	                        v0 ? TPM_JSON_BYTES_RAW : TPM_JSON_HEX_RAW, &q, err) < 0)
		return -1;
	if (bytes_field(ev, "hcl_report", v0, &hcl, &hcl_len, err) < 0 ||
	    bytes_field(ev, "td_quote", v0, &td, &td_len, err) < 0)
		goto out;
	if (hcl_report_parse(hcl, hcl_len, &h, err) < 0)
		goto out;
	if (h.report_type != HCL_REPORT_TYPE_TDX) {
		err_set(err, "HCL report holds an SNP report, not a TDX report");
		goto out;
	}
	if ((ak = hcl_ak_pub(&h, err)) == NULL)
		goto out;
	if (tpm_quote_verify(&q, ak, err) < 0 ||
	    tpm_check_nonce(&q, req->report_data, req->report_data_len, 0, err) < 0)
		goto out;
	if (version == 2 &&
	    hcl_check_user_data(&h, req->report_data, req->report_data_len, err) < 0)
		goto out;
	if (req->init_data_hash != NULL &&
	    tpm_check_pcr8(&q, req->init_data_hash, req->init_data_hash_len, err) < 0)
		goto out;
	if ((claims = verify_td_quote(req, td, td_len, err)) == NULL)
		goto out;
	/* TD quote report_data[0..32] must be SHA-256 of the HCL variable data */
	const char *rd_hex = json_string_value(json_object_get(claims, "report_data"));
	char *want = hex_encode(h.var_data_sha256, 32);
	int bound = rd_hex != NULL && want != NULL && strlen(rd_hex) >= 64 &&
	            CRYPTO_memcmp(rd_hex, want, 64) == 0;
	free(want);
	if (!bound) {
		err_set(err, "TDX Quote report data mismatch: it does not commit to the HCL "
		             "variable data");
		goto out;
	}
	json_object_del(claims, "uefi_event_logs");
	json_t *tpm = json_object();
	tpm_pcr_claims(&q, tpm);
	json_object_set_new(claims, "tpm", tpm);
	if (!verifier_tpm_binding_claims(claims, &q))
		json_object_del(claims, "init_data"); /* the TD's MRCONFIGID is not what binds */
	rc = verify_result_add(out, "cpu", claims, err);
	claims = NULL;
out:
	json_decref(claims);
	EVP_PKEY_free(ak);
	hcl_report_free(&h);
	tpm_quote_free(&q);
	free(hcl);
	free(td);
	return rc;
}

const struct verifier verifier_az_tdx_vtpm = {
    .tee = "az-tdx-vtpm",
    .verify = az_tdx_verify,
};
