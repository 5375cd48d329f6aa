/*
 * dcu_report: the attestation report of a Hygon DCU (a data-center GPU with its own security
 * processor; as-rvps.md §5.11 `hygondcu`) and the JSON Trustee's attester sends it in.
 *
 * A report is a 252-byte body, signed whole with SM2/SM3 by the chip's CEK (user id: the CEK's
 * own), followed by the signature r[72] ‖ s[72], little-endian as every Hygon signature:
 *   off   0  u32  version
 *   off   4  u8   chip_id[16]     names the chip: its HSK/CEK pair is looked up by it
 *   off  20  u8   user_data[64]   the attester's nonce (expected report data, regularized)
 *   off  84  u8   measure[32]
 *   off 116  u8   reserved[128]
 *   off 244  u32  sig_usage
 *   off 248  u32  sig_algo
 * (csv-rs `api::dcu::Body`, repr(C), no padding). The CEK chains to the HRK through the HSK as
 * for CSV (csv_verify_hrk_to_cek); there is no PEK. Evidence JSON, csv-rs serde (byte arrays
 * as arrays of integers): {"attestation_reports": [{"body": {"version", "chip_id",
 * "user_data", "measure", "reserved", "sig_usage", "sig_algo"}, "sig": {"r", "s"}}, ...]}.
 * dcu_evidence_from_json rebuilds each report into its bytes, every field present with its
 * width, so the signature is checked over exactly what the device signed. No disk, no network.
 */
#ifndef CTRUSTEE_DCU_REPORT_H
#define CTRUSTEE_DCU_REPORT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "as/evidence/csv_report.h"
#include "err.h"

#define DCU_BODY_LEN 252
#define DCU_REPORT_LEN (DCU_BODY_LEN + CSV_SIG_LEN) /* 396 */
#define DCU_CHIP_ID_LEN 16
#define DCU_MAX_REPORTS 64 /* a host has at most 8 or 16 DCUs; more is not one host */

struct dcu_report {
	uint8_t raw[DCU_REPORT_LEN]; /* body [0, 252), then the signature */
	uint32_t version;
	uint8_t chip_id[DCU_CHIP_ID_LEN], user_data[64], measure[32], reserved[128];
	uint32_t sig_usage, sig_algo;
	char chip[DCU_CHIP_ID_LEN + 1]; /* chip_id as text, trailing NULs trimmed; "" if it is
	                                   not printable ASCII without inner NULs */
};

struct dcu_evidence {
	struct dcu_report *reports; /* owned, [0, n) in evidence order */
	size_t n;
};

/* One report's 396 bytes (body then r ‖ s). */
int dcu_report_parse(const uint8_t *buf, size_t len, struct dcu_report *out, struct err *err);
/* Trustee's DCU evidence JSON: 1 to DCU_MAX_REPORTS reports, no two with the same chip id. */
int dcu_evidence_from_json(const json_t *ev, struct dcu_evidence *out, struct err *err);
/* The same from JSON text buf[0..len). */
int dcu_evidence_parse(const uint8_t *buf, size_t len, struct dcu_evidence *out, struct err *err);
void dcu_evidence_clear(struct dcu_evidence *ev);

/* HRK -> HSK -> CEK (csv_verify_hrk_to_cek), then the report body signed by the CEK. The
 * refusal names the link that failed. */
int dcu_verify_report(const struct csv_ca_cert *hrk, const struct csv_ca_cert *hsk,
                      const struct csv_cert *cek, const struct dcu_report *r, struct err *err);

#endif
