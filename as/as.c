/*
 * as: the Attestation Service pipeline (as-rvps.md §2): a typed AttestationRequest becomes
 * one EAR token through named stages, read top to bottom in as_evaluate —
 *   parse    the request (policy id, at most AS_MAX_DEVICES evidences),
 *   bind     each evidence's runtime data and init data to expected bytes (binding.c),
 *   verify   it with its TEE's verifier (as/verifiers/),
 *   appraise every device it holds with the policy `<id>_<class>` (Rego; reference values
 *            from the RVPS through query_reference_value, those a remote RVPS was asked for
 *            last time fetched in one call first: rv_plan.h) into an AR4SI appraisal (ear.c);
 *            a device evidence (gpu, dcu) that fails verification becomes its own
 *            contraindicated submod instead (as_device_failed), and so does each device
 *            a multi-device evidence's verifier refused alone (verifier_claims.failed)
 *            while the others keep theirs; a CPU evidence that fails refuses the request,
 *   sign     the appraisals as one token (ear.c).
 * A stage that fails because storage, the RVPS or a collateral service is out of reach says so
 * with err.code = ERR_UNAVAILABLE, which as_evaluate passes up so the caller answers "retry".
 */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "as/as.h"
#include "as/claims.h"
#include "as/metrics.h"
#include "as/policy_cache.h"
#include "as/rv_plan.h"
#include "b64.h"
#include "config.h"
#include "embed.h"
#include "grpcx.h"
#include "jose/jose.h"
#include "jsonr.h"
#include "keyfile.h"
#include "kv/kv.h"
#include "log.h"
#include "rego/rego.h"
#include "rvps/rvps.h"

EMBED_FILE(as_policy_cpu, "as/policies/default_cpu.rego");
EMBED_FILE(as_policy_gpu, "as/policies/default_gpu.rego");
EMBED_FILE(as_policy_switch, "as/policies/default_switch.rego");
EMBED_FILE(as_policy_ppcie, "as/policies/default_ppcie.rego");
EMBED_FILE(as_policy_dcu, "as/policies/default_dcu.rego");

static char *b64url_text(const char *s, size_t *len, struct err *err)
{
	uint8_t *raw;
	size_t n;
	if (b64_decode(s, strlen(s), B64_URL | B64_LENIENT, &raw, &n) < 0) {
		err_set(err, "not base64url");
		return NULL;
	}
	if (len)
		*len = n;
	return (char *)raw;
}

/* attestation_token_broker: what the token says about its issuer, and for how long (§3). */
static void broker_settings(struct as *a, const json_t *broker)
{
	const json_t *d = json_object_get(broker, "duration_min");
	const struct {
		const char *key, *dflt;
		char *dst;
		size_t size;
	} names[] = {
	    {"issuer_name", "CoCo-Attestation-Service", a->issuer, sizeof(a->issuer)},
	    {"developer_name", "https://confidentialcontainers.org", a->developer,
	     sizeof(a->developer)},
	    {"build_name", "attestation-service 0.1.0", a->build, sizeof(a->build)},
	    {"profile_name", "tag:github.com,2024:confidential-containers/Trustee", a->profile,
	     sizeof(a->profile)},
	};

	a->duration_min = json_is_integer(d) ? json_integer_value(d) : 5;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *s = json_string_value(json_object_get(broker, names[i].key));
		snprintf(names[i].dst, names[i].size, "%s", s ? s : names[i].dflt);
	}
	a->verbose = !json_is_false(json_object_get(broker, "verbose_token"));
}

/* rvps_config: a remote RVPS over gRPC, or the built-in one on the AS's own store, which
 * takes the rvps's own keys from rvps_config ("extractors", "verification_time",
 * "lifetime_seconds", "max_reference_values_per_message"). */
