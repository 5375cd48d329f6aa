/*
 * grpcx_async: unary gRPC calls made from a libevent loop without blocking it (see grpcx.h).
 *
 * Why: the KBS's /attest used to hand each request to a worker thread that blocked in poll()
 * until the AS answered, then queued the reply back to the loop: about three context switches
 * per handshake and futex traffic on two queues. Here the loop that read the request sends the
 * call and is told, by its own events, when the answer is in: no thread, no queue, no lock.
 *
 * Shape: one client per loop, owned by that loop (nothing in it is touched by another thread).
 * It keeps one HTTP/2 connection that takes new calls, many streams on it at once; a
 * connection that got GOAWAY, broke, or ran out of stream ids takes no new calls and is freed
 * when its last call ends. Each call owns one event: its deadline timer, and, activated by
 * hand, the moment its outcome is delivered. Outcomes are always delivered from that event,
 * never from inside grpcx_async_call or an nghttp2 callback, so a callback may start calls or
 * free what it likes. A call's memory outlives its delivery while nghttp2 may still read its
 * request (a stream reset at the deadline stays open until the reset is sent): it is freed
 * when its stream closes or its connection goes, and counts against the budget until then,
 * which also keeps a connection's streams under the server's 100 (grpcx_h2.c). A call made
 * while its connection is still connecting waits on it, unsubmitted. The stream's request and
 * response rules are grpcx_stream.c's, shared with the blocking client (grpcx_client.c), and so is
 * the retry rule: a call is retried once, on a fresh connection, only when the server cannot have
 * seen it (it was queued on a connection already open, and that connection died before the call's
 * HEADERS were serialised, or the server refused the stream). A dead peer fails calls at once with
 * UNAVAILABLE; the next call dials again (no backoff state), so a restarted peer is reached.
 *
 * Host names are resolved on the loop by libevent's evdns (/etc/hosts, then the name servers,
 * search domains and options of /etc/resolv.conf), never by a blocking getaddrinfo. A
 * connection resolves as the first step of connecting, so the resolve counts within the calls'
 * deadlines and the connect timeout, and its failure fails them with UNAVAILABLE naming the
 * host. The addresses are kept and tried in order; they are looked up again for the next
 * connection after one fails (a Service IP or a pod IP may have moved), but at most once per
 * RESOLVE_MIN_MS, so a dead peer or a missing name costs the name servers one query a second,
 * not one per call.
 *
 * TLS (grpcx_async_new_tls) is OpenSSL on the same non-blocking socket: the handshake is a
 * step of connecting, resumed by whichever event SSL_connect asked for, and records are read
 * and written with SSL_read/SSL_write, a WANT_READ or WANT_WRITE waiting on that event. The
 * context, the check of the server's name, ALPN h2 and the words of a failure are
 * grpcx_tls.c's, the blocking client's own. What it lacks against the blocking client: a
 * connection that dies before its first frame without saying why is not probed again
 * (grpcx_tls_probe blocks), so it is reported as lost, not with the probe's sentence.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "grpcx.h"
#include "grpcx_stream.h"
#include "grpcx_tls.h"
#include "grpcx_wire.h"
#include "loopdns.h"

#define CONNECT_TIMEOUT_MS 5000 /* as grpcx_client.c's */
#define READ_CHUNK 16384
#define RESOLVE_MIN_MS LOOPDNS_MIN_MS /* a name is looked up at most once a second */
#define HOLD_MS 250                   /* see conn_handshake */
#define MAX_ADDRS 8                   /* addresses of a name kept and tried, in order */

struct aconn;

/* One call, from grpcx_async_call until its outcome is delivered. */
struct acall {
	struct grpcx_async *c;
	struct aconn *k;           /* the connection carrying its stream; NULL once settled */
	struct acall *prev, *next; /* c->calls */
	struct grpcx_stream st;
	uint8_t *req; /* owned copy of the request message */
	size_t req_len;
	char *method;
	long deadline;    /* monotonic ms, -1: none */
	struct event *ev; /* the deadline; activated by hand to deliver */
	int attempts;     /* streams started */
	int pooled;       /* put on a connection that was already open */
	int seen;         /* its HEADERS were serialised: the server may have seen it */
	int settled;      /* outcome known, waiting for ev to deliver it */
	int delivered;    /* cb has run; a is kept only until its stream closes */
	int retry;        /* settled as "start again on a fresh connection" */
	int status;
	struct err err;
	uint8_t *resp;
	size_t resp_len;
	grpcx_async_cb cb;
	void *arg;
};

