/* The Rego engine's API: undefined vs false, conflicts, the step budget, explained denials,
 * host functions, queries and their bindings, parse errors with positions, OPA error codes,
 * exact numbers, with, set-valued input, time builtins, and concurrent evaluation. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "rego/rego.h"

static struct rego_policy *compile(const char *text, struct err *err)
{
	struct rego_module m = {"t.rego", text, strlen(text)};
	return rego_compile(&m, 1, NULL, 0, err);
}

static void test_rego_undefined_is_not_false(void **state)
{
	struct err err = {0};
	struct rego_policy *p =
	    compile("package policy\nallow if input.x == 1\ndeny := false\n", &err);
	json_t *r = NULL;
	assert_non_null(p);
	assert_int_equal(rego_eval_rule(p, "data.policy.allow", NULL, &r, NULL, &err), 0);
	assert_null(r);
	assert_int_equal(rego_eval_rule(p, "data.policy.deny", NULL, &r, NULL, &err), 0);
	assert_true(json_is_false(r));
	json_decref(r);
	assert_int_equal(rego_eval_rule(p, "data.policy.nosuch", NULL, &r, NULL, &err), 0);
	assert_null(r);
	rego_policy_free(p);
}

static void test_rego_conflicting_complete_rule_is_an_error(void **state)
{
	struct err err = {0};
	struct rego_policy *p =
	    compile("package policy\nx := 1 if input.a\nx := 2 if input.b\n", &err);
	json_t *in = json_pack("{s:b,s:b}", "a", 1, "b", 1), *r = NULL;
	struct rego_eval_opts o = {.input = in};
	assert_int_equal(rego_eval_rule(p, "data.policy.x", &o, &r, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "eval_conflict_error"));
	json_decref(in);
	rego_policy_free(p);
}

static void test_rego_budget_stops_a_pathological_policy(void **state)
{
	struct err err = {0};
	struct rego_policy *p = compile(
	    "package policy\nn := [x | x := input.a[_]; y := input.a[_]; z := input.a[_]]\n", &err);
	json_t *a = json_array(), *r = NULL;
	for (int i = 0; i < 200; i++)
		json_array_append_new(a, json_integer(i));
	json_t *in = json_pack("{s:o}", "a", a);
	struct rego_eval_opts o = {.input = in, .max_steps = 100000};
	assert_int_equal(rego_eval_rule(p, "data.policy.n", &o, &r, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "budget"));
	json_decref(in);
	rego_policy_free(p);
}

static void test_rego_explains_which_expression_failed(void **state)
{
	struct err err = {0};
	struct rego_policy *p =
	    compile("package policy\nimport rego.v1\ndefault allow := false\nallow if {\n"
	            "\tinput.submods.cpu0[\"ear.status\"] == \"affirming\"\n}\n",
	            &err);
	json_t *in = json_loads("{\"submods\":{\"cpu0\":{\"ear.status\":\"warning\"}}}", 0, NULL),
	       *r = NULL;
	struct rego_eval_opts o = {.input = in, .explain = 1};
	char *why = NULL;
	assert_non_null(p);
	assert_int_equal(rego_eval_rule(p, "data.policy.allow", &o, &r, &why, &err), 0);
	assert_true(json_is_false(r));
	assert_non_null(why);
	assert_string_equal(
	    why,
	    "allow: input.submods.cpu0[\"ear.status\"] == \"affirming\" was false (\"warning\")");
	free(why);
	json_decref(r);
	json_decref(in);
	rego_policy_free(p);
}

static json_t *qrv(void *ctx, json_t *const *args, size_t n, struct err *err)
{
	return strcmp(json_string_value(args[0]), "svn") == 0 ? json_pack("[s]", "1") : json_null();
}

static void test_rego_host_function_and_null_membership(void **state)
{
	struct err err = {0};
	struct rego_policy *p =
	    compile("package policy\nok if input.svn in query_reference_value(\"svn\")\n"
	            "ko if input.svn in query_reference_value(\"unknown\")\n",
	            &err);
	struct rego_host_function h = {"query_reference_value", 1, qrv, NULL};
	json_t *in = json_pack("{s:s}", "svn", "1"), *r = NULL;
	struct rego_eval_opts o = {.input = in, .host_fns = &h, .n_host_fns = 1};
	assert_int_equal(rego_eval_rule(p, "data.policy.ok", &o, &r, NULL, &err), 0);
	assert_true(json_is_true(r));
	json_decref(r);
	assert_int_equal(rego_eval_rule(p, "data.policy.ko", &o, &r, NULL, &err), 0);
	assert_null(r);
	json_decref(in);
	rego_policy_free(p);
}

static void test_rego_parse_errors_have_positions(void **state)
{
	struct err err = {0};
	assert_null(compile("package policy\nallow if {\n  input.x ==\n}\n", &err));
	assert_non_null(strstr(err.msg, "t.rego:"));
	assert_null(compile("allow := true\n", &err));
	assert_non_null(strstr(err.msg, "package"));
	/* deep nesting is refused, not a stack overflow */
	char deep[4000] = "package p\nx := ";
	for (int i = 0; i < 1000; i++)
		strcat(deep, "[");
	assert_null(compile(deep, &err));
}

