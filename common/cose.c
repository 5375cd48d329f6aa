/*
 * cose: COSE_Sign1 (see cose.h). Parsing checks the shape RFC 9052 gives (a four-element
 * array of bstr, map, bstr, bstr inside tag 18, the protected map decoded from its own
 * bytes); verification rebuilds the Sig_structure from the bytes as received, so a
 * re-encoding can never change what was signed.
 */
#include "cose.h"

#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <string.h>

void cose_sign1_clear(struct cose_sign1 *s)
{
	if (s->root != NULL)
		cbor_decref(&s->root);
	if (s->protected != NULL)
		cbor_decref(&s->protected);
	memset(s, 0, sizeof(*s));
}

static int parse_headers(struct cose_sign1 *s, const cbor_item_t *unprot, struct err *err)
{
	cbor_item_t *alg, *crit, *u_alg;

	if (s->protected_len == 0)
		return err_set(err, "COSE_Sign1: the protected header is empty (no algorithm)");
	s->protected = cborx_load(s->protected_raw, s->protected_len, err);
	if (s->protected == NULL)
		return err_prefix(err, "COSE_Sign1 protected header");
	if (!cbor_isa_map(s->protected))
		return err_set(err, "COSE_Sign1: the protected header is not a map");
	if (cborx_map_int(s->protected, 1, &alg, err) < 0 ||
	    cborx_map_int(s->protected, 2, &crit, err) < 0 ||
	    cborx_map_int(unprot, 1, &u_alg, err) < 0)
		return err_prefix(err, "COSE_Sign1 header");
	if (alg == NULL || cborx_int(alg, &s->alg) < 0)
		return err_set(err, "COSE_Sign1: the protected header has no integer algorithm");
	if (crit != NULL)
		return err_set(err, "COSE_Sign1: critical header parameters are not supported");
	if (u_alg != NULL)
		return err_set(err, "COSE_Sign1: the algorithm must not be in the unprotected "
		                    "header");
	return 0;
}

int cose_sign1_parse(const uint8_t *buf, size_t len, struct cose_sign1 *out, struct err *err)
{
	cbor_item_t *arr, **a;

	memset(out, 0, sizeof(*out));
	/* tag 18 in its one-byte head 0xd2, removed here: the decoder takes the array */
	if (buf == NULL || len < 1 || buf[0] != 0xd2)
		return err_set(err, "COSE_Sign1: not CBOR tag 18");
	out->root = cborx_load(buf + 1, len - 1, err);
	if (out->root == NULL)
		goto fail;
	arr = out->root;
	if (!cbor_isa_array(arr) || cbor_array_size(arr) != 4) {
		err_set(err, "COSE_Sign1: not an array of four items");
		goto fail;
	}
	a = cbor_array_handle(arr);
	if (cborx_bytes(a[0], &out->protected_raw, &out->protected_len) < 0 ||
	    !cbor_isa_map(a[1])) {
		err_set(err, "COSE_Sign1: the headers are not a byte string and a map");
		goto fail;
	}
	if (cborx_bytes(a[2], &out->payload, &out->payload_len) < 0) {
		err_set(err, "COSE_Sign1: the payload is detached or not a byte string");
		goto fail;
	}
	if (cborx_bytes(a[3], &out->sig, &out->sig_len) < 0 || out->sig_len == 0) {
		err_set(err, "COSE_Sign1: the signature is not a byte string");
		goto fail;
	}
	if (parse_headers(out, a[1], err) < 0)
		goto fail;
	return 0;
fail:
	cose_sign1_clear(out);
	return -1;
}

int64_t cose_key_alg(EVP_PKEY *key)
{
	char group[64];

	if (EVP_PKEY_is_a(key, "ED25519"))
		return COSE_ALG_EDDSA;
	if (EVP_PKEY_is_a(key, "RSA") || EVP_PKEY_is_a(key, "RSA-PSS"))
		return EVP_PKEY_get_bits(key) >= 2048 ? COSE_ALG_PS256 : 0;
	if (EVP_PKEY_is_a(key, "EC") &&
	    EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
	                                   NULL) == 1) {
		if (strcmp(group, "prime256v1") == 0)
			return COSE_ALG_ES256;
		if (strcmp(group, "secp384r1") == 0)
			return COSE_ALG_ES384;
	}
	return 0;
}

const char *cose_alg_name(int64_t alg)
{
	switch (alg) {
	case COSE_ALG_ES256:
		return "ES256";
	case COSE_ALG_ES384:
		return "ES384";
	case COSE_ALG_EDDSA:
		return "EdDSA";
	case COSE_ALG_PS256:
		return "PS256";
	default:
		return "an unsupported algorithm";
	}
}

