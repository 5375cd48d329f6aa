/*
 * value: Rego values and the arena they live in.
 *
 * Numbers are exact, as OPA's are: an int64 when the value is an integer that fits, else a
 * decimal with arbitrary digits (so 1e400 > 1e399 and 0.1234567890123456789 keeps every
 * digit). Sets and objects keep their members sorted in OPA's order, which makes equality,
 * ordering, iteration order and output canonical. Objects may have keys of any type.
 *
 * Input and data documents arrive as jansson values; they are wrapped lazily: an array or
 * object is only expanded into Rego values when something iterates or compares it, while a
 * lookup by string key or index goes straight to jansson. Expansion allocates from the arena
 * of the evaluation running on this thread (rego_cur_arena).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "rego/rego_int.h"

/* ------------------------------------------------------------------ arena */

struct ablock {
	struct ablock *next;
	size_t used, cap;
	size_t mapped; /* from mmap (its length), else from malloc */
	max_align_t data[];
};

/* Blocks this large are mapped directly, so a big evaluation's memory leaves the process when
 * its arena is freed: from malloc it would stay in a worker thread's heap, which glibc's
 * malloc_trim does not shrink (measured: grpc-as kept ~18 MB per refused 32 MiB evaluation). */
#define MAP_BLOCK (128u << 10)

static struct ablock *block_new(size_t cap)
{
	size_t len = sizeof(struct ablock) + cap;
	struct ablock *b;
	if (len < MAP_BLOCK) {
		if ((b = malloc(len)) != NULL)
			b->mapped = 0;
		return b;
	}
	b = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b == MAP_FAILED)
		return NULL;
	b->mapped = len;
	return b;
}

static void block_free(struct ablock *b)
{
	if (b->mapped)
		munmap(b, b->mapped);
	else
		free(b);
}

__thread struct arena *rego_cur_arena;

void *ar_alloc(struct arena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	struct ablock *b = a->head;
	if (b == NULL || b->cap - b->used < n) {
		size_t cap = b ? b->cap * 2 : 8192;
		if (cap > (1u << 20))
			cap = 1u << 20;
		if (cap < n)
			cap = n;
		if (a->limit && (a->total > a->limit || cap > a->limit - a->total)) {
			/* the last block may be smaller than the doubling asks */
			if (a->total > a->limit || n > a->limit - a->total) {
				a->over = 1;
				return NULL;
			}
			cap = a->limit - a->total;
		}
		struct ablock *nb = block_new(cap);
		if (nb == NULL)
			return NULL;
		nb->used = 0;
		nb->cap = cap;
		if (b != NULL && n > b->cap / 2 && b->cap - b->used > 256) {
			/* a large one-off: keep filling the current block */
			nb->next = b->next;
			b->next = nb;
		} else {
			nb->next = b;
			a->head = nb;
		}
		b = nb;
		a->total += cap;
	}
	void *p = (char *)b->data + b->used;
	b->used += n;
	memset(p, 0, n);
	return p;
}

int ar_account(struct arena *a, size_t n)
{
	a->total += n;
	if (a->limit && a->total > a->limit) {
		a->over = 1;
		return -1;
	}
	return 0;
}

char *ar_strndup(struct arena *a, const char *s, size_t n)
{
	char *d = ar_alloc(a, n + 1);
	if (d && n)
		memcpy(d, s, n);
	return d;
}

void ar_free(struct arena *a)
{
	struct ablock *b = a->head;
	while (b) {
		struct ablock *n = b->next;
		block_free(b);
		b = n;
	}
	a->head = NULL;
	a->total = 0;
}

/* ------------------------------------------------------------------ constructors */

struct val rv_null = {.k = V_NULL}, rv_true = {.k = V_BOOL, .b = 1}, rv_false = {.k = V_BOOL};

struct val *v_bool(int b)
{
	return b ? &rv_true : &rv_false;
}

static struct val *v_new(struct arena *A, int k)
{
	struct val *v = ar_alloc(A, sizeof(*v));
	if (v)
		v->k = (uint8_t)k;
	return v;
}

struct val *v_int(struct arena *A, int64_t i)
{
	struct val *v = v_new(A, V_NUM);
	if (v) {
		v->isint = 1;
		v->i = i;
	}
	return v;
}

