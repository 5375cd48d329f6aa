/* The Sigstore and DSSE parsers and checks one behaviour at a time, each refusal with its
 * exact reason: DSSE envelopes and their PAE (the DSSE specification's own example), in-toto
 * statements, checkpoints, RFC 9162 inclusion proofs against a Merkle tree computed here
 * independently (the recursive MTH definition), trusted roots and bundles from Sigstore's
 * conformance cases, and identity matching on a real Fulcio certificate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "rvps/extractors.h"
#include "rvps/extractors/dsse.h"
#include "rvps/extractors/sigstore.h"
#include "testlib.h"

static char sigdir[1024];

#define ASSERT_REFUSED(call, reason)                                                               \
	do {                                                                                       \
		struct err e_ = {0};                                                               \
		assert_int_equal((call), -1);                                                      \
		if (strstr(e_.msg, (reason)) == NULL)                                              \
			fail_msg("reason \"%s\" lacks \"%s\"", e_.msg, (reason));                  \
	} while (0)
#define E (&e_)

static int dsse_of(const char *json, struct dsse_envelope *env, struct err *err)
{
	return dsse_parse((const uint8_t *)json, strlen(json), env, err);
}

static void test_dsse_pae_is_the_specifications_example(void **st)
{
	struct dsse_envelope env;
	struct err err;
	size_t len;
	uint8_t *pae;
	/* payload "hello world", type http://example.com/HelloWorld (DSSE protocol.md) */
	const char *j = "{\"payloadType\":\"http://example.com/HelloWorld\",\"payload\":"
	                "\"aGVsbG8gd29ybGQ=\",\"signatures\":[{\"sig\":\"AA==\"}]}";
	const char *want = "DSSEv1 29 http://example.com/HelloWorld 11 hello world";

	(void)st;
	assert_int_equal(dsse_of(j, &env, &err), 0);
	pae = dsse_pae(&env, &len);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(pae, want, len);
	free(pae);
	dsse_free(&env);
}

static void test_dsse_malformed_envelopes_refused(void **st)
{
	struct dsse_envelope env;

	(void)st;
	ASSERT_REFUSED(
	    dsse_of("{\"payloadType\":\"t\",\"payload\":\"\",\"signatures\":[]}", &env, E),
	    "DSSE envelope: no signatures");
	ASSERT_REFUSED(dsse_of("{\"payload\":\"\",\"signatures\":[{\"sig\":\"AA==\"}]}", &env, E),
	               "payloadType missing");
	ASSERT_REFUSED(dsse_of("{\"payloadType\":\"t\",\"payload\":\"!!\",\"signatures\":[{\"sig\":"
	                       "\"AA==\"}]}",
	                       &env, E),
	               "payload is not valid standard base64");
	ASSERT_REFUSED(
	    dsse_of("{\"payloadType\":\"t\",\"payload\":\"\",\"signatures\":[{\"s\":1}]}", &env, E),
	    "signature 0 has no \"sig\" string");
	ASSERT_REFUSED(dsse_of("{\"payloadType\":", &env, E), "DSSE envelope: not JSON");
	ASSERT_REFUSED(dsse_parse(NULL, 0, &env, E), "DSSE envelope: empty");
}

static void test_dsse_signature_checked_over_pae(void **st)
{
	EVP_PKEY *k = EVP_EC_gen("P-256"), *other = EVP_EC_gen("P-256");
	struct dsse_envelope env = {0};
	EVP_MD_CTX *mc = EVP_MD_CTX_new();
	uint8_t sig[128], *pae;
	size_t sl = sizeof(sig), pl;
	struct err err;

	(void)st;
	env.payload_type = strdup(INTOTO_PAYLOAD_TYPE);
	env.payload = (uint8_t *)strdup("{}");
	env.payload_len = 2;
	pae = dsse_pae(&env, &pl);
	assert_int_equal(EVP_DigestSignInit(mc, NULL, EVP_sha256(), NULL, k), 1);
	assert_int_equal(EVP_DigestSign(mc, sig, &sl, pae, pl), 1);
	env.sigs[0].sig = malloc(sl);
	memcpy(env.sigs[0].sig, sig, sl);
	env.sigs[0].len = sl;
	env.n_sigs = 1;
	assert_int_equal(dsse_verify_sig(&env, 0, k, &err), 0);
	ASSERT_REFUSED(dsse_verify_sig(&env, 0, other, E), "does not verify with the key");
	env.payload[0] = '[';
	ASSERT_REFUSED(dsse_verify_sig(&env, 0, k, E), "does not verify with the key");
	ASSERT_REFUSED(dsse_verify_sig(&env, 1, k, E), "no signature 1");
	free(pae);
	dsse_free(&env);
	EVP_MD_CTX_free(mc);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
}

