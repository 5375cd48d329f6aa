/* Log lines cannot be forged (issue 14, W2): whatever a client puts in a value that reaches the
 * log (a tee name, a session id, a claim), one event stays one line, in text and JSON alike. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

/* What one log call writes to stderr. */
static char *capture(const char *fmt_value)
{
	static char out[16384];
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	fflush(stderr);
	int saved = dup(2);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(tmp), 2) >= 0);
	log_info("kbs: session %s attested (%s)", "0123", fmt_value);
	fflush(stderr);
	assert_true(dup2(saved, 2) >= 0);
	close(saved);
	rewind(tmp);
	size_t n = fread(out, 1, sizeof(out) - 1, tmp);
	out[n] = '\0';
	fclose(tmp);
	return out;
}

static int lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void text_format(void)
{
	unsetenv("LOG_FORMAT");
	log_init("kbs");
}

static void test_log_newline_in_a_value_cannot_forge_a_line(void **state)
{
	text_format();
	char *o =
	    capture("tdx\n[2026-12-07T06:00:00.000Z info  kbs] kbs: session 666 attested (tdx)");
	assert_int_equal(lines(o), 1);
	assert_non_null(strstr(o, "(tdx\\n[2026-12-07T06:00:00.000Z info  kbs]"));
	o = capture("tdx\r\n[2026-12-07T06:00:00.000Z info  kbs] x");
	assert_int_equal(lines(o), 1);
	assert_non_null(strstr(o, "tdx\\r\\n[2026"));
}

static void test_log_control_bytes_and_unicode_line_breaks_are_escaped(void **state)
{
	text_format();
	/* ESC (terminal sequences), DEL, a tab, NEL (U+0085), LINE SEPARATOR (U+2028) */
	char *o = capture("a\x1b[2Jb\x7f\tc\xc2\x85"
	                  "d\xe2\x80\xa8"
	                  "e");
	assert_non_null(strstr(o, "a\\x1b[2Jb\\x7f\\tc\\u0085d\\u2028e)"));
	for (const char *p = o; *p; p++)
		if (*p != '\n')
			assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
	assert_int_equal(lines(o), 1);
}

static void test_log_escaping_is_unambiguous_and_keeps_text(void **state)
{
	text_format();
	/* a literal backslash-n is not mistaken for an escaped newline */
	char *o = capture("x\\ny");
	assert_non_null(strstr(o, "(x\\\\ny)"));
	/* ordinary UTF-8 passes untouched */
	o = capture("caf\xc3\xa9 \xe2\x82\xac");
	assert_non_null(strstr(o, "(caf\xc3\xa9 \xe2\x82\xac)"));
	assert_non_null(strstr(o, "info  kbs] kbs: session 0123 attested"));
}

static void test_log_json_format_keeps_one_object_per_line(void **state)
{
	setenv("LOG_FORMAT", "json", 1);
	log_init("kbs");
	char *o = capture("tdx\n{\"level\":\"info\",\"msg\":\"forged\"}");
	unsetenv("LOG_FORMAT");
	log_init("kbs");
	assert_int_equal(lines(o), 1);
	assert_non_null(strstr(o, "tdx\\u000a{\\\"level\\\""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_log_newline_in_a_value_cannot_forge_a_line),
	    cmocka_unit_test(test_log_control_bytes_and_unicode_line_breaks_are_escaped),
	    cmocka_unit_test(test_log_escaping_is_unambiguous_and_keeps_text),
	    cmocka_unit_test(test_log_json_format_keeps_one_object_per_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
