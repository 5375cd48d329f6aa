/*
 * builtins: the lookup of built-in functions by name over the four files' tables (this
 * file's, then builtins_str.c's, builtins_misc.c's and builtins_time.c's; a builtin's number
 * is its place in that order), and the built-ins on comparisons, arithmetic, membership,
 * numbers, aggregates, types, sets, objects, arrays and bits. Strings, sprintf, encodings,
 * regular expressions and globs are in builtins_str.c; digests and HMACs, print and trace,
 * randomness, URL queries, CIDRs, graphs, UUIDs, io.jwt.decode and OPA's deprecated casts in
 * builtins_misc.c; time, units and semantic versions in builtins_time.c.
 *
 * A builtin returns 0 with *out set (NULL: undefined) or -1 after ev_fail(); type errors carry
 * REGO_ERR_EVAL_TYPE (eval_type_error) and other failures REGO_ERR_BUILTIN
 * (eval_builtin_error), which call_builtin() in eval.c turns into "undefined" unless the
 * caller set strict_builtin_errors, as OPA does.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rego/builtins.h"

/* ------------------------------------------------------------------ helpers */

int bi_oom(struct ev *E)
{
	return ev_fail(E, REGO_ERR_INTERNAL, "eval_internal_error: out of memory");
}

int bi_want(struct ev *E, const char *fn, int argi, struct val *v, unsigned kinds)
{
	if (kinds & (1u << v->k))
		return 0;
	char want[128] = "";
	static const char *names[] = {"null",  "boolean", "number", "string",
	                              "array", "object",  "set"};
	int n = 0;
	for (int k = 0; k < 7; k++)
		if (kinds & (1u << k))
			n++;
	if (n > 1)
		strcat(want, "one of {");
	int first = 1;
	static const int order[] = {V_ARR, V_BOOL, V_NULL, V_NUM, V_OBJ, V_SET, V_STR};
	for (int i = 0; i < 7; i++)
		if (kinds & (1u << order[i])) {
			if (!first)
				strcat(want, ", ");
			strcat(want, names[order[i]]);
			first = 0;
		}
	if (n > 1)
		strcat(want, "}");
	ev_type_err(E, fn, argi, want, v);
	return -1;
}

int bi_int_arg(struct ev *E, const char *fn, int argi, struct val *v, int64_t *out)
{
	if (bi_want(E, fn, argi, v, K_NUM) < 0)
		return -1;
	if (!v_num_is_int(v, out))
		return ev_fail(E, REGO_ERR_EVAL_TYPE,
		               "eval_type_error: %s: operand %d must be an integer", fn, argi);
	return 0;
}

struct val *bi_arr_of(struct ev *E, struct val **items, size_t n)
{
	struct val *a = v_arr(E->A, (uint32_t)n);
	if (a && n)
		memcpy(a->a, items, n * sizeof(*items));
	return a;
}

/* ------------------------------------------------------------------ comparisons, arithmetic */

static int bi_equal(struct ev *E, struct val **a, struct val **out)
{
	*out = v_bool(v_eq(a[0], a[1]));
	return 0;
}
static int bi_neq(struct ev *E, struct val **a, struct val **out)
{
	*out = v_bool(!v_eq(a[0], a[1]));
	return 0;
}
static int bi_lt(struct ev *E, struct val **a, struct val **out)
{
	*out = v_bool(v_cmp(a[0], a[1]) < 0);
	return 0;
}
static int bi_lte(struct ev *E, struct val **a, struct val **out)
{
	*out = v_bool(v_cmp(a[0], a[1]) <= 0);
	return 0;
}
static int bi_gt(struct ev *E, struct val **a, struct val **out)
{
	*out = v_bool(v_cmp(a[0], a[1]) > 0);
	return 0;
}
static int bi_gte(struct ev *E, struct val **a, struct val **out)
{
	*out = v_bool(v_cmp(a[0], a[1]) >= 0);
	return 0;
}

