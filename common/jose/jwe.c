/*
 * JWE in the flattened JSON serialisation, as the KBS wraps a resource for a TEE's key
 * (kbs-protocol.md §3; jose/jose.h).
 *
 * The content is encrypted with A256GCM under a fresh 32-byte key, with the base64url protected
 * header as additional data. The content key is wrapped for the recipient's tee-pubkey by
 * ECDH-ES+A256KW (a P-256 or P-521 recipient, an ephemeral key of the same curve, the Concat KDF
 * and RFC 3394 AES key wrap) or by RSA-OAEP-256 / RSA1_5 (2048 to 4096-bit recipients).
 * Decryption (kbs-client, tests) takes the algorithm that fits the private key, checks every
 * length before OpenSSL sees a buffer, and refuses any content key that is not 32 bytes.
 * Content keys, shared secrets and key-encryption keys are wiped after use.
 *
 * Built once, not per call: the ephemeral key starts from the curve's parameters-only key
 * (jose_ec_params) through a generation context kept per thread, and AES-256-GCM, AES-256 key wrap
 * and SHA-256 are fetched from the provider once per process. The ECDH peer is not validated again
 * at derivation: every peer comes from jwk_to_pkey, which decoded its point onto the curve, and
 * P-256 and P-521 have cofactor 1 (as P-384, which decryption also meets), so the further check
 * OpenSSL would run (the point times the group order, a second scalar multiplication as dear as the
 * derivation) cannot fail.
 */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "jose/jose.h"
#include "jose/jose_int.h"

#define CEK_LEN 32
#define IV_LEN 12
#define TAG_LEN 16

static EVP_CIPHER *aes_gcm, *aes_wrap;
static EVP_MD *sha256;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch_init(void)
{
	aes_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	aes_wrap = EVP_CIPHER_fetch(NULL, "AES-256-WRAP", NULL);
	sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
}

/* 0 when the algorithms were fetched (kept for the life of the process). */
static int fetched(void)
{
	pthread_once(&fetch_once, fetch_init);
	return aes_gcm && aes_wrap && sha256 ? 0 : -1;
}

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
	int ok = fetched() == 0 && EVP_Digest(buf, o, kek, NULL, sha256, NULL) == 1;
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
	if (fetched() < 0)
		return -1;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int l1 = 0, l2 = 0, ok = 0;
	if (c == NULL)
		return -1;
	EVP_CIPHER_CTX_set_flags(c, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	if (EVP_CipherInit_ex(c, aes_wrap, NULL, kek, NULL, wrap) == 1 &&
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
	int ok = c && EVP_PKEY_derive_init(c) == 1 &&
	         EVP_PKEY_derive_set_peer_ex(c, peer, 0) == 1 && EVP_PKEY_derive(c, z, zlen) == 1;
	EVP_PKEY_CTX_free(c);
	return ok ? 0 : -1;
}

static int gcm(int enc, const uint8_t *key, const uint8_t *iv, const char *aad, const uint8_t *in,
               size_t inlen, uint8_t *out, uint8_t *tag)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int l = 0, ok = 0;
	if (c == NULL || inlen > INT32_MAX || fetched() < 0)
		goto out;
	if (EVP_CipherInit_ex(c, aes_gcm, NULL, NULL, NULL, enc) != 1 ||
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

/*
 * Ephemeral keys come from a key-generation context kept per thread and curve: making one
 * (EVP_PKEY_CTX_new_from_pkey, keygen_init) looks the EC key manager up by name, about 1% of a
 * JWE. A context generates any number of keys, each from fresh randomness, but serves one thread
 * at a time, and OpenSSL 3.0 cannot duplicate a generation context, hence one per thread; they
 * are freed when the thread exits. Without a thread key, every call makes its own.
 */
#define KG_CURVES 3 /* P-256, P-384, P-521 */
struct keygens {
	EVP_PKEY_CTX *c[KG_CURVES]; /* owned; NULL until the thread's first key on that curve */
};
static pthread_key_t kg_key;
static int kg_key_ok;
static pthread_once_t kg_once = PTHREAD_ONCE_INIT;

static void keygens_free(void *p)
{
	struct keygens *k = p;
	for (int i = 0; i < KG_CURVES; i++)
		EVP_PKEY_CTX_free(k->c[i]);
	free(k);
}

static void kg_init(void)
{
	kg_key_ok = pthread_key_create(&kg_key, keygens_free) == 0;
}

static EVP_PKEY_CTX *keygen_new(EVP_PKEY *params)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, params, NULL);
	if (c != NULL && EVP_PKEY_keygen_init(c) != 1) {
		EVP_PKEY_CTX_free(c);
		c = NULL;
	}
	return c;
}

