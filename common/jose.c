/*
 * jose: JWK import (see jose.h). Public keys only: RSA {n, e}, EC {crv, x, y} on P-256,
 * P-384 and P-521 with coordinates of exactly the curve's size, OKP Ed25519 {x}. The key
 * type decides what a key can be used for; nothing here looks at a JWK's `alg`.
 */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "jose.h"

static int member_bytes(const json_t *jwk, const char *k, uint8_t **out, size_t *len,
                        struct err *err)
{
	json_t *v = json_object_get(jwk, k);
	if (!json_is_string(v) ||
	    b64_decode(json_string_value(v), json_string_length(v), B64_URL | B64_LENIENT, out,
	               len) < 0 ||
	    *len == 0)
		return err_set(err, "JWK member `%s` must be non-empty base64url", k);
	return 0;
}

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld, struct err *err)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *pk = NULL;

	if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		EVP_PKEY_free(pk);
		pk = NULL;
		err_set(err, "JWK does not describe a valid %s public key", type);
	}
	OSSL_PARAM_free(params);
	EVP_PKEY_CTX_free(ctx);
	return pk;
}

static EVP_PKEY *rsa_from_jwk(const json_t *jwk, struct err *err)
{
	uint8_t *n = NULL, *e = NULL;
	size_t nl, el;
	EVP_PKEY *pk = NULL;
	BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM_BLD *bld = NULL;

	if (member_bytes(jwk, "n", &n, &nl, err) < 0 || member_bytes(jwk, "e", &e, &el, err) < 0)
		goto out;
	if (nl > 1024) {
		err_set(err, "RSA JWK modulus is larger than 8192 bits");
		goto out;
	}
	bn = BN_bin2bn(n, (int)nl, NULL);
	be = BN_bin2bn(e, (int)el, NULL);
	bld = OSSL_PARAM_BLD_new();
	if (bn == NULL || be == NULL || bld == NULL ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be)) {
		err_set(err, "out of memory");
		goto out;
	}
	pk = from_params("RSA", bld, err);
out:
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	free(n);
	free(e);
	return pk;
}

static EVP_PKEY *ec_from_jwk(const json_t *jwk, struct err *err)
{
	const char *crv = json_string_value(json_object_get(jwk, "crv"));
	const char *group;
	size_t size;
	uint8_t *x = NULL, *y = NULL, point[1 + 2 * 66];
	size_t xl, yl;
	EVP_PKEY *pk = NULL;
	OSSL_PARAM_BLD *bld = NULL;

	if (crv != NULL && strcmp(crv, "P-256") == 0) {
		group = "prime256v1";
		size = 32;
	} else if (crv != NULL && strcmp(crv, "P-384") == 0) {
		group = "secp384r1";
		size = 48;
	} else if (crv != NULL && strcmp(crv, "P-521") == 0) {
		group = "secp521r1";
		size = 66;
	} else {
		err_set(err, "EC JWK curve \"%s\" is not P-256, P-384 or P-521", crv ? crv : "");
		return NULL;
	}
	if (member_bytes(jwk, "x", &x, &xl, err) < 0 || member_bytes(jwk, "y", &y, &yl, err) < 0)
		goto out;
	if (xl != size || yl != size) {
		err_set(err, "EC JWK coordinates must be exactly %zu bytes for %s", size, crv);
		goto out;
	}
	point[0] = 0x04;
	memcpy(point + 1, x, size);
	memcpy(point + 1 + size, y, size);
	bld = OSSL_PARAM_BLD_new();
	if (bld == NULL ||
	    !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * size)) {
		err_set(err, "out of memory");
		goto out;
	}
	pk = from_params("EC", bld, err); /* fromdata rejects points off the curve */
out:
	OSSL_PARAM_BLD_free(bld);
	free(x);
	free(y);
	return pk;
}

static EVP_PKEY *okp_from_jwk(const json_t *jwk, struct err *err)
{
	const char *crv = json_string_value(json_object_get(jwk, "crv"));
	uint8_t *x = NULL;
	size_t xl;
	EVP_PKEY *pk = NULL;

	if (crv == NULL || strcmp(crv, "Ed25519") != 0) {
		err_set(err, "OKP JWK curve \"%s\" is not Ed25519", crv ? crv : "");
		return NULL;
	}
	if (member_bytes(jwk, "x", &x, &xl, err) < 0)
		return NULL;
	if (xl != 32)
		err_set(err, "Ed25519 JWK `x` must be 32 bytes");
	else if ((pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, xl)) == NULL)
		err_set(err, "JWK does not describe a valid Ed25519 public key");
	free(x);
	return pk;
}