static int open_rvps(struct as *a, const json_t *rv, struct err *err)
{
	const char *rtype = json_string_value(json_object_get(rv, "type"));
	const char *addr = json_string_value(json_object_get(rv, "address"));

	if (rtype != NULL && strcmp(rtype, "BuiltIn") != 0 && strcmp(rtype, "GrpcRemote") != 0)
		return err_set(err,
		               "rvps_config.type \"%s\" is neither \"BuiltIn\" nor \"GrpcRemote\"",
		               rtype);
	if (rtype == NULL || strcmp(rtype, "BuiltIn") == 0)
		return (a->rvps_local = rvps_new_with_kv_config(
		            a->kv, json_is_object(rv) ? rv : NULL, err)) == NULL
		           ? err_prefix(err, "built-in RVPS")
		           : 0;
	/* our extension: TLS files for an https:// address (Trustee's link is plaintext) */
	struct grpcx_tls_files tf = {
	    json_string_value(json_object_get(rv, "ca_cert")),
	    json_string_value(json_object_get(rv, "client_cert")),
	    json_string_value(json_object_get(rv, "client_key")),
	};
	snprintf(a->rvps_addr, sizeof(a->rvps_addr), "%s", addr ? addr : "127.0.0.1:50003");
	if ((a->rvps_remote =
	         rvps_client_new_files(a->rvps_addr, &tf, "rvps_config.address", err)) == NULL)
		return err_prefix(err, "rvps_config");
	return 0;
}

/* The certificates of a PEM file, leaf first, as the jwk's x5c (standard base64 DER). */
static json_t *x5c_from_file(const char *path, struct err *err)
{
	FILE *f = fopen(path, "r");
	json_t *x5c;
	X509 *c;

	if (f == NULL)
		return err_set(err, "cannot open signer cert_path %s", path), NULL;
	x5c = json_array();
	while ((c = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
		unsigned char *der = NULL;
		int dl = i2d_X509(c, &der);
		char *b = dl > 0 ? b64_encode(der, (size_t)dl, B64_STD) : NULL;
		json_array_append_new(x5c, json_string(b ? b : ""));
		free(b);
		OPENSSL_free(der);
		X509_free(c);
	}
	fclose(f);
	return x5c;
}

/* attestation_token_broker.signer: the P-256 key (a fresh one when none is configured) and
 * the jwk every token header carries (§4.6). */
static int load_signer(struct as *a, const json_t *signer, struct err *err)
{
	const char *key_path = json_string_value(json_object_get(signer, "key_path"));
	const char *cert_path = json_string_value(json_object_get(signer, "cert_path"));
	const char *x5u = json_string_value(json_object_get(signer, "cert_url"));

	if (key_path != NULL && (a->signer = keyfile_read_private(key_path, err)) == NULL)
		return err_prefix(err, "attestation_token_broker.signer.key_path");
	if (key_path == NULL)
		a->signer = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "prime256v1");
	if (a->signer == NULL || jwk_default_alg(a->signer) == NULL ||
	    strcmp(jwk_default_alg(a->signer), "ES256") != 0)
		return err_set(err, "the token signing key must be an EC P-256 key");
	a->jwk = json_pack("{s:s}", "alg", "ES256");
	if (x5u)
		json_object_set_new(a->jwk, "x5u", json_string(x5u));
	if (cert_path != NULL) {
		json_t *x5c = x5c_from_file(cert_path, err);
		if (x5c == NULL)
			return -1;
		json_object_set_new(a->jwk, "x5c", x5c);
	}
	json_t *pub = jwk_from_pkey(a->signer, 0, err);
	if (pub == NULL)
		return -1;
	const char *members[] = {"kty", "crv", "x", "y"};
	for (int i = 0; i < 4; i++)
		json_object_set(a->jwk, members[i], json_object_get(pub, members[i]));
	json_decref(pub);
	return 0;
}

/* The default policies, never overwriting what an operator stored. */
static int install_default_policies(struct as *a, struct err *err)
{
	const char *ids[] = {"default_cpu", "default_gpu", "default_switch", "default_ppcie",
	                     "default_dcu"};
	const char *texts[] = {as_policy_cpu, as_policy_gpu, as_policy_switch, as_policy_ppcie,
	                       as_policy_dcu};

	for (int i = 0; i < 5; i++) {
		char key[64];
		snprintf(key, sizeof(key), "%s.rego", ids[i]);
		if (kv_set(a->kv, KV_NS_AS_POLICY, key, texts[i], strlen(texts[i]), 0, err) < 0)
			return err_prefix(err, "installing %s", ids[i]);
	}
	return 0;
}