struct val *v_str(struct arena *A, const char *s, size_t n)
{
	struct val *v = v_new(A, V_STR);
	if (v == NULL)
		return NULL;
	v->s = ar_strndup(A, s, n);
	v->n = (uint32_t)n;
	return v->s ? v : NULL;
}

struct val *v_str_ref(struct arena *A, const char *s, size_t n)
{
	struct val *v = v_new(A, V_STR);
	if (v) {
		v->s = s;
		v->n = (uint32_t)n;
	}
	return v;
}

struct val *v_arr(struct arena *A, uint32_t n)
{
	struct val *v = v_new(A, V_ARR);
	if (v == NULL)
		return NULL;
	v->n = n;
	v->a = ar_alloc(A, (n ? n : 1) * sizeof(struct val *));
	return v->a ? v : NULL;
}

/* ------------------------------------------------------------------ decimals */

#define MAX_DIGITS 20000

static struct dec *dec_new(struct arena *A, uint32_t n)
{
	struct dec *d = ar_alloc(A, sizeof(*d));
	if (d == NULL)
		return NULL;
	d->d = ar_alloc(A, n ? n : 1);
	d->n = n;
	return d->d ? d : NULL;
}

static void dec_norm(struct dec *d)
{
	uint32_t lead = 0;
	while (lead < d->n && d->d[lead] == 0)
		lead++;
	if (lead) {
		memmove(d->d, d->d + lead, d->n - lead);
		d->n -= lead;
	}
	while (d->n && d->d[d->n - 1] == 0) {
		d->n--;
		d->exp++;
	}
	if (d->n == 0) {
		d->exp = 0;
		d->neg = 0;
	}
}

static struct dec *dec_from_int(struct arena *A, int64_t i)
{
	uint8_t tmp[24];
	uint32_t n = 0;
	uint64_t u = i < 0 ? (uint64_t)0 - (uint64_t)i : (uint64_t)i;
	do {
		tmp[n++] = (uint8_t)(u % 10);
		u /= 10;
	} while (u);
	struct dec *d = dec_new(A, n);
	if (d == NULL)
		return NULL;
	for (uint32_t k = 0; k < n; k++)
		d->d[k] = tmp[n - 1 - k];
	d->neg = i < 0;
	dec_norm(d);
	return d;
}

/* A number value from a normalised decimal: an int64 when it is one. */
static struct val *num_from_dec(struct arena *A, struct dec *d)
{
	if (d == NULL)
		return NULL;
	if (d->n == 0)
		return v_int(A, 0);
	if (d->exp >= 0 && d->n + (uint32_t)d->exp <= 19) {
		uint64_t u = 0;
		int ok = 1;
		for (uint32_t k = 0; k < d->n + (uint32_t)d->exp && ok; k++) {
			uint64_t dig = k < d->n ? d->d[k] : 0;
			if (u > (UINT64_MAX - dig) / 10)
				ok = 0;
			else
				u = u * 10 + dig;
		}
		if (ok && (d->neg ? u <= (uint64_t)INT64_MAX + 1 : u <= (uint64_t)INT64_MAX))
			return v_int(A, d->neg ? (int64_t)(0 - u) : (int64_t)u);
	}
	struct val *v = v_new(A, V_NUM);
	if (v)
		v->dec = d;
	return v;
}

static struct dec *as_dec(struct arena *A, struct val *v)
{
	return v->isint ? dec_from_int(A, v->i) : v->dec;
}

