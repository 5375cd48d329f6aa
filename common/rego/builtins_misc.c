/*
 * builtins_misc: the built-ins that fit no other file: digests and HMACs (crypto.*), print and
 * trace, walk, opa.runtime, rand.intn, urlquery.*, net.cidr_*, graph.reachable*, uuid.rfc4122,
 * io.jwt.decode (decoding only, no verification), and OPA's deprecated all, any, set_diff and
 * cast_*. Time, units and semantic versions are in builtins_time.c.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "rego/builtins.h"

static int digest(struct ev *E, const char *fn, const EVP_MD *md, struct val **a, struct val **out)
{
	if (bi_want(E, fn, 1, a[0], K_STR) < 0)
		return -1;
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if (!EVP_Digest(a[0]->s, a[0]->n, d, &n, md, NULL))
		return ev_fail(E, REGO_ERR_BUILTIN, "eval_builtin_error: %s: digest failed", fn);
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	for (unsigned int i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	*out = v_str(E->A, hex, 2 * n);
	return *out ? 0 : bi_oom(E);
}

static int bi_md5(struct ev *E, struct val **a, struct val **out)
{
	return digest(E, "crypto.md5", EVP_md5(), a, out);
}
static int bi_sha1(struct ev *E, struct val **a, struct val **out)
{
	return digest(E, "crypto.sha1", EVP_sha1(), a, out);
}
static int bi_sha256(struct ev *E, struct val **a, struct val **out)
{
	return digest(E, "crypto.sha256", EVP_sha256(), a, out);
}
static int bi_sha384(struct ev *E, struct val **a, struct val **out)
{
	return digest(E, "crypto.sha384", EVP_sha384(), a, out);
}
static int bi_sha512(struct ev *E, struct val **a, struct val **out)
{
	return digest(E, "crypto.sha512", EVP_sha512(), a, out);
}

static int hmac(struct ev *E, const char *fn, const EVP_MD *md, struct val **a, struct val **out)
{
	if (bi_want(E, fn, 1, a[0], K_STR) < 0 || bi_want(E, fn, 2, a[1], K_STR) < 0)
		return -1;
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if (HMAC(md, a[1]->s, (int)a[1]->n, (const unsigned char *)a[0]->s, a[0]->n, d, &n) == NULL)
		return ev_fail(E, REGO_ERR_BUILTIN, "eval_builtin_error: %s: failed", fn);
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	for (unsigned int i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	*out = v_str(E->A, hex, 2 * n);
	return *out ? 0 : bi_oom(E);
}

static int bi_hmac_md5(struct ev *E, struct val **a, struct val **out)
{
	return hmac(E, "crypto.hmac.md5", EVP_md5(), a, out);
}
static int bi_hmac_sha1(struct ev *E, struct val **a, struct val **out)
{
	return hmac(E, "crypto.hmac.sha1", EVP_sha1(), a, out);
}
static int bi_hmac_sha256(struct ev *E, struct val **a, struct val **out)
{
	return hmac(E, "crypto.hmac.sha256", EVP_sha256(), a, out);
}
static int bi_hmac_sha512(struct ev *E, struct val **a, struct val **out)
{
	return hmac(E, "crypto.hmac.sha512", EVP_sha512(), a, out);
}

static int bi_hmac_equal(struct ev *E, struct val **a, struct val **out)
{
	if (bi_want(E, "crypto.hmac.equal", 1, a[0], K_STR) < 0 ||
	    bi_want(E, "crypto.hmac.equal", 2, a[1], K_STR) < 0)
		return -1;
	int eq = a[0]->n == a[1]->n && CRYPTO_memcmp(a[0]->s, a[1]->s, a[0]->n) == 0;
	*out = v_bool(eq);
	return 0;
}

static int bi_trace(struct ev *E, struct val **a, struct val **out)
{
	if (bi_want(E, "trace", 1, a[0], K_STR) < 0)
		return -1;
	*out = &rv_true;
	return 0;
}

static int bi_rand_intn(struct ev *E, struct val **a, struct val **out)
{
	int64_t n;
	if (bi_want(E, "rand.intn", 1, a[0], K_STR) < 0 ||
	    bi_int_arg(E, "rand.intn", 2, a[1], &n) < 0)
		return -1;
	if (n == 0) {
		*out = v_int(E->A, 0);
		return *out ? 0 : bi_oom(E);
	}
	if (n < 0)
		n = -n;
	uint64_t r;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		return ev_fail(E, REGO_ERR_BUILTIN, "eval_builtin_error: rand.intn: no randomness");
	*out = v_int(E->A, (int64_t)(r % (uint64_t)n));
	return *out ? 0 : bi_oom(E);
}

static int bi_print(struct ev *E, struct val **a, struct val **out)
{
	*out = &rv_true; /* evaluated by the evaluator itself (any number of arguments) */
	return 0;
}

