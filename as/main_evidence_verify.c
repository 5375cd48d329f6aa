/*
 * evidence-verify: check one piece of TEE evidence by hand, exactly as the AS would, and
 * print the policy-input object it would build (as-rvps.md §2.5). Exit 0 and the JSON on
 * success; exit 1 and one line saying why on refusal; exit 2 on a usage error.
 *
 *   evidence-verify --tee TEE --evidence FILE [--report-data HEX] [--init-data HEX]
 *                   [--time RFC3339] [--vcek FILE] [--collateral FILE] [--event-log FILE]
 *                   [--config AS-CONFIG.json] [--parse-only]
 *                   [--cert-chain PEM-FILE] [--root-ca PEM-FILE] [--hsk-cek-dir DIR]
 *                   [--kds-url URL] [--arch Hopper|LS10]
 *
 * FILE is the AS JSON evidence document, or for `snp` the raw 1184-byte report, or for
 * `tdx`/`sgx` the raw quote, or for `nvidia` one device's SPDM transcript (raw or hex) with its
 * PEM chain in --cert-chain and its --arch (Hopper, the default, or LS10 for an NVSwitch), or
 * the JSON array of devices nvtrust's collectors write ([{"arch", "evidence", "certificate"},
 * ...], e.g. ppcie/switch_evidence.json); --root-ca replaces the built-in NVIDIA root. A
 * device list prints every device that verified and a "refused:" line for each one that did
 * not (exit 1 if any did not); for `cca`
 * the raw CBOR token (stores from --config's verifier_config.cca_verifier or CCA_CONFIG_FILE);
 * for `csv` Trustee's CSV evidence JSON, with --root-ca naming an HRK certificate (832 bytes)
 * that replaces the built-in Hygon root and --hsk-cek-dir the directory of <serial>/hsk_cek.cert;
 * an HSK/CEK found in neither is fetched from Hygon KDS, --kds-url naming another one ("" = none);
 * for `hygon-dcu` (or `hygondcu`) Trustee's DCU evidence JSON, with the same three options
 * (--hsk-cek-dir holding <chip_id>_hsk_cek.cert) and --report-data required.
 * --vcek,
 * --collateral and --event-log are handed to the verifier as options; --config supplies the AS
 * config's `verifier_config` (VCEK sources, DCAP collateral service). --parse-only (tdx, sgx)
 * prints the claims of a quote without verifying anything, to inspect a quote whose collateral is
 * not at hand; it says so on stderr.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "version.h"
#include "as/claims.h"
#include "as/verifiers/verifier.h"
#include "b64.h"
#include "config.h"
#include "log.h"

static void usage(void)
{
	fprintf(stderr,
	        "usage: evidence-verify --tee TEE --evidence FILE [--report-data HEX]\n"
	        "                       [--init-data HEX] [--time RFC3339] [--vcek FILE]\n"
	        "                       [--collateral FILE] [--event-log FILE] [--config FILE]\n"
	        "                       [--parse-only] [--cert-chain FILE] [--root-ca FILE]\n"
	        "                       [--hsk-cek-dir DIR] [--kds-url URL]\n"
	        "                       [--arch Hopper|LS10]\n");
	exit(2);
}

static int parse_time(const char *s, time_t *out)
{
	struct tm tm = {0};
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (end == NULL)
		return -1;
	if (*end == '.')
		while (*++end >= '0' && *end <= '9')
			;
	if (*end != 'Z' || end[1] != '\0')
		return -1;
	*out = timegm(&tm);
	return 0;
}

/* One NVIDIA device from a transcript file (raw, or hex as collectors write it) and its
 * PEM chain file. */
