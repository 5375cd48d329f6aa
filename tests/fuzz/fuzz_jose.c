/* Fuzz JWT decoding/verification with a fixed key, JWE decryption, JWE encryption to an
 * input TeePubKey, JWK import and JCS.
 * The key is a fixed P-256 test key (not a secret: it exists only here and in
 * tests/fuzz/make_seeds.py), so the seed JWS verifies and the seed JWE decrypts and the
 * fuzzer starts from inputs that reach past the signature and key-unwrap checks. */
#include <openssl/pem.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jcs.h"
#include "jose/jose.h"

static const char key_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                              "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgQv6XQNrx5JuhsvpR\n"
                              "Al++FCqPv4lqaJrVBEPW1oayaNShRANCAASv+OxrSl6lZYhul4b05ns6/qQoefLM\n"
                              "koNH8lfteH6swgPRxgw7jjLXEyEZflcfiZPszkvvL26wZEWLxQrXd+Dw\n"
                              "-----END PRIVATE KEY-----\n";

static EVP_PKEY *fixed_key(void)
{
	static EVP_PKEY *key;
	if (key == NULL) {
		BIO *b = BIO_new_mem_buf(key_pem, -1);
		key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
		BIO_free(b);
		if (key == NULL)
			abort();
	}
	return key;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	EVP_PKEY *key = fixed_key();
	struct err err;
	char *s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
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
		/* the RSA algorithms (a sender picks how long the decrypted content key is) */
		static EVP_PKEY *rsa;
		if (rsa == NULL && (rsa = EVP_RSA_gen(2048)) == NULL)
			abort();
		if (jwe_decrypt(j, rsa, &plain, &len, &err) == 0)
			free(plain);
		EVP_PKEY *k = jwk_to_pkey(j, &err);
		EVP_PKEY_free(k);
		/* the KBS encrypts resources to the attester's TeePubKey */
		json_decref(jwe_encrypt(j, (const uint8_t *)"resource", 8, &err));
		free(jcs_serialize(j, NULL));
		json_decref(j);
	}
	free(s);
	return 0;
}
