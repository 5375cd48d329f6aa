/*
 * memtune: glibc malloc settings a daemon makes at start, before its threads run.
 */
#ifndef CTRUSTEE_MEMTUNE_H
#define CTRUSTEE_MEMTUNE_H

/* Pins the mmap threshold at 256 KiB, and with `few_arenas` caps the arenas at one per two
 * CPUs (1..4). A setting the operator made (MALLOC_*_ environment, GLIBC_TUNABLES) wins. */
void memtune_daemon(int few_arenas);

#endif
