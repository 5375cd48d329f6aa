/*
 * http: an HTTP/1.1 server on libevent bufferevents: several event loops on shared listening
 * sockets, a worker pool for blocking handlers, and cross-thread replies (see http.h for the
 * model and the budgets).
 *
 * Why not evhttp: its timeout restarts on every byte (a client dribbling a byte a second
 * holds a connection for ever), it believes the first of two Content-Length headers, keeps
 * "Host " with its space as a header name, and has no hook between accept and its parser,
 * so neither strict framing nor connection budgets could be put in front of it.
 *
 * A connection is one `struct conn`, owned by its loop thread, and carries one request at a
 * time: C_HEAD (until the head deadline), C_BODY (until the body deadline, at a minimum
 * rate), C_BUSY (reading paused while the handler runs), C_FLUSH (the reply is being
 * written), then C_IDLE (keep-alive wait) or C_CLOSING and C_LINGER (write the last reply,
 * half-close, drain what the client still sends for a moment so that the kernel does not
 * reset the connection over an unread 400). Pipelined bytes wait in the input buffer until
 * the previous reply has left, so a connection never holds more than one request and one
 * reply however its client behaves.
 *
 * Ownership: a `struct http_req` is created by the loop that read it and freed by the same
 * loop right after its reply was queued. A reply made elsewhere is parked on the loop's
 * `done` list and an event is activated; the loop then sends it. A connection whose client
 * left while its request was with a handler is only marked `dead`; the reply frees it.
 *
 * Placement (plain sockets): only loop 0 listens; it puts a new connection on the lowest loop
 * with headroom, and a connection that has just been answered, with nothing in its buffers,
 * may move (its fd goes to the other loop's `inbox`, which makes a new bufferevent for it).
 * Each loop's thread CPU time over 100 ms windows says how busy it is (http_balance has the
 * rule). Why: with the kernel handing connections to loops at random, every loop of a lightly
 * loaded server woke for its own share of the events, and each wake-up (epoll_wait, a context
 * switch, cold caches) handled one or two of them. 3 kbs replicas behind HAProxy on 2 cores
 * (make bench, 16 attesters) ran 6 such loops: 6.3 epoll_waits and 40 syscalls a handshake
 * over the replicas against 1.0 and 25 for one replica, 0.69 ms of kbs CPU a handshake
 * against 0.40.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LINGER_S 1.0              /* drain after the last reply before closing */
#define LINGER_MAX (64u << 10)    /* ... at most this many bytes */
#define RATE_GRACE_S 2.0          /* min_body_rate applies after this much of a body */
#define TIMER_SLACK_S 0.02        /* a timer may fire this much before its second is up */
#define CHUNK_LINE_MAX 1024       /* chunk-size line with extensions */
#define RATELOG_INTERVAL_MS 10000 /* one line per kind of refusal per interval */
#define BUSY_WINDOW_S 0.1         /* a loop's busy fraction is measured over this long */
#define BUSY_STALE_MS 300         /* a loop that measured nothing for this long is quiet */

struct hdr {
	char *name;
	char *value;
};

struct http_loop;
struct conn;

struct http_req {
	struct http_loop *loop;
	struct conn *conn; /* loop thread only */
	enum http_method method;
	char *method_name;
	char *uri;
	char *path;
	char *query;
	char *peer;
	struct hdr *hdrs;
	size_t n_hdrs;
	uint8_t *body;
	size_t body_len;
	double started;
	void *data;
	int head_only, keep_alive, minor;
	/* reply */
	struct hdr *rhdrs;
	size_t n_rhdrs;
	int status;
	char *ctype;
	uint8_t *rbody;
	size_t rbody_len;
	int replied;
	struct http_req *next; /* done list / pool queue */
	http_async_fn afn;
	void *aarg;
};

enum conn_state { C_IDLE, C_HEAD, C_BODY, C_BUSY, C_FLUSH, C_CLOSING, C_LINGER };
enum chunk_state { CK_SIZE, CK_DATA, CK_DATA_END, CK_TRAILER };

struct conn {
	struct http_loop *l;
	struct bufferevent *bev; /* owns the SSL (and then the socket); NULL while moving */
	int fd;                  /* plain sockets: owned here, closed by conn_free */
	int fresh;               /* in an inbox before its first byte: starts in C_HEAD */
	int linked;              /* on l->conns */
	struct event *timer;     /* the current state's deadline */
	enum conn_state st;
	char peer[64];
	int admitted; /* opts.admit accepted it: one release owed */
	int dead;     /* client gone while C_BUSY: the reply frees the connection */
	int in_pump;  /* conn_pump is on the stack: defer frees */
	int free_pending;
	int got_bytes;        /* something arrived in this C_HEAD */
	struct http_req *req; /* being read (C_BODY) or with the handler (C_BUSY) */
	struct evbuffer *body;
	size_t need; /* Content-Length bytes still to come */
	int chunked;
	enum chunk_state ck;
	size_t ck_left, trailer_bytes, body_got, lingered;
	double phase_start, deadline;
	struct conn *prev, *next;
};

struct listener {
	struct http_loop *l;
	struct evconnlistener *lis;
	struct event *resume; /* re-enables accept after EMFILE */
};

struct http_loop {
	struct http_server *srv;
	struct event_base *base;
	struct event *wake;
	pthread_t tid;
	int started;
	pthread_mutex_t mu;
	struct http_req *done_head, *done_tail;
	struct listener *lis;
	size_t n_lis;
	struct conn *conns;      /* loop thread only */
	struct evbuffer *direct; /* loop thread only: a reply being written at once (send_now) */
	struct conn *inbox;      /* under mu: connections handed to this loop, no bufferevent yet */
	atomic_long n_conns;     /* on this loop (written by its thread) */
	atomic_int busy_pm;      /* per mille of a core its thread used in its last window */
	atomic_llong busy_at_ms; /* when busy_pm was measured (now_ms) */
	/* loop thread only: the window being measured, and how many connections it may still
	 * hand to a quieter loop in it (-1: not worked out yet) */
	double win_start, win_cpu;
	long spread_left;
};

/* A log line that may repeat at attack rates: at most one per interval, with a count. */
struct ratelog {
	atomic_llong next_ms;
	atomic_long suppressed;
};

