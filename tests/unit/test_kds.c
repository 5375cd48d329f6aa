/*
 * VCEK sourcing against a stand-in AMD KDS on loopback HTTPS (tests/integration/kds_server.py):
 * fetch, memory and disk cache, 429 with Retry-After, an outage with a warm cache, 404.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "as/collateral/amd_kds.h"
#include "as/collateral/cache.h"
#include "as/evidence/snp_report.h"
#include "as/verifiers/verifier.h"
#include "testlib.h"

static char evdir[1024], tmp[256], certf[512], keyf[512], vdir[512], cachedir[512];
static json_t *evidence; /* Genoa e2e evidence without its cert_chain */
static struct snp_report report;
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
	                "tests/integration/kds_server.py",
	                p,
	                certf,
	                keyf,
	                vdir,
	                (char *)mode,
	                NULL};
	server = tl_spawn(argv);
	tl_wait_port(port, "stand-in KDS");
}

static void configure(long retry_budget_ms, int with_cache)
{
	char url[64];
	struct err err = {0};
	snprintf(url, sizeof(url), "https://127.0.0.1:%d", port);
	json_t *cfg = json_pack("{s:[{s:s,s:s}],s:s,s:i,s:i,s:i}", "vcek_sources", "type", "KDS",
	                        "base_url", url, "ca_file", certf, "min_interval_ms", 0,
	                        "retry_budget_ms", (json_int_t)retry_budget_ms, "timeout_ms", 2000);
	if (with_cache)
		json_object_set_new(cfg, "cache_dir", json_string(cachedir));
	assert_int_equal(amd_kds_configure(cfg, &err), 0);
	json_decref(cfg);
	amd_kds_reset();
}