static int bi_opa_runtime(struct ev *E, struct val **a, struct val **out)
{
	int dup;
	*out = v_obj_build(E->A, NULL, NULL, 0, &dup);
	return *out ? 0 : bi_oom(E);
}

/* ------------------------------------------------------------------ urlquery */

static void url_escape(struct sbuf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
			sb_addc(b, (char)c);
		} else if (c == ' ') {
			sb_addc(b, '+');
		} else {
			char e[4];
			snprintf(e, sizeof(e), "%%%02X", c);
			sb_adds(b, e);
		}
	}
}

static int url_unescape(const char *s, size_t n, struct sbuf *b)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+') {
			sb_addc(b, ' ');
		} else if (s[i] == '%') {

			if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
			    !isxdigit((unsigned char)s[i + 2]))
				return -1;
			char h[3] = {s[i + 1], s[i + 2], 0};
			sb_addc(b, (char)strtol(h, NULL, 16));
			i += 2;
		} else {
			sb_addc(b, s[i]);
		}
	}
	return 0;
}

static int ret_buf(struct ev *E, struct sbuf *b, struct val **out)
{
	if (b->oom) {
		free(b->s);
		return bi_oom(E);
	}
	*out = v_str(E->A, b->s ? b->s : "", b->n);
	free(b->s);
	return *out ? 0 : bi_oom(E);
}

static int bi_urlquery_encode(struct ev *E, struct val **a, struct val **out)
{
	if (bi_want(E, "urlquery.encode", 1, a[0], K_STR) < 0)
		return -1;
	struct sbuf b = {0};
	url_escape(&b, a[0]->s, a[0]->n);
	return ret_buf(E, &b, out);
}

static int bi_urlquery_decode(struct ev *E, struct val **a, struct val **out)
{
	if (bi_want(E, "urlquery.decode", 1, a[0], K_STR) < 0)
		return -1;
	struct sbuf b = {0};
	if (url_unescape(a[0]->s, a[0]->n, &b) < 0) {
		free(b.s);
		return ev_fail(E, REGO_ERR_BUILTIN,
		               "eval_builtin_error: urlquery.decode: invalid URL escape");
	}
	return ret_buf(E, &b, out);
}

static int bi_urlquery_encode_object(struct ev *E, struct val **a, struct val **out)
{
	struct val *o = a[0];
	if (bi_want(E, "urlquery.encode_object", 1, o, K_OBJ) < 0)
		return -1;
	v_force(o);
	struct sbuf b = {0};
	int first = 1;
	for (uint32_t i = 0; i < o->n; i++) {
		struct val *k = o->a[i], *v = o->ov[i];
		if (k->k != V_STR)
			goto bad;
		struct val *one[1] = {v};
		struct val **vs = one;
		uint32_t nv = 1;
		if (v->k == V_ARR || v->k == V_SET) {
			v_force(v);
			vs = v->a;
			nv = v->n;
		}
		for (uint32_t j = 0; j < nv; j++) {
			if (vs[j]->k != V_STR)
				goto bad;
			if (!first)
				sb_addc(&b, '&');
			first = 0;
			url_escape(&b, k->s, k->n);
			sb_addc(&b, '=');
			url_escape(&b, vs[j]->s, vs[j]->n);
		}
	}
	return ret_buf(E, &b, out);
bad:
	free(b.s);
	return ev_fail(E, REGO_ERR_EVAL_TYPE,
	               "eval_type_error: urlquery.encode_object: values must be strings, arrays or "
	               "sets of strings");
}