struct http_server {
	struct http_server_opts o;
	int *fds;
	int *ports;
	size_t n_fds;
	struct http_loop *loops;
	int n_loops;
	int balance; /* plain sockets, several loops, balance_busy >= 0: loop 0 places (top) */
	/* worker pool */
	pthread_t *workers;
	int n_workers;
	pthread_mutex_t qmu;
	pthread_cond_t qcv;
	struct http_req *qhead, *qtail;
	int stopping;
	atomic_int closing; /* http_server_stop began: connections stay on the loop they are on */
	/* budgets */
	long max_conns;
	atomic_long nconns; /* open connections, all loops */
	struct ratelog rl_cap, rl_admit, rl_accept, rl_cut, rl_frame;
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ratelog(struct ratelog *rl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ratelog(struct ratelog *rl, const char *fmt, ...)
{
	long long now = now_ms(), next = atomic_load(&rl->next_ms);
	if (now < next ||
	    !atomic_compare_exchange_strong(&rl->next_ms, &next, now + RATELOG_INTERVAL_MS)) {
		atomic_fetch_add(&rl->suppressed, 1);
		return;
	}
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	long n = atomic_exchange(&rl->suppressed, 0);
	if (n > 0)
		log_warn("http: %s (and %ld more like it since the last such line)", msg, n);
	else
		log_warn("http: %s", msg);
}

static double now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *http_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 413:
		return "Payload Too Large";
	case 415:
		return "Unsupported Media Type";
	case 429:
		return "Too Many Requests";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	default:
		return "Unknown";
	}
}

/* Each thread remembers its last two dates (a reply's Date and a cookie's Expires): glibc's
 * gmtime_r takes a process-wide lock, and every reply needs one. */
void http_date(long long t, char *buf, size_t len)
{
	static const char *wd[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *mo[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	static __thread struct {
		long long t;
		char s[40];
	} memo[2] = {{-1, ""}, {-1, ""}};
	static __thread unsigned next;
	for (int i = 0; i < 2; i++)
		if (memo[i].t == t) {
			snprintf(buf, len, "%s", memo[i].s);
			return;
		}
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	unsigned i = next++ & 1;
	snprintf(memo[i].s, sizeof(memo[i].s), "%s, %02d %s %04d %02d:%02d:%02d GMT",
	         wd[tm.tm_wday], tm.tm_mday, mo[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
	         tm.tm_min, tm.tm_sec);
	memo[i].t = t;
	snprintf(buf, len, "%s", memo[i].s);
}

/* --- request accessors --- */

enum http_method http_req_method(const struct http_req *r)
{
	return r->method;
}
const char *http_req_method_name(const struct http_req *r)
{
	return r->method_name;
}
const char *http_req_uri(const struct http_req *r)
{
	return r->uri;
}
const char *http_req_path(const struct http_req *r)
{
	return r->path;
}
const char *http_req_query(const struct http_req *r)
{
	return r->query;
}
void http_req_set_data(struct http_req *r, void *data)
{
	r->data = data;
}
void *http_req_data(const struct http_req *r)
{
	return r->data;
}
double http_req_started(const struct http_req *r)
{
	return r->started;
}
const char *http_req_peer(const struct http_req *r)
{
	return r->peer ? r->peer : "";
}

const char *http_req_header(const struct http_req *r, const char *name)
{
	for (size_t i = 0; i < r->n_hdrs; i++)
		if (strcasecmp(r->hdrs[i].name, name) == 0)
			return r->hdrs[i].value;
	return NULL;
}

const char *http_req_header_nth(const struct http_req *r, const char *name, size_t nth)
{
	for (size_t i = 0; i < r->n_hdrs; i++)
		if (strcasecmp(r->hdrs[i].name, name) == 0 && nth-- == 0)
			return r->hdrs[i].value;
	return NULL;
}

const uint8_t *http_req_body(const struct http_req *r, size_t *len)
{
	*len = r->body_len;
	return r->body;
}

/* Cookie: a=b; kbs-session-id=abc; c=d (several Cookie headers allowed). */
char *http_req_cookie(const struct http_req *r, const char *name)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < r->n_hdrs; i++) {
		if (strcasecmp(r->hdrs[i].name, "Cookie") != 0)
			continue;
		const char *p = r->hdrs[i].value;
		while (*p) {
			while (*p == ' ' || *p == '\t' || *p == ';')
				p++;
			const char *end = strchr(p, ';');
			size_t plen = end ? (size_t)(end - p) : strlen(p);
			if (plen > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
				const char *v = p + nl + 1;
				size_t vl = plen - nl - 1;
				while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
					vl--;
				if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
					v++;
					vl -= 2;
				}
				return strndup(v, vl);
			}
			p += plen;
		}
	}
	return NULL;
}

static void req_free(struct http_req *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_hdrs; i++) {
		free(r->hdrs[i].name);
		free(r->hdrs[i].value);
	}
	for (size_t i = 0; i < r->n_rhdrs; i++) {
		free(r->rhdrs[i].name);
		free(r->rhdrs[i].value);
	}
	free(r->hdrs);
	free(r->rhdrs);
	free(r->method_name);
	free(r->uri);
	free(r->path);
	free(r->query);
	free(r->peer);
	/* bodies carry resource bytes (admin uploads), tokens and credentials: wipe them */
	if (r->body)
		OPENSSL_cleanse(r->body, r->body_len);
	free(r->body);
	free(r->ctype);
	if (r->rbody)
		OPENSSL_cleanse(r->rbody, r->rbody_len);
	free(r->rbody);
	free(r);
}

/* --- replies --- */

static void conn_after_reply(struct conn *c, int keep);
static void conn_free(struct conn *c);
static void conn_attach(struct http_loop *l, struct conn *c);

static int hdr_ok(const char *s)
{
	return strpbrk(s, "\r\n") == NULL;
}

/* A reply to a plain socket with nothing else queued is written at once, from the loop's own
 * buffer, and only what the socket does not take goes through the bufferevent: through it,
 * every reply cost two epoll_ctl calls (write interest on, then off) and a loop turn before
 * its write. Returns 1 when all of it left. */
static void on_written(struct bufferevent *bev, void *arg);
static void start_idle(struct conn *c);

static int write_direct(struct conn *c, struct evbuffer *buf)
{
	int fd = (int)bufferevent_getfd(c->bev);
	while (evbuffer_get_length(buf) > 0 && evbuffer_write(buf, fd) > 0)
		;
	if (evbuffer_get_length(buf) == 0)
		return 1;
	evbuffer_add_buffer(bufferevent_get_output(c->bev), buf);
	return 0;
}

