/*
 * yaml_json: YAML configuration -> jansson (see yaml_json.h for the mapping).
 *
 * libyaml's event parser drives a small explicit stack of open containers, so nesting costs
 * no C stack and is cut at YAML_JSON_MAX_DEPTH before libyaml's own stacks grow far. Every
 * container on the stack is borrowed from its parent (the root is owned by the builder);
 * a mapping frame holds the key read last until its value arrives.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "yaml_json.h"

#define TAG_PREFIX "tag:yaml.org,2002:"

struct frame {
	json_t *node;         /* borrowed: owned by the parent container or by builder.root */
	char *key;            /* owned: a mapping's pending key, NULL while a key is expected */
	yaml_mark_t key_mark; /* where that key starts (a duplicate is reported there) */
};

struct builder {
	struct frame st[YAML_JSON_MAX_DEPTH];
	int depth;    /* open containers; st[depth - 1] is the innermost */
	json_t *root; /* owned */
	int docs;
};

static int fail_at(struct err *err, const yaml_mark_t *m, const char *what)
{
	return err_set(err, "YAML line %zu, column %zu: %s", m->line + 1, m->column + 1, what);
}

/* ---- YAML 1.2 core schema for plain scalars ---- */

static bool is_one_of(const char *s, const char *const *set)
{
	for (; *set; set++)
		if (strcmp(s, *set) == 0)
			return true;
	return false;
}

static const char *const NULLS[] = {"", "~", "null", "Null", "NULL", NULL};
static const char *const TRUES[] = {"true", "True", "TRUE", NULL};
static const char *const FALSES[] = {"false", "False", "FALSE", NULL};

static bool all_digits(const char *s, const char *set)
{
	if (*s == 0)
		return false;
	for (; *s; s++)
		if (strchr(set, *s) == NULL)
			return false;
	return true;
}

/* 1: an integer of the core schema, stored in *v; 0: not one; -1: one that overflows. */
static int core_int(const char *s, json_int_t *v)
{
	int base = 10;
	const char *d = s;
	if (strncmp(s, "0o", 2) == 0 && all_digits(s + 2, "01234567"))
		base = 8, d = s + 2;
	else if (strncmp(s, "0x", 2) == 0 && all_digits(s + 2, "0123456789abcdefABCDEF"))
		base = 16, d = s + 2;
	else if (!all_digits(s + (*s == '-' || *s == '+'), "0123456789"))
		return 0;
	char *end;
	errno = 0;
	long long x = strtoll(d, &end, base);
	if (errno == ERANGE || *end)
		return -1;
	*v = x;
	return 1;
}

/* 1: a finite float of the core schema in *v; 0: not one; -1: inf, nan or out of range
 * (JSON has no such numbers). */
static int core_float(const char *s, double *v)
{
	const char *p = s + (*s == '-' || *s == '+');
	if (!strcmp(p, ".inf") || !strcmp(p, ".Inf") || !strcmp(p, ".INF") ||
	    (p == s && (!strcmp(s, ".nan") || !strcmp(s, ".NaN") || !strcmp(s, ".NAN"))))
		return -1;
	/* [0-9]* ( . [0-9]* )? ( [eE] [-+]? [0-9]+ )?, with at least one digit before e */
	size_t n = strspn(p, "0123456789"), frac = 0;
	if (p[n] == '.')
		frac = strspn(p + n + 1, "0123456789"), p += n + 1 + frac;
	else
		p += n;
	if (n + frac == 0)
		return 0;
	if (*p == 'e' || *p == 'E') {
		p++;
		p += (*p == '-' || *p == '+');
		size_t e = strspn(p, "0123456789");
		if (e == 0)
			return 0;
		p += e;
	}
	if (*p)
		return 0;
	errno = 0;
	*v = strtod(s, NULL);
	return errno == ERANGE || !isfinite(*v) ? -1 : 1;
}

/* The value of a scalar event: plain ones resolved by the core schema, tags obeyed. */
static json_t *scalar_value(const yaml_event_t *ev, struct err *err)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	const char *tag = (const char *)ev->data.scalar.tag;
	const yaml_mark_t *m = &ev->start_mark;
	bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && tag == NULL;
	const char *t = NULL; /* the type a tag asks for: str int float bool null */
	json_int_t i;
	double d;
	int r;

	if (tag && strcmp(tag, "!") != 0) {
		if (strncmp(tag, TAG_PREFIX, strlen(TAG_PREFIX)) != 0 ||
		    !is_one_of(
		        tag + strlen(TAG_PREFIX),
		        (const char *const[]){"str", "int", "float", "bool", "null", NULL})) {
			fail_at(err, m,
			        "only the !!str, !!int, !!float, !!bool and !!null tags are "
			        "supported");
			return NULL;
		}
		t = tag + strlen(TAG_PREFIX);
	}
	if (t == NULL && !plain)
		return json_stringn(s, len);
	if (t && strcmp(t, "str") == 0)
		return json_stringn(s, len);
	if (strlen(s) != len) {
		fail_at(err, m, "a NUL byte in a plain scalar");
		return NULL;
	}
	if ((!t || !strcmp(t, "null")) && is_one_of(s, NULLS))
		return json_null();
	if ((!t || !strcmp(t, "bool")) && is_one_of(s, TRUES))
		return json_true();
	if ((!t || !strcmp(t, "bool")) && is_one_of(s, FALSES))
		return json_false();
	if (!t || !strcmp(t, "int")) {
		if ((r = core_int(s, &i)) == 1)
			return json_integer(i);
		if (r < 0) {
			fail_at(err, m, "an integer that does not fit in 64 bits");
			return NULL;
		}
	}
	if (!t || !strcmp(t, "float")) {
		if ((r = core_float(s, &d)) == 1)
			return json_real(d);
		if (r < 0) {
			fail_at(err, m,
			        "a number JSON cannot hold (infinite, NaN or out of range)");
			return NULL;
		}
	}
	if (t) {
		fail_at(err, m, "a scalar that does not match its tag");
		return NULL;
	}
	return json_stringn(s, len);
}