static int bi_urlquery_decode_object(struct ev *E, struct val **a, struct val **out)
{
	if (bi_want(E, "urlquery.decode_object", 1, a[0], K_STR) < 0)
		return -1;
	/* key -> array of values, keys in first-seen order then sorted by the builder */
	struct val *keys[512], *vals[512];
	size_t nk = 0;
	const char *s = a[0]->s, *end = s + a[0]->n;
	while (s < end) {
		const char *amp = memchr(s, '&', (size_t)(end - s));
		const char *e = amp ? amp : end;
		const char *eq = memchr(s, '=', (size_t)(e - s));
		struct sbuf kb = {0}, vb = {0};
		if (url_unescape(s, (size_t)((eq ? eq : e) - s), &kb) < 0 ||
		    (eq && url_unescape(eq + 1, (size_t)(e - eq - 1), &vb) < 0)) {
			free(kb.s);
			free(vb.s);
			return ev_fail(
			    E, REGO_ERR_BUILTIN,
			    "eval_builtin_error: urlquery.decode_object: invalid URL escape");
		}
		struct val *k = v_str(E->A, kb.s ? kb.s : "", kb.n),
		           *v = v_str(E->A, vb.s ? vb.s : "", vb.n);
		free(kb.s);
		free(vb.s);
		if (k == NULL || v == NULL)
			return bi_oom(E);
		size_t j = 0;
		while (j < nk && !v_eq(keys[j], k))
			j++;
		if (j == nk) {
			if (nk == 512)
				return ev_fail(
				    E, REGO_ERR_BUILTIN,
				    "eval_builtin_error: urlquery.decode_object: too many keys");
			keys[nk] = k;
			vals[nk++] = v_arr(E->A, 0);
		}
		struct val *arr = v_arr(E->A, vals[j]->n + 1);
		if (arr == NULL)
			return bi_oom(E);
		if (vals[j]->n)
			memcpy(arr->a, vals[j]->a, vals[j]->n * sizeof(*arr->a));
		arr->a[vals[j]->n] = v;
		vals[j] = arr;
		s = amp ? amp + 1 : end;
	}
	int dup;
	*out = v_obj_build(E->A, keys, vals, nk, &dup);
	return *out ? 0 : bi_oom(E);
}

/* ------------------------------------------------------------------ net.cidr */

struct cidr {
	int family; /* 4 or 16 bytes */
	uint8_t addr[16];
	int prefix;
};

static int parse_cidr(const char *s, struct cidr *c, int allow_ip)
{
	char buf[64];
	const char *slash = strchr(s, '/');
	size_t l = slash ? (size_t)(slash - s) : strlen(s);
	if (l >= sizeof(buf) || (!slash && !allow_ip))
		return -1;
	memcpy(buf, s, l);
	buf[l] = '\0';
	if (inet_pton(AF_INET, buf, c->addr) == 1)
		c->family = 4;
	else if (inet_pton(AF_INET6, buf, c->addr) == 1)
		c->family = 16;
	else
		return -1;
	c->prefix = c->family * 8;
	if (slash) {
		char *e;
		long p = strtol(slash + 1, &e, 10);
		if (*e || e == slash + 1 || p < 0 || p > c->family * 8)
			return -1;
		c->prefix = (int)p;
	}
	return 0;
}

static int prefix_match(const uint8_t *a, const uint8_t *b, int bits)
{
	int full = bits / 8, rem = bits % 8;
	if (memcmp(a, b, (size_t)full) != 0)
		return 0;
	if (rem == 0)
		return 1;
	uint8_t m = (uint8_t)(0xFF << (8 - rem));
	return (a[full] & m) == (b[full] & m);
}

