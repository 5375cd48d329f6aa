/*
 * rvps-tool: register and query reference values on a running RVPS, Trustee's CLI:
 *   rvps-tool register -p|--path FILE [-a|--addr http://127.0.0.1:50003]
 *   rvps-tool query -r|--reference-value-id ID [-a|--addr http://127.0.0.1:50003]
 *             [--provenance]
 *   rvps-tool list [-a ADDR]           every stored value, a JSON array (with "expired")
 *   rvps-tool delete -r|--reference-value-id ID [-a ADDR]
 *   rvps-tool audit [-a ADDR]          the audit trail of registrations and deletions (ours)
 *   rvps-tool [register|query] -V|--version
 *   rvps-tool verify-bundle ... (a Sigstore bundle, offline; see extractors/sigstore_cli.c)
 * (`-i ID` is our older spelling of -r, kept).
 * and, for an https:// address, our TLS options (Trustee's tool is plaintext only):
 *   [--ca-cert CA.pem] [--client-cert CERT.pem --client-key KEY.pem]
 * and [--bearer-token-file FILE]: the token on its first line goes with every call as
 * `authorization: Bearer` (register and delete on an rvps whose config has "admin").
 * FILE holds a register message ({"version":"0.1.0","type":"sample","payload":...}).
 * query prints the value's JSON, or "No reference values found"; with --provenance (ours) a
 * second line "provenance: <JSON>" says how the value arrived (extractor, signer, message
 * digest, times; see rvps/rvps.c), or "provenance: none".
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "version.h"
#include "config.h"
#include "grpcx.h"
#include "log.h"
#include "rvps/rvps.h"

int sigstore_cli_verify_bundle(int argc, char **argv);

#define DEFAULT_ADDR "http://127.0.0.1:50003"
#define TIMEOUT_MS 30000

static void usage(FILE *f)
{
	fprintf(f, "Usage:\n"
	           "  rvps-tool register -p|--path FILE [-a|--addr " DEFAULT_ADDR "]\n"
	           "  rvps-tool query -r|--reference-value-id ID [-a|--addr " DEFAULT_ADDR "]\n"
	           "                  [--provenance]\n"
	           "  rvps-tool list [-a|--addr " DEFAULT_ADDR "]\n"
	           "  rvps-tool delete -r|--reference-value-id ID [-a|--addr " DEFAULT_ADDR "]\n"
	           "  rvps-tool audit [-a|--addr " DEFAULT_ADDR "]\n"
	           "  rvps-tool verify-bundle --bundle F (--certificate-identity I "
	           "--certificate-oidc-issuer U | --key K) [--trusted-root T] FILE_OR_DIGEST\n"
	           "  rvps-tool -V|--version\n"
	           "TLS (with an https:// address): [--ca-cert CA.pem] [--client-cert CERT.pem "
	           "--client-key KEY.pem]\n"
	           "Writes to an rvps with an admin config: [--bearer-token-file FILE]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"path", required_argument, NULL, 'p'},
	    {"reference-value-id", required_argument, NULL, 'i'},
	    {"addr", required_argument, NULL, 'a'},
	    {"ca-cert", required_argument, NULL, 'C'},
	    {"client-cert", required_argument, NULL, 'E'},
	    {"client-key", required_argument, NULL, 'K'},
	    {"provenance", no_argument, NULL, 'P'},
	    {"bearer-token-file", required_argument, NULL, 'B'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *cmd, *path = NULL, *id = NULL, *addr = DEFAULT_ADDR, *bearer = NULL;
	struct grpcx_tls_files tf = {NULL, NULL, NULL};
	struct rvps_client *c;
	struct err e;
	int opt, rc = 1, want_prov = 0;

	log_init("rvps-tool");
	if (argc >= 2 && (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0)) {
		version_print("rvps-tool");
		return 0;
	}
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	cmd = argv[1];
	if (strcmp(cmd, "verify-bundle") == 0)
		return sigstore_cli_verify_bundle(argc, argv);
	optind = 2;
	while ((opt = getopt_long(argc, argv, "p:i:r:a:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			path = optarg;
			break;
		case 'i':
		case 'r':
			id = optarg;
			break;
		case 'a':
			addr = optarg;
			break;
		case 'C':
			tf.ca = optarg;
			break;
		case 'E':
			tf.cert = optarg;
			break;
		case 'K':
			tf.key = optarg;
			break;
		case 'P':
			want_prov = 1;
			break;
		case 'B':
			bearer = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			version_print("rvps-tool");
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if ((strcmp(cmd, "register") == 0 && path == NULL) ||
	    ((strcmp(cmd, "query") == 0 || strcmp(cmd, "delete") == 0) && id == NULL) ||
	    (strcmp(cmd, "register") != 0 && strcmp(cmd, "query") != 0 &&
	     strcmp(cmd, "list") != 0 && strcmp(cmd, "delete") != 0 && strcmp(cmd, "audit") != 0) ||
	    optind < argc) {
		usage(stderr);
		return 2;
	}

	err_clear(&e);
	c = rvps_client_new_files(addr, &tf, "rvps-tool", &e);
	if (c == NULL) {
		fprintf(stderr, "rvps-tool: %s\n", e.msg);
		return 1;
	}
	if (bearer != NULL && rvps_client_set_bearer_file(c, bearer, &e) < 0) {
		fprintf(stderr, "rvps-tool: --bearer-token-file %s: %s\n", bearer, e.msg);
		rvps_client_free(c);
		return 1;
	}
	if (strcmp(cmd, "list") == 0 || strcmp(cmd, "audit") == 0) {
		char *json = NULL;
		int list = strcmp(cmd, "list") == 0;

		if ((list ? rvps_client_list(c, &json, TIMEOUT_MS, &e)
		          : rvps_client_audit(c, &json, TIMEOUT_MS, &e)) < 0) {
			fprintf(stderr, "rvps-tool: %s failed: %s\n", cmd, e.msg);
		} else {
			printf("%s\n", json);
			rc = 0;
		}
		free(json);
	} else if (strcmp(cmd, "delete") == 0) {
		int deleted = 0;

		if (rvps_client_delete(c, id, &deleted, TIMEOUT_MS, &e) < 0) {
			fprintf(stderr, "rvps-tool: delete failed: %s\n", e.msg);
		} else {
			printf(deleted ? "Reference value %s deleted\n"
			               : "No reference value %s found, nothing deleted\n",
			       id);
			rc = 0;
		}
	} else if (strcmp(cmd, "register") == 0) {
		size_t len;
		char *msg = file_read_all(path, &len, &e);

		if (msg == NULL) {
			fprintf(stderr, "rvps-tool: read %s: %s\n", path, e.msg);
		} else if (rvps_client_register(c, msg, TIMEOUT_MS, &e) < 0) {
			fprintf(stderr, "rvps-tool: register failed: %s\n", e.msg);
		} else {
			printf("Register reference value succeeded\n");
			rc = 0;
		}
		free(msg);
	} else {
		char *value = NULL;

		if (rvps_client_query(c, id, &value, TIMEOUT_MS, &e) < 0) {
			fprintf(stderr, "rvps-tool: query failed: %s\n", e.msg);
		} else {
			printf("%s\n", value ? value : "No reference values found");
			rc = 0;
		}
		free(value);
		value = NULL;
		if (rc == 0 && want_prov) {
			if (rvps_client_query_provenance(c, id, &value, TIMEOUT_MS, &e) < 0) {
				fprintf(stderr, "rvps-tool: provenance query failed: %s\n", e.msg);
				rc = 1;
			} else {
				printf("provenance: %s\n", value ? value : "none");
			}
			free(value);
		}
	}
	rvps_client_free(c);
	return rc;
}
