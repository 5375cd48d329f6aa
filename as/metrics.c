/*
 * as_metrics: counters and one histogram for the AS (see as_metrics.h), rendered in the
 * Prometheus text format. Series are fixed at compile time: the TEE names grpc-as accepts
 * (as-rvps.md §1.3) plus "other", and the four EAR statuses plus "error".
 */
#include "as/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *tees[] = {"sample",      "tdx",    "sgx",  "snp", "az-snp-vtpm",
                             "az-tdx-vtpm", "tpm",    "cca",  "csv", "se",
                             "hygondcu",    "nvidia", "other"};
#define NTEES (sizeof(tees) / sizeof(tees[0]))
static const char *statuses[] = {"none", "affirming", "warning", "contraindicated", "error"};
#define NSTATUS (sizeof(statuses) / sizeof(statuses[0]))
static const double buckets[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

static unsigned long long requests[NTEES], successes[NTEES], failures[NTEES];
static unsigned long long policy[NSTATUS];
static unsigned long long hist[NBUCKETS], hist_count;
static unsigned long long hist_sum_us; /* microseconds, so the sum stays an atomic integer */

static void add(unsigned long long *p)
{
	__atomic_add_fetch(p, 1, __ATOMIC_RELAXED);
}

static unsigned long long get(const unsigned long long *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

void as_metrics_attestation(const char *tee, int ok, double seconds)
{
	size_t i = 0;

	while (i < NTEES - 1 && (tee == NULL || strcmp(tees[i], tee) != 0))
		i++;
	add(&requests[i]);
	add(ok ? &successes[i] : &failures[i]);
	for (size_t b = 0; b < NBUCKETS; b++)
		if (seconds <= buckets[b])
			add(&hist[b]);
	add(&hist_count);
	__atomic_add_fetch(&hist_sum_us, (unsigned long long)(seconds * 1e6), __ATOMIC_RELAXED);
}

void as_metrics_policy(const char *ear_status)
{
	size_t i = 0;

	while (i < NSTATUS - 1 && (ear_status == NULL || strcmp(statuses[i], ear_status) != 0))
		i++;
	add(&policy[i]);
}

static void counter(FILE *f, const char *name, const char *help, const unsigned long long *v)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
	for (size_t i = 0; i < NTEES; i++)
		fprintf(f, "%s{tee_type=\"%s\"} %llu\n", name, tees[i], get(&v[i]));
}

char *as_metrics_render(size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (f == NULL)
		return NULL;
	counter(f, "as_attestation_requests_total", "AttestationEvaluate calls, by TEE.", requests);
	counter(f, "as_attestation_successes_total", "Evaluations that issued a token, by TEE.",
	        successes);
	counter(f, "as_attestation_failures_total", "Evaluations refused with an error, by TEE.",
	        failures);
	fprintf(f, "# HELP as_evaluation_duration_seconds Time to evaluate one "
	           "AttestationRequest.\n# TYPE as_evaluation_duration_seconds histogram\n");
	for (size_t b = 0; b < NBUCKETS; b++)
		fprintf(f, "as_evaluation_duration_seconds_bucket{le=\"%g\"} %llu\n", buckets[b],
		        get(&hist[b]));
	fprintf(f, "as_evaluation_duration_seconds_bucket{le=\"+Inf\"} %llu\n", get(&hist_count));
	fprintf(f, "as_evaluation_duration_seconds_sum %.6f\n", (double)get(&hist_sum_us) / 1e6);
	fprintf(f, "as_evaluation_duration_seconds_count %llu\n", get(&hist_count));
	fprintf(f, "# HELP as_policy_evaluations_total Policy appraisals, by the EAR status they "
	           "produced (error: the policy failed).\n# TYPE as_policy_evaluations_total "
	           "counter\n");
	for (size_t i = 0; i < NSTATUS; i++)
		fprintf(f, "as_policy_evaluations_total{status=\"%s\"} %llu\n", statuses[i],
		        get(&policy[i]));
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