static int bi_cidr_contains(struct ev *E, struct val **a, struct val **out)
{
	struct cidr n, x;
	if (bi_want(E, "net.cidr_contains", 1, a[0], K_STR) < 0 ||
	    bi_want(E, "net.cidr_contains", 2, a[1], K_STR) < 0)
		return -1;
	if (parse_cidr(a[0]->s, &n, 0) < 0 || parse_cidr(a[1]->s, &x, 1) < 0)
		return ev_fail(E, REGO_ERR_BUILTIN,
		               "eval_builtin_error: net.cidr_contains: invalid CIDR or IP");
	*out = v_bool(n.family == x.family && x.prefix >= n.prefix &&
	              prefix_match(n.addr, x.addr, n.prefix));
	return 0;
}

static int bi_cidr_intersects(struct ev *E, struct val **a, struct val **out)
{
	struct cidr x, y;
	if (bi_want(E, "net.cidr_intersects", 1, a[0], K_STR) < 0 ||
	    bi_want(E, "net.cidr_intersects", 2, a[1], K_STR) < 0)
		return -1;
	if (parse_cidr(a[0]->s, &x, 0) < 0 || parse_cidr(a[1]->s, &y, 0) < 0)
		return ev_fail(E, REGO_ERR_BUILTIN,
		               "eval_builtin_error: net.cidr_intersects: invalid CIDR");
	int bits = x.prefix < y.prefix ? x.prefix : y.prefix;
	*out = v_bool(x.family == y.family && prefix_match(x.addr, y.addr, bits));
	return 0;
}

static int bi_cidr_is_valid(struct ev *E, struct val **a, struct val **out)
{
	struct cidr c;
	*out = v_bool(a[0]->k == V_STR && parse_cidr(a[0]->s, &c, 0) == 0);
	return 0;
}

static int bi_cidr_expand(struct ev *E, struct val **a, struct val **out)
{
	struct cidr c;
	if (bi_want(E, "net.cidr_expand", 1, a[0], K_STR) < 0)
		return -1;
	if (parse_cidr(a[0]->s, &c, 0) < 0)
		return ev_fail(E, REGO_ERR_BUILTIN,
		               "eval_builtin_error: net.cidr_expand: invalid CIDR");
	int host = c.family * 8 - c.prefix;
	if (host > 16)
		return ev_fail(E, REGO_ERR_BUILTIN,
		               "eval_builtin_error: net.cidr_expand: network too large");
	size_t n = (size_t)1 << host;
	struct val **items = ar_alloc(E->A, n * sizeof(*items));
	if (items == NULL)
		return bi_oom(E);
	for (size_t i = 0; i < n; i++) {
		uint8_t ad[16];
		memcpy(ad, c.addr, sizeof(ad));
		/* clear the host bits, then add i */
		for (int bit = 0; bit < host; bit++) {
			int byte = c.family - 1 - bit / 8;
			ad[byte] &= (uint8_t) ~(1u << (bit % 8));
			if (i >> bit & 1)
				ad[byte] |= (uint8_t)(1u << (bit % 8));
		}
		char txt[64];
		inet_ntop(c.family == 4 ? AF_INET : AF_INET6, ad, txt, sizeof(txt));
		if ((items[i] = v_str(E->A, txt, strlen(txt))) == NULL)
			return bi_oom(E);
	}
	*out = v_set_build(E->A, items, n);
	return *out ? 0 : bi_oom(E);
}

/* ------------------------------------------------------------------ graph */

