/*
 * nvidia_ocsp: revocation of an NVIDIA device's certificates, asked of an OCSP responder
 * (NVIDIA's, or a mirror) over common/fetch.c. Off unless `nvidia_verifier.ocsp_url` is set;
 * once set it fails closed: a revoked or unknown certificate, a response not signed for the
 * certificate's issuer, a stale or nonce-less answer refuses the device, and so does an
 * unreachable responder unless `ocsp_fail_open` is true, in which case the device passes
 * with its OCSP status "unavailable" for the policy to judge.
 */
#ifndef CTRUSTEE_NVIDIA_OCSP_H
#define CTRUSTEE_NVIDIA_OCSP_H

#include <jansson.h>
#include <openssl/x509.h>

#include "as/evidence/nvidia_chain.h"
#include "err.h"

/* nvidia_verifier config object (may be NULL): "ocsp_url", "ocsp_fail_open" (default false),
 * "ocsp_timeout_ms" (default 10000). Called before any check runs. */
int nvidia_ocsp_configure(const json_t *nvidia_verifier_config, struct err *err);
int nvidia_ocsp_enabled(void);

/* Check every certificate of a chain that nvidia_chain_verify accepted against `root`, except
 * the root. Returns 0 with *status "good" (or "unavailable" when failing open), or -1 with
 * the reason (err->code ERR_UNAVAILABLE when the responder could not answer). */
int nvidia_ocsp_check(const struct nvidia_chain *c, X509 *root, const char **status,
                      struct err *err);

#endif
