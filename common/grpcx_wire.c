/*
 * grpcx_wire: parsing what a gRPC server sends back, without sockets (see grpcx_wire.h).
 *
 * The message reader is a small state machine fed with DATA payloads as nghttp2 hands them
 * over: five prefix bytes (compressed flag, 32-bit big-endian length), then the message. The
 * length is checked against the limit as soon as the prefix is complete, so a hostile or
 * broken server announcing 4 GiB costs nothing; the buffer then grows by doubling from 64 KiB
 * as bytes really arrive, so a server that announces 64 MiB and sends 10 bytes costs 64 KiB.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "grpcx.h"
#include "grpcx_wire.h"

#define FIRST_CHUNK (64u * 1024)

void grpcx_msg_reader_init(struct grpcx_msg_reader *r, size_t max)
{
	memset(r, 0, sizeof(*r));
	r->max = max;
}

void grpcx_msg_reader_free(struct grpcx_msg_reader *r)
{
	free(r->msg);
	r->msg = NULL;
	r->cap = 0;
}

/* Room for at least `need` message bytes (need <= r->len). */
static int reader_reserve(struct grpcx_msg_reader *r, size_t need, struct err *err)
{
	size_t cap = r->cap ? r->cap : FIRST_CHUNK;
	uint8_t *m;

	if (need <= r->cap && r->msg != NULL)
		return 0;
	while (cap < need)
		cap *= 2;
	if (cap > r->len)
		cap = r->len;
	m = realloc(r->msg, cap + 1);
	if (m == NULL)
		return err_setc(err, GRPCX_RESOURCE_EXHAUSTED, "out of memory for the response");
	r->msg = m;
	r->cap = cap;
	return 0;
}

/* The prefix is complete: check it. */
static int reader_start(struct grpcx_msg_reader *r, struct err *err)
{
	uint32_t n;
	int compressed;

	if (r->messages > 0)
		return err_setc(err, GRPCX_INTERNAL,
		                "the server sent more than one message in a unary response");
	r->messages++;
	if (r->prefix[0] != 0)
		return err_setc(err, GRPCX_INTERNAL,
		                r->prefix[0] == 1 ? "the server sent a compressed message, which "
		                                    "was never asked for"
		                                  : "the server sent a message with an invalid "
		                                    "compressed flag");
	if (grpcx_wire_prefix_parse(r->prefix, sizeof(r->prefix), &compressed, &n, err) != 1)
		return err_setc(err, GRPCX_INTERNAL, "the server sent an invalid message prefix");
	if (n > r->max)
		return err_setc(err, GRPCX_RESOURCE_EXHAUSTED,
		                "the response message of %u bytes is larger than the limit of %zu "
		                "bytes",
		                n, r->max);
	r->len = n;
	r->got = 0;
	return 0;
}

int grpcx_msg_feed(struct grpcx_msg_reader *r, const uint8_t *buf, size_t len, struct err *err)
{
	while (len > 0) {
		size_t k;

		if (r->prefix_len < 5) {
			k = 5 - r->prefix_len < len ? 5 - r->prefix_len : len;
			memcpy(r->prefix + r->prefix_len, buf, k);
			r->prefix_len += k;
			buf += k;
			len -= k;
			if (r->prefix_len == 5 && reader_start(r, err) < 0)
				return -1;
			continue;
		}
		if (r->got == r->len)
			/* a second message: its prefix is read by the branch above */
			return err_setc(
			    err, GRPCX_INTERNAL,
			    "the server sent more than one message in a unary response");
		k = r->len - r->got < len ? r->len - r->got : len;
		if (reader_reserve(r, r->got + k, err) < 0)
			return -1;
		memcpy(r->msg + r->got, buf, k);
		r->got += k;
		buf += k;
		len -= k;
	}
	return 0;
}

