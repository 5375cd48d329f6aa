/*
 * as: the Attestation Service's evaluation pipeline and token broker (see as.c).
 */
#ifndef CTRUSTEE_AS_H
#define CTRUSTEE_AS_H

#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "rego/rego.h"

struct kv;
struct rvps;
struct rvps_client;
struct as_policy_cache;

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
	struct rego_limits policy_limits; /* attestation_policy_limits (rego.h), 0 = default */
};

/* cfg: the AS JSON config (as-rvps.md §3); installs the default policies. */
int as_init(struct as *a, const json_t *cfg, struct err *err);
/* AttestationRequest bytes -> EAR token (malloc'd) or NULL with a numbered cause in err and
 * err->code the gRPC status to answer: GRPCX_UNAVAILABLE when storage or the RVPS could not be
 * reached, or a collateral service (PCS, KDS) could not be and nothing was cached (the same
 * request may succeed later), else GRPCX_ABORTED (a refusal). */
char *as_evaluate(struct as *a, const uint8_t *req, size_t len, struct err *err);
int as_set_policy(struct as *a, const char *id, const char *policy_b64, struct err *err);

#endif
