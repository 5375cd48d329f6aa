/*
 * test_rvps_extractors: the corim and swid extractors and the "extractors" config, on the
 * public test data (../shared/testdata/rvps, evidence/nvidia/nvtrust): Trustee's own inputs
 * give Trustee's names and values, Veraison's signed CoRIMs register with their key at a
 * time inside their validity and are refused on today's clock, with another key, with a
 * flipped byte or unsigned when a signature is required; malformed CBOR is refused with its
 * reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "cborx.h"
#include "kv/kv.h"
#include "rvps/extractors.h"
#include "rvps/extractors/swid.h"
#include "rvps/rvps.h"
#include "testlib.h"

#define RV_NAME "ACME/RoadRunner/31fb5abf-023e-4992-aa4e-95f9c1503bfa/digests"
#define RV_LAST "[\"a3a5e715f0cc574a73c3f9bebb6bc24f32ffd5b67b387244c2c909da779a1478\"]"
#define PINNED "\"verification_time\":\"2025-06-01T00:00:00Z\""

static char veraison[1024], trustee_corim[1024];
static char key_jwk[1200];

static char *b64_file(const char *dir, const char *rel, const uint8_t *edit, size_t at)
{
	size_t len = 0;
	uint8_t *buf = tl_slurp(dir, rel, &len);
	char *s;

	if (edit != NULL) {
		assert_true(at < len);
		buf[at] ^= *edit;
	}
	s = b64_encode(buf, len, B64_STD);
	free(buf);
	assert_non_null(s);
	return s;
}

/* Runs `type` with the config text on the payload; returns the values or NULL (err set). */
static json_t *run(const char *config, const char *type, const char *payload, json_t *prov,
                   struct err *e)
{
	json_error_t jerr;
	json_t *cfg = config ? json_loads(config, 0, &jerr) : NULL;
	struct rvps_extractor_set *s;
	json_t *out = NULL;

	if (config != NULL && cfg == NULL)
		fail_msg("bad test config %s: %s", config, jerr.text);
	s = rvps_extractor_set_new(cfg, e);
	json_decref(cfg);
	assert_non_null(s);
	if (rvps_extractor_set_extract(s, type, payload, strlen(payload), &out, prov, e) < 0)
		out = NULL;
	rvps_extractor_set_free(s);
	return out;
}

