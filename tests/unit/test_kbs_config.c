/*
 * kbs configuration (kbs-protocol.md §8, §11.29): Trustee's test configurations parse with
 * their defaults; the refusals at parse time (admin mode and keys, unanchored ACL regexes,
 * identity providers, TLS version range) and at start-up (HTTPS material, no token trust
 * material, built-in AS, unknown plugins) name what is wrong; sessions follow storage_backend.
 * Documents are given as JSON, the form config_load produces from TOML.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "kbs/kbs.h"

static int parse(const char *text, struct kbs_config *c, struct err *e)
{
	json_error_t je;
	json_t *root = json_loads(text, 0, &je);
	if (!root)
		fail_msg("test JSON: %s", je.text);
	int rc = kbs_config_from_json(root, c, e);
	json_decref(root);
	return rc;
}

/* kbs/test_data/configs/coco-as-grpc-2.toml */
static const char grpc2[] =
    "{\"session_storage_type\":\"memory\","
    "\"http_server\":{\"sockets\":[\"0.0.0.0:8080\"],\"insecure_http\":true},"
    "\"attestation_token\":{},"
    "\"attestation_service\":{\"type\":\"coco_as_grpc\",\"as_addr\":\"http://as:50004\","
    "\"timeout\":5},"
    "\"admin\":{\"authorization_mode\":\"AuthenticatedAuthorization\","
    "\"authentication\":{\"bearer_jwt\":{\"identity_providers\":["
    "{\"issuer\":\"admin1-issuer\",\"public_key_uri\":\"/nonexistent/admin1-pubkey.pem\"},"
    "{\"issuer\":\"admin2-issuer\",\"public_key_uri\":\"/nonexistent/admin2-pubkey.pem\"}]}},"
    "\"authorization\":{\"regex_acl\":{\"acls\":["
    "{\"role\":\"admin1\",\"allowed_endpoints\":\"^/kbs/v0/resource/.+$\"},"
    "{\"role\":\"admin2\",\"allowed_endpoints\":\"^/kbs/v0/config/.+$\"}]}}},"
    "\"storage_backend\":{\"storage_type\":\"local_json\",\"backends\":{\"local_json\":"
    "{\"file_dir_path\":\"/opt/confidential-containers/trustee\"}}}}";

static void test_trustee_grpc_config_parses(void **state)
{
	struct kbs_config c;
	struct err e = {0};
	assert_int_equal(parse(grpc2, &c, &e), 0);
	assert_int_equal(c.sockets.n, 1);
	assert_string_equal(c.sockets.v[0], "0.0.0.0:8080");
	assert_true(c.insecure_http);
	assert_int_equal(c.payload_request_size, 2);
	assert_int_equal(c.as_type, KBS_AS_GRPC);
	assert_string_equal(c.as_addr, "http://as:50004");
	assert_int_equal(c.as_pool_size, 100);
	assert_int_equal(c.session_timeout_min, 5);
	assert_int_equal(c.admin_mode, KBS_ADMIN_AUTHENTICATED);
	assert_int_equal(c.n_idps, 2);
	assert_string_equal(c.idps[1].issuer, "admin2-issuer");
	assert_null(c.idps[0].audience);
	assert_int_equal(c.n_acls, 2);
	assert_string_equal(c.acls[0].role, "admin1");
	assert_string_equal(c.session_storage_type, "memory");
	assert_false(c.plugin_resource);
	/* start-up: no trust material in [attestation_token] */
	assert_int_equal(kbs_config_check_startup(&c, &e), -1);
	assert_non_null(strstr(e.msg, "trust material"));
	kbs_config_free(&c);
}

static void test_defaults_and_resource_only(void **state)
{
	struct kbs_config c;
	struct err e = {0};
	assert_int_equal(parse("{\"http_server\":{\"insecure_http\":true},"
	                       "\"admin\":{\"authorization_mode\":\"DenyAll\"},"
	                       "\"attestation_token\":{\"insecure_header_jwk\":true},"
	                       "\"plugins\":[{\"name\":\"resource\",\"storage_backend_type\":"
	                       "\"kvstorage\"},{\"name\":\"sample\",\"item\":\"v\"}]}",
	                       &c, &e),
	                 0);
	assert_string_equal(c.sockets.v[0], "127.0.0.1:8080");
	assert_int_equal(c.as_type, KBS_AS_NONE); /* passport (resource-only) KBS */
	assert_int_equal(c.admin_mode, KBS_ADMIN_DENY_ALL);
	assert_true(c.plugin_resource);
	assert_true(c.plugin_sample);
	assert_string_equal(c.sample_item, "v");
	assert_true(c.worker_count > 0);
	assert_int_equal(kbs_config_check_startup(&c, &e), 0);
	kbs_config_free(&c);
}

