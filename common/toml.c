/*
 * toml: a TOML 1.0 parser into jansson (see toml.h).
 *
 * One recursive-descent pass over the text with line/column tracking. TOML's rules about
 * redefinition need to know how each table came to exist, which a jansson object cannot
 * carry, so a side list records every table that was opened by a [header], created
 * implicitly by a dotted key or header path, or written inline (inline tables and arrays of
 * them are sealed). Dates and times are refused as unsupported.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "toml.h"

#define TOML_MAX_DEPTH 64
#define TOML_MAX_BYTES (8u << 20)

enum origin { T_HEADER = 1, T_IMPLICIT, T_DOTTED, T_SEALED, T_AOT };

struct mark {
	const json_t *t;
	enum origin how;
};

struct p {
	const char *s, *end;
	int line;
	const char *line_start;
	struct err *err;
	struct mark *marks;
	size_t nmarks, capmarks;
	int depth;
	int failed;
};

static int fail(struct p *p, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct p *p, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	if (p->failed)
		return -1;
	p->failed = 1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return err_setc(p->err, code, "line %d, column %d: %s", p->line,
	                (int)(p->s - p->line_start) + 1, msg);
}

static enum origin how_of(struct p *p, const json_t *t)
{
	for (size_t i = 0; i < p->nmarks; i++)
		if (p->marks[i].t == t)
			return p->marks[i].how;
	return 0;
}

static void set_how(struct p *p, const json_t *t, enum origin how)
{
	for (size_t i = 0; i < p->nmarks; i++)
		if (p->marks[i].t == t) {
			p->marks[i].how = how;
			return;
		}
	if (p->nmarks == p->capmarks) {
		size_t nc = p->capmarks ? p->capmarks * 2 : 64;
		struct mark *nm = realloc(p->marks, nc * sizeof(*nm));
		if (nm == NULL)
			return;
		p->marks = nm;
		p->capmarks = nc;
	}
	p->marks[p->nmarks].t = t;
	p->marks[p->nmarks++].how = how;
}

static int at_end(struct p *p)
{
	return p->s >= p->end;
}

static int peek(struct p *p, size_t off)
{
	return p->s + off < p->end ? (unsigned char)p->s[off] : -1;
}

/* Does the unread text start with lit (n bytes)? The text is not NUL-terminated. */
static int starts(struct p *p, const char *lit, size_t n)
{
	return (size_t)(p->end - p->s) >= n && memcmp(p->s, lit, n) == 0;
}

static int comment(struct p *p);

static void newline(struct p *p)
{
	p->line++;
	p->line_start = p->s;
}

/* spaces and tabs */
static void ws(struct p *p)
{
	while (!at_end(p) && (*p->s == ' ' || *p->s == '\t'))
		p->s++;
}

/* end of line: optional ws + comment + newline or EOF */
static int eol(struct p *p)
{
	ws(p);
	if (comment(p) < 0)
		return -1;
	if (at_end(p))
		return 0;
	if (*p->s == '\r' && peek(p, 1) == '\n')
		p->s++;
	if (*p->s != '\n')
		return fail(p, TOML_ERR_SYNTAX, "expected the end of the line");
	p->s++;
	newline(p);
	return 0;
}

/* whitespace, newlines and comments (inside arrays) */
static int ws_nl(struct p *p)
{
	for (;;) {
		ws(p);
		if (comment(p) < 0)
			return -1;
		if (!at_end(p) && *p->s == '\r' && peek(p, 1) == '\n')
			p->s++;
		if (!at_end(p) && *p->s == '\n') {
			p->s++;
			newline(p);
			continue;
		}
		return 0;
	}
}