static void test_rego_queries_and_builtins(void **state)
{
	struct err err = {0};
	json_t *res = NULL, *vals = NULL;
	assert_int_equal(
	    rego_eval_query(NULL, "sprintf(\"%v-%d\", [\"a\", 3])", NULL, &res, &vals, NULL, &err),
	    0);
	assert_string_equal(json_string_value(json_array_get(vals, 0)), "a-3");
	json_decref(res);
	json_decref(vals);
	assert_int_equal(
	    rego_eval_query(NULL, "count({1, 2, 2, 3})", NULL, &res, &vals, NULL, &err), 0);
	assert_int_equal(json_integer_value(json_array_get(vals, 0)), 3);
	json_decref(res);
	json_decref(vals);
	assert_int_equal(rego_eval_query(NULL, "object.union_n([{\"a\": 1}, {\"b\": 2}])", NULL,
	                                 &res, &vals, NULL, &err),
	                 0);
	assert_int_equal(json_object_size(json_array_get(vals, 0)), 2);
	json_decref(res);
	json_decref(vals);
}

static void test_rego_query_binds_variables_and_sets_come_out_sorted(void **state)
{
	struct err err = {0};
	struct rego_policy *p = compile("package p\ns contains x if some x in [3, 1, 2, 1]\n"
	                                "o[k] := v if some k, v in {\"b\": 2, \"a\": 1}\n",
	                                &err);
	json_t *res = NULL;
	assert_non_null(p);
	assert_int_equal(rego_eval_query(p, "data.p.o[k] = v", NULL, &res, NULL, NULL, &err), 0);
	assert_int_equal(json_array_size(res), 2);
	json_decref(res);
	char *text = NULL;
	assert_int_equal(rego_eval_query_text(p, "x := data.p.s", NULL, &text, &err), 0);
	assert_string_equal(text, "[{\"x\":[1,2,3]}]");
	free(text);
	rego_policy_free(p);
}

static void test_rego_errors_carry_opa_codes(void **state)
{
	struct err err = {0};
	assert_null(compile("package p\nx := \n", &err));
	assert_int_equal(err.code, REGO_ERR_PARSE);
	assert_string_equal(rego_err_code_name(err.code), "rego_parse_error");
	assert_null(compile("package p\nf(x) := 1\nf(x, y) := 2\n", &err));
	assert_int_equal(err.code, REGO_ERR_TYPE);
	assert_null(compile("package p\nr if { x := 1; x := 2 }\n", &err));
	assert_int_equal(err.code, REGO_ERR_COMPILE);
	assert_null(compile("package p\nallow if {\n\tinput.x == y\n}\n", &err));
	assert_int_equal(err.code, REGO_ERR_UNSAFE);
	assert_non_null(strstr(err.msg, "t.rego:3:"));
	char *text = NULL;
	struct rego_eval_opts strict = {.strict_builtin_errors = 1};
	assert_int_equal(rego_eval_query_text(NULL, "1 / 0", &strict, &text, &err), -1);
	assert_int_equal(err.code, REGO_ERR_BUILTIN);
	/* without strict builtin errors the expression is undefined */
	assert_int_equal(rego_eval_query_text(NULL, "1 / 0", NULL, &text, &err), 0);
	assert_string_equal(text, "[]");
	free(text);
}

static void test_rego_query_without_a_policy_reads_data(void **state)
{
	struct err err = {0};
	char *text = NULL;
	json_t *d = json_pack("{s:{s:i}}", "a", "b", 1), *r = NULL;
	struct rego_eval_opts o = {.data = d};
	assert_int_equal(rego_eval_query_text(NULL, "x := data.a.b", &o, &text, &err), 0);
	assert_string_equal(text, "[{\"x\":1}]");
	free(text);
	assert_int_equal(rego_eval_rule(NULL, "data.a", &o, &r, NULL, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(r, "b")), 1);
	json_decref(r);
	assert_int_equal(rego_eval_query_text(NULL, "data.x.f(1)", &o, &text, &err), -1);
	assert_int_equal(err.code, REGO_ERR_TYPE);
	json_decref(d);
}

static void test_rego_numbers_are_exact(void **state)
{
	struct err err = {0};
	char *text = NULL;
	assert_int_equal(rego_eval_query_text(NULL,
	                                      "x := 18446744073709551615 + 1; y := 0.1 + 0.2; "
	                                      "z := 1e400 > 1e399",
	                                      NULL, &text, &err),
	                 0);
	assert_string_equal(text, "[{\"x\":18446744073709551616,\"y\":0.3,\"z\":true}]");
	free(text);
}

