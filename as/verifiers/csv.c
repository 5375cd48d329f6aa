/*
 * csv verifier (as-rvps.md §5.11): a Hygon CSV guest's attestation report, read from
 * Trustee's evidence JSON (as/evidence/csv_report.c), checked as this list, in order:
 *   1. the evidence parses: report wrapper (v1 or v2), PEK, serial number, optional HSK/CEK;
 *   2. the HSK and CEK come from the evidence, else from `<hsk_cek_dir>/<serial>/hsk_cek.cert`
 *      (default dir /opt/hygon/csv/hsk_cek, as Trustee), else from Hygon KDS through
 *      as/collateral/hygon_kds.c (cached in memory and under kds_cache_dir); a KDS outage or
 *      429 is ERR_UNAVAILABLE (retry), a serial the KDS does not know is refused naming it;
 *   3. HRK self-signature -> HSK -> CEK -> PEK -> report signature, SM2 with SM3, each link
 *      with its expected key usage; the HRK is the built-in Hygon root unless
 *      `verifier_config.csv_verifier.hrk_file` (or the `csv_hrk` option) names another one;
 *   4. report_data (v1: unmasked with anonce) equals the expected report data, regularized to
 *      64 bytes, when one is given; an init-data hash is ignored with a warning (as Trustee);
 *   5. a v2 report with `cc_eventlog`: the log (TCG2 crypto-agile, as/evidence/eventlog.c)
 *      parses, and its CC-MR 1..4 replayed with SM3 equal the report's rtmr1..rtmr4 (CC-MR i
 *      against rtmr i, as Trustee); a register that does not replay refuses, naming the
 *      rtmr. The log's entries become the `uefi_event_logs` claim. A v1 report has no RTMRs:
 *      its log is ignored with a warning, as Trustee ignores it.
 * Claims: Trustee's names and encodings (policy bit fields as numbers, the rest hex).
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "as/collateral/hygon_kds.h"
#include "as/evidence/csv_report.h"
#include "as/evidence/eventlog.h"
#include "as/verifiers/hygon_hrk.h"
#include "as/verifiers/verifier.h"
#include "config.h"
#include "embed.h"
#include "log.h"

#define CSV_DEFAULT_HSK_CEK_DIR "/opt/hygon/csv/hsk_cek"

/* Set by init, then only read. hrk_path NULL = the built-in HRK; else hrk holds its parsed
 * certificate, read once at init so a verify reads no root from disk. */
static struct {
	char *hrk_path, *hsk_cek_dir; /* owned */
	struct csv_ca_cert hrk;
	struct hygon_kds_config kds;
} cfg;

static int set_str(char **dst, const json_t *v, const char *name, struct err *err)
{
	if (v == NULL)
		return 0;
	if (!json_is_string(v))
		return err_set(err, "csv_verifier.%s must be a string", name);
	free(*dst);
	*dst = strdup(json_string_value(v));
	return *dst == NULL ? err_set(err, "out of memory") : 0;
}

/* verifier_config.csv_verifier: {"hrk_file"?: path, "hsk_cek_dir"?: dir, "kds_base_url"?,
 * "kds_cache_dir"?, "kds_ca_file"?, "kds_timeout_ms"?, "kds_retry_budget_ms"?}. */
static int csv_init(const json_t *vc, struct err *err)
{
	const json_t *c = json_object_get(vc, "csv_verifier");

	free(cfg.hrk_path);
	free(cfg.hsk_cek_dir);
	memset(&cfg, 0, sizeof(cfg));
	if (c != NULL && !json_is_object(c))
		return err_set(err, "csv_verifier must be an object");
	if (hygon_kds_configure(c, "csv_verifier", &cfg.kds, err) < 0)
		return -1;
	if (c == NULL)
		return 0;
	if (set_str(&cfg.hrk_path, json_object_get(c, "hrk_file"), "hrk_file", err) < 0 ||
	    set_str(&cfg.hsk_cek_dir, json_object_get(c, "hsk_cek_dir"), "hsk_cek_dir", err) < 0)
		return -1;
	/* refuse a bad root at start, not at the first guest */
	if (cfg.hrk_path != NULL && hygon_hrk_read(cfg.hrk_path, &cfg.hrk, err) < 0)
		return err_prefix(err, "csv_verifier.hrk_file");
	return 0;
}

