/*
 * grpcfront: the listening socket of a gRPC daemon, shared with a few HTTP/1.1 pages (see
 * grpcfront.h for the routing rules), and the event loop that serves its HTTP/2.
 *
 * One libevent loop thread does everything the front does: accept, sniff, TLS, the HTTP/1.1
 * responder, and the HTTP/2 sessions of the gRPC server (grpcx_h2.c: bytes read are fed to
 * the connection's nghttp2 session, what it sends is written back; handlers run on the
 * server's worker threads and their replies come back to this loop, or on a plaintext
 * connection are written by the worker itself when this loop is not busy with its sessions).
 * Sniffing a plaintext connection peeks at the socket (MSG_PEEK) until its first bytes say HTTP/2
 * or not; a TLS connection goes through an OpenSSL bufferevent and is routed on its decrypted
 * bytes. Both kinds then run the same session on a bufferevent: no relay, no second socket.
 *
 * Bounds: a connection gets SNIFF_MS from accept, in all, to finish its TLS handshake and
 * deliver its first bytes or its whole HTTP/1.1 request head (at most GFRONT_HEAD_MAX bytes),
 * however slowly it drips them; at most MAX_PENDING connections may be at that stage, and
 * when a new one arrives beyond that the oldest is closed (so a flood of silent clients
 * cannot lock out new ones for more than moments). Silent or slow clients thus cost a bounded
 * number of sockets and never hold up anyone else.
 *
 * Past the sniffer, HTTP/2 connections are a budget too (issue 14 V6: 19,985 connections that
 * sent the preface and SETTINGS and then nothing grew the rvps by 300 MB). At most
 * max_connections at once; one more closes the one whose client has been quiet longest (a
 * live client talks: calls, or acks of the session's keepalive pings every 60 s), and a sweep
 * closes those quiet for idle_ms. Repeated log lines (the caps, accept failures) are
 * rate-limited (log.h).
 */
#include "grpcfront.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "grpcx.h"
#include "grpcx_h2.h"
#include "keyfile.h"
#include "log.h"

#define SNIFF_MS 10000
#define PEEK_RETRY_MS 5
#define MAX_PENDING 512
#define IDLE_DEFAULT_S 300
#define FD_RESERVE 128
#define ACCEPT_PAUSE_MS 250
#define OUT_LOW (64 * 1024)
#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24

enum conn_state { C_SNIFF, C_HTTP, C_H2, C_CLOSING };

struct conn {
	struct gfront *f;
	enum conn_state state;
	int fd;                   /* plaintext sniffing; then bev's */
	struct event *ev;         /* plaintext sniff: read/timeout, then peek retries;
	                           * plaintext C_H2: the socket's reads (h2_plain_read) */
	struct timespec deadline; /* end of the sniffing stage */
	struct bufferevent *bev;  /* the client side: socket or OpenSSL */
	struct h2conn *h2;        /* C_H2 (and C_CLOSING after it): the session */
	int pending;              /* counted in f->npending */
	struct event *limit;      /* while pending: fires SNIFF_MS after accept */
	int counted;              /* counted in f->nh2 */
	struct timespec active;   /* C_H2: when the client last sent bytes */
	struct conn *prev, *next;
};

struct gfront {
	struct grpcx_server *g; /* NULL once the server is freed (gfront_detach) */
	struct event_base *base;
	struct evconnlistener *lis;
	SSL_CTX *ssl;
	int mtls;
	int port;
	gfront_page_fn page;
	void *ctx;
	pthread_t th;
	int started;
	struct conn *conns;
	int npending;
	long nh2;             /* HTTP/2 connections; <= max_h2 */
	long max_h2;          /* gfront_limits.max_connections */
	long idle_ms;         /* gfront_limits.idle_timeout */
	struct event *sweep;  /* closes connections quiet for idle_ms; keepalive pings */
	struct event *resume; /* re-enables accept after EMFILE */
	struct h2loop *h2l;   /* replies from the server's workers */
	/* gfront_stop_accepting's and gfront_close_grpc's handshakes with the loop */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int stopped, closed;
};

/* ------------------------------------------------------------------------------------ */
/* HTTP/1.x request head */