static void assert_value(json_t *values, const char *name, const char *want)
{
	char *got;

	assert_non_null(values);
	got = json_dumps(json_object_get(values, name), JSON_COMPACT | JSON_ENCODE_ANY);
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static char *signed_config(const char *extra)
{
	static char buf[3000];
	snprintf(buf, sizeof(buf),
	         "{%s\"extractors\":{\"corim_extractor\":{\"trusted_keys\":[\"%s\"]%s}}}", extra,
	         key_jwk, "");
	return buf;
}

static void test_corim_trustee_input_gives_trustees_name_and_value(void **state)
{
	char *p = b64_file(trustee_corim, "unsigned-example-corim.cbor", NULL, 0);
	struct err e;
	json_t *v = run(NULL, "corim", p, NULL, &e);

	if (v == NULL)
		fail_msg("%s", e.msg);
	assert_int_equal(json_object_size(v), 1);
	assert_value(v, RV_NAME, RV_LAST);
	json_decref(v);
	free(p);
}

static void test_corim_veraison_unsigned_cases(void **state)
{
	static const char *const same[] = {"unsigned-good-corim.cbor",
	                                   "unsigned-example-corim.cbor",
	                                   "unsigned-corim-with-extensions.cbor"};
	struct err e;

	for (size_t i = 0; i < 3; i++) {
		char *p = b64_file(veraison, same[i], NULL, 0);
		json_t *v = run(NULL, "corim", p, NULL, &e);
		if (v == NULL)
			fail_msg("%s: %s", same[i], e.msg);
		assert_int_equal(json_object_size(v), 1);
		assert_value(v, RV_NAME, RV_LAST);
		json_decref(v);
		free(p);
	}
	/* corim-roles: one reference triple whose only measurement is a version: no value */
	char *p = b64_file(veraison, "corim-roles.cbor", NULL, 0);
	json_t *v = run(NULL, "corim", p, NULL, &e);
	if (v == NULL)
		fail_msg("corim-roles: %s", e.msg);
	assert_int_equal(json_object_size(v), 0);
	json_decref(v);
	free(p);
	/* the diag-built cases parse */
	static const char *const parse[] = {"corim-1.cbor", "corim-2.cbor", "corim-design-cd.cbor",
	                                    "corim-firmware-cd.cbor"};
	for (size_t i = 0; i < 4; i++) {
		p = b64_file(veraison, parse[i], NULL, 0);
		v = run(NULL, "corim", p, NULL, &e);
		if (v == NULL)
			fail_msg("%s: %s", parse[i], e.msg);
		json_decref(v);
		free(p);
	}
}

static void test_corim_signed_registers_at_pinned_time(void **state)
{
	static const char *const files[] = {"signed-good-corim.cbor", "signed-example-corim.cbor",
	                                    "signed-corim-with-extensions.cbor"};
	struct err e;

	for (size_t i = 0; i < 3; i++) {
		char *p = b64_file(veraison, files[i], NULL, 0);
		json_t *prov = json_object();
		json_t *v = run(signed_config(PINNED ","), "corim", p, prov, &e);

		if (v == NULL)
			fail_msg("%s: %s", files[i], e.msg);
		assert_value(v, RV_NAME, RV_LAST);
		assert_string_equal(json_string_value(json_object_get(prov, "signer")),
		                    "ACME Ltd signing key");
		assert_string_equal(json_string_value(json_object_get(prov, "signature_alg")),
		                    "ES256");
		assert_string_equal(json_string_value(json_object_get(prov, "not_after")),
		                    "2025-12-31T00:00:00Z");
		assert_int_equal(
		    strncmp(json_string_value(json_object_get(prov, "signer_key")), "sha256:", 7),
		    0);
		json_decref(prov);
		json_decref(v);
		free(p);
	}
}

static void test_corim_signed_inside_tag_502(void **state)
{
	size_t len = 0;
	uint8_t *raw = tl_slurp(veraison, "signed-good-corim.cbor", &len), *w = malloc(len + 3);
	struct err e;
	char *p;
	json_t *v;

	assert_non_null(w);
	memcpy(w, "\xd9\x01\xf6", 3);
	memcpy(w + 3, raw, len);
	p = b64_encode(w, len + 3, B64_STD);
	v = run(signed_config(PINNED ","), "corim", p, NULL, &e);
	if (v == NULL)
		fail_msg("%s", e.msg);
	assert_value(v, RV_NAME, RV_LAST);
	json_decref(v);
	/* and the bare array inside 502, without its own tag 18 */
	memcpy(w + 3, raw + 1, len - 1);
	free(p);
	p = b64_encode(w, len + 2, B64_STD);
	v = run(signed_config(PINNED ","), "corim", p, NULL, &e);
	if (v == NULL)
		fail_msg("%s", e.msg);
	json_decref(v);
	free(p);
	free(w);
	free(raw);
}

static void test_corim_signed_refused_on_todays_clock(void **state)
{
	char *p = b64_file(veraison, "signed-good-corim.cbor", NULL, 0);
	struct err e;

	assert_null(run(signed_config(""), "corim", p, NULL, &e));
	assert_non_null(strstr(e.msg, "expired at 2025-12-31T00:00:00Z"));
	/* and before its validity began */
	assert_null(run(signed_config("\"verification_time\":\"2021-12-30T23:59:59Z\","), "corim",
	                p, NULL, &e));
	assert_non_null(strstr(e.msg, "not valid before 2021-12-31T00:00:00Z"));
	free(p);
}

static void test_corim_signed_refused_with_another_key(void **state)
{
	char path[] = "/tmp/test_corim_keyXXXXXX";
	int fd = mkstemp(path);
	EVP_PKEY *k = EVP_EC_gen("P-256");
	FILE *f = fdopen(fd, "w");
	char cfg[2000], *p = b64_file(veraison, "signed-good-corim.cbor", NULL, 0);
	struct err e;

	assert_non_null(k);
	assert_non_null(f);
	assert_int_equal(PEM_write_PUBKEY(f, k), 1);
	fclose(f);
	snprintf(cfg, sizeof(cfg),
	         "{" PINNED ",\"extractors\":{\"corim_extractor\":{\"trusted_keys\":[\"%s\"]}}}",
	         path);
	assert_null(run(cfg, "corim", p, NULL, &e));
	assert_non_null(strstr(e.msg, "does not verify with any of the 1 trusted keys"));
	/* no trusted key at all */
	assert_null(run("{" PINNED "}", "corim", p, NULL, &e));
	assert_non_null(strstr(e.msg, "needs extractors.corim_extractor.trusted_keys"));
	/* a P-384 key pins ES384: an ES256 signature is not even tried with it */
	EVP_PKEY_free(k);
	k = EVP_EC_gen("P-384");
	f = fopen(path, "w");
	assert_int_equal(PEM_write_PUBKEY(f, k), 1);
	fclose(f);
	assert_null(run(cfg, "corim", p, NULL, &e));
	assert_non_null(strstr(e.msg, "no trusted key is for ES256"));
	EVP_PKEY_free(k);
	unlink(path);
	free(p);
}

static void test_corim_signed_refused_with_a_flipped_byte(void **state)
{
	size_t len = 0;
	uint8_t *raw = tl_slurp(veraison, "signed-good-corim.cbor", &len);
	const uint8_t bit = 0x01;
	struct err e;
	free(raw);
	/* one byte in the payload (just before the 64-byte signature and its 2-byte head) and
	 * one in the signature */
	size_t at[] = {len - 64 - 2 - 10, len - 5};
	for (size_t i = 0; i < 2; i++) {
		char *p = b64_file(veraison, "signed-good-corim.cbor", &bit, at[i]);
		assert_null(run(signed_config(PINNED ","), "corim", p, NULL, &e));
		assert_non_null(strstr(e.msg, "does not verify"));
		free(p);
	}
}

static void test_corim_unsigned_refused_when_signature_required(void **state)
{
	char cfg[2000], *p = b64_file(trustee_corim, "unsigned-example-corim.cbor", NULL, 0);
	struct err e;

	snprintf(cfg, sizeof(cfg),
	         "{\"extractors\":{\"corim_extractor\":{\"trusted_keys\":[\"%s\"],"
	         "\"require_signature\":true}}}",
	         key_jwk);
	assert_null(run(cfg, "corim", p, NULL, &e));
	assert_non_null(strstr(e.msg, "an unsigned CoRIM is refused"));
	free(p);
}

static void test_corim_malformed_cbor_refused_with_reason(void **state)
{
	static const struct {
		const char *bytes;
		size_t len;
		const char *why;
	} cases[] = {
	    {"\xd9\x01\xf5\x9b\xff\xff\xff\xff\xff\xff\xff\xff", 12, "declares"},
	    {"\xd9\x01\xf5\x5a\x7f\xff\xff\xff\x00", 9, "declares 2147483647 bytes"},
	    {"\xd9\x01\xf5\xbb\x00\x00\x00\x01\x00\x00\x00\x00", 12, "a map declares"},
	    {"\xd9\x01\xf5\xa0\x00", 5, "1 bytes follow"},
	    {"\xd9\x01\xf5\x7f\x61\x61\xff", 7, "indefinite-length strings"},
	    {"\xd9\x01\xf5\xff", 4, "break byte"},
	    {"\xd9\x01\xf5\x1c", 4, "reserved"},
	    {"\xd9\x01\xf5\xa0", 4, "no tags array"},
	    {"\xd9\x01\xf4\xd9\x01\xf4", 6, "CBOR: no data"},
	    {"\xd9\x01\xf5\xd4\x00", 5, "tag 20 at byte 3 is not supported"},
	    {"\xd2\x84\x40\xa0\xf6\x40", 6, "detached"},
	};
	struct err e;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *p = b64_encode((const uint8_t *)cases[i].bytes, cases[i].len, B64_STD);
		assert_null(run(NULL, "corim", p, NULL, &e));
		if (strstr(e.msg, cases[i].why) == NULL)
			fail_msg("case %zu: \"%s\" does not say \"%s\"", i, e.msg, cases[i].why);
		free(p);
	}
	/* a nesting bomb: 100000 one-element arrays */
	size_t n = 100003;
	uint8_t *bomb = malloc(n + 1);
	memcpy(bomb, "\xd9\x01\xf5", 3);
	memset(bomb + 3, 0x81, n - 3);
	bomb[n] = 0;
	char *p = b64_encode(bomb, n + 1, B64_STD);
	assert_null(run(NULL, "corim", p, NULL, &e));
	assert_non_null(strstr(e.msg, "nest deeper than 32"));
	free(p);
	free(bomb);
	assert_null(run(NULL, "corim", "!!!", NULL, &e));
	assert_non_null(strstr(e.msg, "not valid standard base64"));
}

