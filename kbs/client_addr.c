/*
 * client_addr: which address a request comes from, for the per-address limit and the log.
 *
 * The TCP peer, unless it is one of `[http_server] trusted_proxies` (CIDRs). Only then is the
 * forwarding header the proxies write (`client_address_header`: X-Forwarded-For by default,
 * or RFC 7239 Forwarded) read, from the right: each proxy appends the address it saw, so the
 * right-most hop that is not itself a trusted proxy is the client. Everything to its left was
 * written by the client and is ignored, so a client cannot spoof its way out of the limit; a
 * client talking to the KBS directly has its headers ignored altogether. A hop that is not an
 * IP address ("unknown", an obfuscated name, garbage) ends the walk at the trusted hop to
 * its right, which then stands for the client. Only one header kind is read: a proxy that
 * appends X-Forwarded-For passes a client's Forwarded header through untouched, and the
 * reverse.
 *
 * Addresses come back in canonical text (inet_ntop; IPv4-mapped IPv6 as IPv4), so spellings
 * of one address share one limit.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kbs.h"

#define MAX_HOPS 64

struct cidr {
	int v6;
	unsigned char a[16];
	int bits;
};

struct kbs_cidrs {
	struct cidr *v;
	size_t n;
};

/* Text to a 4- or 16-byte address; IPv4-mapped IPv6 becomes IPv4. 1 ok, 0 not an address. */
static int parse_ip(const char *s, size_t len, int *v6, unsigned char a[16])
{
	char buf[64];
	if (len == 0 || len >= sizeof(buf))
		return 0;
	memcpy(buf, s, len);
	buf[len] = 0;
	if (inet_pton(AF_INET, buf, a) == 1) {
		*v6 = 0;
		return 1;
	}
	if (inet_pton(AF_INET6, buf, a) != 1)
		return 0;
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (memcmp(a, mapped, 12) == 0) {
		memmove(a, a + 12, 4);
		*v6 = 0;
	} else {
		*v6 = 1;
	}
	return 1;
}

static int cidr_parse(const char *s, struct cidr *c, struct err *err)
{
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	if (!parse_ip(s, alen, &c->v6, c->a))
		return err_set(err,
		               "[http_server] trusted_proxies: \"%.64s\" is not an IP address or "
		               "CIDR",
		               s);
	int max = c->v6 ? 128 : 32;
	c->bits = max;
	if (slash) {
		char *end = NULL;
		long b = strtol(slash + 1, &end, 10);
		if (!slash[1] || *end || b < 0 || b > max)
			return err_set(
			    err,
			    "[http_server] trusted_proxies: \"%.64s\": the prefix length "
			    "must be 0..%d",
			    s, max);
		/* an IPv4 prefix written in mapped form ("::ffff:10.0.0.0/104") */
		if (!c->v6 && alen && strchr(s, ':') && b >= 96)
			b -= 96;
		c->bits = (int)b;
	}
	return 0;
}

int kbs_cidrs_parse(const struct kbs_strv *list, struct kbs_cidrs **out, struct err *err)
{
	*out = NULL;
	struct kbs_cidrs *c = calloc(1, sizeof(*c));
	if (!c)
		return err_set(err, "out of memory");
	c->v = calloc(list->n ? list->n : 1, sizeof(*c->v));
	if (!c->v) {
		free(c);
		return err_set(err, "out of memory");
	}
	for (size_t i = 0; i < list->n; i++) {
		if (cidr_parse(list->v[i], &c->v[i], err) != 0) {
			kbs_cidrs_free(c);
			return -1;
		}
		c->n++;
	}
	*out = c;
	return 0;
}

void kbs_cidrs_free(struct kbs_cidrs *c)
{
	if (!c)
		return;
	free(c->v);
	free(c);
}

size_t kbs_cidrs_count(const struct kbs_cidrs *c)
{
	return c ? c->n : 0;
}

static int cidr_has(const struct kbs_cidrs *c, int v6, const unsigned char a[16])
{
	for (size_t i = 0; c && i < c->n; i++) {
		const struct cidr *r = &c->v[i];
		if (r->v6 != v6)
			continue;
		int full = r->bits / 8, rest = r->bits % 8;
		if (memcmp(r->a, a, (size_t)full) != 0)
			continue;
		if (rest) {
			unsigned char m = (unsigned char)(0xff << (8 - rest));
			if ((r->a[full] & m) != (a[full] & m))
				continue;
		}
		return 1;
	}
	return 0;
}

