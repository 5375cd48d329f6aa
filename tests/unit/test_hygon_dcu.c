/*
 * Hygon DCU verifier (as-rvps.md §5.11 `hygondcu`) over reports forged under a test HRK
 * (tests/unit/dcu_forge.py; no real DCU evidence exists): two chips verify into two `dcu`
 * claims objects with Trustee's names and encodings; the expected report data is required and
 * must equal each user_data; a flipped body byte or signature, the wrong HRK, a missing
 * HSK/CEK, malformed or duplicated reports are refused naming the report; the HSK/CEK pairs
 * come from the stand-in Hygon KDS when the local directory lacks them; evidence-verify
 * --tee hygon-dcu prints the claims.
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

#include "as/collateral/hygon_kds.h"
#include "as/evidence/dcu_report.h"
#include "as/verifiers/verifier.h"
#include "testlib.h"

#define CHIP0 "DCU0CHIP0001"
#define CHIP1 "DCU1CHIP0002"
#define RD_HEX "c0ffee0102030405"

static char tmp[256], hrk[400], certs[400], served[400], empty[400], certf[400], keyf[400];

static json_t *load(void)
{
	char path[500];
	snprintf(path, sizeof(path), "%s/evidence.json", tmp);
	json_t *j = json_load_file(path, 0, NULL);
	assert_non_null(j);
	return j;
}

static void configure_kds(const char *hrk_file, const char *dir, const char *kds_url)
{
	struct err err = {0};
	json_t *c = json_pack("{s:s,s:s,s:s}", "hsk_cek_dir", dir, "kds_base_url", kds_url,
	                      "kds_ca_file", certf);
	if (hrk_file)
		json_object_set_new(c, "hrk_file", json_string(hrk_file));
	json_t *vc = json_pack("{s:o}", "hygon_dcu_verifier", c);
	if (verifier_find("hygondcu")->init(vc, &err) != 0)
		fail_msg("init: %s", err.msg);
	json_decref(vc);
	hygon_kds_reset();
}

static void configure(const char *hrk_file, const char *dir)
{
	configure_kds(hrk_file, dir, ""); /* never the real Hygon KDS */
}

static int verify(const json_t *ev, const char *rd_hex, struct verify_result *res, struct err *err)
{
	uint8_t rd[64];
	size_t rdl = 0;
	for (; rd_hex && rd_hex[2 * rdl]; rdl++)
		sscanf(rd_hex + 2 * rdl, "%2hhx", &rd[rdl]);
	struct verify_request req = {
	    .evidence = ev, .report_data = rd_hex ? rd : NULL, .report_data_len = rdl};
	return verifier_find("hygondcu")->verify(&req, res, err);
}

static void expect_refused(const json_t *ev, const char *rd, const char *reason)
{
	struct verify_result res = {0};
	struct err err = {0};
	if (verify(ev, rd, &res, &err) == 0)
		fail_msg("accepted; expected \"%s\"", reason);
	verify_result_clear(&res);
	if (strstr(err.msg, reason) == NULL)
		fail_msg("refused with \"%s\"; expected \"%s\"", err.msg, reason);
}

static json_t *report(json_t *ev, size_t i)
{
	return json_array_get(json_object_get(ev, "attestation_reports"), i);
}

static void flip(json_t *ev, size_t i, const char *part, const char *key, size_t at)
{
	json_t *a = json_object_get(json_object_get(report(ev, i), part), key);
	json_array_set_new(a, at, json_integer(json_integer_value(json_array_get(a, at)) ^ 1));
}

