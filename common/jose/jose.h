/*
 * jose: JWK, JWS (compact) and JWE (flattened JSON) on OpenSSL 3, in three files: jwk.c (keys
 * into and out of JSON, PEM files, comparison), jws.c (the algorithm table, sign, verify,
 * decode), jwe.c (content encryption and key wrapping for a TEE's key).
 *
 * The key pins the algorithm: a JWS is verified only with the algorithm the caller names
 * for the key (or the key's own JWK `alg`), never with the header's; `none` and HS* are
 * never accepted with an asymmetric key.
 * JWS algorithms: ES256, ES384, ES512, RS256, RS384, RS512, PS256, PS384, PS512, EdDSA.
 * JWE: alg ECDH-ES+A256KW (P-256, P-521), RSA-OAEP-256, RSA1_5; enc A256GCM; the protected
 * header is emitted byte-exactly as kbs-protocol.md §3.4.
 */
#ifndef CTRUSTEE_JOSE_H
#define CTRUSTEE_JOSE_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* --- JWK --- */
/* Import the public key a JWK describes (EC P-256/P-384/P-521, RSA, OKP Ed25519); private
 * members (d, p, q...) are ignored, so the result can only verify or encrypt. */
EVP_PKEY *jwk_to_pkey(const json_t *jwk, struct err *err);
/* The affine coordinates of an EC public key (P-256/384/521), each `size` bytes, cut from its
 * uncompressed encoded point 04 || x || y: one conversion from OpenSSL's internal form, where
 * asking for x and y as numbers makes two. 0, or -1 when the key has no such point or `size`
 * is not its coordinate size. */
int jose_ec_point(const EVP_PKEY *pk, size_t size, uint8_t *x, uint8_t *y);
/* Export the public members: kty, crv, x, y / n, e / x; no alg, no kid. include_private adds
 * an EC key's `d` (RSA and Ed25519 keys are exported public only). EC coordinates and `d` are
 * left-padded to the curve size. Returns a new reference. */
json_t *jwk_from_pkey(const EVP_PKEY *pkey, int include_private, struct err *err);
/* The JWS algorithm a key implies: ES256/ES384/ES512 by curve, EdDSA, RS256 for RSA. */
const char *jwk_default_alg(const EVP_PKEY *pkey);
/* 1 if both keys are the same public key. */
int pkey_public_equal(const EVP_PKEY *a, const EVP_PKEY *b);

/* PEM files: a private key; a public key, as SPKI or as the first certificate in the file. */
EVP_PKEY *pem_read_private_key(const char *path, struct err *err);
EVP_PKEY *pem_read_public_key(const char *path, struct err *err); /* SPKI or certificate */

/* --- JWS compact --- */
/* Signs b64url(header_json) "." b64url(payload_json). `header` and `payload` are serialised
 * compactly in their insertion order (jansson preserves it). `alg` must fit `key`.
 * Returns a malloc'd token. */
char *jws_sign(const json_t *header, const json_t *payload, EVP_PKEY *key, const char *alg,
               struct err *err);
/* The header segment jws_sign would make for `header`: base64url of its compact JSON, members in
 * insertion order. Malloc'd, NULL on failure. */
char *jws_header_b64(const json_t *header);
/* jws_sign for a caller that keeps its header's segment: header_b64 is base64url of the compact
 * header JSON (jose_b64url_json's bytes, an `alg` equal to alg), used as it is. The token is
 * byte-identical to jws_sign's for that header. */
char *jws_sign_b64_header(const char *header_b64, const json_t *payload, EVP_PKEY *key,
                          const char *alg, struct err *err);
/* Verifies with `key` and exactly `alg` (the header's alg must equal it). On success returns 0
 * and, if non-NULL, new references to the decoded header and payload. */
int jws_verify(const char *token, EVP_PKEY *key, const char *alg, json_t **header, json_t **payload,
               struct err *err);
/* Decodes without verifying (to pick a key). */
int jws_decode_unverified(const char *token, json_t **header, json_t **payload, struct err *err);
/* The header alone, decoded without verifying (to pick a key): a new reference, or NULL when
 * the token is not three dot-separated parts or the header is not a JSON object. */
json_t *jws_header(const char *token, struct err *err);
/* jws_verify for a caller that already holds jws_header(token): the same checks (that header's
 * alg equals alg, the signature verifies with key), and the payload decoded once, as a new
 * reference in *payload. The header is not decoded a second time. */
int jws_verify_with_header(const char *token, const json_t *header, EVP_PKEY *key, const char *alg,
                           json_t **payload, struct err *err);

/* --- JWE flattened JSON --- */
/* Encrypts to a KBS TeePubKey object ({"kty":"EC","crv","alg","x","y"} or
 * {"kty":"RSA","alg","n","e"}). Returns the JSON object with members in the order
 * protected, encrypted_key, iv, ciphertext, tag (new reference). */
json_t *jwe_encrypt(const json_t *tee_pubkey, const uint8_t *plain, size_t len, struct err *err);
/* Decrypts with a private key (tests and kbs-client). *plain is malloc'd. */
int jwe_decrypt(const json_t *jwe, EVP_PKEY *priv, uint8_t **plain, size_t *len, struct err *err);

#endif
