/*
 * ear: the EAR attestation token (as-rvps.md §4): one appraisal per device — the AR4SI
 * trustworthiness vector and status the policy's trust claims give, its extensions and the
 * annotated evidence — collected as submods named <class><n>, then signed as one ES256 JWT.
 */
#ifndef CTRUSTEE_AS_EAR_H
#define CTRUSTEE_AS_EAR_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <time.h>

#include "err.h"

/* The §4.3 appraisal object. trust_claims: the policy's `trust_claims` (NULL when the policy
 * has no such rule: every claim 0); extensions: its `extensions` array or NULL. Borrowed.
 * NULL with err set when a claim is not AR4SI, not an integer, or none is set. */
json_t *ear_appraisal(const char *policy_id, const json_t *trust_claims, const json_t *extensions,
                      const json_t *annotated_evidence, struct err *err);

/* The submods of one token, in evaluation order; as many as there are devices (the AS bounds
 * that, see AS_MAX_DEVICES). `{0}` is empty. */
struct ear_submod {
	char tee_class[16];
	char name[40];     /* <tee_class><n>, n counting per class from 0 */
	json_t *appraisal; /* owned */
};
struct ear_submods {
	struct ear_submod *v; /* owned, v[0..n) */
	size_t n, cap;
};
/* Name and append one appraisal; the reference to `appraisal` is taken on every path. */
int ear_submods_add(struct ear_submods *s, const char *tee_class, json_t *appraisal,
                    struct err *err);
void ear_submods_free(struct ear_submods *s);

/* Who signs, and what the payload says about the verifier (§4.2). Borrowed. */
struct ear_signer {
	EVP_PKEY *key;     /* EC P-256 */
	const json_t *jwk; /* the header's jwk */
	const char *profile, *developer, *build, *issuer;
	long long duration_min;
};
/* The compact JWS of the §4.2 payload issued at `now`, submods sorted by name. Malloc'd. */
char *ear_sign(const struct ear_signer *signer, const struct ear_submods *s, time_t now,
               struct err *err);

#endif
