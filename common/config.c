/*
 * config: configuration files into jansson (see config.h). A name is resolved as Trustee's
 * `config` crate resolves it (NAME, else NAME.toml/.json/.yaml/.yml); TOML goes through
 * toml.c, .yaml/.yml through yaml_json.c (libyaml), everything else must be JSON. Getters take
 * dotted paths and say exactly which key had the wrong type.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "toml.h"
#include "yaml_json.h"

#define CONFIG_MAX_BYTES (16u << 20)

char *file_read_all(const char *path, size_t *len, struct err *err)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	char *buf;

	if (f == NULL) {
		err_set(err, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) ||
	    (size_t)st.st_size > CONFIG_MAX_BYTES) {
		fclose(f);
		err_set(err, "%s is not a regular file of at most %u bytes", path,
		        CONFIG_MAX_BYTES);
		return NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL || fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
		free(buf);
		fclose(f);
		err_set(err, "cannot read %s", path);
		return NULL;
	}
	fclose(f);
	buf[st.st_size] = '\0';
	if (len != NULL)
		*len = (size_t)st.st_size;
	return buf;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n > m && strcmp(s + n - m, suffix) == 0;
}

/* A name as Trustee's `config` crate finds it: the file itself, else the first of
 * NAME.toml, NAME.json, NAME.yaml, NAME.yml that exists. malloc'd, NULL when none does. */
static char *config_resolve(const char *path)
{
	static const char *const exts[] = {"", ".toml", ".json", ".yaml", ".yml"};
	struct stat st;
	for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		char *p = NULL;
		if (asprintf(&p, "%s%s", path, exts[i]) < 0)
			return NULL;
		if (stat(p, &st) == 0 && (i == 0 || S_ISREG(st.st_mode)))
			return p;
		free(p);
	}
	return NULL;
}

json_t *config_load(const char *path, struct err *err)
{
	size_t len;
	char *found = config_resolve(path);
	char *text = file_read_all(found ? found : path, &len, err);
	json_t *root = NULL;

	if (text == NULL) {
		if (found == NULL)
			err_set(err, "cannot open %s: %s (nor %s.toml, .json, .yaml or .yml)", path,
			        strerror(ENOENT), path);
		free(found);
		return NULL;
	}
	path = found ? found : path;
	if (ends_with(path, ".toml")) {
		root = toml_parse(text, len, err);
		if (root == NULL)
			err_prefix(err, "%s", path);
	} else if (ends_with(path, ".yaml") || ends_with(path, ".yml")) {
		if (yaml_json_parse((const uint8_t *)text, len, &root, err) < 0)
			err_prefix(err, "%s", path);
	} else {
		json_error_t je;
		root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
		if (root == NULL)
			err_set(err, "%s: line %d, column %d: %s", path, je.line, je.column,
			        je.text);
	}
	free(text);
	if (root != NULL && !json_is_object(root)) {
		json_decref(root);
		err_set(err, "%s: the configuration must be an object", path);
		root = NULL;
	}
	free(found);
	return root;
}

json_t *config_get(const json_t *root, const char *dotted)
{
	char buf[256];
	char *save = NULL, *tok;
	json_t *cur = (json_t *)root;

	snprintf(buf, sizeof(buf), "%s", dotted);
	for (tok = strtok_r(buf, ".", &save); tok && cur; tok = strtok_r(NULL, ".", &save))
		cur = json_is_object(cur) ? json_object_get(cur, tok) : NULL;
	return cur;
}

int config_string(const json_t *root, const char *dotted, const char *def, const char **out,
                  struct err *err)
{
	json_t *v = config_get(root, dotted);
	if (v == NULL || json_is_null(v)) {
		*out = def;
		return 0;
	}
	if (!json_is_string(v))
		return err_set(err, "%s: expected a string", dotted);
	*out = json_string_value(v);
	return 0;
}

int config_int(const json_t *root, const char *dotted, long long def, long long *out,
               struct err *err)
{
	json_t *v = config_get(root, dotted);
	if (v == NULL || json_is_null(v)) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(v))
		return err_set(err, "%s: expected an integer", dotted);
	*out = json_integer_value(v);
	return 0;
}

int config_bool(const json_t *root, const char *dotted, bool def, bool *out, struct err *err)
{
	json_t *v = config_get(root, dotted);
	if (v == NULL || json_is_null(v)) {
		*out = def;
		return 0;
	}
	if (!json_is_boolean(v))
		return err_set(err, "%s: expected true or false", dotted);
	*out = json_is_true(v);
	return 0;
}