int as_init(struct as *a, const json_t *cfg, struct err *err)
{
	const json_t *broker = json_object_get(cfg, "attestation_token_broker");

	memset(a, 0, sizeof(*a));
	broker_settings(a, broker);
	/* our extension: {max_steps, max_memory_mib, timeout_ms} of one policy evaluation */
	if (rego_limits_from_config(json_object_get(cfg, "attestation_policy_limits"),
	                            "attestation_policy_limits", &a->policy_limits, err) < 0)
		return -1;
	if ((a->kv = kv_open(json_object_get(cfg, "storage_backend"), err)) == NULL)
		return err_prefix(err, "storage_backend");
	if (open_rvps(a, json_object_get(cfg, "rvps_config"), err) < 0 ||
	    load_signer(a, json_object_get(broker, "signer"), err) < 0 ||
	    verifiers_init(json_object_get(cfg, "verifier_config"), err) < 0 ||
	    install_default_policies(a, err) < 0)
		return -1;
	if ((a->policies = as_policy_cache_new(0)) == NULL ||
	    (a->rv_plan = as_rv_plan_new()) == NULL)
		return err_set(err, "out of memory");
	pthread_mutex_init(&a->mu, NULL);
	return 0;
}

int as_set_policy(struct as *a, const char *id, const char *policy_b64, struct err *err)
{
	size_t len;
	char key[300];
	char *text = b64url_text(policy_b64, &len, err);
	if (text == NULL)
		return err_set(err, "Set Attestation Policy Failed: policy is not base64url");
	struct rego_module m = {id, text, len};
	if (rego_check(&m, 1, err) < 0) {
		free(text);
		return err_prefix(err, "Set Attestation Policy Failed");
	}
	snprintf(key, sizeof(key), "%s.rego", id);
	int rc = kv_set(a->kv, KV_NS_AS_POLICY, key, text, len, 1, err);
	free(text);
	return rc < 0 ? err_prefix(err, "Set Attestation Policy Failed") : 0;
}

/* ---- parse ---------------------------------------------------------------------------- */

/* as_parse_request; `tee` (tl bytes, may be NULL) gets the first evidence's TEE as soon as
 * the bytes are unpacked, "" when there is none. */
static int parse_request(struct as_request *rq, const uint8_t *buf, size_t len, char *tee,
                         size_t tl, struct err *err)
{
	memset(rq, 0, sizeof(*rq));
	rq->pb = attestation__attestation_request__unpack(NULL, len, buf);
	if (rq->pb == NULL)
		return err_set(err, "request is not an AttestationRequest");
	if (tee != NULL && rq->pb->n_verification_requests > 0 &&
	    rq->pb->verification_requests[0]->tee != NULL)
		snprintf(tee, tl, "%s", rq->pb->verification_requests[0]->tee);
	if (rq->pb->n_verification_requests == 0) {
		as_request_free(rq);
		return err_set(err, "No verification requests provided.");
	}
	if (rq->pb->n_verification_requests > AS_MAX_DEVICES) {
		err_set(err,
		        "the request carries %zu evidences; this attestation service appraises at "
		        "most %d devices per request",
		        rq->pb->n_verification_requests, AS_MAX_DEVICES);
		as_request_free(rq);
		return -1;
	}
	rq->policy_id = rq->pb->n_policy_ids ? rq->pb->policy_ids[0] : "default";
	return 0;
}

int as_parse_request(struct as_request *rq, const uint8_t *buf, size_t len, struct err *err)
{
	return parse_request(rq, buf, len, NULL, 0, err);
}

void as_request_free(struct as_request *rq)
{
	if (rq->pb != NULL)
		attestation__attestation_request__free_unpacked(rq->pb, NULL);
	memset(rq, 0, sizeof(*rq));
}

/* ---- verify ----------------------------------------------------------------------------- */