EVP_PKEY *jwk_to_pkey(const json_t *jwk, struct err *err)
{
	const char *kty = json_string_value(json_object_get(jwk, "kty"));

	if (!json_is_object(jwk) || kty == NULL) {
		err_set(err, "a JWK must be an object with a `kty`");
		return NULL;
	}
	if (strcmp(kty, "RSA") == 0)
		return rsa_from_jwk(jwk, err);
	if (strcmp(kty, "EC") == 0)
		return ec_from_jwk(jwk, err);
	if (strcmp(kty, "OKP") == 0)
		return okp_from_jwk(jwk, err);
	err_set(err, "JWK kty \"%s\" is not RSA, EC or OKP", kty);
	return NULL;
}

/* ---- key helpers ---- */

static size_t ec_size(const EVP_PKEY *pk, const char **crv)
{
	char group[64] = "";
	size_t gl = 0;
	if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
	                                   &gl) != 1)
		return 0;
	if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0) {
		*crv = "P-256";
		return 32;
	}
	if (strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0) {
		*crv = "P-384";
		return 48;
	}
	if (strcmp(group, "secp521r1") == 0 || strcmp(group, "P-521") == 0) {
		*crv = "P-521";
		return 66;
	}
	return 0;
}

static json_t *bn_member(const EVP_PKEY *pk, const char *param, size_t pad)
{
	BIGNUM *bn = NULL;
	uint8_t buf[1024];
	json_t *out = NULL;

	if (EVP_PKEY_get_bn_param(pk, param, &bn) != 1)
		return NULL;
	int n = BN_num_bytes(bn);
	size_t len = pad ? pad : (size_t)n;
	if (n >= 0 && (size_t)n <= len && len <= sizeof(buf) &&
	    BN_bn2binpad(bn, buf, (int)len) == (int)len) {
		char *s = b64_encode(buf, len, B64_URL);
		out = s ? json_string(s) : NULL;
		free(s);
	}
	BN_clear_free(bn);
	return out;
}

json_t *jwk_from_pkey(const EVP_PKEY *pkey, int include_private, struct err *err)
{
	json_t *j = json_object();
	int id = EVP_PKEY_get_base_id(pkey);

	if (id == EVP_PKEY_EC) {
		const char *crv = NULL;
		size_t size = ec_size(pkey, &crv);
		if (size == 0)
			goto bad;
		json_object_set_new(j, "kty", json_string("EC"));
		json_object_set_new(j, "crv", json_string(crv));
		json_object_set_new(j, "x", bn_member(pkey, OSSL_PKEY_PARAM_EC_PUB_X, size));
		json_object_set_new(j, "y", bn_member(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, size));
		if (include_private)
			json_object_set_new(j, "d",
			                    bn_member(pkey, OSSL_PKEY_PARAM_PRIV_KEY, size));
	} else if (id == EVP_PKEY_RSA) {
		json_object_set_new(j, "kty", json_string("RSA"));
		json_object_set_new(j, "n", bn_member(pkey, OSSL_PKEY_PARAM_RSA_N, 0));
		json_object_set_new(j, "e", bn_member(pkey, OSSL_PKEY_PARAM_RSA_E, 0));
	} else if (id == EVP_PKEY_ED25519) {
		uint8_t raw[32];
		size_t rl = sizeof(raw);
		if (EVP_PKEY_get_raw_public_key(pkey, raw, &rl) != 1)
			goto bad;
		char *x = b64_encode(raw, rl, B64_URL);
		json_object_set_new(j, "kty", json_string("OKP"));
		json_object_set_new(j, "crv", json_string("Ed25519"));
		json_object_set_new(j, "x", json_string(x ? x : ""));
		free(x);
	} else {
		goto bad;
	}
	return j;
bad:
	json_decref(j);
	err_set(err, "key type cannot be expressed as a JWK here");
	return NULL;
}

