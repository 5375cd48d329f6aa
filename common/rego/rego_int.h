/*
 * rego_int: what the pieces of the Rego engine share (not part of the public API).
 *
 *   value.c    values (null, booleans, exact numbers, strings, arrays, objects with any key
 *              type, sets), OPA's total order, JSON in and out, and the arena they live in
 *   lex.c      tokens
 *   parse.c    modules and queries into the AST below
 *   compile.c  the rule tree, name resolution (local slots, rules, imports, functions)
 *   eval.c     top-down evaluation with backtracking (continuation passing)
 *   builtins*.c the built-in functions
 *   rego.c     the public API (rego.h)
 *
 * Memory: everything a compiled policy owns lives in its arena; everything an evaluation
 * creates lives in the evaluation's arena, freed at once when it ends. Values are immutable
 * once built, so a compiled policy's constants are shared by concurrent evaluations.
 */
#ifndef CTRUSTEE_REGO_INT_H
#define CTRUSTEE_REGO_INT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "rego/rego.h"

/* ------------------------------------------------------------------ arena */

struct ablock;
struct arena {
	struct ablock *head;
	size_t total; /* bytes of blocks, plus what ar_account counted */
	size_t limit; /* 0 = none; past it ar_alloc fails and sets over */
	int over;     /* the limit was hit: the evaluation must fail, whatever a caller did */
};

void *ar_alloc(struct arena *a, size_t n); /* zeroed; NULL on OOM or past the limit */
/* Counts n bytes held elsewhere on the arena's behalf (decoded JSON); -1 past the limit. */
int ar_account(struct arena *a, size_t n);
char *ar_strndup(struct arena *a, const char *s, size_t n);
void ar_free(struct arena *a);

/* The arena of the evaluation running on this thread (lazy JSON values expand into it). */
extern __thread struct arena *rego_cur_arena;

/* ------------------------------------------------------------------ values */

/* kinds in OPA's sort order across types */
enum vkind { V_NULL, V_BOOL, V_NUM, V_STR, V_ARR, V_OBJ, V_SET };

/* An exact decimal: (-1)^neg * digits * 10^exp; digits (0..9, most significant first) has no
 * leading or trailing zeros; n == 0 is zero. */
struct dec {
	uint8_t neg;
	int32_t exp;
	uint32_t n;
	uint8_t *d;
};

struct val {
	uint8_t k;     /* enum vkind */
	uint8_t lazy;  /* V_ARR/V_OBJ still backed by the JSON value j */
	uint8_t isint; /* V_NUM: the value is i; else dec */
	uint32_t n;    /* string length, items, keys */
	union {
		int b;
		int64_t i;
		struct dec *dec;
		const char *s;  /* NUL-terminated */
		struct val **a; /* array items, set members (sorted), object keys (sorted) */
		json_t *j;      /* lazy */
	};
	struct val **ov; /* object values */
};

extern struct val rv_null, rv_true, rv_false;

struct val *v_bool(int b);
struct val *v_int(struct arena *A, int64_t i);
struct val *v_str(struct arena *A, const char *s, size_t n);     /* copies */
struct val *v_str_ref(struct arena *A, const char *s, size_t n); /* s must outlive the value */
struct val *v_arr(struct arena *A, uint32_t n);                  /* items to fill */
struct val *v_num_from_text(struct arena *A, const char *s, size_t n); /* NULL if not a number */
struct val *v_num_from_double(struct arena *A, double d);              /* NULL if not finite */
struct val *v_from_json(struct arena *A, json_t *j);                   /* lazy for containers */

/* Ensure a lazy container is expanded (items / sorted keys). */
void v_force(struct val *v);

/* Sets and objects are built from unsorted items, then sorted. */
struct val *v_set_build(struct arena *A, struct val **items, size_t n); /* dedupes */
/* Returns NULL and *dup = 1 when one key has two different values. */
struct val *v_obj_build(struct arena *A, struct val **keys, struct val **vals, size_t n, int *dup);

int v_cmp(struct val *a, struct val *b);
static inline int v_eq(struct val *a, struct val *b)
{
	return a == b || v_cmp(a, b) == 0;
}
/* Object lookup / set membership; NULL when absent. */
struct val *v_get(struct val *coll, struct val *key);
struct val *v_obj_get_str(struct val *obj, const char *key, size_t klen);
int v_set_has(struct val *set, struct val *x);
uint32_t v_len(struct val *v); /* items of a container */
struct val *v_item(struct val *arr, uint32_t i);