static void test_rego_with_replaces_input_and_data(void **state)
{
	struct err err = {0};
	struct rego_policy *p =
	    compile("package p\nallow if input.user == data.admin\n"
	            "t if allow with input as {\"user\": \"a\"} with data.admin as \"a\"\n"
	            "f if allow\n",
	            &err);
	json_t *r = NULL;
	assert_non_null(p);
	assert_int_equal(rego_eval_rule(p, "data.p.t", NULL, &r, NULL, &err), 0);
	assert_true(json_is_true(r));
	json_decref(r);
	assert_int_equal(rego_eval_rule(p, "data.p.f", NULL, &r, NULL, &err), 0);
	assert_null(r);
	rego_policy_free(p);
}

static void test_rego_input_term_carries_sets(void **state)
{
	struct err err = {0};
	struct rego_policy *p = compile("package p\nok if input.s[2]\n", &err);
	struct rego_eval_opts o = {.input_term = "{\"s\": {1, 2}}"};
	json_t *r = NULL;
	assert_int_equal(rego_eval_rule(p, "data.p.ok", &o, &r, NULL, &err), 0);
	assert_true(json_is_true(r));
	json_decref(r);
	rego_policy_free(p);
}

static void test_rego_time_builtins(void **state)
{
	struct err err = {0};
	char *text = NULL;
	assert_int_equal(
	    rego_eval_query_text(NULL,
	                         "t := time.parse_rfc3339_ns(\"2021-03-04T05:06:07.5+01:00\"); "
	                         "d := time.date(t); f := time.format([t, \"UTC\", \"RFC1123\"])",
	                         NULL, &text, &err),
	    0);
	assert_string_equal(text, "[{\"t\":1614830767500000000,\"d\":[2021,3,4],"
	                          "\"f\":\"Thu, 04 Mar 2021 04:06:07 UTC\"}]");
	free(text);
}

struct shared {
	struct rego_policy *p;
	int ok;
};

static void *worker(void *arg)
{
	struct shared *s = arg;
	for (int i = 0; i < 300; i++) {
		struct err err = {0};
		json_t *in = json_pack("{s:i,s:[i,i,i]}", "n", i, "xs", i, i + 1, i + 2), *r = NULL;
		struct rego_eval_opts o = {.input = in};
		if (rego_eval_rule(s->p, "data.policy.out", &o, &r, NULL, &err) != 0 ||
		    json_integer_value(json_object_get(r, "double")) != 2 * i ||
		    json_array_size(json_object_get(r, "evens")) != (i % 2 ? 1u : 2u) ||
		    json_integer_value(json_object_get(r, "mocked")) != 7 ||
		    json_integer_value(json_object_get(r, "sum")) != 3 * i + 3)
			s->ok = 0;
		json_decref(r);
		json_decref(in);
	}
	return NULL;
}

static void test_rego_compiled_policy_is_shared_by_threads(void **state)
{
	struct err err = {0};
	struct shared s = {
	    compile("package policy\n"
	            "double := input.n * 2\n"
	            "evens contains x if { some x in input.xs; x % 2 == 0 }\n"
	            "f(x) := x + 1\n"
	            "mocked := y if y := f(1) with f as 7\n"
	            "sum := s if s := sum([x | some x in input.xs])\n"
	            "out := {\"double\": double, \"evens\": evens, \"mocked\": mocked, "
	            "\"sum\": sum}\n",
	            &err),
	    1};
	pthread_t t[4];
	assert_non_null(s.p);
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, worker, &s);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_true(s.ok);
	rego_policy_free(s.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rego_undefined_is_not_false),
	    cmocka_unit_test(test_rego_conflicting_complete_rule_is_an_error),
	    cmocka_unit_test(test_rego_budget_stops_a_pathological_policy),
	    cmocka_unit_test(test_rego_explains_which_expression_failed),
	    cmocka_unit_test(test_rego_host_function_and_null_membership),
	    cmocka_unit_test(test_rego_parse_errors_have_positions),
	    cmocka_unit_test(test_rego_queries_and_builtins),
	    cmocka_unit_test(test_rego_compiled_policy_is_shared_by_threads),
	    cmocka_unit_test(test_rego_query_binds_variables_and_sets_come_out_sorted),
	    cmocka_unit_test(test_rego_errors_carry_opa_codes),
	    cmocka_unit_test(test_rego_numbers_are_exact),
	    cmocka_unit_test(test_rego_query_without_a_policy_reads_data),
	    cmocka_unit_test(test_rego_with_replaces_input_and_data),
	    cmocka_unit_test(test_rego_input_term_carries_sets),
	    cmocka_unit_test(test_rego_time_builtins),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
