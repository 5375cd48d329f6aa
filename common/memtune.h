/*
 * memtune: the malloc settings a daemon makes at start, before its threads run, and the hand-back
 * of free memory, for glibc's malloc or jemalloc, whichever the process runs on.
 */
#ifndef CTRUSTEE_MEMTUNE_H
#define CTRUSTEE_MEMTUNE_H

/* Pins the mmap threshold at 256 KiB, and with `few_arenas` caps the arenas at one per two
 * CPUs (1..4). A setting the operator made (MALLOC_*_ environment, GLIBC_TUNABLES) wins. */
void memtune_daemon(int few_arenas);

/* Hands free memory back to the kernel (glibc: malloc_trim; jemalloc: every arena's unused dirty
 * pages purged) and says how many milliseconds that took. Any thread. */
double memtune_release(void);

/* "jemalloc" or "glibc": the allocator this process runs on, for the start-up log. */
const char *memtune_allocator(void);

#endif
