/*
 * eval: top-down evaluation of Rego with backtracking, written in continuation-passing
 * style. Every producer of values (a term, a reference that iterates, a call, a body) calls
 * its continuation once per solution; bindings live in the slots of the current rule frame
 * and are undone when the continuation returns. A continuation returns 0 to ask for more
 * solutions, 1 to stop early (negation, every, explanations), -1 on error.
 *
 * Rule values are computed in full the first time they are needed and memoised per
 * evaluation (per node of the rule tree); every definition is evaluated, so conflicting
 * values are always reported, as OPA does. `with` evaluates its expression with a replaced
 * input or data document and a fresh memo, restoring both around the continuation.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rego/builtins.h"
#include "rego/eval.h"

#define MAX_EVAL_DEPTH 2000

typedef int (*vk_fn)(struct ev *E, struct val *v, void *arg);
typedef int (*k_fn)(struct ev *E, void *arg);

static int eval_term(struct ev *E, struct term *t, vk_fn k, void *arg);
static int eval_body(struct ev *E, struct body *b, uint32_t i, k_fn k, void *arg);
static int eval_expr(struct ev *E, struct expr *e, k_fn k, void *arg);
static int unify_terms(struct ev *E, struct term *a, struct term *b, k_fn k, void *arg);
static int unify_val(struct ev *E, struct term *pat, struct val *v, k_fn k, void *arg);
static int walk_val(struct ev *E, struct val *v, struct term *ref, uint32_t i, vk_fn k, void *arg);
static int walk_data(struct ev *E, struct node *n, struct val *base, struct term *ref, uint32_t i,
                     vk_fn k, void *arg);
static int node_value(struct ev *E, struct node *n, struct val *base, struct val **out);
static int rule_value(struct ev *E, struct node *n, struct val **out);

/* ------------------------------------------------------------------ errors, budget */

/* The refusal when the arena's limit was hit: whatever failure an allocation caused further
 * down (a builtin's "out of memory", a swallowed builtin error) is reported as this. */
static void mem_msg(struct ev *E)
{
	E->err->code = REGO_ERR_BUDGET;
	snprintf(E->err->msg, sizeof(E->err->msg),
	         "eval_cancel_error: policy evaluation exceeded its memory budget of %zu MiB",
	         E->A->limit >> 20);
}

int ev_fail(struct ev *E, int code, const char *fmt, ...)
{
	va_list ap;
	if (E->failed)
		return -1;
	E->failed = 1;
	if (E->A && E->A->over) {
		mem_msg(E);
		return -1;
	}
	E->err->code = code;
	va_start(ap, fmt);
	vsnprintf(E->err->msg, sizeof(E->err->msg), fmt, ap);
	va_end(ap);
	return -1;
}

int ev_type_err(struct ev *E, const char *fn, int argi, const char *want, struct val *got)
{
	return ev_fail(E, REGO_ERR_EVAL_TYPE,
	               "eval_type_error: %s: operand %d must be %s but got %s", fn, argi, want,
	               v_type_name(got));
}

struct arena *ev_arena(struct ev *E)
{
	return E->A;
}

uint64_t ev_now_ns(struct ev *E)
{
	if (E->now_ns == 0) {
		struct timespec t;
		clock_gettime(CLOCK_REALTIME, &t);
		E->now_ns = (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
	}
	return E->now_ns;
}

static int oom(struct ev *E)
{
	return ev_fail(E, REGO_ERR_INTERNAL, "eval_internal_error: out of memory");
}

static uint64_t mono_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Steps to date are checked against the step budget on every call, the clock once per 1024
 * steps (a step costs tens of nanoseconds; a clock read about as much), the memory flag always. */
static int budget_check(struct ev *E, uint64_t before)
{
	if (E->A->over)
		return ev_fail(E, REGO_ERR_BUDGET, "memory");
	if (E->steps > E->max_steps)
		return ev_fail(E, REGO_ERR_BUDGET,
		               "eval_cancel_error: policy evaluation exceeded its budget of %llu "
		               "steps",
		               (unsigned long long)E->max_steps);
	if ((E->steps >> 10) != (before >> 10) && mono_ns() > E->deadline_ns)
		return ev_fail(E, REGO_ERR_BUDGET,
		               "eval_cancel_error: policy evaluation exceeded its time budget of "
		               "%llu ms",
		               (unsigned long long)(E->o->timeout_us ? E->o->timeout_us
		                                                     : REGO_DEFAULT_TIMEOUT_US) /
		                   1000);
	return 0;
}

static int step(struct ev *E)
{
	return budget_check(E, E->steps++);
}

int ev_charge(struct ev *E, uint64_t n)
{
	uint64_t before = E->steps;
	E->steps = n > UINT64_MAX - before ? UINT64_MAX : before + n;
	return budget_check(E, before);
}

/* jansson's cost of a document: a value is ~48 bytes with its allocation and slot, plus its
 * string bytes (measured on arrays of small integers and objects of short strings). */
static size_t json_weight(const json_t *j, int depth)
{
	size_t w = 48;
	const char *k;
	json_t *v;
	size_t i;
	if (depth > 4096)
		return w;
	switch (json_typeof(j)) {
	case JSON_STRING:
		return w + json_string_length(j);
	case JSON_ARRAY:
		json_array_foreach(j, i, v) w += json_weight(v, depth + 1);
		return w;
	case JSON_OBJECT:
		json_object_foreach((json_t *)j, k, v) w +=
		    48 + strlen(k) + json_weight(v, depth + 1);
		return w;
	default:
		return w;
	}
}

int ev_json_room(struct ev *E, size_t n)
{
	struct arena *a = E->A;
	if (a->limit && (a->total > a->limit || n > (a->limit - a->total) / 16)) {
		a->over = 1;
		return ev_fail(E, REGO_ERR_BUDGET, "memory");
	}
	return 0;
}

int ev_account_json(struct ev *E, const json_t *j)
{
	if (ar_account(E->A, json_weight(j, 0)) < 0)
		return ev_fail(E, REGO_ERR_BUDGET, "memory");
	return 0;
}

/* The work a builtin did, known from what it built: items of a new container, string bytes
 * by 64. A result that is one of its arguments, or a lazily wrapped document, cost nothing. */
static uint64_t result_work(struct val *r, struct val **args, uint32_t nargs)
{
	if (r == NULL)
		return 0;
	for (uint32_t i = 0; i < nargs; i++)
		if (r == args[i])
			return 0;
	switch (r->k) {
	case V_STR:
		return r->n / 64;
	case V_ARR:
	case V_OBJ:
	case V_SET:
		return r->lazy ? 0 : r->n;
	default:
		return 0;
	}
}

/* a growable list of values in the arena */
struct vlist {
	struct val **v;
	size_t n, cap;
};

static int vl_push(struct ev *E, struct vlist *l, struct val *x)
{
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 8;
		struct val **nv = ar_alloc(E->A, nc * sizeof(*nv));
		if (nv == NULL)
			return oom(E);
		if (l->n)
			memcpy(nv, l->v, l->n * sizeof(*nv));
		l->v = nv;
		l->cap = nc;
	}
	l->v[l->n++] = x;
	return 0;
}

/* ------------------------------------------------------------------ variables */

static inline int unbound(struct ev *E, const struct term *t)
{
	return t->k == TK_VAR && t->root == ROOT_NONE && E->slots[t->slot] == NULL;
}

/* a term that unification matches structurally because it holds unbound variables */
static int is_pattern(struct ev *E, const struct term *t)
{
	if (!t->has_var)
		return 0;
	switch (t->k) {
	case TK_VAR:
		return unbound(E, t);
	case TK_ARR:
		for (uint32_t i = 0; i < t->n; i++)
			if (is_pattern(E, t->kids[i]))
				return 1;
		return 0;
	case TK_OBJ:
		for (uint32_t i = 0; i < t->n; i++)
			if (is_pattern(E, t->vals[i]))
				return 1;
		return 0;
	default:
		return 0;
	}
}

/* ------------------------------------------------------------------ collections */

struct coll_st {
	struct term *t;
	struct val **items, **vals;
	uint32_t i;
	int onval; /* object: evaluating the value of item i */
	vk_fn k;
	void *arg;
};

static int coll_next(struct ev *E, struct coll_st *s);

static int coll_item(struct ev *E, struct val *v, void *arg)
{
	struct coll_st *s = arg;
	struct coll_st n = *s;
	if (s->t->k == TK_OBJ && !s->onval) {
		n.items[s->i] = v;
		n.onval = 1;
		return eval_term(E, s->t->vals[s->i], coll_item, &n);
	}
	if (s->t->k == TK_OBJ)
		n.vals[s->i] = v;
	else
		n.items[s->i] = v;
	n.i++;
	n.onval = 0;
	return coll_next(E, &n);
}

