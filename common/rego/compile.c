/*
 * compile: from parsed rules to something the evaluator can run without looking names up.
 *
 *  - The rule tree: every rule sits at data.<package>.<head path>; a node holds the
 *    definitions of one rule (all of one kind) and its default.
 *  - Variables become slots of the rule's frame. Scopes follow Rego: `:=`, `some` and
 *    `every` declare; any other variable is introduced where it first appears, unless it names
 *    a rule of the package or an import, which then becomes a data reference. Comprehension
 *    and `every` bodies see the variables of the bodies around them (closures).
 *  - Calls resolve to a user function node or a builtin; a call with one argument more
 *    than the function takes returns its result through that argument.
 *  - Literal collections without variables are folded into constants.
 * Errors carry OPA's codes: var redeclared (rego_compile_error), conflicting rule kinds
 * (rego_type_error).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rego/rego_int.h"

/* ------------------------------------------------------------------ tree */

struct node *rego_node_find(struct node *n, const char *name)
{
	if (n == NULL)
		return NULL;
	for (uint32_t i = 0; i < n->nkids; i++)
		if (strcmp(n->kids[i]->name, name) == 0)
			return n->kids[i];
	return NULL;
}

static struct node *node_child(struct arena *A, struct node *n, const char *name)
{
	struct node *c = rego_node_find(n, name);
	if (c != NULL)
		return c;
	c = ar_alloc(A, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->name = name;
	c->parent = n;
	c->kind = -1;
	c->depth = n->depth + 1;
	size_t pl = strlen(n->path) + strlen(name) + 2;
	c->path = ar_alloc(A, pl);
	if (c->path == NULL)
		return NULL;
	snprintf(c->path, pl, "%s.%s", n->path, name);
	if (n->nkids == n->capkids) {
		uint32_t nc = n->capkids ? n->capkids * 2 : 4;
		struct node **nk = ar_alloc(A, nc * sizeof(*nk));
		if (nk == NULL)
			return NULL;
		if (n->nkids)
			memcpy(nk, n->kids, n->nkids * sizeof(*nk));
		n->kids = nk;
		n->capkids = nc;
	}
	/* keep children sorted by name: iteration and documents come out in order */
	uint32_t at = n->nkids;
	while (at > 0 && strcmp(n->kids[at - 1]->name, name) > 0) {
		n->kids[at] = n->kids[at - 1];
		at--;
	}
	n->kids[at] = c;
	n->nkids++;
	return c;
}

static int node_add_rule(struct arena *A, struct node *n, struct rule *r)
{
	if (n->nrules == n->caprules) {
		uint32_t nc = n->caprules ? n->caprules * 2 : 4;
		struct rule **nr = ar_alloc(A, nc * sizeof(*nr));
		if (nr == NULL)
			return -1;
		if (n->nrules)
			memcpy(nr, n->rules, n->nrules * sizeof(*nr));
		n->rules = nr;
		n->caprules = nc;
	}
	n->rules[n->nrules++] = r;
	return 0;
}

static const char *kind_name(int k)
{
	return k == RK_COMPLETE ? "complete rule"
	       : k == RK_SET    ? "multi-value (contains) rule"
	       : k == RK_OBJ    ? "object rule"
	                        : "function";
}

static int build_tree(struct rego_policy *P, struct err *err)
{
	struct arena *A = &P->A;
	P->root = ar_alloc(A, sizeof(*P->root));
	if (P->root == NULL)
		return err_setc(err, REGO_ERR_INTERNAL, "out of memory");
	P->root->name = "data";
	P->root->path = "data";
	P->root->kind = -1;
	/* every package is a document, {} when it has no rules */
	for (size_t i = 0; i < P->nmods; i++) {
		struct node *n = P->root;
		for (uint32_t j = 0; j < P->mods[i].npkg && n; j++)
			n = node_child(A, n, P->mods[i].pkg[j]->v->s);
		if (n == NULL)
			return err_setc(err, REGO_ERR_INTERNAL, "out of memory");
	}
	for (size_t i = 0; i < P->nrules; i++) {
		struct rule *r = P->rules[i];
		struct module *m = &P->mods[r->module];
		struct node *n = P->root;
		size_t pl = 0;
		for (uint32_t j = 0; j < m->npkg && n; j++) {
			n = node_child(A, n, m->pkg[j]->v->s);
			pl += m->pkg[j]->v->n + 1;
		}
		for (uint32_t j = 0; j < r->npath && n; j++)
			n = node_child(A, n, r->path[j]->v->s);
		if (n == NULL)
			return err_setc(err, REGO_ERR_INTERNAL, "out of memory");
		char *pkg = ar_alloc(A, pl + 1);
		if (pkg == NULL)
			return err_setc(err, REGO_ERR_INTERNAL, "out of memory");
		for (uint32_t j = 0; j < m->npkg; j++) {
			if (j)
				strcat(pkg, ".");
			strcat(pkg, m->pkg[j]->v->s);
		}
		for (struct rule *d = r; d; d = d->els) {
			d->node = n;
			d->pkg = pkg;
		}
		if (n->kind >= 0 && n->kind != r->k)
			return err_setc(
			    err, REGO_ERR_TYPE,
			    "%s:%d: rego_type_error: %s is defined both as a %s and as a %s",
			    r->file, r->line, n->path, kind_name(n->kind), kind_name(r->k));
		if (r->k == RK_FUNC && n->kind == RK_FUNC && (int)r->nargs != n->nargs)
			return err_setc(err, REGO_ERR_TYPE,
			                "%s:%d: rego_type_error: function %s is defined with %d "
			                "and %u arguments",
			                r->file, r->line, n->path, n->nargs, r->nargs);
		if ((r->k == RK_OBJ || r->k == RK_SET) && n->kind == r->k &&
		    (int)r->nkeys != n->nkeys)
			return err_setc(
			    err, REGO_ERR_TYPE,
			    "%s:%d: rego_type_error: rules for %s have different numbers of keys",
			    r->file, r->line, n->path);
		n->kind = r->k;
		n->nargs = (int)r->nargs;
		n->nkeys = (int)r->nkeys;
		if (r->is_default) {
			if (n->deflt)
				return err_setc(
				    err, REGO_ERR_TYPE,
				    "%s:%d: rego_type_error: multiple default rules %s found",
				    r->file, r->line, n->path);
			n->deflt = r;
		} else if (node_add_rule(A, n, r) < 0) {
			return err_setc(err, REGO_ERR_INTERNAL, "out of memory");
		}
	}
	return 0;
}

static void number_nodes(struct node *n, int *next)
{
	n->id = (*next)++;
	for (uint32_t i = 0; i < n->nkids; i++)
		number_nodes(n->kids[i], next);
}

/* ------------------------------------------------------------------ scopes */

struct sym {
	const char *name;
	int slot;
	uint8_t declared; /* by := / some / every, rather than by first use */
};

struct scope {
	struct scope *up;
	struct sym *syms;
	uint32_t n, cap;
	int query; /* the top scope of a query: its variables are reported */
};

struct rctx {
	const struct rego_policy *P;
	struct arena *A;
	const struct module *mod; /* NULL for a query */
	struct node *pkg;         /* the package node, NULL for a query */
	int nslots;
	const char *file;
	struct err *err;
	struct query *q;
};

static int rfail(struct rctx *R, int code, const struct term *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int rfail(struct rctx *R, int code, const struct term *at, const char *fmt, ...)
{
	char m[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	return err_setc(R->err, code, "%s:%d:%d: %s", R->file, at ? at->line : 0, at ? at->col : 0,
	                m);
}

static struct sym *scope_find(struct scope *s, const char *name)
{
	for (uint32_t i = s->n; i > 0; i--)
		if (strcmp(s->syms[i - 1].name, name) == 0)
			return &s->syms[i - 1];
	return NULL;
}

static int scope_add(struct rctx *R, struct scope *s, const char *name, int declared)
{
	if (s->n == s->cap) {
		uint32_t nc = s->cap ? s->cap * 2 : 8;
		struct sym *ns = realloc(s->syms, nc * sizeof(*ns));
		if (ns == NULL)
			return err_setc(R->err, REGO_ERR_INTERNAL, "out of memory");
		s->syms = ns;
		s->cap = nc;
	}
	int slot = R->nslots++;
	s->syms[s->n++] = (struct sym){name, slot, (uint8_t)declared};
	if (s->query && R->q) {
		/* slots of nested scopes come in between: the table grows to this slot */
		const char **nn = ar_alloc(R->A, (size_t)(slot + 1) * sizeof(*nn));
		if (nn == NULL)
			return err_setc(R->err, REGO_ERR_INTERNAL, "out of memory");
		if (R->q->names)
			memcpy(nn, R->q->names, (size_t)R->q->nnames * sizeof(*nn));
		nn[slot] = name[0] == '_' ? NULL : name;
		R->q->names = nn;
		R->q->nnames = slot + 1;
	}
	return slot;
}

static void scope_free(struct scope *s)
{
	free(s->syms);
}

static int resolve_term(struct rctx *R, struct scope *s, struct term *t);
static int resolve_body(struct rctx *R, struct scope *s, struct body *b);

/* A ref whose head is a rule of the package or an import becomes data.<path>...: returns
 * the constant prefix to splice in front of the remaining path, or 0 when `name` is none. */
static int global_prefix(struct rctx *R, const char *name, struct term ***pre, uint32_t *npre)
{
	if (R->mod) {
		for (uint32_t i = 0; i < R->mod->nimports; i++) {
			const struct import *im = &R->mod->imports[i];
			if (strcmp(im->alias, name) == 0) {
				*pre = im->ref->kids;
				*npre = im->ref->n;
				return 1;
			}
		}
	}
	if (R->pkg && rego_node_find(R->pkg, name)) {
		const struct module *m = R->mod;
		uint32_t n = m->npkg + 2;
		struct term **p = ar_alloc(R->A, n * sizeof(*p));
		struct term *leaf = ar_alloc(R->A, sizeof(*leaf));
		if (p == NULL || leaf == NULL)
			return -1;
		p[0] = NULL; /* the data root, filled by the caller */
		memcpy(p + 1, m->pkg, m->npkg * sizeof(*p));
		leaf->k = TK_VAL;
		leaf->slot = -1;
		leaf->bi = -1;
		if ((leaf->v = v_str(R->A, name, strlen(name))) == NULL)
			return -1;
		p[n - 1] = leaf;
		*pre = p;
		*npre = n;
		return 1;
	}
	return 0;
}

static struct term *root_var(struct rctx *R, int root, const struct term *at)
{
	struct term *t = ar_alloc(R->A, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->k = TK_VAR;
	t->root = (uint8_t)root;
	t->name = root == ROOT_DATA ? "data" : "input";
	t->slot = -1;
	t->bi = -1;
	t->line = at->line;
	t->col = at->col;
	return t;
}

/* Rewrite the ref (or variable) t whose head names a global into a rooted ref. */
static int splice_global(struct rctx *R, struct term *t, struct term **pre, uint32_t npre)
{
	struct term *head = t->k == TK_REF ? t->kids[0] : t;
	uint32_t rest = t->k == TK_REF ? t->n - 1 : 0;
	struct term **kids = ar_alloc(R->A, (npre + rest) * sizeof(*kids));
	if (kids == NULL)
		return err_setc(R->err, REGO_ERR_INTERNAL, "out of memory");
	const char *root = pre[0] ? pre[0]->v ? pre[0]->v->s : pre[0]->name : "data";
	kids[0] = root_var(R, strcmp(root, "input") == 0 ? ROOT_INPUT : ROOT_DATA, head);
	if (kids[0] == NULL)
		return err_setc(R->err, REGO_ERR_INTERNAL, "out of memory");
	for (uint32_t i = 1; i < npre; i++)
		kids[i] = pre[i];
	for (uint32_t i = 0; i < rest; i++)
		kids[npre + i] = t->kids[1 + i];
	if (t->k == TK_VAR) {
		t->name = NULL;
		t->wild = 0;
	}
	t->k = TK_REF;
	t->kids = kids;
	t->n = npre + rest;
	if (t->n == 1) { /* plain `data` / `input` */
		*t = *kids[0];
	}
	return 0;
}

/* Look a variable up; introduce it in s when it is new. */
static int resolve_var(struct rctx *R, struct scope *s, struct term *t)
{
	if (t->root != ROOT_NONE || t->slot >= 0)
		return 0;
	if (t->wild) {
		int slot = scope_add(R, s, "_", 0);
		if (slot < 0)
			return -1;
		t->slot = slot;
		return 0;
	}
	for (struct scope *x = s; x; x = x->up) {
		struct sym *y = scope_find(x, t->name);
		if (y) {
			t->slot = y->slot;
			return 0;
		}
	}
	if (strcmp(t->name, "input") == 0 || strcmp(t->name, "data") == 0) {
		t->root = t->name[0] == 'i' ? ROOT_INPUT : ROOT_DATA;
		return 0;
	}
	struct term **pre;
	uint32_t npre;
	int g = global_prefix(R, t->name, &pre, &npre);
	if (g < 0)
		return err_setc(R->err, REGO_ERR_INTERNAL, "out of memory");
	if (g)
		return splice_global(R, t, pre, npre);
	int slot = scope_add(R, s, t->name, 0);
	if (slot < 0)
		return -1;
	t->slot = slot;
	return 0;
}

/* `x := ...`, `some x`: a new variable in this scope. */
static int declare_var(struct rctx *R, struct scope *s, struct term *t)
{
	if (t->wild)
		return resolve_var(R, s, t);
	struct sym *y = scope_find(s, t->name);
	if (y && y->declared)
		return rfail(R, REGO_ERR_COMPILE, t, "rego_compile_error: var %s assigned above",
		             t->name);
	if (y && !s->query)
		return rfail(R, REGO_ERR_COMPILE, t, "rego_compile_error: var %s referenced above",
		             t->name);
	if (strcmp(t->name, "input") == 0 || strcmp(t->name, "data") == 0)
		return rfail(R, REGO_ERR_COMPILE, t, "rego_compile_error: cannot assign to %s",
		             t->name);
	int slot = scope_add(R, s, t->name, 1);
	if (slot < 0)
		return -1;
	t->slot = slot;
	return 0;
}

/* The variables of an assignment's left side or a some-in pattern are declared; anything
 * else in it (constants, refs, calls) is resolved as usual. */
static int declare_pattern(struct rctx *R, struct scope *s, struct term *t)
{
	switch (t->k) {
	case TK_VAR:
		return declare_var(R, s, t);
	case TK_ARR:
		for (uint32_t i = 0; i < t->n; i++)
			if (declare_pattern(R, s, t->kids[i]) < 0)
				return -1;
		return 0;
	case TK_OBJ:
		for (uint32_t i = 0; i < t->n; i++)
			if (resolve_term(R, s, t->kids[i]) < 0 ||
			    declare_pattern(R, s, t->vals[i]) < 0)
				return -1;
		return 0;
	default:
		return resolve_term(R, s, t);
	}
}

static struct node *find_path(struct node *n, const char *dotted)
{
	char seg[256];
	while (n && *dotted) {
		const char *e = strchr(dotted, '.');
		size_t l = e ? (size_t)(e - dotted) : strlen(dotted);
		if (l >= sizeof(seg))
			return NULL;
		memcpy(seg, dotted, l);
		seg[l] = '\0';
		n = rego_node_find(n, seg);
		dotted += l + (e ? 1 : 0);
	}
	return n;
}

/* A dotted name to a user function (data.x.f, an import alias, a rule of the package). */
static struct node *lookup_function(struct rctx *R, const char *name)
{
	const char *dot = strchr(name, '.');
	size_t first = dot ? (size_t)(dot - name) : strlen(name);
	struct node *fn = NULL;
	if (strncmp(name, "data.", 5) == 0)
		return find_path(R->P->root, name + 5);
	if (R->mod) {
		for (uint32_t i = 0; i < R->mod->nimports && !fn; i++) {
			const struct import *im = &R->mod->imports[i];
			if (strlen(im->alias) != first || strncmp(im->alias, name, first) != 0 ||
			    strcmp(im->ref->kids[0]->v->s, "data") != 0)
				continue;
			struct node *n = R->P->root;
			for (uint32_t j = 1; j < im->ref->n && n; j++)
				n = rego_node_find(n, im->ref->kids[j]->v->s);
			fn = n && dot ? find_path(n, dot + 1) : n;
		}
	}
	if (fn == NULL && R->pkg)
		fn = find_path(R->pkg, name);
	return fn;
}

static int resolve_call(struct rctx *R, struct scope *s, struct term *t)
{
	const char *name = t->name;
	struct node *fn = lookup_function(R, name);
	if (fn && fn->kind == RK_FUNC) {
		t->fn = fn;
		t->outarg = (int)t->n == fn->nargs + 1;
		if ((int)t->n != fn->nargs && !t->outarg)
			return rfail(R, REGO_ERR_TYPE, t,
			             "rego_type_error: %s: arity mismatch: %u arguments, the "
			             "function takes %d",
			             name, t->n, fn->nargs);
	} else {
		t->bi = rego_builtin_find(name);
		if (t->bi >= 0 && rego_builtin(t->bi)->arity >= 0) {
			int ar = rego_builtin(t->bi)->arity;
			t->outarg = (int)t->n == ar + 1;
			if ((int)t->n != ar && !t->outarg)
				return rfail(R, REGO_ERR_TYPE, t,
				             "rego_type_error: %s: arity mismatch: %u arguments, "
				             "the function takes %d",
				             name, t->n, ar);
		}
	}
	for (uint32_t i = 0; i < t->n; i++)
		if (resolve_term(R, s, t->kids[i]) < 0)
			return -1;
	return 0;
}

static int resolve_term(struct rctx *R, struct scope *s, struct term *t)
{
	switch (t->k) {
	case TK_VAL:
		return 0;
	case TK_VAR:
		return resolve_var(R, s, t);
	case TK_REF: {
		struct term *h = t->kids[0];
		if (h->k == TK_VAR && h->root == ROOT_NONE && h->slot < 0 && !h->wild) {
			int local = 0;
			for (struct scope *x = s; x && !local; x = x->up)
				local = scope_find(x, h->name) != NULL;
			if (!local && strcmp(h->name, "input") != 0 &&
			    strcmp(h->name, "data") != 0) {
				struct term **pre;
				uint32_t npre;
				int g = global_prefix(R, h->name, &pre, &npre);
				if (g < 0)
					return err_setc(R->err, REGO_ERR_INTERNAL, "out of memory");
				if (g && splice_global(R, t, pre, npre) < 0)
					return -1;
			}
		}
		for (uint32_t i = 0; i < t->n; i++)
			if (resolve_term(R, s, t->kids[i]) < 0)
				return -1;
		return 0;
	}
	case TK_ARR:
	case TK_SET:
		for (uint32_t i = 0; i < t->n; i++)
			if (resolve_term(R, s, t->kids[i]) < 0)
				return -1;
		return 0;
	case TK_OBJ:
		for (uint32_t i = 0; i < t->n; i++)
			if (resolve_term(R, s, t->kids[i]) < 0 ||
			    resolve_term(R, s, t->vals[i]) < 0)
				return -1;
		return 0;
	case TK_CALL:
		return resolve_call(R, s, t);
	case TK_ACOMP:
	case TK_SCOMP:
	case TK_OCOMP: {
		struct scope c = {.up = s};
		int rc = resolve_body(R, &c, t->body);
		if (rc == 0)
			rc = resolve_term(R, &c, t->head);
		if (rc == 0 && t->head2)
			rc = resolve_term(R, &c, t->head2);
		scope_free(&c);
		return rc;
	}
	}
	return 0;
}

/* "a.b.c" for a variable or a ref made of a variable and constant strings, else NULL */
static char *dotted(struct rctx *R, const struct term *t)
{
	const struct term *h = t->k == TK_REF ? t->kids[0] : t;
	if (h->k != TK_VAR || h->name == NULL)
		return NULL;
	size_t len = strlen(h->name) + 1;
	for (uint32_t i = 1; t->k == TK_REF && i < t->n; i++) {
		if (t->kids[i]->k != TK_VAL || t->kids[i]->v->k != V_STR)
			return NULL;
		len += t->kids[i]->v->n + 1;
	}
	char *s = ar_alloc(R->A, len), *o = s;
	if (s == NULL)
		return NULL;
	o += sprintf(o, "%s", h->name);
	for (uint32_t i = 1; t->k == TK_REF && i < t->n; i++)
		o += sprintf(o, ".%s", t->kids[i]->v->s);
	return s;
}

/* the function a with target or replacement names, if it names one */
static int with_function(struct rctx *R, const struct term *t, struct node **fn, int *bi)
{
	char *name = dotted(R, t);
	*fn = NULL;
	*bi = -1;
	if (name == NULL || strcmp(name, "input") == 0 || strncmp(name, "input.", 6) == 0)
		return 0;
	struct node *n = lookup_function(R, name);
	if (n && n->kind == RK_FUNC) {
		*fn = n;
		return 1;
	}
	if (strncmp(name, "data.", 5) != 0 && strcmp(name, "data") != 0 &&
	    (*bi = rego_builtin_find(name)) >= 0)
		return 1;
	return 0;
}

/* `with` targets are paths, not values: input..., data..., or a function */
static int resolve_with(struct rctx *R, struct scope *s, struct with *w)
{
	struct term *t = w->target;
	if (with_function(R, t, &w->fn, &w->bi)) {
		if (with_function(R, w->value, &w->vfn, &w->vbi))
			return 0;
		return resolve_term(R, s, w->value);
	}
	struct term *h = t->k == TK_REF ? t->kids[0] : t;
	char *name = dotted(R, t);
	if (name && h->root == ROOT_NONE && strcmp(h->name, "input") != 0 &&
	    strcmp(h->name, "data") != 0 && lookup_function(R, name) == NULL) {
		w->name = name; /* a function only the embedder (or nobody) provides */
		if (with_function(R, w->value, &w->vfn, &w->vbi))
			return 0;
		return resolve_term(R, s, w->value);
	}
	if (h->k == TK_VAR && (strcmp(h->name ? h->name : "", "input") == 0 ||
	                       strcmp(h->name ? h->name : "", "data") == 0 || h->root)) {
		if (!h->root)
			h->root = h->name[0] == 'i' ? ROOT_INPUT : ROOT_DATA;
		for (uint32_t i = 1; t->k == TK_REF && i < t->n; i++)
			if (t->kids[i]->k != TK_VAL)
				return rfail(R, REGO_ERR_TYPE, t,
				             "rego_type_error: with target paths must be constant");
		return resolve_term(R, s, w->value);
	}
	return rfail(R, REGO_ERR_TYPE, t,
	             "rego_type_error: with: only input, data and functions can be replaced");
}

static int resolve_expr(struct rctx *R, struct scope *s, struct expr *e)
{
	switch (e->k) {
	case E_TERM:
		if (resolve_term(R, s, e->a) < 0)
			return -1;
		break;
	case E_UNIFY:
		if (resolve_term(R, s, e->a) < 0 || resolve_term(R, s, e->b) < 0)
			return -1;
		break;
	case E_ASSIGN:
		if (resolve_term(R, s, e->b) < 0)
			return -1;
		if (e->a->k != TK_VAR && e->a->k != TK_ARR && e->a->k != TK_OBJ)
			return rfail(R, REGO_ERR_COMPILE, e->a,
			             "rego_compile_error: cannot assign to %s",
			             e->a->k == TK_REF ? "a reference" : "this expression");
		if (declare_pattern(R, s, e->a) < 0)
			return -1;
		break;
	case E_SOME:
		for (uint32_t i = 0; i < e->nvars; i++)
			if (declare_var(R, s, e->vars[i]) < 0)
				return -1;
		break;
	case E_SOMEIN:
		if (resolve_term(R, s, e->coll) < 0)
			return -1;
		if (e->key && declare_pattern(R, s, e->key) < 0)
			return -1;
		if (declare_pattern(R, s, e->value) < 0)
			return -1;
		break;
	case E_BODY:
		if (resolve_body(R, s, e->body) < 0)
			return -1;
		break;
	case E_EVERY: {
		if (resolve_term(R, s, e->coll) < 0)
			return -1;
		struct scope c = {.up = s};
		int rc = 0;
		if (e->key)
			rc = declare_var(R, &c, e->key);
		if (rc == 0)
			rc = declare_var(R, &c, e->value);
		if (rc == 0)
			rc = resolve_body(R, &c, e->body);
		scope_free(&c);
		if (rc < 0)
			return -1;
		break;
	}
	}
	for (uint32_t i = 0; i < e->nwith; i++)
		if (resolve_with(R, s, &e->with[i]) < 0)
			return -1;
	return 0;
}

static int resolve_body(struct rctx *R, struct scope *s, struct body *b)
{
	for (uint32_t i = 0; i < b->n; i++)
		if (resolve_expr(R, s, b->e[i]) < 0)
			return -1;
	return 0;
}

/* ------------------------------------------------------------------ constants */

int rego_fold_constants(struct arena *A, struct term *t)
{
	switch (t->k) {
	case TK_VAL:
		return 1;
	case TK_VAR:
		t->has_var = t->root == ROOT_NONE;
		return 0;
	case TK_ARR:
	case TK_SET:
	case TK_OBJ: {
		int all = 1;
		for (uint32_t i = 0; i < t->n; i++) {
			all &= rego_fold_constants(A, t->kids[i]);
			t->has_var |= t->kids[i]->has_var;
			if (t->k == TK_OBJ) {
				all &= rego_fold_constants(A, t->vals[i]);
				t->has_var |= t->vals[i]->has_var;
			}
		}
		if (!all)
			return 0;
		struct val **items = ar_alloc(A, (t->n ? t->n : 1) * sizeof(*items));
		struct val **vals = ar_alloc(A, (t->n ? t->n : 1) * sizeof(*vals));
		if (items == NULL || vals == NULL)
			return 0;
		for (uint32_t i = 0; i < t->n; i++) {
			items[i] = t->kids[i]->v;
			if (t->k == TK_OBJ)
				vals[i] = t->vals[i]->v;
		}
		struct val *v;
		if (t->k == TK_ARR) {
			v = v_arr(A, t->n);
			if (v)
				memcpy(v->a, items, t->n * sizeof(*items));
		} else if (t->k == TK_SET) {
			v = v_set_build(A, items, t->n);
		} else {
			int dup;
			v = v_obj_build(A, items, vals, t->n, &dup);
		}
		if (v == NULL)
			return 0;
		t->k = TK_VAL;
		t->v = v;
		return 1;
	}
	case TK_REF:
	case TK_CALL:
		for (uint32_t i = 0; i < t->n; i++) {
			rego_fold_constants(A, t->kids[i]);
			t->has_var |= t->kids[i]->has_var;
		}
		return 0;
	case TK_ACOMP:
	case TK_SCOMP:
	case TK_OCOMP:
		t->has_var = 1;
		return 0;
	}
	return 0;
}

static void fold_body(struct arena *A, struct body *b);

/* The policy whose tree data refs are resolved against while folding (set by the caller). */
static __thread const struct rego_policy *fold_policy;

/* data.a.b.c...: when a prefix of constant strings ends at a rule, remember the rule, so
 * evaluation starts there instead of walking the tree by name. */
static void resolve_data_ref(struct term *t)
{
	if (fold_policy == NULL || t->n < 2 || t->kids[0]->k != TK_VAR ||
	    t->kids[0]->root != ROOT_DATA)
		return;
	struct node *n = fold_policy->root;
	for (uint32_t i = 1; i < t->n && n; i++) {
		struct term *k = t->kids[i];
		if (k->k != TK_VAL || k->v->k != V_STR || k->v->n != strlen(k->v->s))
			return;
		n = rego_node_find(n, k->v->s);
		if (n && n->kind >= 0 && n->kind != RK_FUNC && n->nkids == 0) {
			t->rnode = n;
			t->ridx = i + 1;
			return;
		}
	}
}

/* Object literals with constant keys: sort the pairs once, so building the object at run
 * time needs no sort (evaluation order of the values does not matter). */
static void sort_const_keys(struct term *t)
{
	for (uint32_t i = 0; i < t->n; i++)
		if (t->kids[i]->k != TK_VAL)
			return;
	for (uint32_t i = 1; i < t->n; i++)
		for (uint32_t j = i; j > 0 && v_cmp(t->kids[j - 1]->v, t->kids[j]->v) > 0; j--) {
			struct term *k = t->kids[j], *v = t->vals[j];
			t->kids[j] = t->kids[j - 1];
			t->vals[j] = t->vals[j - 1];
			t->kids[j - 1] = k;
			t->vals[j - 1] = v;
		}
}

static void fold_deep(struct arena *A, struct term *t)
{
	if (t == NULL)
		return;
	if (t->k == TK_ACOMP || t->k == TK_SCOMP || t->k == TK_OCOMP) {
		fold_body(A, t->body);
		fold_deep(A, t->head);
		fold_deep(A, t->head2);
		return;
	}
	if (t->k == TK_VAL)
		return;
	for (uint32_t i = 0; i < t->n; i++) {
		fold_deep(A, t->kids[i]);
		if (t->k == TK_OBJ)
			fold_deep(A, t->vals[i]);
	}
	if (rego_fold_constants(A, t))
		return;
	if (t->k == TK_REF)
		resolve_data_ref(t);
	else if (t->k == TK_OBJ)
		sort_const_keys(t);
}

static void fold_body(struct arena *A, struct body *b)
{
	for (uint32_t i = 0; b && i < b->n; i++) {
		struct expr *e = b->e[i];
		fold_deep(A, e->a);
		fold_deep(A, e->b);
		fold_deep(A, e->key);
		fold_deep(A, e->value);
		fold_deep(A, e->coll);
		for (uint32_t j = 0; j < e->nvars; j++)
			fold_deep(A, e->vars[j]);
		for (uint32_t j = 0; j < e->nwith; j++) {
			fold_deep(A, e->with[j].target);
			fold_deep(A, e->with[j].value);
		}
		fold_body(A, e->body);
	}
}

/* ------------------------------------------------------------------ safety */

/* A variable that no expression of its rule can bind (it only ever appears where a value
 * is needed: an operand, a call argument, a ref's head) is unsafe, as OPA says at compile
 * time. Binding places: either side of `=`, the left of `:=`, `some .. in` and `every`
 * patterns, keys of references (iteration), a call's output argument, function
 * arguments. OPA also reorders literals to bind variables before their use; this check
 * only rejects what no order could make safe, and the evaluator reports the rest. */
struct safety {
	uint8_t *bound; /* by slot */
	int nslots;
};

static void mark_body(struct safety *S, const struct body *b);

static void mark_pattern(struct safety *S, const struct term *t)
{
	if (t == NULL)
		return;
	if (t->k == TK_VAR && t->root == ROOT_NONE && t->slot >= 0 && t->slot < S->nslots)
		S->bound[t->slot] = 1;
	if (t->k == TK_ARR)
		for (uint32_t i = 0; i < t->n; i++)
			mark_pattern(S, t->kids[i]);
	if (t->k == TK_OBJ)
		for (uint32_t i = 0; i < t->n; i++)
			mark_pattern(S, t->vals[i]);
}

/* ref keys and output arguments anywhere inside t; comprehension bodies */
static void mark_term(struct safety *S, const struct term *t)
{
	if (t == NULL)
		return;
	switch (t->k) {
	case TK_REF:
		for (uint32_t i = 1; i < t->n; i++)
			mark_pattern(S, t->kids[i]);
		break;
	case TK_CALL:
		if (t->outarg && t->n)
			mark_pattern(S, t->kids[t->n - 1]);
		break;
	case TK_ACOMP:
	case TK_SCOMP:
	case TK_OCOMP:
		mark_body(S, t->body);
		mark_term(S, t->head);
		mark_term(S, t->head2);
		return;
	default:
		break;
	}
	for (uint32_t i = 0; i < t->n; i++) {
		mark_term(S, t->kids[i]);
		if (t->k == TK_OBJ)
			mark_term(S, t->vals[i]);
	}
}

static void mark_body(struct safety *S, const struct body *b)
{
	for (uint32_t i = 0; b && i < b->n; i++) {
		const struct expr *e = b->e[i];
		if (e->k == E_UNIFY) {
			mark_pattern(S, e->a);
			mark_pattern(S, e->b);
		} else if (e->k == E_ASSIGN || e->k == E_SOMEIN || e->k == E_EVERY) {
			mark_pattern(S, e->k == E_ASSIGN ? e->a : e->value);
			mark_pattern(S, e->key);
		}
		mark_term(S, e->a);
		mark_term(S, e->b);
		mark_term(S, e->key);
		mark_term(S, e->value);
		mark_term(S, e->coll);
		for (uint32_t j = 0; j < e->nwith; j++)
			mark_term(S, e->with[j].value);
		mark_body(S, e->body);
	}
}

static const struct term *unsafe_in_body(struct safety *S, const struct body *b);

static const struct term *unsafe_in_term(struct safety *S, const struct term *t)
{
	if (t == NULL)
		return NULL;
	if (t->k == TK_VAR)
		return t->root == ROOT_NONE && !t->wild && t->slot >= 0 && t->slot < S->nslots &&
		               !S->bound[t->slot]
		           ? t
		           : NULL;
	const struct term *u = NULL;
	if (t->k == TK_ACOMP || t->k == TK_SCOMP || t->k == TK_OCOMP) {
		if ((u = unsafe_in_body(S, t->body)) || (u = unsafe_in_term(S, t->head)))
			return u;
		return unsafe_in_term(S, t->head2);
	}
	for (uint32_t i = 0; i < t->n && !u; i++) {
		u = unsafe_in_term(S, t->kids[i]);
		if (!u && t->k == TK_OBJ)
			u = unsafe_in_term(S, t->vals[i]);
	}
	return u;
}

static const struct term *unsafe_in_body(struct safety *S, const struct body *b)
{
	const struct term *u = NULL;
	for (uint32_t i = 0; b && i < b->n && !u; i++) {
		const struct expr *e = b->e[i];
		if ((u = unsafe_in_term(S, e->a)) || (u = unsafe_in_term(S, e->b)) ||
		    (u = unsafe_in_term(S, e->key)) || (u = unsafe_in_term(S, e->value)) ||
		    (u = unsafe_in_term(S, e->coll)))
			break;
		for (uint32_t j = 0; j < e->nwith && !u; j++)
			u = unsafe_in_term(S, e->with[j].value);
		if (!u)
			u = unsafe_in_body(S, e->body);
	}
	return u;
}

static int check_safety(struct rctx *R, struct term **args, uint32_t nargs, const struct body *b,
                        struct term **head, uint32_t nhead, int nslots)
{
	struct safety S = {calloc((size_t)nslots + 1, 1), nslots};
	if (S.bound == NULL)
		return err_setc(R->err, REGO_ERR_INTERNAL, "out of memory");
	for (uint32_t i = 0; i < nargs; i++) {
		mark_pattern(&S, args[i]);
		mark_term(&S, args[i]);
	}
	mark_body(&S, b);
	for (uint32_t i = 0; i < nhead; i++)
		mark_term(&S, head[i]);
	const struct term *u = unsafe_in_body(&S, b);
	for (uint32_t i = 0; i < nhead && !u; i++)
		u = unsafe_in_term(&S, head[i]);
	free(S.bound);
	if (u)
		return rfail(R, REGO_ERR_UNSAFE, u, "rego_unsafe_var_error: var %s is unsafe",
		             u->name);
	return 0;
}

/* ------------------------------------------------------------------ rules */

static struct node *pkg_node(struct rego_policy *P, const struct module *m)
{
	struct node *n = P->root;
	for (uint32_t j = 0; j < m->npkg && n; j++)
		n = rego_node_find(n, m->pkg[j]->v->s);
	return n;
}

/* Function arguments are patterns of local variables (they shadow rules of the package); a
 * variable named twice means both arguments must be equal. */
static int declare_arg(struct rctx *R, struct scope *s, struct term *t)
{
	switch (t->k) {
	case TK_VAR: {
		if (t->wild || t->root != ROOT_NONE)
			return resolve_var(R, s, t);
		struct sym *y = scope_find(s, t->name);
		if (y) {
			t->slot = y->slot;
			return 0;
		}
		int slot = scope_add(R, s, t->name, 1);
		if (slot < 0)
			return -1;
		t->slot = slot;
		return 0;
	}
	case TK_ARR:
		for (uint32_t i = 0; i < t->n; i++)
			if (declare_arg(R, s, t->kids[i]) < 0)
				return -1;
		return 0;
	case TK_OBJ:
		for (uint32_t i = 0; i < t->n; i++)
			if (resolve_term(R, s, t->kids[i]) < 0 || declare_arg(R, s, t->vals[i]) < 0)
				return -1;
		return 0;
	default:
		return resolve_term(R, s, t);
	}
}

/* Function arguments are shared by every branch of an else chain; each branch numbers its
 * slots afresh, arguments first, so the same variables get the same slots again. */
static void reset_slots(struct term *t)
{
	if (t->k == TK_VAR && t->root == ROOT_NONE)
		t->slot = -1;
	if (t->k == TK_ARR || t->k == TK_OBJ || t->k == TK_SET)
		for (uint32_t i = 0; i < t->n; i++) {
			reset_slots(t->kids[i]);
			if (t->k == TK_OBJ)
				reset_slots(t->vals[i]);
		}
}

static int compile_rule(struct rego_policy *P, struct rule *r, struct err *err)
{
	const struct module *m = &P->mods[r->module];
	struct rctx R = {
	    .P = P, .A = &P->A, .mod = m, .pkg = pkg_node(P, m), .file = r->file, .err = err};
	struct scope s = {0};
	int rc = 0;
	for (uint32_t i = 0; i < r->nargs; i++)
		reset_slots(r->args[i]);
	for (uint32_t i = 0; i < r->nargs && rc == 0; i++)
		rc = declare_arg(&R, &s, r->args[i]);
	if (rc == 0)
		rc = resolve_body(&R, &s, r->body);
	if (rc == 0 && r->k == RK_SET)
		rc = resolve_term(&R, &s, r->key);
	for (uint32_t i = 0; rc == 0 && i < r->nkeys; i++)
		rc = resolve_term(&R, &s, r->keys[i]);
	if (rc == 0 && r->value)
		rc = resolve_term(&R, &s, r->value);
	scope_free(&s);
	if (rc < 0)
		return -1;
	r->nslots = R.nslots;
	{
		struct term *head[8];
		uint32_t nh = 0;
		if (r->value)
			head[nh++] = r->value;
		if (r->k == RK_SET)
			head[nh++] = r->key;
		for (uint32_t i = 0; r->k == RK_OBJ && i < r->nkeys && nh < 8; i++)
			head[nh++] = r->keys[i];
		if (check_safety(&R, r->args, r->nargs, r->body, head, nh, r->nslots) < 0)
			return -1;
	}
	for (uint32_t i = 0; i < r->nargs; i++)
		fold_deep(&P->A, r->args[i]);
	fold_body(&P->A, r->body);
	if (r->k == RK_SET)
		fold_deep(&P->A, r->key);
	for (uint32_t i = 0; i < r->nkeys; i++)
		fold_deep(&P->A, r->keys[i]);
	if (r->k == RK_OBJ)
		r->key = r->keys[0];
	fold_deep(&P->A, r->value);
	return 0;
}

int rego_compile_policy(struct rego_policy *P, struct err *err)
{
	if (build_tree(P, err) < 0)
		return -1;
	int next = 0;
	number_nodes(P->root, &next);
	P->nnodes = next;
	fold_policy = P;
	for (size_t i = 0; i < P->nrules; i++)
		for (struct rule *d = P->rules[i]; d; d = d->els)
			if (compile_rule(P, d, err) < 0) {
				fold_policy = NULL;
				return -1;
			}
	fold_policy = NULL;
	return 0;
}

int rego_compile_query(const struct rego_policy *P, struct arena *A, struct body *b,
                       struct query *q, struct err *err)
{
	struct rctx R = {.P = P, .A = A, .file = "query", .err = err, .q = q};
	struct scope s = {.query = 1};
	memset(q, 0, sizeof(*q));
	q->body = b;
	int rc = resolve_body(&R, &s, b);
	scope_free(&s);
	if (rc < 0 || check_safety(&R, NULL, 0, b, NULL, 0, R.nslots) < 0)
		return -1;
	q->nslots = R.nslots;
	fold_policy = P;
	fold_body(A, b);
	fold_policy = NULL;
	return 0;
}