static int stmt(const char *s, json_t **out, struct err *err)
{
	return intoto_statement_parse((const uint8_t *)s, strlen(s), out, err);
}

#define H64 "a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf"

static void test_intoto_subjects_become_values(void **st)
{
	json_t *v = NULL;
	struct err err;
	char *txt;

	(void)st;
	assert_int_equal(stmt("{\"_type\":\"https://in-toto.io/Statement/v1\",\"subject\":["
	                      "{\"name\":\"b\",\"digest\":{\"sha512\":\"" H64 H64
	                      "\",\"sha256\":\"" H64
	                      "\"}},{\"name\":\"a.txt\",\"digest\":{\"sha256\":\"" H64 "\"}}]}",
	                      &v, &err),
	                 0);
	txt = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(txt, "{\"a.txt\":[\"" H64 "\"],\"b\":[\"" H64 "\",\"" H64 H64 "\"]}");
	free(txt);
	json_decref(v);
}

static void test_intoto_bad_statements_refused(void **st)
{
	json_t *v = NULL;

	(void)st;
	ASSERT_REFUSED(stmt("{\"_type\":\"x\",\"subject\":[]}", &v, E), "_type is not");
	ASSERT_REFUSED(stmt("{\"_type\":\"https://in-toto.io/Statement/v1\"}", &v, E),
	               "no subject");
	ASSERT_REFUSED(
	    stmt("{\"_type\":\"https://in-toto.io/Statement/v1\",\"subject\":[{\"digest\":"
	         "{\"sha256\":\"" H64 "\"}}]}",
	         &v, E),
	    "subject 0 has no name");
	ASSERT_REFUSED(stmt("{\"_type\":\"https://in-toto.io/Statement/v1\",\"subject\":[{\"name\":"
	                    "\"a\",\"digest\":{}}]}",
	                    &v, E),
	               "subject 0 has no digest");
	ASSERT_REFUSED(stmt("{\"_type\":\"https://in-toto.io/Statement/v1\",\"subject\":[{\"name\":"
	                    "\"a\",\"digest\":{\"sha256\":\"abcd\"}}]}",
	                    &v, E),
	               "is not lowercase hex of the algorithm's length");
	ASSERT_REFUSED(stmt("{\"_type\":\"https://in-toto.io/Statement/v1\",\"subject\":[{\"name\":"
	                    "\"a\",\"digest\":{\"sha256\":\"" H64
	                    "\"}},{\"name\":\"a\",\"digest\":{"
	                    "\"sha256\":\"" H64 "\"}}]}",
	                    &v, E),
	               "subject \"a\" is listed twice");
	assert_null(v);
}

/* ---- Merkle trees: an independent recursive MTH (RFC 9162 §2.1.1) and audit paths ---- */

static void leaf_hash(int i, uint8_t out[32])
{
	uint8_t b[2] = {0, (uint8_t)i};

	EVP_Digest(b, 2, out, NULL, EVP_sha256(), NULL);
}

static void mth(int lo, int n, uint8_t out[32])
{
	uint8_t l[32], r[32], b[65];
	int k = 1;

	if (n == 1) {
		leaf_hash(lo, out);
		return;
	}
	while (k * 2 < n)
		k *= 2;
	mth(lo, k, l);
	mth(lo + k, n - k, r);
	b[0] = 1;
	memcpy(b + 1, l, 32);
	memcpy(b + 33, r, 32);
	EVP_Digest(b, 65, out, NULL, EVP_sha256(), NULL);
}

