/*
 * cca_token: parsing and verifying an Arm CCA attestation token (see cca_token.h). The
 * collection and each payload go through cborx (bounded depth, lengths checked against the
 * bytes left, no trailing bytes) before any claim is read; each claim is then checked for its
 * type and length, so the verifier above reads fixed-size fields it can trust the size of.
 * Claim keys are the RMM specification's (§A.7.2): the platform token uses the PSA/CCA labels
 * 265, 10, 256, 2395..2402; the realm token 10 and 44235..44240.
 */
#include "as/evidence/cca_token.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/param_build.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

enum {
	K_PROFILE = 265,
	K_CHALLENGE = 10,
	K_INST_ID = 256,
	K_LIFECYCLE = 2395,
	K_IMPL_ID = 2396,
	K_SW_COMPONENTS = 2399,
	K_SERVICE = 2400,
	K_CONFIG = 2401,
	K_P_HASH_ALG = 2402,
	K_PERSO = 44235,
	K_R_HASH_ALG = 44236,
	K_RAK = 44237,
	K_RIM = 44238,
	K_REM = 44239,
	K_RAK_HASH_ALG = 44240,
	SW_TYPE = 1,
	SW_VALUE = 2,
	SW_VERSION = 4,
	SW_SIGNER = 5,
	SW_HASH_ALG = 6,
};

static void sw_clear(struct cca_sw_component *c)
{
	free(c->type);
	free(c->version);
	free(c->hash_alg);
}

void cca_token_clear(struct cca_token *t)
{
	for (size_t i = 0; i < t->p.n_sw; i++)
		sw_clear(&t->p.sw[i]);
	free(t->p.profile);
	free(t->p.service);
	free(t->p.hash_alg);
	free(t->r.profile);
	free(t->r.hash_alg);
	free(t->r.rak_hash_alg);
	if (t->platform_map != NULL)
		cbor_decref(&t->platform_map);
	if (t->realm_map != NULL)
		cbor_decref(&t->realm_map);
	cose_sign1_clear(&t->platform);
	cose_sign1_clear(&t->realm);
	if (t->collection != NULL)
		cbor_decref(&t->collection);
	memset(t, 0, sizeof(*t));
}

/* Byte-string claim `key`; lens lists the lengths allowed (0-terminated; NULL = any non-empty
 * length). Absent is an error when required. */
static int claim_bytes(const cbor_item_t *map, int64_t key, const char *name, int required,
                       const size_t *lens, struct cca_bytes *out, struct err *err)
{
	cbor_item_t *it;

	if (cborx_map_int(map, key, &it, err) < 0)
		return err_prefix(err, "%s", name);
	if (it == NULL)
		return required ? err_set(err, "%s (%lld) is missing", name, (long long)key) : 0;
	if (cborx_bytes(it, &out->p, &out->len) < 0)
		return err_set(err, "%s is not a byte string", name);
	if (out->len == 0)
		return err_set(err, "%s is empty", name);
	if (lens == NULL)
		return 0;
	for (size_t i = 0; lens[i] != 0; i++)
		if (out->len == lens[i])
			return 0;
	return err_set(err, "%s is %zu bytes, not a length its profile allows", name, out->len);
}

static int claim_text(const cbor_item_t *map, int64_t key, const char *name, int required,
                      char **out, struct err *err)
{
	cbor_item_t *it;

	if (cborx_map_int(map, key, &it, err) < 0)
		return err_prefix(err, "%s", name);
	if (it == NULL)
		return required ? err_set(err, "%s (%lld) is missing", name, (long long)key) : 0;
	*out = cborx_text(it);
	if (*out == NULL)
		return err_set(err, "%s is not a text string", name);
	return 0;
}

static const size_t digest_lens[] = {32, 48, 64, 0};
static const size_t len_32[] = {32, 0}, len_33[] = {33, 0}, len_64[] = {64, 0};

static int parse_sw_component(const cbor_item_t *m, struct cca_sw_component *c, struct err *err)
{
	if (!cbor_isa_map(m))
		return err_set(err, "not a map");
	if (claim_text(m, SW_TYPE, "measurement-type", 0, &c->type, err) < 0 ||
	    claim_bytes(m, SW_VALUE, "measurement-value", 1, digest_lens, &c->value, err) < 0 ||
	    claim_text(m, SW_VERSION, "version", 0, &c->version, err) < 0 ||
	    claim_bytes(m, SW_SIGNER, "signer-id", 1, digest_lens, &c->signer_id, err) < 0 ||
	    claim_text(m, SW_HASH_ALG, "hash-algo-id", 0, &c->hash_alg, err) < 0)
		return -1;
	return 0;
}

