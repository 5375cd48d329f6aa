/*
 * se_attest: IBM Secure Execution attestation bytes (see se_attest.h). The ARCB is what the
 * Ultravisor alone can open: its protection key is AES-256-GCM wrapped under SHA-256(ECDH(a
 * fresh P-521 customer key, the host key) ‖ 00000001) for each host, and the measurement key
 * and nonce are sealed under that protection key with the header and key slots as AAD. Every
 * length a stranger sends is checked against the fixed layout before a byte is read.
 */
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "as/evidence/se_attest.h"

#define HDR_MAGIC 0x49424d5365634578ULL /* "IBMSecEx" */
#define HDR_MIN 432                     /* head (416) + tag (16) */
#define ARCB_HDR_LEN 0xe0
#define ARCB_SLOT_LEN 0x50
#define ARCB_IV_LEN 12
#define ARCB_TAG_LEN 16
#define ECDH_COORD 80

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

int se_hdr_tags(const uint8_t *buf, size_t len, uint8_t out[SE_HDR_TAGS_LEN], struct err *err)
{
	if (len < HDR_MIN)
		return err_set(err, "SE header is %zu bytes, shorter than its fixed part", len);
	if (be64(buf) != HDR_MAGIC)
		return err_set(err, "SE header does not start with the IBMSecEx magic");
	uint32_t phs = (uint32_t)(be64(buf + 8) & 0xffffffffu);
	if (phs != len)
		return err_set(err, "SE header says %u bytes but is %zu", phs, len);
	memcpy(out, buf + 224, 3 * 64);        /* pld, ald, tld */
	memcpy(out + 192, buf + len - 16, 16); /* the header's GCM tag */
	return 0;
}

int se_additional_parse(const uint8_t *buf, size_t len, uint64_t paf, struct se_additional *out,
                        struct err *err)
{
	size_t want = 0;

	memset(out, 0, sizeof(*out));
	if (paf & SE_PAF_PHKH_IMAGE)
		out->image_phkh = buf + want, want += SE_PHKH_LEN;
	if (paf & SE_PAF_PHKH_ATTEST)
		out->attest_phkh = buf + want, want += SE_PHKH_LEN;
	if (len != want) {
		memset(out, 0, sizeof(*out));
		return err_set(err, "SE additional data is %zu bytes, the request asked for %zu",
		               len, want);
	}
	return 0;
}

/* x ‖ y of an EC key, each right-aligned in 80 bytes. */
static int ecdh_pub(EVP_PKEY *k, uint8_t out[2 * ECDH_COORD], struct err *err)
{
	BIGNUM *x = NULL, *y = NULL;
	int rc = -1;

	if (EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &x) != 1 ||
	    EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &y) != 1 ||
	    BN_bn2binpad(x, out, ECDH_COORD) != ECDH_COORD ||
	    BN_bn2binpad(y, out + ECDH_COORD, ECDH_COORD) != ECDH_COORD)
		err_set(err, "the host key is not an EC key");
	else
		rc = 0;
	BN_free(x);
	BN_free(y);
	return rc;
}

int se_phkh(EVP_PKEY *host_key, uint8_t out[SE_PHKH_LEN], struct err *err)
{
	uint8_t pub[2 * ECDH_COORD];
	if (ecdh_pub(host_key, pub, err) < 0)
		return -1;
	SHA256(pub, sizeof(pub), out);
	return 0;
}

/* AES-256-GCM of in[0..n) under key/iv with aad; ciphertext to out, tag to tag. */
static int gcm_seal(const uint8_t key[32], const uint8_t iv[ARCB_IV_LEN], const uint8_t *aad,
                    size_t alen, const uint8_t *in, size_t n, uint8_t *out,
                    uint8_t tag[ARCB_TAG_LEN])
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int l, ok = c != NULL && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, iv) == 1 &&
	            (alen == 0 || EVP_EncryptUpdate(c, NULL, &l, aad, (int)alen) == 1) &&
	            EVP_EncryptUpdate(c, out, &l, in, (int)n) == 1 &&
	            EVP_EncryptFinal_ex(c, out + l, &l) == 1 &&
	            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, ARCB_TAG_LEN, tag) == 1;
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : -1;
}

/* SHA-256(ECDH(cust, host) ‖ 00000001): the key that wraps the protection key for `host`. */
static int exchange_key(EVP_PKEY *cust, EVP_PKEY *host, uint8_t out[32], struct err *err)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(cust, NULL);
	uint8_t z[80 + 4];
	size_t zl = 80;
	int ok = c != NULL && EVP_PKEY_derive_init(c) == 1 &&
	         EVP_PKEY_derive_set_peer(c, host) == 1 && EVP_PKEY_derive(c, z, &zl) == 1 &&
	         zl <= 80;

	EVP_PKEY_CTX_free(c);
	if (ok) {
		memcpy(z + zl, "\x00\x00\x00\x01", 4);
		SHA256(z, zl + 4, out);
	}
	OPENSSL_cleanse(z, sizeof(z));
	return ok ? 0 : err_set(err, "ECDH with a host key failed (is it a P-521 key?)");
}

