/*
 * rego: the public API (rego.h) over the parser, compiler and evaluator.
 *
 * A compiled policy owns one arena (AST, rule tree, constants) and never changes after
 * rego_compile, so any number of threads may evaluate it at once. Each evaluation gets its
 * own arena for the values it creates, freed when it returns; results leave as jansson
 * values (or exact JSON text) built before that.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rego/eval.h"
#include "memtune.h"

#define MAX_SRC (1u << 20)

/* After an evaluation that held this much, hand free memory back to the system: glibc keeps
 * freed heap pages, and one hostile policy would otherwise leave the daemon at its peak
 * (1.4 GB in issue 14's reproduction). Below it, the trim is not worth its walk of the heap. */
#define TRIM_AFTER (8u << 20)

int rego_limits_from_config(const json_t *obj, const char *what, struct rego_limits *out,
                            struct err *err)
{
	static const struct {
		const char *key;
		uint64_t max, unit;
	} keys[] = {
	    {"max_steps", 1000000000000ull, 1},
	    {"max_memory_mib", 1u << 20, 1u << 20},
	    {"timeout_ms", 3600000, 1000},
	};
	uint64_t v[3] = {0};
	memset(out, 0, sizeof(*out));
	if (obj != NULL && !json_is_object(obj))
		return err_set(err, "%s: expected a table of limits", what);
	for (size_t i = 0; obj && i < 3; i++) {
		json_t *j = json_object_get(obj, keys[i].key);
		if (j == NULL)
			continue;
		if (!json_is_integer(j) || json_integer_value(j) < 1 ||
		    (uint64_t)json_integer_value(j) > keys[i].max)
			return err_set(err, "%s: %s must be an integer from 1 to %llu", what,
			               keys[i].key, (unsigned long long)keys[i].max);
		v[i] = (uint64_t)json_integer_value(j) * keys[i].unit;
	}
	out->max_steps = v[0];
	out->max_memory = v[1];
	out->timeout_us = v[2];
	return 0;
}

void rego_limits_apply(const struct rego_limits *l, struct rego_eval_opts *o)
{
	o->max_steps = l->max_steps;
	o->max_memory = l->max_memory;
	o->timeout_us = l->timeout_us;
}

/* Ends an evaluation's arena: a hit limit fails the evaluation whatever its code made of the
 * failed allocation, and a large arena's memory goes back to the system. */
static int arena_end(struct arena *A, int rc, struct err *err)
{
	if (A->over) {
		err->code = REGO_ERR_BUDGET;
		snprintf(
		    err->msg, sizeof(err->msg),
		    "eval_cancel_error: policy evaluation exceeded its memory budget of %zu MiB",
		    A->limit >> 20);
		rc = -1;
	}
	size_t peak = A->total;
	ar_free(A);
	if (peak >= TRIM_AFTER)
		memtune_release();
	return rc;
}

const char *rego_err_code_name(int code)
{
	switch (code) {
	case REGO_ERR_PARSE:
		return "rego_parse_error";
	case REGO_ERR_COMPILE:
		return "rego_compile_error";
	case REGO_ERR_TYPE:
		return "rego_type_error";
	case REGO_ERR_UNSAFE:
		return "rego_unsafe_var_error";
	case REGO_ERR_RECURSION:
		return "rego_recursion_error";
	case REGO_ERR_CONFLICT:
		return "eval_conflict_error";
	case REGO_ERR_EVAL_TYPE:
		return "eval_type_error";
	case REGO_ERR_BUILTIN:
		return "eval_builtin_error";
	case REGO_ERR_BUDGET:
		return "eval_cancel_error";
	default:
		return "eval_internal_error";
	}
}

void rego_policy_free(struct rego_policy *P)
{
	if (P == NULL)
		return;
	ar_free(&P->A);
	free(P->rules);
	free(P->mods);
	free(P);
}