struct val *v_num_from_text(struct arena *A, const char *s, size_t n)
{
	const char *p = s, *e = s + n;
	int neg = 0;
	if (p < e && (*p == '-' || *p == '+'))
		neg = *p++ == '-';
	struct dec *d = dec_new(A, (uint32_t)n);
	if (d == NULL)
		return NULL;
	uint32_t nd = 0;
	int64_t frac = 0, ex = 0;
	int any = 0, dot = 0;
	for (; p < e; p++) {
		if (*p >= '0' && *p <= '9') {
			d->d[nd++] = (uint8_t)(*p - '0');
			frac += dot;
			any = 1;
		} else if (*p == '.' && !dot) {
			dot = 1;
		} else {
			break;
		}
	}
	if (!any)
		return NULL;
	if (p < e && (*p == 'e' || *p == 'E')) {
		p++;
		int eneg = 0;
		if (p < e && (*p == '-' || *p == '+'))
			eneg = *p++ == '-';
		if (p == e)
			return NULL;
		for (; p < e && *p >= '0' && *p <= '9'; p++)
			if (ex < 100000000)
				ex = ex * 10 + (*p - '0');
		if (eneg)
			ex = -ex;
	}
	if (p != e)
		return NULL;
	d->n = nd;
	d->neg = (uint8_t)neg;
	int64_t exp = ex - frac;
	if (exp > 1000000000 || exp < -1000000000)
		return NULL;
	d->exp = (int32_t)exp;
	dec_norm(d);
	return num_from_dec(A, d);
}

struct val *v_num_from_double(struct arena *A, double x)
{
	char buf[40];
	if (!isfinite(x))
		return NULL;
	if (x == floor(x) && fabs(x) < 9.2e18)
		return v_int(A, (int64_t)x);
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*e", prec - 1, x);
		if (strtod(buf, NULL) == x)
			break;
	}
	return v_num_from_text(A, buf, strlen(buf));
}

static int mag_cmp(const struct dec *a, const struct dec *b)
{
	int64_t pa = (int64_t)a->n + a->exp, pb = (int64_t)b->n + b->exp;
	if (pa != pb)
		return pa < pb ? -1 : 1;
	uint32_t m = a->n < b->n ? a->n : b->n;
	for (uint32_t k = 0; k < m; k++)
		if (a->d[k] != b->d[k])
			return a->d[k] < b->d[k] ? -1 : 1;
	return a->n == b->n ? 0 : a->n < b->n ? -1 : 1;
}

static int dec_cmp(const struct dec *a, const struct dec *b)
{
	int sa = a->n == 0 ? 0 : a->neg ? -1 : 1, sb = b->n == 0 ? 0 : b->neg ? -1 : 1;
	if (sa != sb)
		return sa < sb ? -1 : 1;
	if (sa == 0)
		return 0;
	int m = mag_cmp(a, b);
	return sa > 0 ? m : -m;
}

int v_num_cmp(struct val *a, struct val *b)
{
	if (a->isint && b->isint)
		return a->i < b->i ? -1 : a->i > b->i;
	/* a decimal is never an int64-sized integer, but may still compare either way */
	struct dec tmp_a, tmp_b;
	uint8_t da[24], db[24];
	const struct dec *x = a->dec, *y = b->dec;
	if (a->isint) {
		uint64_t u = a->i < 0 ? (uint64_t)0 - (uint64_t)a->i : (uint64_t)a->i;
		uint32_t n = 0;
		uint8_t t[24];
		do {
			t[n++] = (uint8_t)(u % 10);
			u /= 10;
		} while (u);
		for (uint32_t k = 0; k < n; k++)
			da[k] = t[n - 1 - k];
		tmp_a = (struct dec){(uint8_t)(a->i < 0), 0, n, da};
		while (tmp_a.n && tmp_a.d[tmp_a.n - 1] == 0) {
			tmp_a.n--;
			tmp_a.exp++;
		}
		if (tmp_a.n == 0)
			tmp_a.neg = 0;
		x = &tmp_a;
	}
	if (b->isint) {
		uint64_t u = b->i < 0 ? (uint64_t)0 - (uint64_t)b->i : (uint64_t)b->i;
		uint32_t n = 0;
		uint8_t t[24];
		do {
			t[n++] = (uint8_t)(u % 10);
			u /= 10;
		} while (u);
		for (uint32_t k = 0; k < n; k++)
			db[k] = t[n - 1 - k];
		tmp_b = (struct dec){(uint8_t)(b->i < 0), 0, n, db};
		while (tmp_b.n && tmp_b.d[tmp_b.n - 1] == 0) {
			tmp_b.n--;
			tmp_b.exp++;
		}
		if (tmp_b.n == 0)
			tmp_b.neg = 0;
		y = &tmp_b;
	}
	return dec_cmp(x, y);
}

