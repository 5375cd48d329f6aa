/*
 * hcl: the Azure confidential VM "HCL report" that binds a vTPM to the hardware report.
 *
 * Layout: 32-byte header ("HCLA"), the hardware report area at offset 32 (an SNP report,
 * 1184 bytes, or a TDX TDREPORT, 1024 bytes, zero-padded to 1184), then five little-endian
 * u32 at offset 1216 (data size, version, report type 2 = SNP / 4 = TDX, hash type 1 =
 * SHA-256, variable data size) and the variable data (a JSON document) at 1236. The
 * hardware report's report_data[0..32] is SHA-256 of the variable data, which names the
 * vTPM attestation key (JWK with kid "HCLAkPub") and, in newer evidence, `user-data`.
 */
#ifndef CTRUSTEE_HCL_H
#define CTRUSTEE_HCL_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define HCL_REPORT_TYPE_SNP 2
#define HCL_REPORT_TYPE_TDX 4

struct hcl_report {
	const uint8_t *hw_report; /* into the caller's buffer; 1184 bytes */
	uint32_t report_type, hash_type;
	const uint8_t *var_data;
	size_t var_data_len;
	uint8_t var_data_sha256[32];
	json_t *var_json; /* owned, NULL if the variable data is not JSON */
};

int hcl_report_parse(const uint8_t *buf, size_t len, struct hcl_report *out, struct err *err);
void hcl_report_free(struct hcl_report *h);
/* The RSA key with kid "HCLAkPub" (new reference) or NULL with "Failed to get AKpub ...". */
EVP_PKEY *hcl_ak_pub(const struct hcl_report *h, struct err *err);
/* `user-data` hex string from the variable data, decoded (malloc'd) or -1. */
int hcl_user_data(const struct hcl_report *h, uint8_t **out, size_t *len, struct err *err);
/* v2 evidence: the first `len` bytes of `user-data` must be the expected report data. */
int hcl_check_user_data(const struct hcl_report *h, const uint8_t *rd, size_t len, struct err *err);

#endif