/* On the loop thread: write r's reply to its connection (if any is left), then free r. */
static void send_now(struct http_req *r)
{
	struct conn *c = r->conn;
	struct http_server *s = r->loop->srv;
	int flushed = 0, direct = 0, keep = r->keep_alive;
	struct evbuffer *out = NULL;
	if (c && c->dead) {
		c->req = NULL;
		conn_free(c);
		c = NULL;
	}
	if (c) {
		struct evbuffer *bout = bufferevent_get_output(c->bev);
		direct = !s->o.tls_ctx && r->loop->direct && evbuffer_get_length(bout) == 0;
		out = direct ? r->loop->direct : bout;
		char date[40];
		http_date((long long)time(NULL), date, sizeof(date));
		evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nDate: %s\r\n", r->status,
		                    http_reason(r->status), date);
		if (r->ctype && hdr_ok(r->ctype))
			evbuffer_add_printf(out, "Content-Type: %s\r\n", r->ctype);
		for (size_t i = 0; i < r->n_rhdrs; i++)
			if (hdr_ok(r->rhdrs[i].name) && hdr_ok(r->rhdrs[i].value))
				evbuffer_add_printf(out, "%s: %s\r\n", r->rhdrs[i].name,
				                    r->rhdrs[i].value);
		if (r->status >= 200 && r->status != 204 && r->status != 304)
			evbuffer_add_printf(out, "Content-Length: %zu\r\n", r->rbody_len);
		if (!keep)
			evbuffer_add(out, "Connection: close\r\n", 19);
		else if (r->minor == 0)
			evbuffer_add(out, "Connection: keep-alive\r\n", 24);
		evbuffer_add(out, "\r\n", 2);
		if (!r->head_only && r->rbody_len)
			evbuffer_add(out, r->rbody, r->rbody_len);
		c->req = NULL;
	}
	/* before a byte of the reply leaves: the client's next request, perhaps on another
	 * loop, must find this one finished (the kbs's limiter slots are released here) */
	if (s->o.done)
		s->o.done(s->o.ctx, r, r->status, r->rbody_len, now_mono() - r->started);
	if (c) {
		flushed = direct && write_direct(c, out) && keep;
		if (!flushed)
			conn_after_reply(c, keep);
	}
	req_free(r);
	if (!flushed) {
		return;
	} else if (c->in_pump) { /* answered on the loop: conn_pump reads the next request */
		start_idle(c);
	} else {
		c->st = C_FLUSH;
		on_written(c->bev, c); /* to C_IDLE, and the next request if one waits */
	}
}

void http_reply_header(struct http_req *r, const char *name, const char *value)
{
	struct hdr *n = realloc(r->rhdrs, (r->n_rhdrs + 1) * sizeof(*n));
	if (!n)
		return;
	r->rhdrs = n;
	n[r->n_rhdrs].name = strdup(name);
	n[r->n_rhdrs].value = strdup(value);
	if (!n[r->n_rhdrs].name || !n[r->n_rhdrs].value) {
		free(n[r->n_rhdrs].name);
		free(n[r->n_rhdrs].value);
		return;
	}
	r->n_rhdrs++;
}

static void reply_queue(struct http_req *r);

/* http_reply with a malloc'd body the request takes over (freed with it). */
static void reply_owned(struct http_req *r, int status, const char *content_type, uint8_t *body,
                        size_t len)
{
	if (r->replied) {
		log_error("http: second reply to %s %s ignored", r->method_name, r->uri);
		if (body)
			OPENSSL_cleanse(body, len);
		free(body);
		return;
	}
	r->replied = 1;
	r->status = status;
	r->ctype = content_type ? strdup(content_type) : NULL;
	r->rbody = body;
	r->rbody_len = body ? len : 0;
	reply_queue(r);
}

void http_reply(struct http_req *r, int status, const char *content_type, const void *body,
                size_t len)
{
	uint8_t *copy = len ? malloc(len) : NULL;
	if (copy)
		memcpy(copy, body, len);
	reply_owned(r, status, content_type, copy, len);
}

/* Hands a reply to the loop that owns its connection: at once on that loop, else through its
 * done list and wake event. */
static void reply_queue(struct http_req *r)
{
	struct http_loop *l = r->loop;
	if (pthread_equal(pthread_self(), l->tid)) {
		send_now(r);
		return;
	}
	pthread_mutex_lock(&l->mu);
	r->next = NULL;
	if (l->done_tail)
		l->done_tail->next = r;
	else
		l->done_head = r;
	l->done_tail = r;
	pthread_mutex_unlock(&l->mu);
	event_active(l->wake, EV_READ, 0);
}

/* A byte that JSON carries as itself inside a string: printable ASCII but `"` and `\`. */
static int json_plain(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] > 0x7e || p[i] == '"' ||
		    p[i] == '\\')
			return 0;
	return 1;
}

/* The text json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER) gives, for a flat object whose
 * keys and string values are plain (a token, a JWE: base64url and dots), written directly;
 * NULL for anything else. jansson's encoder checks UTF-8 one code point at a time, about 70
 * instructions a byte, and these replies carry kilobytes of base64. */
static char *dump_flat(const json_t *v, size_t *len)
{
	size_t n = 2, kl;
	const char *k;
	json_t *m;
	if (!json_is_object(v))
		return NULL;
	json_object_keylen_foreach((json_t *)v, k, kl, m)
	{
		if (!json_is_string(m) || !json_plain(k, kl) ||
		    !json_plain(json_string_value(m), json_string_length(m)))
			return NULL;
		n += kl + json_string_length(m) + 6;
	}
	char *out = malloc(n + 1), *o = out;
	if (!out)
		return NULL;
	*o++ = '{';
	json_object_keylen_foreach((json_t *)v, k, kl, m)
	{
		size_t vl = json_string_length(m);
		if (o != out + 1)
			*o++ = ',';
		*o++ = '"';
		memcpy(o, k, kl);
		o += kl;
		memcpy(o, "\":\"", 3);
		o += 3;
		memcpy(o, json_string_value(m), vl);
		o += vl;
		*o++ = '"';
	}
	*o++ = '}';
	*o = 0;
	*len = (size_t)(o - out);
	return out;
}

void http_reply_json(struct http_req *r, int status, const json_t *v)
{
	size_t fl = 0;
	char *f = dump_flat(v, &fl);
	if (f) {
		reply_owned(r, status, "application/json", (uint8_t *)f, fl);
		return;
	}
	char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!s) {
		http_reply(r, 500, NULL, NULL, 0);
		return;
	}
	reply_owned(r, status, "application/json", (uint8_t *)s, strlen(s));
}

char *http_problem_body(const char *type_prefix, const char *variant, const char *detail)
{
	json_t *o = json_object();
	char type[512];
	snprintf(type, sizeof(type), "%s%s", type_prefix ? type_prefix : "", variant);
	json_object_set_new(o, "type", json_string(type));
	json_t *d = json_string(detail ? detail : "");
	if (!d) /* not UTF-8: keep the body valid JSON */
		d = json_string("(detail not valid UTF-8)");
	json_object_set_new(o, "detail", d);
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s;
}

void http_reply_problem(struct http_req *r, int status, const char *type_prefix,
                        const char *variant, const char *detail)
{
	char *s = http_problem_body(type_prefix, variant, detail);
	if (!s) {
		http_reply(r, status, NULL, NULL, 0);
		return;
	}
	reply_owned(r, status, "application/json", (uint8_t *)s, strlen(s));
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_loop *l = arg;
	pthread_mutex_lock(&l->mu);
	struct http_req *r = l->done_head;
	struct conn *c = l->inbox;
	l->done_head = l->done_tail = NULL;
	l->inbox = NULL;
	pthread_mutex_unlock(&l->mu);
	while (r) {
		struct http_req *next = r->next;
		send_now(r);
		r = next;
	}
	while (c) {
		struct conn *next = c->next;
		if (what == 0) /* from http_server_free: the loops have stopped */
			conn_free(c);
		else
			conn_attach(l, c);
		c = next;
	}
}