static void test_cborx_check_limits(void **state)
{
	struct err e = {0};
	uint8_t deep[40];

	memset(deep, 0x81, sizeof(deep));
	deep[32] = 0x00; /* 32 arrays then an integer: depth 32 is the limit */
	assert_int_equal(cborx_check(deep, 33, &e), 0);
	deep[32] = 0x81;
	deep[33] = 0x00;
	assert_int_equal(cborx_check(deep, 34, &e), -1);
	assert_int_equal(cborx_check((const uint8_t *)"\x9f\x01\x02\xff", 4, &e), 0);
	assert_int_equal(cborx_check((const uint8_t *)"\xbf\x01\xff", 3, &e), -1);
	assert_non_null(strstr(e.msg, "key without a value"));
	assert_int_equal(cborx_check((const uint8_t *)"\xf8\x10", 2, &e), -1);
	assert_int_equal(cborx_check(NULL, 0, &e), -1);
}

static void test_corim_duplicate_map_key_refused(void **state)
{
	/* 501({1: [], 1: []}) */
	char *p = b64_encode((const uint8_t *)"\xd9\x01\xf5\xa2\x01\x80\x01\x80", 8, B64_STD);
	struct err e;

	assert_null(run(NULL, "corim", p, NULL, &e));
	assert_non_null(strstr(e.msg, "appears twice"));
	free(p);
}

