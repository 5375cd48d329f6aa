/*
 * grpcx_wire: the byte-level rules of a unary gRPC response that owe nothing to a socket or to
 * HTTP/2 framing — the 5-byte length-prefixed message stream carried in DATA frames, the
 * percent-encoded grpc-message, grpc-status, the HTTP and RST_STREAM code mappings of the gRPC
 * spec, the grpc-timeout header and the target syntax — and, for the server half (grpcx_h2.c),
 * the same rules read the other way: grpc-timeout parsed, the prefix written, grpc-message
 * percent-encoded. They read bytes a peer chose, so they live apart from the connection code,
 * check every length, and are fuzzed (tests/fuzz/fuzz_grpc_client.c, fuzz_grpc_server.c).
 */
#ifndef CTRUSTEE_GRPCX_WIRE_H
#define CTRUSTEE_GRPCX_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "grpcx.h"

/* The largest message we send or accept (the server half's limit too). */
#define GRPCX_WIRE_MAX_MSG (64u * 1024 * 1024)

/* gRPC codes the client produces itself besides those in grpcx.h. */
#define GRPCX_CANCELLED 1
#define GRPCX_UNKNOWN 2

/* Reassembles the response message from DATA payloads split anywhere. Exactly one message
 * is expected; its buffer grows as bytes arrive (never past the length its prefix
 * announced, and a prefix above max is refused before anything is kept). */
struct grpcx_msg_reader {
	uint8_t prefix[5];
	size_t prefix_len; /* bytes of prefix[] filled: 0..5 */
	uint8_t *msg;      /* owned: room for cap bytes + a NUL; NULL until the first byte */
	size_t cap;        /* allocated message bytes, got <= cap <= len */
	size_t len;        /* the message length its prefix announced */
	size_t got;        /* message bytes received */
	int messages;      /* prefixes completed (the second one is an error) */
	size_t max;
};

void grpcx_msg_reader_init(struct grpcx_msg_reader *r, size_t max);
void grpcx_msg_reader_free(struct grpcx_msg_reader *r);
/* 0, or -1 with err->code GRPCX_RESOURCE_EXHAUSTED (too large) or GRPCX_INTERNAL (compressed,
 * a second message) and a sentence. */
int grpcx_msg_feed(struct grpcx_msg_reader *r, const uint8_t *buf, size_t len, struct err *err);
/* At the end of the stream: the message (owned by the caller, NUL-terminated; an empty one
 * when the server sent none), or -1 with GRPCX_INTERNAL when it stopped inside a message. */
int grpcx_msg_finish(struct grpcx_msg_reader *r, uint8_t **out, size_t *out_len, struct err *err);

/* Percent-decodes a grpc-message value into out (NUL-terminated, cut at outlen - 1 bytes; a
 * '%' not followed by two hex digits is kept as it is, a decoded NUL ends the text). Returns
 * the length written. */
size_t grpcx_percent_decode(const uint8_t *in, size_t len, char *out, size_t outlen);
/* grpc-status value: 0..999 from 1-3 ASCII digits, else -1. */
int grpcx_status_parse(const uint8_t *v, size_t len);
/* The gRPC spec's table for a response whose :status is not 200. */
int grpcx_status_from_http(int http_status);
/* The gRPC spec's table for a stream reset by the server with an HTTP/2 error code. */
int grpcx_status_from_h2_error(uint32_t code);
/* "<n>m" or a coarser unit when n needs more than 8 digits; 0, or -1 if outlen is short. */
int grpcx_timeout_format(long ms, char *out, size_t outlen);

/* "http://h:p", "https://h:p", "h:p", "dns:///h:p", "[::1]:p" (a trailing '/' is ignored). */
struct grpcx_target {
	int tls;
	int is_ip;           /* host is a literal IPv4 or IPv6 address */
	char host[256];      /* without brackets */
	char port[8];        /* decimal, 1..65535 */
	char authority[272]; /* host:port, IPv6 in brackets */
};
int grpcx_target_parse(const char *target, struct grpcx_target *t, struct err *err);

/* ---- the server half: what a client sends, and the reply's framing */

#define GRPCX_WIRE_PREFIX_LEN 5

/* grpc-timeout: 1 to 8 ASCII digits then one unit of H M S m u n. 0 and *ns set (clamped to
 * INT64_MAX); -1 with a sentence otherwise. */
int grpcx_wire_timeout_parse(const uint8_t *buf, size_t len, int64_t *ns, struct err *err);

/* The prefix of a length-prefixed message: compressed flag (0 or 1) and big-endian length.
 * 1: parsed; 0: fewer than 5 bytes; -1: the flag byte is neither 0 nor 1. */
int grpcx_wire_prefix_parse(const uint8_t *buf, size_t len, int *compressed, uint32_t *msg_len,
                            struct err *err);
void grpcx_wire_prefix_write(uint8_t out[GRPCX_WIRE_PREFIX_LEN], uint32_t msg_len);

/* Percent-encode msg (len bytes) for grpc-message into out (outlen bytes, NUL-terminated):
 * bytes outside ' '..'~' and '%' become %XX. Truncates at a whole escape; returns the length
 * written. */
size_t grpcx_wire_pct_encode(const uint8_t *msg, size_t len, char *out, size_t outlen);

#endif