/* One HTTP/2 connection of the client. */
struct aconn {
	struct grpcx_async *c;
	int fd;                               /* -1 while resolving */
	struct evdns_getaddrinfo_request *rq; /* the name being resolved for it, or NULL */
	int opening;                          /* inside conn_open: a resolve answered at once */
	int resolve_rc;                       /*   is taken up there, not in on_resolved */
	int ai;                               /* index in c->addrs of the address dialled */
	SSL *ssl;                             /* TLS links: on fd, NULL before the handshake */
	int handshaking;                      /* TCP up, SSL_connect not done */
	int tls_failed; /* the TLS session itself was refused: calls say "TLS connection failed" */
	int frames;     /* frames received: 0 means the server never spoke HTTP/2 */
	int cert_asked; /* the server asked for our certificate (CertificateRequest) */
	int hold;       /* write nothing until the server's first bytes (see conn_handshake) */
	struct event *rev, *wev,
	    *cto; /* readable; writable (connect, a full socket); connect deadline */
	nghttp2_session *ng;
	int connecting;
	int retired; /* GOAWAY, broken or out of stream ids: no new calls */
	int broken;
	int ncalls;
	char why[256];
	uint8_t *out; /* serialised frames not yet written: out[ooff..olen) */
	size_t olen, ooff, ocap;
	struct aconn *next; /* c->conns */
};

struct grpcx_async {
	struct event_base *base;
	struct grpcx_target t;
	struct evdns_base *dns; /* NULL: the host is an IP literal, addrs[0] for good */
	SSL_CTX *ssl_ctx;       /* TLS links (grpcx_tls_client_ctx), NULL: plaintext */
	int has_cert;           /* a client certificate is configured */
	struct sockaddr_storage addrs[MAX_ADDRS]; /* the host's addresses, tried in order */
	socklen_t alens[MAX_ADDRS];
	int naddrs;
	long resolved_at;      /* monotonic ms of the last answer or failure; -1: never */
	int stale;             /* a connection failed since: resolve again (rate bounded) */
	int lookups_cancelled; /* a lookup on dns was cancelled: loopdns_free defers its free */
	char resolve_why[256]; /* the last resolve failure, when naddrs is 0 */
	char *bearer;          /* "Bearer <token>" or NULL (wiped) */
	nghttp2_session_callbacks *cbs;
	struct aconn *cur;   /* takes new calls; NULL: dial one at the next call */
	struct aconn *conns; /* every connection, cur among them */
	struct acall *calls; /* every call not yet delivered */
	int inflight, max_inflight;
};

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ms_tv(long ms, struct timeval *tv)
{
	if (ms < 0)
		ms = 0;
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
}

/* ------------------------------------------------------------------------------------ */
/* calls: settle (outcome known) then deliver (from the call's event) */

static void call_detach(struct acall *a)
{
	struct aconn *k = a->k;

	if (k == NULL)
		return;
	k->ncalls--;
	a->k = NULL;
}

/* The outcome is known (status, err, resp filled): deliver it from the call's event. Its
 * stream is closed, never opened, or its connection is going. */
static void call_settle(struct acall *a)
{
	call_detach(a);
	a->settled = 1;
	event_del(a->ev);
	event_active(a->ev, EV_READ, 0);
}

static void call_fail(struct acall *a, int code, const char *fmt, const char *why)
{
	grpcx_status_set(&a->err, code, fmt, why);
	a->status = code;
	call_settle(a);
}

static void call_retry(struct acall *a)
{
	a->retry = 1;
	call_settle(a);
}

static void call_free(struct acall *a)
{
	struct grpcx_async *c = a->c;

	if (a->prev)
		a->prev->next = a->next;
	else
		c->calls = a->next;
	if (a->next)
		a->next->prev = a->prev;
	c->inflight--;
	grpcx_stream_free(&a->st);
	event_free(a->ev);
	if (a->req)
		OPENSSL_cleanse(a->req, a->req_len);
	free(a->req);
	free(a->method);
	free(a->resp);
	free(a);
}

static void call_deliver(struct acall *a)
{
	grpcx_async_cb cb = a->cb;
	void *arg = a->arg;
	uint8_t *resp = a->resp;
	size_t rl = a->resp_len;
	int status = a->status;
	struct err e = a->err;

	a->resp = NULL;
	a->delivered = 1;
	if (a->k == NULL)
		call_free(a);
	cb(arg, status, resp, rl, &e);
}

static int conn_flush(struct aconn *k);
static void conn_reap(struct aconn *k);
static int call_start(struct acall *a);

/* The call's event: its deadline passed, or its settled outcome is to be delivered. */
static void on_call_event(evutil_socket_t fd, short what, void *arg)
{
	struct acall *a = arg;
	struct aconn *k = a->k;

	if (!a->settled) { /* the deadline */
		a->settled = 1;
		if (k != NULL && k->connecting)
			grpcx_status_set(&a->err, GRPCX_DEADLINE_EXCEEDED,
			                 "Deadline exceeded while connecting: %s",
			                 "the connection did not complete in time");
		else
			grpcx_status_set(&a->err, GRPCX_DEADLINE_EXCEEDED,
			                 "Deadline exceeded: no answer from the server in time");
		a->status = GRPCX_DEADLINE_EXCEEDED;
		if (k != NULL && a->st.stream_id > 0 && !a->st.closed) {
			/* a stays on its stream until the reset closes it (on_close frees it) */
			nghttp2_submit_rst_stream(k->ng, NGHTTP2_FLAG_NONE, a->st.stream_id,
			                          NGHTTP2_CANCEL);
			if (conn_flush(k) == 0)
				conn_reap(k);
		} else {
			call_detach(a);
		}
		call_deliver(a);
		return;
	}
	if (a->retry) {
		a->retry = 0;
		a->settled = 0;
		if (call_start(a) == 0)
			return;
	}
	call_deliver(a);
}