/* verify_rv's query on the AS's RVPS, remote or built in. */
static int rv_query(void *ctx, const char *id, int provenance, char **json, struct err *err)
{
	struct as *a = ctx;
	int rc;

	*json = NULL;
	if (a->rvps_remote != NULL) {
		rc = provenance ? rvps_client_query_provenance(a->rvps_remote, id, json, 10000, err)
		                : rvps_client_query(a->rvps_remote, id, json, 10000, err);
		if (rc < 0)
			err->code =
			    err->code == GRPCX_UNAVAILABLE || err->code == GRPCX_DEADLINE_EXCEEDED
			        ? ERR_UNAVAILABLE
			        : 0;
	} else if (a->rvps_local != NULL) {
		rc = provenance ? rvps_query_provenance(a->rvps_local, id, json, err)
		                : rvps_query(a->rvps_local, id, json, err);
	} else {
		return 0;
	}
	if (rc < 0)
		return err_prefix(err, "RVPS");
	return *json != NULL;
}

static int verify_evidence(const Attestation__IndividualAttestationRequest *ir,
                           const struct binding *b, const struct verify_rv *rv,
                           struct verify_result *res, struct err *err)
{
	const struct verifier *v = verifier_find(ir->tee);
	size_t len;
	json_t *ev = NULL;

	if (v == NULL)
		return err_set(err, "parse TEE type: Unsupported TEE type: %s", ir->tee);
	char *text = b64url_text(ir->evidence, &len, err);
	if (text != NULL) /* jsonr as jansson would read it (jsonr.h), else jansson */
		ev = jsonr_object(text, len);
	if (text == NULL || (ev == NULL && (ev = json_loadb(text, len, 0, NULL)) == NULL)) {
		free(text);
		return err_set(err, "evidence is not base64url of a JSON document");
	}
	free(text);
	struct verify_request vr = {
	    .evidence = ev,
	    .report_data = b->report_data,
	    .report_data_len = b->report_data_len,
	    .init_data_hash = b->init_data_hash,
	    .init_data_hash_len = b->init_data_hash_len,
	    .rv = rv,
	};
	err->code = 0; /* a collateral outage sets ERR_UNAVAILABLE */
	int rc = v->verify(&vr, res, err);
	json_decref(ev);
	return rc;
}

int as_verify_evidence(const Attestation__IndividualAttestationRequest *ir, const struct binding *b,
                       struct verify_result *res, struct err *err)
{
	return verify_evidence(ir, b, NULL, res, err);
}

/* ---- appraise --------------------------------------------------------------------------- */

/* One appraisal's link to the RVPS: whether a reference value could not be had because the
 * RVPS (or the store behind the built-in one) was out of reach; with a remote RVPS, the values
 * fetched in one call before the policy ran (rv_plan.h) and the ids asked for one at a time. */
struct rv_link {
	struct as *a;
	int outage;
	json_t *pre;   /* owned: id -> value, null for none; NULL when nothing was fetched */
	json_t *asked; /* owned: ids asked for singly (remote RVPS), to learn; or NULL */
};

/* Rego's query_reference_value(id): the value as JSON, null when there is none. */
static json_t *query_reference_value(void *ctx, json_t *const *args, size_t n, struct err *err)
{
	struct rv_link *l = ctx;
	const char *id = json_string_value(args[0]);
	json_t *v;
	char *val = NULL;
	int rc;

	if (id == NULL)
		return json_null();
	if (l->pre != NULL && (v = json_object_get(l->pre, id)) != NULL)
		return json_incref(v);
	if (l->a->rvps_remote) {
		rc = rvps_client_query(l->a->rvps_remote, id, &val, 10000, err);
		if (rc < 0 &&
		    (err->code == GRPCX_UNAVAILABLE || err->code == GRPCX_DEADLINE_EXCEEDED)) {
			log_warn("grpc-as: RVPS link %s: %s", l->a->rvps_addr, err->msg);
			l->outage = 1;
		}
		if (rc == 0 && l->asked != NULL)
			json_array_append_new(l->asked, json_string(id));
	} else {
		rc = rvps_query(l->a->rvps_local, id, &val, err);
		l->outage |= rc < 0 && err->code == ERR_UNAVAILABLE;
	}
	if (rc < 0)
		return NULL;
	json_t *j = val ? json_loads(val, JSON_DECODE_ANY, NULL) : NULL;
	free(val);
	return j ? j : json_null();
}