static int utf8_put(char *out, size_t *o, uint32_t cp)
{
	if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return -1;
	if (cp < 0x80) {
		out[(*o)++] = (char)cp;
	} else if (cp < 0x800) {
		out[(*o)++] = (char)(0xC0 | cp >> 6);
		out[(*o)++] = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		out[(*o)++] = (char)(0xE0 | cp >> 12);
		out[(*o)++] = (char)(0x80 | (cp >> 6 & 0x3F));
		out[(*o)++] = (char)(0x80 | (cp & 0x3F));
	} else {
		out[(*o)++] = (char)(0xF0 | cp >> 18);
		out[(*o)++] = (char)(0x80 | (cp >> 12 & 0x3F));
		out[(*o)++] = (char)(0x80 | (cp >> 6 & 0x3F));
		out[(*o)++] = (char)(0x80 | (cp & 0x3F));
	}
	return 0;
}

/* Validate one UTF-8 sequence at p->s and copy it; returns bytes consumed or -1. */
static int utf8_copy(struct p *p, char *out, size_t *o)
{
	const unsigned char *u = (const unsigned char *)p->s;
	size_t left = (size_t)(p->end - p->s);
	int n = u[0] < 0x80             ? 1
	        : (u[0] & 0xE0) == 0xC0 ? 2
	        : (u[0] & 0xF0) == 0xE0 ? 3
	        : (u[0] & 0xF8) == 0xF0 ? 4
	                                : 0;
	if (n == 0 || (size_t)n > left)
		return -1;
	uint32_t cp = n == 1 ? u[0] : n == 2 ? u[0] & 0x1F : n == 3 ? u[0] & 0x0F : u[0] & 0x07;
	for (int i = 1; i < n; i++) {
		if ((u[i] & 0xC0) != 0x80)
			return -1;
		cp = cp << 6 | (u[i] & 0x3F);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return -1;
	memcpy(out + *o, p->s, (size_t)n);
	*o += (size_t)n;
	p->s += n;
	return n;
}

static int comment(struct p *p)
{
	if (at_end(p) || *p->s != '#')
		return 0;
	while (!at_end(p) && *p->s != '\n') {
		unsigned char c = (unsigned char)*p->s;
		if ((c < 0x20 && c != '\t' && !(c == '\r' && peek(p, 1) == '\n')) || c == 0x7f)
			return fail(p, TOML_ERR_SYNTAX, "control character in a comment");
		if (c >= 0x80) {
			char scratch[4];
			size_t o = 0;
			if (utf8_copy(p, scratch, &o) < 0)
				return fail(p, TOML_ERR_SYNTAX, "invalid UTF-8 in a comment");
			continue;
		}
		p->s++;
	}
	return 0;
}

/* Strings of every kind. Returns a malloc'd NUL-terminated string (length in *len). */
static char *parse_string(struct p *p, size_t *len)
{
	char q = *p->s;
	int multi = peek(p, 1) == q && peek(p, 2) == q;
	int literal = q == '\'';
	size_t cap = (size_t)(p->end - p->s) + 1, o = 0;
	char *out = malloc(cap);

	if (out == NULL) {
		fail(p, TOML_ERR_SYNTAX, "out of memory");
		return NULL;
	}
	p->s += multi ? 3 : 1;
	if (multi) { /* a newline right after the opening delimiter is trimmed */
		if (!at_end(p) && *p->s == '\r' && peek(p, 1) == '\n')
			p->s++;
		if (!at_end(p) && *p->s == '\n') {
			p->s++;
			newline(p);
		}
	}
	for (;;) {
		if (at_end(p)) {
			fail(p, TOML_ERR_SYNTAX, "unterminated string");
			goto bad;
		}
		unsigned char c = (unsigned char)*p->s;
		if (c == (unsigned char)q) {
			if (!multi) {
				p->s++;
				break;
			}
			if (peek(p, 1) == q && peek(p, 2) == q) {
				/* up to two more quotes may belong to the content */
				int extra = 0;
				while (extra < 2 && peek(p, 3 + extra) == q)
					extra++;
				for (int i = 0; i < extra; i++)
					out[o++] = q;
				p->s += 3 + extra;
				break;
			}
			out[o++] = (char)c;
			p->s++;
			continue;
		}
		if (c == '\n' || (c == '\r' && peek(p, 1) == '\n')) {
			if (!multi) {
				fail(p, TOML_ERR_SYNTAX, "newline in a single-line string");
				goto bad;
			}
			if (c == '\r')
				p->s++;
			out[o++] = '\n';
			p->s++;
			newline(p);
			continue;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			fail(p, TOML_ERR_SYNTAX, "control character 0x%02x in a string", c);
			goto bad;
		}
		if (c == '\\' && !literal) {
			int e = peek(p, 1);
			p->s += 2;
			switch (e) {
			case 'b':
				out[o++] = '\b';
				break;
			case 't':
				out[o++] = '\t';
				break;
			case 'n':
				out[o++] = '\n';
				break;
			case 'f':
				out[o++] = '\f';
				break;
			case 'r':
				out[o++] = '\r';
				break;
			case '"':
				out[o++] = '"';
				break;
			case '\\':
				out[o++] = '\\';
				break;
			case 'u':
			case 'U': {
				int n = e == 'u' ? 4 : 8;
				uint32_t cp = 0;
				for (int i = 0; i < n; i++) {
					int h = peek(p, (size_t)i);
					int v = h >= '0' && h <= '9'   ? h - '0'
					        : h >= 'a' && h <= 'f' ? h - 'a' + 10
					        : h >= 'A' && h <= 'F' ? h - 'A' + 10
					                               : -1;
					if (v < 0) {
						fail(p, TOML_ERR_SYNTAX, "bad \\%c escape", e);
						goto bad;
					}
					cp = cp << 4 | (uint32_t)v;
				}
				p->s += n;
				if (utf8_put(out, &o, cp) < 0) {
					fail(p, TOML_ERR_SYNTAX,
					     "escape is not a Unicode scalar value");
					goto bad;
				}
				break;
			}
			case ' ':
			case '\t':
			case '\r':
			case '\n':
				if (!multi) {
					fail(p, TOML_ERR_SYNTAX, "invalid escape in a string");
					goto bad;
				}
				/* line-ending backslash: only whitespace may follow on its line */
				p->s--;
				ws(p);
				if (!at_end(p) && *p->s == '\r' && peek(p, 1) == '\n')
					p->s++;
				if (at_end(p) || *p->s != '\n') {
					fail(p, TOML_ERR_SYNTAX,
					     "a line-ending backslash must end the line");
					goto bad;
				}
				while (!at_end(p) &&
				       (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' ||
				        (*p->s == '\r' && peek(p, 1) == '\n'))) {
					if (*p->s == '\n') {
						p->s++;
						newline(p);
					} else {
						p->s++;
					}
				}
				break;
			default:
				fail(p, TOML_ERR_SYNTAX, "invalid escape in a string");
				goto bad;
			}
			continue;
		}
		if (utf8_copy(p, out, &o) < 0) {
			fail(p, TOML_ERR_SYNTAX, "invalid UTF-8 in a string");
			goto bad;
		}
	}
	out[o] = '\0';
	*len = o;
	return out;
bad:
	free(out);
	return NULL;
}

static int bare_char(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

/* One key segment (bare or quoted). */
static char *parse_key_part(struct p *p)
{
	size_t len;
	if (!at_end(p) && (*p->s == '"' || *p->s == '\'')) {
		if (peek(p, 1) == *p->s && peek(p, 2) == *p->s) {
			fail(p, TOML_ERR_SYNTAX, "multi-line strings cannot be keys");
			return NULL;
		}
		char *k = parse_string(p, &len);
		if (k != NULL && strlen(k) != len) {
			free(k);
			fail(p, TOML_ERR_UNSUPPORTED, "keys containing NUL are not supported");
			return NULL;
		}
		return k;
	}
	const char *start = p->s;
	while (!at_end(p) && bare_char(*p->s))
		p->s++;
	if (p->s == start) {
		fail(p, TOML_ERR_SYNTAX, "expected a key");
		return NULL;
	}
	return strndup(start, (size_t)(p->s - start));
}

/* Dotted key into parts[]; returns count or -1. */
static int parse_key(struct p *p, char **parts, int max)
{
	int n = 0;
	for (;;) {
		ws(p);
		if (n == max) {
			fail(p, TOML_ERR_SYNTAX, "key has too many parts");
			goto bad;
		}
		if ((parts[n] = parse_key_part(p)) == NULL)
			goto bad;
		n++;
		ws(p);
		if (!at_end(p) && *p->s == '.') {
			p->s++;
			continue;
		}
		return n;
	}
bad:
	while (n > 0)
		free(parts[--n]);
	return -1;
}

static json_t *parse_value(struct p *p);

static json_t *parse_number_or_date(struct p *p)
{
	const char *start = p->s;
	char buf[128];
	size_t o = 0;

	while (!at_end(p) && (bare_char(*p->s) || *p->s == '+' || *p->s == '.' || *p->s == ':' ||
	                      (*p->s == ' ' && p->s > start && p->s - start == 10 &&
	                       start[4] == '-' && peek(p, 1) >= '0' && peek(p, 1) <= '9'))) {
		if (o + 1 >= sizeof(buf)) {
			fail(p, TOML_ERR_SYNTAX, "number is too long");
			return NULL;
		}
		buf[o++] = *p->s++;
	}
	buf[o] = '\0';
	if (o == 0) {
		fail(p, TOML_ERR_SYNTAX, "expected a value");
		return NULL;
	}
	/* dates and times: 1979-05-27, 07:32:00, 1979-05-27T07:32:00Z ... */
	if ((o >= 8 && buf[2] == ':') || (o >= 10 && buf[4] == '-' && buf[7] == '-')) {
		fail(p, TOML_ERR_UNSUPPORTED, "dates and times are not supported");
		return NULL;
	}
	const char *s = buf;
	int neg = 0, sign = 0;
	if (*s == '+' || *s == '-') {
		neg = *s == '-';
		sign = 1;
		s++;
	}
	if (strcmp(s, "inf") == 0 || strcmp(s, "nan") == 0) {
		/* jansson cannot hold non-finite numbers; no configuration needs them */
		fail(p, TOML_ERR_UNSUPPORTED, "inf and nan are not supported");
		return NULL;
	}
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'o' || s[1] == 'b')) {
		int base = s[1] == 'x' ? 16 : s[1] == 'o' ? 8 : 2;
		char digits[128];
		size_t d = 0;
		if (sign)
			return fail(p, TOML_ERR_SYNTAX, "prefixed integers take no sign"), NULL;
		for (const char *q = s + 2; *q; q++) {
			if (*q == '_') {
				if (q == s + 2 || q[1] == '\0' || q[1] == '_')
					return fail(p, TOML_ERR_SYNTAX, "misplaced underscore"),
					       NULL;
				continue;
			}
			int v = *q >= '0' && *q <= '9'   ? *q - '0'
			        : *q >= 'a' && *q <= 'f' ? *q - 'a' + 10
			        : *q >= 'A' && *q <= 'F' ? *q - 'A' + 10
			                                 : 99;
			if (v >= base)
				return fail(p, TOML_ERR_SYNTAX, "invalid digit in \"%s\"", buf),
				       NULL;
			digits[d++] = *q;
		}
		digits[d] = '\0';
		if (d == 0)
			return fail(p, TOML_ERR_SYNTAX, "missing digits"), NULL;
		errno = 0;
		unsigned long long v = strtoull(digits, NULL, base);
		if (errno == ERANGE || v > INT64_MAX)
			return fail(p, TOML_ERR_SYNTAX, "integer out of range"), NULL;
		return json_integer((json_int_t)v);
	}
	/* decimal integer or float: validate underscores and leading zeros */
	char clean[128];
	size_t c = 0;
	int is_float = 0, seen_digit = 0;
	for (const char *q = s; *q; q++) {
		if (*q == '_') {
			if (!(q > s && q[-1] >= '0' && q[-1] <= '9' && q[1] >= '0' && q[1] <= '9'))
				return fail(p, TOML_ERR_SYNTAX, "misplaced underscore"), NULL;
			continue;
		}
		if (*q == '.' || *q == 'e' || *q == 'E') {
			is_float = 1;
			if (*q == '.' &&
			    !(q > s && q[-1] >= '0' && q[-1] <= '9' && q[1] >= '0' && q[1] <= '9'))
				return fail(p, TOML_ERR_SYNTAX,
				            "a decimal point needs digits on both sides"),
				       NULL;
		} else if ((*q == '+' || *q == '-') && q > s && (q[-1] == 'e' || q[-1] == 'E')) {
		} else if (*q < '0' || *q > '9') {
			return fail(p, TOML_ERR_SYNTAX, "invalid value \"%s\"", buf), NULL;
		} else {
			seen_digit = 1;
		}
		clean[c++] = *q;
	}
	clean[c] = '\0';
	if (!seen_digit)
		return fail(p, TOML_ERR_SYNTAX, "invalid value \"%s\"", buf), NULL;
	if (clean[0] == '0' && clean[1] >= '0' && clean[1] <= '9')
		return fail(p, TOML_ERR_SYNTAX, "leading zeros are not allowed"), NULL;
	if (is_float) {
		char *endp;
		const char *e = strpbrk(clean, "eE");
		if (e != NULL &&
		    (e == clean || e[1] == '\0' || ((e[1] == '+' || e[1] == '-') && e[2] == '\0')))
			return fail(p, TOML_ERR_SYNTAX, "bad exponent"), NULL;
		if (e != NULL && strchr(e, '.') != NULL)
			return fail(p, TOML_ERR_SYNTAX, "bad exponent"), NULL;
		double v = strtod(clean, &endp);
		if (*endp != '\0')
			return fail(p, TOML_ERR_SYNTAX, "invalid float \"%s\"", buf), NULL;
		return json_real(neg ? -v : v);
	}
	errno = 0;
	unsigned long long v = strtoull(clean, NULL, 10);
	if (errno == ERANGE || v > (unsigned long long)INT64_MAX + (unsigned long long)neg)
		return fail(p, TOML_ERR_SYNTAX, "integer out of range"), NULL;
	return json_integer(neg ? (json_int_t)(0 - v) : (json_int_t)v);
}