/* ------------------------------------------------------------------------------------ */
/* connections */

/* The socket of the address being dialled, and its events. */
static void conn_close_fd(struct aconn *k)
{
	if (k->rev)
		event_free(k->rev);
	if (k->wev)
		event_free(k->wev);
	k->rev = k->wev = NULL;
	if (k->ssl) {
		SSL_set_quiet_shutdown(k->ssl, 1);
		SSL_free(k->ssl);
		k->ssl = NULL;
	}
	k->handshaking = 0;
	if (k->fd >= 0)
		close(k->fd);
	k->fd = -1;
}

static void conn_free(struct aconn *k)
{
	struct grpcx_async *c = k->c;

	for (struct aconn **p = &c->conns; *p != NULL; p = &(*p)->next)
		if (*p == k) {
			*p = k->next;
			break;
		}
	if (c->cur == k)
		c->cur = NULL;
	if (k->rq != NULL) { /* its callback comes later with EVUTIL_EAI_CANCEL and ignores k */
		evdns_getaddrinfo_cancel(k->rq);
		c->lookups_cancelled = 1;
	}
	conn_close_fd(k);
	if (k->cto)
		event_free(k->cto);
	nghttp2_session_del(k->ng);
	free(k->out);
	free(k);
}

/* A retired connection is freed once its last call has left it. */
static void conn_reap(struct aconn *k)
{
	if (k->retired && k->ncalls == 0)
		conn_free(k);
}

static void conn_retire(struct aconn *k)
{
	k->retired = 1;
	if (k->c->cur == k)
		k->c->cur = NULL;
}

/* The connection is dead: each call on it is retried (the server cannot have seen it) or
 * fails with UNAVAILABLE, saying why; then the connection is freed (k is gone on return). */
static void conn_die(struct aconn *k, const char *fmt, const char *arg)
{
	struct grpcx_async *c = k->c;
	int never_open = k->connecting;
	struct acall *a, *next;

	if (!k->broken) {
		k->broken = 1;
		snprintf(k->why, sizeof(k->why), fmt, arg);
	}
	c->stale = 1; /* the host's address may have moved */
	conn_retire(k);
	for (a = c->calls; a != NULL; a = next) {
		next = a->next;
		if (a->k != k)
			continue;
		if (a->settled) { /* delivered, or waiting for its event: only leaves */
			call_detach(a);
			if (a->delivered)
				call_free(a);
		} else if (a->pooled && !a->seen && a->attempts < 2) {
			call_retry(a);
		} else if (k->tls_failed) {
			call_fail(a, GRPCX_UNAVAILABLE, "TLS connection failed: %s", k->why);
		} else if (never_open) {
			call_fail(a, GRPCX_UNAVAILABLE, "The server is unavailable: %s", k->why);
		} else {
			call_fail(a, GRPCX_UNAVAILABLE, "The connection to the server was lost: %s",
			          k->why);
		}
	}
	conn_free(k);
}

/* An SSL_read or SSL_write that moved nothing: 0 when it waits for an event (a WANT_WRITE
 * arms the write event; the read event is always armed), -1 when the connection died (freed).
 * An OpenSSL error before the server's first frame is the TLS session refused (TLS 1.3
 * servers refuse a client certificate after the handshake), said as the blocking client does. */
static int conn_tls_stalled(struct aconn *k, int r)
{
	int e = SSL_get_error(k->ssl, r);
	char why[300];

	switch (e) {
	case SSL_ERROR_WANT_READ:
		return 0;
	case SSL_ERROR_WANT_WRITE:
		event_add(k->wev, NULL);
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		conn_die(k, "the server closed the connection%s", "");
		return -1;
	case SSL_ERROR_SYSCALL:
		conn_die(k, "%s", errno ? strerror(errno) : "the server closed the connection");
		return -1;
	default:
		k->tls_failed = k->frames == 0;
		snprintf(why, sizeof(why), "the server refused the TLS session: %s%s",
		         grpcx_tls_reason(),
		         k->tls_failed && !k->c->has_cert ? " (no client certificate is configured)"
		                                          : "");
		ERR_clear_error();
		conn_die(k, "%s", why);
		return -1;
	}
}

/* Writes out[ooff..olen) as far as the socket takes it: >0 bytes written, 0 it is full (the
 * event to wait on armed), -1 the connection died (freed). */
static ssize_t conn_send(struct aconn *k)
{
	size_t len = k->olen - k->ooff;
	ssize_t n;

	if (k->ssl) {
		int r;

		ERR_clear_error();
		errno = 0;
		r = SSL_write(k->ssl, k->out + k->ooff, len > 1u << 30 ? 1 << 30 : (int)len);
		return r > 0 ? r : conn_tls_stalled(k, r);
	}
	n = send(k->fd, k->out + k->ooff, len, MSG_NOSIGNAL);
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
		event_add(k->wev, NULL);
		return 0;
	}
	conn_die(k, "%s", strerror(errno));
	return -1;
}

