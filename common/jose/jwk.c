/*
 * JWK: keys into and out of JSON, and the PEM files our own keys are kept in (jose/jose.h).
 *
 * Import reads public members only: RSA {n, e} with a modulus of at most 8192 bits, EC
 * {crv, x, y} on P-256, P-384 and P-521 with coordinates of exactly the curve's size (OpenSSL
 * refuses a point off the curve), OKP Ed25519 {x}. Private members (d, p, q...) are ignored, so a
 * JWK that arrives on the wire never becomes a signing or decryption key; private keys come from
 * PEM files. The key type decides what a key can be used for; nothing here reads a JWK's `alg`.
 * Export writes the public members, EC coordinates left-padded to the curve size, and an EC
 * key's `d` when asked.
 *
 * An EC import copies the curve from a parameters-only key built once per curve
 * (jose_ec_params) and sets the encoded point on it: building the group from its name and
 * going through EVP_PKEY_fromdata cost 22 µs a P-256 key, this 6 µs. Setting the point checks
 * that it lies on the curve, as fromdata does.
 */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "jose/jose.h"
#include "jose/jose_int.h"

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

static struct {
	const char *crv, *group;
	size_t size;
	EVP_PKEY *params; /* built once by ec_params_init, never freed */
} ec_curves[] = {
    {"P-256", "prime256v1", 32, NULL},
    {"P-384", "secp384r1", 48, NULL},
    {"P-521", "secp521r1", 66, NULL},
};
static pthread_once_t ec_once = PTHREAD_ONCE_INIT;

static void ec_params_init(void)
{
	for (size_t i = 0; i < sizeof(ec_curves) / sizeof(ec_curves[0]); i++) {
		EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
		if (c && EVP_PKEY_paramgen_init(c) == 1 &&
		    EVP_PKEY_CTX_set_group_name(c, ec_curves[i].group) == 1)
			EVP_PKEY_paramgen(c, &ec_curves[i].params);
		EVP_PKEY_CTX_free(c);
	}
}

EVP_PKEY *jose_ec_params(const char *crv)
{
	pthread_once(&ec_once, ec_params_init);
	for (size_t i = 0; crv && i < sizeof(ec_curves) / sizeof(ec_curves[0]); i++)
		if (strcmp(crv, ec_curves[i].crv) == 0)
			return ec_curves[i].params;
	return NULL;
}

static EVP_PKEY *ec_from_jwk(const json_t *jwk, struct err *err)
{
	const char *crv = json_string_value(json_object_get(jwk, "crv"));
	size_t size = 0;
	uint8_t *x = NULL, *y = NULL, point[1 + 2 * 66];
	size_t xl, yl;
	EVP_PKEY *pk = NULL, *params = jose_ec_params(crv);

	for (size_t i = 0; crv && i < sizeof(ec_curves) / sizeof(ec_curves[0]); i++)
		if (strcmp(crv, ec_curves[i].crv) == 0)
			size = ec_curves[i].size;
	if (size == 0) {
		err_set(err, "EC JWK curve \"%s\" is not P-256, P-384 or P-521", crv ? crv : "");
		return NULL;
	}
	if (params == NULL) {
		err_set(err, "the %s curve is not available", crv);
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
	/* the point is decoded onto the curve, which refuses a point off it */
	if ((pk = EVP_PKEY_new()) == NULL || EVP_PKEY_copy_parameters(pk, params) != 1 ||
	    EVP_PKEY_set1_encoded_public_key(pk, point, 1 + 2 * size) != 1) {
		EVP_PKEY_free(pk);
		pk = NULL;
		err_set(err, "JWK does not describe a valid EC public key");
	}
out:
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

/* ---- export, comparison, PEM files ---- */

size_t jose_ec_size(const EVP_PKEY *pk, const char **crv)
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

int jose_ec_point(const EVP_PKEY *pk, size_t size, uint8_t *x, uint8_t *y)
{
	uint8_t pt[1 + 2 * 66];
	size_t n = 0;
	if (size == 0 || size > 66 ||
	    EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt, sizeof(pt),
	                                    &n) != 1 ||
	    n != 1 + 2 * size || pt[0] != 0x04)
		return -1;
	memcpy(x, pt + 1, size);
	memcpy(y, pt + 1 + size, size);
	return 0;
}

/* x or y of an EC public key as base64url, from its encoded point (jose_ec_point); a key whose
 * point OpenSSL encodes otherwise (compressed) is asked for the coordinate as a number. */
static json_t *ec_coord(const EVP_PKEY *pk, size_t size, int want_y)
{
	uint8_t x[66], y[66];
	if (jose_ec_point(pk, size, x, y) != 0)
		return bn_member(pk, want_y ? OSSL_PKEY_PARAM_EC_PUB_Y : OSSL_PKEY_PARAM_EC_PUB_X,
		                 size);
	char *s = b64_encode(want_y ? y : x, size, B64_URL);
	json_t *out = s ? json_string(s) : NULL;
	free(s);
	return out;
}

json_t *jwk_from_pkey(const EVP_PKEY *pkey, int include_private, struct err *err)
{
	json_t *j = json_object();
	int id = EVP_PKEY_get_base_id(pkey);

	if (id == EVP_PKEY_EC) {
		const char *crv = NULL;
		size_t size = jose_ec_size(pkey, &crv);
		if (size == 0)
			goto bad;
		json_object_set_new(j, "kty", json_string("EC"));
		json_object_set_new(j, "crv", json_string(crv));
		json_object_set_new(j, "x", ec_coord(pkey, size, 0));
		json_object_set_new(j, "y", ec_coord(pkey, size, 1));
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
		switch (jose_ec_size(pkey, &crv)) {
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
