/*
 * in_toto extractor: message type "in-toto". The payload is standard base64 of either
 *   - a DSSE envelope (keyful): one of its signatures must verify over the PAE with one of
 *     extractors.in_toto_extractor.trusted_keys (PEM public keys or certificates), or
 *   - a Sigstore bundle (v0.1-v0.3) holding a DSSE envelope (keyless): verified offline
 *     against sigstore.trusted_root, its certificate's OIDC issuer equal to, and its SAN
 *     matched by the POSIX extended regex of, one of sigstore.identities; a bundle signed
 *     with a key instead verifies against trusted_keys.
 * The envelope's payload must be an in-toto Statement; each subject becomes a reference
 * value named by the subject's name, valued by its digests in hex (every algorithm given,
 * sorted by algorithm name). Without any configured trust the extractor refuses everything:
 * an in-toto message is accepted for its signature, never for arriving.
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "config.h"
#include "jose/jose.h"
#include "rvps/extractors.h"
#include "rvps/extractors/dsse.h"
#include "rvps/extractors/sigstore.h"

#define MAX_IDENTITIES 32

struct tkey {
	EVP_PKEY *pkey;
	char fpr[72]; /* "sha256:" + hex of the SubjectPublicKeyInfo */
};

struct in_toto_cfg {
	struct tkey *keys;
	size_t n_keys;
	struct sigstore_root *root; /* NULL: no keyless trust */
	struct sigstore_identity ids[MAX_IDENTITIES];
	regex_t res[MAX_IDENTITIES];
	char *issuers[MAX_IDENTITIES];
	size_t n_ids;
};

static void cfg_free(void *p)
{
	struct in_toto_cfg *c = p;

	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n_keys; i++)
		EVP_PKEY_free(c->keys[i].pkey);
	free(c->keys);
	sigstore_root_free(c->root);
	for (size_t i = 0; i < c->n_ids; i++) {
		regfree(&c->res[i]);
		free(c->issuers[i]);
	}
	free(c);
}

static int add_key(struct in_toto_cfg *c, const char *path, struct err *err)
{
	EVP_PKEY *k = pem_read_public_key(path, err);
	struct tkey *nk;
	unsigned char *der = NULL, md[32];
	int dl;
	char *hex;

	if (k == NULL)
		return err_prefix(err, "trusted key %s", path);
	nk = realloc(c->keys, (c->n_keys + 1) * sizeof(*nk));
	if (nk == NULL) {
		EVP_PKEY_free(k);
		return err_set(err, "out of memory");
	}
	c->keys = nk;
	dl = i2d_PUBKEY(k, &der);
	if (dl <= 0 || EVP_Digest(der, (size_t)dl, md, NULL, EVP_sha256(), NULL) != 1 ||
	    (hex = hex_encode(md, 32)) == NULL) {
		OPENSSL_free(der);
		EVP_PKEY_free(k);
		return err_set(err, "trusted key %s: cannot encode the public key", path);
	}
	OPENSSL_free(der);
	nk = &c->keys[c->n_keys++];
	nk->pkey = k;
	snprintf(nk->fpr, sizeof(nk->fpr), "sha256:%s", hex);
	free(hex);
	return 0;
}

static int add_identity(struct in_toto_cfg *c, const json_t *id, size_t i, struct err *err)
{
	static const char *const known[] = {"issuer", "subject_regex", NULL};
	const json_t *iss = json_object_get(id, "issuer"),
	             *re = json_object_get(id, "subject_regex");
	int rc;

	if (!json_is_object(id) ||
	    rvps_config_only(id, "in_toto_extractor.sigstore.identities[]", known, err) < 0)
		return json_is_object(id)
		           ? -1
		           : err_set(err, "sigstore.identities[%zu] must be an object", i);
	if (!json_is_string(iss) || json_string_length(iss) == 0 || !json_is_string(re))
		return err_set(
		    err, "sigstore.identities[%zu] needs \"issuer\" and \"subject_regex\" strings",
		    i);
	rc = regcomp(&c->res[c->n_ids], json_string_value(re), REG_EXTENDED | REG_NOSUB);
	if (rc != 0)
		return err_set(err,
		               "sigstore.identities[%zu].subject_regex is not a POSIX extended "
		               "regular expression",
		               i);
	c->issuers[c->n_ids] = strdup(json_string_value(iss));
	c->ids[c->n_ids].issuer = c->issuers[c->n_ids];
	c->ids[c->n_ids].san_regex = &c->res[c->n_ids];
	c->n_ids++;
	return c->issuers[c->n_ids - 1] ? 0 : err_set(err, "out of memory");
}

