/*
 * grpcx client: unary gRPC calls over HTTP/2 of our own, on libnghttp2 and OpenSSL (see
 * grpcx.h).
 *
 * Why not gRPC core: its client hands every call to completion queues and executor threads
 * (futex and epoll round trips for each), and on a 2-core machine that hand-off was a large
 * share of the KBS's and grpc-as's CPU per attestation. Here the calling thread does the whole
 * exchange itself: it checks a connection out of the client's pool (or dials one), writes
 * HEADERS + one DATA frame, and reads until the stream closes, on a non-blocking socket
 * driven by poll() with the call's deadline as the only clock. No thread, no queue, no
 * hand-off; the pool's mutex is held only to push or pop a connection.
 *
 * A connection serves one call at a time (exclusive while checked out), so nothing is shared
 * between calls but the pool list. Idle connections stay open (at most POOL_MAX_IDLE); before
 * reuse, pending frames are read without waiting: a PING is answered, a GOAWAY or EOF
 * discards the connection. A dead peer fails the call at once with UNAVAILABLE (connect is
 * refused), and a restarted one is reached by the next call: there is no backoff state.
 *
 * Retry: only when the server cannot have seen the call — a pooled connection found dead
 * before any byte of the request was written, or the stream refused (REFUSED_STREAM, or a
 * GOAWAY below our stream id) — and only once, on a fresh connection. A unary call may not be
 * idempotent, so a connection lost later fails the call with UNAVAILABLE.
 *
 * Windows: 16 MiB for the stream and the connection, so a response up to that size needs no
 * WINDOW_UPDATE round trip. The byte-level parsing of what the server sends (message prefix,
 * grpc-status, grpc-message) is in grpcx_wire.c, fuzzed on its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "grpcx.h"
#include "grpcx_stream.h"
#include "grpcx_tls.h"
#include "grpcx_wire.h"

#define POOL_MAX_IDLE 32
#define CONNECT_TIMEOUT_MS 5000 /* connect + TLS handshake, within the call's deadline */
#define READ_CHUNK 16384
#define WBUF_SIZE sizeof(((struct h2conn *)0)->wbuf)

/* One HTTP/2 connection. Owned by the pool while idle, by one call while checked out. */
struct h2conn {
	int fd;
	SSL *ssl; /* NULL for plaintext */
	nghttp2_session *ng;
	uint8_t wbuf[4096]; /* small frames gathered for one write: wbuf[woff..wlen) */
	size_t wlen, woff;
	const uint8_t *out; /* a larger frame from nghttp2_session_mem_send, after wbuf */
	size_t out_len;
	struct grpcx_stream *call; /* the call in progress; NULL while idle */
	int goaway;                /* GOAWAY received: no new streams */
	int32_t goaway_last;       /* its last_stream_id */
	int broken;                /* EOF, I/O or protocol error: never reused (why says what) */
	int tls_refused; /* an OpenSSL error after the handshake (an alert from the server) */
	int wrote;       /* bytes written since the current call began */
	int frames;      /* frames received in the connection's life */
	char why[256];
	struct h2conn *next; /* idle list link, guarded by the client's mu */
};

struct grpcx_client {
	struct grpcx_target t;
	SSL_CTX *ssl_ctx; /* TLS links: built once, shared by the connections */
	/* TLS material kept to ask grpcx_tls_probe when a failure explains nothing */
	char *target, *ca_pem, *cert_pem, *key_pem;
	nghttp2_session_callbacks *cbs;
	nghttp2_option *opt;
	pthread_mutex_t mu;  /* guards idle and nidle only */
	struct h2conn *idle; /* LIFO: the most recently used connection first */
	int nidle;
	char *bearer; /* "Bearer <token>" sent as authorization, or NULL (wiped) */
};

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------------------ */
/* socket I/O: >0 bytes moved, 0 would block, -1 the connection is broken (why set) */

static int conn_break(struct h2conn *k, const char *fmt, const char *arg)
{
	if (!k->broken) {
		k->broken = 1;
		snprintf(k->why, sizeof(k->why), fmt, arg);
	}
	return -1;
}

