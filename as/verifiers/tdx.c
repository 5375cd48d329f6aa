/*
 * tdx verifier (as-rvps.md §5.3): an Intel TDX quote (v4, or v5 with a TDX 1.0/1.5 body)
 * verified with DCAP collateral (dcap.h), bound to the expected report data and init-data
 * hash (MRCONFIGID), and, when the guest sends its CC event log, the log replayed against
 * RTMR0..3.
 *
 * Evidence: {"quote": base64, "cc_eventlog": base64 | null | ""}. The tool option
 * "event_log" (a file) supplies the log when the evidence has none.
 */
#include <stdlib.h>
#include <string.h>

#include "as/verifiers/dcap_common.h"
#include "as/evidence/eventlog.h"
#include "config.h"

static const struct verifier_field body_fields[] = {
    {"tcb_svn", 0, 16},           {"mr_seam", 16, 48},       {"mrsigner_seam", 64, 48},
    {"seam_attributes", 112, 8},  {"td_attributes", 120, 8}, {"xfam", 128, 8},
    {"mr_td", 136, 48},           {"mr_config_id", 184, 48}, {"mr_owner", 232, 48},
    {"mr_owner_config", 280, 48}, {"rtmr_0", 328, 48},       {"rtmr_1", 376, 48},
    {"rtmr_2", 424, 48},          {"rtmr_3", 472, 48},       {"report_data", 520, 64},
    {"tee_tcb_svn2", 584, 16},    {"mr_servicetd", 600, 48},
};

static const struct verifier_field header_fields[] = {
    {"version", 0, 2},  {"att_key_type", 2, 2}, {"tee_type", 4, 4},
    {"reserved", 8, 4}, {"vendor_id", 12, 16},  {"user_data", 28, 20},
};

static json_t *tdx_claims(const struct dcap_quote *q)
{
	json_t *c = json_object(), *quote = json_object();
	json_object_set_new(quote, "header",
	                    verifier_fields(q->header, DCAP_HEADER_SIZE, header_fields, 6));
	json_object_set_new(quote, "body",
	                    verifier_fields(q->body, q->body_len, body_fields,
	                                    sizeof(body_fields) / sizeof(body_fields[0])));
	if (q->v5_type_size != NULL) {
		verifier_claim_hex(quote, "type", q->v5_type_size, 2);
		verifier_claim_hex(quote, "size", q->v5_type_size + 2, 4);
	}
	json_object_set_new(c, "quote", quote);
	const uint8_t *a = q->body + DCAP_TD_TD_ATTRIBUTES;
	uint64_t attr = 0;
	for (int i = 7; i >= 0; i--)
		attr = attr << 8 | a[i];
	json_object_set_new(c, "td_attributes",
	                    json_pack("{s:b, s:b, s:b, s:b, s:b}", "debug", (int)(attr & 1),
	                              "septve_disable", (int)(attr >> 28 & 1), "protection_keys",
	                              (int)(attr >> 30 & 1), "key_locker", (int)(attr >> 31 & 1),
	                              "perfmon", (int)(attr >> 63 & 1)));
	verifier_claim_hex(c, "report_data", q->body + DCAP_TD_REPORT_DATA, 64);
	verifier_claim_hex(c, "init_data", q->body + DCAP_TD_MR_CONFIG_ID, 48);
	return c;
}

/* The CC event log from the evidence, else from the tool option; NULL/0 when none. */
static int event_log(const struct verify_request *req, uint8_t **buf, size_t *len, struct err *err)
{
	json_t *v = json_object_get(req->evidence, "cc_eventlog");
	const char *path = json_string_value(json_object_get(req->options, "event_log"));
	*buf = NULL;
	*len = 0;
	if (json_is_string(v) && json_string_length(v) > 0)
		return verifier_evidence_bytes(req->evidence, "tdx", "cc_eventlog", 0, buf, len,
		                               err);
	if (v != NULL && !json_is_null(v) && !json_is_string(v))
		return err_set(err, "tdx evidence `cc_eventlog` must be base64, null or \"\"");
	if (path != NULL && (*buf = (uint8_t *)file_read_all(path, len, err)) == NULL)
		return err_prefix(err, "event log");
	return 0;
}

/* Parse the log into "uefi_event_logs"; unless only parsing, its replay must give RTMR0..3. */
static int check_event_log(const struct dcap_quote *q, const uint8_t *log, size_t len,
                           int parse_only, json_t *claims, struct err *err)
{
	uint8_t rtmr[4][48];
	json_t *entries = NULL;

	if (eventlog_parse(log, len, &entries, err) < 0)
		return err_prefix(err, "CC event log");
	memcpy(rtmr, q->body + DCAP_TD_RTMR0, sizeof(rtmr));
	if (!parse_only && eventlog_check_rtmrs(log, len, rtmr, err) < 0) {
		json_decref(entries);
		return -1;
	}
	json_object_set_new(claims, "uefi_event_logs", entries);
	return 0;
}

static int tdx_verify(const struct verify_request *req, struct verify_result *out, struct err *err)
{
	uint8_t *buf = NULL, *log = NULL;
	size_t len, loglen;
	struct dcap_quote q;
	struct dcap_result res = {0};
	json_t *claims = NULL;
	int rc = -1, parse_only = json_is_true(json_object_get(req->options, "parse_only"));

	if (dcap_evidence_quote(req->evidence, "tdx", &buf, &len, err) < 0)
		return -1;
	if (dcap_quote_parse(buf, len, &q, err) < 0)
		goto out;
	if (!dcap_quote_is_tdx(&q)) {
		err_set(err, "tdx evidence holds an SGX quote (version %u)", q.version);
		goto out;
	}
	if (event_log(req, &log, &loglen, err) < 0)
		goto out;
	if (dcap_evidence_verify(req, &q, &res, err) < 0)
		goto out;
	claims = tdx_claims(&q);
	if (log != NULL && check_event_log(&q, log, loglen, parse_only, claims, err) < 0)
		goto out;
	dcap_common_claims(&q, &res, claims, !parse_only);
	rc = verify_result_add(out, "cpu", claims, err);
	claims = NULL;
out:
	json_decref(claims);
	dcap_result_free(&res);
	free(buf);
	free(log);
	return rc;
}

const struct verifier verifier_tdx = {
    .tee = "tdx",
    .init = dcap_verifier_init,
    .verify = tdx_verify,
};