static EVP_PKEY *ec_generate(const char *crv)
{
	EVP_PKEY *params = jose_ec_params(crv), *k = NULL;
	int i = strcmp(crv, "P-256") == 0 ? 0 : strcmp(crv, "P-384") == 0 ? 1 : 2;
	struct keygens *kg = NULL;
	EVP_PKEY_CTX *c = NULL;

	if (params == NULL)
		return NULL;
	pthread_once(&kg_once, kg_init);
	if (kg_key_ok && (kg = pthread_getspecific(kg_key)) == NULL &&
	    (kg = calloc(1, sizeof(*kg))) != NULL && pthread_setspecific(kg_key, kg) != 0) {
		free(kg);
		kg = NULL;
	}
	if (kg != NULL && kg->c[i] == NULL)
		kg->c[i] = keygen_new(params);
	c = kg != NULL ? kg->c[i] : keygen_new(params);
	if (c == NULL || EVP_PKEY_keygen(c, &k) != 1) {
		EVP_PKEY_free(k);
		k = NULL;
	}
	if (kg == NULL)
		EVP_PKEY_CTX_free(c);
	return k;
}

/* The ephemeral key's public JWK as the protected header carries it, members sorted (crv,
 * kty, x, y: §3.4), the coordinates cut from its encoded point (jose_ec_point), written
 * as compact JSON text into out (cap bytes). Every member is a fixed name or base64url, so the
 * text is what jansson's compact dump of the same object gives, without building the object. */
static int epk_text(EVP_PKEY *eph, const char *crv, size_t size, char *out, size_t cap)
{
	uint8_t px[66], py[66];
	if (jose_ec_point(eph, size, px, py) != 0)
		return -1;
	char *x = b64_encode(px, size, B64_URL), *y = b64_encode(py, size, B64_URL);
	int len =
	    x && y ? snprintf(out, cap, "{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
	                      crv, x, y)
	           : -1;
	free(x);
	free(y);
	return len > 0 && (size_t)len < cap ? 0 : -1;
}

static int rsa_crypt(int enc, EVP_PKEY *k, int oaep, const uint8_t *in, size_t inlen, uint8_t *out,
                     size_t *outlen)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(k, NULL);
	int ok = c != NULL && (enc ? EVP_PKEY_encrypt_init(c) : EVP_PKEY_decrypt_init(c)) == 1 &&
	         EVP_PKEY_CTX_set_rsa_padding(c, oaep ? RSA_PKCS1_OAEP_PADDING
	                                              : RSA_PKCS1_PADDING) == 1 &&
	         (!oaep || (fetched() == 0 && EVP_PKEY_CTX_set_rsa_oaep_md(c, sha256) == 1 &&
	                    EVP_PKEY_CTX_set_rsa_mgf1_md(c, sha256) == 1)) &&
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
	json_t *out = NULL;
	uint8_t *ct = malloc(len + 1);
	char *protected = NULL, epk[256] = "", header[384];

	if (ct == NULL || kty == NULL || alg == NULL) {
		err_set(err, "tee-pubkey needs `kty` and `alg`");
		goto done;
	}
	uint8_t rnd[CEK_LEN + IV_LEN]; /* one draw from the generator for both */
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		err_set(err, "no randomness");
		goto done;
	}
	memcpy(cek, rnd, CEK_LEN);
	memcpy(iv, rnd + CEK_LEN, IV_LEN);
	OPENSSL_cleanse(rnd, sizeof(rnd));
	if (strcmp(kty, "EC") == 0 && strcmp(alg, "ECDH-ES+A256KW") == 0 && crv != NULL &&
	    (strcmp(crv, "P-256") == 0 || strcmp(crv, "P-521") == 0)) {
		uint8_t z[66], kek[32];
		size_t zlen = sizeof(z);
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
		if (epk_text(eph, crv, strcmp(crv, "P-256") == 0 ? 32 : 66, epk, sizeof(epk)) < 0) {
			err_set(err, "cannot export the ephemeral key");
			goto done;
		}
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
	} else {
		err_set(err, "tee-pubkey kty %s with alg %s%s%s is not supported", kty, alg,
		        crv ? " on " : "", crv ? crv : "");
		goto done;
	}
	/* the protected header as compact JSON (§3.4): alg and crv are one of the names matched
	 * above, so nothing in it needs escaping */
	int hl = snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"enc\":\"A256GCM\"%s%s}", alg,
	                  epk[0] ? ",\"epk\":" : "", epk);
	if (hl > 0 && (size_t)hl < sizeof(header))
	protected = b64_encode((const uint8_t *)header, (size_t)hl, B64_URL);
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
	    (h = jose_decode_segment(prot, strlen(prot), "protected header", err)) == NULL)
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
