/*
 * cca verifier (as-rvps.md §5.9), local mode: an Arm CCA token collection checked against a
 * trust-anchor store and appraised against a reference-value store, both in the JSON layout
 * of Trustee's `cca-verifier` local configuration (the ccatoken store format):
 *
 *   ta-store: [{"instance-id": hex(33), "implementation-id": hex(32), "pkey": JWK}, ...]
 *   rv-store: {"platform": [{"implementation-id", "platform-configuration",
 *                            "sw-components": [{"measurement-value", "signer-id",
 *                                               "component-type"?, "version"?}, ...]}],
 *              "realm": [{"initial-measurement", "rak-hash-algorithm",
 *                         "extensible-measurements"?, "personalization-value"?}]}
 *
 * The configuration comes from `verifier_config.cca_verifier`, else from the file named by
 * CCA_CONFIG_FILE (default /opt/confidential-containers/attestation-service/cca/config.json),
 * as {"cca-verifier": {"type": "local", "ta-store": path, "rv-store": path}}; both stores are
 * read once, at init. Evidence: {"token": [byte values]}. The checklist, in order:
 *   1. the token parses (cca_token.c);
 *   2. its platform instance id has a CPAK in the TA store, for the same implementation id;
 *   3. the platform token verifies with that CPAK;
 *   4. the realm token verifies with its RAK, and the platform challenge is the RAK's hash;
 *   5. the realm challenge equals the expected report data (required; regularized to 64);
 *   6. an init-data hash, when given, equals the personalization value (exact bytes);
 *   7. appraisal: the platform lifecycle is "secured" (0x30xx), an RV-store platform entry for
 *      the implementation id has the token's configuration and software components, and an
 *      RV-store realm entry has the token's initial measurement (and its extensible
 *      measurements and personalization value when it names them).
 * Trustee computes step 7 into trust vectors it then drops; here an unmatched appraisal
 * refuses the token with the reason, since an RV store nobody enforces protects nothing.
 * The claims are §5.9's kebab-case objects `realm` and `platform`, standard base64 values.
 *
 * Remote mode ({"type": "remote", "address": url, "ca-cert"?: path}): steps 1, 5 and 6 are
 * done here, then the token goes to a Veraison verifier (as/collateral/veraison.c) with the
 * realm challenge as the nonce; its EAR must verify under the verifier's published key with
 * that nonce, affirm the realm's instance identity (RAK signature and binding), not call the
 * platform contraindicated, and carry for both submods exactly the claims we parsed. The
 * signatures and the appraisal are then the remote verifier's word, not checked here.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "as/collateral/veraison.h"
#include "as/evidence/cca_token.h"
#include "as/verifiers/verifier.h"
#include "b64.h"
#include "config.h"
#include "jose/jose.h"

#define CCA_DEFAULT_CONFIG "/opt/confidential-containers/attestation-service/cca/config.json"
#define CCA_MAX_TOKEN (64 * 1024)
#define CCA_MAX_TA 1024
#define CCA_MEDIA_TYPE "application/eat-collection; profile=\"http://arm.com/CCA-SSD/1.0.0\""

struct ta {
	uint8_t inst_id[CCA_INST_ID_LEN], impl_id[CCA_IMPL_ID_LEN];
	EVP_PKEY *cpak; /* owned */
};

/* Set by init before any verify runs, then only read. configured == 0: no CCA verifier. */
static struct {
	int configured;
	struct ta *tas; /* owned, n_tas entries */
	size_t n_tas;
	json_t *rv; /* owned: the RV store document */
	int remote;
	char *address, *ca_file; /* owned; remote mode only */
} cfg;

static void cfg_clear(void)
{
	for (size_t i = 0; i < cfg.n_tas; i++)
		EVP_PKEY_free(cfg.tas[i].cpak);
	free(cfg.tas);
	json_decref(cfg.rv);
	free(cfg.address);
	free(cfg.ca_file);
	memset(&cfg, 0, sizeof(cfg));
}

/* hex string of exactly n bytes into out. */
static int hex_exact(const json_t *s, uint8_t *out, size_t n)
{
	const char *h = json_string_value(s);
	uint8_t *b = NULL;
	size_t bl = 0;

	if (h == NULL || hex_decode(h, strlen(h), &b, &bl) < 0 || bl != n) {
		free(b);
		return -1;
	}
	memcpy(out, b, n);
	free(b);
	return 0;
}

