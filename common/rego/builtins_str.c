/*
 * builtins_str: strings (with Go's rune semantics, as OPA has them), sprintf (Go's fmt for
 * the argument types OPA hands it: int, big integer, float64 and string), encodings
 * (base64, hex, JSON), regular expressions and glob.match / glob.quote_meta. Patterns are RE2
 * syntax in OPA; PCRE2 in UTF mode accepts that syntax (RE2 is nearly a subset), so it runs them.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <locale.h>
#include <math.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

#include "b64.h"
#include "rego/builtins.h"

/* ------------------------------------------------------------------ UTF-8 and text */

size_t rego_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned c = s[0];
	uint32_t r;
	size_t l;
	if (c < 0x80) {
		if (cp)
			*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF)
		l = 2, r = c & 0x1F;
	else if (c >= 0xE0 && c <= 0xEF)
		l = 3, r = c & 0x0F;
	else if (c >= 0xF0 && c <= 0xF4)
		l = 4, r = c & 0x07;
	else
		goto bad;
	if (l > n)
		goto bad;
	for (size_t i = 1; i < l; i++) {
		if ((s[i] & 0xC0) != 0x80)
			goto bad;
		r = r << 6 | (s[i] & 0x3F);
	}
	if ((l == 3 && (r < 0x800 || (r >= 0xD800 && r < 0xE000))) ||
	    (l == 4 && (r < 0x10000 || r > 0x10FFFF)))
		goto bad;
	if (cp)
		*cp = r;
	return l;
bad:
	if (cp)
		*cp = 0xFFFD;
	return 1;
}

static void put_rune(struct sbuf *b, uint32_t cp)
{
	char o[4];
	size_t n;
	if (cp < 0x80)
		o[0] = (char)cp, n = 1;
	else if (cp < 0x800)
		o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
	else if (cp < 0x10000)
		o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | (cp >> 6 & 0x3F)),
		o[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
	else
		o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | (cp >> 12 & 0x3F)),
		o[2] = (char)(0x80 | (cp >> 6 & 0x3F)), o[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
	sb_add(b, o, n);
}

/* Go's strconv.Quote */
static void go_quote(struct sbuf *b, const char *s, size_t n)
{
	sb_addc(b, '"');
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t l = rego_utf8_decode((const unsigned char *)s + i, n - i, &cp);
		char e[16];
		if (l == 1 && cp == 0xFFFD && (unsigned char)s[i] >= 0x80) {
			snprintf(e, sizeof(e), "\\x%02x", (unsigned char)s[i]);
			sb_adds(b, e);
		} else if (cp == '"' || cp == '\\') {
			sb_addc(b, '\\');
			sb_addc(b, (char)cp);
		} else if (cp == '\n') {
			sb_adds(b, "\\n");
		} else if (cp == '\t') {
			sb_adds(b, "\\t");
		} else if (cp == '\r') {
			sb_adds(b, "\\r");
		} else if (cp < 0x20 || cp == 0x7F) {
			snprintf(e, sizeof(e), "\\x%02x", cp);
			sb_adds(b, e);
		} else {
			sb_add(b, s + i, l);
		}
		i += l;
	}
	sb_addc(b, '"');
}

void rego_write_term(struct sbuf *b, struct val *v)
{
	switch (v->k) {
	case V_STR:
		go_quote(b, v->s, v->n);
		return;
	case V_ARR:
	case V_SET:
		v_force(v);
		if (v->k == V_SET && v->n == 0) {
			sb_adds(b, "set()");
			return;
		}
		sb_addc(b, v->k == V_ARR ? '[' : '{');
		for (uint32_t i = 0; i < v->n; i++) {
			if (i)
				sb_adds(b, ", ");
			rego_write_term(b, v->a[i]);
		}
		sb_addc(b, v->k == V_ARR ? ']' : '}');
		return;
	case V_OBJ:
		v_force(v);
		sb_addc(b, '{');
		for (uint32_t i = 0; i < v->n; i++) {
			if (i)
				sb_adds(b, ", ");
			rego_write_term(b, v->a[i]);
			sb_adds(b, ": ");
			rego_write_term(b, v->ov[i]);
		}
		sb_addc(b, '}');
		return;
	default:
		v_write_json(b, v);
	}
}

static int ret_sbuf(struct ev *E, struct sbuf *b, struct val **out)
{
	if (b->oom) {
		free(b->s);
		return bi_oom(E);
	}
	*out = v_str(E->A, b->s ? b->s : "", b->n);
	free(b->s);
	return *out ? 0 : bi_oom(E);
}

static int ret_str(struct ev *E, const char *s, size_t n, struct val **out)
{
	*out = v_str(E->A, s, n);
	return *out ? 0 : bi_oom(E);
}

#define STR1(fn, v)                                                                                \
	do {                                                                                       \
		if (bi_want(E, fn, 1, v, K_STR) < 0)                                               \
			return -1;                                                                 \
	} while (0)

/* ------------------------------------------------------------------ strings */

static int bi_concat(struct ev *E, struct val **a, struct val **out)
{
	if (bi_want(E, "concat", 1, a[0], K_STR) < 0 ||
	    bi_want(E, "concat", 2, a[1], K_ARR | K_SET) < 0)
		return -1;
	struct sbuf b = {0};
	struct val *c = a[1];
	v_force(c);
	for (uint32_t i = 0; i < c->n; i++) {
		if (c->a[i]->k != V_STR) {
			free(b.s);
			return ev_fail(E, REGO_ERR_EVAL_TYPE,
			               "eval_type_error: concat: operand 2 must be one of {array, "
			               "set} of strings but got %s element",
			               v_type_name(c->a[i]));
		}
		if (i)
			sb_add(&b, a[0]->s, a[0]->n);
		sb_add(&b, c->a[i]->s, c->a[i]->n);
	}
	return ret_sbuf(E, &b, out);
}

static const char *find(const char *h, size_t hn, const char *n, size_t nn)
{
	if (nn == 0)
		return h;
	for (size_t i = 0; i + nn <= hn; i++)
		if (memcmp(h + i, n, nn) == 0)
			return h + i;
	return NULL;
}

static int str2(struct ev *E, const char *fn, struct val **a)
{
	return bi_want(E, fn, 1, a[0], K_STR) < 0 || bi_want(E, fn, 2, a[1], K_STR) < 0 ? -1 : 0;
}

static int bi_contains(struct ev *E, struct val **a, struct val **out)
{
	if (str2(E, "contains", a) < 0)
		return -1;
	*out = v_bool(find(a[0]->s, a[0]->n, a[1]->s, a[1]->n) != NULL);
	return 0;
}

static int bi_startswith(struct ev *E, struct val **a, struct val **out)
{
	if (str2(E, "startswith", a) < 0)
		return -1;
	*out = v_bool(a[0]->n >= a[1]->n && memcmp(a[0]->s, a[1]->s, a[1]->n) == 0);
	return 0;
}

static int bi_endswith(struct ev *E, struct val **a, struct val **out)
{
	if (str2(E, "endswith", a) < 0)
		return -1;
	*out = v_bool(a[0]->n >= a[1]->n &&
	              memcmp(a[0]->s + a[0]->n - a[1]->n, a[1]->s, a[1]->n) == 0);
	return 0;
}

static int any_fix(struct ev *E, struct val **a, struct val **out, int suffix)
{
	const char *fn = suffix ? "strings.any_suffix_match" : "strings.any_prefix_match";
	if (bi_want(E, fn, 1, a[0], K_STR | K_ARR | K_SET) < 0 ||
	    bi_want(E, fn, 2, a[1], K_STR | K_ARR | K_SET) < 0)
		return -1;
	struct val *one[1];
	struct val **xs = one, **ys = one + 0;
	uint32_t nx = 1, ny = 1;
	struct val *ybuf[1];
	if (a[0]->k == V_STR)
		one[0] = a[0];
	else {
		v_force(a[0]);
		xs = a[0]->a;
		nx = a[0]->n;
	}
	if (a[1]->k == V_STR) {
		ybuf[0] = a[1];
		ys = ybuf;
	} else {
		v_force(a[1]);
		ys = a[1]->a;
		ny = a[1]->n;
	}
	for (uint32_t i = 0; i < nx; i++)
		for (uint32_t j = 0; j < ny; j++) {
			struct val *x = xs[i], *y = ys[j];
			if (x->k != V_STR || y->k != V_STR)
				return ev_fail(E, REGO_ERR_EVAL_TYPE,
				               "eval_type_error: %s: operands must be strings", fn);
			if (x->n >= y->n &&
			    memcmp(suffix ? x->s + x->n - y->n : x->s, y->s, y->n) == 0) {
				*out = &rv_true;
				return 0;
			}
		}
	*out = &rv_false;
	return 0;
}

