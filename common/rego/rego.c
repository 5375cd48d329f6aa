/*
 * rego: a compact Rego (v1 syntax) engine: lexer, parser into a small AST, and a top-down
 * evaluator with backtracking written in continuation-passing style (see rego.h).
 *
 * Values are jansson values; "undefined" is NULL. Sets are carried as arrays (sorted,
 * without duplicates). A compiled policy is immutable; every evaluation has its own context
 * (bindings on the C stack, a per-evaluation memo of complete-rule values, a step budget),
 * so one policy serves many threads. Covered: packages and imports, default, complete rules
 * with := / =, multiple definitions with conflict detection, else chains, partial set and
 * object rules, functions, not, some .. in, in, comparisons, arithmetic, refs with dots,
 * brackets, computed keys and iteration, array/set/object literals and comprehensions, and
 * the builtins listed in builtin_table.
 */
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "b64.h"
#include "rego/rego.h"

#define MAX_DEPTH 128
#define MAX_SRC (1u << 20)
#define DEFAULT_STEPS 1000000

/* ------------------------------------------------------------------ lexer */

enum tok {
	T_EOF,
	T_NL,
	T_IDENT,
	T_STRING,
	T_NUMBER,
	T_LBRACE,
	T_RBRACE,
	T_LBRACK,
	T_RBRACK,
	T_LPAREN,
	T_RPAREN,
	T_DOT,
	T_COMMA,
	T_COLON,
	T_SEMI,
	T_ASSIGN,
	T_UNIFY,
	T_EQ,
	T_NE,
	T_LT,
	T_LE,
	T_GT,
	T_GE,
	T_PLUS,
	T_MINUS,
	T_STAR,
	T_SLASH,
	T_PERCENT,
	T_PIPE,
	T_AMP,
};

struct token {
	enum tok t;
	const char *start; /* into the source */
	size_t len;
	int line, col;
	json_t *val; /* strings and numbers */
};

struct lexer {
	const char *src, *s, *end, *name;
	int line;
	const char *line_start;
	struct token *toks;
	size_t n, cap;
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
	return err_set(L->err, "%s:%d:%d: %s", L->name, L->line, (int)(L->s - L->line_start) + 1,
	               m);
}

static int push_tok(struct lexer *L, enum tok t, const char *start, size_t len, json_t *val)
{
	if (L->n == L->cap) {
		size_t nc = L->cap ? L->cap * 2 : 256;
		struct token *nt = realloc(L->toks, nc * sizeof(*nt));
		if (nt == NULL) {
			json_decref(val);
			return lex_fail(L, "out of memory");
		}
		L->toks = nt;
		L->cap = nc;
	}
	L->toks[L->n++] =
	    (struct token){t, start, len, L->line, (int)(start - L->line_start) + 1, val};
	return 0;
}

static int lex_string(struct lexer *L)
{
	const char *start = L->s;
	char *out;
	size_t o = 0;

	if (*L->s == '`') {
		const char *e = memchr(L->s + 1, '`', (size_t)(L->end - L->s - 1));
		if (e == NULL)
			return lex_fail(L, "unterminated raw string");
		json_t *v = json_stringn(L->s + 1, (size_t)(e - L->s - 1));
		for (const char *p = L->s; p < e; p++)
			if (*p == '\n') {
				L->line++;
				L->line_start = p + 1;
			}
		L->s = e + 1;
		if (v == NULL)
			return lex_fail(L, "raw string is not UTF-8");
		return push_tok(L, T_STRING, start, (size_t)(L->s - start), v);
	}
	out = malloc((size_t)(L->end - L->s) + 1);
	if (out == NULL)
		return lex_fail(L, "out of memory");
	L->s++;
	for (;;) {
		if (L->s >= L->end || *L->s == '\n') {
			free(out);
			return lex_fail(L, "unterminated string");
		}
		char c = *L->s++;
		if (c == '"')
			break;
		if (c != '\\') {
			out[o++] = c;
			continue;
		}
		if (L->s >= L->end) {
			free(out);
			return lex_fail(L, "unterminated string");
		}
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
			unsigned cp = 0;
			for (int i = 0; i < 4; i++) {
				int h = L->s < L->end ? *L->s++ : 0;
				cp =
				    cp << 4 |
				    (unsigned)(isdigit(h) ? h - '0' : (tolower(h) - 'a' + 10) & 15);
			}
			if (cp < 0x80) {
				out[o++] = (char)cp;
			} else if (cp < 0x800) {
				out[o++] = (char)(0xC0 | cp >> 6);
				out[o++] = (char)(0x80 | (cp & 0x3F));
			} else {
				out[o++] = (char)(0xE0 | cp >> 12);
				out[o++] = (char)(0x80 | (cp >> 6 & 0x3F));
				out[o++] = (char)(0x80 | (cp & 0x3F));
			}
			break;
		}
		default:
			free(out);
			return lex_fail(L, "invalid escape \\%c", c);
		}
	}
	json_t *v = json_stringn(out, o);
	free(out);
	if (v == NULL)
		return lex_fail(L, "string is not UTF-8");
	return push_tok(L, T_STRING, start, (size_t)(L->s - start), v);
}

static int lex(struct lexer *L)
{
	while (L->s < L->end) {
		char c = *L->s;
		const char *start = L->s;
		if (c == ' ' || c == '\t' || c == '\r') {
			L->s++;
			continue;
		}
		if (c == '#') {
			while (L->s < L->end && *L->s != '\n')
				L->s++;
			continue;
		}
		if (c == '\n') {
			if (push_tok(L, T_NL, start, 1, NULL) < 0)
				return -1;
			L->s++;
			L->line++;
			L->line_start = L->s;
			continue;
		}
		if (c == '"' || c == '`') {
			if (lex_string(L) < 0)
				return -1;
			continue;
		}
		if (isdigit((unsigned char)c)) {
			char *e;
			double d = strtod(L->s, &e);
			size_t len = (size_t)(e - L->s);
			int is_int =
			    memchr(L->s, '.', len) == NULL && memchr(L->s, 'e', len) == NULL &&
			    memchr(L->s, 'E', len) == NULL && fabs(d) < 9.007199254740992e15;
			json_t *v = is_int ? json_integer((json_int_t)d) : json_real(d);
			L->s = e;
			if (len > 64 || v == NULL) {
				json_decref(v);
				return lex_fail(L, "number literal is too long or not finite");
			}
			if (push_tok(L, T_NUMBER, start, len, v) < 0)
				return -1;
			continue;
		}
		if (isalpha((unsigned char)c) || c == '_') {
			while (L->s < L->end && (isalnum((unsigned char)*L->s) || *L->s == '_'))
				L->s++;
			if (push_tok(L, T_IDENT, start, (size_t)(L->s - start), NULL) < 0)
				return -1;
			continue;
		}
		enum tok t;
		size_t len = 1;
		char n = L->s + 1 < L->end ? L->s[1] : 0;
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
			t = n == '=' ? (len = 2, T_ASSIGN) : T_COLON;
			break;
		case '=':
			t = n == '=' ? (len = 2, T_EQ) : T_UNIFY;
			break;
		case '!':
			if (n != '=')
				return lex_fail(L, "unexpected '!'");
			t = T_NE, len = 2;
			break;
		case '<':
			t = n == '=' ? (len = 2, T_LE) : T_LT;
			break;
		case '>':
			t = n == '=' ? (len = 2, T_GE) : T_GT;
			break;
		default:
			return lex_fail(L, "unexpected character '%c'", c);
		}
		L->s += len;
		if (push_tok(L, t, start, len, NULL) < 0)
			return -1;
	}
	return push_tok(L, T_EOF, L->s, 0, NULL);
}

/* ------------------------------------------------------------------ AST */

enum nkind {
	N_SCALAR,
	N_VAR,
	N_REF,
	N_ARRAY,
	N_OBJECT,
	N_SET,
	N_CALL,
	N_BINOP,
	N_NEG,
	N_ACOMPR,
	N_SCOMPR,
	N_OCOMPR,
};

struct lit;

struct node {
	enum nkind k;
	json_t *val;        /* N_SCALAR */
	char *name;         /* N_VAR, N_CALL (dotted name) */
	enum tok op;        /* N_BINOP; T_IDENT = `in` */
	struct node **kids; /* ref: [base, path...]; call args; literal items; binop [l, r] */
	size_t nkids;
	struct node **vals; /* object values */
	struct lit **body;  /* comprehension body */
	size_t nbody;
	struct node *term, *term2; /* comprehension term (and value for objects) */
};

enum lkind { L_EXPR, L_SOME_IN, L_SOME_DECL, L_EVERY };

struct lit {
	enum lkind k;
	int negated;
	struct node *expr;        /* L_EXPR */
	struct node *key, *value; /* L_SOME_IN / L_EVERY vars (key may be NULL) */
	struct node *coll;
	struct lit **body; /* L_EVERY */
	size_t nbody;
	const char *src; /* source text for explanations */
	size_t srclen;
};

enum rkind { R_COMPLETE, R_SET, R_OBJECT, R_FUNC };

struct rule {
	char *pkg, *name;
	enum rkind k;
	int is_default;
	struct node **args; /* R_FUNC */
	size_t nargs;
	struct node *key;   /* R_SET element / R_OBJECT key */
	struct node *value; /* NULL = true */
	struct lit **body;
	size_t nbody;
	struct rule *els; /* else chain */
};

struct rego_policy {
	struct rule **rules;
	size_t nrules;
	char **pkgs;
	size_t npkgs;
	char *srcs; /* concatenated sources that literal texts point into */
	struct rego_host_function *decls;
	size_t ndecls;
	/* every allocation belongs to the policy, freed together */
	void **allocs;
	size_t nallocs, capallocs;
	json_t **vals;
	size_t nvals, capvals;
};

struct parser {
	struct token *t;
	size_t i, n;
	const char *name;
	struct err *err;
	struct rego_policy *pol;
	char *pkg;
	int depth;
	int failed;
	int no_pipe; /* parsing the first term of a collection: '|' starts a comprehension */
};

static void *palloc(struct rego_policy *P, size_t n)
{
	if (P->nallocs == P->capallocs) {
		size_t nc = P->capallocs ? P->capallocs * 2 : 256;
		void **na = realloc(P->allocs, nc * sizeof(void *));
		if (na == NULL)
			return NULL;
		P->allocs = na;
		P->capallocs = nc;
	}
	void *p = calloc(1, n ? n : 1);
	if (p != NULL)
		P->allocs[P->nallocs++] = p;
	return p;
}

static json_t *pval(struct rego_policy *P, json_t *v)
{
	if (v == NULL)
		return NULL;
	if (P->nvals == P->capvals) {
		size_t nc = P->capvals ? P->capvals * 2 : 128;
		json_t **nv = realloc(P->vals, nc * sizeof(json_t *));
		if (nv == NULL)
			return v;
		P->vals = nv;
		P->capvals = nc;
	}
	P->vals[P->nvals++] = v;
	return v;
}

static char *pstrndup(struct rego_policy *P, const char *s, size_t n)
{
	char *d = palloc(P, n + 1);
	if (d)
		memcpy(d, s, n);
	return d;
}