static int setup(void **state)
{
	char cmd[3000];
	snprintf(tmp, sizeof(tmp), "/tmp/ctrustee-dcu-XXXXXX");
	assert_non_null(mkdtemp(tmp));
	snprintf(hrk, sizeof(hrk), "%s/hrk.cert", tmp);
	snprintf(certs, sizeof(certs), "%s/certs", tmp);
	snprintf(served, sizeof(served), "%s/kds", tmp);
	snprintf(empty, sizeof(empty), "%s/empty", tmp);
	snprintf(certf, sizeof(certf), "%s/tls.pem", tmp);
	snprintf(keyf, sizeof(keyf), "%s/tls.key", tmp);
	snprintf(cmd, sizeof(cmd),
	         "/usr/bin/python3 tests/unit/dcu_forge.py %s " RD_HEX " " CHIP0 " " CHIP1
	         " && mkdir -p %s && openssl req -x509 -newkey ec -pkeyopt "
	         "ec_paramgen_curve:P-256 -nodes -keyout %s -out %s -days 2 -subj /CN=127.0.0.1 "
	         "-addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1",
	         tmp, empty, keyf, certf);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static int teardown(void **state)
{
	tl_rm_rf(tmp);
	return 0;
}

static void test_forged_reports_verify_into_one_dcu_claims_each(void **state)
{
	struct verify_result res = {0};
	struct err err = {0};
	json_t *ev = load();

	configure(hrk, certs);
	if (verify(ev, RD_HEX, &res, &err) != 0)
		fail_msg("refused: %s", err.msg);
	assert_int_equal(res.n, 2);
	for (size_t i = 0; i < 2; i++) {
		json_t *c = res.items[i].claims, *b = json_object_get(c, "body");
		assert_string_equal(res.items[i].tee_class, "dcu");
		assert_int_equal(json_integer_value(json_object_get(b, "version")), 1);
		assert_string_equal(json_string_value(json_object_get(b, "chip_id")),
		                    i == 0 ? "44435530434849503030303100000000"
		                           : "44435531434849503030303200000000");
		const char *ud = json_string_value(json_object_get(b, "user_data"));
		assert_int_equal(strlen(ud), 128);
		assert_memory_equal(ud, RD_HEX "0000", strlen(RD_HEX) + 4);
		assert_string_equal(json_string_value(json_object_get(c, "report_data")), ud);
		assert_memory_equal(json_string_value(json_object_get(b, "measure")),
		                    i == 0 ? "0101" : "0202", 4);
		assert_int_equal(strlen(json_string_value(json_object_get(b, "reserved"))), 256);
		assert_string_equal(json_string_value(json_object_get(b, "sig_usage")), "1004");
		assert_string_equal(json_string_value(json_object_get(b, "sig_algo")), "4");
		assert_int_equal(json_object_size(c), 2);
		assert_int_equal(json_object_size(b), 7);
	}
	verify_result_clear(&res);
	json_decref(ev);
}

static void test_report_data_is_required_and_bound(void **state)
{
	json_t *ev = load();
	configure(hrk, certs);
	expect_refused(ev, NULL, "Hygon DCU must check report data: none was provided");
	expect_refused(ev, "c0ffee0102030406",
	               "DCU report 0 (chip " CHIP0
	               "): DCU user_data does not match the expected report data");
	/* a 48-byte digest is zero-padded to 64 (regularize): still a mismatch here */
	expect_refused(ev, RD_HEX "00000000000000000000000000000000000000000000000000000001",
	               "DCU user_data does not match");
	json_decref(ev);
}

static void test_refuses_flipped_body_and_signature(void **state)
{
	static const struct {
		const char *part, *key;
		size_t at;
	} cases[] = {
	    {"body", "measure", 0}, {"body", "reserved", 127}, {"body", "user_data", 63},
	    {"body", "chip_id", 0}, {"sig", "r", 0},           {"sig", "s", 31},
	};
	configure(hrk, certs);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *ev = load();
		flip(ev, 1, cases[i].part, cases[i].key, cases[i].at);
		if (strcmp(cases[i].key, "chip_id") == 0) /* another chip: no certificate */
			expect_refused(ev, RD_HEX,
			               "DCU report 1 (chip ECU1CHIP0002): HSK/CEK not available");
		else if (strcmp(cases[i].key, "user_data") == 0) /* the nonce is checked first */
			expect_refused(ev, RD_HEX,
			               "DCU report 1 (chip " CHIP1
			               "): DCU user_data does not match");
		else
			expect_refused(ev, RD_HEX,
			               "DCU report 1 (chip " CHIP1
			               "): DCU report signature by the CEK failed");
		json_decref(ev);
	}
	json_t *ev = load();
	json_t *b = json_object_get(report(ev, 0), "body");
	json_object_set_new(b, "version", json_integer(2));
	expect_refused(ev, RD_HEX, "DCU report 0 (chip " CHIP0 "): DCU report signature");
	json_object_set_new(b, "version", json_integer(1));
	json_object_set_new(b, "sig_usage", json_integer(0x1002));
	expect_refused(ev, RD_HEX, "DCU report 0 (chip " CHIP0 "): DCU report signature");
	json_decref(ev);
}

