/*
 * grpcx_h2: gRPC's unary calls on an nghttp2 server session, one per HTTP/2 connection, run
 * by the front's event loop (see grpcx_h2.h for how a call travels).
 *
 * The loop feeds the session the bytes the front read (nghttp2_session_mem_recv) and copies
 * what the session wants to send into the connection's output (mem_send), at most OUT_HIGH
 * bytes ahead of the socket; the rest waits in nghttp2 until the output drains. The session
 * checks HTTP/2 itself (frames, HPACK, flow control, stream states, SETTINGS and PING acks
 * bounded by its options) and answers a broken peer with GOAWAY; this file checks gRPC: POST,
 * content-type, a registered :path, one uncompressed message of at most 64 MiB, grpc-timeout.
 *
 * Replies. A try handler's answer is submitted during the input that completed the call and
 * sent by the pump that follows it. A worker's answer on a plaintext connection is written by
 * the worker itself when it gets the loop's sess_mu at once and nothing of that connection
 * waits in the output (write_now); else, and on TLS, it goes through the reply queue and one
 * loop wake serves every reply queued meanwhile.
 *
 * Budgets against hostile clients, beside the front's own (connections, idle time):
 *   - streams at once: SETTINGS_MAX_CONCURRENT_STREAMS 100 (nghttp2 refuses the 101st);
 *   - request headers: 16 KiB per stream (SETTINGS_MAX_HEADER_LIST_SIZE, enforced here);
 *   - request bytes buffered: CONN_BUDGET per connection for calls still arriving, and
 *     PROC_BUDGET for the whole process until a handler is done with them, so 200 clients
 *     slowly sending 64 MiB each pin PROC_BUDGET, not 12 GiB; a call over either budget is
 *     answered RESOURCE_EXHAUSTED;
 *   - rapid reset: more than RST_PER_SEC RST_STREAM frames in a second from one client ->
 *     GOAWAY ENHANCE_YOUR_CALM and the connection closes;
 *   - a keepalive PING every 60 s; no ack within 20 s closes the connection.
 *
 * Why not gRPC core's server: its poller threads, completion queues and executor hand each
 * call across threads several times. Against it, alternated on this 2-core VM (load 11-13):
 * rvps QueryReferenceValue at 16 client threads 6.2-6.4k -> 9.1-14.5k calls/s, rvps CPU per
 * KBS handshake at 64 attesters 0.21-0.25 -> 0.17-0.18 ms, rvps idle RSS 13.2 -> 10.5 MB and
 * 18 -> 10 threads (tests/bench/run_grpc.sh, tests/bench/run.sh).
 */
#include "grpcx_h2.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <nghttp2/nghttp2.h>

#include "grpcx_wire.h"
#include "log.h"

#define MAX_STREAMS 100
#define MAX_HEADER_LIST 16384
#define STREAM_WINDOW (1 << 20)
#define CONN_WINDOW (16 << 20)
#define CONN_BUDGET ((size_t)GRPCX_MAX_MSG + GRPCX_WIRE_PREFIX_LEN + (16u << 20))
#define PROC_BUDGET ((size_t)256 << 20)
#define OUT_HIGH (256 * 1024)
#define RST_PER_SEC 200
#define PING_EVERY_MS 60000
#define PING_TIMEOUT_MS 20000
#define WRITE_NOW_MAX (64 * 1024) /* a worker writes at most this much of a reply itself */

/* Request bytes buffered by every connection of the process (atomic). */
static size_t proc_buffered;

struct h2loop {
	/* Every session of this loop and what hangs off it (h2conn fields, a call's conn and
	 * closed): the loop holds it while it works on a connection, a worker while it writes
	 * its reply itself (write_now, which only tries it). Adaptive: held for microseconds. */
	pthread_mutex_t sess_mu;
	struct event *ev; /* activated by workers: replies are queued */
	nghttp2_option *opt;
	nghttp2_session_callbacks *cbs;
	pthread_mutex_t mu;
	struct grpcx_call *head, *tail; /* replies; guarded by mu */
	int armed;                      /* ev activated and not yet run; guarded by mu */
	struct h2conn *flush; /* connections a worker wrote to that need the loop (h->fnext);
	                       * guarded by sess_mu */
	struct event *stall;  /* loop thread: calls queued under the running cap */
	struct grpcx_server *stall_s; /* the server it checks (one per front) */
};

/* Loop thread: make sure grpcx_server_unstall runs within the stall time (grpcx.c). */
static void stall_arm(struct h2loop *l, struct grpcx_server *s)
{
	int ms = grpcx_server_stall_ms();
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	l->stall_s = s;
	if (!evtimer_pending(l->stall, NULL))
		evtimer_add(l->stall, &tv);
}

