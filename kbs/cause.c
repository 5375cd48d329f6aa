/*
 * cause: turns an internal failure sentence into one a client may read. Storage and upstream
 * errors name where they went ("redis at 10.0.0.5:6379 unreachable: Connection refused");
 * the log keeps that, while a problem detail should still say precisely what failed and why,
 * only without mapping the operator's network. So "at <host:port>" pairs are left out and a
 * URL, gRPC target or IP literal becomes "<address>"; every other word stays.
 */
#include <arpa/inet.h>
#include <string.h>

#include "kbs.h"

/* A word that names a place: host:port, [v6]:port or a dotted name/address. */
static int is_place(const char *w, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (w[i] == ':' || w[i] == '.' || w[i] == '[')
			return 1;
	return 0;
}

/* A URL, a gRPC target ("ipv4:10.0.0.1:50004") or an IP literal with or without a port. */
static int is_address(const char *w, size_t n)
{
	for (size_t i = 0; i + 2 < n; i++)
		if (w[i] == ':' && w[i + 1] == '/' && w[i + 2] == '/')
			return 1;
	if ((n > 5 && (memcmp(w, "ipv4:", 5) == 0 || memcmp(w, "ipv6:", 5) == 0)))
		return 1;
	char buf[64];
	unsigned char a[16];
	while (n && strchr(":,;)", w[n - 1]))
		n--;
	while (n && strchr("([", w[0]))
		w++, n--;
	if (!n || n >= sizeof(buf))
		return 0;
	memcpy(buf, w, n);
	buf[n] = 0;
	char *rb = strchr(buf, ']');
	if (rb)
		*rb = 0;
	if (inet_pton(AF_INET6, buf, a) == 1)
		return 1;
	char *colon = strrchr(buf, ':');
	if (colon && strchr(buf, '.'))
		*colon = 0;
	return inet_pton(AF_INET, buf, a) == 1;
}

struct out {
	char *p;
	size_t n, len;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->len >= o->n)
		return;
	size_t room = o->n - 1 - o->len;
	if (n > room)
		n = room;
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = 0;
}

void kbs_scrub_hosts(const char *in, char *out, size_t n)
{
	struct out o = {out, n, 0};
	if (!n)
		return;
	out[0] = 0;
	const char *s = in ? in : "";
	int first = 1;
	while (*s) {
		while (*s == ' ')
			s++;
		if (!*s)
			break;
		size_t wl = strcspn(s, " ");
		const char *next = s + wl;
		while (*next == ' ')
			next++;
		size_t nl = strcspn(next, " ");
		if (wl == 2 && memcmp(s, "at", 2) == 0 && nl && is_place(next, nl)) {
			/* "redis at h:p: cause" keeps its colon: "redis: cause" */
			if (next[nl - 1] == ':')
				put(&o, ":", 1);
			s = next + nl;
			continue;
		}
		if (!first)
			put(&o, " ", 1);
		first = 0;
		if (is_address(s, wl)) {
			size_t lead = 0, trail = 0;
			while (lead < wl && (s[lead] == '(' || s[lead] == '"' || s[lead] == '\''))
				lead++;
			while (trail < wl - lead && strchr(":,;)\"'", s[wl - 1 - trail]))
				trail++;
			put(&o, s, lead);
			put(&o, "<address>", 9);
			put(&o, s + wl - trail, trail);
		} else {
			put(&o, s, wl);
		}
		s += wl;
	}
}