static size_t audit_path(int m, int lo, int n, uint8_t (*p)[32])
{
	int k = 1;
	size_t c;

	if (n == 1)
		return 0;
	while (k * 2 < n)
		k *= 2;
	if (m < k) {
		c = audit_path(m, lo, k, p);
		mth(lo + k, n - k, p[c]);
	} else {
		c = audit_path(m - k, lo + k, n - k, p);
		mth(lo, k, p[c]);
	}
	return c + 1;
}

static void test_merkle_inclusion_against_independent_tree(void **st)
{
	uint8_t root[32], leaf[32], path[16][32];
	struct err err;

	(void)st;
	for (int n = 1; n <= 17; n++) {
		mth(0, n, root);
		for (int m = 0; m < n; m++) {
			size_t c = audit_path(m, 0, n, path);

			leaf_hash(m, leaf);
			if (sigstore_merkle_verify(leaf, (uint64_t)m, (uint64_t)n,
			                           (const uint8_t(*)[32])path, c, root, &err) != 0)
				fail_msg("size %d index %d: %s", n, m, err.msg);
			if (c > 0) {
				path[c - 1][5] ^= 1;
				ASSERT_REFUSED(
				    sigstore_merkle_verify(leaf, (uint64_t)m, (uint64_t)n,
				                           (const uint8_t(*)[32])path, c, root, E),
				    "does not lead to the root hash");
				ASSERT_REFUSED(sigstore_merkle_verify(
				                   leaf, (uint64_t)m, (uint64_t)n,
				                   (const uint8_t(*)[32])path, c - 1, root, E),
				               "shorter than the tree is deep");
			}
		}
	}
	ASSERT_REFUSED(sigstore_merkle_verify(leaf, 5, 5, (const uint8_t(*)[32])path, 0, root, E),
	               "index is not inside the tree");
}

/* ---- checkpoints ---- */

static const char *CP =
    "rekor.sigstore.dev - 2605736670972794746\n75408393\n"
    "Fnnj13Uu1jdksPc4HZLapKX329dVlD5+MGNsiqBq1XM=\n\n"
    "\xe2\x80\x94 rekor.sigstore.dev wNI9ajBFAiBTyiBM9WtyOTgohje6QZ5rFGJUdMq7Wk3A6"
    "oThE98SUgIhAMvxDwa7FyqRqg+YV3rdPPrfS23w19iK+piMSGVOmP5w\n";

static int cp_of(const char *s, struct sigstore_checkpoint *cp, struct err *err)
{
	return sigstore_checkpoint_parse((const uint8_t *)s, strlen(s), cp, err);
}

static void test_checkpoint_parsed(void **st)
{
	struct sigstore_checkpoint cp;
	struct err err;

	(void)st;
	assert_int_equal(cp_of(CP, &cp, &err), 0);
	assert_string_equal(cp.origin, "rekor.sigstore.dev - 2605736670972794746");
	assert_int_equal(cp.size, 75408393);
	assert_int_equal(cp.n_sigs, 1);
	assert_string_equal(cp.sigs[0].name, "rekor.sigstore.dev");
	assert_int_equal(cp.sigs[0].hint[0], 0xc0);
	assert_int_equal(cp.signed_len, strstr(CP, "\n\n") + 1 - CP);
}

static void test_checkpoint_malformed_refused(void **st)
{
	struct sigstore_checkpoint cp;

	(void)st;
	ASSERT_REFUSED(cp_of("origin\n12\n", &cp, E), "no base64 root hash");
	ASSERT_REFUSED(cp_of("origin\nx\nFnnj13Uu1jdksPc4HZLapKX329dVlD5+MGNsiqBq1XM=\n\n", &cp, E),
	               "no tree size line");
	ASSERT_REFUSED(cp_of("o\n1\nFnnj13Uu1jdksPc4HZLapKX329dVlD5+MGNsiqBq1XM=\n", &cp, E),
	               "no blank line before the signatures");
	ASSERT_REFUSED(
	    cp_of("o\n1\nFnnj13Uu1jdksPc4HZLapKX329dVlD5+MGNsiqBq1XM=\n\n- n AAAAAAA=\n", &cp, E),
	    "does not start with an em dash");
	ASSERT_REFUSED(cp_of("o\n1\nFnnj13Uu1jdksPc4HZLapKX329dVlD5+MGNsiqBq1XM=\n\n", &cp, E),
	               "checkpoint: no signature");
	ASSERT_REFUSED(cp_of("o\n1\nFnnj13Uu1jdksPc4HZLapKX329dVlD5+MGNsiqBq1XM=", &cp, E),
	               "not ending in a newline");
}

