/*
 * http: an HTTP/1.1 server on libevent's evhttp for the KBS (and anything else that speaks
 * JSON over HTTP), with RFC 7807-style problem bodies.
 *
 * Threads: `threads` event loops, each with its own event_base and evhttp, all accepting on
 * the same listening sockets (the kernel hands each connection to one loop). A request's bytes
 * are copied into a `struct http_req` when it arrives, so a handler may read it from any
 * thread. A handler either replies at once, or hands the request to the server's worker pool
 * with http_req_run_async() (for calls that block: gRPC to the AS, slow storage) and replies
 * from there; a reply from a foreign thread is queued to the loop that owns the connection and
 * sent by it, so other connections on that loop are never held up.
 *
 * TLS: with `tls_ctx` (an OpenSSL SSL_CTX) every connection is an OpenSSL bufferevent that
 * does the handshake before evhttp reads a byte; the context decides versions and ciphers.
 *
 * Limits: bodies above `max_body` bytes are answered 413 by evhttp itself (no problem body),
 * headers above `max_headers` bytes 400, and a connection idle or trickling for more than
 * `timeout_s` seconds is closed (slowloris). Keep-alive is on.
 */
#ifndef CTRUSTEE_HTTP_H
#define CTRUSTEE_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum http_method {
	HTTP_M_OTHER = 0,
	HTTP_M_GET,
	HTTP_M_POST,
	HTTP_M_PUT,
	HTTP_M_DELETE,
	HTTP_M_HEAD,
};

struct http_server;
struct http_req;

/* Called on the loop thread that read the request. Must eventually lead to exactly one
 * http_reply* call for `req` (from this or any other thread). */
typedef void (*http_handler)(void *ctx, struct http_req *req);
/* Called on the loop thread after a reply was handed to evhttp (for metrics and access logs).
 * `seconds` is the time from arrival to reply. */
typedef void (*http_done_cb)(void *ctx, const struct http_req *req, int status, size_t resp_len,
                             double seconds);
/* Work run on the worker pool. */
typedef void (*http_async_fn)(void *arg, struct http_req *req);

struct http_server_opts {
	const char *const *sockets; /* "127.0.0.1:8080", "0.0.0.0:0", "[::1]:8080" */
	size_t n_sockets;
	int threads;        /* event loops, default 2 */
	int pool_threads;   /* workers for http_req_run_async, default 16 */
	size_t max_body;    /* bytes, default 2 MiB */
	size_t max_headers; /* bytes, default 64 KiB */
	int timeout_s;      /* read/write/idle timeout, default 30 */
	void *tls_ctx;      /* an SSL_CTX *: serve HTTPS with it (the server takes a reference) */
	http_handler handler;
	http_done_cb done;
	void *ctx;
};

struct http_server *http_server_new(const struct http_server_opts *opts, struct err *err);
/* The port socket i is bound to (useful with port 0). */
int http_server_port(const struct http_server *s, size_t i);
/* Starts the loop threads and the worker pool; returns at once. */
int http_server_start(struct http_server *s, struct err *err);
/* Stops accepting, lets the loops exit, joins every thread. Call from one thread only. */
void http_server_stop(struct http_server *s);
void http_server_free(struct http_server *s);

/* --- request (valid until the reply is sent; readable from any thread) --- */
enum http_method http_req_method(const struct http_req *r);
const char *http_req_method_name(const struct http_req *r);
/* The request target as sent: "/kbs/v0/resource/a/b/c?x=1". */
const char *http_req_uri(const struct http_req *r);
/* The path part (no query), not percent-decoded. */
const char *http_req_path(const struct http_req *r);
/* The raw query string without '?', or NULL. */
const char *http_req_query(const struct http_req *r);
/* First header with this name (case-insensitive), or NULL. */
const char *http_req_header(const struct http_req *r, const char *name);
/* The nth (from 0) header with this name, in the order received, or NULL. */
const char *http_req_header_nth(const struct http_req *r, const char *name, size_t nth);
/* Value of cookie `name` from the Cookie header(s), malloc'd, or NULL. */
char *http_req_cookie(const struct http_req *r, const char *name);
const uint8_t *http_req_body(const struct http_req *r, size_t *len);
/* Caller data attached to a request (freed by nobody: the caller owns it). */
void http_req_set_data(struct http_req *r, void *data);
void *http_req_data(const struct http_req *r);
/* Monotonic arrival time in seconds. */
double http_req_started(const struct http_req *r);
/* The client's address as text ("127.0.0.1", "::1"), "" when unknown. */
const char *http_req_peer(const struct http_req *r);

/* Run fn(arg, req) on the worker pool. Returns -1 if the pool is stopping. */
int http_req_run_async(struct http_req *r, http_async_fn fn, void *arg);

/* --- reply: exactly once per request, from any thread --- */
/* Add a response header (before the reply call, same thread as the reply). */
void http_reply_header(struct http_req *r, const char *name, const char *value);
/* content_type NULL = no Content-Type header. body is copied. */
void http_reply(struct http_req *r, int status, const char *content_type, const void *body,
                size_t len);
/* Compact JSON; steals nothing (caller keeps its reference). */
void http_reply_json(struct http_req *r, int status, const json_t *v);
/* {"type":"<type_prefix><variant>","detail":"<detail>"} with application/json. */
void http_reply_problem(struct http_req *r, int status, const char *type_prefix,
                        const char *variant, const char *detail);

/* The RFC 7807 body text (malloc'd), for callers that build their own replies. */
char *http_problem_body(const char *type_prefix, const char *variant, const char *detail);
/* "Tue, 01 Sep 2026 10:05:00 GMT" into buf (>= 30 bytes). */
void http_date(long long unix_seconds, char *buf, size_t len);
/* Reason phrase for a status code ("Unauthorized"). */
const char *http_reason(int status);

#endif
