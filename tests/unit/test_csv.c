/*
 * Hygon CSV verifier (as-rvps.md §5.11) over Trustee's real evidence and over a chain forged
 * under a test HRK. The real evidence (MANIFEST: no HSK/CEK) checks the layouts against bytes
 * the hardware wrote: the built-in HRK verifies its own SM2 signature, the PEK rebuilt from
 * the JSON equals the report's own (masked) PEK copy, the report signature verifies under
 * that PEK, and the whole evidence is refused naming the missing HSK/CEK file. The success
 * path and the refusals use tests/unit/csv_forge.py, which signs with the `openssl` CLI
 * (SM2/SM3 with the user id as distid): one flipped byte in each signed part, the wrong HRK,
 * the wrong report data, a truncated report. A v2 report whose rtmr1..4 are the SM3 replay of
 * a synthetic CC event log verifies with the log's entries as claims; a log measured
 * differently is refused naming the rtmr that does not replay.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <jansson.h>

#include "as/evidence/csv_report.h"
#include "as/verifiers/verifier.h"
#include "testlib.h"

#define SERIAL "TESTCHIP01"
#define RD_HEX "c0ffee0102030405"

static char realdir[1024], tmp[256], forged_hrk[400], forged_dir[400], empty_dir[400];

static json_t *load(const char *dir, const char *rel)
{
	char path[1500];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	json_t *j = json_load_file(path, 0, NULL);
	assert_non_null(j);
	return j;
}

static void configure(const char *hrk, const char *dir)
{
	struct err err = {0};
	json_t *c = json_object();
	if (hrk)
		json_object_set_new(c, "hrk_file", json_string(hrk));
	if (dir)
		json_object_set_new(c, "hsk_cek_dir", json_string(dir));
	json_object_set_new(c, "kds_base_url", json_string("")); /* never the real Hygon KDS */
	json_t *vc = json_pack("{s:o}", "csv_verifier", c);
	if (verifier_find("csv")->init(vc, &err) != 0)
		fail_msg("init: %s", err.msg);
	json_decref(vc);
}

/* Verify; on success *claims gets a new reference to the one device's claims. */
static int verify(const json_t *ev, const char *rd_hex, json_t **claims, struct err *err)
{
	uint8_t rd[64];
	size_t rdl = 0;
	struct verify_result res = {0};
	for (; rd_hex && rd_hex[2 * rdl]; rdl++)
		sscanf(rd_hex + 2 * rdl, "%2hhx", &rd[rdl]);
	struct verify_request req = {
	    .evidence = ev, .report_data = rd_hex ? rd : NULL, .report_data_len = rdl};
	int rc = verifier_find("csv")->verify(&req, &res, err);
	if (rc == 0) {
		assert_int_equal(res.n, 1);
		assert_string_equal(res.items[0].tee_class, "cpu");
		if (claims)
			*claims = json_incref(res.items[0].claims);
	}
	verify_result_clear(&res);
	return rc;
}

static void expect_refused(const json_t *ev, const char *rd, const char *reason)
{
	struct err err = {0};
	if (verify(ev, rd, NULL, &err) == 0)
		fail_msg("accepted; expected \"%s\"", reason);
	if (strstr(err.msg, reason) == NULL)
		fail_msg("refused with \"%s\"; expected \"%s\"", err.msg, reason);
}

static void flip_data(json_t *ev, size_t i)
{
	json_t *d = json_object_get(json_object_get(ev, "attestation_report"), "data");
	json_array_set_new(d, i, json_integer(json_integer_value(json_array_get(d, i)) ^ 0x01));
}

static int setup(void **state)
{
	char cmd[1200];
	tl_testdata_dir(realdir, sizeof(realdir), "evidence/csv/trustee");
	snprintf(tmp, sizeof(tmp), "/tmp/ctrustee-csv-XXXXXX");
	assert_non_null(mkdtemp(tmp));
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 tests/unit/csv_forge.py %s %s %s", tmp, RD_HEX,
	         SERIAL);
	assert_int_equal(system(cmd), 0);
	snprintf(forged_hrk, sizeof(forged_hrk), "%s/hrk.cert", tmp);
	snprintf(forged_dir, sizeof(forged_dir), "%s/hsk_cek", tmp);
	snprintf(empty_dir, sizeof(empty_dir), "%s/empty", tmp);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s", empty_dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static int teardown(void **state)
{
	tl_rm_rf(tmp);
	return 0;
}

