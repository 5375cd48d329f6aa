/*
 * bench-rvps: the RVPS store at scale, in process over a real Redis (tests/bench/run_rvps.sh
 * starts one): registration rate (values/s, messages of 1000 sample values, each message one
 * atomic batch) into a store of 100 and of 100,000 values, beside a plain kv_set of the same
 * documents one by one as the baseline of the same run; then query rate and p50/p99 latency
 * at 1 and 16 threads with 100 and with 100,000 values stored, beside a plain kv_get.
 * Each store is its own Redis database (db 1: 100 values, db 2: 100,000, db 3: the baseline).
 * Usage: bench-rvps --redis HOST:PORT [--values N] [--queries Q]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "b64.h"
#include "bench_time.h"
#include "kv/kv.h"
#include "log.h"
#include "rvps/rvps.h"

#define PER_MESSAGE 1000
#define MAX_THREADS 16

static json_t *redis_storage(const char *hostport, int db)
{
	char url[300];
	snprintf(url, sizeof(url), "redis://%s/%d", hostport, db);
	return json_pack("{s:s,s:{s:{s:s,s:i}}}", "storage_type", "Redis", "backends", "redis",
	                 "url", url, "pool_size", MAX_THREADS);
}

static void name_of(char *out, size_t cap, long i)
{
	snprintf(out, cap, "bench/component-%07ld/measurement", i);
}

/* A sample message with values [first, first + n). NULL out of memory. */
static char *sample_message(long first, long n)
{
	json_t *pl = json_object();
	char name[64], digest[65];
	for (long i = first; i < first + n; i++) {
		name_of(name, sizeof(name), i);
		snprintf(digest, sizeof(digest), "%064lx", (unsigned long)i * 2654435761UL);
		json_object_set_new(pl, name, json_pack("[s]", digest));
	}
	char *pls = json_dumps(pl, JSON_COMPACT);
	json_decref(pl);
	char *b = pls ? b64_encode((const uint8_t *)pls, strlen(pls), B64_STD) : NULL;
	free(pls);
	json_t *m =
	    b ? json_pack("{s:s,s:s,s:s}", "version", "0.1.0", "type", "sample", "payload", b)
	      : NULL;
	free(b);
	char *out = m ? json_dumps(m, JSON_COMPACT) : NULL;
	json_decref(m);
	return out;
}

/* Registers n values in messages of PER_MESSAGE; values/s, or -1. */
static double register_values(struct rvps *r, long n)
{
	double t0 = now_us();
	for (long first = 0; first < n; first += PER_MESSAGE) {
		long k = n - first < PER_MESSAGE ? n - first : PER_MESSAGE;
		char *m = sample_message(first, k);
		struct err err = {0};
		if (m == NULL || rvps_register(r, m, &err) < 0) {
			fprintf(stderr, "bench-rvps: register: %s\n", err.msg);
			free(m);
			return -1;
		}
		free(m);
	}
	return n / ((now_us() - t0) / 1e6);
}

/* The baseline: the same value documents written one kv_set at a time. values/s, or -1. */
static double plain_writes(struct kv *kv, long n)
{
	char name[64], doc[256];
	double t0 = now_us();
	for (long i = 0; i < n; i++) {
		struct err err = {0};
		name_of(name, sizeof(name), i);
		int len = snprintf(doc, sizeof(doc),
		                   "{\"version\":\"0.1.0\",\"name\":\"%s\",\"expiration\":"
		                   "\"2027-12-07T00:00:00Z\",\"value\":[\"%064lx\"]}",
		                   name, (unsigned long)i * 2654435761UL);
		if (kv_set(kv, KV_NS_REFERENCE_VALUE, name, doc, (size_t)len, 1, &err) < 0) {
			fprintf(stderr, "bench-rvps: kv_set: %s\n", err.msg);
			return -1;
		}
	}
	return n / ((now_us() - t0) / 1e6);
}

struct qjob {
	struct rvps *r; /* rvps_query when set, else kv_get on kv */
	struct kv *kv;
	long stored, count, seed;
	double *lat; /* count latencies, µs */
	int failed;
};

static void *query_loop(void *arg)
{
	struct qjob *j = arg;
	unsigned long x = (unsigned long)j->seed * 6364136223846793005UL + 1442695040888963407UL;
	char name[64];
	for (long i = 0; i < j->count; i++) {
		struct err err = {0};
		x = x * 6364136223846793005UL + 1442695040888963407UL;
		name_of(name, sizeof(name), (long)((x >> 17) % (unsigned long)j->stored));
		double t0 = now_us();
		char *v = NULL;
		uint8_t *raw = NULL;
		size_t len;
		int rc = j->r ? rvps_query(j->r, name, &v, &err)
		              : kv_get(j->kv, KV_NS_REFERENCE_VALUE, name, &raw, &len, &err);
		j->lat[i] = now_us() - t0;
		if (rc != 0 || (j->r && v == NULL))
			j->failed = 1;
		free(v);
		free(raw);
	}
	return NULL;
}