static int is_tchar(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Transfer-Encoding at all, or a second Content-Length: -1. Counts Content-Length in *n_cl. */
static int framing_header(const uint8_t *name, size_t len, int *n_cl)
{
	if (len == 17 && strncasecmp((const char *)name, "Transfer-Encoding", 17) == 0)
		return -1;
	if (len == 14 && strncasecmp((const char *)name, "Content-Length", 14) == 0)
		return ++*n_cl > 1 ? -1 : 0;
	return 0;
}

/* OWS 1*DIGIT OWS */
static int decimal(const uint8_t *s, size_t len)
{
	size_t a = 0, b = len;
	while (a < b && (s[a] == ' ' || s[a] == '\t'))
		a++;
	while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
		b--;
	if (a == b)
		return 0;
	for (size_t k = a; k < b; k++)
		if (s[k] < '0' || s[k] > '9')
			return 0;
	return 1;
}

int gfront_http_parse(const uint8_t *buf, size_t len, struct gfront_http_req *out, struct err *err)
{
	size_t i = 0, m = 0, p = 0, end = 0, line, v;
	int n_cl = 0, cl_seen = 0;

	memset(out, 0, sizeof(*out));
	/* the head ends at the first empty line; nothing past it is read */
	for (size_t k = 0; k + 3 < len && k + 4 <= GFRONT_HEAD_MAX; k++) {
		if (buf[k] == '\r' && buf[k + 1] == '\n' && buf[k + 2] == '\r' &&
		    buf[k + 3] == '\n') {
			end = k + 4;
			break;
		}
	}
	if (end == 0) {
		if (len >= GFRONT_HEAD_MAX)
			return err_set(err, "the request head is longer than %d bytes",
			               GFRONT_HEAD_MAX);
		/* a request line that is already wrong need not wait for the rest */
		for (size_t k = 0; k < len && k < sizeof(out->method); k++) {
			if (buf[k] == ' ')
				return 0;
			if (!is_tchar(buf[k]))
				return err_set(err, "the request does not start with a method");
		}
		return len >= sizeof(out->method)
		           ? err_set(err, "the request does not start with a method")
		           : 0;
	}
	/* method */
	while (i < end && is_tchar(buf[i])) {
		if (m + 1 >= sizeof(out->method))
			return err_set(err, "the method is too long");
		out->method[m++] = (char)buf[i++];
	}
	if (m == 0 || buf[i] != ' ')
		return err_set(err, "the request line has no method");
	i++;
	/* origin-form target: "/" then visible characters */
	if (buf[i] != '/')
		return err_set(err, "the request target is not a path");
	while (i < end && buf[i] > ' ' && buf[i] < 0x7f) {
		if (buf[i] == '?' || buf[i] == '#') {
			while (i < end && buf[i] > ' ' && buf[i] < 0x7f)
				i++;
			break;
		}
		if (p + 1 >= sizeof(out->path))
			return err_set(err, "the request path is longer than %zu bytes",
			               sizeof(out->path) - 1);
		out->path[p++] = (char)buf[i++];
	}
	if (buf[i] != ' ')
		return err_set(err, "the request target has a control character");
	i++;
	if (end - i < 10 || memcmp(buf + i, "HTTP/1.", 7) != 0 ||
	    (buf[i + 7] != '0' && buf[i + 7] != '1') || buf[i + 8] != '\r' || buf[i + 9] != '\n')
		return err_set(err, "the request line does not end with HTTP/1.0 or HTTP/1.1");
	out->minor = buf[i + 7] - '0';
	i += 10;
	/* header lines: name ":" value, no control characters but HT; the responder reads no
	 * body, so framing headers must be absent or plainly harmless (strict as common/http.c) */
	while (i + 2 <= end && !(buf[i] == '\r' && buf[i + 1] == '\n')) {
		line = i;
		while (i < end && is_tchar(buf[i]))
			i++;
		if (i == line || i >= end || buf[i] != ':')
			return err_set(err,
			               "a header line has no name or whitespace before its colon");
		if (framing_header(buf + line, i - line, &n_cl) != 0)
			return err_set(err, "Transfer-Encoding, or Content-Length more than once");
		v = ++i;
		while (i < end && buf[i] != '\r') {
			if ((buf[i] < ' ' && buf[i] != '\t') || buf[i] == 0x7f)
				return err_set(err, "a header value has a control character");
			i++;
		}
		if (n_cl && !cl_seen && (cl_seen = 1) && !decimal(buf + v, i - v))
			return err_set(err, "Content-Length is not a decimal number");
		if (i + 1 >= end || buf[i + 1] != '\n')
			return err_set(err, "a header line does not end with CRLF");
		i += 2;
	}
	return 1;
}

/* ------------------------------------------------------------------------------------ */
/* connections */

static void conn_unpend(struct conn *c)
{
	if (c->pending) {
		c->pending = 0;
		c->f->npending--;
	}
	if (c->limit) {
		event_free(c->limit);
		c->limit = NULL;
	}
}

static void conn_free(struct conn *c)
{
	struct gfront *f = c->f;

	conn_unpend(c);
	if (c->counted)
		f->nh2--;
	if (c->h2)
		h2conn_free(c->h2);
	if (c->ev)
		event_free(c->ev);
	if (c->bev)
		bufferevent_free(c->bev); /* closes the socket (and frees the SSL) */
	else if (c->fd >= 0)
		close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		f->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
}

static void on_conn_event(struct bufferevent *bev, short what, void *arg);

static void on_flushed(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	(void)bev;
	conn_free(c);
}

/* Stop reading; free the connection once `out` has written what it holds. */
static void close_after_flush(struct conn *c, struct bufferevent *out)
{
	c->state = C_CLOSING;
	if (c->bev)
		bufferevent_disable(c->bev, EV_READ);
	if (c->ev)
		event_del(c->ev);
	if (out == NULL || evbuffer_get_length(bufferevent_get_output(out)) == 0) {
		conn_free(c);
		return;
	}
	bufferevent_setwatermark(out, EV_WRITE, 0, 0);
	bufferevent_setcb(out, NULL, on_flushed, on_conn_event, c);
	bufferevent_enable(out, EV_WRITE);
}

static const char *status_text(int st)
{
	switch (st) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 503:
		return "Service Unavailable";
	default:
		return st >= 500 ? "Internal Server Error" : "Error";
	}
}