static int parse_sw_components(const cbor_item_t *map, struct cca_platform_claims *p,
                               struct err *err)
{
	cbor_item_t *arr;

	if (cborx_map_int(map, K_SW_COMPONENTS, &arr, err) < 0)
		return err_prefix(err, "cca-platform-sw-components");
	if (arr == NULL)
		return err_set(err, "cca-platform-sw-components (2399) is missing");
	if (!cbor_isa_array(arr) || cbor_array_size(arr) == 0)
		return err_set(err, "cca-platform-sw-components is not a non-empty array");
	if (cbor_array_size(arr) > CCA_MAX_SW_COMPONENTS)
		return err_set(err, "cca-platform-sw-components lists %zu components, more than %d",
		               cbor_array_size(arr), CCA_MAX_SW_COMPONENTS);
	for (size_t i = 0; i < cbor_array_size(arr); i++) {
		p->n_sw = i + 1; /* so cca_token_clear frees what this one filled in */
		if (parse_sw_component(cbor_array_handle(arr)[i], &p->sw[i], err) < 0)
			return err_prefix(err, "cca-platform-sw-components[%zu]", i);
	}
	return 0;
}

static int parse_platform(const cbor_item_t *m, struct cca_platform_claims *p, struct err *err)
{
	cbor_item_t *lc;

	if (!cbor_isa_map(m))
		return err_set(err, "the claims are not a map");
	if (claim_text(m, K_PROFILE, "cca-platform-profile", 1, &p->profile, err) < 0 ||
	    claim_bytes(m, K_CHALLENGE, "cca-platform-challenge", 1, digest_lens, &p->challenge,
	                err) < 0 ||
	    claim_bytes(m, K_IMPL_ID, "cca-platform-implementation-id", 1, len_32, &p->impl_id,
	                err) < 0 ||
	    claim_bytes(m, K_INST_ID, "cca-platform-instance-id", 1, len_33, &p->inst_id, err) <
	        0 ||
	    claim_bytes(m, K_CONFIG, "cca-platform-config", 1, NULL, &p->config, err) < 0 ||
	    claim_text(m, K_SERVICE, "cca-platform-service-indicator", 0, &p->service, err) < 0 ||
	    claim_text(m, K_P_HASH_ALG, "cca-platform-hash-algo-id", 1, &p->hash_alg, err) < 0)
		return -1;
	if (p->inst_id.p[0] != 0x01)
		return err_set(err, "cca-platform-instance-id is not a RAND UEID (type 0x%02x)",
		               p->inst_id.p[0]);
	if (cborx_map_int(m, K_LIFECYCLE, &lc, err) < 0)
		return err_prefix(err, "cca-platform-lifecycle");
	if (lc == NULL || !cbor_isa_uint(lc) || cborx_int(lc, &p->lifecycle) < 0 ||
	    p->lifecycle > 0xffff)
		return err_set(err, "cca-platform-lifecycle is missing or not a 16-bit unsigned "
		                    "integer");
	return parse_sw_components(m, p, err);
}

static int parse_rem(const cbor_item_t *m, struct cca_realm_claims *r, struct err *err)
{
	cbor_item_t *arr;

	if (cborx_map_int(m, K_REM, &arr, err) < 0)
		return err_prefix(err, "cca-realm-extensible-measurements");
	if (arr == NULL || !cbor_isa_array(arr) || cbor_array_size(arr) != CCA_REM_COUNT)
		return err_set(err, "cca-realm-extensible-measurements is not an array of %d",
		               CCA_REM_COUNT);
	for (size_t i = 0; i < CCA_REM_COUNT; i++)
		if (cborx_bytes(cbor_array_handle(arr)[i], &r->rem[i].p, &r->rem[i].len) < 0 ||
		    r->rem[i].len != r->rim.len)
			return err_set(
			    err,
			    "cca-realm-extensible-measurements[%zu] is not a byte string "
			    "as long as the initial measurement (%zu)",
			    i, r->rim.len);
	return 0;
}

