/*
 * as: the Attestation Service (as-rvps.md §1–§4, §6): decode each verification request,
 * verify its evidence with the TEE's verifier, bind runtime data and init data, assemble
 * the policy input, appraise it with the policy `<id>_<class>` (Rego, with
 * query_reference_value served by the RVPS), and sign one EAR token for all of them.
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
#include "as/metrics.h"
#include "as/claims.h"
#include "as/policy_cache.h"
#include "as/verifiers/verifier.h"
#include "attestation.pb-c.h"
#include "b64.h"
#include "config.h"
#include "embed.h"
#include "grpcx.h"
#include "hash.h"
#include "jcs.h"
#include "jose/jose.h"
#include "keyfile.h"
#include "kv/kv.h"
#include "log.h"
#include "rego/rego.h"
#include "rvps/rvps.h"
#include "toml.h"

EMBED_FILE(as_policy_cpu, "as/policies/default_cpu.rego");
EMBED_FILE(as_policy_gpu, "as/policies/default_gpu.rego");
EMBED_FILE(as_policy_switch, "as/policies/default_switch.rego");
EMBED_FILE(as_policy_ppcie, "as/policies/default_ppcie.rego");

static const char *claim_names[8] = {"instance-identity", "configuration", "executables",
                                     "file-system",       "hardware",      "runtime-opaque",
                                     "storage-opaque",    "sourced-data"};

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

int as_init(struct as *a, const json_t *cfg, struct err *err)
{
	json_t *broker = json_object_get(cfg, "attestation_token_broker");
	json_t *rv = json_object_get(cfg, "rvps_config");
	const char *key_path =
	    json_string_value(json_object_get(json_object_get(broker, "signer"), "key_path"));
	const char *cert_path =
	    json_string_value(json_object_get(json_object_get(broker, "signer"), "cert_path"));
	const char *s;

	memset(a, 0, sizeof(*a));
	a->duration_min = json_is_integer(json_object_get(broker, "duration_min"))
	                      ? json_integer_value(json_object_get(broker, "duration_min"))
	                      : 5;
	s = json_string_value(json_object_get(broker, "issuer_name"));
	snprintf(a->issuer, sizeof(a->issuer), "%s", s ? s : "CoCo-Attestation-Service");
	s = json_string_value(json_object_get(broker, "developer_name"));
	snprintf(a->developer, sizeof(a->developer), "%s",
	         s ? s : "https://confidentialcontainers.org");
	s = json_string_value(json_object_get(broker, "build_name"));
	snprintf(a->build, sizeof(a->build), "%s", s ? s : "attestation-service 0.1.0");
	s = json_string_value(json_object_get(broker, "profile_name"));
	snprintf(a->profile, sizeof(a->profile), "%s",
	         s ? s : "tag:github.com,2024:confidential-containers/Trustee");
	a->verbose = !json_is_false(json_object_get(broker, "verbose_token"));
	/* our extension: {max_steps, max_memory_mib, timeout_ms} of one policy evaluation */
	if (rego_limits_from_config(json_object_get(cfg, "attestation_policy_limits"),
	                            "attestation_policy_limits", &a->policy_limits, err) < 0)
		return -1;

	if ((a->kv = kv_open(json_object_get(cfg, "storage_backend"), err)) == NULL)
		return err_prefix(err, "storage_backend");
	const char *rtype = json_string_value(json_object_get(rv, "type"));
	if (rtype != NULL && strcmp(rtype, "GrpcRemote") == 0) {
		const char *addr = json_string_value(json_object_get(rv, "address"));
		/* our extension: TLS files for an https:// address (Trustee's link is plaintext) */
		struct grpcx_tls_files tf = {
		    json_string_value(json_object_get(rv, "ca_cert")),
		    json_string_value(json_object_get(rv, "client_cert")),
		    json_string_value(json_object_get(rv, "client_key")),
		};
		if ((a->rvps_remote = rvps_client_new_files(addr ? addr : "127.0.0.1:50003", &tf,
		                                            "rvps_config.address", err)) == NULL)
			return err_prefix(err, "rvps_config");
		snprintf(a->rvps_addr, sizeof(a->rvps_addr), "%s", addr ? addr : "127.0.0.1:50003");
	} else if ((a->rvps_local = rvps_new_with_kv(a->kv, err)) == NULL) {
		return err_prefix(err, "built-in RVPS");
	}
	if (key_path != NULL) {
		if ((a->signer = keyfile_read_private(key_path, err)) == NULL)
			return err_prefix(err, "attestation_token_broker.signer.key_path");
	} else {
		a->signer = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "prime256v1");
	}
	if (a->signer == NULL || jwk_default_alg(a->signer) == NULL ||
	    strcmp(jwk_default_alg(a->signer), "ES256") != 0)
		return err_set(err, "the token signing key must be an EC P-256 key");
	a->jwk = json_object();
	json_object_set_new(a->jwk, "alg", json_string("ES256"));
	const char *x5u =
	    json_string_value(json_object_get(json_object_get(broker, "signer"), "cert_url"));
	if (x5u)
		json_object_set_new(a->jwk, "x5u", json_string(x5u));
	if (cert_path != NULL) {
		FILE *f = fopen(cert_path, "r");
		json_t *x5c = json_array();
		X509 *c;
		if (f == NULL)
			return err_set(err, "cannot open signer cert_path %s", cert_path);
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
		json_object_set_new(a->jwk, "x5c", x5c);
	}
	json_t *pub = jwk_from_pkey(a->signer, 0, err);
	if (pub == NULL)
		return -1;
	json_object_set(a->jwk, "kty", json_object_get(pub, "kty"));
	json_object_set(a->jwk, "crv", json_object_get(pub, "crv"));
	json_object_set(a->jwk, "x", json_object_get(pub, "x"));
	json_object_set(a->jwk, "y", json_object_get(pub, "y"));
	json_decref(pub);
	if (verifiers_init(json_object_get(cfg, "verifier_config"), err) < 0)
		return -1;
	/* default policies, never overwriting what an operator stored */
	const char *ids[] = {"default_cpu", "default_gpu", "default_switch", "default_ppcie"};
	const char *texts[] = {as_policy_cpu, as_policy_gpu, as_policy_switch, as_policy_ppcie};
	for (int i = 0; i < 4; i++) {
		char key[64];
		snprintf(key, sizeof(key), "%s.rego", ids[i]);
		if (kv_set(a->kv, KV_NS_AS_POLICY, key, texts[i], strlen(texts[i]), 0, err) < 0)
			return err_prefix(err, "installing %s", ids[i]);
	}
	if ((a->policies = as_policy_cache_new(0)) == NULL)
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