int grpcx_msg_finish(struct grpcx_msg_reader *r, uint8_t **out, size_t *out_len, struct err *err)
{
	*out = NULL;
	*out_len = 0;
	if (r->prefix_len > 0 && (r->prefix_len < 5 || r->got < r->len))
		return err_setc(err, GRPCX_INTERNAL,
		                "the response ended inside a message (%zu of %zu bytes)", r->got,
		                r->len);
	if (r->msg == NULL) {
		/* OK without a message, or an empty one: callers get an empty buffer */
		*out = calloc(1, 1);
		if (*out == NULL)
			return err_setc(err, GRPCX_RESOURCE_EXHAUSTED, "out of memory");
		return 0;
	}
	r->msg[r->got] = '\0';
	*out = r->msg;
	*out_len = r->got;
	r->msg = NULL;
	r->cap = 0;
	return 0;
}

size_t grpcx_percent_decode(const uint8_t *in, size_t len, char *out, size_t outlen)
{
	size_t i = 0, o = 0;

	if (outlen == 0)
		return 0;
	while (i < len && o + 1 < outlen) {
		uint8_t c = in[i];

		if (c == '%' && i + 2 < len && hex_nibble(in[i + 1]) >= 0 &&
		    hex_nibble(in[i + 2]) >= 0) {
			c = (uint8_t)(hex_nibble(in[i + 1]) * 16 + hex_nibble(in[i + 2]));
			i += 3;
		} else {
			i++;
		}
		if (c == '\0')
			break;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return o;
}

int grpcx_status_parse(const uint8_t *v, size_t len)
{
	int n = 0;

	if (len == 0 || len > 3)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	return n;
}

int grpcx_status_from_http(int http_status)
{
	switch (http_status) {
	case 400:
		return GRPCX_INTERNAL;
	case 401:
		return GRPCX_UNAUTHENTICATED;
	case 403:
		return GRPCX_PERMISSION_DENIED;
	case 404:
		return GRPCX_UNIMPLEMENTED;
	case 429:
	case 502:
	case 503:
	case 504:
		return GRPCX_UNAVAILABLE;
	default:
		return GRPCX_UNKNOWN;
	}
}

int grpcx_status_from_h2_error(uint32_t code)
{
	switch (code) {
	case 0x7: /* REFUSED_STREAM: nothing was processed */
		return GRPCX_UNAVAILABLE;
	case 0x8: /* CANCEL */
		return GRPCX_CANCELLED;
	case 0xb: /* ENHANCE_YOUR_CALM */
		return GRPCX_RESOURCE_EXHAUSTED;
	case 0xc: /* INADEQUATE_SECURITY */
		return GRPCX_PERMISSION_DENIED;
	default: /* NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, ... */
		return GRPCX_INTERNAL;
	}
}

int grpcx_timeout_format(long ms, char *out, size_t outlen)
{
	static const struct {
		char unit;
		long div;
	} units[] = {{'m', 1}, {'S', 1000}, {'M', 60000}, {'H', 3600000}};
	int n;

	if (ms < 1)
		ms = 1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		long v = (ms + units[i].div - 1) / units[i].div;

		if (v <= 99999999) {
			n = snprintf(out, outlen, "%ld%c", v, units[i].unit);
			return n > 0 && (size_t)n < outlen ? 0 : -1;
		}
	}
	n = snprintf(out, outlen, "99999999H");
	return n > 0 && (size_t)n < outlen ? 0 : -1;
}

static int valid_port(const char *p)
{
	long v = 0;

	if (*p == '\0' || strlen(p) > 5)
		return 0;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return 0;
		v = v * 10 + (*p - '0');
	}
	return v >= 1 && v <= 65535;
}

