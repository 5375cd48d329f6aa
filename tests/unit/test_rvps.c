/*
 * test_rvps: the reference value store in-process (the AS's BuiltIn RVPS): register
 * message checks, the sample extractor, the stored §7.3 document and query results, on a
 * Memory store; plus the gRPC service and its forwarding proxy through a real grpcx server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grpcx.h"
#include "kv/kv.h"
#include "rvps/extractors.h"
#include "rvps/message.h"
#include "rvps/rvps.h"
#include "testlib.h"

/* {"rv-a":["x","y"],"rv.b/c":{"z":1,"a":[true,null]}} */
#define SAMPLE_PAYLOAD "eyJydi1hIjpbIngiLCJ5Il0sInJ2LmIvYyI6eyJ6IjoxLCJhIjpbdHJ1ZSxudWxsXX19"
#define SAMPLE_MSG "{\"version\":\"0.1.0\",\"type\":\"sample\",\"payload\":\"" SAMPLE_PAYLOAD "\"}"

static int parse(const char *text, struct rvps_message *m, struct err *e)
{
	return rvps_message_parse((const uint8_t *)text, strlen(text), m, e);
}

static void test_message_parse_accepts_a_sample_message(void **state)
{
	struct rvps_message m;
	struct err e;

	assert_int_equal(parse(SAMPLE_MSG, &m, &e), 0);
	assert_string_equal(m.version, "0.1.0");
	assert_string_equal(m.type, "sample");
	assert_string_equal(m.payload, SAMPLE_PAYLOAD);
	assert_int_equal(m.payload_len, strlen(SAMPLE_PAYLOAD));
	rvps_message_clear(&m);
}

static void test_message_version_defaults_to_0_1_0(void **state)
{
	struct rvps_message m;
	struct err e;

	assert_int_equal(parse("{\"type\":\"sample\",\"payload\":\"e30=\"}", &m, &e), 0);
	assert_string_equal(m.version, "0.1.0");
	rvps_message_clear(&m);
}

static void test_message_other_version_is_refused(void **state)
{
	struct rvps_message m;
	struct err e;

	assert_int_equal(
	    parse("{\"version\":\"1.0.0\",\"type\":\"sample\",\"payload\":\"\"}", &m, &e), -1);
	assert_string_equal(e.msg, "Version unmatched! Need 0.1.0, given 1.0.0.");
}

static void test_message_shape_errors(void **state)
{
	static const char *bad[] = {
	    "",
	    "not json",
	    "[1,2]",
	    "\"text\"",
	    "{\"payload\":\"e30=\"}",
	    "{\"type\":\"sample\"}",
	    "{\"type\":1,\"payload\":\"e30=\"}",
	    "{\"type\":\"sample\",\"payload\":{}}",
	    "{\"version\":1,\"type\":\"sample\",\"payload\":\"e30=\"}",
	    "{\"type\":\"sample\",\"payload\":\"e30=\"",
	};
	struct rvps_message m;
	struct err e;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		assert_int_equal(parse(bad[i], &m, &e), -1);
		assert_true(strncmp(e.msg, "parse message: ", 15) == 0);
	}
}

static void test_message_parse_respects_the_length(void **state)
{
	const char *text = SAMPLE_MSG "garbage after";
	struct rvps_message m;
	struct err e;

	assert_int_equal(rvps_message_parse((const uint8_t *)text, strlen(SAMPLE_MSG), &m, &e), 0);
	rvps_message_clear(&m);
	assert_int_equal(rvps_message_parse((const uint8_t *)text, strlen(text), &m, &e), -1);
}

static void test_extractor_table(void **state)
{
	assert_non_null(rvps_extractor_find("sample"));
	assert_null(rvps_extractor_find("Sample"));
	assert_null(rvps_extractor_find("nosuch"));
}

/* Each row names both slots, its type once in the table, and find returns that very row. */
static void test_extractor_rows_name_every_slot(void **state)
{
	size_t rows = 0;
	for (const struct rvps_extractor *const *r = rvps_extractors; *r != NULL; r++, rows++) {
		assert_non_null((*r)->type);
		assert_non_null((*r)->extract);
		assert_ptr_equal(rvps_extractor_find((*r)->type), *r);
	}
	assert_true(rows >= 1);
	assert_ptr_equal(rvps_extractor_find("sample"), &rvps_extractor_sample);
	assert_null(rvps_extractor_find(NULL));
}

