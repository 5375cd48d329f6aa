/*
 * extractors: the table of register-message payload extractors (as-rvps.md §7.2). An
 * extractor turns a message's payload string into reference values; one file per type
 * under rvps/extractors/, listed in extractors.c.
 */
#ifndef CTRUSTEE_RVPS_EXTRACTORS_H
#define CTRUSTEE_RVPS_EXTRACTORS_H

#include <jansson.h>
#include <stddef.h>

#include "err.h"

struct rvps_extractor {
	const char *type; /* the message's "type" */
	/* payload: the message's payload string (len bytes, untrusted). On success *out is a
	 * new JSON object mapping reference value name -> value. */
	int (*extract)(const char *payload, size_t len, json_t **out, struct err *err);
};

/* NULL when no extractor handles `type`. */
const struct rvps_extractor *rvps_extractor_find(const char *type);

int rvps_extract_sample(const char *payload, size_t len, json_t **out, struct err *err);

#endif