static void http_respond(struct conn *c, int head_only, int st, const char *ctype, const char *body,
                         size_t len)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	evbuffer_add_printf(out,
	                    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	                    "%sConnection: close\r\n\r\n",
	                    st, status_text(st), ctype, len,
	                    st == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (!head_only && len > 0)
		evbuffer_add(out, body, len);
	close_after_flush(c, c->bev);
}

static void on_http_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = evbuffer_get_length(in);
	struct gfront_http_req req;
	struct gfront_reply rep = {0};
	struct err e;
	int rc, head;
	char msg[ERR_MSG_MAX + 2];

	if (n > GFRONT_HEAD_MAX)
		n = GFRONT_HEAD_MAX;
	err_clear(&e);
	rc = gfront_http_parse(evbuffer_pullup(in, (ssize_t)n), n, &req, &e);
	if (rc == 0)
		return;
	conn_unpend(c);
	if (rc < 0) {
		log_debug("front: malformed HTTP request: %s", e.msg);
		snprintf(msg, sizeof(msg), "%s\n", e.msg);
		http_respond(c, 0, 400, "text/plain", msg, strlen(msg));
		return;
	}
	head = strcmp(req.method, "HEAD") == 0;
	if (!head && strcmp(req.method, "GET") != 0) {
		http_respond(c, 0, 405, "text/plain", "Only GET and HEAD are served here\n", 34);
		return;
	}
	if (c->f->page != NULL)
		c->f->page(c->f->ctx, req.path, &rep);
	if (rep.status == 0) {
		free(rep.body);
		http_respond(c, head, 404, "text/plain", "Not found\n", 10);
		return;
	}
	http_respond(c, head, rep.status, rep.ctype ? rep.ctype : "text/plain",
	             rep.body ? rep.body : "", rep.body ? rep.len : 0);
	free(rep.body);
}

static void on_conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if ((what & BEV_EVENT_CONNECTED) != 0)
		return;
	if ((what & BEV_EVENT_ERROR) != 0 && c->state == C_SNIFF) {
		unsigned long e = bufferevent_get_openssl_error(bev);
		if (e != 0) {
			char buf[256];
			ERR_error_string_n(e, buf, sizeof(buf));
			log_debug("front: TLS handshake failed: %s", buf);
		}
	}
	conn_free(c);
}

static long ms_left(const struct timespec *deadline);

/* How long the client of an HTTP/2 connection has sent nothing, in ms. */
static long quiet_ms(struct conn *c)
{
	return -ms_left(&c->active);
}

/* The HTTP/2 connection whose client has been quiet longest, or NULL. */
static struct conn *quietest_h2(struct gfront *f)
{
	struct conn *c, *found = NULL;
	long most = -1;

	for (c = f->conns; c; c = c->next) {
		long q;
		if (!c->counted || (q = quiet_ms(c)) <= most)
			continue;
		most = q;
		found = c;
	}
	return found;
}

/* Within the budget: one more HTTP/2 connection (after closing the quietest when at
 * max_connections). */
static void count_in(struct conn *c)
{
	struct gfront *f = c->f;
	struct conn *q;

	conn_unpend(c);
	if (f->nh2 >= f->max_h2 && (q = quietest_h2(f)) != NULL) {
		log_warn_ratelimited(
		    "front: %ld gRPC connections (max_connections); closed the one quiet longest",
		    f->nh2);
		conn_free(q);
	}
	c->counted = 1;
	f->nh2++;
}