static struct val *set_op(struct ev *E, struct val *x, struct val *y, int op)
{
	/* op: 0 union, 1 intersection, 2 difference (both sorted) */
	struct val **items = ar_alloc(E->A, ((size_t)x->n + y->n + 1) * sizeof(*items));
	size_t n = 0;
	uint32_t i = 0, j = 0;
	if (items == NULL)
		return NULL;
	while (i < x->n || j < y->n) {
		int c = i == x->n ? 1 : j == y->n ? -1 : v_cmp(x->a[i], y->a[j]);
		if (c < 0) {
			if (op != 1)
				items[n++] = x->a[i];
			i++;
		} else if (c > 0) {
			if (op == 0)
				items[n++] = y->a[j];
			j++;
		} else {
			if (op != 2)
				items[n++] = x->a[i];
			i++;
			j++;
		}
	}
	struct val *s = v_set_build(E->A, items, n);
	return s;
}

static int arith(struct ev *E, const char *fn, struct val **a, struct val **out, int op)
{
	if (op == '-' && a[0]->k == V_SET && a[1]->k == V_SET) {
		*out = set_op(E, a[0], a[1], 2);
		return *out ? 0 : bi_oom(E);
	}
	if (bi_want(E, fn, 1, a[0], op == '-' ? K_NUM | K_SET : K_NUM) < 0 ||
	    bi_want(E, fn, 2, a[1], a[0]->k == V_SET ? K_SET : K_NUM) < 0)
		return -1;
	switch (op) {
	case '+':
		*out = v_num_add(E->A, a[0], a[1], 0);
		break;
	case '-':
		*out = v_num_add(E->A, a[0], a[1], 1);
		break;
	case '*':
		*out = v_num_mul(E->A, a[0], a[1]);
		break;
	case '/': {
		int64_t x, y;
		if (v_num_is_int(a[1], &y) ? y == 0 : v_num_to_double(a[1]) == 0)
			return ev_fail(E, REGO_ERR_BUILTIN,
			               "eval_builtin_error: div: divide by zero");
		if (v_num_is_int(a[0], &x) && v_num_is_int(a[1], &y) && y != -1 && x % y == 0) {
			*out = v_int(E->A, x / y);
			break;
		}
		*out = v_num_from_double(E->A, v_num_to_double(a[0]) / v_num_to_double(a[1]));
		if (*out == NULL)
			return ev_fail(E, REGO_ERR_BUILTIN,
			               "eval_builtin_error: div: result out of range");
		return 0;
	}
	case '%': {
		int64_t x, y;
		if (!v_num_is_integral(a[0]) || !v_num_is_integral(a[1]))
			return ev_fail(E, REGO_ERR_BUILTIN,
			               "eval_builtin_error: rem: modulo on floating-point number");
		if (!v_num_is_int(a[0], &x) || !v_num_is_int(a[1], &y))
			return ev_fail(E, REGO_ERR_BUILTIN,
			               "eval_builtin_error: rem: operands out of range");
		if (y == 0)
			return ev_fail(E, REGO_ERR_BUILTIN,
			               "eval_builtin_error: rem: modulo by zero");
		*out = v_int(E->A, y == -1 ? 0 : x % y);
		break;
	}
	}
	return *out ? 0 : bi_oom(E);
}

static int bi_plus(struct ev *E, struct val **a, struct val **out)
{
	return arith(E, "plus", a, out, '+');
}
static int bi_minus(struct ev *E, struct val **a, struct val **out)
{
	return arith(E, "minus", a, out, '-');
}
static int bi_mul(struct ev *E, struct val **a, struct val **out)
{
	return arith(E, "mul", a, out, '*');
}
static int bi_div(struct ev *E, struct val **a, struct val **out)
{
	return arith(E, "div", a, out, '/');
}
static int bi_rem(struct ev *E, struct val **a, struct val **out)
{
	return arith(E, "rem", a, out, '%');
}

static int bi_or(struct ev *E, struct val **a, struct val **out)
{
	if (bi_want(E, "or", 1, a[0], K_SET) < 0 || bi_want(E, "or", 2, a[1], K_SET) < 0)
		return -1;
	*out = set_op(E, a[0], a[1], 0);
	return *out ? 0 : bi_oom(E);
}

static int bi_and(struct ev *E, struct val **a, struct val **out)
{
	if (bi_want(E, "and", 1, a[0], K_SET) < 0 || bi_want(E, "and", 2, a[1], K_SET) < 0)
		return -1;
	*out = set_op(E, a[0], a[1], 1);
	return *out ? 0 : bi_oom(E);
}