static void test_sample_extractor(void **state)
{
	json_t *v = NULL;
	struct err e;

	assert_int_equal(
	    rvps_extractor_sample.extract(SAMPLE_PAYLOAD, strlen(SAMPLE_PAYLOAD), &v, &e), 0);
	assert_int_equal(json_object_size(v), 2);
	assert_true(json_is_array(json_object_get(v, "rv-a")));
	json_decref(v);
	/* unpadded, url alphabet, garbage: all refused (standard base64 only) */
	assert_int_equal(rvps_extractor_sample.extract("e30", 3, &v, &e), -1);
	assert_int_equal(rvps_extractor_sample.extract("e3-_", 4, &v, &e), -1);
	assert_int_equal(rvps_extractor_sample.extract("%%%%", 4, &v, &e), -1);
	/* "[1]" and "nope" decode but are not a JSON object */
	assert_int_equal(rvps_extractor_sample.extract("WzFd", 4, &v, &e), -1);
	assert_int_equal(rvps_extractor_sample.extract("bm9wZQ==", 8, &v, &e), -1);
}

static void test_register_then_query_returns_compact_sorted_value(void **state)
{
	struct err e;
	struct rvps *r = rvps_new(NULL, &e);
	char *v = NULL;

	assert_non_null(r);
	assert_int_equal(rvps_register(r, SAMPLE_MSG, &e), 0);
	assert_int_equal(rvps_query(r, "rv-a", &v, &e), 0);
	assert_string_equal(v, "[\"x\",\"y\"]");
	free(v);
	assert_int_equal(rvps_query(r, "rv.b/c", &v, &e), 0);
	assert_string_equal(v, "{\"a\":[true,null],\"z\":1}");
	free(v);
	assert_int_equal(rvps_query(r, "unknown", &v, &e), 0);
	assert_null(v);
	assert_int_equal(rvps_query(r, "", &v, &e), 0);
	assert_null(v);
	rvps_free(r);
}

static void test_register_errors(void **state)
{
	struct err e;
	struct rvps *r = rvps_new(NULL, &e);

	assert_int_equal(rvps_register(r, "{\"type\":\"nosuch\",\"payload\":\"\"}", &e), -1);
	assert_string_equal(e.msg, "Could not find extractor for nosuch");
	assert_int_equal(
	    rvps_register(r, "{\"version\":\"0.0.9\",\"type\":\"x\",\"payload\":\"\"}", &e), -1);
	assert_string_equal(e.msg, "Version unmatched! Need 0.1.0, given 0.0.9.");
	assert_int_equal(rvps_register(r, NULL, &e), -1);
	rvps_free(r);
}

/* The stored bytes, read back through a LocalFs store in a temporary directory. */
static void test_stored_document_is_trustee_shaped(void **state)
{
	json_t *cfg, *rcfg;
	struct err e;
	struct kv *kv;
	struct rvps *r;
	regex_t re;
	regmatch_t mt[2];
	char want_year[16];
	time_t now = time(NULL);
	struct tm tm;

	char dir[] = "/tmp/test-rvps-XXXXXX";
	assert_non_null(mkdtemp(dir));
	cfg = json_pack("{s:s, s:{s:{s:s}}}", "storage_type", "LocalFs", "backends", "local_fs",
	                "dir_path", dir);
	rcfg = json_pack("{s:O}", "storage", cfg);
	r = rvps_new(rcfg, &e);
	assert_non_null(r);
	assert_int_equal(rvps_register(r, SAMPLE_MSG, &e), 0);
	rvps_free(r);
	kv = kv_open(cfg, &e);
	assert_non_null(kv);
	uint8_t *doc;
	size_t len;
	assert_int_equal(kv_get(kv, KV_NS_REFERENCE_VALUE, "rv-a", &doc, &len, &e), 0);
	assert_int_equal(regcomp(&re,
	                         "^\\{\"version\":\"0\\.1\\.0\",\"name\":\"rv-a\",\"expiration\":\""
	                         "([0-9]{4})-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z\","
	                         "\"value\":\\[\"x\",\"y\"\\]\\}$",
	                         REG_EXTENDED),
	                 0);
	assert_int_equal(regexec(&re, (const char *)doc, 2, mt, 0), 0);
	gmtime_r(&now, &tm);
	snprintf(want_year, sizeof(want_year), "%04d", tm.tm_year + 1900 + 1);
	assert_memory_equal(doc + mt[1].rm_so, want_year, 4);
	regfree(&re);
	free(doc);
	kv_close(kv);
	json_decref(rcfg);
	json_decref(cfg);
	tl_rm_rf(dir);
}