static ssize_t ssl_io_result(struct h2conn *k, int r, int writing)
{
	int e = SSL_get_error(k->ssl, r);

	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		return conn_break(k, "the server closed the connection%s", "");
	case SSL_ERROR_SYSCALL:
		return conn_break(k, "%s",
		                  errno ? strerror(errno) : "the server closed the connection");
	default:
		k->tls_refused = 1;
		conn_break(k, "the server refused the TLS session: %s", grpcx_tls_reason());
		ERR_clear_error();
		(void)writing;
		return -1;
	}
}

static ssize_t conn_read(struct h2conn *k, uint8_t *buf, size_t len)
{
	ssize_t n;

	if (k->ssl) {
		ERR_clear_error();
		int r = SSL_read(k->ssl, buf, (int)len);
		return r > 0 ? r : ssl_io_result(k, r, 0);
	}
	n = recv(k->fd, buf, len, 0);
	if (n > 0)
		return n;
	if (n == 0)
		return conn_break(k, "the server closed the connection%s", "");
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	return conn_break(k, "%s", strerror(errno));
}

static ssize_t conn_write(struct h2conn *k, const uint8_t *buf, size_t len)
{
	ssize_t n;

	if (k->ssl) {
		ERR_clear_error();
		int r = SSL_write(k->ssl, buf, len > 1u << 30 ? 1 << 30 : (int)len);
		return r > 0 ? r : ssl_io_result(k, r, 1);
	}
	n = send(k->fd, buf, len, MSG_NOSIGNAL);
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	return conn_break(k, "%s", strerror(errno));
}

/* ------------------------------------------------------------------------------------ */
/* the session pump */

/* Writes what nghttp2 has to send, without waiting: 0 all written, 1 the socket is full,
 * -1 broken. nghttp2 hands over one frame at a time; small frames are gathered in wbuf so
 * that a whole request (HEADERS + DATA, plus the preface on a new connection) leaves in one
 * write, and one TCP segment. A frame that does not fit goes out from nghttp2's own buffer
 * after wbuf. */
static int conn_flush(struct h2conn *k)
{
	for (;;) {
		ssize_t n;

		while (k->out_len == 0 && k->wlen < WBUF_SIZE) {
			const uint8_t *p;

			n = nghttp2_session_mem_send(k->ng, &p);
			if (n < 0)
				return conn_break(k, "HTTP/2 error: %s", nghttp2_strerror((int)n));
			if (n == 0)
				break;
			if ((size_t)n <= WBUF_SIZE - k->wlen) {
				memcpy(k->wbuf + k->wlen, p, (size_t)n);
				k->wlen += (size_t)n;
			} else {
				k->out = p;
				k->out_len = (size_t)n;
			}
		}
		if (k->woff < k->wlen) {
			n = conn_write(k, k->wbuf + k->woff, k->wlen - k->woff);
		} else if (k->out_len > 0) {
			n = conn_write(k, k->out, k->out_len);
		} else {
			k->wlen = k->woff = 0;
			return 0;
		}
		if (n < 0)
			return -1;
		if (n == 0)
			return 1;
		k->wrote = 1;
		if (k->woff < k->wlen) {
			k->woff += (size_t)n;
			if (k->woff == k->wlen)
				k->wlen = k->woff = 0;
		} else {
			k->out += n;
			k->out_len -= (size_t)n;
		}
	}
}

/* Reads what has arrived, without waiting, into nghttp2: 0 nothing more now, -1 broken. */
static int conn_drain(struct h2conn *k)
{
	uint8_t buf[READ_CHUNK];

	for (;;) {
		ssize_t n = conn_read(k, buf, sizeof(buf)), used;

		if (n <= 0)
			return (int)n;
		used = nghttp2_session_mem_recv(k->ng, buf, (size_t)n);
		if (used < 0)
			return conn_break(k, "HTTP/2 error from the server: %s",
			                  nghttp2_strerror((int)used));
		if ((size_t)n < sizeof(buf) && (k->ssl == NULL || SSL_pending(k->ssl) == 0))
			return 0;
	}
}