static int pfail(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int pfail(struct parser *p, const char *fmt, ...)
{
	char m[400];
	va_list ap;
	if (p->failed)
		return -1;
	p->failed = 1;
	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	struct token *t = &p->t[p->i < p->n ? p->i : p->n - 1];
	return err_set(p->err, "%s:%d:%d: %s", p->name, t->line, t->col, m);
}

static struct token *cur(struct parser *p)
{
	return &p->t[p->i];
}

static int is_kw(struct token *t, const char *kw)
{
	return t->t == T_IDENT && t->len == strlen(kw) && memcmp(t->start, kw, t->len) == 0;
}

static void skip_nl(struct parser *p)
{
	while (cur(p)->t == T_NL || cur(p)->t == T_SEMI)
		p->i++;
}

static int accept(struct parser *p, enum tok t)
{
	if (cur(p)->t == t) {
		p->i++;
		return 1;
	}
	return 0;
}

static struct node *mk(struct parser *p, enum nkind k)
{
	struct node *n = palloc(p->pol, sizeof(*n));
	if (n)
		n->k = k;
	return n;
}

static int add_kid(struct parser *p, struct node ***arr, size_t *n, struct node *kid)
{
	struct node **na = palloc(p->pol, (*n + 1) * sizeof(*na));
	if (na == NULL)
		return -1;
	if (*n)
		memcpy(na, *arr, *n * sizeof(*na));
	na[(*n)++] = kid;
	*arr = na;
	return 0;
}

static struct node *parse_expr(struct parser *p, int nl_ok);
static int parse_body(struct parser *p, struct lit ***body, size_t *nbody, enum tok close);

static const char *reserved[] = {"if",    "else",    "default", "not", "some", "in", "contains",
                                 "every", "package", "import",  "as",  "with", NULL};

static int is_reserved(struct token *t)
{
	for (int i = 0; reserved[i]; i++)
		if (is_kw(t, reserved[i]))
			return 1;
	return 0;
}

/* newlines are insignificant inside brackets */
static void skip_nl_if(struct parser *p, int nl_ok)
{
	if (nl_ok)
		while (cur(p)->t == T_NL)
			p->i++;
}

static struct node *parse_collection(struct parser *p, enum tok close)
{
	/* after '[' or '{': literal or comprehension */
	struct node *first = NULL, *fval = NULL, *n;
	int saved_no_pipe = p->no_pipe;
	skip_nl_if(p, 1);
	if (accept(p, close)) {
		if (close == T_RBRACK)
			return mk(p, N_ARRAY);
		return mk(p, N_OBJECT); /* {} is an empty object */
	}
	p->no_pipe = 1;
	first = parse_expr(p, 1);
	p->no_pipe = saved_no_pipe;
	if (first == NULL)
		return NULL;
	skip_nl_if(p, 1);
	int is_obj = close == T_RBRACE && accept(p, T_COLON);
	if (is_obj) {
		skip_nl_if(p, 1);
		p->no_pipe = 1;
		fval = parse_expr(p, 1);
		p->no_pipe = saved_no_pipe;
		if (fval == NULL)
			return NULL;
		skip_nl_if(p, 1);
	}
	if (accept(p, T_PIPE)) {
		n = mk(p, close == T_RBRACK ? N_ACOMPR : is_obj ? N_OCOMPR : N_SCOMPR);
		if (n == NULL)
			return NULL;
		n->term = first;
		n->term2 = fval;
		if (parse_body(p, &n->body, &n->nbody, close) < 0)
			return NULL;
		return n;
	}
	n = mk(p, close == T_RBRACK ? N_ARRAY : is_obj ? N_OBJECT : N_SET);
	if (n == NULL)
		return NULL;
	for (;;) {
		if (add_kid(p, &n->kids, &n->nkids, first) < 0)
			return NULL;
		if (is_obj) {
			size_t nv = n->nkids - 1;
			if (add_kid(p, &n->vals, &nv, fval) < 0)
				return NULL;
		}
		skip_nl_if(p, 1);
		if (accept(p, close))
			return n;
		if (!accept(p, T_COMMA))
			return pfail(p, "expected ',' or the end of the collection"), NULL;
		skip_nl_if(p, 1);
		if (accept(p, close))
			return n;
		if ((first = parse_expr(p, 1)) == NULL)
			return NULL;
		if (is_obj) {
			skip_nl_if(p, 1);
			if (!accept(p, T_COLON))
				return pfail(p, "expected ':' in an object"), NULL;
			skip_nl_if(p, 1);
			if ((fval = parse_expr(p, 1)) == NULL)
				return NULL;
		}
	}
}

static struct node *parse_primary(struct parser *p, int nl_ok)
{
	struct token *t = cur(p);
	struct node *n = NULL;

	if (++p->depth > MAX_DEPTH) {
		pfail(p, "expression nested too deeply");
		return NULL;
	}
	if (t->t == T_STRING || t->t == T_NUMBER) {
		n = mk(p, N_SCALAR);
		if (n)
			n->val = pval(p->pol, json_incref(t->val));
		p->i++;
	} else if (t->t == T_MINUS && (p->t[p->i + 1].t == T_NUMBER)) {
		p->i++;
		json_t *v = cur(p)->val;
		n = mk(p, N_SCALAR);
		if (n)
			n->val =
			    pval(p->pol, json_is_integer(v) ? json_integer(-json_integer_value(v))
			                                    : json_real(-json_real_value(v)));
		p->i++;
	} else if (t->t == T_MINUS) {
		p->i++;
		n = mk(p, N_NEG);
		struct node *x = parse_primary(p, nl_ok);
		if (n == NULL || x == NULL || add_kid(p, &n->kids, &n->nkids, x) < 0)
			n = NULL;
	} else if (t->t == T_LBRACK) {
		p->i++;
		int sv = p->no_pipe;
		p->no_pipe = 0;
		n = parse_collection(p, T_RBRACK);
		p->no_pipe = sv;
	} else if (t->t == T_LBRACE) {
		p->i++;
		int sv = p->no_pipe;
		p->no_pipe = 0;
		n = parse_collection(p, T_RBRACE);
		p->no_pipe = sv;
	} else if (t->t == T_LPAREN) {
		p->i++;
		skip_nl_if(p, 1);
		int sv = p->no_pipe;
		p->no_pipe = 0;
		n = parse_expr(p, 1);
		p->no_pipe = sv;
		skip_nl_if(p, 1);
		if (n && !accept(p, T_RPAREN))
			n = (pfail(p, "expected ')'"), NULL);
	} else if (t->t == T_IDENT &&
	           (!is_reserved(t) || (is_kw(t, "contains") && p->t[p->i + 1].t == T_LPAREN))) {
		if (is_kw(t, "true") || is_kw(t, "false") || is_kw(t, "null")) {
			n = mk(p, N_SCALAR);
			if (n)
				n->val = pval(p->pol, is_kw(t, "true")    ? json_true()
				                      : is_kw(t, "false") ? json_false()
				                                          : json_null());
			p->i++;
		} else {
			n = mk(p, N_VAR);
			if (n)
				n->name = pstrndup(p->pol, t->start, t->len);
			p->i++;
		}
	} else {
		pfail(p, "unexpected %.*s", t->len ? (int)t->len : 3, t->len ? t->start : "end");
	}
	/* postfix: .name, [expr], (args) */
	while (n != NULL) {
		struct token *q = cur(p);
		if (q->t == T_DOT && p->t[p->i + 1].t == T_IDENT &&
		    q->start + 1 == p->t[p->i + 1].start) {
			struct token *id = &p->t[p->i + 1];
			p->i += 2;
			struct node *key = mk(p, N_SCALAR);
			if (key == NULL)
				return NULL;
			key->val = pval(p->pol, json_stringn(id->start, id->len));
			if (n->k != N_REF) {
				struct node *r = mk(p, N_REF);
				if (r == NULL || add_kid(p, &r->kids, &r->nkids, n) < 0)
					return NULL;
				n = r;
			}
			if (add_kid(p, &n->kids, &n->nkids, key) < 0)
				return NULL;
		} else if (q->t == T_LBRACK && q->start > p->t[p->i - 1].start &&
		           q->start == p->t[p->i - 1].start + p->t[p->i - 1].len) {
			p->i++;
			skip_nl_if(p, 1);
			struct node *key = parse_expr(p, 1);
			skip_nl_if(p, 1);
			if (key == NULL || !accept(p, T_RBRACK))
				return pfail(p, "expected ']'"), NULL;
			if (n->k != N_REF) {
				struct node *r = mk(p, N_REF);
				if (r == NULL || add_kid(p, &r->kids, &r->nkids, n) < 0)
					return NULL;
				n = r;
			}
			if (add_kid(p, &n->kids, &n->nkids, key) < 0)
				return NULL;
		} else if (q->t == T_LPAREN && (n->k == N_VAR || n->k == N_REF)) {
			/* call: name is the dotted ref text */
			char name[256] = "";
			if (n->k == N_VAR) {
				snprintf(name, sizeof(name), "%s", n->name);
			} else {
				if (n->kids[0]->k != N_VAR)
					return pfail(p, "cannot call this expression"), NULL;
				size_t o =
				    (size_t)snprintf(name, sizeof(name), "%s", n->kids[0]->name);
				for (size_t i = 1; i < n->nkids; i++) {
					if (n->kids[i]->k != N_SCALAR ||
					    !json_is_string(n->kids[i]->val))
						return pfail(p, "cannot call this expression"),
						       NULL;
					o += (size_t)snprintf(
					    name + o,
					    sizeof(name) - (o < sizeof(name) ? o : sizeof(name)),
					    ".%s", json_string_value(n->kids[i]->val));
				}
			}
			p->i++;
			struct node *c = mk(p, N_CALL);
			if (c == NULL)
				return NULL;
			c->name = pstrndup(p->pol, name, strlen(name));
			skip_nl_if(p, 1);
			if (!accept(p, T_RPAREN)) {
				for (;;) {
					skip_nl_if(p, 1);
					struct node *a = parse_expr(p, 1);
					if (a == NULL || add_kid(p, &c->kids, &c->nkids, a) < 0)
						return NULL;
					skip_nl_if(p, 1);
					if (accept(p, T_RPAREN))
						break;
					if (!accept(p, T_COMMA))
						return pfail(p, "expected ',' or ')' in a call"),
						       NULL;
				}
			}
			n = c;
		} else {
			break;
		}
	}
	p->depth--;
	return n;
}

static int prec(struct parser *p, enum tok *op)
{
	struct token *t = cur(p);
	if (is_kw(t, "in")) {
		*op = T_IDENT;
		return 1;
	}
	switch (t->t) {
	case T_ASSIGN:
	case T_UNIFY:
		*op = t->t;
		return 0;
	case T_EQ:
	case T_NE:
	case T_LT:
	case T_LE:
	case T_GT:
	case T_GE:
		*op = t->t;
		return 2;
	case T_PIPE:
		if (p->no_pipe)
			return -1;
		*op = t->t;
		return 3;
	case T_AMP:
		*op = t->t;
		return 4;
	case T_PLUS:
	case T_MINUS:
		*op = t->t;
		return 5;
	case T_STAR:
	case T_SLASH:
	case T_PERCENT:
		*op = t->t;
		return 6;
	default:
		return -1;
	}
}

static struct node *parse_binary(struct parser *p, int min, int nl_ok)
{
	struct node *l = parse_primary(p, nl_ok);
	enum tok op;
	int pr;
	while (l != NULL && (pr = prec(p, &op)) >= min && pr > 0) {
		p->i++;
		skip_nl_if(p, nl_ok);
		struct node *r = parse_binary(p, pr + 1, nl_ok);
		struct node *b = mk(p, N_BINOP);
		if (r == NULL || b == NULL)
			return NULL;
		b->op = op;
		if (add_kid(p, &b->kids, &b->nkids, l) < 0 ||
		    add_kid(p, &b->kids, &b->nkids, r) < 0)
			return NULL;
		l = b;
	}
	return l;
}

static struct node *parse_expr(struct parser *p, int nl_ok)
{
	struct node *l = parse_binary(p, 1, nl_ok);
	enum tok op;
	if (l != NULL && prec(p, &op) == 0) { /* := and = bind loosest */
		p->i++;
		struct node *r = parse_binary(p, 1, nl_ok);
		struct node *b = mk(p, N_BINOP);
		if (r == NULL || b == NULL)
			return NULL;
		b->op = op;
		if (add_kid(p, &b->kids, &b->nkids, l) < 0 ||
		    add_kid(p, &b->kids, &b->nkids, r) < 0)
			return NULL;
		return b;
	}
	return l;
}

static struct lit *parse_literal(struct parser *p)
{
	struct lit *l = palloc(p->pol, sizeof(*l));
	struct token *start = cur(p);
	if (l == NULL)
		return NULL;
	if (is_kw(start, "some")) {
		p->i++;
		struct node *a = parse_binary(p, 2, 0);
		if (a == NULL)
			return NULL;
		if (accept(p, T_COMMA)) {
			l->key = a;
			if ((a = parse_binary(p, 2, 0)) == NULL)
				return NULL;
		}
		if (is_kw(cur(p), "in")) {
			p->i++;
			l->k = L_SOME_IN;
			l->value = a;
			if ((l->coll = parse_binary(p, 2, 0)) == NULL)
				return NULL;
		} else {
			l->k = L_SOME_DECL;
			while (accept(p, T_COMMA))
				if (parse_primary(p, 0) == NULL)
					return NULL;
		}
	} else if (is_kw(start, "every")) {
		p->i++;
		l->k = L_EVERY;
		struct node *a = parse_primary(p, 0);
		if (a == NULL)
			return NULL;
		if (accept(p, T_COMMA)) {
			l->key = a;
			if ((a = parse_primary(p, 0)) == NULL)
				return NULL;
		}
		l->value = a;
		if (!is_kw(cur(p), "in"))
			return pfail(p, "expected 'in' after every"), NULL;
		p->i++;
		if ((l->coll = parse_binary(p, 2, 0)) == NULL)
			return NULL;
		if (!accept(p, T_LBRACE))
			return pfail(p, "expected '{' after every ... in ..."), NULL;
		if (parse_body(p, &l->body, &l->nbody, T_RBRACE) < 0)
			return NULL;
	} else {
		if (is_kw(start, "not")) {
			p->i++;
			l->negated = 1;
		}
		l->k = L_EXPR;
		if ((l->expr = parse_expr(p, 0)) == NULL)
			return NULL;
		if (is_kw(cur(p), "with"))
			return pfail(p, "`with` is not supported by this engine"), NULL;
	}
	struct token *last = &p->t[p->i - 1];
	l->src = start->start;
	l->srclen = (size_t)(last->start + last->len - start->start);
	return l;
}

static int parse_body(struct parser *p, struct lit ***body, size_t *nbody, enum tok close)
{
	for (;;) {
		skip_nl(p);
		if (accept(p, close))
			return 0;
		if (cur(p)->t == T_EOF)
			return pfail(p, "unterminated body");
		struct lit *l = parse_literal(p);
		if (l == NULL)
			return -1;
		struct lit **nb = palloc(p->pol, (*nbody + 1) * sizeof(*nb));
		if (nb == NULL)
			return -1;
		if (*nbody)
			memcpy(nb, *body, *nbody * sizeof(*nb));
		nb[(*nbody)++] = l;
		*body = nb;
		if (cur(p)->t != T_NL && cur(p)->t != T_SEMI && cur(p)->t != close)
			return pfail(p, "expected a new line or '%s' after an expression",
			             close == T_RBRACE ? "}" : "]");
	}
}

/* `if { ... }` or `if <literal>` on one line, or a v0 `{ ... }` body */
static int parse_rule_body(struct parser *p, struct rule *r)
{
	int has_if = is_kw(cur(p), "if");
	if (has_if)
		p->i++;
	if (accept(p, T_LBRACE))
		return parse_body(p, &r->body, &r->nbody, T_RBRACE);
	if (!has_if)
		return 0;
	struct lit *l = parse_literal(p);
	if (l == NULL)
		return -1;
	r->body = palloc(p->pol, sizeof(*r->body));
	if (r->body == NULL)
		return -1;
	r->body[0] = l;
	r->nbody = 1;
	return 0;
}

static int add_rule(struct parser *p, struct rule *r)
{
	struct rego_policy *P = p->pol;
	struct rule **nr = realloc(P->rules, (P->nrules + 1) * sizeof(*nr));
	if (nr == NULL)
		return pfail(p, "out of memory");
	P->rules = nr;
	P->rules[P->nrules++] = r;
	return 0;
}

static int parse_rule(struct parser *p)
{
	struct rule *r = palloc(p->pol, sizeof(*r));
	if (r == NULL)
		return -1;
	r->pkg = p->pkg;
	if (is_kw(cur(p), "default")) {
		p->i++;
		r->is_default = 1;
	}
	struct token *t = cur(p);
	if (t->t != T_IDENT || is_reserved(t))
		return pfail(p, "expected a rule name");
	r->name = pstrndup(p->pol, t->start, t->len);
	p->i++;
	while (cur(p)->t == T_DOT && p->t[p->i + 1].t == T_IDENT)
		return pfail(p, "rules with dotted heads are not supported by this engine");
	r->k = R_COMPLETE;
	if (accept(p, T_LPAREN)) {
		r->k = R_FUNC;
		if (!accept(p, T_RPAREN)) {
			for (;;) {
				struct node *a = parse_expr(p, 1);
				if (a == NULL || add_kid(p, &r->args, &r->nargs, a) < 0)
					return -1;
				if (accept(p, T_RPAREN))
					break;
				if (!accept(p, T_COMMA))
					return pfail(p,
					             "expected ',' or ')' in function arguments");
			}
		}
	} else if (is_kw(cur(p), "contains")) {
		p->i++;
		r->k = R_SET;
		if ((r->key = parse_expr(p, 0)) == NULL)
			return -1;
	} else if (cur(p)->t == T_LBRACK) {
		p->i++;
		if ((r->key = parse_expr(p, 1)) == NULL || !accept(p, T_RBRACK))
			return pfail(p, "expected ']' in a rule head");
		r->k = R_OBJECT;
	}
	if (accept(p, T_ASSIGN) || accept(p, T_UNIFY)) {
		if ((r->value = parse_expr(p, 0)) == NULL)
			return -1;
	} else if (r->k == R_OBJECT) {
		/* `r[x] if ...` is a v0 partial set */
		r->k = R_SET;
	}
	if (r->is_default) {
		if (r->value == NULL)
			return pfail(p, "a default rule needs a value");
		return add_rule(p, r);
	}
	if (parse_rule_body(p, r) < 0)
		return -1;
	struct rule *last = r;
	for (;;) {
		size_t save = p->i;
		skip_nl(p);
		if (!is_kw(cur(p), "else")) {
			p->i = save;
			break;
		}
		p->i++;
		struct rule *e = palloc(p->pol, sizeof(*e));
		if (e == NULL)
			return -1;
		*e = (struct rule){
		    .pkg = r->pkg, .name = r->name, .k = r->k, .args = r->args, .nargs = r->nargs};
		if (accept(p, T_ASSIGN) || accept(p, T_UNIFY))
			if ((e->value = parse_expr(p, 0)) == NULL)
				return -1;
		if (parse_rule_body(p, e) < 0)
			return -1;
		last->els = e;
		last = e;
	}
	return add_rule(p, r);
}

static int parse_module(struct parser *p)
{
	skip_nl(p);
	if (!is_kw(cur(p), "package"))
		return pfail(p, "a module must start with `package`");
	p->i++;
	char pkg[256];
	size_t o = 0;
	for (;;) {
		struct token *t = cur(p);
		if (t->t == T_IDENT && o + t->len + 2 < sizeof(pkg)) {
			memcpy(pkg + o, t->start, t->len);
			o += t->len;
		} else if (t->t == T_LBRACK && p->t[p->i + 1].t == T_STRING) {
			const char *s = json_string_value(p->t[p->i + 1].val);
			size_t l = strlen(s);
			if (o + l + 2 >= sizeof(pkg))
				return pfail(p, "package name is too long");
			memcpy(pkg + o, s, l);
			o += l;
			p->i += 2;
			if (cur(p)->t != T_RBRACK)
				return pfail(p, "expected ']' in the package name");
		} else {
			return pfail(p, "expected a package name");
		}
		p->i++;
		if (cur(p)->t == T_DOT) {
			pkg[o++] = '.';
			p->i++;
			continue;
		}
		break;
	}
	p->pkg = pstrndup(p->pol, pkg, o);
	for (;;) {
		skip_nl(p);
		if (cur(p)->t == T_EOF)
			return 0;
		if (is_kw(cur(p), "import")) {
			while (cur(p)->t != T_NL && cur(p)->t != T_EOF)
				p->i++;
			continue;
		}
		if (parse_rule(p) < 0)
			return -1;
		if (cur(p)->t != T_NL && cur(p)->t != T_EOF && cur(p)->t != T_SEMI)
			return pfail(p, "expected a new line after a rule");
	}
}

/* ------------------------------------------------------------------ values */

static int type_rank(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_NULL:
		return 0;
	case JSON_TRUE:
	case JSON_FALSE:
		return 1;
	case JSON_INTEGER:
	case JSON_REAL:
		return 2;
	case JSON_STRING:
		return 3;
	case JSON_ARRAY:
		return 4;
	case JSON_OBJECT:
		return 5;
	}
	return 6;
}

