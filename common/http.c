/*
 * http: evhttp server with several event loops on shared listening sockets, a worker pool
 * for blocking handlers, and cross-thread replies (see http.h for the model).
 *
 * Ownership: a `struct http_req` is created by the loop that read the request and freed by
 * the same loop right after the reply was given to evhttp. The evhttp_request inside is
 * touched only on that loop's thread. A reply made elsewhere is parked on the loop's
 * `done` list and an event is activated (event_active is thread-safe once
 * evthread_use_pthreads ran); the loop then sends it. If the client went away meanwhile,
 * evhttp has detached the request from its connection and frees it when we "send".
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

struct hdr {
	char *name;
	char *value;
};

struct http_loop;

struct http_req {
	struct http_loop *loop;
	struct evhttp_request *ev; /* loop thread only */
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

struct http_loop {
	struct http_server *srv;
	struct event_base *base;
	struct evhttp *http;
	struct event *wake;
	pthread_t tid;
	int started;
	pthread_mutex_t mu;
	struct http_req *done_head, *done_tail;
};

struct http_server {
	struct http_server_opts o;
	int *fds;
	int *ports;
	size_t n_fds;
	struct http_loop *loops;
	int n_loops;
	/* worker pool */
	pthread_t *workers;
	int n_workers;
	pthread_mutex_t qmu;
	pthread_cond_t qcv;
	struct http_req *qhead, *qtail;
	int stopping;
};

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