static int call_done(const struct h2conn *k)
{
	return k->call == NULL || k->call->closed || k->call->failed;
}

/* Runs the session until the call is done: 0, -1 broken, -2 the deadline (ms, < 0: none)
 * passed. */
static int conn_pump(struct h2conn *k, long deadline)
{
	for (;;) {
		struct pollfd p = {.fd = k->fd, .events = POLLIN};
		int fl, wait;

		fl = conn_flush(k);
		if (fl < 0)
			return -1;
		if (call_done(k))
			return 0;
		if (fl == 0 && !nghttp2_session_want_read(k->ng))
			return conn_break(k, "the server ended the HTTP/2 session%s", "");
		if (k->ssl && SSL_pending(k->ssl) > 0) {
			if (conn_drain(k) < 0)
				return -1;
			continue;
		}
		if (fl == 1)
			p.events |= POLLOUT;
		if (deadline < 0) {
			wait = -1;
		} else {
			long left = deadline - now_ms();
			if (left <= 0)
				return -2;
			wait = left > 60000 ? 60000 : (int)left;
		}
		if (poll(&p, 1, wait) < 0 && errno != EINTR)
			return conn_break(k, "poll: %s", strerror(errno));
		if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && conn_drain(k) < 0)
			return -1;
	}
}

/* ------------------------------------------------------------------------------------ */
/* nghttp2 callbacks (user_data is the h2conn) */

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	struct h2conn *k = ud;
	struct grpcx_stream *call = k->call;

	if (call == NULL || f->hd.type != NGHTTP2_HEADERS || f->hd.stream_id != call->stream_id)
		return 0;
	grpcx_stream_header(call, name, namelen, value, valuelen);
	return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t stream_id, const uint8_t *data,
                   size_t len, void *ud)
{
	struct h2conn *k = ud;
	struct grpcx_stream *call = k->call;

	if (call == NULL || stream_id != call->stream_id)
		return 0;
	grpcx_stream_data(s, call, data, len);
	return 0;
}

static int on_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct h2conn *k = ud;

	k->frames++;
	if (f->hd.type == NGHTTP2_GOAWAY) {
		k->goaway = 1;
		k->goaway_last = f->goaway.last_stream_id;
	}
	return 0;
}