static int coll_next(struct ev *E, struct coll_st *s)
{
	struct term *t = s->t;
	if (s->i < t->n)
		return eval_term(E, t->kids[s->i], coll_item, s);
	struct val *v;
	if (t->k == TK_ARR) {
		v = v_arr(E->A, t->n);
		if (v && t->n)
			memcpy(v->a, s->items, t->n * sizeof(*s->items));
	} else if (t->k == TK_SET) {
		v = v_set_build(E->A, s->items, t->n);
	} else {
		int dup;
		v = v_obj_build(E->A, s->items, s->vals, t->n, &dup);
		if (v == NULL && dup)
			return ev_fail(E, REGO_ERR_CONFLICT,
			               "eval_conflict_error: object keys must be unique");
	}
	if (v == NULL)
		return oom(E);
	return s->k(E, v, s->arg);
}

/* comprehensions */
struct compr_st {
	struct term *t;
	struct vlist keys, vals;
	struct val *key;
};

static int compr_val(struct ev *E, struct val *v, void *arg)
{
	struct compr_st *c = arg;
	if (vl_push(E, &c->keys, c->key) < 0 || vl_push(E, &c->vals, v) < 0)
		return -1;
	return 0;
}

static int compr_head(struct ev *E, struct val *v, void *arg)
{
	struct compr_st *c = arg;
	if (c->t->k == TK_OCOMP) {
		c->key = v;
		return eval_term(E, c->t->head2, compr_val, c);
	}
	return vl_push(E, &c->keys, v);
}

static int compr_solution(struct ev *E, void *arg)
{
	struct compr_st *c = arg;
	return eval_term(E, c->t->head, compr_head, c);
}

static int eval_compr(struct ev *E, struct term *t, vk_fn k, void *arg)
{
	struct compr_st c = {.t = t};
	if (eval_body(E, t->body, 0, compr_solution, &c) < 0)
		return -1;
	struct val *v;
	if (t->k == TK_ACOMP) {
		v = v_arr(E->A, (uint32_t)c.keys.n);
		if (v && c.keys.n)
			memcpy(v->a, c.keys.v, c.keys.n * sizeof(*c.keys.v));
	} else if (t->k == TK_SCOMP) {
		v = v_set_build(E->A, c.keys.v, c.keys.n);
	} else {
		int dup;
		v = v_obj_build(E->A, c.keys.v, c.vals.v, c.keys.n, &dup);
		if (v == NULL && dup)
			return ev_fail(E, REGO_ERR_CONFLICT,
			               "eval_conflict_error: object keys must be unique");
	}
	if (v == NULL)
		return oom(E);
	return k(E, v, arg);
}

/* ------------------------------------------------------------------ calls */

struct call_st {
	struct term *t;
	struct val **args;
	uint32_t i, nin; /* arguments evaluated so far, input arguments */
	int outarg;      /* the last argument receives the result */
	vk_fn k;
	void *arg;
};

static int call_dispatch(struct ev *E, struct call_st *s);
static int walk_gen(struct ev *E, struct call_st *s, struct val *path, struct val *v);

static int call_arg(struct ev *E, struct val *v, void *arg)
{
	struct call_st *s = arg;
	struct call_st n = *s;
	n.args[s->i] = v;
	n.i++;
	if (n.i == n.nin)
		return call_dispatch(E, &n);
	return eval_term(E, s->t->kids[n.i], call_arg, &n);
}

struct out_st {
	vk_fn k;
	void *arg;
};

static int out_done(struct ev *E, void *arg)
{
	struct out_st *o = arg;
	return o->k(E, &rv_true, o->arg);
}

/* deliver a call's result: to the continuation, or through the output argument */
static int call_result(struct ev *E, struct call_st *s, struct val *r)
{
	if (r == NULL)
		return 0;
	if (!s->outarg)
		return s->k(E, r, s->arg);
	struct out_st o = {s->k, s->arg};
	return unify_val(E, s->t->kids[s->t->n - 1], r, out_done, &o);
}

struct fn_st {
	struct rule *d;
	struct val **args;
	uint32_t i;
	struct val *res;
	int any;
	struct node *n;
};

static int fn_value(struct ev *E, struct val *v, void *arg)
{
	struct fn_st *f = arg;
	f->any = 1;
	if (f->res == NULL) {
		f->res = v;
		return 0;
	}
	if (!v_eq(f->res, v))
		return ev_fail(
		    E, REGO_ERR_CONFLICT,
		    "eval_conflict_error: functions must not produce multiple outputs for "
		    "same inputs (%s)",
		    f->n->path);
	return 0;
}

static int fn_body_done(struct ev *E, void *arg)
{
	struct fn_st *f = arg;
	if (f->d->value == NULL)
		return fn_value(E, &rv_true, f);
	return eval_term(E, f->d->value, fn_value, f);
}

static int fn_bind(struct ev *E, void *arg)
{
	struct fn_st *f = arg;
	if (f->i == f->d->nargs)
		return eval_body(E, f->d->body, 0, fn_body_done, f);
	struct fn_st n = *f;
	n.i++;
	int rc = unify_val(E, f->d->args[f->i], f->args[f->i], fn_bind, &n);
	f->res = n.res;
	f->any = n.any;
	return rc;
}

static int call_user(struct ev *E, struct node *n, struct val **args, struct val **out)
{
	struct val **saved = E->slots;
	int save_expl = E->explaining;
	struct fn_st f = {.args = args, .n = n};
	*out = NULL;
	if (++E->depth > MAX_EVAL_DEPTH) {
		E->depth--;
		return ev_fail(E, REGO_ERR_BUDGET, "eval_cancel_error: calls nested too deeply");
	}
	E->explaining = 0;
	int rc = 0;
	for (uint32_t r = 0; r < n->nrules && rc == 0; r++) {
		for (struct rule *d = n->rules[r]; d && rc == 0; d = d->els) {
			E->slots = ar_alloc(E->A, ((size_t)d->nslots + 1) * sizeof(*E->slots));
			if (E->slots == NULL) {
				rc = oom(E);
				break;
			}
			f.d = d;
			f.i = 0;
			f.any = 0;
			rc = fn_bind(E, &f);
			if (f.any)
				break;
		}
	}
	if (rc == 0 && f.res == NULL && n->deflt) {
		E->slots = ar_alloc(E->A, ((size_t)n->deflt->nslots + 1) * sizeof(*E->slots));
		f.d = n->deflt;
		rc = E->slots ? eval_term(E, n->deflt->value, fn_value, &f) : oom(E);
	}
	E->slots = saved;
	E->explaining = save_expl;
	E->depth--;
	if (rc < 0)
		return -1;
	*out = f.res;
	return 0;
}

static int call_host(struct ev *E, struct call_st *s)
{
	const char *name = s->t->name;
	for (size_t h = 0; h < E->o->n_host_fns; h++) {
		const struct rego_host_function *hf = &E->o->host_fns[h];
		if (strcmp(hf->name, name) != 0 || hf->arity != s->nin)
			continue;
		json_t *jargs[16];
		for (uint32_t j = 0; j < s->nin; j++)
			jargs[j] = v_to_json(s->args[j]);
		struct err herr = {0};
		json_t *r = hf->fn(hf->ctx, jargs, s->nin, &herr);
		for (uint32_t j = 0; j < s->nin; j++)
			json_decref(jargs[j]);
		if (r == NULL)
			return ev_fail(E, REGO_ERR_BUILTIN, "eval_builtin_error: %s: %s", name,
			               herr.msg[0] ? herr.msg : "failed");
		if (E->nkeep == E->capkeep) {
			size_t nc = E->capkeep ? E->capkeep * 2 : 8;
			json_t **nk = realloc(E->keep, nc * sizeof(*nk));
			if (nk == NULL) {
				json_decref(r);
				return oom(E);
			}
			E->keep = nk;
			E->capkeep = nc;
		}
		E->keep[E->nkeep++] = r;
		if (ev_account_json(E, r) < 0)
			return -1;
		return call_result(E, s, v_from_json(E->A, r));
	}
	return ev_fail(E, REGO_ERR_TYPE, "rego_type_error: undefined function %s", name);
}

static int call_builtin(struct ev *E, struct call_st *s, int bi)
{
	const struct builtin *b = rego_builtin(bi);
	struct val *r = NULL;
	if (b->arity >= 0 && (uint32_t)b->arity != s->nin)
		return ev_fail(E, REGO_ERR_TYPE,
		               "rego_type_error: %s: arity mismatch: %u arguments", b->name,
		               s->nin);
	if (E->explaining && E->cur_expr == E->best_lit && s->nin >= 1 && E->expl_cmp &&
	    s->t == E->cur_expr->a) {
		char *j = v_to_json_text(s->args[0]);
		snprintf(E->best_detail, sizeof(E->best_detail), "%s", j ? j : "?");
		free(j);
	}
	E->precharged = 0;
	if (b->fn(E, s->args, &r) < 0) {
		if ((E->err->code == REGO_ERR_EVAL_TYPE || E->err->code == REGO_ERR_BUILTIN) &&
		    !E->strict) {
			E->failed = 0;
			E->err->code = 0;
			return 0;
		}
		return -1;
	}
	if (!E->precharged && ev_charge(E, result_work(r, s->args, s->nin)) < 0)
		return -1;
	return call_result(E, s, r);
}

