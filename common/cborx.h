/*
 * cborx: CBOR from untrusted bytes, on libcbor. libcbor decodes whatever it is given; this
 * module first walks the bytes itself (cborx_check) and refuses what would make decoding
 * costly or ambiguous: nesting deeper than CBORX_MAX_DEPTH, a length or count larger than the
 * bytes left could hold, indefinite-length strings, reserved or stray break bytes, and
 * trailing bytes. Only then does cborx_load hand the bytes to cbor_load, so a 5-byte input
 * cannot ask libcbor for a four-billion-entry array and freeing an item never recurses deeply.
 * The accessors return borrowed items and treat a repeated map key as an error, so two
 * readers of the same map cannot see different values.
 */
#ifndef CTRUSTEE_CBORX_H
#define CTRUSTEE_CBORX_H

#include <cbor.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define CBORX_MAX_DEPTH 32
#define CBORX_MAX_LEN ((size_t)16 << 20)

/* 0 when buf holds exactly one well-formed item within the limits above; else -1. */
int cborx_check(const uint8_t *buf, size_t len, struct err *err);
/* cborx_check, then decode. A new reference (cbor_decref it), or NULL with a sentence. */
cbor_item_t *cborx_load(const uint8_t *buf, size_t len, struct err *err);

/* *out = the value under integer key `key` (borrowed, NULL when absent). -1 when it is not
 * a map or the key appears twice. */
int cborx_map_int(const cbor_item_t *map, int64_t key, cbor_item_t **out, struct err *err);
/* An unsigned or negative integer that fits int64. */
int cborx_int(const cbor_item_t *it, int64_t *out);
/* The item inside tag `tag` (borrowed), or NULL when `it` is not that tag. */
cbor_item_t *cborx_untag(const cbor_item_t *it, uint64_t tag);
/* A definite text string with no NUL byte as a malloc'd C string, else NULL. */
char *cborx_text(const cbor_item_t *it);
/* A definite byte string: pointer into the item (borrowed) and its length; -1 otherwise. */
int cborx_bytes(const cbor_item_t *it, const uint8_t **p, size_t *len);

#endif
