/*
 * rvps: the Reference Value Provider Service daemon, Trustee's command line:
 *   rvps [-c|--config FILE] [-a|--address ADDR]
 * The config is {"storage": StorageBackendConfig, "extractors": {...}}; an unreadable or
 * invalid file is a warning and the defaults (Memory storage), as Trustee does. Serves
 * reference.ReferenceValueProviderService and grpc.health.v1 until SIGTERM/SIGINT.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "grpcx.h"
#include "log.h"
#include "rvps/rvps.h"

#define DEFAULT_CONFIG "/etc/rvps.json"
#define DEFAULT_ADDRESS "127.0.0.1:50003"

static void usage(FILE *f)
{
	fprintf(f, "Usage: rvps [-c|--config FILE] [-a|--address ADDR]\n"
	           "  -c, --config FILE    JSON configuration (default " DEFAULT_CONFIG ")\n"
	           "  -a, --address ADDR   listen address (default " DEFAULT_ADDRESS ")\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"address", required_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *config_path = DEFAULT_CONFIG, *address = DEFAULT_ADDRESS;
	json_t *config = NULL;
	struct grpcx_server *srv;
	struct rvps *r;
	struct err e;
	int c;

	log_init("rvps");
	while ((c = getopt_long(argc, argv, "c:a:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 'a':
			address = optarg;
			break;
		case 'h':
			usage(stdout);
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
	r = rvps_new(config, &e);
	json_decref(config);
	if (r == NULL) {
		log_error("rvps: %s", e.msg);
		return 1;
	}
	srv = grpcx_server_new(address, 8, &e);
	if (srv == NULL) {
		log_error("rvps: %s", e.msg);
		rvps_free(r);
		return 1;
	}
	if (rvps_grpc_serve(srv, r) < 0 || grpcx_server_handle_signals(srv) < 0 ||
	    grpcx_server_start(srv, &e) < 0) {
		log_error("rvps: cannot start the gRPC service: %s", e.msg);
		grpcx_server_free(srv);
		rvps_free(r);
		return 1;
	}
	log_info("rvps: listening on %s (port %d)", address, grpcx_server_port(srv));
	grpcx_server_wait(srv);
	log_info("rvps: shutting down");
	grpcx_server_free(srv);
	rvps_free(r);
	return 0;
}