struct with_state {
	struct val *input, *data;
	struct val **memo;
	uint8_t *memo_st;
	struct val **node_over;
	struct mock *fn_mock, *bi_mock;
	struct named_mock *name_mock;
};

struct with_st {
	struct expr *e;
	struct val **vals;
	uint32_t i;
	k_fn k;
	void *arg;
	struct with_state outer, inner;
};

static void with_save(struct ev *E, struct with_state *s)
{
	*s = (struct with_state){E->input,     E->data,    E->memo,    E->memo_st,
	                         E->node_over, E->fn_mock, E->bi_mock, E->name_mock};
}

static void with_load(struct ev *E, const struct with_state *s)
{
	E->input = s->input;
	E->data = s->data;
	E->memo = s->memo;
	E->memo_st = s->memo_st;
	E->node_over = s->node_over;
	E->fn_mock = s->fn_mock;
	E->bi_mock = s->bi_mock;
	E->name_mock = s->name_mock;
}

static int call_mock(struct ev *E, struct call_st *s, struct mock *m)
{
	if (m->bi >= 0 && rego_builtin(m->bi)->fn == NULL) {
		struct val *root = v_arr(E->A, 0);
		return root ? walk_gen(E, s, root, s->args[0]) : oom(E);
	}
	if (m->fn) {
		struct val *r;
		if ((int)s->nin != m->fn->nargs)
			return ev_fail(E, REGO_ERR_TYPE,
			               "rego_type_error: %s: arity mismatch in with", m->fn->path);
		/* inside a replacement every function is the original one (a mock never calls
		 * another mock), with rule values of its own */
		struct with_state save, inner;
		with_save(E, &save);
		inner = save;
		inner.fn_mock = inner.bi_mock = NULL;
		inner.name_mock = NULL;
		size_t nn = (size_t)E->P->nnodes + 1;
		inner.memo = ar_alloc(E->A, nn * sizeof(*inner.memo));
		inner.memo_st = ar_alloc(E->A, nn);
		if (inner.memo == NULL || inner.memo_st == NULL)
			return oom(E);
		with_load(E, &inner);
		int rc = call_user(E, m->fn, s->args, &r);
		with_load(E, &save);
		if (rc < 0)
			return -1;
		return call_result(E, s, r);
	}
	if (m->bi >= 0)
		return call_builtin(E, s, m->bi);
	return call_result(E, s, m->v);
}

/* walk(x): every [path, value] below x, x itself first (a relation: one result each) */
static int walk_gen(struct ev *E, struct call_st *s, struct val *path, struct val *v)
{
	if (step(E) < 0)
		return -1;
	struct val *pair = v_arr(E->A, 2);
	if (pair == NULL)
		return oom(E);
	pair->a[0] = path;
	pair->a[1] = v;
	int rc = call_result(E, s, pair);
	if (rc || (v->k != V_ARR && v->k != V_OBJ && v->k != V_SET))
		return rc;
	v_force(v);
	for (uint32_t i = 0; i < v->n; i++) {
		struct val *key = v->k == V_ARR ? v_int(E->A, i) : v->a[i];
		struct val *np = v_arr(E->A, path->n + 1);
		if (key == NULL || np == NULL)
			return oom(E);
		memcpy(np->a, path->a, path->n * sizeof(*np->a));
		np->a[path->n] = key;
		if ((rc = walk_gen(E, s, np, v->k == V_OBJ ? v->ov[i] : v->a[i])) != 0)
			return rc;
	}
	return 0;
}

static int call_dispatch(struct ev *E, struct call_st *s)
{
	struct term *t = s->t;
	if (step(E) < 0)
		return -1;
	if (t->fn && E->fn_mock && E->fn_mock[t->fn->id].set)
		return call_mock(E, s, &E->fn_mock[t->fn->id]);
	if (t->bi >= 0 && E->bi_mock && E->bi_mock[t->bi].set)
		return call_mock(E, s, &E->bi_mock[t->bi]);
	if (t->fn) {
		struct val *r;
		if (call_user(E, t->fn, s->args, &r) < 0)
			return -1;
		return call_result(E, s, r);
	}
	if (t->bi < 0) {
		for (struct named_mock *nm = E->name_mock; nm; nm = nm->next)
			if (strcmp(nm->name, t->name) == 0) {
				if (!s->outarg && nm->m.v == NULL && s->nin == t->n && t->n > 0 &&
				    nm->m.fn && (int)t->n == nm->m.fn->nargs + 1) {
					struct call_st n = *s;
					n.nin = t->n - 1;
					n.outarg = 1;
					return call_mock(E, &n, &nm->m);
				}
				return call_mock(E, s, &nm->m);
			}
		/* the embedder's functions: an output argument when the arity says so */
		for (size_t h = 0; h < E->o->n_host_fns; h++)
			if (strcmp(E->o->host_fns[h].name, t->name) == 0 &&
			    E->o->host_fns[h].arity + 1 == t->n && s->nin == t->n) {
				struct call_st n = *s;
				n.nin = t->n - 1;
				n.outarg = 1;
				return call_host(E, &n);
			}
		return call_host(E, s);
	}
	if (rego_builtin(t->bi)->fn == NULL) { /* walk */
		struct val *root = v_arr(E->A, 0);
		return root ? walk_gen(E, s, root, s->args[0]) : oom(E);
	}
	return call_builtin(E, s, t->bi);
}

/* print(...): every argument is evaluated (an undefined one prints as <undefined> in OPA,
 * so it does not make the call undefined); the output itself is discarded. */
static int print_arg(struct ev *E, struct val *v, void *arg)
{
	return 0;
}

static int eval_print(struct ev *E, struct term *t, vk_fn k, void *arg)
{
	for (uint32_t i = 0; i < t->n; i++)
		if (eval_term(E, t->kids[i], print_arg, NULL) < 0)
			return -1;
	return k(E, &rv_true, arg);
}

static int eval_call(struct ev *E, struct term *t, vk_fn k, void *arg)
{
	struct val *args[16];
	if (t->bi >= 0 && rego_builtin(t->bi)->arity < 0)
		return eval_print(E, t, k, arg);
	if (t->n > 16)
		return ev_fail(E, REGO_ERR_TYPE, "rego_type_error: too many arguments to %s",
		               t->name);
	struct call_st s = {t, args, 0, t->outarg ? t->n - 1 : t->n, t->outarg, k, arg};
	if (s.nin == 0)
		return call_dispatch(E, &s);
	return eval_term(E, t->kids[0], call_arg, &s);
}

/* ------------------------------------------------------------------ terms */

struct ref_st {
	struct term *ref;
	vk_fn k;
	void *arg;
};

static int ref_base(struct ev *E, struct val *v, void *arg)
{
	struct ref_st *r = arg;
	return walk_val(E, v, r->ref, 1, r->k, r->arg);
}

static int eval_term(struct ev *E, struct term *t, vk_fn k, void *arg)
{
	int rc;
	if (t->k == TK_VAL)
		return k(E, t->v, arg);
	if (++E->depth > MAX_EVAL_DEPTH) {
		E->depth--;
		return ev_fail(E, REGO_ERR_BUDGET,
		               "eval_cancel_error: evaluation nested too deeply");
	}
	switch (t->k) {
	case TK_VAR:
		if (t->root == ROOT_INPUT) {
			rc = E->input ? k(E, E->input, arg) : 0;
		} else if (t->root == ROOT_DATA) {
			struct term ref = {.k = TK_REF, .kids = &t, .n = 1};
			rc = walk_data(E, E->P->root, E->data, &ref, 1, k, arg);
		} else if (E->slots[t->slot]) {
			rc = k(E, E->slots[t->slot], arg);
		} else {
			rc = ev_fail(E, REGO_ERR_UNSAFE,
			             "rego_unsafe_var_error: var %s is unsafe (%d:%d)", t->name,
			             t->line, t->col);
		}
		break;
	case TK_REF: {
		struct term *h = t->kids[0];
		if (t->rnode && E->node_over == NULL) {
			/* a rule named by constants: straight to its value */
			struct val *v;
			if (rule_value(E, t->rnode, &v) < 0)
				rc = -1;
			else
				rc = v ? walk_val(E, v, t, t->ridx, k, arg) : 0;
		} else if (h->k == TK_VAR && h->root == ROOT_DATA) {
			rc = walk_data(E, E->P->root, E->data, t, 1, k, arg);
		} else if (h->k == TK_VAR && h->root == ROOT_INPUT) {
			rc = E->input ? walk_val(E, E->input, t, 1, k, arg) : 0;
		} else if (h->k == TK_VAR && E->slots[h->slot]) {
			rc = walk_val(E, E->slots[h->slot], t, 1, k, arg);
		} else {
			struct ref_st r = {t, k, arg};
			rc = eval_term(E, h, ref_base, &r);
		}
		break;
	}
	case TK_ARR:
	case TK_SET:
	case TK_OBJ: {
		struct coll_st s = {.t = t, .k = k, .arg = arg};
		s.items = ar_alloc(E->A, (t->n + 1) * sizeof(*s.items));
		s.vals = ar_alloc(E->A, (t->n + 1) * sizeof(*s.vals));
		rc = s.items && s.vals ? coll_next(E, &s) : oom(E);
		break;
	}
	case TK_CALL:
		rc = eval_call(E, t, k, arg);
		break;
	default:
		rc = eval_compr(E, t, k, arg);
		break;
	}
	E->depth--;
	return rc;
}