int http_req_loop(const struct http_req *r)
{
	return (int)(r->loop - r->loop->srv->loops);
}

int http_server_loops(const struct http_server *s)
{
	return s->n_loops;
}

struct event_base *http_server_loop_base(struct http_server *s, int i)
{
	return i >= 0 && i < s->n_loops ? s->loops[i].base : NULL;
}

/* --- worker pool --- */

int http_req_run_async(struct http_req *r, http_async_fn fn, void *arg)
{
	struct http_server *s = r->loop->srv;
	pthread_mutex_lock(&s->qmu);
	if (s->stopping || s->n_workers == 0) {
		pthread_mutex_unlock(&s->qmu);
		return -1;
	}
	r->afn = fn;
	r->aarg = arg;
	r->next = NULL;
	if (s->qtail)
		s->qtail->next = r;
	else
		s->qhead = r;
	s->qtail = r;
	pthread_cond_signal(&s->qcv);
	pthread_mutex_unlock(&s->qmu);
	return 0;
}

static void *worker_main(void *arg)
{
	struct http_server *s = arg;
	for (;;) {
		pthread_mutex_lock(&s->qmu);
		while (!s->qhead && !s->stopping)
			pthread_cond_wait(&s->qcv, &s->qmu);
		struct http_req *r = s->qhead;
		if (!r) { /* stopping and drained */
			pthread_mutex_unlock(&s->qmu);
			return NULL;
		}
		s->qhead = r->next;
		if (!s->qhead)
			s->qtail = NULL;
		pthread_mutex_unlock(&s->qmu);
		r->afn(r->aarg, r);
	}
}

/* --- connections --- */

static void conn_pump(struct conn *c);
static void on_written(struct bufferevent *bev, void *arg);
static void conn_maybe_move(struct conn *c);

static void arm(struct conn *c, double seconds)
{
	if (seconds < 0.001)
		seconds = 0.001;
	struct timeval tv = {.tv_sec = (time_t)seconds,
	                     .tv_usec = (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6)};
	evtimer_add(c->timer, &tv);
}

static void conn_unlink(struct conn *c)
{
	struct http_loop *l = c->l;
	if (!c->linked)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		l->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	c->linked = 0;
	atomic_fetch_sub(&l->n_conns, 1);
}

static void conn_free(struct conn *c)
{
	struct http_loop *l = c->l;
	struct http_server *s = l->srv;
	if (c->in_pump) {
		c->free_pending = 1;
		return;
	}
	if (c->req)
		req_free(c->req);
	if (c->timer)
		event_free(c->timer);
	if (c->bev)
		bufferevent_free(c->bev);
	if (c->fd >= 0)
		evutil_closesocket(c->fd);
	if (c->body)
		evbuffer_free(c->body);
	conn_unlink(c);
	if (c->admitted && s->o.release)
		s->o.release(s->o.ctx, c->peer);
	atomic_fetch_sub(&s->nconns, 1);
	free(c);
}

/* The client is gone or out of time: free now, or when the handler's reply comes. */
static void conn_drop(struct conn *c)
{
	if (c->st == C_BUSY) {
		c->dead = 1;
		event_del(c->timer);
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		return;
	}
	conn_free(c);
}

/* Stop reading; once the output is written, half-close and linger (see the top). */
static void conn_close(struct conn *c)
{
	c->st = C_CLOSING;
	bufferevent_disable(c->bev, EV_READ);
	arm(c, (double)c->l->srv->o.timeout_s);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		on_written(c->bev, c); /* nothing to wait for */
}

/* A refusal before (or instead of) a handler: status, a one-line reason, close. */
static void conn_fail(struct conn *c, int status, const char *why)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	if (c->req) {
		req_free(c->req);
		c->req = NULL;
	}
	evbuffer_add_printf(out,
	                    "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
	                    "Connection: close\r\n\r\n%s\n",
	                    status, http_reason(status), strlen(why) + 1, why);
	conn_close(c);
}

static void start_idle(struct conn *c)
{
	c->st = C_IDLE;
	arm(c, (double)c->l->srv->o.timeout_s);
	bufferevent_enable(c->bev, EV_READ);
}

static void start_head(struct conn *c)
{
	c->st = C_HEAD;
	c->got_bytes = 0;
	c->phase_start = now_mono();
	c->deadline = c->phase_start + c->l->srv->o.head_timeout_s;
	arm(c, c->l->srv->o.head_timeout_s);
}

static void conn_after_reply(struct conn *c, int keep)
{
	if (!keep) {
		conn_close(c);
		return;
	}
	c->st = C_FLUSH;
	arm(c, (double)c->l->srv->o.timeout_s);
}

static void dispatch(struct conn *c)
{
	struct http_req *r = c->req;
	struct http_server *s = c->l->srv;
	c->st = C_BUSY; /* reading goes on: see on_read */
	event_del(c->timer);
	/* TLS: not read while busy, as before. OpenSSL reports a client's FIN without a
	 * close_notify as an error, not an EOF, so reading on would drop a half-closed client's
	 * reply; the saved epoll_ctl calls were measured on plain sockets. */
	if (s->o.tls_ctx)
		bufferevent_disable(c->bev, EV_READ);
	r->started = now_mono();
	s->o.handler(s->o.ctx, r);
}

static enum http_method map_method(const char *m)
{
	static const struct {
		const char *name;
		enum http_method m;
	} t[] = {{"GET", HTTP_M_GET},
	         {"POST", HTTP_M_POST},
	         {"PUT", HTTP_M_PUT},
	         {"DELETE", HTTP_M_DELETE},
	         {"HEAD", HTTP_M_HEAD}};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strcmp(m, t[i].name) == 0)
			return t[i].m;
	return HTTP_M_OTHER;
}

static struct http_req *req_from_head(struct conn *c, const uint8_t *p, const struct http_head *h)
{
	struct http_req *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->loop = c->l;
	r->conn = c;
	r->started = now_mono();
	r->method_name = strndup((const char *)p + h->method.off, h->method.len);
	r->uri = strndup((const char *)p + h->target.off, h->target.len);
	r->peer = strdup(c->peer);
	r->hdrs = calloc(h->n_hdrs ? h->n_hdrs : 1, sizeof(*r->hdrs));
	r->keep_alive = h->keep_alive;
	r->minor = h->minor;
	if (!r->method_name || !r->uri || !r->peer || !r->hdrs) {
		req_free(r);
		return NULL;
	}
	r->method = map_method(r->method_name);
	r->head_only = r->method == HTTP_M_HEAD;
	const char *q = strchr(r->uri, '?');
	r->path = q ? strndup(r->uri, (size_t)(q - r->uri)) : strdup(r->uri);
	r->query = q ? strdup(q + 1) : NULL;
	if (!r->path || (q && !r->query)) {
		req_free(r);
		return NULL;
	}
	for (size_t i = 0; i < h->n_hdrs; i++) {
		struct hdr *d = &r->hdrs[r->n_hdrs];
		d->name = strndup((const char *)p + h->name[i].off, h->name[i].len);
		d->value = strndup((const char *)p + h->value[i].off, h->value[i].len);
		if (!d->name || !d->value) {
			r->n_hdrs++;
			req_free(r);
			return NULL;
		}
		r->n_hdrs++;
	}
	return r;
}

