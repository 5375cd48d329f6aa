/*
 * builtins: what the files of built-in functions share.
 */
#ifndef CTRUSTEE_REGO_BUILTINS_H
#define CTRUSTEE_REGO_BUILTINS_H

#include "rego/eval.h"

#define K_NULL (1u << V_NULL)
#define K_BOOL (1u << V_BOOL)
#define K_NUM (1u << V_NUM)
#define K_STR (1u << V_STR)
#define K_ARR (1u << V_ARR)
#define K_OBJ (1u << V_OBJ)
#define K_SET (1u << V_SET)
#define K_ANY 0x7fu

int bi_oom(struct ev *E);
/* a type error unless v's kind is one of kinds */
int bi_want(struct ev *E, const char *fn, int argi, struct val *v, unsigned kinds);
int bi_int_arg(struct ev *E, const char *fn, int argi, struct val *v, int64_t *out);
struct val *bi_arr_of(struct ev *E, struct val **items, size_t n);
struct val *bi_obj_merge(struct ev *E, struct val *x, struct val *y);

/* Decode one UTF-8 sequence as Go does: an invalid byte is one U+FFFD rune of length 1. */
size_t rego_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* Rego's text of a value: [1, "a"], {"k": 1}, {1, 2}, set() */
void rego_write_term(struct sbuf *b, struct val *v);

extern const struct builtin rego_builtins_str[];
extern const size_t rego_builtins_str_n;
extern const struct builtin rego_builtins_misc[];
extern const size_t rego_builtins_misc_n;
extern const struct builtin rego_builtins_time[];
extern const size_t rego_builtins_time_n;

#endif
