/*
 * hygondcu verifier (as-rvps.md §5.11): the attestation reports of a host's Hygon DCUs, read
 * from Trustee's evidence JSON (as/evidence/dcu_report.c), checked as this list, in order:
 *   1. the evidence parses: 1 to 64 reports, each body and signature complete, no chip twice;
 *   2. the expected report data is given (Trustee: "DCU must check report data"); an
 *      init-data hash is ignored with a warning;
 *   3. for each report, in order: user_data equal to the expected report data regularized
 *      to 64 bytes (first, so a replayed report costs no lookup); its chip's HSK/CEK pair from
 *      `<hsk_cek_dir>/<chip_id>_hsk_cek.cert` (default /opt/dcu/certs, or HSK_CEK_CERT_PATH
 *      in the environment, as csv-rs reads it), else from Hygon KDS by chip id
 *      (as/collateral/hygon_kds.c, the keys of csv_verifier); HRK -> HSK -> CEK, then the
 *      report body signed by the CEK (SM2/SM3). The first report that fails refuses the
 *      evidence, naming it;
 *   4. claims per report, one `dcu` device each (submods dcu0, dcu1, ...): `body` {version,
 *      chip_id, user_data, measure, reserved (hex), sig_usage, sig_algo (lowercase hex
 *      numbers without padding)} and `report_data` = hex user_data, as Trustee.
 * The HRK is the built-in Hygon root unless `verifier_config.hygon_dcu_verifier.hrk_file`
 * (or the tool's `csv_hrk` option) names another; evidence-verify's Hygon options
 * (`csv_hrk`, `csv_hsk_cek_dir`, `csv_kds_url`) serve both Hygon verifiers.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "as/collateral/hygon_kds.h"
#include "as/evidence/dcu_report.h"
#include "as/verifiers/hygon_hrk.h"
#include "as/verifiers/verifier.h"
#include "config.h"
#include "embed.h"
#include "log.h"

#define DCU_DEFAULT_HSK_CEK_DIR "/opt/dcu/certs"

/* Set by init, then only read. */
static struct {
	char hsk_cek_dir[512];
	int has_hrk; /* hrk holds hrk_file's certificate, else the built-in root is used */
	struct csv_ca_cert hrk;
	struct hygon_kds_config kds;
} cfg;

/* verifier_config.hygon_dcu_verifier: {"hrk_file"?, "hsk_cek_dir"?, "kds_*"?}. */
static int dcu_init(const json_t *vc, struct err *err)
{
	const json_t *c = json_object_get(vc, "hygon_dcu_verifier"), *v;
	const char *env = getenv("HSK_CEK_CERT_PATH");

	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.hsk_cek_dir, sizeof(cfg.hsk_cek_dir), "%s",
	         env && *env ? env : DCU_DEFAULT_HSK_CEK_DIR);
	if (c != NULL && !json_is_object(c))
		return err_set(err, "hygon_dcu_verifier must be an object");
	if (hygon_kds_configure(c, "hygon_dcu_verifier", &cfg.kds, err) < 0)
		return -1;
	if ((v = json_object_get(c, "hsk_cek_dir")) != NULL) {
		if (!json_is_string(v) || json_string_length(v) >= sizeof(cfg.hsk_cek_dir))
			return err_set(err, "hygon_dcu_verifier.hsk_cek_dir must be a path");
		snprintf(cfg.hsk_cek_dir, sizeof(cfg.hsk_cek_dir), "%s", json_string_value(v));
	}
	if ((v = json_object_get(c, "hrk_file")) != NULL) {
		if (!json_is_string(v))
			return err_set(err, "hygon_dcu_verifier.hrk_file must be a path");
		if (hygon_hrk_read(json_string_value(v), &cfg.hrk, err) < 0)
			return err_prefix(err, "hygon_dcu_verifier.hrk_file");
		cfg.has_hrk = 1;
	}
	return 0;
}

static const char *opt(const struct verify_request *req, const char *key)
{
	return json_string_value(json_object_get(req->options, key));
}

static int load_hrk(const struct verify_request *req, struct csv_ca_cert *hrk, struct err *err)
{
	const char *path = opt(req, "csv_hrk");

	if (path == NULL && cfg.has_hrk) {
		*hrk = cfg.hrk;
		return 0;
	}
	return hygon_hrk_read(path, hrk, err);
}

/* The chip's HSK and CEK: the local directory, else Hygon KDS. */
static int load_hsk_cek(const struct verify_request *req, const struct dcu_report *r,
                        struct csv_ca_cert *hsk, struct csv_cert *cek, int *from_kds,
                        struct err *err)
{
	const char *dir = opt(req, "csv_hsk_cek_dir"), *url = opt(req, "csv_kds_url");
	struct hygon_kds_config kds = cfg.kds;
	char path[1200];
	struct stat st;
	uint8_t *buf;
	size_t len;
	int rc;

