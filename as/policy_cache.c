/*
 * policy_cache: compiled attestation policies by (key, text); see policy_cache.h. A handful
 * of policies is the norm (default_cpu, a few per workload), so the entries sit in one array
 * searched linearly under a mutex; compiling happens outside it. An entry keeps the text it
 * was compiled from, so a lookup compares the bytes read from the store with it (memcmp; the
 * SHA-256 of every appraisal's policy text was 3% of grpc-as's CPU at 64 attesters) and the
 * digest is computed once per compilation, for as_policy_ref_digest.
 * An entry is reference-counted: the cache holds one reference while the entry is listed and
 * each evaluation in progress holds one, so eviction never frees a policy in use.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "as/policy_cache.h"
#include "hash.h"
#include "log.h"

#define DEFAULT_MAX 64

struct as_policy_ref {
	char *key;
	char *text; /* the text it was compiled from (owned), len bytes */
	size_t len;
	uint8_t digest[32]; /* SHA-256 of text */
	struct rego_policy *p;
	unsigned refs;
	unsigned long long used; /* tick of the last lookup, for LRU eviction */
};

struct as_policy_cache {
	pthread_mutex_t mu;
	struct as_policy_ref **e;
	size_t n, max;
	unsigned long long tick, hits, compiles;
};

static void ref_drop(struct as_policy_ref *r) /* with mu held or r unreachable */
{
	if (--r->refs > 0)
		return;
	rego_policy_free(r->p);
	free(r->key);
	free(r->text);
	free(r);
}

struct as_policy_cache *as_policy_cache_new(size_t max)
{
	struct as_policy_cache *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->max = max ? max : DEFAULT_MAX;
	c->e = calloc(c->max, sizeof(*c->e));
	if (c->e == NULL) {
		free(c);
		return NULL;
	}
	pthread_mutex_init(&c->mu, NULL);
	return c;
}

void as_policy_cache_free(struct as_policy_cache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++)
		ref_drop(c->e[i]);
	free(c->e);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

static struct as_policy_ref *find(struct as_policy_cache *c, const char *key, size_t *at)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->e[i]->key, key) == 0) {
			*at = i;
			return c->e[i];
		}
	return NULL;
}

static void unlist(struct as_policy_cache *c, size_t at)
{
	ref_drop(c->e[at]);
	c->e[at] = c->e[--c->n];
}

/* Lists `r` (taking the cache's reference) in place of any entry for the same key. */
static void list(struct as_policy_cache *c, struct as_policy_ref *r)
{
	size_t at;
	if (find(c, r->key, &at) != NULL)
		unlist(c, at);
	if (c->n == c->max) {
		size_t lru = 0;
		for (size_t i = 1; i < c->n; i++)
			if (c->e[i]->used < c->e[lru]->used)
				lru = i;
		unlist(c, lru);
	}
	c->e[c->n++] = r;
}

struct as_policy_ref *as_policy_cache_get(struct as_policy_cache *c, const char *key,
                                          const char *text, size_t len,
                                          const struct rego_host_function *host_decls,
                                          size_t n_host, struct err *err)
{
	uint8_t d[HASH_MAX];
	size_t at;
	pthread_mutex_lock(&c->mu);
	struct as_policy_ref *r = find(c, key, &at);
	if (r != NULL && r->len == len && memcmp(r->text, text, len) == 0) {
		r->refs++;
		r->used = ++c->tick;
		c->hits++;
		pthread_mutex_unlock(&c->mu);
		return r;
	}
	pthread_mutex_unlock(&c->mu);

	if (hash_digest(HASH_SHA256, text, len, d) != 32) {
		err_set(err, "cannot hash the policy text");
		return NULL;
	}
	struct rego_module m = {key, text, len};
	struct rego_policy *p = rego_compile(&m, 1, host_decls, n_host, err);
	if (p == NULL)
		return NULL;
	r = calloc(1, sizeof(*r));
	if (r == NULL || (r->key = strdup(key)) == NULL || (r->text = malloc(len + 1)) == NULL) {
		if (r != NULL)
			free(r->key);
		free(r);
		rego_policy_free(p);
		err_set(err, "out of memory");
		return NULL;
	}
	memcpy(r->text, text, len);
	r->text[len] = '\0';
	r->len = len;
	memcpy(r->digest, d, 32);
	r->p = p;
	r->refs = 2; /* the cache's and the caller's */
	log_info("as: policy %s compiled (sha256 %02x%02x%02x%02x...)", key, d[0], d[1], d[2],
	         d[3]);
	pthread_mutex_lock(&c->mu);
	c->compiles++;
	r->used = ++c->tick;
	list(c, r);
	pthread_mutex_unlock(&c->mu);
	return r;
}

const struct rego_policy *as_policy_ref_policy(const struct as_policy_ref *r)
{
	return r->p;
}

const uint8_t *as_policy_ref_digest(const struct as_policy_ref *r)
{
	return r->digest;
}

void as_policy_cache_release(struct as_policy_cache *c, struct as_policy_ref *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	ref_drop(r);
	pthread_mutex_unlock(&c->mu);
}

void as_policy_cache_stats(struct as_policy_cache *c, unsigned long long *hits,
                           unsigned long long *compiles)
{
	pthread_mutex_lock(&c->mu);
	*hits = c->hits;
	*compiles = c->compiles;
	pthread_mutex_unlock(&c->mu);
}
