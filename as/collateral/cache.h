/*
 * collateral cache: the one on-disk store every collateral source shares (Intel PCS bundles,
 * AMD VCEKs, and the sources to come), so a restart or an outage of the service keeps
 * serving what was already fetched.
 *
 * A file is written whole or not at all: the bytes go to a temporary name beside it (unique
 * per process and call) that is then renamed over it, so a reader in this or another replica
 * never sees half a file. Directories below the cache directory are created as needed. A read
 * is capped: a file above the caller's limit is treated as absent, not loaded.
 */
#ifndef CTRUSTEE_COLLATERAL_CACHE_H
#define CTRUSTEE_COLLATERAL_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* dir/name into *buf (malloc'd, NUL-terminated after *len bytes). -1 when the file is
 * absent, unreadable, empty or larger than max bytes. */
int collateral_cache_read(const char *dir, const char *name, size_t max, uint8_t **buf,
                          size_t *len);
/* Replace dir/name with len bytes atomically, creating the directories of name. -1 with why. */
int collateral_cache_write(const char *dir, const char *name, const void *buf, size_t len,
                           struct err *err);

#endif
