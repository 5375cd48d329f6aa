/*
 * rv_plan: which reference value ids an appraisal asked the RVPS for, remembered per
 * (policy key, TEE, policy text), so the next appraisal of the same kind can fetch them all in
 * one QueryReferenceValues call before the policy runs instead of one call per id while it
 * runs (the default CPU policy asks 2 to 12 ids, each a gRPC round trip).
 *
 * It holds names, never values: every appraisal still reads every value from the RVPS, so a
 * value registered (or deleted) before an appraisal starts is what that appraisal sees. An id
 * the plan does not name is still asked for alone when the policy asks, and learned for the
 * next time. An entry is dropped when its policy text changes (another SHA-256), so the ids a
 * replaced policy read are not fetched for ever. Bounded: AS_RV_PLAN_MAX entries (the least
 * recently used goes), AS_RV_PLAN_MAX_IDS ids per entry (more are asked for one at a time).
 */
#ifndef CTRUSTEE_AS_RV_PLAN_H
#define CTRUSTEE_AS_RV_PLAN_H

#include <jansson.h>
#include <stdint.h>

#define AS_RV_PLAN_MAX 64
#define AS_RV_PLAN_MAX_IDS 64

struct as_rv_plan;

struct as_rv_plan *as_rv_plan_new(void);
void as_rv_plan_free(struct as_rv_plan *p);
/* The ids learned for (key, tee) with a policy text of SHA-256 `digest`: a JSON array of
 * strings (new reference), or NULL when there are none. */
json_t *as_rv_plan_ids(struct as_rv_plan *p, const char *key, const char *tee,
                       const uint8_t digest[32]);
/* Adds the strings of `ids` (borrowed array) to the entry, up to AS_RV_PLAN_MAX_IDS. */
void as_rv_plan_learn(struct as_rv_plan *p, const char *key, const char *tee,
                      const uint8_t digest[32], const json_t *ids);

#endif
