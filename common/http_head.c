/*
 * http_head: the HTTP/1.1 request head parser of the kbs's server (common/http.c), strict on
 * purpose. A request's framing (where its body ends and the next request begins) must be
 * read the same way by every hop; when a proxy and this server disagree, bytes one of them
 * took for a body become a request for the other (request smuggling). So anything RFC 9112
 * lets a recipient either repair or reject is rejected here: a Content-Length that is
 * repeated or not plain decimal digits, a Transfer-Encoding other than a single `chunked`
 * (case-insensitive) or beside a Content-Length, a header name followed by whitespace before
 * its colon, folded header lines, bare CR or LF line ends, control characters. Only bytes
 * before `len` are read; the head ends at the first empty line.
 */
#include <string.h>
#include <strings.h>

#include "http.h"

static int is_tchar(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int span_is(const uint8_t *buf, struct http_span s, const char *lit)
{
	return s.len == strlen(lit) && strncasecmp((const char *)buf + s.off, lit, s.len) == 0;
}

/* Does the comma-separated list in s name `tok` (case-insensitive)? */
static int list_has(const uint8_t *buf, struct http_span s, const char *tok)
{
	size_t i = s.off, end = s.off + s.len, tl = strlen(tok);
	while (i < end) {
		while (i < end && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == ','))
			i++;
		size_t st = i;
		while (i < end && buf[i] != ',')
			i++;
		size_t e = i;
		while (e > st && (buf[e - 1] == ' ' || buf[e - 1] == '\t'))
			e--;
		if (e - st == tl && strncasecmp((const char *)buf + st, tok, tl) == 0)
			return 1;
	}
	return 0;
}

/* The end of the head (index after CRLFCRLF), 0 if not within len, -1 on a bare CR or LF. */
static long find_end(const uint8_t *buf, size_t len)
{
	for (size_t k = 0; k < len; k++) {
		if (buf[k] == '\n')
			return -1; /* every LF is consumed below as part of a CRLF */
		if (buf[k] != '\r')
			continue;
		if (k + 1 >= len)
			return 0;
		if (buf[k + 1] != '\n')
			return -1;
		if (k + 3 < len && buf[k + 2] == '\r' && buf[k + 3] == '\n')
			return (long)(k + 4);
		if (k + 3 >= len && k + 2 < len && buf[k + 2] == '\r')
			return 0;
		k++;
	}
	return 0;
}

static int parse_request_line(const uint8_t *buf, size_t end, size_t *pos, struct http_head *h,
                              struct err *err)
{
	size_t i = *pos;
	h->method.off = i;
	while (i < end && is_tchar(buf[i]))
		i++;
	h->method.len = i - h->method.off;
	if (h->method.len == 0 || h->method.len > 15 || i >= end || buf[i] != ' ')
		return err_set(err, "the request line does not start with a method");
	h->target.off = ++i;
	while (i < end && buf[i] > ' ' && buf[i] < 0x7f)
		i++;
	h->target.len = i - h->target.off;
	if (h->target.len == 0 || i >= end || buf[i] != ' ')
		return err_set(err, "the request target is empty or has a control character");
	i++;
	if (end - i < 10 || memcmp(buf + i, "HTTP/1.", 7) != 0 ||
	    (buf[i + 7] != '0' && buf[i + 7] != '1') || buf[i + 8] != '\r' || buf[i + 9] != '\n')
		return err_set(err, "the request line does not end with HTTP/1.0 or HTTP/1.1");
	h->minor = buf[i + 7] - '0';
	*pos = i + 10;
	return 0;
}

static int parse_fields(const uint8_t *buf, size_t end, size_t i, struct http_head *h,
                        struct err *err)
{
	while (!(buf[i] == '\r' && buf[i + 1] == '\n')) {
		if (h->n_hdrs == HTTP_HDRS_MAX)
			return err_set(err, "more than %d header lines", HTTP_HDRS_MAX);
		if (buf[i] == ' ' || buf[i] == '\t')
			return err_set(err, "a folded header line (obs-fold) is not accepted");
		struct http_span *n = &h->name[h->n_hdrs], *v = &h->value[h->n_hdrs];
		n->off = i;
		while (i < end && is_tchar(buf[i]))
			i++;
		n->len = i - n->off;
		if (n->len == 0 || buf[i] != ':')
			return err_set(err,
			               "a header name is empty or has whitespace before its colon");
		i++;
		while (buf[i] == ' ' || buf[i] == '\t')
			i++;
		v->off = i;
		while (buf[i] != '\r') {
			if ((buf[i] < ' ' && buf[i] != '\t') || buf[i] == 0x7f)
				return err_set(err, "a header value has a control character");
			i++;
		}
		v->len = i - v->off;
		while (v->len > 0 &&
		       (buf[v->off + v->len - 1] == ' ' || buf[v->off + v->len - 1] == '\t'))
			v->len--;
		i += 2; /* CRLF, checked by find_end */
		h->n_hdrs++;
	}
	return 0;
}

/* Content-Length, Transfer-Encoding, Connection, Expect: what the framing depends on. */
static int judge_framing(const uint8_t *buf, struct http_head *h, struct err *err)
{
	int n_cl = 0, n_te = 0, close = 0, keep = 0;
	h->content_length = -1;
	for (size_t k = 0; k < h->n_hdrs; k++) {
		struct http_span v = h->value[k];
		if (span_is(buf, h->name[k], "Content-Length")) {
			if (++n_cl > 1)
				return err_set(err, "Content-Length is given more than once");
			if (v.len == 0 || v.len > 15)
				return err_set(err, "Content-Length is empty or too long");
			long long cl = 0;
			for (size_t j = 0; j < v.len; j++) {
				uint8_t c = buf[v.off + j];
				if (c < '0' || c > '9')
					return err_set(err,
					               "Content-Length is not a decimal number");
				cl = cl * 10 + (c - '0');
			}
			h->content_length = cl;
		} else if (span_is(buf, h->name[k], "Transfer-Encoding")) {
			if (++n_te > 1)
				return err_set(err, "Transfer-Encoding is given more than once");
			if (!span_is(buf, v, "chunked"))
				return err_set(err,
				               "the only Transfer-Encoding accepted is chunked");
			h->chunked = 1;
		} else if (span_is(buf, h->name[k], "Connection")) {
			close |= list_has(buf, v, "close");
			keep |= list_has(buf, v, "keep-alive");
		} else if (span_is(buf, h->name[k], "Expect")) {
			h->expect_continue = span_is(buf, v, "100-continue");
		}
	}
	if (h->chunked && n_cl)
		return err_set(err, "Transfer-Encoding and Content-Length together");
	if (h->chunked && h->minor == 0)
		return err_set(err, "Transfer-Encoding in an HTTP/1.0 request");
	h->keep_alive = h->minor == 1 ? !close : keep && !close;
	return 0;
}

int http_head_parse(const uint8_t *buf, size_t len, size_t max, struct http_head *h,
                    struct err *err)
{
	memset(h, 0, sizeof(*h));
	size_t scan = len < max ? len : max;
	long end = find_end(buf, scan);
	if (end < 0)
		return err_set(err, "a line in the request head does not end with CRLF");
	if (end == 0) {
		if (len >= max)
			return err_set(err, "the request head is longer than %zu bytes", max);
		return 0;
	}
	size_t i = 0;
	if (parse_request_line(buf, (size_t)end, &i, h, err) != 0 ||
	    parse_fields(buf, (size_t)end, i, h, err) != 0 || judge_framing(buf, h, err) != 0)
		return -1;
	h->head_len = (size_t)end;
	return 1;
}