/* Before the policy runs (remote RVPS): every id this kind of appraisal asked for before, in
 * one QueryReferenceValues call. A failed call leaves l->pre NULL: the policy then asks id by
 * id, which reports an outage as before; a Trustee RVPS (UNIMPLEMENTED) is asked id by id
 * from then on. */
static void rv_prefetch(struct rv_link *l, const char *key, const char *tee, const uint8_t *digest)
{
	struct as *a = l->a;
	struct err e = {0};
	json_t *ids, *got = NULL, *v;
	size_t i;

	if (a->rvps_remote == NULL || __atomic_load_n(&a->rvps_no_batch, __ATOMIC_RELAXED))
		return;
	l->asked = json_array();
	if ((ids = as_rv_plan_ids(a->rv_plan, key, tee, digest)) == NULL)
		return;
	const char *names[AS_RV_PLAN_MAX_IDS];
	size_t n = 0;
	json_array_foreach(ids, i, v) if (n < AS_RV_PLAN_MAX_IDS) names[n++] = json_string_value(v);
	if (rvps_client_query_many(a->rvps_remote, names, n, &got, 10000, &e) < 0) {
		if (e.code == GRPCX_UNIMPLEMENTED) {
			log_info("grpc-as: the RVPS at %s has no QueryReferenceValues; asking for "
			         "reference values one at a time",
			         a->rvps_addr);
			__atomic_store_n(&a->rvps_no_batch, 1, __ATOMIC_RELAXED);
		}
		json_decref(ids);
		return;
	}
	for (i = 0; i < n; i++)
		if (json_object_get(got, names[i]) == NULL)
			json_object_set_new(got, names[i], json_null());
	json_decref(ids);
	l->pre = got;
}

/* The compiled policy stored under `key` (the text read on every call, compiled once). */
static struct as_policy_ref *load_policy(struct as *a, const char *key,
                                         const struct rego_host_function *h, struct err *err)
{
	uint8_t *text;
	size_t len;
	int rc = kv_get(a->kv, KV_NS_AS_POLICY, key, &text, &len, err);

	if (rc != 0) {
		if (rc == 1)
			err_setc(err, 0, "Policy `%s` not found", key);
		else if (err->code != ERR_UNAVAILABLE)
			err->code = 0;
		return NULL;
	}
	struct as_policy_ref *pr =
	    as_policy_cache_get(a->policies, key, (const char *)text, len, h, 1, err);
	free(text);
	return pr;
}

/* data.policy.trust_claims and data.policy.extensions for `input` (new references). */
static int eval_rules(struct as *a, const struct rego_policy *p, const char *key,
                      const json_t *input, const struct rego_host_function *h, json_t **tc,
                      json_t **ext, struct err *err)
{
	struct rego_eval_opts o = {
	    .input = (json_t *)input, .host_fns = h, .n_host_fns = 1, .explain = 1};
	char *why = NULL;

	rego_limits_apply(&a->policy_limits, &o);
	*tc = *ext = NULL;
	if (rego_eval_rule(p, "data.policy.trust_claims", &o, tc, &why, err) < 0)
		return -1;
	if (why)
		log_info("appraisal with %s: %s", key, why);
	free(why);
	o.explain = 0;
	if (rego_eval_rule(p, "data.policy.extensions", &o, ext, NULL, err) < 0) {
		json_decref(*tc);
		*tc = NULL;
		return -1;
	}
	return 0;
}

