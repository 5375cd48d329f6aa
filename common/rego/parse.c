/*
 * parse: Rego v1 modules, queries and terms into the AST of rego_int.h.
 *
 * Operators become calls to the builtins OPA names them after (`a + b` is plus(a, b),
 * `x in xs` is internal.member_2(x, xs)), with OPA's precedence, lowest first:
 *   in  <  == != < <= > >=  <  |  <  &  <  + -  <  * / %  <  terms
 * `k, v in xs` (internal.member_3) is recognised where a comma cannot separate items: at the
 * top of a body literal and inside parentheses. Newlines end a literal, except inside
 * brackets or after an operator. Deep nesting is refused rather than overflowing the stack.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rego/rego_int.h"

#define MAX_DEPTH 200

struct parser {
	struct arena *A;
	struct token *t;
	size_t i, n;
	const char *name;
	struct err *err;
	int depth;
	int failed;
	int nest;    /* inside brackets: newlines are blanks */
	int no_pipe; /* first term of a collection: '|' starts a comprehension */
};

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
	return err_setc(p->err, REGO_ERR_PARSE, "%s:%d:%d: rego_parse_error: %s", p->name, t->line,
	                t->col, m);
}

static struct token *cur(struct parser *p)
{
	if (p->nest > 0)
		while (p->t[p->i].t == T_NL)
			p->i++;
	return &p->t[p->i];
}

static struct token *peek(struct parser *p, size_t k)
{
	size_t j = p->i;
	for (;;) {
		while (p->nest > 0 && p->t[j].t == T_NL)
			j++;
		if (k == 0 || p->t[j].t == T_EOF)
			return &p->t[j];
		j++;
		k--;
	}
}

static int is_kw_n(const struct token *t, const char *kw, size_t n)
{
	return t->t == T_IDENT && t->len == n && t->start[0] == kw[0] &&
	       memcmp(t->start, kw, n) == 0;
}

/* keywords are literals: their length is known at compile time */
#define is_kw(t, kw) is_kw_n((t), kw, sizeof(kw) - 1)

static int accept(struct parser *p, enum tok t)
{
	if (cur(p)->t == t) {
		p->i++;
		return 1;
	}
	return 0;
}

static void skip_nls(struct parser *p)
{
	while (p->t[p->i].t == T_NL)
		p->i++;
}

static void skip_seps(struct parser *p)
{
	while (p->t[p->i].t == T_NL || p->t[p->i].t == T_SEMI)
		p->i++;
}

static const char *reserved[] = {"if",       "else",  "default", "not",    "some", "in",
                                 "contains", "every", "package", "import", "as",   "with",
                                 "true",     "false", "null",    NULL};

static int is_reserved(const struct token *t)
{
	if (t->t != T_IDENT || t->len < 2 || t->len > 8 || !strchr("ednscpiatwfu", t->start[0]))
		return 0;
	for (int i = 0; reserved[i]; i++)
		if (is_kw_n(t, reserved[i], strlen(reserved[i])))
			return 1;
	return 0;
}

static struct term *mk(struct parser *p, int k, const struct token *at)
{
	struct term *t = ar_alloc(p->A, sizeof(*t));
	if (t == NULL) {
		pfail(p, "out of memory");
		return NULL;
	}
	t->k = (uint8_t)k;
	t->line = at->line;
	t->col = at->col;
	t->slot = -1;
	t->bi = -1;
	return t;
}

static int push_term(struct parser *p, struct term ***arr, uint32_t *n, uint32_t *cap,
                     struct term *x)
{
	if (*n == *cap) {
		uint32_t nc = *cap ? *cap * 2 : 4;
		struct term **na = ar_alloc(p->A, nc * sizeof(*na));
		if (na == NULL)
			return pfail(p, "out of memory");
		if (*n)
			memcpy(na, *arr, *n * sizeof(*na));
		*arr = na;
		*cap = nc;
	}
	(*arr)[(*n)++] = x;
	return 0;
}

static struct term *mk_call2(struct parser *p, const char *name, const struct token *at,
                             struct term *a, struct term *b, struct term *c)
{
	struct term *t = mk(p, TK_CALL, at);
	if (t == NULL)
		return NULL;
	t->name = name;
	t->n = c ? 3 : 2;
	t->kids = ar_alloc(p->A, t->n * sizeof(*t->kids));
	if (t->kids == NULL)
		return pfail(p, "out of memory"), NULL;
	t->kids[0] = a;
	t->kids[1] = b;
	if (c)
		t->kids[2] = c;
	return t;
}

