/*
 * verifier: the interface every TEE verifier implements, one file per TEE under
 * as/verifiers/<tee>.c, each defining `const struct verifier verifier_<tee>` (with '-'
 * spelled '_'). The table in as/verifiers/registry.c finds them by TEE name
 * (as-rvps.md §1.3 names). A verifier checks the evidence cryptographically, binds it to
 * the expected report data and init-data hash (§2.4) and returns one claims object per
 * device with its TEE class (§5).
 */
#ifndef CTRUSTEE_VERIFIER_H
#define CTRUSTEE_VERIFIER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "err.h"

#define VERIFIER_MAX_CLAIMS 32
/* err.code of a failed verify when a collateral service (Intel PCS/PCCS, AMD KDS) could not be
 * reached, failed (5xx) or asked us to wait, and nothing usable was cached: ERR_UNAVAILABLE
 * (err.h). (Alias kept until every caller says ERR_UNAVAILABLE.) */
#define VERIFIER_ERR_UNAVAILABLE ERR_UNAVAILABLE

struct verify_request {
	const json_t *evidence;     /* the evidence JSON document (already b64url-decoded) */
	const uint8_t *report_data; /* expected report data, NULL = not provided */
	size_t report_data_len;
	const uint8_t *init_data_hash; /* expected init-data hash, NULL = not provided */
	size_t init_data_hash_len;
	time_t now;            /* verification time; 0 = current time */
	const json_t *options; /* tool/test overrides, e.g. {"collateral": "bundle.json",
	                          "vcek": "vcek.der"}; NULL = none */
};

struct verifier_claims {
	char tee_class[16]; /* "cpu", "gpu", "switch", "ppcie", "dcu" */
	json_t *claims;     /* owned; includes "report_data"/"init_data" strings when bound */
};

struct verify_result {
	struct verifier_claims items[VERIFIER_MAX_CLAIMS];
	size_t n;
};

struct verifier {
	const char *tee; /* "sample", "tdx", "az-snp-vtpm", ... */
	/* Called once at AS start with the AS config's `verifier_config` object (may be NULL).
	 * May be NULL. Must be idempotent. */
	int (*init)(const json_t *verifier_config, struct err *err);
	/* Thread-safe. Returns 0 and fills out, or -1 with a precise reason in err. */
	int (*verify)(const struct verify_request *req, struct verify_result *out, struct err *err);
};

/* Lookup by TEE name; NULL if no verifier is built for it. */
const struct verifier *verifier_find(const char *tee);
/* Calls every verifier's init. */
int verifiers_init(const json_t *verifier_config, struct err *err);
void verify_result_clear(struct verify_result *r);

/* regularize(x, n) of §2.4: copy x into out[n], zero-padded or truncated. */
void verifier_regularize(const uint8_t *x, size_t xlen, uint8_t *out, size_t n);

#endif