static int reach(struct ev *E, const char *fn, struct val **a, struct val **out, int paths)
{
	struct val *g = a[0], *init = a[1];
	if (bi_want(E, fn, 1, g, K_OBJ) < 0 || bi_want(E, fn, 2, init, K_ARR | K_SET) < 0)
		return -1;
	v_force(init);
	if (!paths) {
		/* breadth first over the edges */
		size_t cap = 64, n = 0, head = 0;
		struct val **q = ar_alloc(E->A, cap * sizeof(*q));
		if (q == NULL)
			return bi_oom(E);
		for (uint32_t i = 0; i < init->n; i++) {
			struct val *x = init->a[i];
			int seen = 0;
			for (size_t j = 0; j < n && !seen; j++)
				seen = v_eq(q[j], x);
			if (seen || v_get(g, x) == NULL)
				continue;
			if (n == cap) {
				struct val **nq = ar_alloc(E->A, cap * 2 * sizeof(*nq));
				if (nq == NULL)
					return bi_oom(E);
				memcpy(nq, q, n * sizeof(*nq));
				q = nq;
				cap *= 2;
			}
			q[n++] = x;
		}
		while (head < n) {
			struct val *edges = v_get(g, q[head++]);
			if (edges == NULL || (edges->k != V_ARR && edges->k != V_SET))
				continue;
			v_force(edges);
			for (uint32_t i = 0; i < edges->n; i++) {
				struct val *x = edges->a[i];
				int seen = 0;
				for (size_t j = 0; j < n && !seen; j++)
					seen = v_eq(q[j], x);
				if (seen)
					continue;
				if (n == cap) {
					struct val **nq = ar_alloc(E->A, cap * 2 * sizeof(*nq));
					if (nq == NULL)
						return bi_oom(E);
					memcpy(nq, q, n * sizeof(*nq));
					q = nq;
					cap *= 2;
				}
				q[n++] = x;
			}
		}
		*out = v_set_build(E->A, q, n);
		return *out ? 0 : bi_oom(E);
	}
	/* every path from an initial node until a leaf or a node already on the path */
	struct val *stack[256], *result[4096];
	size_t nres = 0;
	struct frame {
		struct val *node;
		uint32_t next;
	} fr[256];
	for (uint32_t s = 0; s < init->n; s++) {
		if (v_get(g, init->a[s]) == NULL)
			continue;
		int depth = 0;
		fr[0] = (struct frame){init->a[s], 0};
		stack[0] = init->a[s];
		while (depth >= 0) {
			struct frame *f = &fr[depth];
			struct val *edges = v_get(g, f->node);
			int pushed = 0;
			if (edges && (edges->k == V_ARR || edges->k == V_SET)) {
				v_force(edges);
				while (f->next < edges->n && !pushed) {
					struct val *x = edges->a[f->next++];
					int onpath = 0;
					for (int j = 0; j <= depth && !onpath; j++)
						onpath = v_eq(stack[j], x);
					if (onpath || v_get(g, x) == NULL || depth + 1 >= 256)
						continue;
					depth++;
					fr[depth] = (struct frame){x, 0};
					stack[depth] = x;
					pushed = 1;
				}
			}
			if (pushed)
				continue;
			/* no onward step left: if none was ever possible, the path ends here */
			{
				int leaf = 1;
				if (edges && (edges->k == V_ARR || edges->k == V_SET))
					for (uint32_t i = 0; i < edges->n && leaf; i++) {
						int onpath = 0;
						for (int j = 0; j <= depth && !onpath; j++)
							onpath = v_eq(stack[j], edges->a[i]);
						leaf = onpath || v_get(g, edges->a[i]) == NULL;
					}
				if (leaf && nres < 4096) {
					struct val *p = bi_arr_of(E, stack, (size_t)depth + 1);
					if (p == NULL)
						return bi_oom(E);
					result[nres++] = p;
				}
			}
			depth--;
		}
	}
	*out = v_set_build(E->A, result, nres);
	return *out ? 0 : bi_oom(E);
}

static int bi_graph_reachable(struct ev *E, struct val **a, struct val **out)
{
	return reach(E, "graph.reachable", a, out, 0);
}

static int bi_graph_reachable_paths(struct ev *E, struct val **a, struct val **out)
{
	return reach(E, "graph.reachable_paths", a, out, 1);
}

/* ------------------------------------------------------------------ uuid, jwt */

static int bi_uuid_rfc4122(struct ev *E, struct val **a, struct val **out)
{
	if (bi_want(E, "uuid.rfc4122", 1, a[0], K_STR) < 0)
		return -1;
	uint8_t u[16];
	if (RAND_bytes(u, sizeof(u)) != 1)
		return ev_fail(E, REGO_ERR_BUILTIN,
		               "eval_builtin_error: uuid.rfc4122: no randomness");
	u[6] = (uint8_t)((u[6] & 0x0F) | 0x40);
	u[8] = (uint8_t)((u[8] & 0x3F) | 0x80);
	char t[40];
	snprintf(t, sizeof(t),
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
	         u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
	         u[15]);
	*out = v_str(E->A, t, 36);
	return *out ? 0 : bi_oom(E);
}

