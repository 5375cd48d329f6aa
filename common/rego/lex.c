/*
 * lex: Rego source into tokens. Newlines are tokens (they end a body literal); everything
 * else that is blank, and comments, only set the next token's ws_before flag, which the
 * parser needs to tell `a[0]` (a ref) from `a [0]`. Strings are decoded into the arena;
 * numbers keep their text so that they stay exact.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rego/rego_int.h"

#define MAX_TOKENS (1u << 22)

struct lexer {
	struct arena *A;
	const char *s, *end, *name, *line_start;
	int line;
	struct token *toks;
	size_t n, cap;
	int ws;
	struct err *err;
};

static int lex_fail(struct lexer *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int lex_fail(struct lexer *L, const char *fmt, ...)
{
	char m[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	return err_setc(L->err, REGO_ERR_PARSE, "%s:%d:%d: rego_parse_error: %s", L->name, L->line,
	                (int)(L->s - L->line_start) + 1, m);
}

static int push(struct lexer *L, enum tok t, const char *start, size_t len, int line,
                const char *line_start)
{
	if (L->n == L->cap) {
		size_t nc = L->cap ? L->cap * 2 : 256;
		if (nc > MAX_TOKENS)
			return lex_fail(L, "policy has too many tokens");
		struct token *nt = realloc(L->toks, nc * sizeof(*nt));
		if (nt == NULL)
			return lex_fail(L, "out of memory");
		L->toks = nt;
		L->cap = nc;
	}
	L->toks[L->n++] = (struct token){.t = t,
	                                 .start = start,
	                                 .len = (uint32_t)len,
	                                 .line = line,
	                                 .col = (int)(start - line_start) + 1,
	                                 .ws_before = (uint8_t)L->ws};
	L->ws = 0;
	return 0;
}

static int hexval(int c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
	                              : -1;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | cp >> 12);
		o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | cp >> 18);
	o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
	o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
	o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

static int read_u4(struct lexer *L, unsigned *cp)
{
	*cp = 0;
	for (int i = 0; i < 4; i++) {
		int h = L->s < L->end ? hexval((unsigned char)*L->s) : -1;
		if (h < 0)
			return lex_fail(L, "invalid \\u escape");
		*cp = *cp << 4 | (unsigned)h;
		L->s++;
	}
	return 0;
}

static int lex_string(struct lexer *L)
{
	const char *start = L->s;
	int line = L->line;
	const char *ls = L->line_start;
	if (*L->s == '`') {
		const char *e = memchr(L->s + 1, '`', (size_t)(L->end - L->s - 1));
		if (e == NULL)
			return lex_fail(L, "unterminated raw string");
		for (const char *p = L->s; p < e; p++)
			if (*p == '\n') {
				L->line++;
				L->line_start = p + 1;
			}
		L->s = e + 1;
		if (push(L, T_STRING, start, (size_t)(L->s - start), line, ls) < 0)
			return -1;
		struct token *t = &L->toks[L->n - 1];
		t->slen = (uint32_t)(e - start - 1);
		t->str = ar_strndup(L->A, start + 1, t->slen);
		return t->str ? 0 : lex_fail(L, "out of memory");
	}
	/* the decoded text is never longer than the quoted source up to the end of the line */
	const char *eol = memchr(L->s, '\n', (size_t)(L->end - L->s));
	char *out = ar_alloc(L->A, (size_t)((eol ? eol : L->end) - L->s) + 4);
	size_t o = 0;
	if (out == NULL)
		return lex_fail(L, "out of memory");
	L->s++;
	for (;;) {
		if (L->s >= L->end || *L->s == '\n')
			return lex_fail(L, "unterminated string");
		char c = *L->s++;
		if (c == '"')
			break;
		if (c != '\\') {
			out[o++] = c;
			continue;
		}
		if (L->s >= L->end)
			return lex_fail(L, "unterminated string");
		c = *L->s++;
		switch (c) {
		case '"':
		case '\\':
		case '/':
			out[o++] = c;
			break;
		case 'b':
			out[o++] = '\b';
			break;
		case 'f':
			out[o++] = '\f';
			break;
		case 'n':
			out[o++] = '\n';
			break;
		case 'r':
			out[o++] = '\r';
			break;
		case 't':
			out[o++] = '\t';
			break;
		case 'u': {
			unsigned cp, lo;
			if (read_u4(L, &cp) < 0)
				return -1;
			if (cp >= 0xD800 && cp < 0xDC00 && L->end - L->s >= 6 && L->s[0] == '\\' &&
			    L->s[1] == 'u') {
				const char *save = L->s;
				L->s += 2;
				if (read_u4(L, &lo) < 0)
					return -1;
				if (lo >= 0xDC00 && lo < 0xE000)
					cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
				else
					L->s = save;
			}
			if (cp >= 0xD800 && cp < 0xE000)
				cp = 0xFFFD;
			o += put_utf8(out + o, cp);
			break;
		}
		default:
			return lex_fail(L, "invalid escape \\%c", c);
		}
	}
	if (push(L, T_STRING, start, (size_t)(L->s - start), line, ls) < 0)
		return -1;
	L->toks[L->n - 1].str = out;
	L->toks[L->n - 1].slen = (uint32_t)o;
	return 0;
}