/* A plain-HTTP, DenyAll config with `tail` added to its top level. */
static int parse_with(const char *tail, struct kbs_config *c, struct err *e)
{
	char doc[512];
	snprintf(doc, sizeof(doc),
	         "{\"http_server\":{\"insecure_http\":true},"
	         "\"admin\":{\"authorization_mode\":\"DenyAll\"}%s}",
	         tail);
	return parse(doc, c, e);
}

/* As Trustee: session_storage_type falls back to [storage_backend] storage_type; absent both,
 * sessions are in memory (NULL); an explicit Memory wins over a shared store. */
static void test_session_storage_follows_storage_backend(void **state)
{
	struct kbs_config c;
	struct err e = {0};
	assert_int_equal(parse_with(",\"storage_backend\":{\"storage_type\":\"Redis\"}", &c, &e),
	                 0);
	assert_string_equal(c.session_storage_type, "Redis");
	kbs_config_free(&c);
	assert_int_equal(parse_with(",\"storage_backend\":{\"storage_type\":\"Postgres\"},"
	                            "\"session_storage_type\":\"Memory\"",
	                            &c, &e),
	                 0);
	assert_string_equal(c.session_storage_type, "Memory");
	kbs_config_free(&c);
	assert_int_equal(parse_with("", &c, &e), 0);
	assert_null(c.session_storage_type);
	kbs_config_free(&c);
}

/* kbs/test_data/configs/tls-profile-modern.toml and a min > max variant */
static void test_tls_profiles(void **state)
{
	struct kbs_config c;
	struct err e = {0};
	const char *ok = "{\"http_server\":{\"sockets\":[\"0.0.0.0:8080\"],\"private_key\":"
	                 "\"/etc/kbs-private.key\",\"certificate\":\"/etc/kbs-cert.pem\","
	                 "\"tls_profile\":\"modern\"},\"attestation_service\":{\"type\":"
	                 "\"coco_as_grpc\",\"as_addr\":\"http://127.0.0.1:50001\"},"
	                 "\"admin\":{\"authorization_mode\":\"DenyAll\"},"
	                 "\"storage_backend\":{\"storage_type\":\"memory\"}}";
	assert_int_equal(parse(ok, &c, &e), 0);
	assert_false(c.insecure_http);
	assert_string_equal(c.tls_profile, "modern");
	assert_string_equal(c.private_key, "/etc/kbs-private.key");
	/* HTTPS with key and certificate named passes the start-up rules (the files are read
	 * when the server builds its TLS context): what stops this config is the missing token
	 * trust material */
	assert_int_equal(kbs_config_check_startup(&c, &e), -1);
	assert_null(strstr(e.msg, "HTTPS"));
	assert_non_null(strstr(e.msg, "no trust material"));
	kbs_config_free(&c);
	assert_int_equal(parse("{\"http_server\":{\"tls_profile\":\"custom\",\"tls_min_version\":"
	                       "\"1.3\",\"tls_max_version\":\"1.2\"},\"admin\":{"
	                       "\"authorization_mode\":\"DenyAll\"}}",
	                       &c, &e),
	                 -1);
	assert_non_null(strstr(e.msg, "tls_min_version 1.3 exceeds tls_max_version 1.2"));
	assert_int_equal(parse("{\"http_server\":{\"tls_profile\":\"ancient\"},\"admin\":{"
	                       "\"authorization_mode\":\"DenyAll\"}}",
	                       &c, &e),
	                 -1);
	assert_int_equal(parse("{\"http_server\":{\"tls_min_version\":\"1.1\"},\"admin\":{"
	                       "\"authorization_mode\":\"DenyAll\"}}",
	                       &c, &e),
	                 -1);
}