/* |a| + |b| or |a| - |b| (|a| >= |b|) with a common exponent */
static struct dec *mag_addsub(struct arena *A, const struct dec *a, const struct dec *b, int sub)
{
	int32_t e = a->exp < b->exp ? a->exp : b->exp;
	int64_t la = (int64_t)a->n + (a->exp - e), lb = (int64_t)b->n + (b->exp - e);
	int64_t len = (la > lb ? la : lb) + 1;
	if (len > MAX_DIGITS)
		return NULL;
	struct dec *r = dec_new(A, (uint32_t)len);
	if (r == NULL)
		return NULL;
	/* little-endian work: position p counts from 10^e */
	int carry = 0;
	for (int64_t p = 0; p < len; p++) {
		int da = 0, db = 0;
		int64_t ia = la - 1 - p, ib = lb - 1 - p; /* index into the aligned digit string */
		if (ia >= 0 && ia < a->n)
			da = a->d[ia];
		if (ib >= 0 && ib < b->n)
			db = b->d[ib];
		int s = sub ? da - db - carry : da + db + carry;
		if (sub) {
			carry = s < 0;
			if (s < 0)
				s += 10;
		} else {
			carry = s >= 10;
			if (s >= 10)
				s -= 10;
		}
		r->d[len - 1 - p] = (uint8_t)s;
	}
	r->exp = e;
	return r;
}

static struct val *num_fallback(struct arena *A, double x)
{
	return v_num_from_double(A, x);
}

struct val *v_num_add(struct arena *A, struct val *a, struct val *b, int sub)
{
	if (a->isint && b->isint) {
		int64_t r;
		if (!(sub ? __builtin_sub_overflow(a->i, b->i, &r)
		          : __builtin_add_overflow(a->i, b->i, &r)))
			return v_int(A, r);
	}
	struct dec *x = as_dec(A, a), *y = as_dec(A, b);
	if (x == NULL || y == NULL)
		return NULL;
	int yneg = y->neg ^ (sub && y->n);
	struct dec *r;
	int rneg;
	if (x->neg == yneg) {
		r = mag_addsub(A, x, y, 0);
		rneg = x->neg;
	} else if (mag_cmp(x, y) >= 0) {
		r = mag_addsub(A, x, y, 1);
		rneg = x->neg;
	} else {
		r = mag_addsub(A, y, x, 1);
		rneg = yneg;
	}
	if (r == NULL)
		return num_fallback(A, sub ? v_num_to_double(a) - v_num_to_double(b)
		                           : v_num_to_double(a) + v_num_to_double(b));
	r->neg = (uint8_t)rneg;
	dec_norm(r);
	return num_from_dec(A, r);
}

struct val *v_num_mul(struct arena *A, struct val *a, struct val *b)
{
	if (a->isint && b->isint) {
		int64_t r;
		if (!__builtin_mul_overflow(a->i, b->i, &r))
			return v_int(A, r);
	}
	struct dec *x = as_dec(A, a), *y = as_dec(A, b);
	if (x == NULL || y == NULL)
		return NULL;
	if (x->n == 0 || y->n == 0)
		return v_int(A, 0);
	if (x->n > 2000 || y->n > 2000 || llabs((long long)x->exp + y->exp) > 1000000000)
		return num_fallback(A, v_num_to_double(a) * v_num_to_double(b));
	uint32_t n = x->n + y->n;
	uint32_t *acc = ar_alloc(A, n * sizeof(uint32_t));
	struct dec *r = dec_new(A, n);
	if (acc == NULL || r == NULL)
		return NULL;
	for (uint32_t i = 0; i < x->n; i++)
		for (uint32_t j = 0; j < y->n; j++)
			acc[(x->n - 1 - i) + (y->n - 1 - j)] += (uint32_t)x->d[i] * y->d[j];
	uint64_t carry = 0;
	for (uint32_t p = 0; p < n; p++) {
		uint64_t s = acc[p] + carry;
		r->d[n - 1 - p] = (uint8_t)(s % 10);
		carry = s / 10;
	}
	r->exp = x->exp + y->exp;
	r->neg = x->neg ^ y->neg;
	dec_norm(r);
	return num_from_dec(A, r);
}

int v_num_is_int(struct val *v, int64_t *out)
{
	if (v->k != V_NUM || !v->isint)
		return 0;
	if (out)
		*out = v->i;
	return 1;
}

