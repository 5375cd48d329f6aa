/*
 * The AS pipeline stage by stage (as/as.c, as/binding.c, as/ear.c): parse, bind, verify,
 * appraise, sign, each called directly, then whole requests through as_evaluate — among
 * them one with 70 device evidences, whose token must carry 70 submods.
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

#include "as/as.h"
#include "as/claims.h"
#include "b64.h"
#include "grpcx.h"
#include "hash.h"
#include "jcs.h"
#include "jose/jose.h"
#include "log.h"

static struct as the_as; /* memory storage, built-in RVPS, ephemeral signer */

/* ---- request builders ------------------------------------------------------------------- */

struct ev {
	const char *tee;
	int wrong_report_data; /* evidence bound to other runtime data */
};

/* One IndividualAttestationRequest of sample/sampledevice evidence with structured runtime
 * data; every string is malloc'd, freed by free_individual. */
static void individual(Attestation__IndividualAttestationRequest *ir, const struct ev *e)
{
	const char *rd =
	    "{\"nonce\":\"bm9uY2U=\",\"tee-pubkey\":{\"crv\":\"P-256\",\"kty\":\"EC\"}}";
	uint8_t d[HASH_MAX];
	size_t dl = hash_digest(HASH_SHA384, rd, strlen(rd), d);
	if (e->wrong_report_data)
		d[0] ^= 1;
	char *d64 = b64_encode(d, dl, B64_STD);
	json_t *ev = json_pack("{s:s,s:s}", "svn", "1", "report_data", d64);
	char *evs = json_dumps(ev, JSON_COMPACT);

	attestation__individual_attestation_request__init(ir);
	ir->tee = strdup(e->tee);
	ir->evidence = b64_encode((const uint8_t *)evs, strlen(evs), B64_URL);
	ir->runtime_data_case =
	    ATTESTATION__INDIVIDUAL_ATTESTATION_REQUEST__RUNTIME_DATA_STRUCTURED_RUNTIME_DATA;
	ir->structured_runtime_data = strdup(rd);
	ir->runtime_data_hash_algorithm = strdup("sha384");
	free(evs);
	free(d64);
	json_decref(ev);
}

static void free_individual(Attestation__IndividualAttestationRequest *ir)
{
	free(ir->tee);
	free(ir->evidence);
	free(ir->structured_runtime_data);
	free(ir->runtime_data_hash_algorithm);
}

/* A packed AttestationRequest of the `n` evidences evs[] (NULL: `sample`s bound right);
 * policy id "default" unless `policy` names one. */
static uint8_t *request_of(const struct ev *evs, size_t n, const char *policy, size_t *len)
{
	Attestation__IndividualAttestationRequest *irs = calloc(n ? n : 1, sizeof(*irs));
	Attestation__IndividualAttestationRequest **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
	Attestation__AttestationRequest r = ATTESTATION__ATTESTATION_REQUEST__INIT;
	char *pid = (char *)policy;
	const struct ev sample = {"sample", 0};

	for (size_t i = 0; i < n; i++) {
		individual(&irs[i], evs ? &evs[i] : &sample);
		ptrs[i] = &irs[i];
	}
	r.n_verification_requests = n;
	r.verification_requests = ptrs;
	if (policy != NULL) {
		r.n_policy_ids = 1;
		r.policy_ids = &pid;
	}
	*len = protobuf_c_message_get_packed_size((ProtobufCMessage *)&r);
	uint8_t *buf = malloc(*len ? *len : 1);
	protobuf_c_message_pack((ProtobufCMessage *)&r, buf);
	for (size_t i = 0; i < n; i++)
		free_individual(&irs[i]);
	free(irs);
	free(ptrs);
	return buf;
}

/* A packed AttestationRequest: `n` evidences, the first `ncpu` of them `sample`, the rest
 * `sampledevice`, all bound to other runtime data when `wrong`. */
static uint8_t *request(size_t n, size_t ncpu, const char *policy, int wrong, size_t *len)
{
	struct ev *evs = calloc(n ? n : 1, sizeof(*evs));
	for (size_t i = 0; i < n; i++) {
		evs[i].tee = i < ncpu ? "sample" : "sampledevice";
		evs[i].wrong_report_data = wrong;
	}
	uint8_t *buf = request_of(evs, n, policy, len);
	free(evs);
	return buf;
}

