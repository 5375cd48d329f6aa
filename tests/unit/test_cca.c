/*
 * Arm CCA verifier over Trustee's synthetic example token (shared/testdata/evidence/cca,
 * MANIFEST.md row "Arm CCA"), with its TA and RV stores as the local configuration. The
 * expected claims come from the stores and from the token's own bytes read by the test
 * (independent of the parser): the instance and implementation ids of tastore.json, the
 * initial measurement of rvstore.json. Each broken part is refused with its own reason: a
 * flipped byte in either signature or either payload, another CPAK, an unknown instance, the
 * wrong challenge, unmatched reference values, every truncation, a nesting bomb. Tokens with a
 * wrong RAK binding need a forged platform signature: tests/integration/test_as_cca.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "as/evidence/cca_token.h"
#include "as/verifiers/verifier.h"
#include "b64.h"
#include "jose/jose.h"
#include "testlib.h"

static char dir[1024], tmp[256];
static const char *CHALLENGE =
    "57e979ae2618de0c1ab73144c440d741cf9236dc9d52ed190053382a4d190252f9f0370403c35dcb155fb4362d7"
    "3c66d5b0494bf939315d3dc52b8cdc8b85a96";
static const char *INST_ID = "0107060504030201000f0e0d0c0b0a090817161514131211101f1e1d1c1b1a1918";
static const char *IMPL_ID = "7f454c4602010100000000000000000003003e00010000005058000000000000";
static const char *RIM = "ae87fbf7f105e71a7827cb6f0896889c73d2beaf4830d4f9cb05e3e96c3fc7b4faa04c"
                         "af36a26bd094cf9c7b738617e4c189aaee184dedda5d7a03c39dbdac7c";

static uint8_t *token(size_t *n)
{
	return tl_slurp(dir, "cca-example-token.cbor", n);
}

static json_t *evidence_of(const uint8_t *t, size_t n)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_integer(t[i]));
	return json_pack("{s:o}", "token", arr);
}

/* Configure the verifier with a TA store and an RV store (paths). */
static int configure(const char *ta, const char *rv, struct err *err)
{
	json_t *vc = json_pack("{s:{s:s,s:s,s:s}}", "cca_verifier", "type", "local", "ta-store", ta,
	                       "rv-store", rv);
	int rc = verifier_find("cca")->init(vc, err);
	json_decref(vc);
	return rc;
}

static void configure_testdata(void)
{
	char ta[1200], rv[1200];
	struct err err = {0};
	snprintf(ta, sizeof(ta), "%s/tastore.json", dir);
	snprintf(rv, sizeof(rv), "%s/rvstore.json", dir);
	if (configure(ta, rv, &err) < 0)
		fail_msg("%s", err.msg);
}

/* verify the token bytes with report data hex rd (NULL = none); returns rc, claims in *out. */
static int verify(const uint8_t *t, size_t n, const char *rd, const uint8_t *idh, size_t idl,
                  json_t **claims, struct err *err)
{
	struct verify_result res = {0};
	uint8_t *rdb = NULL;
	size_t rdl = 0;
	if (rd != NULL)
		assert_int_equal(hex_decode(rd, strlen(rd), &rdb, &rdl), 0);
	json_t *ev = evidence_of(t, n);
	struct verify_request req = {.evidence = ev,
	                             .report_data = rdb,
	                             .report_data_len = rdl,
	                             .init_data_hash = idh,
	                             .init_data_hash_len = idl};
	int rc = verifier_find("cca")->verify(&req, &res, err);
	if (rc == 0) {
		assert_int_equal(res.n, 1);
		assert_string_equal(res.items[0].tee_class, "cpu");
		if (claims != NULL)
			*claims = json_incref(res.items[0].claims);
	}
	verify_result_clear(&res);
	json_decref(ev);
	free(rdb);
	return rc;
}

static void assert_refused(const uint8_t *t, size_t n, const char *rd, const char *reason)
{
	struct err err = {0};
	assert_int_equal(verify(t, n, rd, NULL, 0, NULL, &err), -1);
	if (strstr(err.msg, reason) == NULL)
		fail_msg("refused with \"%s\", expected \"%s\"", err.msg, reason);
}

/* Offset of the byte pattern (hex) in the token. */
static size_t find(const uint8_t *t, size_t n, const char *hex)
{
	uint8_t *p;
	size_t pl;
	assert_int_equal(hex_decode(hex, strlen(hex), &p, &pl), 0);
	for (size_t i = 0; i + pl <= n; i++)
		if (memcmp(t + i, p, pl) == 0) {
			free(p);
			return i;
		}
	free(p);
	fail_msg("pattern %s not in the token", hex);
	return 0;
}

static char *b64_of_hex(const char *hex)
{
	uint8_t *p;
	size_t pl;
	assert_int_equal(hex_decode(hex, strlen(hex), &p, &pl), 0);
	char *s = b64_encode(p, pl, B64_STD);
	free(p);
	return s;
}