/* The session is over: write what it left in the output, then close. */
static void h2_done(void *arg)
{
	struct conn *c = arg;

	close_after_flush(c, c->bev);
}

static void h2_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	clock_gettime(CLOCK_MONOTONIC, &c->active);
	h2conn_input(c->h2);
}

/* A plaintext HTTP/2 connection is read by the loop itself rather than by its bufferevent
 * (which keeps the output and the events): libevent's evbuffer_read asks the socket how much
 * it holds (ioctl FIONREAD) before every read, one syscall of the 12 grpc-as made per KBS
 * handshake and of the 6 the rvps made per query; the bytes also skip a copy into the
 * evbuffer. EOF and errors close the connection, as on_conn_event does for a bufferevent. */
static void h2_plain_read(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	uint8_t buf[16384];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

	(void)what;
	if (n > 0) {
		clock_gettime(CLOCK_MONOTONIC, &c->active);
		h2conn_input_bytes(c->h2, buf, (size_t)n); /* may close c */
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	conn_free(c);
}

static void h2_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	h2conn_output(c->h2);
}

/* The bytes say HTTP/2 (decrypted, or peeked on a plaintext socket whose bufferevent the
 * caller made): the server's session takes the connection, within the budget. */
static void start_h2(struct conn *c)
{
	struct gfront *f = c->f;
	SSL *ssl = f->ssl ? bufferevent_openssl_get_ssl(c->bev) : NULL;
	X509 *peer = NULL;

	if (f->mtls) {
		peer = SSL_get0_peer_certificate(ssl);
		if (peer == NULL || SSL_get_verify_result(ssl) != X509_V_OK) {
			log_info_ratelimited(
			    "front: refused a gRPC connection without a client certificate "
			    "(mutual TLS is required)");
			conn_free(c);
			return;
		}
	}
	if (f->g == NULL || (c->h2 = h2conn_new(f->g, f->h2l, c->bev, peer, h2_done, c)) == NULL) {
		conn_free(c);
		return;
	}
	if (f->ssl == NULL) {
		int fd = bufferevent_getfd(c->bev);

		h2conn_set_fd(c->h2, fd); /* workers may write replies */
		c->ev = event_new(f->base, fd, EV_READ | EV_PERSIST, h2_plain_read, c);
		if (c->ev == NULL || event_add(c->ev, NULL) < 0) {
			conn_free(c);
			return;
		}
	}
	count_in(c);
	clock_gettime(CLOCK_MONOTONIC, &c->active);
	c->state = C_H2;
	bufferevent_set_timeouts(c->bev, NULL, NULL);
	bufferevent_setwatermark(c->bev, EV_WRITE, OUT_LOW, 0);
	bufferevent_setcb(c->bev, f->ssl ? h2_read : NULL, h2_write, on_conn_event, c);
	bufferevent_enable(c->bev, f->ssl ? EV_READ | EV_WRITE : EV_WRITE);
	h2conn_input(c->h2); /* the preface and what followed it, if already read */
}

/* 1: HTTP/2 preface; 0: a prefix of it, wait; -1: something else (HTTP/1.x or garbage). */
static int classify(const uint8_t *b, size_t n)
{
	size_t k = n < H2_PREFACE_LEN ? n : H2_PREFACE_LEN;

	if (memcmp(b, H2_PREFACE, k) != 0)
		return -1;
	return n >= H2_PREFACE_LEN ? 1 : 0;
}

static void start_http(struct conn *c)
{
	struct timeval tv = {SNIFF_MS / 1000, 0};

	c->state = C_HTTP;
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_setcb(c->bev, on_http_read, NULL, on_conn_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	on_http_read(c->bev, c);
}

static void on_tls_sniff(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = evbuffer_get_length(in);
	int k;

	if (n > H2_PREFACE_LEN)
		n = H2_PREFACE_LEN;
	k = classify(evbuffer_pullup(in, (ssize_t)n), n);
	if (k == 0)
		return;
	if (k > 0)
		start_h2(c);
	else
		start_http(c);
}

static void on_plain_sniff(evutil_socket_t fd, short what, void *arg);

static long ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/* Re-arm the sniffer: on readability while nothing has arrived, on a short timer while a
 * partial preface sits in the socket (it stays readable, so polling would spin). */
static int sniff_rearm(struct conn *c, int have_bytes)
{
	long left = ms_left(&c->deadline);
	struct timeval tv = {0, PEEK_RETRY_MS * 1000};

	if (left <= 0) {
		log_debug("front: closed a connection that sent no request in %d ms", SNIFF_MS);
		return -1;
	}
	event_free(c->ev);
	if (have_bytes) {
		c->ev = evtimer_new(c->f->base, on_plain_sniff, c);
	} else {
		tv.tv_sec = left / 1000;
		tv.tv_usec = (left % 1000) * 1000;
		c->ev = event_new(c->f->base, c->fd, EV_READ, on_plain_sniff, c);
	}
	if (c->ev == NULL || event_add(c->ev, &tv) < 0)
		return -1;
	return 0;
}

static void on_plain_sniff(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct gfront *f = c->f;
	uint8_t b[H2_PREFACE_LEN];
	ssize_t r;
	int k;

	(void)what;
	r = recv(fd, b, sizeof(b), MSG_PEEK);
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
		conn_free(c);
		return;
	}
	k = r > 0 ? classify(b, (size_t)r) : 0;
	if (k == 0) {
		if (sniff_rearm(c, r > 0) < 0)
			conn_free(c);
		return;
	}
	event_free(c->ev);
	c->ev = NULL;
	c->bev = bufferevent_socket_new(f->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		conn_free(c);
		return;
	}
	c->fd = -1;
	if (k > 0)
		start_h2(c); /* the preface is still in the socket: the session reads it */
	else
		start_http(c);
}

