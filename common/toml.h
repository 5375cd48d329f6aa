/*
 * toml: a TOML 1.0 parser producing jansson values.
 *
 * Tables -> objects (insertion order), arrays -> arrays, strings -> strings, integers ->
 * integers, floats -> reals, booleans -> booleans. Offset date-times, local date-times,
 * dates and times are refused with an "unsupported" error (err->code = TOML_ERR_UNSUPPORTED).
 * Errors name the line and column: "line 3, column 7: expected '=' after key".
 */
#ifndef CTRUSTEE_TOML_H
#define CTRUSTEE_TOML_H

#include <jansson.h>
#include <stddef.h>

#include "err.h"

#define TOML_ERR_SYNTAX 1
#define TOML_ERR_UNSUPPORTED 2

/* Returns a new object reference, or NULL with err filled. */
json_t *toml_parse(const char *text, size_t len, struct err *err);
json_t *toml_parse_file(const char *path, struct err *err);

#endif