static int member(struct val *x, struct val *c)
{
	if (c->k == V_SET)
		return v_set_has(c, x);
	if (c->k == V_ARR) {
		for (uint32_t i = 0; i < c->n; i++)
			if (v_eq(v_item(c, i), x))
				return 1;
		return 0;
	}
	if (c->k == V_OBJ) {
		v_force(c);
		for (uint32_t i = 0; i < c->n; i++)
			if (v_eq(c->ov[i], x))
				return 1;
	}
	return 0;
}

static int bi_member2(struct ev *E, struct val **a, struct val **out)
{
	*out = v_bool(member(a[0], a[1]));
	return 0;
}

static int bi_member3(struct ev *E, struct val **a, struct val **out)
{
	struct val *c = a[2], *x = NULL;
	if (c->k == V_ARR || c->k == V_OBJ)
		x = v_get(c, a[0]);
	else if (c->k == V_SET && v_eq(a[0], a[1]))
		x = v_get(c, a[0]);
	*out = v_bool(x && v_eq(x, a[1]));
	return 0;
}

/* ------------------------------------------------------------------ numbers */

static int num_unary(struct ev *E, const char *fn, struct val **a, struct val **out,
                     double (*f)(double))
{
	if (bi_want(E, fn, 1, a[0], K_NUM) < 0)
		return -1;
	if (a[0]->isint) {
		*out = a[0];
		return 0;
	}
	*out = v_num_from_double(E->A, f(v_num_to_double(a[0])));
	return *out ? 0 : bi_oom(E);
}

static double round_half_away(double x)
{
	return round(x);
}

static int bi_abs(struct ev *E, struct val **a, struct val **out)
{
	if (bi_want(E, "abs", 1, a[0], K_NUM) < 0)
		return -1;
	if (v_num_cmp(a[0], v_int(E->A, 0)) >= 0)
		*out = a[0];
	else
		*out = v_num_add(E->A, v_int(E->A, 0), a[0], 1);
	return *out ? 0 : bi_oom(E);
}
static int bi_ceil(struct ev *E, struct val **a, struct val **out)
{
	return num_unary(E, "ceil", a, out, ceil);
}
static int bi_floor(struct ev *E, struct val **a, struct val **out)
{
	return num_unary(E, "floor", a, out, floor);
}
static int bi_round(struct ev *E, struct val **a, struct val **out)
{
	return num_unary(E, "round", a, out, round_half_away);
}

static int bi_to_number(struct ev *E, struct val **a, struct val **out)
{
	struct val *v = a[0];
	if (bi_want(E, "to_number", 1, v, K_NULL | K_BOOL | K_NUM | K_STR) < 0)
		return -1;
	switch (v->k) {
	case V_NULL:
		*out = v_int(E->A, 0);
		break;
	case V_BOOL:
		*out = v_int(E->A, v->b);
		break;
	case V_NUM:
		*out = v;
		break;
	default: {
		const char *s = v->s;
		size_t n = v->n;
		if (n && s[0] == '+')
			s++, n--;
		*out = n && s[0] != '+' ? v_num_from_text(E->A, s, n) : NULL;
		if (*out == NULL)
			return ev_fail(E, REGO_ERR_BUILTIN,
			               "eval_builtin_error: to_number: strconv.ParseFloat: parsing "
			               "\"%s\": invalid syntax",
			               v->s);
	}
	}
	return *out ? 0 : bi_oom(E);
}

static int range(struct ev *E, const char *fn, struct val *x, struct val *y, int64_t st,
                 struct val **out)
{
	int64_t a, b;
	if (bi_int_arg(E, fn, 1, x, &a) < 0 || bi_int_arg(E, fn, 2, y, &b) < 0)
		return -1;
	if (st <= 0)
		return ev_fail(E, REGO_ERR_BUILTIN,
		               "eval_builtin_error: %s: step must be a positive number above zero",
		               fn);
	uint64_t span = a <= b ? (uint64_t)(b - a) : (uint64_t)(a - b);
	uint64_t n = span / (uint64_t)st + 1;
	if (ev_charge(E, n) < 0) /* before building it */
		return -1;
	E->precharged = 1;
	if (n > 10000000)
		return ev_fail(E, REGO_ERR_BUILTIN, "eval_builtin_error: %s: range too large", fn);
	struct val *r = v_arr(E->A, (uint32_t)n);
	if (r == NULL)
		return bi_oom(E);
	for (uint64_t i = 0; i < n; i++)
		if ((r->a[i] = v_int(E->A, a <= b ? a + (int64_t)i * st : a - (int64_t)i * st)) ==
		    NULL)
			return bi_oom(E);
	*out = r;
	return 0;
}

