/* Fuzz the Sigstore bundle parser and, for what parses, the whole offline verification
 * (tlog body matching, Merkle proof, checkpoint, SET, RFC 3161 tokens, chain, SCT, identity)
 * against the public-good trusted root when $CTRUSTEE_SHARED has it, an empty root otherwise.
 * The input is the bundle JSON; its SHA-256 stands in for the artifact. */
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "rvps/extractors/sigstore.h"

static struct sigstore_root *load_root(void)
{
	static struct sigstore_root empty;
	struct sigstore_root *r = NULL;
	const char *shared = getenv("CTRUSTEE_SHARED");
	char path[4096];
	size_t len = 0;
	uint8_t *buf;
	struct err e;

	snprintf(path, sizeof(path), "%s/testdata/rvps/sigstore/trusted_root.prod.json",
	         shared ? shared : "../shared");
	buf = (uint8_t *)file_read_all(path, &len, &e);
	if (buf == NULL || sigstore_root_parse(buf, len, &r, &e) < 0)
		r = &empty;
	free(buf);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sigstore_root *root;
	static const struct sigstore_identity id = {
	    .issuer = "https://token.actions.githubusercontent.com",
	    .san = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
	           ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"};
	struct sigstore_policy pol = {.ids = &id, .n_ids = 1};
	struct sigstore_artifact art = {.has_digest = 1};
	struct sigstore_bundle *b = NULL;
	struct sigstore_result res;
	struct err err = {0};

	if (root == NULL)
		root = load_root();
	if (sigstore_bundle_parse(data, size, &b, &err) == 0) {
		EVP_Digest(data, size, art.sha256, NULL, EVP_sha256(), NULL);
		sigstore_verify(root, b, &pol, &art, 1800000000, &res, &err);
		sigstore_verify(root, b, &pol, NULL, 1800000000, &res, &err);
		sigstore_bundle_free(b);
	}
	return 0;
}