static double num(const json_t *v)
{
	return json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
}

static int val_cmp(const json_t *a, const json_t *b);

static int obj_cmp(const json_t *a, const json_t *b)
{
	/* compare sorted key lists, then values */
	size_t na = json_object_size(a), nb = json_object_size(b);
	const char **ka = malloc((na + 1) * sizeof(char *)),
	           **kb = malloc((nb + 1) * sizeof(char *));
	size_t i = 0, j = 0;
	const char *k;
	json_t *v;
	int r = 0;
	if (ka == NULL || kb == NULL) {
		free(ka);
		free(kb);
		return 0;
	}
	json_object_foreach((json_t *)a, k, v) ka[i++] = k;
	json_object_foreach((json_t *)b, k, v) kb[j++] = k;
	int (*sc)(const void *, const void *) = (int (*)(const void *, const void *))strcmp;
	(void)sc;
	for (size_t x = 1; x < na; x++)
		for (size_t y = x; y > 0 && strcmp(ka[y - 1], ka[y]) > 0; y--) {
			const char *t = ka[y];
			ka[y] = ka[y - 1];
			ka[y - 1] = t;
		}
	for (size_t x = 1; x < nb; x++)
		for (size_t y = x; y > 0 && strcmp(kb[y - 1], kb[y]) > 0; y--) {
			const char *t = kb[y];
			kb[y] = kb[y - 1];
			kb[y - 1] = t;
		}
	for (i = 0; i < na && i < nb && r == 0; i++) {
		r = strcmp(ka[i], kb[i]);
		if (r == 0)
			r = val_cmp(json_object_get(a, ka[i]), json_object_get(b, kb[i]));
	}
	if (r == 0)
		r = na < nb ? -1 : na > nb;
	free(ka);
	free(kb);
	return r < 0 ? -1 : r > 0;
}

static int val_cmp(const json_t *a, const json_t *b)
{
	int ra = type_rank(a), rb = type_rank(b);
	if (ra != rb)
		return ra < rb ? -1 : 1;
	switch (ra) {
	case 0:
		return 0;
	case 1:
		return json_is_true(a) - json_is_true(b);
	case 2:
		if (json_is_integer(a) && json_is_integer(b))
			return json_integer_value(a) < json_integer_value(b)   ? -1
			       : json_integer_value(a) > json_integer_value(b) ? 1
			                                                       : 0;
		return num(a) < num(b) ? -1 : num(a) > num(b) ? 1 : 0;
	case 3: {
		int c = strcmp(json_string_value(a), json_string_value(b));
		return c < 0 ? -1 : c > 0;
	}
	case 4:
		for (size_t i = 0; i < json_array_size(a) && i < json_array_size(b); i++) {
			int c = val_cmp(json_array_get(a, i), json_array_get(b, i));
			if (c)
				return c;
		}
		return json_array_size(a) < json_array_size(b)
		           ? -1
		           : json_array_size(a) > json_array_size(b);
	default:
		return obj_cmp(a, b);
	}
}

static int val_eq(const json_t *a, const json_t *b)
{
	return a != NULL && b != NULL && val_cmp(a, b) == 0;
}

static int qsort_cmp(const void *a, const void *b)
{
	return val_cmp(*(json_t *const *)a, *(json_t *const *)b);
}

/* sort + dedupe an array in place (a set) */
static json_t *as_set(json_t *arr)
{
	size_t n = json_array_size(arr);
	json_t **v = malloc((n + 1) * sizeof(json_t *)), *out = json_array();
	for (size_t i = 0; i < n; i++)
		v[i] = json_array_get(arr, i);
	qsort(v, n, sizeof(json_t *), qsort_cmp);
	for (size_t i = 0; i < n; i++)
		if (i == 0 || val_cmp(v[i - 1], v[i]) != 0)
			json_array_append(out, v[i]);
	free(v);
	json_decref(arr);
	return out;
}

/* ------------------------------------------------------------------ evaluation */

struct binding {
	const char *name;
	json_t *val; /* borrowed: owned by the evaluation's value pool */
	const struct binding *next;
};

struct memo {
	const char *pkg, *name;
	json_t *val; /* NULL = undefined */
	int state;   /* 1 computing, 2 done */
};

struct ctx {
	const struct rego_policy *P;
	const struct rego_eval_opts *o;
	json_t *input, *data;
	struct err *err;
	uint64_t steps, max_steps;
	struct memo *memo;
	size_t nmemo, capmemo;
	json_t **pool; /* every value created during the evaluation */
	size_t npool, cappool;
	int failed;
	const char *pkg; /* package of the rule being evaluated */
	/* explanation of the top-level rule */
	int explaining;
	char *explain;
	size_t explain_len;
	size_t best_idx;
	const struct lit *best_lit;
	char best_detail[256];
	int depth;
};

static char *key_string(const json_t *key);

typedef int (*cont_fn)(struct ctx *c, json_t *v, const struct binding *env, void *arg);

