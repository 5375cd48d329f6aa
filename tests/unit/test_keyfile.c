/*
 * keyfile: a private key file that its group or other users can write is refused with a
 * sentence naming the path, the mode and the fix; one they can read (a Kubernetes Secret
 * mounted without defaultMode, 0644) is read with a warning naming the same; an owner-only
 * file, or a root-owned one its group may only read (defaultMode 0440 and an fsGroup), is read
 * without one.
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
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "keyfile.h"

static void test_owner_only_modes_are_accepted(void **state)
{
	struct err e = {0};
	assert_int_equal(keyfile_mode_ok("k", 1000, 0600, &e), 0);
	assert_int_equal(keyfile_mode_ok("k", 1000, 0400, &e), 0);
	assert_int_equal(keyfile_mode_ok("k", 0, 0600, &e), 0);
	assert_int_equal(keyfile_mode_ok("k", 1000, S_IFREG | 0600, &e), 0);
}

static void test_root_owned_group_read_is_accepted(void **state)
{
	struct err e = {0};
	assert_int_equal(keyfile_mode_ok("k", 0, 0440, &e), 0);
	assert_int_equal(keyfile_mode_ok("k", 0, 0640, &e), 0);
	assert_int_equal(keyfile_mode_readable("k", 0, 0440, &e), 0); /* no warning either */
	assert_int_equal(keyfile_mode_readable("k", 0, 0640, &e), 0);
	assert_int_equal(keyfile_mode_readable("k", 1000, 0600, &e), 0);
}

static void test_world_write_is_refused(void **state)
{
	static const mode_t modes[] = {0602, 0666, 0646, 0622};
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		struct err e = {0};
		assert_int_equal(keyfile_mode_ok("/keys/token.key", 0, modes[i], &e), -1);
		assert_non_null(strstr(e.msg, "/keys/token.key"));
		assert_non_null(strstr(e.msg, "every user"));
		assert_non_null(strstr(e.msg, "chmod 600"));
	}
	struct err e = {0};
	keyfile_mode_ok("/keys/token.key", 0, 0666, &e);
	assert_non_null(strstr(e.msg, "mode 0666"));
}

/* A Kubernetes Secret mounted without defaultMode is 0644: read, with a warning. */
static void test_world_read_is_accepted_with_a_warning(void **state)
{
	static const mode_t modes[] = {0644, 0604, 0444, 0601};
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		struct err e = {0};
		assert_int_equal(keyfile_mode_ok("/keys/token.key", 0, modes[i], &e), 0);
		if (modes[i] & 0004) {
			assert_int_equal(keyfile_mode_readable("/keys/token.key", 0, modes[i], &e),
			                 1);
			assert_non_null(strstr(e.msg, "/keys/token.key"));
			assert_non_null(strstr(e.msg, "every user"));
			assert_non_null(strstr(e.msg, "chmod 600"));
		}
	}
	struct err e = {0};
	keyfile_mode_readable("/keys/token.key", 0, 0644, &e);
	assert_non_null(strstr(e.msg, "mode 0644"));
}

static void test_group_write_is_refused_group_read_warns_unless_root_owned(void **state)
{
	struct err e = {0};
	assert_int_equal(keyfile_mode_ok("k", 1000, 0640, &e), 0);
	assert_int_equal(keyfile_mode_readable("k", 1000, 0640, &e), 1);
	assert_non_null(strstr(e.msg, "group"));
	assert_non_null(strstr(e.msg, "uid 1000"));
	assert_int_equal(keyfile_mode_ok("k", 1000, 0440, &e), 0);
	assert_int_equal(keyfile_mode_readable("k", 1000, 0440, &e), 1);
	assert_int_equal(keyfile_mode_ok("k", 0, 0660, &e), -1); /* group may write */
	assert_non_null(strstr(e.msg, "its group"));
	assert_int_equal(keyfile_mode_ok("k", 1000, 0620, &e), -1);
	assert_int_equal(keyfile_mode_ok("k", 0, 0610, &e), 0); /* execute is no access to it */
	assert_int_equal(keyfile_mode_readable("k", 0, 0610, &e), 0);
}

static char dir[64];

static char *write_key(const char *name, mode_t mode)
{
	static char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	EVP_PKEY_free(k);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static void test_read_private_applies_the_rule_to_the_file(void **state)
{
	struct err e = {0};
	char *p = write_key("ok.key", 0600);
	EVP_PKEY *k = keyfile_read_private(p, &e);
	assert_non_null(k);
	assert_int_equal(EVP_PKEY_get_base_id(k), EVP_PKEY_EC);
	EVP_PKEY_free(k);
	assert_int_equal(keyfile_check(p, &e), 0);

	p = write_key("open.key", 0644); /* a Secret without defaultMode: read (and warned) */
	k = keyfile_read_private(p, &e);
	assert_non_null(k);
	EVP_PKEY_free(k);
	assert_int_equal(keyfile_check(p, &e), 0);
	unlink(p);

	p = write_key("writable.key", 0666);
	assert_null(keyfile_read_private(p, &e));
	assert_non_null(strstr(e.msg, "written by every user"));
	assert_int_equal(keyfile_check(p, &e), -1);
	unlink(p);

	if (geteuid() == 0) { /* group read: fine whoever owns it; group write: never */
		p = write_key("group.key", 0640);
		k = keyfile_read_private(p, &e);
		assert_non_null(k);
		EVP_PKEY_free(k);
		assert_int_equal(chown(p, 65534, 65534), 0);
		k = keyfile_read_private(p, &e);
		assert_non_null(k);
		EVP_PKEY_free(k);
		assert_int_equal(chmod(p, 0660), 0);
		assert_null(keyfile_read_private(p, &e));
		assert_non_null(strstr(e.msg, "its group"));
		unlink(p);
	}
	char ok[128];
	snprintf(ok, sizeof(ok), "%s/ok.key", dir);
	unlink(ok);
}

static void test_read_private_says_what_is_wrong(void **state)
{
	struct err e = {0};
	char path[128];
	assert_null(keyfile_read_private("/nonexistent/token.key", &e));
	assert_non_null(strstr(e.msg, "cannot open private key /nonexistent/token.key"));
	snprintf(path, sizeof(path), "%s/notakey.key", dir);
	FILE *f = fopen(path, "w");
	fputs("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", f);
	fclose(f);
	chmod(path, 0600);
	assert_null(keyfile_read_private(path, &e));
	assert_non_null(strstr(e.msg, "holds no PEM private key"));
	unlink(path);
	assert_null(keyfile_read_private(dir, &e));
	assert_non_null(strstr(e.msg, "not a regular file"));
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/test-keyfile-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_owner_only_modes_are_accepted),
	    cmocka_unit_test(test_root_owned_group_read_is_accepted),
	    cmocka_unit_test(test_world_write_is_refused),
	    cmocka_unit_test(test_world_read_is_accepted_with_a_warning),
	    cmocka_unit_test(test_group_write_is_refused_group_read_warns_unless_root_owned),
	    cmocka_unit_test(test_read_private_applies_the_rule_to_the_file),
	    cmocka_unit_test(test_read_private_says_what_is_wrong),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(dir);
	return rc;
}
