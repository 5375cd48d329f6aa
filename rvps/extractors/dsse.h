/*
 * dsse: DSSE envelopes (github.com/secure-systems-lab/dsse, protocol v1) and the in-toto
 * statements they carry. The envelope is JSON {payloadType, payload (base64), signatures
 * [{keyid?, sig (base64)}]}; a signature covers the pre-authentication encoding
 *   PAE = "DSSEv1" SP LEN(type) SP type SP LEN(payload) SP payload
 * (LEN in ASCII decimal), never the JSON. Both the keyful in-toto path and Sigstore bundles
 * with a dsseEnvelope use these functions.
 */
#ifndef CTRUSTEE_RVPS_DSSE_H
#define CTRUSTEE_RVPS_DSSE_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define DSSE_MAX_SIGS 16
#define INTOTO_PAYLOAD_TYPE "application/vnd.in-toto+json"

struct dsse_sig {
	uint8_t *sig; /* owned, decoded */
	size_t len;
};

struct dsse_envelope {
	char *payload_type; /* owned */
	uint8_t *payload;   /* owned, decoded */
	size_t payload_len;
	struct dsse_sig sigs[DSSE_MAX_SIGS];
	size_t n_sigs;
};

/* buf: envelope JSON (untrusted). */
int dsse_parse(const uint8_t *buf, size_t len, struct dsse_envelope *out, struct err *err);
/* The same from a parsed JSON object (borrowed). */
int dsse_from_json(const json_t *j, struct dsse_envelope *out, struct err *err);
void dsse_free(struct dsse_envelope *e);
/* malloc'd PAE bytes of the envelope, NULL on allocation failure. */
uint8_t *dsse_pae(const struct dsse_envelope *e, size_t *len);
/* 0 when signature `i` verifies over the PAE with key (the key pins the digest: SHA-256 for
 * P-256 and RSA, SHA-384 for P-384, SHA-512 for P-521, none for Ed25519). */
int dsse_verify_sig(const struct dsse_envelope *e, size_t i, EVP_PKEY *key, struct err *err);

/* Verifies `sig` over msg (len bytes) with key under the key's pinned digest (as above). */
int sig_verify_message(EVP_PKEY *key, const uint8_t *msg, size_t len, const uint8_t *sig,
                       size_t sig_len, struct err *err);

/* An in-toto Statement (v0.1 or v1; buf untrusted JSON) to reference values: *out maps each
 * subject name to the array of its digests' hex values, sorted by algorithm name. Names and
 * digests are checked: a non-empty name, at least one digest, every digest lowercase hex of
 * its algorithm's length when the algorithm is known. */
int intoto_statement_parse(const uint8_t *buf, size_t len, json_t **out, struct err *err);

#endif
