/*
 * common/yaml_json and config_load's name resolution: YAML configs become the same jansson
 * tree as their JSON twins (core-schema scalars, quoting, tags, block and flow styles), the
 * refusals (aliases, duplicate keys, unknown tags, non-scalar keys, depth, inf/NaN, integer
 * overflow, several documents, syntax errors with their line), and `cfg/x` found as
 * cfg/x.toml, .json, .yaml or .yml the way Trustee's `config` crate finds it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "config.h"
#include "yaml_json.h"

static json_t *yaml(const char *text, struct err *err)
{
	json_t *out = (json_t *)1;
	int rc = yaml_json_parse((const uint8_t *)text, strlen(text), &out, err);
	assert_true(rc == 0 || out == NULL);
	return rc == 0 ? out : NULL;
}

static void assert_yaml_is(const char *text, const char *want_json)
{
	struct err err = {0};
	json_t *got = yaml(text, &err);
	json_t *want = json_loads(want_json, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	assert_non_null(want);
	if (got == NULL || !json_equal(got, want)) {
		char *g = got ? json_dumps(got, JSON_ENCODE_ANY) : NULL;
		fail_msg("YAML %s\ngave %s (%s)\nwant %s", text, g ? g : "NULL", err.msg,
		         want_json);
	}
	json_decref(got);
	json_decref(want);
}

static void assert_yaml_refused(const char *text, const char *needle)
{
	struct err err = {0};
	json_t *got = yaml(text, &err);
	if (got != NULL || strstr(err.msg, needle) == NULL)
		fail_msg("YAML %s: want a refusal naming \"%s\", got \"%s\"", text, needle,
		         err.msg);
	json_decref(got);
}

static void test_yaml_kbs_config_equals_its_json_twin(void **state)
{
	assert_yaml_is("http_server:\n"
	               "  sockets: [\"0.0.0.0:8080\"]\n"
	               "  insecure_http: true\n"
	               "  payload_request_size: 2\n"
	               "admin:\n"
	               "  authorization_mode: AuthenticatedAuthorization\n"
	               "  authentication:\n"
	               "    bearer_jwt:\n"
	               "      identity_providers:\n"
	               "        - issuer: issuer\n"
	               "          audience: kbs\n"
	               "          public_key_uri: ./work/kbs.pem\n"
	               "plugins:\n"
	               "  - name: resource\n"
	               "    storage_backend_type: kvstorage\n",
	               "{\"http_server\":{\"sockets\":[\"0.0.0.0:8080\"],\"insecure_http\":true,"
	               "\"payload_request_size\":2},\"admin\":{\"authorization_mode\":"
	               "\"AuthenticatedAuthorization\",\"authentication\":{\"bearer_jwt\":{"
	               "\"identity_providers\":[{\"issuer\":\"issuer\",\"audience\":\"kbs\","
	               "\"public_key_uri\":\"./work/kbs.pem\"}]}}},\"plugins\":[{\"name\":"
	               "\"resource\",\"storage_backend_type\":\"kvstorage\"}]}");
}

static void test_yaml_core_schema_scalars(void **state)
{
	assert_yaml_is("[~, null, Null, NULL, '', true, True, FALSE, 12, -3, +4, 0o17, 0x1F, "
	               "1.5, -2e3, .5, 7., yes, no, on, 012, 1_000, 0x, .inf2]",
	               "[null, null, null, null, \"\", true, true, false, 12, -3, 4, 15, 31, "
	               "1.5, -2000.0, 0.5, 7.0, \"yes\", \"no\", \"on\", 12, \"1_000\", "
	               "\"0x\", \".inf2\"]");
	assert_yaml_is("a:\nb: \"true\"\nc: '12'\nd: |\n  two\n  lines\ne: >-\n  folded\n  text\n",
	               "{\"a\":null,\"b\":\"true\",\"c\":\"12\",\"d\":\"two\\nlines\\n\","
	               "\"e\":\"folded text\"}");
	assert_yaml_is("{k: \"tab\\there\", u: \"\\u00e9\", z: \"a\\0b\"}",
	               "{\"k\":\"tab\\there\",\"u\":\"\\u00e9\",\"z\":\"a\\u0000b\"}");
	assert_yaml_is("9223372036854775807", "9223372036854775807");
	assert_yaml_is("---\nplain text\n...\n", "\"plain text\"");
}

static void test_yaml_tags_force_the_type(void **state)
{
	assert_yaml_is("[!!str 12, !!str true, !!int \"42\", !!float 3, !!bool 'false', "
	               "!!null '', ! 5]",
	               "[\"12\", \"true\", 42, 3.0, false, null, \"5\"]");
	assert_yaml_is("!!map {a: !!seq [1]}", "{\"a\":[1]}");
	assert_yaml_refused("!!int abc", "does not match its tag");
	assert_yaml_refused("!!binary aGk=", "tags are supported");
	assert_yaml_refused("a: !custom x", "tags are supported");
	assert_yaml_refused("!!set {a: null}", "tags on collections");
}

static void test_yaml_refusals(void **state)
{
	assert_yaml_refused("a: &x [1, 2]\nb: *x\n", "aliases");
	assert_yaml_refused("a: 1\nb: 2\na: 3\n", "line 3, column 1: duplicate key \"a\"");
	assert_yaml_refused("? [1, 2]\n: v\n", "key must be a scalar");
	assert_yaml_refused("{a: 1}: v", "key must be a scalar");
	assert_yaml_refused("a: 1\n---\nb: 2\n", "one YAML document");
	assert_yaml_refused("a: .inf", "JSON cannot hold");
	assert_yaml_refused("a: -.Inf", "JSON cannot hold");
	assert_yaml_refused("a: .nan", "JSON cannot hold");
	assert_yaml_refused("a: 1e999", "JSON cannot hold");
	assert_yaml_refused("a: 9223372036854775808", "64 bits");
	assert_yaml_refused("a: 0x1ffffffffffffffff", "64 bits");
	assert_yaml_refused("a: [1, 2\nb: 3\n", "YAML line");
	assert_yaml_refused("a:\n  b: 1\n c: 2\n", "line 3");
	assert_yaml_refused("", "empty");
	assert_yaml_refused("# only a comment\n", "empty");
	assert_yaml_refused("\"\\0\": v", "NUL byte in a mapping key");
	assert_yaml_refused("a: \"\xff\"", "YAML line");

	char deep[200];
	memset(deep, '[', 65);
	memset(deep + 65, ']', 65);
	deep[130] = 0;
	assert_yaml_refused(deep, "deeper than 64");
	memset(deep, '[', 64);
	memset(deep + 64, ']', 64);
	deep[128] = 0;
	struct err err = {0};
	json_t *ok = yaml(deep, &err);
	assert_non_null(ok);
	json_decref(ok);
}

/* ---- config_load: names and formats ---- */