static void test_refuses_wrong_hrk_and_other_chips_pair(void **state)
{
	char cmd[3000];
	json_t *ev = load();
	configure(NULL, certs); /* the built-in Hygon HRK did not sign the test HSK */
	expect_refused(ev, RD_HEX,
	               "DCU report 0 (chip " CHIP0 "): HSK signature by the HRK failed");
	/* chip 1's pair under chip 0's name: the CEK does not sign chip 0's report */
	snprintf(cmd, sizeof(cmd),
	         "mkdir -p %s/swap && cp %s/" CHIP1 "_hsk_cek.cert %s/swap/" CHIP0
	         "_hsk_cek.cert && cp %s/" CHIP1 "_hsk_cek.cert %s/swap/",
	         tmp, certs, tmp, certs, tmp);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "%s/swap", tmp);
	configure(hrk, cmd);
	expect_refused(ev, RD_HEX,
	               "DCU report 0 (chip " CHIP0 "): DCU report signature by the CEK");
	json_decref(ev);
}

static void test_refuses_missing_hsk_cek(void **state)
{
	char want[1200];
	json_t *ev = load();
	configure(hrk, empty);
	snprintf(want, sizeof(want),
	         "DCU report 0 (chip " CHIP0 "): HSK/CEK not available for DCU chip " CHIP0
	         ": %s/" CHIP0 "_hsk_cek.cert does not exist: no HSK/CEK for chip " CHIP0
	         " is cached and Hygon KDS fetching is off",
	         empty);
	expect_refused(ev, RD_HEX, want);
	json_decref(ev);
}

static void test_hsk_cek_from_the_stand_in_kds(void **state)
{
	struct verify_result res = {0};
	struct hygon_kds_stats st;
	struct err err = {0};
	char p[16], url[64];
	int port = tl_free_port();
	json_t *ev = load();

	snprintf(p, sizeof(p), "%d", port);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d", port);
	char *argv[] = {"/usr/bin/python3",
	                "tests/integration/hygon_kds_server.py",
	                p,
	                certf,
	                keyf,
	                served,
	                "ok",
	                NULL};
	pid_t server = tl_spawn(argv);
	tl_wait_port(port, "stand-in Hygon KDS");
	configure_kds(hrk, empty, url);
	int rc = verify(ev, RD_HEX, &res, &err);
	tl_stop(server);
	if (rc != 0)
		fail_msg("refused: %s", err.msg);
	assert_int_equal(res.n, 2);
	verify_result_clear(&res);
	hygon_kds_get_stats(&st);
	assert_int_equal(st.kds_fetches, 2);
	/* the stand-in is gone: both pairs now come from memory */
	assert_int_equal(verify(ev, RD_HEX, &res, &err), 0);
	verify_result_clear(&res);
	hygon_kds_get_stats(&st);
	assert_int_equal(st.memory_hits, 2);
	json_decref(ev);
}