static json_t *nvidia_device(const char *buf, size_t len, const char *chain_path, const char *arch,
                             struct err *err)
{
	size_t clen, n = len, rlen;
	uint8_t *raw = NULL;
	char *chain = chain_path ? file_read_all(chain_path, &clen, err) : NULL;
	if (chain == NULL) {
		if (chain_path == NULL)
			err_set(err, "nvidia evidence needs --cert-chain");
		return NULL;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	int is_hex = hex_decode(buf, n, &raw, &rlen) == 0;
	free(raw);
	char *hex = is_hex ? strndup(buf, n) : hex_encode((const uint8_t *)buf, len);
	char *c64 = b64_encode((const uint8_t *)chain, clen, B64_STD);
	json_t *ev = hex && c64 ? json_pack("{s:[{s:s,s:s,s:s}]}", "device_evidence_list", "arch",
	                                    arch, "evidence", hex, "certificate", c64)
	                        : NULL;
	free(hex);
	free(c64);
	free(chain);
	return ev;
}

/* A raw CCA token as the AS evidence {"token": [byte values]}. */
static json_t *cca_token_evidence(const uint8_t *buf, size_t len)
{
	json_t *arr = json_array();
	for (size_t i = 0; arr != NULL && i < len; i++)
		json_array_append_new(arr, json_integer(buf[i]));
	return arr ? json_pack("{s:o}", "token", arr) : NULL;
}

/* JSON evidence as is; raw bytes wrapped in the field the verifier reads them from. */
static json_t *load_evidence(const char *tee, const char *path, const char *chain_path,
                             const char *arch, struct err *err)
{
	size_t len;
	char *buf = file_read_all(path, &len, err);
	json_t *ev;

	if (buf == NULL)
		return NULL;
	ev = json_loadb(buf, len, 0, NULL);
	if (json_is_array(ev) && strcmp(tee, "nvidia") == 0) { /* nvtrust's device list */
		ev = json_pack("{s:o}", "device_evidence_list", ev);
	} else if (ev == NULL && strcmp(tee, "nvidia") == 0) {
		ev = nvidia_device(buf, len, chain_path, arch, err);
	} else if (ev == NULL && strcmp(tee, "cca") == 0) {
		ev = cca_token_evidence((const uint8_t *)buf, len);
	} else if (ev == NULL) {
		const char *field = strcmp(tee, "snp") == 0 ? "attestation_report" : "quote";
		char *b64 = b64_encode((const uint8_t *)buf, len, B64_STD);
		ev = json_pack("{s:s}", field, b64 ? b64 : "");
		free(b64);
	}
	free(buf);
	return ev;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"tee", required_argument, NULL, 't'},
	                                     {"evidence", required_argument, NULL, 'e'},
	                                     {"report-data", required_argument, NULL, 'r'},
	                                     {"init-data", required_argument, NULL, 'i'},
	                                     {"time", required_argument, NULL, 'T'},
	                                     {"vcek", required_argument, NULL, 'v'},
	                                     {"collateral", required_argument, NULL, 'c'},
	                                     {"event-log", required_argument, NULL, 'l'},
	                                     {"config", required_argument, NULL, 'C'},
	                                     {"parse-only", no_argument, NULL, 'P'},
	                                     {"cert-chain", required_argument, NULL, 'n'},
	                                     {"root-ca", required_argument, NULL, 'R'},
	                                     {"hsk-cek-dir", required_argument, NULL, 'H'},
	                                     {"kds-url", required_argument, NULL, 'K'},
	                                     {"arch", required_argument, NULL, 'A'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {"version", no_argument, NULL, 'V'},
	                                     {NULL, 0, NULL, 0}};
	const char *chain_path = NULL, *tee = NULL, *evpath = NULL, *rd_hex = NULL, *id_hex = NULL,
	           *cfgpath = NULL, *arch = "Hopper";
	json_t *options = json_object(), *cfg = NULL;
	struct verify_request req = {0};
	struct verify_result res = {0};
	struct err err = {0};
	uint8_t *rd = NULL, *idh = NULL;
	size_t rdlen = 0, idlen = 0;
	int c, rc = 1;