const char *jwk_default_alg(const EVP_PKEY *pkey)
{
	const char *crv = NULL;
	switch (EVP_PKEY_get_base_id(pkey)) {
	case EVP_PKEY_EC:
		switch (ec_size(pkey, &crv)) {
		case 32:
			return "ES256";
		case 48:
			return "ES384";
		case 66:
			return "ES512";
		default:
			return NULL;
		}
	case EVP_PKEY_RSA:
		return "RS256";
	case EVP_PKEY_ED25519:
		return "EdDSA";
	default:
		return NULL;
	}
}

int pkey_public_equal(const EVP_PKEY *a, const EVP_PKEY *b)
{
	return a != NULL && b != NULL && EVP_PKEY_eq(a, b) == 1;
}

EVP_PKEY *pem_read_private_key(const char *path, struct err *err)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k;
	if (f == NULL) {
		err_set(err, "cannot open private key %s", path);
		return NULL;
	}
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (k == NULL)
		err_set(err, "%s holds no PEM private key", path);
	return k;
}

EVP_PKEY *pem_read_public_key(const char *path, struct err *err)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k;
	if (f == NULL) {
		err_set(err, "cannot open public key %s", path);
		return NULL;
	}
	k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	if (k == NULL) {
		rewind(f);
		X509 *c = PEM_read_X509(f, NULL, NULL, NULL);
		if (c != NULL) {
			k = X509_get_pubkey(c);
			X509_free(c);
		}
	}
	fclose(f);
	if (k == NULL)
		err_set(err, "%s holds no PEM public key or certificate", path);
	return k;
}

/* ---- JWS ---- */

struct jws_alg {
	const char *name;
	int key_type;   /* EVP_PKEY_EC / RSA / ED25519 */
	const char *md; /* NULL for EdDSA */
	size_t ec_size; /* coordinate size for ES* */
	int pss;
};

static const struct jws_alg jws_algs[] = {
    {"ES256", EVP_PKEY_EC, "SHA256", 32, 0}, {"ES384", EVP_PKEY_EC, "SHA384", 48, 0},
    {"ES512", EVP_PKEY_EC, "SHA512", 66, 0}, {"RS256", EVP_PKEY_RSA, "SHA256", 0, 0},
    {"RS384", EVP_PKEY_RSA, "SHA384", 0, 0}, {"RS512", EVP_PKEY_RSA, "SHA512", 0, 0},
    {"PS256", EVP_PKEY_RSA, "SHA256", 0, 1}, {"PS384", EVP_PKEY_RSA, "SHA384", 0, 1},
    {"PS512", EVP_PKEY_RSA, "SHA512", 0, 1}, {"EdDSA", EVP_PKEY_ED25519, NULL, 0, 0},
};

/* The algorithm, if it exists and fits the key (the key pins it, never the token). */
static const struct jws_alg *alg_for(const char *name, EVP_PKEY *key, struct err *err)
{
	const char *crv = NULL;
	for (size_t i = 0; name && i < sizeof(jws_algs) / sizeof(jws_algs[0]); i++) {
		const struct jws_alg *a = &jws_algs[i];
		if (strcmp(a->name, name) != 0)
			continue;
		if (EVP_PKEY_get_base_id(key) != a->key_type ||
		    (a->ec_size && ec_size(key, &crv) != a->ec_size)) {
			err_set(err, "JWS algorithm %s does not fit the key", name);
			return NULL;
		}
		return a;
	}
	err_set(err, "JWS algorithm \"%s\" is not accepted", name ? name : "");
	return NULL;
}