static void test_config_keys(void **state)
{
	struct err e;
	json_error_t jerr;
	static const struct {
		const char *cfg, *why;
	} bad[] = {
	    {"{\"extractors\":{\"corim_extractor\":{\"trusted_key\":[]}}}",
	     "corim_extractor has no option \"trusted_key\""},
	    {"{\"extractors\":{\"corim_extractor\":{\"require_signature\":true}}}",
	     "require_signature needs at least one of trusted_keys"},
	    {"{\"extractors\":{\"corim_extractor\":{\"require_signature\":\"yes\"}}}",
	     "must be true or false"},
	    {"{\"extractors\":{\"corim_extractor\":{\"trusted_keys\":[\"/nonexistent.pem\"]}}}",
	     "/nonexistent.pem"},
	    {"{\"extractors\":{\"sample_extractor\":{\"enabled\":1}}}", "must be true or false"},
	    {"{\"extractors\":[]}", "\"extractors\" must be an object"},
	    {"{\"verification_time\":\"2025-06-01\"}", "verification_time must be an RFC 3339"},
	    {"{\"verification_time\":\"2025-02-30T00:00:00Z\"}", "verification_time must be"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *cfg = json_loads(bad[i].cfg, 0, &jerr);
		assert_non_null(cfg);
		assert_null(rvps_extractor_set_new(cfg, &e));
		if (strstr(e.msg, bad[i].why) == NULL)
			fail_msg("%s: \"%s\" does not say \"%s\"", bad[i].cfg, e.msg, bad[i].why);
		json_decref(cfg);
		/* the RVPS refuses to start on it */
		cfg = json_loads(bad[i].cfg, 0, &jerr);
		assert_null(rvps_new(cfg, &e));
		json_decref(cfg);
	}
	/* an extractor this build lacks (in-toto) is ignored; Trustee's empty swid object too */
	json_t *ok = json_loads("{\"extractors\":{\"in_toto_extractor\":{\"trusted_keys\":[]},"
	                        "\"sample_extractor\":{\"enabled\":true}}}",
	                        0, &jerr);
	struct rvps_extractor_set *s = rvps_extractor_set_new(ok, &e);
	assert_non_null(s);
	rvps_extractor_set_free(s);
	json_decref(ok);
}

static void test_rfc3339(void **state)
{
	time_t t;

	assert_int_equal(rvps_parse_rfc3339("2025-06-01T00:00:00Z", &t), 0);
	assert_int_equal(t, 1748736000);
	assert_int_equal(rvps_parse_rfc3339("2025-06-01T02:00:00.5+02:00", &t), 0);
	assert_int_equal(t, 1748736000);
	assert_int_equal(rvps_parse_rfc3339("2025-06-01T00:00:00", &t), -1);
	assert_int_equal(rvps_parse_rfc3339("2025-06-01T00:00:00Zx", &t), -1);
	assert_int_equal(rvps_parse_rfc3339("2025-13-01T00:00:00Z", &t), -1);
}

static void test_sample_extractor_can_be_disabled(void **state)
{
	struct err e;
	json_t *v;

	v = run("{\"extractors\":{\"sample_extractor\":{\"enabled\":false}}}", "sample",
	        "e30=", NULL, &e);
	assert_null(v);
	assert_non_null(strstr(e.msg, "sample extractor: disabled by the RVPS configuration"));
	v = run("{}", "sample", "e30=", NULL, &e);
	assert_non_null(v);
	json_decref(v);
}

/* Through the store: a refused message stores nothing; the pinned time reaches the rows. */
static void test_rvps_register_signed_corim_and_refusals_store_nothing(void **state)
{
	char *p = b64_file(veraison, "signed-good-corim.cbor", NULL, 0), *msg = NULL, *val = NULL;
	json_error_t jerr;
	json_t *cfg;
	struct rvps *r;
	struct err e;

	assert_true(
	    asprintf(&msg, "{\"version\":\"0.1.0\",\"type\":\"corim\",\"payload\":\"%s\"}", p) > 0);
	cfg = json_loads(signed_config(""), 0, &jerr);
	r = rvps_new(cfg, &e);
	json_decref(cfg);
	assert_non_null(r);
	assert_int_equal(rvps_register(r, msg, &e), -1);
	assert_int_equal(rvps_query(r, RV_NAME, &val, &e), 0);
	assert_null(val);
	assert_int_equal(rvps_query_provenance(r, RV_NAME, &val, &e), 0);
	assert_null(val);
	rvps_free(r);

	cfg = json_loads(signed_config(PINNED ","), 0, &jerr);
	r = rvps_new(cfg, &e);
	json_decref(cfg);
	assert_non_null(r);
	if (rvps_register(r, msg, &e) < 0)
		fail_msg("%s", e.msg);
	assert_int_equal(rvps_query(r, RV_NAME, &val, &e), 0);
	assert_string_equal(val, RV_LAST);
	free(val);
	assert_int_equal(rvps_query_provenance(r, RV_NAME, &val, &e), 0);
	assert_non_null(val);
	json_t *prov = json_loads(val, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(prov, "extractor")), "corim");
	assert_true(json_is_true(json_object_get(prov, "signed")));
	assert_string_equal(json_string_value(json_object_get(prov, "signer")),
	                    "ACME Ltd signing key");
	assert_string_equal(json_string_value(json_object_get(prov, "verified_at")),
	                    "2025-06-01T00:00:00Z");
	assert_int_equal(strlen(json_string_value(json_object_get(prov, "message_sha256"))), 64);
	json_decref(prov);
	free(val);
	rvps_free(r);
	free(msg);
	free(p);
}