static struct val *json_segment(struct ev *E, const char *s, size_t n)
{
	uint8_t *d;
	size_t l;
	if (ev_json_room(E, n) < 0 || b64_decode(s, n, B64_URL | B64_LENIENT, &d, &l) < 0)
		return NULL;
	json_t *j = json_loadb((const char *)d, l, 0, NULL);
	free(d);
	if (j == NULL)
		return NULL;
	if (E->nkeep == E->capkeep) {
		size_t nc = E->capkeep ? E->capkeep * 2 : 8;
		json_t **nk = realloc(E->keep, nc * sizeof(*nk));
		if (nk == NULL) {
			json_decref(j);
			return NULL;
		}
		E->keep = nk;
		E->capkeep = nc;
	}
	E->keep[E->nkeep++] = j;
	if (ev_account_json(E, j) < 0)
		return NULL;
	return v_from_json(E->A, j);
}

static int bi_jwt_decode(struct ev *E, struct val **a, struct val **out)
{
	if (bi_want(E, "io.jwt.decode", 1, a[0], K_STR) < 0)
		return -1;
	const char *t = a[0]->s, *d1 = memchr(t, '.', a[0]->n);
	const char *d2 = d1 ? memchr(d1 + 1, '.', a[0]->n - (size_t)(d1 + 1 - t)) : NULL;
	if (d2 == NULL)
		return ev_fail(
		    E, REGO_ERR_BUILTIN,
		    "eval_builtin_error: io.jwt.decode: encoded JWT had no period separators");
	struct val *h = json_segment(E, t, (size_t)(d1 - t)),
	           *p = json_segment(E, d1 + 1, (size_t)(d2 - d1 - 1));
	uint8_t *sig;
	size_t sl;
	if (h == NULL || p == NULL ||
	    b64_decode(d2 + 1, a[0]->n - (size_t)(d2 + 1 - t), B64_URL | B64_LENIENT, &sig, &sl) <
	        0)
		return ev_fail(E, REGO_ERR_BUILTIN,
		               "eval_builtin_error: io.jwt.decode: invalid JWT");
	char *hex = hex_encode(sig, sl);
	free(sig);
	struct val *r = v_arr(E->A, 3);
	if (hex == NULL || r == NULL) {
		free(hex);
		return bi_oom(E);
	}
	r->a[0] = h;
	r->a[1] = p;
	r->a[2] = v_str(E->A, hex, strlen(hex));
	free(hex);
	*out = r->a[2] ? r : NULL;
	return *out ? 0 : bi_oom(E);
}

/* ------------------------------------------------------------------ deprecated, kept for old
 * policies */

static int any_all(struct ev *E, struct val **a, struct val **out, int all)
{
	if (bi_want(E, all ? "all" : "any", 1, a[0], K_ARR | K_SET) < 0)
		return -1;
	v_force(a[0]);
	int r = all;
	for (uint32_t i = 0; i < a[0]->n; i++) {
		int t = a[0]->a[i]->k == V_BOOL && a[0]->a[i]->b;
		if (all && !t)
			r = 0;
		if (!all && t)
			r = 1;
	}
	*out = v_bool(r);
	return 0;
}

static int bi_all(struct ev *E, struct val **a, struct val **out)
{
	return any_all(E, a, out, 1);
}
static int bi_any(struct ev *E, struct val **a, struct val **out)
{
	return any_all(E, a, out, 0);
}

static int bi_set_diff(struct ev *E, struct val **a, struct val **out)
{
	if (bi_want(E, "set_diff", 1, a[0], K_SET) < 0 ||
	    bi_want(E, "set_diff", 2, a[1], K_SET) < 0)
		return -1;
	struct val **items = ar_alloc(E->A, ((size_t)a[0]->n + 1) * sizeof(*items));
	size_t n = 0;
	if (items == NULL)
		return bi_oom(E);
	for (uint32_t i = 0; i < a[0]->n; i++)
		if (!v_set_has(a[1], a[0]->a[i]))
			items[n++] = a[0]->a[i];
	*out = v_set_build(E->A, items, n);
	return *out ? 0 : bi_oom(E);
}

