/*
 * eval: the state of one evaluation, shared by the evaluator, the builtins and the API.
 */
#ifndef CTRUSTEE_REGO_EVAL_H
#define CTRUSTEE_REGO_EVAL_H

#include "rego/rego_int.h"

/* a function replaced by `with`: by another function, or by a value */
struct mock {
	struct node *fn;
	int bi;
	struct val *v;
	uint8_t set;
};

struct named_mock {
	const char *name;
	struct mock m;
	struct named_mock *next;
};

struct ev {
	const struct rego_policy *P;
	struct arena *A;
	const struct rego_eval_opts *o;
	struct err *err;
	int failed;
	int strict;
	uint64_t steps, max_steps, deadline_ns, now_ns;
	int precharged; /* the running builtin charged its work up front (ev_charge) */
	int depth;

	struct val *input;            /* NULL: undefined */
	struct val *data;             /* base document, NULL: {} */
	struct val **memo;            /* rule values by node id */
	uint8_t *memo_st;             /* 0 not computed, 1 computing, 2 done */
	struct val **node_over;       /* `with data...` replacements by node id, or NULL */
	struct mock *fn_mock;         /* `with f as ...` by node id, or NULL */
	struct mock *bi_mock;         /* `with count as ...` by builtin index, or NULL */
	struct named_mock *name_mock; /* `with http.send as ...`: functions we lack */
	struct val **slots;           /* the current rule frame */

	json_t **keep; /* host function results referenced by values */
	size_t nkeep, capkeep;

	/* explanations of a top-level rule's failing definitions */
	int explaining;
	struct body *explain_body;
	uint32_t best_idx;
	struct expr *best_lit, *cur_expr;
	int expl_cmp;
	char best_detail[256];
	char *explain;
	size_t explain_len;

	/* query expression values */
	struct val **qvals;
	struct expr *qbody_expr;
};

int ev_init(struct ev *E, const struct rego_policy *P, const struct rego_eval_opts *o,
            struct arena *A, struct err *err);
void ev_done(struct ev *E);
/* The value at data.<path> (constant strings); *out NULL when undefined. */
int ev_path(struct ev *E, struct term **path, uint32_t n, int explain, struct val **out);
int ev_query(struct ev *E, struct query *q, int (*on_solution)(struct ev *E, void *ctx), void *ctx);
int ev_query_exprs(struct ev *E, struct query *q, struct val **vals,
                   int (*on_solution)(struct ev *E, void *ctx), void *ctx);

#endif