/* 1: the head was read (now C_BODY or C_BUSY); 0: wait for bytes; -1: refused. */
static int read_head(struct conn *c)
{
	struct http_server *s = c->l->srv;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t n = evbuffer_get_length(in), look = n < s->o.max_headers ? n : s->o.max_headers;
	struct http_head h;
	struct err e;
	if (n == 0)
		return 0;
	c->got_bytes = 1;
	err_clear(&e);
	const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)look);
	int rc = http_head_parse(p, look, s->o.max_headers, &h, &e);
	if (rc == 0)
		return 0;
	if (rc < 0) {
		ratelog(&s->rl_frame, "refused a request head from %s: %s", c->peer, e.msg);
		conn_fail(c, 400, e.msg);
		return -1;
	}
	c->req = req_from_head(c, p, &h);
	evbuffer_drain(in, h.head_len);
	if (!c->req) {
		conn_fail(c, 500, "out of memory");
		return -1;
	}
	if (h.content_length > 0 && (size_t)h.content_length > s->o.max_body) {
		conn_fail(c, 413, "the request body is larger than this server accepts");
		return -1;
	}
	if (!h.chunked && h.content_length <= 0) {
		dispatch(c);
		return 1;
	}
	if (h.expect_continue && h.minor == 1)
		evbuffer_add(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n", 25);
	c->st = C_BODY;
	c->chunked = h.chunked;
	c->need = h.chunked ? 0 : (size_t)h.content_length;
	c->ck = CK_SIZE;
	c->ck_left = c->trailer_bytes = c->body_got = 0;
	c->phase_start = now_mono();
	c->deadline = c->phase_start + s->o.body_timeout_s;
	arm(c, s->o.body_timeout_s < 1.0 ? s->o.body_timeout_s : 1.0);
	return 1;
}

static void take_body(struct conn *c, struct evbuffer *in, size_t n)
{
	evbuffer_remove_buffer(in, c->body, n);
	c->body_got += n;
}

/* One CRLF-terminated line of at most max bytes into line (NUL-terminated): 1 read, 0 wait,
 * -1 too long. */
static int take_line(struct evbuffer *in, char *line, size_t max)
{
	size_t eol = 0;
	struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol, EVBUFFER_EOL_CRLF_STRICT);
	if (p.pos < 0)
		return evbuffer_get_length(in) > max ? -1 : 0;
	if ((size_t)p.pos > max)
		return -1;
	evbuffer_remove(in, line, (size_t)p.pos);
	line[p.pos] = 0;
	evbuffer_drain(in, eol);
	return 1;
}

/* chunk-size [ ";" chunk-ext ]: at most 8 hex digits. */
static int chunk_size(const char *line, size_t *out)
{
	size_t v = 0, i = 0;
	for (; line[i] && line[i] != ';'; i++) {
		char ch = line[i];
		int d = ch >= '0' && ch <= '9'   ? ch - '0'
		        : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
		        : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
		                                 : -1;
		if (d < 0 || i >= 8)
			return -1;
		v = v * 16 + (size_t)d;
	}
	if (i == 0)
		return -1;
	*out = v;
	return 0;
}

/* The chunked decoder: 1 body complete, 0 wait, -1 refused. */
static int read_chunked(struct conn *c, struct evbuffer *in)
{
	struct http_server *s = c->l->srv;
	char line[CHUNK_LINE_MAX + 1];
	for (;;) {
		size_t avail = evbuffer_get_length(in), n;
		int rc;
		switch (c->ck) {
		case CK_SIZE:
			rc = take_line(in, line, CHUNK_LINE_MAX);
			if (rc <= 0 || chunk_size(line, &n) != 0) {
				if (rc == 0)
					return 0;
				conn_fail(c, 400, "a malformed chunk-size line");
				return -1;
			}
			if (c->body_got + n > s->o.max_body) {
				conn_fail(c, 413,
				          "the request body is larger than this server accepts");
				return -1;
			}
			c->ck_left = n;
			c->ck = n ? CK_DATA : CK_TRAILER;
			break;
		case CK_DATA:
			n = avail < c->ck_left ? avail : c->ck_left;
			take_body(c, in, n);
			c->ck_left -= n;
			if (c->ck_left)
				return 0;
			c->ck = CK_DATA_END;
			break;
		case CK_DATA_END:
			if (avail < 2)
				return 0;
			if (memcmp(evbuffer_pullup(in, 2), "\r\n", 2) != 0) {
				conn_fail(c, 400, "a chunk does not end with CRLF");
				return -1;
			}
			evbuffer_drain(in, 2);
			c->ck = CK_SIZE;
			break;
		case CK_TRAILER:
			rc = take_line(in, line, CHUNK_LINE_MAX);
			if (rc == 0)
				return 0;
			if (rc < 0 || (c->trailer_bytes += strlen(line) + 2) > s->o.max_headers) {
				conn_fail(c, 400, "the chunked trailer is too long");
				return -1;
			}
			if (line[0] == 0)
				return 1;
			break;
		}
	}
}

/* 1: body complete and dispatched; 0: wait; -1: refused. */
static int read_body(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	if (c->chunked) {
		int rc = read_chunked(c, in);
		if (rc <= 0)
			return rc;
	} else {
		size_t avail = evbuffer_get_length(in), n = avail < c->need ? avail : c->need;
		take_body(c, in, n);
		c->need -= n;
		if (c->need)
			return 0;
	}
	struct http_req *r = c->req;
	size_t len = evbuffer_get_length(c->body);
	r->body = malloc(len + 1);
	if (!r->body) {
		conn_fail(c, 500, "out of memory");
		return -1;
	}
	evbuffer_remove(c->body, r->body, len);
	r->body[len] = 0;
	r->body_len = len;
	dispatch(c);
	return 1;
}

