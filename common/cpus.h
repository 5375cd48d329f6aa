/*
 * cpus: how many CPUs this process may keep busy, for sizing its threads and malloc arenas.
 *
 * sysconf(_SC_NPROCESSORS_ONLN) counts the machine's CPUs. A container usually gets fewer: an
 * affinity mask (a cpuset, taskset) or a CFS quota (a Kubernetes CPU limit: cgroup v2 `cpu.max`,
 * v1 `cpu.cfs_quota_us` over `cpu.cfs_period_us`). A daemon with a one-CPU limit on a 64-CPU node
 * that sized itself from the node ran 64 times the threads its quota lets run, and every one
 * of them only waited to be throttled. The count here is the affinity mask's, lowered to the
 * quota rounded up, and at least 1.
 */
#ifndef CTRUSTEE_CPUS_H
#define CTRUSTEE_CPUS_H

/* The CPUs this process may use: the affinity mask's count, lowered to the CFS quota of its
 * cgroup or any ancestor (rounded up), at least 1. Read once and remembered. */
int cpus_usable(void);

/* The CFS quota in CPUs, rounded up, that the cgroup files under `sysfs` (the cgroup mount,
 * "/sys/fs/cgroup") set for a process whose /proc/self/cgroup reads `self_cgroup`: the lowest
 * over the process's cgroup and its ancestors, v2 (`sysfs`/ or `sysfs`/unified/) and v1
 * (`sysfs`/cpu/, `sysfs`/cpu,cpuacct/). 0 when none is set or nothing can be read; a
 * malformed file counts as no limit. */
int cpus_quota(const char *sysfs, const char *self_cgroup);

#endif
