/*
 * common/config: loading a JSON config file, the typed getters with their defaults and
 * type errors, and the sentences a broken or missing file produces.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "config.h"

static void test_config_json_and_typed_getters(void **state)
{
	char path[] = "/tmp/ctrustee-cfg-XXXXXX.json";
	int fd = mkstemps(path, 5);
	const char *doc = "{\"a\":{\"b\":\"x\",\"n\":5,\"t\":true}}";
	assert_true(write(fd, doc, strlen(doc)) == (ssize_t)strlen(doc));
	close(fd);
	struct err err = {0};
	json_t *c = config_load(path, &err);
	assert_non_null(c);
	const char *s;
	long long n;
	bool t;
	assert_int_equal(config_string(c, "a.b", NULL, &s, &err), 0);
	assert_string_equal(s, "x");
	assert_int_equal(config_int(c, "a.n", 0, &n, &err), 0);
	assert_int_equal(n, 5);
	assert_int_equal(config_bool(c, "a.t", false, &t, &err), 0);
	assert_true(t);
	assert_int_equal(config_int(c, "a.missing", 7, &n, &err), 0);
	assert_int_equal(n, 7);
	assert_int_equal(config_int(c, "a.b", 0, &n, &err), -1);
	assert_non_null(strstr(err.msg, "a.b"));
	json_decref(c);
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(write(fd, "{\"a\":", 5) == 5);
	close(fd);
	assert_null(config_load(path, &err));
	assert_non_null(strstr(err.msg, "line 1"));
	unlink(path);
	assert_null(config_load("/nonexistent/x.json", &err));
	assert_non_null(strstr(err.msg, "cannot open"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config_json_and_typed_getters),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
