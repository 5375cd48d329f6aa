/*
 * jsonw: compact JSON text of a jansson value, identical to jansson 2.14's
 * json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER) (see jsonw.h for why).
 *
 * What "identical" takes, as jansson's dump.c does it: members in the object's insertion
 * order (json_object_keylen_foreach walks the same list json_dumps does), no spaces, keys
 * and strings with their full length (an embedded NUL is written \u0000), escapes only for
 * '"', '\\' and bytes below 0x20 (\b \f \n \r \t short, the rest \u00XX in upper case), bytes
 * of 0x7F and above written as they are, integers in decimal. A string jansson would refuse
 * (not well-formed UTF-8) and a real, whose text jansson makes with its own %.17g rules, make
 * this writer give up so the caller asks jansson: the fast path never decides anything
 * jansson would decide differently. tests/unit/test_jsonw.c compares the two on fixed and
 * random documents.
 */
#include "jsonw.h"
#include "utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define JSONW_MAX_DEPTH 512

struct wbuf {
	char *p;
	size_t n, cap; /* n < cap always: one byte is kept for the final NUL */
};

static int reserve(struct wbuf *b, size_t more)
{
	if (b->n + more < b->cap)
		return 0;
	size_t cap = b->cap;
	while (b->n + more >= cap)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (p == NULL)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

static int put(struct wbuf *b, const char *s, size_t n)
{
	if (reserve(b, n) < 0)
		return -1;
	memcpy(b->p + b->n, s, n);
	b->n += n;
	return 0;
}

static int put1(struct wbuf *b, char c)
{
	if (reserve(b, 1) < 0)
		return -1;
	b->p[b->n++] = c;
	return 0;
}

static int put_string(struct wbuf *b, const char *str, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, run = 0;

	if (put1(b, '"') < 0)
		return -1;
	while (i < len) {
		unsigned char c = s[i];
		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0x80) {
			size_t k = utf8_seq(s + i, len - i);
			if (k == 0)
				return -1;
			i += k;
			continue;
		}
		if (put(b, str + run, i - run) < 0)
			return -1;
		char esc[6] = {'\\', 0};
		size_t el = 2;
		switch (c) {
		case '"':
		case '\\':
			esc[1] = (char)c;
			break;
		case '\b':
			esc[1] = 'b';
			break;
		case '\f':
			esc[1] = 'f';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			el = 6;
		}
		if (put(b, esc, el) < 0)
			return -1;
		run = ++i;
	}
	if (put(b, str + run, len - run) < 0)
		return -1;
	return put1(b, '"');
}

static int put_integer(struct wbuf *b, json_int_t v)
{
	char d[24];
	size_t i = sizeof(d);
	/* the magnitude as unsigned, so the most negative value has one too */
	unsigned long long m = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

	do {
		d[--i] = (char)('0' + m % 10);
		m /= 10;
	} while (m != 0);
	if (v < 0)
		d[--i] = '-';
	return put(b, d + i, sizeof(d) - i);
}

static int put_value(struct wbuf *b, const json_t *v, int depth)
{
	const char *key;
	size_t klen, i;
	json_t *m;
	int first = 1;

	if (depth > JSONW_MAX_DEPTH)
		return -1;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		if (put1(b, '{') < 0)
			return -1;
		json_object_keylen_foreach((json_t *)v, key, klen, m)
		{
			if ((!first && put1(b, ',') < 0) || put_string(b, key, klen) < 0 ||
			    put1(b, ':') < 0 || put_value(b, m, depth + 1) < 0)
				return -1;
			first = 0;
		}
		return put1(b, '}');
	case JSON_ARRAY:
		if (put1(b, '[') < 0)
			return -1;
		json_array_foreach(v, i, m)
		{
			if ((i > 0 && put1(b, ',') < 0) || put_value(b, m, depth + 1) < 0)
				return -1;
		}
		return put1(b, ']');
	case JSON_STRING:
		return put_string(b, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		return put_integer(b, json_integer_value(v));
	case JSON_TRUE:
		return put(b, "true", 4);
	case JSON_FALSE:
		return put(b, "false", 5);
	case JSON_NULL:
		return put(b, "null", 4);
	default: /* JSON_REAL: jansson's to write */
		return -1;
	}
}

char *jsonw_compact(const json_t *v, size_t *len)
{
	struct wbuf b = {.cap = 1024};

	/* json_dumps without JSON_ENCODE_ANY writes only an object or an array at the top */
	if (!json_is_object(v) && !json_is_array(v))
		return NULL;
	if ((b.p = malloc(b.cap)) == NULL)
		return NULL;
	if (put_value(&b, v, 0) < 0) {
		free(b.p);
		return NULL;
	}
	b.p[b.n] = '\0';
	if (len != NULL)
		*len = b.n;
	return b.p;
}