/* Trustee's unsigned CoRIM with a rim-validity (key 4) {1: 1(not_after)} added. */
static char *with_rim_validity(uint32_t not_after)
{
	size_t len = 0;
	uint8_t *raw = tl_slurp(trustee_corim, "unsigned-example-corim.cbor", &len);
	uint8_t *w = malloc(len + 9);
	char *p;

	assert_non_null(w);
	assert_int_equal(raw[3], 0xa4); /* a map of four entries */
	memcpy(w, raw, len);
	w[3] = 0xa5;
	memcpy(w + len, "\x04\xa1\x01\xc1\x1a", 5);
	for (int i = 0; i < 4; i++)
		w[len + 5 + i] = (uint8_t)(not_after >> (24 - 8 * i));
	p = b64_encode(w, len + 9, B64_STD);
	free(w);
	free(raw);
	return p;
}

static void test_corim_rim_validity_checked_and_caps_expiration(void **state)
{
	char *p = with_rim_validity(1767139200), *msg = NULL; /* 2025-12-31T00:00:00Z */
	json_error_t jerr;
	struct err e;
	struct kv *kv;
	struct rvps *r;
	uint8_t *doc = NULL;
	size_t len = 0;
	json_t *cfg, *v;

	v = run(NULL, "corim", p, NULL, &e); /* today's clock: past the rim-validity */
	assert_null(v);
	assert_non_null(strstr(e.msg, "expired at 2025-12-31T00:00:00Z (rim-validity)"));
	kv = kv_open(NULL, &e);
	assert_non_null(kv);
	assert_true(asprintf(&msg, "{\"type\":\"corim\",\"payload\":\"%s\"}", p) > 0);
	/* at the pinned time it holds, and its end is what the RVPS takes as the expiration
	 * (test_signed_corim_expiration_is_its_not_after checks the stored document) */
	cfg = json_loads("{" PINNED "}", 0, &jerr);
	struct rvps_extractor_set *s = rvps_extractor_set_new(cfg, &e);
	json_t *prov = json_object();
	assert_int_equal(rvps_extractor_set_extract(s, "corim", p, strlen(p), &v, prov, &e), 0);
	assert_string_equal(json_string_value(json_object_get(prov, "not_after")),
	                    "2025-12-31T00:00:00Z");
	json_decref(v);
	json_decref(prov);
	rvps_extractor_set_free(s);
	json_decref(cfg);
	r = rvps_new_with_kv(kv, &e);
	assert_non_null(r);
	/* rvps_new_with_kv judges at the clock: the CoRIM is refused there */
	assert_int_equal(rvps_register(r, msg, &e), -1);
	rvps_free(r);
	free(msg);
	free(p);
	/* a validity ending in 2100 registers today, its expiration now + 12 months */
	p = with_rim_validity(4102444800u);
	assert_true(asprintf(&msg, "{\"type\":\"corim\",\"payload\":\"%s\"}", p) > 0);
	r = rvps_new_with_kv(kv, &e);
	if (rvps_register(r, msg, &e) < 0)
		fail_msg("%s", e.msg);
	assert_int_equal(kv_get(kv, "reference_value", RV_NAME, &doc, &len, &e), 0);
	assert_null(strstr((const char *)doc, "2100-"));
	free(doc);
	rvps_free(r);
	kv_close(kv);
	free(msg);
	free(p);
}