static int bi_numbers_range(struct ev *E, struct val **a, struct val **out)
{
	return range(E, "numbers.range", a[0], a[1], 1, out);
}

static int bi_numbers_range_step(struct ev *E, struct val **a, struct val **out)
{
	int64_t st;
	if (bi_int_arg(E, "numbers.range_step", 3, a[2], &st) < 0)
		return -1;
	return range(E, "numbers.range_step", a[0], a[1], st, out);
}

/* ------------------------------------------------------------------ aggregates */

static int utf8_runes(const unsigned char *s, size_t n)
{
	int count = 0;
	for (size_t i = 0; i < n; count++)
		i += rego_utf8_decode(s + i, n - i, NULL);
	return count;
}

static int bi_count(struct ev *E, struct val **a, struct val **out)
{
	struct val *v = a[0];
	if (bi_want(E, "count", 1, v, K_ARR | K_OBJ | K_SET | K_STR) < 0)
		return -1;
	*out = v_int(E->A, v->k == V_STR ? (int64_t)utf8_runes((const unsigned char *)v->s, v->n)
	                                 : (int64_t)v->n);
	return *out ? 0 : bi_oom(E);
}

static int sum_product(struct ev *E, struct val **a, struct val **out, int prod)
{
	const char *fn = prod ? "product" : "sum";
	struct val *c = a[0];
	if (bi_want(E, fn, 1, c, K_ARR | K_SET) < 0)
		return -1;
	v_force(c);
	struct val *acc = v_int(E->A, prod ? 1 : 0);
	for (uint32_t i = 0; acc && i < c->n; i++) {
		if (c->a[i]->k != V_NUM)
			return ev_fail(E, REGO_ERR_EVAL_TYPE,
			               "eval_type_error: %s: operand 1 must be one of {array, set} "
			               "of numbers but got %s element",
			               fn, v_type_name(c->a[i]));
		acc = prod ? v_num_mul(E->A, acc, c->a[i]) : v_num_add(E->A, acc, c->a[i], 0);
	}
	*out = acc;
	return acc ? 0 : bi_oom(E);
}

static int bi_sum(struct ev *E, struct val **a, struct val **out)
{
	return sum_product(E, a, out, 0);
}
static int bi_product(struct ev *E, struct val **a, struct val **out)
{
	return sum_product(E, a, out, 1);
}

static int max_min(struct ev *E, struct val **a, struct val **out, int max)
{
	struct val *c = a[0];
	if (bi_want(E, max ? "max" : "min", 1, c, K_ARR | K_SET) < 0)
		return -1;
	v_force(c);
	*out = NULL;
	for (uint32_t i = 0; i < c->n; i++)
		if (*out == NULL || (max ? v_cmp(c->a[i], *out) > 0 : v_cmp(c->a[i], *out) < 0))
			*out = c->a[i];
	return 0;
}

static int bi_max(struct ev *E, struct val **a, struct val **out)
{
	return max_min(E, a, out, 1);
}
static int bi_min(struct ev *E, struct val **a, struct val **out)
{
	return max_min(E, a, out, 0);
}

static int qcmp(const void *x, const void *y)
{
	return v_cmp(*(struct val *const *)x, *(struct val *const *)y);
}

static int bi_sort(struct ev *E, struct val **a, struct val **out)
{
	struct val *c = a[0];
	if (bi_want(E, "sort", 1, c, K_ARR | K_SET) < 0)
		return -1;
	v_force(c);
	struct val *r = bi_arr_of(E, c->a, c->n);
	if (r == NULL)
		return bi_oom(E);
	if (c->k == V_ARR)
		qsort(r->a, r->n, sizeof(*r->a), qcmp);
	*out = r;
	return 0;
}

/* ------------------------------------------------------------------ types */