/* Reads into buf: >0 bytes, 0 nothing yet, -1 the connection died (freed). */
static ssize_t conn_recv(struct aconn *k, uint8_t *buf, size_t len)
{
	ssize_t n;

	if (k->ssl) {
		int r;

		ERR_clear_error();
		errno = 0;
		r = SSL_read(k->ssl, buf, (int)len);
		if (r > 0)
			k->hold = 0;
		return r > 0 ? r : conn_tls_stalled(k, r);
	}
	n = recv(k->fd, buf, len, 0);
	if (n > 0)
		return n;
	if (n == 0) {
		conn_die(k, "the server closed the connection%s", "");
		return -1;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	conn_die(k, "%s", strerror(errno));
	return -1;
}

/* Writes what nghttp2 has to send, without waiting; a full socket arms the write event.
 * 0, or -1 when the connection died (and is freed). */
static int conn_flush(struct aconn *k)
{
	if (k->connecting || k->hold)
		return 0;
	for (;;) {
		const uint8_t *p;
		ssize_t n;

		if (k->ooff == k->olen) {
			k->ooff = k->olen = 0;
			while ((n = nghttp2_session_mem_send(k->ng, &p)) > 0) {
				if (k->olen + (size_t)n > k->ocap) {
					size_t cap = k->ocap ? k->ocap : 16384;
					while (cap < k->olen + (size_t)n)
						cap *= 2;
					uint8_t *o = realloc(k->out, cap);
					if (o == NULL) {
						conn_die(k, "%s", "out of memory");
						return -1;
					}
					k->out = o;
					k->ocap = cap;
				}
				memcpy(k->out + k->olen, p, (size_t)n);
				k->olen += (size_t)n;
			}
			if (n < 0) {
				conn_die(k, "HTTP/2 error: %s", nghttp2_strerror((int)n));
				return -1;
			}
			if (k->olen == 0)
				break;
		}
		n = conn_send(k);
		if (n <= 0)
			return (int)n;
		k->ooff += (size_t)n;
	}
	if (!nghttp2_session_want_read(k->ng) && !nghttp2_session_want_write(k->ng)) {
		conn_die(k, "the server ended the HTTP/2 session%s", "");
		return -1;
	}
	return 0;
}

/* Reads what has arrived into nghttp2, without waiting: 0, or -1 when the connection died. */
static int conn_drain(struct aconn *k)
{
	uint8_t buf[READ_CHUNK];

	for (;;) {
		ssize_t n = conn_recv(k, buf, sizeof(buf)), used;

		if (n <= 0)
			return (int)n;
		used = nghttp2_session_mem_recv(k->ng, buf, (size_t)n);
		if (used < 0) {
			conn_die(k, "HTTP/2 error from the server: %s",
			         nghttp2_strerror((int)used));
			return -1;
		}
		/* a short plaintext read emptied the socket; TLS reads until it wants more */
		if (k->ssl == NULL && (size_t)n < sizeof(buf))
			return 0;
	}
}

static void conn_handshake(struct aconn *k);

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct aconn *k = arg;

	if (k->handshaking) {
		conn_handshake(k);
		return;
	}
	if (conn_drain(k) < 0 || conn_flush(k) < 0)
		return;
	conn_reap(k);
}

static int call_submit(struct acall *a);

/* The calls that waited for the connection go out with its preface. */
static void on_connected(struct aconn *k)
{
	struct acall *a, *next;

	k->connecting = 0;
	event_del(k->cto);
	event_add(k->rev, NULL);
	for (a = k->c->calls; a != NULL; a = next) {
		next = a->next;
		if (a->k == k && !a->settled && a->st.stream_id == 0)
			call_submit(a);
	}
	conn_flush(k);
}

static int conn_dial(struct aconn *k, char *why, size_t wl);

/* One step of the TLS handshake, resumed by the event SSL_connect asked for; done, the
 * connection is open. A failure is the TLS session refused, said with the handshake's why. */
static void conn_handshake(struct aconn *k)
{
	struct timeval tv;
	char why[256];
	int r, e, hold;

	ERR_clear_error();
	r = SSL_connect(k->ssl);
	if (r == 1) {
		if (grpcx_tls_alpn_h2(k->ssl, why, sizeof(why)) < 0) {
			k->tls_failed = 1;
			conn_die(k, "%s", why);
			return;
		}
		k->handshaking = 0;
		/* TLS 1.3: a server that asked for our certificate judges it after the handshake.
		 * Bytes of ours it never reads would make its close a reset that loses its alert
		 * (the blocking client asks grpcx_tls_probe then): ours wait for its first record
		 * (a session ticket, its SETTINGS, or the alert), one round trip on such a
		 * connection only, and at most HOLD_MS from a server that sends none. */
		k->hold = k->cert_asked && SSL_version(k->ssl) >= TLS1_3_VERSION;
		hold = k->hold;
		on_connected(k); /* frees k when it dies, which a hold keeps it from */
		if (hold) {
			ms_tv(HOLD_MS, &tv);
			event_add(k->cto, &tv);
		}
		return;
	}
	e = SSL_get_error(k->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		event_add(e == SSL_ERROR_WANT_READ ? k->rev : k->wev, NULL);
		return;
	}
	grpcx_tls_handshake_why(k->ssl, e, why, sizeof(why));
	k->tls_failed = 1;
	conn_die(k, "%s", why);
}