struct rego_policy *rego_compile(const struct rego_module *mods, size_t n,
                                 const struct rego_host_function *host_decls, size_t n_host,
                                 struct err *err)
{
	struct rego_policy *P = calloc(1, sizeof(*P));
	(void)host_decls;
	(void)n_host;
	if (P == NULL) {
		err_setc(err, REGO_ERR_INTERNAL, "out of memory");
		return NULL;
	}
	struct arena *save = rego_cur_arena;
	rego_cur_arena = &P->A;
	for (size_t i = 0; i < n; i++) {
		const char *name = mods[i].name ? mods[i].name : "policy.rego";
		if (mods[i].len > MAX_SRC) {
			err_setc(err, REGO_ERR_PARSE, "%s: policy is larger than %u bytes", name,
			         MAX_SRC);
			goto fail;
		}
		if (mods[i].len && memchr(mods[i].text, '\0', mods[i].len) != NULL) {
			err_setc(err, REGO_ERR_PARSE, "%s: policy contains a NUL byte", name);
			goto fail;
		}
		char *src = ar_strndup(&P->A, mods[i].text ? mods[i].text : "", mods[i].len);
		char *nm = ar_strndup(&P->A, name, strlen(name));
		if (src == NULL || nm == NULL) {
			err_setc(err, REGO_ERR_INTERNAL, "out of memory");
			goto fail;
		}
		if (rego_parse_module(P, nm, src, mods[i].len, err) < 0)
			goto fail;
	}
	if (rego_compile_policy(P, err) < 0)
		goto fail;
	rego_cur_arena = save;
	return P;
fail:
	rego_cur_arena = save;
	rego_policy_free(P);
	return NULL;
}

int rego_check(const struct rego_module *mods, size_t n, struct err *err)
{
	struct rego_policy *P = rego_compile(mods, n, NULL, 0, err);
	if (P == NULL)
		return -1;
	rego_policy_free(P);
	return 0;
}

/* "data.a.b" -> constant string terms a, b */
static int split_path(struct arena *A, const char *path, struct term ***segs, uint32_t *n,
                      struct err *err)
{
	if (strncmp(path, "data", 4) != 0 || (path[4] != '.' && path[4] != '\0'))
		return err_setc(err, REGO_ERR_TYPE, "rule path \"%s\" must start with data.", path);
	const char *p = path + 4;
	uint32_t cap = 1;
	for (const char *c = p; *c; c++)
		cap += *c == '.';
	*segs = ar_alloc(A, cap * sizeof(**segs));
	*n = 0;
	if (*segs == NULL)
		return err_setc(err, REGO_ERR_INTERNAL, "out of memory");
	while (*p == '.') {
		p++;
		const char *e = strchr(p, '.');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == 0)
			return err_setc(err, REGO_ERR_TYPE, "rule path \"%s\" has an empty part",
			                path);
		struct term *t = ar_alloc(A, sizeof(*t));
		if (t == NULL || (t->v = v_str(A, p, l)) == NULL)
			return err_setc(err, REGO_ERR_INTERNAL, "out of memory");
		t->k = TK_VAL;
		t->slot = -1;
		t->bi = -1;
		(*segs)[(*n)++] = t;
		p += l;
	}
	return 0;
}

/* No policy: the value at path in the base document. */
static int walk_base(struct ev *E, struct term **segs, uint32_t n, struct val **out)
{
	struct val *v = E->data;
	for (uint32_t i = 0; i < n && v; i++)
		v = v_get(v, segs[i]->v);
	*out = v;
	return 0;
}

int rego_eval_rule(const struct rego_policy *P, const char *path, const struct rego_eval_opts *opts,
                   json_t **result, char **explain, struct err *err)
{
	struct arena A = {0};
	struct arena *save = rego_cur_arena;
	struct ev E;
	struct term **segs = NULL;
	uint32_t n = 0;
	int rc = -1;

	*result = NULL;
	if (explain)
		*explain = NULL;
	err->code = 0;
	rego_cur_arena = &A;
	if (split_path(&A, path, &segs, &n, err) < 0)
		goto out;
	if (ev_init(&E, P, opts, &A, err) < 0) {
		ev_done(&E);
		goto out;
	}
	struct val *v = NULL;
	rc = P ? ev_path(&E, segs, n, opts && opts->explain && explain, &v)
	       : walk_base(&E, segs, n, &v);
	if (rc == 0 && v != NULL && (*result = v_to_json(v)) == NULL)
		rc = err_setc(err, REGO_ERR_INTERNAL, "out of memory");
	if (rc == 0 && explain && E.explain) {
		*explain = E.explain;
		E.explain = NULL;
	}
	ev_done(&E);
out:
	rc = arena_end(&A, rc, err);
	rego_cur_arena = save;
	if (rc < 0 && *result) {
		json_decref(*result);
		*result = NULL;
	}
	if (rc < 0 && explain && *explain) {
		free(*explain);
		*explain = NULL;
	}
	return rc < 0 ? -1 : 0;
}