static struct term *mk_str(struct parser *p, const struct token *at, const char *s, size_t n)
{
	struct term *t = mk(p, TK_VAL, at);
	if (t && (t->v = v_str(p->A, s, n)) == NULL)
		return pfail(p, "out of memory"), NULL;
	return t;
}

static struct term *parse_in(struct parser *p, int keyval);
static struct term *parse_relation(struct parser *p);
static struct body *parse_body(struct parser *p, enum tok close);

/* [ ... ] or { ... } after the opening bracket */
static struct term *parse_collection(struct parser *p, const struct token *open, enum tok close)
{
	uint32_t cap = 0, vcap = 0;
	struct term *first, *fval = NULL, *t;
	p->nest++;
	if (accept(p, close)) {
		p->nest--;
		return mk(p, close == T_RBRACK ? TK_ARR : TK_OBJ, open);
	}
	int sv = p->no_pipe;
	size_t first_at = p->i;
	p->no_pipe = 1;
	first = parse_in(p, 0);
	p->no_pipe = sv;
	if (first == NULL)
		return NULL;
	int is_obj = close == T_RBRACE && accept(p, T_COLON);
	if (is_obj) {
		p->no_pipe = 1;
		fval = parse_in(p, 0);
		p->no_pipe = sv;
		if (fval == NULL)
			return NULL;
	}
	if (cur(p)->t == T_PIPE) {
		/* a comprehension, unless what follows the '|' is not a body: then the '|' was a
		 * set union inside a literal (`[x | y, 5]`) */
		int failed = p->failed;
		p->i++;
		t = mk(p, close == T_RBRACK ? TK_ACOMP : is_obj ? TK_OCOMP : TK_SCOMP, open);
		if (t == NULL)
			return NULL;
		t->head = first;
		t->head2 = fval;
		int nest = p->nest;
		p->nest = 0;
		t->body = parse_body(p, close);
		p->nest = nest - 1;
		if (t->body)
			return t;
		if (is_obj)
			return NULL;
		p->failed = failed;
		p->nest = nest;
		p->i = first_at;
		if ((first = parse_in(p, 0)) == NULL)
			return NULL;
	}
	t = mk(p, close == T_RBRACK ? TK_ARR : is_obj ? TK_OBJ : TK_SET, open);
	if (t == NULL)
		return NULL;
	for (;;) {
		uint32_t nv = t->n;
		if (push_term(p, &t->kids, &t->n, &cap, first) < 0)
			return NULL;
		if (is_obj && push_term(p, &t->vals, &nv, &vcap, fval) < 0)
			return NULL;
		if (accept(p, close))
			break;
		if (!accept(p, T_COMMA))
			return pfail(p, "expected ',' or '%s'", close == T_RBRACK ? "]" : "}"),
			       NULL;
		if (accept(p, close))
			break;
		if ((first = parse_in(p, 0)) == NULL)
			return NULL;
		if (is_obj) {
			if (!accept(p, T_COLON))
				return pfail(p, "expected ':' in an object"), NULL;
			if ((fval = parse_in(p, 0)) == NULL)
				return NULL;
		}
	}
	p->nest--;
	return t;
}

/* The dotted name of a ref made of a variable and constant strings ("object.union_n"). */
static char *ref_name(struct parser *p, struct term *t)
{
	if (t->k == TK_VAR)
		return (char *)t->name;
	if (t->k != TK_REF || t->kids[0]->k != TK_VAR)
		return NULL;
	size_t len = strlen(t->kids[0]->name) + 1;
	for (uint32_t i = 1; i < t->n; i++) {
		if (t->kids[i]->k != TK_VAL || t->kids[i]->v->k != V_STR)
			return NULL;
		len += t->kids[i]->v->n + 1;
	}
	char *s = ar_alloc(p->A, len), *o = s;
	if (s == NULL)
		return NULL;
	o += sprintf(o, "%s", t->kids[0]->name);
	for (uint32_t i = 1; i < t->n; i++)
		o += sprintf(o, ".%s", t->kids[i]->v->s);
	return s;
}

