/*
 * rego: a Rego (OPA, v1 syntax) policy engine.
 *
 * Compile a module set once, evaluate it many times, from many threads at once: a compiled
 * policy is immutable; each evaluation carries its own state. Values cross the API as
 * jansson values (sets become arrays in OPA sort order); "undefined" is reported as a
 * NULL result, distinct from JSON false and null.
 */
#ifndef CTRUSTEE_REGO_H
#define CTRUSTEE_REGO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct rego_policy;

struct rego_module {
	const char *name; /* file name used in error positions: "policy.rego:12:5: ..." */
	const char *text;
	size_t len;
};

/* A function the embedder provides (e.g. the AS's query_reference_value/1).
 * Returns a new reference (json_null() is a value), or NULL with err set to fail evaluation. */
typedef json_t *(*rego_host_fn)(void *ctx, json_t *const *args, size_t nargs, struct err *err);

struct rego_host_function {
	const char *name; /* dotted name as called from Rego */
	size_t arity;
	rego_host_fn fn;
	void *ctx;
};

struct rego_eval_opts {
	const json_t *input; /* NULL = input undefined */
	const json_t *data;  /* NULL = {} */
	const struct rego_host_function *host_fns;
	size_t n_host_fns;
	uint64_t max_steps;  /* 0 = REGO_DEFAULT_MAX_STEPS; builtin work counts too */
	uint64_t timeout_us; /* 0 = REGO_DEFAULT_TIMEOUT_US of wall-clock time */
	uint64_t
	    max_memory; /* bytes of values the evaluation may hold; 0 = REGO_DEFAULT_MAX_MEMORY */
	int strict_builtin_errors;
	int explain; /* fill *explain on rego_eval_rule */
	/* Rego term text (e.g. `{"a": {1, 2}}`: sets and exact numbers, which JSON cannot
	 * carry) used instead of input / data when set. */
	const char *input_term;
	const char *data_term;
};

/*
 * The budgets of one evaluation. A policy is code from whoever may set it, so steps, memory
 * and time are all bounded: a step is one expression tried, and a builtin's work (the items
 * of a range, a set or an array it builds, every 64 bytes of a string) counts as steps; memory
 * is every byte of the evaluation's arena and of the JSON it decodes, returned to the system
 * afterwards. Exhausting one refuses with REGO_ERR_BUDGET and a sentence naming it, e.g.
 * "eval_cancel_error: policy evaluation exceeded its memory budget of 64 MiB".
 * Trustee's default policies evaluate in under a millisecond, a few thousand steps and less
 * than a MiB; these defaults leave them room a thousand times over.
 */
#define REGO_DEFAULT_MAX_STEPS 1000000
#define REGO_DEFAULT_MAX_MEMORY (64u << 20)
#define REGO_DEFAULT_TIMEOUT_US 2000000

struct rego_limits {
	uint64_t max_steps, max_memory, timeout_us; /* 0 = the default */
};

/* An operator's limits from a config object (NULL, or keys absent = the defaults):
 *   max_steps       evaluation steps, builtin work included   (default 1000000)
 *   max_memory_mib  MiB of values one evaluation may hold      (default 64)
 *   timeout_ms      wall-clock milliseconds per evaluation     (default 2000)
 * A key of the wrong type or out of range is an error naming it. `what` names the section in
 * that error ("attestation_policy_limits"). */
int rego_limits_from_config(const json_t *obj, const char *what, struct rego_limits *out,
                            struct err *err);
/* Sets the budgets of o from l. */
void rego_limits_apply(const struct rego_limits *l, struct rego_eval_opts *o);

/* err->code after a failure: the kind of error, named as OPA names it. */
enum rego_err_code {
	REGO_ERR_NONE = 0,
	REGO_ERR_PARSE,     /* rego_parse_error */
	REGO_ERR_COMPILE,   /* rego_compile_error */
	REGO_ERR_TYPE,      /* rego_type_error */
	REGO_ERR_UNSAFE,    /* rego_unsafe_var_error */
	REGO_ERR_RECURSION, /* rego_recursion_error */
	REGO_ERR_CONFLICT,  /* eval_conflict_error */
	REGO_ERR_EVAL_TYPE, /* eval_type_error */
	REGO_ERR_BUILTIN,   /* eval_builtin_error */
	REGO_ERR_BUDGET,    /* eval_cancel_error: the step, memory or time budget ran out */
	REGO_ERR_INTERNAL,  /* eval_internal_error: out of memory and the like */
};
const char *rego_err_code_name(int code);

/* Compile; host functions that policies may call must be declared here so calls resolve
 * at compile time (their implementation is given per evaluation in rego_eval_opts). */
struct rego_policy *rego_compile(const struct rego_module *mods, size_t n,
                                 const struct rego_host_function *host_decls, size_t n_host,
                                 struct err *err);
void rego_policy_free(struct rego_policy *p);

/* Evaluate a rule by path ("data.policy.allow"). Returns 0 with *result a new reference or
 * NULL when undefined; -1 on evaluation error (conflict, budget, builtin error) with err set.
 * With opts->explain, *explain (malloc'd, may be NULL) says which rule bodies failed and at
 * which expression, e.g.
 *   allow: input.submods.cpu0["ear.status"] == "affirming" was false ("warning")  */
int rego_eval_rule(const struct rego_policy *p, const char *path, const struct rego_eval_opts *opts,
                   json_t **result, char **explain, struct err *err);

/* Evaluate a query ("data.a.p = x", "x := 1 + 2") against the policy (NULL policy = no
 * modules). *results is a new array of binding objects, one per solution, like opa eval's
 * bindings; an expression-only query binds nothing and yields [{}] when true.
 * *expr_values (optional) receives the value of each expression of each solution, as
 * opa eval's "expressions". */
int rego_eval_query(const struct rego_policy *p, const char *query,
                    const struct rego_eval_opts *opts, json_t **results, json_t **expr_values,
                    char **explain, struct err *err);

/* The same, with the result set as exact JSON text (every digit of every number kept, sets as
 * arrays in OPA's order, non-string object keys as their JSON text): [{"x": ...}, ...].
 * *text is malloc'd. */
int rego_eval_query_text(const struct rego_policy *p, const char *query,
                         const struct rego_eval_opts *opts, char **text, struct err *err);

/* Parse only (rego check). */
int rego_check(const struct rego_module *mods, size_t n, struct err *err);

#endif