struct qcollect {
	struct query *q;
	struct val **vals; /* expression values of the current solution */
	json_t *results, *exprs;
	struct sbuf *text;
	int nsol;
};

static int on_solution(struct ev *E, void *ctx)
{
	struct qcollect *c = ctx;
	struct query *q = c->q;
	if (c->text) {
		sb_adds(c->text, c->nsol ? ",{" : "{");
		int first = 1;
		for (int s = 0; s < q->nslots; s++) {
			if (s >= q->nnames || q->names[s] == NULL || E->slots[s] == NULL)
				continue;
			if (!first)
				sb_addc(c->text, ',');
			first = 0;
			sb_json_str(c->text, q->names[s], strlen(q->names[s]));
			sb_addc(c->text, ':');
			v_write_json(c->text, E->slots[s]);
		}
		sb_addc(c->text, '}');
		c->nsol++;
		return c->text->oom
		           ? ev_fail(E, REGO_ERR_INTERNAL, "eval_internal_error: out of memory")
		           : 0;
	}
	json_t *b = json_object();
	for (int s = 0; b && s < q->nslots; s++)
		if (s < q->nnames && q->names[s] && E->slots[s])
			json_object_set_new(b, q->names[s], v_to_json(E->slots[s]));
	json_array_append_new(c->results, b);
	if (c->exprs) {
		if (q->body->n == 1) {
			json_array_append_new(c->exprs, v_to_json(c->vals[0]));
		} else {
			json_t *a = json_array();
			for (uint32_t i = 0; a && i < q->body->n; i++)
				json_array_append_new(a, v_to_json(c->vals[i]));
			json_array_append_new(c->exprs, a);
		}
	}
	c->nsol++;
	return 0;
}

static int run_query(const struct rego_policy *P, const char *query,
                     const struct rego_eval_opts *opts, struct qcollect *c, struct err *err)
{
	struct arena A = {0};
	struct arena *save = rego_cur_arena;
	struct ev E;
	struct query q;
	struct rego_policy *empty = NULL;
	int rc = -1;

	err->code = 0;
	if (P == NULL && (P = empty = rego_compile(NULL, 0, NULL, 0, err)) == NULL)
		return -1; /* no modules: data is the base document alone */
	rego_cur_arena = &A;
	struct body *b = rego_parse_body(&A, "query", query, strlen(query), err);
	if (b == NULL || rego_compile_query(P, &A, b, &q, err) < 0)
		goto out;
	c->q = &q;
	c->vals = ar_alloc(&A, ((size_t)b->n + 1) * sizeof(*c->vals));
	if (c->vals == NULL) {
		err_setc(err, REGO_ERR_INTERNAL, "out of memory");
		goto out;
	}
	if (ev_init(&E, P, opts, &A, err) == 0)
		rc = ev_query_exprs(&E, &q, c->vals, on_solution, c);
	ev_done(&E);
out:
	c->q = NULL;
	c->vals = NULL;
	rc = arena_end(&A, rc, err);
	rego_cur_arena = save;
	rego_policy_free(empty);
	return rc;
}

int rego_eval_query(const struct rego_policy *P, const char *query,
                    const struct rego_eval_opts *opts, json_t **results, json_t **expr_values,
                    char **explain, struct err *err)
{
	struct qcollect c = {.results = json_array(), .exprs = expr_values ? json_array() : NULL};
	*results = NULL;
	if (expr_values)
		*expr_values = NULL;
	if (explain)
		*explain = NULL;
	if (c.results == NULL || (expr_values && c.exprs == NULL)) {
		json_decref(c.results);
		json_decref(c.exprs);
		return err_setc(err, REGO_ERR_INTERNAL, "out of memory");
	}
	if (run_query(P, query, opts, &c, err) < 0) {
		json_decref(c.results);
		json_decref(c.exprs);
		return -1;
	}
	*results = c.results;
	if (expr_values)
		*expr_values = c.exprs;
	return 0;
}

int rego_eval_query_text(const struct rego_policy *P, const char *query,
                         const struct rego_eval_opts *opts, char **text, struct err *err)
{
	struct sbuf b = {0};
	struct qcollect c = {.text = &b};
	*text = NULL;
	sb_addc(&b, '[');
	if (run_query(P, query, opts, &c, err) < 0) {
		free(b.s);
		return -1;
	}
	sb_addc(&b, ']');
	if (b.oom) {
		free(b.s);
		return err_setc(err, REGO_ERR_INTERNAL, "out of memory");
	}
	*text = b.s;
	return 0;
}