static struct term *parse_postfix(struct parser *p, struct term *t)
{
	uint32_t cap = t->k == TK_REF ? t->n : 0;
	while (t != NULL) {
		struct token *q = &p->t[p->i];
		if (q->t == T_DOT && !q->ws_before && p->t[p->i + 1].t == T_IDENT &&
		    !p->t[p->i + 1].ws_before) {
			struct token *id = &p->t[p->i + 1];
			p->i += 2;
			struct term *key = mk_str(p, id, id->start, id->len);
			if (key == NULL)
				return NULL;
			if (t->k != TK_REF) {
				struct term *r = mk(p, TK_REF, q);
				if (r == NULL)
					return NULL;
				cap = 0;
				if (push_term(p, &r->kids, &r->n, &cap, t) < 0)
					return NULL;
				t = r;
			}
			if (push_term(p, &t->kids, &t->n, &cap, key) < 0)
				return NULL;
		} else if (q->t == T_LBRACK && !q->ws_before) {
			p->i++;
			p->nest++;
			struct term *key = parse_in(p, 0);
			if (key == NULL)
				return NULL;
			if (!accept(p, T_RBRACK))
				return pfail(p, "expected ']'"), NULL;
			p->nest--;
			if (t->k != TK_REF) {
				struct term *r = mk(p, TK_REF, q);
				if (r == NULL)
					return NULL;
				cap = 0;
				if (push_term(p, &r->kids, &r->n, &cap, t) < 0)
					return NULL;
				t = r;
			}
			if (push_term(p, &t->kids, &t->n, &cap, key) < 0)
				return NULL;
		} else if (q->t == T_LPAREN && (t->k == TK_VAR || t->k == TK_REF)) {
			char *name = ref_name(p, t);
			if (name == NULL)
				return pfail(p, "cannot call this expression"), NULL;
			p->i++;
			struct term *c = mk(p, TK_CALL, q);
			uint32_t ccap = 0;
			if (c == NULL)
				return NULL;
			c->name = name;
			c->line = t->line;
			c->col = t->col;
			p->nest++;
			if (!accept(p, T_RPAREN)) {
				for (;;) {
					struct term *a = parse_in(p, 0);
					if (a == NULL ||
					    push_term(p, &c->kids, &c->n, &ccap, a) < 0)
						return NULL;
					if (accept(p, T_RPAREN))
						break;
					if (!accept(p, T_COMMA))
						return pfail(p, "expected ',' or ')' in a call"),
						       NULL;
				}
			}
			p->nest--;
			t = c;
			cap = 0;
		} else {
			break;
		}
	}
	return t;
}

static struct term *parse_primary(struct parser *p)
{
	struct token *t = cur(p);
	struct term *r = NULL;

	if (++p->depth > MAX_DEPTH) {
		pfail(p, "expression nested too deeply");
		return NULL;
	}
	if (t->t == T_STRING) {
		r = mk(p, TK_VAL, t);
		if (r && (r->v = v_str_ref(p->A, t->str, t->slen)) == NULL)
			r = NULL;
		p->i++;
	} else if (t->t == T_NUMBER) {
		r = mk(p, TK_VAL, t);
		if (r && (r->v = v_num_from_text(p->A, t->start, t->len)) == NULL)
			r = (pfail(p, "invalid number %.*s", (int)t->len, t->start), NULL);
		p->i++;
	} else if (t->t == T_MINUS && peek(p, 1)->t == T_NUMBER && !peek(p, 1)->ws_before) {
		struct token *num = peek(p, 1);
		p->i++;
		cur(p);
		p->i++;
		char buf[4100];
		snprintf(buf, sizeof(buf), "-%.*s", (int)num->len, num->start);
		r = mk(p, TK_VAL, t);
		if (r && (r->v = v_num_from_text(p->A, buf, strlen(buf))) == NULL)
			r = (pfail(p, "invalid number"), NULL);
	} else if (t->t == T_MINUS) {
		p->i++;
		struct term *x = parse_primary(p), *zero = mk(p, TK_VAL, t);
		if (x == NULL || zero == NULL || (zero->v = v_int(p->A, 0)) == NULL)
			return NULL;
		p->depth--;
		return mk_call2(p, "minus", t, zero, x, NULL);
	} else if (t->t == T_LBRACK || t->t == T_LBRACE) {
		p->i++;
		int sv = p->no_pipe;
		p->no_pipe = 0;
		r = parse_collection(p, t, t->t == T_LBRACK ? T_RBRACK : T_RBRACE);
		p->no_pipe = sv;
	} else if (t->t == T_LPAREN) {
		p->i++;
		p->nest++;
		int sv = p->no_pipe;
		p->no_pipe = 0;
		r = parse_in(p, 1);
		p->no_pipe = sv;
		if (r && !accept(p, T_RPAREN))
			r = (pfail(p, "expected ')'"), NULL);
		p->nest--;
	} else if (is_kw(t, "true") || is_kw(t, "false") || is_kw(t, "null")) {
		r = mk(p, TK_VAL, t);
		if (r)
			r->v = is_kw(t, "true")    ? &rv_true
			       : is_kw(t, "false") ? &rv_false
			                           : &rv_null;
		p->i++;
	} else if (is_kw(t, "set") && peek(p, 1)->t == T_LPAREN && peek(p, 2)->t == T_RPAREN) {
		r = mk(p, TK_SET, t);
		p->i++;
		cur(p);
		p->i++;
		cur(p);
		p->i++;
	} else if (t->t == T_IDENT &&
	           (!is_reserved(t) || (is_kw(t, "contains") && peek(p, 1)->t == T_LPAREN))) {
		r = mk(p, TK_VAR, t);
		if (r) {
			r->name = ar_strndup(p->A, t->start, t->len);
			r->wild = t->len == 1 && t->start[0] == '_';
		}
		p->i++;
	} else if (t->t == T_EOF) {
		pfail(p, "unexpected end of input");
	} else {
		pfail(p, "unexpected %.*s", t->t == T_NL ? 7 : (int)t->len,
		      t->t == T_NL ? "newline" : t->start);
	}
	if (r != NULL)
		r = parse_postfix(p, r);
	p->depth--;
	return r;
}