static int efail(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int efail(struct ctx *c, const char *fmt, ...)
{
	va_list ap;
	if (c->failed)
		return -1;
	c->failed = 1;
	va_start(ap, fmt);
	vsnprintf(c->err->msg, sizeof(c->err->msg), fmt, ap);
	va_end(ap);
	return -1;
}

static json_t *keep(struct ctx *c, json_t *v)
{
	if (v == NULL)
		return NULL;
	if (c->npool == c->cappool) {
		size_t nc = c->cappool ? c->cappool * 2 : 256;
		json_t **np = realloc(c->pool, nc * sizeof(json_t *));
		if (np == NULL)
			return v; /* leaks on OOM only */
		c->pool = np;
		c->cappool = nc;
	}
	c->pool[c->npool++] = v;
	return v;
}

static int step(struct ctx *c)
{
	if (++c->steps > c->max_steps)
		return efail(c, "evaluation budget of %llu steps exceeded",
		             (unsigned long long)c->max_steps);
	return 0;
}

static json_t *lookup(const struct binding *env, const char *name)
{
	for (; env; env = env->next)
		if (strcmp(env->name, name) == 0)
			return env->val;
	return NULL;
}

static int eval_term(struct ctx *c, const struct node *n, const struct binding *env, cont_fn k,
                     void *arg);
static int eval_body(struct ctx *c, struct lit *const *body, size_t nbody, size_t i,
                     const struct binding *env, cont_fn k, void *arg);
static int rule_value(struct ctx *c, const char *pkg, const char *name, json_t **out);
static int has_rule(const struct rego_policy *P, const char *pkg, const char *name);

static int is_unbound_var(const struct node *n, const struct binding *env)
{
	if (n->k != N_VAR)
		return 0;
	if (strcmp(n->name, "_") == 0)
		return 1;
	if (lookup(env, n->name) != NULL)
		return 0;
	return strcmp(n->name, "input") != 0 && strcmp(n->name, "data") != 0;
}

/* Walk a ref's path from `v`, iterating over unbound variables. */
struct walk {
	const struct node *ref;
	size_t i;
	cont_fn k;
	void *arg;
};

static int walk_ref(struct ctx *c, json_t *v, const struct binding *env, const struct node *ref,
                    size_t i, cont_fn k, void *arg);

static int walk_key_cont(struct ctx *c, json_t *key, const struct binding *env, void *arg)
{
	struct walk *w = arg;
	json_t *cur = ((json_t **)w->arg)[0];
	struct walk *outer = ((struct walk **)w->arg)[1];
	json_t *next = NULL;
	if (json_is_object(cur) && json_is_string(key))
		next = json_object_get(cur, json_string_value(key));
	else if (json_is_array(cur) && json_is_integer(key) && json_integer_value(key) >= 0)
		next = json_array_get(cur, (size_t)json_integer_value(key));
	else if (json_is_array(cur) && json_is_real(key) && json_real_value(key) >= 0 &&
	         floor(json_real_value(key)) == json_real_value(key))
		next = json_array_get(cur, (size_t)json_real_value(key));
	if (next == NULL)
		return 0;
	return walk_ref(c, next, env, outer->ref, outer->i + 1, outer->k, outer->arg);
}

static int walk_ref(struct ctx *c, json_t *v, const struct binding *env, const struct node *ref,
                    size_t i, cont_fn k, void *arg)
{
	if (step(c) < 0)
		return -1;
	if (i == ref->nkids)
		return k(c, v, env, arg);
	const struct node *key = ref->kids[i];
	if (is_unbound_var(key, env)) {
		int anon = strcmp(key->name, "_") == 0;
		if (json_is_object(v)) {
			const char *kk;
			json_t *vv;
			json_object_foreach(v, kk, vv)
			{
				struct binding b = {key->name, keep(c, json_string(kk)), env};
				int r = walk_ref(c, vv, anon ? env : &b, ref, i + 1, k, arg);
				if (r)
					return r;
			}
		} else if (json_is_array(v)) {
			for (size_t j = 0; j < json_array_size(v); j++) {
				struct binding b = {key->name, keep(c, json_integer((json_int_t)j)),
				                    env};
				int r = walk_ref(c, json_array_get(v, j), anon ? env : &b, ref,
				                 i + 1, k, arg);
				if (r)
					return r;
			}
		}
		return 0;
	}
	struct walk outer = {ref, i, k, arg};
	void *pair[2] = {v, &outer};
	struct walk w = {ref, i, NULL, pair};
	return eval_term(c, key, env, walk_key_cont, &w);
}

/* data.<pkg path>.<rule> resolution: find the longest package prefix with that rule */
static int eval_data_ref(struct ctx *c, const struct node *ref, const struct binding *env,
                         cont_fn k, void *arg)
{
	char pkg[256] = "";
	size_t o = 0;
	for (size_t i = 1; i < ref->nkids; i++) {
		const struct node *seg = ref->kids[i];
		if (seg->k != N_SCALAR || !json_is_string(seg->val))
			break;
		const char *s = json_string_value(seg->val);
		if (has_rule(c->P, pkg, s) && o > 0) {
			json_t *v;
			const char *saved = c->pkg;
			c->pkg = pkg;
			int rc = rule_value(c, pkg, s, &v);
			c->pkg = saved;
			if (rc < 0)
				return -1;
			if (v == NULL)
				return 0;
			return walk_ref(c, v, env, ref, i + 1, k, arg);
		}
		size_t l = strlen(s);
		if (o + l + 2 >= sizeof(pkg))
			break;
		if (o)
			pkg[o++] = '.';
		memcpy(pkg + o, s, l);
		o += l;
		pkg[o] = '\0';
	}
	return walk_ref(c, c->data, env, ref, 1, k, arg);
}

struct call_state {
	const struct node *call;
	json_t **args;
	cont_fn k;
	void *arg;
	size_t i;
};

static int do_call(struct ctx *c, const struct node *call, json_t **args, const struct binding *env,
                   cont_fn k, void *arg);

static int call_arg_cont(struct ctx *c, json_t *v, const struct binding *env, void *arg)
{
	struct call_state *s = arg;
	s->args[s->i] = v;
	if (s->i + 1 == s->call->nkids)
		return do_call(c, s->call, s->args, env, s->k, s->arg);
	struct call_state next = *s;
	next.i = s->i + 1;
	return eval_term(c, s->call->kids[next.i], env, call_arg_cont, &next);
}

struct coll_state {
	const struct node *n;
	json_t *acc;
	size_t i;
	cont_fn k;
	void *arg;
};

static int coll_cont(struct ctx *c, json_t *v, const struct binding *env, void *arg);

static int coll_next(struct ctx *c, const struct binding *env, struct coll_state *s)
{
	const struct node *n = s->n;
	if (s->i == n->nkids) {
		json_t *out = json_deep_copy(s->acc);
		if (n->k == N_SET)
			out = as_set(out);
		return s->k(c, keep(c, out), env, s->arg);
	}
	return eval_term(c, n->kids[s->i], env, coll_cont, s);
}

struct obj_state {
	struct coll_state *s;
	json_t *key;
};

static int obj_val_cont(struct ctx *c, json_t *v, const struct binding *env, void *arg)
{
	struct obj_state *os = arg;
	struct coll_state next = *os->s;
	json_t *acc = json_deep_copy(os->s->acc);
	char *ks = key_string(os->key);
	json_object_set(acc, ks ? ks : "", v);
	free(ks);
	next.acc = keep(c, acc);
	next.i++;
	return coll_next(c, env, &next);
}

static int coll_cont(struct ctx *c, json_t *v, const struct binding *env, void *arg)
{
	struct coll_state *s = arg;
	if (s->n->k == N_OBJECT) {
		struct obj_state os = {s, v};
		return eval_term(c, s->n->vals[s->i], env, obj_val_cont, &os);
	}
	struct coll_state next = *s;
	json_t *acc = json_deep_copy(s->acc);
	json_array_append(acc, v);
	next.acc = keep(c, acc);
	next.i++;
	return coll_next(c, env, &next);
}

struct compr {
	const struct node *n;
	json_t *acc;
};

static int compr_val_cont(struct ctx *c, json_t *v, const struct binding *env, void *arg)
{
	json_t **kv = arg;
	struct compr *cp = (struct compr *)kv[1];
	json_t *key = kv[0];
	char *ks = key_string(key);
	json_t *old = json_object_get(cp->acc, ks ? ks : "");
	if (old != NULL && !val_eq(old, v)) {
		free(ks);
		return efail(c, "object comprehension produced conflicting values for one key");
	}
	json_object_set(cp->acc, ks ? ks : "", v);
	free(ks);
	return 0;
}

static int compr_key_cont(struct ctx *c, json_t *v, const struct binding *env, void *arg)
{
	struct compr *cp = arg;
	if (cp->n->k == N_OCOMPR) {
		json_t *kv[2] = {v, (json_t *)cp};
		return eval_term(c, cp->n->term2, env, compr_val_cont, kv);
	}
	json_array_append(cp->acc, v);
	return 0;
}

static int compr_body_done(struct ctx *c, json_t *unused, const struct binding *env, void *arg)
{
	struct compr *cp = arg;
	return eval_term(c, cp->n->term, env, compr_key_cont, cp);
}

/* arithmetic and comparisons on two values */
static json_t *arith(struct ctx *c, enum tok op, json_t *a, json_t *b)
{
	if (op == T_PIPE || op == T_AMP ||
	    (op == T_MINUS && json_is_array(a) && json_is_array(b))) {
		if (!json_is_array(a) || !json_is_array(b))
			return NULL;
		json_t *out = json_array();
		if (op == T_PIPE) {
			json_array_extend(out, a);
			json_array_extend(out, b);
		} else {
			for (size_t i = 0; i < json_array_size(a); i++) {
				int in_b = 0;
				for (size_t j = 0; j < json_array_size(b) && !in_b; j++)
					in_b = val_eq(json_array_get(a, i), json_array_get(b, j));
				if (in_b == (op == T_AMP))
					json_array_append(out, json_array_get(a, i));
			}
		}
		return keep(c, as_set(out));
	}
	if (!json_is_number(a) || !json_is_number(b))
		return NULL;
	if (json_is_integer(a) && json_is_integer(b) && op != T_SLASH) {
		json_int_t x = json_integer_value(a), y = json_integer_value(b);
		switch (op) {
		case T_PLUS:
			return keep(c, json_integer(x + y));
		case T_MINUS:
			return keep(c, json_integer(x - y));
		case T_STAR:
			return keep(c, json_integer(x * y));
		case T_PERCENT:
			if (y == 0)
				return efail(c, "modulo by zero"), NULL;
			return keep(c, json_integer(x % y));
		default:
			return NULL;
		}
	}
	double x = num(a), y = num(b), r;
	switch (op) {
	case T_PLUS:
		r = x + y;
		break;
	case T_MINUS:
		r = x - y;
		break;
	case T_STAR:
		r = x * y;
		break;
	case T_SLASH:
		if (y == 0)
			return efail(c, "divide by zero"), NULL;
		r = x / y;
		break;
	default:
		return NULL;
	}
	if (floor(r) == r && fabs(r) < 9e15)
		return keep(c, json_integer((json_int_t)r));
	return keep(c, json_real(r));
}

static int member(const json_t *x, const json_t *coll)
{
	if (json_is_array(coll)) {
		for (size_t i = 0; i < json_array_size(coll); i++)
			if (val_eq(x, json_array_get(coll, i)))
				return 1;
	} else if (json_is_object(coll)) {
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)coll, k, v) if (val_eq(x, v)) return 1;
	}
	return 0;
}

struct bin_state {
	const struct node *n;
	json_t *l;
	cont_fn k;
	void *arg;
};

static int bin_right(struct ctx *c, json_t *r, const struct binding *env, void *arg)
{
	struct bin_state *s = arg;
	json_t *l = s->l, *res = NULL;
	int cmp;
	switch (s->n->op) {
	case T_EQ:
		res = json_boolean(val_cmp(l, r) == 0);
		break;
	case T_NE:
		res = json_boolean(val_cmp(l, r) != 0);
		break;
	case T_LT:
	case T_LE:
	case T_GT:
	case T_GE:
		cmp = val_cmp(l, r);
		res = json_boolean(s->n->op == T_LT   ? cmp < 0
		                   : s->n->op == T_LE ? cmp <= 0
		                   : s->n->op == T_GT ? cmp > 0
		                                      : cmp >= 0);
		break;
	case T_IDENT: /* in */
		res = json_boolean(member(l, r));
		break;
	default:
		res = arith(c, s->n->op, l, r);
		if (res == NULL)
			return c->failed ? -1 : 0;
		return s->k(c, res, env, s->arg);
	}
	return s->k(c, keep(c, res), env, s->arg);
}

static int bin_left(struct ctx *c, json_t *l, const struct binding *env, void *arg)
{
	struct bin_state *s = arg;
	struct bin_state r = *s;
	r.l = l;
	return eval_term(c, s->n->kids[1], env, bin_right, &r);
}

static int neg_cont(struct ctx *c, json_t *v, const struct binding *env, void *arg)
{
	struct bin_state *s = arg;
	if (!json_is_number(v))
		return 0;
	json_t *r = json_is_integer(v) ? json_integer(-json_integer_value(v))
	                               : json_real(-json_real_value(v));
	return s->k(c, keep(c, r), env, s->arg);
}

