/*
 * jose: JWK import (see jose.h). Public keys only: RSA {n, e}, EC {crv, x, y} on P-256,
 * P-384 and P-521 with coordinates of exactly the curve's size, OKP Ed25519 {x}. The key
 * type decides what a key can be used for; nothing here looks at a JWK's `alg`.
 */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
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