static int sign_bytes(const struct jws_alg *a, EVP_PKEY *key, const uint8_t *in, size_t inlen,
                      uint8_t **sig, size_t *siglen, struct err *err)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	uint8_t *der = NULL;
	size_t dl = 0;
	int rc = -1;

	if (md == NULL || EVP_DigestSignInit_ex(md, &pctx, a->md, NULL, NULL, key, NULL) != 1 ||
	    (a->pss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	                EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1)) ||
	    EVP_DigestSign(md, NULL, &dl, in, inlen) != 1 || (der = malloc(dl)) == NULL ||
	    EVP_DigestSign(md, der, &dl, in, inlen) != 1) {
		err_set(err, "signing failed");
		goto out;
	}
	if (a->ec_size) { /* DER ECDSA-Sig-Value -> fixed-size r || s */
		const unsigned char *p = der;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)dl);
		const BIGNUM *r, *s;
		*siglen = 2 * a->ec_size;
		*sig = malloc(*siglen);
		if (es == NULL || *sig == NULL) {
			ECDSA_SIG_free(es);
			free(*sig);
			err_set(err, "signing failed");
			goto out;
		}
		ECDSA_SIG_get0(es, &r, &s);
		BN_bn2binpad(r, *sig, (int)a->ec_size);
		BN_bn2binpad(s, *sig + a->ec_size, (int)a->ec_size);
		ECDSA_SIG_free(es);
	} else {
		*sig = der;
		*siglen = dl;
		der = NULL;
	}
	rc = 0;
out:
	free(der);
	EVP_MD_CTX_free(md);
	return rc;
}

static int verify_bytes(const struct jws_alg *a, EVP_PKEY *key, const uint8_t *in, size_t inlen,
                        const uint8_t *sig, size_t siglen)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *der = NULL;
	int ok = 0;

	if (a->ec_size) {
		if (siglen != 2 * a->ec_size)
			goto out;
		ECDSA_SIG *es = ECDSA_SIG_new();
		BIGNUM *r = BN_bin2bn(sig, (int)a->ec_size, NULL);
		BIGNUM *s = BN_bin2bn(sig + a->ec_size, (int)a->ec_size, NULL);
		if (es == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(es, r, s)) {
			BN_free(r);
			BN_free(s);
			ECDSA_SIG_free(es);
			goto out;
		}
		int dl = i2d_ECDSA_SIG(es, &der);
		ECDSA_SIG_free(es);
		if (dl <= 0)
			goto out;
		sig = der;
		siglen = (size_t)dl;
	}
	if (md != NULL && EVP_DigestVerifyInit_ex(md, &pctx, a->md, NULL, NULL, key, NULL) == 1 &&
	    (!a->pss || (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
	                 EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1)) &&
	    EVP_DigestVerify(md, sig, siglen, in, inlen) == 1)
		ok = 1;
out:
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	return ok;
}

static char *b64url_json(const json_t *j)
{
	char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	char *out = text ? b64_encode((const uint8_t *)text, strlen(text), B64_URL) : NULL;
	free(text);
	return out;
}

char *jws_sign(const json_t *header, const json_t *payload, EVP_PKEY *key, const char *alg,
               struct err *err)
{
	const struct jws_alg *a = alg_for(alg, key, err);
	char *h = NULL, *p = NULL, *s = NULL, *out = NULL;
	uint8_t *sig = NULL;
	size_t siglen;

	if (a == NULL)
		return NULL;
	h = b64url_json(header);
	p = b64url_json(payload);
	if (h == NULL || p == NULL) {
		err_set(err, "cannot serialise the JWS");
		goto out;
	}
	size_t hl = strlen(h), pl = strlen(p);
	char *input = malloc(hl + pl + 2);
	if (input == NULL)
		goto out;
	memcpy(input, h, hl);
	input[hl] = '.';
	memcpy(input + hl + 1, p, pl + 1);
	if (sign_bytes(a, key, (const uint8_t *)input, hl + 1 + pl, &sig, &siglen, err) == 0 &&
	    (s = b64_encode(sig, siglen, B64_URL)) != NULL) {
		out = malloc(hl + pl + strlen(s) + 3);
		if (out != NULL)
			sprintf(out, "%s.%s", input, s);
	}
	free(input);
out:
	free(h);
	free(p);
	free(s);
	free(sig);
	return out;
}

static json_t *decode_segment(const char *seg, size_t len, const char *what, struct err *err)
{
	uint8_t *raw;
	size_t rl;
	json_t *j;
	if (b64_decode(seg, len, B64_URL, &raw, &rl) < 0) {
		err_set(err, "JWT %s is not base64url", what);
		return NULL;
	}
	j = json_loadb((const char *)raw, rl, JSON_REJECT_DUPLICATES, NULL);
	free(raw);
	if (!json_is_object(j)) {
		json_decref(j);
		err_set(err, "JWT %s is not a JSON object", what);
		return NULL;
	}
	return j;
}