static int eval_term(struct ctx *c, const struct node *n, const struct binding *env, cont_fn k,
                     void *arg)
{
	if (step(c) < 0)
		return -1;
	if (++c->depth > MAX_DEPTH * 4) {
		c->depth--;
		return efail(c, "evaluation nested too deeply");
	}
	int rc = 0;
	switch (n->k) {
	case N_SCALAR:
		rc = k(c, n->val, env, arg);
		break;
	case N_VAR: {
		json_t *v = lookup(env, n->name);
		if (v != NULL) {
			rc = k(c, v, env, arg);
		} else if (strcmp(n->name, "input") == 0) {
			rc = c->input ? k(c, c->input, env, arg) : 0;
		} else if (strcmp(n->name, "data") == 0) {
			struct node ref = {
			    .k = N_REF, .kids = (struct node *[]){(struct node *)n}, .nkids = 1};
			rc = eval_data_ref(c, &ref, env, k, arg);
		} else if (has_rule(c->P, c->pkg, n->name)) {
			json_t *rv;
			if (rule_value(c, c->pkg, n->name, &rv) < 0)
				rc = -1;
			else
				rc = rv ? k(c, rv, env, arg) : 0;
		} else {
			rc = efail(c, "var %s is unsafe (not bound)", n->name);
		}
		break;
	}
	case N_REF: {
		const struct node *base = n->kids[0];
		if (base->k == N_VAR && strcmp(base->name, "data") == 0 &&
		    lookup(env, "data") == NULL) {
			rc = eval_data_ref(c, n, env, k, arg);
		} else if (base->k == N_VAR && strcmp(base->name, "input") == 0 &&
		           lookup(env, "input") == NULL) {
			rc = c->input ? walk_ref(c, c->input, env, n, 1, k, arg) : 0;
		} else if (base->k == N_VAR && lookup(env, base->name) == NULL &&
		           has_rule(c->P, c->pkg, base->name)) {
			json_t *rv;
			if (rule_value(c, c->pkg, base->name, &rv) < 0)
				rc = -1;
			else
				rc = rv ? walk_ref(c, rv, env, n, 1, k, arg) : 0;
		} else {
			struct walk w = {n, 0, k, arg};
			(void)w;
			/* evaluate the base term, then walk */
			struct {
				const struct node *n;
				cont_fn k;
				void *arg;
			} st = {n, k, arg};
			int base_cont(struct ctx * cc, json_t * v, const struct binding *e,
			              void *a);
			rc = eval_term(c, base, env, base_cont, &st);
		}
		break;
	}
	case N_ARRAY:
	case N_SET:
	case N_OBJECT: {
		struct coll_state s = {n, keep(c, n->k == N_OBJECT ? json_object() : json_array()),
		                       0, k, arg};
		rc = coll_next(c, env, &s);
		break;
	}
	case N_ACOMPR:
	case N_SCOMPR:
	case N_OCOMPR: {
		struct compr cp = {n, keep(c, n->k == N_OCOMPR ? json_object() : json_array())};
		if (eval_body(c, n->body, n->nbody, 0, env, compr_body_done, &cp) < 0) {
			rc = -1;
			break;
		}
		json_t *out = cp.acc;
		if (n->k == N_SCOMPR)
			out = keep(c, as_set(json_deep_copy(out)));
		rc = k(c, out, env, arg);
		break;
	}
	case N_CALL: {
		json_t *args[16];
		if (n->nkids > 16) {
			rc = efail(c, "too many arguments to %s", n->name);
			break;
		}
		if (n->nkids == 0) {
			rc = do_call(c, n, args, env, k, arg);
			break;
		}
		struct call_state s = {n, args, k, arg, 0};
		rc = eval_term(c, n->kids[0], env, call_arg_cont, &s);
		break;
	}
	case N_BINOP: {
		if (n->op == T_ASSIGN || n->op == T_UNIFY) { /* as a term: unification result */
			rc = efail(c, "assignment used as a value");
			break;
		}
		struct bin_state s = {n, NULL, k, arg};
		rc = eval_term(c, n->kids[0], env, bin_left, &s);
		break;
	}
	case N_NEG: {
		struct bin_state s = {n, NULL, k, arg};
		rc = eval_term(c, n->kids[0], env, neg_cont, &s);
		break;
	}
	}
	c->depth--;
	return rc;
}

int base_cont(struct ctx *cc, json_t *v, const struct binding *e, void *a)
{
	struct {
		const struct node *n;
		cont_fn k;
		void *arg;
	} *st = a;
	return walk_ref(cc, v, e, st->n, 1, st->k, st->arg);
}

/* ------------------------------------------------------------------ unification / literals */

/* Bind pattern `pat` (vars, arrays of vars, scalars) to value v. */
static int unify(struct ctx *c, const struct node *pat, json_t *v, const struct binding *env,
                 int (*k)(struct ctx *, const struct binding *, void *), void *arg);

struct unify_arr {
	const struct node *pat;
	json_t *v;
	size_t i;
	int (*k)(struct ctx *, const struct binding *, void *);
	void *arg;
};

static int unify_arr_next(struct ctx *c, const struct binding *env, void *arg)
{
	struct unify_arr *u = arg;
	if (u->i == u->pat->nkids)
		return u->k(c, env, u->arg);
	struct unify_arr next = *u;
	next.i++;
	return unify(c, u->pat->kids[u->i], json_array_get(u->v, u->i), env, unify_arr_next, &next);
}

struct eq_state {
	json_t *v;
	int (*k)(struct ctx *, const struct binding *, void *);
	void *arg;
};

static int eq_cont(struct ctx *c, json_t *x, const struct binding *env, void *arg)
{
	struct eq_state *s = arg;
	return val_eq(x, s->v) ? s->k(c, env, s->arg) : 0;
}

static int unify(struct ctx *c, const struct node *pat, json_t *v, const struct binding *env,
                 int (*k)(struct ctx *, const struct binding *, void *), void *arg)
{
	if (v == NULL)
		return 0;
	if (pat->k == N_VAR && is_unbound_var(pat, env) && !has_rule(c->P, c->pkg, pat->name)) {
		if (strcmp(pat->name, "_") == 0)
			return k(c, env, arg);
		struct binding b = {pat->name, v, env};
		return k(c, &b, arg);
	}
	if (pat->k == N_ARRAY) {
		if (!json_is_array(v) || json_array_size(v) != pat->nkids)
			return 0;
		struct unify_arr u = {pat, v, 0, k, arg};
		return unify_arr_next(c, env, &u);
	}
	struct eq_state s = {v, k, arg};
	return eval_term(c, pat, env, eq_cont, &s);
}

struct body_state {
	struct lit *const *body;
	size_t nbody, i;
	cont_fn k;
	void *arg;
};

static int body_next(struct ctx *c, const struct binding *env, void *arg)
{
	struct body_state *s = arg;
	return eval_body(c, s->body, s->nbody, s->i + 1, env, s->k, s->arg);
}

static int truthy_cont(struct ctx *c, json_t *v, const struct binding *env, void *arg)
{
	struct body_state *s = arg;
	if (json_is_false(v)) {
		if (c->explaining && s->i >= c->best_idx && c->best_detail[0] == '\0')
			snprintf(c->best_detail, sizeof(c->best_detail), "false");
		return 0;
	}
	return body_next(c, env, s);
}

struct cmp_explain {
	struct body_state *s;
	const struct node *n;
	json_t *l;
};

static int explain_right(struct ctx *c, json_t *r, const struct binding *env, void *arg)
{
	struct cmp_explain *e = arg;
	struct bin_state bs = {e->n, e->l, truthy_cont, e->s};
	if (c->explaining && e->s->i >= c->best_idx) {
		char *ls = json_dumps(e->l, JSON_COMPACT | JSON_ENCODE_ANY);
		snprintf(c->best_detail, sizeof(c->best_detail), "%s", ls ? ls : "?");
		free(ls);
	}
	return bin_right(c, r, env, &bs);
}

static int explain_left(struct ctx *c, json_t *l, const struct binding *env, void *arg)
{
	struct cmp_explain *e = arg;
	struct cmp_explain next = *e;
	next.l = l;
	return eval_term(c, e->n->kids[1], env, explain_right, &next);
}

struct assign_state {
	const struct node *pat;
	struct body_state *s;
};

static int assign_value(struct ctx *c, json_t *v, const struct binding *env, void *arg)
{
	struct assign_state *a = arg;
	return unify(c, a->pat, v, env, body_next, a->s);
}

struct found {
	int found;
};

static int found_cont(struct ctx *c, json_t *v, const struct binding *env, void *arg)
{
	((struct found *)arg)->found = 1;
	return 1; /* stop */
}

static int some_in_value(struct ctx *c, json_t *coll, const struct binding *env, void *arg);

struct some_state {
	const struct lit *l;
	struct body_state *s;
	json_t *key;
};

static int some_bind_val(struct ctx *c, const struct binding *env, void *arg)
{
	struct some_state *ss = arg;
	return body_next(c, env, ss->s);
}

static int some_bind_key(struct ctx *c, const struct binding *env, void *arg)
{
	struct some_state *ss = arg;
	json_t *val = ((json_t **)ss->key)[0];
	(void)val;
	return 0;
}

static int some_in_value(struct ctx *c, json_t *coll, const struct binding *env, void *arg)
{
	struct some_state *ss = arg;
	const struct lit *l = ss->l;
	(void)some_bind_key;
	if (json_is_array(coll)) {
		for (size_t i = 0; i < json_array_size(coll); i++) {
			json_t *idx = keep(c, json_integer((json_int_t)i));
			int r;
			if (l->key) {
				struct binding kb = {0};
				const struct binding *e2 = env;
				if (is_unbound_var(l->key, env) && strcmp(l->key->name, "_") != 0) {
					kb = (struct binding){l->key->name, idx, env};
					e2 = &kb;
				} else if (!is_unbound_var(l->key, env)) {
					struct found f = {0};
					struct eq_state es = {idx, NULL, NULL};
					(void)es;
					if (eval_term(c, l->key, env, found_cont, &f) < 0)
						return -1;
				}
				r = unify(c, l->value, json_array_get(coll, i), e2, some_bind_val,
				          ss);
			} else {
				r = unify(c, l->value, json_array_get(coll, i), env, some_bind_val,
				          ss);
			}
			if (r)
				return r;
		}
	} else if (json_is_object(coll)) {
		const char *kk;
		json_t *vv;
		json_object_foreach(coll, kk, vv)
		{
			int r;
			if (l->key) {
				struct binding kb;
				const struct binding *e2 = env;
				if (is_unbound_var(l->key, env) && strcmp(l->key->name, "_") != 0) {
					kb = (struct binding){l->key->name,
					                      keep(c, json_string(kk)), env};
					e2 = &kb;
				}
				r = unify(c, l->value, vv, e2, some_bind_val, ss);
			} else {
				r = unify(c, l->value, vv, env, some_bind_val, ss);
			}
			if (r)
				return r;
		}
	}
	return 0;
}

struct every_state {
	const struct lit *l;
	int ok;
};

static int every_body_ok(struct ctx *c, json_t *v, const struct binding *env, void *arg)
{
	return 1;
}

static int every_coll(struct ctx *c, json_t *coll, const struct binding *env, void *arg)
{
	struct every_state *es = arg;
	const struct lit *l = es->l;
	size_t n = json_is_array(coll)    ? json_array_size(coll)
	           : json_is_object(coll) ? json_object_size(coll)
	                                  : 0;
	const char *kk;
	json_t *vv;
	void *iter = json_is_object(coll) ? json_object_iter(coll) : NULL;
	for (size_t i = 0; i < n; i++) {
		json_t *key, *val;
		if (json_is_array(coll)) {
			key = keep(c, json_integer((json_int_t)i));
			val = json_array_get(coll, i);
		} else {
			kk = json_object_iter_key(iter);
			vv = json_object_iter_value(iter);
			iter = json_object_iter_next(coll, iter);
			key = keep(c, json_string(kk));
			val = vv;
		}
		struct binding kb = {l->key ? l->key->name : "_", key, env};
		struct binding vb = {l->value->name, val, l->key ? &kb : env};
		int r = eval_body(c, l->body, l->nbody, 0, &vb, every_body_ok, NULL);
		if (r < 0)
			return -1;
		if (r == 0) {
			es->ok = 0;
			return 1;
		}
	}
	es->ok = 1;
	return 1;
}