/* A record from the server after the handshake (a TLS 1.3 session ticket, an alert) ends the
 * hold: the server has judged our certificate. */
static void on_tls_message(int write_p, int version, int type, const void *buf, size_t len,
                           SSL *ssl, void *arg)
{
	struct aconn *k = arg;

	if (!write_p && !k->handshaking && (type == SSL3_RT_HANDSHAKE || type == SSL3_RT_ALERT))
		k->hold = 0;
}

static int on_cert_request(SSL *ssl, void *arg)
{
	((struct aconn *)arg)->cert_asked = 1;
	return 1; /* go on with the context's certificate, or none */
}

/* TCP is up: plaintext is open, TLS starts its handshake. */
static void on_tcp_up(struct aconn *k)
{
	char why[256];
	int one = 1;

	setsockopt(k->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (k->c->ssl_ctx == NULL) {
		on_connected(k);
		return;
	}
	k->ssl = grpcx_tls_conn_new(k->c->ssl_ctx, &k->c->t, k->fd, why, sizeof(why));
	if (k->ssl == NULL) {
		conn_die(k, "%s", why);
		return;
	}
	SSL_set_cert_cb(k->ssl, on_cert_request, k);
	SSL_set_msg_callback(k->ssl, on_tls_message);
	SSL_set_msg_callback_arg(k->ssl, k);
	k->handshaking = 1;
	conn_handshake(k);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
	struct aconn *k = arg;

	if (k->handshaking) {
		conn_handshake(k);
		return;
	}
	if (k->connecting) {
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		char why[256];

		if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
			soerr = errno;
		if (soerr != 0) { /* the host's next address, if it has one */
			snprintf(why, sizeof(why), "cannot connect: %s", strerror(soerr));
			conn_close_fd(k);
			k->ai++;
			if (conn_dial(k, why, sizeof(why)) < 0)
				conn_die(k, "%s", why);
			return;
		}
		on_tcp_up(k);
		return;
	}
	/* an SSL_read may have waited for the socket to take a write */
	if (k->ssl != NULL && conn_drain(k) < 0)
		return;
	if (conn_flush(k) == 0)
		conn_reap(k);
}

/* The connect (resolve, TCP, TLS) took too long; or, open, a hold ran out (conn_handshake). */
static void on_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct aconn *k = arg;
	char why[256];

	if (!k->connecting) {
		k->hold = 0;
		if (conn_flush(k) == 0)
			conn_reap(k);
		return;
	}
	if (k->rq != NULL) {
		struct grpcx_async *c = k->c;

		snprintf(
		    why, sizeof(why),
		    "cannot resolve the server's host name %.120s: the name servers did not answer "
		    "in time",
		    c->t.host);
		/* a silent name server is an answer too: asked again after RESOLVE_MIN_MS, the
		 * addresses at hand (if any) used meanwhile */
		c->resolved_at = now_ms();
		if (c->naddrs == 0)
			snprintf(c->resolve_why, sizeof(c->resolve_why), "%s", why);
		conn_die(k, "%s", why);
	} else
		conn_die(k, "cannot connect: %s", strerror(ETIMEDOUT));
}

/* ---- nghttp2 callbacks: user_data is the aconn, stream user data the acall (or NULL once
 * the call has left: a deadline, a retry) */

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	struct acall *a = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);

	if (a != NULL && f->hd.type == NGHTTP2_HEADERS)
		grpcx_stream_header(&a->st, name, namelen, value, valuelen);
	return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t stream_id, const uint8_t *data,
                   size_t len, void *ud)
{
	struct acall *a = nghttp2_session_get_stream_user_data(s, stream_id);

	if (a != NULL)
		grpcx_stream_data(s, &a->st, data, len);
	return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	((struct aconn *)ud)->frames++;
	if (f->hd.type == NGHTTP2_GOAWAY)
		conn_retire(ud);
	return 0;
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct acall *a;

	if (f->hd.type == NGHTTP2_HEADERS &&
	    (a = nghttp2_session_get_stream_user_data(s, f->hd.stream_id)) != NULL)
		a->seen = 1;
	return 0;
}

static int on_close(nghttp2_session *s, int32_t stream_id, uint32_t code, void *ud)
{
	struct acall *a = nghttp2_session_get_stream_user_data(s, stream_id);

	if (a == NULL)
		return 0;
	a->st.closed = 1;
	a->st.h2_error = code;
	if (a->settled) { /* its deadline passed: the reset is out, the call leaves */
		call_detach(a);
		if (a->delivered)
			call_free(a);
		return 0;
	}
	if (code == NGHTTP2_REFUSED_STREAM) {
		if (a->pooled && a->attempts < 2) {
			call_retry(a);
			return 0;
		}
		call_fail(a, GRPCX_UNAVAILABLE, "The server refused the call (REFUSED_STREAM)%s",
		          "");
		return 0;
	}
	a->status = grpcx_stream_result(&a->st, &a->resp, &a->resp_len, &a->err);
	call_settle(a);
	return 0;
}