/* A store file: JSON, repeated keys refused. */
static json_t *load_json(const char *path, struct err *err)
{
	size_t len;
	char *buf = file_read_all(path, &len, err);
	json_error_t je;
	json_t *doc;

	if (buf == NULL)
		return NULL;
	doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	free(buf);
	if (doc == NULL)
		err_set(err, "%s: line %d: %s", path, je.line, je.text);
	return doc;
}

static int load_tas(const char *path, struct err *err)
{
	json_t *doc = load_json(path, err), *e;
	size_t i;

	if (doc == NULL)
		return err_prefix(err, "ta-store");
	if (!json_is_array(doc) || json_array_size(doc) == 0 || json_array_size(doc) > CCA_MAX_TA) {
		json_decref(doc);
		return err_set(err, "ta-store %s is not an array of 1 to %d trust anchors", path,
		               CCA_MAX_TA);
	}
	cfg.tas = calloc(json_array_size(doc), sizeof(*cfg.tas));
	if (cfg.tas == NULL) {
		json_decref(doc);
		return err_set(err, "out of memory");
	}
	json_array_foreach(doc, i, e)
	{
		struct ta *t = &cfg.tas[i];
		if (hex_exact(json_object_get(e, "instance-id"), t->inst_id, CCA_INST_ID_LEN) < 0 ||
		    hex_exact(json_object_get(e, "implementation-id"), t->impl_id,
		              CCA_IMPL_ID_LEN) < 0) {
			json_decref(doc);
			return err_set(err,
			               "ta-store entry %zu: instance-id must be 33 and "
			               "implementation-id 32 bytes of hex",
			               i);
		}
		t->cpak = jwk_to_pkey(json_object_get(e, "pkey"), err);
		if (t->cpak == NULL || cose_key_alg(t->cpak) == 0) {
			json_decref(doc);
			return err_set(err,
			               "ta-store entry %zu: pkey is not an EC P-256/P-384 or "
			               "Ed25519 public key",
			               i);
		}
		cfg.n_tas = i + 1;
	}
	json_decref(doc);
	return 0;
}

static int load_rv(const char *path, struct err *err)
{
	cfg.rv = load_json(path, err);
	if (cfg.rv == NULL)
		return err_prefix(err, "rv-store");
	if (!json_is_object(cfg.rv) || !json_is_array(json_object_get(cfg.rv, "platform")) ||
	    !json_is_array(json_object_get(cfg.rv, "realm")))
		return err_set(err, "rv-store %s needs the arrays `platform` and `realm`", path);
	return 0;
}

static int configure_remote(const json_t *c, struct err *err)
{
	const char *addr = json_string_value(json_object_get(c, "address"));
	const char *ca = json_string_value(json_object_get(c, "ca-cert"));
	size_t n = addr ? strlen(addr) : 0;

	if (addr == NULL || (strncmp(addr, "https://", 8) != 0 && strncmp(addr, "http://", 7) != 0))
		return err_set(err, "a remote cca-verifier needs an http(s) `address`");
	while (n > 0 && addr[n - 1] == '/')
		n--;
	cfg.address = strndup(addr, n);
	cfg.ca_file = ca ? strdup(ca) : NULL;
	if (cfg.address == NULL || (ca != NULL && cfg.ca_file == NULL))
		return err_set(err, "out of memory");
	cfg.remote = 1;
	cfg.configured = 1;
	return 0;
}

static int configure(const json_t *c, struct err *err)
{
	const char *type = json_string_value(json_object_get(c, "type"));
	const char *ta = json_string_value(json_object_get(c, "ta-store"));
	const char *rv = json_string_value(json_object_get(c, "rv-store"));

	if (type == NULL)
		return err_set(err, "cca-verifier needs a `type` (local or remote)");
	if (strcmp(type, "remote") == 0)
		return configure_remote(c, err);
	if (strcmp(type, "local") != 0)
		return err_set(err, "cca-verifier type %.32s is not local or remote", type);
	if (ta == NULL || rv == NULL)
		return err_set(err, "a local cca-verifier needs `ta-store` and `rv-store` paths");
	if (load_tas(ta, err) < 0 || load_rv(rv, err) < 0)
		return -1;
	cfg.configured = 1;
	return 0;
}

