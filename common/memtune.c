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
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "memtune.h"

static int operator_set(const char *env, const char *tunable)
{
	const char *t = getenv("GLIBC_TUNABLES");
	return getenv(env) != NULL || (t != NULL && strstr(t, tunable) != NULL);
}

void memtune_daemon(int few_arenas)
{
#ifdef __GLIBC__
	if (!operator_set("MALLOC_MMAP_THRESHOLD_", "mmap_threshold"))
		mallopt(M_MMAP_THRESHOLD, 256 << 10);
	if (few_arenas && !operator_set("MALLOC_ARENA_MAX", "arena_max")) {
		long n = sysconf(_SC_NPROCESSORS_ONLN) / 2;
		mallopt(M_ARENA_MAX, n < 1 ? 1 : n > 4 ? 4 : (int)n);
	}
#else
	(void)few_arenas;
#endif
}