/* Connects to c->addrs[k->ai], or the next address that takes a connect(): 0, or -1 with why
 * (left as it was when no address is left to try). */
static int conn_dial(struct aconn *k, char *why, size_t wl)
{
	struct grpcx_async *c = k->c;

	for (; k->ai < c->naddrs; k->ai++) {
		const struct sockaddr *sa = (const struct sockaddr *)&c->addrs[k->ai];

		k->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (k->fd < 0) {
			snprintf(why, wl, "cannot connect: %s", strerror(errno));
			continue;
		}
		k->rev = event_new(c->base, k->fd, EV_READ | EV_PERSIST, on_readable, k);
		k->wev = event_new(c->base, k->fd, EV_WRITE, on_writable, k);
		if (k->rev == NULL || k->wev == NULL) {
			snprintf(why, wl, "out of memory");
			conn_close_fd(k);
			return -1;
		}
		/* even a connect that completes at once is taken up by on_writable */
		if (connect(k->fd, sa, c->alens[k->ai]) == 0 || errno == EINPROGRESS) {
			event_add(k->wev, NULL);
			return 0;
		}
		snprintf(why, wl, "cannot connect: %s", strerror(errno));
		conn_close_fd(k);
	}
	return -1;
}

/* An answer for c's host: its addresses (at most MAX_ADDRS) or the sentence of its failure. */
static void resolve_store(struct grpcx_async *c, int rc, const struct evutil_addrinfo *res)
{
	int n = 0;

	c->resolved_at = now_ms();
	c->stale = 0;
	for (const struct evutil_addrinfo *a = res; rc == 0 && a != NULL && n < MAX_ADDRS;
	     a = a->ai_next) {
		if (a->ai_addrlen > sizeof(c->addrs[0]))
			continue;
		memcpy(&c->addrs[n], a->ai_addr, a->ai_addrlen);
		c->alens[n++] = (socklen_t)a->ai_addrlen;
	}
	if (rc == 0 && n == 0)
		snprintf(c->resolve_why, sizeof(c->resolve_why),
		         "cannot resolve the server's host name %.120s: it has no address",
		         c->t.host);
	else if (rc != 0)
		snprintf(c->resolve_why, sizeof(c->resolve_why),
		         "cannot resolve the server's host name %.120s: %s", c->t.host,
		         loopdns_gai_sentence(rc));
	c->naddrs = n;
}

static void on_resolved(int rc, struct evutil_addrinfo *res, void *arg)
{
	struct aconn *k = arg;
	char why[256];

	if (rc == EVUTIL_EAI_CANCEL) { /* k was freed */
		if (res)
			evutil_freeaddrinfo(res);
		return;
	}
	k->rq = NULL;
	resolve_store(k->c, rc, res);
	if (res)
		evutil_freeaddrinfo(res);
	if (k->opening) { /* answered inside evdns_getaddrinfo: conn_open goes on */
		k->resolve_rc = rc;
		return;
	}
	if (k->c->naddrs == 0) {
		conn_die(k, "%s", k->c->resolve_why);
		return;
	}
	snprintf(why, sizeof(why), "cannot connect: no address");
	if (conn_dial(k, why, sizeof(why)) < 0)
		conn_die(k, "%s", why);
}

/* Looks c's host up for k unless the addresses at hand will do: 0 (k->rq set while the answer
 * is awaited), or -1 with why when the name does not resolve. */
static int conn_resolve(struct aconn *k, char *why, size_t wl)
{
	struct grpcx_async *c = k->c;
	struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC,
	                                .ai_socktype = SOCK_STREAM,
	                                .ai_protocol = IPPROTO_TCP,
	                                .ai_flags = EVUTIL_AI_ADDRCONFIG};
	int fresh = c->resolved_at >= 0 && now_ms() - c->resolved_at < RESOLVE_MIN_MS;

	if (c->dns == NULL || (c->naddrs > 0 && (!c->stale || fresh)))
		return 0;
	if (c->naddrs == 0 && fresh) { /* it failed less than RESOLVE_MIN_MS ago */
		snprintf(why, wl, "%s", c->resolve_why);
		return -1;
	}
	k->opening = 1;
	k->resolve_rc = 1; /* not answered yet */
	k->rq = evdns_getaddrinfo(c->dns, c->t.host, c->t.port, &hints, on_resolved, k);
	k->opening = 0;
	if (k->rq != NULL)
		return 0;
	if (k->resolve_rc == 1) {
		snprintf(why, wl,
		         "cannot resolve the server's host name %.120s: the resolver took no "
		         "query",
		         c->t.host);
		return -1;
	}
	if (c->naddrs == 0) {
		snprintf(why, wl, "%s", c->resolve_why);
		return -1;
	}
	return 0;
}