	log_init("evidence-verify");
	if (getenv("LOG_LEVEL") == NULL && getenv("RUST_LOG") == NULL)
		log_set_level(LOG_ERROR);
	while ((c = getopt_long(argc, argv, "V", opts, NULL)) != -1) {
		switch (c) {
		case 'V':
			version_print("evidence-verify");
			rc = 0;
			goto out;
		case 't':
			tee = optarg;
			break;
		case 'e':
			evpath = optarg;
			break;
		case 'r':
			rd_hex = optarg;
			break;
		case 'i':
			id_hex = optarg;
			break;
		case 'T':
			if (parse_time(optarg, &req.now) < 0) {
				fprintf(stderr,
				        "evidence-verify: --time must be RFC 3339 UTC, e.g. "
				        "2025-07-01T00:00:00Z\n");
				rc = 2;
				goto out;
			}
			break;
		case 'v':
			json_object_set_new(options, "vcek", json_string(optarg));
			break;
		case 'c':
			json_object_set_new(options, "collateral", json_string(optarg));
			break;
		case 'l':
			json_object_set_new(options, "event_log", json_string(optarg));
			break;
		case 'C':
			cfgpath = optarg;
			break;
		case 'n':
			chain_path = optarg;
			break;
		case 'R': /* the root of whichever TEE --tee names */
			json_object_set_new(options, "nvidia_root_ca", json_string(optarg));
			json_object_set_new(options, "csv_hrk", json_string(optarg));
			break;
		case 'H':
			json_object_set_new(options, "csv_hsk_cek_dir", json_string(optarg));
			break;
		case 'K':
			json_object_set_new(options, "csv_kds_url", json_string(optarg));
			break;
		case 'A':
			arch = optarg;
			break;
		case 'P':
			json_object_set_new(options, "parse_only", json_true());
			fprintf(stderr, "evidence-verify: --parse-only: the quote is parsed, NOT "
			                "verified\n");
			break;
		default:
			usage();
		}
	}
	if (tee == NULL || evpath == NULL || optind != argc)
		usage();
	if (strcmp(tee, "hygon-dcu") == 0) /* the file's name; the TEE's is Trustee's */
		tee = "hygondcu";
	const struct verifier *v = verifier_find(tee);
	if (v == NULL) {
		printf("refused: no verifier for TEE \"%s\" in this build\n", tee);
		goto out;
	}
	rc = 2; /* usage and configuration errors */
	if (cfgpath != NULL && (cfg = config_load(cfgpath, &err)) == NULL) {
		fprintf(stderr, "evidence-verify: %s\n", err.msg);
		goto out;
	}
	if (verifiers_init(cfg ? json_object_get(cfg, "verifier_config") : NULL, &err) < 0) {
		fprintf(stderr, "evidence-verify: %s\n", err.msg);
		goto out;
	}
	if ((rd_hex && hex_decode(rd_hex, strlen(rd_hex), &rd, &rdlen) < 0) ||
	    (id_hex && hex_decode(id_hex, strlen(id_hex), &idh, &idlen) < 0)) {
		fprintf(stderr, "evidence-verify: --report-data and --init-data take hex\n");
		goto out;
	}
	rc = 1;
	req.evidence = load_evidence(tee, evpath, chain_path, arch, &err);
	if (req.evidence == NULL) {
		printf("refused: %s\n", err.msg);
		goto out;
	}
	req.report_data = rd;
	req.report_data_len = rdlen;
	req.init_data_hash = idh;
	req.init_data_hash_len = idlen;
	req.options = options;
	if (v->verify(&req, &res, &err) < 0) {
		printf("refused: %s\n", err.msg);
		goto out;
	}
	rc = 0;
	for (size_t i = 0; i < res.n; i++) {
		if (res.items[i].failed) { /* one device of several refused */
			printf("refused: %s\n", json_string_value(json_object_get(
			                            res.items[i].claims, "verification_error")));
			rc = 1;
			continue;
		}
		json_t *in = claims_policy_input(tee, res.items[i].claims, NULL, NULL, 1);
		char *s = json_dumps(in, JSON_INDENT(2) | JSON_SORT_KEYS);
		printf("%s\n", s ? s : "{}");
		free(s);
		json_decref(in);
	}
out:
	verify_result_clear(&res);
	json_decref((json_t *)req.evidence);
	json_decref(options);
	json_decref(cfg);
	free(rd);
	free(idh);
	return rc;
}