int jws_decode_unverified(const char *token, json_t **header, json_t **payload, struct err *err)
{
	const char *d1 = token ? strchr(token, '.') : NULL;
	const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	json_t *h, *p;

	if (d2 == NULL || strchr(d2 + 1, '.') != NULL)
		return err_set(err, "a JWT has exactly three dot-separated parts");
	if ((h = decode_segment(token, (size_t)(d1 - token), "header", err)) == NULL)
		return -1;
	if ((p = decode_segment(d1 + 1, (size_t)(d2 - d1 - 1), "payload", err)) == NULL) {
		json_decref(h);
		return -1;
	}
	if (header)
		*header = h;
	else
		json_decref(h);
	if (payload)
		*payload = p;
	else
		json_decref(p);
	return 0;
}

int jws_verify(const char *token, EVP_PKEY *key, const char *alg, json_t **header, json_t **payload,
               struct err *err)
{
	const struct jws_alg *a = alg_for(alg, key, err);
	json_t *h = NULL, *p = NULL;
	uint8_t *sig = NULL;
	size_t siglen;
	int rc = -1;

	if (a == NULL)
		return -1;
	if (jws_decode_unverified(token, &h, &p, err) < 0)
		return -1;
	const char *halg = json_string_value(json_object_get(h, "alg"));
	if (halg == NULL || strcmp(halg, a->name) != 0) {
		err_set(err, "JWT header alg \"%s\" is not the key's algorithm %s",
		        halg ? halg : "", a->name);
		goto out;
	}
	const char *d2 = strrchr(token, '.');
	if (b64_decode(d2 + 1, strlen(d2 + 1), B64_URL, &sig, &siglen) < 0) {
		err_set(err, "JWT signature is not base64url");
		goto out;
	}
	if (!verify_bytes(a, key, (const uint8_t *)token, (size_t)(d2 - token), sig, siglen)) {
		err_set(err, "JWT signature does not verify");
		goto out;
	}
	rc = 0;
	if (header) {
		*header = h;
		h = NULL;
	}
	if (payload) {
		*payload = p;
		p = NULL;
	}
out:
	free(sig);
	json_decref(h);
	json_decref(p);
	return rc;
}

/* ---- JWE (flattened JSON; kbs-protocol.md §3) ---- */

#define CEK_LEN 32
#define IV_LEN 12
#define TAG_LEN 16

/* Concat KDF (RFC 7518 §4.6.2) for ECDH-ES+A256KW: one SHA-256 round, empty apu/apv. */
static int concat_kdf(const uint8_t *z, size_t zlen, const char *alg, uint8_t kek[32])
{
	uint8_t buf[4 + 66 + 4 + 32 + 4 + 4 + 4];
	size_t o = 0, al = strlen(alg);
	if (zlen > 66 || al > 32)
		return -1;
	memcpy(buf + o, "\0\0\0\1", 4), o += 4;
	memcpy(buf + o, z, zlen), o += zlen;
	buf[o++] = 0, buf[o++] = 0, buf[o++] = 0, buf[o++] = (uint8_t)al;
	memcpy(buf + o, alg, al), o += al;
	memset(buf + o, 0, 8), o += 8;          /* apu, apv lengths */
	memcpy(buf + o, "\0\0\1\0", 4), o += 4; /* keydatalen = 256 bits */
	int ok = EVP_Digest(buf, o, kek, NULL, EVP_sha256(), NULL) == 1;
	OPENSSL_cleanse(buf, sizeof(buf));
	return ok ? 0 : -1;
}

/* RFC 3394 key wrap: out (of outcap bytes) gets inlen + 8 bytes when wrapping, inlen - 8 when
 * unwrapping. OpenSSL writes the unwrapped bytes before it checks their integrity, so the
 * lengths are checked here first. */