/* ---- the real evidence ---- */

static void test_builtin_hrk_verifies_itself(void **state)
{
	size_t n;
	uint8_t *b = tl_slurp(realdir, "hrk.cert", &n);
	struct csv_ca_cert hrk;
	struct err err = {0};
	assert_int_equal(csv_ca_cert_parse(b, n, &hrk, &err), 0);
	assert_int_equal(hrk.key.usage, CSV_USAGE_HRK);
	assert_int_equal(hrk.key.uid_size, 13);
	assert_memory_equal(hrk.key.uid, "HYGON-SSD-HRK", 13);
	if (csv_sm2_verify(&hrk.key, hrk.raw, CSV_CA_BODY_LEN, hrk.sig, &err) != 0)
		fail_msg("HRK self-signature: %s", err.msg);
	hrk.raw[10] ^= 1;
	assert_int_equal(csv_sm2_verify(&hrk.key, hrk.raw, CSV_CA_BODY_LEN, hrk.sig, &err), -1);
	assert_string_equal(err.msg, "SM2 signature does not verify");
	free(b);
}

static void test_real_evidence_parses_and_report_verifies_under_its_pek(void **state)
{
	size_t n;
	uint8_t *b = tl_slurp(realdir, "csv_evidence.json", &n);
	struct csv_evidence *ev = calloc(1, sizeof(*ev));
	struct err err = {0};
	assert_non_null(ev);
	if (csv_evidence_parse(b, n, ev, &err) != 0)
		fail_msg("parse: %s", err.msg);
	assert_int_equal(ev->report.version, 1);
	assert_string_equal(ev->serial, "KPA64911240507");
	assert_int_equal(ev->has_hsk_cek, 0);
	assert_int_equal(ev->pek.key.usage, CSV_USAGE_PEK);
	/* The signer block after the TEE info holds the PEK and the serial number (the firmware
	 * masks them with anonce, the attester restores them): the JSON rebuild must equal it. */
	assert_memory_equal(ev->report.raw + 336, ev->pek.raw, CSV_CERT_LEN);
	assert_memory_equal(ev->report.raw + 336 + CSV_CERT_LEN, "KPA64911240507", 15);
	if (csv_sm2_verify(&ev->pek.key, ev->report.raw, 180, ev->report.sig, &err) != 0)
		fail_msg("report signature: %s", err.msg);
	ev->report.raw[64] ^= 1;
	assert_int_equal(csv_sm2_verify(&ev->pek.key, ev->report.raw, 180, ev->report.sig, &err),
	                 -1);
	/* anonce unmasks the report's own sig_usage and sig_algo to PEK and SM2-SA. */
	assert_int_equal(ev->report.sig_usage, CSV_USAGE_PEK);
	assert_int_equal(ev->report.sig_algo, CSV_ALGO_SM2_SA);
	csv_evidence_clear(ev);
	free(ev);
	free(b);
}

static void test_real_evidence_refused_without_hsk_cek(void **state)
{
	json_t *ev = load(realdir, "csv_evidence.json");
	configure(NULL, empty_dir);
	char want[1400];
	snprintf(want, sizeof(want),
	         "HSK/CEK not available for CSV chip KPA64911240507: the evidence carries none, "
	         "%s/KPA64911240507/hsk_cek.cert does not exist: no HSK/CEK for chip "
	         "KPA64911240507 is cached and Hygon KDS fetching is off",
	         empty_dir);
	expect_refused(ev, NULL, want);
	json_decref(ev);
}

/* ---- the forged chain ---- */

static void test_forged_v1_verifies_with_claims(void **state)
{
	json_t *ev = load(tmp, "evidence_v1.json"), *c = NULL;
	struct err err = {0};
	configure(forged_hrk, forged_dir);
	if (verify(ev, RD_HEX, &c, &err) != 0)
		fail_msg("refused: %s", err.msg);
	assert_string_equal(json_string_value(json_object_get(c, "version")), "1");
	assert_string_equal(json_string_value(json_object_get(c, "serial_number")), SERIAL);
	const char *rd = json_string_value(json_object_get(c, "report_data"));
	assert_int_equal(strlen(rd), 128);
	assert_memory_equal(rd, RD_HEX "000000", strlen(RD_HEX) + 6);
	assert_string_equal(json_string_value(json_object_get(c, "anonce")), "26d7c75d");
	assert_string_equal(json_string_value(json_object_get(c, "sig_usage")), "02100000");
	assert_string_equal(json_string_value(json_object_get(c, "sig_algo")), "04000000");
	json_t *p = json_object_get(c, "policy");
	assert_int_equal(json_integer_value(json_object_get(p, "nodbg")), 1);
	assert_int_equal(json_integer_value(json_object_get(p, "csv")), 1);
	assert_int_equal(json_integer_value(json_object_get(p, "noks")), 0);
	assert_int_equal(json_integer_value(json_object_get(p, "api_major")), 3);
	assert_int_equal(json_integer_value(json_object_get(p, "api_minor")), 1);
	assert_null(json_object_get(c, "rtmr0"));
	json_decref(c);
	/* no expected report data: passes too (Trustee's evaluate without report data) */
	assert_int_equal(verify(ev, NULL, NULL, &err), 0);
	json_decref(ev);
}