static int bi_cast_array(struct ev *E, struct val **a, struct val **out)
{
	if (bi_want(E, "cast_array", 1, a[0], K_ARR | K_SET) < 0)
		return -1;
	v_force(a[0]);
	*out = a[0]->k == V_ARR ? a[0] : bi_arr_of(E, a[0]->a, a[0]->n);
	return *out ? 0 : bi_oom(E);
}

static int bi_cast_set(struct ev *E, struct val **a, struct val **out)
{
	if (bi_want(E, "cast_set", 1, a[0], K_ARR | K_SET) < 0)
		return -1;
	v_force(a[0]);
	*out = a[0]->k == V_SET ? a[0] : v_set_build(E->A, a[0]->a, a[0]->n);
	return *out ? 0 : bi_oom(E);
}

#define CAST(fname, kinds, name)                                                                   \
	static int fname(struct ev *E, struct val **a, struct val **out)                           \
	{                                                                                          \
		if (bi_want(E, name, 1, a[0], kinds) < 0)                                          \
			return -1;                                                                 \
		*out = a[0];                                                                       \
		return 0;                                                                          \
	}
CAST(bi_cast_string, K_STR, "cast_string")
CAST(bi_cast_boolean, K_BOOL, "cast_boolean")
CAST(bi_cast_null, K_NULL, "cast_null")
CAST(bi_cast_object, K_OBJ, "cast_object")

const struct builtin rego_builtins_misc[] = {
    {"print", -1, bi_print},
    {"walk", 1, NULL}, /* a relation: generated by the evaluator */
    {"opa.runtime", 0, bi_opa_runtime},
    {"crypto.md5", 1, bi_md5},
    {"crypto.sha1", 1, bi_sha1},
    {"crypto.sha256", 1, bi_sha256},
    {"crypto.sha384", 1, bi_sha384},
    {"crypto.sha512", 1, bi_sha512},
    {"crypto.hmac.md5", 2, bi_hmac_md5},
    {"crypto.hmac.sha1", 2, bi_hmac_sha1},
    {"crypto.hmac.sha256", 2, bi_hmac_sha256},
    {"crypto.hmac.sha512", 2, bi_hmac_sha512},
    {"crypto.hmac.equal", 2, bi_hmac_equal},
    {"trace", 1, bi_trace},
    {"rand.intn", 2, bi_rand_intn},
    {"urlquery.encode", 1, bi_urlquery_encode},
    {"urlquery.decode", 1, bi_urlquery_decode},
    {"urlquery.encode_object", 1, bi_urlquery_encode_object},
    {"urlquery.decode_object", 1, bi_urlquery_decode_object},
    {"net.cidr_contains", 2, bi_cidr_contains},
    {"net.cidr_intersects", 2, bi_cidr_intersects},
    {"net.cidr_is_valid", 1, bi_cidr_is_valid},
    {"net.cidr_expand", 1, bi_cidr_expand},
    {"graph.reachable", 2, bi_graph_reachable},
    {"graph.reachable_paths", 2, bi_graph_reachable_paths},
    {"uuid.rfc4122", 1, bi_uuid_rfc4122},
    {"io.jwt.decode", 1, bi_jwt_decode},
    {"all", 1, bi_all},
    {"any", 1, bi_any},
    {"set_diff", 2, bi_set_diff},
    {"cast_array", 1, bi_cast_array},
    {"cast_set", 1, bi_cast_set},
    {"cast_string", 1, bi_cast_string},
    {"cast_boolean", 1, bi_cast_boolean},
    {"cast_null", 1, bi_cast_null},
    {"cast_object", 1, bi_cast_object},
};
const size_t rego_builtins_misc_n = sizeof(rego_builtins_misc) / sizeof(rego_builtins_misc[0]);