/* ------------------------------------------------------------------ references */

struct walk_st {
	struct val *coll;
	struct val *child;
	struct term *ref;
	uint32_t i;
	vk_fn k;
	void *arg;
	struct node *n; /* data walks */
};

static int walk_key_matched(struct ev *E, void *arg)
{
	struct walk_st *w = arg;
	if (w->n || w->coll == NULL)
		return walk_data(E, w->n, w->child, w->ref, w->i + 1, w->k, w->arg);
	return walk_val(E, w->child, w->ref, w->i + 1, w->k, w->arg);
}

static int walk_key(struct ev *E, struct val *key, void *arg)
{
	struct walk_st *w = arg;
	struct val *child = v_get(w->coll, key);
	if (child == NULL)
		return 0;
	return walk_val(E, child, w->ref, w->i + 1, w->k, w->arg);
}

/* Iterate over a collection's keys and children, binding or matching the key term. */
static int walk_iter(struct ev *E, struct val *v, struct term *key, struct walk_st *w)
{
	int var = key->k == TK_VAR;
	uint32_t n = v->n;
	if (v->k != V_ARR && v->k != V_OBJ && v->k != V_SET)
		return 0;
	v_force(v);
	for (uint32_t j = 0; j < n; j++) {
		struct val *kv, *child;
		if (v->k == V_ARR) {
			kv = v_int(E->A, j);
			child = v->a[j];
			if (kv == NULL)
				return oom(E);
		} else if (v->k == V_SET) {
			kv = child = v->a[j];
		} else {
			kv = v->a[j];
			child = v->ov[j];
		}
		int rc;
		if (var) {
			E->slots[key->slot] = kv;
			rc = walk_val(E, child, w->ref, w->i + 1, w->k, w->arg);
			E->slots[key->slot] = NULL;
		} else {
			struct walk_st c = *w;
			c.child = child;
			c.n = NULL;
			c.coll = v;
			rc = unify_val(E, key, kv, walk_key_matched, &c);
		}
		if (rc)
			return rc;
	}
	return 0;
}

static int walk_val(struct ev *E, struct val *v, struct term *ref, uint32_t i, vk_fn k, void *arg)
{
	if (step(E) < 0)
		return -1;
	if (i == ref->n)
		return k(E, v, arg);
	struct term *key = ref->kids[i];
	if (key->k == TK_VAL) {
		struct val *child = v_get(v, key->v);
		return child ? walk_val(E, child, ref, i + 1, k, arg) : 0;
	}
	struct walk_st w = {.coll = v, .ref = ref, .i = i, .k = k, .arg = arg};
	if (unbound(E, key) || is_pattern(E, key))
		return walk_iter(E, v, key, &w);
	return eval_term(E, key, walk_key, &w);
}

/* data: rules and the base document side by side */

static struct val *override_at(struct ev *E, struct node *n)
{
	return E->node_over ? E->node_over[n->id] : NULL;
}

static int rule_value(struct ev *E, struct node *n, struct val **out);

struct dkey_st {
	struct node *n;
	struct val *base;
	struct term *ref;
	uint32_t i;
	vk_fn k;
	void *arg;
};

static int data_key(struct ev *E, struct val *key, void *arg)
{
	struct dkey_st *d = arg;
	struct node *c = NULL;
	if (key->k == V_STR && key->n == strlen(key->s))
		c = rego_node_find(d->n, key->s);
	if (c && c->kind == RK_FUNC)
		c = NULL;
	struct val *bc = d->base ? v_get(d->base, key) : NULL;
	if (c == NULL && bc == NULL)
		return 0;
	return walk_data(E, c, bc, d->ref, d->i + 1, d->k, d->arg);
}

static int walk_data(struct ev *E, struct node *n, struct val *base, struct term *ref, uint32_t i,
                     vk_fn k, void *arg)
{
	if (step(E) < 0)
		return -1;
	if (n == NULL)
		return base ? walk_val(E, base, ref, i, k, arg) : 0;
	struct val *ov = override_at(E, n);
	if (ov)
		return walk_val(E, ov, ref, i, k, arg);
	if (n->kind >= 0) {
		struct val *v;
		if (n->kind == RK_FUNC)
			return 0;
		if ((n->nkids ? node_value(E, n, NULL, &v) : rule_value(E, n, &v)) < 0)
			return -1;
		return v ? walk_val(E, v, ref, i, k, arg) : 0;
	}
	if (i == ref->n) {
		struct val *v;
		if (node_value(E, n, base, &v) < 0)
			return -1;
		return k(E, v, arg);
	}
	struct term *key = ref->kids[i];
	struct dkey_st d = {n, base, ref, i, k, arg};
	if (key->k == TK_VAL)
		return data_key(E, key->v, &d);
	if (!unbound(E, key) && !is_pattern(E, key))
		return eval_term(E, key, data_key, &d);
	/* iterate over the document this node stands for */
	struct val *doc;
	if (node_value(E, n, base, &doc) < 0)
		return -1;
	struct walk_st w = {.coll = doc, .ref = ref, .i = i, .k = k, .arg = arg};
	return walk_iter(E, doc, key, &w);
}

/* The document of a package (or any rule-less prefix): base data merged with its rules'
 * values; undefined rules and functions are left out. */
static int node_value(struct ev *E, struct node *n, struct val *base, struct val **out)
{
	struct val *ov = override_at(E, n);
	if (ov) {
		*out = ov;
		return 0;
	}
	struct val *rv = NULL;
	if (n->kind >= 0) {
		/* a rule, merged with the rules below it (p[x] := ... beside p.q := ...) */
		if (rule_value(E, n, &rv) < 0)
			return -1;
		if (n->nkids == 0 || (rv && rv->k != V_OBJ)) {
			*out = rv;
			return 0;
		}
		base = NULL;
	}
	struct vlist keys = {0}, vals = {0};
	if (base && base->k == V_OBJ) {
		v_force(base);
		for (uint32_t j = 0; j < base->n; j++) {
			struct val *bk = base->a[j];
			if (bk->k == V_STR && rego_node_find(n, bk->s))
				continue;
			if (vl_push(E, &keys, bk) < 0 || vl_push(E, &vals, base->ov[j]) < 0)
				return -1;
		}
	}
	for (uint32_t j = 0; j < n->nkids; j++) {
		struct node *c = n->kids[j];
		struct val *cv, *cb = base && base->k == V_OBJ
		                          ? v_obj_get_str(base, c->name, strlen(c->name))
		                          : NULL;
		if (c->kind == RK_FUNC)
			continue;
		if (node_value(E, c, cb, &cv) < 0)
			return -1;
		if (cv == NULL)
			continue;
		struct val *kv = v_str_ref(E->A, c->name, strlen(c->name));
		if (kv == NULL || vl_push(E, &keys, kv) < 0 || vl_push(E, &vals, cv) < 0)
			return oom(E);
	}
	int dup;
	*out = v_obj_build(E->A, keys.v, vals.v, keys.n, &dup);
	if (*out && rv)
		*out = bi_obj_merge(E, *out, rv);
	return *out ? 0 : oom(E);
}

/* ------------------------------------------------------------------ rules */

struct rule_st {
	struct node *n;
	struct rule *d;
	struct val *res; /* complete: the value so far */
	struct vlist keys, vals;
	struct val *tuple; /* multi-value rules with keys: the current place */
	int any;           /* this definition produced a solution */
};

static int rule_obj_val(struct ev *E, struct val *v, void *arg)
{
	struct rule_st *r = arg;
	return vl_push(E, &r->vals, v);
}