static void test_signed_corim_expiration_is_its_not_after(void **state)
{
	char *p = b64_file(veraison, "signed-good-corim.cbor", NULL, 0), *msg = NULL;
	char dir[] = "/tmp/test_rvps_expXXXXXX", cfgtext[4000], path[1200];
	json_error_t jerr;
	struct err e;
	size_t len = 0;
	uint8_t *doc;

	assert_non_null(mkdtemp(dir));
	snprintf(cfgtext, sizeof(cfgtext),
	         "{" PINNED ",\"storage\":{\"storage_type\":\"LocalFs\",\"backends\":{\"local_fs\":"
	         "{\"dir_path\":\"%s\"}}},\"extractors\":{\"corim_extractor\":{\"trusted_keys\":"
	         "[\"%s\"]}}}",
	         dir, key_jwk);
	json_t *cfg = json_loads(cfgtext, 0, &jerr);
	assert_non_null(cfg);
	struct rvps *r = rvps_new(cfg, &e);
	json_decref(cfg);
	assert_non_null(r);
	assert_true(asprintf(&msg, "{\"type\":\"corim\",\"payload\":\"%s\"}", p) > 0);
	if (rvps_register(r, msg, &e) < 0)
		fail_msg("%s", e.msg);
	rvps_free(r);
	snprintf(path, sizeof(path), "%s/reference_value", dir);
	doc = tl_slurp(
	    path, "ACME\\x2FRoadRunner\\x2F31fb5abf-023e-4992-aa4e-95f9c1503bfa\\x2Fdigests", &len);
	assert_non_null(strstr((const char *)doc, "\"expiration\":\"2025-12-31T00:00:00Z\""));
	free(doc);
	tl_rm_rf(dir);
	free(msg);
	free(p);
}

/* ---- swid ---- */

#define M12 "NVIDIA_Corporation.GPU.measurement_12"
#define M12_0                                                                                      \
	"758af96044c700f98a85347be27124d51c05b8784ba216b629b9aaab6d538c759aed9922a133e4ac473564d3" \
	"59b271d5"

static char swid_dir[1024], nvtrust[1024], rim_root[1200], other_root[1200];

/* The Trustee test RIM's XML text (decoded), NUL-terminated. */
static char *trustee_rim(void)
{
	size_t len = 0, xlen = 0;
	uint8_t *b64 = tl_slurp(swid_dir, "test-rim.b64", &len), *xml = NULL;

	assert_int_equal(b64_decode((const char *)b64, len, B64_STD, &xml, &xlen), 0);
	free(b64);
	uint8_t *z = realloc(xml, xlen + 1);
	if (z == NULL)
		free(xml);
	assert_non_null(z);
	z[xlen] = '\0';
	return (char *)z;
}

/* text with del bytes at `at` replaced by ins, malloc'd */
static char *splice(const char *text, const char *at, size_t del, const char *ins)
{
	size_t pre = (size_t)(at - text), n = strlen(text) - del + strlen(ins);
	char *o = malloc(n + 1);

	assert_non_null(o);
	memcpy(o, text, pre);
	strcpy(o + pre, ins);
	strcat(o, at + del);
	return o;
}

static char *b64_text(const char *t)
{
	char *s = b64_encode((const uint8_t *)t, strlen(t), B64_STD);
	assert_non_null(s);
	return s;
}

static char *swid_config(const char *extra, const char *root, int require)
{
	static char buf[3000];
	snprintf(buf, sizeof(buf),
	         "{%s\"extractors\":{\"swid_extractor\":{\"trust_anchors\":[\"%s\"],"
	         "\"require_signature\":%s}}}",
	         extra, root, require ? "true" : "false");
	return buf;
}

static void test_swid_trustee_input_gives_trustees_name_and_value(void **state)
{
	size_t len = 0;
	char *p = (char *)tl_slurp(swid_dir, "test-rim.b64", &len);
	struct err e;
	json_t *v = run("{\"extractors\":{\"swid_extractor\":{}}}", "swid", p, NULL, &e);

	if (v == NULL)
		fail_msg("%s", e.msg);
	/* Trustee's 9 names, and ours: the RIM's active measurements by its version */
	assert_int_equal(json_object_size(v), 10);
	json_t *m = json_object_get(v, M12);
	assert_int_equal(json_array_size(m), 3);
	assert_string_equal(json_string_value(json_array_get(m, 0)), M12_0);
	json_decref(v);
	free(p);
}

