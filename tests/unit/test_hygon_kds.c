/*
 * HSK/CEK sourcing from Hygon KDS (as/collateral/hygon_kds.c) against a stand-in on loopback
 * HTTPS (tests/integration/hygon_kds_server.py) serving a chain forged under a test HRK
 * (tests/unit/csv_forge.py): CSV evidence without HSK/CEK verifies with the fetched pair; a
 * second call is a cache hit, also with the stand-in stopped and the memory cache emptied;
 * 429 and 500 and a timeout are retryable (ERR_UNAVAILABLE); a 404 is a refusal naming the
 * serial; an oversized or malformed answer is refused and not cached; a fetched pair that does
 * not chain to the HRK is dropped from the cache.
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

#include "as/collateral/hygon_kds.h"
#include "as/verifiers/verifier.h"
#include "testlib.h"

#define SERIAL "TESTCHIP01"
#define RD_HEX "c0ffee0102030405"

static char tmp[256], certf[512], keyf[512], forged[512], served[600], hrk[600], empty[600],
    cache[600];
static pid_t server = -1;
static int port;

static void stop_server(void)
{
	tl_stop(server);
	server = -1;
}

static void start_server(const char *mode)
{
	char p[16];
	stop_server();
	port = tl_free_port();
	snprintf(p, sizeof(p), "%d", port);
	char *argv[] = {"/usr/bin/python3",
	                "tests/integration/hygon_kds_server.py",
	                p,
	                certf,
	                keyf,
	                served,
	                (char *)mode,
	                NULL};
	server = tl_spawn(argv);
	tl_wait_port(port, "stand-in Hygon KDS");
}

/* The csv verifier with the test HRK, no local HSK/CEK, the stand-in as its KDS. */
static void configure(const char *hrk_file, long retry_budget_ms, long timeout_ms)
{
	char url[64];
	struct err err = {0};
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/", port);
	json_t *vc =
	    json_pack("{s:{s:s,s:s,s:s,s:s,s:s,s:I,s:I}}", "csv_verifier", "hrk_file", hrk_file,
	              "hsk_cek_dir", empty, "kds_base_url", url, "kds_ca_file", certf,
	              "kds_cache_dir", cache, "kds_retry_budget_ms", (json_int_t)retry_budget_ms,
	              "kds_timeout_ms", (json_int_t)timeout_ms);
	if (verifier_find("csv")->init(vc, &err) != 0)
		fail_msg("init: %s", err.msg);
	json_decref(vc);
	hygon_kds_reset();
}

static json_t *evidence(void)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/evidence_v1.json", forged);
	json_t *j = json_load_file(path, 0, NULL);
	assert_non_null(j);
	return j;
}

static int verify(const json_t *ev, struct err *err)
{
	uint8_t rd[8] = {0xc0, 0xff, 0xee, 0x01, 0x02, 0x03, 0x04, 0x05};
	struct verify_result res = {0};
	struct verify_request req = {.evidence = ev, .report_data = rd, .report_data_len = 8};
	int rc = verifier_find("csv")->verify(&req, &res, err);
	verify_result_clear(&res);
	return rc;
}

static void expect(const json_t *ev, int code, const char *reason)
{
	struct err err = {0};
	if (verify(ev, &err) == 0)
		fail_msg("accepted; expected \"%s\"", reason);
	if (strstr(err.msg, reason) == NULL)
		fail_msg("refused with \"%s\"; expected \"%s\"", err.msg, reason);
	if (err.code != code)
		fail_msg("\"%s\" has code %d, expected %d", err.msg, err.code, code);
}

static int cached_on_disk(void)
{
	char path[800];
	struct stat st;
	snprintf(path, sizeof(path), "%s/" SERIAL "/hsk_cek.cert", cache);
	return stat(path, &st) == 0;
}

static void clear_disk_cache(void)
{
	tl_rm_rf(cache);
	mkdir(cache, 0755);
}