static int bi_any_prefix(struct ev *E, struct val **a, struct val **out)
{
	return any_fix(E, a, out, 0);
}
static int bi_any_suffix(struct ev *E, struct val **a, struct val **out)
{
	return any_fix(E, a, out, 1);
}

/* Unicode simple case mapping from the C library's UTF-8 locale, created once and used
 * through the _l functions so nothing depends on the process locale. */
static locale_t the_utf8_locale;
static void utf8_init(void)
{
	the_utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

static int change_case(struct ev *E, struct val **a, struct val **out, int up)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, utf8_init);
	STR1(up ? "upper" : "lower", a[0]);
	struct sbuf b = {0};
	const unsigned char *s = (const unsigned char *)a[0]->s;
	for (size_t i = 0; i < a[0]->n;) {
		uint32_t cp;
		size_t l = rego_utf8_decode(s + i, a[0]->n - i, &cp);
		if (cp < 0x80)
			cp = (uint32_t)(up ? toupper((int)cp) : tolower((int)cp));
		else if (the_utf8_locale)
			cp = (uint32_t)(up ? towupper_l((wint_t)cp, the_utf8_locale)
			                   : towlower_l((wint_t)cp, the_utf8_locale));
		if (l == 1 && cp == 0xFFFD && s[i] >= 0x80)
			sb_add(&b, (const char *)s + i, 1);
		else
			put_rune(&b, cp);
		i += l;
	}
	return ret_sbuf(E, &b, out);
}

static int bi_lower(struct ev *E, struct val **a, struct val **out)
{
	return change_case(E, a, out, 0);
}
static int bi_upper(struct ev *E, struct val **a, struct val **out)
{
	return change_case(E, a, out, 1);
}

static int bi_split(struct ev *E, struct val **a, struct val **out)
{
	if (str2(E, "split", a) < 0)
		return -1;
	struct val *s = a[0], *d = a[1];
	size_t cap = 8, n = 0;
	struct val **parts = ar_alloc(E->A, cap * sizeof(*parts));
	const char *p = s->s, *end = s->s + s->n;
	for (;;) {
		if (parts == NULL)
			return bi_oom(E);
		if (n + 1 >= cap) {
			struct val **np = ar_alloc(E->A, cap * 2 * sizeof(*np));
			if (np == NULL)
				return bi_oom(E);
			memcpy(np, parts, n * sizeof(*np));
			parts = np;
			cap *= 2;
		}
		if (d->n == 0) {
			if (p == end)
				break;
			size_t l =
			    rego_utf8_decode((const unsigned char *)p, (size_t)(end - p), NULL);
			parts[n++] = v_str(E->A, p, l);
			p += l;
			continue;
		}
		const char *f = find(p, (size_t)(end - p), d->s, d->n);
		if (f == NULL) {
			parts[n++] = v_str(E->A, p, (size_t)(end - p));
			break;
		}
		parts[n++] = v_str(E->A, p, (size_t)(f - p));
		p = f + d->n;
	}
	for (size_t i = 0; i < n; i++)
		if (parts[i] == NULL)
			return bi_oom(E);
	*out = bi_arr_of(E, parts, n);
	return *out ? 0 : bi_oom(E);
}

static int in_cutset(struct val *cut, uint32_t cp)
{
	for (size_t i = 0; i < cut->n;) {
		uint32_t c;
		i += rego_utf8_decode((const unsigned char *)cut->s + i, cut->n - i, &c);
		if (c == cp)
			return 1;
	}
	return 0;
}

static int trim_runes(struct ev *E, const char *fn, struct val **a, struct val **out, int left,
                      int right)
{
	if (str2(E, fn, a) < 0)
		return -1;
	const unsigned char *s = (const unsigned char *)a[0]->s;
	size_t b = 0, e = a[0]->n;
	while (left && b < e) {
		uint32_t cp;
		size_t l = rego_utf8_decode(s + b, e - b, &cp);
		if (!in_cutset(a[1], cp))
			break;
		b += l;
	}
	while (right && e > b) {
		size_t st = e - 1;
		while (st > b && (s[st] & 0xC0) == 0x80 && e - st < 4)
			st--;
		uint32_t cp;
		size_t l = rego_utf8_decode(s + st, e - st, &cp);
		if (st + l != e) {
			st = e - 1;
			cp = 0xFFFD;
		}
		if (!in_cutset(a[1], cp))
			break;
		e = st;
	}
	return ret_str(E, (const char *)s + b, e - b, out);
}

static int bi_trim(struct ev *E, struct val **a, struct val **out)
{
	return trim_runes(E, "trim", a, out, 1, 1);
}
static int bi_trim_left(struct ev *E, struct val **a, struct val **out)
{
	return trim_runes(E, "trim_left", a, out, 1, 0);
}
static int bi_trim_right(struct ev *E, struct val **a, struct val **out)
{
	return trim_runes(E, "trim_right", a, out, 0, 1);
}

static int bi_trim_prefix(struct ev *E, struct val **a, struct val **out)
{
	if (str2(E, "trim_prefix", a) < 0)
		return -1;
	if (a[0]->n >= a[1]->n && memcmp(a[0]->s, a[1]->s, a[1]->n) == 0)
		return ret_str(E, a[0]->s + a[1]->n, a[0]->n - a[1]->n, out);
	*out = a[0];
	return 0;
}

static int bi_trim_suffix(struct ev *E, struct val **a, struct val **out)
{
	if (str2(E, "trim_suffix", a) < 0)
		return -1;
	if (a[0]->n >= a[1]->n && memcmp(a[0]->s + a[0]->n - a[1]->n, a[1]->s, a[1]->n) == 0)
		return ret_str(E, a[0]->s, a[0]->n - a[1]->n, out);
	*out = a[0];
	return 0;
}

