/*
 * TPM and Azure vTPM verifiers over shared/testdata/evidence (tpm/, az-snp-vtpm/,
 * az-tdx-vtpm/) with the expected values and byte-flip negatives of MANIFEST.md.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "as/evidence/tpm_quote.h"
#include "as/verifiers/verifier.h"
#include "b64.h"
#include "testlib.h"

static char evdir[1024];

static json_t *load_json(const char *rel)
{
	char path[1400];
	json_error_t je;
	snprintf(path, sizeof(path), "%s/%s", evdir, rel);
	json_t *j = json_load_file(path, 0, &je);
	if (j == NULL)
		fail_msg("%s: %s", path, je.text);
	return j;
}

static int run(const char *tee, json_t *ev, const uint8_t *rd, size_t rdlen, json_t **claims,
               struct err *err)
{
	struct verify_result res = {0};
	struct verify_request req = {.evidence = ev, .report_data = rd, .report_data_len = rdlen};
	const struct verifier *v = verifier_find(tee);
	assert_non_null(v);
	int rc = v->verify(&req, &res, err);
	if (rc == 0) {
		assert_int_equal(res.n, 1);
		if (claims)
			*claims = json_incref(res.items[0].claims);
	}
	verify_result_clear(&res);
	return rc;
}

static const uint8_t challenge[] = "challenge";

static void expect_pcr00(json_t *c, const char *want)
{
	json_t *tpm = json_object_get(c, "tpm");
	assert_non_null(tpm);
	assert_string_equal(json_string_value(json_object_get(tpm, "pcr00")), want);
}

static void test_az_snp_v0_and_v1_verify(void **state)
{
	const char *files[] = {"az-snp-vtpm/trustee/evidence-v0.json",
	                       "az-snp-vtpm/trustee/evidence-v1.json"};
	for (int i = 0; i < 2; i++) {
		json_t *ev = load_json(files[i]), *c = NULL;
		struct err err = {0};
		if (run("az-snp-vtpm", ev, challenge, 9, &c, &err) != 0)
			fail_msg("%s: %s", files[i], err.msg);
		assert_string_equal(json_string_value(json_object_get(c, "report_data")),
		                    "6368616c6c656e6765");
		expect_pcr00(c, "e15c44796beabf46abcec7c57e590942041e47497e4ec27571c8b7664f48dced");
		assert_true(json_is_string(json_object_get(c, "policy_debug_allowed")));
		assert_null(json_object_get(c, "chip_id"));
		json_decref(c);
		json_decref(ev);
	}
}

static void test_az_snp_v2_and_genoa_verify(void **state)
{
	struct {
		const char *file, *nonce, *pcr00;
	} cases[] = {
	    {"az-snp-vtpm/trustee/evidence-v2.json",
	     "982f5c6e45df0ed3f10b6f60b02f0c8390e281300f3805e2279c16168cd6ae9aa398f647caa2338748"
	     "cd0fd9f5f819ef",
	     "84275b2f4312cd4fc6cbe6b152ad3c3683e513d9f1e23c34fca160c8cca7a6a7"},
	    {"az-snp-vtpm/trustee/evidence-genoa.json", NULL,
	     "afd689d0bb1c5f36f023fbaf574135f555a28a10c1f6b938d2a25e70c7783338"},
	};
	for (int i = 0; i < 2; i++) {
		json_t *ev = load_json(cases[i].file), *c = NULL;
		struct err err = {0};
		uint8_t *rd = NULL;
		size_t rdlen = 0;
		if (cases[i].nonce) {
			assert_int_equal(
			    hex_decode(cases[i].nonce, strlen(cases[i].nonce), &rd, &rdlen), 0);
		} else {
			/* the genoa nonce is whatever its quote carries: take it from a first pass
			 */
			struct tpm_quote q;
			assert_int_equal(tpm_quote_from_json(json_object_get(ev, "quote"),
			                                     TPM_JSON_BYTES_RAW, &q, &err),
			                 0);
			assert_int_equal(
			    tpm_attest_parse(q.message, q.message_len, &q.attest, &err), 0);
			rdlen = q.attest.extra_data_len;
			rd = malloc(rdlen);
			memcpy(rd, q.attest.extra_data, rdlen);
			tpm_quote_free(&q);
			assert_int_equal(rd[0], 0x02);
			assert_int_equal(rd[1], 0x18);
		}
		if (run("az-snp-vtpm", ev, rd, rdlen, &c, &err) != 0)
			fail_msg("%s: %s", cases[i].file, err.msg);
		expect_pcr00(c, cases[i].pcr00);
		json_decref(c);
		json_decref(ev);
		free(rd);
	}
}

/* Flip one byte of the v1 evidence's HCL report and expect a refusal naming `why`. */
static void hcl_flip(size_t off, int set_zero, const char *why)
{
	json_t *ev = load_json("az-snp-vtpm/trustee/evidence-v1.json");
	const char *s = json_string_value(json_object_get(ev, "hcl_report"));
	uint8_t *hcl;
	size_t len;
	struct err err = {0};

	assert_int_equal(b64_decode(s, strlen(s), B64_URL | B64_LENIENT, &hcl, &len), 0);
	assert_true(off < len);
	if (set_zero)
		hcl[off] = 0;
	else
		hcl[off] += 1;
	char *enc = b64_encode(hcl, len, B64_URL);
	json_object_set_new(ev, "hcl_report", json_string(enc));
	assert_int_equal(run("az-snp-vtpm", ev, challenge, 9, NULL, &err), -1);
	if (strstr(err.msg, why) == NULL)
		fail_msg("HCL byte 0x%zx: got \"%s\", want it to mention \"%s\"", off, err.msg,
		         why);
	free(enc);
	free(hcl);
	json_decref(ev);
}

