/*
 * bench-grpc: RVPS QueryReferenceValue round trips per second over gRPC, at 1 and 16
 * client threads sharing one channel (the way grpc-as and the KBS hold their channels).
 *   bench-grpc [--addr http://host:port] [--seconds N] [--threads 1,16]
 * Without --addr an RVPS service on a Memory store is started in-process on a free
 * loopback port; with --addr a running rvps is measured (the value "bench-rv" is
 * registered first). Prints one line per thread count with req/s, p50 and p99.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grpcx.h"
#include "log.h"
#include "rvps/rvps.h"

#define MAX_SAMPLES 2000000

struct worker {
	struct rvps_client *c;
	double stop_at;
	long n, errors;
	float *lat_ms;
	size_t nlat, cap;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct err e;

	while (now_s() < w->stop_at) {
		char *value = NULL;
		double t0 = now_s();
		int rc = rvps_client_query(w->c, "bench-rv", &value, 5000, &e);

		if (rc < 0 || value == NULL)
			w->errors++;
		else
			w->n++;
		free(value);
		if (w->nlat < w->cap)
			w->lat_ms[w->nlat++] = (float)((now_s() - t0) * 1000.0);
	}
	return NULL;
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return (x > y) - (x < y);
}

static void run(struct rvps_client *c, int threads, double seconds)
{
	pthread_t *th = calloc((size_t)threads, sizeof(*th));
	struct worker *w = calloc((size_t)threads, sizeof(*w));
	float *all;
	size_t total_lat = 0, k = 0;
	long n = 0, errors = 0;
	double t0 = now_s();

	for (int i = 0; i < threads; i++) {
		w[i].c = c;
		w[i].stop_at = t0 + seconds;
		w[i].cap = MAX_SAMPLES / (size_t)threads;
		w[i].lat_ms = malloc(w[i].cap * sizeof(float));
		pthread_create(&th[i], NULL, worker_main, &w[i]);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		n += w[i].n;
		errors += w[i].errors;
		total_lat += w[i].nlat;
	}
	double elapsed = now_s() - t0;
	all = malloc((total_lat + 1) * sizeof(float));
	for (int i = 0; i < threads; i++) {
		memcpy(all + k, w[i].lat_ms, w[i].nlat * sizeof(float));
		k += w[i].nlat;
		free(w[i].lat_ms);
	}
	qsort(all, total_lat, sizeof(float), cmp_float);
	printf(
	    "grpc rvps query  %2d client threads: %9.0f req/s  p50 %.3f ms  p99 %.3f ms  (%ld ok, "
	    "%ld errors, %.1f s)\n",
	    threads, (double)n / elapsed, total_lat ? all[total_lat / 2] : 0.0,
	    total_lat ? all[(size_t)((double)total_lat * 0.99)] : 0.0, n, errors, elapsed);
	fflush(stdout);
	free(all);
	free(th);
	free(w);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"addr", required_argument, NULL, 'a'},
	    {"seconds", required_argument, NULL, 's'},
	    {"threads", required_argument, NULL, 't'},
	    {NULL, 0, NULL, 0},
	};
	const char *addr = NULL, *threads = "1,16";
	double seconds = 3.0;
	struct grpcx_server *srv = NULL;
	struct rvps *store = NULL;
	struct rvps_client *c;
	struct err e;
	char target[64], list[128], *tok, *save = NULL;
	int opt;

	log_init("bench-grpc");
	log_set_level(LOG_WARN);
	while ((opt = getopt_long(argc, argv, "a:s:t:", opts, NULL)) != -1) {
		switch (opt) {
		case 'a':
			addr = optarg;
			break;
		case 's':
			seconds = atof(optarg);
			break;
		case 't':
			threads = optarg;
			break;
		default:
			fprintf(stderr,
			        "usage: bench-grpc [--addr URL] [--seconds N] [--threads 1,16]\n");
			return 2;
		}
	}
	if (addr == NULL) {
		store = rvps_new(NULL, &e);
		srv = store ? grpcx_server_new("127.0.0.1:0", 8, &e) : NULL;
		if (srv == NULL || rvps_grpc_serve(srv, store) < 0 ||
		    grpcx_server_start(srv, &e) < 0) {
			fprintf(stderr, "bench-grpc: cannot start an in-process RVPS: %s\n", e.msg);
			return 1;
		}
		snprintf(target, sizeof(target), "127.0.0.1:%d", grpcx_server_port(srv));
		addr = target;
		printf("grpc bench: in-process RVPS (Memory store, 8 workers) on %s\n", addr);
	} else {
		printf("grpc bench: RVPS at %s\n", addr);
	}
	c = rvps_client_new(addr, &e);
	if (c == NULL || rvps_client_register(c,
	                                      "{\"version\":\"0.1.0\",\"type\":\"sample\","
	                                      "\"payload\":\"eyJiZW5jaC1ydiI6WyJhYmNkZSJdfQ==\"}",
	                                      5000, &e) < 0) {
		fprintf(stderr, "bench-grpc: register failed: %s\n", e.msg);
		return 1;
	}
	snprintf(list, sizeof(list), "%s", threads);
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int n = atoi(tok);
		if (n > 0)
			run(c, n, seconds);
	}
	rvps_client_free(c);
	if (srv != NULL) {
		grpcx_server_shutdown(srv);
		grpcx_server_free(srv);
	}
	rvps_free(store);
	return 0;
}