static json_t *parse_array(struct p *p)
{
	json_t *a = json_array();
	p->s++;
	for (;;) {
		if (ws_nl(p) < 0)
			goto bad;
		if (at_end(p)) {
			fail(p, TOML_ERR_SYNTAX, "unterminated array");
			goto bad;
		}
		if (*p->s == ']') {
			p->s++;
			return a;
		}
		json_t *v = parse_value(p);
		if (v == NULL)
			goto bad;
		json_array_append_new(a, v);
		if (ws_nl(p) < 0)
			goto bad;
		if (!at_end(p) && *p->s == ',') {
			p->s++;
			continue;
		}
		if (!at_end(p) && *p->s == ']') {
			p->s++;
			return a;
		}
		fail(p, TOML_ERR_SYNTAX, "expected ',' or ']' in an array");
		goto bad;
	}
bad:
	json_decref(a);
	return NULL;
}

static int assign(struct p *p, json_t *table, char **parts, int n, json_t *value, int in_inline);

static json_t *parse_inline_table(struct p *p)
{
	json_t *t = json_object();
	p->s++;
	ws(p);
	if (!at_end(p) && *p->s == '}') {
		p->s++;
		set_how(p, t, T_SEALED);
		return t;
	}
	for (;;) {
		char *parts[64];
		int n = parse_key(p, parts, 64);
		if (n < 0)
			goto bad;
		ws(p);
		if (at_end(p) || *p->s != '=') {
			fail(p, TOML_ERR_SYNTAX, "expected '=' after a key");
			while (n > 0)
				free(parts[--n]);
			goto bad;
		}
		p->s++;
		ws(p);
		json_t *v = parse_value(p);
		int rc = v ? assign(p, t, parts, n, v, 1) : -1;
		while (n > 0)
			free(parts[--n]);
		if (rc < 0)
			goto bad;
		ws(p);
		if (!at_end(p) && *p->s == ',') {
			p->s++;
			ws(p);
			if (!at_end(p) && *p->s == '}') {
				fail(p, TOML_ERR_SYNTAX, "trailing comma in an inline table");
				goto bad;
			}
			continue;
		}
		if (!at_end(p) && *p->s == '}') {
			p->s++;
			set_how(p, t, T_SEALED);
			return t;
		}
		fail(p, TOML_ERR_SYNTAX, "expected ',' or '}' in an inline table");
		goto bad;
	}
bad:
	json_decref(t);
	return NULL;
}