static void test_rvps_on_a_shared_store(void **state)
{
	struct err e;
	struct kv *kv = kv_open(NULL, &e);
	struct rvps *r = rvps_new_with_kv(kv, &e);
	uint8_t *doc;
	size_t len;
	char *v = NULL;

	assert_non_null(r);
	assert_int_equal(rvps_register(r, SAMPLE_MSG, &e), 0);
	rvps_free(r); /* borrowed store: still open */
	assert_int_equal(kv_get(kv, KV_NS_REFERENCE_VALUE, "rv.b/c", &doc, &len, &e), 0);
	assert_true(strncmp((const char *)doc, "{\"version\":\"0.1.0\",\"name\":\"rv.b/c\",", 35) ==
	            0);
	assert_non_null(strstr((const char *)doc, ",\"value\":{\"a\":[true,null],\"z\":1}}"));
	free(doc);
	r = rvps_new_with_kv(kv, &e);
	assert_int_equal(rvps_query(r, "rv-a", &v, &e), 0);
	assert_string_equal(v, "[\"x\",\"y\"]");
	free(v);
	rvps_free(r);
	kv_close(kv);
	assert_null(rvps_new_with_kv(NULL, &e));
}

/* The gRPC service and the forwarding proxy, through real servers and the rvps client. */
static void test_grpc_service_and_proxy(void **state)
{
	struct err e;
	struct rvps *r = rvps_new(NULL, &e);
	struct grpcx_server *direct = grpcx_server_new("127.0.0.1:0", 2, &e);
	struct grpcx_server *proxy = grpcx_server_new("127.0.0.1:0", 2, &e);
	struct grpcx_client *upstream;
	struct rvps_client *c;
	char addr[64];
	char *v = NULL;

	assert_int_equal(rvps_grpc_serve(direct, r), 0);
	assert_int_equal(grpcx_server_start(direct, &e), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", grpcx_server_port(direct));
	upstream = grpcx_client_new(addr, &e);
	assert_int_equal(rvps_grpc_serve_proxy(proxy, upstream), 0);
	assert_int_equal(grpcx_server_start(proxy, &e), 0);
	snprintf(addr, sizeof(addr), "http://127.0.0.1:%d", grpcx_server_port(proxy));
	c = rvps_client_new(addr, &e);
	assert_non_null(c);

	assert_int_equal(rvps_client_register(c, SAMPLE_MSG, 5000, &e), 0);
	assert_int_equal(rvps_client_query(c, "rv-a", &v, 5000, &e), 0);
	assert_string_equal(v, "[\"x\",\"y\"]");
	free(v);
	assert_int_equal(rvps_client_query(c, "__healthcheck__", &v, 1000, &e), 0);
	assert_null(v);
	assert_int_equal(
	    rvps_client_register(c, "{\"type\":\"nosuch\",\"payload\":\"\"}", 5000, &e), -1);
	assert_int_equal(e.code, GRPCX_ABORTED);
	assert_string_equal(e.msg, "Register reference value: Could not find extractor for nosuch");

	/* upstream gone: the proxy answers UNAVAILABLE instead of hanging */
	grpcx_server_free(direct);
	assert_int_equal(rvps_client_query(c, "rv-a", &v, 5000, &e), -1);
	assert_int_equal(e.code, GRPCX_UNAVAILABLE);

	rvps_client_free(c);
	grpcx_server_free(proxy);
	grpcx_client_free(upstream);
	rvps_free(r);
}

/* How many QueryReferenceValue calls GET /metrics has counted. */
static unsigned long long query_calls(void)
{
	size_t len;
	char *text = rvps_metrics_render(&len);
	const char *p = strstr(text, "rvps_query_calls_total{method=\"QueryReferenceValue\"} ");
	unsigned long long n;

	assert_non_null(p);
	n = strtoull(strchr(p, '}') + 2, NULL, 10);
	free(text);
	return n;
}

/* One QueryReferenceValue and one QueryReferenceValues through a real server on r. */
static void query_through_grpc(struct rvps *r)
{
	struct err e;
	struct grpcx_server *s = grpcx_server_new("127.0.0.1:0", 1, &e);
	const char *ids[] = {"rv-a", "nosuch"};
	struct rvps_client *c;
	json_t *got = NULL;
	char addr[64], *v = NULL;
	unsigned long long before = query_calls();

	assert_int_equal(rvps_grpc_serve(s, r), 0);
	assert_int_equal(grpcx_server_start(s, &e), 0);
	snprintf(addr, sizeof(addr), "http://127.0.0.1:%d", grpcx_server_port(s));
	c = rvps_client_new(addr, &e);
	assert_int_equal(rvps_client_query(c, "rv-a", &v, 5000, &e), 0);
	assert_string_equal(v, "[\"x\",\"y\"]");
	free(v);
	assert_int_equal(query_calls(), before + 1); /* counted once, wherever it ran */
	assert_int_equal(rvps_client_query_many(c, ids, 2, &got, 5000, &e), 0);
	assert_int_equal(json_object_size(got), 1);
	assert_string_equal(json_string_value(json_array_get(json_object_get(got, "rv-a"), 1)),
	                    "y");
	json_decref(got);
	rvps_client_free(c);
	grpcx_server_free(s);
}

/* A Memory store answers a peek (the query runs on the server's loop); a store that must be
 * asked (LocalFs here, Redis until its cache knows the key) says unknown and the same query
 * is answered by a worker. A value registered after a peek is seen by the next one. */
static void test_query_peek_answers_from_memory_and_defers_otherwise(void **state)
{
	struct err e;
	struct rvps *r = rvps_new(NULL, &e);
	char dir[] = "/tmp/test_rvps_XXXXXX", cfg[256], *v = (char *)"unset";
	json_t *backends, *got = NULL;
	struct kv *kv;
	const char *ids[] = {"rv-a"};

	assert_int_equal(rvps_query_peek(r, "rv-a", &v, &e), 0);
	assert_null(v);
	assert_int_equal(rvps_register(r, SAMPLE_MSG, &e), 0);
	assert_int_equal(rvps_query_peek(r, "rv-a", &v, &e), 0);
	assert_string_equal(v, "[\"x\",\"y\"]");
	free(v);
	assert_int_equal(rvps_query_many_peek(r, ids, 1, &got, &e), 0);
	assert_int_equal(json_object_size(got), 1);
	json_decref(got);
	query_through_grpc(r);
	rvps_free(r);

	assert_non_null(mkdtemp(dir));
	snprintf(cfg, sizeof(cfg), "{\"local_fs\":{\"dir_path\":\"%s\"}}", dir);
	backends = json_loads(cfg, 0, NULL);
	kv = kv_open_type("LocalFs", backends, &e);
	assert_non_null(kv);
	r = rvps_new_with_kv(kv, &e);
	assert_int_equal(rvps_register(r, SAMPLE_MSG, &e), 0);
	v = NULL;
	assert_int_equal(rvps_query_peek(r, "rv-a", &v, &e), KV_PEEK_UNKNOWN);
	assert_null(v);
	assert_int_equal(rvps_query_many_peek(r, ids, 1, &got, &e), KV_PEEK_UNKNOWN);
	assert_null(got);
	query_through_grpc(r);
	rvps_free(r);
	kv_close(kv);
	json_decref(backends);
	snprintf(cfg, sizeof(cfg), "rm -rf '%s'", dir);
	assert_int_equal(system(cfg), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_message_parse_accepts_a_sample_message),
	    cmocka_unit_test(test_message_version_defaults_to_0_1_0),
	    cmocka_unit_test(test_message_other_version_is_refused),
	    cmocka_unit_test(test_message_shape_errors),
	    cmocka_unit_test(test_message_parse_respects_the_length),
	    cmocka_unit_test(test_extractor_table),
	    cmocka_unit_test(test_extractor_rows_name_every_slot),
	    cmocka_unit_test(test_sample_extractor),
	    cmocka_unit_test(test_register_then_query_returns_compact_sorted_value),
	    cmocka_unit_test(test_register_errors),
	    cmocka_unit_test(test_stored_document_is_trustee_shaped),
	    cmocka_unit_test(test_rvps_on_a_shared_store),
	    cmocka_unit_test(test_grpc_service_and_proxy),
	    cmocka_unit_test(test_query_peek_answers_from_memory_and_defers_otherwise),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