static char dir[64];

static void put(const char *name, const char *text)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void drop(const char *name)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	unlink(p);
}

/* config_load(dir/name) and the value of key "from", or the error sentence. */
static const char *load_from(const char *name, char *buf, size_t n)
{
	char p[256];
	struct err err = {0};
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	json_t *c = config_load(p, &err);
	const char *from = json_string_value(json_object_get(c, "from"));
	const char *msg = c ? (from ? from : "?") : err.msg;
	size_t l = strlen(msg) < n - 1 ? strlen(msg) : n - 1;
	memcpy(buf, msg, l);
	buf[l] = 0;
	json_decref(c);
	return buf;
}

static void test_config_names_resolved_as_trustee_config_crate(void **state)
{
	char b[1100];
	snprintf(dir, sizeof(dir), "/tmp/ctrustee-cfgname-XXXXXX");
	assert_non_null(mkdtemp(dir));

	put("x.yml", "from: yml\n");
	assert_string_equal(load_from("x", b, sizeof(b)), "yml");
	put("x.yaml", "from: yaml\n");
	assert_string_equal(load_from("x", b, sizeof(b)), "yaml");
	put("x.json", "{\"from\": \"json\"}");
	assert_string_equal(load_from("x", b, sizeof(b)), "json");
	put("x.toml", "from = \"toml\"\n");
	assert_string_equal(load_from("x", b, sizeof(b)), "toml");
	put("x", "{\"from\": \"exact\"}");
	assert_string_equal(load_from("x", b, sizeof(b)), "exact");
	/* an exact name with an extension is read in its own format */
	assert_string_equal(load_from("x.yaml", b, sizeof(b)), "yaml");
	assert_string_equal(load_from("x.yml", b, sizeof(b)), "yml");
	/* a file with a dotted stem still gets the extension appended */
	put("kbs-config.v2.toml", "from = \"dotted\"\n");
	assert_string_equal(load_from("kbs-config.v2", b, sizeof(b)), "dotted");

	load_from("missing", b, sizeof(b));
	assert_non_null(strstr(b, "cannot open"));
	assert_non_null(strstr(b, ".yaml"));
	put("bad.yaml", "from: [1,\n");
	load_from("bad", b, sizeof(b));
	assert_non_null(strstr(b, "bad.yaml: YAML line"));
	put("list.yaml", "- 1\n- 2\n");
	load_from("list", b, sizeof(b));
	assert_non_null(strstr(b, "must be an object"));

	const char *names[] = {"x.yml",    "x.yaml",   "x.json",
	                       "x.toml",   "x",        "kbs-config.v2.toml",
	                       "bad.yaml", "list.yaml"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		drop(names[i]);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_yaml_kbs_config_equals_its_json_twin),
	    cmocka_unit_test(test_yaml_core_schema_scalars),
	    cmocka_unit_test(test_yaml_tags_force_the_type),
	    cmocka_unit_test(test_yaml_refusals),
	    cmocka_unit_test(test_config_names_resolved_as_trustee_config_crate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