/* ---- bundles and roots from the conformance cases ---- */

static struct sigstore_root *prod_root(void)
{
	size_t len;
	uint8_t *buf = tl_slurp(sigdir, "trusted_root.prod.json", &len);
	struct sigstore_root *r = NULL;
	struct err err;

	if (sigstore_root_parse(buf, len, &r, &err) != 0)
		fail_msg("prod root: %s", err.msg);
	free(buf);
	return r;
}

static int bundle_of(const char *rel, struct sigstore_bundle **b, struct err *err)
{
	size_t len;
	uint8_t *buf = tl_slurp(sigdir, rel, &len);
	int rc = sigstore_bundle_parse(buf, len, b, err);

	free(buf);
	return rc;
}

static void test_bundles_refused_by_the_parser(void **st)
{
	struct sigstore_bundle *b = NULL;

	(void)st;
	ASSERT_REFUSED(
	    bundle_of("bundle-verify/bundle-unknown-version_fail/bundle.sigstore.json", &b, E),
	    "unsupported mediaType");
	ASSERT_REFUSED(
	    bundle_of("bundle-verify/bundle-negative-log-index_fail/bundle.sigstore.json", &b, E),
	    "missing or negative log index");
	ASSERT_REFUSED(
	    bundle_of("bundle-verify/bundle-with-root-cert_fail/bundle.sigstore.json", &b, E),
	    "carries a root certificate");
	ASSERT_REFUSED(
	    bundle_of("bundle-verify/intoto-missing-inclusion-proof_fail/bundle.sigstore.json", &b,
	              E),
	    "has no inclusion proof");
	ASSERT_REFUSED(
	    bundle_of("bundle-verify/bundle-empty-certificate-chain_fail/bundle.sigstore.json", &b,
	              E),
	    "certificate chain is empty");
	assert_null(b);
}

static void test_root_without_log_start_refused(void **st)
{
	size_t len;
	uint8_t *buf = tl_slurp(
	    sigdir, "bundle-verify/trust-root-tlog-missing-validity-start_fail/trusted_root.json",
	    &len);
	struct sigstore_root *r = NULL;

	(void)st;
	ASSERT_REFUSED(sigstore_root_parse(buf, len, &r, E), "tlog 1 has no validFor.start");
	ASSERT_REFUSED(sigstore_root_parse(buf, 10, &r, E), "trusted root: not JSON");
	free(buf);
}