static int setup(void **state)
{
	char cmd[6000];
	snprintf(tmp, sizeof(tmp), "/tmp/ctrustee-hygon-kds-XXXXXX");
	assert_non_null(mkdtemp(tmp));
	snprintf(certf, sizeof(certf), "%s/cert.pem", tmp);
	snprintf(keyf, sizeof(keyf), "%s/key.pem", tmp);
	snprintf(forged, sizeof(forged), "%s/forged", tmp);
	snprintf(served, sizeof(served), "%s/hsk_cek", forged);
	snprintf(hrk, sizeof(hrk), "%s/hrk.cert", forged);
	snprintf(empty, sizeof(empty), "%s/empty", tmp);
	snprintf(cache, sizeof(cache), "%s/cache", tmp);
	snprintf(cmd, sizeof(cmd),
	         "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s "
	         "-out %s -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
	         ">/dev/null 2>&1 && mkdir -p %s %s %s && "
	         "/usr/bin/python3 tests/unit/csv_forge.py %s " RD_HEX " " SERIAL,
	         keyf, certf, forged, empty, cache, forged);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static int teardown(void **state)
{
	stop_server();
	tl_rm_rf(tmp);
	return 0;
}

static void test_csv_verifies_with_hsk_cek_from_kds_then_memory_cache(void **state)
{
	struct hygon_kds_stats st;
	struct err err = {0};
	json_t *ev = evidence();

	clear_disk_cache();
	start_server("ok");
	configure(hrk, 0, 2000);
	if (verify(ev, &err) != 0)
		fail_msg("refused: %s", err.msg);
	assert_true(cached_on_disk());
	if (verify(ev, &err) != 0)
		fail_msg("second: %s", err.msg);
	hygon_kds_get_stats(&st);
	assert_int_equal(st.kds_fetches, 1);
	assert_int_equal(st.memory_hits, 1);
	json_decref(ev);
}

static void test_disk_cache_serves_with_kds_stopped(void **state)
{
	struct hygon_kds_stats st;
	struct err err = {0};
	json_t *ev = evidence();

	clear_disk_cache();
	start_server("ok");
	configure(hrk, 0, 2000);
	assert_int_equal(verify(ev, &err), 0);
	stop_server();
	hygon_kds_reset(); /* a restarted AS: empty memory, warm disk */
	if (verify(ev, &err) != 0)
		fail_msg("refused with the KDS stopped: %s", err.msg);
	hygon_kds_get_stats(&st);
	assert_int_equal(st.disk_hits, 1);
	assert_int_equal(st.kds_fetches, 0);
	json_decref(ev);
}

static void test_429_is_retried_then_retryable(void **state)
{
	struct hygon_kds_stats st;
	struct err err = {0};
	json_t *ev = evidence();

	clear_disk_cache();
	start_server("429x1"); /* one 429 with Retry-After: 1, within a 5 s budget */
	configure(hrk, 5000, 2000);
	if (verify(ev, &err) != 0)
		fail_msg("refused: %s", err.msg);
	hygon_kds_get_stats(&st);
	assert_int_equal(st.kds_429, 1);
	assert_int_equal(st.kds_fetches, 1);

	clear_disk_cache();
	start_server("429x100"); /* past the budget: retry later */
	configure(hrk, 0, 2000);
	expect(ev, ERR_UNAVAILABLE, "Hygon KDS at https://127.0.0.1");
	expect(ev, ERR_UNAVAILABLE,
	       "is rate-limiting (HTTP 429/503) and no cached HSK/CEK exists "
	       "for chip " SERIAL);
	assert_false(cached_on_disk());
	json_decref(ev);
}

static void test_outages_are_retryable(void **state)
{
	json_t *ev = evidence();

	clear_disk_cache();
	start_server("500");
	configure(hrk, 0, 2000);
	expect(ev, ERR_UNAVAILABLE, "answered HTTP 500 for the HSK/CEK of chip " SERIAL);
	start_server("slow"); /* answers after 5 s; the deadline is 1 s */
	configure(hrk, 0, 1000);
	long t0 = tl_now_ms();
	expect(ev, ERR_UNAVAILABLE, "asked for the HSK/CEK of chip " SERIAL);
	assert_true(tl_now_ms() - t0 < 4000);
	stop_server(); /* nobody listening */
	configure(hrk, 0, 1000);
	expect(ev, ERR_UNAVAILABLE, "asked for the HSK/CEK of chip " SERIAL);
	json_decref(ev);
}

static void test_404_is_a_refusal_naming_the_serial(void **state)
{
	json_t *ev = evidence();
	json_t *sn = json_object_get(ev, "serial_number");
	const char *other = "NOSUCHCHIP9";

	for (size_t i = 0; other[i]; i++)
		json_array_set_new(sn, i, json_integer(other[i]));
	clear_disk_cache();
	start_server("ok");
	configure(hrk, 0, 2000);
	expect(ev, 0, "has no HSK/CEK for chip NOSUCHCHIP9 (HTTP 404)");
	json_decref(ev);
}

static void test_oversized_and_malformed_answers_are_refused_uncached(void **state)
{
	struct hygon_kds_stats st;
	json_t *ev = evidence();

	clear_disk_cache();
	start_server("big");
	configure(hrk, 0, 2000);
	expect(ev, 0, "the answer is larger than 16384 bytes");
	start_server("short");
	configure(hrk, 0, 2000);
	expect(ev, 0,
	       "answered for chip " SERIAL " with a body that is not an HSK/CEK pair: "
	       "HSK/CEK file is 100 bytes, expected 2916");
	hygon_kds_get_stats(&st);
	assert_int_equal(st.kds_fetches, 0);
	assert_false(cached_on_disk());
	json_decref(ev);
}

static void test_fetched_pair_that_does_not_chain_is_dropped(void **state)
{
	struct hygon_kds_stats st;
	struct err err = {0};
	json_t *ev = evidence();
	char real_hrk[1200];

	tl_testdata_dir(real_hrk, sizeof(real_hrk), "evidence/csv/trustee/hrk.cert");
	clear_disk_cache();
	start_server("ok");
	configure(real_hrk, 0, 2000); /* the real Hygon root did not sign the test HSK */
	expect(ev, 0, "HSK signature by the HRK failed");
	assert_false(cached_on_disk());
	configure(hrk, 0, 2000); /* the next attempt asks the KDS again */
	if (verify(ev, &err) != 0)
		fail_msg("refused: %s", err.msg);
	hygon_kds_get_stats(&st);
	assert_int_equal(st.kds_fetches, 1);
	assert_int_equal(st.memory_hits, 0);
	json_decref(ev);
}

static void test_configuration_is_checked(void **state)
{
	struct hygon_kds_config c;
	struct err err = {0};
	json_t *bad = json_pack("{s:i}", "kds_base_url", 3);
	assert_int_equal(hygon_kds_configure(bad, "csv_verifier", &c, &err), -1);
	assert_string_equal(err.msg,
	                    "csv_verifier.kds_base_url must be a string of at most 511 bytes");
	json_decref(bad);
	bad = json_pack("{s:s}", "kds_base_url", "ftp://x");
	assert_int_equal(hygon_kds_configure(bad, "csv_verifier", &c, &err), -1);
	assert_string_equal(err.msg, "csv_verifier.kds_base_url must be an http(s) URL");
	json_decref(bad);
	assert_int_equal(hygon_kds_configure(NULL, "csv_verifier", &c, &err), 0);
	assert_string_equal(c.base_url, "https://cert.hygon.cn");
	/* fetching off: the sentence says so */
	json_t *off = json_pack("{s:s}", "kds_base_url", "");
	assert_int_equal(hygon_kds_configure(off, "csv_verifier", &c, &err), 0);
	json_decref(off);
	uint8_t *buf;
	size_t len;
	hygon_kds_reset();
	assert_int_equal(hygon_kds_get_hsk_cek(&c, "CHIPX", &buf, &len, &err), -1);
	assert_string_equal(err.msg, "no HSK/CEK for chip CHIPX is cached and Hygon KDS fetching "
	                             "is off (kds_base_url is empty)");
	/* a serial that could leave the cache directory or the query is refused before use */
	assert_int_equal(hygon_kds_get_hsk_cek(&c, "../etc", &buf, &len, &err), -1);
	assert_string_equal(err.msg,
	                    "a Hygon chip serial must be 1 to 64 letters, digits, '-' or '_'");
	assert_int_equal(hygon_kds_get_hsk_cek(&c, "A&snumber=B", &buf, &len, &err), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_csv_verifies_with_hsk_cek_from_kds_then_memory_cache),
	    cmocka_unit_test(test_disk_cache_serves_with_kds_stopped),
	    cmocka_unit_test(test_429_is_retried_then_retryable),
	    cmocka_unit_test(test_outages_are_retryable),
	    cmocka_unit_test(test_404_is_a_refusal_naming_the_serial),
	    cmocka_unit_test(test_oversized_and_malformed_answers_are_refused_uncached),
	    cmocka_unit_test(test_fetched_pair_that_does_not_chain_is_dropped),
	    cmocka_unit_test(test_configuration_is_checked),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
