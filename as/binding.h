/*
 * binding: what one individual attestation request expects its evidence to be bound to
 * (as-rvps.md §2.2, §2.3) — the expected report data and runtime-data claims, the expected
 * init-data hash and init-data claims — computed from the request before any verifier runs.
 */
#ifndef CTRUSTEE_AS_BINDING_H
#define CTRUSTEE_AS_BINDING_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "attestation.pb-c.h"
#include "err.h"

/* Everything owned; a zeroed struct binds nothing. NULL bytes mean "not provided" (the
 * verifier skips that check, or refuses when its TEE requires it); NULL claims are JSON null
 * in the policy input. */
struct binding {
	uint8_t *report_data;
	size_t report_data_len;
	json_t *runtime_data_claims;
	uint8_t *init_data_hash;
	size_t init_data_hash_len;
	json_t *init_data_claims;
};

/* Structured runtime data: report data = H(JCS(json)); claims = the JSON value. alg_name
 * NULL or "" is sha384. */
int binding_structured_runtime_data(struct binding *b, const char *json_text, const char *alg_name,
                                    struct err *err);
/* Raw runtime data: the base64url-decoded bytes, verbatim; no claims. */
int binding_raw_runtime_data(struct binding *b, const char *b64url, struct err *err);
/* TOML init data: hash = `algorithm` over the exact text; claims = its `data` table with
 * cdh.toml / aa.toml parsed and policy.rego's policy_data lifted to agent_policy_claims. */
int binding_init_data_toml(struct binding *b, const char *toml, struct err *err);
/* An init-data digest: the base64url-decoded bytes, verbatim; no claims. */
int binding_init_data_digest(struct binding *b, const char *b64url, struct err *err);

/* Both of the above from one IndividualAttestationRequest, whichever cases it carries. On
 * failure b holds nothing. */
int binding_from_request(struct binding *b, const Attestation__IndividualAttestationRequest *ir,
                         struct err *err);
void binding_free(struct binding *b);

#endif