static void pump_once(struct conn *c)
{
	for (;;) {
		if (c->st == C_IDLE) {
			if (evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
				return;
			start_head(c);
		}
		if (c->st == C_HEAD && read_head(c) <= 0)
			return;
		if (c->st == C_BODY && read_body(c) <= 0)
			return;
		if (c->st != C_IDLE)
			return;
	}
}

/* Read as many requests as the input holds, one at a time. */
static void conn_pump(struct conn *c)
{
	c->in_pump = 1;
	pump_once(c);
	c->in_pump = 0;
	if (c->free_pending)
		conn_free(c);
	else if (c->l->srv->balance && c->st == C_IDLE)
		conn_maybe_move(c);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	if (c->st == C_LINGER) {
		struct evbuffer *in = bufferevent_get_input(bev);
		c->lingered += evbuffer_get_length(in);
		evbuffer_drain(in, evbuffer_get_length(in));
		if (c->lingered > LINGER_MAX)
			conn_free(c);
		return;
	}
	if (c->st == C_IDLE || c->st == C_HEAD || c->st == C_BODY) {
		conn_pump(c);
		return;
	}
	/* C_BUSY or C_FLUSH: what a pipelining client sends next waits in the input buffer for
	 * the reply to leave; past max_headers the socket is not read until then (start_idle).
	 * Reading is not switched off for every request: a request answered in a later loop
	 * turn (the AS, Redis, the pool) cost two epoll_ctl calls, off and on again: 4 of a
	 * handshake's 25-34 syscalls. */
	if (evbuffer_get_length(bufferevent_get_input(bev)) > c->l->srv->o.max_headers)
		bufferevent_disable(bev, EV_READ);
}

static void on_written(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	if (c->st == C_FLUSH) {
		start_idle(c);
		conn_pump(c);
	} else if (c->st == C_CLOSING) {
		int fd = (int)bufferevent_getfd(bev);
		if (fd >= 0)
			shutdown(fd, SHUT_WR);
		c->st = C_LINGER;
		c->lingered = 0;
		arm(c, LINGER_S);
		bufferevent_enable(bev, EV_READ);
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		return;
	/* A client that half-closes after its request still gets the reply: the bufferevent
	 * has stopped reading, and start_idle's read after the reply meets the EOF again. */
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
	    (c->st == C_BUSY || c->st == C_FLUSH))
		return;
	conn_drop(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct http_server *s = c->l->srv;
	double now = now_mono(), spent = now - c->phase_start;
	char why[160];
	(void)fd;
	(void)what;
	switch (c->st) {
	case C_HEAD:
		if (!c->got_bytes) { /* nothing (or only a TLS handshake) came: just close */
			conn_free(c);
			return;
		}
		snprintf(why, sizeof(why), "the request head did not arrive within %.3g s",
		         s->o.head_timeout_s);
		break;
	case C_BODY:
		if (now < c->deadline &&
		    !(s->o.min_body_rate && spent + TIMER_SLACK_S >= RATE_GRACE_S &&
		      (double)c->body_got < (double)s->o.min_body_rate * spent)) {
			arm(c, c->deadline - now < 1.0 ? c->deadline - now : 1.0);
			return;
		}
		if (now < c->deadline)
			snprintf(why, sizeof(why), "the request body came slower than %zu bytes/s",
			         s->o.min_body_rate);
		else
			snprintf(why, sizeof(why), "the request body did not arrive within %.3g s",
			         s->o.body_timeout_s);
		break;
	case C_BUSY:
		return;
	default: /* idle keep-alive, a reply nobody reads, the end of a linger */
		conn_free(c);
		return;
	}
	ratelog(&s->rl_cut, "closed a connection from %s: %s", c->peer, why);
	conn_fail(c, 408, why);
}

/* On l's thread: c (its fd, peer and admission set) gets its bufferevent and timer on l and
 * starts reading, in C_HEAD when new, else in C_IDLE (it moved here between requests). */
static void conn_attach(struct http_loop *l, struct conn *c)
{
	struct http_server *s = l->srv;
	SSL *ssl = NULL;
	c->l = l;
	c->next = l->conns;
	c->prev = NULL;
	if (l->conns)
		l->conns->prev = c;
	l->conns = c;
	c->linked = 1;
	atomic_fetch_add(&l->n_conns, 1);
	if (s->o.tls_ctx) {
		ssl = SSL_new(s->o.tls_ctx);
		c->bev = ssl ? bufferevent_openssl_socket_new(
		                   l->base, c->fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
		                   BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS)
		             : NULL;
		if (c->bev)
			c->fd = -1; /* the bufferevent closes it with the SSL */
		else if (ssl)
			SSL_free(ssl);
	} else {
		c->bev = bufferevent_socket_new(l->base, c->fd, 0);
	}
	if (!c->body)
		c->body = evbuffer_new();
	c->timer = evtimer_new(l->base, on_timer, c);
	if (!c->bev || !c->body || !c->timer) {
		conn_free(c);
		return;
	}
	if (ssl) /* clients that close without close_notify are normal */
		bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	struct timeval wt = {.tv_sec = s->o.timeout_s};
	bufferevent_set_timeouts(c->bev, NULL, &wt);
	bufferevent_setcb(c->bev, on_read, on_written, on_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (c->fresh)
		start_head(c); /* a new connection owes its first head (and handshake) at once */
	else
		start_idle(c);
	c->fresh = 0;
}

/* Hands c (no bufferevent, on no list) to loop t, which attaches it from its wake event. */
static void conn_send(struct http_loop *t, struct conn *c)
{
	c->l = t;
	pthread_mutex_lock(&t->mu);
	c->next = t->inbox;
	t->inbox = c;
	pthread_mutex_unlock(&t->mu);
	event_active(t->wake, EV_READ, 0);
}

/* --- placement (see the top of the file) --- */

int http_balance(const double *busy, int n, int from, double threshold)
{
	if (n <= 1)
		return 0;
	if (from < 0 || from >= n) {
		int least = 0;
		for (int i = 0; i < n; i++) {
			if (busy[i] < threshold)
				return i;
			if (busy[i] < busy[least])
				least = i;
		}
		return least;
	}
	for (int t = 0; t < from; t++)
		if (busy[t] + busy[from] < 0.75 * threshold)
			return t;
	if (busy[from] > threshold)
		for (int t = 0; t < n; t++)
			if (t != from && busy[t] < 0.5 * threshold)
				return t;
	return from;
}

/* On l's thread: closes l's window when it is BUSY_WINDOW_S old, publishing the fraction of a
 * core its thread used in it. */
static void loop_tick(struct http_loop *l, double now)
{
	if (now - l->win_start < BUSY_WINDOW_S)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	double cpu = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	if (l->win_start > 0) {
		double busy = (cpu - l->win_cpu) / (now - l->win_start);
		atomic_store(&l->busy_pm, (int)(busy > 1 ? 1000 : busy * 1000));
		atomic_store(&l->busy_at_ms, (long long)(now * 1000));
	}
	l->win_start = now;
	l->win_cpu = cpu;
	l->spread_left = -1;
}

/* Every loop's busy fraction; one that measured nothing lately answered nothing: quiet. */
#define BALANCE_LOOPS_MAX 64
static void loops_busy(const struct http_server *s, double now, double *busy)
{
	long long ms = (long long)(now * 1000);
	for (int i = 0; i < s->n_loops; i++) {
		struct http_loop *l = &s->loops[i];
		long long at = atomic_load(&l->busy_at_ms);
		busy[i] = ms - at > BUSY_STALE_MS ? 0 : atomic_load(&l->busy_pm) / 1000.0;
	}
}

/* On c's loop, after a reply, with the connection idle and nothing in its buffers: moves it
 * where http_balance says. A loop hands away at most the share of its connections that
 * evens it with the quieter loop per window (its measure lags the move). */
static void conn_maybe_move(struct conn *c)
{
	struct http_loop *l = c->l;
	struct http_server *s = l->srv;
	double now = now_mono(), busy[BALANCE_LOOPS_MAX];
	if (atomic_load(&s->closing)) /* the other loops may be stopped or freed */
		return;
	loop_tick(l, now);
	if (c->st != C_IDLE || c->dead || !c->bev ||
	    evbuffer_get_length(bufferevent_get_input(c->bev)) ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)))
		return;
	int from = (int)(l - s->loops);
	loops_busy(s, now, busy);
	int t = http_balance(busy, s->n_loops, from, s->o.balance_busy);
	if (t == from)
		return;
	if (busy[from] > s->o.balance_busy) { /* spreading */
		if (l->spread_left < 0) {
			long n = atomic_load(&l->n_conns);
			l->spread_left =
			    (long)((double)n * (busy[from] - busy[t]) / (2 * busy[from]));
			if (l->spread_left < 1)
				l->spread_left = 1;
		}
		if (l->spread_left == 0)
			return;
		l->spread_left--;
	}
	bufferevent_free(c->bev); /* not the socket: plain bufferevents do not own it */
	c->bev = NULL;
	event_free(c->timer);
	c->timer = NULL;
	conn_unlink(c);
	conn_send(&s->loops[t], c);
}

/* On the accepting loop: a connection for fd, placed on the lowest loop with headroom. */
static void conn_new(struct http_loop *l, evutil_socket_t fd, const char *peer, int admitted)
{
	struct http_server *s = l->srv;
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		evutil_closesocket(fd);
		if (admitted && s->o.release)
			s->o.release(s->o.ctx, peer);
		atomic_fetch_sub(&s->nconns, 1);
		return;
	}
	c->l = l;
	c->fd = (int)fd;
	c->fresh = 1;
	c->admitted = admitted;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	if (!s->balance || atomic_load(&s->closing)) {
		conn_attach(l, c);
		return;
	}
	double now = now_mono(), busy[BALANCE_LOOPS_MAX];
	loop_tick(l, now);
	loops_busy(s, now, busy);
	struct http_loop *t = &s->loops[http_balance(busy, s->n_loops, -1, s->o.balance_busy)];
	if (t == l)
		conn_attach(l, c);
	else
		conn_send(t, c);
}

