/*
 * grpcx_stream: one unary call's stream as a gRPC client sees it, the part that owes nothing
 * to who drives the socket. The blocking client (grpcx_client.c: the calling thread polls)
 * and the loop-driven one (grpcx_async.c: a libevent loop multiplexes many calls on one
 * connection) share it, so that both send the same request headers and body and read an
 * answer into the same status by the same rules: the byte-level parsing is grpcx_wire.c's,
 * the mapping of what the server sent to a status is grpcx_stream_result's.
 */
#ifndef CTRUSTEE_GRPCX_STREAM_H
#define CTRUSTEE_GRPCX_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

#include "err.h"
#include "grpcx_wire.h"

/* Receive windows (stream and connection): a response up to this size needs no
 * WINDOW_UPDATE round trip. */
#define GRPCX_STREAM_WINDOW (16 * 1024 * 1024)

struct grpcx_stream {
	int32_t stream_id;
	const uint8_t *req; /* borrowed request message */
	size_t req_len;
	size_t sent; /* bytes of prefix + message handed to nghttp2 */
	uint8_t prefix[5];
	char timeout[16]; /* grpc-timeout: nghttp2 reads the header values when it sends them */
	struct grpcx_msg_reader rd;
	int http_status;    /* :status, 0 until seen */
	int bad_ctype;      /* content-type present and not application/grpc* */
	char ctype[64];     /* that content-type, for the message */
	int grpc_status;    /* -1 until a valid grpc-status is seen */
	int status_garbled; /* a grpc-status that is not a number */
	char grpc_message[ERR_MSG_MAX - 64];
	int closed;        /* the stream closed */
	uint32_t h2_error; /* its HTTP/2 error code (RST_STREAM), 0 = NO_ERROR */
	int failed;        /* we refused the response (fail holds why) and reset the stream */
	struct err fail;
};

/* What every request of one client carries besides the method. */
struct grpcx_stream_hdrs {
	int tls;               /* :scheme https */
	const char *authority; /* host:port */
	const char *bearer;    /* "Bearer <token>" or NULL */
};

/* Ready for a (new) attempt of the call: req borrowed until the stream ends. */
void grpcx_stream_init(struct grpcx_stream *st, const uint8_t *req, size_t req_len);
void grpcx_stream_free(struct grpcx_stream *st);
/* Submits the request on ng (HEADERS then one DATA frame); left_ms < 0: no grpc-timeout.
 * stream_data becomes nghttp2's stream user data. 0, or -1 when nghttp2 refuses it. */
int grpcx_stream_submit(nghttp2_session *ng, struct grpcx_stream *st,
                        const struct grpcx_stream_hdrs *h, const char *method, long left_ms,
                        void *stream_data);
/* nghttp2's header and data callbacks for this stream. */
void grpcx_stream_header(struct grpcx_stream *st, const uint8_t *name, size_t namelen,
                         const uint8_t *value, size_t valuelen);
void grpcx_stream_data(nghttp2_session *ng, struct grpcx_stream *st, const uint8_t *data,
                       size_t len);
/* The status of a stream that closed, from what the server sent; *resp malloc'd on OK. */
int grpcx_stream_result(struct grpcx_stream *st, uint8_t **resp, size_t *resp_len, struct err *err);
/* A new client session's SETTINGS and connection window. 0 or -1. */
int grpcx_stream_session_setup(nghttp2_session *ng);
/* *slot becomes "Bearer <token>" (malloc'd), or NULL for a NULL token; the old value is wiped
 * and freed. Both clients' set_bearer. 0, or -1 err set. */
int grpcx_bearer_set(char **slot, const char *token, struct err *err);
/* err_setc for a call's outcome: returns the code itself. */
int grpcx_status_set(struct err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
