/*
 * jose-tool: our JOSE code on the command line, so tests can check it against independent
 * implementations (python3-jwcrypto, the jose CLI).
 *   jose-tool jwe-encrypt TEEPUBKEY.json  < plaintext      -> flattened JWE JSON
 *   jose-tool jws-sign KEY.pem ALG        < payload.json   -> compact JWS
 *   jose-tool jws-verify PUB.pem ALG      < token          -> payload JSON, or exit 1
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jose.h"

static char *slurp_stdin(size_t *len)
{
	size_t cap = 4096, n = 0, r;
	char *buf = malloc(cap + 1);
	while (buf && (r = fread(buf + n, 1, cap - n, stdin)) > 0) {
		n += r;
		if (n == cap) {
			char *nb = realloc(buf, (cap *= 2) + 1);
			if (nb == NULL) {
				free(buf);
				return NULL;
			}
			buf = nb;
		}
	}
	if (buf)
		buf[n] = 0;
	*len = n;
	return buf;
}

int main(int argc, char **argv)
{
	struct err err = {0};
	size_t len;
	char *in;

	if (argc < 3 || (in = slurp_stdin(&len)) == NULL) {
		fprintf(
		    stderr,
		    "usage: jose-tool jwe-encrypt JWK | jws-sign PEM ALG | jws-verify PEM ALG\n");
		return 2;
	}
	if (strcmp(argv[1], "jwe-encrypt") == 0) {
		json_t *k = json_load_file(argv[2], 0, NULL);
		json_t *jwe = k ? jwe_encrypt(k, (const uint8_t *)in, len, &err) : NULL;
		if (jwe == NULL) {
			fprintf(stderr, "jose-tool: %s\n", err.msg);
			return 1;
		}
		char *s = json_dumps(jwe, JSON_COMPACT | JSON_PRESERVE_ORDER);
		puts(s);
		return 0;
	}
	if (argc < 4)
		return 2;
	if (strcmp(argv[1], "jws-sign") == 0) {
		EVP_PKEY *k = pem_read_private_key(argv[2], &err);
		json_t *payload = json_loads(in, 0, NULL);
		json_t *hdr = json_pack("{s:s,s:s}", "alg", argv[3], "typ", "JWT");
		char *t = k && payload ? jws_sign(hdr, payload, k, argv[3], &err) : NULL;
		if (t == NULL) {
			fprintf(stderr, "jose-tool: %s\n", err.msg);
			return 1;
		}
		puts(t);
		return 0;
	}
	if (strcmp(argv[1], "jws-verify") == 0) {
		EVP_PKEY *k = pem_read_public_key(argv[2], &err);
		json_t *p = NULL;
		while (len > 0 && (in[len - 1] == '\n' || in[len - 1] == '\r'))
			in[--len] = 0;
		if (k == NULL || jws_verify(in, k, argv[3], NULL, &p, &err) < 0) {
			printf("refused: %s\n", err.msg);
			return 1;
		}
		char *s = json_dumps(p, JSON_COMPACT);
		puts(s);
		return 0;
	}
	return 2;
}
