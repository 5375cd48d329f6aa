/*
 * as: the Attestation Service's pipeline — AttestationRequest -> EAR token as named stages
 * (parse, bind, verify, appraise, sign; see as.c) — and the state it runs on.
 */
#ifndef CTRUSTEE_AS_H
#define CTRUSTEE_AS_H

#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "as/binding.h"
#include "as/ear.h"
#include "as/verifiers/verifier.h"
#include "attestation.pb-c.h"
#include "err.h"
#include "rego/rego.h"

/* The most devices one request may have appraised: each costs a verification and a policy
 * evaluation, so this bounds what one request can make the AS spend (the gRPC message cap
 * bounds its bytes). A request over it is refused with a sentence, never cut short. */
#define AS_MAX_DEVICES 1024

struct kv;
struct rvps;
struct rvps_client;
struct as_policy_cache;
struct as_rv_plan;

struct as {
	struct kv *kv;                   /* policies (and the built-in RVPS) */
	struct rvps *rvps_local;         /* rvps_config BuiltIn */
	struct rvps_client *rvps_remote; /* rvps_config GrpcRemote */
	char rvps_addr[256];
	EVP_PKEY *signer;
	json_t *jwk; /* token header jwk, with x5c / x5u */
	long long duration_min;
	char issuer[256], developer[256], build[256], profile[256];
	int verbose;
	pthread_mutex_t mu;
	struct as_policy_cache *policies; /* compiled policies by key and text hash */
	struct as_rv_plan *rv_plan;       /* ids to fetch in one call (GrpcRemote; rv_plan.h) */
	int rvps_no_batch; /* the remote RVPS lacks QueryReferenceValues (a Trustee one); atomic */
	struct rego_limits policy_limits; /* attestation_policy_limits (rego.h), 0 = default */
};

/* cfg: the AS JSON config (as-rvps.md §3); installs the default policies. */
int as_init(struct as *a, const json_t *cfg, struct err *err);
/* AttestationRequest bytes -> EAR token (malloc'd) or NULL with a numbered cause in err and
 * err->code the gRPC status to answer: ERR_UNAVAILABLE when storage or the RVPS could not be
 * reached, or a collateral service (PCS, KDS) could not be and nothing was cached (the same
 * request may succeed later), else GRPCX_ABORTED (a refusal). */
char *as_evaluate(struct as *a, const uint8_t *req, size_t len, struct err *err);
/* as_evaluate that also copies the first evidence's TEE into tee (tl bytes; "" when the
 * request has none or is unreadable), for the caller's metrics label, so the request is
 * unpacked once. */
char *as_evaluate_tee(struct as *a, const uint8_t *req, size_t len, char *tee, size_t tl,
                      struct err *err);

/*
 * The stages as_evaluate runs, in order, each usable alone (the unit tests call them). A stage
 * failing for an outage sets err->code = ERR_UNAVAILABLE; a refusal leaves it 0.
 */
struct as_request {
	Attestation__AttestationRequest *pb; /* owned */
	const char *policy_id;               /* policy_ids[0], or "default"; into pb */
};
/* parse: decode, and refuse no evidence or more than AS_MAX_DEVICES. */
int as_parse_request(struct as_request *rq, const uint8_t *buf, size_t len, struct err *err);
void as_request_free(struct as_request *rq);
/* verify: the TEE's verifier on the b64url JSON evidence, bound as `b` says (with no RVPS to
 * read; as_attest_one hands the verifier the AS's RVPS). */
int as_verify_evidence(const Attestation__IndividualAttestationRequest *ir, const struct binding *b,
                       struct verify_result *res, struct err *err);
/* appraise: one device's claims with `<policy_id>_<class>` -> its appraisal (new reference). */
json_t *as_appraise(struct as *a, const char *policy_id, const char *tee,
                    const struct verifier_claims *item, const struct binding *b, struct err *err);
/* The appraisal of a device evidence of `tee` that failed verification for `why`: AR4SI
 * instance-identity and hardware 97 (contraindicated), annotated evidence
 * {"<tee>": {"verification_error": why}} (new reference, NULL only when out of memory). */
json_t *as_device_failed(const char *policy_id, const char *tee, const char *why, struct err *err);
/* bind + verify + appraise one evidence, appending one submod per device it holds. A device
 * evidence (sampledevice, nvidia, hygondcu) that fails verification appends its one
 * contraindicated submod and returns 0; a CPU evidence that fails, an outage, a binding or
 * a policy that cannot be evaluated returns -1 (the request is refused or retried). */
int as_attest_one(struct as *a, const char *policy_id,
                  const Attestation__IndividualAttestationRequest *ir, struct ear_submods *out,
                  struct err *err);
/* sign: the token over the submods, with the AS's key and broker settings. */
char *as_sign(struct as *a, const struct ear_submods *s, struct err *err);
int as_set_policy(struct as *a, const char *id, const char *policy_b64, struct err *err);
/* Releases what as_init made (also after a failed as_init); `a` itself is the caller's. */
void as_free(struct as *a);

#endif
