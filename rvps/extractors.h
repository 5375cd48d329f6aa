/*
 * extractors: the table of register-message payload extractors (as-rvps.md §7.2). An
 * extractor turns a message's payload string into reference values. Each input format is one
 * file under rvps/extractors/ defining one row, `rvps_extractor_<name>`, with every slot
 * named; extractors.c lists the rows by strong reference, so a new format (swid, corim,
 * in-toto) is one file plus one line there.
 */
#ifndef CTRUSTEE_RVPS_EXTRACTORS_H
#define CTRUSTEE_RVPS_EXTRACTORS_H

#include <jansson.h>
#include <stddef.h>

#include "err.h"

struct rvps_extractor {
	const char *type; /* the message's "type", matched exactly */
	/* payload: the message's payload string (len bytes, untrusted). On success *out is a
	 * new JSON object mapping reference value name -> value. */
	int (*extract)(const char *payload, size_t len, json_t **out, struct err *err);
};

/* Every extractor, NULL-terminated. */
extern const struct rvps_extractor *const rvps_extractors[];

/* The rows, one per file under rvps/extractors/. */
extern const struct rvps_extractor rvps_extractor_sample;

/* NULL when no extractor handles `type`. */
const struct rvps_extractor *rvps_extractor_find(const char *type);

#endif
