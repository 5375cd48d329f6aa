/*
 * hygon_kds: where the Hygon verifiers (csv, hygondcu) get a chip's HSK and CEK when neither
 * the evidence nor the operator's local directory has them: Hygon's key distribution service,
 * `<base_url>/hsk_cek?snumber=<serial>` (https://cert.hygon.cn by default, as Trustee and
 * csv-rs ask it), whose answer is the 2916-byte hsk_cek.cert (HSK in the CA layout, then the
 * CEK). One chip's pair never changes, so an answer is kept for good: in memory, and on disk
 * under `cache_dir/<serial>/hsk_cek.cert`, the layout of the CSV verifier's local directory,
 * so a cache directory can also be handed to `hsk_cek_dir` and a restart or an outage of the
 * KDS keeps serving the chips already seen.
 *
 * Outcomes mirror the AMD KDS client (amd_kds.c): a 429 or 503 is retried after its
 * Retry-After within `retry_budget_ms`, then refused with ERR_UNAVAILABLE, as is an
 * unreachable service, a timeout or another 5xx (retry later); a 404 or another 4xx is a
 * refusal naming the serial; an answer above the size cap or not exactly an HSK+CEK pair is
 * refused and not cached. The bytes are only parsed here: the chain to the HRK is checked by
 * the verifier, which calls hygon_kds_forget when a fetched pair does not verify, so a bad
 * answer is never served from the cache twice.
 */
#ifndef CTRUSTEE_HYGON_KDS_H
#define CTRUSTEE_HYGON_KDS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define HYGON_KDS_DEFAULT_URL "https://cert.hygon.cn"

/* One verifier's view of the KDS (each verifier owns one; the cache is shared). */
struct hygon_kds_config {
	char base_url[512];   /* "" = never fetch */
	char cache_dir[512];  /* "" = memory only */
	char ca_file[512];    /* trust anchor of a private mirror; "" = system roots */
	long timeout_ms;      /* one request; default 10000 */
	long retry_budget_ms; /* waiting on 429/503 Retry-After; default 30000 */
};

/* The keys of a verifier's config object (may be NULL = defaults): "kds_base_url",
 * "kds_cache_dir", "kds_ca_file", "kds_timeout_ms", "kds_retry_budget_ms". `section` names
 * the object in errors ("csv_verifier"). */
int hygon_kds_configure(const json_t *verifier_section, const char *section,
                        struct hygon_kds_config *out, struct err *err);

/* Whether a chip serial or id can name a cache directory, a file and a URL query value: 1 to
 * 64 of [A-Za-z0-9_-]. The verifiers check it before they build a path from it too. */
int hygon_kds_name_ok(const char *s);

/* The 2916-byte hsk_cek.cert of chip `serial` (letters, digits, '-', '_'): memory cache, then
 * cache_dir, then the KDS. *buf is malloc'd. -1 with why (err->code ERR_UNAVAILABLE when a
 * later retry may succeed). */
int hygon_kds_get_hsk_cek(const struct hygon_kds_config *c, const char *serial, uint8_t **buf,
                          size_t *len, struct err *err);

/* Drop chip `serial` from the memory and disk caches (its pair did not verify). */
void hygon_kds_forget(const struct hygon_kds_config *c, const char *serial);

/* Counters for tests and metrics. */
struct hygon_kds_stats {
	unsigned long memory_hits, disk_hits, kds_fetches, kds_errors, kds_429;
};
void hygon_kds_get_stats(struct hygon_kds_stats *out);
void hygon_kds_reset(void); /* forget the memory cache and the counters (tests) */

#endif