/* The verified payload of a token signed by the_as. */
static json_t *payload_of(const char *token)
{
	json_t *hdr = NULL, *payload = NULL;
	struct err e = {0};
	if (jws_verify(token, the_as.signer, "ES256", &hdr, &payload, &e) != 0)
		fail_msg("token does not verify: %s", e.msg);
	json_decref(hdr);
	return payload;
}

/* ---- bind ------------------------------------------------------------------------------- */

static void test_bind_structured_runtime_data_is_sha384_of_jcs(void **state)
{
	struct binding b = {0};
	struct err e = {0};
	assert_int_equal(binding_structured_runtime_data(
	                     &b, "{\"b\":1,\"a\":\"test\",\"c\":{\"d\":\"e\"}}", "", &e),
	                 0);
	char *hex = hex_encode(b.report_data, b.report_data_len);
	assert_string_equal(hex, "e71ce8e70d814ba6639c3612ebee0ff1f76f650f8dbb5e47157e0f3f525cd22c"
	                         "4597480a186427c813ca941da78870c3");
	assert_int_equal(json_integer_value(json_object_get(b.runtime_data_claims, "b")), 1);
	free(hex);
	binding_free(&b);
	assert_int_equal(binding_structured_runtime_data(&b, "{}", "sha256", &e), 0);
	assert_int_equal(b.report_data_len, 32);
	binding_free(&b);
}

static void test_bind_refuses_unknown_hash_and_non_json(void **state)
{
	struct binding b = {0};
	struct err e = {0};
	assert_int_equal(binding_structured_runtime_data(&b, "{}", "md5", &e), -1);
	assert_null(b.report_data);
	assert_int_equal(binding_structured_runtime_data(&b, "{nope", "sha384", &e), -1);
	assert_non_null(strstr(e.msg, "not JSON"));
	assert_null(b.runtime_data_claims);
}

static void test_bind_raw_runtime_data_and_digest_are_verbatim(void **state)
{
	struct binding b = {0};
	struct err e = {0};
	assert_int_equal(binding_raw_runtime_data(&b, "AAEC", &e), 0); /* 00 01 02 */
	assert_int_equal(b.report_data_len, 3);
	assert_int_equal(b.report_data[2], 2);
	assert_null(b.runtime_data_claims);
	assert_int_equal(binding_init_data_digest(&b, "_w", &e), 0); /* ff */
	assert_int_equal(b.init_data_hash_len, 1);
	assert_int_equal(b.init_data_hash[0], 0xff);
	assert_null(b.init_data_claims);
	binding_free(&b);
	assert_int_equal(binding_raw_runtime_data(&b, "%%%", &e), -1);
	assert_non_null(strstr(e.msg, "base64url"));
}

static void test_bind_init_data_toml_hashes_the_text_and_lifts_claims(void **state)
{
	const char *toml = "version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\n"
	                   "\"aa.toml\" = '''\n[token_configs]\nx = 1\n'''\n"
	                   "\"policy.rego\" = '''\npackage agent_policy\n"
	                   "policy_data := {\"containers\": [1]}\n'''\n";
	struct binding b = {0};
	struct err e = {0};
	uint8_t want[HASH_MAX];

	if (binding_init_data_toml(&b, toml, &e) != 0)
		fail_msg("%s", e.msg);
	assert_int_equal(b.init_data_hash_len, hash_digest(HASH_SHA256, toml, strlen(toml), want));
	assert_memory_equal(b.init_data_hash, want, 32);
	assert_true(json_is_object(json_object_get(b.init_data_claims, "aa.toml")));
	assert_null(json_object_get(b.init_data_claims, "policy.rego"));
	json_t *apc = json_object_get(b.init_data_claims, "agent_policy_claims");
	assert_int_equal(json_array_size(json_object_get(apc, "containers")), 1);
	binding_free(&b);
	assert_int_equal(binding_init_data_toml(&b, "version = \"0.1.0\"\n[data]\n", &e), -1);
	assert_non_null(strstr(e.msg, "algorithm"));
	assert_null(b.init_data_hash);
}

