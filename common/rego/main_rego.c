/*
 * rego: test policies before uploading them.
 *   rego eval [-d data.json] [-i input.json] [--ref-values rv.json] [--explain] -p policy.rego
 * QUERY rego check policy.rego... rego batch          (the conformance runner's protocol, below)
 * eval prints the result as OPA does: {"result":[{"expressions":[{"value":...,"text":QUERY}],
 * "bindings":{...}}, one per solution]}, or {} when undefined. --ref-values provides
 * query_reference_value(id) from a JSON object (unknown id -> null). Exit 0 on success, 1 on an
 * evaluation or parse error, 2 on usage.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "version.h"
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
 * ({"modules":[...],"data":{},"input":...,"input_term":"...","data_term":"...","query":"...",
 * "strict":bool}); one JSON line out per case: {"result":[{bindings}...]} with exact numbers,
 * or {"error":{"code":OPA's code,"message":...}}. */
static void batch_error(const char *code, const char *msg)
{
	json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
	char *s = json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY);
	printf("%s\n", s);
	free(s);
	json_decref(o);
}

static void batch_case(json_t *c)
{
	json_t *mods = json_object_get(c, "modules");
	struct err err = {0};
	struct rego_module m[64];
	char names[64][16];
	size_t n = 0;
	for (; n < json_array_size(mods) && n < 64; n++) {
		json_t *t = json_array_get(mods, n);
		snprintf(names[n], sizeof(names[n]), "mod%zu.rego", n);
		m[n] = (struct rego_module){names[n], json_string_value(t), json_string_length(t)};
	}
	struct rego_policy *p = rego_compile(m, n, NULL, 0, &err);
	if (p == NULL) {
		batch_error(rego_err_code_name(err.code), err.msg);
		return;
	}
	struct rego_eval_opts o = {
	    .input = json_object_get(c, "input"),
	    .data = json_object_get(c, "data"),
	    .input_term = json_string_value(json_object_get(c, "input_term")),
	    .data_term = json_string_value(json_object_get(c, "data_term")),
	    .strict_builtin_errors = json_is_true(json_object_get(c, "strict"))};
	char *text = NULL;
	const char *q = json_string_value(json_object_get(c, "query"));
	if (rego_eval_query_text(p, q ? q : "", &o, &text, &err) < 0)
		batch_error(rego_err_code_name(err.code), err.msg);
	else
		printf("{\"result\":%s}\n", text);
	free(text);
	rego_policy_free(p);
}

static int batch(void)
{
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, stdin) > 0) {
		json_error_t je;
		json_t *c = json_loads(line, 0, &je);
		if (c == NULL)
			batch_error("runner_error", je.text);
		else
			batch_case(c);
		fflush(stdout);
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
	json_t *data = NULL, *input = NULL, *rv = NULL, *results = NULL, *vals = NULL;
	struct rego_policy *p = NULL;
	char *why = NULL;
	int explain = 0, c, check, rc = 1;
	struct err err = {0};

	if (argc >= 2 && (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0)) {
		version_print("rego");
		return 0;
	}
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
			if ((data = load_json(optarg)) == NULL) {
				rc = 1;
				goto done;
			}
			break;
		case 'i':
			if ((input = load_json(optarg)) == NULL) {
				rc = 1;
				goto done;
			}
			break;
		case 'r':
			if ((rv = load_json(optarg)) == NULL) {
				rc = 1;
				goto done;
			}
			break;
		case 'e':
			explain = 1;
			break;
		case 'p':
			if (nmods == 16) {
				rc = usage();
				goto done;
			}
			mods[nmods].name = optarg;
			mods[nmods].text = file_read_all(optarg, &len, &err);
			mods[nmods].len = len;
			if (mods[nmods].text == NULL) {
				fprintf(stderr, "rego: %s\n", err.msg);
				rc = 1;
				goto done;
			}
			nmods++;
			break;
		default:
			rc = usage();
			goto done;
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
				rc = 1;
				goto done;
			}
			nmods++;
		}
		if (nmods == 0) {
			rc = usage();
			goto done;
		}
		if (rego_check(mods, nmods, &err) < 0) {
			fprintf(stderr, "rego: %s\n", err.msg);
			rc = 1;
			goto done;
		}
		rc = 0;
		goto done;
	}
	if (optind != argc - 1) {
		rc = usage();
		goto done;
	}
	const char *query = argv[optind];
	struct rego_host_function h = {"query_reference_value", 1, qrv, rv};
	p = nmods ? rego_compile(mods, nmods, &h, 1, &err) : NULL;
	if (nmods && p == NULL) {
		fprintf(stderr, "rego: %s\n", err.msg);
		rc = 1;
		goto done;
	}
	struct rego_eval_opts o = {.input = input,
	                           .data = data,
	                           .host_fns = rv ? &h : NULL,
	                           .n_host_fns = rv ? 1 : 0,
	                           .explain = explain};
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
		rc = 1;
		goto done;
	}
	/* one result per solution: the query's value and, when it binds variables, them */
	json_t *out = json_object(), *rs = json_array();
	for (size_t i = 0; i < json_array_size(vals); i++) {
		json_t *r = json_pack("{s:[{s:O,s:s}]}", "expressions", "value",
		                      json_array_get(vals, i), "text", query);
		json_t *b = json_array_get(results, i);
		if (json_object_size(b) > 0)
			json_object_set(r, "bindings", b);
		json_array_append_new(rs, r);
	}
	if (json_array_size(rs) > 0)
		json_object_set(out, "result", rs);
	json_decref(rs);
	char *s = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(16));
	printf("%s\n", s);
	if (why)
		fprintf(stderr, "explain: %s\n", why);
	free(s);
	json_decref(out);
	rc = 0;
done:
	free(why);
	json_decref(results);
	json_decref(vals);
	rego_policy_free(p);
	for (size_t i = 0; i < nmods; i++)
		free((char *)mods[i].text);
	json_decref(data);
	json_decref(input);
	json_decref(rv);
	return rc;
}