int kbs_cidrs_contains(const struct kbs_cidrs *c, const char *addr)
{
	int v6;
	unsigned char a[16];
	if (!c || !addr || !parse_ip(addr, strlen(addr), &v6, a))
		return 0;
	return cidr_has(c, v6, a);
}

static void ip_text(int v6, const unsigned char a[16], char *out, size_t n)
{
	if (!inet_ntop(v6 ? AF_INET6 : AF_INET, a, out, (socklen_t)n) && n)
		out[0] = 0;
}

/* One X-Forwarded-For element: "1.2.3.4", "1.2.3.4:80", "2001:db8::1", "[2001:db8::1]:80". */
static int xff_hop(const char *s, size_t len, int *v6, unsigned char a[16])
{
	while (len && (*s == ' ' || *s == '\t'))
		s++, len--;
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len && s[0] == '[') {
		const char *close = memchr(s, ']', len);
		if (!close)
			return 0;
		size_t after = len - (size_t)(close - s) - 1;
		if (after && close[1] != ':')
			return 0;
		return parse_ip(s + 1, (size_t)(close - s) - 1, v6, a);
	}
	if (parse_ip(s, len, v6, a))
		return 1;
	/* v4:port */
	const char *colon = memchr(s, ':', len);
	if (colon && !memchr(colon + 1, ':', len - (size_t)(colon - s) - 1))
		return parse_ip(s, (size_t)(colon - s), v6, a);
	return 0;
}

/* One Forwarded element ("for=1.2.3.4;proto=https", "For=\"[2001:db8::1]:4711\""): the
 * address of its `for` parameter. No `for`, or one that is not an address: 0. */
static int fwd_hop(const char *s, size_t len, int *v6, unsigned char a[16])
{
	size_t i = 0;
	while (i < len) {
		while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == ';'))
			i++;
		size_t ks = i;
		while (i < len && s[i] != '=' && s[i] != ';')
			i++;
		size_t klen = i - ks;
		while (klen && (s[ks + klen - 1] == ' ' || s[ks + klen - 1] == '\t'))
			klen--;
		if (i >= len || s[i] != '=') {
			continue;
		}
		i++; /* '=' */
		const char *v = s + i;
		size_t vlen;
		if (i < len && s[i] == '"') {
			const char *q = memchr(s + i + 1, '"', len - i - 1);
			if (!q)
				return 0;
			v = s + i + 1;
			vlen = (size_t)(q - v);
			i = (size_t)(q - s) + 1;
		} else {
			size_t vs = i;
			while (i < len && s[i] != ';')
				i++;
			vlen = i - vs;
		}
		if (klen == 3 && strncasecmp(s + ks, "for", 3) == 0)
			return xff_hop(v, vlen, v6, a);
	}
	return 0;
}

void kbs_client_addr(const struct kbs_cidrs *trusted, int forwarded, const char *peer,
                     const char *hdr, size_t hlen, char *out, size_t n)
{
	int v6;
	unsigned char a[16];
	if (!n)
		return;
	snprintf(out, n, "%s", peer ? peer : "");
	if (!peer || !parse_ip(peer, strlen(peer), &v6, a))
		return;
	ip_text(v6, a, out, n);
	if (!kbs_cidrs_count(trusted) || !cidr_has(trusted, v6, a) || !hdr)
		return;
	/* right to left over the comma-separated hops (commas inside quotes are not separators
	 * in Forwarded; an address never contains one, so a quoted comma only ends a garbage
	 * hop early, which stops the walk anyway) */
	size_t end = hlen;
	for (int hop = 0; hop < MAX_HOPS && end > 0; hop++) {
		size_t start = end;
		while (start > 0 && hdr[start - 1] != ',')
			start--;
		int hv6;
		unsigned char ha[16];
		int ok = forwarded ? fwd_hop(hdr + start, end - start, &hv6, ha)
		                   : xff_hop(hdr + start, end - start, &hv6, ha);
		if (!ok)
			return; /* the trusted hop to the right stands for the client */
		ip_text(hv6, ha, out, n);
		if (!cidr_has(trusted, hv6, ha))
			return; /* the right-most untrusted hop */
		if (start == 0)
			return; /* every hop is a trusted proxy: the left-most is the client */
		end = start - 1;
	}
}