static int cca_init(const json_t *verifier_config, struct err *err)
{
	const json_t *c = json_object_get(verifier_config, "cca_verifier");
	const char *path = getenv("CCA_CONFIG_FILE");
	json_t *doc = NULL;
	int rc;

	cfg_clear();
	if (c == NULL) {
		/* Trustee's file; its absence at the default path means "CCA not set up" */
		if (path == NULL && access(CCA_DEFAULT_CONFIG, F_OK) != 0)
			return 0;
		doc = config_load(path ? path : CCA_DEFAULT_CONFIG, err);
		if (doc == NULL)
			return err_prefix(err, "CCA_CONFIG_FILE");
		c = json_object_get(doc, "cca-verifier");
		if (!json_is_object(c)) {
			json_decref(doc);
			return err_set(err, "%s has no `cca-verifier` object",
			               path ? path : CCA_DEFAULT_CONFIG);
		}
	}
	rc = configure(c, err);
	json_decref(doc);
	if (rc < 0)
		cfg_clear();
	return rc;
}

/* {"token": [byte values]} -> malloc'd bytes. */
static int token_bytes(const json_t *ev, uint8_t **out, size_t *len, struct err *err)
{
	const json_t *arr = json_object_get(ev, "token"), *e;
	size_t i, n = json_array_size(arr);

	if (!json_is_array(arr) || n == 0)
		return err_set(err, "CCA evidence lacks the byte array `token`");
	if (n > CCA_MAX_TOKEN)
		return err_set(err, "CCA token of %zu bytes is larger than %d", n, CCA_MAX_TOKEN);
	*out = malloc(n);
	if (*out == NULL)
		return err_set(err, "out of memory");
	json_array_foreach(arr, i, e)
	{
		if (!json_is_integer(e) || json_integer_value(e) < 0 ||
		    json_integer_value(e) > 255) {
			free(*out);
			*out = NULL;
			return err_set(err, "CCA evidence `token`[%zu] is not a byte", i);
		}
		(*out)[i] = (uint8_t)json_integer_value(e);
	}
	*len = n;
	return 0;
}

static const struct ta *find_ta(const struct cca_token *t)
{
	for (size_t i = 0; i < cfg.n_tas; i++)
		if (memcmp(cfg.tas[i].inst_id, t->p.inst_id.p, CCA_INST_ID_LEN) == 0)
			return &cfg.tas[i];
	return NULL;
}

/* Steps 2-4: the CPAK from the TA store, both signatures, the binding. */
static int verify_crypto(const struct cca_token *t, struct err *err)
{
	const struct ta *ta = find_ta(t);
	char *h;

	if (ta == NULL) {
		h = hex_encode(t->p.inst_id.p, t->p.inst_id.len);
		err_set(err, "CCA platform instance id %s has no CPAK in the trust anchor store",
		        h ? h : "?");
		free(h);
		return -1;
	}
	if (memcmp(ta->impl_id, t->p.impl_id.p, CCA_IMPL_ID_LEN) != 0)
		return err_set(err, "CCA platform implementation id differs from the one the trust "
		                    "anchor store gives for this instance");
	if (cca_token_verify_platform(t, ta->cpak, err) < 0 || cca_token_verify_realm(t, err) < 0)
		return -1;
	return 0;
}

/* Steps 5 and 6. */
static int verify_binding(const struct verify_request *req, const struct cca_token *t,
                          struct err *err)
{
	if (req->report_data == NULL)
		return err_set(err, "CCA verifier must be given the expected report data");
	if (verifier_bind(t->r.challenge.p, CCA_REALM_CHALLENGE_LEN, req->report_data,
	                  req->report_data_len, "CCA realm token challenge",
	                  "the expected report_data", err) < 0)
		return -1;
	if (req->init_data_hash != NULL &&
	    (req->init_data_hash_len != t->r.perso.len ||
	     CRYPTO_memcmp(req->init_data_hash, t->r.perso.p, t->r.perso.len) != 0))
		return err_set(err, "CCA init data hash differs from the realm personalization "
		                    "value");
	return 0;
}