static int eval_body(struct ctx *c, struct lit *const *body, size_t nbody, size_t i,
                     const struct binding *env, cont_fn k, void *arg)
{
	if (step(c) < 0)
		return -1;
	if (i == nbody)
		return k(c, NULL, env, arg);
	const struct lit *l = body[i];
	struct body_state s = {body, nbody, i, k, arg};
	if (c->explaining && i >= c->best_idx) {
		if (i > c->best_idx || c->best_lit != l)
			c->best_detail[0] = '\0';
		c->best_idx = i;
		c->best_lit = l;
	}
	switch (l->k) {
	case L_SOME_DECL:
		return body_next(c, env, &s);
	case L_SOME_IN: {
		struct some_state ss = {l, &s, NULL};
		return eval_term(c, l->coll, env, some_in_value, &ss);
	}
	case L_EVERY: {
		struct every_state es = {l, 0};
		struct found f = {0};
		(void)f;
		int r = eval_term(c, l->coll, env, (cont_fn)every_coll, &es);
		if (r < 0)
			return -1;
		return es.ok ? body_next(c, env, &s) : 0;
	}
	case L_EXPR:
		break;
	}
	const struct node *e = l->expr;
	if (l->negated) {
		struct found f = {0};
		struct lit tmp = *l;
		tmp.negated = 0;
		struct lit *one[1] = {&tmp};
		int save_expl = c->explaining;
		c->explaining = 0;
		int r = eval_body(c, one, 1, 0, env, found_cont, &f);
		c->explaining = save_expl;
		if (r < 0)
			return -1;
		return f.found ? 0 : body_next(c, env, &s);
	}
	if (e->k == N_BINOP && (e->op == T_ASSIGN || e->op == T_UNIFY)) {
		const struct node *lhs = e->kids[0], *rhs = e->kids[1];
		/* x := value, value = x, [a, b] := arr, or comparison-by-unification */
		if (is_unbound_var(lhs, env) || lhs->k == N_ARRAY) {
			struct assign_state a = {lhs, &s};
			return eval_term(c, rhs, env, assign_value, &a);
		}
		if (e->op == T_UNIFY && (is_unbound_var(rhs, env) || rhs->k == N_ARRAY)) {
			struct assign_state a = {rhs, &s};
			return eval_term(c, lhs, env, assign_value, &a);
		}
		struct node eq = *e;
		eq.op = T_EQ;
		struct cmp_explain ce = {&s, &eq, NULL};
		return eval_term(c, eq.kids[0], env, explain_left, &ce);
	}
	if (e->k == N_BINOP && (e->op == T_EQ || e->op == T_NE || e->op == T_LT || e->op == T_LE ||
	                        e->op == T_GT || e->op == T_GE || e->op == T_IDENT)) {
		struct cmp_explain ce = {&s, e, NULL};
		return eval_term(c, e->kids[0], env, explain_left, &ce);
	}
	return eval_term(c, e, env, truthy_cont, &s);
}

/* ------------------------------------------------------------------ rules */

static int has_rule(const struct rego_policy *P, const char *pkg, const char *name)
{
	for (size_t i = 0; i < P->nrules; i++)
		if (strcmp(P->rules[i]->name, name) == 0 && strcmp(P->rules[i]->pkg, pkg) == 0)
			return 1;
	return 0;
}

struct collect {
	const struct rule *r;
	json_t *vals; /* array of solutions */
	json_t *keys; /* R_OBJECT keys */
};

static int collect_val(struct ctx *c, json_t *v, const struct binding *env, void *arg)
{
	struct collect *cl = arg;
	json_array_append(cl->vals, v);
	return 0;
}

struct okey {
	struct collect *cl;
	json_t *key;
};

static int collect_obj_val(struct ctx *c, json_t *v, const struct binding *env, void *arg)
{
	struct okey *ok = arg;
	json_array_append(ok->cl->keys, ok->key);
	json_array_append(ok->cl->vals, v);
	return 0;
}

static int collect_obj_key(struct ctx *c, json_t *k, const struct binding *env, void *arg)
{
	struct collect *cl = arg;
	struct okey ok = {cl, k};
	if (cl->r->value == NULL)
		return collect_obj_val(c, json_true(), env, &ok);
	return eval_term(c, cl->r->value, env, collect_obj_val, &ok);
}

static int body_done(struct ctx *c, json_t *unused, const struct binding *env, void *arg)
{
	struct collect *cl = arg;
	const struct rule *r = cl->r;
	if (r->k == R_SET)
		return eval_term(c, r->key, env, collect_val, cl);
	if (r->k == R_OBJECT)
		return eval_term(c, r->key, env, collect_obj_key, cl);
	if (r->value == NULL) {
		json_array_append(cl->vals, json_true());
		return 0;
	}
	return eval_term(c, r->value, env, collect_val, cl);
}

static void explain_add(struct ctx *c, const struct rule *r)
{
	if (c->best_lit == NULL)
		return;
	char line[1024];
	int n =
	    snprintf(line, sizeof(line), "%s%s: %.*s was %s%s%s", c->explain_len ? "; " : "",
	             r->name, (int)(c->best_lit->srclen > 400 ? 400 : c->best_lit->srclen),
	             c->best_lit->src, c->best_lit->negated ? "true" : "false",
	             c->best_detail[0] && strcmp(c->best_detail, "false") ? " (" : "",
	             c->best_detail[0] && strcmp(c->best_detail, "false") ? c->best_detail : "");
	if (n < 0)
		return;
	if (c->best_detail[0] && strcmp(c->best_detail, "false") && (size_t)n < sizeof(line) - 2)
		strcat(line, ")");
	size_t l = strlen(line);
	char *ne = realloc(c->explain, c->explain_len + l + 1);
	if (ne == NULL)
		return;
	memcpy(ne + c->explain_len, line, l + 1);
	c->explain = ne;
	c->explain_len += l;
}

/* All solutions of a complete rule or a function must agree; returns the value or fails. */
static int single_output(struct ctx *c, json_t *vals, const char *what, const char *name,
                         json_t **out)
{
	json_t *first = json_array_get(vals, 0);
	for (size_t i = 1; i < json_array_size(vals); i++)
		if (!val_eq(first, json_array_get(vals, i)))
			return efail(
			    c, "eval_conflict_error: %s must not produce multiple outputs (%s)",
			    what, name);
	*out = first;
	return 0;
}

