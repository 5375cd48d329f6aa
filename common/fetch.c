/*
 * fetch: the one outbound HTTP(S) client (see fetch.h for the contract).
 *
 * The body cap is checked in the write callback before a byte is copied, and libcurl is also
 * told the cap so an announced Content-Length above it is refused before the body starts.
 * Response headers are read in the header callback; a new status line (100 Continue, or a
 * proxy's CONNECT answer) starts them over, so only the final answer's headers are kept.
 *
 * libcurl is opened on the first fetch (dlib.h), not at exec: a daemon that never fetches
 * does not map it and the ~30 libraries it pulls in. The calls below go through the table
 * `cl`; the names stay libcurl's, mapped onto the table by macros after it is filled.
 */
#include <ctype.h>
#include <errno.h>
#define CURL_DISABLE_TYPECHECK /* the setopt checks are macros over the linked function */
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dlib.h"
#include "fetch.h"

static struct {
	__typeof__(curl_global_init) *curl_global_init;
	__typeof__(curl_easy_init) *curl_easy_init;
	__typeof__(curl_easy_setopt) *curl_easy_setopt;
	__typeof__(curl_easy_perform) *curl_easy_perform;
	__typeof__(curl_easy_getinfo) *curl_easy_getinfo;
	__typeof__(curl_easy_cleanup) *curl_easy_cleanup;
	__typeof__(curl_easy_strerror) *curl_easy_strerror;
	__typeof__(curl_slist_append) *curl_slist_append;
	__typeof__(curl_slist_free_all) *curl_slist_free_all;
	__typeof__(curl_getdate) *curl_getdate;
} cl;
static struct err cl_err; /* why libcurl could not be opened (set once, under curl_once) */
static int cl_failed;

static void curl_init(void)
{
	const struct dlib_sym syms[] = {
	    DLIB_SYM(cl, curl_global_init),    DLIB_SYM(cl, curl_easy_init),
	    DLIB_SYM(cl, curl_easy_setopt),    DLIB_SYM(cl, curl_easy_perform),
	    DLIB_SYM(cl, curl_easy_getinfo),   DLIB_SYM(cl, curl_easy_cleanup),
	    DLIB_SYM(cl, curl_easy_strerror),  DLIB_SYM(cl, curl_slist_append),
	    DLIB_SYM(cl, curl_slist_free_all), DLIB_SYM(cl, curl_getdate),
	};
	cl_failed = dlib_open("libcurl.so.4", syms, sizeof(syms) / sizeof(syms[0]), &cl_err) != 0;
	if (!cl_failed)
		cl.curl_global_init(CURL_GLOBAL_DEFAULT);
}
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

#undef curl_easy_setopt /* curl.h's pass-through macros */
#undef curl_easy_getinfo
#define curl_easy_init cl.curl_easy_init
#define curl_easy_setopt cl.curl_easy_setopt
#define curl_easy_perform cl.curl_easy_perform
#define curl_easy_getinfo cl.curl_easy_getinfo
#define curl_easy_cleanup cl.curl_easy_cleanup
#define curl_easy_strerror cl.curl_easy_strerror
#define curl_slist_append cl.curl_slist_append
#define curl_slist_free_all cl.curl_slist_free_all
#define curl_getdate cl.curl_getdate

#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_MAX_BYTES (4u << 20)

struct call {
	struct fetch_result *r;
	const struct fetch_opts *o;
	size_t max;
	int overflow, oom;
};

/* Append n bytes; the old block may hold part of a secret, so it is copied out and wiped
 * before it goes back to the allocator (no realloc). Keeps a NUL after the body. */
static size_t on_data(char *d, size_t sz, size_t nm, void *u)
{
	struct call *c = u;
	struct fetch_result *r = c->r;
	size_t n = sz * nm;
	if (n > c->max - r->len) {
		c->overflow = 1;
		return 0;
	}
	if (r->len + n + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		while (cap < r->len + n + 1)
			cap *= 2;
		char *np = malloc(cap);
		if (!np) {
			c->oom = 1;
			return 0;
		}
		if (r->body) {
			memcpy(np, r->body, r->len);
			OPENSSL_cleanse(r->body, r->cap);
			free(r->body);
		}
		r->body = np;
		r->cap = cap;
	}
	memcpy(r->body + r->len, d, n);
	r->len += n;
	r->body[r->len] = 0;
	return n;
}

long fetch_parse_retry_after(const char *v, long now)
{
	while (*v == ' ' || *v == '\t')
		v++;
	if (isdigit((unsigned char)*v)) {
		char *end;
		long s = strtol(v, &end, 10);
		while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
			end++;
		return *end == 0 && s >= 0 ? s : -1;
	}
	if (*v == 0)
		return -1;
	time_t t = curl_getdate(v, NULL);
	if (t == -1)
		return -1;
	return t > now ? (long)(t - now) : 0;
}

/* "Name: value\r\n" -> value without surrounding blanks, or NULL if the name differs. */
static const char *header_value(const char *line, size_t n, const char *name, size_t *vlen)
{
	size_t hl = strlen(name);
	if (n <= hl || strncasecmp(line, name, hl) != 0 || line[hl] != ':')
		return NULL;
	const char *v = line + hl + 1;
	size_t vl = n - hl - 1;
	while (vl > 0 && (*v == ' ' || *v == '\t'))
		v++, vl--;
	while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
		vl--;
	*vlen = vl;
	return v;
}