	*from_kds = 0;
	if (!hygon_kds_name_ok(r->chip))
		return err_set(err, "DCU chip id is not a name an HSK/CEK can be looked up by");
	snprintf(path, sizeof(path), "%s/%s_hsk_cek.cert", dir ? dir : cfg.hsk_cek_dir, r->chip);
	if (url != NULL)
		snprintf(kds.base_url, sizeof(kds.base_url), "%s", url);
	if (stat(path, &st) == 0) {
		if ((buf = (uint8_t *)file_read_all(path, &len, err)) == NULL)
			return err_prefix(err, "HSK/CEK for DCU chip %s", r->chip);
	} else if (hygon_kds_get_hsk_cek(&kds, r->chip, &buf, &len, err) == 0) {
		*from_kds = 1;
		snprintf(path, sizeof(path), "the Hygon KDS answer for %s", r->chip);
	} else {
		return err_prefix(err, "HSK/CEK not available for DCU chip %s: %s does not exist",
		                  r->chip, path);
	}
	rc = csv_hsk_cek_parse(buf, len, hsk, cek, err);
	free(buf);
	return rc < 0 ? err_prefix(err, "%s", path) : 0;
}

/* Step 3 for one report. */
static int check_report(const struct verify_request *req, const struct csv_ca_cert *hrk,
                        const struct dcu_report *r, const uint8_t want[64], struct err *err)
{
	struct csv_ca_cert hsk;
	struct csv_cert cek;
	int from_kds;

	/* the nonce first, as Trustee: a replayed report costs no certificate lookup */
	if (CRYPTO_memcmp(r->user_data, want, 64) != 0)
		return err_set(err, "DCU user_data does not match the expected report data");
	if (load_hsk_cek(req, r, &hsk, &cek, &from_kds, err) < 0)
		return -1;
	if (dcu_verify_report(hrk, &hsk, &cek, r, err) < 0) {
		/* a fetched pair that does not chain to the HRK must not be served again */
		if (from_kds &&
		    (strncmp(err->msg, "HSK ", 4) == 0 || strncmp(err->msg, "CEK ", 4) == 0))
			hygon_kds_forget(&cfg.kds, r->chip);
		return -1;
	}
	return 0;
}

static json_t *report_claims(const struct dcu_report *r)
{
	char usage[16], algo[16];
	json_t *body = json_object(), *c;

	snprintf(usage, sizeof(usage), "%x", r->sig_usage);
	snprintf(algo, sizeof(algo), "%x", r->sig_algo);
	if (body == NULL)
		return NULL;
	json_object_set_new(body, "version", json_integer(r->version));
	verifier_claim_hex(body, "chip_id", r->chip_id, sizeof(r->chip_id));
	verifier_claim_hex(body, "user_data", r->user_data, sizeof(r->user_data));
	verifier_claim_hex(body, "measure", r->measure, sizeof(r->measure));
	verifier_claim_hex(body, "reserved", r->reserved, sizeof(r->reserved));
	json_object_set_new(body, "sig_usage", json_string(usage));
	json_object_set_new(body, "sig_algo", json_string(algo));
	if ((c = json_pack("{s:o}", "body", body)) == NULL)
		return NULL;
	verifier_claim_hex(c, "report_data", r->user_data, sizeof(r->user_data));
	return c;
}

static int dcu_verify(const struct verify_request *req, struct verify_result *out, struct err *err)
{
	struct dcu_evidence ev;
	struct csv_ca_cert hrk;
	uint8_t want[64];
	size_t i;

	if (dcu_evidence_from_json(req->evidence, &ev, err) < 0)
		return -1;
	if (req->report_data == NULL) {
		dcu_evidence_clear(&ev);
		return err_set(err, "Hygon DCU must check report data: none was provided");
	}
	if (req->init_data_hash != NULL)
		log_warn("hygondcu: DCU has no init-data field; the expected init-data hash is "
		         "ignored");
	verifier_regularize(req->report_data, req->report_data_len, want, sizeof(want));
	if (load_hrk(req, &hrk, err) < 0)
		goto fail;
	for (i = 0; i < ev.n; i++)
		if (check_report(req, &hrk, &ev.reports[i], want, err) < 0) {
			err_prefix(err, "DCU report %zu (chip %s)", i,
			           ev.reports[i].chip[0] ? ev.reports[i].chip : "?");
			goto fail;
		}
	for (i = 0; i < ev.n; i++)
		if (verify_result_add(out, "dcu", report_claims(&ev.reports[i]), err) < 0)
			goto fail;
	dcu_evidence_clear(&ev);
	return 0;
fail:
	dcu_evidence_clear(&ev);
	return -1;
}

const struct verifier verifier_hygon_dcu = {
    .tee = "hygondcu",
    .init = dcu_init, /* verifier_config.hygon_dcu_verifier: hrk_file, hsk_cek_dir, kds_* */
    .verify = dcu_verify,
};
