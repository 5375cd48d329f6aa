/*
 * grpcwire: the few gRPC-over-HTTP/2 texts and bytes the server parses or writes itself
 * (the gRPC "PROTOCOL-HTTP2" document): the grpc-timeout header, the 5-byte message prefix
 * and the percent-encoding of grpc-message. Pure functions on (buf, len), bounds-checked,
 * fuzzed by tests/fuzz/fuzz_grpc_server.c.
 */
#ifndef CTRUSTEE_GRPCWIRE_H
#define CTRUSTEE_GRPCWIRE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define GRPCWIRE_PREFIX_LEN 5

/* grpc-timeout: 1 to 8 ASCII digits then one unit of H M S m u n. 0 and *ns set (clamped to
 * INT64_MAX); -1 with a sentence otherwise. */
int grpcwire_timeout_parse(const uint8_t *buf, size_t len, int64_t *ns, struct err *err);

/* The prefix of a length-prefixed message: compressed flag (0 or 1) and big-endian length.
 * 1: parsed; 0: fewer than 5 bytes; -1: the flag byte is neither 0 nor 1. */
int grpcwire_prefix_parse(const uint8_t *buf, size_t len, int *compressed, uint32_t *msg_len,
                          struct err *err);
void grpcwire_prefix_write(uint8_t out[GRPCWIRE_PREFIX_LEN], uint32_t msg_len);

/* Percent-encode msg (len bytes) for grpc-message into out (outlen bytes, NUL-terminated):
 * bytes outside ' '..'~' and '%' become %XX. Truncates at a whole escape; returns the length
 * written. */
size_t grpcwire_pct_encode(const uint8_t *msg, size_t len, char *out, size_t outlen);

#endif