static void test_forged_v2_with_inline_hsk_cek_verifies(void **state)
{
	json_t *ev = load(tmp, "evidence_v2.json"), *c = NULL;
	struct err err = {0};
	configure(forged_hrk, empty_dir);
	if (verify(ev, RD_HEX, &c, &err) != 0)
		fail_msg("refused: %s", err.msg);
	assert_string_equal(json_string_value(json_object_get(c, "version")), "2");
	assert_int_equal(json_integer_value(json_object_get(c, "build")), 2097);
	assert_int_equal(json_integer_value(json_object_get(c, "rtmr_version")), 1);
	assert_int_equal(strlen(json_string_value(json_object_get(c, "rtmr4"))), 64);
	assert_int_equal(strlen(json_string_value(json_object_get(c, "reserved1"))), 1312);
	assert_null(json_object_get(c, "anonce"));
	json_t *p = json_object_get(c, "policy");
	assert_int_equal(json_integer_value(json_object_get(p, "csv3")), 1);
	assert_int_equal(json_integer_value(json_object_get(p, "api_major")), 4);
	json_decref(c);
	json_decref(ev);
}

/* ---- v2 with a CC event log (SM3 replay of CC-MR 1..4 against rtmr1..4) ---- */

static void test_forged_v2_eventlog_replays_with_sm3(void **state)
{
	json_t *ev = load(tmp, "evidence_v2_eventlog.json"), *c = NULL;
	struct err err = {0};
	configure(forged_hrk, empty_dir);
	if (verify(ev, RD_HEX, &c, &err) != 0)
		fail_msg("refused: %s", err.msg);
	json_t *log = json_object_get(c, "uefi_event_logs");
	assert_int_equal(json_array_size(log), 6);
	json_t *e = json_array_get(log, 3);
	assert_int_equal(json_integer_value(json_object_get(e, "index")), 3);
	assert_string_equal(json_string_value(json_object_get(e, "type_name")), "EV_IPL");
	assert_true(json_is_true(json_object_get(e, "digest_matches_event")));
	json_t *d = json_array_get(json_object_get(e, "digests"), 0);
	assert_string_equal(json_string_value(json_object_get(d, "alg")), "SM3");
	assert_int_equal(strlen(json_string_value(json_object_get(d, "digest"))), 64);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(e, "details"), "string")),
	    "grub_cmd: linux /vmlinuz root=/dev/vda1");
	json_decref(c);
	json_decref(ev);
}

static void test_v2_eventlog_that_does_not_replay_names_the_rtmr(void **state)
{
	json_t *ev = load(tmp, "evidence_v2_eventlog_bad3.json");
	configure(forged_hrk, empty_dir);
	expect_refused(ev, RD_HEX,
	               "CSV cc_eventlog does not replay to rtmr3: Eventlog does not pass "
	               "measurement replay CC Event Log Measurement Register [index = 3]");
	json_decref(ev);
	/* the good log against a report whose rtmr1 differs: rtmr1 is named */
	ev = load(tmp, "evidence_v2_eventlog.json");
	json_t *good = json_incref(json_object_get(ev, "cc_eventlog"));
	json_decref(ev);
	ev = load(tmp, "evidence_v2.json"); /* same chain, random RTMRs */
	json_object_set_new(ev, "cc_eventlog", good);
	expect_refused(ev, RD_HEX, "CSV cc_eventlog does not replay to rtmr1");
	/* a log that does not parse is refused as such */
	json_object_set_new(ev, "cc_eventlog", json_string("AAAA"));
	expect_refused(ev, RD_HEX, "CSV cc_eventlog: CC event log: 3 bytes is too short");
	json_object_set_new(ev, "cc_eventlog", json_string("not base64!"));
	expect_refused(ev, RD_HEX, "CSV evidence `cc_eventlog` must be base64");
	json_decref(ev);
	/* a v1 report has no RTMRs: Trustee ignores its log, so do we */
	ev = load(tmp, "evidence_v1.json");
	configure(forged_hrk, forged_dir);
	json_object_set_new(ev, "cc_eventlog", json_string("AAAA"));
	struct err err = {0};
	json_t *c = NULL;
	if (verify(ev, RD_HEX, &c, &err) != 0)
		fail_msg("refused: %s", err.msg);
	assert_null(json_object_get(c, "uefi_event_logs"));
	json_decref(c);
	json_decref(ev);
}

