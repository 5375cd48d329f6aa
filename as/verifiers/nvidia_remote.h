/*
 * nvidia_remote: the nvidia verifier's remote mode (`nvidia_verifier.type = "Remote"`),
 * which has NRAS appraise each device (as/collateral/nvidia_nras.h) instead of checking
 * its SPDM transcript here. Called by as/verifiers/nvidia.c once the evidence list and the
 * nonce have been checked.
 */
#ifndef CTRUSTEE_NVIDIA_REMOTE_H
#define CTRUSTEE_NVIDIA_REMOTE_H

#include <jansson.h>
#include <stdint.h>

#include "as/verifiers/verifier.h"

/* Each device of `list` (device_evidence_list, 1..max entries) through NRAS with `nonce`,
 * one gpu or switch item per device in order (a refused device a failed item saying
 * "NVIDIA device <i>: <why>"), then a ppcie one when the devices form the 8 GPU + 4 switch
 * topology. -1 only when NRAS could not answer (err->code ERR_UNAVAILABLE) or out of
 * memory. */
int nvidia_remote_verify(const struct verify_request *req, const json_t *list,
                         const uint8_t nonce[32], struct verify_result *out, struct err *err);

#endif
