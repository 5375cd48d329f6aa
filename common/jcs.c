/*
 * jcs: RFC 8785 canonical JSON (see jcs.h). Object members sorted by their UTF-16 code
 * units, no whitespace, strings escaped minimally (only '"', '\\' and U+0000..U+001F, with
 * the short forms \b \t \n \f \r), numbers in ECMAScript's shortest round-trip form.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jcs.h"

struct buf {
	char *p;
	size_t len, cap;
	int bad;
};

static void put(struct buf *b, const char *s, size_t n)
{
	if (b->bad)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t nc = (b->cap ? b->cap * 2 : 256) + n;
		char *np = realloc(b->p, nc);
		if (np == NULL) {
			b->bad = 1;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void put_string(struct buf *b, const char *s, size_t n)
{
	put(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[8];
		switch (c) {
		case '"':
			put(b, "\\\"", 2);
			break;
		case '\\':
			put(b, "\\\\", 2);
			break;
		case '\b':
			put(b, "\\b", 2);
			break;
		case '\t':
			put(b, "\\t", 2);
			break;
		case '\n':
			put(b, "\\n", 2);
			break;
		case '\f':
			put(b, "\\f", 2);
			break;
		case '\r':
			put(b, "\\r", 2);
			break;
		default:
			if (c < 0x20) {
				snprintf(esc, sizeof(esc), "\\u%04x", c);
				put(b, esc, 6);
			} else {
				put(b, (const char *)&s[i], 1);
			}
		}
	}
	put(b, "\"", 1);
}

/* ECMAScript Number::toString for finite doubles: shortest digits that round-trip. */
static int put_double(struct buf *b, double d)
{
	char digits[40], out[64];
	int prec, exp10, n;

	if (!isfinite(d))
		return -1;
	if (d == 0) {
		put(b, "0", 1);
		return 0;
	}
	for (prec = 1; prec <= 17; prec++) {
		snprintf(digits, sizeof(digits), "%.*e", prec - 1, d);
		if (strtod(digits, NULL) == d)
			break;
	}
	/* digits = [-]D[.DDD]e[+-]XX */
	const char *p = digits;
	int neg = *p == '-';
	if (neg)
		p++;
	char mant[40];
	size_t m = 0;
	for (; *p && *p != 'e'; p++)
		if (*p != '.')
			mant[m++] = *p;
	mant[m] = '\0';
	exp10 = atoi(p + 1); /* value = 0.mant * 10^(exp10+1) */
	n = exp10 + 1;       /* position of the decimal point, as in ECMAScript's n */
	int k = (int)m;
	size_t o = 0;
	if (neg)
		out[o++] = '-';
	if (k <= n && n <= 21) {
		memcpy(out + o, mant, (size_t)k), o += (size_t)k;
		for (int i = 0; i < n - k; i++)
			out[o++] = '0';
	} else if (0 < n && n <= 21) {
		memcpy(out + o, mant, (size_t)n), o += (size_t)n;
		out[o++] = '.';
		memcpy(out + o, mant + n, (size_t)(k - n)), o += (size_t)(k - n);
	} else if (-6 < n && n <= 0) {
		out[o++] = '0';
		out[o++] = '.';
		for (int i = 0; i < -n; i++)
			out[o++] = '0';
		memcpy(out + o, mant, (size_t)k), o += (size_t)k;
	} else {
		out[o++] = mant[0];
		if (k > 1) {
			out[o++] = '.';
			memcpy(out + o, mant + 1, (size_t)(k - 1)), o += (size_t)(k - 1);
		}
		o += (size_t)snprintf(out + o, sizeof(out) - o, "e%c%d", n - 1 >= 0 ? '+' : '-',
		                      abs(n - 1));
	}
	put(b, out, o);
	return 0;
}

/* Compare UTF-8 keys by UTF-16 code units: equal to byte order except that supplementary
 * characters (4-byte UTF-8, surrogate pairs in UTF-16) sort below U+E000..U+FFFF. */
static int utf16_cmp(const char *a, const char *b)
{
	const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
	while (*x && *x == *y)
		x++, y++;
	if (*x == *y)
		return 0;
	int xs = *x >= 0xF0, ys = *y >= 0xF0; /* starts a supplementary character */
	int xh = *x == 0xEE || *x == 0xEF;    /* U+E000..U+FFFF */
	int yh = *y == 0xEE || *y == 0xEF;
	if (xs && yh)
		return -1;
	if (ys && xh)
		return 1;
	return *x < *y ? -1 : 1;
}

static int cmp_keys(const void *a, const void *b)
{
	return utf16_cmp(*(const char *const *)a, *(const char *const *)b);
}

static int emit(struct buf *b, const json_t *v, int depth)
{
	if (depth > 512)
		return -1;
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		size_t n = json_object_size(v), i = 0;
		const char **keys = malloc((n ? n : 1) * sizeof(char *));
		const char *k;
		json_t *val;
		if (keys == NULL)
			return -1;
		json_object_foreach((json_t *)v, k, val)
		{
			keys[i++] = k;
		}
		qsort(keys, n, sizeof(char *), cmp_keys);
		put(b, "{", 1);
		for (i = 0; i < n; i++) {
			if (i)
				put(b, ",", 1);
			put_string(b, keys[i], strlen(keys[i]));
			put(b, ":", 1);
			if (emit(b, json_object_get(v, keys[i]), depth + 1) < 0) {
				free(keys);
				return -1;
			}
		}
		put(b, "}", 1);
		free(keys);
		return 0;
	}
	case JSON_ARRAY:
		put(b, "[", 1);
		for (size_t i = 0; i < json_array_size(v); i++) {
			if (i)
				put(b, ",", 1);
			if (emit(b, json_array_get(v, i), depth + 1) < 0)
				return -1;
		}
		put(b, "]", 1);
		return 0;
	case JSON_STRING:
		put_string(b, json_string_value(v), json_string_length(v));
		return 0;
	case JSON_INTEGER: {
		json_int_t i = json_integer_value(v);
		if (i > 9007199254740992LL || i < -9007199254740992LL)
			return put_double(b, (double)i); /* beyond 2^53 ECMAScript rounds */
		char s[32];
		int l = snprintf(s, sizeof(s), "%lld", (long long)i);
		put(b, s, (size_t)l);
		return 0;
	}
	case JSON_REAL:
		return put_double(b, json_real_value(v));
	case JSON_TRUE:
		put(b, "true", 4);
		return 0;
	case JSON_FALSE:
		put(b, "false", 5);
		return 0;
	case JSON_NULL:
		put(b, "null", 4);
		return 0;
	}
	return -1;
}

char *jcs_serialize(const json_t *v, size_t *len)
{
	struct buf b = {0};
	if (v == NULL || emit(&b, v, 0) < 0 || b.bad) {
		free(b.p);
		return NULL;
	}
	if (b.p == NULL)
		return NULL;
	if (len)
		*len = b.len;
	return b.p;
}
