/*
 * jsonr: read a JSON object into jansson values (see jsonr.h for why), one pass over the
 * bytes, strings without escapes handed to jansson straight from the buffer.
 *
 * The rule that keeps it safe: it only builds what jansson would build from the same text,
 * and gives up (NULL, the caller asks json_loadb) on everything else, never deciding a text is
 * invalid or reading it differently. So it takes only: objects, arrays, strings of
 * well-formed UTF-8 (RFC 3629, as jansson checks) with no control byte and escapes \" \\ \/
 * \b \f \n \r \t or \u of a non-zero, non-surrogate code point; integers of at most 18 digits
 * without a leading zero; true, false, null; the four JSON white space bytes; a whole buffer
 * that is one object. Members go in in text order, as jansson's parser inserts them, and a
 * key seen twice gives up (jansson refuses it under JSON_REJECT_DUPLICATES). Untrusted bytes:
 * every read is bounded by `end`; tests/fuzz/fuzz_jsonr.c checks it against json_loadb.
 */
#include "jsonr.h"
#include "utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define JSONR_MAX_DEPTH 64

struct reader {
	const unsigned char *p, *end;
	char *tmp; /* decoded text of a string with escapes, owned */
	size_t tmpcap;
};

static void skip_ws(struct reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
		r->p++;
}

static int tmp_put(struct reader *r, size_t *n, const void *b, size_t bl)
{
	if (bl == 0)
		return 0;
	if (*n + bl > r->tmpcap) {
		size_t cap = r->tmpcap ? r->tmpcap : 256;
		while (*n + bl > cap)
			cap *= 2;
		char *t = realloc(r->tmp, cap);
		if (t == NULL)
			return -1;
		r->tmp = t;
		r->tmpcap = cap;
	}
	memcpy(r->tmp + *n, b, bl);
	*n += bl;
	return 0;
}

static int hex4(const unsigned char *p, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		unsigned char c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* One escape at r->p (after the backslash) appended to tmp: 0, or -1 to give up. */
static int unescape(struct reader *r, size_t *n)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	unsigned cp;
	unsigned char u[3];

	if (r->p >= r->end)
		return -1;
	const char *k = *r->p ? strchr(from, *r->p) : NULL;
	if (k != NULL) {
		r->p++;
		return tmp_put(r, n, &to[k - from], 1);
	}
	if (*r->p != 'u' || r->end - r->p < 5 || hex4(r->p + 1, &cp) < 0 || cp == 0 ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return -1;
	r->p += 5;
	if (cp < 0x80) {
		u[0] = (unsigned char)cp;
		return tmp_put(r, n, u, 1);
	}
	if (cp < 0x800) {
		u[0] = (unsigned char)(0xC0 | cp >> 6);
		u[1] = (unsigned char)(0x80 | (cp & 0x3F));
		return tmp_put(r, n, u, 2);
	}
	u[0] = (unsigned char)(0xE0 | cp >> 12);
	u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
	u[2] = (unsigned char)(0x80 | (cp & 0x3F));
	return tmp_put(r, n, u, 3);
}

/* The string at r->p (just after its opening quote): *s, *sl point into the buffer or into
 * r->tmp (valid until the next string). 0, or -1 to give up. */
static int read_string(struct reader *r, const char **s, size_t *sl)
{
	const unsigned char *start = r->p;
	size_t n = 0;
	int escaped = 0;

	for (;;) {
		const unsigned char *run = r->p;
		while (r->p < r->end && *r->p >= 0x20 && *r->p < 0x80 && *r->p != '"' &&
		       *r->p != '\\')
			r->p++;
		if (r->p >= r->end || *r->p < 0x20)
			return -1;
		if (*r->p >= 0x80) {
			size_t k = utf8_seq(r->p, (size_t)(r->end - r->p));
			if (k == 0)
				return -1;
			r->p += k;
			if (escaped && tmp_put(r, &n, run, (size_t)(r->p - run)) < 0)
				return -1;
			continue;
		}
		if (*r->p == '"') {
			if (!escaped) {
				*s = (const char *)start;
				*sl = (size_t)(r->p - start);
			} else {
				if (tmp_put(r, &n, run, (size_t)(r->p - run)) < 0)
					return -1;
				*s = r->tmp;
				*sl = n;
			}
			r->p++;
			return 0;
		}
		/* a backslash: from here the text is built in tmp */
		if (!escaped) {
			escaped = 1;
			if (tmp_put(r, &n, start, (size_t)(r->p - start)) < 0)
				return -1;
		} else if (tmp_put(r, &n, run, (size_t)(r->p - run)) < 0)
			return -1;
		r->p++;
		if (unescape(r, &n) < 0)
			return -1;
	}
}

static json_t *read_number(struct reader *r)
{
	int neg = 0, digits = 0;
	long long v = 0;

	if (*r->p == '-') {
		neg = 1;
		r->p++;
	}
	const unsigned char *first = r->p;
	while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
		if (++digits > 18)
			return NULL;
		v = v * 10 + (*r->p - '0');
		r->p++;
	}
	if (digits == 0 || (*first == '0' && digits > 1))
		return NULL;
	if (r->p < r->end && (*r->p == '.' || *r->p == 'e' || *r->p == 'E'))
		return NULL; /* a real: jansson's to read */
	return json_integer(neg ? -v : v);
}