static int init_sigstore(struct in_toto_cfg *c, const json_t *s, struct err *err)
{
	static const char *const known[] = {"trusted_root", "identities", NULL};
	const json_t *tr = json_object_get(s, "trusted_root"),
	             *ids = json_object_get(s, "identities");
	size_t len = 0, i;
	uint8_t *buf;
	const json_t *id;

	if (!json_is_object(s))
		return err_set(err, "sigstore must be an object");
	if (rvps_config_only(s, "in_toto_extractor.sigstore", known, err) < 0)
		return -1;
	if (!json_is_string(tr))
		return err_set(err, "sigstore.trusted_root must name a trusted root JSON file");
	if (!json_is_array(ids) || json_array_size(ids) == 0 ||
	    json_array_size(ids) > MAX_IDENTITIES)
		return err_set(err, "sigstore.identities must list 1..%d {issuer, subject_regex}",
		               MAX_IDENTITIES);
	buf = (uint8_t *)file_read_all(json_string_value(tr), &len, err);
	if (buf == NULL)
		return err_prefix(err, "sigstore.trusted_root %s", json_string_value(tr));
	if (sigstore_root_parse(buf, len, &c->root, err) < 0) {
		free(buf);
		return err_prefix(err, "sigstore.trusted_root %s", json_string_value(tr));
	}
	free(buf);
	json_array_foreach(ids, i, id)
	{
		if (add_identity(c, id, i, err) < 0)
			return -1;
	}
	return 0;
}

static int in_toto_init(const json_t *config, void **state, struct err *err)
{
	static const char *const known[] = {"trusted_keys", "sigstore", NULL};
	struct in_toto_cfg *c = calloc(1, sizeof(*c));
	const json_t *keys = config ? json_object_get(config, "trusted_keys") : NULL;
	const json_t *one, *s = config ? json_object_get(config, "sigstore") : NULL;
	size_t i;

	if (c == NULL)
		return err_set(err, "out of memory");
	if (config != NULL && rvps_config_only(config, "in_toto_extractor", known, err) < 0)
		goto fail;
	if (keys != NULL && !json_is_array(keys)) {
		err_set(err, "trusted_keys must be an array of file names");
		goto fail;
	}
	json_array_foreach(keys, i, one)
	{
		if (!json_is_string(one)) {
			err_set(err, "trusted_keys must be an array of file names");
			goto fail;
		}
		if (add_key(c, json_string_value(one), err) < 0)
			goto fail;
	}
	if (s != NULL && !json_is_null(s) && init_sigstore(c, s, err) < 0)
		goto fail;
	*state = c;
	return 0;
fail:
	cfg_free(c);
	return -1;
}

/* ---- extraction ---- */

static int keyful_dsse(const struct in_toto_cfg *c, const struct dsse_envelope *env, json_t *prov,
                       struct err *err)
{
	struct err last;

	if (c == NULL || c->n_keys == 0)
		return err_set(err,
		               "a DSSE envelope needs extractors.in_toto_extractor.trusted_keys");
	err_set(&last, "no signature");
	for (size_t k = 0; k < c->n_keys; k++)
		for (size_t i = 0; i < env->n_sigs; i++)
			if (dsse_verify_sig(env, i, c->keys[k].pkey, &last) == 0) {
				if (prov != NULL) {
					json_object_set_new(prov, "signer_key",
					                    json_string(c->keys[k].fpr));
					json_object_set_new(prov, "signature_alg",
					                    json_string("DSSE"));
				}
				return 0;
			}
	return err_set(err,
	               "the DSSE envelope's %zu signature(s) verify with none of the %zu trusted "
	               "keys (last: %s)",
	               env->n_sigs, c->n_keys, last.msg);
}

static void set_time(json_t *prov, const char *key, time_t t)
{
	struct tm tm;
	char buf[32];

	if (prov == NULL || t == 0 || gmtime_r(&t, &tm) == NULL)
		return;
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(prov, key, json_string(buf));
}

