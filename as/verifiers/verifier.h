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

/* A verify that fails because a collateral service (Intel PCS/PCCS, AMD KDS) could not be
 * reached, failed (5xx) or asked us to wait, with nothing usable cached, sets err.code to
 * ERR_UNAVAILABLE (err.h): the AS answers "retry", not "refused". */

/* The RVPS, for a verifier that checks measurements itself (the nvidia verifier's RIMs). The
 * AS hands its RVPS link. query: the stored value of `id` (provenance = 0) or its provenance
 * document (provenance = 1) as malloc'd JSON text in *json, 1 when found, 0 when there is
 * none, -1 with err (err->code ERR_UNAVAILABLE when the RVPS could not be reached). */
struct verify_rv {
	int (*query)(void *ctx, const char *id, int provenance, char **json, struct err *err);
	void *ctx;
};

struct verify_request {
	const json_t *evidence;     /* the evidence JSON document (already b64url-decoded) */
	const uint8_t *report_data; /* expected report data, NULL = not provided */
	size_t report_data_len;
	const uint8_t *init_data_hash; /* expected init-data hash, NULL = not provided */
	size_t init_data_hash_len;
	time_t now;                 /* verification time; 0 = current time */
	const json_t *options;      /* tool/test overrides, e.g. {"collateral": "bundle.json",
	                               "vcek": "vcek.der"}; NULL = none */
	const struct verify_rv *rv; /* the AS's RVPS; NULL = none (evidence-verify) */
};

struct verifier_claims {
	char tee_class[16]; /* "cpu", "gpu", "switch", "ppcie", "dcu" */
	json_t *claims;     /* owned; includes "report_data"/"init_data" strings when bound */
	int failed;         /* 1: this one device of a multi-device evidence was refused; claims is
	                       {"verification_error": "<why>"} and the AS appraises it as a
	                       contraindicated submod (as_device_failed) beside the others */
};

/* What a verifier found: one claims object per device, as many as the evidence holds (an
 * NVIDIA host reports up to 8 GPUs and 4 switches, a request may add more devices). Grown by
 * verify_result_add; `{0}` is an empty result; verify_result_clear frees it. */
struct verify_result {
	struct verifier_claims *items; /* owned, items[0..n) in the order the devices came */
	size_t n, cap;
};

struct verifier {
	const char *tee; /* "sample", "tdx", "az-snp-vtpm", ... */
	/* Called once at AS start with the AS config's `verifier_config` object (may be NULL).
	 * May be NULL. Must be idempotent. */
	int (*init)(const json_t *verifier_config, struct err *err);
	/* Thread-safe. Returns 0 and fills out, or -1 with a precise reason in err. */
	int (*verify)(const struct verify_request *req, struct verify_result *out, struct err *err);
	/* GetAttestationChallenge (§1.1): the verifier-defined challenge text (malloc'd) for
	 * `tee_params`, or NULL with err set. NULL for every TEE but se: they answer "". */
	char *(*challenge)(const char *tee_params, struct err *err);
};

/* Lookup by TEE name; NULL if no verifier is built for it. */
const struct verifier *verifier_find(const char *tee);
/* Calls every verifier's init. */
int verifiers_init(const json_t *verifier_config, struct err *err);
/* Append one device's claims with its TEE class. Takes the reference to `claims` on every
 * path (a NULL claims is a failed json_pack: out of memory). -1 with err set on failure. */
int verify_result_add(struct verify_result *r, const char *tee_class, json_t *claims,
                      struct err *err);
/* Append one device that failed verification for `why` (a multi-device evidence: the other
 * devices keep their own claims). -1 with err set on out of memory. */
int verify_result_add_failed(struct verify_result *r, const char *tee_class, const char *why,
                             struct err *err);
/* The refusal of the first failed device, NULL when none failed (borrowed from r). */
const char *verify_result_first_failure(const struct verify_result *r);
/* Release every claims object and the array; r is empty afterwards. */
void verify_result_clear(struct verify_result *r);

/* regularize(x, n) of §2.4: copy x into out[n], zero-padded or truncated. */
void verifier_regularize(const uint8_t *x, size_t xlen, uint8_t *out, size_t n);

/*
 * What the verifier files share (as/verifiers/common.c), so each one reads as its TEE's
 * checklist: decode a base64 field of the evidence, bind a report field to the expected
 * report data or init-data hash, and write the hex and per-offset claims.
 */

/* The bytes of evidence[key], a string in standard base64 (VERIFIER_B64URL: base64url);
 * padding is optional. "<tee> evidence `<key>` must be a base64 string" when absent or not. */
#define VERIFIER_B64URL 1
int verifier_evidence_bytes(const json_t *evidence, const char *tee, const char *key, int flags,
                            uint8_t **out, size_t *len, struct err *err);

/* §2.4 binding: when `want` is provided (non-NULL), regularize it to n (<= 64) bytes and
 * compare with the report's n-byte `field` in constant time; a mismatch says "<field_name>
 * does not match <want_name>". No expectation passes (the caller decides whether one is
 * required). */
int verifier_bind(const uint8_t *field, size_t n, const uint8_t *want, size_t wlen,
                  const char *field_name, const char *want_name, struct err *err);

/* claims[key] = lowercase hex of p[0..n). */
void verifier_claim_hex(json_t *claims, const char *key, const uint8_t *p, size_t n);

/* A named byte range of a fixed report layout (a quote header or body). */
struct verifier_field {
	const char *name;
	size_t off, len;
};
/* A new object with one hex claim per field that lies within base[0..avail). */
json_t *verifier_fields(const uint8_t *base, size_t avail, const struct verifier_field *f,
                        size_t n);

struct tpm_quote;
/* The claims a (v)TPM quote binds (§2.4): report_data = its nonce, init_data = PCR8, both
 * hex; init_data only when PCR8 was quoted. Returns 1 when it was, else 0. */
int verifier_tpm_binding_claims(json_t *claims, const struct tpm_quote *q);

struct snp_report;
/* The SNP guest-policy, reported-TCB and platform-info claims both SNP verifiers give
 * (§5.5, §5.6): integers and booleans, or with as_strings (az-snp-vtpm) their decimal and
 * "true"/"false" strings. A new object. */
json_t *verifier_snp_claims(const struct snp_report *r, int as_strings);

#endif
