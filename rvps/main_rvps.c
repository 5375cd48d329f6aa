/*
 * rvps: the Reference Value Provider Service daemon, Trustee's command line:
 *   rvps [-c|--config FILE] [-a|--address ADDR]
 * plus our extension, TLS on the port (Trustee's rvps is plaintext only):
 *   [-t|--https-pubkey-cert CERT.pem -k|--https-prikey KEY.pem [--https-client-ca CA.pem]]
 * and [--worker-threads N], the gRPC handler threads (0 = 4 per CPU: common/workers.h; the
 * config's `worker_threads` when the flag is not given).
 * The config is {"storage": StorageBackendConfig, "extractors": {...}}, plus our "admin"
 * (who may register: common/grpcauth.h) and "max_reference_values_per_message"; an unreadable or
 * invalid file is a warning and the defaults (Memory storage), as Trustee does. Serves
 * reference.ReferenceValueProviderService and grpc.health.v1 until SIGTERM/SIGINT, and on
 * the same port HTTP/1.1 GET /healthz and /metrics (common/grpcfront.h).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "version.h"
#include "config.h"
#include "grpcauth.h"
#include "grpcfront.h"
#include "grpcx.h"
#include "log.h"
#include "rvps/rvps.h"
#include "workers.h"

#define DEFAULT_CONFIG "/etc/rvps.json"
#define DEFAULT_ADDRESS "127.0.0.1:50003"

static void usage(FILE *f)
{
	fprintf(f, "Usage: rvps [-c|--config FILE] [-a|--address ADDR]\n"
	           "            [-t CERT.pem -k KEY.pem [--https-client-ca CA.pem]]\n"
	           "            [--worker-threads N]\n"
	           "  -c, --config FILE    JSON configuration (default " DEFAULT_CONFIG ")\n"
	           "  -a, --address ADDR   listen address (default " DEFAULT_ADDRESS ")\n"
	           "  -t, --https-pubkey-cert FILE  TLS certificate chain (PEM)\n"
	           "  -k, --https-prikey FILE       its private key (PEM, not readable by others)\n"
	           "      --https-client-ca FILE    require client certificates from this CA\n"
	           "      --worker-threads N        gRPC handler threads (0 = 4 per CPU)\n");
}

static void page(void *ctx, const char *path, struct gfront_reply *out)
{
	(void)ctx;
	if (strcmp(path, "/healthz") == 0) {
		out->status = 200;
		out->ctype = "text/plain";
		out->body = strdup("ok\n");
		out->len = out->body ? 3 : 0;
	} else if (strcmp(path, "/metrics") == 0) {
		out->body = rvps_metrics_render(&out->len);
		out->status = out->body ? 200 : 500;
		out->ctype = "text/plain; version=0.0.4";
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"address", required_argument, NULL, 'a'},
	    {"https-pubkey-cert", required_argument, NULL, 't'},
	    {"https-prikey", required_argument, NULL, 'k'},
	    {"https-client-ca", required_argument, NULL, 'C'},
	    {"worker-threads", required_argument, NULL, 'W'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *config_path = DEFAULT_CONFIG, *address = DEFAULT_ADDRESS;
	json_t *config = NULL;
	const char *tls_cert = NULL, *tls_key = NULL, *client_ca = NULL, *workers_flag = NULL;
	struct gfront_tls tls = {0};
	struct gfront *front = NULL;
	struct gfront_limits gl;
	struct grpcx_server *srv;
	struct rvps *r;
	struct grpcauth *auth;
	struct err e;
	int c, workers = 0;

	log_init("rvps");
	/* OpenSSL's global state lives as long as the process: its atexit cleanup would free it
	 * while gRPC's pool threads may still be running with per-thread OpenSSL state. */
	OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
	while ((c = getopt_long(argc, argv, "c:a:t:k:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 'a':
			address = optarg;
			break;
		case 't':
			tls_cert = optarg;
			break;
		case 'k':
			tls_key = optarg;
			break;
		case 'C':
			client_ca = optarg;
			break;
		case 'W':
			workers_flag = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			version_print("rvps");
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}

	err_clear(&e);
	if (gfront_tls_load(&tls, tls_cert, tls_key, client_ca, &e) < 0) {
		log_error("rvps: %s", e.msg);
		return 1;
	}
	config = config_load(config_path, &e);
	if (config == NULL) {
		log_warn("rvps: cannot use config %s (%s); using the default config (Memory "
		         "storage)",
		         config_path, e.msg);
	} else if (!json_is_object(config)) {
		log_warn("rvps: config %s is not an object; using the default config", config_path);
		json_decref(config);
		config = NULL;
	}
	auth =
	    grpcauth_new(config ? json_object_get(config, "admin") : NULL, "rvps config admin", &e);
	r = auth ? rvps_new(config, &e) : NULL;
	if (r != NULL && (gfront_limits_from_config(config, &gl, &e) < 0 ||
	                  workers_resolve(config, workers_flag, &workers, &e) < 0)) {
		rvps_free(r);
		r = NULL;
	}
	json_decref(config);
	if (r == NULL) {
		log_error("rvps: %s", e.msg);
		grpcauth_free(auth);
		return 1;
	}
	rvps_grpc_set_write_auth(auth);
	grpcauth_warn_open(auth, "rvps", address, client_ca != NULL);
	srv = grpcx_server_new_unbound(workers, &e);
	if (srv != NULL)
		front = gfront_new(address, srv, tls_cert ? &tls : NULL, page, NULL, &e);
	gfront_tls_clear(&tls);
	if (front == NULL) {
		log_error("rvps: cannot start: %s", e.msg);
		grpcx_server_free(srv);
		rvps_free(r);
		grpcauth_free(auth);
		return 1;
	}
	gfront_set_limits(front, &gl);
	if (rvps_grpc_serve(srv, r) < 0 || grpcx_server_handle_signals(srv) < 0 ||
	    grpcx_server_start(srv, &e) < 0 || gfront_start(front, &e) < 0) {
		log_error("rvps: cannot start the gRPC service: %s", e.msg);
		grpcx_server_free(srv);
		gfront_free(front);
		rvps_free(r);
		grpcauth_free(auth);
		return 1;
	}
	log_info("rvps: listening on %s (port %d, %s, %d handler threads)", address,
	         gfront_port(front),
	         client_ca  ? "mutual TLS"
	         : tls_cert ? "TLS"
	                    : "plaintext",
	         workers);
	grpcx_server_wait(srv);
	log_info("rvps: shutting down");
	grpcx_server_free(srv);
	gfront_free(front);
	rvps_free(r);
	grpcauth_free(auth);
	return 0;
}