struct binop {
	enum tok t;
	const char *fn;
};

static struct term *parse_level(struct parser *p, int level);

static const struct binop levels[][7] = {
    {{T_EQ, "equal"},
     {T_NE, "neq"},
     {T_LT, "lt"},
     {T_LE, "lte"},
     {T_GT, "gt"},
     {T_GE, "gte"},
     {T_EOF, NULL}},
    {{T_PIPE, "or"}, {T_EOF, NULL}},
    {{T_AMP, "and"}, {T_EOF, NULL}},
    {{T_PLUS, "plus"}, {T_MINUS, "minus"}, {T_EOF, NULL}},
    {{T_STAR, "mul"}, {T_SLASH, "div"}, {T_PERCENT, "rem"}, {T_EOF, NULL}},
};

static struct term *parse_level(struct parser *p, int level)
{
	if (level == 5)
		return parse_primary(p);
	if (++p->depth > MAX_DEPTH)
		return pfail(p, "expression nested too deeply"), NULL;
	struct term *l = parse_level(p, level + 1);
	while (l != NULL) {
		struct token *t = cur(p);
		const struct binop *op = NULL;
		for (const struct binop *b = levels[level]; b->fn; b++)
			if (b->t == t->t)
				op = b;
		if (op == NULL || (op->t == T_PIPE && p->no_pipe))
			break;
		p->i++;
		skip_nls(p);
		struct term *r = parse_level(p, level + 1);
		if (r == NULL)
			return NULL;
		l = mk_call2(p, op->fn, t, l, r, NULL);
	}
	p->depth--;
	return l;
}

static struct term *parse_relation(struct parser *p)
{
	return parse_level(p, 0);
}

static struct term *parse_in(struct parser *p, int keyval)
{
	struct term *l = parse_relation(p);
	while (l != NULL) {
		struct token *t = cur(p);
		if (keyval && t->t == T_COMMA) {
			size_t save = p->i;
			int failed = p->failed;
			p->i++;
			skip_nls(p);
			struct term *m = parse_relation(p);
			if (m != NULL && is_kw(cur(p), "in")) {
				p->i++;
				skip_nls(p);
				struct term *r = parse_relation(p);
				if (r == NULL)
					return NULL;
				l = mk_call2(p, "internal.member_3", t, l, m, r);
				continue;
			}
			p->i = save;
			p->failed = failed;
			break;
		}
		if (!is_kw(t, "in"))
			break;
		p->i++;
		skip_nls(p);
		struct term *r = parse_relation(p);
		if (r == NULL)
			return NULL;
		l = mk_call2(p, "internal.member_2", t, l, r, NULL);
	}
	return l;
}

static void set_src(struct parser *p, struct expr *e, const struct token *start)
{
	const struct token *last = &p->t[p->i ? p->i - 1 : 0];
	while (last > start && last->t == T_NL)
		last--;
	e->src = start->start;
	e->srclen = (uint32_t)(last->start + last->len - start->start);
	e->line = start->line;
}

