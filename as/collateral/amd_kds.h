/*
 * amd_kds: where SNP verifiers get a VCEK when the evidence carries none.
 *
 * Sources are tried in the configured order (Trustee's `snp_verifier.vcek_sources`):
 *   {"type": "OfflineStore", "path": DIR}  DIR/vcek/<hwid>/<tcb prefix>_vcek.der, then
 *                                          DIR/vcek/<hwid>/vcek.der
 *   {"type": "KDS", "base_url": URL}       URL/vcek/v1/<Milan|Genoa|Turin>/<hwid>?<SPLs>
 * Every certificate found is kept in memory by (hwid, TCB), and KDS answers are also written
 * to `cache_dir` in the OfflineStore layout, so a restart or a KDS outage keeps serving the
 * chips already seen. KDS allows about one request per 10 s per address: requests are spaced
 * by `min_interval_ms` and a 429 is retried after its Retry-After within `retry_budget_ms`.
 */
#ifndef CTRUSTEE_AMD_KDS_H
#define CTRUSTEE_AMD_KDS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "as/evidence/snp_report.h"
#include "err.h"

/* snp_verifier config object (may be NULL = KDS at https://kdsintf.amd.com). Extra keys:
 * cache_dir, min_interval_ms (default 10000), retry_budget_ms (default 30000),
 * timeout_ms (default 10000), ca_file (trust anchor for a private KDS mirror). */
int amd_kds_configure(const json_t *snp_verifier_config, struct err *err);
/* Returns the DER of the VCEK for this report (malloc'd) or -1 with why. */
int amd_kds_get_vcek(const struct snp_report *r, uint8_t **der, size_t *len, struct err *err);
/* Counters for tests and metrics. */
struct amd_kds_stats {
	unsigned long memory_hits, disk_hits, kds_fetches, kds_errors, kds_429;
};
void amd_kds_get_stats(struct amd_kds_stats *out);
void amd_kds_reset(void); /* forget the memory cache (tests) */

#endif
