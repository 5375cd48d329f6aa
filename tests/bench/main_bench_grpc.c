/*
 * bench-grpc: RVPS QueryReferenceValue round trips per second over gRPC, at 1 and 16
 * client threads sharing one channel (the way grpc-as and the KBS hold their channels).
 *   bench-grpc [--addr http://host:port] [--seconds N] [--threads 1,16]
 *              [--serve core|front|core-tls|front-tls --cert SELF.pem --key KEY.pem]
 * Without --addr an RVPS service on a Memory store is started in-process on a free
 * loopback port; with --addr a running rvps is measured (the value "bench-rv" is
 * registered first). Prints one line per thread count with req/s, p50 and p99.
 * --serve picks how the in-process server owns its port: grpcx_server_new/_new_tls (core,
 * core-tls: the names of the gRPC core days; now a front of the server's own) or a daemon's
 * front made with gfront_new (front, front-tls); both run the nghttp2 server.
 * TLS modes take a self-signed certificate (its own CA for the client) and its key.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "grpcfront.h"
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
	struct rusage ru0, ru1;

	getrusage(RUSAGE_SELF, &ru0);
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
	getrusage(RUSAGE_SELF, &ru1);
	/* CPU of this whole process (client, and the server when in-process) per call: less
	 * sensitive than req/s to other load on a shared machine */
	double cpu_us = ((double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
	                 (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec)) *
	                    1e6 +
	                (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) +
	                (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec);
	all = malloc((total_lat + 1) * sizeof(float));
	for (int i = 0; i < threads; i++) {
		memcpy(all + k, w[i].lat_ms, w[i].nlat * sizeof(float));
		k += w[i].nlat;
		free(w[i].lat_ms);
	}
	qsort(all, total_lat, sizeof(float), cmp_float);
	printf(
	    "grpc rvps query  %2d client threads: %9.0f req/s  p50 %.3f ms  p99 %.3f ms  (%ld ok, "
	    "%ld errors, %.1f s)  cpu %.1f us/req\n",
	    threads, (double)n / elapsed, total_lat ? all[total_lat / 2] : 0.0,
	    total_lat ? all[(size_t)((double)total_lat * 0.99)] : 0.0, n, errors, elapsed,
	    n > 0 ? cpu_us / (double)n : 0.0);
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
	    {"serve", required_argument, NULL, 'S'},
	    {"cert", required_argument, NULL, 'C'},
	    {"key", required_argument, NULL, 'K'},
	    {NULL, 0, NULL, 0},
	};
	const char *serve = "core", *cert = NULL, *key = NULL;
	struct gfront *front = NULL;
	struct gfront_tls tls = {0};
	int use_tls = 0, use_front = 0;
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
		case 'S':
			serve = optarg;
			break;
		case 'C':
			cert = optarg;
			break;
		case 'K':
			key = optarg;
			break;
		default:
			fprintf(stderr,
			        "usage: bench-grpc [--addr URL] [--seconds N] [--threads 1,16]\n");
			return 2;
		}
	}
	use_tls = strstr(serve, "tls") != NULL;
	use_front = strncmp(serve, "front", 5) == 0;
	if (addr == NULL && use_tls &&
	    (cert == NULL || key == NULL || gfront_tls_load(&tls, cert, key, NULL, &e) < 0)) {
		fprintf(stderr, "bench-grpc: --serve %s needs --cert and --key: %s\n", serve,
		        cert && key ? e.msg : "missing");
		return 2;
	}
	if (addr == NULL) {
		int port;
		store = rvps_new(NULL, &e);
		if (store == NULL)
			srv = NULL;
		else if (use_front)
			srv = grpcx_server_new_unbound(8, &e);
		else if (use_tls)
			srv = grpcx_server_new_tls("127.0.0.1:0", 8, tls.cert_pem, tls.key_pem,
			                           NULL, &e);
		else
			srv = grpcx_server_new("127.0.0.1:0", 8, &e);
		if (srv != NULL && use_front)
			front =
			    gfront_new("127.0.0.1:0", srv, use_tls ? &tls : NULL, NULL, NULL, &e);
		if (srv == NULL || (use_front && front == NULL) ||
		    rvps_grpc_serve(srv, store) < 0 || grpcx_server_start(srv, &e) < 0 ||
		    (front && gfront_start(front, &e) < 0)) {
			fprintf(stderr, "bench-grpc: cannot start an in-process RVPS: %s\n", e.msg);
			return 1;
		}
		port = front ? gfront_port(front) : grpcx_server_port(srv);
		snprintf(target, sizeof(target), "%s://localhost:%d", use_tls ? "https" : "http",
		         port);
		addr = target;
		printf("grpc bench: in-process RVPS (Memory store, 8 workers, %s) on %s\n", serve,
		       addr);
	} else {
		printf("grpc bench: RVPS at %s\n", addr);
	}
	{
		struct grpcx_tls_files tf = {use_tls ? cert : NULL, NULL, NULL};
		c = rvps_client_new_files(addr, &tf, "bench", &e);
	}
	gfront_tls_clear(&tls);
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
	gfront_free(front);
	rvps_free(store);
	return 0;
}
