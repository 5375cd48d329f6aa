/*
 * extractors: the table of register-message payload extractors (as-rvps.md §7.2). An
 * extractor turns a message's payload string into reference values. Each input format is one
 * file under rvps/extractors/ defining one row, `rvps_extractor_<name>`, with every slot
 * named; extractors.c lists the rows by strong reference, so a new format (swid, corim,
 * in-toto) is one file plus one line there.
 *
 * Configuration is generic: the RVPS config's "extractors" object holds one member per row,
 * named by the row's config_key ("corim_extractor"); the RVPS hands that member (or NULL
 * when absent) to the row's init once, keeps the state it returns, and passes it back with
 * the verification time on every extract. A top-level "verification_time" (RFC 3339) pins
 * that time for tests and forensics; otherwise it is the clock at the call.
 */
#ifndef CTRUSTEE_RVPS_EXTRACTORS_H
#define CTRUSTEE_RVPS_EXTRACTORS_H

#include <jansson.h>
#include <stddef.h>
#include <time.h>

#include "err.h"

/* What an extract call gets besides the payload. */
struct rvps_extract_ctx {
	const void *state; /* borrowed: the row's init state, NULL = the row's defaults */
	time_t now; /* signatures, certificates and validity periods are judged at this time */
	/* owned by the caller, an empty object: the extractor adds who vouched for the values
	 * ("signer", "signature_alg", ...). Unset members mean "unsigned". */
	json_t *provenance;
};

struct rvps_extractor {
	const char *type;       /* the message's "type", matched exactly */
	const char *config_key; /* its member of the config's "extractors" object */
	/* payload: the message's payload string (len bytes, untrusted). On success *out is a
	 * new JSON object mapping reference value name -> value. Default config, clock now. */
	int (*extract)(const char *payload, size_t len, json_t **out, struct err *err);
	/* config: the row's member of "extractors" (borrowed, NULL when absent). On success
	 * *state is what extract_ctx gets back; NULL slot = the row takes no options. */
	int (*init)(const json_t *config, void **state, struct err *err);
	void (*state_free)(void *state);
	/* The same as extract with a state from init and a verification time. */
	int (*extract_ctx)(const struct rvps_extract_ctx *ctx, const char *payload, size_t len,
	                   json_t **out, struct err *err);
};

/* Every extractor, NULL-terminated. */
extern const struct rvps_extractor *const rvps_extractors[];

/* The rows, one per file under rvps/extractors/. */
extern const struct rvps_extractor rvps_extractor_sample;
extern const struct rvps_extractor rvps_extractor_corim;
extern const struct rvps_extractor rvps_extractor_swid;
extern const struct rvps_extractor rvps_extractor_in_toto;

/* NULL when no extractor handles `type`. */
const struct rvps_extractor *rvps_extractor_find(const char *type);

/* The configured extractors: one state per row, the pinned time (0 = the clock). */
struct rvps_extractor_set;
/* config: the whole RVPS config object (borrowed, may be NULL). Reads "extractors" and
 * "verification_time"; an unknown member of "extractors" is logged and ignored (another
 * build may know it), a malformed known one is refused. */
struct rvps_extractor_set *rvps_extractor_set_new(const json_t *config, struct err *err);
void rvps_extractor_set_free(struct rvps_extractor_set *s);
/* Runs the extractor for `type` with its state and the set's time. provenance: as in
 * struct rvps_extract_ctx (may be NULL). */
int rvps_extractor_set_extract(const struct rvps_extractor_set *s, const char *type,
                               const char *payload, size_t len, json_t **out, json_t *provenance,
                               struct err *err);

/* The time extract calls judge at: the pinned verification_time, else the clock (s may be
 * NULL). */
time_t rvps_extractor_set_time(const struct rvps_extractor_set *s);

/* Parses "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)" into seconds since the epoch. */
int rvps_parse_rfc3339(const char *s, time_t *out);

/* Shared by extractors: a config member that must be a boolean (def when absent). */
int rvps_config_bool(const json_t *obj, const char *what, const char *key, int def, int *out,
                     struct err *err);
/* Refuses members of obj not in the NULL-terminated list `known`. */
int rvps_config_only(const json_t *obj, const char *what, const char *const *known,
                     struct err *err);

#endif
