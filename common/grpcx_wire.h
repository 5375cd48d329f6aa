/*
 * grpcx_wire: the byte-level rules of a unary gRPC response that owe nothing to a socket or to
 * HTTP/2 framing — the 5-byte length-prefixed message stream carried in DATA frames, the
 * percent-encoded grpc-message, grpc-status, the HTTP and RST_STREAM code mappings of the gRPC
 * spec, the grpc-timeout header and the target syntax. They read bytes a server chose, so they
 * live apart from the connection code (grpcx_client.c), check every length, and are fuzzed
 * (tests/fuzz/fuzz_grpc_client.c).
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

#endif
