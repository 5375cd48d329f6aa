/*
 * builtins_misc: digests, tracing and randomness. Time, units and semantic versions are in
 * builtins_time.c.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

const struct builtin rego_builtins_misc[] = {
    {"print", -1, bi_print},
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
};
const size_t rego_builtins_misc_n = sizeof(rego_builtins_misc) / sizeof(rego_builtins_misc[0]);