static int literal(struct reader *r, const char *word, size_t wl)
{
	if ((size_t)(r->end - r->p) < wl || memcmp(r->p, word, wl) != 0)
		return 0;
	r->p += wl;
	return 1;
}

static json_t *read_value(struct reader *r, int depth);

static json_t *read_object(struct reader *r, int depth)
{
	json_t *o = json_object(), *v;
	const char *k;
	size_t kl;

	r->p++; /* '{' */
	skip_ws(r);
	if (o != NULL && r->p < r->end && *r->p == '}') {
		r->p++;
		return o;
	}
	while (o != NULL) {
		if (r->p >= r->end || *r->p != '"')
			break;
		r->p++;
		if (read_string(r, &k, &kl) < 0 || json_object_getn(o, k, kl) != NULL)
			break;
		/* the key is copied now: the value's strings may reuse tmp */
		char stack[64], *key = kl < sizeof(stack) ? stack : malloc(kl + 1);
		if (key == NULL)
			break;
		memcpy(key, k, kl);
		skip_ws(r);
		if (r->p >= r->end || *r->p != ':') {
			if (key != stack)
				free(key);
			break;
		}
		r->p++;
		v = read_value(r, depth + 1);
		int rc = v != NULL ? json_object_setn_new_nocheck(o, key, kl, v) : -1;
		if (key != stack)
			free(key);
		if (rc < 0)
			break;
		skip_ws(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			skip_ws(r);
			continue;
		}
		if (r->p < r->end && *r->p == '}') {
			r->p++;
			return o;
		}
		break;
	}
	json_decref(o);
	return NULL;
}

static json_t *read_array(struct reader *r, int depth)
{
	json_t *a = json_array();

	r->p++; /* '[' */
	skip_ws(r);
	if (a != NULL && r->p < r->end && *r->p == ']') {
		r->p++;
		return a;
	}
	while (a != NULL) {
		json_t *v = read_value(r, depth + 1);
		if (v == NULL || json_array_append_new(a, v) < 0)
			break;
		skip_ws(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			continue;
		}
		if (r->p < r->end && *r->p == ']') {
			r->p++;
			return a;
		}
		break;
	}
	json_decref(a);
	return NULL;
}

static json_t *read_value(struct reader *r, int depth)
{
	const char *s;
	size_t sl;

	if (depth > JSONR_MAX_DEPTH)
		return NULL;
	skip_ws(r);
	if (r->p >= r->end)
		return NULL;
	switch (*r->p) {
	case '{':
		return read_object(r, depth);
	case '[':
		return read_array(r, depth);
	case '"':
		r->p++;
		return read_string(r, &s, &sl) < 0 ? NULL : json_stringn_nocheck(s, sl);
	case 't':
		return literal(r, "true", 4) ? json_true() : NULL;
	case 'f':
		return literal(r, "false", 5) ? json_false() : NULL;
	case 'n':
		return literal(r, "null", 4) ? json_null() : NULL;
	default:
		return *r->p == '-' || (*r->p >= '0' && *r->p <= '9') ? read_number(r) : NULL;
	}
}

json_t *jsonr_object(const char *buf, size_t len)
{
	struct reader r = {0};
	json_t *o = NULL;

	if (buf == NULL)
		return NULL;
	r.p = (const unsigned char *)buf;
	r.end = r.p + len;
	skip_ws(&r);
	if (r.p < r.end && *r.p == '{' && (o = read_object(&r, 0)) != NULL) {
		skip_ws(&r);
		if (r.p != r.end) {
			json_decref(o);
			o = NULL;
		}
	}
	free(r.tmp);
	return o;
}
