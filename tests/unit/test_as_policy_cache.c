/*
 * test_as_policy_cache: the AS's compiled-policy cache (as/policy_cache.c) compiles a policy
 * once per text it sees under a key, and a new text under the key, even one of the same
 * length, is compiled and evaluated at the next lookup.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "as/policy_cache.h"

#define POLICY_1 "package policy\n\nanswer := 1\n"
#define POLICY_2 "package policy\n\nanswer := 2\n"

static long long answer_of(const struct as_policy_ref *r)
{
	struct rego_eval_opts o = {0};
	json_t *v = NULL;
	struct err e;
	long long n;

	assert_int_equal(
	    rego_eval_rule(as_policy_ref_policy(r), "data.policy.answer", &o, &v, NULL, &e), 0);
	n = json_integer_value(v);
	json_decref(v);
	return n;
}

static struct as_policy_ref *get(struct as_policy_cache *c, const char *text)
{
	struct err e;
	struct as_policy_ref *r =
	    as_policy_cache_get(c, "default_cpu.rego", text, strlen(text), NULL, 0, &e);

	assert_non_null(r);
	return r;
}

static void test_same_text_is_compiled_once(void **state)
{
	struct as_policy_cache *c = as_policy_cache_new(4);
	struct as_policy_ref *a = get(c, POLICY_1), *b = get(c, POLICY_1);
	unsigned long long hits, compiles;

	as_policy_cache_stats(c, &hits, &compiles);
	assert_ptr_equal(a, b);
	assert_int_equal(hits, 1);
	assert_int_equal(compiles, 1);
	as_policy_cache_release(c, a);
	as_policy_cache_release(c, b);
	as_policy_cache_free(c);
}

static void test_a_new_text_of_the_same_length_is_seen(void **state)
{
	struct as_policy_cache *c = as_policy_cache_new(4);
	struct as_policy_ref *a = get(c, POLICY_1), *b, *a2;
	unsigned long long hits, compiles;

	assert_int_equal(strlen(POLICY_1), strlen(POLICY_2));
	assert_int_equal(answer_of(a), 1);
	b = get(c, POLICY_2);
	assert_int_equal(answer_of(b), 2);
	assert_memory_not_equal(as_policy_ref_digest(a), as_policy_ref_digest(b), 32);
	assert_int_equal(answer_of(a), 1); /* a holder keeps what it got */
	a2 = get(c, POLICY_1);
	assert_int_equal(answer_of(a2), 1);
	as_policy_cache_stats(c, &hits, &compiles);
	assert_int_equal(hits, 0);
	assert_int_equal(compiles, 3);
	as_policy_cache_release(c, a);
	as_policy_cache_release(c, b);
	as_policy_cache_release(c, a2);
	as_policy_cache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_same_text_is_compiled_once),
	    cmocka_unit_test(test_a_new_text_of_the_same_length_is_seen),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
