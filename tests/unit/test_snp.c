/*
 * SNP verifier over the real reports and certificates in shared/testdata/evidence/snp
 * (MANIFEST.md rows "SNP ..." and the byte-flip negatives of its section 3).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "as/collateral/amd_kds.h"
#include "as/evidence/snp_report.h"
#include "as/verifiers/verifier.h"
#include "b64.h"
#include "testlib.h"

static char evdir[1024];

static time_t at(const char *iso)
{
	struct tm tm = {0};
	strptime(iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return timegm(&tm);
}

/* Evidence {"attestation_report": "<b64 raw>"} with the VCEK given as a file option. */
static int verify_raw(const uint8_t *report, size_t len, const char *vcek_rel, time_t now,
                      const uint8_t *rd, size_t rdlen, json_t **claims, struct err *err)
{
	char *b64 = b64_encode(report, len, B64_STD);
	char vpath[1400];
	json_t *ev = json_pack("{s:s}", "attestation_report", b64);
	json_t *opts;
	struct verify_result res = {0};
	const struct verifier *v = verifier_find("snp");
	int rc;

	snprintf(vpath, sizeof(vpath), "%s/%s", evdir, vcek_rel);
	opts = json_pack("{s:s}", "vcek", vpath);
	struct verify_request req = {.evidence = ev,
	                             .now = now,
	                             .options = opts,
	                             .report_data = rd,
	                             .report_data_len = rdlen};
	assert_non_null(v);
	rc = v->verify(&req, &res, err);
	if (rc == 0 && claims != NULL) {
		*claims = json_incref(res.items[0].claims);
		assert_string_equal(res.items[0].tee_class, "cpu");
	}
	verify_result_clear(&res);
	json_decref(ev);
	json_decref(opts);
	free(b64);
	return rc;
}

static void test_snp_trustee_milan_report_verifies(void **state)
{
	size_t len;
	uint8_t *rep = tl_slurp(evdir, "snp/trustee/test-report.bin", &len);
	struct err err = {0};
	json_t *c = NULL;

	assert_int_equal(verify_raw(rep, len, "snp/trustee/test-vcek.der",
	                            at("2025-01-01T00:00:00Z"), NULL, 0, &c, &err),
	                 0);
	assert_string_equal(json_string_value(json_object_get(c, "measurement")),
	                    "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c2350"
	                    "0644e0e692e6be917f9050d3d38c");
	assert_true(json_is_boolean(json_object_get(c, "policy_debug_allowed")));
	assert_true(json_is_integer(json_object_get(c, "reported_tcb_snp")));
	assert_int_equal(json_string_length(json_object_get(c, "report_data")), 128);
	assert_int_equal(json_string_length(json_object_get(c, "init_data")), 64);
	json_decref(c);
	free(rep);
}

static void test_snp_rejects_flipped_signed_byte(void **state)
{
	size_t len;
	uint8_t *rep = tl_slurp(evdir, "snp/trustee/test-report.bin", &len);
	struct err err = {0};

	rep[42] += 1;
	assert_int_equal(verify_raw(rep, len, "snp/trustee/test-vcek.der", 0, NULL, 0, NULL, &err),
	                 -1);
	assert_non_null(strstr(err.msg, "signature does not verify"));
	free(rep);
}

static void test_snp_rejects_reported_tcb_other_than_vcek(void **state)
{
	size_t len;
	uint8_t *rep = tl_slurp(evdir, "snp/trustee/test-report.bin", &len);
	struct err err = {0};

	rep[0x180] += 1;
	assert_int_equal(verify_raw(rep, len, "snp/trustee/test-vcek.der", 0, NULL, 0, NULL, &err),
	                 -1);
	assert_non_null(strstr(err.msg, "reported_tcb"));
	free(rep);
}