#define IS_FN(name, kind)                                                                          \
	static int bi_is_##name(struct ev *E, struct val **a, struct val **out)                    \
	{                                                                                          \
		*out = v_bool(a[0]->k == (kind));                                                  \
		return 0;                                                                          \
	}
IS_FN(string, V_STR)
IS_FN(number, V_NUM)
IS_FN(boolean, V_BOOL)
IS_FN(array, V_ARR)
IS_FN(object, V_OBJ)
IS_FN(set, V_SET)
IS_FN(null, V_NULL)

static int bi_type_name(struct ev *E, struct val **a, struct val **out)
{
	const char *n = v_type_name(a[0]);
	*out = v_str_ref(E->A, n, strlen(n));
	return *out ? 0 : bi_oom(E);
}

/* ------------------------------------------------------------------ sets */

static int sets_fold(struct ev *E, struct val **a, struct val **out, int op)
{
	const char *fn = op ? "intersection" : "union";
	struct val *s = a[0];
	if (bi_want(E, fn, 1, s, K_SET) < 0)
		return -1;
	struct val *acc = NULL;
	for (uint32_t i = 0; i < s->n; i++) {
		if (s->a[i]->k != V_SET)
			return ev_fail(E, REGO_ERR_EVAL_TYPE,
			               "eval_type_error: %s: operand 1 must be set of sets but got "
			               "set containing %s",
			               fn, v_type_name(s->a[i]));
		acc = acc ? set_op(E, acc, s->a[i], op) : s->a[i];
		if (acc == NULL)
			return bi_oom(E);
	}
	*out = acc ? acc : v_set_build(E->A, NULL, 0);
	return *out ? 0 : bi_oom(E);
}

static int bi_union(struct ev *E, struct val **a, struct val **out)
{
	return sets_fold(E, a, out, 0);
}
static int bi_intersection(struct ev *E, struct val **a, struct val **out)
{
	return sets_fold(E, a, out, 1);
}

/* ------------------------------------------------------------------ objects */

struct val *bi_obj_merge(struct ev *E, struct val *x, struct val *y)
{
	/* y's keys win; objects under the same key merge recursively */
	v_force(x);
	v_force(y);
	struct val **ks = ar_alloc(E->A, ((size_t)x->n + y->n + 1) * sizeof(*ks));
	struct val **vs = ar_alloc(E->A, ((size_t)x->n + y->n + 1) * sizeof(*vs));
	size_t n = 0;
	uint32_t i = 0, j = 0;
	if (ks == NULL || vs == NULL)
		return NULL;
	while (i < x->n || j < y->n) {
		int c = i == x->n ? 1 : j == y->n ? -1 : v_cmp(x->a[i], y->a[j]);
		if (c < 0) {
			ks[n] = x->a[i];
			vs[n++] = x->ov[i++];
		} else if (c > 0) {
			ks[n] = y->a[j];
			vs[n++] = y->ov[j++];
		} else {
			struct val *m = y->ov[j];
			if (x->ov[i]->k == V_OBJ && y->ov[j]->k == V_OBJ)
				m = bi_obj_merge(E, x->ov[i], y->ov[j]);
			if (m == NULL)
				return NULL;
			ks[n] = x->a[i];
			vs[n++] = m;
			i++;
			j++;
		}
	}
	int dup;
	return v_obj_build(E->A, ks, vs, n, &dup);
}

static int bi_object_union(struct ev *E, struct val **a, struct val **out)
{
	if (bi_want(E, "object.union", 1, a[0], K_OBJ) < 0 ||
	    bi_want(E, "object.union", 2, a[1], K_OBJ) < 0)
		return -1;
	*out = bi_obj_merge(E, a[0], a[1]);
	return *out ? 0 : bi_oom(E);
}

static int bi_object_union_n(struct ev *E, struct val **a, struct val **out)
{
	struct val *arr = a[0];
	if (bi_want(E, "object.union_n", 1, arr, K_ARR) < 0)
		return -1;
	v_force(arr);
	struct val *acc = NULL;
	int dup;
	for (uint32_t i = 0; i < arr->n; i++) {
		if (arr->a[i]->k != V_OBJ)
			return ev_fail(E, REGO_ERR_EVAL_TYPE,
			               "eval_type_error: object.union_n: operand 1 must be array "
			               "of objects but got array containing %s",
			               v_type_name(arr->a[i]));
		acc = acc ? bi_obj_merge(E, acc, arr->a[i]) : arr->a[i];
		if (acc == NULL)
			return bi_oom(E);
	}
	*out = acc ? acc : v_obj_build(E->A, NULL, NULL, 0, &dup);
	return *out ? 0 : bi_oom(E);
}