static void test_refuses_malformed_evidence(void **state)
{
	json_t *ev = load(), *list = json_object_get(ev, "attestation_reports");
	configure(hrk, certs);

	json_array_set(list, 1, report(ev, 0)); /* the same chip twice */
	expect_refused(ev, RD_HEX, "DCU evidence lists chip " CHIP0 " twice (reports 0 and 1)");
	json_decref(ev);

	ev = load();
	list = json_object_get(ev, "attestation_reports");
	while (json_array_size(list) <= DCU_MAX_REPORTS)
		json_array_append_new(list, json_deep_copy(report(ev, 0)));
	expect_refused(ev, RD_HEX,
	               "DCU evidence carries 65 reports, more than the 64 one host has");
	json_array_clear(list);
	expect_refused(ev, RD_HEX, "DCU evidence needs a non-empty `attestation_reports` array");
	json_object_set_new(ev, "attestation_reports", json_string("x"));
	expect_refused(ev, RD_HEX, "DCU evidence needs a non-empty `attestation_reports` array");
	json_decref(ev);

	ev = load();
	json_t *b = json_object_get(report(ev, 1), "body");
	json_array_remove(json_object_get(b, "chip_id"), 15);
	expect_refused(ev, RD_HEX, "DCU report 1: `chip_id` must be an array of 16 byte values");
	json_array_append_new(json_object_get(b, "chip_id"), json_integer(256));
	expect_refused(ev, RD_HEX, "DCU report 1: `chip_id`[15] is not a byte value");
	json_decref(ev);

	ev = load();
	b = json_object_get(report(ev, 0), "body");
	json_object_set_new(b, "sig_algo", json_integer(-1));
	expect_refused(ev, RD_HEX, "DCU report 0: `sig_algo` must be an integer of 4 bytes");
	json_object_del(report(ev, 0), "sig");
	expect_refused(ev, RD_HEX, "DCU report 0 must be an object with `body` and `sig` objects");
	json_decref(ev);

	ev = load(); /* a chip id that cannot name a file: '/' inside */
	json_array_set_new(json_object_get(json_object_get(report(ev, 0), "body"), "chip_id"), 3,
	                   json_integer('/'));
	expect_refused(ev, RD_HEX, "DCU chip id is not a name an HSK/CEK can be looked up by");
	json_decref(ev);
}

static void test_parsers_check_lengths(void **state)
{
	static uint8_t buf[DCU_REPORT_LEN + 1];
	struct dcu_report r;
	struct dcu_evidence ev;
	struct err err = {0};
	size_t n;

	assert_int_equal(dcu_report_parse(buf, DCU_REPORT_LEN - 1, &r, &err), -1);
	assert_string_equal(err.msg, "DCU attestation report is 395 bytes, expected 396");
	assert_int_equal(dcu_report_parse(buf, DCU_REPORT_LEN + 1, &r, &err), -1);
	assert_int_equal(dcu_report_parse(buf, DCU_REPORT_LEN, &r, &err), 0);
	assert_string_equal(r.chip, ""); /* all-zero chip id: no name */
	uint8_t *txt = tl_slurp(tmp, "evidence.json", &n);
	assert_int_equal(dcu_evidence_parse(txt, n, &ev, &err), 0);
	assert_int_equal(ev.n, 2);
	assert_string_equal(ev.reports[1].chip, CHIP1);
	dcu_evidence_clear(&ev);
	for (size_t cut = 0; cut < n; cut += 53) /* every prefix refused, none crashes */
		assert_int_equal(dcu_evidence_parse(txt, cut, &ev, &err), -1);
	free(txt);
}

static void run_tool(const char *args, int want_rc, const char *want_out)
{
	const char *b = getenv("CTRUSTEE_BUILD");
	char cmd[3000], out[16384];
	snprintf(cmd, sizeof(cmd), "%s/bin/evidence-verify %s 2>&1", b ? b : "build", args);
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
	snprintf(args, sizeof(args),
	         "--tee hygon-dcu --evidence %s/evidence.json --root-ca %s --hsk-cek-dir %s "
	         "--kds-url '' --report-data " RD_HEX,
	         tmp, hrk, certs);
	run_tool(args, 0, "\"chip_id\": \"44435531434849503030303200000000\"");
	run_tool(args, 0, "\"hygondcu\": {");
	snprintf(args, sizeof(args),
	         "--tee hygondcu --evidence %s/evidence.json --root-ca %s --hsk-cek-dir %s "
	         "--kds-url ''",
	         tmp, hrk, certs);
	run_tool(args, 1, "refused: Hygon DCU must check report data");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_forged_reports_verify_into_one_dcu_claims_each),
	    cmocka_unit_test(test_report_data_is_required_and_bound),
	    cmocka_unit_test(test_refuses_flipped_body_and_signature),
	    cmocka_unit_test(test_refuses_wrong_hrk_and_other_chips_pair),
	    cmocka_unit_test(test_refuses_missing_hsk_cek),
	    cmocka_unit_test(test_hsk_cek_from_the_stand_in_kds),
	    cmocka_unit_test(test_refuses_malformed_evidence),
	    cmocka_unit_test(test_parsers_check_lengths),
	    cmocka_unit_test(test_evidence_verify_tool),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