int v_num_is_integral(struct val *v)
{
	return v->k == V_NUM && (v->isint || v->dec->exp >= 0);
}

static void dec_write(struct sbuf *b, const struct dec *d)
{
	if (d->n == 0) {
		sb_addc(b, '0');
		return;
	}
	if (d->neg)
		sb_addc(b, '-');
	int64_t point = (int64_t)d->n + d->exp; /* digits before the decimal point */
	if (d->exp >= 0 && point <= 64) {
		for (uint32_t k = 0; k < d->n; k++)
			sb_addc(b, (char)('0' + d->d[k]));
		for (int32_t k = 0; k < d->exp; k++)
			sb_addc(b, '0');
	} else if (d->exp < 0 && point > 0) {
		for (uint32_t k = 0; k < d->n; k++) {
			if ((int64_t)k == point)
				sb_addc(b, '.');
			sb_addc(b, (char)('0' + d->d[k]));
		}
	} else if (d->exp < 0 && point > -20) {
		sb_adds(b, "0.");
		for (int64_t k = point; k < 0; k++)
			sb_addc(b, '0');
		for (uint32_t k = 0; k < d->n; k++)
			sb_addc(b, (char)('0' + d->d[k]));
	} else {
		char e[32];
		sb_addc(b, (char)('0' + d->d[0]));
		if (d->n > 1) {
			sb_addc(b, '.');
			for (uint32_t k = 1; k < d->n; k++)
				sb_addc(b, (char)('0' + d->d[k]));
		}
		snprintf(e, sizeof(e), "e%+lld", (long long)(point - 1));
		sb_adds(b, e);
	}
}

static void num_write(struct sbuf *b, struct val *v)
{
	if (v->isint) {
		char t[32];
		snprintf(t, sizeof(t), "%lld", (long long)v->i);
		sb_adds(b, t);
	} else {
		dec_write(b, v->dec);
	}
}

char *v_num_to_text(struct arena *A, struct val *v)
{
	struct sbuf b = {0};
	num_write(&b, v);
	char *s = b.oom ? NULL : ar_strndup(A, b.s ? b.s : "", b.n);
	free(b.s);
	return s;
}

double v_num_to_double(struct val *v)
{
	if (v->isint)
		return (double)v->i;
	struct sbuf b = {0};
	dec_write(&b, v->dec);
	sb_addc(&b, '\0');
	double d = b.oom ? NAN : strtod(b.s, NULL);
	free(b.s);
	return d;
}

/* ------------------------------------------------------------------ lazy JSON */

struct val *v_from_json(struct arena *A, json_t *j)
{
	struct val *v;
	switch (json_typeof(j)) {
	case JSON_NULL:
		return &rv_null;
	case JSON_TRUE:
		return &rv_true;
	case JSON_FALSE:
		return &rv_false;
	case JSON_INTEGER:
		return v_int(A, json_integer_value(j));
	case JSON_REAL:
		v = v_num_from_double(A, json_real_value(j));
		return v ? v : &rv_null;
	case JSON_STRING:
		return v_str_ref(A, json_string_value(j), json_string_length(j));
	case JSON_ARRAY:
		v = v_new(A, V_ARR);
		if (v) {
			v->lazy = 1;
			v->j = j;
			v->n = (uint32_t)json_array_size(j);
		}
		return v;
	case JSON_OBJECT:
		v = v_new(A, V_OBJ);
		if (v) {
			v->lazy = 1;
			v->j = j;
			v->n = (uint32_t)json_object_size(j);
		}
		return v;
	}
	return &rv_null;
}

struct kv {
	const char *k;
	size_t kl;
	json_t *v;
};

static int kv_cmp(const void *x, const void *y)
{
	const struct kv *a = x, *b = y;
	size_t m = a->kl < b->kl ? a->kl : b->kl;
	int c = memcmp(a->k, b->k, m);
	return c ? c : a->kl < b->kl ? -1 : a->kl > b->kl;
}

