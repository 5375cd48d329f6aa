/* Fuzz JWT decoding/verification with a fixed key, JWE decryption, JWK import and JCS. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jcs.h"
#include "jose.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static EVP_PKEY *key;
	struct err err;
	char *s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	if (key == NULL)
		key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "prime256v1");
	json_t *h = NULL, *p = NULL;
	if (jws_verify(s, key, "ES256", &h, &p, &err) == 0) {
		json_decref(h);
		json_decref(p);
	}
	json_t *j = json_loadb((const char *)data, size, 0, NULL);
	if (j != NULL) {
		uint8_t *plain;
		size_t len;
		if (jwe_decrypt(j, key, &plain, &len, &err) == 0)
			free(plain);
		EVP_PKEY *k = jwk_to_pkey(j, &err);
		EVP_PKEY_free(k);
		free(jcs_serialize(j, NULL));
		json_decref(j);
	}
	free(s);
	return 0;
}