int grpcx_target_parse(const char *target, struct grpcx_target *t, struct err *err)
{
	const char *p = target, *colon, *end;
	size_t n, hl;
	unsigned char ip[16];

	memset(t, 0, sizeof(*t));
	if (strncmp(p, "https://", 8) == 0) {
		t->tls = 1;
		p += 8;
	} else if (strncmp(p, "http://", 7) == 0) {
		p += 7;
	}
	if (strncmp(p, "dns:///", 7) == 0)
		p += 7;
	n = strlen(p);
	while (n > 0 && p[n - 1] == '/')
		n--;
	if (n == 0)
		return err_set(err, "Empty gRPC target address");
	if (p[0] == '[') {
		end = memchr(p, ']', n);
		if (end == NULL || end + 1 >= p + n || end[1] != ':')
			return err_set(err, "gRPC target %s: an IPv6 address needs [addr]:port",
			               target);
		hl = (size_t)(end - p - 1);
		colon = end + 1;
		if (hl == 0 || hl >= sizeof(t->host))
			return err_set(err, "gRPC target %s: bad host", target);
		memcpy(t->host, p + 1, hl);
	} else {
		colon = NULL;
		for (const char *q = p; q < p + n; q++)
			if (*q == ':')
				colon = q;
		if (colon == NULL)
			return err_set(err, "gRPC target %s has no port (host:port)", target);
		hl = (size_t)(colon - p);
		if (hl == 0 || hl >= sizeof(t->host) || memchr(p, ':', hl) != NULL)
			return err_set(err, "gRPC target %s: bad host", target);
		memcpy(t->host, p, hl);
	}
	if ((size_t)(p + n - colon - 1) >= sizeof(t->port))
		return err_set(err, "gRPC target %s: bad port", target);
	memcpy(t->port, colon + 1, (size_t)(p + n - colon - 1));
	if (!valid_port(t->port) || strpbrk(t->host, "/?#@ ") != NULL)
		return err_set(err, "gRPC target %s: bad host or port", target);
	t->is_ip = inet_pton(AF_INET, t->host, ip) == 1 || inet_pton(AF_INET6, t->host, ip) == 1;
	snprintf(t->authority, sizeof(t->authority), strchr(t->host, ':') ? "[%s]:%s" : "%s:%s",
	         t->host, t->port);
	return 0;
}

/* ---- the server half (bytes a client chose; each index checked against len) */

int grpcx_wire_timeout_parse(const uint8_t *buf, size_t len, int64_t *ns, struct err *err)
{
	int64_t v = 0, unit;
	size_t i;

	if (len < 2 || len > 9)
		return err_set(err, "grpc-timeout must be 1 to 8 digits and a unit");
	for (i = 0; i + 1 < len; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return err_set(err, "grpc-timeout must be 1 to 8 digits and a unit");
		v = v * 10 + (buf[i] - '0');
	}
	switch (buf[len - 1]) {
	case 'H':
		unit = 3600LL * 1000000000LL;
		break;
	case 'M':
		unit = 60LL * 1000000000LL;
		break;
	case 'S':
		unit = 1000000000LL;
		break;
	case 'm':
		unit = 1000000LL;
		break;
	case 'u':
		unit = 1000LL;
		break;
	case 'n':
		unit = 1;
		break;
	default:
		return err_set(err, "grpc-timeout has no unit of H, M, S, m, u or n");
	}
	/* at most 99999999 hours: clamp instead of overflowing */
	*ns = v > INT64_MAX / unit ? INT64_MAX : v * unit;
	return 0;
}

int grpcx_wire_prefix_parse(const uint8_t *buf, size_t len, int *compressed, uint32_t *msg_len,
                            struct err *err)
{
	if (len < GRPCX_WIRE_PREFIX_LEN)
		return 0;
	if (buf[0] > 1) {
		err_set(err, "the message prefix's compressed flag is %u, not 0 or 1", buf[0]);
		return -1;
	}
	*compressed = buf[0];
	*msg_len = (uint32_t)buf[1] << 24 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 8 |
	           (uint32_t)buf[4];
	return 1;
}

void grpcx_wire_prefix_write(uint8_t out[GRPCX_WIRE_PREFIX_LEN], uint32_t msg_len)
{
	out[0] = 0;
	out[1] = (uint8_t)(msg_len >> 24);
	out[2] = (uint8_t)(msg_len >> 16);
	out[3] = (uint8_t)(msg_len >> 8);
	out[4] = (uint8_t)msg_len;
}

size_t grpcx_wire_pct_encode(const uint8_t *msg, size_t len, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	if (outlen == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = msg[i];

		if (c >= ' ' && c <= '~' && c != '%') {
			if (o + 1 >= outlen)
				break;
			out[o++] = (char)c;
		} else {
			if (o + 3 >= outlen)
				break;
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return o;
}