static void test_parses_example_token(void **state)
{
	size_t n;
	uint8_t *t = token(&n);
	struct cca_token c;
	struct err err = {0};
	if (cca_token_parse(t, n, &c, &err) < 0)
		fail_msg("%s", err.msg);
	assert_string_equal(c.p.profile, "http://arm.com/CCA-SSD/1.0.0");
	assert_int_equal(c.p.lifecycle, 0x3003);
	assert_int_equal(c.p.n_sw, 13);
	assert_string_equal(c.p.sw[0].type, "RSE_BL1_2");
	assert_string_equal(c.p.hash_alg, "sha-256");
	assert_int_equal(c.p.challenge.len, 32);
	assert_null(c.r.profile);
	assert_string_equal(c.r.hash_alg, "sha-512");
	assert_string_equal(c.r.rak_hash_alg, "sha-256");
	assert_int_equal(c.r.rak.len, 97);
	assert_int_equal(c.r.rim.len, 64);
	assert_int_equal(cca_token_verify_realm(&c, &err), 0);
	cca_token_clear(&c);
	free(t);
}

static void test_verifies_example_token_with_claims(void **state)
{
	size_t n;
	uint8_t *t = token(&n);
	struct err err = {0};
	json_t *c = NULL;
	configure_testdata();
	if (verify(t, n, CHALLENGE, NULL, 0, &c, &err) < 0)
		fail_msg("%s", err.msg);
	char *inst = b64_of_hex(INST_ID), *impl = b64_of_hex(IMPL_ID), *rim = b64_of_hex(RIM),
	     *ch = b64_of_hex(CHALLENGE);
	json_t *p = json_object_get(c, "platform"), *r = json_object_get(c, "realm");
	assert_string_equal(json_string_value(json_object_get(p, "cca-platform-instance-id")),
	                    inst);
	assert_string_equal(json_string_value(json_object_get(p, "cca-platform-implementation-id")),
	                    impl);
	assert_int_equal(json_object_size(p), 2);
	assert_string_equal(json_string_value(json_object_get(r, "cca-realm-initial-measurement")),
	                    rim);
	assert_string_equal(json_string_value(json_object_get(r, "cca-realm-challenge")), ch);
	assert_string_equal(json_string_value(json_object_get(r, "cca-realm-hash-algo-id")),
	                    "sha-512");
	assert_int_equal(json_array_size(json_object_get(r, "cca-realm-extensible-measurements")),
	                 4);
	assert_int_equal(
	    strlen(json_string_value(json_object_get(r, "cca-realm-personalization-value"))), 88);
	assert_string_equal(json_string_value(json_object_get(c, "report_data")), CHALLENGE);
	assert_int_equal(strspn(json_string_value(json_object_get(c, "init_data")), "0"), 128);
	free(inst);
	free(impl);
	free(rim);
	free(ch);
	json_decref(c);
	free(t);
}

static void test_report_data_is_regularized_to_64(void **state)
{
	size_t n;
	uint8_t *t = token(&n);
	char longer[200];
	struct err err = {0};
	configure_testdata();
	snprintf(longer, sizeof(longer), "%sffff", CHALLENGE); /* 66 bytes: truncated to 64 */
	assert_int_equal(verify(t, n, longer, NULL, 0, NULL, &err), 0);
	free(t);
}

static void test_refuses_wrong_or_missing_challenge(void **state)
{
	size_t n;
	uint8_t *t = token(&n);
	char other[200];
	configure_testdata();
	snprintf(other, sizeof(other), "%s", CHALLENGE);
	other[0] = '6';
	assert_refused(t, n, other,
	               "realm token challenge does not match the expected report_data");
	assert_refused(t, n, NULL, "must be given the expected report data");
	free(t);
}

static void test_init_data_is_the_personalization_value(void **state)
{
	size_t n;
	uint8_t *t = token(&n);
	uint8_t perso[64] = {0};
	struct err err = {0};
	configure_testdata();
	assert_int_equal(verify(t, n, CHALLENGE, perso, 64, NULL, &err), 0);
	perso[63] = 1;
	assert_int_equal(verify(t, n, CHALLENGE, perso, 64, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "differs from the realm personalization value"));
	/* exact bytes: a 32-byte hash is not padded */
	memset(perso, 0, sizeof(perso));
	assert_int_equal(verify(t, n, CHALLENGE, perso, 32, NULL, &err), -1);
	free(t);
}

