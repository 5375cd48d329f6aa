/*
 * jsonr: a JSON object read into jansson values without jansson's character-at-a-time lexer,
 * for the documents read at the request rate: the payload of every token the KBS verifies
 * (common/jose/jws.c), where json_loadb cost ~178K instructions and ~7% of the kbs's CPU
 * time a handshake.
 */
#ifndef CTRUSTEE_JSONR_H
#define CTRUSTEE_JSONR_H

#include <jansson.h>
#include <stddef.h>

/* The object buf[0..len) holds (a new reference), equal member for member, in the same order,
 * to what json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL) gives; or NULL when this reader
 * does not take the text, and the caller then asks json_loadb, which decides. Not taken: any
 * text that is not an object, is not valid JSON or that jansson would refuse (a duplicate key,
 * a string that is not well-formed UTF-8, "\u0000"), and also, left to jansson, a number with
 * a fraction or exponent or over 18 digits, a "\u" escape of a surrogate, nesting deeper
 * than 64, out of memory. */
json_t *jsonr_object(const char *buf, size_t len);

#endif