static struct expr *parse_literal(struct parser *p)
{
	struct expr *e = ar_alloc(p->A, sizeof(*e));
	struct token *start = cur(p);
	if (e == NULL)
		return pfail(p, "out of memory"), NULL;
	if (is_kw(start, "some")) {
		p->i++;
		struct term *a = parse_relation(p), *b = NULL;
		if (a == NULL)
			return NULL;
		if (cur(p)->t == T_COMMA && !is_kw(peek(p, 2), "in") && peek(p, 1)->t == T_IDENT) {
			/* some x, y, z */
		} else if (accept(p, T_COMMA)) {
			if ((b = parse_relation(p)) == NULL)
				return NULL;
		}
		if (is_kw(cur(p), "in")) {
			p->i++;
			e->k = E_SOMEIN;
			e->key = b ? a : NULL;
			e->value = b ? b : a;
			if ((e->coll = parse_relation(p)) == NULL)
				return NULL;
		} else {
			uint32_t cap = 0;
			e->k = E_SOME;
			if (push_term(p, &e->vars, &e->nvars, &cap, a) < 0 ||
			    (b && push_term(p, &e->vars, &e->nvars, &cap, b) < 0))
				return NULL;
			while (accept(p, T_COMMA)) {
				struct term *v = parse_primary(p);
				if (v == NULL || push_term(p, &e->vars, &e->nvars, &cap, v) < 0)
					return NULL;
			}
			for (uint32_t i = 0; i < e->nvars; i++)
				if (e->vars[i]->k != TK_VAR)
					return pfail(p, "some declares variables, not expressions"),
					       NULL;
		}
	} else if (is_kw(start, "every")) {
		p->i++;
		e->k = E_EVERY;
		struct term *a = parse_primary(p);
		if (a == NULL)
			return NULL;
		if (accept(p, T_COMMA)) {
			e->key = a;
			if ((a = parse_primary(p)) == NULL)
				return NULL;
		}
		e->value = a;
		if ((e->key && e->key->k != TK_VAR) || e->value->k != TK_VAR)
			return pfail(p, "every binds variables"), NULL;
		if (!is_kw(cur(p), "in"))
			return pfail(p, "expected 'in' after every"), NULL;
		p->i++;
		if ((e->coll = parse_relation(p)) == NULL)
			return NULL;
		if (!accept(p, T_LBRACE))
			return pfail(p, "expected '{' after every ... in ..."), NULL;
		int nest = p->nest;
		p->nest = 0;
		e->body = parse_body(p, T_RBRACE);
		p->nest = nest;
		if (e->body == NULL)
			return NULL;
	} else {
		if (is_kw(start, "not")) {
			p->i++;
			e->neg = 1;
			if (cur(p)->t == T_LBRACE) {
				/* not { a; b }: the body as a whole is negated (else a set/object
				 * term) */
				size_t save = p->i;
				int failed = p->failed, nest = p->nest;
				p->i++;
				p->nest = 0;
				e->body = parse_body(p, T_RBRACE);
				p->nest = nest;
				if (e->body && e->body->n > 1 &&
				    (p->t[p->i].t == T_NL || p->t[p->i].t == T_SEMI ||
				     p->t[p->i].t == T_RBRACE || p->t[p->i].t == T_EOF)) {
					e->k = E_BODY;
					set_src(p, e, start);
					return e;
				}
				e->body = NULL;
				p->failed = failed;
				p->i = save;
			}
		}
		e->k = E_TERM;
		if ((e->a = parse_in(p, 1)) == NULL)
			return NULL;
		struct token *t = cur(p);
		if (t->t == T_ASSIGN || t->t == T_UNIFY) {
			p->i++;
			skip_nls(p);
			e->k = t->t == T_ASSIGN ? E_ASSIGN : E_UNIFY;
			if ((e->b = parse_in(p, 1)) == NULL)
				return NULL;
		}
	}
	uint32_t cap = 0;
	for (;;) {
		/* `with` may continue the literal on the following lines */
		size_t save = p->i;
		skip_nls(p);
		if (!is_kw(cur(p), "with")) {
			p->i = save;
			break;
		}
		p->i++;
		struct term *target = parse_primary(p);
		if (target == NULL)
			return NULL;
		if (!is_kw(cur(p), "as"))
			return pfail(p, "expected 'as' after with ..."), NULL;
		p->i++;
		struct term *val = parse_in(p, 0);
		if (val == NULL)
			return NULL;
		if (e->nwith == cap) {
			cap = cap ? cap * 2 : 2;
			struct with *nw = ar_alloc(p->A, cap * sizeof(*nw));
			if (nw == NULL)
				return pfail(p, "out of memory"), NULL;
			if (e->nwith)
				memcpy(nw, e->with, e->nwith * sizeof(*nw));
			e->with = nw;
		}
		e->with[e->nwith++] = (struct with){target, val, NULL, NULL, -1, -1};
	}
	set_src(p, e, start);
	return e;
}