/* Set on this thread when an appraisal failed because storage, the RVPS or a collateral service
 * was out of reach, so the caller is told to retry rather than that the evidence was refused. */
static __thread int dependency_down;

static void note_outage(const struct err *err, int remote)
{
	if (err != NULL &&
	    (remote ? err->code == GRPCX_UNAVAILABLE || err->code == GRPCX_DEADLINE_EXCEEDED
	            : err->code == KV_ERR_UNAVAILABLE))
		dependency_down = 1;
}

static json_t *qrv(void *ctx, json_t *const *args, size_t n, struct err *err)
{
	struct as *a = ctx;
	char *val = NULL;
	int rc;
	if (!json_is_string(args[0]))
		return json_null();
	if (a->rvps_remote) {
		rc =
		    rvps_client_query(a->rvps_remote, json_string_value(args[0]), &val, 10000, err);
		if (rc < 0 && err && err->code == GRPCX_UNAVAILABLE)
			log_warn("grpc-as: RVPS link %s: %s", a->rvps_addr, err->msg);
	} else
		rc = rvps_query(a->rvps_local, json_string_value(args[0]), &val, err);
	if (rc < 0) {
		note_outage(err, a->rvps_remote != NULL);
		return NULL;
	}
	if (val == NULL)
		return json_null();
	json_t *j = json_loads(val, JSON_DECODE_ANY, NULL);
	free(val);
	return j ? j : json_null();
}