static int on_close(nghttp2_session *s, int32_t stream_id, uint32_t code, void *ud)
{
	struct h2conn *k = ud;

	if (k->call != NULL && stream_id == k->call->stream_id) {
		k->call->closed = 1;
		k->call->h2_error = code;
	}
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* connections */

static void conn_free(struct h2conn *k)
{
	if (k == NULL)
		return;
	nghttp2_session_del(k->ng);
	if (k->ssl) {
		SSL_set_quiet_shutdown(k->ssl, 1);
		SSL_free(k->ssl);
	}
	if (k->fd >= 0)
		close(k->fd);
	free(k);
}

/* Connected non-blocking TCP socket, or -1 with *why. */
static int dial(const struct grpcx_target *t, long until, char *why, size_t wl)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG}, *ai, *a;
	int fd = -1, rc, one = 1;

	rc = getaddrinfo(t->host, t->port, &hints, &ai);
	if (rc != 0) {
		snprintf(why, wl, "cannot resolve the server's host name %.120s: %s", t->host,
		         gai_strerror(rc));
		return -1;
	}
	snprintf(why, wl, "cannot connect: no address");
	for (a = ai; a != NULL; a = a->ai_next) {
		struct pollfd p = {.events = POLLOUT};
		int soerr = 0, left;
		socklen_t sl = sizeof(soerr);

		fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		            a->ai_protocol);
		if (fd < 0) {
			snprintf(why, wl, "cannot connect: %s", strerror(errno));
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS) {
			p.fd = fd;
			left = (int)(until - now_ms());
			rc = left > 0 ? poll(&p, 1, left) : 0;
			if (rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 &&
			    soerr == 0)
				break;
			errno = rc == 0 ? ETIMEDOUT : soerr ? soerr : errno;
		}
		snprintf(why, wl, "cannot connect: %s", strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* TLS handshake within `until`: 0, or -1 with why. */
static int tls_handshake(struct grpcx_client *c, struct h2conn *k, long until, char *why, size_t wl)
{
	k->ssl = grpcx_tls_conn_new(c->ssl_ctx, &c->t, k->fd, why, wl);
	if (k->ssl == NULL)
		return -1;
	for (;;) {
		struct pollfd p = {.fd = k->fd};
		int r, e, left;

		ERR_clear_error();
		r = SSL_connect(k->ssl);
		if (r == 1)
			break;
		e = SSL_get_error(k->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			p.events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
			left = (int)(until - now_ms());
			if (left <= 0 || poll(&p, 1, left) == 0) {
				snprintf(why, wl, "the TLS handshake did not complete in time");
				return -1;
			}
			continue;
		}
		grpcx_tls_handshake_why(k->ssl, e, why, wl);
		return -1;
	}
	return grpcx_tls_alpn_h2(k->ssl, why, wl);
}

static int session_new(struct grpcx_client *c, struct h2conn *k)
{
	if (nghttp2_session_client_new2(&k->ng, c->cbs, k, c->opt) != 0)
		return -1;
	return grpcx_stream_session_setup(k->ng);
}

/* A new connection (TCP, TLS, HTTP/2 preface queued), or NULL with err (code set). */
static struct h2conn *conn_open(struct grpcx_client *c, long deadline, struct err *err)
{
	long until = now_ms() + CONNECT_TIMEOUT_MS;
	struct h2conn *k;
	char why[256];

	if (deadline >= 0 && deadline < until)
		until = deadline;
	k = calloc(1, sizeof(*k));
	if (k == NULL) {
		err_setc(err, GRPCX_UNAVAILABLE, "out of memory");
		return NULL;
	}
	k->goaway_last = -1;
	k->fd = dial(&c->t, until, why, sizeof(why));
	if (k->fd < 0)
		goto fail;
	if (c->ssl_ctx != NULL && tls_handshake(c, k, until, why, sizeof(why)) < 0) {
		if (deadline < 0 || now_ms() < deadline) {
			conn_free(k);
			err_setc(err, GRPCX_UNAVAILABLE, "TLS connection failed: %s", why);
			return NULL;
		}
		goto fail;
	}
	if (session_new(c, k) < 0) {
		snprintf(why, sizeof(why), "cannot set up the HTTP/2 session");
		goto fail;
	}
	return k;
fail:
	conn_free(k);
	if (deadline >= 0 && now_ms() >= deadline)
		err_setc(err, GRPCX_DEADLINE_EXCEEDED, "Deadline exceeded while connecting: %s",
		         why);
	else
		err_setc(err, GRPCX_UNAVAILABLE, "The server is unavailable: %s", why);
	return NULL;
}

/* An idle connection may have been closed by the server or have frames waiting (PING,
 * SETTINGS, GOAWAY): process them without waiting. 0 when it can carry a new stream. */
static int conn_refresh(struct h2conn *k)
{
	if (conn_drain(k) < 0 || conn_flush(k) < 0)
		return -1;
	if (k->broken || k->goaway || !nghttp2_session_want_read(k->ng) ||
	    nghttp2_session_get_next_stream_id(k->ng) > (1u << 30))
		return -1;
	return 0;
}

static struct h2conn *pool_get(struct grpcx_client *c)
{
	for (;;) {
		struct h2conn *k;

		pthread_mutex_lock(&c->mu);
		k = c->idle;
		if (k != NULL) {
			c->idle = k->next;
			c->nidle--;
		}
		pthread_mutex_unlock(&c->mu);
		if (k == NULL || conn_refresh(k) == 0)
			return k;
		conn_free(k);
	}
}

static void pool_put(struct grpcx_client *c, struct h2conn *k)
{
	k->call = NULL;
	pthread_mutex_lock(&c->mu);
	if (c->nidle < POOL_MAX_IDLE) {
		k->next = c->idle;
		c->idle = k;
		c->nidle++;
		k = NULL;
	}
	pthread_mutex_unlock(&c->mu);
	conn_free(k);
}

/* ------------------------------------------------------------------------------------ */
/* one call */

enum { RETRY = -100 };

static int submit(struct grpcx_client *c, struct h2conn *k, const char *method,
                  struct grpcx_stream *call, long deadline)
{
	struct grpcx_stream_hdrs h = {
	    .tls = c->ssl_ctx != NULL, .authority = c->t.authority, .bearer = c->bearer};

	return grpcx_stream_submit(k->ng, call, &h, method,
	                           deadline >= 0 ? deadline - now_ms() : -1, NULL);
}

/* Why a connection failed during a call, as the caller reads it. */
static int conn_lost(struct grpcx_client *c, struct h2conn *k, struct err *err)
{
	char why[512];

	if (c->ssl_ctx != NULL && k->frames == 0) {
		/* the TLS session itself was refused (TLS 1.3 alerts come after the handshake) */
		if (!k->tls_refused && grpcx_tls_probe(c->target, c->ca_pem, c->cert_pem,
		                                       c->key_pem, 2000, why, sizeof(why)) == 1)
			return grpcx_status_set(err, GRPCX_UNAVAILABLE, "TLS connection failed: %s",
			                        why);
		if (k->tls_refused)
			return grpcx_status_set(
			    err, GRPCX_UNAVAILABLE, "TLS connection failed: %s%s", k->why,
			    c->cert_pem ? "" : " (no client certificate is configured)");
	}
	return grpcx_status_set(err, GRPCX_UNAVAILABLE, "The connection to the server was lost: %s",
	                        k->why);
}

/* One attempt on connection k. Returns a status, -1, or RETRY when the server cannot have
 * seen the call (pooled only). *reuse says whether k may go back to the pool. */
static int call_on(struct grpcx_client *c, struct h2conn *k, int pooled, const char *method,
                   struct grpcx_stream *call, long deadline, uint8_t **resp, size_t *resp_len,
                   int *reuse, struct err *err)
{
	int rc;

	*reuse = 0;
	k->call = call;
	k->wrote = 0;
	if (submit(c, k, method, call, deadline) < 0) {
		if (pooled)
			return RETRY;
		return grpcx_status_set(err, GRPCX_UNAVAILABLE, "Cannot start an HTTP/2 stream");
	}
	rc = conn_pump(k, deadline);
	if (rc == -2) {
		nghttp2_submit_rst_stream(k->ng, NGHTTP2_FLAG_NONE, call->stream_id,
		                          NGHTTP2_CANCEL);
		conn_flush(k);
		return grpcx_status_set(err, GRPCX_DEADLINE_EXCEEDED,
		                        "Deadline exceeded: no answer from the server in time");
	}
	if (call->closed && call->h2_error == NGHTTP2_REFUSED_STREAM)
		return pooled ? RETRY
		              : grpcx_status_set(err, GRPCX_UNAVAILABLE,
		                                 "The server refused the call (REFUSED_STREAM)");
	if (!call->closed && k->goaway && call->stream_id > k->goaway_last && pooled)
		return RETRY;
	if (rc == -1) {
		if (pooled && !k->wrote)
			return RETRY;
		if (!call->closed)
			return conn_lost(c, k, err);
	}
	rc = grpcx_stream_result(call, resp, resp_len, err);
	*reuse = !k->broken && !k->goaway && !call->failed && call->h2_error == NGHTTP2_NO_ERROR;
	return rc;
}

int grpcx_call(struct grpcx_client *c, const char *method, const uint8_t *req, size_t req_len,
               uint8_t **resp, size_t *resp_len, int timeout_ms, struct err *err)
{
	long deadline = timeout_ms > 0 ? now_ms() + timeout_ms : -1;
	struct err local;
	int st = -1;

	if (err == NULL)
		err = &local;
	*resp = NULL;
	*resp_len = 0;
	err_clear(err);
	if (req_len > GRPCX_WIRE_MAX_MSG)
		return grpcx_status_set(
		    err, GRPCX_RESOURCE_EXHAUSTED,
		    "The request message of %zu bytes is larger than the limit of %u "
		    "bytes",
		    req_len, GRPCX_WIRE_MAX_MSG);
	for (int attempt = 0; attempt < 2; attempt++) {
		struct grpcx_stream call;
		struct h2conn *k = attempt == 0 ? pool_get(c) : NULL;
		int pooled = k != NULL, reuse;

		if (k == NULL && (k = conn_open(c, deadline, err)) == NULL)
			return err->code;
		grpcx_stream_init(&call, req, req_len);
		st = call_on(c, k, pooled, method, &call, deadline, resp, resp_len, &reuse, err);
		grpcx_stream_free(&call);
		k->call = NULL;
		if (reuse)
			pool_put(c, k);
		else
			conn_free(k);
		if (st != RETRY)
			break;
		err_clear(err);
		st = grpcx_status_set(err, GRPCX_UNAVAILABLE, "The server refused the call");
	}
	if (st != GRPCX_OK) {
		free(*resp);
		*resp = NULL;
		*resp_len = 0;
	}
	return st == RETRY ? GRPCX_UNAVAILABLE : st;
}

/* ------------------------------------------------------------------------------------ */
/* clients */

static struct grpcx_client *client_new(const char *target, struct err *err)
{
	struct grpcx_client *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		err_set(err, "out of memory");
		return NULL;
	}
	grpcx_tls_ignore_sigpipe();
	pthread_mutex_init(&c->mu, NULL);
	if (grpcx_target_parse(target, &c->t, err) < 0 || (c->target = strdup(target)) == NULL ||
	    nghttp2_session_callbacks_new(&c->cbs) != 0 || nghttp2_option_new(&c->opt) != 0) {
		if (c->target == NULL && err && err->msg[0] == '\0')
			err_set(err, "out of memory");
		grpcx_client_free(c);
		return NULL;
	}
	nghttp2_session_callbacks_set_on_header_callback(c->cbs, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c->cbs, on_data);
	nghttp2_session_callbacks_set_on_frame_recv_callback(c->cbs, on_frame);
	nghttp2_session_callbacks_set_on_stream_close_callback(c->cbs, on_close);
	return c;
}

