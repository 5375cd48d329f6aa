/*
 * rvps: the reference value store, usable in-process (the AS's BuiltIn RVPS) and behind the
 * rvps daemon's gRPC service. Messages and storage are Trustee's (as-rvps.md §7.2, §7.3):
 * register = {"version":"0.1.0","type":"sample"|...,"payload":...} run through the named
 * extractor, each value stored under reference_value:<name> as
 * {"version":"0.1.0","name":...,"expiration":"YYYY-MM-DDTHH:MM:SSZ","value":...}.
 */
#ifndef CTRUSTEE_RVPS_H
#define CTRUSTEE_RVPS_H

#include <jansson.h>

#include "err.h"

struct rvps;

/* config = the RVPS JSON config object ({"storage": StorageBackendConfig, "extractors": {...}})
 * or NULL for Memory storage. */
struct rvps *rvps_new(const json_t *config, struct err *err);
void rvps_free(struct rvps *r);
/* message_json: the register message text. Returns 0 or -1 with a sentence in err. */
int rvps_register(struct rvps *r, const char *message_json, struct err *err);
/* *value_json = compact JSON text of the stored value (malloc'd), NULL when the id is unknown.
 * Returns 0 (found or not) or -1 on a storage error. */
int rvps_query(struct rvps *r, const char *id, char **value_json, struct err *err);

#endif