static void test_az_snp_hcl_flips_are_refused(void **state)
{
	hcl_flip(0x1a6, 1, "reported_tcb"); /* the SNP SPL byte of reported_tcb */
	hcl_flip(0x6e0, 0, "HCL variable data digest doesn't match SNP report data");
	hcl_flip(0x540, 1, "Failed to get AKpub");
}

static void test_az_snp_tpm_flips_are_refused(void **state)
{
	json_t *ev = load_json("az-snp-vtpm/trustee/evidence-v1.json");
	json_t *q = json_object_get(ev, "tpm_quote");
	char *sig = strdup(json_string_value(json_object_get(q, "signature")));
	char *pcr = strdup(json_string_value(json_array_get(json_object_get(q, "pcrs"), 0)));
	struct err err = {0};

	sig[1] = sig[1] == '0' ? '1' : '0';
	json_object_set_new(q, "signature", json_string(sig));
	assert_int_equal(run("az-snp-vtpm", ev, challenge, 9, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "signature"));
	json_decref(ev);

	ev = load_json("az-snp-vtpm/trustee/evidence-v1.json");
	q = json_object_get(ev, "tpm_quote");
	pcr[1] = pcr[1] == '0' ? '1' : '0';
	json_array_set_new(json_object_get(q, "pcrs"), 0, json_string(pcr));
	assert_int_equal(run("az-snp-vtpm", ev, challenge, 9, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "PCR"));
	json_decref(ev);

	ev = load_json("az-snp-vtpm/trustee/evidence-v1.json");
	const uint8_t reversed[] = "egnellahc";
	assert_int_equal(run("az-snp-vtpm", ev, reversed, 9, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "nonce"));
	assert_int_equal(run("az-snp-vtpm", ev, NULL, 0, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "not provided"));
	json_decref(ev);
	free(sig);
	free(pcr);
}

static void test_az_tdx_vtpm_binds_tpm_and_hcl(void **state)
{
	json_t *ev = load_json("az-tdx-vtpm/trustee/evidence-v1.json");
	struct err err = {0};

	/* The TD quote's collateral (FMSPC 00806f050000) is not available offline: the
	 * evidence must be refused, and refused for the TD quote, after the vTPM checks. */
	assert_int_equal(run("az-tdx-vtpm", ev, challenge, 9, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "TD quote"));
	const uint8_t reversed[] = "egnellahc";
	assert_int_equal(run("az-tdx-vtpm", ev, reversed, 9, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "nonce"));
	json_decref(ev);
}

static void test_tpm_trustee_evidence_signature_and_pcrs(void **state)
{
	json_t *ev = load_json("tpm/trustee/tpm_evidence.json"), *c = NULL;
	struct err err = {0};

	if (run("tpm", ev, NULL, 0, &c, &err) != 0)
		fail_msg("%s", err.msg);
	assert_non_null(json_object_get(c, "pcr23"));
	assert_non_null(json_object_get(c, "ak_public"));
	assert_int_equal(json_string_length(json_object_get(c, "report_data")), 128);
	assert_true(strncmp(json_string_value(json_object_get(c, "report_data")), "a04182b5", 8) ==
	            0);
	json_decref(c);
	/* the fixture's 64-byte nonce can never equal a 32-byte resized report data */
	uint8_t rd[32] = {0};
	assert_int_equal(run("tpm", ev, rd, sizeof(rd), NULL, &err), -1);
	assert_non_null(strstr(err.msg, "nonce"));
	json_decref(ev);
}

static void test_tpm_attest_parse_refuses_garbage(void **state)
{
	uint8_t buf[64] = {0xff, 0x54, 0x43, 0x47, 0x80, 0x18, 0xff, 0xff};
	struct tpm_attest a;
	struct err err = {0};
	assert_int_equal(tpm_attest_parse(buf, sizeof(buf), &a, &err), -1);
	assert_non_null(strstr(err.msg, "truncated"));
	buf[0] = 0;
	assert_int_equal(tpm_attest_parse(buf, sizeof(buf), &a, &err), -1);
	assert_non_null(strstr(err.msg, "TPM_GENERATED_VALUE"));
}

int main(void)
{
	tl_testdata_dir(evdir, sizeof(evdir), "evidence");
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_az_snp_v0_and_v1_verify),
	    cmocka_unit_test(test_az_snp_v2_and_genoa_verify),
	    cmocka_unit_test(test_az_snp_hcl_flips_are_refused),
	    cmocka_unit_test(test_az_snp_tpm_flips_are_refused),
	    cmocka_unit_test(test_az_tdx_vtpm_binds_tpm_and_hcl),
	    cmocka_unit_test(test_tpm_trustee_evidence_signature_and_pcrs),
	    cmocka_unit_test(test_tpm_attest_parse_refuses_garbage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