static void on_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
	struct listener *li = arg;
	struct http_server *s = li->l->srv;
	char peer[64] = "";
	(void)lis;
	if (getnameinfo(sa, (socklen_t)salen, peer, sizeof(peer), NULL, 0, NI_NUMERICHOST) != 0)
		peer[0] = 0;
	long n = atomic_fetch_add(&s->nconns, 1) + 1;
	if (n > s->max_conns) {
		atomic_fetch_sub(&s->nconns, 1);
		evutil_closesocket(fd);
		ratelog(&s->rl_cap, "%ld connections open (the cap): refused one from %s",
		        s->max_conns, peer);
		return;
	}
	if (s->o.admit && !s->o.admit(s->o.ctx, peer)) {
		atomic_fetch_sub(&s->nconns, 1);
		evutil_closesocket(fd);
		ratelog(&s->rl_admit, "refused a connection from %s: its address has too many open",
		        peer);
		return;
	}
	conn_new(li->l, fd, peer, s->o.admit != NULL);
}

/* Out of fds (or buffers): pause this listener for a moment instead of spinning on accept. */
static void on_accept_error(struct evconnlistener *lis, void *arg)
{
	struct listener *li = arg;
	struct http_server *s = li->l->srv;
	int e = EVUTIL_SOCKET_ERROR();
	if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
		struct timeval tv = {.tv_usec = 250000};
		evconnlistener_disable(lis);
		evtimer_add(li->resume, &tv);
		ratelog(&s->rl_accept, "accept: %s; new connections wait 250 ms", strerror(e));
		return;
	}
	ratelog(&s->rl_accept, "accept: %s", strerror(e));
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct listener *li = arg;
	(void)fd;
	(void)what;
	evconnlistener_enable(li->lis);
}

/* --- listening sockets --- */

static int listen_on(const char *spec, int *port_out, struct err *err)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	if (!colon || colon == spec || !colon[1])
		return err_set(err, "socket \"%s\" is not of the form ip:port", spec);
	size_t hl = (size_t)(colon - spec);
	if (spec[0] == '[') {
		if (hl < 2 || spec[hl - 1] != ']')
			return err_set(err, "socket \"%s\" is not of the form [ipv6]:port", spec);
		if (hl - 2 >= sizeof(host))
			return err_set(err, "socket \"%s\": host too long", spec);
		memcpy(host, spec + 1, hl - 2);
		host[hl - 2] = 0;
	} else {
		if (hl >= sizeof(host))
			return err_set(err, "socket \"%s\": host too long", spec);
		memcpy(host, spec, hl);
		host[hl] = 0;
	}
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || port < 0 || port > 65535)
		return err_set(err, "socket \"%s\": bad port", spec);
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	                         .ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_NUMERICHOST | AI_PASSIVE};
	struct addrinfo *ai = NULL;
	int rc = getaddrinfo(host, colon + 1, &hints, &ai);
	if (rc != 0) {
		hints.ai_flags = AI_PASSIVE; /* allow "localhost" */
		rc = getaddrinfo(host, colon + 1, &hints, &ai);
	}
	if (rc != 0)
		return err_set(err, "socket \"%s\": %s", spec, gai_strerror(rc));
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		freeaddrinfo(ai);
		return err_set(err, "socket \"%s\": %s", spec, strerror(errno));
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
		int e = errno;
		freeaddrinfo(ai);
		close(fd);
		return err_set(err, "cannot listen on %s: %s", spec, strerror(e));
	}
	freeaddrinfo(ai);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	*port_out = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
	                                     : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;
static void evthread_init(void)
{
	evthread_use_pthreads();
}

/* RLIMIT_NOFILE less what the daemon needs besides client connections. */
static long conns_from_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return 1L << 20;
	long n = (long)rl.rlim_cur - HTTP_FD_RESERVE;
	return n < 16 ? 16 : n;
}

static void set_defaults(struct http_server_opts *o)
{
	if (o->threads <= 0)
		o->threads = 2;
	if (o->pool_threads <= 0)
		o->pool_threads = 16;
	if (o->max_body == 0)
		o->max_body = 2u << 20;
	if (o->max_headers == 0)
		o->max_headers = 64u << 10;
	if (o->timeout_s <= 0)
		o->timeout_s = 30;
	if (o->head_timeout_s <= 0)
		o->head_timeout_s = o->timeout_s;
	if (o->body_timeout_s <= 0)
		o->body_timeout_s = o->timeout_s;
	if (o->balance_busy == 0)
		o->balance_busy = HTTP_BALANCE_BUSY;
}

