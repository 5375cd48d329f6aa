/*
 * hash: SHA-2 by kbs-types name over OpenSSL EVP (see hash.h).
 *
 * The three digests are fetched from the default provider once per process and kept: an
 * implicit EVP_sha256() goes through the provider store and its lock on every call (1.4% of
 * grpc-as's CPU, most of a 1 KB digest's instructions). A fetched EVP_MD is immutable and
 * shared by every thread.
 */
#include <openssl/evp.h>
#include <pthread.h>
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

static EVP_MD *mds[HASH_SHA512 + 1]; /* by enum hash_alg; written once by fetch_mds */
static pthread_once_t mds_once = PTHREAD_ONCE_INIT;

static void fetch_mds(void)
{
	mds[HASH_SHA256] = EVP_MD_fetch(NULL, "SHA2-256", NULL);
	mds[HASH_SHA384] = EVP_MD_fetch(NULL, "SHA2-384", NULL);
	mds[HASH_SHA512] = EVP_MD_fetch(NULL, "SHA2-512", NULL);
}

size_t hash_digest(enum hash_alg alg, const void *buf, size_t len, uint8_t out[HASH_MAX])
{
	unsigned int n = 0;

	if (alg <= HASH_NONE || alg > HASH_SHA512)
		return 0;
	pthread_once(&mds_once, fetch_mds);
	if (mds[alg] == NULL || EVP_Digest(buf, len, out, &n, mds[alg], NULL) != 1)
		return 0;
	return n;
}
