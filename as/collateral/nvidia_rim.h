/*
 * nvidia_rim: an NVIDIA GPU's driver or VBIOS RIM from the RVPS, where the supply chain
 * registered it (rvps-tool register, or kbs-client config set-reference-value --type swid):
 * the swid extractor stored its active measurements under nvidia_rim/<product>/<version>
 * (swid_rim_rv_name). The value is used only when its provenance says the swid extractor
 * verified the RIM's signature ({"extractor": "swid", "signed": true}): a value of that name
 * registered any other way (a sample message, an unsigned RIM) proves nothing and is refused.
 */
#ifndef CTRUSTEE_NVIDIA_RIM_H
#define CTRUSTEE_NVIDIA_RIM_H

#include <jansson.h>

#include "as/verifiers/verifier.h"
#include "err.h"

/* The RIM of `product` at `version` from the RVPS: 1 with *active = {"<index>": ["<hex>",
 * ...]} (new reference), 0 when the RVPS holds none (*name says which name was asked), -1
 * with err (err->code ERR_UNAVAILABLE when the RVPS could not be reached). */
int nvidia_rim_from_rvps(const struct verify_rv *rv, const char *product, const char *version,
                         char name[160], json_t **active, struct err *err);

#endif