static struct body *parse_body(struct parser *p, enum tok close)
{
	struct body *b = ar_alloc(p->A, sizeof(*b));
	uint32_t cap = 0;
	if (b == NULL)
		return pfail(p, "out of memory"), NULL;
	for (;;) {
		skip_seps(p);
		if (p->t[p->i].t == close) {
			p->i++;
			return b;
		}
		if (p->t[p->i].t == T_EOF)
			return pfail(p, close == T_EOF ? "empty query" : "unterminated body"), NULL;
		struct expr *e = parse_literal(p);
		if (e == NULL)
			return NULL;
		if (b->n == cap) {
			cap = cap ? cap * 2 : 4;
			struct expr **ne = ar_alloc(p->A, cap * sizeof(*ne));
			if (ne == NULL)
				return pfail(p, "out of memory"), NULL;
			if (b->n)
				memcpy(ne, b->e, b->n * sizeof(*ne));
			b->e = ne;
		}
		b->e[b->n++] = e;
		enum tok nt = p->t[p->i].t;
		if (nt != T_NL && nt != T_SEMI && nt != close)
			return pfail(p, "expected a new line or '%s' after an expression",
			             close == T_RBRACE   ? "}"
			             : close == T_RBRACK ? "]"
			                                 : "end"),
			       NULL;
	}
}

/* ------------------------------------------------------------------ modules */

struct mparser {
	struct parser p;
	struct rego_policy *P;
	int modidx;
	struct module *mod;
};

static int add_rule(struct mparser *m, struct rule *r)
{
	struct rego_policy *P = m->P;
	if (P->nrules == P->caprules) {
		size_t nc = P->caprules ? P->caprules * 2 : 32;
		struct rule **nr = realloc(P->rules, nc * sizeof(*nr));
		if (nr == NULL)
			return pfail(&m->p, "out of memory");
		P->rules = nr;
		P->caprules = nc;
	}
	P->rules[P->nrules++] = r;
	return 0;
}

/* `if { ... }`, `if <literal>`, or `{ ... }` */
static int parse_rule_body(struct parser *p, struct rule *r)
{
	int has_if = is_kw(cur(p), "if");
	if (has_if)
		p->i++;
	size_t at = p->i;
	if (accept(p, T_LBRACE)) {
		int nest = p->nest, failed = p->failed;
		p->nest = 0;
		r->body = parse_body(p, T_RBRACE);
		p->nest = nest;
		if (r->body || !has_if)
			return r->body ? 0 : -1;
		/* `if {x: i | ...}`: the body is one literal, an object comprehension */
		p->failed = failed;
		p->i = at;
	}
	r->body = ar_alloc(p->A, sizeof(*r->body));
	if (r->body == NULL)
		return pfail(p, "out of memory");
	if (!has_if)
		return 0;
	struct expr *e = parse_literal(p);
	if (e == NULL)
		return -1;
	r->body->e = ar_alloc(p->A, sizeof(*r->body->e));
	if (r->body->e == NULL)
		return pfail(p, "out of memory");
	r->body->e[0] = e;
	r->body->n = 1;
	return 0;
}

