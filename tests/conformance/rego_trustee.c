/*
 * Rego conformance over Trustee's own policies: every case of
 * $CTRUSTEE_SHARED/testdata/rego/trustee/cases/all-cases.json (policy, query, input, data,
 * reference values behind query_reference_value, expected value / undefined / error), and
 * every policy file under trustee/policies must compile. TAP output.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config.h"
#include "rego/rego.h"

static json_t *qrv(void *ctx, json_t *const *args, size_t n, struct err *err)
{
	json_t *rv = ctx;
	json_t *v =
	    json_is_string(args[0]) ? json_object_get(rv, json_string_value(args[0])) : NULL;
	return v ? json_incref(v) : json_null();
}

static int n;

static int compile_all(const char *dir, int *fails)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		char p[2048];
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		size_t l = strlen(e->d_name);
		if (l > 5 && strcmp(e->d_name + l - 5, ".rego") == 0) {
			size_t len;
			struct err err = {0};
			char *text = file_read_all(p, &len, &err);
			struct rego_module m = {e->d_name, text, len};
			int ok = text && rego_check(&m, 1, &err) == 0;
			printf("%s %d - compiles: %s%s%s\n", ok ? "ok" : "not ok", ++n, e->d_name,
			       ok ? "" : ": ", ok ? "" : err.msg);
			*fails += !ok;
			free(text);
		} else {
			compile_all(p, fails);
		}
	}
	closedir(d);
	return 0;
}

int main(void)
{
	const char *shared = getenv("CTRUSTEE_SHARED");
	char base[1024], path[1400];
	int pass = 0, fail = 0;

	snprintf(base, sizeof(base), "%s/testdata/rego/trustee", shared ? shared : "../shared");
	snprintf(path, sizeof(path), "%s/cases/all-cases.json", base);
	json_t *cases = json_load_file(path, 0, NULL);
	if (!json_is_array(cases)) {
		printf("not ok 1 - %s not found\n1..1\n", path);
		return 1;
	}
	/* pass 0: Trustee's policies; pass 1: our default policies (as/policies/) on the cases
	 * written for Trustee's defaults, which must give the same trust vectors */
	for (int ours = 0; ours < 2; ours++)
		for (size_t i = 0; i < json_array_size(cases); i++) {
			json_t *c = json_array_get(cases, i);
			const char *id = json_string_value(json_object_get(c, "id"));
			const char *pol = json_string_value(json_object_get(c, "policy"));
			const char *kind = strstr(pol, "ear_default_policy_");
			char ourpol[256];
			if (ours) {
				if (kind == NULL)
					continue;
				snprintf(ourpol, sizeof(ourpol), "as/policies/default_%s",
				         kind + 19);
				pol = ourpol;
			}
			const char *q = json_string_value(json_object_get(c, "query"));
			json_t *exp = json_object_get(c, "expected"),
			       *rv = json_object_get(c, "reference_values");
			size_t len;
			struct err err = {0};
			if (ours)
				snprintf(path, sizeof(path), "%s", pol);
			else
				snprintf(path, sizeof(path), "%s/%s", base, pol);
			char *text = file_read_all(path, &len, &err);
			struct rego_module m = {pol, text, len};
			struct rego_host_function h = {"query_reference_value", 1, qrv, rv};
			struct rego_policy *P = text ? rego_compile(&m, 1, &h, 1, &err) : NULL;
			json_t *got = NULL;
			struct rego_eval_opts o = {.input = json_object_get(c, "input"),
			                           .data = json_object_get(c, "data"),
			                           .host_fns = rv ? &h : NULL,
			                           .n_host_fns = rv ? 1 : 0};
			int rc = P ? rego_eval_rule(P, q, &o, &got, NULL, &err) : -1;
			int ok;
			char why[2200] = "";
			if (json_object_get(exp, "error")) {
				ok = rc < 0 && strstr(err.msg, json_string_value(
				                                   json_object_get(exp, "error")));
				snprintf(why, sizeof(why), "want error %s, got %s",
				         json_string_value(json_object_get(exp, "error")),
				         rc < 0 ? err.msg : "a value");
			} else if (json_is_false(json_object_get(exp, "defined"))) {
				ok = rc == 0 && got == NULL;
				snprintf(why, sizeof(why), "want undefined; %s",
				         rc < 0 ? err.msg : "got a value");
			} else {
				ok = rc == 0 && got != NULL &&
				     json_equal(got, json_object_get(exp, "value"));
				char *g = got ? json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS |
				                                    JSON_ENCODE_ANY)
				              : NULL;
				snprintf(why, sizeof(why), "%s",
				         rc < 0 ? err.msg
				         : g    ? g
				                : "undefined");
				free(g);
			}
			printf("%s %d - %s%s %s%s%s\n", ok ? "ok" : "not ok", ++n,
			       ours ? "our default policy: " : "", id, q, ok ? "" : ": ",
			       ok ? "" : why);
			ok ? pass++ : fail++;
			json_decref(got);
			rego_policy_free(P);
			free(text);
		}
	int cfails = 0;
	snprintf(path, sizeof(path), "%s/policies", base);
	compile_all(path, &cfails);
	printf("# trustee cases: %d passed, %d failed; policies failing to compile: %d\n1..%d\n",
	       pass, fail, cfails, n);
	json_decref(cases);
	return fail || cfails ? 1 : 0;
}