static void on_limit(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	log_debug("front: closed a connection that had not made its request after %d ms", SNIFF_MS);
	conn_free(c);
}

/* The connection that has waited longest without making its request, or NULL. */
static struct conn *oldest_pending(struct gfront *f)
{
	struct conn *c = f->conns, *found = NULL;

	for (; c; c = c->next) /* newest first */
		if (c->pending)
			found = c;
	return found;
}

/* Every tick: close the HTTP/2 connections whose client has been quiet for idle_ms; the
 * others' sessions send their keepalive pings. */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct gfront *f = arg;
	struct conn *c, *next;
	struct timespec ts;
	int64_t now;
	long n = 0;

	(void)fd;
	(void)what;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	for (c = f->conns; c; c = next) {
		next = c->next;
		if (c->state != C_H2)
			continue;
		if (quiet_ms(c) >= f->idle_ms) {
			conn_free(c);
			n++;
		} else {
			/* may close c (done -> close_after_flush), never another connection */
			h2conn_tick(c->h2, now);
		}
	}
	if (n > 0)
		log_debug("front: closed %ld gRPC connections quiet for %ld ms", n, f->idle_ms);
}

/* Out of descriptors (or memory): pause accepting instead of spinning on the error. */
static void on_accept_error(struct evconnlistener *lis, void *arg)
{
	struct gfront *f = arg;
	int e = EVUTIL_SOCKET_ERROR();
	struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};

	if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
		evconnlistener_disable(lis);
		evtimer_add(f->resume, &tv);
		log_warn_ratelimited("front: accept: %s; new connections wait %d ms", strerror(e),
		                     ACCEPT_PAUSE_MS);
		return;
	}
	log_warn_ratelimited("front: accept: %s", strerror(e));
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct gfront *f = arg;

	(void)fd;
	(void)what;
	if (f->lis)
		evconnlistener_enable(f->lis);
}

