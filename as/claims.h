/*
 * claims: assemble the policy input / annotated evidence object of as-rvps.md §2.5 from a
 * verifier's claims: hoist "report_data" and "init_data" to the top level next to
 * runtime_data_claims / init_data_claims, nest the rest under the TEE name.
 */
#ifndef CTRUSTEE_CLAIMS_H
#define CTRUSTEE_CLAIMS_H

#include <jansson.h>

/* verifier_claims is borrowed (copied); runtime/init claims may be NULL (-> JSON null when the
 * matching key was hoisted). verbose=0 drops runtime_data_claims["additional-evidence"].
 * Returns a new object with sorted keys. */
json_t *claims_policy_input(const char *tee, const json_t *verifier_claims,
                            const json_t *runtime_data_claims, const json_t *init_data_claims,
                            int verbose);

#endif