/* One key slot: PHKH, the wrapped protection key and its tag. */
static int key_slot(EVP_PKEY *cust, EVP_PKEY *host, const uint8_t arpk[32], uint8_t *slot,
                    struct err *err)
{
	static const uint8_t zero_iv[ARCB_IV_LEN];
	uint8_t xk[32];
	int rc = -1;

	if (se_phkh(host, slot, err) == 0 && exchange_key(cust, host, xk, err) == 0) {
		if (gcm_seal(xk, zero_iv, NULL, 0, arpk, 32, slot + 32, slot + 64) == 0)
			rc = 0;
		else
			err_set(err, "wrapping the attestation request key failed");
	}
	OPENSSL_cleanse(xk, sizeof(xk));
	return rc;
}

int se_arcb_build(EVP_PKEY *const *hosts, size_t n, uint64_t paf,
                  const uint8_t mkey[SE_MEAS_KEY_LEN], const uint8_t nonce[SE_NONCE_LEN],
                  uint8_t **out, size_t *len, struct err *err)
{
	const size_t sea = SE_MEAS_KEY_LEN + SE_NONCE_LEN;
	size_t aad = ARCB_HDR_LEN + n * ARCB_SLOT_LEN, total = aad + sea + ARCB_TAG_LEN;
	uint8_t arpk[32], secret[SE_MEAS_KEY_LEN + SE_NONCE_LEN];
	EVP_PKEY *cust = NULL;
	uint8_t *b = NULL;
	int rc = -1;

	*out = NULL;
	if (n == 0 || n > 254)
		return err_set(err, "an SE attestation request needs 1 to 254 host keys, not %zu",
		               n);
	if ((b = calloc(1, total)) == NULL)
		return err_set(err, "out of memory");
	cust = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp521r1");
	if (cust == NULL || RAND_bytes(arpk, sizeof(arpk)) != 1 ||
	    RAND_bytes(b + 0x10, ARCB_IV_LEN) != 1) {
		err_set(err, "cannot make the SE request keys");
		goto out;
	}
	put_be32(b + 0x08, SE_ARCB_VERSION);
	put_be32(b + 0x0c, (uint32_t)total);
	b[0x27] = (uint8_t)n;
	put_be32(b + 0x2c, (uint32_t)sea);
	put_be64(b + 0x30, paf | SE_PAF_NONCE);
	put_be32(b + 0x38, SE_MAI_HMAC_SHA512);
	if (ecdh_pub(cust, b + 0x40, err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (key_slot(cust, hosts[i], arpk, b + ARCB_HDR_LEN + i * ARCB_SLOT_LEN, err) < 0)
			goto out;
	memcpy(secret, mkey, SE_MEAS_KEY_LEN);
	memcpy(secret + SE_MEAS_KEY_LEN, nonce, SE_NONCE_LEN);
	if (gcm_seal(arpk, b + 0x10, b, aad, secret, sea, b + aad, b + aad + sea) < 0) {
		err_set(err, "sealing the SE request failed");
		goto out;
	}
	*out = b;
	*len = total;
	b = NULL;
	rc = 0;
out:
	OPENSSL_cleanse(arpk, sizeof(arpk));
	OPENSSL_cleanse(secret, sizeof(secret));
	EVP_PKEY_free(cust);
	free(b);
	return rc;
}

int se_measure(const uint8_t mkey[SE_MEAS_KEY_LEN], const uint8_t tags[SE_HDR_TAGS_LEN],
               const uint8_t cuid[SE_CUID_LEN], const uint8_t *user, size_t ulen,
               const uint8_t nonce[SE_NONCE_LEN], const uint8_t *add, size_t alen,
               uint8_t out[SE_MEASUREMENT_LEN], struct err *err)
{
	uint8_t sizes[8] = {0};
	unsigned int ol = 0;

	if (ulen > SE_USER_DATA_MAX || alen > SE_ADDITIONAL_MAX)
		return err_set(err, "SE user data (%zu) or additional data (%zu) is over its limit",
		               ulen, alen);
	sizes[0] = (uint8_t)(ulen >> 8);
	sizes[1] = (uint8_t)ulen;
	put_be32(sizes + 4, (uint32_t)alen);
	/* the measured bytes, one after the other, for the one-shot HMAC */
	size_t n = SE_HDR_TAGS_LEN + SE_CUID_LEN + sizeof(sizes) + ulen + SE_NONCE_LEN + alen,
	       o = 0;
	uint8_t *m = malloc(n);
	if (m == NULL)
		return err_set(err, "out of memory");
	memcpy(m + o, tags, SE_HDR_TAGS_LEN), o += SE_HDR_TAGS_LEN;
	memcpy(m + o, cuid, SE_CUID_LEN), o += SE_CUID_LEN;
	memcpy(m + o, sizes, sizeof(sizes)), o += sizeof(sizes);
	if (ulen > 0)
		memcpy(m + o, user, ulen), o += ulen;
	memcpy(m + o, nonce, SE_NONCE_LEN), o += SE_NONCE_LEN;
	if (alen > 0)
		memcpy(m + o, add, alen);
	int ok = HMAC(EVP_sha512(), mkey, SE_MEAS_KEY_LEN, m, n, out, &ol) != NULL &&
	         ol == SE_MEASUREMENT_LEN;
	free(m);
	return ok ? 0 : err_set(err, "computing the SE measurement failed");
}