/* ---- parse ------------------------------------------------------------------------------ */

static void test_parse_names_the_policy_and_refuses_empty_or_garbage(void **state)
{
	struct as_request rq;
	struct err e = {0};
	size_t len;
	uint8_t *buf = request(2, 1, NULL, 0, &len);

	assert_int_equal(as_parse_request(&rq, buf, len, &e), 0);
	assert_string_equal(rq.policy_id, "default");
	assert_int_equal(rq.pb->n_verification_requests, 2);
	as_request_free(&rq);
	free(buf);
	buf = request(0, 0, "mine", 0, &len);
	assert_int_equal(as_parse_request(&rq, buf, len, &e), -1);
	assert_string_equal(e.msg, "No verification requests provided.");
	free(buf);
	assert_int_equal(as_parse_request(&rq, (const uint8_t *)"\xff\xff\xff", 3, &e), -1);
	assert_non_null(strstr(e.msg, "not an AttestationRequest"));
	assert_null(rq.pb);
}

static void test_parse_refuses_more_devices_than_the_budget_with_a_sentence(void **state)
{
	struct as_request rq;
	struct err e = {0};
	size_t len;
	uint8_t *buf = request(AS_MAX_DEVICES + 1, 0, NULL, 0, &len);

	assert_int_equal(as_parse_request(&rq, buf, len, &e), -1);
	assert_non_null(strstr(e.msg, "at most 1024 devices"));
	char *tok = as_evaluate(&the_as, buf, len, &e);
	assert_null(tok);
	assert_int_equal(e.code, GRPCX_ABORTED);
	free(buf);
}

/* ---- verify ----------------------------------------------------------------------------- */

static void test_verify_finds_the_verifier_and_binds_report_data(void **state)
{
	Attestation__IndividualAttestationRequest ir;
	struct binding b = {0};
	struct verify_result res = {0};
	struct err e = {0};
	struct ev good = {"sample", 0}, bad = {"sample", 1}, unknown = {"nosuchtee", 0};

	individual(&ir, &good);
	assert_int_equal(binding_from_request(&b, &ir, &e), 0);
	assert_int_equal(b.report_data_len, 48);
	assert_int_equal(as_verify_evidence(&ir, &b, &res, &e), 0);
	assert_int_equal(res.n, 1);
	assert_string_equal(res.items[0].tee_class, "cpu");
	assert_string_equal(json_string_value(json_object_get(res.items[0].claims, "svn")), "1");
	verify_result_clear(&res);
	free_individual(&ir);

	individual(&ir, &bad);
	assert_int_equal(as_verify_evidence(&ir, &b, &res, &e), -1);
	assert_non_null(strstr(e.msg, "does not match"));
	assert_int_equal(e.code, 0);
	assert_int_equal(res.n, 0);
	free_individual(&ir);

	individual(&ir, &unknown);
	assert_int_equal(as_verify_evidence(&ir, &b, &res, &e), -1);
	assert_non_null(strstr(e.msg, "Unsupported TEE type: nosuchtee"));
	free_individual(&ir);
	binding_free(&b);
}

static void test_verify_result_grows_past_any_fixed_size(void **state)
{
	struct verify_result res = {0};
	struct err e = {0};
	for (int i = 0; i < 100; i++)
		assert_int_equal(
		    verify_result_add(&res, i % 2 ? "gpu" : "cpu", json_pack("{s:i}", "i", i), &e),
		    0);
	assert_int_equal(res.n, 100);
	assert_string_equal(res.items[99].tee_class, "gpu");
	assert_int_equal(json_integer_value(json_object_get(res.items[99].claims, "i")), 99);
	assert_int_equal(verify_result_add(&res, "cpu", NULL, &e), -1);
	assert_non_null(strstr(e.msg, "out of memory"));
	verify_result_clear(&res);
	assert_int_equal(res.n, 0);
	assert_null(res.items);
}

/* ---- appraise --------------------------------------------------------------------------- */