/* Object keys from any value: strings as they are, anything else as its JSON text. */
static char *key_string(const json_t *key)
{
	return json_is_string(key) ? strdup(json_string_value(key))
	                           : json_dumps(key, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* Evaluate every definition (and else chain) of a non-function rule. */
static int compute_rule(struct ctx *c, const char *pkg, const char *name, json_t **out,
                        int top_explain)
{
	json_t *deflt = NULL;
	json_t *vals = keep(c, json_array()), *keys = keep(c, json_array());
	enum rkind kind = R_COMPLETE;
	int any = 0;

	for (size_t i = 0; i < c->P->nrules; i++) {
		const struct rule *r = c->P->rules[i];
		if (strcmp(r->name, name) != 0 || strcmp(r->pkg, pkg) != 0)
			continue;
		kind = r->k;
		if (r->k == R_FUNC)
			return efail(c, "function %s called without arguments", name);
		if (r->is_default) {
			json_t *dv = NULL;
			struct collect cl = {r, keep(c, json_array()), NULL};
			if (eval_term(c, r->value, NULL, collect_val, &cl) < 0)
				return -1;
			dv = json_array_get(cl.vals, 0);
			deflt = dv;
			continue;
		}
		for (const struct rule *d = r; d; d = d->els) {
			struct collect cl = {d, keep(c, json_array()), keep(c, json_array())};
			int save = c->explaining;
			c->explaining = top_explain;
			c->best_idx = 0;
			c->best_lit = NULL;
			c->best_detail[0] = '\0';
			int rc = eval_body(c, d->body, d->nbody, 0, NULL, body_done, &cl);
			c->explaining = save;
			if (rc < 0)
				return -1;
			if (json_array_size(cl.vals) == 0) {
				if (top_explain && d->nbody > 0)
					explain_add(c, d);
				continue;
			}
			any = 1;
			json_array_extend(vals, cl.vals);
			json_array_extend(keys, cl.keys);
			break; /* else branches only when this one had no solution */
		}
	}
	if (kind == R_SET) {
		*out = keep(c, as_set(json_deep_copy(vals)));
		return 0;
	}
	if (kind == R_OBJECT) {
		json_t *o = keep(c, json_object());
		for (size_t i = 0; i < json_array_size(keys); i++) {
			json_t *kv = json_array_get(keys, i), *vv = json_array_get(vals, i);
			char *ks = key_string(kv);
			json_t *old = json_object_get(o, ks ? ks : "");
			if (old && !val_eq(old, vv)) {
				free(ks);
				return efail(
				    c, "eval_conflict_error: object keys must be unique (rule %s)",
				    name);
			}
			json_object_set(o, ks ? ks : "", vv);
			free(ks);
		}
		*out = o;
		return 0;
	}
	if (!any) {
		*out = deflt;
		return 0;
	}
	return single_output(c, vals, "complete rules", name, out);
}

static int rule_value(struct ctx *c, const char *pkg, const char *name, json_t **out)
{
	for (size_t i = 0; i < c->nmemo; i++) {
		struct memo *m = &c->memo[i];
		if (strcmp(m->name, name) == 0 && strcmp(m->pkg, pkg) == 0) {
			if (m->state == 1)
				return efail(c, "rule %s is recursive", name);
			*out = m->val;
			return 0;
		}
	}
	if (c->nmemo == c->capmemo) {
		size_t nc = c->capmemo ? c->capmemo * 2 : 32;
		struct memo *nm = realloc(c->memo, nc * sizeof(*nm));
		if (nm == NULL)
			return efail(c, "out of memory");
		c->memo = nm;
		c->capmemo = nc;
	}
	size_t idx = c->nmemo++;
	c->memo[idx] = (struct memo){pkg, name, NULL, 1};
	const char *saved = c->pkg;
	c->pkg = pkg;
	int rc = compute_rule(c, pkg, name, out, 0);
	c->pkg = saved;
	if (rc < 0)
		return -1;
	c->memo[idx].val = *out;
	c->memo[idx].state = 2;
	return 0;
}

/* ------------------------------------------------------------------ builtins */

typedef json_t *(*builtin_fn)(struct ctx *c, json_t **a, size_t n);

static json_t *bi_count(struct ctx *c, json_t **a, size_t n)
{
	if (json_is_array(a[0]))
		return json_integer((json_int_t)json_array_size(a[0]));
	if (json_is_object(a[0]))
		return json_integer((json_int_t)json_object_size(a[0]));
	if (json_is_string(a[0])) {
		json_int_t cp = 0;
		for (const unsigned char *s = (const unsigned char *)json_string_value(a[0]); *s;
		     s++)
			cp += (*s & 0xC0) != 0x80;
		return json_integer(cp);
	}
	return NULL;
}

static void fmt_value(json_t *v, char *out, size_t cap, int quote_strings)
{
	if (json_is_string(v) && !quote_strings) {
		snprintf(out, cap, "%s", json_string_value(v));
		return;
	}
	if (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v) &&
	    fabs(json_real_value(v)) < 1e15) {
		snprintf(out, cap, "%.0f", json_real_value(v));
		return;
	}
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	snprintf(out, cap, "%s", s ? s : "");
	free(s);
}

static json_t *bi_sprintf(struct ctx *c, json_t **a, size_t n)
{
	if (!json_is_string(a[0]) || !json_is_array(a[1]))
		return NULL;
	const char *f = json_string_value(a[0]);
	char out[8192], piece[2048];
	size_t o = 0, argi = 0;
	for (; *f && o + 1 < sizeof(out); f++) {
		if (*f != '%') {
			out[o++] = *f;
			continue;
		}
		f++;
		if (*f == '%') {
			out[o++] = '%';
			continue;
		}
		char spec[16] = "%";
		size_t sl = 1;
		while (*f && strchr("0123456789.-+ #", *f) && sl < 10)
			spec[sl++] = *f++;
		json_t *v = json_array_get(a[1], argi++);
		if (v == NULL) {
			snprintf(piece, sizeof(piece), "%%!%c(MISSING)", *f);
		} else if (*f == 'd' && json_is_number(v)) {
			spec[sl++] = 'l', spec[sl++] = 'l', spec[sl++] = 'd', spec[sl] = 0;
			snprintf(piece, sizeof(piece), spec, (long long)num(v));
		} else if ((*f == 'f' || *f == 'e' || *f == 'g') && json_is_number(v)) {
			spec[sl++] = *f, spec[sl] = 0;
			snprintf(piece, sizeof(piece), spec, num(v));
		} else if (*f == 'x' && json_is_string(v)) {
			char *h = hex_encode((const uint8_t *)json_string_value(v),
			                     json_string_length(v));
			snprintf(piece, sizeof(piece), "%s", h ? h : "");
			free(h);
		} else if (*f == 'q') {
			fmt_value(v, piece, sizeof(piece), 1);
		} else {
			fmt_value(v, piece, sizeof(piece), 0);
		}
		size_t pl = strlen(piece);
		if (o + pl >= sizeof(out))
			break;
		memcpy(out + o, piece, pl);
		o += pl;
	}
	out[o] = 0;
	return json_string(out);
}

static json_t *bi_union_n(struct ctx *c, json_t **a, size_t n)
{
	if (!json_is_array(a[0]))
		return NULL;
	json_t *out = json_object();
	for (size_t i = 0; i < json_array_size(a[0]); i++) {
		json_t *o = json_array_get(a[0], i);
		if (!json_is_object(o)) {
			json_decref(out);
			return NULL;
		}
		json_object_update_recursive(out, o);
	}
	return out;
}

static json_t *bi_union(struct ctx *c, json_t **a, size_t n)
{
	if (json_is_object(a[0]) && json_is_object(a[1])) {
		json_t *out = json_deep_copy(a[0]);
		json_object_update_recursive(out, a[1]);
		return out;
	}
	if (json_is_array(a[0]) && n == 1) {
		json_t *out = json_array();
		for (size_t i = 0; i < json_array_size(a[0]); i++)
			json_array_extend(out, json_array_get(a[0], i));
		return as_set(out);
	}
	return NULL;
}

static json_t *bi_object_get(struct ctx *c, json_t **a, size_t n)
{
	json_t *v = NULL;
	if (json_is_object(a[0]) && json_is_string(a[1]))
		v = json_object_get(a[0], json_string_value(a[1]));
	else if (json_is_object(a[0]) && json_is_array(a[1])) {
		v = a[0];
		for (size_t i = 0; v && i < json_array_size(a[1]); i++) {
			json_t *k = json_array_get(a[1], i);
			v = json_is_object(v) && json_is_string(k)
			        ? json_object_get(v, json_string_value(k))
			    : json_is_array(v) && json_is_integer(k)
			        ? json_array_get(v, (size_t)json_integer_value(k))
			        : NULL;
		}
	}
	return json_incref(v ? v : a[2]);
}

static json_t *bi_object_keys(struct ctx *c, json_t **a, size_t n)
{
	if (!json_is_object(a[0]))
		return NULL;
	json_t *out = json_array();
	const char *k;
	json_t *v;
	json_object_foreach(a[0], k, v) json_array_append_new(out, json_string(k));
	return as_set(out);
}

static json_t *bi_str2(struct ctx *c, json_t **a, size_t n, int op)
{
	if (!json_is_string(a[0]) || !json_is_string(a[1]))
		return NULL;
	const char *s = json_string_value(a[0]), *t = json_string_value(a[1]);
	size_t sl = strlen(s), tl = strlen(t);
	switch (op) {
	case 0:
		return json_boolean(strncmp(s, t, tl) == 0);
	case 1:
		return json_boolean(sl >= tl && strcmp(s + sl - tl, t) == 0);
	default:
		return json_boolean(strstr(s, t) != NULL);
	}
}

static json_t *bi_startswith(struct ctx *c, json_t **a, size_t n)
{
	return bi_str2(c, a, n, 0);
}

static json_t *bi_endswith(struct ctx *c, json_t **a, size_t n)
{
	return bi_str2(c, a, n, 1);
}

static json_t *bi_contains(struct ctx *c, json_t **a, size_t n)
{
	return bi_str2(c, a, n, 2);
}

static json_t *bi_case(struct ctx *c, json_t **a, int up)
{
	if (!json_is_string(a[0]))
		return NULL;
	char *s = strdup(json_string_value(a[0]));
	for (char *p = s; p && *p; p++)
		*p = (char)(up ? toupper((unsigned char)*p) : tolower((unsigned char)*p));
	json_t *r = json_string(s ? s : "");
	free(s);
	return r;
}

static json_t *bi_lower(struct ctx *c, json_t **a, size_t n)
{
	return bi_case(c, a, 0);
}

static json_t *bi_upper(struct ctx *c, json_t **a, size_t n)
{
	return bi_case(c, a, 1);
}

static json_t *bi_concat(struct ctx *c, json_t **a, size_t n)
{
	if (!json_is_string(a[0]) || !json_is_array(a[1]))
		return NULL;
	size_t cap = 1;
	for (size_t i = 0; i < json_array_size(a[1]); i++) {
		if (!json_is_string(json_array_get(a[1], i)))
			return NULL;
		cap += json_string_length(json_array_get(a[1], i)) + json_string_length(a[0]);
	}
	char *s = calloc(1, cap);
	for (size_t i = 0; s && i < json_array_size(a[1]); i++) {
		if (i)
			strcat(s, json_string_value(a[0]));
		strcat(s, json_string_value(json_array_get(a[1], i)));
	}
	json_t *r = json_string(s ? s : "");
	free(s);
	return r;
}

static json_t *bi_split(struct ctx *c, json_t **a, size_t n)
{
	if (!json_is_string(a[0]) || !json_is_string(a[1]))
		return NULL;
	const char *s = json_string_value(a[0]), *d = json_string_value(a[1]);
	size_t dl = strlen(d);
	json_t *out = json_array();
	if (dl == 0) {
		json_array_append_new(out, json_string(s));
		return out;
	}
	for (;;) {
		const char *e = strstr(s, d);
		if (e == NULL) {
			json_array_append_new(out, json_string(s));
			return out;
		}
		json_array_append_new(out, json_stringn(s, (size_t)(e - s)));
		s = e + dl;
	}
}

static json_t *bi_trim_space(struct ctx *c, json_t **a, size_t n)
{
	if (!json_is_string(a[0]))
		return NULL;
	const char *s = json_string_value(a[0]);
	size_t l = strlen(s);
	while (l && isspace((unsigned char)s[l - 1]))
		l--;
	while (l && isspace((unsigned char)*s))
		s++, l--;
	return json_stringn(s, l);
}

static json_t *bi_to_number(struct ctx *c, json_t **a, size_t n)
{
	if (json_is_number(a[0]))
		return json_incref(a[0]);
	if (json_is_boolean(a[0]))
		return json_integer(json_is_true(a[0]));
	if (json_is_null(a[0]))
		return json_integer(0);
	if (!json_is_string(a[0]))
		return NULL;
	char *e;
	const char *s = json_string_value(a[0]);
	double d = strtod(s, &e);
	if (*s == '\0' || *e != '\0' || !isfinite(d)) {
		efail(c, "to_number: invalid syntax");
		return NULL;
	}
	if (floor(d) == d && fabs(d) < 9e15 && !strpbrk(s, ".eE"))
		return json_integer((json_int_t)d);
	return json_real(d);
}

static json_t *bi_type_name(struct ctx *c, json_t **a, size_t n)
{
	static const char *names[] = {"null", "boolean", "number", "string", "array", "object"};
	return json_string(names[type_rank(a[0])]);
}

#define IS_FN(fname, pred)                                                                         \
	static json_t *fname(struct ctx *c, json_t **a, size_t n)                                  \
	{                                                                                          \
		return pred ? json_true() : NULL;                                                  \
	}
IS_FN(bi_is_string, json_is_string(a[0]))
IS_FN(bi_is_number, json_is_number(a[0]))
IS_FN(bi_is_boolean, json_is_boolean(a[0]))
IS_FN(bi_is_array, json_is_array(a[0]))
IS_FN(bi_is_object, json_is_object(a[0]))
IS_FN(bi_is_null, json_is_null(a[0]))

static json_t *bi_agg(struct ctx *c, json_t **a, int op)
{
	if (!json_is_array(a[0]))
		return NULL;
	json_t *best = NULL;
	double sum = 0;
	int all_int = 1;
	for (size_t i = 0; i < json_array_size(a[0]); i++) {
		json_t *v = json_array_get(a[0], i);
		if (op < 2) {
			if (best == NULL || (op == 0 ? val_cmp(v, best) > 0 : val_cmp(v, best) < 0))
				best = v;
		} else {
			if (!json_is_number(v))
				return NULL;
			all_int &= json_is_integer(v);
			sum = op == 2 ? sum + num(v) : (i == 0 ? num(v) : sum * num(v));
		}
	}
	if (op < 2)
		return best ? json_incref(best) : NULL;
	if (op == 3 && json_array_size(a[0]) == 0)
		sum = 1;
	return all_int && fabs(sum) < 9e15 ? json_integer((json_int_t)sum) : json_real(sum);
}

static json_t *bi_max(struct ctx *c, json_t **a, size_t n)
{
	return bi_agg(c, a, 0);
}

static json_t *bi_min(struct ctx *c, json_t **a, size_t n)
{
	return bi_agg(c, a, 1);
}

static json_t *bi_sum(struct ctx *c, json_t **a, size_t n)
{
	return bi_agg(c, a, 2);
}

static json_t *bi_product(struct ctx *c, json_t **a, size_t n)
{
	return bi_agg(c, a, 3);
}

static json_t *bi_sort(struct ctx *c, json_t **a, size_t n)
{
	if (!json_is_array(a[0]))
		return NULL;
	size_t k = json_array_size(a[0]);
	json_t **v = malloc((k + 1) * sizeof(json_t *)), *out = json_array();
	for (size_t i = 0; i < k; i++)
		v[i] = json_array_get(a[0], i);
	qsort(v, k, sizeof(json_t *), qsort_cmp);
	for (size_t i = 0; i < k; i++)
		json_array_append(out, v[i]);
	free(v);
	return out;
}

static json_t *bi_array_concat(struct ctx *c, json_t **a, size_t n)
{
	if (!json_is_array(a[0]) || !json_is_array(a[1]))
		return NULL;
	json_t *out = json_deep_copy(a[0]);
	json_array_extend(out, a[1]);
	return out;
}

static json_t *bi_abs(struct ctx *c, json_t **a, size_t n)
{
	if (json_is_integer(a[0]))
		return json_integer(llabs(json_integer_value(a[0])));
	return json_is_real(a[0]) ? json_real(fabs(json_real_value(a[0]))) : NULL;
}

static json_t *bi_json_marshal(struct ctx *c, json_t **a, size_t n)
{
	char *s = json_dumps(a[0], JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
	json_t *r = json_string(s ? s : "");
	free(s);
	return r;
}

static json_t *bi_json_unmarshal(struct ctx *c, json_t **a, size_t n)
{
	return json_is_string(a[0]) ? json_loads(json_string_value(a[0]), JSON_DECODE_ANY, NULL)
	                            : NULL;
}

static json_t *bi_b64(struct ctx *c, json_t **a, int enc, int variant)
{
	if (!json_is_string(a[0]))
		return NULL;
	if (enc) {
		char *s = b64_encode((const uint8_t *)json_string_value(a[0]),
		                     json_string_length(a[0]), variant);
		json_t *r = json_string(s ? s : "");
		free(s);
		return r;
	}
	uint8_t *d;
	size_t l;
	if (b64_decode(json_string_value(a[0]), json_string_length(a[0]), variant | B64_LENIENT, &d,
	               &l) < 0)
		return NULL;
	json_t *r = json_stringn((const char *)d, l);
	free(d);
	return r;
}

static json_t *bi_b64enc(struct ctx *c, json_t **a, size_t n)
{
	return bi_b64(c, a, 1, B64_STD);
}

static json_t *bi_b64dec(struct ctx *c, json_t **a, size_t n)
{
	return bi_b64(c, a, 0, B64_STD);
}

static json_t *bi_b64urlenc(struct ctx *c, json_t **a, size_t n)
{
	return bi_b64(c, a, 1, B64_URL_PAD);
}

static json_t *bi_b64urldec(struct ctx *c, json_t **a, size_t n)
{
	return bi_b64(c, a, 0, B64_URL);
}

static json_t *bi_regex_match(struct ctx *c, json_t **a, size_t n)
{
	regex_t re;
	if (!json_is_string(a[0]) || !json_is_string(a[1]))
		return NULL;
	if (regcomp(&re, json_string_value(a[0]), REG_EXTENDED | REG_NOSUB) != 0) {
		efail(c, "regex.match: invalid pattern");
		return NULL;
	}
	int m = regexec(&re, json_string_value(a[1]), 0, NULL, 0) == 0;
	regfree(&re);
	return json_boolean(m);
}

static json_t *bi_time_now_ns(struct ctx *c, json_t **a, size_t n)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return json_integer((json_int_t)t.tv_sec * 1000000000 + t.tv_nsec);
}

static json_t *bi_parse_rfc3339(struct ctx *c, json_t **a, size_t n)
{
	struct tm tm = {0};
	if (!json_is_string(a[0]))
		return NULL;
	const char *e = strptime(json_string_value(a[0]), "%Y-%m-%dT%H:%M:%S", &tm);
	if (e == NULL) {
		efail(c, "time.parse_rfc3339_ns: cannot parse");
		return NULL;
	}
	long long ns = 0;
	if (*e == '.') {
		long long scale = 100000000;
		for (e++; isdigit((unsigned char)*e); e++, scale /= 10)
			ns += (*e - '0') * scale;
	}
	long off = 0;
	if (*e == '+' || *e == '-') {
		int hh = 0, mm = 0;
		sscanf(e + 1, "%d:%d", &hh, &mm);
		off = (*e == '-' ? -1 : 1) * (hh * 3600 + mm * 60);
	}
	return json_integer(((json_int_t)timegm(&tm) - off) * 1000000000 + ns);
}

struct builtin {
	const char *name;
	size_t arity;
	builtin_fn fn;
};

static const struct builtin builtin_table[] = {
    {"count", 1, bi_count},
    {"sprintf", 2, bi_sprintf},
    {"object.union_n", 1, bi_union_n},
    {"object.union", 2, bi_union},
    {"union", 1, bi_union},
    {"object.get", 3, bi_object_get},
    {"object.keys", 1, bi_object_keys},
    {"startswith", 2, bi_startswith},
    {"endswith", 2, bi_endswith},
    {"contains", 2, bi_contains},
    {"lower", 1, bi_lower},
    {"upper", 1, bi_upper},
    {"concat", 2, bi_concat},
    {"split", 2, bi_split},
    {"trim_space", 1, bi_trim_space},
    {"to_number", 1, bi_to_number},
    {"type_name", 1, bi_type_name},
    {"is_string", 1, bi_is_string},
    {"is_number", 1, bi_is_number},
    {"is_boolean", 1, bi_is_boolean},
    {"is_array", 1, bi_is_array},
    {"is_object", 1, bi_is_object},
    {"is_null", 1, bi_is_null},
    {"max", 1, bi_max},
    {"min", 1, bi_min},
    {"sum", 1, bi_sum},
    {"product", 1, bi_product},
    {"sort", 1, bi_sort},
    {"array.concat", 2, bi_array_concat},
    {"abs", 1, bi_abs},
    {"json.marshal", 1, bi_json_marshal},
    {"json.unmarshal", 1, bi_json_unmarshal},
    {"base64.encode", 1, bi_b64enc},
    {"base64.decode", 1, bi_b64dec},
    {"base64url.encode", 1, bi_b64urlenc},
    {"base64url.decode", 1, bi_b64urldec},
    {"regex.match", 2, bi_regex_match},
    {"time.now_ns", 0, bi_time_now_ns},
    {"time.parse_rfc3339_ns", 1, bi_parse_rfc3339},
};

/* user-defined functions: bind params to args, evaluate bodies */
struct fn_state {
	const struct rule *r;
	json_t **args;
	size_t i;
	struct collect *cl;
};

static int fn_bind_next(struct ctx *c, const struct binding *env, void *arg)
{
	struct fn_state *s = arg;
	if (s->i == s->r->nargs)
		return eval_body(c, s->r->body, s->r->nbody, 0, env, body_done, s->cl);
	struct fn_state next = *s;
	next.i++;
	return unify(c, s->r->args[s->i], s->args[s->i], env, fn_bind_next, &next);
}

static int do_call(struct ctx *c, const struct node *call, json_t **args, const struct binding *env,
                   cont_fn k, void *arg)
{
	const char *name = call->name;
	size_t n = call->nkids;

	/* host functions first: the embedder decides */
	for (size_t i = 0; i < c->o->n_host_fns; i++) {
		const struct rego_host_function *h = &c->o->host_fns[i];
		if (strcmp(h->name, name) == 0 && h->arity == n) {
			struct err herr = {0};
			json_t *v = h->fn(h->ctx, args, n, &herr);
			if (v == NULL)
				return efail(c, "%s: %s", name, herr.msg[0] ? herr.msg : "failed");
			return k(c, keep(c, v), env, arg);
		}
	}
	/* user functions in the current package */
	int user = 0;
	json_t *vals = keep(c, json_array());
	for (size_t i = 0; i < c->P->nrules; i++) {
		const struct rule *r = c->P->rules[i];
		if (r->k != R_FUNC || strcmp(r->name, name) != 0 || strcmp(r->pkg, c->pkg) != 0)
			continue;
		user = 1;
		if (r->nargs != n)
			return efail(c, "%s: expected %zu arguments, got %zu", name, r->nargs, n);
		for (const struct rule *d = r; d; d = d->els) {
			struct collect cl = {d, keep(c, json_array()), NULL};
			struct fn_state s = {d, args, 0, &cl};
			if (fn_bind_next(c, NULL, &s) < 0)
				return -1;
			if (json_array_size(cl.vals) > 0) {
				json_array_extend(vals, cl.vals);
				break;
			}
		}
	}
	if (user) {
		if (json_array_size(vals) == 0)
			return 0;
		json_t *first;
		if (single_output(c, vals, "functions", name, &first) < 0)
			return -1;
		return k(c, first, env, arg);
	}
	for (size_t i = 0; i < sizeof(builtin_table) / sizeof(builtin_table[0]); i++) {
		if (strcmp(builtin_table[i].name, name) != 0)
			continue;
		if (builtin_table[i].arity != n)
			return efail(c, "%s: expected %zu arguments, got %zu", name,
			             builtin_table[i].arity, n);
		json_t *v = builtin_table[i].fn(c, args, n);
		if (c->failed)
			return -1;
		if (v == NULL) {
			if (c->o->strict_builtin_errors)
				return efail(c, "%s: operand has the wrong type", name);
			return 0;
		}
		return k(c, keep(c, v), env, arg);
	}
	return efail(c, "could not find function %s", name);
}

/* ------------------------------------------------------------------ API */

void rego_policy_free(struct rego_policy *P)
{
	if (P == NULL)
		return;
	for (size_t i = 0; i < P->nallocs; i++)
		free(P->allocs[i]);
	for (size_t i = 0; i < P->nvals; i++)
		json_decref(P->vals[i]);
	free(P->allocs);
	free(P->vals);
	free(P->rules);
	free(P->srcs);
	free(P);
}

static int compile_into(struct rego_policy *P, const struct rego_module *mods, size_t n,
                        struct err *err)
{
	size_t total = 0;
	for (size_t i = 0; i < n; i++) {
		if (mods[i].len > MAX_SRC)
			return err_set(err, "%s: policy is larger than %u bytes", mods[i].name,
			               MAX_SRC);
		total += mods[i].len + 1;
	}
	P->srcs = malloc(total + 1);
	if (P->srcs == NULL)
		return err_set(err, "out of memory");
	size_t off = 0;
	for (size_t i = 0; i < n; i++) {
		char *src = P->srcs + off;
		memcpy(src, mods[i].text, mods[i].len);
		src[mods[i].len] = '\0';
		off += mods[i].len + 1;
		if (memchr(src, '\0', mods[i].len) != NULL)
			return err_set(err, "%s: policy contains a NUL byte", mods[i].name);
		struct lexer L = {.src = src,
		                  .s = src,
		                  .end = src + mods[i].len,
		                  .name = mods[i].name ? mods[i].name : "policy.rego",
		                  .line = 1,
		                  .line_start = src,
		                  .err = err};
		if (lex(&L) < 0) {
			for (size_t t = 0; t < L.n; t++)
				json_decref(L.toks[t].val);
			free(L.toks);
			return -1;
		}
		for (size_t t = 0; t < L.n; t++)
			if (L.toks[t].val)
				pval(P, L.toks[t].val);
		struct parser p = {.t = L.toks, .n = L.n, .name = L.name, .err = err, .pol = P};
		int rc = parse_module(&p);
		free(L.toks);
		if (rc < 0)
			return -1;
	}
	return 0;
}

struct rego_policy *rego_compile(const struct rego_module *mods, size_t n,
                                 const struct rego_host_function *host_decls, size_t n_host,
                                 struct err *err)
{
	struct rego_policy *P = calloc(1, sizeof(*P));
	if (P == NULL)
		return NULL;
	if (compile_into(P, mods, n, err) < 0) {
		rego_policy_free(P);
		return NULL;
	}
	/* conflicting rule kinds for one name are a compile error */
	for (size_t i = 0; i < P->nrules; i++)
		for (size_t j = i + 1; j < P->nrules; j++)
			if (strcmp(P->rules[i]->name, P->rules[j]->name) == 0 &&
			    strcmp(P->rules[i]->pkg, P->rules[j]->pkg) == 0 &&
			    P->rules[i]->k != P->rules[j]->k && !P->rules[i]->is_default &&
			    !P->rules[j]->is_default) {
				err_set(err, "rule %s is defined with different kinds",
				        P->rules[i]->name);
				rego_policy_free(P);
				return NULL;
			}
	(void)host_decls;
	(void)n_host;
	return P;
}

int rego_check(const struct rego_module *mods, size_t n, struct err *err)
{
	struct rego_policy *P = rego_compile(mods, n, NULL, 0, err);
	if (P == NULL)
		return -1;
	rego_policy_free(P);
	return 0;
}

static void ctx_free(struct ctx *c)
{
	for (size_t i = 0; i < c->npool; i++)
		json_decref(c->pool[i]);
	free(c->pool);
	free(c->memo);
}

/* "data.policy.allow" -> package "policy", rule "allow" (the longest package with the rule) */
int rego_eval_rule(const struct rego_policy *P, const char *path, const struct rego_eval_opts *opts,
                   json_t **result, char **explain, struct err *err)
{
	struct rego_eval_opts none = {0};
	struct ctx c = {.P = P, .o = opts ? opts : &none, .err = err};
	char buf[512], *dot;

	*result = NULL;
	if (explain)
		*explain = NULL;
	if (strncmp(path, "data.", 5) != 0 || strlen(path) >= sizeof(buf))
		return err_set(err, "rule path \"%s\" must start with data.", path);
	snprintf(buf, sizeof(buf), "%s", path + 5);
	dot = strrchr(buf, '.');
	if (dot == NULL)
		return err_set(err, "rule path \"%s\" names no package", path);
	*dot = '\0';
	const char *pkg = buf, *name = dot + 1;
	c.max_steps = c.o->max_steps ? c.o->max_steps : DEFAULT_STEPS;
	c.input = (json_t *)c.o->input;
	json_t *empty = json_object();
	c.data = c.o->data ? (json_t *)c.o->data : empty;
	c.pkg = pkg;
	if (!has_rule(P, pkg, name)) {
		json_decref(empty);
		return 0; /* undefined */
	}
	json_t *v = NULL;
	int rc = compute_rule(&c, pkg, name, &v, opts && opts->explain && explain);
	if (rc == 0 && v != NULL)
		*result = json_deep_copy(v);
	if (rc == 0 && explain && c.explain)
		*explain = c.explain;
	else
		free(c.explain);
	ctx_free(&c);
	json_decref(empty);
	return rc;
}

/* Queries: a ref ("data.policy.allow", "input.x") or "x := <ref>"/"<ref> = x" bind x. */
int rego_eval_query(const struct rego_policy *P, const char *query,
                    const struct rego_eval_opts *opts, json_t **results, json_t **expr_values,
                    char **explain, struct err *err)
{
	char mod[4096];
	int n = snprintf(mod, sizeof(mod),
	                 "package __query__\n__q__ := __v__ if {\n__v__ := %s\n}\n", query);
	struct rego_policy *Q;
	struct rego_module m = {"query", mod, (size_t)n};
	json_t *v = NULL;

	*results = NULL;
	if (expr_values)
		*expr_values = NULL;
	if (explain)
		*explain = NULL;
	if (n <= 0 || (size_t)n >= sizeof(mod))
		return err_set(err, "query is too long");
	/* evaluate against a policy made of the modules plus the query module */
	Q = calloc(1, sizeof(*Q));
	if (Q == NULL)
		return err_set(err, "out of memory");
	if (P != NULL) {
		Q->rules = malloc((P->nrules + 1) * sizeof(*Q->rules));
		if (Q->rules == NULL) {
			free(Q);
			return err_set(err, "out of memory");
		}
		memcpy(Q->rules, P->rules, P->nrules * sizeof(*Q->rules));
		Q->nrules = P->nrules;
	}
	int rc = compile_into(Q, &m, 1, err);
	if (rc == 0)
		rc = rego_eval_rule(Q, "data.__query__.__q__", opts, &v, NULL, err);
	if (rc == 0) {
		*results = json_array();
		if (v != NULL) {
			json_array_append_new(*results, json_object());
			if (expr_values)
				*expr_values = json_pack("[o]", v);
			else
				json_decref(v);
		}
	}
	/* the query policy borrows P's rules: free only what it allocated itself */
	free(Q->rules);
	Q->rules = NULL;
	Q->nrules = 0;
	rego_policy_free(Q);
	return rc;
}