static void on_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
	struct gfront *f = arg;
	struct conn *c;
	int one = 1;
	struct timeval tv = {SNIFF_MS / 1000, 0};

	(void)lis;
	(void)sa;
	(void)salen;
	if (f->npending >= MAX_PENDING && (c = oldest_pending(f)) != NULL) {
		log_warn_ratelimited(
		    "front: %d connections have not made their request yet; closing the "
		    "oldest",
		    f->npending);
		conn_free(c);
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->f = f;
	c->fd = fd;
	c->state = C_SNIFF;
	c->pending = 1;
	f->npending++;
	c->next = f->conns;
	if (f->conns)
		f->conns->prev = c;
	f->conns = c;
	clock_gettime(CLOCK_MONOTONIC, &c->deadline);
	c->deadline.tv_sec += SNIFF_MS / 1000;
	c->limit = evtimer_new(f->base, on_limit, c);
	if (c->limit == NULL || evtimer_add(c->limit, &tv) < 0) {
		conn_free(c);
		return;
	}
	if (f->ssl == NULL) {
		c->ev = event_new(f->base, fd, EV_READ, on_plain_sniff, c);
		if (c->ev == NULL || event_add(c->ev, &tv) < 0)
			conn_free(c);
		return;
	}
	SSL *ssl = SSL_new(f->ssl);
	if (ssl == NULL) {
		conn_free(c);
		return;
	}
	c->bev = bufferevent_openssl_socket_new(f->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                        BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		SSL_free(ssl);
		conn_free(c);
		return;
	}
	c->fd = -1;
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_setcb(c->bev, on_tls_sniff, NULL, on_conn_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* ------------------------------------------------------------------------------------ */
/* TLS context */

/* gRPC clients offer h2 (gRPC core adds "grpc-exp"), never http/1.1; general HTTP clients
 * such as curl offer both and are better served by the HTTP/1.1 responder. So: h2 when the
 * client is a gRPC client or offers nothing else, else http/1.1. Routing still follows the
 * decrypted bytes; ALPN only decides what the client will speak. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
	struct gfront *f = arg;
	const unsigned char *h2 = NULL, *h11 = NULL;
	int grpc = 0;

	for (unsigned int i = 0; i < inlen && i + 1u + in[i] <= inlen; i += 1u + in[i]) {
		const unsigned char *p = in + i + 1;
		if (in[i] == 2 && memcmp(p, "h2", 2) == 0)
			h2 = p;
		else if (in[i] == 8 && memcmp(p, "http/1.1", 8) == 0)
			h11 = p;
		else if (in[i] == 8 && memcmp(p, "grpc-exp", 8) == 0)
			grpc = 1;
	}
	if (h2 != NULL && (grpc || h11 == NULL)) {
		*out = h2;
		*outlen = 2;
		/* a gRPC client must present a certificate: fail the handshake itself, so the
		 * client is told "certificate required" */
		if (f->mtls)
			SSL_set_verify(ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
			               NULL);
		return SSL_TLSEXT_ERR_OK;
	}
	if (h11 != NULL) {
		*out = h11;
		*outlen = 8;
		return SSL_TLSEXT_ERR_OK;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

static SSL_CTX *tls_ctx(const struct gfront_tls *t, struct gfront *f, struct err *err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	BIO *b = NULL;
	X509 *x = NULL;
	EVP_PKEY *k = NULL;

	if (ctx == NULL) {
		err_set(err, "cannot create a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* TLS 1.2 suites: forward-secret AEAD only (the intermediate profile's choice) */
	SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20");
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	b = BIO_new_mem_buf(t->cert_pem, -1);
	x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	if (x == NULL || SSL_CTX_use_certificate(ctx, x) != 1) {
		err_set(err, "the TLS certificate file holds no usable PEM certificate");
		goto fail;
	}
	for (X509 *extra; (extra = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL;)
		if (SSL_CTX_add_extra_chain_cert(ctx, extra) != 1)
			X509_free(extra);
	BIO_free(b);
	b = BIO_new_mem_buf(t->key_pem, -1);
	k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	if (k == NULL || SSL_CTX_use_PrivateKey(ctx, k) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		err_set(err, "the TLS private key is unreadable or does not match the "
		             "certificate");
		goto fail;
	}
	if (t->client_ca_pem != NULL) {
		X509_STORE *st = SSL_CTX_get_cert_store(ctx);
		STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
		int n = 0;
		BIO_free(b);
		b = BIO_new_mem_buf(t->client_ca_pem, -1);
		for (X509 *ca; b && (ca = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL;) {
			X509_STORE_add_cert(st, ca);
			if (names)
				sk_X509_NAME_push(names, X509_NAME_dup(X509_get_subject_name(ca)));
			X509_free(ca);
			n++;
		}
		if (n == 0) {
			sk_X509_NAME_pop_free(names, X509_NAME_free);
			err_set(err, "the client CA file holds no PEM certificate");
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		f->mtls = 1;
	}
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, f);
	X509_free(x);
	EVP_PKEY_free(k);
	BIO_free(b);
	ERR_clear_error();
	return ctx;
fail:
	X509_free(x);
	EVP_PKEY_free(k);
	BIO_free(b);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return NULL;
}

static char *slurp(const char *path, const char *what, struct err *err)
{
	FILE *fp = fopen(path, "r");
	char *buf = NULL;
	size_t n = 0;

	if (fp == NULL) {
		err_set(err, "%s %s: %s", what, path, strerror(errno));
		return NULL;
	}
	buf = malloc(1024 * 1024 + 1);
	if (buf != NULL)
		n = fread(buf, 1, 1024 * 1024 + 1, fp);
	fclose(fp);
	if (buf == NULL || n == 0 || n > 1024 * 1024) {
		if (buf)
			OPENSSL_cleanse(buf, n > 1024 * 1024 ? 1024 * 1024 : n);
		free(buf);
		err_set(err, "%s %s: %s", what, path, n ? "larger than 1 MiB" : "empty");
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

int gfront_tls_load(struct gfront_tls *t, const char *cert, const char *key, const char *ca,
                    struct err *err)
{
	EVP_PKEY *pk;

	memset(t, 0, sizeof(*t));
	if ((cert == NULL) != (key == NULL))
		return err_set(err, "--https-pubkey-cert and --https-prikey go together: give both "
		                    "for TLS, or neither for plaintext");
	if (ca != NULL && cert == NULL)
		return err_set(err,
		               "--https-client-ca needs TLS: also give --https-pubkey-cert and "
		               "--https-prikey");
	if (cert == NULL)
		return 0;
	if ((pk = keyfile_read_private(key, err)) == NULL)
		return err_prefix(err, "TLS private key");
	EVP_PKEY_free(pk);
	if ((t->cert_pem = slurp(cert, "TLS certificate", err)) == NULL ||
	    (t->key_pem = slurp(key, "TLS private key", err)) == NULL ||
	    (ca != NULL && (t->client_ca_pem = slurp(ca, "client CA", err)) == NULL)) {
		gfront_tls_clear(t);
		return -1;
	}
	return 0;
}

void gfront_tls_clear(struct gfront_tls *t)
{
	free((char *)t->cert_pem);
	if (t->key_pem) {
		OPENSSL_cleanse((char *)t->key_pem, strlen(t->key_pem));
		free((char *)t->key_pem);
	}
	free((char *)t->client_ca_pem);
	memset(t, 0, sizeof(*t));
}

/* ------------------------------------------------------------------------------------ */
/* life cycle */

static int listen_on(const char *addr, struct err *err)
{
	char host[256];
	const char *colon, *port;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
	int fd = -1, one = 1, rc;

	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');
		if (end == NULL || end[1] != ':')
			return err_set(err, "%s is not host:port", addr);
		snprintf(host, sizeof(host), "%.*s", (int)(end - addr - 1), addr + 1);
		port = end + 2;
	} else {
		colon = strrchr(addr, ':');
		if (colon == NULL)
			return err_set(err, "%s is not host:port", addr);
		snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
		port = colon + 1;
	}
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
	if (rc != 0)
		return err_set(err, "%s: %s", addr, gai_strerror(rc));
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		freeaddrinfo(ai);
		return err_set(err, "socket: %s", strerror(errno));
	}
	/* SO_REUSEADDR only (restarts); never SO_REUSEPORT: two daemons must not share a port */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
		err_set(err, "cannot listen on %s: %s", addr, strerror(errno));
		close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	return fd;
}

struct gfront *gfront_new(const char *addr, struct grpcx_server *g, const struct gfront_tls *tls,
                          gfront_page_fn page, void *ctx, struct err *err)
{
	struct gfront *f = calloc(1, sizeof(*f));
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd;

	if (f == NULL) {
		err_set(err, "out of memory");
		return NULL;
	}
	f->g = g;
	f->page = page;
	f->ctx = ctx;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cond, NULL);
	evthread_use_pthreads();
	if (tls != NULL && (f->ssl = tls_ctx(tls, f, err)) == NULL)
		goto fail;
	f->base = event_base_new();
	if (f->base == NULL) {
		err_set(err, "cannot create an event loop");
		goto fail;
	}
	if ((fd = listen_on(addr, err)) < 0)
		goto fail;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		f->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
		                                         : ((struct sockaddr_in *)&ss)->sin_port);
	f->lis = evconnlistener_new(f->base, on_accept, f, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (f->lis == NULL) {
		close(fd);
		err_set(err, "cannot listen on %s", addr);
		goto fail;
	}
	evconnlistener_disable(f->lis);
	evconnlistener_set_error_cb(f->lis, on_accept_error);
	if ((f->resume = evtimer_new(f->base, on_resume, f)) == NULL) {
		err_set(err, "out of memory");
		goto fail;
	}
	if ((f->h2l = h2loop_new(f->base)) == NULL) {
		err_set(err, "out of memory");
		goto fail;
	}
	gfront_set_limits(f, &(struct gfront_limits){0});
	grpcx_server_attach_front(g, f);
	return f;
fail:
	gfront_free(f);
	return NULL;
}

int gfront_limits_from_config(const json_t *config, struct gfront_limits *out, struct err *err)
{
	static const char *const keys[] = {"max_connections", "idle_timeout"};
	long *vals[] = {&out->max_connections, &out->idle_timeout};
	const json_t *t = config ? json_object_get(config, "grpc_front") : NULL;

	memset(out, 0, sizeof(*out));
	if (t == NULL)
		return 0;
	if (!json_is_object(t))
		return err_set(err, "grpc_front must be a table");
	for (size_t i = 0; i < 2; i++) {
		const json_t *v = json_object_get(t, keys[i]);
		if (v == NULL)
			continue;
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > 10000000)
			return err_set(err, "grpc_front.%s must be an integer 1..10000000",
			               keys[i]);
		*vals[i] = (long)json_integer_value(v);
	}
	return 0;
}

void gfront_set_limits(struct gfront *f, const struct gfront_limits *l)
{
	struct rlimit rl;

	f->max_h2 = l->max_connections;
	if (f->max_h2 <= 0) {
		long n = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
		             ? (long)rl.rlim_cur
		             : 1024;
		f->max_h2 = n - FD_RESERVE > 16 ? n - FD_RESERVE : 16;
	}
	f->idle_ms = (l->idle_timeout > 0 ? l->idle_timeout : IDLE_DEFAULT_S) * 1000;
}

int gfront_port(const struct gfront *f)
{
	return f->port;
}

static void *loop_main(void *arg)
{
	struct gfront *f = arg;
	sigset_t pipe;

	/* a write to a connection the client closed fails with EPIPE on this thread, instead of
	 * killing a process that kept SIGPIPE's default (tests, embedding programs) */
	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, NULL);
	event_base_loop(f->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

int gfront_start(struct gfront *f, struct err *err)
{
	long tick = f->idle_ms / 4 < 100 ? 100 : f->idle_ms / 4 > 5000 ? 5000 : f->idle_ms / 4;
	struct timeval tv = {tick / 1000, (tick % 1000) * 1000};

	f->sweep = event_new(f->base, -1, EV_PERSIST, on_sweep, f);
	if (f->sweep == NULL || event_add(f->sweep, &tv) < 0)
		return err_set(err, "cannot start the front's idle sweep");
	evconnlistener_enable(f->lis);
	if (pthread_create(&f->th, NULL, loop_main, f) != 0)
		return err_set(err, "cannot start the front's thread");
	f->started = 1;
	return 0;
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gfront *f = arg;
	struct conn *c, *next;

	(void)fd;
	(void)what;
	if (f->lis) {
		evconnlistener_free(f->lis);
		f->lis = NULL;
	}
	if (f->resume)
		evtimer_del(f->resume);
	for (c = f->conns; c; c = next) {
		next = c->next;
		if (c->state == C_SNIFF)
			conn_free(c);
		else if (c->state == C_H2)
			h2conn_goaway(c->h2); /* may close c, never another */
	}
	pthread_mutex_lock(&f->mu);
	f->stopped = 1;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->mu);
}

/* Run cb on the loop and wait (at most 5 s) until it sets *flag. */
static void on_loop_wait(struct gfront *f, event_callback_fn cb, int *flag)
{
	struct timeval now = {0, 0};
	struct timespec ts;

	pthread_mutex_lock(&f->mu);
	if (!*flag && event_base_once(f->base, -1, EV_TIMEOUT, cb, f, &now) == 0) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 5;
		while (!*flag)
			if (pthread_cond_timedwait(&f->cond, &f->mu, &ts) != 0)
				break;
	}
	pthread_mutex_unlock(&f->mu);
}

void gfront_stop_accepting(void *arg)
{
	struct gfront *f = arg;

	if (f == NULL || !f->started)
		return;
	on_loop_wait(f, stop_cb, &f->stopped);
}

/* On the loop: the replies still queued are submitted, and every HTTP/2 connection writes
 * what it has and closes; the server is not reached any more. */
static void close_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gfront *f = arg;
	struct conn *c, *next;

	(void)fd;
	(void)what;
	h2loop_drain(f->h2l);
	h2loop_quiesce(f->h2l); /* nothing is queued now, and the server goes away */
	for (c = f->conns; c; c = next) {
		next = c->next;
		if (c->state == C_H2) {
			h2conn_output(c->h2);
			/* h2conn_output may have closed it already */
		}
	}
	for (c = f->conns; c; c = next) {
		next = c->next;
		if (c->state == C_H2)
			close_after_flush(c, c->bev);
	}
	pthread_mutex_lock(&f->mu);
	f->closed = 1;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->mu);
}

void gfront_close_grpc(struct gfront *f)
{
	if (f == NULL || !f->started)
		return;
	on_loop_wait(f, close_cb, &f->closed);
}

void gfront_detach(struct gfront *f)
{
	f->g = NULL;
}

void gfront_free(struct gfront *f)
{
	if (f == NULL)
		return;
	if (f->g != NULL)
		grpcx_server_attach_front(f->g, NULL);
	if (f->started) {
		gfront_stop_accepting(f);
		event_base_loopbreak(f->base);
		pthread_join(f->th, NULL);
	}
	while (f->conns)
		conn_free(f->conns);
	if (f->lis)
		evconnlistener_free(f->lis);
	if (f->sweep)
		event_free(f->sweep);
	if (f->resume)
		event_free(f->resume);
	h2loop_free(f->h2l);
	if (f->base)
		event_base_free(f->base);
	SSL_CTX_free(f->ssl);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cond);
	free(f);
}
