/*
 * collateral cache: whole-file reads with a cap and atomic whole-file writes under a cache
 * directory (see cache.h). Plain stdio: entries are a few KB, written once per fetch.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "as/collateral/cache.h"

int collateral_cache_read(const char *dir, const char *name, size_t max, uint8_t **buf, size_t *len)
{
	char path[2048];
	long n;
	*buf = NULL;
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return -1;
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return -1;
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) <= 0 || (size_t)n > max ||
	    fseek(f, 0, SEEK_SET) != 0) {
		fclose(f);
		return -1;
	}
	*buf = malloc((size_t)n + 1);
	if (*buf == NULL || fread(*buf, 1, (size_t)n, f) != (size_t)n) {
		free(*buf);
		*buf = NULL;
		fclose(f);
		return -1;
	}
	fclose(f);
	(*buf)[n] = 0;
	*len = (size_t)n;
	return 0;
}

/* mkdir -p of every directory in path up to its last '/'. */
static void make_parents(const char *path)
{
	char tmp[2048];
	snprintf(tmp, sizeof(tmp), "%s", path);
	char *last = strrchr(tmp, '/');
	if (last == NULL)
		return;
	*last = '\0';
	for (char *p = tmp + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			mkdir(tmp, 0755);
			*p = '/';
		}
	}
	mkdir(tmp, 0755);
}

int collateral_cache_write(const char *dir, const char *name, const void *buf, size_t len,
                           struct err *err)
{
	static atomic_ulong seq;
	char path[2048], tmp[2100];
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return err_set(err, "cache path %s/%s is too long", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d.%lu", path, (int)getpid(),
	         (unsigned long)atomic_fetch_add(&seq, 1));
	make_parents(path);
	FILE *f = fopen(tmp, "wb");
	if (f == NULL)
		return err_set(err, "cannot write the cache file %s: %s", path, strerror(errno));
	int ok = fwrite(buf, 1, len, f) == len;
	ok = (fclose(f) == 0) && ok;
	if (ok && rename(tmp, path) == 0)
		return 0;
	int e = errno;
	unlink(tmp);
	return err_set(err, "cannot write the cache file %s: %s", path, strerror(e));
}