static void test_refuses_wrong_hrk(void **state)
{
	json_t *ev = load(tmp, "evidence_v1.json");
	configure(NULL, forged_dir); /* the built-in Hygon HRK did not sign the test HSK */
	expect_refused(ev, RD_HEX, "HSK signature by the HRK failed");
	json_decref(ev);
}

static void test_refuses_wrong_report_data(void **state)
{
	json_t *ev = load(tmp, "evidence_v1.json");
	configure(forged_hrk, forged_dir);
	expect_refused(ev, "c0ffee0102030406",
	               "CSV report_data does not match the expected report data");
	json_decref(ev);
}

static void test_refuses_flipped_report_bytes(void **state)
{
	static const size_t signed_at[] = {0, 40, 64, 127, 140, 170, 179};
	json_t *ev;
	configure(forged_hrk, forged_dir);
	for (size_t i = 0; i < sizeof(signed_at) / sizeof(signed_at[0]); i++) {
		ev = load(tmp, "evidence_v1.json");
		flip_data(ev, signed_at[i]);
		expect_refused(ev, NULL, "attestation report signature by the PEK failed");
		json_decref(ev);
	}
	ev = load(tmp, "evidence_v1.json"); /* the signature itself (r) */
	flip_data(ev, 200);
	expect_refused(ev, NULL, "attestation report signature by the PEK failed");
	json_decref(ev);
	ev = load(tmp, "evidence_v2.json"); /* v2 signs through reserved1 */
	configure(forged_hrk, empty_dir);
	flip_data(ev, 1000);
	expect_refused(ev, NULL, "attestation report signature by the PEK failed");
	json_decref(ev);
}

static void test_refuses_flipped_pek_and_inline_certs(void **state)
{
	json_t *ev = load(tmp, "evidence_v1.json");
	json_t *sid = json_object_get(
	    json_object_get(
	        json_object_get(json_object_get(json_object_get(ev, "cert_chain"), "pek"), "body"),
	        "data"),
	    "sid");
	configure(forged_hrk, forged_dir);
	json_array_set_new(sid, 3, json_integer(7));
	expect_refused(ev, NULL, "PEK signature by the CEK failed");
	json_decref(ev);

	ev = load(tmp, "evidence_v2.json");
	configure(forged_hrk, empty_dir);
	json_t *hc = json_object_get(json_object_get(ev, "cert_chain"), "hsk_cek");
	json_t *kid = json_object_get(
	    json_object_get(
	        json_object_get(json_object_get(json_object_get(hc, "hsk"), "body"), "preamble"),
	        "data"),
	    "kid");
	json_array_set_new(kid, 0, json_integer(json_integer_value(json_array_get(kid, 0)) ^ 1));
	expect_refused(ev, NULL, "HSK signature by the HRK failed");
	json_decref(ev);

	ev = load(tmp, "evidence_v2.json");
	hc = json_object_get(json_object_get(ev, "cert_chain"), "hsk_cek");
	json_t *fw = json_object_get(
	    json_object_get(json_object_get(json_object_get(hc, "cek"), "body"), "data"),
	    "firmware");
	json_object_set_new(fw, "minor", json_integer(9));
	expect_refused(ev, NULL, "CEK signature by the HSK failed");
	json_decref(ev);
}

/* Write a copy of the forged hsk_cek.cert (and HRK) with byte `at` flipped; dir gets it. */
static void write_flipped(const char *rel_src, size_t at, const char *dst)
{
	size_t n;
	uint8_t *b = tl_slurp(tmp, rel_src, &n);
	assert_true(at < n);
	b[at] ^= 1;
	FILE *f = fopen(dst, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(b, 1, n, f), n);
	fclose(f);
	free(b);
}