json_t *as_appraise(struct as *a, const char *policy_id, const char *tee,
                    const struct verifier_claims *item, const struct binding *b, struct err *err)
{
	struct rv_link link = {a, 0, NULL, NULL};
	struct rego_host_function h = {"query_reference_value", 1, query_reference_value, &link};
	json_t *input = claims_policy_input(tee, item->claims, b->runtime_data_claims,
	                                    b->init_data_claims, a->verbose);
	json_t *tc = NULL, *ext = NULL, *out = NULL;
	char key[300];

	snprintf(key, sizeof(key), "%s_%s.rego", policy_id, item->tee_class);
	struct as_policy_ref *pr = load_policy(a, key, &h, err);
	if (pr != NULL)
		rv_prefetch(&link, key, tee, as_policy_ref_digest(pr));
	if (pr != NULL &&
	    eval_rules(a, as_policy_ref_policy(pr), key, input, &h, &tc, &ext, err) == 0)
		out = ear_appraisal(policy_id, tc, ext, input, err);
	if (pr != NULL && json_array_size(link.asked) > 0)
		as_rv_plan_learn(a->rv_plan, key, tee, as_policy_ref_digest(pr), link.asked);
	as_metrics_policy(out ? json_string_value(json_object_get(out, "ear.status")) : NULL);
	if (out == NULL && pr != NULL)
		err->code = link.outage ? ERR_UNAVAILABLE : 0;
	if (pr != NULL)
		as_policy_cache_release(a->policies, pr);
	json_decref(link.pre);
	json_decref(link.asked);
	json_decref(tc);
	json_decref(ext);
	json_decref(input);
	return out;
}

/* ---- a device whose evidence fails ------------------------------------------------------- */

/* The class under which a device TEE's evidence is appraised, NULL for a CPU TEE. A device
 * (a GPU, a DCU beside the CPU) that fails verification says nothing about the guest or the
 * other devices, so it gets its own contraindicated submod; a CPU TEE that fails refuses the
 * request, since then the guest itself is not attested. */
static const char *device_class(const char *tee)
{
	static const struct {
		const char *tee, *tee_class;
	} devices[] = {
	    {"sampledevice", "gpu"},
	    {"nvidia", "gpu"},
	    {"hygondcu", "dcu"},
	    {"hygon-dcu", "dcu"},
	};
	for (size_t i = 0; tee != NULL && i < sizeof(devices) / sizeof(devices[0]); i++)
		if (strcmp(devices[i].tee, tee) == 0)
			return devices[i].tee_class;
	return NULL;
}

json_t *as_device_failed(const char *policy_id, const char *tee, const char *why, struct err *err)
{
	/* AR4SI 97: the verifier could not recognize the device's identity nor its hardware
	 * (a signature, chain or nonce that does not check is evidence of neither). */
	json_t *tc = json_pack("{s:i,s:i}", "instance-identity", 97, "hardware", 97);
	json_t *ann = json_pack("{s:{s:s}}", tee, "verification_error", why);
	json_t *out = NULL;

	if (tc == NULL || ann == NULL)
		err_set(err, "out of memory building the %s appraisal", tee);
	else
		out = ear_appraisal(policy_id, tc, NULL, ann, err);
	as_metrics_policy(out ? "contraindicated" : NULL);
	json_decref(tc);
	json_decref(ann);
	return out;
}

/* ---- one evidence: bind, verify, appraise each device ----------------------------------- */

/* The verification of a device evidence failed with `err` (not an outage): its one
 * contraindicated submod, the failure sentence in its annotation. */
static int add_failed_device(const char *policy_id, const char *tee, const char *tee_class,
                             struct ear_submods *out, struct err *err)
{
	char why[sizeof(err->msg)];

	snprintf(why, sizeof(why), "%s", err->msg);
	log_warn("grpc-as: %s evidence refused, appraised as a contraindicated %s: %s", tee,
	         tee_class, why);
	json_t *ap = as_device_failed(policy_id, tee, why, err);
	if (ap == NULL)
		return -1;
	err->code = 0;
	return ear_submods_add(out, tee_class, ap, err);
}

/* One device of a multi-device evidence that its verifier refused while the others passed:
 * its own contraindicated submod, as if it had come alone. */
static json_t *failed_item(const char *policy_id, const char *tee, const struct verifier_claims *it,
                           struct err *err)
{
	const char *why = json_string_value(json_object_get(it->claims, "verification_error"));