static void test_identity_and_issuer_matched(void **st)
{
	struct sigstore_root *root = prod_root();
	struct sigstore_bundle *b = NULL;
	struct sigstore_result res;
	struct sigstore_artifact art = {0};
	regex_t good, bad;
	struct sigstore_identity ids[3] = {
	    {.issuer = "https://token.actions.githubusercontent.com", .san_regex = &bad},
	    {.issuer = "https://accounts.google.com", .san_regex = &good},
	    {.issuer = "https://token.actions.githubusercontent.com", .san_regex = &good}};
	struct sigstore_policy pol = {.ids = ids, .n_ids = 2};
	struct err err;
	size_t len;
	uint8_t *a = tl_slurp(sigdir, "a.txt", &len);

	(void)st;
	assert_int_equal(regcomp(&good, "^https://github.com/sigstore-conformance/", REG_EXTENDED),
	                 0);
	assert_int_equal(regcomp(&bad, "^https://github.com/other/", REG_EXTENDED), 0);
	art.data = a;
	art.len = len;
	assert_int_equal(bundle_of("bundle-verify/happy-path-v0.3/bundle.sigstore.json", &b, &err),
	                 0);
	ASSERT_REFUSED(sigstore_verify(root, b, &pol, &art, time(NULL), &res, E),
	               "matches no trusted identity");
	pol.n_ids = 3;
	if (sigstore_verify(root, b, &pol, &art, time(NULL), &res, &err) != 0)
		fail_msg("%s", err.msg);
	assert_string_equal(res.issuer, "https://token.actions.githubusercontent.com");
	assert_int_equal(res.signed_at, 1710869186);
	/* a time before the integrated time is "the future" for it */
	ASSERT_REFUSED(sigstore_verify(root, b, &pol, &art, 1700000000, &res, E),
	               "a verified time lies in the future");
	ASSERT_REFUSED(sigstore_verify(root, b, &pol, NULL, time(NULL), &res, E),
	               "needs the artifact or its digest");
	sigstore_bundle_free(b);
	sigstore_root_free(root);
	regfree(&good);
	regfree(&bad);
	free(a);
}

static void test_statement_example_gives_its_subject(void **st)
{
	size_t len;
	uint8_t *buf = tl_slurp(sigdir, "statement.json", &len);
	json_t *v = NULL;
	struct err err;
	char *txt;

	(void)st;
	assert_int_equal(intoto_statement_parse(buf, len, &v, &err), 0);
	txt = json_dumps(v, JSON_COMPACT);
	assert_string_equal(txt, "{\"a.txt\":[\"" H64 "\"]}");
	free(txt);
	json_decref(v);
	free(buf);
}

/* A Rekor v2 entry has no integrated time: its log key must be valid at the TSA's time. */
static void test_rekor2_log_key_judged_at_timestamp_time(void **st)
{
	const char *dir = "bundle-verify/rekor2-happy-path/";
	char rel[256];
	size_t len, alen;
	uint8_t *buf, *a = tl_slurp(sigdir, "a.txt", &alen);
	char *start;
	struct sigstore_root *root = NULL;
	struct sigstore_bundle *b = NULL;
	struct sigstore_identity id = {.issuer = "https://token.actions.githubusercontent.com",
	                               .san = "https://github.com/sigstore-conformance/"
	                                      "extremely-dangerous-public-oidc-beacon/.github/"
	                                      "workflows/extremely-dangerous-oidc-beacon.yml@refs/"
	                                      "heads/main"};
	struct sigstore_policy pol = {.ids = &id, .n_ids = 1};
	struct sigstore_artifact art = {.data = a, .len = alen};
	struct sigstore_result res;
	struct err err;

	(void)st;
	snprintf(rel, sizeof(rel), "%strusted_root.json", dir);
	buf = tl_slurp(sigdir, rel, &len);
	snprintf(rel, sizeof(rel), "%sbundle.sigstore.json", dir);
	assert_int_equal(bundle_of(rel, &b, &err), 0);
	assert_int_equal(sigstore_root_parse(buf, len, &root, &err), 0);
	if (sigstore_verify(root, b, &pol, &art, time(NULL), &res, &err) != 0)
		fail_msg("%s", err.msg);
	sigstore_root_free(root);
	/* the v2 log's key (Ed25519) now starts in 2030 */
	start = strstr((char *)buf, "\"2025-04-16T00:00:00Z\"");
	assert_non_null(start);
	memcpy(start + 1, "2030", 4);
	assert_int_equal(sigstore_root_parse(buf, len, &root, &err), 0);
	ASSERT_REFUSED(sigstore_verify(root, b, &pol, &art, time(NULL), &res, E),
	               "its log key is not valid at the timestamp's time");
	sigstore_root_free(root);
	sigstore_bundle_free(b);
	free(buf);
	free(a);
}

static int set_from(const char *cfg, struct err *err)
{
	json_error_t jerr;
	json_t *j = json_loads(cfg, 0, &jerr);
	struct rvps_extractor_set *s;

	assert_non_null(j);
	s = rvps_extractor_set_new(j, err);
	json_decref(j);
	rvps_extractor_set_free(s);
	return s != NULL ? 0 : -1;
}