static void test_refuses_flipped_local_hsk_cek_and_hrk(void **state)
{
	static const struct {
		size_t at;
		const char *reason;
	} cases[] = {
	    {4, "HSK signature by the HRK failed"},          /* HSK kid */
	    {300, "HSK signature by the HRK failed"},        /* HSK user id area */
	    {600, "HSK signature by the HRK failed"},        /* HSK signature r */
	    {832 + 500, "CEK signature by the HSK failed"},  /* CEK reserved2 (signed) */
	    {832 + 1060, "CEK signature by the HSK failed"}, /* CEK signature r */
	    {832 + 30, "CEK signature by the HSK failed"},   /* CEK key x: another key */
	};
	char d[600], file[700], cmd[1500];
	json_t *ev = load(tmp, "evidence_v1.json");
	snprintf(d, sizeof(d), "%s/flipped", tmp);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s/" SERIAL, d);
	assert_int_equal(system(cmd), 0);
	snprintf(file, sizeof(file), "%s/" SERIAL "/hsk_cek.cert", d);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_flipped("hsk_cek/" SERIAL "/hsk_cek.cert", cases[i].at, file);
		configure(forged_hrk, d);
		expect_refused(ev, NULL, cases[i].reason);
	}
	/* a tampered root: its own signature fails first */
	snprintf(file, sizeof(file), "%s/hrk-flipped.cert", tmp);
	write_flipped("hrk.cert", 20, file);
	configure(file, forged_dir);
	expect_refused(ev, NULL, "HRK self-signature verification failed");
	/* a short hsk_cek.cert */
	snprintf(cmd, sizeof(cmd),
	         "head -c 2915 %s/" SERIAL "/hsk_cek.cert > %s/" SERIAL "/hsk_cek.cert", forged_dir,
	         d);
	assert_int_equal(system(cmd), 0);
	configure(forged_hrk, d);
	expect_refused(ev, NULL, "HSK/CEK file is 2915 bytes, expected 2916");
	json_decref(ev);
}

static void test_refuses_truncated_and_malformed_evidence(void **state)
{
	json_t *ev = load(tmp, "evidence_v1.json");
	json_t *d = json_object_get(json_object_get(ev, "attestation_report"), "data");
	configure(forged_hrk, forged_dir);
	json_array_remove(d, 4095);
	expect_refused(ev, NULL,
	               "CSV attestation_report `data` must be an array of 4096 byte values");
	json_array_append_new(d, json_integer(256));
	expect_refused(ev, NULL, "CSV attestation_report `data`[4095] is not a byte value");
	json_decref(ev);

	ev = load(tmp, "evidence_v1.json");
	json_t *ar = json_object_get(ev, "attestation_report");
	json_array_set_new(json_object_get(ar, "magic"), 0, json_integer('A'));
	expect_refused(ev, NULL, "CSV attestation report: unknown magic/flags (0)");
	json_array_set_new(json_object_get(ar, "magic"), 0, json_integer(0));
	json_object_set_new(ar, "flags", json_integer(1)); /* a zero magic is v1 whatever flags */
	expect_refused(ev, "00", "CSV report_data does not match the expected report data");
	json_decref(ev);

	ev = load(tmp, "evidence_v1.json");
	json_t *pek = json_object_get(json_object_get(ev, "cert_chain"), "pek");
	json_object_set_new(json_object_get(json_object_get(pek, "body"), "data"), "uid_size",
	                    json_integer(255));
	expect_refused(ev, NULL, "PEK: CSV certificate: uid_size 255 exceeds the 254-byte user id");
	json_object_del(pek, "sigs");
	expect_refused(ev, NULL, "CSV PEK `sigs` must be an array of 2 signatures");
	json_decref(ev);

	ev = load(tmp, "evidence_v1.json");
	json_array_set_new(json_object_get(ev, "serial_number"), 11, json_integer('X'));
	expect_refused(ev, NULL, "CSV evidence `serial_number` has a NUL inside");
	json_array_set_new(json_object_get(ev, "serial_number"), 0, json_integer('/'));
	json_array_set_new(json_object_get(ev, "serial_number"), 11, json_integer(0));
	expect_refused(ev, NULL, "cannot name an HSK/CEK directory");
	json_decref(ev);
}

