/*
 * The kbs's backend tables. Resources (kbs/resource.c): every row names all its slots, the
 * plugin's storage_backend_type picks a row (without case, kvstorage by default), an unknown
 * type is refused with a sentence, and the kvstorage row keeps resources in the daemon's store
 * under namespace `repository` (Trustee's layout). Attestation (kbs/as_backends.c): every row
 * names its mandatory slots, [attestation_service] type picks the row, and a type without a
 * row in this build is refused with a sentence.
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

/* name, open, free and evaluate are mandatory; the other calls may be NULL (unsupported) */
static void test_as_rows_name_their_mandatory_slots(void **state)
{
	size_t rows = 0;
	for (const struct kbs_as_backend *const *r = kbs_as_backends; *r != NULL; r++, rows++) {
		assert_non_null((*r)->name);
		assert_non_null((*r)->open);
		assert_non_null((*r)->free);
		assert_non_null((*r)->evaluate);
		assert_int_not_equal((*r)->type, KBS_AS_NONE);
		for (const struct kbs_as_backend *const *o = kbs_as_backends; *o != *r; o++)
			assert_int_not_equal((*o)->type, (*r)->type);
	}
	assert_int_equal(rows, 3);
	/* coco_as_grpc speaks every call */
	const struct kbs_as_backend *g = &kbs_as_coco_grpc;
	assert_true(g->set_policy && g->rv_register && g->rv_query && g->challenge && g->ready);
}

static void test_as_backend_chosen_by_type(void **state)
{
	struct err err = {0};
	struct kbs_config cfg = {0};
	cfg.as_type = KBS_AS_GRPC;
	cfg.as_addr = "http://127.0.0.1:1";
	struct kbs_as *a = kbs_as_new_tls(&cfg, 1000, &err);
	assert_non_null(a);
	assert_string_equal(kbs_as_name(a), "coco_as_grpc");
	kbs_as_free(a);

	/* intel_ta's row is the one chosen: its open asks for its own keys */
	cfg.as_type = KBS_AS_INTEL_TA;
	assert_null(kbs_as_new_tls(&cfg, 1000, &err));
	assert_string_equal(err.msg,
	                    "[attestation_service] type intel_ta needs a string `base_url`");

	/* the built-in AS opens in process (Memory store, fresh signing key) */
	cfg.as_type = KBS_AS_BUILTIN;
	a = kbs_as_new_tls(&cfg, 1000, &err);
	assert_non_null(a);
	assert_string_equal(kbs_as_name(a), "coco_as_builtin");
	assert_int_equal(kbs_as_ready(a, 1000, &err), 0);
	kbs_as_free(a);

	cfg.as_type = KBS_AS_NONE;
	assert_null(kbs_as_new_tls(&cfg, 1000, &err));
	assert_string_equal(err.msg, "[attestation_service] this build has no backend for the "
	                             "configured type (coco_as_grpc, intel_ta, coco_as_builtin)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_resource_rows_name_every_slot),
	    cmocka_unit_test(test_resource_backend_chosen_by_storage_backend_type),
	    cmocka_unit_test(test_kvstorage_keeps_resources_in_the_repository_namespace),
	    cmocka_unit_test(test_as_rows_name_their_mandatory_slots),
	    cmocka_unit_test(test_as_backend_chosen_by_type),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