static int rule_key(struct ev *E, struct val *v, void *arg)
{
	struct rule_st *r = arg;
	if (r->n->kind == RK_SET)
		return vl_push(E, &r->keys, v);
	size_t before = r->vals.n;
	if (r->d->value == NULL) {
		if (vl_push(E, &r->vals, &rv_true) < 0)
			return -1;
	} else if (eval_term(E, r->d->value, rule_obj_val, r) < 0) {
		return -1;
	}
	for (size_t j = before; j < r->vals.n; j++)
		if (vl_push(E, &r->keys, v) < 0)
			return -1;
	return 0;
}

/* p[a][b] contains x: one member at the place the key tuple names */
static int set_member(struct ev *E, struct val *v, void *arg)
{
	struct rule_st *r = arg;
	if (vl_push(E, &r->keys, r->tuple) < 0 || vl_push(E, &r->vals, v) < 0)
		return -1;
	return 0;
}

/* p[a][b]...: the keys of one solution, then (as an array) the value's place */
struct okeys_st {
	struct rule_st *r;
	uint32_t i;
	struct val **ks;
};

static int obj_key_next(struct ev *E, struct val *v, void *arg)
{
	struct okeys_st *o = arg;
	o->ks[o->i] = v;
	if (o->i + 1 < o->r->d->nkeys) {
		struct okeys_st n = *o;
		n.i++;
		return eval_term(E, o->r->d->keys[n.i], obj_key_next, &n);
	}
	struct val *tuple = v_arr(E->A, o->r->d->nkeys);
	if (tuple == NULL)
		return oom(E);
	memcpy(tuple->a, o->ks, o->r->d->nkeys * sizeof(*o->ks));
	if (o->r->n->kind == RK_SET) {
		o->r->tuple = tuple;
		return eval_term(E, o->r->d->key, set_member, o->r);
	}
	return rule_key(E, tuple, o->r);
}

struct nest_ctx {
	struct val **tuples;
	uint32_t depth;
};

static int nest_cmp(const void *x, const void *y, void *arg)
{
	struct nest_ctx *c = arg;
	size_t i = *(const size_t *)x, j = *(const size_t *)y;
	return v_cmp(c->tuples[i]->a[c->depth], c->tuples[j]->a[c->depth]);
}

/* Nested objects from (key tuple, value) pairs; the same place with two values conflicts. */
static struct val *nest_build(struct ev *E, struct val **tuples, struct val **vals, size_t n,
                              uint32_t depth, uint32_t nk, int leaf_set, int *conflict)
{
	size_t *idx = ar_alloc(E->A, (n + 1) * sizeof(*idx));
	struct val **ks = ar_alloc(E->A, (n + 1) * sizeof(*ks)),
	           **vs = ar_alloc(E->A, (n + 1) * sizeof(*vs));
	struct val **st = ar_alloc(E->A, (n + 1) * sizeof(*st)),
	           **sv = ar_alloc(E->A, (n + 1) * sizeof(*sv));
	size_t m = 0;
	if (!idx || !ks || !vs || !st || !sv)
		return NULL;
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	struct nest_ctx c = {tuples, depth};
	qsort_r(idx, n, sizeof(*idx), nest_cmp, &c);
	for (size_t i = 0; i < n;) {
		size_t j = i;
		struct val *key = tuples[idx[i]]->a[depth];
		while (j < n && v_eq(tuples[idx[j]]->a[depth], key))
			j++;
		struct val *v;
		if (depth + 1 == nk && leaf_set) {
			for (size_t x = i; x < j; x++)
				sv[x - i] = vals[idx[x]];
			if ((v = v_set_build(E->A, sv, j - i)) == NULL)
				return NULL;
		} else if (depth + 1 == nk) {
			v = vals[idx[i]];
			for (size_t x = i + 1; x < j; x++)
				if (!v_eq(vals[idx[x]], v)) {
					*conflict = 1;
					return NULL;
				}
		} else {
			for (size_t x = i; x < j; x++) {
				st[x - i] = tuples[idx[x]];
				sv[x - i] = vals[idx[x]];
			}
			v = nest_build(E, st, sv, j - i, depth + 1, nk, leaf_set, conflict);
			if (v == NULL)
				return NULL;
		}
		ks[m] = key;
		vs[m++] = v;
		i = j;
	}
	int dup;
	return v_obj_build(E->A, ks, vs, m, &dup);
}

static int rule_complete_val(struct ev *E, struct val *v, void *arg)
{
	struct rule_st *r = arg;
	r->any = 1;
	if (r->res == NULL) {
		r->res = v;
		return 0;
	}
	if (!v_eq(r->res, v))
		return ev_fail(E, REGO_ERR_CONFLICT,
		               "eval_conflict_error: complete rules must not produce multiple "
		               "outputs (rule %s produced conflicting values)",
		               r->n->path);
	return 0;
}

static int rule_solution(struct ev *E, void *arg)
{
	struct rule_st *r = arg;
	if ((r->n->kind == RK_SET && r->d->nkeys == 0) ||
	    (r->n->kind == RK_OBJ && r->d->nkeys == 1))
		return eval_term(E, r->d->key, rule_key, r);
	if (r->n->kind == RK_OBJ || r->n->kind == RK_SET) {
		struct okeys_st o = {r, 0, ar_alloc(E->A, r->d->nkeys * sizeof(struct val *))};
		if (o.ks == NULL)
			return oom(E);
		return eval_term(E, r->d->keys[0], obj_key_next, &o);
	}
	if (r->d->value == NULL)
		return rule_complete_val(E, &rv_true, r);
	return eval_term(E, r->d->value, rule_complete_val, r);
}

static void explain_add(struct ev *E, struct node *n)
{
	if (E->best_lit == NULL)
		return;
	const struct expr *l = E->best_lit;
	int detail = E->best_detail[0] && strcmp(E->best_detail, "false") != 0;
	char line[1200];
	int len = snprintf(
	    line, sizeof(line), "%s%s: %.*s was %s%s%s%s", E->explain_len ? "; " : "", n->name,
	    (int)(l->srclen > 400 ? 400 : l->srclen), l->src, l->neg ? "true" : "false",
	    detail ? " (" : "", detail ? E->best_detail : "", detail ? ")" : "");
	if (len < 0)
		return;
	size_t ll = strlen(line);
	char *ne = realloc(E->explain, E->explain_len + ll + 1);
	if (ne == NULL)
		return;
	memcpy(ne + E->explain_len, line, ll + 1);
	E->explain = ne;
	E->explain_len += ll;
}

/* Evaluate every definition of the rule at n (else chains stop at the first branch with a
 * solution). top_explain records why each failing definition failed. */
static int compute_rule(struct ev *E, struct node *n, struct val **out, int top_explain)
{
	struct val **saved = E->slots;
	int save_expl = E->explaining;
	struct body *save_body = E->explain_body;
	struct rule_st r = {.n = n};
	int rc = 0;
	*out = NULL;
	for (uint32_t j = 0; j < n->nrules && rc == 0; j++) {
		for (struct rule *d = n->rules[j]; d && rc == 0; d = d->els) {
			E->slots = ar_alloc(E->A, ((size_t)d->nslots + 1) * sizeof(*E->slots));
			if (E->slots == NULL) {
				rc = oom(E);
				break;
			}
			r.d = d;
			r.any = 0;
			E->explaining = top_explain;
			E->explain_body = d->body;
			E->best_idx = 0;
			E->best_lit = NULL;
			E->best_detail[0] = '\0';
			rc = eval_body(E, d->body, 0, rule_solution, &r);
			E->explaining = 0;
			if (rc < 0)
				break;
			if (r.any)
				break;
			if (top_explain && d->body->n > 0)
				explain_add(E, n);
		}
	}
	E->explaining = save_expl;
	E->explain_body = save_body;
	if (rc < 0) {
		E->slots = saved;
		return -1;
	}
	if (n->kind == RK_SET && n->nkeys == 0) {
		*out = v_set_build(E->A, r.keys.v, r.keys.n);
		rc = *out ? 0 : oom(E);
	} else if ((n->kind == RK_OBJ && n->nkeys > 1) || n->kind == RK_SET) {
		int conflict = 0;
		*out = nest_build(E, r.keys.v, r.vals.v, r.keys.n, 0, (uint32_t)n->nkeys,
		                  n->kind == RK_SET, &conflict);
		if (*out == NULL)
			rc = conflict
			         ? ev_fail(
			               E, REGO_ERR_CONFLICT,
			               "eval_conflict_error: object keys must be unique (rule %s)",
			               n->path)
			         : oom(E);
	} else if (n->kind == RK_OBJ) {
		int dup;
		*out = v_obj_build(E->A, r.keys.v, r.vals.v, r.keys.n, &dup);
		if (*out == NULL)
			rc = dup ? ev_fail(
			               E, REGO_ERR_CONFLICT,
			               "eval_conflict_error: object keys must be unique (rule %s)",
			               n->path)
			         : oom(E);
	} else {
		*out = r.res;
		if (r.res == NULL && n->deflt) {
			E->slots =
			    ar_alloc(E->A, ((size_t)n->deflt->nslots + 1) * sizeof(*E->slots));
			r.d = n->deflt;
			rc = E->slots ? eval_term(E, n->deflt->value, rule_complete_val, &r)
			              : oom(E);
			*out = r.res;
		}
	}
	E->slots = saved;
	return rc < 0 ? -1 : 0;
}

