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

#include "jose/jose.h"

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
	char *in, *out = NULL;
	json_t *k = NULL, *jwe = NULL, *payload = NULL, *hdr = NULL, *p = NULL;
	EVP_PKEY *key = NULL;
	int rc = 2;

	if (argc < 3 || (in = slurp_stdin(&len)) == NULL) {
		fprintf(
		    stderr,
		    "usage: jose-tool jwe-encrypt JWK | jws-sign PEM ALG | jws-verify PEM ALG\n");
		return 2;
	}
	if (strcmp(argv[1], "jwe-encrypt") == 0) {
		k = json_load_file(argv[2], 0, NULL);
		jwe = k ? jwe_encrypt(k, (const uint8_t *)in, len, &err) : NULL;
		if (jwe == NULL) {
			fprintf(stderr, "jose-tool: %s\n", err.msg);
			rc = 1;
			goto done;
		}
		out = json_dumps(jwe, JSON_COMPACT | JSON_PRESERVE_ORDER);
	} else if (argc < 4) {
		goto done;
	} else if (strcmp(argv[1], "jws-sign") == 0) {
		key = pem_read_private_key(argv[2], &err);
		payload = json_loads(in, 0, NULL);
		hdr = json_pack("{s:s,s:s}", "alg", argv[3], "typ", "JWT");
		out = key && payload ? jws_sign(hdr, payload, key, argv[3], &err) : NULL;
		if (out == NULL) {
			fprintf(stderr, "jose-tool: %s\n", err.msg);
			rc = 1;
			goto done;
		}
	} else if (strcmp(argv[1], "jws-verify") == 0) {
		key = pem_read_public_key(argv[2], &err);
		while (len > 0 && (in[len - 1] == '\n' || in[len - 1] == '\r'))
			in[--len] = 0;
		if (key == NULL || jws_verify(in, key, argv[3], NULL, &p, &err) < 0) {
			printf("refused: %s\n", err.msg);
			rc = 1;
			goto done;
		}
		out = json_dumps(p, JSON_COMPACT);
	} else {
		goto done;
	}
	puts(out ? out : "");
	rc = 0;
done:
	free(out);
	free(in);
	json_decref(k);
	json_decref(jwe);
	json_decref(payload);
	json_decref(hdr);
	json_decref(p);
	EVP_PKEY_free(key);
	return rc;
}
