/*
 * cose: COSE_Sign1 (RFC 9052 §4.2, CBOR tag 18) parsing and verification, for signed CoRIM
 * in the RVPS and, later, CBOR-signed evidence in the AS. The key pins the algorithm, as in
 * jose.h: an EC P-256 key verifies ES256 only, P-384 ES384, Ed25519 EdDSA, RSA (2048 bits or
 * more) PS256; a protected "alg" naming anything else is refused, and "alg" or "crit" in the
 * unprotected header are refused. The signature covers
 *   Sig_structure = ["Signature1", protected bytes as sent, h'' (no external AAD), payload].
 */
#ifndef CTRUSTEE_COSE_H
#define CTRUSTEE_COSE_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "cborx.h"
#include "err.h"

/* COSE algorithm identifiers (IANA "COSE Algorithms"). */
#define COSE_ALG_ES256 (-7)
#define COSE_ALG_EDDSA (-8)
#define COSE_ALG_ES384 (-35)
#define COSE_ALG_PS256 (-37)

struct cose_sign1 {
	cbor_item_t *root;                            /* owned: the decoded message */
	cbor_item_t *protected;                       /* owned: the decoded protected header map */
	const uint8_t *protected_raw, *payload, *sig; /* borrowed from root */
	size_t protected_len, payload_len, sig_len;
	int64_t alg; /* the protected header's alg (label 1) */
};

/* buf: a tag-18 COSE_Sign1 with an attached payload. Fills out (clear it after). */
int cose_sign1_parse(const uint8_t *buf, size_t len, struct cose_sign1 *out, struct err *err);
void cose_sign1_clear(struct cose_sign1 *s);
/* 0 when key, under the algorithm it pins, verifies s; -1 and why otherwise. */
int cose_sign1_verify(const struct cose_sign1 *s, EVP_PKEY *key, struct err *err);
/* The algorithm a key pins (0 when the key suits none), and its name. */
int64_t cose_key_alg(EVP_PKEY *key);
const char *cose_alg_name(int64_t alg);

#endif