/* Appraise one policy input with `<policy_id>_<class>`: trust vector, status, extensions. */
static json_t *appraise(struct as *a, const char *policy_id, const char *cls, json_t *input,
                        struct err *err)
{
	char key[300];
	uint8_t *text;
	size_t len;
	snprintf(key, sizeof(key), "%s_%s.rego", policy_id, cls);
	int rc = kv_get(a->kv, KV_NS_AS_POLICY, key, &text, &len, err);
	if (rc != 0) {
		if (rc == 1)
			err_set(err, "Policy `%s` not found", key);
		else
			note_outage(err, 0);
		return NULL;
	}
	struct rego_host_function h = {"query_reference_value", 1, qrv, a};
	struct as_policy_ref *pr =
	    as_policy_cache_get(a->policies, key, (const char *)text, len, &h, 1, err);
	free(text);
	if (pr == NULL)
		return NULL;
	const struct rego_policy *p = as_policy_ref_policy(pr);
	struct rego_eval_opts o = {.input = input, .host_fns = &h, .n_host_fns = 1, .explain = 1};
	rego_limits_apply(&a->policy_limits, &o);
	json_t *tc = NULL, *ext = NULL, *out = NULL;
	char *why = NULL;
	if (rego_eval_rule(p, "data.policy.trust_claims", &o, &tc, &why, err) < 0)
		goto done;
	if (why)
		log_info("appraisal with %s: %s", key, why);
	o.explain = 0;
	if (rego_eval_rule(p, "data.policy.extensions", &o, &ext, NULL, err) < 0)
		goto done;
	int vals[8], set[8] = {0}, tier = 0;
	if (tc == NULL) {
		for (int i = 0; i < 8; i++)
			set[i] = 1, vals[i] = 0;
	} else if (!json_is_object(tc)) {
		err_set(err, "Trust claims is not an object");
		goto done;
	} else {
		const char *k;
		json_t *v;
		json_object_foreach(tc, k, v)
		{
			int idx = -1;
			for (int i = 0; i < 8; i++)
				if (strcmp(claim_names[i], k) == 0)
					idx = i;
			if (idx < 0 || !json_is_integer(v)) {
				err_set(err,
				        "trust claim \"%s\" is not an AR4SI claim with an integer "
				        "value",
				        k);
				goto done;
			}
			set[idx] = 1;
			vals[idx] = (int)(signed char)json_integer_value(v);
		}
	}
	json_t *vec = json_object();
	int nset = 0;
	for (int i = 0; i < 8; i++) {
		if (!set[i])
			continue;
		nset++;
		int v = vals[i], t = (v >= -1 && v <= 1)   ? 0
		                     : (v > -32 && v < 32) ? 1
		                     : (v > -96 && v < 96) ? 2
		                                           : 3;
		tier = t > tier ? t : tier;
		json_object_set_new(vec, claim_names[i], json_integer(v));
	}
	if (nset == 0) {
		json_decref(vec);
		err_set(err, "At least one policy claim must be set.");
		goto done;
	}
	static const char *status[] = {"none", "affirming", "warning", "contraindicated"};
	out = json_object();
	json_object_set_new(out, "ear.status", json_string(status[tier]));
	json_object_set_new(out, "ear.trustworthiness-vector", vec);
	json_object_set_new(out, "ear.appraisal-policy-id", json_string(policy_id));
	json_object_set(out, "ear.veraison.annotated-evidence", input);
	if (json_is_array(ext)) {
		for (size_t i = 0; i < json_array_size(ext); i++) {
			json_t *e = json_array_get(ext, i);
			const char *name = json_string_value(json_object_get(e, "name"));
			if (name == NULL || json_object_get(e, "value") == NULL) {
				json_decref(out);
				out = NULL;
				err_set(err, "policy extension %zu needs a name and a value", i);
				goto done;
			}
			json_object_set(out, name, json_object_get(e, "value"));
		}
	}
done:
	as_metrics_policy(out ? json_string_value(json_object_get(out, "ear.status")) : NULL);
	free(why);
	json_decref(tc);
	json_decref(ext);
	as_policy_cache_release(a->policies, pr);
	return out;
}