void v_force(struct val *v)
{
	if (!v->lazy)
		return;
	struct arena *A = rego_cur_arena;
	json_t *j = v->j;
	uint32_t n = v->n;
	struct val **items = ar_alloc(A, (n ? n : 1) * sizeof(*items));
	if (items == NULL)
		return;
	if (v->k == V_ARR) {
		for (uint32_t i = 0; i < n; i++)
			items[i] = v_from_json(A, json_array_get(j, i));
		v->a = items;
		v->lazy = 0;
		return;
	}
	struct kv *kvs = malloc((n ? n : 1) * sizeof(*kvs));
	struct val **vals = ar_alloc(A, (n ? n : 1) * sizeof(*vals));
	if (kvs == NULL || vals == NULL) {
		free(kvs);
		return;
	}
	const char *k;
	size_t kl;
	json_t *x;
	uint32_t i = 0;
	json_object_keylen_foreach(j, k, kl, x)
	{
		if (i < n)
			kvs[i++] = (struct kv){k, kl, x};
	}
	n = i;
	qsort(kvs, n, sizeof(*kvs), kv_cmp);
	for (i = 0; i < n; i++) {
		items[i] = v_str_ref(A, kvs[i].k, kvs[i].kl);
		vals[i] = v_from_json(A, kvs[i].v);
	}
	free(kvs);
	v->a = items;
	v->ov = vals;
	v->n = n;
	v->lazy = 0;
}

/* ------------------------------------------------------------------ order */

int v_cmp(struct val *a, struct val *b)
{
	if (a == b)
		return 0;
	if (a->k != b->k)
		return a->k < b->k ? -1 : 1;
	switch (a->k) {
	case V_NULL:
		return 0;
	case V_BOOL:
		return a->b - b->b;
	case V_NUM:
		return v_num_cmp(a, b);
	case V_STR: {
		uint32_t m = a->n < b->n ? a->n : b->n;
		int c = memcmp(a->s, b->s, m);
		if (c)
			return c < 0 ? -1 : 1;
		return a->n == b->n ? 0 : a->n < b->n ? -1 : 1;
	}
	case V_ARR:
	case V_SET:
	case V_OBJ: {
		v_force(a);
		v_force(b);
		uint32_t m = a->n < b->n ? a->n : b->n;
		for (uint32_t i = 0; i < m; i++) {
			int c = v_cmp(a->a[i], b->a[i]);
			if (c)
				return c;
			if (a->k == V_OBJ && (c = v_cmp(a->ov[i], b->ov[i])) != 0)
				return c;
		}
		return a->n == b->n ? 0 : a->n < b->n ? -1 : 1;
	}
	}
	return 0;
}

static int str_key_cmp(struct val *k, const char *s, size_t n)
{
	if (k->k != V_STR)
		return k->k < V_STR ? -1 : 1;
	size_t m = k->n < n ? k->n : n;
	int c = memcmp(k->s, s, m);
	if (c)
		return c;
	return k->n == n ? 0 : k->n < n ? -1 : 1;
}

