/* Fuzz the KBS's two verifiers of bearer tokens, whose bytes come from any HTTP client: the
 * attestation-token verifier (JWS parsing, header jwk + x5c certificate chain to a trusted CA,
 * a kid looked up in a JWKS, exp/nbf, then the tee-pubkey lookup) and the admin API check
 * (JWT against two identity providers, an Ed25519 key and a JWKS, then the role ACL).
 * The first byte picks the verifier and, for the admin check, the request URI; the rest is
 * the token. The trust material is fixed test material (not secret: the private halves
 * exist only in tests/fuzz/make_seeds.py), so the seed tokens verify and mutations start
 * past the signatures and the chain. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "kbs/kbs.h"

static const char ca_pem[] = "-----BEGIN CERTIFICATE-----\n"
                             "MIIBqDCCAU+gAwIBAgIUFvNpO6y9f6f0XklygfluwRrCdKEwCgYIKoZIzj0EAwIw\n"
                             "ITEfMB0GA1UEAwwWY3RydXN0ZWUgZnV6eiB0b2tlbiBDQTAgFw0yNjExMzAwNjAx\n"
                             "NDZaGA8yMTI2MTEwNjA2MDE0NlowITEfMB0GA1UEAwwWY3RydXN0ZWUgZnV6eiB0\n"
                             "b2tlbiBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABN7n4EFWLXj0DIY1ryYv\n"
                             "3WoFBVj/knlv/iwrV8BxgL7nl1EOg5mC9BnRtjMZEyXuWz5oP2de11731G8ekfEB\n"
                             "2BajYzBhMB0GA1UdDgQWBBRn+KrRbu3hieZBKlZ8qvj9PUjyUTAfBgNVHSMEGDAW\n"
                             "gBRn+KrRbu3hieZBKlZ8qvj9PUjyUTAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB\n"
                             "/wQEAwIBBjAKBggqhkjOPQQDAgNHADBEAiAxg6Jh4eKY7t88MDVv9z2NXYc0coqk\n"
                             "iOoSnVLRABFLFgIgL/tsTnzdMESaRJjhtIPXbf3z0v4l3SDod2cFSl4aNDo=\n"
                             "-----END CERTIFICATE-----\n";

static const char admin_pub_pem[] = "-----BEGIN PUBLIC KEY-----\n"
                                    "MCowBQYDK2VwAyEAfnwxNYRPYyIz6ed4afgEFzpMWZ3ZmupWm/GPJAx15R0=\n"
                                    "-----END PUBLIC KEY-----\n";

/* The public half of fuzz_jose.c's fixed P-256 key. */
static const char jwks_json[] =
    "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"fuzz\",\"alg\":\"ES256\","
    "\"x\":\"r_jsa0pepWWIbpeG9OZ7Ov6kKHnyzJKDR_JX7Xh-rMI\","
    "\"y\":\"A9HGDDuOMtcTIRl-Vx-Jk-zOS-8vbrBkRYvFCtd34PA\"}]}";

static const char *const uris[] = {
    "/kbs/v0/resource/default/key/1",
    "/kbs/v0/resource-policy",
    "/kbs/v0/attestation-policy",
    "/kbs/v0/reference-value",
};

static struct kbs_config cfg;
static struct kbs_token_verifier *verifier;
static char dir[] = "/tmp/fuzz_kbs_token.XXXXXX", ca[256], admin[256], jwks[256];

static void cleanup(void)
{
	unlink(ca);
	unlink(admin);
	unlink(jwks);
	rmdir(dir);
}

static void write_file(const char *dir, const char *name, const char *text, char *path, size_t n)
{
	snprintf(path, n, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
		abort();
}

static void setup(void)
{
	char doc[2048];
	struct err err;

	if (mkdtemp(dir) == NULL)
		abort();
	atexit(cleanup); /* the files stay while we run: a JWKS file is re-read when it changes */
	write_file(dir, "ca.pem", ca_pem, ca, sizeof(ca));
	write_file(dir, "admin.pub", admin_pub_pem, admin, sizeof(admin));
	write_file(dir, "jwks.json", jwks_json, jwks, sizeof(jwks));
	snprintf(doc, sizeof(doc),
	         "{\"http_server\":{\"insecure_http\":true},"
	         "\"attestation_token\":{\"trusted_certs_paths\":[\"%s\"],"
	         "\"trusted_jwk_sets\":[\"file://%s\"]},"
	         "\"admin\":{\"authorization_mode\":\"AuthenticatedAuthorization\","
	         "\"authentication\":{\"bearer_jwt\":{\"identity_providers\":["
	         "{\"public_key_uri\":\"file://%s\",\"issuer\":\"fuzz-admin\"},"
	         "{\"jwk_set_uri\":\"file://%s\",\"audience\":\"kbs\"}]}},"
	         "\"authorization\":{\"regex_acl\":{\"acls\":["
	         "{\"role\":\"admin\",\"allowed_endpoints\":\"^/kbs/v0/.+$\"},"
	         "{\"role\":\"reader\",\"allowed_endpoints\":\"^/kbs/v0/resource/.+$\"}]}}}}",
	         ca, jwks, admin, jwks);
	json_t *root = json_loads(doc, 0, NULL);
	if (root == NULL || kbs_config_from_json(root, &cfg, &err) != 0 ||
	    kbs_config_check_startup(&cfg, &err) != 0) {
		fprintf(stderr, "fuzz_kbs_token: config: %s\n", root ? err.msg : "bad JSON");
		abort();
	}
	verifier = kbs_token_verifier_new(&cfg, &err);
	if (verifier == NULL) {
		fprintf(stderr, "fuzz_kbs_token: verifier: %s\n", err.msg);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err err;

	if (verifier == NULL)
		setup();
	if (size < 1)
		return 0;
	uint8_t sel = data[0];
	/* a header value: "Bearer " + the token bytes, NUL-terminated */
	char *s = malloc(size + 7);
	if (s == NULL)
		return 0;
	memcpy(s, "Bearer ", 7);
	memcpy(s + 7, data + 1, size - 1);
	s[size + 6] = 0;
	if (sel & 0x80) {
		kbs_admin_check(&cfg, (sel & 0x40) ? s : s + 7, uris[sel % 4], &err);
	} else {
		json_t *claims = kbs_token_verify(verifier, s + 7, &err);
		if (claims != NULL) {
			json_decref(kbs_token_teepubkey(verifier, claims, &err));
			json_decref(claims);
		}
	}
	free(s);
	return 0;
}