static void test_swid_signed_rims_verify_at_pinned_time(void **state)
{
	static const struct {
		const char *file;
		size_t names; /* Trustee's names + nvidia_rim/<product>/<version> */
		const char *by_version;
	} rims[] = {
	    {"1010_0200_882_96005E0001_test_no_gpu.swidtag", 10, "nvidia_rim/GH100/96.00.5e.00.01"},
	    {"Driver_RIM_test_no_gpu.swidtag", 21, "nvidia_rim/GH100/545.00"}};
	struct err e;

	for (size_t i = 0; i < 2; i++) {
		char *p = b64_file(nvtrust, rims[i].file, NULL, 0);
		json_t *prov = json_object();
		json_t *v = run(swid_config(PINNED ",", rim_root, 1), "swid", p, prov, &e);

		if (v == NULL)
			fail_msg("%s: %s", rims[i].file, e.msg);
		assert_int_equal(json_object_size(v), rims[i].names);
		assert_true(json_is_object(json_object_get(v, rims[i].by_version)));
		assert_non_null(strstr(json_string_value(json_object_get(prov, "signer")), "CN="));
		json_decref(v);
		json_decref(prov);
		free(p);
	}
	char *x = trustee_rim(), *p = b64_text(x);
	json_t *prov = json_object();
	json_t *v = run(swid_config(PINNED ",", rim_root, 1), "swid", p, prov, &e);
	if (v == NULL)
		fail_msg("test-rim: %s", e.msg);
	assert_string_equal(json_string_value(json_array_get(json_object_get(v, M12), 0)), M12_0);
	assert_non_null(json_object_get(prov, "signer_issuer"));
	json_decref(v);
	json_decref(prov);
	/* today's clock: the signer certificate expired on 2025-12-04 */
	assert_null(run(swid_config("", rim_root, 1), "swid", p, NULL, &e));
	assert_non_null(strstr(e.msg, "cannot be verified"));
	assert_non_null(strstr(e.msg, "certificate has expired"));
	/* another root */
	assert_null(run(swid_config(PINNED ",", other_root, 1), "swid", p, NULL, &e));
	assert_non_null(strstr(e.msg, "cannot be verified"));
	free(p);
	free(x);
}

static void test_swid_flipped_hash_refused(void **state)
{
	char *x = trustee_rim(), *at = strstr(x, M12_0), *y, *p;
	struct err e;

	assert_non_null(at);
	y = splice(x, at, 1, "8");
	p = b64_text(y);
	assert_null(run(swid_config(PINNED ",", rim_root, 1), "swid", p, NULL, &e));
	assert_non_null(strstr(e.msg, "does not verify"));
	free(p);
	free(y);
	free(x);
}

static void test_swid_signature_wrapping_refused(void **state)
{
	char *x = trustee_rim(), *sig = strstr(x, "<ds:Signature"), *end, *sig_text, *y, *z, *p;
	const char *open_end;
	struct err e;

	assert_non_null(sig);
	end = strstr(sig, "</ds:Signature>") + strlen("</ds:Signature>");
	sig_text = strndup(sig, (size_t)(end - sig));
	/* 1. a second Payload in a ds:Object of the Signature, which the digest leaves out */
	open_end = strstr(sig, "</ds:Signature>");
	y = splice(x, open_end, 0,
	           "<ds:Object><ns0:Payload><ns0:Resource type=\"Measurement\" index=\"12\" "
	           "xmlns:h=\"http://www.w3.org/2001/04/xmlenc#sha384\" h:Hash0=\"ff\"/>"
	           "</ns0:Payload></ds:Object>");
	p = b64_text(y);
	assert_null(run(swid_config(PINNED ",", rim_root, 0), "swid", p, NULL, &e));
	assert_non_null(strstr(e.msg, "exactly one Meta and one Payload"));
	free(p);
	free(y);
	/* 2. the Signature moved into the Payload */
	y = splice(x, sig, strlen(sig_text), "");
	z = splice(y, strstr(y, "</ns0:Payload>"), 0, sig_text);
	p = b64_text(z);
	assert_null(run(swid_config(PINNED ",", rim_root, 0), "swid", p, NULL, &e));
	assert_non_null(strstr(e.msg, "at most one ds:Signature"));
	free(p);
	free(z);
	/* 3. no signature at all, with require_signature */
	p = b64_text(y);
	assert_null(run(swid_config(PINNED ",", rim_root, 1), "swid", p, NULL, &e));
	assert_non_null(strstr(e.msg, "an unsigned RIM is refused"));
	free(p);
	/* 4. a second SoftwareIdentity wrapping the signed one */
	z = splice(x, x, 0,
	           "<SoftwareIdentity xmlns=\""
	           "http://standards.iso.org/iso/19770/-2/2015/schema.xsd"
	           "\">");
	free(y);
	y = splice(z, z + strlen(z), 0, "</SoftwareIdentity>");
	p = b64_text(y);
	assert_null(run(swid_config(PINNED ",", rim_root, 0), "swid", p, NULL, &e));
	assert_non_null(strstr(e.msg, "SoftwareIdentity"));
	free(p);
	free(y);
	free(z);
	free(sig_text);
	free(x);
}

static void test_swid_dtd_and_bad_xml_refused(void **state)
{
	static const struct {
		const char *xml, *why;
	} cases[] = {
	    {"<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;&a;\">]>"
	     "<l>&b;</l>",
	     "DTD"},
	    {"<!DOCTYPE x SYSTEM \"file:///etc/passwd\"><x/>", "DTD"},
	    {"<SoftwareIdentity", "not well-formed XML"},
	    {"<x/>", "not a SWID SoftwareIdentity"},
	    {"<SoftwareIdentity xmlns=\"http://standards.iso.org/iso/19770/-2/2015/schema.xsd\"/>",
	     "exactly one Meta and one Payload"},
	};
	struct err e;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *p = b64_text(cases[i].xml);
		assert_null(run(NULL, "swid", p, NULL, &e));
		if (strstr(e.msg, cases[i].why) == NULL)
			fail_msg("case %zu: \"%s\" does not say \"%s\"", i, e.msg, cases[i].why);
		free(p);
	}
	assert_null(run(NULL, "swid", "***", NULL, &e));
	assert_non_null(strstr(e.msg, "not valid standard base64"));
}