/* A CBOR head (major type mt, argument n) into p; returns its length. */
static size_t put_head(uint8_t *p, int mt, uint64_t n)
{
	int k = n < 24 ? 0 : n <= 0xff ? 1 : n <= 0xffff ? 2 : n <= 0xffffffffu ? 4 : 8;

	p[0] = (uint8_t)(mt << 5 | (k == 0 ? n : 23 + (k == 1 ? 1 : k == 2 ? 2 : k == 4 ? 3 : 4)));
	for (int i = 0; i < k; i++)
		p[1 + i] = (uint8_t)(n >> (8 * (k - 1 - i)));
	return 1 + (size_t)k;
}

/* Sig_structure for Signature1, malloc'd. */
static uint8_t *sig_structure(const struct cose_sign1 *s, size_t *len)
{
	uint8_t *p = malloc(32 + s->protected_len + s->payload_len), *q;

	if (p == NULL)
		return NULL;
	q = p;
	q += put_head(q, 4, 4);
	q += put_head(q, 3, 10);
	memcpy(q, "Signature1", 10);
	q += 10;
	q += put_head(q, 2, s->protected_len);
	memcpy(q, s->protected_raw, s->protected_len);
	q += s->protected_len;
	q += put_head(q, 2, 0);
	q += put_head(q, 2, s->payload_len);
	if (s->payload_len > 0)
		memcpy(q, s->payload, s->payload_len);
	q += s->payload_len;
	*len = (size_t)(q - p);
	return p;
}

/* Raw r||s (RFC 9053 §2.1) to the DER form OpenSSL verifies. */
static unsigned char *ecdsa_der(const uint8_t *sig, size_t len, size_t want, int *der_len)
{
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r, *s;
	unsigned char *der = NULL;

	if (es == NULL || len != want)
		goto out;
	r = BN_bin2bn(sig, (int)(len / 2), NULL);
	s = BN_bin2bn(sig + len / 2, (int)(len / 2), NULL);
	if (r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
		BN_free(r);
		BN_free(s);
		goto out;
	}
	*der_len = i2d_ECDSA_SIG(es, &der);
	if (*der_len <= 0)
		der = NULL;
out:
	ECDSA_SIG_free(es);
	return der;
}

int cose_sign1_verify(const struct cose_sign1 *s, EVP_PKEY *key, struct err *err)
{
	int64_t alg = cose_key_alg(key);
	EVP_MD_CTX *md = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *der = NULL;
	const unsigned char *sig = s->sig;
	size_t sig_len = s->sig_len, tbs_len = 0;
	uint8_t *tbs = NULL;
	int der_len = 0, rc = -1;

	if (alg == 0)
		return err_set(err, "COSE_Sign1: the key suits none of ES256, ES384, EdDSA, PS256");
	if (alg != s->alg)
		return err_set(err, "COSE_Sign1: signed with %s (%lld) but the key is for %s",
		               cose_alg_name(s->alg), (long long)s->alg, cose_alg_name(alg));
	if (alg == COSE_ALG_ES256 || alg == COSE_ALG_ES384) {
		der = ecdsa_der(s->sig, s->sig_len, alg == COSE_ALG_ES256 ? 64 : 96, &der_len);
		if (der == NULL)
			return err_set(err, "COSE_Sign1: the %s signature is not %d bytes of r||s",
			               cose_alg_name(alg), alg == COSE_ALG_ES256 ? 64 : 96);
		sig = der;
		sig_len = (size_t)der_len;
	}
	tbs = sig_structure(s, &tbs_len);
	md = EVP_MD_CTX_new();
	if (tbs == NULL || md == NULL) {
		err_set(err, "out of memory");
		goto out;
	}
	if (EVP_DigestVerifyInit(md, &pctx,
	                         alg == COSE_ALG_EDDSA   ? NULL
	                         : alg == COSE_ALG_ES384 ? EVP_sha384()
	                                                 : EVP_sha256(),
	                         NULL, key) != 1 ||
	    (alg == COSE_ALG_PS256 &&
	     (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	      EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
	      EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1))) {
		err_set(err, "COSE_Sign1: cannot set up %s verification", cose_alg_name(alg));
		goto out;
	}
	if (EVP_DigestVerify(md, sig, sig_len, tbs, tbs_len) != 1) {
		err_set(err, "COSE_Sign1: the %s signature does not verify with the key",
		        cose_alg_name(alg));
		goto out;
	}
	rc = 0;
out:
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	free(tbs);
	return rc;
}