static int parse_realm(const cbor_item_t *m, struct cca_realm_claims *r, struct err *err)
{
	if (!cbor_isa_map(m))
		return err_set(err, "the claims are not a map");
	if (claim_text(m, K_PROFILE, "cca-realm-profile", 0, &r->profile, err) < 0 ||
	    claim_bytes(m, K_CHALLENGE, "cca-realm-challenge", 1, len_64, &r->challenge, err) < 0 ||
	    claim_bytes(m, K_PERSO, "cca-realm-personalization-value", 1, len_64, &r->perso, err) <
	        0 ||
	    claim_bytes(m, K_RIM, "cca-realm-initial-measurement", 1, digest_lens, &r->rim, err) <
	        0 ||
	    claim_text(m, K_R_HASH_ALG, "cca-realm-hash-algo-id", 1, &r->hash_alg, err) < 0 ||
	    claim_bytes(m, K_RAK, "cca-realm-public-key", 1, NULL, &r->rak, err) < 0 ||
	    claim_text(m, K_RAK_HASH_ALG, "cca-realm-public-key-hash-algo-id", 1, &r->rak_hash_alg,
	               err) < 0)
		return -1;
	return parse_rem(m, r, err);
}

/* One COSE_Sign1 entry of the collection: parsed, its payload decoded as a claims map. In a
 * CMW collection (tag 907) the entry is [263 (the EAT CWT CoAP content format), bytes]. */
static int parse_signed(const cbor_item_t *v, int cmw, const char *name, struct cose_sign1 *s,
                        cbor_item_t **map, struct err *err)
{
	const uint8_t *p;
	size_t n;
	int64_t cf;

	if (cmw) {
		if (!cbor_isa_array(v) || cbor_array_size(v) != 2 ||
		    cborx_int(cbor_array_handle(v)[0], &cf) < 0 || cf != CCA_CF_EAT_CWT)
			return err_set(err, "the %s token is not a [263, token] pair", name);
		v = cbor_array_handle(v)[1];
	}
	if (cborx_bytes(v, &p, &n) < 0)
		return err_set(err, "the %s token is not a byte string", name);
	if (cose_sign1_parse(p, n, s, err) < 0)
		return err_prefix(err, "%s token", name);
	*map = cborx_load(s->payload, s->payload_len, err);
	if (*map == NULL)
		return err_prefix(err, "%s token claims", name);
	return 0;
}

int cca_token_parse(const uint8_t *buf, size_t len, struct cca_token *out, struct err *err)
{
	cbor_item_t *m;
	struct cbor_pair *pairs;
	int64_t k;
	int cmw;

	memset(out, 0, sizeof(*out));
	out->collection = cborx_load(buf, len, err);
	if (out->collection == NULL)
		return err_prefix(err, "CCA token");
	m = cborx_untag(out->collection, CCA_TAG_COLLECTION);
	cmw = m == NULL;
	if (cmw)
		m = cborx_untag(out->collection, CCA_TAG_CMW_COLLECTION);
	if (m == NULL)
		return err_set(err, "CCA token: not a CCA token collection (CBOR tag 399 or 907)");
	if (!cbor_isa_map(m) || !cbor_map_is_definite(m) || cbor_map_size(m) != 2)
		return err_set(err, "CCA token: the collection is not a map of two tokens");
	pairs = cbor_map_handle(m);
	for (size_t i = 0; i < 2; i++)
		if (cborx_int(pairs[i].key, &k) < 0 ||
		    (k != CCA_KEY_PLATFORM && k != CCA_KEY_REALM))
			return err_set(err, "CCA token: the collection holds an entry other than "
			                    "the platform (44234) and realm (44241) tokens");
	for (size_t i = 0; i < 2; i++) {
		int is_platform = cborx_int(pairs[i].key, &k) == 0 && k == CCA_KEY_PLATFORM;
		if (is_platform ? out->platform_map != NULL : out->realm_map != NULL)
			return err_set(err, "CCA token: the %s token appears twice",
			               is_platform ? "platform" : "realm");
		if (parse_signed(pairs[i].value, cmw, is_platform ? "platform" : "realm",
		                 is_platform ? &out->platform : &out->realm,
		                 is_platform ? &out->platform_map : &out->realm_map, err) < 0)
			return err_prefix(err, "CCA token");
	}
	if (parse_platform(out->platform_map, &out->p, err) < 0)
		return err_prefix(err, "CCA platform token");
	if (parse_realm(out->realm_map, &out->r, err) < 0)
		return err_prefix(err, "CCA realm token");
	return 0;
}