static int aes_kw(int wrap, const uint8_t kek[32], const uint8_t *in, size_t inlen, uint8_t *out,
                  size_t outcap, size_t *outlen)
{
	*outlen = 0;
	if (inlen % 8 != 0 || inlen > INT_MAX - 8 ||
	    (wrap ? inlen < 16 || inlen + 8 > outcap : inlen < 24 || inlen - 8 > outcap))
		return -1;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int l1 = 0, l2 = 0, ok = 0;
	if (c == NULL)
		return -1;
	EVP_CIPHER_CTX_set_flags(c, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	if (EVP_CipherInit_ex(c, EVP_aes_256_wrap(), NULL, kek, NULL, wrap) == 1 &&
	    EVP_CipherUpdate(c, out, &l1, in, (int)inlen) == 1 &&
	    EVP_CipherFinal_ex(c, out + l1, &l2) == 1)
		ok = 1;
	EVP_CIPHER_CTX_free(c);
	*outlen = (size_t)(l1 + l2);
	return ok ? 0 : -1;
}

static int ecdh(EVP_PKEY *priv, EVP_PKEY *peer, uint8_t *z, size_t *zlen)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(priv, NULL);
	int ok = c && EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_derive_set_peer(c, peer) == 1 &&
	         EVP_PKEY_derive(c, z, zlen) == 1;
	EVP_PKEY_CTX_free(c);
	return ok ? 0 : -1;
}

static int gcm(int enc, const uint8_t *key, const uint8_t *iv, const char *aad, const uint8_t *in,
               size_t inlen, uint8_t *out, uint8_t *tag)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int l = 0, ok = 0;
	if (c == NULL || inlen > INT32_MAX)
		goto out;
	if (EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, IV_LEN, NULL) != 1 ||
	    EVP_CipherInit_ex(c, NULL, NULL, key, iv, enc) != 1 ||
	    EVP_CipherUpdate(c, NULL, &l, (const uint8_t *)aad, (int)strlen(aad)) != 1 ||
	    (inlen && EVP_CipherUpdate(c, out, &l, in, (int)inlen) != 1))
		goto out;
	if (!enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1)
		goto out;
	if (EVP_CipherFinal_ex(c, out + (inlen ? l : 0), &l) != 1)
		goto out;
	if (enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1)
		goto out;
	ok = 1;
out:
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : -1;
}

static EVP_PKEY *ec_generate(const char *crv)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC",
	                         strcmp(crv, "P-256") == 0 ? "prime256v1" : "secp521r1");
}

static int rsa_crypt(int enc, EVP_PKEY *k, int oaep, const uint8_t *in, size_t inlen, uint8_t *out,
                     size_t *outlen)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(k, NULL);
	int ok = c != NULL && (enc ? EVP_PKEY_encrypt_init(c) : EVP_PKEY_decrypt_init(c)) == 1 &&
	         EVP_PKEY_CTX_set_rsa_padding(c, oaep ? RSA_PKCS1_OAEP_PADDING
	                                              : RSA_PKCS1_PADDING) == 1 &&
	         (!oaep || (EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha256()) == 1 &&
	                    EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha256()) == 1)) &&
	         (enc ? EVP_PKEY_encrypt(c, out, outlen, in, inlen)
	              : EVP_PKEY_decrypt(c, out, outlen, in, inlen)) == 1;
	EVP_PKEY_CTX_free(c);
	return ok ? 0 : -1;
}

static void set_b64(json_t *o, const char *k, const uint8_t *b, size_t n)
{
	char *s = b64_encode(b, n, B64_URL);
	json_object_set_new(o, k, json_string(s ? s : ""));
	free(s);
}

