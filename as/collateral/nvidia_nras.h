/*
 * nvidia_nras: NVIDIA's Remote Attestation Service (NRAS) as a client (as-rvps.md §5.13
 * "Remote"). One device's evidence is POSTed to <verifier_url>/<gpu|switch>; NRAS answers
 * with a detached EAT bundle, [["JWT", "<overall JWT>"], {"<submod>": "<device EAT JWT>"}],
 * both tokens signed ES384 by a key NRAS publishes in its JWK set and names by `kid`. The
 * answer is accepted only when both tokens verify with that key (the key pins ES384: a
 * token saying HS256 or none is refused), are within their exp/nbf, the overall token's
 * eat_nonce is the nonce we sent and, where it lists the device token's SHA-256 digest under
 * `submods`, the digest matches (so the two tokens belong together).
 *
 * What NRAS says about the device (nonce match, overall result) is judged by the caller
 * (as/verifiers/nvidia_remote.c); this file only proves the claims came from NRAS for this
 * request.
 *
 * Outages: NRAS or its JWK set unreachable, timing out, answering 5xx or 429 set
 * err->code = ERR_UNAVAILABLE (retry later); any other failure is a refusal (code 0).
 */
#ifndef CTRUSTEE_NVIDIA_NRAS_H
#define CTRUSTEE_NVIDIA_NRAS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "err.h"

/* Trustee's default; its gpu and switch endpoints answer the v3 request and bundle shape. */
#define NRAS_DEFAULT_URL "https://nras.attestation.nvidia.com/v4/attest"
#define NRAS_DEFAULT_JWKS_URL "https://nras.attestation.nvidia.com/.well-known/jwks.json"
#define NRAS_TIMEOUT_MS 60000
/* The most bytes of one NRAS answer read: a one-device bundle is a few KiB of JWTs. */
#define NRAS_MAX_ANSWER (256 * 1024)

/* nvidia_verifier config (may be NULL): "verifier_url" (Trustee's key), our "jwks_url",
 * "nras_timeout_ms" and "nras_ca_file" (PEM roots for NRAS and its JWK set; default the
 * system's). Replaces an earlier configuration and forgets the cached JWK set. */
int nvidia_nras_configure(const json_t *nvidia_verifier_config, struct err *err);

/* The two tokens of an NRAS answer, as text (owned). */
struct nras_answer {
	char *overall; /* the overall JWT */
	char *submod;  /* the submod's name, e.g. "GPU-0" */
	char *device;  /* the device's detached EAT JWT */
};

/* Parse the answer bytes: a JSON array of two, first an array of exactly two strings whose
 * second is the overall JWT, then an object with exactly one string member (one device per
 * request). Anything else is refused with what was wrong. */
int nras_answer_parse(const uint8_t *buf, size_t len, struct nras_answer *out, struct err *err);
void nras_answer_free(struct nras_answer *a);

/* Check an answer's tokens with the JWK set `jwks` ({"keys": [...]}) at time `now`, for the
 * request nonce `nonce_hex`: on success *claims is the device EAT's payload plus the overall
 * token's "x-nvidia-overall-att-result" (new reference). Needs no network (fuzzed, unit
 * tested). An unknown kid sets err->code = NRAS_ERR_UNKNOWN_KID so the caller may refresh
 * the set once. */
#define NRAS_ERR_UNKNOWN_KID 1001
int nras_answer_verify(const struct nras_answer *a, const json_t *jwks, const char *nonce_hex,
                       time_t now, json_t **claims, struct err *err);

/* POST one device to <verifier_url>/<endpoint> ("gpu" or "switch") with the nonce, the
 * upper-case arch, the base64 evidence and the certificate as the device sent it, and
 * return the verified claims (new reference). Fetches the JWK set on first use, and again
 * (at most once a minute) when a token names a kid it does not hold. */
int nvidia_nras_attest(const char *endpoint, const char *arch, const uint8_t nonce[32],
                       const char *evidence_b64, const char *certificate, time_t now,
                       json_t **claims, struct err *err);

#endif