static int loop_init(struct http_server *s, struct http_loop *l, struct err *err)
{
	l->srv = s;
	pthread_mutex_init(&l->mu, NULL);
	/* With the change list, a read interest dropped for a request and set again when it was
	 * answered within the same loop turn (an /auth answered on the loop) costs no epoll_ctl;
	 * libevent's one caveat, descriptors cloned by dup(), does not arise on these bases. */
	struct event_config *cfg = event_config_new();
	if (cfg)
		event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	l->base = cfg ? event_base_new_with_config(cfg) : NULL;
	if (cfg)
		event_config_free(cfg);
	l->wake = l->base ? event_new(l->base, -1, EV_PERSIST, wake_cb, l) : NULL;
	l->direct = evbuffer_new(); /* NULL: every reply through the bufferevent */
	l->lis = calloc(s->n_fds, sizeof(*l->lis));
	if (!l->wake || !l->lis)
		return err_set(err, "cannot create an event loop");
	for (size_t k = 0; k < s->n_fds && (!s->balance || l == s->loops); k++) {
		struct listener *li = &l->lis[k];
		li->l = l;
		/* no LEV_OPT_CLOSE_ON_FREE: the fd is shared by every loop */
		li->lis =
		    evconnlistener_new(l->base, on_accept, li, LEV_OPT_REUSEABLE, 0, s->fds[k]);
		li->resume = evtimer_new(l->base, on_resume, li);
		l->n_lis++;
		if (!li->lis || !li->resume)
			return err_set(err, "cannot attach the listening socket to a loop");
		evconnlistener_set_error_cb(li->lis, on_accept_error);
	}
	return 0;
}

struct http_server *http_server_new(const struct http_server_opts *opts, struct err *err)
{
	pthread_once(&evthread_once, evthread_init);
	if (!opts->handler || opts->n_sockets == 0) {
		err_set(err, "http server needs a handler and at least one socket");
		return NULL;
	}
	struct http_server *s = calloc(1, sizeof(*s));
	if (!s) {
		err_set(err, "out of memory");
		return NULL;
	}
	s->o = *opts;
	set_defaults(&s->o);
	s->max_conns = s->o.max_conns > 0 ? s->o.max_conns : conns_from_fd_limit();
	s->balance = !s->o.tls_ctx && s->o.threads > 1 && s->o.threads <= BALANCE_LOOPS_MAX &&
	             s->o.balance_busy >= 0;
	if (s->o.tls_ctx)
		SSL_CTX_up_ref(s->o.tls_ctx);
	pthread_mutex_init(&s->qmu, NULL);
	pthread_cond_init(&s->qcv, NULL);
	s->fds = calloc(opts->n_sockets, sizeof(int));
	s->ports = calloc(opts->n_sockets, sizeof(int));
	s->loops = calloc((size_t)s->o.threads, sizeof(*s->loops));
	if (!s->fds || !s->ports || !s->loops) {
		err_set(err, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < opts->n_sockets; i++) {
		int fd = listen_on(opts->sockets[i], &s->ports[i], err);
		if (fd < 0)
			goto fail;
		s->fds[i] = fd;
		s->n_fds++;
	}
	for (int i = 0; i < s->o.threads; i++) {
		s->n_loops++;
		if (loop_init(s, &s->loops[i], err) != 0)
			goto fail;
	}
	return s;
fail:
	http_server_free(s);
	return NULL;
}

int http_server_port(const struct http_server *s, size_t i)
{
	return i < s->n_fds ? s->ports[i] : -1;
}

long http_server_max_conns(const struct http_server *s)
{
	return s->max_conns;
}

long http_server_conns(const struct http_server *s)
{
	return atomic_load(&((struct http_server *)s)->nconns);
}

static void *loop_main(void *arg)
{
	struct http_loop *l = arg;
	event_base_loop(l->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

int http_server_start(struct http_server *s, struct err *err)
{
	s->workers = calloc((size_t)s->o.pool_threads, sizeof(pthread_t));
	if (!s->workers)
		return err_set(err, "out of memory");
	for (int i = 0; i < s->o.pool_threads; i++) {
		if (pthread_create(&s->workers[i], NULL, worker_main, s) != 0)
			break;
		s->n_workers++;
	}
	for (int i = 0; i < s->n_loops; i++) {
		struct http_loop *l = &s->loops[i];
		if (pthread_create(&l->tid, NULL, loop_main, l) != 0)
			return err_set(err, "cannot start an event loop thread");
		l->started = 1;
	}
	return 0;
}

void http_server_stop(struct http_server *s)
{
	atomic_store(&s->closing, 1); /* no connection moves to a loop that is stopping */
	/* Drain the worker pool first: its replies still need running loops. */
	pthread_mutex_lock(&s->qmu);
	s->stopping = 1;
	pthread_cond_broadcast(&s->qcv);
	pthread_mutex_unlock(&s->qmu);
	for (int i = 0; i < s->n_workers; i++)
		pthread_join(s->workers[i], NULL);
	s->n_workers = 0;
	for (int i = 0; i < s->n_loops; i++) {
		struct http_loop *l = &s->loops[i];
		if (!l->started)
			continue;
		/* let queued replies go out, then stop */
		event_active(l->wake, EV_READ, 0);
		event_base_loopexit(l->base, NULL);
		pthread_join(l->tid, NULL);
		l->started = 0;
	}
}

void http_server_free(struct http_server *s)
{
	if (!s)
		return;
	atomic_store(&s->closing, 1);
	/* replies that came after the loops stopped (the kbs's loop clients answer their calls
	 * in flight as they close), on every loop before any loop is freed */
	for (int i = 0; i < s->n_loops; i++)
		if (s->loops[i].wake)
			wake_cb(-1, 0, &s->loops[i]);
	for (int i = 0; i < s->n_loops; i++) {
		struct http_loop *l = &s->loops[i];
		while (l->conns) {
			l->conns->in_pump = 0;
			if (l->conns->dead)
				l->conns->req = NULL; /* its reply never came; nobody holds it */
			conn_free(l->conns);
		}
		for (size_t k = 0; k < l->n_lis; k++) {
			if (l->lis[k].lis)
				evconnlistener_free(l->lis[k].lis);
			if (l->lis[k].resume)
				event_free(l->lis[k].resume);
		}
		free(l->lis);
		if (l->wake)
			event_free(l->wake);
		if (l->direct)
			evbuffer_free(l->direct);
		if (l->base)
			event_base_free(l->base);
		pthread_mutex_destroy(&l->mu);
	}
	for (size_t i = 0; i < s->n_fds; i++)
		close(s->fds[i]);
	free(s->fds);
	free(s->ports);
	free(s->loops);
	free(s->workers);
	pthread_mutex_destroy(&s->qmu);
	pthread_cond_destroy(&s->qcv);
	SSL_CTX_free(s->o.tls_ctx);
	free(s);
}
