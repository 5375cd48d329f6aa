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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "jsonr.h"
#include "jsonw.h"
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

/*
 * Prepared contexts. EVP_DigestSignInit/VerifyInit fetch the signature algorithm and the digest
 * from the provider store, under its lock, and build a key context on every call (4% of
 * grpc-as). Instead one context per (key, algorithm, operation) is initialised once and each
 * call works on a copy of it (EVP_MD_CTX_copy_ex duplicates the key context; the copy owns
 * nothing of the original). A slot holds a reference to its key, so the address it is found by
 * cannot be reused by another key while the slot lives: a rotated key is a new EVP_PKEY and gets
 * its own slot. Bounded to PREP_SLOTS, replaced round-robin; `prep_lock` guards the table and
 * the copy from it.
 */
#define PREP_SLOTS 16
static struct prep {
	EVP_PKEY *key; /* owned reference; NULL for a free slot */
	const struct jws_alg *a;
	int sign;
	EVP_MD_CTX *ctx; /* owned, initialised for key, a and sign; only copied from */
} prep[PREP_SLOTS];
static unsigned prep_next;
static pthread_mutex_t prep_lock = PTHREAD_MUTEX_INITIALIZER;

static EVP_MD_CTX *prep_init(const struct jws_alg *a, EVP_PKEY *key, int sign)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	int ok = md != NULL &&
	         (sign ? EVP_DigestSignInit_ex(md, &pctx, a->md, NULL, NULL, key, NULL)
	               : EVP_DigestVerifyInit_ex(md, &pctx, a->md, NULL, NULL, key, NULL)) == 1;
	if (ok && a->pss)
		ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
		     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1;
	if (!ok) {
		EVP_MD_CTX_free(md);
		return NULL;
	}
	return md;
}

/* A fresh context for one signature or verification with key and a: a copy of the prepared one
 * (prepared now if it was not). The caller frees it. */
static EVP_MD_CTX *prep_get(const struct jws_alg *a, EVP_PKEY *key, int sign)
{
	EVP_MD_CTX *out = EVP_MD_CTX_new(), *made = NULL;
	int ok = 0;

	if (out == NULL)
		return NULL;
	pthread_mutex_lock(&prep_lock);
	for (size_t i = 0; i < PREP_SLOTS; i++)
		if (prep[i].key == key && prep[i].a == a && prep[i].sign == sign) {
			ok = EVP_MD_CTX_copy_ex(out, prep[i].ctx) == 1;
			pthread_mutex_unlock(&prep_lock);
			goto out;
		}
	pthread_mutex_unlock(&prep_lock);
	if ((made = prep_init(a, key, sign)) == NULL || EVP_MD_CTX_copy_ex(out, made) != 1 ||
	    EVP_PKEY_up_ref(key) != 1)
		goto out;
	ok = 1;
	pthread_mutex_lock(&prep_lock);
	struct prep *p = &prep[prep_next++ % PREP_SLOTS], old = *p;
	*p = (struct prep){key, a, sign, made};
	made = NULL;
	pthread_mutex_unlock(&prep_lock);
	EVP_PKEY_free(old.key);
	EVP_MD_CTX_free(old.ctx);
out:
	EVP_MD_CTX_free(made);
	if (!ok) {
		EVP_MD_CTX_free(out);
		return NULL;
	}
	/* one final on this copy: no need for OpenSSL to duplicate it again to keep it usable */
	EVP_MD_CTX_set_flags(out, EVP_MD_CTX_FLAG_FINALISE);
	return out;
}

/*
 * ECDSA signatures: JOSE's fixed-size r || s (RFC 7518 §3.4) and OpenSSL's DER
 * SEQUENCE { INTEGER r, INTEGER s }, converted here without BIGNUMs. Both INTEGERs are
 * positive and at most 66 bytes, so a DER value is at most 2 + 2 * (2 + 67) bytes with a
 * one-byte (or 0x81-prefixed) length.
 */
#define ECDSA_DER_MAX (3 + 2 * (2 + 67))

/* One minimal DER INTEGER of the unsigned big-endian n bytes at v into out; its length. */
static size_t der_uint(const uint8_t *v, size_t n, uint8_t *out)
{
	size_t o = 0;
	while (n > 1 && v[0] == 0)
		v++, n--;
	out[o++] = 0x02;
	out[o++] = (uint8_t)(n + (v[0] & 0x80 ? 1 : 0));
	if (v[0] & 0x80)
		out[o++] = 0;
	memcpy(out + o, v, n);
	return o + n;
}

/* r || s (2 * size bytes) as DER into der (ECDSA_DER_MAX bytes); its length. */
static size_t ecdsa_rs_to_der(const uint8_t *rs, size_t size, uint8_t der[ECDSA_DER_MAX])
{
	uint8_t body[2 * (2 + 67)];
	size_t bl = der_uint(rs, size, body), o = 0;
	bl += der_uint(rs + size, size, body + bl);
	der[o++] = 0x30;
	if (bl > 127)
		der[o++] = 0x81;
	der[o++] = (uint8_t)bl;
	memcpy(der + o, body, bl);
	return o + bl;
}

/* One DER INTEGER at *p (of the n bytes left), left-padded into out[size]; -1 if it is not a
 * non-negative INTEGER that fits. */
static int der_uint_read(const uint8_t **p, size_t *n, uint8_t *out, size_t size)
{
	const uint8_t *v = *p;
	if (*n < 2 || v[0] != 0x02 || v[1] > 127 || v[1] == 0 || (size_t)v[1] + 2 > *n ||
	    (v[2] & 0x80))
		return -1;
	size_t l = v[1];
	const uint8_t *d = v + 2;
	while (l > 1 && d[0] == 0)
		d++, l--;
	if (l > size)
		return -1;
	memset(out, 0, size - l);
	memcpy(out + size - l, d, l);
	*n -= (size_t)v[1] + 2;
	*p = v + 2 + v[1];
	return 0;
}