json_t *jwe_encrypt(const json_t *tee_pubkey, const uint8_t *plain, size_t len, struct err *err)
{
	const char *kty = json_string_value(json_object_get(tee_pubkey, "kty"));
	const char *alg = json_string_value(json_object_get(tee_pubkey, "alg"));
	const char *crv = json_string_value(json_object_get(tee_pubkey, "crv"));
	uint8_t cek[CEK_LEN], iv[IV_LEN], tag[TAG_LEN], ek[1024];
	size_t eklen = sizeof(ek);
	EVP_PKEY *peer = NULL, *eph = NULL;
	json_t *header = json_object(), *out = NULL;
	uint8_t *ct = malloc(len + 1);
	char *protected = NULL;

	if (ct == NULL || kty == NULL || alg == NULL) {
		err_set(err, "tee-pubkey needs `kty` and `alg`");
		goto done;
	}
	if (RAND_bytes(cek, sizeof(cek)) != 1 || RAND_bytes(iv, sizeof(iv)) != 1) {
		err_set(err, "no randomness");
		goto done;
	}
	if (strcmp(kty, "EC") == 0 && strcmp(alg, "ECDH-ES+A256KW") == 0 && crv != NULL &&
	    (strcmp(crv, "P-256") == 0 || strcmp(crv, "P-521") == 0)) {
		uint8_t z[66], kek[32];
		size_t zlen = sizeof(z);
		json_t *epk;
		if ((peer = jwk_to_pkey(tee_pubkey, err)) == NULL)
			goto done;
		if ((eph = ec_generate(crv)) == NULL || ecdh(eph, peer, z, &zlen) < 0 ||
		    concat_kdf(z, zlen, alg, kek) < 0 ||
		    aes_kw(1, kek, cek, sizeof(cek), ek, sizeof(ek), &eklen) < 0) {
			OPENSSL_cleanse(z, sizeof(z));
			OPENSSL_cleanse(kek, sizeof(kek));
			err_set(err, "ECDH-ES+A256KW key agreement failed");
			goto done;
		}
		OPENSSL_cleanse(z, sizeof(z));
		OPENSSL_cleanse(kek, sizeof(kek));
		json_t *full = jwk_from_pkey(eph, 0, err);
		if (full == NULL)
			goto done;
		/* epk members sorted: crv, kty, x, y (§3.4) */
		epk = json_pack("{s:O,s:O,s:O,s:O}", "crv", json_object_get(full, "crv"), "kty",
		                json_object_get(full, "kty"), "x", json_object_get(full, "x"), "y",
		                json_object_get(full, "y"));
		json_decref(full);
		json_object_set_new(header, "alg", json_string(alg));
		json_object_set_new(header, "enc", json_string("A256GCM"));
		json_object_set_new(header, "epk", epk);
	} else if (strcmp(kty, "RSA") == 0 &&
	           (strcmp(alg, "RSA-OAEP-256") == 0 || strcmp(alg, "RSA1_5") == 0)) {
		if ((peer = jwk_to_pkey(tee_pubkey, err)) == NULL)
			goto done;
		if (EVP_PKEY_get_bits(peer) > 4096 || EVP_PKEY_get_bits(peer) < 2048) {
			err_set(err, "RSA tee-pubkey must be 2048 to 4096 bits");
			goto done;
		}
		if (rsa_crypt(1, peer, strcmp(alg, "RSA-OAEP-256") == 0, cek, sizeof(cek), ek,
		              &eklen) < 0) {
			err_set(err, "RSA key encryption failed");
			goto done;
		}
		json_object_set_new(header, "alg", json_string(alg));
		json_object_set_new(header, "enc", json_string("A256GCM"));
	} else {
		err_set(err, "tee-pubkey kty %s with alg %s%s%s is not supported", kty, alg,
		        crv ? " on " : "", crv ? crv : "");
		goto done;
	}
	protected = b64url_json(header);
	if (protected == NULL || gcm(1, cek, iv, protected, plain, len, ct, tag) < 0) {
		err_set(err, "content encryption failed");
		goto done;
	}
	out = json_object();
	json_object_set_new(out, "protected", json_string(protected));
	set_b64(out, "encrypted_key", ek, eklen);
	set_b64(out, "iv", iv, sizeof(iv));
	set_b64(out, "ciphertext", ct, len);
	set_b64(out, "tag", tag, sizeof(tag));
done:
	OPENSSL_cleanse(cek, sizeof(cek));
	if (ct != NULL)
		OPENSSL_cleanse(ct, len);
	free(ct);
	free(protected);
	json_decref(header);
	EVP_PKEY_free(peer);
	EVP_PKEY_free(eph);
	return out;
}

static int member_raw(const json_t *o, const char *k, uint8_t **b, size_t *n, struct err *err)
{
	json_t *v = json_object_get(o, k);
	if (!json_is_string(v) ||
	    b64_decode(json_string_value(v), json_string_length(v), B64_URL, b, n) < 0)
		return err_set(err, "JWE member `%s` must be base64url", k);
	return 0;
}

