/*
 * dcap_evidence: the quote-verification steps shared by the `tdx` and `sgx` verifiers.
 */
#ifndef CTRUSTEE_DCAP_EVIDENCE_H
#define CTRUSTEE_DCAP_EVIDENCE_H

#include "as/evidence/dcap.h"
#include "as/verifiers/verifier.h"

/* The `dcap_verifier` section of verifier_config configures the collateral sources. */
int dcap_verifier_init(const json_t *verifier_config, struct err *err);
/* The raw quote from the evidence's "quote" (standard base64). */
int dcap_evidence_quote(const json_t *evidence, const char *tee, uint8_t **buf, size_t *len,
                        struct err *err);
/* Collateral, full verification, report-data and init-data binding. With the tool option
 * {"parse_only": true} nothing is verified and res stays empty. */
int dcap_evidence_verify(const struct verify_request *req, const struct dcap_quote *q,
                         struct dcap_result *res, struct err *err);
/* platform_instance_id and, when verified, the DCAP supplemental claims. */
void dcap_common_claims(const struct dcap_quote *q, const struct dcap_result *res, json_t *claims,
                        int verified);

#endif