static void test_appraise_with_the_default_policy_of_the_class(void **state)
{
	struct binding b = {0};
	struct err e = {0};
	json_t *claims = json_pack("{s:s,s:s}", "svn", "1", "report_data", "AAAA");
	struct verifier_claims item = {"gpu", claims};

	json_t *ap = as_appraise(&the_as, "default", "sampledevice", &item, &b, &e);
	if (ap == NULL)
		fail_msg("%s", e.msg);
	assert_string_equal(json_string_value(json_object_get(ap, "ear.appraisal-policy-id")),
	                    "default");
	json_t *ae = json_object_get(ap, "ear.veraison.annotated-evidence");
	assert_string_equal(json_string_value(json_object_get(ae, "report_data")), "AAAA");
	assert_true(json_is_object(json_object_get(ae, "sampledevice")));
	/* default_gpu: no NVIDIA claims, so the hardware is not recognized */
	assert_int_equal(json_integer_value(json_object_get(
	                     json_object_get(ap, "ear.trustworthiness-vector"), "hardware")),
	                 97);
	assert_string_equal(json_string_value(json_object_get(ap, "ear.status")),
	                    "contraindicated");
	json_decref(ap);

	ap = as_appraise(&the_as, "nosuch", "sampledevice", &item, &b, &e);
	assert_null(ap);
	assert_string_equal(e.msg, "Policy `nosuch_gpu.rego` not found");
	assert_int_equal(e.code, 0);
	json_decref(claims);
}

static void test_ear_status_is_the_worst_tier_of_the_vector(void **state)
{
	struct err e = {0};
	json_t *in = json_object();
	struct {
		const char *tc;
		const char *status;
	} cases[] = {
	    {"{\"hardware\": 1}", "none"},
	    {"{\"hardware\": 2, \"executables\": 3}", "affirming"},
	    {"{\"hardware\": 2, \"configuration\": 36}", "warning"},
	    {"{\"hardware\": 97, \"configuration\": 36}", "contraindicated"},
	    {"{\"hardware\": 200}", "warning"}, /* an i8: 200 wraps to -56 */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *tc = json_loads(cases[i].tc, 0, NULL);
		json_t *ap = ear_appraisal("p", tc, NULL, in, &e);
		assert_non_null(ap);
		assert_string_equal(json_string_value(json_object_get(ap, "ear.status")),
		                    cases[i].status);
		json_decref(ap);
		json_decref(tc);
	}
	json_t *ap = ear_appraisal("p", NULL, NULL, in, &e); /* no trust_claims rule: all 0 */
	assert_int_equal(json_object_size(json_object_get(ap, "ear.trustworthiness-vector")), 8);
	assert_string_equal(json_string_value(json_object_get(ap, "ear.status")), "none");
	json_decref(ap);
	json_t *bad = json_pack("{s:i}", "hardwear", 2);
	assert_null(ear_appraisal("p", bad, NULL, in, &e));
	assert_non_null(strstr(e.msg, "hardwear"));
	json_decref(bad);
	bad = json_object();
	assert_null(ear_appraisal("p", bad, NULL, in, &e));
	assert_string_equal(e.msg, "At least one policy claim must be set.");
	json_decref(bad);
	json_decref(in);
}

static void test_ear_extensions_need_a_name_and_a_value(void **state)
{
	struct err e = {0};
	json_t *in = json_object(), *tc = json_pack("{s:i}", "hardware", 2);
	json_t *ext =
	    json_pack("[{s:s,s:i,s:{}}]", "name", "ear.trustee.identifiers", "key", 1, "value");
	json_t *ap = ear_appraisal("p", tc, ext, in, &e);
	assert_true(json_is_object(json_object_get(ap, "ear.trustee.identifiers")));
	json_decref(ap);
	json_decref(ext);
	ext = json_pack("[{s:s}]", "name", "x");
	assert_null(ear_appraisal("p", tc, ext, in, &e));
	assert_non_null(strstr(e.msg, "needs a name and a value"));
	json_decref(ext);
	json_decref(tc);
	json_decref(in);
}

/* ---- sign ------------------------------------------------------------------------------- */