static int rule_value(struct ev *E, struct node *n, struct val **out)
{
	uint8_t st = E->memo_st[n->id];
	if (st == 2) {
		*out = E->memo[n->id];
		return 0;
	}
	if (st == 1)
		return ev_fail(E, REGO_ERR_RECURSION, "rego_recursion_error: rule %s is recursive",
		               n->path);
	E->memo_st[n->id] = 1;
	if (++E->depth > MAX_EVAL_DEPTH) {
		E->depth--;
		return ev_fail(E, REGO_ERR_BUDGET, "eval_cancel_error: rules nested too deeply");
	}
	int rc = compute_rule(E, n, out, 0);
	E->depth--;
	if (rc < 0) {
		E->memo_st[n->id] = 0;
		return -1;
	}
	E->memo[n->id] = *out;
	E->memo_st[n->id] = 2;
	return 0;
}

/* ------------------------------------------------------------------ unification */

struct bind_st {
	struct term *var;
	k_fn k;
	void *arg;
};

static int bind_cont(struct ev *E, struct val *v, void *arg)
{
	struct bind_st *b = arg;
	struct val **slot = &E->slots[b->var->slot];
	if (*slot)
		return v_eq(*slot, v) ? b->k(E, b->arg) : 0;
	*slot = v;
	int rc = b->k(E, b->arg);
	*slot = NULL;
	return rc;
}

struct seq_st {
	struct term *pat;
	struct val *v;
	uint32_t i;
	k_fn k;
	void *arg;
};

static int unify_arr_next(struct ev *E, void *arg)
{
	struct seq_st *s = arg;
	if (s->i == s->pat->n)
		return s->k(E, s->arg);
	struct seq_st n = *s;
	n.i++;
	return unify_val(E, s->pat->kids[s->i], v_item(s->v, s->i), unify_arr_next, &n);
}

static int unify_obj_key(struct ev *E, struct val *key, void *arg);

static int unify_obj_next(struct ev *E, void *arg)
{
	struct seq_st *s = arg;
	if (s->i == s->pat->n)
		return s->k(E, s->arg);
	return eval_term(E, s->pat->kids[s->i], unify_obj_key, s);
}

static int unify_obj_key(struct ev *E, struct val *key, void *arg)
{
	struct seq_st *s = arg;
	struct val *child = v_get(s->v, key);
	if (child == NULL)
		return 0;
	struct seq_st n = *s;
	n.i++;
	return unify_val(E, s->pat->vals[s->i], child, unify_obj_next, &n);
}

struct eqv_st {
	struct val *v;
	k_fn k;
	void *arg;
};

static int eq_value(struct ev *E, struct val *x, void *arg)
{
	struct eqv_st *q = arg;
	return v_eq(x, q->v) ? q->k(E, q->arg) : 0;
}

/* Match a term holding (possibly) unbound variables against a value. */
static int unify_val(struct ev *E, struct term *pat, struct val *v, k_fn k, void *arg)
{
	if (step(E) < 0)
		return -1;
	switch (pat->k) {
	case TK_VAL:
		return v_eq(pat->v, v) ? k(E, arg) : 0;
	case TK_VAR:
		if (pat->root == ROOT_NONE) {
			struct val **slot = &E->slots[pat->slot];
			if (*slot)
				return v_eq(*slot, v) ? k(E, arg) : 0;
			*slot = v;
			int rc = k(E, arg);
			*slot = NULL;
			return rc;
		}
		break;
	case TK_ARR:
		if (is_pattern(E, pat)) {
			if (v->k != V_ARR || v->n != pat->n)
				return 0;
			struct seq_st s = {pat, v, 0, k, arg};
			return unify_arr_next(E, &s);
		}
		break;
	case TK_OBJ:
		if (is_pattern(E, pat)) {
			if (v->k != V_OBJ || v->n != pat->n)
				return 0;
			struct seq_st s = {pat, v, 0, k, arg};
			return unify_obj_next(E, &s);
		}
		break;
	default:
		break;
	}
	struct eqv_st q = {v, k, arg};
	return eval_term(E, pat, eq_value, &q);
}

struct uni_st {
	struct term *a, *b;
	struct val *va;
	k_fn k;
	void *arg;
	uint32_t i;
};

static int unify_rhs(struct ev *E, struct val *vb, void *arg)
{
	struct uni_st *u = arg;
	if (E->explaining && E->cur_expr == E->best_lit && E->expl_cmp) {
		char *j = v_to_json_text(u->va);
		snprintf(E->best_detail, sizeof(E->best_detail), "%s", j ? j : "?");
		free(j);
	}
	return v_eq(u->va, vb) ? u->k(E, u->arg) : 0;
}

static int unify_lhs(struct ev *E, struct val *va, void *arg)
{
	struct uni_st *u = arg;
	struct uni_st n = *u;
	n.va = va;
	return eval_term(E, u->b, unify_rhs, &n);
}

struct pv_st {
	struct term *pat;
	k_fn k;
	void *arg;
};

static int pattern_value(struct ev *E, struct val *v, void *arg)
{
	struct pv_st *p = arg;
	return unify_val(E, p->pat, v, p->k, p->arg);
}

static int unify_pairs_next(struct ev *E, void *arg)
{
	struct uni_st *u = arg;
	if (u->i == u->a->n)
		return u->k(E, u->arg);
	struct uni_st n = *u;
	n.i++;
	return unify_terms(E, u->a->kids[u->i], u->b->kids[u->i], unify_pairs_next, &n);
}

/* objects: match b's values to a's keys (both literal objects with constant keys) */
static int unify_objs_next(struct ev *E, void *arg)
{
	struct uni_st *u = arg;
	if (u->i == u->a->n)
		return u->k(E, u->arg);
	struct term *ka = u->a->kids[u->i];
	for (uint32_t j = 0; j < u->b->n; j++) {
		struct term *kb = u->b->kids[j];
		if (ka->k == TK_VAL && kb->k == TK_VAL && v_eq(ka->v, kb->v)) {
			struct uni_st n = *u;
			n.i++;
			return unify_terms(E, u->a->vals[u->i], u->b->vals[j], unify_objs_next, &n);
		}
	}
	return 0;
}

static int const_keys(const struct term *t)
{
	for (uint32_t i = 0; i < t->n; i++)
		if (t->kids[i]->k != TK_VAL)
			return 0;
	return 1;
}

static int unify_terms(struct ev *E, struct term *a, struct term *b, k_fn k, void *arg)
{
	if (unbound(E, a)) {
		if (unbound(E, b))
			return ev_fail(E, REGO_ERR_UNSAFE,
			               "rego_unsafe_var_error: var %s is unsafe (%d:%d)", b->name,
			               b->line, b->col);
		struct bind_st s = {a, k, arg};
		return eval_term(E, b, bind_cont, &s);
	}
	if (unbound(E, b)) {
		struct bind_st s = {b, k, arg};
		return eval_term(E, a, bind_cont, &s);
	}
	int pa = is_pattern(E, a), pb = is_pattern(E, b);
	if (pa && pb) {
		if (a->k == TK_ARR && b->k == TK_ARR) {
			if (a->n != b->n)
				return 0;
			struct uni_st u = {a, b, NULL, k, arg, 0};
			return unify_pairs_next(E, &u);
		}
		if (a->k == TK_OBJ && b->k == TK_OBJ && const_keys(a) && const_keys(b)) {
			if (a->n != b->n)
				return 0;
			struct uni_st u = {a, b, NULL, k, arg, 0};
			return unify_objs_next(E, &u);
		}
		if (a->k != b->k)
			return 0;
	}
	if (pa) {
		struct pv_st p = {a, k, arg};
		return eval_term(E, b, pattern_value, &p);
	}
	if (pb) {
		struct pv_st p = {b, k, arg};
		return eval_term(E, a, pattern_value, &p);
	}
	struct uni_st u = {a, b, NULL, k, arg, 0};
	return eval_term(E, a, unify_lhs, &u);
}

/* ------------------------------------------------------------------ expressions */

struct expr_st {
	struct expr *e;
	k_fn k;
	void *arg;
	struct val *key;
};

