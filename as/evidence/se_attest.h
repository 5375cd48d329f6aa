/*
 * se_attest: the byte formats and crypto of IBM Secure Execution attestation (as-rvps.md
 * §5.10): the attestation request control block (ARCB v1) the verifier builds for the
 * Ultravisor, the SE image header's tags, the additional data the Ultravisor appends and the
 * HMAC-SHA512 measurement it computes. No disk, no network; the parsers take (buf, len).
 */
#ifndef CTRUSTEE_SE_ATTEST_H
#define CTRUSTEE_SE_ATTEST_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define SE_ARCB_VERSION 0x0100u
#define SE_MAI_HMAC_SHA512 1u
#define SE_MEAS_KEY_LEN 64
#define SE_NONCE_LEN 16
#define SE_PHKH_LEN 32
#define SE_CUID_LEN 16
#define SE_MEASUREMENT_LEN 64
#define SE_USER_DATA_MAX 256
#define SE_ADDITIONAL_MAX 32768
/* pld, ald, tld (SHA-512 each) and the header's GCM tag, as the measurement hashes them */
#define SE_HDR_TAGS_LEN (3 * 64 + 16)
/* Plaintext attestation flags (bit 0 is the most significant bit) */
#define SE_PAF_BIT(b) ((uint64_t)1 << (63 - (b)))
#define SE_PAF_NONCE SE_PAF_BIT(1)
#define SE_PAF_PHKH_IMAGE SE_PAF_BIT(2)
#define SE_PAF_PHKH_ATTEST SE_PAF_BIT(3)

/* The tags of an SE image header (hdr.bin): magic and size checked, pld ‖ ald ‖ tld ‖ tag. */
int se_hdr_tags(const uint8_t *buf, size_t len, uint8_t out[SE_HDR_TAGS_LEN], struct err *err);

/* The public host key hashes the Ultravisor appends as additional data, in flag order. */
struct se_additional {
	const uint8_t *image_phkh;  /* into buf, NULL when not requested */
	const uint8_t *attest_phkh; /* into buf, NULL when not requested */
};
int se_additional_parse(const uint8_t *buf, size_t len, uint64_t paf, struct se_additional *out,
                        struct err *err);

/* SHA-256 of the host key's ECDH form (x ‖ y, each right-aligned in 80 bytes): the PHKH. */
int se_phkh(EVP_PKEY *host_key, uint8_t out[SE_PHKH_LEN], struct err *err);

/* A new ARCB v1 (HMAC-SHA512, flags `paf` | nonce) whose protection key is wrapped for each of
 * the n P-521 host keys; mkey and nonce are the secrets it carries (the caller chooses them).
 * *out is malloc'd. */
int se_arcb_build(EVP_PKEY *const *hosts, size_t n, uint64_t paf,
                  const uint8_t mkey[SE_MEAS_KEY_LEN], const uint8_t nonce[SE_NONCE_LEN],
                  uint8_t **out, size_t *len, struct err *err);

/* The measurement the Ultravisor computes: HMAC-SHA512 keyed by mkey over the header tags,
 * the CUID, the lengths of user and additional data (u16 BE, u16 0, u32 BE), the user data,
 * the nonce and the additional data. Lengths beyond the Ultravisor's limits are refused. */
int se_measure(const uint8_t mkey[SE_MEAS_KEY_LEN], const uint8_t tags[SE_HDR_TAGS_LEN],
               const uint8_t cuid[SE_CUID_LEN], const uint8_t *user, size_t ulen,
               const uint8_t nonce[SE_NONCE_LEN], const uint8_t *add, size_t alen,
               uint8_t out[SE_MEASUREMENT_LEN], struct err *err);

#endif
