/*
 * kbs metrics (kbs-protocol.md §9): Trustee's names, labels and buckets in the Prometheus text
 * format; histogram buckets are cumulative; response sizes land in their own histogram.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kbs/kbs.h"

static void test_counters_labels_and_histograms(void **state)
{
	kbs_metrics_init();
	kbs_metrics_inc(KM_AUTH_REQUESTS);
	kbs_metrics_inc(KM_AUTH_REQUESTS);
	kbs_metrics_inc_label(KML_RES_READS, "default/key/read");
	kbs_metrics_inc_label(KML_RES_READS, "default/key/read");
	kbs_metrics_inc_label(KML_RES_READS, "other/key/x");
	kbs_metrics_inc_label(KML_ATT_OK, "sample");
	kbs_metrics_inc_label(KML_RES_WRITES, "a\"b\\c");
	kbs_metrics_active(3);
	kbs_metrics_active(-1);
	kbs_metrics_http_observe(0.002, 100, 5000);
	kbs_metrics_http_observe(2.0, 0, 10);
	char *t = kbs_metrics_render();
	assert_non_null(t);
	assert_non_null(strstr(t, "\nkbs_auth_requests_total 2\n"));
	assert_non_null(
	    strstr(t, "\nkbs_resource_reads_total{resource_path=\"default/key/read\"} 2\n"));
	assert_non_null(strstr(t, "\nkbs_resource_reads_total{resource_path=\"other/key/x\"} 1\n"));
	assert_non_null(strstr(t, "\nkbs_attestation_successes_total{tee_type=\"sample\"} 1\n"));
	assert_non_null(strstr(t, "kbs_resource_writes_total{resource_path=\"a\\\"b\\\\c\"} 1\n"));
	assert_non_null(strstr(t, "\nkbs_http_active_connections 2\n"));
	assert_non_null(strstr(t, "# TYPE kbs_http_request_duration_seconds histogram\n"));
	/* cumulative buckets: 0.002 s is above 0.001 and within 0.005 */
	assert_non_null(strstr(t, "kbs_http_request_duration_seconds_bucket{le=\"0.001\"} 0\n"));
	assert_non_null(strstr(t, "kbs_http_request_duration_seconds_bucket{le=\"0.005\"} 1\n"));
	assert_non_null(strstr(t, "kbs_http_request_duration_seconds_bucket{le=\"1\"} 1\n"));
	assert_non_null(strstr(t, "kbs_http_request_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
	assert_non_null(strstr(t, "kbs_http_request_duration_seconds_count 2\n"));
	assert_non_null(strstr(t, "kbs_http_request_size_bytes_bucket{le=\"32\"} 1\n"));
	assert_non_null(strstr(t, "kbs_http_request_size_bytes_bucket{le=\"128\"} 2\n"));
	assert_non_null(strstr(t, "kbs_http_response_size_bytes_bucket{le=\"32\"} 1\n"));
	assert_non_null(strstr(t, "kbs_http_response_size_bytes_bucket{le=\"8192\"} 2\n"));
	assert_non_null(strstr(t, "kbs_http_response_size_bytes_sum 5010\n"));
	assert_non_null(strstr(t, "kbs_build_info{version=\""));
	for (const char *n = t; (n = strstr(n, "# TYPE ")) != NULL; n++) {
		const char *e = strchr(n, '\n');
		assert_non_null(e);
		assert_true(strstr(n, " counter\n") == e - 8 || strstr(n, " gauge\n") == e - 6 ||
		            strstr(n, " histogram\n") == e - 10);
	}
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_counters_labels_and_histograms),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