static void test_refuses_flipped_bytes(void **state)
{
	size_t n;
	uint8_t *t = token(&n);
	configure_testdata();
	/* platform payload: the first software component's measurement */
	size_t at = find(t, n, "9a271f2a916b0b6e");
	t[at] ^= 1;
	assert_refused(t, n, CHALLENGE, "CCA platform token not signed by the CPAK");
	t[at] ^= 1;
	/* platform signature: the byte before the realm entry (key 44241, bstr of 707) */
	at = find(t, n, "19acd15902c3");
	t[at - 1] ^= 1;
	assert_refused(t, n, CHALLENGE, "CCA platform token not signed by the CPAK");
	t[at - 1] ^= 1;
	/* realm payload: the initial measurement */
	at = find(t, n, "ae87fbf7f105e71a");
	t[at + 3] ^= 0x80;
	assert_refused(t, n, CHALLENGE, "CCA realm token not signed by its realm attestation key");
	t[at + 3] ^= 0x80;
	/* realm signature: the last byte of the token */
	t[n - 1] ^= 1;
	assert_refused(t, n, CHALLENGE, "CCA realm token not signed by its realm attestation key");
	t[n - 1] ^= 1;
	/* the RAK itself: it no longer hashes to the platform challenge (and is likely off
	 * the curve); refused either way before any claim is made */
	at = find(t, n, "0476f988091be585");
	t[at + 96] ^= 1;
	assert_refused(t, n, CHALLENGE, "CCA realm token");
	free(t);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_refuses_other_cpak_and_unknown_instance(void **state)
{
	size_t n;
	uint8_t *t = token(&n);
	char ta[1200], rv[1200];
	struct err err = {0};
	EVP_PKEY *k = EVP_EC_gen("P-384");
	json_t *jwk = jwk_from_pkey(k, 0, &err);
	assert_non_null(jwk);
	json_t *store = json_pack("[{s:O,s:s,s:s}]", "pkey", jwk, "implementation-id", IMPL_ID,
	                          "instance-id", INST_ID);
	char *s = json_dumps(store, 0);
	snprintf(ta, sizeof(ta), "%s/ta-other.json", tmp);
	snprintf(rv, sizeof(rv), "%s/rvstore.json", dir);
	write_file(ta, s);
	free(s);
	if (configure(ta, rv, &err) < 0)
		fail_msg("%s", err.msg);
	assert_refused(t, n, CHALLENGE,
	               "CCA platform token not signed by the CPAK of its instance");
	/* the same key under another instance id: no CPAK for this platform */
	json_object_set_new(
	    json_array_get(store, 0), "instance-id",
	    json_string("01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
	                "ffffff"));
	s = json_dumps(store, 0);
	write_file(ta, s);
	free(s);
	if (configure(ta, rv, &err) < 0)
		fail_msg("%s", err.msg);
	assert_refused(t, n, CHALLENGE, "has no CPAK in the trust anchor store");
	json_decref(store);
	json_decref(jwk);
	EVP_PKEY_free(k);
	free(t);
}

/* The RV store with one substitution, then the expected refusal. */
static void rv_refusal(const char *from, const char *to, const char *reason)
{
	size_t n, rl;
	uint8_t *t = token(&n);
	char *rv = (char *)tl_slurp(dir, "rvstore.json", &rl), *p = strstr(rv, from);
	char ta[1200], path[1200];
	struct err err = {0};
	assert_non_null(p);
	assert_int_equal(strlen(from), strlen(to));
	memcpy(p, to, strlen(to));
	snprintf(path, sizeof(path), "%s/rv-changed.json", tmp);
	snprintf(ta, sizeof(ta), "%s/tastore.json", dir);
	write_file(path, rv);
	if (configure(ta, path, &err) < 0)
		fail_msg("%s", err.msg);
	assert_refused(t, n, CHALLENGE, reason);
	free(rv);
	free(t);
}

static void test_refuses_unmatched_reference_values(void **state)
{
	rv_refusal("\"measurement-value\": \"9a271f2a", "\"measurement-value\": \"9a271f2b",
	           "CCA platform appraisal: no reference value");
	rv_refusal("\"platform-configuration\": \"cfcfcfcf\"",
	           "\"platform-configuration\": \"cfcfcfce\"",
	           "CCA platform appraisal: no reference value");
	rv_refusal("\"initial-measurement\": \"ae87", "\"initial-measurement\": \"ae88",
	           "CCA realm appraisal: no reference value");
	rv_refusal("\"rak-hash-algorithm\": \"sha-256\"", "\"rak-hash-algorithm\": \"sha-384\"",
	           "CCA realm appraisal: no reference value");
}

static void test_refuses_every_truncation(void **state)
{
	size_t n;
	uint8_t *t = token(&n);
	struct cca_token c;
	struct err err = {0};
	for (size_t k = 0; k < n; k++) {
		uint8_t *cut = malloc(k ? k : 1);
		memcpy(cut, t, k);
		if (cca_token_parse(cut, k, &c, &err) == 0)
			fail_msg("a token cut to %zu bytes parsed", k);
		cca_token_clear(&c);
		free(cut);
	}
	configure_testdata();
	assert_refused(t, n - 1, CHALLENGE,
	               "CBOR: a string declares 707 bytes but only 706 remain");
	free(t);
}

static void test_refuses_nesting_bomb_and_wrong_shapes(void **state)
{
	size_t depth = 10000, n = 3 + depth;
	uint8_t *b = calloc(1, n);
	struct err err = {0};
	struct cca_token c;
	b[0] = 0xd9, b[1] = 0x01, b[2] = 0x8f; /* tag 399 */
	memset(b + 3, 0x81, depth - 1);        /* [[[[...]]]] */
	b[n - 1] = 0x80;
	assert_int_equal(cca_token_parse(b, n, &c, &err), -1);
	assert_non_null(strstr(err.msg, "CBOR: items nest deeper than"));
	cca_token_clear(&c);
	configure_testdata();
	assert_refused(b, n, CHALLENGE, "CBOR: items nest deeper than");
	free(b);

	const uint8_t untagged[] = {0xa0}, other_tag[] = {0xd9, 0x01, 0x90, 0xa0},
	              one_entry[] = {0xd9, 0x01, 0x8f, 0xa1, 0x19, 0xac, 0xca, 0x40},
	              stranger[] = {0xd9, 0x01, 0x8f, 0xa2, 0x01, 0x40, 0x02, 0x40};
	assert_refused(untagged, sizeof(untagged), CHALLENGE, "not a CCA token collection");
	assert_refused(other_tag, sizeof(other_tag), CHALLENGE, "not a CCA token collection");
	assert_refused(one_entry, sizeof(one_entry), CHALLENGE, "not a map of two tokens");
	assert_refused(stranger, sizeof(stranger), CHALLENGE, "an entry other than the platform");
	/* the CMW form (tag 907) wants [263, bytes] entries */
	const uint8_t cmw_bare[] = {0xd9, 0x03, 0x8b, 0xa2, 0x19, 0xac, 0xca,
	                            0x41, 0x00, 0x19, 0xac, 0xd1, 0x41, 0x00};
	assert_refused(cmw_bare, sizeof(cmw_bare), CHALLENGE, "is not a [263, token] pair");
}

static void test_refuses_bad_evidence_and_config(void **state)
{
	struct verify_result res = {0};
	struct err err = {0};
	json_t *ev = json_pack("{s:[i,i]}", "token", 217, 256);
	uint8_t rd[64] = {0};
	struct verify_request req = {.evidence = ev, .report_data = rd, .report_data_len = 64};
	configure_testdata();
	assert_int_equal(verifier_find("cca")->verify(&req, &res, &err), -1);
	assert_non_null(strstr(err.msg, "`token`[1] is not a byte"));
	json_decref(ev);
	json_t *vc = json_pack("{s:{s:s,s:s}}", "cca_verifier", "type", "remote", "address",
	                       "veraison.example");
	assert_int_equal(verifier_find("cca")->init(vc, &err), -1);
	assert_non_null(strstr(err.msg, "a remote cca-verifier needs an http(s) `address`"));
	json_decref(vc);
	vc = json_pack("{s:{s:s}}", "cca_verifier", "type", "nitro");
	assert_int_equal(verifier_find("cca")->init(vc, &err), -1);
	assert_non_null(strstr(err.msg, "cca-verifier type nitro is not local or remote"));
	json_decref(vc);
	/* a failed init leaves no half configuration: verify refuses */
	ev = json_pack("{s:[i]}", "token", 0);
	req.evidence = ev;
	assert_int_equal(verifier_find("cca")->verify(&req, &res, &err), -1);
	assert_non_null(strstr(err.msg, "no CCA verifier is configured"));
	json_decref(ev);
}

int main(void)
{
	tl_testdata_dir(dir, sizeof(dir), "evidence/cca/trustee");
	snprintf(tmp, sizeof(tmp), "/tmp/test_cca.%d", (int)getpid());
	if (mkdir(tmp, 0700) != 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parses_example_token),
	    cmocka_unit_test(test_verifies_example_token_with_claims),
	    cmocka_unit_test(test_report_data_is_regularized_to_64),
	    cmocka_unit_test(test_refuses_wrong_or_missing_challenge),
	    cmocka_unit_test(test_init_data_is_the_personalization_value),
	    cmocka_unit_test(test_refuses_flipped_bytes),
	    cmocka_unit_test(test_refuses_other_cpak_and_unknown_instance),
	    cmocka_unit_test(test_refuses_unmatched_reference_values),
	    cmocka_unit_test(test_refuses_every_truncation),
	    cmocka_unit_test(test_refuses_nesting_bomb_and_wrong_shapes),
	    cmocka_unit_test(test_refuses_bad_evidence_and_config),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	tl_rm_rf(tmp);
	return rc;
}