static int bi_object_get(struct ev *E, struct val **a, struct val **out)
{
	if (bi_want(E, "object.get", 1, a[0], K_OBJ) < 0)
		return -1;
	struct val *v = a[0];
	if (a[1]->k == V_ARR) {
		v_force(a[1]);
		for (uint32_t i = 0; v && i < a[1]->n; i++)
			v = v_get(v, a[1]->a[i]);
	} else {
		v = v_get(v, a[1]);
	}
	*out = v ? v : a[2];
	return 0;
}

static int bi_object_keys(struct ev *E, struct val **a, struct val **out)
{
	if (bi_want(E, "object.keys", 1, a[0], K_OBJ) < 0)
		return -1;
	v_force(a[0]);
	*out = v_set_build(E->A, a[0]->a, a[0]->n);
	return *out ? 0 : bi_oom(E);
}

/* keys given as an array, a set or an object's keys */
static int key_set(struct ev *E, const char *fn, struct val *k, struct val **set)
{
	if (bi_want(E, fn, 2, k, K_ARR | K_SET | K_OBJ) < 0)
		return -1;
	v_force(k);
	*set = v_set_build(E->A, k->a, k->n);
	return *set ? 0 : bi_oom(E);
}

static int obj_keep(struct ev *E, const char *fn, struct val **a, struct val **out, int keep)
{
	struct val *o = a[0], *ks;
	if (bi_want(E, fn, 1, o, K_OBJ) < 0 || key_set(E, fn, a[1], &ks) < 0)
		return -1;
	v_force(o);
	struct val **k = ar_alloc(E->A, ((size_t)o->n + 1) * sizeof(*k));
	struct val **v = ar_alloc(E->A, ((size_t)o->n + 1) * sizeof(*v));
	size_t n = 0;
	if (k == NULL || v == NULL)
		return bi_oom(E);
	for (uint32_t i = 0; i < o->n; i++)
		if (v_set_has(ks, o->a[i]) == keep) {
			k[n] = o->a[i];
			v[n++] = o->ov[i];
		}
	int dup;
	*out = v_obj_build(E->A, k, v, n, &dup);
	return *out ? 0 : bi_oom(E);
}

static int bi_object_remove(struct ev *E, struct val **a, struct val **out)
{
	return obj_keep(E, "object.remove", a, out, 0);
}
static int bi_object_filter(struct ev *E, struct val **a, struct val **out)
{
	return obj_keep(E, "object.filter", a, out, 1);
}

static int subset(struct val *sup, struct val *sub);

static int arr_subset(struct val *sup, struct val *sub)
{
	for (uint32_t start = 0; start + sub->n <= sup->n; start++) {
		uint32_t j = 0;
		while (j < sub->n && v_eq(sup->a[start + j], sub->a[j]))
			j++;
		if (j == sub->n)
			return 1;
	}
	return sub->n == 0;
}

static int subset(struct val *sup, struct val *sub)
{
	v_force(sup);
	v_force(sub);
	if (sup->k == V_OBJ && sub->k == V_OBJ) {
		for (uint32_t i = 0; i < sub->n; i++) {
			struct val *x = v_get(sup, sub->a[i]);
			if (x == NULL)
				return 0;
			struct val *y = sub->ov[i];
			if (x->k == y->k && (x->k == V_OBJ || x->k == V_SET || x->k == V_ARR)) {
				if (!subset(x, y))
					return 0;
			} else if (!v_eq(x, y)) {
				return 0;
			}
		}
		return 1;
	}
	if (sup->k == V_SET && sub->k == V_SET) {
		for (uint32_t i = 0; i < sub->n; i++)
			if (!v_set_has(sup, sub->a[i]))
				return 0;
		return 1;
	}
	if (sup->k == V_ARR && sub->k == V_SET) {
		for (uint32_t i = 0; i < sub->n; i++) {
			int found = 0;
			for (uint32_t j = 0; j < sup->n && !found; j++)
				found = v_eq(sup->a[j], sub->a[i]);
			if (!found)
				return 0;
		}
		return 1;
	}
	if (sup->k == V_ARR && sub->k == V_ARR)
		return arr_subset(sup, sub);
	return v_eq(sup, sub);
}

