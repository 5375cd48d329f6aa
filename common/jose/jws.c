/*
 * JWS compact serialisation: sign, verify, and decode without verifying (jose/jose.h).
 *
 * Each algorithm is one row of jws_algs[]: its key type, digest, ECDSA coordinate size and PSS
 * flag. The caller names the algorithm for its key and the row must fit that key (type, and the
 * curve for ES*); a token's header `alg` must then equal it. A header therefore never picks the
 * algorithm: not `none`, not an HMAC keyed with a public key, not another curve. ECDSA signatures
 * travel as fixed-size r || s (RFC 7518 §3.4) and are converted to and from DER for OpenSSL.
 * Decoding without verifying exists to pick the key before jws_verify.
 * The base64url(JSON) segment helpers that JWE headers share live here too (jose_int.h).
 */
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "jose/jose.h"
#include "jose/jose_int.h"

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
		    (a->ec_size && jose_ec_size(key, &crv) != a->ec_size)) {
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

char *jose_b64url_json(const json_t *j)
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
	h = jose_b64url_json(header);
	p = jose_b64url_json(payload);
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

json_t *jose_decode_segment(const char *seg, size_t len, const char *what, struct err *err)
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
	if ((h = jose_decode_segment(token, (size_t)(d1 - token), "header", err)) == NULL)
		return -1;
	if ((p = jose_decode_segment(d1 + 1, (size_t)(d2 - d1 - 1), "payload", err)) == NULL) {
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

json_t *jws_header(const char *token, struct err *err)
{
	const char *d1 = token ? strchr(token, '.') : NULL;
	const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;

	if (d2 == NULL || strchr(d2 + 1, '.') != NULL) {
		err_set(err, "a JWT has exactly three dot-separated parts");
		return NULL;
	}
	return jose_decode_segment(token, (size_t)(d1 - token), "header", err);
}

/* The header's alg is the key's, the signature verifies over the first two segments, and the
 * payload segment decodes to an object (a new reference in *p). */
static int verify_split(const char *token, const json_t *h, EVP_PKEY *key, const char *alg,
                        json_t **p, struct err *err)
{
	const struct jws_alg *a = alg_for(alg, key, err);
	const char *d1 = token ? strchr(token, '.') : NULL;
	const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	uint8_t *sig = NULL;
	size_t siglen;
	int rc = -1;

	*p = NULL;
	if (a == NULL)
		return -1;
	if (d2 == NULL || strchr(d2 + 1, '.') != NULL)
		return err_set(err, "a JWT has exactly three dot-separated parts");
	const char *halg = json_string_value(json_object_get(h, "alg"));
	if (halg == NULL || strcmp(halg, a->name) != 0)
		return err_set(err, "JWT header alg \"%s\" is not the key's algorithm %s",
		               halg ? halg : "", a->name);
	if (b64_decode(d2 + 1, strlen(d2 + 1), B64_URL, &sig, &siglen) < 0) {
		err_set(err, "JWT signature is not base64url");
		goto out;
	}
	if (!verify_bytes(a, key, (const uint8_t *)token, (size_t)(d2 - token), sig, siglen)) {
		err_set(err, "JWT signature does not verify");
		goto out;
	}
	if ((*p = jose_decode_segment(d1 + 1, (size_t)(d2 - d1 - 1), "payload", err)) == NULL)
		goto out;
	rc = 0;
out:
	free(sig);
	return rc;
}

int jws_verify_with_header(const char *token, const json_t *header, EVP_PKEY *key, const char *alg,
                           json_t **payload, struct err *err)
{
	return verify_split(token, header, key, alg, payload, err);
}

int jws_verify(const char *token, EVP_PKEY *key, const char *alg, json_t **header, json_t **payload,
               struct err *err)
{
	json_t *h = jws_header(token, err), *p = NULL;

	if (h == NULL)
		return -1;
	if (verify_split(token, h, key, alg, &p, err) < 0) {
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