/* An uncompressed P-384 point (0x04 || X || Y) as a key. */
static EVP_PKEY *p384_from_point(const uint8_t *pt, size_t len, struct err *err)
{
	OSSL_PARAM_BLD *b = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *key = NULL;

	if (len != 97 || pt[0] != 0x04) {
		err_set(err, "the realm public key is not an uncompressed P-384 point (%zu bytes)",
		        len);
		return NULL;
	}
	b = OSSL_PARAM_BLD_new();
	if (b == NULL ||
	    OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, "secp384r1", 0) != 1 ||
	    OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pt, len) != 1 ||
	    (params = OSSL_PARAM_BLD_to_param(b)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1 || key == NULL) {
		EVP_PKEY_free(key);
		key = NULL;
		err_set(err, "the realm public key is not a point on P-384");
	}
	/* On the curve, checked here; the full check's n*Q = O adds a scalar multiplication a
	 * cofactor-1 curve does not need (bench-cca: 2036 -> 1488 us per token). */
	if (key != NULL) {
		EVP_PKEY_CTX *chk = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
		if (chk == NULL || EVP_PKEY_public_check_quick(chk) != 1) {
			EVP_PKEY_free(key);
			key = NULL;
			err_set(err, "the realm public key is not a point on P-384");
		}
		EVP_PKEY_CTX_free(chk);
	}
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(b);
	return key;
}

/* A COSE_Key (RFC 9053 §7.1.1) of kty EC2 (2), crv P-384 (2), x and y of 48 bytes. */
static EVP_PKEY *p384_from_cose_key(const uint8_t *buf, size_t len, struct err *err)
{
	cbor_item_t *m = cborx_load(buf, len, err), *kty, *crv, *x, *y;
	const uint8_t *xp, *yp;
	size_t xl, yl;
	int64_t kv, cv;
	uint8_t pt[97];
	EVP_PKEY *key = NULL;

	if (m == NULL) {
		err_prefix(err, "the realm public key");
		return NULL;
	}
	if (!cbor_isa_map(m) || cborx_map_int(m, 1, &kty, err) < 0 ||
	    cborx_map_int(m, -1, &crv, err) < 0 || cborx_map_int(m, -2, &x, err) < 0 ||
	    cborx_map_int(m, -3, &y, err) < 0 || kty == NULL || crv == NULL ||
	    cborx_int(kty, &kv) < 0 || cborx_int(crv, &cv) < 0 || kv != 2 || cv != 2 || x == NULL ||
	    y == NULL || cborx_bytes(x, &xp, &xl) < 0 || cborx_bytes(y, &yp, &yl) < 0 || xl != 48 ||
	    yl != 48) {
		err_set(err, "the realm public key is not a COSE_Key for an EC2 P-384 point");
		goto out;
	}
	pt[0] = 0x04;
	memcpy(pt + 1, xp, 48);
	memcpy(pt + 49, yp, 48);
	key = p384_from_point(pt, sizeof(pt), err);
out:
	cbor_decref(&m);
	return key;
}

EVP_PKEY *cca_token_rak(const struct cca_token *t, struct err *err)
{
	/* The legacy profile (no realm profile claim) carries the raw point; later profiles a
	 * COSE_Key. */
	if (t->r.profile == NULL)
		return p384_from_point(t->r.rak.p, t->r.rak.len, err);
	return p384_from_cose_key(t->r.rak.p, t->r.rak.len, err);
}

int cca_token_verify_realm(const struct cca_token *t, struct err *err)
{
	enum hash_alg alg = hash_alg_from_name(t->r.rak_hash_alg);
	uint8_t d[HASH_MAX];
	size_t dl;
	EVP_PKEY *rak = cca_token_rak(t, err);
	int rc;

	if (rak == NULL)
		return err_prefix(err, "CCA realm token");
	rc = cose_sign1_verify(&t->realm, rak, err);
	EVP_PKEY_free(rak);
	if (rc < 0)
		return err_prefix(err, "CCA realm token not signed by its realm attestation key");
	if (strcmp(t->r.rak_hash_alg, "sha-256") != 0 &&
	    strcmp(t->r.rak_hash_alg, "sha-384") != 0 && strcmp(t->r.rak_hash_alg, "sha-512") != 0)
		return err_set(err,
		               "CCA realm token: cca-realm-public-key-hash-algo-id %.32s is "
		               "not sha-256, sha-384 or sha-512",
		               t->r.rak_hash_alg);
	dl = hash_digest(alg, t->r.rak.p, t->r.rak.len, d);
	if (dl == 0 || dl != t->p.challenge.len || CRYPTO_memcmp(d, t->p.challenge.p, dl) != 0)
		return err_set(err,
		               "CCA token binding: the platform challenge is not the %s of "
		               "the realm public key",
		               t->r.rak_hash_alg);
	return 0;
}

int cca_token_verify_platform(const struct cca_token *t, EVP_PKEY *cpak, struct err *err)
{
	if (cose_sign1_verify(&t->platform, cpak, err) < 0)
		return err_prefix(err, "CCA platform token not signed by the CPAK of its instance");
	return 0;
}