static void test_in_toto_config_refusals(void **st)
{
	char cfg[2048], root[1100];
	struct err err_ok;

	(void)st;
	snprintf(root, sizeof(root), "%s/trusted_root.prod.json", sigdir);
	ASSERT_REFUSED(set_from("{\"extractors\":{\"in_toto_extractor\":{\"keys\":[]}}}", E),
	               "extractors.in_toto_extractor has no option \"keys\"");
	ASSERT_REFUSED(set_from("{\"extractors\":{\"in_toto_extractor\":{\"trusted_keys\":"
	                        "[\"/nonexistent.pem\"]}}}",
	                        E),
	               "trusted key /nonexistent.pem");
	snprintf(cfg, sizeof(cfg),
	         "{\"extractors\":{\"in_toto_extractor\":{\"sigstore\":{\"trusted_root\":\"%s\","
	         "\"identities\":[{\"issuer\":\"https://i\",\"subject_regex\":\"(\"}]}}}}",
	         root);
	ASSERT_REFUSED(set_from(cfg, E), "is not a POSIX extended regular expression");
	snprintf(cfg, sizeof(cfg),
	         "{\"extractors\":{\"in_toto_extractor\":{\"sigstore\":{\"trusted_root\":\"%s\","
	         "\"identities\":[{\"subject_regex\":\"^x\"}]}}}}",
	         root);
	ASSERT_REFUSED(set_from(cfg, E), "needs \"issuer\" and \"subject_regex\" strings");
	snprintf(cfg, sizeof(cfg),
	         "{\"extractors\":{\"in_toto_extractor\":{\"sigstore\":{\"trusted_root\":\"%s\","
	         "\"identities\":[]}}}}",
	         root);
	ASSERT_REFUSED(set_from(cfg, E), "sigstore.identities must list");
	snprintf(cfg, sizeof(cfg),
	         "{\"extractors\":{\"in_toto_extractor\":{\"sigstore\":{\"trusted_root\":\"%s\","
	         "\"identities\":[{\"issuer\":\"https://i\",\"subject_regex\":\"^x\"}]}}}}",
	         root);
	assert_int_equal(set_from(cfg, &err_ok), 0);
}

static void test_in_toto_without_trust_refuses(void **st)
{
	json_t *out = NULL;
	struct err err;
	/* base64 of {"payloadType":"t","payload":"","signatures":[{"sig":"AA=="}]} */
	const char *p =
	    "eyJwYXlsb2FkVHlwZSI6InQiLCJwYXlsb2FkIjoiIiwic2lnbmF0dXJlcyI6W3sic2lnIjoiQUE9"
	    "PSJ9XX0=";

	(void)st;
	assert_int_equal(
	    rvps_extractor_set_extract(NULL, "in-toto", p, strlen(p), &out, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "needs extractors.in_toto_extractor.trusted_keys"));
	assert_null(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dsse_pae_is_the_specifications_example),
	    cmocka_unit_test(test_dsse_malformed_envelopes_refused),
	    cmocka_unit_test(test_dsse_signature_checked_over_pae),
	    cmocka_unit_test(test_intoto_subjects_become_values),
	    cmocka_unit_test(test_intoto_bad_statements_refused),
	    cmocka_unit_test(test_merkle_inclusion_against_independent_tree),
	    cmocka_unit_test(test_checkpoint_parsed),
	    cmocka_unit_test(test_checkpoint_malformed_refused),
	    cmocka_unit_test(test_bundles_refused_by_the_parser),
	    cmocka_unit_test(test_root_without_log_start_refused),
	    cmocka_unit_test(test_identity_and_issuer_matched),
	    cmocka_unit_test(test_statement_example_gives_its_subject),
	    cmocka_unit_test(test_rekor2_log_key_judged_at_timestamp_time),
	    cmocka_unit_test(test_in_toto_config_refusals),
	    cmocka_unit_test(test_in_toto_without_trust_refuses),
	};

	tl_testdata_dir(sigdir, sizeof(sigdir), "rvps/sigstore");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