/* OpenSSL's DER signature (dl bytes) as r || s into rs (2 * size bytes); -1 if malformed. */
static int ecdsa_der_to_rs(const uint8_t *der, size_t dl, uint8_t *rs, size_t size)
{
	size_t o = 2, bl;
	if (dl < 2 || der[0] != 0x30)
		return -1;
	if (der[1] == 0x81 && dl >= 3)
		bl = der[2], o = 3;
	else if (der[1] < 0x80)
		bl = der[1];
	else
		return -1;
	if (bl != dl - o)
		return -1;
	const uint8_t *p = der + o;
	return der_uint_read(&p, &bl, rs, size) == 0 &&
	               der_uint_read(&p, &bl, rs + size, size) == 0 && bl == 0
	           ? 0
	           : -1;
}

static int sign_bytes(const struct jws_alg *a, EVP_PKEY *key, const uint8_t *in, size_t inlen,
                      uint8_t **sig, size_t *siglen, struct err *err)
{
	EVP_MD_CTX *md = prep_get(a, key, 1);
	size_t cap = (size_t)EVP_PKEY_get_size(key), dl = cap;
	uint8_t *der = cap ? malloc(cap) : NULL;
	int rc = -1;

	*sig = NULL;
	if (md == NULL || der == NULL || EVP_DigestSign(md, der, &dl, in, inlen) != 1) {
		err_set(err, "signing failed");
		goto out;
	}
	if (a->ec_size) { /* DER ECDSA-Sig-Value -> fixed-size r || s */
		*siglen = 2 * a->ec_size;
		if ((*sig = malloc(*siglen)) == NULL ||
		    ecdsa_der_to_rs(der, dl, *sig, a->ec_size) < 0) {
			free(*sig);
			*sig = NULL;
			err_set(err, "signing failed");
			goto out;
		}
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
	uint8_t der[ECDSA_DER_MAX];
	EVP_MD_CTX *md;
	int ok;

	if (a->ec_size) {
		if (siglen != 2 * a->ec_size)
			return 0;
		siglen = ecdsa_rs_to_der(sig, a->ec_size, der);
		sig = der;
	}
	if ((md = prep_get(a, key, 0)) == NULL)
		return 0;
	ok = EVP_DigestVerify(md, sig, siglen, in, inlen) == 1;
	EVP_MD_CTX_free(md);
	return ok;
}

char *jose_b64url_json(const json_t *j)
{
	size_t tl = 0;
	char *text = jsonw_compact(j, &tl); /* json_dumps's text, faster (jsonw.h) */
	if (text == NULL && (text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER)) != NULL)
		tl = strlen(text);
	char *out = text ? b64_encode((const uint8_t *)text, tl, B64_URL) : NULL;
	free(text);
	return out;
}

/* b64url(header) "." b64url(payload) "." b64url(signature), built in one buffer. */
static char *sign_compact(const char *h, size_t hl, const json_t *payload, EVP_PKEY *key,
                          const struct jws_alg *a, struct err *err)
{
	char *p = jose_b64url_json(payload), *s = NULL, *out = NULL;
	uint8_t *sig = NULL;
	size_t siglen;

	if (p == NULL) {
		err_set(err, "cannot serialise the JWS");
		return NULL;
	}
	size_t pl = strlen(p);
	if ((out = malloc(hl + pl + 2)) == NULL) {
		err_set(err, "out of memory signing a JWS");
		goto out;
	}
	memcpy(out, h, hl);
	out[hl] = '.';
	memcpy(out + hl + 1, p, pl + 1);
	if (sign_bytes(a, key, (const uint8_t *)out, hl + 1 + pl, &sig, &siglen, err) < 0 ||
	    (s = b64_encode(sig, siglen, B64_URL)) == NULL) {
		free(out);
		out = NULL;
		goto out;
	}
	size_t sl = strlen(s);
	char *whole = realloc(out, hl + pl + sl + 3);
	if (whole == NULL) {
		free(out);
		out = NULL;
		err_set(err, "out of memory signing a JWS");
		goto out;
	}
	out = whole;
	out[hl + 1 + pl] = '.';
	memcpy(out + hl + 2 + pl, s, sl + 1);
out:
	free(p);
	free(s);
	free(sig);
	return out;
}

char *jws_sign(const json_t *header, const json_t *payload, EVP_PKEY *key, const char *alg,
               struct err *err)
{
	const struct jws_alg *a = alg_for(alg, key, err);
	char *h, *out;

	if (a == NULL)
		return NULL;
	if ((h = jose_b64url_json(header)) == NULL) {
		err_set(err, "cannot serialise the JWS");
		return NULL;
	}
	out = sign_compact(h, strlen(h), payload, key, a, err);
	free(h);
	return out;
}

char *jws_header_b64(const json_t *header)
{
	return jose_b64url_json(header);
}

char *jws_sign_b64_header(const char *header_b64, const json_t *payload, EVP_PKEY *key,
                          const char *alg, struct err *err)
{
	const struct jws_alg *a = alg_for(alg, key, err);
	return a ? sign_compact(header_b64, strlen(header_b64), payload, key, a, err) : NULL;
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
	/* jansson's reading, faster (jsonr.h); jansson decides what jsonr does not take */
	if ((j = jsonr_object((const char *)raw, rl)) == NULL)
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