static const char *opt(const struct verify_request *req, const char *key, const char *dflt)
{
	const char *v = json_string_value(json_object_get(req->options, key));
	return v != NULL ? v : dflt;
}

static int load_hrk(const struct verify_request *req, struct csv_ca_cert *hrk, struct err *err)
{
	const char *path = opt(req, "csv_hrk", NULL);

	if (path == NULL && cfg.hrk_path != NULL) {
		*hrk = cfg.hrk;
		return 0;
	}
	return hygon_hrk_read(path, hrk, err);
}

/* The KDS to ask: the configured one, or the tool's `csv_kds_url` ("" = never fetch). */
static const struct hygon_kds_config *kds_of(const struct verify_request *req,
                                             struct hygon_kds_config *tmp)
{
	const char *url = opt(req, "csv_kds_url", NULL);
	if (url == NULL)
		return &cfg.kds;
	*tmp = cfg.kds;
	snprintf(tmp->base_url, sizeof(tmp->base_url), "%s", url);
	return tmp;
}

/* The HSK and CEK of the evidence's chip: inline, the local directory, or Hygon KDS.
 * *from_kds tells the caller whose cache to clear if the pair then fails to verify. */
static int load_hsk_cek(const struct verify_request *req, struct csv_evidence *ev, int *from_kds,
                        struct err *err)
{
	const char *dir = opt(req, "csv_hsk_cek_dir",
	                      cfg.hsk_cek_dir ? cfg.hsk_cek_dir : CSV_DEFAULT_HSK_CEK_DIR);
	char path[4096];
	struct stat st;
	uint8_t *buf;
	size_t len;
	int rc;

	*from_kds = 0;
	struct hygon_kds_config kds;
	if (ev->has_hsk_cek)
		return 0;
	if (!hygon_kds_name_ok(ev->serial))
		return err_set(err, "CSV serial number \"%s\" cannot name an HSK/CEK directory",
		               ev->serial);
	snprintf(path, sizeof(path), "%s/%s/hsk_cek.cert", dir, ev->serial);
	if (stat(path, &st) == 0) {
		if ((buf = (uint8_t *)file_read_all(path, &len, err)) == NULL)
			return err_prefix(err, "HSK/CEK for CSV chip %s", ev->serial);
	} else if (hygon_kds_get_hsk_cek(kds_of(req, &kds), ev->serial, &buf, &len, err) == 0) {
		*from_kds = 1;
		snprintf(path, sizeof(path), "the Hygon KDS answer for %s", ev->serial);
	} else {
		return err_prefix(
		    err,
		    "HSK/CEK not available for CSV chip %s: the evidence carries none, "
		    "%s does not exist",
		    ev->serial, path);
	}
	rc = csv_hsk_cek_parse(buf, len, &ev->hsk, &ev->cek, err);
	free(buf);
	return rc < 0 ? err_prefix(err, "%s", path) : 0;
}

static void claim_le32(json_t *c, const char *key, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	verifier_claim_hex(c, key, b, 4);
}

static json_t *policy_claims(uint32_t p)
{
	return json_pack("{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i}", "nodbg", p & 1,
	                 "noks", (p >> 1) & 1, "es", (p >> 2) & 1, "nosend", (p >> 3) & 1, "domain",
	                 (p >> 4) & 1, "csv", (p >> 5) & 1, "csv3", (p >> 6) & 1, "asid_reuse",
	                 (p >> 7) & 1, "hsk_version", (p >> 8) & 0xf, "cek_version",
	                 (p >> 12) & 0xf, "api_major", (p >> 16) & 0xff, "api_minor",
	                 (p >> 24) & 0xff);
}