/* seal every table reachable from an inline value */
static void seal(struct p *p, json_t *v)
{
	if (json_is_object(v)) {
		const char *k;
		json_t *c;
		set_how(p, v, T_SEALED);
		json_object_foreach(v, k, c)
		{
			seal(p, c);
		}
	} else if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v); i++)
			seal(p, json_array_get(v, i));
	}
}

static json_t *parse_value(struct p *p)
{
	json_t *v = NULL;
	size_t len;
	if (++p->depth > TOML_MAX_DEPTH) {
		fail(p, TOML_ERR_SYNTAX, "values nested too deeply");
		p->depth--;
		return NULL;
	}
	if (at_end(p)) {
		fail(p, TOML_ERR_SYNTAX, "expected a value");
	} else if (*p->s == '"' || *p->s == '\'') {
		char *s = parse_string(p, &len);
		if (s != NULL)
			v = json_stringn_nocheck(s, len);
		free(s);
	} else if (*p->s == '[') {
		v = parse_array(p);
	} else if (*p->s == '{') {
		v = parse_inline_table(p);
		if (v)
			seal(p, v);
	} else if (starts(p, "true", 4) && !bare_char(peek(p, 4))) {
		p->s += 4;
		v = json_true();
	} else if (starts(p, "false", 5) && !bare_char(peek(p, 5))) {
		p->s += 5;
		v = json_false();
	} else {
		v = parse_number_or_date(p);
	}
	p->depth--;
	if (v == NULL && !p->failed)
		fail(p, TOML_ERR_SYNTAX, "invalid value");
	return v;
}