static int setup(void **state)
{
	char cmd[2048], path[1400], hwid[129];
	tl_testdata_dir(evdir, sizeof(evdir), "evidence");
	snprintf(tmp, sizeof(tmp), "/tmp/ctrustee-kds-XXXXXX");
	assert_non_null(mkdtemp(tmp));
	snprintf(certf, sizeof(certf), "%s/cert.pem", tmp);
	snprintf(keyf, sizeof(keyf), "%s/key.pem", tmp);
	snprintf(vdir, sizeof(vdir), "%s/vceks", tmp);
	snprintf(cachedir, sizeof(cachedir), "%s/cache", tmp);
	snprintf(cmd, sizeof(cmd),
	         "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s "
	         "-out %s -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
	         ">/dev/null 2>&1 && mkdir -p %s",
	         keyf, certf, vdir);
	assert_int_equal(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/snp/trustee/e2e-evidence.json", evdir);
	evidence = json_load_file(path, 0, NULL);
	assert_non_null(evidence);
	struct err err = {0};
	assert_int_equal(
	    snp_report_from_json(json_object_get(evidence, "attestation_report"), &report, &err),
	    0);
	/* serve the evidence's own VCEK under its hwid, then drop it from the evidence */
	json_t *data =
	    json_object_get(json_array_get(json_object_get(evidence, "cert_chain"), 0), "data");
	snp_hwid_hex(&report, hwid);
	snprintf(path, sizeof(path), "%s/%s.der", vdir, hwid);
	FILE *f = fopen(path, "wb");
	size_t i;
	json_t *b;
	json_array_foreach(data, i, b)
	{
		fputc((int)json_integer_value(b), f);
	}
	fclose(f);
	json_object_set_new(evidence, "cert_chain", json_null());
	return 0;
}

static int teardown(void **state)
{
	stop_server();
	json_decref(evidence);
	tl_rm_rf(tmp);
	return 0;
}

static void test_kds_fetch_then_memory_cache(void **state)
{
	uint8_t *der;
	size_t len;
	struct err err = {0};
	struct amd_kds_stats st;

	start_server("ok");
	configure(5000, 0);
	assert_int_equal(amd_kds_get_vcek(&report, &der, &len, &err), 0);
	free(der);
	assert_int_equal(amd_kds_get_vcek(&report, &der, &len, &err), 0);
	free(der);
	amd_kds_get_stats(&st);
	assert_int_equal(st.kds_fetches, 1);
	assert_int_equal(st.memory_hits, 1);
}

static void test_snp_verifier_fetches_vcek_from_kds(void **state)
{
	struct verify_result res = {0};
	struct err err = {0};
	struct verify_request req = {.evidence = evidence};

	start_server("ok");
	configure(5000, 0);
	if (verifier_find("snp")->verify(&req, &res, &err) != 0)
		fail_msg("%s", err.msg);
	verify_result_clear(&res);
}

static void test_kds_retries_after_429(void **state)
{
	uint8_t *der;
	size_t len;
	struct err err = {0};
	struct amd_kds_stats st;

	start_server("429x2");
	configure(10000, 0);
	assert_int_equal(amd_kds_get_vcek(&report, &der, &len, &err), 0);
	free(der);
	amd_kds_get_stats(&st);
	assert_int_equal(st.kds_429, 2);
}

static void test_kds_gives_up_when_rate_limited_past_budget(void **state)
{
	uint8_t *der;
	size_t len;
	struct err err = {0};

	start_server("429x100");
	configure(1500, 0);
	assert_int_equal(amd_kds_get_vcek(&report, &der, &len, &err), -1);
	assert_non_null(strstr(err.msg, "rate-limiting"));
	assert_int_equal(err.code, ERR_UNAVAILABLE); /* an outage: retry later */
}

static void test_kds_outage_served_from_disk_cache(void **state)
{
	uint8_t *der;
	size_t len;
	struct err err = {0};
	struct amd_kds_stats st;

	start_server("ok");
	configure(2000, 1);
	assert_int_equal(amd_kds_get_vcek(&report, &der, &len, &err), 0);
	free(der);
	stop_server();
	amd_kds_reset(); /* a restarted AS: empty memory, warm disk */
	assert_int_equal(amd_kds_get_vcek(&report, &der, &len, &err), 0);
	free(der);
	amd_kds_get_stats(&st);
	assert_int_equal(st.disk_hits, 1);
	assert_int_equal(st.kds_fetches, 0);
}

static void test_kds_404_and_unreachable_are_explained(void **state)
{
	uint8_t *der;
	size_t len;
	struct err err = {0};

	start_server("404");
	configure(2000, 0);
	assert_int_equal(amd_kds_get_vcek(&report, &der, &len, &err), -1);
	assert_non_null(strstr(err.msg, "HTTP 404"));
	assert_int_equal(err.code, 0); /* no such VCEK: a refusal */
	stop_server();
	amd_kds_reset();
	assert_int_equal(amd_kds_get_vcek(&report, &der, &len, &err), -1);
	assert_non_null(strstr(err.msg, "unreachable"));
	assert_int_equal(err.code, ERR_UNAVAILABLE);
}

/* The disk cache both collateral sources share: whole files, directories made as needed,
 * nothing left behind but the file, and a cap that treats a larger file as absent. */
static void test_collateral_cache_writes_whole_files_and_caps_reads(void **state)
{
	char dir[512], listing[512], cmd[1200];
	uint8_t *buf;
	size_t len;
	struct err err = {0};
	snprintf(dir, sizeof(dir), "%s/cc/deep", tmp);
	assert_int_equal(collateral_cache_write(dir, "vcek/ab/x.der", "0123456789", 10, &err), 0);
	assert_int_equal(collateral_cache_read(dir, "vcek/ab/x.der", 10, &buf, &len), 0);
	assert_int_equal(len, 10);
	assert_memory_equal(buf, "0123456789", 10);
	assert_int_equal(buf[10], 0);
	free(buf);
	assert_int_equal(collateral_cache_read(dir, "vcek/ab/x.der", 9, &buf, &len), -1);
	assert_null(buf);
	assert_int_equal(collateral_cache_write(dir, "vcek/ab/x.der", "new", 3, &err), 0);
	assert_int_equal(collateral_cache_read(dir, "vcek/ab/x.der", 10, &buf, &len), 0);
	assert_int_equal(len, 3);
	free(buf);
	assert_int_equal(collateral_cache_read(dir, "vcek/ab/none.der", 10, &buf, &len), -1);
	snprintf(listing, sizeof(listing), "%s/list", tmp);
	snprintf(cmd, sizeof(cmd), "ls -A %s/vcek/ab > %s", dir, listing);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(collateral_cache_read(tmp, "list", 100, &buf, &len), 0);
	assert_string_equal((char *)buf, "x.der\n"); /* no temporary file left */
	free(buf);
	/* a file where a directory must go: refused with a sentence */
	assert_int_equal(collateral_cache_write(dir, "vcek/ab/x.der/y", "z", 1, &err), -1);
	assert_non_null(strstr(err.msg, "cannot write the cache file"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_kds_fetch_then_memory_cache),
	    cmocka_unit_test(test_snp_verifier_fetches_vcek_from_kds),
	    cmocka_unit_test(test_kds_retries_after_429),
	    cmocka_unit_test(test_kds_gives_up_when_rate_limited_past_budget),
	    cmocka_unit_test(test_kds_outage_served_from_disk_cache),
	    cmocka_unit_test(test_kds_404_and_unreachable_are_explained),
	    cmocka_unit_test(test_collateral_cache_writes_whole_files_and_caps_reads),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