static int found_k(struct ev *E, void *arg)
{
	*(int *)arg = 1;
	return 1;
}

static int truthy(struct ev *E, struct val *v, void *arg)
{
	struct expr_st *s = arg;
	if (E->qvals && E->qbody_expr == s->e)
		*E->qvals = v;
	if (v->k == V_BOOL && !v->b) {
		if (E->explaining && E->cur_expr == E->best_lit && E->best_detail[0] == '\0')
			snprintf(E->best_detail, sizeof(E->best_detail), "false");
		return 0;
	}
	return s->k(E, s->arg);
}

static int somein_val(struct ev *E, void *arg)
{
	struct expr_st *s = arg;
	return s->k(E, s->arg);
}

static int somein_key(struct ev *E, void *arg)
{
	struct expr_st *s = arg;
	struct expr_st n = *s;
	return unify_val(E, s->e->value, s->key, somein_val, &n);
}

static int somein_coll(struct ev *E, struct val *coll, void *arg)
{
	struct expr_st *s = arg;
	struct expr *e = s->e;
	if (coll->k != V_ARR && coll->k != V_OBJ && coll->k != V_SET)
		return 0;
	v_force(coll);
	for (uint32_t j = 0; j < coll->n; j++) {
		struct val *key, *val;
		if (coll->k == V_ARR) {
			if ((key = v_int(E->A, j)) == NULL)
				return oom(E);
			val = coll->a[j];
		} else if (coll->k == V_SET) {
			key = val = coll->a[j];
		} else {
			key = coll->a[j];
			val = coll->ov[j];
		}
		int rc;
		if (e->key) {
			struct expr_st n = *s;
			n.key = val;
			rc = unify_val(E, e->key, key, somein_key, &n);
		} else {
			rc = unify_val(E, e->value, val, somein_val, s);
		}
		if (rc)
			return rc;
	}
	return 0;
}

static int every_coll(struct ev *E, struct val *coll, void *arg)
{
	struct expr_st *s = arg;
	struct expr *e = s->e;
	if (coll->k != V_ARR && coll->k != V_OBJ && coll->k != V_SET)
		return 0;
	v_force(coll);
	for (uint32_t j = 0; j < coll->n; j++) {
		struct val *key, *val;
		if (coll->k == V_ARR) {
			if ((key = v_int(E->A, j)) == NULL)
				return oom(E);
			val = coll->a[j];
		} else if (coll->k == V_SET) {
			key = val = coll->a[j];
		} else {
			key = coll->a[j];
			val = coll->ov[j];
		}
		if (e->key)
			E->slots[e->key->slot] = key;
		E->slots[e->value->slot] = val;
		int found = 0;
		int rc = eval_body(E, e->body, 0, found_k, &found);
		if (e->key)
			E->slots[e->key->slot] = NULL;
		E->slots[e->value->slot] = NULL;
		if (rc < 0)
			return -1;
		if (!found)
			return 0;
	}
	return s->k(E, s->arg);
}

/* `with`: evaluate the replacement values, then the expression under them */
/* a copy of doc with the value at path (constant strings) replaced */
static struct val *set_path(struct ev *E, struct val *doc, struct term **path, uint32_t n,
                            struct val *v)
{
	if (n == 0)
		return v;
	struct val *key = path[0]->v;
	struct val *child = doc && doc->k == V_OBJ ? v_get(doc, key) : NULL;
	struct val *nc = set_path(E, child, path + 1, n - 1, v);
	if (nc == NULL)
		return NULL;
	struct vlist ks = {0}, vs = {0};
	if (doc && doc->k == V_OBJ) {
		v_force(doc);
		for (uint32_t j = 0; j < doc->n; j++)
			if (!v_eq(doc->a[j], key) &&
			    (vl_push(E, &ks, doc->a[j]) < 0 || vl_push(E, &vs, doc->ov[j]) < 0))
				return NULL;
	}
	if (vl_push(E, &ks, key) < 0 || vl_push(E, &vs, nc) < 0)
		return NULL;
	int dup;
	return v_obj_build(E->A, ks.v, vs.v, ks.n, &dup);
}

static int with_apply(struct ev *E, struct with_st *w)
{
	struct with_state st;
	with_save(E, &st);
	size_t nn = (size_t)E->P->nnodes + 1;
	st.memo = ar_alloc(E->A, nn * sizeof(*st.memo));
	st.memo_st = ar_alloc(E->A, nn);
	if (st.memo == NULL || st.memo_st == NULL)
		return oom(E);
	for (uint32_t j = 0; j < w->e->nwith; j++) {
		struct with *wj = &w->e->with[j];
		if (wj->name) {
			struct named_mock *nm = ar_alloc(E->A, sizeof(*nm));
			if (nm == NULL)
				return oom(E);
			*nm = (struct named_mock){
			    wj->name, {wj->vfn, wj->vbi, w->vals[j], 1}, st.name_mock};
			st.name_mock = nm;
			continue;
		}
		if (wj->fn || wj->bi >= 0) {
			size_t n = wj->fn ? nn : (size_t)rego_builtin_count();
			struct mock **slot = wj->fn ? &st.fn_mock : &st.bi_mock;
			struct mock *m = ar_alloc(E->A, n * sizeof(*m));
			if (m == NULL)
				return oom(E);
			if (*slot)
				memcpy(m, *slot, n * sizeof(*m));
			m[wj->fn ? (size_t)wj->fn->id : (size_t)wj->bi] =
			    (struct mock){wj->vfn, wj->vbi, w->vals[j], 1};
			*slot = m;
			continue;
		}
		struct term *t = w->e->with[j].target;
		struct term *h = t->k == TK_REF ? t->kids[0] : t;
		struct term **path = t->k == TK_REF ? t->kids + 1 : NULL;
		uint32_t np = t->k == TK_REF ? t->n - 1 : 0;
		struct val *v = w->vals[j];
		if (h->root == ROOT_INPUT) {
			st.input = set_path(E, np ? st.input : NULL, path, np, v);
			if (st.input == NULL)
				return oom(E);
			continue;
		}
		st.data = set_path(E, st.data, path, np, v);
		if (st.data == NULL)
			return oom(E);
		struct node *n = E->P->root;
		for (uint32_t x = 0; x < np && n; x++)
			n = rego_node_find(n, path[x]->v->s);
		if (n) {
			struct val **no = ar_alloc(E->A, nn * sizeof(*no));
			if (no == NULL)
				return oom(E);
			if (st.node_over)
				memcpy(no, st.node_over, nn * sizeof(*no));
			no[n->id] = v;
			st.node_over = no;
		}
	}
	w->inner = st;
	return 0;
}

static int with_cont(struct ev *E, void *arg)
{
	struct with_st *w = arg;
	with_load(E, &w->outer);
	int rc = w->k(E, w->arg);
	with_load(E, &w->inner);
	return rc;
}

static int eval_expr_plain(struct ev *E, struct expr *e, k_fn k, void *arg);

static int with_value(struct ev *E, struct val *v, void *arg)
{
	struct with_st *w = arg;
	struct with_st n = *w;
	n.vals[w->i] = v;
	n.i++;
	/* a function replaced by a function has no value to evaluate */
	while (n.i < w->e->nwith && (w->e->with[n.i].vfn || w->e->with[n.i].vbi >= 0))
		n.vals[n.i++] = NULL;
	if (n.i < w->e->nwith)
		return eval_term(E, w->e->with[n.i].value, with_value, &n);
	with_save(E, &n.outer);
	if (with_apply(E, &n) < 0)
		return -1;
	with_load(E, &n.inner);
	int rc = eval_expr_plain(E, n.e, with_cont, &n);
	with_load(E, &n.outer);
	return rc;
}

static int eval_expr_pos(struct ev *E, struct expr *e, k_fn k, void *arg)
{
	struct expr_st s = {e, k, arg, NULL};
	switch (e->k) {
	case E_TERM:
		return eval_term(E, e->a, truthy, &s);
	case E_UNIFY:
	case E_ASSIGN:
		if (E->qvals && E->qbody_expr == e)
			*E->qvals = &rv_true;
		return unify_terms(E, e->a, e->b, k, arg);
	case E_SOME:
		return k(E, arg);
	case E_SOMEIN:
		return eval_term(E, e->coll, somein_coll, &s);
	case E_EVERY:
		return eval_term(E, e->coll, every_coll, &s);
	case E_BODY:
		return eval_body(E, e->body, 0, k, arg);
	}
	return 0;
}

static int eval_expr_plain(struct ev *E, struct expr *e, k_fn k, void *arg)
{
	if (!e->neg)
		return eval_expr_pos(E, e, k, arg);
	int found = 0, save = E->explaining;
	E->explaining = 0;
	int rc = eval_expr_pos(E, e, found_k, &found);
	E->explaining = save;
	if (rc < 0)
		return -1;
	return found ? 0 : k(E, arg);
}