static void on_stall(evutil_socket_t fd, short what, void *arg)
{
	struct h2loop *l = arg;

	(void)fd;
	(void)what;
	if (grpcx_server_unstall(l->stall_s))
		stall_arm(l, l->stall_s);
}

struct h2conn {
	struct grpcx_server *s;
	struct h2loop *loop;
	nghttp2_session *ss;
	struct bufferevent *bev; /* borrowed from the front */
	X509 *peer;              /* owned reference, or NULL */
	void (*done)(void *ctx);
	void *ctx;
	size_t buffered;          /* request bytes of calls still arriving */
	struct grpcx_call *calls; /* calls with an open stream */
	int64_t rst_start;        /* rapid-reset window (ms) and its count */
	int rst_count;
	int64_t ping_sent; /* ms; ping_out: not yet acked */
	int ping_out;
	int fd;        /* the plain socket a worker may write a reply to (h2conn_set_fd), or -1 */
	int over;      /* done() was called: nothing more is written here but by the loop */
	int broken;    /* a worker's direct write lost bytes the session counts as sent (out of
	                * memory): the stream state is gone, the loop ends the connection */
	uint8_t *pend; /* bytes a worker's write left unsent (owned): the loop writes them first */
	size_t pend_len;
	int flushing;         /* on the loop's flush list */
	struct h2conn *fnext; /* that list */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ------------------------------------------------------------------------------------ */
/* calls */

void grpcx_call_drop_req(struct grpcx_call *c)
{
	if (c->req == NULL)
		return;
	__atomic_sub_fetch(&proc_buffered, c->req_cap, __ATOMIC_RELAXED);
	free(c->req);
	c->req = NULL;
	c->req_len = c->req_cap = 0;
}

void grpcx_call_unref(struct grpcx_call *c)
{
	if (c == NULL || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	grpcx_call_drop_req(c);
	free(c->md);
	free(c->msg);
	free(c->resp);
	X509_free(c->peer);
	free(c);
}

/* The call leaves its connection (stream closed, or the connection is going). */
static void call_unlink(struct h2conn *h, struct grpcx_call *c)
{
	if (c->cprev)
		c->cprev->cnext = c->cnext;
	else
		h->calls = c->cnext;
	if (c->cnext)
		c->cnext->cprev = c->cprev;
	c->cprev = c->cnext = NULL;
	if (!c->dispatched)
		h->buffered -= c->req_cap;
	c->conn = NULL;
	__atomic_store_n(&c->closed, 1, __ATOMIC_RELEASE);
	grpcx_call_unref(c); /* the stream's reference */
}

/* ------------------------------------------------------------------------------------ */
/* responses */

#define NV(n, v)                                                                                   \
	{                                                                                          \
		(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE     \
	}

/* A trailers-only response (or a bare HTTP error status): status and message in one
 * HEADERS frame that ends the stream. The request bytes are not needed any more. */
static void respond_error(struct h2conn *h, struct grpcx_call *c, int http_status, int status,
                          const char *msg)
{
	char st[16], hs[8], pct[512];

	if (c->answered)
		return;
	c->answered = 1;
	if (!c->dispatched) {
		h->buffered -= c->req_cap;
		c->dispatched = 1; /* nothing more is counted against the connection */
	}
	grpcx_call_drop_req(c);
	snprintf(hs, sizeof(hs), "%d", http_status);
	snprintf(st, sizeof(st), "%d", status);
	grpcx_wire_pct_encode((const uint8_t *)msg, strlen(msg), pct, sizeof(pct));
	nghttp2_nv nv[] = {NV(":status", hs), NV("content-type", "application/grpc"),
	                   NV("grpc-status", st), NV("grpc-message", pct)};
	nghttp2_submit_response(h->ss, c->stream_id, nv, pct[0] ? 4 : 3, NULL);
}

static ssize_t read_resp(nghttp2_session *ss, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *user)
{
	struct grpcx_call *c = src->ptr;
	size_t total = GRPCX_WIRE_PREFIX_LEN + c->resp_len, n = 0;
	nghttp2_nv ok[] = {NV("grpc-status", "0")};

	(void)user;
	if (c->sent < GRPCX_WIRE_PREFIX_LEN && length > 0) {
		uint8_t pre[GRPCX_WIRE_PREFIX_LEN];
		size_t k = GRPCX_WIRE_PREFIX_LEN - c->sent;

		grpcx_wire_prefix_write(pre, (uint32_t)c->resp_len);
		if (k > length)
			k = length;
		memcpy(buf, pre + c->sent, k);
		n = k;
	}
	if (n < length && c->sent + n < total) {
		size_t off = c->sent + n - GRPCX_WIRE_PREFIX_LEN, k = c->resp_len - off;

		if (k > length - n)
			k = length - n;
		memcpy(buf + n, c->resp + off, k);
		n += k;
	}
	c->sent += n;
	if (c->sent == total) {
		*flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
		if (nghttp2_submit_trailer(ss, id, ok, 1) != 0)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	return (ssize_t)n;
}

static void respond(struct h2conn *h, struct grpcx_call *c)
{
	nghttp2_nv nv[] = {NV(":status", "200"), NV("content-type", "application/grpc")};
	nghttp2_data_provider dp = {.source.ptr = c, .read_callback = read_resp};

	if (c->status != GRPCX_OK) {
		respond_error(h, c, 200, c->status, c->msg ? c->msg : "");
		return;
	}
	c->answered = 1;
	if (nghttp2_submit_response(h->ss, c->stream_id, nv, 2, &dp) != 0)
		nghttp2_submit_rst_stream(h->ss, NGHTTP2_FLAG_NONE, c->stream_id,
		                          NGHTTP2_INTERNAL_ERROR);
}

/* ------------------------------------------------------------------------------------ */
/* requests */

static void md_add(struct grpcx_call *c, const uint8_t *name, size_t nl, const uint8_t *value,
                   size_t vl)
{
	size_t need = c->md_len + nl + vl + 2;

	if (need > c->md_cap) {
		size_t cap = c->md_cap ? c->md_cap * 2 : 256;
		char *p;

		while (cap < need)
			cap *= 2;
		if ((p = realloc(c->md, cap)) == NULL)
			return;
		c->md = p;
		c->md_cap = cap;
	}
	memcpy(c->md + c->md_len, name, nl);
	c->md[c->md_len + nl] = '\0';
	memcpy(c->md + c->md_len + nl + 1, value, vl);
	c->md[c->md_len + nl + 1 + vl] = '\0';
	c->md_len = need;
}

static int is(const uint8_t *s, size_t len, const char *lit)
{
	return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

/* Mark the call for an error answer (the first reason wins). */
static void set_bad(struct grpcx_call *c, int http_status, int status, const char *msg)
{
	if (c->bad)
		return;
	c->bad = status;
	c->http_status = http_status;
	snprintf(c->bad_msg, sizeof(c->bad_msg), "%.*s", (int)sizeof(c->bad_msg) - 1, msg);
}

static void on_content_type(struct grpcx_call *c, const uint8_t *v, size_t vl)
{
	/* application/grpc, application/grpc+proto, application/grpc;charset=... */
	c->ctype = vl >= 16 && strncasecmp((const char *)v, "application/grpc", 16) == 0 &&
	           (vl == 16 || v[16] == '+' || v[16] == ';');
}

static void on_timeout(struct grpcx_call *c, const uint8_t *v, size_t vl)
{
	struct err e;
	int64_t ns, now = now_ns();

	if (grpcx_wire_timeout_parse(v, vl, &ns, &e) < 0) {
		set_bad(c, 200, GRPCX_INTERNAL, e.msg);
		return;
	}
	c->deadline = ns > INT64_MAX - now ? INT64_MAX : now + ns;
	if (c->deadline == 0)
		c->deadline = 1;
}

static int on_header(nghttp2_session *ss, const nghttp2_frame *fr, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *user)
{
	struct grpcx_call *c = nghttp2_session_get_stream_user_data(ss, fr->hd.stream_id);

	(void)flags;
	(void)user;
	if (c == NULL || fr->hd.type != NGHTTP2_HEADERS || fr->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	c->hdr_bytes += nl + vl + 32;
	if (c->hdr_bytes > MAX_HEADER_LIST) {
		set_bad(c, 200, GRPCX_RESOURCE_EXHAUSTED, "the request headers exceed 16384 bytes");
		return 0;
	}
	if (nl > 0 && name[0] == ':') {
		if (is(name, nl, ":method"))
			c->post = is(value, vl, "POST");
		else if (is(name, nl, ":path")) {
			c->path_long = vl >= sizeof(c->path);
			if (!c->path_long) {
				memcpy(c->path, value, vl);
				c->path[vl] = '\0';
			}
		}
	} else if (is(name, nl, "content-type")) {
		on_content_type(c, value, vl);
	} else if (is(name, nl, "grpc-timeout")) {
		on_timeout(c, value, vl);
	} else if (is(name, nl, "grpc-encoding")) {
		c->encoded = !is(value, vl, "identity");
	} else if (!is(name, nl, "te") && !is(name, nl, "grpc-accept-encoding")) {
		md_add(c, name, nl, value, vl);
	}
	return 0;
}

static int on_begin_headers(nghttp2_session *ss, const nghttp2_frame *fr, void *user)
{
	struct h2conn *h = user;
	struct grpcx_call *c;

	if (fr->hd.type != NGHTTP2_HEADERS || fr->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	c->refs = 1;
	c->conn = h;
	c->loop = h->loop;
	c->stream_id = fr->hd.stream_id;
	if (h->peer != NULL && X509_up_ref(h->peer) == 1)
		c->peer = h->peer;
	c->cnext = h->calls;
	if (h->calls)
		h->calls->cprev = c;
	h->calls = c;
	nghttp2_session_set_stream_user_data(ss, c->stream_id, c);
	return 0;
}

/* The request's headers are complete: answer now what is already wrong. */
static void headers_done(struct h2conn *h, struct grpcx_call *c)
{
	char msg[320];

	if (c->bad)
		respond_error(h, c, c->http_status, c->bad, c->bad_msg);
	else if (!c->post)
		respond_error(h, c, 405, GRPCX_UNIMPLEMENTED, "gRPC calls use the POST method");
	else if (!c->ctype)
		respond_error(h, c, 415, GRPCX_INTERNAL,
		              "content-type must be application/grpc or application/grpc+proto");
	else if (c->path_long || (c->m = grpcx_server_lookup(h->s, c->path)) == NULL) {
		snprintf(msg, sizeof(msg), "Method not found: %s",
		         c->path_long ? "(a path too long)" : c->path);
		respond_error(h, c, 200, GRPCX_UNIMPLEMENTED, msg);
	} else if (grpcx_server_stopping(h->s))
		respond_error(h, c, 200, GRPCX_UNAVAILABLE, "the server is shutting down");
}

/* The first 5 bytes are in: refuse what the prefix already tells. */
static void check_prefix(struct h2conn *h, struct grpcx_call *c)
{
	struct err e;
	int k = grpcx_wire_prefix_parse(c->req, c->req_len, &c->compressed, &c->msg_len, &e);

	if (k == 0)
		return;
	c->has_prefix = 1;
	if (k < 0)
		respond_error(h, c, 200, GRPCX_INTERNAL, e.msg);
	else if (c->compressed && c->encoded)
		respond_error(h, c, 200, GRPCX_UNIMPLEMENTED, "compression is not supported");
	else if (c->compressed)
		respond_error(h, c, 200, GRPCX_INTERNAL,
		              "the message is flagged compressed but grpc-encoding names none");
	else if (c->msg_len > GRPCX_MAX_MSG)
		respond_error(h, c, 200, GRPCX_RESOURCE_EXHAUSTED,
		              "the request message is larger than 64 MiB");
}

/* Grow c->req for len more bytes, within the connection's and the process's budgets. */
static int req_reserve(struct h2conn *h, struct grpcx_call *c, size_t len)
{
	size_t need = c->req_len + len, cap, add;
	uint8_t *p;

	if (need <= c->req_cap)
		return 0;
	if (need > (size_t)GRPCX_MAX_MSG + GRPCX_WIRE_PREFIX_LEN) {
		respond_error(h, c, 200, GRPCX_RESOURCE_EXHAUSTED,
		              "the request message is larger than 64 MiB");
		return -1;
	}
	/* doubling, never past the size the prefix announced: the budget counts capacity, so
	 * it must follow bytes received, not a length a client merely claims */
	cap = c->req_cap ? c->req_cap * 2 : 1024;
	if (c->has_prefix && cap > GRPCX_WIRE_PREFIX_LEN + (size_t)c->msg_len)
		cap = GRPCX_WIRE_PREFIX_LEN + (size_t)c->msg_len;
	if (cap < need)
		cap = need;
	add = cap - c->req_cap;
	if (h->buffered + add > CONN_BUDGET ||
	    __atomic_add_fetch(&proc_buffered, add, __ATOMIC_RELAXED) > PROC_BUDGET) {
		if (h->buffered + add <= CONN_BUDGET)
			__atomic_sub_fetch(&proc_buffered, add, __ATOMIC_RELAXED);
		log_warn_ratelimited("grpc: request bytes over the buffering budget; refusing a "
		                     "call with RESOURCE_EXHAUSTED");
		respond_error(h, c, 200, GRPCX_RESOURCE_EXHAUSTED,
		              "the server is buffering too many request bytes; retry later");
		return -1;
	}
	if ((p = realloc(c->req, cap)) == NULL) {
		__atomic_sub_fetch(&proc_buffered, add, __ATOMIC_RELAXED);
		respond_error(h, c, 200, GRPCX_RESOURCE_EXHAUSTED, "out of memory");
		return -1;
	}
	h->buffered += add;
	c->req = p;
	c->req_cap = cap;
	return 0;
}

static int on_data_chunk(nghttp2_session *ss, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
	struct h2conn *h = user;
	struct grpcx_call *c = nghttp2_session_get_stream_user_data(ss, id);

	(void)flags;
	if (c == NULL || c->answered || c->bad)
		return 0; /* discarded; nghttp2 still opens the flow-control window */
	if (req_reserve(h, c, len) < 0)
		return 0;
	memcpy(c->req + c->req_len, data, len);
	c->req_len += len;
	if (!c->has_prefix)
		check_prefix(h, c);
	return 0;
}

/* END_STREAM: one whole message, or an answer saying what is wrong; else answered by the
 * method's try handler here, or to a worker. */
static void request_done(struct h2conn *h, struct grpcx_call *c)
{
	if (c->answered)
		return;
	if (c->req_len == 0) {
		respond_error(h, c, 200, GRPCX_INVALID_ARGUMENT, "The request carried no message");
		return;
	}
	if (!c->has_prefix || c->req_len < GRPCX_WIRE_PREFIX_LEN + (size_t)c->msg_len) {
		respond_error(h, c, 200, GRPCX_INTERNAL, "the request ended inside its message");
		return;
	}
	if (c->req_len > GRPCX_WIRE_PREFIX_LEN + (size_t)c->msg_len) {
		respond_error(h, c, 200, GRPCX_UNIMPLEMENTED,
		              "a unary call carries exactly one request message");
		return;
	}
	h->buffered -= c->req_cap;
	c->dispatched = 1;
	if (grpcx_server_try(h->s, c) == 0) {
		respond(h, c); /* sent by the pump that follows this input */
		return;
	}
	__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED); /* the worker's */
	if (grpcx_server_dispatch(h->s, c))
		stall_arm(h->loop, h->s);
}

/* Rapid reset (CVE-2023-44487): a client opening and cancelling streams as fast as it can. */
static void count_reset(struct h2conn *h)
{
	int64_t now = now_ms();

	if (now - h->rst_start >= 1000) {
		h->rst_start = now;
		h->rst_count = 0;
	}
	if (++h->rst_count == RST_PER_SEC + 1) {
		log_warn_ratelimited("grpc: a client reset more than %d streams in a second; "
		                     "closing its connection",
		                     RST_PER_SEC);
		nghttp2_session_terminate_session(h->ss, NGHTTP2_ENHANCE_YOUR_CALM);
	}
}

static int on_frame_recv(nghttp2_session *ss, const nghttp2_frame *fr, void *user)
{
	struct h2conn *h = user;
	struct grpcx_call *c;

	switch (fr->hd.type) {
	case NGHTTP2_HEADERS:
		c = nghttp2_session_get_stream_user_data(ss, fr->hd.stream_id);
		if (c == NULL)
			break;
		if (fr->headers.cat == NGHTTP2_HCAT_REQUEST)
			headers_done(h, c);
		if (fr->hd.flags & NGHTTP2_FLAG_END_STREAM)
			request_done(h, c);
		break;
	case NGHTTP2_DATA:
		c = nghttp2_session_get_stream_user_data(ss, fr->hd.stream_id);
		if (c != NULL && (fr->hd.flags & NGHTTP2_FLAG_END_STREAM))
			request_done(h, c);
		break;
	case NGHTTP2_RST_STREAM:
		count_reset(h);
		break;
	case NGHTTP2_PING:
		if (fr->hd.flags & NGHTTP2_FLAG_ACK)
			h->ping_out = 0;
		break;
	default:
		break;
	}
	return 0;
}

static int on_stream_close(nghttp2_session *ss, int32_t id, uint32_t code, void *user)
{
	struct grpcx_call *c = nghttp2_session_get_stream_user_data(ss, id);

	(void)code;
	if (c != NULL) {
		nghttp2_session_set_stream_user_data(ss, id, NULL);
		call_unlink(user, c);
	}
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* connections */

/* Each thread's scratch for direct writes (pump, write_now): grows to about WRITE_NOW_MAX
 * plus one frame and stays, so a connection holds no buffer between replies; freed when the
 * thread ends (scratch_key's destructor). */
static __thread uint8_t *scratch;
static __thread size_t scratch_cap;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_key_make(void)
{
	pthread_key_create(&scratch_key, free);
}

/* Send to h's plain socket, without waiting, what the session has (up to WRITE_NOW_MAX
 * bytes); the bytes the socket did not take are in *rest, rest_len of them (scratch, valid
 * until this thread's next call). Under sess_mu, with nothing of h waiting in the output,
 * so the bytes keep their order; a failed send leaves them all to the caller, whose
 * bufferevent then meets the error and reports it. -1: the session failed (pump ends it). */
static int send_direct(struct h2conn *h, const uint8_t **rest, size_t *rest_len)
{
	size_t len = 0;
	ssize_t n = 0;

	while (len < WRITE_NOW_MAX) {
		const uint8_t *data;
		ssize_t k = nghttp2_session_mem_send(h->ss, &data);

		if (k < 0)
			return -1;
		if (k == 0)
			break;
		if (len + (size_t)k > scratch_cap) {
			size_t cap = len + (size_t)k + 4096;
			uint8_t *p = realloc(scratch, cap);

			if (p == NULL)
				return -1;
			scratch = p;
			scratch_cap = cap;
			pthread_once(&scratch_once, scratch_key_make);
			pthread_setspecific(scratch_key, p);
		}
		memcpy(scratch + len, data, (size_t)k);
		len += (size_t)k;
	}
	if (len > 0)
		n = send(h->fd, scratch, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0)
		n = 0;
	*rest = scratch + n;
	*rest_len = len - (size_t)n;
	return 0;
}

/* Move what the session wants to send into the output, up to OUT_HIGH ahead of the socket;
 * on a plain socket with an empty output, the first WRITE_NOW_MAX bytes go to the socket
 * directly (no write event to arm and disarm: two epoll_ctl and a loop turn less per reply).
 * 1: the session is over (done() must follow). */
static int pump(struct h2conn *h)
{
	struct evbuffer *out = bufferevent_get_output(h->bev);

	if (h->broken) {
		log_warn("grpc: a reply could not be written whole (out of memory); the "
		         "connection is closed");
		return 1;
	}
	if (h->pend != NULL) { /* a worker's rest (write_now) goes first */
		evbuffer_add(out, h->pend, h->pend_len);
		free(h->pend);
		h->pend = NULL;
		h->pend_len = 0;
	}
	if (h->fd >= 0 && evbuffer_get_length(out) == 0) {
		const uint8_t *rest;
		size_t rest_len;

		if (send_direct(h, &rest, &rest_len) < 0) {
			log_debug("grpc: HTTP/2 send failed");
			return 1;
		}
		evbuffer_add(out, rest, rest_len);
	}
	while (evbuffer_get_length(out) < OUT_HIGH) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(h->ss, &data);

		if (n < 0) {
			log_debug("grpc: HTTP/2 send: %s", nghttp2_strerror((int)n));
			return 1;
		}
		if (n == 0)
			break;
		evbuffer_add(out, data, (size_t)n);
	}
	return !nghttp2_session_want_read(h->ss) && !nghttp2_session_want_write(h->ss);
}

struct h2conn *h2conn_new(struct grpcx_server *s, struct h2loop *l, struct bufferevent *bev,
                          X509 *peer, void (*done)(void *ctx), void *ctx)
{
	struct h2conn *h = calloc(1, sizeof(*h));
	nghttp2_settings_entry iv[] = {
	    {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS},
	    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST},
	    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
	};

	if (h == NULL)
		return NULL;
	h->s = s;
	h->loop = l;
	h->bev = bev;
	h->done = done;
	h->ctx = ctx;
	h->ping_sent = h->rst_start = now_ms();
	h->fd = -1;
	if (nghttp2_session_server_new2(&h->ss, l->cbs, h, l->opt) != 0) {
		free(h);
		return NULL;
	}
	if (nghttp2_submit_settings(h->ss, NGHTTP2_FLAG_NONE, iv, 3) != 0 ||
	    nghttp2_session_set_local_window_size(h->ss, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) != 0) {
		nghttp2_session_del(h->ss);
		free(h);
		return NULL;
	}
	if (peer != NULL && X509_up_ref(peer) == 1)
		h->peer = peer;
	return h;
}

/* The loop's entry points below hold sess_mu while they work on the session and call done()
 * only after releasing it (done may free the connection, and h2conn_free takes it again). */
static void sess_lock(struct h2conn *h)
{
	pthread_mutex_lock(&h->loop->sess_mu);
}

/* Release sess_mu; when the session is over, tell the front. */
static void sess_unlock(struct h2conn *h, int over)
{
	if (over)
		h->over = 1;
	pthread_mutex_unlock(&h->loop->sess_mu);
	if (over)
		h->done(h->ctx);
}

/* Feed the session len bytes from the client: 0, or -1 when the client broke HTTP/2 in a
 * way the session cannot go on from (then it is terminated: pump sends the GOAWAY). */
static int feed(struct h2conn *h, const uint8_t *data, size_t len)
{
	ssize_t n = nghttp2_session_mem_recv(h->ss, data, len);

	if (n >= 0)
		return 0;
	log_debug("grpc: HTTP/2 from a client: %s", nghttp2_strerror((int)n));
	nghttp2_session_terminate_session(
	    h->ss, n == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR);
	return -1;
}

/* Feed the session what the front read into bev; 1: the session is over. */
static int input(struct h2conn *h)
{
	struct evbuffer *in = bufferevent_get_input(h->bev);
	size_t len;

	while ((len = evbuffer_get_contiguous_space(in)) > 0) {
		int bad = feed(h, evbuffer_pullup(in, (ssize_t)len), len);

		evbuffer_drain(in, len);
		if (bad) {
			pump(h);
			return 1;
		}
	}
	return pump(h);
}

void h2conn_input(struct h2conn *h)
{
	sess_lock(h);
	sess_unlock(h, input(h));
}

void h2conn_input_bytes(struct h2conn *h, const uint8_t *data, size_t len)
{
	int over;

	sess_lock(h);
	over = feed(h, data, len) < 0;
	over = pump(h) || over;
	sess_unlock(h, over);
}

void h2conn_output(struct h2conn *h)
{
	sess_lock(h);
	sess_unlock(h, pump(h));
}

void h2conn_goaway(struct h2conn *h)
{
	sess_lock(h);
	nghttp2_submit_goaway(h->ss, NGHTTP2_FLAG_NONE,
	                      nghttp2_session_get_last_proc_stream_id(h->ss), NGHTTP2_NO_ERROR,
	                      NULL, 0);
	sess_unlock(h, pump(h));
}

void h2conn_tick(struct h2conn *h, int64_t now)
{
	int over = 0;

	sess_lock(h);
	if (h->ping_out && now - h->ping_sent >= PING_TIMEOUT_MS) {
		log_debug("grpc: a client left a keepalive PING unanswered for %d ms; closing",
		          PING_TIMEOUT_MS);
		sess_unlock(h, 1);
		return;
	}
	if (!h->ping_out && now - h->ping_sent >= PING_EVERY_MS) {
		if (nghttp2_submit_ping(h->ss, NGHTTP2_FLAG_NONE, NULL) == 0) {
			h->ping_sent = now;
			h->ping_out = 1;
		}
		over = pump(h);
	}
	sess_unlock(h, over);
}

void h2conn_set_fd(struct h2conn *h, int fd)
{
	sess_lock(h);
	h->fd = fd;
	sess_unlock(h, 0);
}

void h2conn_free(struct h2conn *h)
{
	if (h == NULL)
		return;
	sess_lock(h);
	/* nghttp2_session_del calls no stream-close callbacks: release the calls here */
	while (h->calls) {
		struct grpcx_call *c = h->calls;

		nghttp2_session_set_stream_user_data(h->ss, c->stream_id, NULL);
		call_unlink(h, c);
	}
	nghttp2_session_del(h->ss);
	for (struct h2conn **pp = &h->loop->flush; h->flushing && *pp; pp = &(*pp)->fnext) {
		if (*pp == h) {
			*pp = h->fnext;
			break;
		}
	}
	pthread_mutex_unlock(&h->loop->sess_mu);
	X509_free(h->peer);
	free(h->pend);
	free(h);
}

/* ------------------------------------------------------------------------------------ */
/* the reply queue */

/* The loop: submit c's reply and send what the session has; drop the queue's reference. */
static void deliver(struct grpcx_call *c)
{
	struct h2conn *h;
	int over = 0;

	pthread_mutex_lock(&c->loop->sess_mu);
	h = c->conn;
	if (h != NULL && !c->closed) {
		respond(h, c);
		over = pump(h);
	}
	if (h != NULL)
		sess_unlock(h, over);
	else
		pthread_mutex_unlock(&c->loop->sess_mu);
	grpcx_call_unref(c); /* the queue's reference */
}

void h2loop_drain(struct h2loop *l)
{
	struct grpcx_call *c;

	pthread_mutex_lock(&l->mu);
	c = l->head;
	l->head = l->tail = NULL;
	l->armed = 0;
	pthread_mutex_unlock(&l->mu);
	while (c != NULL) {
		struct grpcx_call *next = c->next;

		deliver(c);
		c = next;
	}
	for (;;) { /* what workers' writes left to send (write_now) */
		struct h2conn *h;

		pthread_mutex_lock(&l->sess_mu);
		if ((h = l->flush) == NULL) {
			pthread_mutex_unlock(&l->sess_mu);
			break;
		}
		l->flush = h->fnext;
		h->fnext = NULL;
		h->flushing = 0;
		sess_unlock(h, pump(h));
	}
}

void h2loop_quiesce(struct h2loop *l)
{
	evtimer_del(l->stall);
}

/* Make the loop run h2loop_drain soon (one wake for many requests). */
static void wake(struct h2loop *l)
{
	int w;

	pthread_mutex_lock(&l->mu);
	w = !l->armed;
	l->armed = 1;
	pthread_mutex_unlock(&l->mu);
	if (w)
		event_active(l->ev, EV_READ, 0);
}

/* Worker thread: write c's reply to its connection now, without waking the loop, when the
 * loop is not working on its sessions (a trylock), the connection is a plain socket and
 * nothing of it waits to be written (so the bytes keep their order; the output's length is
 * read without the bufferevent's lock, but only the loop adds to it, under sess_mu, so 0
 * means empty). 1: c is answered (or has nobody to answer); what the socket did not take
 * waits in h->pend and the loop is woken to send it. 0: the loop must answer c. This saves
 * the loop's wake per reply (measured at 1 attester, alternated with the queue: grpc-as
 * 7.2-7.8 -> 5.8-6.5 and rvps 6.1-6.6 -> 4.4-4.6 voluntary switches per handshake). */
static int write_now(struct grpcx_call *c)
{
	struct h2loop *l = c->loop;
	struct h2conn *h;
	const uint8_t *left;
	size_t left_len;
	int rest;

	if (pthread_mutex_trylock(&l->sess_mu) != 0)
		return 0;
	h = c->conn;
	if (h == NULL || c->closed) {
		pthread_mutex_unlock(&l->sess_mu);
		return 1; /* nobody to answer */
	}
	if (h->fd < 0 || h->over || h->pend != NULL || h->flushing ||
	    evbuffer_get_length(bufferevent_get_output(h->bev)) > 0) {
		pthread_mutex_unlock(&l->sess_mu);
		return 0;
	}
	respond(h, c);
	if (send_direct(h, &left, &left_len) < 0)
		h->broken = 1;
	else if (left_len > 0 && (h->pend = malloc(left_len)) == NULL)
		h->broken = 1;
	else if (left_len > 0) {
		memcpy(h->pend, left, left_len);
		h->pend_len = left_len;
	}
	/* what the socket did not take, what the session still has (or failed with), a
	 * broken connection and the end of the session are the loop's */
	rest = h->broken || h->pend != NULL || nghttp2_session_want_write(h->ss) ||
	       !nghttp2_session_want_read(h->ss);
	if (rest) {
		h->flushing = 1;
		h->fnext = l->flush;
		l->flush = h;
	}
	pthread_mutex_unlock(&l->sess_mu);
	if (rest)
		wake(l);
	return 1;
}

static void on_replies(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	h2loop_drain(arg);
}

void h2loop_reply(struct grpcx_call *c)
{
	struct h2loop *l = c->loop;
	int w;

	if (write_now(c)) {
		grpcx_call_unref(c); /* the worker's reference */
		return;
	}
	c->next = NULL;
	pthread_mutex_lock(&l->mu);
	if (l->tail)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
	w = !l->armed;
	l->armed = 1;
	pthread_mutex_unlock(&l->mu);
	if (w)
		event_active(l->ev, EV_READ, 0);
}

struct h2loop *h2loop_new(struct event_base *base)
{
	struct h2loop *l = calloc(1, sizeof(*l));
	nghttp2_session_callbacks *cb;

	pthread_mutexattr_t ma;

	if (l == NULL)
		return NULL;
	pthread_mutex_init(&l->mu, NULL);
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
	pthread_mutex_init(&l->sess_mu, &ma);
	pthread_mutexattr_destroy(&ma);
	l->ev = event_new(base, -1, 0, on_replies, l);
	l->stall = evtimer_new(base, on_stall, l);
	if (l->ev == NULL || l->stall == NULL || nghttp2_option_new(&l->opt) != 0 ||
	    nghttp2_session_callbacks_new(&l->cbs) != 0) {
		h2loop_free(l);
		return NULL;
	}
	/* floods of SETTINGS or PINGs make acks nobody reads: nghttp2 stops at these */
	nghttp2_option_set_max_outbound_ack(l->opt, 1000);
	nghttp2_option_set_max_settings(l->opt, 32);
	nghttp2_option_set_max_deflate_dynamic_table_size(l->opt, 4096);
	cb = l->cbs;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	return l;
}

void h2loop_free(struct h2loop *l)
{
	if (l == NULL)
		return;
	while (l->head) {
		struct grpcx_call *c = l->head;

		l->head = c->next;
		grpcx_call_unref(c);
	}
	if (l->ev)
		event_free(l->ev);
	if (l->stall)
		event_free(l->stall);
	if (l->opt)
		nghttp2_option_del(l->opt);
	if (l->cbs)
		nghttp2_session_callbacks_del(l->cbs);
	pthread_mutex_destroy(&l->mu);
	pthread_mutex_destroy(&l->sess_mu);
	free(l);
}
