/*
 * memtune: glibc malloc settings for the daemons.
 *
 * The mmap threshold. glibc serves a block of 128 KiB or more with its own mapping, but raises
 * that threshold to the size of every such block freed (up to 32 MiB), so after one large
 * request the next ones come from a thread's heap, and a worker thread's heap does not give
 * memory back (malloc_trim cannot shrink it). A policy evaluation refused at its 32 MiB budget
 * left grpc-as 50 MB larger that way (tests/integration/test_policy_limits.py). A fixed
 * threshold keeps large blocks mapped, so their memory leaves with them; requests on the hot
 * path allocate far less than 256 KiB at a time.
 *
 * Arenas. glibc gives a process up to 8 malloc arenas per CPU, and the kbs's request workers
 * spread over all of them. Sessions live a few minutes among short-lived request garbage, so
 * every arena fragments on its own and the resident set kept creeping for many minutes of a
 * steady load. One arena per two CPUs (1..4) holds the same data in fewer, fuller heaps; small
 * blocks come from the per-thread caches without the arena lock anyway. Under make soak on 2
 * CPUs (one arena) the kbs settled at +1.3% after warm-up, against +4.6..+6.5% with two
 * arenas, for a handshake throughput within this machine's noise (0..10% lower).
 *
 * jemalloc. The kbs links it (the Makefile's MALLOC_BINS), and an operator may preload it into
 * any daemon; it is found at run time by its `mallctl`, so this one file serves both. Under
 * jemalloc the glibc settings above have nothing to act on and are not made; jemalloc's own
 * (MALLOC_CONF) are its defaults, and memtune_release() purges its unused dirty pages where
 * glibc's malloc_trim would hand back free heap pages.
 */
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "memtune.h"

#include "cpus.h"

typedef int (*mallctl_fn)(const char *name, void *old, size_t *oldlen, void *new_value,
                          size_t newlen);
static mallctl_fn je_mallctl;
static pthread_once_t je_once = PTHREAD_ONCE_INIT;

static void je_find(void)
{
	je_mallctl = (mallctl_fn)dlsym(RTLD_DEFAULT, "mallctl");
}

const char *memtune_allocator(void)
{
	pthread_once(&je_once, je_find);
	return je_mallctl ? "jemalloc" : "glibc";
}

static int operator_set(const char *env, const char *tunable)
{
	const char *t = getenv("GLIBC_TUNABLES");
	return getenv(env) != NULL || (t != NULL && strstr(t, tunable) != NULL);
}

void memtune_daemon(int few_arenas)
{
	pthread_once(&je_once, je_find);
	if (je_mallctl)
		return;
#ifdef __GLIBC__
	if (!operator_set("MALLOC_MMAP_THRESHOLD_", "mmap_threshold"))
		mallopt(M_MMAP_THRESHOLD, 256 << 10);
	if (few_arenas && !operator_set("MALLOC_ARENA_MAX", "arena_max")) {
		long n = cpus_usable() / 2;
		mallopt(M_ARENA_MAX, n < 1 ? 1 : n > 4 ? 4 : (int)n);
	}
#else
	(void)few_arenas;
#endif
}

double memtune_release(void)
{
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	pthread_once(&je_once, je_find);
	if (je_mallctl) {
		/* "arena.<MALLCTL_ARENAS_ALL>.purge": 4096 names every arena */
		(void)je_mallctl("arena.4096.purge", NULL, NULL, NULL, 0);
	} else {
#ifdef __GLIBC__
		malloc_trim(0);
#endif
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
}