/* The name a RIM is stored under by version: product kept, version lower case, and nothing
 * that is not a plain name character. */
static void test_swid_rim_rv_name(void **state)
{
	char n[160];

	assert_int_equal(swid_rim_rv_name("GH100", "96.00.9F.00.01", n, sizeof(n)), 0);
	assert_string_equal(n, "nvidia_rim/GH100/96.00.9f.00.01");
	assert_int_equal(swid_rim_rv_name("GH100", "550.90.07", n, sizeof(n)), 0);
	assert_string_equal(n, "nvidia_rim/GH100/550.90.07");
	assert_int_equal(swid_rim_rv_name("GH100", "../x", n, sizeof(n)), -1);
	assert_int_equal(swid_rim_rv_name("GH/100", "1.0", n, sizeof(n)), -1);
	assert_int_equal(swid_rim_rv_name("GH100", "", n, sizeof(n)), -1);
	assert_int_equal(swid_rim_rv_name(NULL, "1.0", n, sizeof(n)), -1);
	assert_int_equal(swid_rim_rv_name("GH100", "1.0", n, 12), -1);
}

static void test_swid_config_keys(void **state)
{
	json_error_t jerr;
	struct err e;
	json_t *cfg = json_loads(
	    "{\"extractors\":{\"swid_extractor\":{\"require_signature\":true}}}", 0, &jerr);

	assert_null(rvps_extractor_set_new(cfg, &e));
	assert_non_null(strstr(e.msg, "require_signature needs at least one of trust_anchors"));
	json_decref(cfg);
	cfg = json_loads(
	    "{\"extractors\":{\"swid_extractor\":{\"trust_anchors\":[\"/nonexistent\"]}}}", 0,
	    &jerr);
	assert_null(rvps_extractor_set_new(cfg, &e));
	assert_non_null(strstr(e.msg, "/nonexistent"));
	json_decref(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_corim_trustee_input_gives_trustees_name_and_value),
	    cmocka_unit_test(test_corim_veraison_unsigned_cases),
	    cmocka_unit_test(test_corim_signed_registers_at_pinned_time),
	    cmocka_unit_test(test_corim_signed_inside_tag_502),
	    cmocka_unit_test(test_corim_signed_refused_on_todays_clock),
	    cmocka_unit_test(test_corim_signed_refused_with_another_key),
	    cmocka_unit_test(test_corim_signed_refused_with_a_flipped_byte),
	    cmocka_unit_test(test_corim_unsigned_refused_when_signature_required),
	    cmocka_unit_test(test_corim_malformed_cbor_refused_with_reason),
	    cmocka_unit_test(test_cborx_check_limits),
	    cmocka_unit_test(test_corim_duplicate_map_key_refused),
	    cmocka_unit_test(test_config_keys),
	    cmocka_unit_test(test_rfc3339),
	    cmocka_unit_test(test_sample_extractor_can_be_disabled),
	    cmocka_unit_test(test_rvps_register_signed_corim_and_refusals_store_nothing),
	    cmocka_unit_test(test_corim_rim_validity_checked_and_caps_expiration),
	    cmocka_unit_test(test_signed_corim_expiration_is_its_not_after),
	    cmocka_unit_test(test_swid_trustee_input_gives_trustees_name_and_value),
	    cmocka_unit_test(test_swid_signed_rims_verify_at_pinned_time),
	    cmocka_unit_test(test_swid_flipped_hash_refused),
	    cmocka_unit_test(test_swid_signature_wrapping_refused),
	    cmocka_unit_test(test_swid_dtd_and_bad_xml_refused),
	    cmocka_unit_test(test_swid_rim_rv_name),
	    cmocka_unit_test(test_swid_config_keys),
	};

	tl_testdata_dir(veraison, sizeof(veraison), "rvps/corim/veraison");
	tl_testdata_dir(trustee_corim, sizeof(trustee_corim), "rvps/corim/trustee");
	snprintf(key_jwk, sizeof(key_jwk), "%s/src/ec-p256.jwk", veraison);
	tl_testdata_dir(swid_dir, sizeof(swid_dir), "rvps/swid/trustee");
	tl_testdata_dir(nvtrust, sizeof(nvtrust), "evidence/nvidia/nvtrust");
	snprintf(rim_root, sizeof(rim_root), "%s/verifier_RIM_root.pem", nvtrust);
	snprintf(other_root, sizeof(other_root), "%s/verifier_device_root.pem", nvtrust);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