static void test_sign_names_submods_per_class_and_sorts_them(void **state)
{
	struct ear_submods s = {0};
	struct err e = {0};
	const char *want[] = {"cpu0", "gpu0", "gpu1", "gpu10", "gpu11", "gpu2", "gpu3",
	                      "gpu4", "gpu5", "gpu6", "gpu7",  "gpu8",  "gpu9", "switch0"};

	assert_int_equal(ear_submods_add(&s, "gpu", json_pack("{s:i}", "n", 0), &e), 0);
	assert_int_equal(ear_submods_add(&s, "cpu", json_pack("{s:i}", "n", 1), &e), 0);
	for (int i = 1; i < 12; i++)
		assert_int_equal(ear_submods_add(&s, "gpu", json_object(), &e), 0);
	assert_int_equal(ear_submods_add(&s, "switch", json_object(), &e), 0);
	assert_string_equal(s.v[1].name, "cpu0");
	char *tok = as_sign(&the_as, &s, &e);
	assert_non_null(tok);
	json_t *p = payload_of(tok);
	json_t *sub = json_object_get(p, "submods");
	const char *k;
	json_t *v;
	size_t i = 0;
	json_object_foreach(sub, k, v)
	{
		assert_true(i < sizeof(want) / sizeof(want[0]));
		assert_string_equal(k, want[i++]);
	}
	assert_int_equal(i, 14);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(sub, "gpu0"), "n")), 0);
	assert_string_equal(json_string_value(json_object_get(p, "iss")), the_as.issuer);
	assert_int_equal(json_integer_value(json_object_get(p, "exp")) -
	                     json_integer_value(json_object_get(p, "iat")),
	                 the_as.duration_min * 60);
	json_decref(p);
	free(tok);
	ear_submods_free(&s);
	assert_null(as_sign(&the_as, &s, &e)); /* no appraisal, no token */
}

/* ---- the whole pipeline ----------------------------------------------------------------- */

static void test_evaluate_70_device_evidences_yields_70_submods(void **state)
{
	struct err e = {0};
	size_t len;
	uint8_t *buf = request(71, 1, NULL, 0, &len); /* one sample cpu, 70 sampledevice gpus */
	char *tok = as_evaluate(&the_as, buf, len, &e);
	if (tok == NULL)
		fail_msg("%s", e.msg);
	json_t *p = payload_of(tok);
	json_t *sub = json_object_get(p, "submods");
	size_t gpus = 0;
	const char *k;
	json_t *v;
	json_object_foreach(sub, k, v) gpus += strncmp(k, "gpu", 3) == 0;
	assert_int_equal(gpus, 70);
	assert_int_equal(json_object_size(sub), 71);
	assert_non_null(json_object_get(sub, "cpu0"));
	assert_non_null(json_object_get(sub, "gpu69"));
	assert_null(json_object_get(sub, "gpu70"));
	json_decref(p);
	free(tok);
	free(buf);
}

static void test_evaluate_refusal_is_aborted_and_numbered(void **state)
{
	struct err e = {0};
	size_t len;
	uint8_t *buf = request(3, 1, NULL, 1, &len);
	assert_null(as_evaluate(&the_as, buf, len, &e));
	assert_int_equal(e.code, GRPCX_ABORTED);
	assert_non_null(strstr(e.msg, "Attestation evaluation failed: \n0: "));
	assert_non_null(strstr(e.msg, "does not match"));
	free(buf);
}

static void test_device_failed_is_contraindicated_and_says_why(void **state)
{
	struct err e = {0};
	json_t *ap = as_device_failed("default", "nvidia", "nonce mismatch", &e);
	if (ap == NULL)
		fail_msg("%s", e.msg);
	json_t *tv = json_object_get(ap, "ear.trustworthiness-vector");
	assert_int_equal(json_integer_value(json_object_get(tv, "hardware")), 97);
	assert_int_equal(json_integer_value(json_object_get(tv, "instance-identity")), 97);
	assert_int_equal(json_object_size(tv), 2);
	assert_string_equal(json_string_value(json_object_get(ap, "ear.status")),
	                    "contraindicated");
	json_t *ann = json_object_get(ap, "ear.veraison.annotated-evidence");
	assert_string_equal(json_string_value(json_object_get(json_object_get(ann, "nvidia"),
	                                                      "verification_error")),
	                    "nonce mismatch");
	json_decref(ap);
}