/* Walk/create the tables for parts[0..n-1] of a key = value line and set the last part. */
static int assign(struct p *p, json_t *table, char **parts, int n, json_t *value, int in_inline)
{
	json_t *cur = table;
	for (int i = 0; i < n - 1; i++) {
		json_t *next = json_object_get(cur, parts[i]);
		if (next == NULL) {
			next = json_object();
			json_object_set_new(cur, parts[i], next);
			set_how(p, next, T_DOTTED);
		} else if (!json_is_object(next) || how_of(p, next) == T_SEALED ||
		           (!in_inline &&
		            (how_of(p, next) == T_HEADER || how_of(p, next) == T_IMPLICIT) &&
		            how_of(p, next) != T_DOTTED)) {
			json_decref(value);
			return fail(p, TOML_ERR_SYNTAX, "key \"%s\" is already defined", parts[i]);
		}
		cur = next;
	}
	if (json_object_get(cur, parts[n - 1]) != NULL) {
		json_decref(value);
		return fail(p, TOML_ERR_SYNTAX, "key \"%s\" is defined twice", parts[n - 1]);
	}
	json_object_set_new(cur, parts[n - 1], value);
	return 0;
}

/* [a.b.c] or [[a.b.c]]: returns the table new key/values go into. */
static json_t *open_table(struct p *p, json_t *root, char **parts, int n, int aot)
{
	json_t *cur = root;
	for (int i = 0; i < n; i++) {
		int last = i == n - 1;
		json_t *next = json_object_get(cur, parts[i]);
		if (last && aot) {
			if (next == NULL) {
				next = json_array();
				json_object_set_new(cur, parts[i], next);
				set_how(p, next, T_AOT);
			} else if (!json_is_array(next) || how_of(p, next) != T_AOT) {
				fail(p, TOML_ERR_SYNTAX, "\"%s\" is not an array of tables",
				     parts[i]);
				return NULL;
			}
			json_t *t = json_object();
			json_array_append_new(next, t);
			set_how(p, t, T_HEADER);
			return t;
		}
		if (next == NULL) {
			next = json_object();
			json_object_set_new(cur, parts[i], next);
			set_how(p, next, last ? T_HEADER : T_IMPLICIT);
		} else if (json_is_array(next) && how_of(p, next) == T_AOT && !last) {
			next = json_array_get(next, json_array_size(next) - 1);
		} else if (!json_is_object(next) || how_of(p, next) == T_SEALED) {
			fail(p, TOML_ERR_SYNTAX, "\"%s\" is already defined as a value", parts[i]);
			return NULL;
		} else if (last) {
			enum origin h = how_of(p, next);
			if (h == T_HEADER || h == T_DOTTED) {
				fail(p, TOML_ERR_SYNTAX, "table \"%s\" is defined twice", parts[i]);
				return NULL;
			}
			set_how(p, next, T_HEADER);
		}
		cur = next;
	}
	return cur;
}