/* numbers */
int v_num_is_int(struct val *v, int64_t *out); /* integral and fits int64 */
double v_num_to_double(struct val *v);
int v_num_cmp(struct val *a, struct val *b);
struct val *v_num_add(struct arena *A, struct val *a, struct val *b, int sub);
struct val *v_num_mul(struct arena *A, struct val *a, struct val *b);
/* Writes the exact decimal text (no exponent for integers); returns a NUL-terminated string in A.
 */
char *v_num_to_text(struct arena *A, struct val *v);
int v_num_is_integral(struct val *v);

/* JSON */
json_t *v_to_json(struct val *v); /* new reference; sets as arrays, other keys as their JSON text */
/* Exact JSON text (numbers keep every digit) into a malloc'd buffer. */
char *v_to_json_text(struct val *v);
const char *v_type_name(struct val *v);

/* A growable string buffer in malloc'd memory. */
struct sbuf {
	char *s;
	size_t n, cap;
	int oom;
};
void sb_add(struct sbuf *b, const char *s, size_t n);
void sb_addc(struct sbuf *b, char c);
void sb_adds(struct sbuf *b, const char *s);
void sb_json_str(struct sbuf *b, const char *s, size_t n); /* quoted, escaped */
void v_write_json(struct sbuf *b, struct val *v);

/* ------------------------------------------------------------------ tokens */

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
	uint32_t len;
	int line, col;
	char *str; /* T_STRING: decoded bytes (arena), length slen */
	uint32_t slen;
	uint8_t ws_before; /* whitespace or a comment precedes the token */
};

int rego_lex(struct arena *A, const char *name, const char *src, size_t len, struct token **out,
             size_t *n, struct err *err);

/* ------------------------------------------------------------------ AST */

enum tkind {
	TK_VAL, /* constant value v */
	TK_VAR, /* local variable (slot) or, before resolution, a name */
	TK_REF, /* kids[0] head, kids[1..] path */
	TK_ARR,
	TK_SET,
	TK_OBJ, /* kids = keys, vals = values */
	TK_CALL,
	TK_ACOMP,
	TK_SCOMP,
	TK_OCOMP,
};

/* what a ref's head, or a variable, resolves to */
enum troot { ROOT_NONE, ROOT_DATA, ROOT_INPUT };

struct body;
struct node;

struct term {
	uint8_t k;
	uint8_t root;    /* TK_VAR: ROOT_DATA / ROOT_INPUT, else a local */
	uint8_t has_var; /* contains a variable (so it is not a constant) */
	uint8_t wild;    /* TK_VAR `_` */
	int line, col;
	const char *name; /* TK_VAR, TK_CALL (dotted name as written) */
	int slot;         /* TK_VAR local slot */
	struct val *v;    /* TK_VAL */
	struct term **kids;
	uint32_t n;
	struct term **vals;        /* TK_OBJ values */
	struct term *head, *head2; /* comprehension term (object: key, value) */
	struct body *body;         /* comprehension body */
	/* TK_REF with a data root: the rule node its constant prefix names (kids up to ridx) */
	struct node *rnode;
	uint32_t ridx;
	/* TK_CALL resolution */
	struct node *fn; /* user function */
	int bi;          /* builtin index, -1 none */
	int outarg;      /* the last argument receives the result */
	const char *src; /* source text (explanations) */
	uint32_t srclen;
};

enum ekind { E_TERM, E_UNIFY, E_ASSIGN, E_SOME, E_SOMEIN, E_EVERY, E_BODY /* not { ... } */ };

struct with {
	struct term *target, *value;
	/* a function target (user function node or builtin index, -1 none) and, when the
	 * replacement names a function too, that function */
	struct node *fn, *vfn;
	int bi, vbi;
	const char *name; /* a function we do not implement (http.send): mocked by name */
};

