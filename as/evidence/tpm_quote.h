/*
 * tpm: TPM 2.0 quotes (TCG TPM 2.0 Library Part 2: TPMS_ATTEST with TPMS_QUOTE_INFO,
 * TPMT_SIGNATURE) and the checks every TPM-based verifier shares: the AK's signature over
 * the attest bytes, the PCR digest recomputed from the reported PCR values, the nonce in
 * extraData and the PCR8 init-data binding (as-rvps.md §2.4). Used by the `tpm`,
 * `az-snp-vtpm` and `az-tdx-vtpm` verifiers.
 */
#ifndef CTRUSTEE_TPM_H
#define CTRUSTEE_TPM_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define TPM_MAX_PCRS 24

struct tpm_attest {
	uint16_t type;
	const uint8_t *extra_data; /* into the caller's buffer */
	size_t extra_data_len;
	uint64_t clock, firmware_version;
	uint32_t reset_count, restart_count;
	uint16_t pcr_hash_alg;              /* TPM_ALG_SHA256 = 0x000b for the one bank we accept */
	uint8_t pcr_selected[TPM_MAX_PCRS]; /* 1 if PCR i is in the quote */
	size_t n_selected;
	const uint8_t *pcr_digest;
	size_t pcr_digest_len;
};

/* Parse a TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE. Pointers refer into buf. */
int tpm_attest_parse(const uint8_t *buf, size_t len, struct tpm_attest *out, struct err *err);

/* A decoded quote: the attest bytes, the signature and the PCR values in selection order. */
struct tpm_quote {
	uint8_t *message;
	size_t message_len;
	uint8_t *signature; /* TPMT_SIGNATURE if sig_is_tpmt, else a raw RSA signature */
	size_t signature_len;
	int sig_is_tpmt;
	uint8_t pcrs[TPM_MAX_PCRS][32];
	size_t n_pcrs;
	struct tpm_attest attest;
	int pcr_index[TPM_MAX_PCRS]; /* PCR number of pcrs[i] */
};

void tpm_quote_free(struct tpm_quote *q);
/* Verify the signature with the AK (RSASSA-PKCS1v1.5 SHA-256 or ECDSA SHA-256), parse the
 * attest, and check that SHA-256 of the PCR values equals the quoted digest. */
int tpm_quote_verify(struct tpm_quote *q, EVP_PKEY *ak, struct err *err);
/* Nonce binding: exact (az-*) or resized to 32 bytes (tpm). */
int tpm_check_nonce(const struct tpm_quote *q, const uint8_t *rd, size_t rdlen, int resize32,
                    struct err *err);
/* PCR8 == SHA-256(32 zero bytes || hash); hash must be 32 bytes. */
int tpm_check_pcr8(const struct tpm_quote *q, const uint8_t *hash, size_t len, struct err *err);
/* Adds "pcrNN": hex for every quoted PCR into obj. */
void tpm_pcr_claims(const struct tpm_quote *q, json_t *obj);
/* Pointer to PCR n's value or NULL. */
const uint8_t *tpm_pcr(const struct tpm_quote *q, int n);

/* How a quote's byte fields are spelled in an evidence document. */
enum tpm_json_form {
	TPM_JSON_B64_TPMT,  /* tpm: base64 strings, signature is a TPMT_SIGNATURE */
	TPM_JSON_HEX_RAW,   /* az-* v1/v2: hex strings, raw RSA signature */
	TPM_JSON_BYTES_RAW, /* az-* v0: arrays of byte values, raw RSA signature */
};
/* Decode {"signature", "message", "pcrs"} into q (owned buffers; tpm_quote_free). */
int tpm_quote_from_json(const json_t *j, enum tpm_json_form form, struct tpm_quote *q,
                        struct err *err);
/* Decode a byte field in one of the forms above (also used for HCL reports). */
int tpm_json_bytes(const json_t *v, enum tpm_json_form form, uint8_t **out, size_t *len,
                   struct err *err);

#endif