static void test_evaluate_a_failing_device_taints_only_its_own_submod(void **state)
{
	const struct ev evs[] = {{"sample", 0}, {"sampledevice", 0}, {"sampledevice", 1}};
	struct err e = {0};
	size_t len;
	uint8_t *buf = request_of(evs, 3, NULL, &len);
	char *tok = as_evaluate(&the_as, buf, len, &e);
	if (tok == NULL)
		fail_msg("%s", e.msg);
	json_t *p = payload_of(tok);
	json_t *sub = json_object_get(p, "submods");
	assert_int_equal(json_object_size(sub), 3);
	/* cpu0 and gpu0 appraised by their policies on their claims, as without gpu1 */
	json_t *cpu_ae =
	    json_object_get(json_object_get(sub, "cpu0"), "ear.veraison.annotated-evidence");
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(cpu_ae, "sample"), "svn")), "1");
	json_t *gpu0 = json_object_get(sub, "gpu0");
	json_t *gpu0_ae = json_object_get(gpu0, "ear.veraison.annotated-evidence");
	assert_true(json_is_object(json_object_get(gpu0_ae, "sampledevice")));
	assert_null(
	    json_object_get(json_object_get(gpu0_ae, "sampledevice"), "verification_error"));
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(gpu0, "ear.trustworthiness-vector"),
	                                       "instance-identity")),
	    0); /* default_gpu sets it to 0; the failed device sets 97 */
	/* gpu1: contraindicated, the refusal in its annotation */
	json_t *gpu1 = json_object_get(sub, "gpu1");
	assert_string_equal(json_string_value(json_object_get(gpu1, "ear.status")),
	                    "contraindicated");
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(gpu1, "ear.trustworthiness-vector"),
	                                       "instance-identity")),
	    97);
	json_t *gpu1_ae = json_object_get(gpu1, "ear.veraison.annotated-evidence");
	const char *why = json_string_value(
	    json_object_get(json_object_get(gpu1_ae, "sampledevice"), "verification_error"));
	assert_non_null(why);
	assert_non_null(strstr(why, "does not match"));
	json_decref(p);
	free(tok);
	free(buf);
}

static void test_evaluate_a_failing_cpu_refuses_even_with_good_devices(void **state)
{
	const struct ev evs[] = {{"sample", 1}, {"sampledevice", 0}};
	struct err e = {0};
	size_t len;
	uint8_t *buf = request_of(evs, 2, NULL, &len);
	assert_null(as_evaluate(&the_as, buf, len, &e));
	assert_int_equal(e.code, GRPCX_ABORTED);
	assert_non_null(strstr(e.msg, "does not match"));
	free(buf);
}

static void test_evaluate_an_unknown_tee_still_refuses(void **state)
{
	const struct ev evs[] = {{"sample", 0}, {"nosuchdevice", 0}};
	struct err e = {0};
	size_t len;
	uint8_t *buf = request_of(evs, 2, NULL, &len);
	assert_null(as_evaluate(&the_as, buf, len, &e));
	assert_non_null(strstr(e.msg, "Unsupported TEE type: nosuchdevice"));
	free(buf);
}

static void test_evaluate_rvps_out_of_reach_is_unavailable(void **state)
{
	static struct as remote;
	struct err e = {0};
	size_t len;
	json_t *cfg = json_pack("{s:{s:s,s:s}}", "rvps_config", "type", "GrpcRemote", "address",
	                        "127.0.0.1:1"); /* nothing listens on port 1 */
	if (as_init(&remote, cfg, &e) != 0)
		fail_msg("%s", e.msg);
	uint8_t *buf = request(1, 1, NULL, 0, &len); /* default_cpu asks the RVPS */
	assert_null(as_evaluate(&remote, buf, len, &e));
	assert_int_equal(e.code, ERR_UNAVAILABLE);
	free(buf);
	json_decref(cfg);
}

static void test_init_refuses_an_unknown_rvps_type(void **state)
{
	static struct as other;
	struct err e = {0};
	json_t *cfg = json_pack("{s:{s:s}}", "rvps_config", "type", "Builtin2");
	assert_int_not_equal(as_init(&other, cfg, &e), 0);
	assert_non_null(strstr(e.msg, "rvps_config.type \"Builtin2\" is neither"));
	json_decref(cfg);
}