static void test_snp_rejects_tampered_vcek(void **state)
{
	size_t rlen, vlen;
	uint8_t *rep = tl_slurp(evdir, "snp/trustee/test-report.bin", &rlen);
	uint8_t *vcek = tl_slurp(evdir, "snp/trustee/test-vcek.der", &vlen);
	struct snp_vek vek;
	struct snp_report r;
	struct err err = {0};

	vcek[42] += 1;
	assert_int_equal(snp_report_parse(rep, rlen, SNP_GEN_MILAN, &r, &err), 0);
	if (snp_vek_load(vcek, vlen, &vek, &err) == 0) {
		assert_int_equal(snp_vek_verify_chain(&vek, SNP_GEN_MILAN, NULL, NULL, 0, &err),
		                 -1);
		snp_vek_free(&vek);
	}
	free(rep);
	free(vcek);
}

static void test_snp_rejects_wrong_report_data(void **state)
{
	size_t len;
	uint8_t *rep = tl_slurp(evdir, "snp/trustee/test-report.bin", &len);
	struct err err = {0};
	uint8_t rd[48] = {1, 2, 3};

	assert_int_equal(
	    verify_raw(rep, len, "snp/trustee/test-vcek.der", 0, rd, sizeof(rd), NULL, &err), -1);
	assert_non_null(strstr(err.msg, "report_data"));
	free(rep);
}

static void test_snp_vlek_report_valid_only_in_cert_window(void **state)
{
	size_t len;
	uint8_t *rep = tl_slurp(evdir, "snp/trustee/test-vlek-report.bin", &len);
	struct err err = {0};
	json_t *c = NULL;

	/* inside the VLEK's validity the chain and signature hold, and the report is refused
	 * only because it comes from VMPL 1 */
	assert_int_equal(verify_raw(rep, len, "snp/trustee/test-vlek.der",
	                            at("2025-06-01T00:00:00Z"), NULL, 0, &c, &err),
	                 -1);
	assert_non_null(strstr(err.msg, "VMPL 1"));
	assert_int_equal(verify_raw(rep, len, "snp/trustee/test-vlek.der",
	                            at("2026-06-01T00:00:00Z"), NULL, 0, NULL, &err),
	                 -1);
	assert_non_null(strstr(err.msg, "expired"));
	free(rep);
}

static void test_snp_go_sev_guest_report_verifies(void **state)
{
	size_t len;
	uint8_t *rep = tl_slurp(evdir, "snp/go-sev-guest/attestation.bin", &len);
	struct err err = {0};
	json_t *c = NULL;
	uint8_t rd[5] = {1, 2, 3, 4, 5};

	assert_int_equal(verify_raw(rep, len, "snp/go-sev-guest/vcek.testcer",
	                            at("2024-01-01T00:00:00Z"), rd, sizeof(rd), &c, &err),
	                 0);
	assert_true(json_is_true(json_object_get(c, "policy_debug_allowed")));
	assert_true(json_is_true(json_object_get(c, "policy_smt_allowed")));
	json_decref(c);
	free(rep);
}

static void test_snp_virtee_report_and_flips(void **state)
{
	size_t hlen;
	uint8_t *hex = tl_slurp(evdir, "snp/virtee-sev/report_milan.hex", &hlen);
	uint8_t *rep;
	size_t len;
	struct err err = {0};

	while (hlen > 0 && (hex[hlen - 1] == '\n' || hex[hlen - 1] == '\r'))
		hlen--;
	assert_int_equal(hex_decode((const char *)hex, hlen, &rep, &len), 0);
	assert_int_equal(
	    verify_raw(rep, len, "snp/virtee-sev/vcek_milan.der", 0, NULL, 0, NULL, &err), 0);
	rep[21] ^= 0x80;
	assert_int_equal(
	    verify_raw(rep, len, "snp/virtee-sev/vcek_milan.der", 0, NULL, 0, NULL, &err), -1);
	free(rep);
	free(hex);
}

