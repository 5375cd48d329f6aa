/*
 * rego: test policies before uploading them.
 *   rego eval [-d data.json] [-i input.json] [--ref-values rv.json] [--explain] -p policy.rego
 * QUERY rego check policy.rego... eval prints the result as OPA does
 * ({"result":[{"expressions":[{"value":...,"text":QUERY}]}]}, or {} when undefined); --ref-values
 * provides query_reference_value(id) from a JSON object (unknown id -> null). Exit 0 on success, 1
 * on an evaluation or parse error, 2 on usage.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "rego/rego.h"

static json_t *qrv(void *ctx, json_t *const *args, size_t n, struct err *err)
{
	json_t *v =
	    json_is_string(args[0]) ? json_object_get(ctx, json_string_value(args[0])) : NULL;
	return v ? json_incref(v) : json_null();
}

static int usage(void)
{
	fprintf(stderr, "usage: rego eval [-d data.json] [-i input.json] [--ref-values rv.json] "
	                "[--explain] -p policy.rego QUERY\n       rego check policy.rego...\n");
	return 2;
}

static json_t *load_json(const char *path)
{
	json_error_t je;
	json_t *j = json_load_file(path, JSON_DECODE_ANY, &je);
	if (j == NULL)
		fprintf(stderr, "rego: %s:%d:%d: %s\n", path, je.line, je.column, je.text);
	return j;
}


/* rego batch: the conformance runner's protocol. One JSON object per input line
 * ({"modules":[...],"data":{},"input":...,"query":"...","strict":bool}); one JSON line out per
 * case: {"result":[{bindings}...]} or {"error":{"code":OPA code,"message":...}}. */
static const char *guess_code(const char *msg, int parse)
{
	if (parse)
		return "rego_parse_error";
	if (strstr(msg, "eval_conflict_error"))
		return "eval_conflict_error";
	if (strstr(msg, "divide by zero") || strstr(msg, "modulo by zero"))
		return "eval_builtin_error";
	if (strstr(msg, "wrong type"))
		return "eval_type_error";
	return "eval_error";
}

static void batch_error(const char *code, const char *msg)
{
	json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
	char *s = json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY);
	printf("%s\n", s);
	free(s);
	json_decref(o);
}