static int bi_object_subset(struct ev *E, struct val **a, struct val **out)
{
	struct val *sup = a[0], *sub = a[1];
	int ok = (sup->k == V_OBJ && sub->k == V_OBJ) || (sup->k == V_SET && sub->k == V_SET) ||
	         (sup->k == V_ARR && (sub->k == V_ARR || sub->k == V_SET));
	if (!ok)
		return ev_fail(E, REGO_ERR_EVAL_TYPE,
		               "eval_type_error: object.subset: both arguments must be objects, "
		               "sets or arrays (%s, %s)",
		               v_type_name(sup), v_type_name(sub));
	*out = v_bool(subset(sup, sub));
	return 0;
}

/* ------------------------------------------------------------------ arrays */

static int bi_array_concat(struct ev *E, struct val **a, struct val **out)
{
	if (bi_want(E, "array.concat", 1, a[0], K_ARR) < 0 ||
	    bi_want(E, "array.concat", 2, a[1], K_ARR) < 0)
		return -1;
	v_force(a[0]);
	v_force(a[1]);
	struct val *r = v_arr(E->A, a[0]->n + a[1]->n);
	if (r == NULL)
		return bi_oom(E);
	if (a[0]->n)
		memcpy(r->a, a[0]->a, a[0]->n * sizeof(*r->a));
	if (a[1]->n)
		memcpy(r->a + a[0]->n, a[1]->a, a[1]->n * sizeof(*r->a));
	*out = r;
	return 0;
}

static int bi_array_slice(struct ev *E, struct val **a, struct val **out)
{
	int64_t s, e;
	if (bi_want(E, "array.slice", 1, a[0], K_ARR) < 0 ||
	    bi_int_arg(E, "array.slice", 2, a[1], &s) < 0 ||
	    bi_int_arg(E, "array.slice", 3, a[2], &e) < 0)
		return -1;
	v_force(a[0]);
	int64_t n = a[0]->n;
	if (s < 0)
		s = 0;
	if (e > n)
		e = n;
	if (e < s)
		e = s;
	*out = bi_arr_of(E, a[0]->a + s, (size_t)(e - s));
	return *out ? 0 : bi_oom(E);
}

static int bi_array_reverse(struct ev *E, struct val **a, struct val **out)
{
	if (bi_want(E, "array.reverse", 1, a[0], K_ARR) < 0)
		return -1;
	v_force(a[0]);
	struct val *r = v_arr(E->A, a[0]->n);
	if (r == NULL)
		return bi_oom(E);
	for (uint32_t i = 0; i < a[0]->n; i++)
		r->a[i] = a[0]->a[a[0]->n - 1 - i];
	*out = r;
	return 0;
}

/* ------------------------------------------------------------------ bits */

static int bits2(struct ev *E, const char *fn, struct val **a, struct val **out, int op)
{
	int64_t x, y;
	if (bi_int_arg(E, fn, 1, a[0], &x) < 0 || bi_int_arg(E, fn, 2, a[1], &y) < 0)
		return -1;
	int64_t r = op == '&'   ? x & y
	            : op == '|' ? x | y
	            : op == '^' ? x ^ y
	            : op == '<' ? (y >= 63 || y < 0 ? 0 : (int64_t)((uint64_t)x << y))
	                        : (y >= 63 || y < 0 ? (x < 0 ? -1 : 0) : x >> y);
	*out = v_int(E->A, r);
	return *out ? 0 : bi_oom(E);
}
static int bi_bits_and(struct ev *E, struct val **a, struct val **out)
{
	return bits2(E, "bits.and", a, out, '&');
}
static int bi_bits_or(struct ev *E, struct val **a, struct val **out)
{
	return bits2(E, "bits.or", a, out, '|');
}
static int bi_bits_xor(struct ev *E, struct val **a, struct val **out)
{
	return bits2(E, "bits.xor", a, out, '^');
}
static int bi_bits_lsh(struct ev *E, struct val **a, struct val **out)
{
	return bits2(E, "bits.lsh", a, out, '<');
}
static int bi_bits_rsh(struct ev *E, struct val **a, struct val **out)
{
	return bits2(E, "bits.rsh", a, out, '>');
}
static int bi_bits_negate(struct ev *E, struct val **a, struct val **out)
{
	int64_t x;
	if (bi_int_arg(E, "bits.negate", 1, a[0], &x) < 0)
		return -1;
	*out = v_int(E->A, ~x);
	return *out ? 0 : bi_oom(E);
}