static int sigstore_bundle_check(const struct in_toto_cfg *c, const struct sigstore_bundle *b,
                                 time_t now, json_t *prov, struct err *err)
{
	struct sigstore_policy pol = {0};
	struct sigstore_result res;
	struct err last;

	if (!b->is_dsse)
		return err_set(err, "the Sigstore bundle holds a message signature, not a DSSE "
		                    "envelope with an in-toto statement");
	if (b->has_public_key) {
		if (c == NULL || c->n_keys == 0 || c->root == NULL)
			return err_set(err, "a key-signed Sigstore bundle needs trusted_keys and "
			                    "sigstore.trusted_root");
		err_set(&last, "no key");
		for (size_t k = 0; k < c->n_keys; k++) {
			pol.key = c->keys[k].pkey;
			if (sigstore_verify(c->root, b, &pol, NULL, now, &res, &last) == 0) {
				if (prov != NULL) {
					json_object_set_new(prov, "signer_key",
					                    json_string(c->keys[k].fpr));
					json_object_set_new(prov, "signature_alg",
					                    json_string("Sigstore DSSE"));
				}
				set_time(prov, "signed_at", res.signed_at);
				return 0;
			}
		}
		return err_set(err,
		               "the Sigstore bundle verifies with none of the trusted keys "
		               "(last: %s)",
		               last.msg);
	}
	if (c == NULL || c->root == NULL)
		return err_set(err,
		               "a Sigstore bundle needs extractors.in_toto_extractor.sigstore");
	pol.ids = c->ids;
	pol.n_ids = c->n_ids;
	if (sigstore_verify(c->root, b, &pol, NULL, now, &res, err) < 0)
		return err_prefix(err, "Sigstore bundle");
	if (prov != NULL) {
		json_object_set_new(prov, "signer", json_string(res.san));
		json_object_set_new(prov, "signer_issuer", json_string(res.issuer));
		json_object_set_new(prov, "signature_alg", json_string("Sigstore DSSE"));
	}
	set_time(prov, "signed_at", res.signed_at);
	return 0;
}

static int statement_values(const struct dsse_envelope *env, json_t **out, struct err *err)
{
	if (strcmp(env->payload_type, INTOTO_PAYLOAD_TYPE) != 0)
		return err_set(err, "the DSSE payloadType is %s, not %s", env->payload_type,
		               INTOTO_PAYLOAD_TYPE);
	return intoto_statement_parse(env->payload, env->payload_len, out, err);
}

static int in_toto_extract_ctx(const struct rvps_extract_ctx *ctx, const char *payload, size_t len,
                               json_t **out, struct err *err)
{
	const struct in_toto_cfg *c = ctx->state;
	struct sigstore_bundle *b = NULL;
	struct dsse_envelope env = {0};
	uint8_t *raw = NULL;
	size_t raw_len = 0;
	json_t *probe = NULL;
	int rc = -1;

	*out = NULL;
	if (b64_decode(payload, len, B64_STD, &raw, &raw_len) < 0)
		return err_set(err, "in-toto extractor: the payload is not valid standard base64");
	probe = json_loadb((const char *)raw, raw_len, 0, NULL);
	if (json_is_string(json_object_get(probe, "mediaType"))) {
		if (sigstore_bundle_parse(raw, raw_len, &b, err) < 0 ||
		    sigstore_bundle_check(c, b, ctx->now, ctx->provenance, err) < 0)
			goto out;
		rc = statement_values(&b->dsse, out, err);
	} else {
		if (dsse_parse(raw, raw_len, &env, err) < 0 ||
		    keyful_dsse(c, &env, ctx->provenance, err) < 0)
			goto out;
		rc = statement_values(&env, out, err);
	}
out:
	if (rc < 0)
		err_prefix(err, "in-toto extractor");
	json_decref(probe);
	sigstore_bundle_free(b);
	dsse_free(&env);
	free(raw);
	return rc;
}

/* Without a configuration there is nothing to trust: refused with the reason. */
static int in_toto_extract(const char *payload, size_t len, json_t **out, struct err *err)
{
	struct rvps_extract_ctx ctx = {.state = NULL, .now = time(NULL), .provenance = NULL};

	return in_toto_extract_ctx(&ctx, payload, len, out, err);
}

const struct rvps_extractor rvps_extractor_in_toto = {
    .type = "in-toto",
    .config_key = "in_toto_extractor",
    .extract = in_toto_extract,
    .init = in_toto_init,
    .state_free = cfg_free,
    .extract_ctx = in_toto_extract_ctx,
};