struct expr {
	uint8_t k;
	uint8_t neg;
	struct term *a, *b;              /* E_TERM: a; E_UNIFY / E_ASSIGN: a = b */
	struct term *key, *value, *coll; /* E_SOMEIN / E_EVERY (key may be NULL) */
	struct term **vars;              /* E_SOME declared vars */
	uint32_t nvars;
	struct body *body; /* E_EVERY, E_BODY */
	struct with *with;
	uint32_t nwith;
	const char *src;
	uint32_t srclen;
	int line;
};

struct body {
	struct expr **e;
	uint32_t n;
};

enum rkind { RK_COMPLETE, RK_SET, RK_OBJ, RK_FUNC };

struct rule {
	uint8_t k;
	uint8_t is_default;
	struct node *node;
	struct term **path; /* head ref as written (static segments then at most a key) */
	uint32_t npath;
	struct term *key;   /* RK_SET member / RK_OBJ key (keys[0]) */
	struct term **keys; /* RK_OBJ: p[a][b]... keys below the node, outermost first */
	uint32_t nkeys;
	struct term *value; /* NULL = true */
	struct term **args; /* RK_FUNC */
	uint32_t nargs;
	struct body *body;
	struct rule *els;
	struct rule *chain_head; /* first rule of its else chain */
	int nslots;
	int module; /* index, for imports */
	const char *file;
	int line;
	const char *pkg; /* "a.b" */
};

struct import {
	const char *alias;
	struct term *ref; /* data.x.y or input.x */
};

struct module {
	const char *file;
	struct term **pkg; /* package path as constant strings */
	uint32_t npkg;
	struct import *imports;
	uint32_t nimports;
};

/* The rule tree: data.<package path>.<rule head path>. */
struct node {
	const char *name;
	struct node *parent;
	struct node **kids;
	uint32_t nkids, capkids;
	struct rule **rules; /* definitions (not default) */
	uint32_t nrules, caprules;
	struct rule *deflt;
	int kind; /* -1 for a prefix node without rules, else enum rkind */
	int id;   /* memo index */
	int nargs;
	int nkeys;  /* RK_OBJ: levels of keys below the node */
	char *path; /* "data.a.b" */
	uint32_t depth;
};

struct rego_policy {
	struct arena A;
	struct module *mods;
	size_t nmods;
	struct rule **rules;
	size_t nrules, caprules;
	struct node *root; /* data */
	int nnodes;
};

struct query {
	struct body *body;
	int nslots;
	const char **names; /* output variable names by slot (NULL = not reported) */
	int nnames;         /* entries in names (slots past it are not reported) */
};

/* parse.c */
int rego_parse_module(struct rego_policy *P, const char *name, const char *src, size_t len,
                      struct err *err);
struct body *rego_parse_body(struct arena *A, const char *name, const char *src, size_t len,
                             struct err *err);
struct term *rego_parse_term(struct arena *A, const char *name, const char *src, size_t len,
                             struct err *err);

/* compile.c */
int rego_compile_policy(struct rego_policy *P, struct err *err);
int rego_compile_query(const struct rego_policy *P, struct arena *A, struct body *b,
                       struct query *q, struct err *err);
struct node *rego_node_find(struct node *root, const char *name);
int rego_fold_constants(struct arena *A, struct term *t); /* 1 if t became TK_VAL */

/* builtins.c */
struct ev;
typedef int (*bi_fn)(struct ev *E, struct val **a, struct val **out);
struct builtin {
	const char *name;
	int arity;
	bi_fn fn;
};
int rego_builtin_find(const char *name);
int rego_builtin_count(void);
const struct builtin *rego_builtin(int i);

/* errors raised while evaluating (eval.c) */
int ev_fail(struct ev *E, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int ev_type_err(struct ev *E, const char *fn, int argi, const char *want, struct val *got);
struct arena *ev_arena(struct ev *E);
uint64_t ev_now_ns(struct ev *E);
/* Charges n steps of builtin work; -1 with the budget error when it runs out (or time does). */
int ev_charge(struct ev *E, uint64_t n);
/* Before decoding n bytes of JSON: -1 with the error when what is left of the memory budget
 * could not hold it (jansson takes up to ~16 bytes per input byte of small values). */
int ev_json_room(struct ev *E, size_t n);
/* Counts a decoded JSON document against the memory budget; -1 with the error when over. */
int ev_account_json(struct ev *E, const json_t *j);

#endif