struct val *v_obj_get_str(struct val *o, const char *key, size_t klen)
{
	if (o->lazy) {
		json_t *x = json_object_getn(o->j, key, klen);
		return x ? v_from_json(rego_cur_arena, x) : NULL;
	}
	uint32_t lo = 0, hi = o->n;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		int c = str_key_cmp(o->a[mid], key, klen);
		if (c == 0)
			return o->ov[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int find_sorted(struct val *c, struct val *x, uint32_t *at)
{
	uint32_t lo = 0, hi = c->n;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		int r = v_cmp(c->a[mid], x);
		if (r == 0) {
			*at = mid;
			return 1;
		}
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

int v_set_has(struct val *set, struct val *x)
{
	uint32_t at;
	return set->k == V_SET && find_sorted(set, x, &at);
}

struct val *v_item(struct val *arr, uint32_t i)
{
	if (i >= arr->n)
		return NULL;
	if (arr->lazy)
		return v_from_json(rego_cur_arena, json_array_get(arr->j, i));
	return arr->a[i];
}

struct val *v_get(struct val *c, struct val *key)
{
	uint32_t at;
	switch (c->k) {
	case V_OBJ:
		if (key->k == V_STR)
			return v_obj_get_str(c, key->s, key->n);
		if (c->lazy)
			return NULL;
		return find_sorted(c, key, &at) ? c->ov[at] : NULL;
	case V_ARR:
		if (key->k == V_NUM && key->isint && key->i >= 0 && key->i < c->n)
			return v_item(c, (uint32_t)key->i);
		return NULL;
	case V_SET:
		return find_sorted(c, key, &at) ? c->a[at] : NULL;
	default:
		return NULL;
	}
}

uint32_t v_len(struct val *v)
{
	return v->n;
}

/* ------------------------------------------------------------------ builders */

static int qcmp(const void *x, const void *y)
{
	return v_cmp(*(struct val *const *)x, *(struct val *const *)y);
}

struct val *v_set_build(struct arena *A, struct val **items, size_t n)
{
	struct val *s = v_new(A, V_SET);
	if (s == NULL)
		return NULL;
	s->a = ar_alloc(A, (n ? n : 1) * sizeof(*s->a));
	if (s->a == NULL)
		return NULL;
	if (n)
		memcpy(s->a, items, n * sizeof(*items));
	int sorted = 1;
	for (size_t i = 1; i < n && sorted; i++)
		sorted = v_cmp(s->a[i - 1], s->a[i]) < 0;
	if (!sorted) {
		qsort(s->a, n, sizeof(*s->a), qcmp);
		size_t o = 0;
		for (size_t i = 0; i < n; i++)
			if (o == 0 || v_cmp(s->a[o - 1], s->a[i]) != 0)
				s->a[o++] = s->a[i];
		n = o;
	}
	s->n = (uint32_t)n;
	return s;
}

struct pair {
	struct val *k, *v;
};

static int pcmp(const void *x, const void *y)
{
	const struct pair *a = x, *b = y;
	return v_cmp(a->k, b->k);
}

struct val *v_obj_build(struct arena *A, struct val **keys, struct val **vals, size_t n, int *dup)
{
	struct val *o = v_new(A, V_OBJ);
	*dup = 0;
	if (o == NULL)
		return NULL;
	o->a = ar_alloc(A, (n ? n : 1) * sizeof(*o->a));
	o->ov = ar_alloc(A, (n ? n : 1) * sizeof(*o->ov));
	if (o->a == NULL || o->ov == NULL)
		return NULL;
	int sorted = 1;
	for (size_t i = 1; i < n && sorted; i++)
		sorted = v_cmp(keys[i - 1], keys[i]) < 0;
	if (sorted) {
		if (n) {
			memcpy(o->a, keys, n * sizeof(*keys));
			memcpy(o->ov, vals, n * sizeof(*vals));
		}
		o->n = (uint32_t)n;
		return o;
	}
	struct pair *p = malloc(n * sizeof(*p));
	if (p == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		p[i] = (struct pair){keys[i], vals[i]};
	qsort(p, n, sizeof(*p), pcmp);
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (m > 0 && v_cmp(o->a[m - 1], p[i].k) == 0) {
			if (!v_eq(o->ov[m - 1], p[i].v)) {
				free(p);
				*dup = 1;
				return NULL;
			}
			continue;
		}
		o->a[m] = p[i].k;
		o->ov[m++] = p[i].v;
	}
	free(p);
	o->n = (uint32_t)m;
	return o;
}

/* ------------------------------------------------------------------ text and JSON out */

void sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 64;
		while (nc < b->n + n + 1)
			nc *= 2;
		/* text built during an evaluation (concat, sprintf, json.marshal) is held to what
		 * is left of its memory budget: it becomes a value there next */
		struct arena *a = rego_cur_arena;
		if (a && a->limit && (a->total > a->limit || b->n + n + 1 > a->limit - a->total)) {
			a->over = 1;
			b->oom = 1;
			return;
		}
		char *ns = realloc(b->s, nc);
		if (ns == NULL) {
			b->oom = 1;
			return;
		}
		b->s = ns;
		b->cap = nc;
	}
	memcpy(b->s + b->n, s, n);
	b->n += n;
	b->s[b->n] = '\0';
}

void sb_addc(struct sbuf *b, char c)
{
	sb_add(b, &c, 1);
}

void sb_adds(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

/* length of the UTF-8 sequence at s (0 if invalid) */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	if (s[0] < 0x80)
		return 1;
	size_t l = (s[0] & 0xE0) == 0xC0   ? 2
	           : (s[0] & 0xF0) == 0xE0 ? 3
	           : (s[0] & 0xF8) == 0xF0 ? 4
	                                   : 0;
	if (l == 0 || l > n || (l == 2 && s[0] < 0xC2))
		return 0;
	for (size_t i = 1; i < l; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	return l;
}

void sb_json_str(struct sbuf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	sb_addc(b, '"');
	for (size_t i = 0; i < n;) {
		unsigned char c = p[i];
		if (c == '"' || c == '\\') {
			sb_addc(b, '\\');
			sb_addc(b, (char)c);
			i++;
		} else if (c < 0x20) {
			char e[8];
			const char *named = c == '\n'   ? "\\n"
			                    : c == '\t' ? "\\t"
			                    : c == '\r' ? "\\r"
			                    : c == '\b' ? "\\b"
			                    : c == '\f' ? "\\f"
			                                : NULL;
			if (named)
				sb_adds(b, named);
			else {
				snprintf(e, sizeof(e), "\\u%04x", c);
				sb_adds(b, e);
			}
			i++;
		} else if (c < 0x80) {
			sb_addc(b, (char)c);
			i++;
		} else {
			size_t l = utf8_len(p + i, n - i);
			if (l == 0) {
				sb_adds(b, "\\ufffd");
				i++;
			} else {
				sb_add(b, s + i, l);
				i += l;
			}
		}
	}
	sb_addc(b, '"');
}

void v_write_json(struct sbuf *b, struct val *v)
{
	switch (v->k) {
	case V_NULL:
		sb_adds(b, "null");
		return;
	case V_BOOL:
		sb_adds(b, v->b ? "true" : "false");
		return;
	case V_NUM:
		num_write(b, v);
		return;
	case V_STR:
		sb_json_str(b, v->s, v->n);
		return;
	case V_ARR:
	case V_SET:
		v_force(v);
		sb_addc(b, '[');
		for (uint32_t i = 0; i < v->n; i++) {
			if (i)
				sb_addc(b, ',');
			v_write_json(b, v->a[i]);
		}
		sb_addc(b, ']');
		return;
	case V_OBJ:
		v_force(v);
		sb_addc(b, '{');
		for (uint32_t i = 0; i < v->n; i++) {
			if (i)
				sb_addc(b, ',');
			if (v->a[i]->k == V_STR) {
				v_write_json(b, v->a[i]);
			} else {
				struct sbuf kb = {0};
				v_write_json(&kb, v->a[i]);
				sb_json_str(b, kb.s ? kb.s : "", kb.n);
				free(kb.s);
			}
			sb_addc(b, ':');
			v_write_json(b, v->ov[i]);
		}
		sb_addc(b, '}');
		return;
	}
}

char *v_to_json_text(struct val *v)
{
	struct sbuf b = {0};
	v_write_json(&b, v);
	if (b.oom) {
		free(b.s);
		return NULL;
	}
	return b.s ? b.s : strdup("");
}

json_t *v_to_json(struct val *v)
{
	switch (v->k) {
	case V_NULL:
		return json_null();
	case V_BOOL:
		return json_boolean(v->b);
	case V_NUM:
		return v->isint ? json_integer(v->i) : json_real(v_num_to_double(v));
	case V_STR:
		return json_stringn_nocheck(v->s, v->n);
	case V_ARR:
	case V_SET: {
		if (v->lazy)
			return json_incref(v->j);
		json_t *a = json_array();
		for (uint32_t i = 0; a && i < v->n; i++)
			json_array_append_new(a, v_to_json(v->a[i]));
		return a;
	}
	case V_OBJ: {
		if (v->lazy)
			return json_incref(v->j);
		json_t *o = json_object();
		for (uint32_t i = 0; o && i < v->n; i++) {
			json_t *x = v_to_json(v->ov[i]);
			if (v->a[i]->k == V_STR) {
				json_object_setn_new_nocheck(o, v->a[i]->s, v->a[i]->n, x);
			} else {
				char *ks = v_to_json_text(v->a[i]);
				json_object_set_new_nocheck(o, ks ? ks : "", x);
				free(ks);
			}
		}
		return o;
	}
	}
	return json_null();
}

const char *v_type_name(struct val *v)
{
	static const char *names[] = {"null",  "boolean", "number", "string",
	                              "array", "object",  "set"};
	return names[v->k];
}
