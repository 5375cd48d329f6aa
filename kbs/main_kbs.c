/*
 * kbs: the Key Broker Service daemon. `kbs -c|--config-file F.toml` (or KBS_CONFIG_FILE),
 * Trustee's flags and config keys. Runs until SIGINT/SIGTERM, which a dedicated sigwait
 * loop in main turns into an orderly stop.
 */
#include <getopt.h>
#ifdef __GLIBC__
#endif
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "version.h"
#include "kbs.h"
#include "log.h"
#include "memtune.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: kbs [-c|--config-file FILE] [-V|--version]\n"
	           "  FILE is TOML (.toml) or JSON; default from KBS_CONFIG_FILE.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"config-file", required_argument, NULL, 'c'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {"version", no_argument, NULL, 'V'},
	                                     {NULL, 0, NULL, 0}};
	const char *path = getenv("KBS_CONFIG_FILE");
	int o;
	memtune_daemon(1); /* the arena cap under glibc: common/memtune.c */
	log_init("kbs");
	/* OpenSSL's global state lives as long as the process: its atexit cleanup would free it
	 * while gRPC's pool threads may still be running with per-thread OpenSSL state. */
	OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
	while ((o = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			version_print("kbs");
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!path) {
		usage(stderr);
		fprintf(stderr, "kbs: no configuration file given\n");
		return 2;
	}
	/* Block the stop signals in every thread; main collects them with sigwait. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct err e = {0};
	struct kbs_config cfg;
	if (kbs_config_load(path, &cfg, &e) != 0) {
		log_error("kbs: configuration refused: %s", e.msg);
		return 1;
	}
	bool cfg_https = !cfg.insecure_http;
	struct kbs_server *k = kbs_server_new(&cfg, &e);
	if (!k) {
		log_error("kbs: cannot start: %s", e.msg);
		return 1;
	}
	if (kbs_server_start(k, &e) != 0) {
		log_error("kbs: cannot start: %s", e.msg);
		kbs_server_free(k);
		return 1;
	}
	for (size_t i = 0;; i++) {
		int port = kbs_server_port(k, i);
		if (port < 0)
			break;
		log_info("kbs: listening on port %d (%s, malloc: %s)", port,
		         cfg_https ? "HTTPS" : "insecure HTTP", memtune_allocator());
	}
	int sig = 0;
	sigwait(&set, &sig);
	log_info("kbs: signal %d, stopping", sig);
	kbs_server_stop(k);
	kbs_server_free(k);
	return 0;
}