void http_date(long long t, char *buf, size_t len)
{
	static const char *wd[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *mo[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d GMT", wd[tm.tm_wday], tm.tm_mday,
	         mo[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
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

static void send_now(struct http_req *r)
{
	struct evhttp_request *ev = r->ev;
	struct evkeyvalq *oh = evhttp_request_get_output_headers(ev);
	if (r->ctype)
		evhttp_add_header(oh, "Content-Type", r->ctype);
	for (size_t i = 0; i < r->n_rhdrs; i++)
		evhttp_add_header(oh, r->rhdrs[i].name, r->rhdrs[i].value);
	struct evbuffer *b = evbuffer_new();
	if (b && r->rbody_len)
		evbuffer_add(b, r->rbody, r->rbody_len);
	evhttp_send_reply(ev, r->status, http_reason(r->status), b);
	if (b)
		evbuffer_free(b);
	struct http_server *s = r->loop->srv;
	if (s->o.done)
		s->o.done(s->o.ctx, r, r->status, r->rbody_len, now_mono() - r->started);
	req_free(r);
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

void http_reply(struct http_req *r, int status, const char *content_type, const void *body,
                size_t len)
{
	if (r->replied) {
		log_error("http: second reply to %s %s ignored", r->method_name, r->uri);
		return;
	}
	r->replied = 1;
	r->status = status;
	r->ctype = content_type ? strdup(content_type) : NULL;
	if (len) {
		r->rbody = malloc(len);
		if (r->rbody) {
			memcpy(r->rbody, body, len);
			r->rbody_len = len;
		}
	}
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

void http_reply_json(struct http_req *r, int status, const json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!s) {
		http_reply(r, 500, NULL, NULL, 0);
		return;
	}
	http_reply(r, status, "application/json", s, strlen(s));
	free(s);
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
	http_reply(r, status, "application/json", s, strlen(s));
	free(s);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_loop *l = arg;
	pthread_mutex_lock(&l->mu);
	struct http_req *r = l->done_head;
	l->done_head = l->done_tail = NULL;
	pthread_mutex_unlock(&l->mu);
	while (r) {
		struct http_req *next = r->next;
		send_now(r);
		r = next;
	}
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

/* --- request intake --- */

static enum http_method map_method(enum evhttp_cmd_type c, const char **name)
{
	switch (c) {
	case EVHTTP_REQ_GET:
		*name = "GET";
		return HTTP_M_GET;
	case EVHTTP_REQ_POST:
		*name = "POST";
		return HTTP_M_POST;
	case EVHTTP_REQ_PUT:
		*name = "PUT";
		return HTTP_M_PUT;
	case EVHTTP_REQ_DELETE:
		*name = "DELETE";
		return HTTP_M_DELETE;
	case EVHTTP_REQ_HEAD:
		*name = "HEAD";
		return HTTP_M_HEAD;
	case EVHTTP_REQ_OPTIONS:
		*name = "OPTIONS";
		return HTTP_M_OTHER;
	case EVHTTP_REQ_TRACE:
		*name = "TRACE";
		return HTTP_M_OTHER;
	case EVHTTP_REQ_CONNECT:
		*name = "CONNECT";
		return HTTP_M_OTHER;
	case EVHTTP_REQ_PATCH:
		*name = "PATCH";
		return HTTP_M_OTHER;
	default:
		*name = "UNKNOWN";
		return HTTP_M_OTHER;
	}
}

static void request_cb(struct evhttp_request *ev, void *arg)
{
	struct http_loop *l = arg;
	struct http_req *r = calloc(1, sizeof(*r));
	if (!r) {
		evhttp_send_error(ev, 500, NULL);
		return;
	}
	r->loop = l;
	r->ev = ev;
	r->started = now_mono();
	const char *mname;
	r->method = map_method(evhttp_request_get_command(ev), &mname);
	r->method_name = strdup(mname);
	const char *uri = evhttp_request_get_uri(ev);
	r->uri = strdup(uri ? uri : "/");
	const char *q = r->uri ? strchr(r->uri, '?') : NULL;
	if (r->uri) {
		r->path = q ? strndup(r->uri, (size_t)(q - r->uri)) : strdup(r->uri);
		r->query = q ? strdup(q + 1) : NULL;
	}
	struct evhttp_connection *conn = evhttp_request_get_connection(ev);
	if (conn) {
		char *addr = NULL;
		ev_uint16_t port = 0;
		evhttp_connection_get_peer(conn, &addr, &port);
		r->peer = strdup(addr ? addr : "");
	}
	struct evkeyvalq *ih = evhttp_request_get_input_headers(ev);
	size_t n = 0;
	for (struct evkeyval *kv = ih->tqh_first; kv; kv = kv->next.tqe_next)
		n++;
	r->hdrs = calloc(n ? n : 1, sizeof(*r->hdrs));
	if (r->hdrs) {
		for (struct evkeyval *kv = ih->tqh_first; kv; kv = kv->next.tqe_next) {
			r->hdrs[r->n_hdrs].name = strdup(kv->key);
			r->hdrs[r->n_hdrs].value = strdup(kv->value);
			if (!r->hdrs[r->n_hdrs].name || !r->hdrs[r->n_hdrs].value) {
				free(r->hdrs[r->n_hdrs].name);
				free(r->hdrs[r->n_hdrs].value);
				continue;
			}
			r->n_hdrs++;
		}
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(ev);
	size_t bl = evbuffer_get_length(in);
	r->body = malloc(bl + 1);
	if (r->body) {
		evbuffer_remove(in, r->body, bl);
		r->body[bl] = 0;
		r->body_len = bl;
	}
	if (!r->method_name || !r->uri || !r->path || !r->hdrs || !r->body) {
		r->replied = 1;
		r->status = 500;
		send_now(r);
		return;
	}
	l->srv->o.handler(l->srv->o.ctx, r);
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

/* evhttp asks for each accepted connection's bufferevent: an OpenSSL one, server side. */
static struct bufferevent *tls_bev(struct event_base *base, void *arg)
{
	struct http_server *s = arg;
	SSL *ssl = SSL_new(s->o.tls_ctx);
	if (!ssl)
		return NULL;
	struct bufferevent *bev =
	    bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                   BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (!bev) {
		SSL_free(ssl);
		return NULL;
	}
	/* clients that close without close_notify are normal; do not treat them as errors */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;
static void evthread_init(void)
{
	evthread_use_pthreads();
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
	if (s->o.threads <= 0)
		s->o.threads = 2;
	if (s->o.pool_threads <= 0)
		s->o.pool_threads = 16;
	if (s->o.max_body == 0)
		s->o.max_body = 2u << 20;
	if (s->o.max_headers == 0)
		s->o.max_headers = 64u << 10;
	if (s->o.timeout_s <= 0)
		s->o.timeout_s = 30;
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
		struct http_loop *l = &s->loops[i];
		l->srv = s;
		pthread_mutex_init(&l->mu, NULL);
		l->base = event_base_new();
		l->http = l->base ? evhttp_new(l->base) : NULL;
		l->wake = l->base ? event_new(l->base, -1, EV_PERSIST, wake_cb, l) : NULL;
		s->n_loops++;
		if (!l->http || !l->wake) {
			err_set(err, "cannot create an event loop");
			goto fail;
		}
		evhttp_set_max_body_size(l->http, (ev_ssize_t)s->o.max_body);
		evhttp_set_max_headers_size(l->http, (ev_ssize_t)s->o.max_headers);
		evhttp_set_timeout(l->http, s->o.timeout_s);
		evhttp_set_allowed_methods(
		    l->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
		                 EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH |
		                 EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT);
		evhttp_set_default_content_type(l->http, NULL);
		evhttp_set_gencb(l->http, request_cb, l);
		if (s->o.tls_ctx)
			evhttp_set_bevcb(l->http, tls_bev, s);
		for (size_t k = 0; k < s->n_fds; k++) {
			/* no LEV_OPT_CLOSE_ON_FREE: the fd is shared by every loop */
			struct evconnlistener *lis = evconnlistener_new(
			    l->base, NULL, NULL, LEV_OPT_REUSEABLE, 0, s->fds[k]);
			if (!lis || !evhttp_bind_listener(l->http, lis)) {
				if (lis)
					evconnlistener_free(lis);
				err_set(err, "cannot attach the listening socket to a loop");
				goto fail;
			}
		}
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
	for (int i = 0; i < s->n_loops; i++) {
		struct http_loop *l = &s->loops[i];
		if (l->http)
			evhttp_free(l->http);
		if (l->wake)
			event_free(l->wake);
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
