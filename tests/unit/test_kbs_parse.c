/*
 * kbs request parsing: the protocol version rule (=0.4.0 semver), TEE names, the /auth and
 * /attest bodies, TeePubKey member filtering, the resource path vectors of
 * kbs-protocol.md §11.12, and the session table (ids, expiry, bound).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "kbs/kbs.h"
#include "kv/kv.h"

static void test_version_accepts_exactly_0_4_0(void **state)
{
	assert_int_equal(kbs_version_check("0.4.0"), 0);
	assert_int_equal(kbs_version_check("0.4.0+build.7"), 0);
	assert_int_equal(kbs_version_check("0.4.0-rc1"), -2);
	assert_int_equal(kbs_version_check("0.3.0"), -2);
	assert_int_equal(kbs_version_check("0.4.1"), -2);
	assert_int_equal(kbs_version_check("1.4.0"), -2);
	assert_int_equal(kbs_version_check("0.4"), -1);
	assert_int_equal(kbs_version_check("00.4.0"), -1);
	assert_int_equal(kbs_version_check("0.4.0 "), -1);
	assert_int_equal(kbs_version_check("v0.4.0"), -1);
	assert_int_equal(kbs_version_check(""), -1);
	assert_int_equal(kbs_version_check("0.4.0-"), -1);
	assert_int_equal(kbs_version_check("0.4.0+"), -1);
	assert_int_equal(kbs_version_check("abc"), -1);
}

static void test_tee_names_are_case_sensitive(void **state)
{
	const char *ok[] = {"az-snp-vtpm", "az-tdx-vtpm", "nvidia",      "sgx", "snp",
	                    "tdx",         "cca",         "csv",         "se",  "hygondcu",
	                    "tpm",         "sample",      "sampledevice"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		assert_true(kbs_tee_known(ok[i]));
	assert_false(kbs_tee_known("Sample"));
	assert_false(kbs_tee_known("TDX"));
	assert_false(kbs_tee_known(""));
	assert_false(kbs_tee_known("sev"));
}

static int auth(const char *body, struct kbs_auth_req *r, struct err *e)
{
	return kbs_auth_req_parse((const uint8_t *)body, strlen(body), r, e);
}

static void test_auth_request_parse(void **state)
{
	struct kbs_auth_req r;
	struct err e = {0};
	assert_int_equal(auth("{\"version\":\"0.4.0\",\"tee\":\"sample\",\"extra-params\":\"\","
	                      "\"unknown\":1}",
	                      &r, &e),
	                 0);
	assert_string_equal(r.version, "0.4.0");
	assert_string_equal(r.tee, "sample");
	assert_true(json_is_string(r.extra_params));
	kbs_auth_req_free(&r);
	/* extra-params may be any JSON, including null, but the key is required */
	assert_int_equal(
	    auth("{\"version\":\"0.4.0\",\"tee\":\"tdx\",\"extra-params\":null}", &r, &e), 0);
	kbs_auth_req_free(&r);
	assert_int_equal(auth("{\"version\":\"0.4.0\",\"tee\":\"sample\"}", &r, &e), -1);
	assert_non_null(strstr(e.msg, "extra-params"));
	assert_int_equal(
	    auth("{\"version\":\"0.4.0\",\"tee\":\"nope\",\"extra-params\":\"\"}", &r, &e), -1);
	assert_non_null(strstr(e.msg, "nope"));
	assert_int_equal(auth("{\"tee\":\"sample\",\"extra-params\":\"\"}", &r, &e), -1);
	assert_int_equal(auth("[1,2]", &r, &e), -1);
	assert_int_equal(auth("{\"version\":", &r, &e), -1);
	assert_int_equal(auth("", &r, &e), -1);
	assert_int_equal(auth("{\"version\":4,\"tee\":\"sample\",\"extra-params\":\"\"}", &r, &e),
	                 -1);
}