/* TOML init data: hash of the exact text, `data` table with its transformations (§2.3). */
static int init_data_toml(const char *text, uint8_t *digest, size_t *dlen, json_t **claims,
                          struct err *err)
{
	json_t *doc = toml_parse(text, strlen(text), err);
	if (doc == NULL)
		return err_prefix(err, "init data is not TOML");
	enum hash_alg alg =
	    hash_alg_from_name(json_string_value(json_object_get(doc, "algorithm")));
	json_t *data = json_object_get(doc, "data");
	if (!json_is_string(json_object_get(doc, "version")) || alg == HASH_NONE ||
	    !json_is_object(data)) {
		json_decref(doc);
		return err_set(err, "init data needs a string version, algorithm "
		                    "sha256/sha384/sha512 and a [data] table");
	}
	*dlen = hash_digest(alg, text, strlen(text), digest);
	json_t *c = json_deep_copy(data);
	const char *tomls[] = {"cdh.toml", "aa.toml"};
	for (int i = 0; i < 2; i++) {
		json_t *v = json_object_get(c, tomls[i]);
		if (json_is_string(v)) {
			struct err e2 = {0};
			json_t *t = toml_parse(json_string_value(v), json_string_length(v), &e2);
			if (t)
				json_object_set_new(c, tomls[i], t);
		}
	}
	json_t *pr = json_object_get(c, "policy.rego");
	if (json_is_string(pr)) {
		const char *at = strstr(json_string_value(pr), "policy_data := {");
		if (at != NULL) {
			json_t *pd = json_loads(at + strlen("policy_data := "), 0, NULL);
			if (pd != NULL) {
				json_object_del(c, "policy.rego");
				json_object_set_new(c, "agent_policy_claims", pd);
			}
		}
	}
	*claims = c;
	json_decref(doc);
	return 0;
}