/* ------------------------------------------------------------------ table */

static const struct builtin table[] = {
    {"equal", 2, bi_equal},
    {"neq", 2, bi_neq},
    {"lt", 2, bi_lt},
    {"lte", 2, bi_lte},
    {"gt", 2, bi_gt},
    {"gte", 2, bi_gte},
    {"plus", 2, bi_plus},
    {"minus", 2, bi_minus},
    {"mul", 2, bi_mul},
    {"div", 2, bi_div},
    {"rem", 2, bi_rem},
    {"or", 2, bi_or},
    {"and", 2, bi_and},
    {"internal.member_2", 2, bi_member2},
    {"internal.member_3", 3, bi_member3},
    {"abs", 1, bi_abs},
    {"ceil", 1, bi_ceil},
    {"floor", 1, bi_floor},
    {"round", 1, bi_round},
    {"to_number", 1, bi_to_number},
    {"numbers.range", 2, bi_numbers_range},
    {"numbers.range_step", 3, bi_numbers_range_step},
    {"count", 1, bi_count},
    {"sum", 1, bi_sum},
    {"product", 1, bi_product},
    {"max", 1, bi_max},
    {"min", 1, bi_min},
    {"sort", 1, bi_sort},
    {"is_string", 1, bi_is_string},
    {"is_number", 1, bi_is_number},
    {"is_boolean", 1, bi_is_boolean},
    {"is_array", 1, bi_is_array},
    {"is_object", 1, bi_is_object},
    {"is_set", 1, bi_is_set},
    {"is_null", 1, bi_is_null},
    {"type_name", 1, bi_type_name},
    {"union", 1, bi_union},
    {"intersection", 1, bi_intersection},
    {"object.union", 2, bi_object_union},
    {"object.union_n", 1, bi_object_union_n},
    {"object.get", 3, bi_object_get},
    {"object.keys", 1, bi_object_keys},
    {"object.remove", 2, bi_object_remove},
    {"object.filter", 2, bi_object_filter},
    {"object.subset", 2, bi_object_subset},
    {"array.concat", 2, bi_array_concat},
    {"array.slice", 3, bi_array_slice},
    {"array.reverse", 1, bi_array_reverse},
    {"bits.and", 2, bi_bits_and},
    {"bits.or", 2, bi_bits_or},
    {"bits.xor", 2, bi_bits_xor},
    {"bits.lsh", 2, bi_bits_lsh},
    {"bits.rsh", 2, bi_bits_rsh},
    {"bits.negate", 1, bi_bits_negate},
};

static const struct {
	const struct builtin *t;
	const size_t *n;
} tables[] = {
    {table, NULL},
    {rego_builtins_str, &rego_builtins_str_n},
    {rego_builtins_misc, &rego_builtins_misc_n},
    {rego_builtins_time, &rego_builtins_time_n},
};

static size_t table_len(size_t i)
{
	return tables[i].n ? *tables[i].n : sizeof(table) / sizeof(table[0]);
}

int rego_builtin_find(const char *name)
{
	size_t base = 0;
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
		for (size_t i = 0; i < table_len(t); i++)
			if (strcmp(tables[t].t[i].name, name) == 0)
				return (int)(base + i);
		base += table_len(t);
	}
	return -1;
}

int rego_builtin_count(void)
{
	size_t n = 0;
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
		n += table_len(t);
	return (int)n;
}

const struct builtin *rego_builtin(int i)
{
	size_t u = (size_t)i;
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
		if (u < table_len(t))
			return &tables[t].t[u];
		u -= table_len(t);
	}
	return NULL;
}