/* A new connection, resolving or connecting; NULL with why. */
static struct aconn *conn_open(struct grpcx_async *c, char *why, size_t wl)
{
	struct aconn *k = calloc(1, sizeof(*k));
	struct timeval tv;

	if (k == NULL) {
		snprintf(why, wl, "out of memory");
		return NULL;
	}
	k->c = c;
	k->fd = -1;
	k->connecting = 1;
	k->next = c->conns;
	c->conns = k;
	k->cto = evtimer_new(c->base, on_connect_timeout, k);
	if (k->cto == NULL || nghttp2_session_client_new(&k->ng, c->cbs, k) != 0 ||
	    grpcx_stream_session_setup(k->ng) != 0) {
		snprintf(why, wl, "cannot set up the HTTP/2 session");
		conn_free(k);
		return NULL;
	}
	snprintf(why, wl, "cannot connect: no address");
	if (conn_resolve(k, why, wl) < 0 || (k->rq == NULL && conn_dial(k, why, wl) < 0)) {
		conn_free(k);
		return NULL;
	}
	/* the resolve and the connect together */
	ms_tv(CONNECT_TIMEOUT_MS, &tv);
	event_add(k->cto, &tv);
	return k;
}

/* The connection for a new stream: the current one when it can take it (an idle one is
 * first read without waiting, as the blocking client does before reuse: a peer that closed
 * it or sent GOAWAY meanwhile is noticed here, not by the call), else a new one. */
static struct aconn *conn_pick(struct grpcx_async *c, char *why, size_t wl)
{
	struct aconn *k = c->cur;

	/* a death frees it; a GOAWAY retires it, and with no calls left it is freed */
	if (k != NULL && !k->connecting && k->ncalls == 0 && conn_drain(k) == 0 &&
	    conn_flush(k) == 0)
		conn_reap(k);
	k = c->cur;
	if (k != NULL && !k->connecting && nghttp2_session_get_next_stream_id(k->ng) > (1u << 30)) {
		conn_retire(k);
		conn_reap(k);
		k = NULL;
	}
	if (k == NULL && (k = conn_open(c, why, wl)) != NULL)
		c->cur = k;
	return k;
}

/* Submits a's stream on its open connection: 0, or -1 with a settled as a failure. */
static int call_submit(struct acall *a)
{
	struct grpcx_async *c = a->c;
	struct grpcx_stream_hdrs h = {
	    .tls = c->ssl_ctx != NULL, .authority = c->t.authority, .bearer = c->bearer};

	if (grpcx_stream_submit(a->k->ng, &a->st, &h, a->method,
	                        a->deadline >= 0 ? a->deadline - now_ms() : -1, a) < 0) {
		a->st.stream_id = 0;
		call_fail(a, GRPCX_UNAVAILABLE, "Cannot start an HTTP/2 stream%s", "");
		return -1;
	}
	return 0;
}

/* Starts (or restarts) a's stream: 0, or -1 with a settled as a failure. */
static int call_start(struct acall *a)
{
	char why[256];
	struct aconn *k;

	grpcx_stream_free(&a->st);
	grpcx_stream_init(&a->st, a->req, a->req_len);
	a->seen = 0;
	a->attempts++;
	if (a->deadline >= 0 && now_ms() >= a->deadline) {
		call_fail(a, GRPCX_DEADLINE_EXCEEDED, "%s",
		          "Deadline exceeded: no answer from the server in time");
		return -1;
	}
	k = conn_pick(a->c, why, sizeof(why));
	if (k == NULL) {
		call_fail(a, GRPCX_UNAVAILABLE, "The server is unavailable: %s", why);
		return -1;
	}
	a->k = k;
	k->ncalls++;
	a->pooled = !k->connecting;
	if (a->deadline >= 0) {
		struct timeval tv;
		ms_tv(a->deadline - now_ms(), &tv);
		event_add(a->ev, &tv);
	}
	if (k->connecting) /* on_connected submits it */
		return 0;
	if (call_submit(a) < 0)
		return -1;
	conn_flush(k);
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* the client */

static struct grpcx_async *async_new(struct event_base *base, const char *target, int max_inflight,
                                     struct err *err)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST},
	                *ai = NULL;
	struct grpcx_async *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		err_set(err, "out of memory");
		return NULL;
	}
	c->base = base;
	c->max_inflight =
	    max_inflight > 0 && max_inflight < GRPCX_ASYNC_MAX ? max_inflight : GRPCX_ASYNC_MAX;
	if (grpcx_target_parse(target, &c->t, err) < 0)
		goto fail;
	c->resolved_at = -1;
	if (c->t.is_ip) {
		if (getaddrinfo(c->t.host, c->t.port, &hints, &ai) != 0 ||
		    ai->ai_addrlen > sizeof(c->addrs[0])) {
			if (ai)
				freeaddrinfo(ai);
			err_set(err, "%s is not a usable IP address", c->t.host);
			goto fail;
		}
		memcpy(&c->addrs[0], ai->ai_addr, ai->ai_addrlen);
		c->alens[0] = ai->ai_addrlen;
		c->naddrs = 1;
		freeaddrinfo(ai);
	} else {
		/* reads /etc/resolv.conf and /etc/hosts now; idle, it keeps the loop from nothing
		 */
		c->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
		                                  EVDNS_BASE_DISABLE_WHEN_INACTIVE);
		if (c->dns == NULL) {
			err_set(err, "cannot set up the resolver for %s (/etc/resolv.conf)",
			        c->t.host);
			goto fail;
		}
	}
	if (nghttp2_session_callbacks_new(&c->cbs) != 0) {
		err_set(err, "out of memory");
		goto fail;
	}
	nghttp2_session_callbacks_set_on_header_callback(c->cbs, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c->cbs, on_data);
	nghttp2_session_callbacks_set_on_frame_recv_callback(c->cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_frame_send_callback(c->cbs, on_frame_send);
	nghttp2_session_callbacks_set_on_stream_close_callback(c->cbs, on_close);
	return c;
fail:
	grpcx_async_free(c);
	return NULL;
}