static void test_teepubkey_keeps_only_its_members(void **state)
{
	struct err e = {0};
	json_t *in = json_loads("{\"kty\":\"EC\",\"crv\":\"P-256\",\"alg\":\"ECDH-ES+A256KW\","
	                        "\"x\":\"AA\",\"y\":\"BB\",\"kid\":\"drop\",\"use\":\"enc\"}",
	                        0, NULL);
	json_t *k = kbs_teepubkey_parse(in, &e);
	assert_non_null(k);
	char *s = json_dumps(k, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(s, "{\"alg\":\"ECDH-ES+A256KW\",\"crv\":\"P-256\",\"kty\":\"EC\","
	                       "\"x\":\"AA\",\"y\":\"BB\"}");
	free(s);
	json_decref(k);
	json_decref(in);
	in = json_loads("{\"kty\":\"RSA\",\"alg\":\"RSA-OAEP-256\",\"n\":\"AQ\",\"e\":\"AQAB\","
	                "\"d\":\"secret\"}",
	                0, NULL);
	k = kbs_teepubkey_parse(in, &e);
	assert_non_null(k);
	assert_null(json_object_get(k, "d"));
	assert_int_equal(json_object_size(k), 4);
	json_decref(k);
	json_decref(in);
	in = json_loads("{\"kty\":\"RSA\",\"n\":\"AQ\",\"e\":\"AQAB\"}", 0, NULL);
	assert_null(kbs_teepubkey_parse(in, &e)); /* alg is required */
	json_decref(in);
	in = json_loads("{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"AA\"}", 0, NULL);
	assert_null(kbs_teepubkey_parse(in, &e));
	json_decref(in);
	in = json_loads("\"string\"", JSON_DECODE_ANY, NULL);
	assert_null(kbs_teepubkey_parse(in, &e));
	json_decref(in);
}

static int attest(const char *body, struct kbs_attest_req *r, struct err *e)
{
	return kbs_attest_req_parse((const uint8_t *)body, strlen(body), r, e);
}

#define PK "{\"kty\":\"EC\",\"crv\":\"P-256\",\"alg\":\"ECDH-ES+A256KW\",\"x\":\"A\",\"y\":\"B\"}"

static void test_attest_request_parse(void **state)
{
	struct kbs_attest_req r;
	struct err e = {0};
	assert_int_equal(attest("{\"runtime-data\":{\"nonce\":\"n\",\"tee-pubkey\":" PK "},"
	                        "\"tee-evidence\":{\"primary_evidence\":{\"svn\":\"1\"},"
	                        "\"additional_evidence\":\"\"},\"init-data\":null}",
	                        &r, &e),
	                 0);
	assert_string_equal(r.nonce, "n");
	assert_string_equal(r.additional_evidence, "");
	assert_null(r.init_data_format);
	assert_true(json_is_object(r.primary_evidence));
	kbs_attest_req_free(&r);
	assert_int_equal(attest("{\"runtime-data\":{\"nonce\":\"n\",\"tee-pubkey\":" PK "},"
	                        "\"tee-evidence\":{\"primary_evidence\":\"x\","
	                        "\"additional_evidence\":\"{}\"},"
	                        "\"init-data\":{\"format\":\"toml\",\"body\":\"version = 1\"}}",
	                        &r, &e),
	                 0);
	assert_string_equal(r.init_data_format, "toml");
	assert_string_equal(r.init_data_body, "version = 1");
	kbs_attest_req_free(&r);
	/* additional_evidence must be a string; both evidence keys are required */
	assert_int_equal(attest("{\"runtime-data\":{\"nonce\":\"n\",\"tee-pubkey\":" PK "},"
	                        "\"tee-evidence\":{\"primary_evidence\":{},"
	                        "\"additional_evidence\":{}}}",
	                        &r, &e),
	                 -1);
	assert_int_equal(attest("{\"runtime-data\":{\"nonce\":\"n\",\"tee-pubkey\":" PK "},"
	                        "\"tee-evidence\":{\"primary_evidence\":{}}}",
	                        &r, &e),
	                 -1);
	assert_int_equal(attest("{\"runtime-data\":{\"tee-pubkey\":" PK "},"
	                        "\"tee-evidence\":{\"primary_evidence\":{},"
	                        "\"additional_evidence\":\"\"}}",
	                        &r, &e),
	                 -1);
	assert_int_equal(attest("{\"runtime-data\":{\"nonce\":\"n\"},"
	                        "\"tee-evidence\":{\"primary_evidence\":{},"
	                        "\"additional_evidence\":\"\"}}",
	                        &r, &e),
	                 -1);
	assert_int_equal(attest("{\"runtime-data\":{\"nonce\":\"n\",\"tee-pubkey\":" PK "},"
	                        "\"tee-evidence\":{\"primary_evidence\":{},"
	                        "\"additional_evidence\":\"\"},\"init-data\":{\"format\":1}}",
	                        &r, &e),
	                 -1);
	assert_int_equal(attest("not json", &r, &e), -1);
}

static void test_resource_path_vectors(void **state)
{
	/* kbs-protocol.md §11.12 */
	assert_true(kbs_resource_path_valid("default/1/2"));
	assert_true(kbs_resource_path_valid("repo/type/tag"));
	assert_true(kbs_resource_path_valid("123--_default/1Abff-_/___-afds44BC"));
	assert_true(kbs_resource_path_valid("1.ok/2ok./3..."));
	assert_false(kbs_resource_path_valid("/1/2"));
	assert_false(kbs_resource_path_valid("1/2"));
	assert_false(kbs_resource_path_valid(".1.ok/2/3"));
	assert_false(kbs_resource_path_valid("1/.2/3"));
	assert_false(kbs_resource_path_valid("1/2/.3"));
	assert_false(kbs_resource_path_valid("1/2/3/"));
	assert_false(kbs_resource_path_valid("1/2/3/4"));
	assert_false(kbs_resource_path_valid("1//3"));
	assert_false(kbs_resource_path_valid("a/b/c%2F"));
	assert_false(kbs_resource_path_valid("a/b/../c"));
	assert_false(kbs_resource_path_valid("a/b/c d"));
	assert_false(kbs_resource_path_valid(""));
}

static void test_sessions_ids_expiry_and_bound(void **state)
{
	struct err e = {0};
	struct kbs_sessions *s = kbs_sessions_new(3, &e);
	char id[33], id2[33];
	long long now = (long long)time(NULL);
	assert_int_equal(kbs_sessions_create(s, "sample", "nonce", NULL, now + 300, id, &e), 0);
	assert_int_equal(strlen(id), 32);
	for (int i = 0; i < 32; i++)
		assert_non_null(strchr("0123456789abcdef", id[i]));
	assert_int_equal(id[12], '4'); /* UUIDv4 */
	struct kbs_session ss;
	assert_int_equal(kbs_sessions_get(s, id, &ss), 0);
	assert_int_equal(ss.state, KBS_SESSION_AUTHED);
	assert_string_equal(ss.nonce, "nonce");
	assert_string_equal(ss.tee, "sample");
	kbs_session_clear(&ss);
	assert_int_equal(kbs_sessions_set_attested(s, id, "tok"), 0);
	assert_int_equal(kbs_sessions_get(s, id, &ss), 0);
	assert_int_equal(ss.state, KBS_SESSION_ATTESTED);
	assert_string_equal(ss.token, "tok");
	kbs_session_clear(&ss);
	/* the nonce is consumed: a second attestation of the session is refused */
	assert_int_equal(kbs_sessions_set_attested(s, id, "tok2"), 2);
	assert_int_equal(kbs_sessions_get(s, id, &ss), 0);
	assert_string_equal(ss.token, "tok");
	kbs_session_clear(&ss);
	/* expired: absent and removed on read */
	assert_int_equal(kbs_sessions_create(s, "tdx", "n2", NULL, now - 1, id2, &e), 0);
	assert_int_equal(kbs_sessions_count(s), 2);
	assert_int_equal(kbs_sessions_get(s, id2, &ss), 1);
	assert_int_equal(kbs_sessions_count(s), 1);
	assert_int_equal(kbs_sessions_get(s, "0123", &ss), 1);
	/* the table is bounded; an expired entry is evicted first, even a younger one */
	char ida[33], idb[33], idc[33], idd[33];
	unsigned long long ex, un;
	assert_int_equal(kbs_sessions_create(s, "tdx", "a", NULL, now + 300, ida, &e), 0);
	assert_int_equal(kbs_sessions_create(s, "tdx", "b", NULL, now - 5, idb, &e), 0);
	assert_int_equal(kbs_sessions_count(s), 3);
	assert_int_equal(kbs_sessions_create(s, "tdx", "c", NULL, now + 301, idc, &e), 0);
	kbs_sessions_evictions(s, &ex, &un);
	assert_int_equal(ex, 1);
	assert_int_equal(un, 0);
	assert_int_equal(kbs_sessions_get(s, id, &ss), 0); /* attested: kept */
	kbs_session_clear(&ss);
	assert_int_equal(kbs_sessions_get(s, ida, &ss), 0);
	kbs_session_clear(&ss);
	/* then the oldest session that has not attested (a), never the attested one (id) */
	assert_int_equal(kbs_sessions_create(s, "tdx", "d", NULL, now + 302, idd, &e), 0);
	kbs_sessions_evictions(s, &ex, &un);
	assert_int_equal(un, 1);
	assert_int_equal(kbs_sessions_get(s, ida, &ss), 1);
	assert_int_equal(kbs_sessions_get(s, id, &ss), 0);
	kbs_session_clear(&ss);
	assert_int_equal(kbs_sessions_get(s, idc, &ss), 0);
	kbs_session_clear(&ss);
	/* all attested and valid: /auth is refused, nobody is logged out */
	assert_int_equal(kbs_sessions_set_attested(s, idc, "tc"), 0);
	assert_int_equal(kbs_sessions_set_attested(s, idd, "td"), 0);
	assert_int_equal(kbs_sessions_create(s, "tdx", "e", NULL, now + 303, id2, &e), -2);
	assert_non_null(strstr(e.msg, "session table full"));
	assert_int_equal(kbs_sessions_count(s), 3);
	const char *keep[] = {id, idc, idd};
	for (int i = 0; i < 3; i++) {
		assert_int_equal(kbs_sessions_get(s, keep[i], &ss), 0);
		assert_int_equal(ss.state, KBS_SESSION_ATTESTED);
		kbs_session_clear(&ss);
	}
	assert_int_equal(kbs_sessions_sweep(s), 0);
	kbs_sessions_free(s);
}

/* Sessions arriving out of deadline order stay on their lists in deadline order. */
static void test_sessions_evict_in_deadline_order(void **state)
{
	struct err e = {0};
	struct kbs_sessions *s = kbs_sessions_new(4, &e);
	long long now = (long long)time(NULL);
	long long dl[4] = {now + 40, now + 10, now + 30, now + 20};
	char ids[4][33], extra[33];
	struct kbs_session ss;
	for (int i = 0; i < 4; i++)
		assert_int_equal(kbs_sessions_create(s, "tdx", "n", NULL, dl[i], ids[i], &e), 0);
	/* victims by deadline: 1 (+10), 3 (+20), 2 (+30), 0 (+40) */
	int order[4] = {1, 3, 2, 0};
	for (int i = 0; i < 4; i++) {
		assert_int_equal(kbs_sessions_create(s, "tdx", "m", NULL, now + 100 + i, extra, &e),
		                 0);
		assert_int_equal(kbs_sessions_get(s, ids[order[i]], &ss), 1);
		for (int j = i + 1; j < 4; j++) {
			assert_int_equal(kbs_sessions_get(s, ids[order[j]], &ss), 0);
			kbs_session_clear(&ss);
		}
	}
	assert_int_equal(kbs_sessions_count(s), 4);
	kbs_sessions_free(s);
}

static void test_scrub_hosts(void **state)
{
	char out[256];
	kbs_scrub_hosts("redis at 10.0.0.5:6379 unreachable: Connection refused", out, sizeof(out));
	assert_string_equal(out, "redis unreachable: Connection refused");
	kbs_scrub_hosts("redis at redis.prod.svc:6379: Server closed the connection", out,
	                sizeof(out));
	assert_string_equal(out, "redis: Server closed the connection");
	kbs_scrub_hosts("failed to connect to all addresses; last error: UNKNOWN: "
	                "ipv4:127.0.0.1:50004: Connection refused",
	                out, sizeof(out));
	assert_null(strstr(out, "127.0.0.1"));
	kbs_scrub_hosts("fetch (https://vault.internal:8200/v1/x): timeout", out, sizeof(out));
	assert_string_equal(out, "fetch (<address>): timeout");
	kbs_scrub_hosts("AS returned gRPC status 10: failed: \n0: redis at 127.0.0.1:53885 "
	                "unreachable: Connection refused",
	                out, sizeof(out));
	assert_null(strstr(out, "127.0.0.1"));
	assert_non_null(strstr(out, "redis unreachable: Connection refused"));
	kbs_scrub_hosts("look at this", out, sizeof(out));
	assert_string_equal(out, "look at this");
	kbs_scrub_hosts("redis at 10.0.0.5:6379 unreachable", out, 8);
	assert_string_equal(out, "redis u");
}

static void xff(struct kbs_cidrs *c, const char *peer, const char *h, char *out, size_t n)
{
	kbs_client_addr(c, 0, peer, h, h ? strlen(h) : 0, out, n);
}

static void test_client_addr_behind_proxies(void **state)
{
	struct err e = {0};
	char *list[] = {"10.0.0.0/8", "192.0.2.7", "2001:db8::/32", NULL};
	struct kbs_strv v = {list, 3};
	struct kbs_cidrs *c = NULL;
	char out[64];
	assert_int_equal(kbs_cidrs_parse(&v, &c, &e), 0);
#define XFF(peer, h) xff(c, peer, h, out, sizeof(out))
	/* an untrusted peer's header is ignored */
	XFF("198.51.100.1", "203.0.113.9");
	assert_string_equal(out, "198.51.100.1");
	/* a trusted peer: the right-most untrusted hop; spoofed hops to its left are ignored */
	XFF("10.1.2.3", "1.1.1.1, 203.0.113.9");
	assert_string_equal(out, "203.0.113.9");
	XFF("10.1.2.3", "203.0.113.9, 10.9.9.9,192.0.2.7");
	assert_string_equal(out, "203.0.113.9");
	/* ports, brackets, IPv4-mapped peers */
	XFF("::ffff:10.1.2.3", "[2001:db9::5]:443");
	assert_string_equal(out, "2001:db9::5");
	XFF("10.1.2.3", "203.0.113.9:5555");
	assert_string_equal(out, "203.0.113.9");
	/* garbage hop: the trusted hop to its right stands for the client */
	XFF("10.1.2.3", "unknown");
	assert_string_equal(out, "10.1.2.3");
	XFF("10.1.2.3", "evil, 10.4.4.4");
	assert_string_equal(out, "10.4.4.4");
	/* all trusted: the left-most */
	XFF("10.1.2.3", "10.7.7.7, 10.8.8.8");
	assert_string_equal(out, "10.7.7.7");
	XFF("10.1.2.3", NULL);
	assert_string_equal(out, "10.1.2.3");
	/* RFC 7239 */
	const char *f = "for=1.1.1.1, for=\"[2001:db9::7]:4711\";proto=https, For=192.0.2.7";
	kbs_client_addr(c, 1, "2001:db8::1", f, strlen(f), out, sizeof(out));
	assert_string_equal(out, "2001:db9::7");
	f = "proto=https;for=_hidden";
	kbs_client_addr(c, 1, "10.0.0.1", f, strlen(f), out, sizeof(out));
	assert_string_equal(out, "10.0.0.1");
#undef XFF
	kbs_cidrs_free(c);
	char *bad[] = {"10.0.0.0/33"};
	struct kbs_strv vb = {bad, 1};
	assert_int_equal(kbs_cidrs_parse(&vb, &c, &e), -1);
	assert_non_null(strstr(e.msg, "prefix length"));
	char *bad2[] = {"proxy.local"};
	struct kbs_strv vb2 = {bad2, 1};
	assert_int_equal(kbs_cidrs_parse(&vb2, &c, &e), -1);
	assert_non_null(strstr(e.msg, "not an IP address"));
}

static void test_sessions_in_a_kv_store(void **state)
{
	struct err e = {0};
	struct kv *kv = kv_open(NULL, &e);
	assert_non_null(kv);
	struct kbs_sessions *s = kbs_sessions_new_kv(kv, &e);
	char id[33];
	long long now = (long long)time(NULL);
	json_t *ep = json_string("");
	assert_int_equal(kbs_sessions_create(s, "sample", "nonce", ep, now + 300, id, &e), 0);
	json_decref(ep);
	uint8_t *val;
	size_t len;
	assert_int_equal(kv_get(kv, KV_NS_SESSION, id, &val, &len, &e), 0);
	assert_non_null(strstr((char *)val, "\"state\":\"Authed\""));
	free(val);
	struct kbs_session ss;
	assert_int_equal(kbs_sessions_get(s, id, &ss), 0);
	assert_string_equal(ss.nonce, "nonce");
	assert_int_equal(ss.expires, now + 300);
	assert_true(json_is_string(ss.extra_params));
	kbs_session_clear(&ss);
	assert_int_equal(kbs_sessions_set_attested(s, id, "tok"), 0);
	assert_int_equal(kbs_sessions_get(s, id, &ss), 0);
	assert_int_equal(ss.state, KBS_SESSION_ATTESTED);
	assert_string_equal(ss.token, "tok");
	kbs_session_clear(&ss);
	/* the nonce is consumed: a second attestation of the session is refused */
	assert_int_equal(kbs_sessions_set_attested(s, id, "tok2"), 2);
	assert_int_equal(kbs_sessions_get(s, id, &ss), 0);
	assert_string_equal(ss.token, "tok");
	kbs_session_clear(&ss);
	assert_int_equal(kbs_sessions_count(s), 1);
	/* a record past its deadline is absent and removed */
	const char *dead = "{\"state\":\"Authed\",\"tee\":\"tdx\",\"nonce\":\"n\",\"expires\":1}";
	assert_int_equal(kv_set(kv, KV_NS_SESSION, "0123456789abcdef0123456789abcdef", dead,
	                        strlen(dead), 1, &e),
	                 0);
	assert_int_equal(kbs_sessions_get(s, "0123456789abcdef0123456789abcdef", &ss), 1);
	assert_int_equal(kbs_sessions_count(s), 1);
	assert_int_equal(kbs_sessions_get(s, "../../etc/passwd0000000000000000", &ss), 1);
	assert_int_equal(kbs_sessions_set_attested(s, "ffffffffffffffffffffffffffffffff", "t"), 1);
	kbs_sessions_free(s);
	kv_close(kv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_version_accepts_exactly_0_4_0),
	    cmocka_unit_test(test_tee_names_are_case_sensitive),
	    cmocka_unit_test(test_auth_request_parse),
	    cmocka_unit_test(test_teepubkey_keeps_only_its_members),
	    cmocka_unit_test(test_attest_request_parse),
	    cmocka_unit_test(test_resource_path_vectors),
	    cmocka_unit_test(test_sessions_ids_expiry_and_bound),
	    cmocka_unit_test(test_sessions_in_a_kv_store),
	    cmocka_unit_test(test_sessions_evict_in_deadline_order),
	    cmocka_unit_test(test_scrub_hosts),
	    cmocka_unit_test(test_client_addr_behind_proxies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