static int parse_rule(struct mparser *m)
{
	struct parser *p = &m->p;
	struct rule *r = ar_alloc(p->A, sizeof(*r));
	uint32_t cap = 0;
	if (r == NULL)
		return pfail(p, "out of memory");
	r->module = m->modidx;
	r->file = p->name;
	r->line = cur(p)->line;
	if (is_kw(cur(p), "default")) {
		p->i++;
		r->is_default = 1;
	}
	struct token *t = cur(p);
	if (t->t != T_IDENT || is_reserved(t))
		return pfail(p, "expected a rule name");
	/* head ref: name { .name | [term] } */
	struct term *seg = mk_str(p, t, t->start, t->len);
	if (seg == NULL || push_term(p, &r->path, &r->npath, &cap, seg) < 0)
		return -1;
	p->i++;
	for (;;) {
		struct token *q = &p->t[p->i];
		if (q->t == T_DOT && p->t[p->i + 1].t == T_IDENT) {
			struct token *id = &p->t[p->i + 1];
			p->i += 2;
			if ((seg = mk_str(p, id, id->start, id->len)) == NULL ||
			    push_term(p, &r->path, &r->npath, &cap, seg) < 0)
				return -1;
		} else if (q->t == T_LBRACK && !q->ws_before) {
			p->i++;
			p->nest++;
			if ((seg = parse_in(p, 0)) == NULL)
				return -1;
			if (!accept(p, T_RBRACK))
				return pfail(p, "expected ']' in a rule head");
			p->nest--;
			if (push_term(p, &r->path, &r->npath, &cap, seg) < 0)
				return -1;
		} else {
			break;
		}
	}
	uint32_t nstatic = 0;
	while (nstatic < r->npath && r->path[nstatic]->k == TK_VAL &&
	       r->path[nstatic]->v->k == V_STR)
		nstatic++;
	r->k = RK_COMPLETE;
	if (accept(p, T_LPAREN)) {
		r->k = RK_FUNC;
		uint32_t acap = 0;
		if (nstatic != r->npath)
			return pfail(p, "a function name is a dotted name");
		p->nest++;
		if (!accept(p, T_RPAREN)) {
			for (;;) {
				struct term *a = parse_in(p, 0);
				if (a == NULL || push_term(p, &r->args, &r->nargs, &acap, a) < 0)
					return -1;
				if (accept(p, T_RPAREN))
					break;
				if (!accept(p, T_COMMA))
					return pfail(p,
					             "expected ',' or ')' in function arguments");
			}
		}
		p->nest--;
	} else if (is_kw(cur(p), "contains")) {
		p->i++;
		r->k = RK_SET;
		if (nstatic != r->npath) { /* p[x] contains y: an object of sets */
			r->keys = r->path + nstatic;
			r->nkeys = r->npath - nstatic;
			r->npath = nstatic;
		}
		if ((r->key = parse_in(p, 0)) == NULL)
			return -1;
	} else if (nstatic != r->npath) {
		/* p[k] := v, and p[a][b] := v / p.q[x].r := v: nested objects below p.q */
		r->k = RK_OBJ;
		r->keys = r->path + nstatic;
		r->nkeys = r->npath - nstatic;
		r->key = r->keys[0];
		r->npath = nstatic;
	}
	if (accept(p, T_ASSIGN) || accept(p, T_UNIFY)) {
		if (r->k == RK_SET)
			return pfail(p, "a `contains` rule has no value");
		skip_nls(p);
		if ((r->value = parse_in(p, 0)) == NULL)
			return -1;
	}
	if (r->is_default) {
		if (r->value == NULL)
			return pfail(p, "a default rule needs a value");
		if (r->k != RK_COMPLETE && r->k != RK_FUNC)
			return pfail(p, "default rules must be complete rules or functions");
		r->body = ar_alloc(p->A, sizeof(*r->body));
		if (r->body == NULL)
			return pfail(p, "out of memory");
		r->chain_head = r;
		return add_rule(m, r);
	}
	/* v0: `deny[msg] { ... }` (no `if`, no value) is a multi-value rule */
	if (r->k == RK_OBJ && r->nkeys == 1 && r->value == NULL && cur(p)->t == T_LBRACE) {
		r->k = RK_SET;
		r->keys = NULL;
		r->nkeys = 0;
	}
	if (parse_rule_body(p, r) < 0)
		return -1;
	r->chain_head = r;
	struct rule *last = r;
	for (;;) {
		size_t save = p->i;
		skip_nls(p);
		if (!is_kw(cur(p), "else")) {
			p->i = save;
			break;
		}
		if (r->k != RK_COMPLETE && r->k != RK_FUNC)
			return pfail(p, "else only follows complete rules and functions");
		p->i++;
		struct rule *e = ar_alloc(p->A, sizeof(*e));
		if (e == NULL)
			return pfail(p, "out of memory");
		*e = (struct rule){.k = r->k,
		                   .path = r->path,
		                   .npath = r->npath,
		                   .args = r->args,
		                   .nargs = r->nargs,
		                   .module = r->module,
		                   .file = r->file,
		                   .line = cur(p)->line,
		                   .chain_head = r};
		if (accept(p, T_ASSIGN) || accept(p, T_UNIFY))
			if ((e->value = parse_in(p, 0)) == NULL)
				return -1;
		if (parse_rule_body(p, e) < 0)
			return -1;
		last->els = e;
		last = e;
	}
	return add_rule(m, r);
}

static int parse_ref_path(struct parser *p, struct term ***segs, uint32_t *n)
{
	uint32_t cap = 0;
	struct token *t = cur(p);
	if (t->t != T_IDENT)
		return pfail(p, "expected a name");
	for (;;) {
		t = cur(p);
		struct term *s;
		if (t->t == T_IDENT) {
			s = mk_str(p, t, t->start, t->len);
			p->i++;
		} else if (t->t == T_LBRACK && p->t[p->i + 1].t == T_STRING &&
		           p->t[p->i + 2].t == T_RBRACK) {
			struct token *st = &p->t[p->i + 1];
			s = mk_str(p, st, st->str, st->slen);
			p->i += 3;
		} else {
			return pfail(p, "expected a name");
		}
		if (s == NULL || push_term(p, segs, n, &cap, s) < 0)
			return -1;
		if (p->t[p->i].t == T_DOT) {
			p->i++;
			continue;
		}
		if (p->t[p->i].t == T_LBRACK)
			continue;
		return 0;
	}
}

