/*
 * jsonw: the compact JSON text of a jansson value, byte for byte what
 * json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER) gives, written without jansson's
 * per-segment callbacks and snprintf per number. Every EAR token the AS signs serialises its
 * claims this way (common/jose/jws.c), where json_dumps cost ~104K instructions a token.
 */
#ifndef CTRUSTEE_JSONW_H
#define CTRUSTEE_JSONW_H

#include <jansson.h>
#include <stddef.h>

/* A malloc'd NUL-terminated text (its length in *len if non-NULL), or NULL when this writer
 * does not take the value: a real anywhere (jansson's %.17g rules are left to jansson), a
 * string that is not well-formed UTF-8, nesting deeper than 512, a value that is not an object
 * or an array at the top (json_dumps refuses those), or out of memory. On NULL
 * the caller uses json_dumps, which then decides. */
char *jsonw_compact(const json_t *v, size_t *len);

#endif