json_t *toml_parse(const char *text, size_t len, struct err *err)
{
	struct p p = {.s = text, .end = text + len, .line = 1, .line_start = text, .err = err};
	json_t *root = json_object(), *cur = root;

	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) { /* UTF-8 byte order mark */
		p.s += 3;
		p.line_start = p.s;
	}
	if (len > TOML_MAX_BYTES) {
		err_setc(err, TOML_ERR_SYNTAX, "document is larger than %u bytes", TOML_MAX_BYTES);
		json_decref(root);
		return NULL;
	}
	while (!at_end(&p) && !p.failed) {
		ws(&p);
		if (at_end(&p))
			break;
		char c = *p.s;
		if (c == '#' || c == '\n' || c == '\r') {
			if (eol(&p) < 0)
				break;
			continue;
		}
		char *parts[64];
		int n;
		if (c == '[') {
			int aot = peek(&p, 1) == '[';
			p.s += aot ? 2 : 1;
			n = parse_key(&p, parts, 64);
			if (n < 0)
				break;
			if (at_end(&p) || *p.s != ']' || (aot && peek(&p, 1) != ']')) {
				fail(&p, TOML_ERR_SYNTAX, "expected '%s' to close the table header",
				     aot ? "]]" : "]");
				while (n > 0)
					free(parts[--n]);
				break;
			}
			p.s += aot ? 2 : 1;
			cur = open_table(&p, root, parts, n, aot);
			while (n > 0)
				free(parts[--n]);
			if (cur == NULL || eol(&p) < 0)
				break;
			continue;
		}
		n = parse_key(&p, parts, 64);
		if (n < 0)
			break;
		ws(&p);
		if (at_end(&p) || *p.s != '=') {
			fail(&p, TOML_ERR_SYNTAX, "expected '=' after a key");
			while (n > 0)
				free(parts[--n]);
			break;
		}
		p.s++;
		ws(&p);
		json_t *v = parse_value(&p);
		int rc = v ? assign(&p, cur, parts, n, v, 0) : -1;
		while (n > 0)
			free(parts[--n]);
		if (rc < 0 || eol(&p) < 0)
			break;
	}
	free(p.marks);
	if (p.failed) {
		json_decref(root);
		return NULL;
	}
	return root;
}

json_t *toml_parse_file(const char *path, struct err *err)
{
	size_t len;
	char *text = file_read_all(path, &len, err);
	if (text == NULL)
		return NULL;
	json_t *j = toml_parse(text, len, err);
	if (j == NULL)
		err_prefix(err, "%s", path);
	free(text);
	return j;
}
