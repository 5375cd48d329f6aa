/*
 * kbs/resource.c: the resource plugin's backend table. Every row names all its slots, the
 * plugin's storage_backend_type picks a row (without case, kvstorage by default), an unknown
 * type is refused with a sentence, and the kvstorage row keeps resources in the daemon's store
 * under namespace `repository` (Trustee's layout).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "kbs/kbs.h"
#include "kv/kv.h"

static void test_resource_rows_name_every_slot(void **state)
{
	size_t rows = 0;
	for (const struct kbs_resource_backend *const *r = kbs_resource_backends; *r != NULL;
	     r++, rows++) {
		assert_non_null((*r)->name);
		assert_non_null((*r)->open);
		assert_non_null((*r)->get);
		assert_non_null((*r)->set);
		assert_non_null((*r)->del);
		assert_non_null((*r)->free);
	}
	assert_int_equal(rows, 2);
	assert_ptr_equal(kbs_resource_backends[0], &kbs_resource_kvstorage);
}

static void test_resource_backend_chosen_by_storage_backend_type(void **state)
{
	struct err err = {0};
	struct kv *kv = kv_open(NULL, &err);
	struct kbs_config cfg = {0};
	assert_non_null(kv);

	struct kbs_resources *r = kbs_resources_new(&cfg, kv, &err); /* no type: default */
	assert_non_null(r);
	assert_string_equal(kbs_resources_name(r), "kvstorage");
	kbs_resources_free(r);

	cfg.resource_backend = "KvStorage";
	r = kbs_resources_new(&cfg, kv, &err);
	assert_non_null(r);
	assert_string_equal(kbs_resources_name(r), "kvstorage");
	kbs_resources_free(r);

	/* the Vault row opens with its own table, and refuses one without a URL by key name */
	json_t *plugin =
	    json_pack("{s:s,s:s}", "name", "resource", "storage_backend_type", "vault");
	cfg.resource_backend = "vault";
	cfg.resource_plugin_cfg = plugin;
	assert_null(kbs_resources_new(&cfg, kv, &err));
	assert_non_null(strstr(err.msg, "vault_url"));
	json_object_set_new(plugin, "vault_url", json_string("http://127.0.0.1:1"));
	json_object_set_new(plugin, "token", json_string("t"));
	r = kbs_resources_new(&cfg, kv, &err);
	assert_non_null(r);
	assert_string_equal(kbs_resources_name(r), "Vault");
	kbs_resources_free(r);
	json_decref(plugin);

	cfg.resource_backend = "s3";
	cfg.resource_plugin_cfg = NULL;
	memset(&err, 0, sizeof(err));
	assert_null(kbs_resources_new(&cfg, kv, &err));
	assert_string_equal(err.msg, "[[plugins]] resource: storage_backend_type \"s3\" is not "
	                             "one of kvstorage, Vault");
	kv_close(kv);
}

static void test_kvstorage_keeps_resources_in_the_repository_namespace(void **state)
{
	struct err err = {0};
	struct kv *kv = kv_open(NULL, &err);
	struct kbs_config cfg = {0};
	uint8_t *v;
	size_t n;
	assert_non_null(kv);
	struct kbs_resources *r = kbs_resources_new(&cfg, kv, &err);
	assert_non_null(r);

	assert_int_equal(kbs_resources_get(r, "default/key/one", &v, &n, &err), 1);
	assert_int_equal(
	    kbs_resources_set(r, "default/key/one", (const uint8_t *)"s3cr3t", 6, &err), 0);
	assert_int_equal(kbs_resources_get(r, "default/key/one", &v, &n, &err), 0);
	assert_int_equal(n, 6);
	assert_memory_equal(v, "s3cr3t", 6);
	free(v);
	/* the same bytes, where Trustee keeps them */
	assert_int_equal(kv_get(kv, KV_NS_REPOSITORY, "default/key/one", &v, &n, &err), 0);
	assert_memory_equal(v, "s3cr3t", 6);
	free(v);
	assert_int_equal(kbs_resources_delete(r, "default/key/one", &err), 0);
	assert_int_equal(kbs_resources_delete(r, "default/key/one", &err), 1);
	assert_int_equal(kbs_resources_get(r, "default/key/one", &v, &n, &err), 1);
	kbs_resources_free(r);
	kv_close(kv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_resource_rows_name_every_slot),
	    cmocka_unit_test(test_resource_backend_chosen_by_storage_backend_type),
	    cmocka_unit_test(test_kvstorage_keeps_resources_in_the_repository_namespace),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