struct grpcx_async *grpcx_async_new_tls(struct event_base *base, const char *target,
                                        const char *ca_pem, const char *cert_pem,
                                        const char *key_pem, int max_inflight, struct err *err)
{
	struct grpcx_async *c = async_new(base, target, max_inflight, err);

	if (c == NULL)
		return NULL;
	c->t.tls = 1;
	c->has_cert = cert_pem != NULL && key_pem != NULL;
	c->ssl_ctx = grpcx_tls_client_ctx(ca_pem, cert_pem, key_pem, err);
	if (c->ssl_ctx == NULL) {
		grpcx_async_free(c);
		return NULL;
	}
	return c;
}

struct grpcx_async *grpcx_async_new(struct event_base *base, const char *target, int max_inflight,
                                    struct err *err)
{
	/* An https:// target is never dialled in plaintext: TLS with the system roots. */
	if (strncmp(target, "https://", 8) == 0)
		return grpcx_async_new_tls(base, target, NULL, NULL, NULL, max_inflight, err);
	return async_new(base, target, max_inflight, err);
}

int grpcx_async_set_bearer(struct grpcx_async *c, const char *token, struct err *err)
{
	return grpcx_bearer_set(&c->bearer, token, err);
}

int grpcx_async_full(const struct grpcx_async *c)
{
	return c->inflight >= c->max_inflight;
}

int grpcx_async_call(struct grpcx_async *c, const char *method, const uint8_t *req, size_t req_len,
                     int timeout_ms, grpcx_async_cb cb, void *arg, struct err *err)
{
	struct acall *a;

	if (c->inflight >= c->max_inflight)
		return err_setc(err, GRPCX_RESOURCE_EXHAUSTED,
		                "%d calls are already in flight on this loop", c->inflight);
	if (req_len > GRPCX_WIRE_MAX_MSG)
		return err_setc(err, GRPCX_RESOURCE_EXHAUSTED,
		                "The request message of %zu bytes is larger than the limit of %u "
		                "bytes",
		                req_len, GRPCX_WIRE_MAX_MSG);
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return err_set(err, "out of memory");
	a->c = c;
	a->req = malloc(req_len ? req_len : 1);
	a->method = strdup(method);
	a->ev = evtimer_new(c->base, on_call_event, a);
	if (a->req == NULL || a->method == NULL || a->ev == NULL) {
		if (a->ev)
			event_free(a->ev);
		free(a->req);
		free(a->method);
		free(a);
		return err_set(err, "out of memory");
	}
	if (req_len)
		memcpy(a->req, req, req_len);
	a->req_len = req_len;
	a->deadline = timeout_ms > 0 ? now_ms() + timeout_ms : -1;
	a->cb = cb;
	a->arg = arg;
	grpcx_stream_init(&a->st, a->req, a->req_len);
	a->next = c->calls;
	if (c->calls)
		c->calls->prev = a;
	c->calls = a;
	c->inflight++;
	call_start(a); /* a failure is settled: delivered from a->ev */
	return 0;
}

void grpcx_async_free(struct grpcx_async *c)
{
	if (c == NULL)
		return;
	/* calls still in flight end now, each told so (their callbacks may reply elsewhere) */
	while (c->calls != NULL) {
		struct acall *a = c->calls;
		if (a->delivered) { /* only waiting for its stream to close */
			call_detach(a);
			call_free(a);
			continue;
		}
		if (!a->settled || a->retry) {
			a->retry = 0;
			call_detach(a);
			a->settled = 1;
			grpcx_status_set(&a->err, GRPCX_UNAVAILABLE, "%s",
			                 "The call was cancelled: the client is shutting down");
			a->status = GRPCX_UNAVAILABLE;
		}
		call_detach(a);
		call_deliver(a);
	}
	while (c->conns != NULL)
		conn_free(c->conns);
	loopdns_free(c->base, c->dns, c->lookups_cancelled);
	SSL_CTX_free(c->ssl_ctx);
	if (c->cbs)
		nghttp2_session_callbacks_del(c->cbs);
	if (c->bearer) {
		OPENSSL_cleanse(c->bearer, strlen(c->bearer));
		free(c->bearer);
	}
	free(c);
}