/* A reference hex string equal to the bytes (a missing reference is no match). */
static int hex_eq(const json_t *s, const struct cca_bytes *b)
{
	const char *h = json_string_value(s);
	uint8_t *v = NULL;
	size_t vl = 0;
	int eq;

	if (h == NULL || hex_decode(h, strlen(h), &v, &vl) < 0)
		return 0;
	eq = vl == b->len && memcmp(v, b->p, vl) == 0;
	free(v);
	return eq;
}

/* An optional reference text: absent matches anything, present must be equal. */
static int text_eq(const json_t *s, const char *v)
{
	if (s == NULL)
		return 1;
	return json_is_string(s) && v != NULL && strcmp(json_string_value(s), v) == 0;
}

static int platform_matches(const json_t *rv, const struct cca_platform_claims *p)
{
	const json_t *sw = json_object_get(rv, "sw-components");

	if (!hex_eq(json_object_get(rv, "implementation-id"), &p->impl_id) ||
	    !hex_eq(json_object_get(rv, "platform-configuration"), &p->config) ||
	    json_array_size(sw) != p->n_sw)
		return 0;
	for (size_t i = 0; i < p->n_sw; i++) {
		const json_t *c = json_array_get(sw, i);
		if (!hex_eq(json_object_get(c, "measurement-value"), &p->sw[i].value) ||
		    !hex_eq(json_object_get(c, "signer-id"), &p->sw[i].signer_id) ||
		    !text_eq(json_object_get(c, "component-type"), p->sw[i].type) ||
		    !text_eq(json_object_get(c, "version"), p->sw[i].version))
			return 0;
	}
	return 1;
}

static int realm_matches(const json_t *rv, const struct cca_realm_claims *r)
{
	const json_t *rem = json_object_get(rv, "extensible-measurements");
	const json_t *perso = json_object_get(rv, "personalization-value");

	if (!hex_eq(json_object_get(rv, "initial-measurement"), &r->rim) ||
	    !text_eq(json_object_get(rv, "rak-hash-algorithm"), r->rak_hash_alg))
		return 0;
	if (perso != NULL && !hex_eq(perso, &r->perso))
		return 0;
	if (rem == NULL)
		return 1;
	if (json_array_size(rem) != CCA_REM_COUNT)
		return 0;
	for (size_t i = 0; i < CCA_REM_COUNT; i++)
		if (!hex_eq(json_array_get(rem, i), &r->rem[i]))
			return 0;
	return 1;
}

/* Step 7. */
static int appraise(const struct cca_token *t, struct err *err)
{
	const json_t *e;
	size_t i;
	int ok = 0;

	if ((t->p.lifecycle & 0xff00) != 0x3000)
		return err_set(err, "CCA platform lifecycle 0x%04llx is not \"secured\" (0x30xx)",
		               (unsigned long long)t->p.lifecycle);
	json_array_foreach(json_object_get(cfg.rv, "platform"), i, e) ok |=
	    platform_matches(e, &t->p);
	if (!ok)
		return err_set(err, "CCA platform appraisal: no reference value in the rv-store "
		                    "matches the implementation id, configuration and software "
		                    "components");
	ok = 0;
	json_array_foreach(json_object_get(cfg.rv, "realm"), i, e) ok |= realm_matches(e, &t->r);
	if (!ok)
		return err_set(err, "CCA realm appraisal: no reference value in the rv-store "
		                    "matches the initial measurement (and its extensible "
		                    "measurements and personalization value)");
	return 0;
}

static json_t *b64_json(const struct cca_bytes *b)
{
	char *s = b64_encode(b->p, b->len, B64_STD);
	json_t *j = s ? json_string(s) : NULL;
	free(s);
	return j;
}