static json_t *csv_claims(const struct csv_evidence *ev)
{
	const struct csv_report *r = &ev->report;
	json_t *c = json_pack("{s:s,s:o,s:s}", "version", r->version == 1 ? "1" : "2", "policy",
	                      policy_claims(r->policy), "serial_number", ev->serial);
	static const char *rtmr[5] = {"rtmr0", "rtmr1", "rtmr2", "rtmr3", "rtmr4"};

	if (c == NULL)
		return NULL;
	verifier_claim_hex(c, "user_pubkey_digest", r->user_pubkey_digest, 32);
	verifier_claim_hex(c, "vm_id", r->vm_id, 16);
	verifier_claim_hex(c, "vm_version", r->vm_version, 16);
	verifier_claim_hex(c, "report_data", r->report_data, 64);
	verifier_claim_hex(c, "mnonce", r->mnonce, 16);
	verifier_claim_hex(c, "measure", r->measure, 32);
	claim_le32(c, "sig_usage", r->sig_usage);
	claim_le32(c, "sig_algo", r->sig_algo);
	if (r->version == 1) {
		claim_le32(c, "anonce", r->anonce);
		return c;
	}
	json_object_set_new(c, "build", json_integer(r->build));
	json_object_set_new(c, "rtmr_version", json_integer(r->rtmr_version));
	verifier_claim_hex(c, "reserved0", r->reserved0, sizeof(r->reserved0));
	for (int i = 0; i < 5; i++)
		verifier_claim_hex(c, rtmr[i], r->rtmr[i], CSV_RTMR_LEN);
	verifier_claim_hex(c, "reserved1", r->reserved1, sizeof(r->reserved1));
	return c;
}

/* Step 5: the v2 event log replayed with SM3 against rtmr1..4; its entries into *entries. */
static int check_eventlog(const struct csv_evidence *ev, json_t **entries, struct err *err)
{
	const struct csv_report *r = &ev->report;
	int bad;

	*entries = NULL;
	if (ev->cc_eventlog == NULL)
		return 0;
	if (r->version == 1) {
		log_warn("csv: a v1 report has no RTMRs; its cc_eventlog is ignored");
		return 0;
	}
	if (eventlog_parse(ev->cc_eventlog, ev->cc_eventlog_len, entries, err) < 0)
		return err_prefix(err, "CSV cc_eventlog");
	if (eventlog_check_ccmrs(ev->cc_eventlog, ev->cc_eventlog_len, EVENTLOG_ALG_SM3,
	                         &r->rtmr[1][0], &bad, err) < 0) {
		json_decref(*entries);
		*entries = NULL;
		if (bad > 0)
			return err_prefix(err, "CSV cc_eventlog does not replay to rtmr%d", bad);
		return err_prefix(err, "CSV cc_eventlog");
	}
	return 0;
}

static int csv_verify(const struct verify_request *req, struct verify_result *out, struct err *err)
{
	struct csv_evidence *ev = calloc(1, sizeof(*ev));
	struct csv_ca_cert hrk;
	json_t *claims, *entries = NULL;
	int rc = -1, from_kds = 0;

	if (ev == NULL)
		return err_set(err, "out of memory");
	/* step 4 first: a report bound to another nonce costs no HSK/CEK lookup (the bytes
	 * compared are the ones the chain check then covers) */
	if (csv_evidence_from_json(req->evidence, ev, err) < 0 ||
	    verifier_bind(ev->report.report_data, 64, req->report_data, req->report_data_len,
	                  "CSV report_data", "the expected report data", err) < 0 ||
	    load_hsk_cek(req, ev, &from_kds, err) < 0 || load_hrk(req, &hrk, err) < 0)
		goto out;
	if (csv_verify_chain(&hrk, &ev->hsk, &ev->cek, &ev->pek, &ev->report, err) < 0) {
		/* a fetched pair that does not chain to the HRK must not be served again */
		if (from_kds &&
		    (strncmp(err->msg, "HSK ", 4) == 0 || strncmp(err->msg, "CEK ", 4) == 0))
			hygon_kds_forget(&cfg.kds, ev->serial); /* the cache dir configured */
		goto out;
	}
	if (req->init_data_hash != NULL)
		log_warn("csv: CSV has no init-data field; the expected init-data hash is ignored");
	if (check_eventlog(ev, &entries, err) < 0)
		goto out;
	claims = csv_claims(ev);
	if (claims != NULL && entries != NULL) {
		json_object_set_new(claims, "uefi_event_logs", entries);
		entries = NULL;
	}
	rc = verify_result_add(out, "cpu", claims, err);
out:
	json_decref(entries);
	csv_evidence_clear(ev);
	OPENSSL_cleanse(ev, sizeof(*ev));
	free(ev);
	return rc;
}

const struct verifier verifier_csv = {
    .tee = "csv",
    .init = csv_init, /* verifier_config.csv_verifier: hrk_file, hsk_cek_dir */
    .verify = csv_verify,
};
