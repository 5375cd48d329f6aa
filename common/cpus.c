/*
 * cpus: the CPUs a process may keep busy (cpus.h): its affinity mask, lowered to the CFS quota
 * of its cgroup. The cgroup files are a few bytes each and read once, at start.
 */
#include "cpus.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PATH_CAP 4096

/* Reads the first line of a small file into buf: 0, or -1 when it cannot be read. */
static int read_line(const char *path, char *buf, size_t n)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	char *got = fgets(buf, (int)n, f);
	fclose(f);
	return got ? 0 : -1;
}

/* A positive decimal integer starting at s (digits only: no sign or space), with *end after
 * it: 0 otherwise. */
static long long positive(const char *s, const char **end)
{
	char *e;
	if (*s < '0' || *s > '9')
		return 0;
	long long v = strtoll(s, &e, 10);
	if (e == s || v <= 0)
		return 0;
	*end = e;
	return v;
}

static int ceil_cpus(long long quota, long long period)
{
	if (quota <= 0 || period <= 0)
		return 0;
	long long n = quota / period + (quota % period != 0); /* no overflow near LLONG_MAX */
	return n > 4096 ? 4096 : (int)n;
}

/* cgroup v2 cpu.max: "max PERIOD" (no limit) or "QUOTA PERIOD". */
static int v2_limit(const char *dir)
{
	char path[PATH_CAP], line[128];
	const char *e;
	if (snprintf(path, sizeof(path), "%s/cpu.max", dir) >= (int)sizeof(path) ||
	    read_line(path, line, sizeof(line)) < 0)
		return 0;
	long long quota = positive(line, &e);
	if (!quota || *e != ' ')
		return 0;
	long long period = positive(e + 1, &e);
	if (!period || (*e != '\n' && *e != '\0'))
		return 0;
	return ceil_cpus(quota, period);
}

/* cgroup v1: cpu.cfs_quota_us (-1 = no limit) over cpu.cfs_period_us. */
static int v1_limit(const char *dir)
{
	char path[PATH_CAP], line[64];
	const char *e;
	if (snprintf(path, sizeof(path), "%s/cpu.cfs_quota_us", dir) >= (int)sizeof(path) ||
	    read_line(path, line, sizeof(line)) < 0)
		return 0;
	long long quota = positive(line, &e);
	if (!quota || (*e != '\n' && *e != '\0'))
		return 0;
	if (snprintf(path, sizeof(path), "%s/cpu.cfs_period_us", dir) >= (int)sizeof(path) ||
	    read_line(path, line, sizeof(line)) < 0)
		return 0;
	long long period = positive(line, &e);
	if (!period || (*e != '\n' && *e != '\0'))
		return 0;
	return ceil_cpus(quota, period);
}

/* The lowest limit over base/path and each ancestor up to base itself. A container's own
 * cgroup is often mounted as the root of its view, so a path that does not exist below base
 * still has base itself checked. */
static int walk(const char *base, const char *cg, int (*limit)(const char *dir))
{
	char dir[PATH_CAP];
	size_t bl = strlen(base);
	if (snprintf(dir, sizeof(dir), "%s%s", base, cg) >= (int)sizeof(dir))
		return 0;
	int best = 0;
	for (;;) {
		size_t l = strlen(dir);
		while (l > bl && dir[l - 1] == '/')
			dir[--l] = '\0';
		int n = limit(dir);
		if (n > 0 && (best == 0 || n < best))
			best = n;
		if (l <= bl)
			break;
		char *slash = strrchr(dir + bl, '/');
		if (!slash)
			dir[bl] = '\0';
		else
			*slash = '\0';
	}
	return best;
}

static int lower(int a, int b)
{
	return a == 0 ? b : b == 0 ? a : a < b ? a : b;
}

/* Is `name` one of the comma-separated controllers in [s, s+n)? */
static int has_controller(const char *s, size_t n, const char *name)
{
	size_t nl = strlen(name);
	const char *end = s + n;
	while (s < end) {
		const char *c = memchr(s, ',', (size_t)(end - s));
		size_t l = c ? (size_t)(c - s) : (size_t)(end - s);
		if (l == nl && !memcmp(s, name, nl))
			return 1;
		s += l + 1;
	}
	return 0;
}

int cpus_quota(const char *sysfs, const char *self_cgroup)
{
	char base[PATH_CAP], cg[PATH_CAP];
	int best = 0;
	const char *p = self_cgroup ? self_cgroup : "";
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		const char *c1 = memchr(p, ':', len);
		const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - p)) : NULL;
		if (c2 && c2[1] == '/' && (size_t)(p + len - (c2 + 1)) < sizeof(cg)) {
			size_t cl = (size_t)(p + len - (c2 + 1));
			memcpy(cg, c2 + 1, cl);
			cg[cl] = '\0';
			if (c1 - p == 1 && p[0] == '0' && c2 == c1 + 1) {
				/* v2: the unified hierarchy, mounted at sysfs or sysfs/unified */
				for (int i = 0; i < 2; i++) {
					snprintf(base, sizeof(base), "%s%s", sysfs,
					         i ? "/unified" : "");
					best = lower(best, walk(base, cg, v2_limit));
				}
			} else if (has_controller(c1 + 1, (size_t)(c2 - c1 - 1), "cpu")) {
				static const char *const mounts[] = {"/cpu", "/cpu,cpuacct"};
				for (size_t i = 0; i < 2; i++) {
					snprintf(base, sizeof(base), "%s%s", sysfs, mounts[i]);
					best = lower(best, walk(base, cg, v1_limit));
				}
			}
		}
		p += len + (nl ? 1 : 0);
	}
	return best;
}

static int usable;
static pthread_once_t usable_once = PTHREAD_ONCE_INIT;

static void find_usable(void)
{
	cpu_set_t set;
	long n = 0;
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = CPU_COUNT(&set);
	if (n < 1)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	char self[4096] = "";
	FILE *f = fopen("/proc/self/cgroup", "re");
	if (f) {
		size_t got = fread(self, 1, sizeof(self) - 1, f);
		self[got] = '\0';
		fclose(f);
	}
	int q = cpus_quota("/sys/fs/cgroup", self);
	if (q > 0 && q < n)
		n = q;
	usable = n < 1 ? 1 : n > 4096 ? 4096 : (int)n;
}

int cpus_usable(void)
{
	pthread_once(&usable_once, find_usable);
	return usable;
}