static size_t on_header(char *line, size_t sz, size_t nm, void *u)
{
	struct call *c = u;
	struct fetch_result *r = c->r;
	size_t n = sz * nm, vl;
	const char *v;
	if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
		for (int i = 0; i < FETCH_MAX_KEEP; i++) {
			free(r->kept[i]);
			r->kept[i] = NULL;
		}
		r->retry_after = -1;
		return n;
	}
	if ((v = header_value(line, n, "Retry-After", &vl)) != NULL) {
		char tmp[128];
		snprintf(tmp, sizeof(tmp), "%.*s", (int)(vl < sizeof(tmp) ? vl : sizeof(tmp) - 1),
		         v);
		r->retry_after = fetch_parse_retry_after(tmp, (long)time(NULL));
	}
	for (int i = 0; i < FETCH_MAX_KEEP && c->o && c->o->keep[i]; i++) {
		if ((v = header_value(line, n, c->o->keep[i], &vl)) == NULL)
			continue;
		free(r->kept[i]);
		r->kept[i] = strndup(v, vl);
		if (!r->kept[i]) {
			c->oom = 1;
			return 0;
		}
	}
	return n;
}

/* Errors where asking again later may succeed: nothing answered in time or at all. */
static int transient(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
		return 1;
	default:
		return 0;
	}
}

static void set_trust(CURL *h, const struct fetch_opts *o)
{
	if (o && o->insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	} else if (o && o->ca_pem) {
		struct curl_blob blob = {
		    .data = (void *)o->ca_pem, .len = strlen(o->ca_pem), .flags = CURL_BLOB_COPY};
		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
	} else if (o && o->ca_file && *o->ca_file) {
		curl_easy_setopt(h, CURLOPT_CAINFO, o->ca_file);
	} else {
		const char *file = getenv("SSL_CERT_FILE"), *dir = getenv("SSL_CERT_DIR");
		if (file && *file)
			curl_easy_setopt(h, CURLOPT_CAINFO, file);
		if (dir && *dir)
			curl_easy_setopt(h, CURLOPT_CAPATH, dir);
	}
}

/* The sentence for a call that got no usable answer (r->status == 0). */
static int transport_error(const char *url, CURLcode rc, const char *ebuf, const struct call *c,
                           struct err *err)
{
	if (c->overflow || rc == CURLE_FILESIZE_EXCEEDED)
		return err_set(err, "%s: the answer is larger than %zu bytes", url, c->max);
	if (c->oom)
		return err_set(err, "%s: out of memory while receiving the answer", url);
	const char *what = curl_easy_strerror(rc);
	int code = transient(rc) ? ERR_UNAVAILABLE : 0;
	if (ebuf[0] && strcmp(ebuf, what) != 0)
		return err_setc(err, code, "%s: %s (%s)", url, what, ebuf);
	return err_setc(err, code, "%s: %s", url, what);
}

int fetch_request(const char *method, const char *url, const void *body, size_t blen,
                  const struct fetch_opts *o, struct fetch_result *r, struct err *err)
{
	pthread_once(&curl_once, curl_init);
	memset(r, 0, sizeof(*r));
	r->retry_after = -1;
	if (cl_failed)
		return err_set(err, "%s: %s", url, cl_err.msg);
	struct call c = {
	    .r = r, .o = o, .max = o && o->max_bytes ? o->max_bytes : DEFAULT_MAX_BYTES};
	long tmo = o && o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
	CURL *h = curl_easy_init();
	if (!h)
		return err_set(err, "cannot create an HTTP client");
	char ebuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hl = NULL;
	for (size_t i = 0; o && o->headers && o->headers[i]; i++)
		hl = curl_slist_append(hl, o->headers[i]);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, tmo);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, tmo);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c.max);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &c);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &c);
	curl_easy_setopt(h, CURLOPT_USERAGENT, o && o->user_agent ? o->user_agent : "ctrustee");
	if (hl)
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	if (method && strcmp(method, "GET") != 0)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
	}
	set_trust(h, o);
	CURLcode rc = curl_easy_perform(h);
	int ret = 0;
	if (rc != CURLE_OK) {
		if (r->body)
			OPENSSL_cleanse(r->body, r->cap);
		free(r->body);
		r->body = NULL;
		r->len = r->cap = 0;
		ret = transport_error(url, rc, ebuf, &c, err);
	} else {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
		if (r->status < 200 || r->status > 299)
			ret = err_setc(err,
			               r->status >= 500 || r->status == 429 ? ERR_UNAVAILABLE : 0,
			               "%s answered HTTP %ld", url, r->status);
	}
	curl_slist_free_all(hl);
	curl_easy_cleanup(h);
	return ret;
}

int fetch_get(const char *url, const struct fetch_opts *o, struct fetch_result *r, struct err *err)
{
	return fetch_request("GET", url, NULL, 0, o, r, err);
}

void fetch_result_free(struct fetch_result *r)
{
	if (!r)
		return;
	if (r->body)
		OPENSSL_cleanse(r->body, r->cap);
	free(r->body);
	for (int i = 0; i < FETCH_MAX_KEEP; i++)
		free(r->kept[i]);
	memset(r, 0, sizeof(*r));
	r->retry_after = -1;
}

long fetch_ms_since(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

void fetch_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

const char *fetch_msg_cause(const char *msg, const char *url)
{
	size_t n = strlen(url);
	return strncmp(msg, url, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ' ? msg + n + 2 : msg;
}
