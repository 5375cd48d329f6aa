/*
 * hash: SHA-2 digests by name (kbs-types HashAlgorithm spellings, case-insensitive):
 * "sha256", "sha384", "sha512" (also "sha-256" etc.). sm3 is not supported.
 */
#ifndef CTRUSTEE_HASH_H
#define CTRUSTEE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_MAX 64

enum hash_alg { HASH_NONE = 0, HASH_SHA256, HASH_SHA384, HASH_SHA512 };

/* Returns HASH_NONE for an unknown name. */
enum hash_alg hash_alg_from_name(const char *name);
const char *hash_alg_name(enum hash_alg alg);
size_t hash_len(enum hash_alg alg);
/* out must hold HASH_MAX bytes; returns the digest length or 0 on failure. */
size_t hash_digest(enum hash_alg alg, const void *buf, size_t len, uint8_t out[HASH_MAX]);

#endif