	log_warn("grpc-as: a %s device refused, appraised as a contraindicated %s: %s", tee,
	         it->tee_class, why ? why : "?");
	return as_device_failed(policy_id, tee, why ? why : "refused", err);
}

int as_attest_one(struct as *a, const char *policy_id,
                  const Attestation__IndividualAttestationRequest *ir, struct ear_submods *out,
                  struct err *err)
{
	struct binding b;
	struct verify_result res = {0};
	const char *dev = device_class(ir->tee);
	struct verify_rv rv = {rv_query, a};
	int rc = -1;

	if (binding_from_request(&b, ir, err) < 0)
		return -1;
	if (verify_evidence(ir, &b, &rv, &res, err) < 0) {
		if (dev != NULL && err->code != ERR_UNAVAILABLE && out->n < AS_MAX_DEVICES)
			rc = add_failed_device(policy_id, ir->tee, dev, out, err);
		goto out;
	}
	if (out->n + res.n > AS_MAX_DEVICES) {
		err_setc(err, 0,
		         "the evidences carry more than %d devices, the most this attestation "
		         "service appraises per request",
		         AS_MAX_DEVICES);
		goto out;
	}
	for (size_t i = 0; i < res.n; i++) {
		const struct verifier_claims *it = &res.items[i];
		json_t *ap = it->failed ? failed_item(policy_id, ir->tee, it, err)
		                        : as_appraise(a, policy_id, ir->tee, it, &b, err);
		if (ap == NULL || ear_submods_add(out, it->tee_class, ap, err) < 0)
			goto out;
	}
	rc = 0;
out:
	verify_result_clear(&res);
	binding_free(&b);
	return rc;
}

/* ---- sign ------------------------------------------------------------------------------- */

char *as_sign(struct as *a, const struct ear_submods *s, struct err *err)
{
	struct ear_signer signer = {
	    .key = a->signer,
	    .jwk = a->jwk,
	    .profile = a->profile,
	    .developer = a->developer,
	    .build = a->build,
	    .issuer = a->issuer,
	    .duration_min = a->duration_min,
	};
	return ear_sign(&signer, s, time(NULL), err);
}

/* ---- the pipeline ----------------------------------------------------------------------- */

char *as_evaluate(struct as *a, const uint8_t *req, size_t len, struct err *err)
{
	return as_evaluate_tee(a, req, len, NULL, 0, err);
}

char *as_evaluate_tee(struct as *a, const uint8_t *req, size_t len, char *tee, size_t tl,
                      struct err *err)
{
	struct err local = {0};
	struct as_request rq;
	struct ear_submods submods = {0};
	char *token = NULL;

	if (err == NULL)
		err = &local;
	err->code = 0;
	if (tee != NULL && tl > 0)
		tee[0] = '\0';
	if (parse_request(&rq, req, len, tee, tl, err) < 0) {
		err_prefix(err, "Attestation evaluation failed: \n0");
		goto out;
	}
	for (size_t i = 0; i < rq.pb->n_verification_requests; i++) {
		if (as_attest_one(a, rq.policy_id, rq.pb->verification_requests[i], &submods, err) <
		    0) {
			err_prefix(err, "Attestation evaluation failed: \n0");
			goto out;
		}
	}
	token = as_sign(a, &submods, err);
out:
	if (token == NULL && err->code != ERR_UNAVAILABLE)
		err->code = GRPCX_ABORTED;
	ear_submods_free(&submods);
	as_request_free(&rq);
	return token;
}

void as_free(struct as *a)
{
	if (a->rvps_local != NULL)
		rvps_free(a->rvps_local);
	if (a->rvps_remote != NULL)
		rvps_client_free(a->rvps_remote);
	if (a->policies != NULL)
		as_policy_cache_free(a->policies);
	as_rv_plan_free(a->rv_plan);
	if (a->kv != NULL)
		kv_close(a->kv);
	EVP_PKEY_free(a->signer);
	json_decref(a->jwk);
	memset(a, 0, sizeof(*a));
}
