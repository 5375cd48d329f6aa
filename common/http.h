/*
 * http: an HTTP/1.1 server on libevent's evhttp for the KBS (and anything else that speaks
 * JSON over HTTP), with RFC 7807-style problem bodies.
 *
 * Threads: `threads` event loops, each with its own event_base. Loop 0 accepts and places each
 * connection on the lowest loop with headroom, and a kept-alive connection moves between
 * requests: to a quieter loop when its own is busy, back down when the lower loop can take
 * both loads (http_balance). So a lightly loaded server runs one loop with everything batched
 * on it, and a second loop joins only when the first has no room. Each loop measures how much
 * of a core its thread used in its last 100 ms. With TLS the kernel hands each connection to
 * any loop, where it stays (an OpenSSL bufferevent cannot change loops). A request's bytes
 * are copied into a `struct http_req` when it arrives, so a handler may read it from any
 * thread. A handler either replies at once, or hands the request to the server's worker pool
 * with http_req_run_async() (for calls that block: gRPC to the AS, slow storage) and replies
 * from there; a reply from a foreign thread is queued to the loop that owns the connection and
 * sent by it, so other connections on that loop are never held up.
 *
 * TLS: with `tls_ctx` (an OpenSSL SSL_CTX) every connection is an OpenSSL bufferevent that
 * does the handshake before evhttp reads a byte; the context decides versions and ciphers.
 *
 * Framing (RFC 9112, strictly, because a proxy in front may read the bytes differently and
 * let a second request ride in the body of the first): the request head is parsed by
 * http_head_parse(); a duplicate or non-decimal Content-Length, a Transfer-Encoding other
 * than one `chunked` (any case), Transfer-Encoding beside Content-Length, a header name with
 * whitespace before its colon, obs-fold, or a bare CR/LF is answered 400 and the connection
 * is closed, so nothing after the bad head is ever read as a request.
 *
 * Budgets (a connection is something a stranger makes us hold): at most `max_conns` open
 * connections (0 = derived from RLIMIT_NOFILE less a reserve), `admit` may refuse one per
 * address; a request head must arrive within `head_timeout_s` of its start and a body within
 * `body_timeout_s` of the head, however the bytes trickle (deadlines, not idle timers), and a
 * body slower than `min_body_rate` bytes/s after its first two seconds is cut (408). Bodies
 * above `max_body` bytes are answered 413, heads above `max_headers` bytes 400. At EMFILE the
 * listener pauses briefly instead of spinning, and such events are logged at most once per
 * interval with a count. Keep-alive is on; an idle kept-alive connection is closed after
 * `timeout_s`.
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
	int threads;           /* event loops, default 2 */
	int pool_threads;      /* workers for http_req_run_async, default 16 */
	size_t max_body;       /* bytes, default 2 MiB */
	size_t max_headers;    /* bytes, default 64 KiB */
	int timeout_s;         /* keep-alive idle and write timeout, default 30 */
	double head_timeout_s; /* whole request head (and TLS handshake), default timeout_s */
	double body_timeout_s; /* whole body after its head, default timeout_s */
	size_t min_body_rate;  /* bytes/s a body must average after 2 s; 0 = none */
	long max_conns;        /* open connections; 0 = RLIMIT_NOFILE - HTTP_FD_RESERVE */
	/* A loop that used more than this fraction of a core hands connections to a quieter one
	 * (http_balance); 0 = HTTP_BALANCE_BUSY, < 0 = no balancing: every loop accepts and a
	 * connection stays where the kernel put it. */
	double balance_busy;
	/* Per-connection admission (e.g. a per-address cap): return 0 to refuse `peer`; every
	 * admitted connection gets exactly one release(peer) when it closes. Any thread. */
	int (*admit)(void *ctx, const char *peer);
	void (*release)(void *ctx, const char *peer);
	void *tls_ctx; /* an SSL_CTX *: serve HTTPS with it (the server takes a reference) */
	http_handler handler;
	http_done_cb done;
	void *ctx;
};

struct http_server *http_server_new(const struct http_server_opts *opts, struct err *err);
/* fds kept back from the connection cap for files, upstream sockets and logs */
#define HTTP_FD_RESERVE 128
/* The connection cap in force (after defaults). */
long http_server_max_conns(const struct http_server *s);
/* Connections open now. */
long http_server_conns(const struct http_server *s);
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

/* The event loop that read r (0..http_server_loops() - 1), and a loop's event_base: a
 * handler that answers later from that loop (an event of its own on the base) keeps its
 * per-loop state by this index. Only that loop's thread may use the base (http_reply from it
 * sends at once). */
int http_req_loop(const struct http_req *r);
int http_server_loops(const struct http_server *s);
struct event_base *http_server_loop_base(struct http_server *s, int i);

/* Where a connection belongs, from each of the n loops' busy fraction (of one core, in its
 * last window) and `threshold` (opts.balance_busy): for a new connection (from -1) the lowest
 * loop under the threshold, else the least busy; for one on loop `from` between requests, a
 * lower loop when the two loads together stay under 3/4 of the threshold (concentrate), else,
 * when `from` is over it, the lowest loop under half of it (spread), else `from` (stay). The
 * gap between the thresholds keeps a connection from moving back and forth. */
#define HTTP_BALANCE_BUSY 0.6
int http_balance(const double *busy, int n, int from, double threshold);

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

/* --- request head parser (fuzzed: tests/fuzz/fuzz_http_head.c) --- */
#define HTTP_HDRS_MAX 100
struct http_span {
	size_t off, len; /* into the parsed buffer */
};
struct http_head {
	size_t head_len; /* bytes up to and including the empty line */
	struct http_span method, target;
	int minor; /* HTTP/1.<minor> */
	size_t n_hdrs;
	struct http_span name[HTTP_HDRS_MAX], value[HTTP_HDRS_MAX]; /* value without OWS */
	long long content_length;                                   /* -1: none */
	int chunked;
	int keep_alive;
	int expect_continue;
};
/* 1: a complete, well-framed head in buf[0..head_len); 0: need more bytes (fewer than max
 * so far); -1: malformed, badly framed or longer than max, err says why (answer 400). */
int http_head_parse(const uint8_t *buf, size_t len, size_t max, struct http_head *out,
                    struct err *err);

#endif