static json_t *claims_of(const struct cca_token *t)
{
	const struct cca_realm_claims *r = &t->r;
	json_t *rem = json_array(), *c;

	for (size_t i = 0; rem != NULL && i < CCA_REM_COUNT; i++)
		json_array_append_new(rem, b64_json(&r->rem[i]));
	c = json_pack("{s:{s:o*,s:o*,s:o*,s:s,s:o*},s:{s:o*,s:o*}}", "realm",
	              "cca-realm-personalization-value", b64_json(&r->perso),
	              "cca-realm-initial-measurement", b64_json(&r->rim),
	              "cca-realm-extensible-measurements", rem, "cca-realm-hash-algo-id",
	              r->hash_alg, "cca-realm-challenge", b64_json(&r->challenge), "platform",
	              "cca-platform-instance-id", b64_json(&t->p.inst_id),
	              "cca-platform-implementation-id", b64_json(&t->p.impl_id));
	if (c != NULL) {
		verifier_claim_hex(c, "report_data", r->challenge.p, r->challenge.len);
		verifier_claim_hex(c, "init_data", r->perso.p, r->perso.len);
	}
	return c;
}

/* Every claim we give for the token must be what the verifier's EAR says of it. */
static int ear_agrees(const json_t *ours, const json_t *ear, const char *submod, struct err *err)
{
	const char *k;
	json_t *v, *ae = json_object_get(ear, "ear.veraison.annotated-evidence");

	json_object_foreach((json_t *)ours, k, v)
	{
		if (!json_equal(v, json_object_get(ae, k)))
			return err_set(err, "Veraison EAR: %s %s is not the token's", submod, k);
	}
	return 0;
}

/* Remote mode (§5.9): the token to a Veraison verifier, its EAR checked and compared. */
static int verify_remote(const struct cca_token *t, const uint8_t *buf, size_t len, struct err *err)
{
	struct veraison_cfg vc = {.address = cfg.address,
	                          .ca_file = cfg.ca_file,
	                          .media_type = CCA_MEDIA_TYPE,
	                          .timeout_ms = 30000};
	json_t *ear = NULL, *ours = claims_of(t), *sub, *realm, *platform;
	json_int_t ii;
	int rc = -1;

	if (ours == NULL)
		return err_set(err, "out of memory");
	if (veraison_verify(&vc, buf, len, t->r.challenge.p, t->r.challenge.len, &ear, err) < 0)
		goto out;
	sub = json_object_get(ear, "submods");
	realm = json_object_get(sub, "CCA_REALM");
	platform = json_object_get(sub, "CCA_SSD_PLATFORM");
	if (!json_is_object(realm) || !json_is_object(platform)) {
		err_set(err, "Veraison EAR lacks the CCA_REALM or CCA_SSD_PLATFORM submod");
		goto out;
	}
	ii = json_integer_value(json_object_get(
	    json_object_get(realm, "ear.trustworthiness-vector"), "instance-identity"));
	if (ii < 2 || ii > 31) {
		err_set(err,
		        "Veraison EAR: the realm's instance identity is not affirmed (%lld): "
		        "RAK signature or RAK attestation not verified",
		        (long long)ii);
		goto out;
	}
	if (json_is_string(json_object_get(platform, "ear.status")) &&
	    strcmp(json_string_value(json_object_get(platform, "ear.status")), "contraindicated") ==
	        0) {
		err_set(err, "Veraison EAR: the platform is contraindicated");
		goto out;
	}
	if (ear_agrees(json_object_get(ours, "realm"), realm, "CCA_REALM", err) < 0 ||
	    ear_agrees(json_object_get(ours, "platform"), platform, "CCA_SSD_PLATFORM", err) < 0)
		goto out;
	rc = 0;
out:
	json_decref(ear);
	json_decref(ours);
	return rc;
}

static int cca_verify(const struct verify_request *req, struct verify_result *out, struct err *err)
{
	struct cca_token t;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = -1;

	if (!cfg.configured)
		return err_set(err,
		               "no CCA verifier is configured (verifier_config.cca_verifier or "
		               "CCA_CONFIG_FILE)");
	if (token_bytes(req->evidence, &buf, &len, err) < 0)
		return -1;
	if (cca_token_parse(buf, len, &t, err) == 0 && verify_binding(req, &t, err) == 0 &&
	    (cfg.remote                    ? verify_remote(&t, buf, len, err)
	     : verify_crypto(&t, err) == 0 ? appraise(&t, err)
	                                   : -1) == 0)
		rc = verify_result_add(out, "cpu", claims_of(&t), err);
	cca_token_clear(&t);
	free(buf);
	return rc;
}

const struct verifier verifier_cca = {
    .tee = "cca",
    .init = cca_init,
    .verify = cca_verify,
};