struct grpcx_client *grpcx_client_new(const char *target, struct err *err)
{
	/* An https:// target is never dialled in plaintext: TLS with the system roots. */
	if (strncmp(target, "https://", 8) == 0)
		return grpcx_client_new_tls(target, NULL, NULL, NULL, err);
	return client_new(target, err);
}

struct grpcx_client *grpcx_client_new_tls(const char *target, const char *ca_pem,
                                          const char *cert_pem, const char *key_pem,
                                          struct err *err)
{
	struct grpcx_client *c = client_new(target, err);

	if (c == NULL)
		return NULL;
	c->t.tls = 1;
	c->ssl_ctx = grpcx_tls_client_ctx(ca_pem, cert_pem, key_pem, err);
	if (c->ssl_ctx == NULL) {
		grpcx_client_free(c);
		return NULL;
	}
	c->ca_pem = ca_pem ? strdup(ca_pem) : NULL;
	if (cert_pem && key_pem) {
		c->cert_pem = strdup(cert_pem);
		c->key_pem = strdup(key_pem);
	}
	return c;
}

int grpcx_client_set_bearer(struct grpcx_client *c, const char *token, struct err *err)
{
	return grpcx_bearer_set(&c->bearer, token, err);
}

void grpcx_client_free(struct grpcx_client *c)
{
	struct h2conn *k;

	if (c == NULL)
		return;
	while ((k = c->idle) != NULL) {
		c->idle = k->next;
		conn_free(k);
	}
	nghttp2_session_callbacks_del(c->cbs);
	nghttp2_option_del(c->opt);
	pthread_mutex_destroy(&c->mu);
	SSL_CTX_free(c->ssl_ctx);
	free(c->target);
	free(c->ca_pem);
	free(c->cert_pem);
	if (c->bearer) {
		OPENSSL_cleanse(c->bearer, strlen(c->bearer));
		free(c->bearer);
	}
	if (c->key_pem) {
		OPENSSL_cleanse(c->key_pem, strlen(c->key_pem));
		free(c->key_pem);
	}
	free(c);
}