static void test_admin_refusals(void **state)
{
	struct kbs_config c;
	struct err e = {0};
	assert_int_equal(parse("{\"http_server\":{},\"admin\":{\"authorization_mode\":"
	                       "\"AllowAll\"}}",
	                       &c, &e),
	                 -1);
	assert_non_null(strstr(e.msg, "AllowAll"));
	assert_int_equal(parse("{\"http_server\":{},\"admin\":{\"type\":\"Simple\"}}", &c, &e), -1);
	assert_non_null(strstr(e.msg, "unknown key `type`"));
	assert_int_equal(parse("{\"http_server\":{},\"admin\":{\"authorization_mode\":\"DenyAll\","
	                       "\"insecure_api\":true}}",
	                       &c, &e),
	                 -1);
	assert_int_equal(parse("{\"http_server\":{}}", &c, &e), -1);
	assert_non_null(strstr(e.msg, "[admin]"));
	assert_int_equal(parse("{\"admin\":{\"authorization_mode\":\"DenyAll\"}}", &c, &e), -1);
	assert_non_null(strstr(e.msg, "[http_server]"));
	assert_int_equal(parse("{\"http_server\":{},\"admin\":{\"authorization_mode\":"
	                       "\"AuthenticatedAuthorization\",\"authentication\":{\"bearer_jwt\":"
	                       "{\"identity_providers\":[]}}}}",
	                       &c, &e),
	                 -1);
	assert_non_null(strstr(e.msg, "identity_providers"));
	assert_int_equal(parse("{\"http_server\":{},\"admin\":{\"authorization_mode\":"
	                       "\"AuthenticatedAuthorization\",\"authentication\":{\"bearer_jwt\":"
	                       "{\"identity_providers\":[{\"issuer\":\"x\"}]}}}}",
	                       &c, &e),
	                 -1);
	assert_non_null(strstr(e.msg, "public_key_uri or jwk_set_uri"));
	assert_int_equal(parse("{\"http_server\":{},\"admin\":{\"authorization_mode\":"
	                       "\"AuthenticatedAuthorization\",\"authentication\":{\"bearer_jwt\":"
	                       "{\"identity_providers\":[{\"public_key_uri\":\"/k\"}]}},"
	                       "\"authorization\":{\"regex_acl\":{\"acls\":[{\"role\":\"a\","
	                       "\"allowed_endpoints\":\".*\"}]}}}}",
	                       &c, &e),
	                 -1);
	assert_non_null(strstr(e.msg, "Admin Role regex must be anchored"));
}

static void test_acl_anchoring(void **state)
{
	assert_true(kbs_acl_pattern_anchored("^/kbs/.+$"));
	assert_true(kbs_acl_pattern_anchored("^/kbs/v0/reference-value/[a-zA-Z0-9]+$"));
	assert_false(kbs_acl_pattern_anchored("/kbs/.+$"));
	assert_false(kbs_acl_pattern_anchored("^/kbs/.+"));
	assert_false(kbs_acl_pattern_anchored("^/other/.+$"));
	assert_false(kbs_acl_pattern_anchored("^.*$"));
	assert_false(kbs_acl_pattern_anchored("^/kbs"));
	assert_false(kbs_acl_pattern_anchored(""));
}

