/*
 * jcs: RFC 8785 JSON Canonicalization Scheme over jansson values.
 * Keys sorted by UTF-16 code units, compact, minimal escaping, ECMAScript number form.
 */
#ifndef CTRUSTEE_JCS_H
#define CTRUSTEE_JCS_H

#include <jansson.h>
#include <stddef.h>

/* Returns a malloc'd NUL-terminated string (length in *len if non-NULL), NULL on error
 * (e.g. a non-finite number). */
char *jcs_serialize(const json_t *v, size_t *len);

#endif
