/*
 * yaml_json: a YAML configuration file into the same jansson tree the TOML and JSON loaders
 * produce, so a Trustee deployment that configures a daemon in YAML (Trustee's `config`
 * crate reads it) works unchanged. libyaml does the syntax; this module maps its events:
 *
 *   mapping -> object (scalar keys only, a repeated key is refused as in JSON configs)
 *   sequence -> array; one document only; at most YAML_JSON_MAX_DEPTH levels
 *   plain scalar -> YAML 1.2 core schema: null/~/empty, true/false (any case form the spec
 *     lists), decimal, 0o octal and 0x hex integers that fit 64 bits, decimal floats;
 *     anything else a string. Quoted scalars are strings; !!str/!!int/!!float/!!bool/!!null
 *     tags force the type (or are refused when the text does not fit it).
 *   aliases (*a) and other tags are refused: a configuration has no need of them, and an
 *   alias is how a few bytes of YAML expand into gigabytes.
 */
#ifndef CTRUSTEE_YAML_JSON_H
#define CTRUSTEE_YAML_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define YAML_JSON_MAX_DEPTH 64

/* Parses buf[0..len) into *out (a new reference; any JSON value, the caller checks its
 * type). Returns 0, or -1 with a sentence naming the line and column. */
int yaml_json_parse(const uint8_t *buf, size_t len, json_t **out, struct err *err);

#endif