static int batch(void)
{
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, stdin) > 0) {
		json_error_t je;
		json_t *c = json_loads(line, 0, &je), *mods = json_object_get(c, "modules");
		struct err err = {0};
		if (c == NULL) {
			batch_error("runner_error", je.text);
			fflush(stdout);
			continue;
		}
		struct rego_module m[64];
		size_t n = 0;
		for (; n < json_array_size(mods) && n < 64; n++) {
			json_t *t = json_array_get(mods, n);
			m[n] = (struct rego_module){"mod.rego", json_string_value(t), json_string_length(t)};
		}
		struct rego_policy *p = n ? rego_compile(m, n, NULL, 0, &err) : NULL;
		if (n && p == NULL) {
			batch_error(guess_code(err.msg, 1), err.msg);
		} else {
			json_t *in = json_object_get(c, "input");
			if (json_object_get(c, "input_term"))
				in = json_loads(json_string_value(json_object_get(c, "input_term")), JSON_DECODE_ANY, NULL);
			else
				json_incref(in);
			struct rego_eval_opts o = {.input = in,
			                           .data = json_object_get(c, "data"),
			                           .strict_builtin_errors = json_is_true(json_object_get(c, "strict"))};
			const char *q = json_string_value(json_object_get(c, "query"));
			char ref[512], var[64];
			json_t *res = NULL, *vals = NULL;
			int rc;
			if (sscanf(q, "%511[a-zA-Z0-9_.] = %63[a-zA-Z0-9_]", ref, var) == 2 &&
			    strncmp(ref, "data.", 5) == 0) {
				json_t *v = NULL;
				rc = rego_eval_rule(p, ref, &o, &v, NULL, &err);
				res = json_array();
				if (rc == 0 && v)
					json_array_append_new(res, json_pack("{s:o}", var, v));
			} else {
				rc = rego_eval_query(p, q, &o, &res, &vals, NULL, &err);
			}
			if (rc < 0) {
				batch_error(guess_code(err.msg, 0), err.msg);
			} else {
				json_t *out = json_pack("{s:o}", "result", res);
				char *s = json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY);
				printf("%s\n", s);
				free(s);
				json_decref(out);
				res = NULL;
			}
			json_decref(res);
			json_decref(vals);
			json_decref(in);
		}
		fflush(stdout);
		rego_policy_free(p);
		json_decref(c);
	}
	free(line);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"data", required_argument, NULL, 'd'},   {"input", required_argument, NULL, 'i'},
	    {"policy", required_argument, NULL, 'p'}, {"ref-values", required_argument, NULL, 'r'},
	    {"explain", no_argument, NULL, 'e'},      {NULL, 0, NULL, 0}};
	struct rego_module mods[16];
	size_t nmods = 0;
	json_t *data = NULL, *input = NULL, *rv = NULL;
	int explain = 0, c, check;
	struct err err = {0};

	if (argc < 2)
		return usage();
	if (strcmp(argv[1], "batch") == 0)
		return batch();
	check = strcmp(argv[1], "check") == 0;
	if (!check && strcmp(argv[1], "eval") != 0)
		return usage();
	optind = 2;
	while ((c = getopt_long(argc, argv, "d:i:p:", opts, NULL)) != -1) {
		size_t len;
		switch (c) {
		case 'd':
			if ((data = load_json(optarg)) == NULL)
				return 1;
			break;
		case 'i':
			if ((input = load_json(optarg)) == NULL)
				return 1;
			break;
		case 'r':
			if ((rv = load_json(optarg)) == NULL)
				return 1;
			break;
		case 'e':
			explain = 1;
			break;
		case 'p':
			if (nmods == 16)
				return usage();
			mods[nmods].name = optarg;
			mods[nmods].text = file_read_all(optarg, &len, &err);
			mods[nmods].len = len;
			if (mods[nmods].text == NULL) {
				fprintf(stderr, "rego: %s\n", err.msg);
				return 1;
			}
			nmods++;
			break;
		default:
			return usage();
		}
	}
	if (check) {
		for (int i = optind; i < argc && nmods < 16; i++) {
			size_t len;
			mods[nmods].name = argv[i];
			mods[nmods].text = file_read_all(argv[i], &len, &err);
			mods[nmods].len = len;
			if (mods[nmods].text == NULL) {
				fprintf(stderr, "rego: %s\n", err.msg);
				return 1;
			}
			nmods++;
		}
		if (nmods == 0)
			return usage();
		if (rego_check(mods, nmods, &err) < 0) {
			fprintf(stderr, "rego: %s\n", err.msg);
			return 1;
		}
		return 0;
	}
	if (optind != argc - 1)
		return usage();
	const char *query = argv[optind];
	struct rego_host_function h = {"query_reference_value", 1, qrv, rv};
	struct rego_policy *p = nmods ? rego_compile(mods, nmods, &h, 1, &err) : NULL;
	if (nmods && p == NULL) {
		fprintf(stderr, "rego: %s\n", err.msg);
		return 1;
	}
	struct rego_eval_opts o = {.input = input,
	                           .data = data,
	                           .host_fns = rv ? &h : NULL,
	                           .n_host_fns = rv ? 1 : 0,
	                           .explain = explain};
	json_t *results = NULL, *vals = NULL;
	char *why = NULL;
	int rc;
	if (strncmp(query, "data.", 5) == 0 &&
	    strspn(query, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.") ==
	        strlen(query)) {
		json_t *v = NULL;
		rc = rego_eval_rule(p, query, &o, &v, explain ? &why : NULL, &err);
		vals = v ? json_pack("[o]", v) : json_array();
	} else {
		rc = rego_eval_query(p, query, &o, &results, &vals, NULL, &err);
	}
	if (rc < 0) {
		fprintf(stderr, "rego: %s\n", err.msg);
		return 1;
	}
	json_t *out = json_object();
	if (vals && json_array_size(vals) > 0)
		json_object_set_new(out, "result",
		                    json_pack("[{s:[{s:O,s:s}]}]", "expressions", "value",
		                              json_array_get(vals, 0), "text", query));
	char *s = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	printf("%s\n", s);
	if (why)
		fprintf(stderr, "explain: %s\n", why);
	free(s);
	free(why);
	json_decref(out);
	json_decref(results);
	json_decref(vals);
	rego_policy_free(p);
	return 0;
}