static void test_snp_genoa_json_evidence_with_cert_chain(void **state)
{
	size_t len;
	uint8_t *txt = tl_slurp(evdir, "snp/trustee/e2e-evidence.json", &len);
	json_t *ev = json_loadb((const char *)txt, len, 0, NULL);
	struct verify_result res = {0};
	struct err err = {0};
	struct verify_request req = {.evidence = ev};

	assert_non_null(ev);
	assert_int_equal(verifier_find("snp")->verify(&req, &res, &err), 0);
	assert_int_equal(res.n, 1);
	verify_result_clear(&res);
	/* the same VCEK declared as a VLEK is refused */
	json_object_set_new(json_array_get(json_object_get(ev, "cert_chain"), 0), "cert_type",
	                    json_string("VLEK"));
	assert_int_equal(verifier_find("snp")->verify(&req, &res, &err), -1);
	json_decref(ev);
	free(txt);
}

static void test_snp_invalid_fixture_vceks_do_not_chain(void **state)
{
	const char *files[] = {"snp/trustee/test-vcek-invalid-legacy.der",
	                       "snp/trustee/test-vcek-invalid-new.der"};
	for (size_t i = 0; i < 2; i++) {
		size_t len;
		uint8_t *der = tl_slurp(evdir, files[i], &len);
		struct snp_vek vek;
		struct err err = {0};
		if (snp_vek_load(der, len, &vek, &err) == 0) {
			assert_int_equal(
			    snp_vek_verify_chain(&vek, SNP_GEN_MILAN, NULL, NULL, 0, &err), -1);
			snp_vek_free(&vek);
		}
		free(der);
	}
}

static void test_snp_turin_vcek_chains_with_8_byte_hwid(void **state)
{
	size_t len;
	uint8_t *der = tl_slurp(evdir, "snp/virtee-sev/vcek_turin.der", &len);
	struct snp_vek vek;
	struct err err = {0};

	assert_int_equal(snp_vek_load(der, len, &vek, &err), 0);
	assert_int_equal(vek.gen, SNP_GEN_TURIN);
	assert_true(vek.tcb.has_fmc);
	assert_int_equal(vek.hwid_len, 8);
	assert_int_equal(vek.hwid[0], 0x1e);
	assert_int_equal(snp_vek_verify_chain(&vek, SNP_GEN_TURIN, NULL, NULL, 0, &err), 0);
	assert_int_equal(snp_vek_verify_chain(&vek, SNP_GEN_MILAN, NULL, NULL, 0, &err), -1);
	snp_vek_free(&vek);
	free(der);
}

static void test_snp_refuses_short_report(void **state)
{
	uint8_t buf[100] = {0};
	struct snp_report r;
	struct err err = {0};

	assert_int_equal(snp_report_parse(buf, sizeof(buf), SNP_GEN_MILAN, &r, &err), -1);
	assert_non_null(strstr(err.msg, "1184"));
}

int main(void)
{
	tl_testdata_dir(evdir, sizeof(evdir), "evidence");
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_snp_trustee_milan_report_verifies),
	    cmocka_unit_test(test_snp_rejects_flipped_signed_byte),
	    cmocka_unit_test(test_snp_rejects_reported_tcb_other_than_vcek),
	    cmocka_unit_test(test_snp_rejects_tampered_vcek),
	    cmocka_unit_test(test_snp_rejects_wrong_report_data),
	    cmocka_unit_test(test_snp_vlek_report_valid_only_in_cert_window),
	    cmocka_unit_test(test_snp_go_sev_guest_report_verifies),
	    cmocka_unit_test(test_snp_virtee_report_and_flips),
	    cmocka_unit_test(test_snp_genoa_json_evidence_with_cert_chain),
	    cmocka_unit_test(test_snp_invalid_fixture_vceks_do_not_chain),
	    cmocka_unit_test(test_snp_turin_vcek_chains_with_8_byte_hwid),
	    cmocka_unit_test(test_snp_refuses_short_report),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