/* queries/s over `threads` threads, total `total` queries; p50/p99 written. -1 on failure. */
static double query_rate(struct rvps *r, struct kv *kv, long stored, int threads, long total,
                         double *p50, double *p99)
{
	pthread_t th[MAX_THREADS];
	struct qjob j[MAX_THREADS];
	long per = total / threads;
	double *lat = malloc(sizeof(double) * (size_t)(per * threads));
	int failed = 0;
	if (lat == NULL)
		return -1;
	double t0 = now_us();
	for (int i = 0; i < threads; i++) {
		j[i] = (struct qjob){r, kv, stored, per, i + 1, lat + i * per, 0};
		pthread_create(&th[i], NULL, query_loop, &j[i]);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		failed |= j[i].failed;
	}
	double secs = (now_us() - t0) / 1e6;
	long n = per * threads;
	*p50 = median(lat, (int)n); /* sorts lat */
	*p99 = lat[(long)(n * 0.99)];
	free(lat);
	if (failed) {
		fprintf(stderr, "bench-rvps: a query did not find its value\n");
		return -1;
	}
	return n / secs;
}

int main(int argc, char **argv)
{
	const char *redis = NULL;
	long big = 100000, queries = 20000;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--redis"))
			redis = argv[i + 1];
		else if (!strcmp(argv[i], "--values"))
			big = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--queries"))
			queries = atol(argv[i + 1]);
	}
	if (redis == NULL || big < 100 || queries < MAX_THREADS) {
		fprintf(stderr, "usage: bench-rvps --redis HOST:PORT [--values N>=100] "
		                "[--queries Q]\n");
		return 2;
	}
	log_init("bench-rvps");
	log_set_level(LOG_WARN); /* one info line per registered value otherwise */
	struct err err = {0};
	long sizes[2] = {100, big};
	struct rvps *r[2] = {NULL, NULL};
	int rc = 1;
	for (int s = 0; s < 2; s++) {
		json_t *cfg = json_pack("{s:o,s:i}", "storage", redis_storage(redis, 1 + s),
		                        "max_reference_values_per_message", PER_MESSAGE);
		r[s] = rvps_new(cfg, &err);
		json_decref(cfg);
		if (r[s] == NULL) {
			fprintf(stderr, "bench-rvps: %s\n", err.msg);
			goto out;
		}
		double rate = register_values(r[s], sizes[s]);
		if (rate < 0)
			goto out;
		printf("rvps register into a store of %ld values (messages of up to %d, one atomic "
		       "batch each): %.0f values/s\n",
		       sizes[s], PER_MESSAGE, rate);
	}
	json_t *bcfg = redis_storage(redis, 3);
	struct kv *kv = kv_open(bcfg, &err);
	json_decref(bcfg);
	if (kv == NULL) {
		fprintf(stderr, "bench-rvps: %s\n", err.msg);
		goto out;
	}
	double plain = plain_writes(kv, big);
	if (plain < 0) {
		kv_close(kv);
		goto out;
	}
	printf("baseline: plain kv_set of the same %ld documents one by one: %.0f values/s\n", big,
	       plain);
	const int thr[2] = {1, MAX_THREADS};
	for (int s = 0; s < 2; s++)
		for (int t = 0; t < 2; t++) {
			double p50, p99,
			    q = query_rate(r[s], NULL, sizes[s], thr[t], queries, &p50, &p99);
			if (q < 0) {
				kv_close(kv);
				goto out;
			}
			printf("rvps query with %ld values stored, %d threads: %.0f queries/s, p50 "
			       "%.0f "
			       "us, p99 %.0f us\n",
			       sizes[s], thr[t], q, p50, p99);
		}
	for (int t = 0; t < 2; t++) {
		double p50, p99, q = query_rate(NULL, kv, big, thr[t], queries, &p50, &p99);
		if (q < 0) {
			kv_close(kv);
			goto out;
		}
		printf(
		    "baseline: plain kv_get with %ld stored, %d threads: %.0f gets/s, p50 %.0f us, "
		    "p99 %.0f us\n",
		    big, thr[t], q, p50, p99);
	}
	kv_close(kv);
	rc = 0;
out:
	rvps_free(r[0]);
	rvps_free(r[1]);
	return rc;
}