int rego_lex(struct arena *A, const char *name, const char *src, size_t len, struct token **out,
             size_t *n, struct err *err)
{
	struct lexer L = {.A = A,
	                  .s = src,
	                  .end = src + len,
	                  .name = name,
	                  .line_start = src,
	                  .line = 1,
	                  .err = err};
	*out = NULL;
	*n = 0;
	while (L.s < L.end) {
		char c = *L.s;
		const char *start = L.s;
		if (c == ' ' || c == '\t' || c == '\r') {
			L.s++;
			L.ws = 1;
			continue;
		}
		if (c == '#') {
			while (L.s < L.end && *L.s != '\n')
				L.s++;
			L.ws = 1;
			continue;
		}
		if (c == '\n') {
			if (push(&L, T_NL, start, 1, L.line, L.line_start) < 0)
				goto fail;
			L.s++;
			L.line++;
			L.line_start = L.s;
			L.ws = 1;
			continue;
		}
		if (c == '"' || c == '`') {
			if (lex_string(&L) < 0)
				goto fail;
			continue;
		}
		if (isdigit((unsigned char)c)) {
			while (L.s < L.end && isdigit((unsigned char)*L.s))
				L.s++;
			if (L.s + 1 < L.end && *L.s == '.' && isdigit((unsigned char)L.s[1])) {
				L.s++;
				while (L.s < L.end && isdigit((unsigned char)*L.s))
					L.s++;
			}
			if (L.s < L.end && (*L.s == 'e' || *L.s == 'E')) {
				const char *e = L.s + 1;
				if (e < L.end && (*e == '+' || *e == '-'))
					e++;
				if (e < L.end && isdigit((unsigned char)*e)) {
					L.s = e;
					while (L.s < L.end && isdigit((unsigned char)*L.s))
						L.s++;
				}
			}
			if (L.s - start > 4096) {
				lex_fail(&L, "number literal is too long");
				goto fail;
			}
			if (push(&L, T_NUMBER, start, (size_t)(L.s - start), L.line, L.line_start) <
			    0)
				goto fail;
			continue;
		}
		if (isalpha((unsigned char)c) || c == '_') {
			while (L.s < L.end && (isalnum((unsigned char)*L.s) || *L.s == '_'))
				L.s++;
			if (push(&L, T_IDENT, start, (size_t)(L.s - start), L.line, L.line_start) <
			    0)
				goto fail;
			continue;
		}
		enum tok t;
		size_t tl = 1;
		char nx = L.s + 1 < L.end ? L.s[1] : 0;
		switch (c) {
		case '{':
			t = T_LBRACE;
			break;
		case '}':
			t = T_RBRACE;
			break;
		case '[':
			t = T_LBRACK;
			break;
		case ']':
			t = T_RBRACK;
			break;
		case '(':
			t = T_LPAREN;
			break;
		case ')':
			t = T_RPAREN;
			break;
		case '.':
			t = T_DOT;
			break;
		case ',':
			t = T_COMMA;
			break;
		case ';':
			t = T_SEMI;
			break;
		case '+':
			t = T_PLUS;
			break;
		case '-':
			t = T_MINUS;
			break;
		case '*':
			t = T_STAR;
			break;
		case '/':
			t = T_SLASH;
			break;
		case '%':
			t = T_PERCENT;
			break;
		case '|':
			t = T_PIPE;
			break;
		case '&':
			t = T_AMP;
			break;
		case ':':
			t = nx == '=' ? (tl = 2, T_ASSIGN) : T_COLON;
			break;
		case '=':
			t = nx == '=' ? (tl = 2, T_EQ) : T_UNIFY;
			break;
		case '!':
			if (nx != '=') {
				lex_fail(&L, "unexpected '!'");
				goto fail;
			}
			t = T_NE, tl = 2;
			break;
		case '<':
			t = nx == '=' ? (tl = 2, T_LE) : T_LT;
			break;
		case '>':
			t = nx == '=' ? (tl = 2, T_GE) : T_GT;
			break;
		default:
			if ((unsigned char)c >= 0x80)
				lex_fail(&L, "unexpected byte 0x%02x", (unsigned char)c);
			else
				lex_fail(&L, "unexpected character '%c'", c);
			goto fail;
		}
		L.s += tl;
		if (push(&L, t, start, tl, L.line, L.line_start) < 0)
			goto fail;
	}
	if (push(&L, T_EOF, L.s, 0, L.line, L.line_start) < 0)
		goto fail;
	*out = L.toks;
	*n = L.n;
	return 0;
fail:
	free(L.toks);
	return -1;
}