static void test_parsers_check_lengths(void **state)
{
	static uint8_t buf[CSV_REPORT_LEN + 1];
	static const uint8_t zero[16];
	struct csv_ca_cert ca;
	struct csv_cert c;
	struct csv_report r;
	struct err err = {0};

	assert_int_equal(csv_ca_cert_parse(buf, 831, &ca, &err), -1);
	assert_string_equal(err.msg, "CSV CA certificate is 831 bytes, expected 832");
	assert_int_equal(csv_cert_parse(buf, 2085, &c, &err), -1);
	assert_string_equal(err.msg, "CSV certificate is 2085 bytes, expected 2084");
	assert_int_equal(csv_report_parse(zero, 0, buf, 4095, &r, &err), -1);
	assert_string_equal(err.msg, "CSV attestation report is 4095 bytes, expected 4096");
	assert_int_equal(csv_ca_cert_parse(buf, 832, &ca, &err), -1); /* group 0 */
	assert_string_equal(err.msg, "CSV CA certificate key: curve group 0 is not SM2-256 (3)");
	buf[64] = 3;
	buf[68 + 40] = 1; /* x longer than 32 bytes */
	assert_int_equal(csv_ca_cert_parse(buf, 832, &ca, &err), -1);
	assert_string_equal(err.msg,
	                    "CSV CA certificate key: a coordinate is longer than 32 bytes");
	/* every prefix of the real evidence text is refused, none crashes */
	size_t n;
	uint8_t *txt = tl_slurp(realdir, "csv_evidence.json", &n);
	struct csv_evidence *ev = calloc(1, sizeof(*ev));
	assert_non_null(ev);
	for (size_t cut = 0; cut < n; cut += 97)
		assert_int_equal(csv_evidence_parse(txt, cut, ev, &err), -1);
	free(ev);
	free(txt);
}

/* evidence-verify --tee csv: the forged evidence with --root-ca and --hsk-cek-dir prints the
 * claims; the real evidence is refused naming the missing HSK/CEK. */
static void run_tool(const char *args, int want_rc, const char *want_out)
{
	const char *b = getenv("CTRUSTEE_BUILD");
	char cmd[3000], out[8192];
	snprintf(cmd, sizeof(cmd), "%s/bin/evidence-verify --tee csv %s 2>&1", b ? b : "build",
	         args);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = 0;
	int st = pclose(p);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != want_rc || strstr(out, want_out) == NULL)
		fail_msg("%s: exit %d, output: %s", cmd, WEXITSTATUS(st), out);
}

static void test_evidence_verify_tool(void **state)
{
	char args[2000];
	snprintf(
	    args, sizeof(args),
	    "--evidence %s/evidence_v1.json --root-ca %s --hsk-cek-dir %s --report-data " RD_HEX,
	    tmp, forged_hrk, forged_dir);
	run_tool(args, 0, "\"serial_number\": \"" SERIAL "\"");
	snprintf(args, sizeof(args),
	         "--evidence %s/evidence_v1.json --hsk-cek-dir %s --report-data " RD_HEX, tmp,
	         forged_dir);
	run_tool(args, 1, "refused: HSK signature by the HRK failed");
	snprintf(args, sizeof(args),
	         "--evidence %s/csv_evidence.json --hsk-cek-dir %s --kds-url ''", realdir,
	         empty_dir);
	run_tool(args, 1, "HSK/CEK not available for CSV chip KPA64911240507");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_builtin_hrk_verifies_itself),
	    cmocka_unit_test(test_real_evidence_parses_and_report_verifies_under_its_pek),
	    cmocka_unit_test(test_real_evidence_refused_without_hsk_cek),
	    cmocka_unit_test(test_forged_v1_verifies_with_claims),
	    cmocka_unit_test(test_forged_v2_with_inline_hsk_cek_verifies),
	    cmocka_unit_test(test_forged_v2_eventlog_replays_with_sm3),
	    cmocka_unit_test(test_v2_eventlog_that_does_not_replay_names_the_rtmr),
	    cmocka_unit_test(test_refuses_wrong_hrk),
	    cmocka_unit_test(test_refuses_wrong_report_data),
	    cmocka_unit_test(test_refuses_flipped_report_bytes),
	    cmocka_unit_test(test_refuses_flipped_pek_and_inline_certs),
	    cmocka_unit_test(test_refuses_flipped_local_hsk_cek_and_hrk),
	    cmocka_unit_test(test_refuses_truncated_and_malformed_evidence),
	    cmocka_unit_test(test_parsers_check_lengths),
	    cmocka_unit_test(test_evidence_verify_tool),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
