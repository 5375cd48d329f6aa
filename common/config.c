/*
 * config: configuration files into jansson (see config.h). TOML goes through toml.c when
 * the file name ends in .toml; everything else must be JSON. Getters take dotted paths and
 * say exactly which key had the wrong type.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "toml.h"

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

json_t *config_load(const char *path, struct err *err)
{
	size_t len, plen = strlen(path);
	char *text = file_read_all(path, &len, err);
	json_t *root;

	if (text == NULL)
		return NULL;
	if (plen > 5 && strcmp(path + plen - 5, ".toml") == 0) {
		root = toml_parse(text, len, err);
		if (root == NULL)
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
		return NULL;
	}
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