/* ---- building ---- */

/* Puts a new value (stolen) where the innermost open container expects one. */
static int place(struct builder *b, json_t *v, const yaml_mark_t *m, struct err *err)
{
	if (v == NULL)
		return err->msg[0] ? -1 : fail_at(err, m, "out of memory or invalid UTF-8");
	if (b->depth == 0) {
		if (b->root) {
			json_decref(v);
			return fail_at(err, m, "more than one value at the top level");
		}
		b->root = v;
		return 0;
	}
	struct frame *f = &b->st[b->depth - 1];
	if (json_is_array(f->node))
		return json_array_append_new(f->node, v) == 0 ? 0
		                                              : fail_at(err, m, "out of memory");
	if (json_object_get(f->node, f->key)) {
		json_decref(v);
		err_set(err, "YAML line %zu, column %zu: duplicate key \"%.200s\"",
		        f->key_mark.line + 1, f->key_mark.column + 1, f->key);
		return -1;
	}
	int rc = json_object_set_new(f->node, f->key, v);
	free(f->key);
	f->key = NULL;
	return rc == 0 ? 0 : fail_at(err, m, "out of memory");
}

static bool wants_key(const struct builder *b)
{
	return b->depth > 0 && json_is_object(b->st[b->depth - 1].node) &&
	       b->st[b->depth - 1].key == NULL;
}

static int open_container(struct builder *b, const yaml_event_t *ev, struct err *err)
{
	bool map = ev->type == YAML_MAPPING_START_EVENT;
	const char *tag =
	    (const char *)(map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag);
	if (wants_key(b))
		return fail_at(err, &ev->start_mark, "a mapping key must be a scalar");
	if (tag && strcmp(tag, map ? TAG_PREFIX "map" : TAG_PREFIX "seq") != 0 &&
	    strcmp(tag, "!") != 0)
		return fail_at(err, &ev->start_mark, "tags on collections are not supported");
	if (b->depth >= YAML_JSON_MAX_DEPTH)
		return fail_at(err, &ev->start_mark, "nested deeper than 64 levels");
	json_t *c = map ? json_object() : json_array();
	if (place(b, c, &ev->start_mark, err) < 0)
		return -1;
	b->st[b->depth].node = c;
	b->st[b->depth].key = NULL;
	b->depth++;
	return 0;
}

static int on_scalar(struct builder *b, const yaml_event_t *ev, struct err *err)
{
	if (!wants_key(b))
		return place(b, scalar_value(ev, err), &ev->start_mark, err);
	const char *k = (const char *)ev->data.scalar.value;
	if (strlen(k) != ev->data.scalar.length)
		return fail_at(err, &ev->start_mark, "a NUL byte in a mapping key");
	if ((b->st[b->depth - 1].key = strdup(k)) == NULL)
		return fail_at(err, &ev->start_mark, "out of memory");
	b->st[b->depth - 1].key_mark = ev->start_mark;
	return 0;
}

/* One event; 1 at the end of the stream. */
static int on_event(struct builder *b, const yaml_event_t *ev, struct err *err)
{
	switch (ev->type) {
	case YAML_STREAM_END_EVENT:
		return 1;
	case YAML_DOCUMENT_START_EVENT:
		if (++b->docs > 1)
			return fail_at(err, &ev->start_mark,
			               "a configuration is one YAML document");
		return 0;
	case YAML_ALIAS_EVENT:
		return fail_at(err, &ev->start_mark, "aliases (*name) are not supported");
	case YAML_SCALAR_EVENT:
		return on_scalar(b, ev, err);
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		return open_container(b, ev, err);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		b->depth--;
		free(b->st[b->depth].key);
		b->st[b->depth].key = NULL;
		return 0;
	default:
		return 0;
	}
}

int yaml_json_parse(const uint8_t *buf, size_t len, json_t **out, struct err *err)
{
	struct builder b = {0};
	yaml_parser_t p;
	int rc = 0;

	*out = NULL;
	err_clear(err);
	if (!yaml_parser_initialize(&p))
		return err_set(err, "cannot start the YAML parser");
	yaml_parser_set_input_string(&p, buf, len);
	while (rc == 0) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&p, &ev)) {
			err_set(err, "YAML line %zu, column %zu: %s", p.problem_mark.line + 1,
			        p.problem_mark.column + 1, p.problem ? p.problem : "syntax error");
			rc = -1;
			break;
		}
		rc = on_event(&b, &ev, err);
		yaml_event_delete(&ev);
	}
	for (int i = 0; i < b.depth; i++)
		free(b.st[i].key);
	yaml_parser_delete(&p);
	if (rc < 0) {
		json_decref(b.root);
		return -1;
	}
	if (b.root == NULL)
		return err_set(err, "the YAML document is empty");
	*out = b.root;
	return 0;
}
