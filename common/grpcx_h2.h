/*
 * grpcx_h2: how the gRPC server's three parts meet; private to grpcx.c (methods, worker
 * threads, life cycle), grpcx_h2.c (one nghttp2 server session per HTTP/2 connection) and
 * grpcfront.c (the port, TLS, the event loop that owns the sessions).
 *
 * A call is born on the loop thread when a stream's HEADERS arrive and collects its message.
 * Once its END_STREAM is in, its method's try handler may answer it there; otherwise it goes
 * to a worker, and the handler's result comes back through the loop's reply queue, or the
 * worker writes the reply itself (a plaintext connection while the loop is not busy with its
 * sessions: one wake less). A session is touched only under its loop's sess_mu, which the
 * loop holds while it works. A call is reference-counted: one reference for the open stream,
 * one while a worker or the reply queue holds it, so a stream reset while its handler runs
 * frees nothing the worker uses.
 */
#ifndef CTRUSTEE_GRPCX_H2_H
#define CTRUSTEE_GRPCX_H2_H

#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/x509.h>

#include "grpcx.h"

#define GRPCX_MAX_MSG (64 * 1024 * 1024)

struct gfront;
struct h2loop;
struct h2conn;

struct grpcx_method {
	char *path;
	grpcx_handler h;
	grpcx_handler try_h; /* runs on the loop first (grpcx_server_add_try), or NULL */
	void *ctx;
};

struct grpcx_call {
	/* Filled on the loop thread before the call reaches a worker; read-only afterwards. */
	const struct grpcx_method *m;
	uint8_t *req; /* the DATA payload: 5-byte prefix + message; counted in the budget */
	size_t req_len, req_cap;
	char *md; /* request metadata: "name\0value\0" pairs */
	size_t md_len, md_cap;
	int64_t deadline; /* CLOCK_MONOTONIC ns; 0: none */
	int64_t queued;   /* CLOCK_MONOTONIC ns when dispatched (grpcx.c's queue, under its mu) */
	X509 *peer;       /* owned reference, or NULL */
	struct h2loop *loop;
	/* Written by the worker, read by the loop once the reply queue hands the call back. */
	int status;
	char *msg;
	uint8_t *resp;
	size_t resp_len;
	/* The loop thread, or a worker holding the loop's sess_mu (grpcx_h2.c, write_now);
	 * closed is also read by the worker without it, atomically. */
	struct h2conn *conn; /* NULL once the stream or its connection is gone */
	int32_t stream_id;
	int closed;
	int answered; /* a response was submitted */
	int dispatched;
	int has_prefix;
	uint32_t msg_len;
	int compressed, encoded; /* prefix flag; grpc-encoding other than identity */
	int bad;                 /* a header check failed: status to answer with */
	char bad_msg[160];
	int post, ctype, http_status;
	size_t hdr_bytes;
	size_t sent; /* response bytes (prefix + resp) handed to nghttp2 */
	char path[256];
	int path_long;
	int refs;                         /* atomic */
	struct grpcx_call *next;          /* worker FIFO, reply queue */
	struct grpcx_call *cprev, *cnext; /* the connection's open calls */
};

void grpcx_call_unref(struct grpcx_call *c);
/* Frees the request bytes and returns them to the process budget (any thread). */
void grpcx_call_drop_req(struct grpcx_call *c);

/* grpcx.c, for the sessions: the method registered under path (NULL: none); whether the
 * server is stopping; hand a complete call (and one reference) to the workers. */
const struct grpcx_method *grpcx_server_lookup(struct grpcx_server *s, const char *path);
int grpcx_server_stopping(const struct grpcx_server *s);
/* grpcx_server_dispatch returns 1 when calls wait in the queue while workers sleep (the
 * running cap, grpcx.c): the loop then calls grpcx_server_unstall within
 * grpcx_server_stall_ms(), which returns 1 while that is still so. */
int grpcx_server_dispatch(struct grpcx_server *s, struct grpcx_call *c);
int grpcx_server_unstall(struct grpcx_server *s);
int grpcx_server_stall_ms(void);
/* Loop thread, a complete call: its method's try handler answers it now when it can (0: the
 * result is in c->status/msg/resp, the request bytes are freed; respond with it), or -1: it
 * goes to a worker (grpcx_server_dispatch), untouched. */
int grpcx_server_try(struct grpcx_server *s, struct grpcx_call *c);
/* gfront_new/gfront_free tell the server which front serves it (one per server): its
 * teardown stops that front's accepting, then closes its HTTP/2 connections. */
void grpcx_server_attach_front(struct grpcx_server *s, struct gfront *f);
/* grpcfront.c: run on the loop and waited for; the front forgets the server (it is being
 * freed). */
void gfront_close_grpc(struct gfront *f);
void gfront_detach(struct gfront *f);

/* grpcx_h2.c: a loop's reply queue (workers -> loop, one wake for several replies). */
struct h2loop *h2loop_new(struct event_base *base);
void h2loop_free(struct h2loop *l);
/* Loop thread: submit every queued reply now. */
void h2loop_drain(struct h2loop *l);
/* Loop thread, the server's teardown: the stall timer stops (the server goes away). */
void h2loop_quiesce(struct h2loop *l);
/* Worker thread: queue c's result for its loop (the worker's reference goes with it). */
void h2loop_reply(struct grpcx_call *c);

/* One HTTP/2 connection on bev (borrowed; its input starts with the client preface).
 * peer: the verified client certificate (borrowed) or NULL. done(ctx) is called, as the last
 * thing any h2conn_* function does, when the session is over: the front then writes what
 * bev holds and frees the connection (h2conn_free). */
struct h2conn *h2conn_new(struct grpcx_server *s, struct h2loop *l, struct bufferevent *bev,
                          X509 *peer, void (*done)(void *ctx), void *ctx);
void h2conn_input(struct h2conn *h); /* bev has input */
/* Bytes the front read from the connection's socket itself (a plain socket; bev's input is
 * not used then). */
void h2conn_input_bytes(struct h2conn *h, const uint8_t *data, size_t len);
void h2conn_output(struct h2conn *h); /* bev's output drained: send more */
void h2conn_goaway(struct h2conn *h); /* no new streams; the open ones finish */
/* The connection is the plain socket fd (not TLS): a worker may write its reply to it
 * directly while the loop is not busy with the loop's sessions (grpcx_h2.c, write_now). */
void h2conn_set_fd(struct h2conn *h, int fd);
/* Every few seconds: keepalive PING every 60 s, done when one is unanswered for 20 s. */
void h2conn_tick(struct h2conn *h, int64_t now_ms);
void h2conn_free(struct h2conn *h);

#endif