/* The policy input is a sorted copy: report_data and init_data hoisted beside their claims,
 * the rest under the TEE, additional-evidence dropped when not verbose, and the borrowed
 * claims (shared by every device of one evidence) left as they were. */
static void test_policy_input_hoists_and_leaves_its_sources_whole(void **state)
{
	json_t *vc =
	    json_pack("{s:s,s:s,s:{s:i}}", "report_data", "cmQ", "init_data", "aWQ", "svn", "x", 1);
	json_t *rdc = json_pack("{s:s,s:{s:s}}", "nonce", "n", "additional-evidence", "k", "v");
	json_t *idc = json_pack("{s:s}", "aa.toml", "t");
	char *before_vc = json_dumps(vc, JSON_SORT_KEYS),
	     *before_rdc = json_dumps(rdc, JSON_SORT_KEYS);
	json_t *in = claims_policy_input("sample", vc, rdc, idc, 0);
	char *got = json_dumps(in, JSON_COMPACT);

	assert_string_equal(got,
	                    "{\"init_data\":\"aWQ\",\"init_data_claims\":{\"aa.toml\":\"t\"},"
	                    "\"report_data\":\"cmQ\",\"runtime_data_claims\":{\"nonce\":\"n\"},"
	                    "\"sample\":{\"svn\":{\"x\":1}}}");
	char *after_vc = json_dumps(vc, JSON_SORT_KEYS),
	     *after_rdc = json_dumps(rdc, JSON_SORT_KEYS);
	assert_string_equal(after_vc, before_vc);
	assert_string_equal(after_rdc, before_rdc);
	/* the copy is deep: changing it leaves the sources alone */
	json_integer_set(
	    json_object_get(json_object_get(json_object_get(in, "sample"), "svn"), "x"), 2);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(vc, "svn"), "x")), 1);
	free(got);
	free(before_vc);
	free(before_rdc);
	free(after_vc);
	free(after_rdc);
	json_decref(in);
	json_decref(vc);
	json_decref(rdc);
	json_decref(idc);
}

int main(void)
{
	struct err e = {0};
	json_t *cfg = json_object();
	setenv("LOG_LEVEL", "error", 0);
	log_init("test_as_pipeline");
	if (as_init(&the_as, cfg, &e) != 0) {
		fprintf(stderr, "as_init: %s\n", e.msg);
		return 1;
	}
	json_decref(cfg);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bind_structured_runtime_data_is_sha384_of_jcs),
	    cmocka_unit_test(test_policy_input_hoists_and_leaves_its_sources_whole),
	    cmocka_unit_test(test_bind_refuses_unknown_hash_and_non_json),
	    cmocka_unit_test(test_bind_raw_runtime_data_and_digest_are_verbatim),
	    cmocka_unit_test(test_bind_init_data_toml_hashes_the_text_and_lifts_claims),
	    cmocka_unit_test(test_parse_names_the_policy_and_refuses_empty_or_garbage),
	    cmocka_unit_test(test_parse_refuses_more_devices_than_the_budget_with_a_sentence),
	    cmocka_unit_test(test_verify_finds_the_verifier_and_binds_report_data),
	    cmocka_unit_test(test_verify_result_grows_past_any_fixed_size),
	    cmocka_unit_test(test_appraise_with_the_default_policy_of_the_class),
	    cmocka_unit_test(test_ear_status_is_the_worst_tier_of_the_vector),
	    cmocka_unit_test(test_ear_extensions_need_a_name_and_a_value),
	    cmocka_unit_test(test_sign_names_submods_per_class_and_sorts_them),
	    cmocka_unit_test(test_evaluate_70_device_evidences_yields_70_submods),
	    cmocka_unit_test(test_evaluate_refusal_is_aborted_and_numbered),
	    cmocka_unit_test(test_device_failed_is_contraindicated_and_says_why),
	    cmocka_unit_test(test_evaluate_a_failing_device_taints_only_its_own_submod),
	    cmocka_unit_test(test_evaluate_a_failing_cpu_refuses_even_with_good_devices),
	    cmocka_unit_test(test_evaluate_an_unknown_tee_still_refuses),
	    cmocka_unit_test(test_evaluate_rvps_out_of_reach_is_unavailable),
	    cmocka_unit_test(test_init_refuses_an_unknown_rvps_type),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