static int eval_expr(struct ev *E, struct expr *e, k_fn k, void *arg)
{
	if (e->nwith == 0)
		return eval_expr_plain(E, e, k, arg);
	struct val *vals[16];
	if (e->nwith > 16)
		return ev_fail(E, REGO_ERR_TYPE, "rego_type_error: too many with modifiers");
	struct with_st w = {.e = e, .vals = vals, .k = k, .arg = arg};
	if (e->with[0].vfn || e->with[0].vbi >= 0)
		return with_value(E, NULL, &w);
	return eval_term(E, e->with[0].value, with_value, &w);
}

struct body_st {
	struct body *b;
	uint32_t i;
	k_fn k;
	void *arg;
};

static int body_next(struct ev *E, void *arg)
{
	struct body_st *s = arg;
	return eval_body(E, s->b, s->i + 1, s->k, s->arg);
}

static int is_cmp_call(const struct term *t)
{
	if (t->k != TK_CALL || t->outarg || t->bi < 0)
		return 0;
	const char *n = t->name;
	return !strcmp(n, "equal") || !strcmp(n, "neq") || !strcmp(n, "lt") || !strcmp(n, "lte") ||
	       !strcmp(n, "gt") || !strcmp(n, "gte") || !strcmp(n, "internal.member_2");
}

static int eval_body(struct ev *E, struct body *b, uint32_t i, k_fn k, void *arg)
{
	if (i == b->n)
		return k(E, arg);
	if (step(E) < 0)
		return -1;
	struct expr *e = b->e[i];
	struct body_st s = {b, i, k, arg};
	struct expr *save_cur = E->cur_expr;
	int save_cmp = E->expl_cmp;
	if (E->explaining && b == E->explain_body && i >= E->best_idx) {
		if (i > E->best_idx || e != E->best_lit)
			E->best_detail[0] = '\0';
		E->best_idx = i;
		E->best_lit = e;
		E->cur_expr = e;
		E->expl_cmp = (e->k == E_TERM && is_cmp_call(e->a)) || e->k == E_UNIFY;
	}
	if (++E->depth > MAX_EVAL_DEPTH) {
		E->depth--;
		return ev_fail(E, REGO_ERR_BUDGET,
		               "eval_cancel_error: evaluation nested too deeply");
	}
	int rc = eval_expr(E, e, body_next, &s);
	E->depth--;
	E->cur_expr = save_cur;
	E->expl_cmp = save_cmp;
	return rc;
}

/* ------------------------------------------------------------------ entry points */

int ev_init(struct ev *E, const struct rego_policy *P, const struct rego_eval_opts *o,
            struct arena *A, struct err *err)
{
	static const struct rego_eval_opts none;
	memset(E, 0, sizeof(*E));
	E->P = P;
	E->A = A;
	E->o = o ? o : &none;
	E->err = err;
	E->strict = E->o->strict_builtin_errors;
	E->max_steps = E->o->max_steps ? E->o->max_steps : REGO_DEFAULT_MAX_STEPS;
	uint64_t tmo = E->o->timeout_us ? E->o->timeout_us : REGO_DEFAULT_TIMEOUT_US;
	E->deadline_ns = mono_ns() + (tmo > UINT64_MAX / 4000 ? UINT64_MAX / 4 : tmo * 1000u);
	A->limit = E->o->max_memory ? E->o->max_memory : REGO_DEFAULT_MAX_MEMORY;
	size_t nn = P ? (size_t)P->nnodes + 1 : 1;
	E->memo = ar_alloc(A, nn * sizeof(*E->memo));
	E->memo_st = ar_alloc(A, nn);
	if (E->memo == NULL || E->memo_st == NULL)
		return oom(E);
	if (E->o->input_term) {
		struct term *t =
		    rego_parse_term(A, "input", E->o->input_term, strlen(E->o->input_term), err);
		if (t == NULL)
			return -1;
		if (!rego_fold_constants(A, t))
			return ev_fail(E, REGO_ERR_TYPE,
			               "rego_type_error: input term is not a constant");
		E->input = t->v;
	} else if (E->o->input) {
		E->input = v_from_json(A, (json_t *)E->o->input);
	}
	if (E->o->data_term) {
		struct term *t =
		    rego_parse_term(A, "data", E->o->data_term, strlen(E->o->data_term), err);
		if (t == NULL)
			return -1;
		if (!rego_fold_constants(A, t))
			return ev_fail(E, REGO_ERR_TYPE,
			               "rego_type_error: data term is not a constant");
		E->data = t->v;
	} else if (E->o->data) {
		E->data = v_from_json(A, (json_t *)E->o->data);
	}
	if (E->input == NULL && (E->o->input || E->o->input_term))
		return oom(E);
	return 0;
}

void ev_done(struct ev *E)
{
	for (size_t i = 0; i < E->nkeep; i++)
		json_decref(E->keep[i]);
	free(E->keep);
	free(E->explain);
	E->keep = NULL;
	E->explain = NULL;
}

struct get_st {
	struct val *v;
};

static int got_value(struct ev *E, struct val *v, void *arg)
{
	((struct get_st *)arg)->v = v;
	return 0;
}

int ev_path(struct ev *E, struct term **path, uint32_t n, int explain, struct val **out)
{
	*out = NULL;
	struct node *node = E->P ? E->P->root : NULL;
	for (uint32_t i = 0; i < n && node; i++)
		node = rego_node_find(node, path[i]->v->s);
	if (explain && node && node->kind >= 0 && node->kind != RK_FUNC) {
		/* the rule itself, with explanations of its failing definitions */
		if (E->data) {
			/* base data at the rule's path is shadowed by the rule anyway */
		}
		if (compute_rule(E, node, out, 1) < 0)
			return -1;
		return 0;
	}
	struct term head = {.k = TK_VAR, .root = ROOT_DATA, .slot = -1};
	struct term **kids = ar_alloc(E->A, ((size_t)n + 1) * sizeof(*kids));
	if (kids == NULL)
		return oom(E);
	kids[0] = &head;
	memcpy(kids + 1, path, n * sizeof(*path));
	struct term ref = {.k = TK_REF, .kids = kids, .n = n + 1};
	struct get_st g = {NULL};
	struct node *root = E->P ? E->P->root : NULL;
	int rc;
	if (root)
		rc = walk_data(E, root, E->data, &ref, 1, got_value, &g);
	else
		rc = E->data ? walk_val(E, E->data, &ref, 1, got_value, &g) : 0;
	if (rc < 0)
		return -1;
	*out = g.v;
	return 0;
}

struct q_st {
	int (*on_solution)(struct ev *E, void *ctx);
	void *ctx;
};

static int q_solution(struct ev *E, void *arg)
{
	struct q_st *q = arg;
	return q->on_solution(E, q->ctx);
}

int ev_query(struct ev *E, struct query *q, int (*on_solution)(struct ev *E, void *ctx), void *ctx)
{
	struct q_st s = {on_solution, ctx};
	E->slots = ar_alloc(E->A, ((size_t)q->nslots + 1) * sizeof(*E->slots));
	if (E->slots == NULL)
		return oom(E);
	int rc = eval_body(E, q->body, 0, q_solution, &s);
	return rc < 0 ? -1 : 0;
}

/* query expression values: the value of each top-level expression of the current solution */
int ev_query_exprs(struct ev *E, struct query *q, struct val **vals,
                   int (*on_solution)(struct ev *E, void *ctx), void *ctx);

struct qe_st {
	struct query *q;
	struct val **vals;
	uint32_t i;
	int (*on_solution)(struct ev *E, void *ctx);
	void *ctx;
};

static int qe_next(struct ev *E, void *arg)
{
	struct qe_st *s = arg;
	if (s->i == s->q->body->n)
		return s->on_solution(E, s->ctx);
	struct qe_st n = *s;
	struct expr *e = s->q->body->e[s->i];
	n.i++;
	struct val **save_q = E->qvals;
	struct expr *save_e = E->qbody_expr;
	E->qvals = &s->vals[s->i];
	E->qbody_expr = e;
	s->vals[s->i] = &rv_true;
	int rc = eval_expr(E, e, qe_next, &n);
	E->qvals = save_q;
	E->qbody_expr = save_e;
	return rc;
}

int ev_query_exprs(struct ev *E, struct query *q, struct val **vals,
                   int (*on_solution)(struct ev *E, void *ctx), void *ctx)
{
	E->slots = ar_alloc(E->A, ((size_t)q->nslots + 1) * sizeof(*E->slots));
	if (E->slots == NULL)
		return oom(E);
	struct qe_st s = {q, vals, 0, on_solution, ctx};
	int rc = qe_next(E, &s);
	return rc < 0 ? -1 : 0;
}