int jwe_decrypt(const json_t *jwe, EVP_PKEY *priv, uint8_t **plain, size_t *len, struct err *err)
{
	const char *prot = json_string_value(json_object_get(jwe, "protected"));
	uint8_t *ek = NULL, *iv = NULL, *ct = NULL, *tag = NULL, cek[CEK_LEN];
	size_t ekl, ivl, ctl, tagl, cekl = 0;
	json_t *h = NULL;
	EVP_PKEY *epk = NULL;
	int rc = -1;

	*plain = NULL;
	if (prot == NULL ||
	    (h = decode_segment(prot, strlen(prot), "protected header", err)) == NULL)
		goto out;
	if (member_raw(jwe, "encrypted_key", &ek, &ekl, err) < 0 ||
	    member_raw(jwe, "iv", &iv, &ivl, err) < 0 ||
	    member_raw(jwe, "ciphertext", &ct, &ctl, err) < 0 ||
	    member_raw(jwe, "tag", &tag, &tagl, err) < 0)
		goto out;
	const char *alg = json_string_value(json_object_get(h, "alg"));
	const char *enc = json_string_value(json_object_get(h, "enc"));
	if (enc == NULL || strcmp(enc, "A256GCM") != 0 || ivl != IV_LEN || tagl != TAG_LEN) {
		err_set(err, "JWE must use A256GCM with a 12-byte IV and 16-byte tag");
		goto out;
	}
	if (alg != NULL && strcmp(alg, "ECDH-ES+A256KW") == 0 &&
	    EVP_PKEY_get_base_id(priv) == EVP_PKEY_EC) {
		uint8_t z[66], kek[32];
		size_t zlen = sizeof(z);
		if (ekl != CEK_LEN + 8) {
			err_set(err,
			        "encrypted_key is %zu bytes; ECDH-ES+A256KW wraps a 32-byte key "
			        "in 40",
			        ekl);
			goto out;
		}
		int bad = (epk = jwk_to_pkey(json_object_get(h, "epk"), err)) == NULL ||
		          ecdh(priv, epk, z, &zlen) < 0 || concat_kdf(z, zlen, alg, kek) < 0 ||
		          aes_kw(0, kek, ek, ekl, cek, sizeof(cek), &cekl) < 0;
		OPENSSL_cleanse(z, sizeof(z));
		OPENSSL_cleanse(kek, sizeof(kek));
		if (bad) {
			err_set(err, "cannot unwrap the content key");
			goto out;
		}
	} else if (alg != NULL &&
	           (strcmp(alg, "RSA-OAEP-256") == 0 || strcmp(alg, "RSA1_5") == 0) &&
	           EVP_PKEY_get_base_id(priv) == EVP_PKEY_RSA) {
		/* the sender chooses the decrypted length (up to the modulus size), not us */
		size_t cap = (size_t)EVP_PKEY_get_size(priv);
		uint8_t *dec = malloc(cap ? cap : 1);
		size_t decl = cap;
		int bad = dec == NULL || rsa_crypt(0, priv, strcmp(alg, "RSA-OAEP-256") == 0, ek,
		                                   ekl, dec, &decl) < 0;
		if (!bad && decl == CEK_LEN)
			memcpy(cek, dec, CEK_LEN);
		cekl = bad ? 0 : decl;
		if (dec != NULL)
			OPENSSL_cleanse(dec, cap);
		free(dec);
		if (bad) {
			err_set(err, "cannot decrypt the content key");
			goto out;
		}
	} else {
		err_set(err, "JWE alg \"%s\" does not fit the private key", alg ? alg : "");
		goto out;
	}
	if (cekl != CEK_LEN) {
		err_set(err, "content key is not 32 bytes");
		goto out;
	}
	*plain = malloc(ctl + 1);
	if (*plain == NULL || gcm(0, cek, iv, prot, ct, ctl, *plain, tag) < 0) {
		free(*plain);
		*plain = NULL;
		err_set(err, "JWE content does not decrypt (tag mismatch)");
		goto out;
	}
	(*plain)[ctl] = 0;
	*len = ctl;
	rc = 0;
out:
	OPENSSL_cleanse(cek, sizeof(cek));
	free(ek);
	free(iv);
	free(ct);
	free(tag);
	json_decref(h);
	EVP_PKEY_free(epk);
	return rc;
}
