/*
 * sigstore_cli: `rvps-tool verify-bundle`, the Sigstore conformance client's verify command:
 *   verify-bundle --bundle F (--certificate-identity I --certificate-oidc-issuer U | --key K)
 *                 [--trusted-root T] FILE_OR_DIGEST
 * FILE_OR_DIGEST is the artifact's path or "sha256:<hex>". Exit 0 only when the bundle
 * verifies; otherwise the reason on stderr and exit 1 (2 for a usage error). Offline: with no
 * --trusted-root there is nothing to trust, so the command refuses.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "b64.h"
#include "config.h"
#include "jose/jose.h"
#include "rvps/extractors/sigstore.h"

int sigstore_cli_verify_bundle(int argc, char **argv);

static int read_artifact(const char *arg, struct sigstore_artifact *a, uint8_t **data,
                         struct err *err)
{
	size_t len = 0;

	memset(a, 0, sizeof(*a));
	*data = NULL;
	if (strncmp(arg, "sha256:", 7) == 0) {
		uint8_t *d = NULL;
		size_t dl = 0;

		if (strlen(arg + 7) != 64 || hex_decode(arg + 7, 64, &d, &dl) < 0 || dl != 32) {
			free(d);
			return err_set(err, "the digest must be sha256:<64 hex digits>");
		}
		memcpy(a->sha256, d, 32);
		a->has_digest = 1;
		free(d);
		return 0;
	}
	*data = (uint8_t *)file_read_all(arg, &len, err);
	if (*data == NULL)
		return err_prefix(err, "artifact %s", arg);
	a->data = *data;
	a->len = len;
	return 0;
}

static int load(const char *path, const char *what, uint8_t **buf, size_t *len, struct err *err)
{
	*buf = (uint8_t *)file_read_all(path, len, err);
	return *buf == NULL ? err_prefix(err, "%s %s", what, path) : 0;
}

int sigstore_cli_verify_bundle(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"bundle", required_argument, NULL, 'b'},
	    {"certificate-identity", required_argument, NULL, 'i'},
	    {"certificate-oidc-issuer", required_argument, NULL, 'u'},
	    {"key", required_argument, NULL, 'k'},
	    {"trusted-root", required_argument, NULL, 't'},
	    {NULL, 0, NULL, 0},
	};
	const char *bundle = NULL, *ident = NULL, *issuer = NULL, *key = NULL, *troot = NULL;
	struct sigstore_root *root = NULL;
	struct sigstore_bundle *b = NULL;
	struct sigstore_identity id = {0};
	struct sigstore_policy pol = {0};
	struct sigstore_artifact art;
	struct sigstore_result res;
	uint8_t *rb = NULL, *bb = NULL, *data = NULL;
	size_t rl = 0, bl = 0;
	struct err e;
	int opt, rc = 1;

	err_clear(&e);
	optind = 2;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'b':
			bundle = optarg;
			break;
		case 'i':
			ident = optarg;
			break;
		case 'u':
			issuer = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case 't':
			troot = optarg;
			break;
		default:
			return 2;
		}
	}
	if (bundle == NULL || optind != argc - 1 ||
	    (key == NULL && (ident == NULL || issuer == NULL)) ||
	    (key != NULL && (ident != NULL || issuer != NULL))) {
		fprintf(stderr,
		        "usage: rvps-tool verify-bundle --bundle F (--certificate-identity I "
		        "--certificate-oidc-issuer U | --key K) [--trusted-root T] "
		        "FILE_OR_DIGEST\n");
		return 2;
	}
	if (troot == NULL) {
		fprintf(stderr,
		        "rvps-tool verify-bundle: no --trusted-root; verification is offline "
		        "and trusts nothing by default\n");
		return 1;
	}
	if (load(troot, "trusted root", &rb, &rl, &e) < 0 ||
	    sigstore_root_parse(rb, rl, &root, &e) < 0 ||
	    load(bundle, "bundle", &bb, &bl, &e) < 0 || sigstore_bundle_parse(bb, bl, &b, &e) < 0 ||
	    read_artifact(argv[optind], &art, &data, &e) < 0)
		goto out;
	if (key != NULL) {
		pol.key = pem_read_public_key(key, &e);
		if (pol.key == NULL) {
			err_prefix(&e, "key %s", key);
			goto out;
		}
	} else {
		id.issuer = issuer;
		id.san = ident;
		pol.ids = &id;
		pol.n_ids = 1;
	}
	if (sigstore_verify(root, b, &pol, &art, time(NULL), &res, &e) < 0)
		goto out;
	if (key == NULL)
		printf("OK: %s (issuer %s)\n", res.san, res.issuer);
	else
		printf("OK\n");
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "rvps-tool verify-bundle: %s\n", e.msg);
	EVP_PKEY_free(pol.key);
	sigstore_bundle_free(b);
	sigstore_root_free(root);
	free(rb);
	free(bb);
	free(data);
	return rc;
}
