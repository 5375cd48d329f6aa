/*
 * intel_pcs: where the DCAP verifiers get collateral, per the AS config's `dcap_verifier`
 * (as-rvps.md §3, §5.2):
 *
 *   {"collateral_service": "https://api.trustedservices.intel.com/sgx/certification/v4/"
 *                          | "https://pccs.example:8081/..." | "file:///path/collateral.json",
 *    "tcb_update_type": "early" | "standard",
 *    extensions: "cache_dir": DIR, "timeout_ms": N, "ca_file": PEM (trust for a private PCCS),
 *                "root_ca_file": PEM (replaces the built-in Intel SGX Root CA),
 *                "verification_time": RFC3339 (tests and forensics only)}
 *
 * A file holds either one collateral bundle (testdata MANIFEST §0), an array of bundles, or
 * the Intel PCS Client Tool's JSON ({"collaterals": {...}}); it is re-read when its mtime
 * changes. Fetched collateral is checked once, kept in memory and (with cache_dir) on disk in
 * the bundle format, used until the earliest nextUpdate of its parts, and refreshed in the
 * background before then; a failed refresh keeps serving what is still valid.
 */
#ifndef CTRUSTEE_INTEL_PCS_H
#define CTRUSTEE_INTEL_PCS_H

#include <jansson.h>

#include "as/evidence/dcap.h"

int intel_pcs_configure(const json_t *dcap_verifier_config, struct err *err);
/* Checked collateral for this platform; release it with intel_pcs_release. `options` may
 * name a bundle file ({"collateral": PATH}) that takes precedence over the configuration. */
struct dcap_collateral *intel_pcs_get(int tdx, const uint8_t fmspc[6], enum dcap_pck_ca ca,
                                      const json_t *options, struct err *err);
void intel_pcs_release(struct dcap_collateral *c);
/* The configured verification time, 0 = the current time. */
time_t intel_pcs_time(void);

struct intel_pcs_stats {
	unsigned long memory_hits, disk_hits, fetches, fetch_errors, refreshes;
};
void intel_pcs_get_stats(struct intel_pcs_stats *out);
void intel_pcs_reset(void); /* forget everything cached in memory (tests, bench) */

#endif