static int is_space_rune(uint32_t c)
{
	return c == ' ' || (c >= '\t' && c <= '\r') || c == 0x85 || c == 0xA0 || c == 0x1680 ||
	       (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
	       c == 0x205F || c == 0x3000;
}

static int bi_trim_space(struct ev *E, struct val **a, struct val **out)
{
	STR1("trim_space", a[0]);
	const unsigned char *s = (const unsigned char *)a[0]->s;
	size_t b = 0, e = a[0]->n;
	while (b < e) {
		uint32_t cp;
		size_t l = rego_utf8_decode(s + b, e - b, &cp);
		if (!is_space_rune(cp))
			break;
		b += l;
	}
	while (e > b) {
		size_t st = e - 1;
		while (st > b && (s[st] & 0xC0) == 0x80 && e - st < 4)
			st--;
		uint32_t cp;
		if (st + rego_utf8_decode(s + st, e - st, &cp) != e || !is_space_rune(cp))
			break;
		e = st;
	}
	return ret_str(E, (const char *)s + b, e - b, out);
}

static void replace_all(struct sbuf *b, struct val *s, struct val *old, struct val *new)
{
	const char *p = s->s, *end = s->s + s->n;
	if (old->n == 0) {
		sb_add(b, new->s, new->n);
		while (p < end) {
			size_t l =
			    rego_utf8_decode((const unsigned char *)p, (size_t)(end - p), NULL);
			sb_add(b, p, l);
			sb_add(b, new->s, new->n);
			p += l;
		}
		return;
	}
	for (;;) {
		const char *f = find(p, (size_t)(end - p), old->s, old->n);
		if (f == NULL) {
			sb_add(b, p, (size_t)(end - p));
			return;
		}
		sb_add(b, p, (size_t)(f - p));
		sb_add(b, new->s, new->n);
		p = f + old->n;
	}
}

static int bi_replace(struct ev *E, struct val **a, struct val **out)
{
	if (str2(E, "replace", a) < 0 || bi_want(E, "replace", 3, a[2], K_STR) < 0)
		return -1;
	struct sbuf b = {0};
	replace_all(&b, a[0], a[1], a[2]);
	return ret_sbuf(E, &b, out);
}

static int bi_replace_n(struct ev *E, struct val **a, struct val **out)
{
	if (bi_want(E, "strings.replace_n", 1, a[0], K_OBJ) < 0 ||
	    bi_want(E, "strings.replace_n", 2, a[1], K_STR) < 0)
		return -1;
	struct val *pat = a[0];
	v_force(pat);
	for (uint32_t i = 0; i < pat->n; i++)
		if (pat->a[i]->k != V_STR || pat->ov[i]->k != V_STR)
			return ev_fail(E, REGO_ERR_EVAL_TYPE,
			               "eval_type_error: strings.replace_n: operand 1 must be an "
			               "object of strings");
	/* Go's strings.Replacer: at each position the first pattern (in key order) that
	 * matches wins */
	struct sbuf b = {0};
	const char *s = a[1]->s;
	size_t n = a[1]->n;
	for (size_t i = 0; i < n;) {
		int hit = 0;
		for (uint32_t j = 0; j < pat->n && !hit; j++) {
			struct val *k = pat->a[j];
			if (k->n && k->n <= n - i && memcmp(s + i, k->s, k->n) == 0) {
				sb_add(&b, pat->ov[j]->s, pat->ov[j]->n);
				i += k->n;
				hit = 1;
			}
		}
		if (!hit)
			sb_addc(&b, s[i++]);
	}
	return ret_sbuf(E, &b, out);
}

/* rune offsets */
static size_t rune_offset(const char *s, size_t n, int64_t runes)
{
	size_t i = 0;
	while (runes-- > 0 && i < n)
		i += rego_utf8_decode((const unsigned char *)s + i, n - i, NULL);
	return i;
}

static int64_t rune_count(const char *s, size_t n)
{
	int64_t c = 0;
	for (size_t i = 0; i < n; c++)
		i += rego_utf8_decode((const unsigned char *)s + i, n - i, NULL);
	return c;
}

static int bi_substring(struct ev *E, struct val **a, struct val **out)
{
	int64_t st, len;
	if (bi_want(E, "substring", 1, a[0], K_STR) < 0 ||
	    bi_int_arg(E, "substring", 2, a[1], &st) < 0 ||
	    bi_int_arg(E, "substring", 3, a[2], &len) < 0)
		return -1;
	if (st < 0)
		return ev_fail(E, REGO_ERR_BUILTIN,
		               "eval_builtin_error: substring: negative offset");
	size_t b = rune_offset(a[0]->s, a[0]->n, st);
	size_t e = len < 0 ? a[0]->n : b + rune_offset(a[0]->s + b, a[0]->n - b, len);
	return ret_str(E, a[0]->s + b, e - b, out);
}

static int bi_indexof(struct ev *E, struct val **a, struct val **out)
{
	if (str2(E, "indexof", a) < 0)
		return -1;
	if (a[1]->n == 0)
		return ev_fail(E, REGO_ERR_BUILTIN,
		               "eval_builtin_error: indexof: empty search character");
	const char *f = find(a[0]->s, a[0]->n, a[1]->s, a[1]->n);
	*out = v_int(E->A, f ? rune_count(a[0]->s, (size_t)(f - a[0]->s)) : -1);
	return *out ? 0 : bi_oom(E);
}

static int bi_indexof_n(struct ev *E, struct val **a, struct val **out)
{
	if (str2(E, "indexof_n", a) < 0)
		return -1;
	if (a[1]->n == 0)
		return ev_fail(E, REGO_ERR_BUILTIN,
		               "eval_builtin_error: indexof_n: empty search character");
	struct val *items[4096];
	size_t n = 0;
	const char *p = a[0]->s, *end = a[0]->s + a[0]->n;
	while (n < 4096) {
		const char *f = find(p, (size_t)(end - p), a[1]->s, a[1]->n);
		if (f == NULL || (a[1]->n == 0 && f >= end))
			break;
		if ((items[n++] = v_int(E->A, rune_count(a[0]->s, (size_t)(f - a[0]->s)))) == NULL)
			return bi_oom(E);
		p = f + (a[1]->n ? a[1]->n : 1);
	}
	*out = bi_arr_of(E, items, n);
	return *out ? 0 : bi_oom(E);
}

static int bi_strings_reverse(struct ev *E, struct val **a, struct val **out)
{
	STR1("strings.reverse", a[0]);
	char *r = ar_alloc(E->A, (size_t)a[0]->n + 1);
	if (r == NULL)
		return bi_oom(E);
	size_t o = a[0]->n;
	for (size_t i = 0; i < a[0]->n;) {
		size_t l = rego_utf8_decode((const unsigned char *)a[0]->s + i, a[0]->n - i, NULL);
		o -= l;
		memcpy(r + o, a[0]->s + i, l);
		i += l;
	}
	*out = v_str_ref(E->A, r, a[0]->n);
	return *out ? 0 : bi_oom(E);
}

static int bi_strings_count(struct ev *E, struct val **a, struct val **out)
{
	if (str2(E, "strings.count", a) < 0)
		return -1;
	int64_t c = 0;
	if (a[1]->n == 0) {
		c = rune_count(a[0]->s, a[0]->n) + 1;
	} else {
		const char *p = a[0]->s, *end = p + a[0]->n, *f;
		while ((f = find(p, (size_t)(end - p), a[1]->s, a[1]->n)) != NULL) {
			c++;
			p = f + a[1]->n;
		}
	}
	*out = v_int(E->A, c);
	return *out ? 0 : bi_oom(E);
}

static int bi_format_int(struct ev *E, struct val **a, struct val **out)
{
	int64_t base;
	if (bi_want(E, "format_int", 1, a[0], K_NUM) < 0 ||
	    bi_int_arg(E, "format_int", 2, a[1], &base) < 0)
		return -1;
	if (base != 2 && base != 8 && base != 10 && base != 16)
		return ev_fail(
		    E, REGO_ERR_BUILTIN,
		    "eval_builtin_error: format_int: operand 2 must be one of {2, 8, 10, 16}");
	double d = v_num_to_double(a[0]);
	int64_t x;
	if (!v_num_is_int(a[0], &x))
		x = (int64_t)trunc(d);
	char buf[80], *p = buf + sizeof(buf) - 1;
	*p = '\0';
	uint64_t u = x < 0 ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
	do {
		*--p = "0123456789abcdef"[u % (uint64_t)base];
		u /= (uint64_t)base;
	} while (u);
	if (x < 0)
		*--p = '-';
	return ret_str(E, p, strlen(p), out);
}

/* ------------------------------------------------------------------ sprintf */

enum farg { FA_INT, FA_BIG, FA_FLOAT, FA_STR };

struct fmtarg {
	enum farg t;
	int64_t i;
	double f;
	const char *s; /* FA_BIG digits (with sign), FA_STR bytes */
	size_t n;
};

static void pad(struct sbuf *b, const char *s, size_t n, int width, int minus, int zero)
{
	size_t runes = (size_t)rune_count(s, n);
	if (width > 0 && (size_t)width > runes && !minus) {
		size_t k = (size_t)width - runes;
		if (zero && n && (s[0] == '-' || s[0] == '+')) {
			sb_addc(b, s[0]);
			s++;
			n--;
		}
		while (k--)
			sb_addc(b, zero ? '0' : ' ');
	}
	sb_add(b, s, n);
	if (width > 0 && (size_t)width > runes && minus)
		for (size_t k = (size_t)width - runes; k--;)
			sb_addc(b, ' ');
}

/* Go's %g / %v for a float64 (shortest digits when prec < 0) */
static void go_float_g(char *out, size_t cap, double f, int prec, int upper)
{
	if (isinf(f)) {
		snprintf(out, cap, f > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (isnan(f)) {
		snprintf(out, cap, "NaN");
		return;
	}
	char e[64];
	int p = prec;
	if (p < 0) {
		for (p = 1; p <= 17; p++) {
			snprintf(e, sizeof(e), "%.*e", p - 1, f);
			if (strtod(e, NULL) == f)
				break;
		}
	} else if (p == 0) {
		p = 1;
	}
	snprintf(e, sizeof(e), "%.*e", p - 1, f);
	int exp = atoi(strchr(e, 'e') + 1);
	/* Go: %e when the exponent is below -4 or at least the precision (6 when shortest) */
	int eprec = prec < 0 ? 6 : p;
	if (exp < -4 || exp >= eprec) {
		/* mantissa without trailing zeros, exponent with at least two digits */
		char m[64];
		snprintf(m, sizeof(m), "%.*e", p - 1, f);
		char *ep = strchr(m, 'e');
		*ep = '\0';
		if (strchr(m, '.')) {
			char *z = m + strlen(m) - 1;
			while (*z == '0')
				*z-- = '\0';
			if (*z == '.')
				*z = '\0';
		}
		snprintf(out, cap, "%s%c%c%02d", m, upper ? 'E' : 'e', exp < 0 ? '-' : '+',
		         exp < 0 ? -exp : exp);
		return;
	}
	int decimals = p - 1 - exp;
	if (decimals < 0)
		decimals = 0;
	snprintf(out, cap, "%.*f", decimals, f);
	if (strchr(out, '.')) {
		char *z = out + strlen(out) - 1;
		while (*z == '0')
			*z-- = '\0';
		if (*z == '.')
			*z = '\0';
	}
}

static void go_bad_verb(struct sbuf *b, char verb, const struct fmtarg *x)
{
	char tmp[64];
	sb_adds(b, "%!");
	sb_addc(b, verb);
	sb_addc(b, '(');
	switch (x->t) {
	case FA_INT:
		snprintf(tmp, sizeof(tmp), "int=%lld", (long long)x->i);
		sb_adds(b, tmp);
		break;
	case FA_BIG:
		sb_adds(b, "*big.Int=");
		sb_add(b, x->s, x->n);
		break;
	case FA_FLOAT:
		go_float_g(tmp, sizeof(tmp), x->f, -1, 0);
		sb_adds(b, "float64=");
		sb_adds(b, tmp);
		break;
	case FA_STR:
		sb_adds(b, "string=");
		sb_add(b, x->s, x->n);
		break;
	}
	sb_addc(b, ')');
}

static void fmt_one(struct sbuf *b, char verb, const struct fmtarg *x, int plus, int minus,
                    int zero, int sharp, int space, int width, int prec)
{
	char tmp[512];
	struct sbuf t = {0};
	switch (x->t) {
	case FA_INT:
	case FA_BIG: {
		if (verb == 'v' || verb == 'd' || (verb == 's' && x->t == FA_BIG)) {
			if (x->t == FA_INT)
				snprintf(tmp, sizeof(tmp), "%s%lld",
				         plus && x->i >= 0    ? "+"
				         : space && x->i >= 0 ? " "
				                              : "",
				         (long long)x->i);
			else
				snprintf(tmp, sizeof(tmp), "%s%.*s",
				         plus && x->s[0] != '-' ? "+" : "", (int)x->n, x->s);
			sb_adds(&t, tmp);
		} else if (x->t == FA_INT && (verb == 'x' || verb == 'X' || verb == 'o' ||
		                              verb == 'b' || verb == 'O')) {
			uint64_t u = x->i < 0 ? (uint64_t)0 - (uint64_t)x->i : (uint64_t)x->i;
			int base = verb == 'o' || verb == 'O' ? 8 : verb == 'b' ? 2 : 16;
			const char *dig = verb == 'X' ? "0123456789ABCDEF" : "0123456789abcdef";
			char buf[80], *p = buf + sizeof(buf) - 1;
			*p = '\0';
			do {
				*--p = dig[u % (uint64_t)base];
				u /= (uint64_t)base;
			} while (u);
			if (sharp && base == 16)
				*--p = verb, *--p = '0';
			else if ((sharp && base == 8) || verb == 'O')
				*--p = verb == 'O' ? 'o' : '0',
				verb == 'O' ? (void)(*--p = '0') : (void)0;
			if (x->i < 0)
				*--p = '-';
			sb_adds(&t, p);
		} else if (x->t == FA_INT && (verb == 'e' || verb == 'f' || verb == 'g' ||
		                              verb == 'E' || verb == 'F' || verb == 'G')) {
			go_bad_verb(&t, verb, x);
		} else if (x->t == FA_INT && verb == 'c') {
			put_rune(&t, (uint32_t)x->i);
		} else {
			go_bad_verb(&t, verb, x);
		}
		break;
	}
	case FA_FLOAT:
		if (verb == 'v' || verb == 'g' || verb == 'G') {
			go_float_g(tmp, sizeof(tmp), x->f, prec, verb == 'G');
			if (plus && x->f >= 0)
				sb_addc(&t, '+');
			sb_adds(&t, tmp);
		} else if (verb == 'f' || verb == 'F' || verb == 'e' || verb == 'E') {
			char spec[16];
			snprintf(spec, sizeof(spec), "%%%s.%d%c", plus ? "+" : "",
			         prec < 0 ? 6 : prec, verb == 'F' ? 'f' : verb);
			snprintf(tmp, sizeof(tmp), spec, x->f);
			sb_adds(&t, tmp);
		} else {
			go_bad_verb(&t, verb, x);
		}
		break;
	case FA_STR:
		if (verb == 'v' || verb == 's') {
			size_t n = x->n;
			if (prec >= 0)
				n = rune_offset(x->s, x->n, prec);
			sb_add(&t, x->s, n);
		} else if (verb == 'q') {
			go_quote(&t, x->s, x->n);
		} else if (verb == 'x' || verb == 'X') {
			for (size_t i = 0; i < x->n; i++) {
				snprintf(tmp, sizeof(tmp), verb == 'x' ? "%02x" : "%02X",
				         (unsigned char)x->s[i]);
				sb_adds(&t, tmp);
			}
		} else {
			go_bad_verb(&t, verb, x);
		}
		break;
	}
	pad(b, t.s ? t.s : "", t.n, width, minus, zero && x->t != FA_STR);
	free(t.s);
}

static int bi_sprintf(struct ev *E, struct val **a, struct val **out)
{
	if (bi_want(E, "sprintf", 1, a[0], K_STR) < 0 || bi_want(E, "sprintf", 2, a[1], K_ARR) < 0)
		return -1;
	struct val *arr = a[1];
	v_force(arr);
	struct fmtarg *args = ar_alloc(E->A, ((size_t)arr->n + 1) * sizeof(*args));
	if (args == NULL)
		return bi_oom(E);
	for (uint32_t i = 0; i < arr->n; i++) {
		struct val *v = arr->a[i];
		if (v->k == V_NUM) {
			if (v->isint) {
				args[i] = (struct fmtarg){.t = FA_INT, .i = v->i};
			} else if (v_num_is_integral(v)) {
				char *s = v_num_to_text(E->A, v);
				args[i] = (struct fmtarg){
				    .t = FA_BIG, .s = s ? s : "0", .n = s ? strlen(s) : 1};
			} else {
				args[i] = (struct fmtarg){.t = FA_FLOAT, .f = v_num_to_double(v)};
			}
		} else if (v->k == V_STR) {
			args[i] = (struct fmtarg){.t = FA_STR, .s = v->s, .n = v->n};
		} else {
			struct sbuf tb = {0};
			rego_write_term(&tb, v);
			char *s = ar_strndup(E->A, tb.s ? tb.s : "", tb.n);
			size_t n = tb.n;
			free(tb.s);
			if (s == NULL)
				return bi_oom(E);
			args[i] = (struct fmtarg){.t = FA_STR, .s = s, .n = n};
		}
	}
	struct sbuf b = {0};
	const char *f = a[0]->s, *end = f + a[0]->n;
	uint32_t argi = 0;
	while (f < end) {
		if (*f != '%') {
			sb_addc(&b, *f++);
			continue;
		}
		f++;
		if (f < end && *f == '%') {
			sb_addc(&b, '%');
			f++;
			continue;
		}
		int plus = 0, minus = 0, zero = 0, sharp = 0, space = 0, width = -1, prec = -1;
		for (; f < end && strchr("+-0# ", *f); f++) {
			plus |= *f == '+';
			minus |= *f == '-';
			zero |= *f == '0';
			sharp |= *f == '#';
			space |= *f == ' ';
		}
		if (f < end && isdigit((unsigned char)*f)) {
			width = 0;
			while (f < end && isdigit((unsigned char)*f) && width < 10000)
				width = width * 10 + (*f++ - '0');
		}
		if (f < end && *f == '.') {
			f++;
			prec = 0;
			while (f < end && isdigit((unsigned char)*f) && prec < 10000)
				prec = prec * 10 + (*f++ - '0');
		}
		if (f >= end) {
			sb_adds(&b, "%!(NOVERB)");
			break;
		}
		char verb = *f++;
		if (argi >= arr->n) {
			sb_adds(&b, "%!");
			sb_addc(&b, verb);
			sb_adds(&b, "(MISSING)");
			continue;
		}
		fmt_one(&b, verb, &args[argi++], plus, minus, zero, sharp, space, width, prec);
	}
	if (argi < arr->n) {
		sb_adds(&b, "%!(EXTRA ");
		for (uint32_t i = argi; i < arr->n; i++) {
			if (i > argi)
				sb_adds(&b, ", ");
			struct sbuf t = {0};
			go_bad_verb(&t, 'v', &args[i]);
			/* "%!v(int=1)" -> "int=1" */
			if (t.s && t.n > 4)
				sb_add(&b, t.s + 4, t.n - 5);
			free(t.s);
		}
		sb_addc(&b, ')');
	}
	return ret_sbuf(E, &b, out);
}

/* ------------------------------------------------------------------ encodings */

static int b64enc(struct ev *E, const char *fn, struct val **a, struct val **out, int variant,
                  int nopad)
{
	STR1(fn, a[0]);
	char *s = b64_encode((const uint8_t *)a[0]->s, a[0]->n, variant);
	if (s == NULL)
		return bi_oom(E);
	size_t n = strlen(s);
	if (nopad)
		while (n && s[n - 1] == '=')
			n--;
	int rc = ret_str(E, s, n, out);
	free(s);
	return rc;
}

static int b64dec(struct ev *E, const char *fn, struct val **a, struct val **out, int variant,
                  int check)
{
	STR1(fn, a[0]);
	uint8_t *d;
	size_t n;
	if (b64_decode(a[0]->s, a[0]->n, variant, &d, &n) < 0) {
		if (check) {
			*out = &rv_false;
			return 0;
		}
		return ev_fail(E, REGO_ERR_BUILTIN, "eval_builtin_error: %s: illegal base64 data",
		               fn);
	}
	int rc = check ? (*out = &rv_true, 0) : ret_str(E, (const char *)d, n, out);
	free(d);
	return rc;
}

static int bi_b64_encode(struct ev *E, struct val **a, struct val **out)
{
	return b64enc(E, "base64.encode", a, out, B64_STD, 0);
}
static int bi_b64_decode(struct ev *E, struct val **a, struct val **out)
{
	return b64dec(E, "base64.decode", a, out, B64_STD, 0);
}
static int bi_b64_is_valid(struct ev *E, struct val **a, struct val **out)
{
	return b64dec(E, "base64.is_valid", a, out, B64_STD, 1);
}
static int bi_b64url_encode(struct ev *E, struct val **a, struct val **out)
{
	return b64enc(E, "base64url.encode", a, out, B64_URL_PAD, 0);
}
static int bi_b64url_encode_no_pad(struct ev *E, struct val **a, struct val **out)
{
	return b64enc(E, "base64url.encode_no_pad", a, out, B64_URL, 1);
}
static int bi_b64url_decode(struct ev *E, struct val **a, struct val **out)
{
	int variant = a[0]->k == V_STR && a[0]->n % 4 == 0 ? B64_URL_PAD : B64_URL;
	return b64dec(E, "base64url.decode", a, out, variant, 0);
}

static int bi_hex_encode(struct ev *E, struct val **a, struct val **out)
{
	STR1("hex.encode", a[0]);
	char *h = hex_encode((const uint8_t *)a[0]->s, a[0]->n);
	if (h == NULL)
		return bi_oom(E);
	int rc = ret_str(E, h, strlen(h), out);
	free(h);
	return rc;
}

static int bi_hex_decode(struct ev *E, struct val **a, struct val **out)
{
	STR1("hex.decode", a[0]);
	uint8_t *d;
	size_t n;
	if (hex_decode(a[0]->s, a[0]->n, &d, &n) < 0)
		return ev_fail(E, REGO_ERR_BUILTIN,
		               "eval_builtin_error: hex.decode: invalid byte in %s", a[0]->s);
	int rc = ret_str(E, (const char *)d, n, out);
	free(d);
	return rc;
}

static int bi_json_marshal(struct ev *E, struct val **a, struct val **out)
{
	struct sbuf b = {0};
	v_write_json(&b, a[0]);
	return ret_sbuf(E, &b, out);
}

static void indent(struct sbuf *b, const char *prefix, const char *ind, int depth)
{
	sb_addc(b, '\n');
	sb_adds(b, prefix);
	for (int i = 0; i < depth; i++)
		sb_adds(b, ind);
}

static void json_pretty(struct sbuf *b, struct val *v, const char *prefix, const char *ind,
                        int depth)
{
	if (v->k != V_ARR && v->k != V_SET && v->k != V_OBJ) {
		v_write_json(b, v);
		return;
	}
	v_force(v);
	if (v->n == 0) {
		sb_adds(b, v->k == V_OBJ ? "{}" : "[]");
		return;
	}
	sb_addc(b, v->k == V_OBJ ? '{' : '[');
	for (uint32_t i = 0; i < v->n; i++) {
		if (i)
			sb_addc(b, ',');
		indent(b, prefix, ind, depth + 1);
		if (v->k == V_OBJ) {
			if (v->a[i]->k == V_STR)
				v_write_json(b, v->a[i]);
			else {
				char *k = v_to_json_text(v->a[i]);
				sb_json_str(b, k ? k : "", k ? strlen(k) : 0);
				free(k);
			}
			sb_adds(b, ": ");
			json_pretty(b, v->ov[i], prefix, ind, depth + 1);
		} else {
			json_pretty(b, v->a[i], prefix, ind, depth + 1);
		}
	}
	indent(b, prefix, ind, depth);
	sb_addc(b, v->k == V_OBJ ? '}' : ']');
}

static int bi_json_marshal_with_options(struct ev *E, struct val **a, struct val **out)
{
	if (bi_want(E, "json.marshal_with_options", 2, a[1], K_OBJ) < 0)
		return -1;
	struct val *o = a[1], *pretty = v_obj_get_str(o, "pretty", 6),
	           *pre = v_obj_get_str(o, "prefix", 6), *ind = v_obj_get_str(o, "indent", 6);
	int pr = pretty ? pretty->k == V_BOOL && pretty->b : (pre || ind);
	struct sbuf b = {0};
	if (!pr) {
		v_write_json(&b, a[0]);
	} else {
		sb_adds(&b, pre && pre->k == V_STR ? pre->s : "");
		json_pretty(&b, a[0], pre && pre->k == V_STR ? pre->s : "",
		            ind && ind->k == V_STR ? ind->s : "\t", 0);
	}
	return ret_sbuf(E, &b, out);
}

static int keep_json(struct ev *E, json_t *j)
{
	if (E->nkeep == E->capkeep) {
		size_t nc = E->capkeep ? E->capkeep * 2 : 8;
		json_t **nk = realloc(E->keep, nc * sizeof(*nk));
		if (nk == NULL)
			return -1;
		E->keep = nk;
		E->capkeep = nc;
	}
	E->keep[E->nkeep++] = j;
	return 0;
}

static int bi_json_unmarshal(struct ev *E, struct val **a, struct val **out)
{
	STR1("json.unmarshal", a[0]);
	if (ev_json_room(E, a[0]->n) < 0)
		return -1;
	json_error_t je;
	json_t *j = json_loadb(a[0]->s, a[0]->n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
	if (j == NULL) {
		/* numbers beyond int64 are valid JSON: read them as a Rego term */
		struct err e2 = {0};
		struct term *t = rego_parse_term(E->A, "json", a[0]->s, a[0]->n, &e2);
		if (t && rego_fold_constants(E->A, t) && t->v->k != V_SET) {
			*out = t->v;
			return 0;
		}
		return ev_fail(E, REGO_ERR_BUILTIN, "eval_builtin_error: json.unmarshal: %s",
		               je.text);
	}
	if (keep_json(E, j) < 0) {
		json_decref(j);
		return bi_oom(E);
	}
	if (ev_account_json(E, j) < 0)
		return -1;
	*out = v_from_json(E->A, j);
	return *out ? 0 : bi_oom(E);
}

static int bi_json_is_valid(struct ev *E, struct val **a, struct val **out)
{
	if (a[0]->k != V_STR) {
		*out = &rv_false;
		return 0;
	}
	json_t *j = json_loadb(a[0]->s, a[0]->n, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	*out = v_bool(j != NULL);
	json_decref(j);
	return 0;
}

/* json.filter / json.remove: paths as "a/b/c" strings or arrays of keys */
struct pathset {
	struct val ***paths;
	uint32_t *lens;
	uint32_t n;
};

static int parse_paths(struct ev *E, const char *fn, struct val *ps, struct pathset *out)
{
	if (bi_want(E, fn, 2, ps, K_ARR | K_SET) < 0)
		return -1;
	v_force(ps);
	out->n = ps->n;
	out->paths = ar_alloc(E->A, ((size_t)ps->n + 1) * sizeof(*out->paths));
	out->lens = ar_alloc(E->A, ((size_t)ps->n + 1) * sizeof(*out->lens));
	if (out->paths == NULL || out->lens == NULL)
		return bi_oom(E);
	for (uint32_t i = 0; i < ps->n; i++) {
		struct val *p = ps->a[i];
		if (p->k == V_ARR) {
			v_force(p);
			out->paths[i] = p->a;
			out->lens[i] = p->n;
			continue;
		}
		if (p->k != V_STR)
			return ev_fail(E, REGO_ERR_EVAL_TYPE,
			               "eval_type_error: %s: paths must be strings or arrays", fn);
		const char *s = p->s, *end = p->s + p->n;
		while (s < end && *s == '/')
			s++;
		struct val **segs = ar_alloc(E->A, ((size_t)p->n + 1) * sizeof(*segs));
		uint32_t n = 0;
		if (segs == NULL)
			return bi_oom(E);
		while (s < end) {
			const char *e = memchr(s, '/', (size_t)(end - s));
			if (e == NULL)
				e = end;
			if ((segs[n++] = v_str(E->A, s, (size_t)(e - s))) == NULL)
				return bi_oom(E);
			s = e + 1;
		}
		out->paths[i] = segs;
		out->lens[i] = n;
	}
	return 0;
}

static int seg_match(struct val *seg, struct val *key, int arr_index)
{
	if (v_eq(seg, key))
		return 1;
	/* "0" names array index 0 */
	if (arr_index && seg->k == V_STR && key->k == V_NUM) {
		char buf[32];
		snprintf(buf, sizeof(buf), "%lld", (long long)key->i);
		return strcmp(seg->s, buf) == 0;
	}
	return 0;
}

static struct val *json_filter(struct ev *E, struct val *v, struct pathset *ps, uint32_t depth,
                               const uint8_t *live, int remove)
{
	if (v->k != V_OBJ && v->k != V_ARR && v->k != V_SET)
		return v;
	v_force(v);
	struct val **ks = ar_alloc(E->A, ((size_t)v->n + 1) * sizeof(*ks)),
	           **vs = ar_alloc(E->A, ((size_t)v->n + 1) * sizeof(*vs));
	uint8_t *sub = ar_alloc(E->A, (size_t)ps->n + 1);
	size_t n = 0;
	if (ks == NULL || vs == NULL || sub == NULL)
		return NULL;
	for (uint32_t i = 0; i < v->n; i++) {
		struct val *key = v->k == V_ARR ? v_int(E->A, i) : v->a[i];
		struct val *child = v->k == V_OBJ ? v->ov[i] : v->a[i];
		int any = 0, whole = 0;
		for (uint32_t p = 0; p < ps->n; p++) {
			sub[p] = 0;
			if (!live[p] || ps->lens[p] <= depth ||
			    !seg_match(ps->paths[p][depth], key, v->k == V_ARR))
				continue;
			any = 1;
			if (ps->lens[p] == depth + 1)
				whole = 1;
			else
				sub[p] = 1;
		}
		struct val *nv = child;
		if (remove) {
			if (whole)
				continue;
			if (any && (nv = json_filter(E, child, ps, depth + 1, sub, 1)) == NULL)
				return NULL;
		} else {
			if (!any)
				continue;
			if (!whole && (nv = json_filter(E, child, ps, depth + 1, sub, 0)) == NULL)
				return NULL;
		}
		ks[n] = key;
		vs[n++] = nv;
	}
	if (v->k == V_OBJ) {
		int dup;
		return v_obj_build(E->A, ks, vs, n, &dup);
	}
	if (v->k == V_SET)
		return v_set_build(E->A, vs, n);
	return bi_arr_of(E, vs, n);
}

static int json_fr(struct ev *E, const char *fn, struct val **a, struct val **out, int remove)
{
	struct pathset ps;
	if (bi_want(E, fn, 1, a[0], K_OBJ) < 0 || parse_paths(E, fn, a[1], &ps) < 0)
		return -1;
	uint8_t *live = ar_alloc(E->A, (size_t)ps.n + 1);
	if (live == NULL)
		return bi_oom(E);
	memset(live, 1, ps.n);
	*out = json_filter(E, a[0], &ps, 0, live, remove);
	return *out ? 0 : bi_oom(E);
}

static int bi_json_filter(struct ev *E, struct val **a, struct val **out)
{
	return json_fr(E, "json.filter", a, out, 0);
}
static int bi_json_remove(struct ev *E, struct val **a, struct val **out)
{
	return json_fr(E, "json.remove", a, out, 1);
}

/* ------------------------------------------------------------------ regular expressions */

static pcre2_code *re_compile(struct ev *E, const char *fn, const char *pat, size_t n, int quiet)
{
	int ec;
	PCRE2_SIZE eo;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, n,
	                               PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY,
	                               &ec, &eo, NULL);
	if (re == NULL && !quiet) {
		PCRE2_UCHAR msg[160];
		pcre2_get_error_message(ec, msg, sizeof(msg));
		ev_fail(E, REGO_ERR_BUILTIN, "eval_builtin_error: %s: error parsing regexp: %s", fn,
		        (char *)msg);
	}
	return re;
}

struct rematch {
	pcre2_code *re;
	pcre2_match_data *md;
	const char *s;
	size_t n;
	size_t off;
};

/* next match (Go semantics: an empty match right after the previous match is skipped) */
static int re_next(struct rematch *m, PCRE2_SIZE **ov, size_t *last_end, int *have_last)
{
	while (m->off <= m->n) {
		int rc = pcre2_match(m->re, (PCRE2_SPTR)m->s, m->n, m->off, 0, m->md, NULL);
		if (rc < 0)
			return 0;
		*ov = pcre2_get_ovector_pointer(m->md);
		size_t st = (*ov)[0], en = (*ov)[1];
		if (st == en && *have_last && st == *last_end) {
			/* advance one rune and retry */
			if (m->off >= m->n)
				return 0;
			m->off += rego_utf8_decode((const unsigned char *)m->s + m->off,
			                           m->n - m->off, NULL);
			continue;
		}
		m->off = en > st
		             ? en
		             : en + (en < m->n ? rego_utf8_decode((const unsigned char *)m->s + en,
		                                                  m->n - en, NULL)
		                               : 1);
		*last_end = en;
		*have_last = 1;
		return rc;
	}
	return 0;
}

static int re_setup(struct ev *E, const char *fn, struct val *pat, struct val *s, struct rematch *m)
{
	if (bi_want(E, fn, 1, pat, K_STR) < 0 || bi_want(E, fn, 2, s, K_STR) < 0)
		return -1;
	m->re = re_compile(E, fn, pat->s, pat->n, 0);
	if (m->re == NULL)
		return -1;
	m->md = pcre2_match_data_create_from_pattern(m->re, NULL);
	if (m->md == NULL) {
		pcre2_code_free(m->re);
		return bi_oom(E);
	}
	m->s = s->s;
	m->n = s->n;
	m->off = 0;
	return 0;
}

static void re_done(struct rematch *m)
{
	pcre2_match_data_free(m->md);
	pcre2_code_free(m->re);
}

static int bi_regex_match(struct ev *E, struct val **a, struct val **out)
{
	struct rematch m;
	if (re_setup(E, "regex.match", a[0], a[1], &m) < 0)
		return -1;
	int rc = pcre2_match(m.re, (PCRE2_SPTR)m.s, m.n, 0, 0, m.md, NULL);
	re_done(&m);
	*out = v_bool(rc >= 0);
	return 0;
}

static int bi_regex_is_valid(struct ev *E, struct val **a, struct val **out)
{
	if (a[0]->k != V_STR) {
		*out = &rv_false;
		return 0;
	}
	pcre2_code *re = re_compile(E, "regex.is_valid", a[0]->s, a[0]->n, 1);
	*out = v_bool(re != NULL);
	pcre2_code_free(re);
	return 0;
}

static int find_all(struct ev *E, const char *fn, struct val **a, struct val **out, int submatch)
{
	int64_t limit;
	struct rematch m;
	if (bi_int_arg(E, fn, 3, a[2], &limit) < 0 || re_setup(E, fn, a[0], a[1], &m) < 0)
		return -1;
	struct val **items = NULL;
	size_t n = 0, cap = 0, last = 0;
	int have = 0, rc;
	PCRE2_SIZE *ov;
	while ((limit < 0 || (int64_t)n < limit) && (rc = re_next(&m, &ov, &last, &have)) > 0) {
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			struct val **ni = ar_alloc(E->A, cap * sizeof(*ni));
			if (ni == NULL)
				goto oom;
			if (n)
				memcpy(ni, items, n * sizeof(*ni));
			items = ni;
		}
		if (!submatch) {
			items[n] = v_str(E->A, m.s + ov[0], ov[1] - ov[0]);
		} else {
			uint32_t groups = pcre2_get_ovector_count(m.md);
			struct val *g = v_arr(E->A, groups);
			if (g == NULL)
				goto oom;
			for (uint32_t k = 0; k < groups; k++) {
				int set = (int)k < rc && ov[2 * k] != PCRE2_UNSET;
				g->a[k] =
				    set ? v_str(E->A, m.s + ov[2 * k], ov[2 * k + 1] - ov[2 * k])
				        : v_str(E->A, "", 0);
				if (g->a[k] == NULL)
					goto oom;
			}
			items[n] = g;
		}
		if (items[n++] == NULL)
			goto oom;
	}
	re_done(&m);
	*out = bi_arr_of(E, items, n);
	return *out ? 0 : bi_oom(E);
oom:
	re_done(&m);
	return bi_oom(E);
}

static int bi_regex_find_n(struct ev *E, struct val **a, struct val **out)
{
	return find_all(E, "regex.find_n", a, out, 0);
}
static int bi_regex_find_all_submatch(struct ev *E, struct val **a, struct val **out)
{
	return find_all(E, "regex.find_all_string_submatch_n", a, out, 1);
}

static int bi_regex_split(struct ev *E, struct val **a, struct val **out)
{
	struct rematch m;
	if (re_setup(E, "regex.split", a[0], a[1], &m) < 0)
		return -1;
	struct val *items[4096];
	size_t n = 0, prev = 0, last = 0;
	int have = 0;
	PCRE2_SIZE *ov;
	if (m.n == 0) {
		re_done(&m);
		items[0] = v_str(E->A, "", 0);
		*out = bi_arr_of(E, items, 1);
		return *out ? 0 : bi_oom(E);
	}
	while (n + 1 < 4096 && re_next(&m, &ov, &last, &have) > 0) {
		if (ov[1] == 0)
			continue;
		items[n++] = v_str(E->A, m.s + prev, ov[0] - prev);
		prev = ov[1];
	}
	items[n++] = v_str(E->A, m.s + prev, m.n - prev);
	re_done(&m);
	for (size_t i = 0; i < n; i++)
		if (items[i] == NULL)
			return bi_oom(E);
	*out = bi_arr_of(E, items, n);
	return *out ? 0 : bi_oom(E);
}

/* Go's Regexp.Expand: $1, ${1}, $name, ${name}, $$ */
static void expand(struct sbuf *b, struct rematch *m, PCRE2_SIZE *ov, int rc, struct val *tmpl)
{
	const char *t = tmpl->s, *end = t + tmpl->n;
	while (t < end) {
		if (*t != '$' || t + 1 >= end) {
			sb_addc(b, *t++);
			continue;
		}
		t++;
		if (*t == '$') {
			sb_addc(b, '$');
			t++;
			continue;
		}
		int brace = *t == '{';
		const char *ns = t + brace, *ne = ns;
		while (ne < end && (isalnum((unsigned char)*ne) || *ne == '_'))
			ne++;
		if (ne == ns || (brace && (ne >= end || *ne != '}'))) {
			sb_addc(b, '$');
			continue;
		}
		char name[64];
		size_t nl =
		    (size_t)(ne - ns) < sizeof(name) - 1 ? (size_t)(ne - ns) : sizeof(name) - 1;
		memcpy(name, ns, nl);
		name[nl] = '\0';
		t = ne + brace;
		int idx = -1, all_digits = 1;
		for (size_t i = 0; i < nl; i++)
			all_digits &= isdigit((unsigned char)name[i]) != 0;
		if (all_digits)
			idx = atoi(name);
		else
			idx = pcre2_substring_number_from_name(m->re, (PCRE2_SPTR)name);
		if (idx >= 0 && idx < rc && ov[2 * idx] != PCRE2_UNSET)
			sb_add(b, m->s + ov[2 * idx], ov[2 * idx + 1] - ov[2 * idx]);
	}
}

static int bi_regex_replace(struct ev *E, struct val **a, struct val **out)
{
	struct rematch m;
	if (bi_want(E, "regex.replace", 3, a[2], K_STR) < 0 ||
	    re_setup(E, "regex.replace", a[1], a[0], &m) < 0)
		return -1;
	struct sbuf b = {0};
	size_t prev = 0, last = 0;
	int have = 0, rc;
	PCRE2_SIZE *ov;
	while ((rc = re_next(&m, &ov, &last, &have)) > 0) {
		sb_add(&b, m.s + prev, ov[0] - prev);
		expand(&b, &m, ov, rc, a[2]);
		prev = ov[1];
	}
	sb_add(&b, m.s + prev, m.n - prev);
	re_done(&m);
	return ret_sbuf(E, &b, out);
}

static void re_quote(struct sbuf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (strchr("\\.+*?()|[]{}^$", s[i]))
			sb_addc(b, '\\');
		sb_addc(b, s[i]);
	}
}

static int bi_regex_template_match(struct ev *E, struct val **a, struct val **out)
{
	for (int i = 0; i < 4; i++)
		if (bi_want(E, "regex.template_match", i + 1, a[i], K_STR) < 0)
			return -1;
	struct val *tm = a[0], *ds = a[2], *de = a[3];
	if (ds->n != 1 || de->n != 1)
		return ev_fail(
		    E, REGO_ERR_BUILTIN,
		    "eval_builtin_error: regex.template_match: delimiters must be one character");
	struct sbuf b = {0};
	sb_addc(&b, '^');
	const char *t = tm->s, *end = t + tm->n;
	while (t < end) {
		const char *o = memchr(t, ds->s[0], (size_t)(end - t));
		if (o == NULL) {
			re_quote(&b, t, (size_t)(end - t));
			break;
		}
		re_quote(&b, t, (size_t)(o - t));
		int depth = 0;
		const char *c = o;
		for (; c < end; c++) {
			if (*c == ds->s[0])
				depth++;
			else if (*c == de->s[0] && --depth == 0)
				break;
		}
		if (c >= end) {
			free(b.s);
			return ev_fail(
			    E, REGO_ERR_BUILTIN,
			    "eval_builtin_error: regex.template_match: unbalanced braces");
		}
		sb_addc(&b, '(');
		sb_add(&b, o + 1, (size_t)(c - o - 1));
		sb_addc(&b, ')');
		t = c + 1;
	}
	sb_addc(&b, '$');
	if (b.oom)
		return free(b.s), bi_oom(E);
	pcre2_code *re = re_compile(E, "regex.template_match", b.s, b.n, 0);
	free(b.s);
	if (re == NULL)
		return -1;
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
	int rc = md ? pcre2_match(re, (PCRE2_SPTR)a[1]->s, a[1]->n, 0, 0, md, NULL) : -1;
	pcre2_match_data_free(md);
	pcre2_code_free(re);
	*out = v_bool(rc >= 0);
	return 0;
}

/* glob.match: `*` any run of non-delimiters, `**` any run, `?` one non-delimiter,
 * [...] classes ([!...] negated), {a,b} alternatives; translated to a regular expression */
static int glob_to_re(struct sbuf *b, const char *g, size_t n, struct val *delims)
{
	struct sbuf nd = {0};
	sb_adds(&nd, "[^");
	for (uint32_t i = 0; delims && i < delims->n; i++)
		re_quote(&nd, delims->a[i]->s, delims->a[i]->n);
	sb_adds(&nd, "]");
	const char *notdelim = delims && delims->n ? nd.s : "[\\s\\S]";
	int alt = 0;
	sb_addc(b, '^');
	for (size_t i = 0; i < n; i++) {
		char c = g[i];
		if (c == '*') {
			if (i + 1 < n && g[i + 1] == '*') {
				sb_adds(b, "[\\s\\S]*");
				i++;
			} else {
				sb_adds(b, notdelim);
				sb_addc(b, '*');
			}
		} else if (c == '?') {
			sb_adds(b, notdelim);
		} else if (c == '[') {
			size_t j = i + 1;
			sb_addc(b, '[');
			if (j < n && g[j] == '!') {
				sb_addc(b, '^');
				j++;
			}
			for (; j < n && g[j] != ']'; j++) {
				if (g[j] == '\\' && j + 1 < n)
					sb_addc(b, g[j++]);
				else if (g[j] == '[' || g[j] == '^')
					sb_addc(b, '\\');
				sb_addc(b, g[j]);
			}
			if (j >= n) {
				free(nd.s);
				return -1;
			}
			sb_addc(b, ']');
			i = j;
		} else if (c == '{') {
			sb_adds(b, "(?:");
			alt++;
		} else if (c == '}' && alt) {
			sb_addc(b, ')');
			alt--;
		} else if (c == ',' && alt) {
			sb_addc(b, '|');
		} else if (c == '\\' && i + 1 < n) {
			re_quote(b, &g[++i], 1);
		} else {
			re_quote(b, &c, 1);
		}
	}
	free(nd.s);
	if (alt)
		return -1;
	sb_addc(b, '$');
	return 0;
}

static int bi_glob_match(struct ev *E, struct val **a, struct val **out)
{
	if (bi_want(E, "glob.match", 1, a[0], K_STR) < 0 ||
	    bi_want(E, "glob.match", 2, a[1], K_ARR | K_NULL) < 0 ||
	    bi_want(E, "glob.match", 3, a[2], K_STR) < 0)
		return -1;
	struct val *delims = NULL;
	if (a[1]->k == V_ARR) {
		v_force(a[1]);
		delims = a[1];
		for (uint32_t i = 0; i < delims->n; i++)
			if (delims->a[i]->k != V_STR)
				return ev_fail(
				    E, REGO_ERR_EVAL_TYPE,
				    "eval_type_error: glob.match: delimiters must be strings");
		if (delims->n == 0) {
			static struct val dot = {.k = V_STR, .n = 1, .s = "."};
			static struct val *dots[1] = {&dot};
			static struct val deflt = {.k = V_ARR, .n = 1, .a = dots};
			delims = &deflt;
		}
	}
	struct sbuf b = {0};
	if (glob_to_re(&b, a[0]->s, a[0]->n, delims) < 0 || b.oom) {
		free(b.s);
		return ev_fail(E, REGO_ERR_BUILTIN,
		               "eval_builtin_error: glob.match: invalid pattern %s", a[0]->s);
	}
	pcre2_code *re = re_compile(E, "glob.match", b.s, b.n, 0);
	free(b.s);
	if (re == NULL)
		return -1;
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
	int rc = md ? pcre2_match(re, (PCRE2_SPTR)a[2]->s, a[2]->n, 0, 0, md, NULL) : -1;
	pcre2_match_data_free(md);
	pcre2_code_free(re);
	*out = v_bool(rc >= 0);
	return 0;
}

static int bi_glob_quote_meta(struct ev *E, struct val **a, struct val **out)
{
	STR1("glob.quote_meta", a[0]);
	struct sbuf b = {0};
	for (size_t i = 0; i < a[0]->n; i++) {
		if (strchr("*?\\[]{}", a[0]->s[i]))
			sb_addc(&b, '\\');
		sb_addc(&b, a[0]->s[i]);
	}
	return ret_sbuf(E, &b, out);
}

/* ------------------------------------------------------------------ table */

const struct builtin rego_builtins_str[] = {
    {"concat", 2, bi_concat},
    {"contains", 2, bi_contains},
    {"startswith", 2, bi_startswith},
    {"endswith", 2, bi_endswith},
    {"strings.any_prefix_match", 2, bi_any_prefix},
    {"strings.any_suffix_match", 2, bi_any_suffix},
    {"lower", 1, bi_lower},
    {"upper", 1, bi_upper},
    {"split", 2, bi_split},
    {"trim", 2, bi_trim},
    {"trim_left", 2, bi_trim_left},
    {"trim_right", 2, bi_trim_right},
    {"trim_prefix", 2, bi_trim_prefix},
    {"trim_suffix", 2, bi_trim_suffix},
    {"trim_space", 1, bi_trim_space},
    {"replace", 3, bi_replace},
    {"strings.replace_n", 2, bi_replace_n},
    {"substring", 3, bi_substring},
    {"indexof", 2, bi_indexof},
    {"indexof_n", 2, bi_indexof_n},
    {"strings.reverse", 1, bi_strings_reverse},
    {"strings.count", 2, bi_strings_count},
    {"format_int", 2, bi_format_int},
    {"sprintf", 2, bi_sprintf},
    {"base64.encode", 1, bi_b64_encode},
    {"base64.decode", 1, bi_b64_decode},
    {"base64.is_valid", 1, bi_b64_is_valid},
    {"base64url.encode", 1, bi_b64url_encode},
    {"base64url.encode_no_pad", 1, bi_b64url_encode_no_pad},
    {"base64url.decode", 1, bi_b64url_decode},
    {"hex.encode", 1, bi_hex_encode},
    {"hex.decode", 1, bi_hex_decode},
    {"json.marshal", 1, bi_json_marshal},
    {"json.marshal_with_options", 2, bi_json_marshal_with_options},
    {"json.unmarshal", 1, bi_json_unmarshal},
    {"json.is_valid", 1, bi_json_is_valid},
    {"json.filter", 2, bi_json_filter},
    {"json.remove", 2, bi_json_remove},
    {"regex.match", 2, bi_regex_match},
    {"re_match", 2, bi_regex_match},
    {"regex.is_valid", 1, bi_regex_is_valid},
    {"regex.find_n", 3, bi_regex_find_n},
    {"regex.find_all_string_submatch_n", 3, bi_regex_find_all_submatch},
    {"regex.split", 2, bi_regex_split},
    {"regex.replace", 3, bi_regex_replace},
    {"regex.template_match", 4, bi_regex_template_match},
    {"glob.match", 3, bi_glob_match},
    {"glob.quote_meta", 1, bi_glob_quote_meta},
};
const size_t rego_builtins_str_n = sizeof(rego_builtins_str) / sizeof(rego_builtins_str[0]);