int rego_parse_module(struct rego_policy *P, const char *name, const char *src, size_t len,
                      struct err *err)
{
	struct token *toks;
	size_t n;
	if (rego_lex(&P->A, name, src, len, &toks, &n, err) < 0)
		return -1;
	struct module *nm = realloc(P->mods, (P->nmods + 1) * sizeof(*nm));
	if (nm == NULL) {
		free(toks);
		return err_setc(err, REGO_ERR_INTERNAL, "out of memory");
	}
	P->mods = nm;
	struct module *mod = &P->mods[P->nmods];
	memset(mod, 0, sizeof(*mod));
	mod->file = name;
	struct mparser m = {.p = {.A = &P->A, .t = toks, .n = n, .name = name, .err = err},
	                    .P = P,
	                    .modidx = (int)P->nmods,
	                    .mod = mod};
	struct parser *p = &m.p;
	int rc = -1;
	uint32_t icap = 0;
	P->nmods++;
	skip_seps(p);
	if (!is_kw(cur(p), "package")) {
		pfail(p, "a module must start with `package`");
		goto out;
	}
	p->i++;
	if (parse_ref_path(p, &mod->pkg, &mod->npkg) < 0)
		goto out;
	for (;;) {
		enum tok nt = p->t[p->i].t;
		if (nt != T_NL && nt != T_SEMI && nt != T_EOF) {
			pfail(p, "expected a new line after a package, import or rule");
			goto out;
		}
		skip_seps(p);
		if (cur(p)->t == T_EOF)
			break;
		if (is_kw(cur(p), "import")) {
			p->i++;
			struct term **segs = NULL;
			uint32_t ns = 0;
			struct token *at = cur(p);
			if (parse_ref_path(p, &segs, &ns) < 0)
				goto out;
			const char *root = segs[0]->v->s;
			const char *alias = segs[ns - 1]->v->s;
			if (is_kw(cur(p), "as")) {
				p->i++;
				if (cur(p)->t != T_IDENT) {
					pfail(p, "expected a name after `as`");
					goto out;
				}
				alias = ar_strndup(p->A, cur(p)->start, cur(p)->len);
				p->i++;
			}
			if (strcmp(root, "rego") == 0 || strcmp(root, "future") == 0)
				continue;
			if (strcmp(root, "data") != 0 && strcmp(root, "input") != 0) {
				pfail(p, "imports must start with data or input");
				goto out;
			}
			if (mod->nimports == icap) {
				icap = icap ? icap * 2 : 4;
				struct import *ni = ar_alloc(p->A, icap * sizeof(*ni));
				if (ni == NULL)
					goto out;
				if (mod->nimports)
					memcpy(ni, mod->imports, mod->nimports * sizeof(*ni));
				mod->imports = ni;
			}
			struct term *ref = mk(p, TK_REF, at);
			if (ref == NULL)
				goto out;
			ref->kids = segs;
			ref->n = ns;
			mod->imports[mod->nimports++] = (struct import){alias, ref};
			continue;
		}
		if (parse_rule(&m) < 0)
			goto out;
	}
	rc = 0;
out:
	free(toks);
	return rc;
}

struct body *rego_parse_body(struct arena *A, const char *name, const char *src, size_t len,
                             struct err *err)
{
	struct token *toks;
	size_t n;
	if (rego_lex(A, name, src, len, &toks, &n, err) < 0)
		return NULL;
	struct parser p = {.A = A, .t = toks, .n = n, .name = name, .err = err};
	struct body *b = parse_body(&p, T_EOF);
	free(toks);
	return b;
}

struct term *rego_parse_term(struct arena *A, const char *name, const char *src, size_t len,
                             struct err *err)
{
	struct token *toks;
	size_t n;
	if (rego_lex(A, name, src, len, &toks, &n, err) < 0)
		return NULL;
	struct parser p = {.A = A, .t = toks, .n = n, .name = name, .err = err};
	skip_nls(&p);
	p.nest = 1;
	struct term *t = parse_in(&p, 0);
	if (t && cur(&p)->t != T_EOF) {
		pfail(&p, "unexpected text after the term");
		t = NULL;
	}
	free(toks);
	return t;
}
