/*
 * bench-rego: compile and evaluation cost of our default CPU policy on a TDX-shaped input
 * (with reference values behind query_reference_value) and of a typical resource policy,
 * beside the same decisions written by hand in C, measured in the same run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "config.h"
#include "rego/rego.h"

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static json_t *rvs;

static json_t *qrv(void *ctx, json_t *const *args, size_t n, struct err *err)
{
	json_t *v = json_object_get(rvs, json_string_value(args[0]));
	return v ? json_incref(v) : json_null();
}

/* the CPU decision for TDX, by hand: the same checks the policy makes */
static int in_rv(const char *id, json_t *v)
{
	json_t *a = json_object_get(rvs, id);
	for (size_t i = 0; i < json_array_size(a); i++)
		if (json_equal(json_array_get(a, i), v))
			return 1;
	return 0;
}

static json_t *by_hand_tdx(json_t *input)
{
	json_t *t = json_object_get(input, "tdx"), *q = json_object_get(t, "quote");
	json_t *body = json_object_get(q, "body"), *hdr = json_object_get(q, "header");
	int hw = 97, ex = 33, cf = 36;
	if (in_rv("rtmr_1", json_object_get(body, "rtmr_1")) &&
	    in_rv("rtmr_2", json_object_get(body, "rtmr_2")))
		ex = 4;
	if (!strcmp(json_string_value(json_object_get(hdr, "tee_type")), "81000000") &&
	    in_rv("mr_td", json_object_get(body, "mr_td")) &&
	    !strcmp(json_string_value(json_object_get(t, "tcb_status")), "UpToDate"))
		hw = 2;
	if (json_is_false(json_object_get(json_object_get(t, "td_attributes"), "debug")) &&
	    in_rv("xfam", json_object_get(body, "xfam")))
		cf = 2;
	return json_pack("{s:i,s:i,s:i}", "executables", ex, "hardware", hw, "configuration", cf);
}

static double bench(int iters, struct rego_policy *p, const char *rule, struct rego_eval_opts *o,
                    json_t *(*hand)(json_t *), double *hand_us)
{
	double *a = malloc(sizeof(double) * (size_t)iters),
	       *b = malloc(sizeof(double) * (size_t)iters);
	for (int i = 0; i < iters; i++) {
		struct err err = {0};
		json_t *r = NULL;
		double t0 = now_us();
		if (rego_eval_rule(p, rule, o, &r, NULL, &err) < 0) {
			fprintf(stderr, "bench-rego: %s\n", err.msg);
			exit(1);
		}
		a[i] = now_us() - t0;
		json_decref(r);
		t0 = now_us();
		r = hand((json_t *)o->input);
		b[i] = now_us() - t0;
		json_decref(r);
	}
	qsort(a, (size_t)iters, sizeof(double), cmp);
	qsort(b, (size_t)iters, sizeof(double), cmp);
	double m = a[iters / 2];
	*hand_us = b[iters / 2];
	free(a);
	free(b);
	return m;
}

static json_t *by_hand_resource(json_t *input)
{
	json_t *s = json_object_get(json_object_get(json_object_get(input, "submods"), "cpu0"),
	                            "ear.status");
	return json_boolean(s && !strcmp(json_string_value(s), "affirming"));
}

int main(int argc, char **argv)
{
	int iters = argc > 1 ? atoi(argv[1]) : 2000;
	size_t len;
	struct err err = {0};
	char *text = file_read_all("as/policies/default_cpu.rego", &len, &err);
	if (text == NULL) {
		fprintf(stderr, "bench-rego: %s (run from the repository root)\n", err.msg);
		return 1;
	}
	rvs = json_loads(
	    "{\"rtmr_1\":[\"r1\"],\"rtmr_2\":[\"r2\"],\"mr_td\":[\"m\"],\"xfam\":[\"x\"]}", 0,
	    NULL);
	json_t *input = json_loads(
	    "{\"tdx\":{\"quote\":{\"header\":{\"tee_type\":\"81000000\",\"vendor_id\":"
	    "\"939a7233f79c4ca9940a0db3957f0607\"},\"body\":{\"rtmr_1\":\"r1\",\"rtmr_2\":\"r2\","
	    "\"mr_td\":\"m\",\"xfam\":\"x\"}},\"td_attributes\":{\"debug\":false},\"tcb_status\":"
	    "\"UpToDate\",\"collateral_expiration_status\":\"0\",\"uefi_event_logs\":[]},"
	    "\"report_data\":\"00\",\"runtime_data_claims\":null}",
	    0, NULL);
	struct rego_module m = {"default_cpu.rego", text, len};
	struct rego_host_function h = {"query_reference_value", 1, qrv, NULL};
	double t0 = now_us();
	struct rego_policy *p = NULL;
	for (int i = 0; i < 50; i++) {
		rego_policy_free(p);
		p = rego_compile(&m, 1, &h, 1, &err);
	}
	double compile_us = (now_us() - t0) / 50;
	struct rego_eval_opts o = {.input = input, .host_fns = &h, .n_host_fns = 1};
	double hand, ev = bench(iters, p, "data.policy.trust_claims", &o, by_hand_tdx, &hand);
	printf(
	    "default CPU policy: compile %.1f us; eval trust_claims (TDX input) %.1f us median\n",
	    compile_us, ev);
	printf("  baseline: the same decision in hand-written C: %.2f us median; ratio %.0fx\n",
	       hand, ev / (hand > 0 ? hand : 0.01));

	const char *rp = "package policy\nimport rego.v1\ndefault allow := false\nallow if {\n"
	                 "\tdata.plugin == \"resource\"\n\tinput.submods.cpu0[\"ear.status\"] == "
	                 "\"affirming\"\n}\n";
	struct rego_module rm = {"resource.rego", rp, strlen(rp)};
	struct rego_policy *rpol = rego_compile(&rm, 1, NULL, 0, &err);
	json_t *rin =
	    json_loads("{\"submods\":{\"cpu0\":{\"ear.status\":\"affirming\"}}}", 0, NULL);
	json_t *rdata = json_loads(
	    "{\"plugin\":\"resource\",\"resource-path\":[\"a\",\"b\",\"c\"],\"query\":{}}", 0,
	    NULL);
	struct rego_eval_opts ro = {.input = rin, .data = rdata};
	ev = bench(iters, rpol, "data.policy.allow", &ro, by_hand_resource, &hand);
	printf("resource policy: eval allow %.1f us median; hand-written C %.2f us; ratio %.0fx\n",
	       ev, hand, ev / (hand > 0 ? hand : 0.01));
	rego_policy_free(p);
	rego_policy_free(rpol);
	free(text);
	json_decref(input);
	json_decref(rin);
	json_decref(rdata);
	json_decref(rvs);
	return 0;
}
