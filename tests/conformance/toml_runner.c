/*
 * toml-test conformance: every case of $CTRUSTEE_SHARED/testdata/toml/tests/files-toml-1.0.0.
 * A valid case must give exactly the expected (tagged JSON) document, an invalid case must be
 * refused. Cases whose only content we do not support (dates and times) are reported as
 * skipped, by name. TAP output, totals at the end.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config.h"
#include "toml.h"

static int same(const json_t *got, const json_t *want)
{
	if (json_is_object(want) && json_object_get(want, "type") != NULL &&
	    json_is_string(json_object_get(want, "value")) && json_object_size(want) == 2) {
		const char *t = json_string_value(json_object_get(want, "type"));
		const char *v = json_string_value(json_object_get(want, "value"));
		if (strcmp(t, "string") == 0)
			return json_is_string(got) &&
			       json_string_length(got) ==
			           json_string_length(json_object_get(want, "value")) &&
			       memcmp(json_string_value(got), v, json_string_length(got)) == 0;
		if (strcmp(t, "integer") == 0)
			return json_is_integer(got) &&
			       json_integer_value(got) == strtoll(v, NULL, 10);
		if (strcmp(t, "bool") == 0)
			return json_is_boolean(got) &&
			       json_is_true(got) == (strcmp(v, "true") == 0);
		if (strcmp(t, "float") == 0) {
			if (!json_is_real(got))
				return 0;
			double g = json_real_value(got);
			if (strstr(v, "nan"))
				return isnan(g);
			if (strstr(v, "inf"))
				return isinf(g) && (v[0] == '-') == (g < 0);
			double w = strtod(v, NULL);
			return g == w || fabs(g - w) <= fabs(w) * 1e-15;
		}
		return 0; /* date/time types: we never produce them */
	}
	if (json_is_object(want)) {
		const char *k;
		json_t *v;
		if (!json_is_object(got) || json_object_size(got) != json_object_size(want))
			return 0;
		json_object_foreach((json_t *)want, k,
		                    v) if (!same(json_object_get(got, k), v)) return 0;
		return 1;
	}
	if (json_is_array(want)) {
		if (!json_is_array(got) || json_array_size(got) != json_array_size(want))
			return 0;
		for (size_t i = 0; i < json_array_size(want); i++)
			if (!same(json_array_get(got, i), json_array_get(want, i)))
				return 0;
		return 1;
	}
	return 0;
}

int main(void)
{
	const char *shared = getenv("CTRUSTEE_SHARED");
	char base[1024], list[1200], line[1024];
	int n = 0, pass = 0, fail = 0, skip = 0;

	snprintf(base, sizeof(base), "%s/testdata/toml/tests", shared ? shared : "../shared");
	snprintf(list, sizeof(list), "%s/files-toml-1.0.0", base);
	FILE *f = fopen(list, "r");
	if (f == NULL) {
		printf("not ok 1 - toml-test list %s not found\n1..1\n", list);
		return 1;
	}
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = '\0';
		size_t l = strlen(line);
		if (l < 6 || strcmp(line + l - 5, ".toml") != 0)
			continue;
		int valid = strncmp(line, "valid/", 6) == 0;
		char path[2400];
		snprintf(path, sizeof(path), "%s/%s", base, line);
		size_t len;
		struct err err = {0};
		char *text = file_read_all(path, &len, &err);
		if (text == NULL)
			continue;
		json_t *got = toml_parse(text, len, &err);
		free(text);
		n++;
		if (err.code == TOML_ERR_UNSUPPORTED && got == NULL) {
			skip++;
			printf("ok %d - %s # SKIP %s\n", n, line, strchr(err.msg, ':') + 2);
			continue;
		}
		int ok;
		if (valid) {
			char jpath[2400];
			snprintf(jpath, sizeof(jpath), "%.*s.json", (int)(strlen(path) - 5), path);
			json_t *want =
			    json_load_file(jpath, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
			ok = got != NULL && want != NULL && same(got, want);
			json_decref(want);
		} else {
			ok = got == NULL;
		}
		if (ok)
			pass++;
		else
			fail++;
		printf("%s %d - %s%s%s\n", ok ? "ok" : "not ok", n, line, ok || !valid ? "" : ": ",
		       ok || !valid ? "" : (got ? "wrong document" : err.msg));
		json_decref(got);
	}
	fclose(f);
	printf(
	    "# toml-test 1.0: %d passed, %d failed, %d skipped (unsupported: named above)\n1..%d\n",
	    pass, fail, skip, n);
	return fail ? 1 : 0;
}
