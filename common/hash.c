/* hash: SHA-2 by kbs-types name over OpenSSL EVP (see hash.h). */
#include <openssl/evp.h>
#include <strings.h>

#include "hash.h"

enum hash_alg hash_alg_from_name(const char *name)
{
	if (name == NULL)
		return HASH_NONE;
	if (strcasecmp(name, "sha256") == 0 || strcasecmp(name, "sha-256") == 0)
		return HASH_SHA256;
	if (strcasecmp(name, "sha384") == 0 || strcasecmp(name, "sha-384") == 0)
		return HASH_SHA384;
	if (strcasecmp(name, "sha512") == 0 || strcasecmp(name, "sha-512") == 0)
		return HASH_SHA512;
	return HASH_NONE;
}

const char *hash_alg_name(enum hash_alg alg)
{
	switch (alg) {
	case HASH_SHA256:
		return "sha256";
	case HASH_SHA384:
		return "sha384";
	case HASH_SHA512:
		return "sha512";
	default:
		return "none";
	}
}

size_t hash_len(enum hash_alg alg)
{
	switch (alg) {
	case HASH_SHA256:
		return 32;
	case HASH_SHA384:
		return 48;
	case HASH_SHA512:
		return 64;
	default:
		return 0;
	}
}

size_t hash_digest(enum hash_alg alg, const void *buf, size_t len, uint8_t out[HASH_MAX])
{
	const EVP_MD *md = alg == HASH_SHA256   ? EVP_sha256()
	                   : alg == HASH_SHA384 ? EVP_sha384()
	                   : alg == HASH_SHA512 ? EVP_sha512()
	                                        : NULL;
	unsigned int n = 0;

	if (md == NULL || EVP_Digest(buf, len, out, &n, md, NULL) != 1)
		return 0;
	return n;
}