char *as_evaluate(struct as *a, const uint8_t *req, size_t len, struct err *err)
{
	Attestation__AttestationRequest *r =
	    attestation__attestation_request__unpack(NULL, len, req);
	json_t *submods = json_object();
	int counts[8] = {0};
	const char *classes[8] = {0};
	char *token = NULL;

	dependency_down = 0;
	if (r == NULL) {
		err_set(err,
		        "Attestation evaluation failed: \n0: request is not an AttestationRequest");
		goto out;
	}
	if (r->n_verification_requests == 0) {
		err_set(err,
		        "Attestation evaluation failed: \n0: No verification requests provided.");
		goto out;
	}
	const char *policy_id = r->n_policy_ids ? r->policy_ids[0] : "default";
	for (size_t i = 0; i < r->n_verification_requests; i++) {
		Attestation__IndividualAttestationRequest *ir = r->verification_requests[i];
		const struct verifier *v = verifier_find(ir->tee);
		uint8_t rd[HASH_MAX], idh[HASH_MAX];
		size_t rdlen = 0, idlen = 0;
		uint8_t *rawrd = NULL, *rawid = NULL;
		json_t *rdc = NULL, *idc = NULL, *ev = NULL;
		struct verify_result res = {0};
		int ok = 0;
		if (v == NULL) {
			err_set(err, "parse TEE type: Unsupported TEE type: %s", ir->tee);
			goto fail;
		}
		size_t evlen;
		char *evtext = b64url_text(ir->evidence, &evlen, err);
		if (evtext == NULL || (ev = json_loadb(evtext, evlen, 0, NULL)) == NULL) {
			free(evtext);
			err_set(err, "evidence is not base64url of a JSON document");
			goto fail;
		}
		free(evtext);
		struct verify_request vr = {.evidence = ev};
		if (ir->runtime_data_case ==
		    ATTESTATION__INDIVIDUAL_ATTESTATION_REQUEST__RUNTIME_DATA_STRUCTURED_RUNTIME_DATA) {
			enum hash_alg alg =
			    ir->runtime_data_hash_algorithm[0]
			        ? hash_alg_from_name(ir->runtime_data_hash_algorithm)
			        : HASH_SHA384;
			rdc = json_loads(ir->structured_runtime_data, JSON_DECODE_ANY, NULL);
			char *canon = rdc ? jcs_serialize(rdc, NULL) : NULL;
			if (canon == NULL || alg == HASH_NONE) {
				free(canon);
				err_set(err, "structured runtime data is not JSON, or its hash "
				             "algorithm is unknown");
				goto fail;
			}
			rdlen = hash_digest(alg, canon, strlen(canon), rd);
			free(canon);
			vr.report_data = rd;
			vr.report_data_len = rdlen;
		} else if (
		    ir->runtime_data_case ==
		    ATTESTATION__INDIVIDUAL_ATTESTATION_REQUEST__RUNTIME_DATA_RAW_RUNTIME_DATA) {
			if (b64_decode(ir->raw_runtime_data, strlen(ir->raw_runtime_data),
			               B64_URL | B64_LENIENT, &rawrd, &rdlen) < 0) {
				err_set(err, "raw runtime data is not base64url");
				goto fail;
			}
			vr.report_data = rawrd;
			vr.report_data_len = rdlen;
		}
		if (ir->init_data_case ==
		    ATTESTATION__INDIVIDUAL_ATTESTATION_REQUEST__INIT_DATA_INIT_DATA_TOML) {
			if (init_data_toml(ir->init_data_toml, idh, &idlen, &idc, err) < 0)
				goto fail;
			vr.init_data_hash = idh;
			vr.init_data_hash_len = idlen;
		} else if (
		    ir->init_data_case ==
		    ATTESTATION__INDIVIDUAL_ATTESTATION_REQUEST__INIT_DATA_INIT_DATA_DIGEST) {
			if (b64_decode(ir->init_data_digest, strlen(ir->init_data_digest),
			               B64_URL | B64_LENIENT, &rawid, &idlen) < 0) {
				err_set(err, "init data digest is not base64url");
				goto fail;
			}
			vr.init_data_hash = rawid;
			vr.init_data_hash_len = idlen;
		}
		if (err != NULL)
			err->code = 0;
		if (v->verify(&vr, &res, err) < 0) {
			if (err != NULL && err->code == ERR_UNAVAILABLE)
				dependency_down = 1;
			goto fail;
		}
		for (size_t j = 0; j < res.n; j++) {
			json_t *input =
			    claims_policy_input(ir->tee, res.items[j].claims, rdc, idc, a->verbose);
			json_t *ap = appraise(a, policy_id, res.items[j].tee_class, input, err);
			json_decref(input);
			if (ap == NULL)
				goto fail;
			int slot = 0;
			while (slot < 8 && classes[slot] &&
			       strcmp(classes[slot], res.items[j].tee_class))
				slot++;
			if (slot == 8) {
				json_decref(ap);
				err_set(err, "too many device classes");
				goto fail;
			}
			if (classes[slot] == NULL)
				classes[slot] = strdup(res.items[j].tee_class);
			char name[40];
			snprintf(name, sizeof(name), "%s%d", res.items[j].tee_class,
			         counts[slot]++);
			json_object_set_new(submods, name, ap);
		}
		ok = 1;
	fail:
		verify_result_clear(&res);
		json_decref(ev);
		json_decref(rdc);
		json_decref(idc);
		free(rawrd);
		free(rawid);
		if (!ok) {
			err_prefix(err, "Attestation evaluation failed: \n0");
			goto out;
		}
	}
	/* submods sorted by name, as serde emits a BTreeMap */
	json_t *sorted = json_object();
	{
		const char *names[64];
		size_t n = 0;
		const char *k;
		json_t *v;
		json_object_foreach(submods, k, v) if (n < 64) names[n++] = k;
		for (size_t x = 1; x < n; x++)
			for (size_t y = x; y > 0 && strcmp(names[y - 1], names[y]) > 0; y--) {
				const char *t = names[y];
				names[y] = names[y - 1];
				names[y - 1] = t;
			}
		for (size_t x = 0; x < n; x++)
			json_object_set(sorted, names[x], json_object_get(submods, names[x]));
	}
	time_t now = time(NULL);
	json_t *claims = json_pack("{s:s,s:I,s:{s:s,s:s},s:o,s:I,s:s}", "eat_profile", a->profile,
	                           "iat", (json_int_t)now, "ear.verifier-id", "developer",
	                           a->developer, "build", a->build, "submods", sorted, "exp",
	                           (json_int_t)(now + a->duration_min * 60), "iss", a->issuer);
	json_t *hdr = json_pack("{s:s,s:s,s:O}", "typ", "JWT", "alg", "ES256", "jwk", a->jwk);
	token = jws_sign(hdr, claims, a->signer, "ES256", err);
	json_decref(hdr);
	json_decref(claims);
out:
	if (token == NULL && err != NULL)
		err->code = dependency_down ? GRPCX_UNAVAILABLE : GRPCX_ABORTED;
	for (int i = 0; i < 8; i++)
		free((char *)classes[i]);
	json_decref(submods);
	if (r)
		attestation__attestation_request__free_unpacked(r, NULL);
	return token;
}