static void test_startup_refusals(void **state)
{
	struct kbs_config c;
	struct err e = {0};
	const char *fmt = "{\"http_server\":{\"insecure_http\":true},\"admin\":{"
	                  "\"authorization_mode\":\"DenyAll\"},\"attestation_token\":"
	                  "{\"trusted_certs_paths\":[\"/x\"]},%s}";
	const char *cases[][2] = {
	    {"\"attestation_service\":{\"type\":\"intel_ta\"}", "intel_ta"},
	    {"\"plugins\":[{\"name\":\"provisioner\"}]", "provisioner"},
	    {"\"plugins\":[{\"name\":\"resource\",\"storage_backend_type\":\"Aws\"}]", "Aws"},
	};
	char buf[512];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(buf, sizeof(buf), fmt, cases[i][0]);
		assert_int_equal(parse(buf, &c, &e), 0);
		assert_int_equal(kbs_config_check_startup(&c, &e), -1);
		assert_non_null(strstr(e.msg, cases[i][1]));
		kbs_config_free(&c);
	}
	/* the built-in AS is the default type, and this build has it */
	const char *builtin[] = {"\"attestation_service\":{\"type\":\"coco_as_builtin\"}",
	                         "\"attestation_service\":{}"};
	for (size_t i = 0; i < 2; i++) {
		snprintf(buf, sizeof(buf), fmt, builtin[i]);
		assert_int_equal(parse(buf, &c, &e), 0);
		assert_int_equal(c.as_type, KBS_AS_BUILTIN);
		assert_int_equal(kbs_config_check_startup(&c, &e), 0);
		kbs_config_free(&c);
	}
	snprintf(buf, sizeof(buf), fmt, "\"attestation_service\":{\"type\":\"nope\"}");
	assert_int_equal(parse(buf, &c, &e), -1);
	snprintf(buf, sizeof(buf), fmt, "\"plugins\":[{\"name\":\"sample\"}]");
	assert_int_equal(parse(buf, &c, &e), -1);
	assert_non_null(strstr(e.msg, "item"));
	/* insecure_http = false without key material */
	assert_int_equal(parse("{\"http_server\":{},\"admin\":{\"authorization_mode\":\"DenyAll\"},"
	                       "\"attestation_token\":{\"insecure_header_jwk\":true}}",
	                       &c, &e),
	                 0);
	assert_int_equal(kbs_config_check_startup(&c, &e), -1);
	assert_non_null(strstr(e.msg, "private_key and certificate"));
	kbs_config_free(&c);
	/* admin keys are read at start-up */
	assert_int_equal(parse(grpc2, &c, &e), 0);
	json_t *t = json_object_get(c.root, "attestation_token");
	(void)t;
	c.insecure_header_jwk = true;
	assert_int_equal(kbs_config_check_startup(&c, &e), -1);
	assert_non_null(strstr(e.msg, "/nonexistent/admin1-pubkey.pem"));
	kbs_config_free(&c);
}

static void test_wrong_types(void **state)
{
	struct kbs_config c;
	struct err e = {0};
	assert_int_equal(parse("{\"http_server\":{\"sockets\":\"0.0.0.0:1\"},\"admin\":{"
	                       "\"authorization_mode\":\"DenyAll\"}}",
	                       &c, &e),
	                 -1);
	assert_non_null(strstr(e.msg, "sockets"));
	assert_int_equal(parse("{\"http_server\":{\"insecure_http\":\"yes\"},\"admin\":{"
	                       "\"authorization_mode\":\"DenyAll\"}}",
	                       &c, &e),
	                 -1);
	assert_int_equal(parse("{\"http_server\":{\"payload_request_size\":0},\"admin\":{"
	                       "\"authorization_mode\":\"DenyAll\"}}",
	                       &c, &e),
	                 -1);
	assert_int_equal(parse("{\"http_server\":{},\"admin\":{\"authorization_mode\":\"DenyAll\"},"
	                       "\"attestation_token\":{\"extra_teekey_paths\":[\"no-slash\"]}}",
	                       &c, &e),
	                 -1);
	assert_non_null(strstr(e.msg, "JSON pointer"));
}

/* [http_server] worker_threads: 0 (from the CPUs) by default, an operator's count, 0..1024 */
static void test_worker_threads(void **state)
{
	struct kbs_config c;
	struct err e = {0};
	const char *admin = ",\"admin\":{\"authorization_mode\":\"DenyAll\"}}";
	char doc[256];
	snprintf(doc, sizeof(doc), "{\"http_server\":{}%s", admin);
	assert_int_equal(parse(doc, &c, &e), 0);
	assert_int_equal(c.worker_threads, 0);
	kbs_config_free(&c);
	snprintf(doc, sizeof(doc), "{\"http_server\":{\"worker_threads\":48}%s", admin);
	assert_int_equal(parse(doc, &c, &e), 0);
	assert_int_equal(c.worker_threads, 48);
	kbs_config_free(&c);
	for (int i = 0; i < 2; i++) {
		snprintf(doc, sizeof(doc), "{\"http_server\":{\"worker_threads\":%d}%s",
		         i ? 1025 : -1, admin);
		assert_int_equal(parse(doc, &c, &e), -1);
		assert_non_null(strstr(e.msg, "worker_threads"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_trustee_grpc_config_parses),
	    cmocka_unit_test(test_defaults_and_resource_only),
	    cmocka_unit_test(test_session_storage_follows_storage_backend),
	    cmocka_unit_test(test_tls_profiles),
	    cmocka_unit_test(test_admin_refusals),
	    cmocka_unit_test(test_acl_anchoring),
	    cmocka_unit_test(test_startup_refusals),
	    cmocka_unit_test(test_wrong_types),
	    cmocka_unit_test(test_worker_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
