/*
 * common/cpus: the CFS quota read from cgroup v1 and v2 file trees built in a temp dir (nested
 * limits, no limit, containers that see their cgroup as the root, malformed files), and the
 * usable count following a real affinity mask in a child process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cpus.h"
#include "workers.h"

static char root[256];

static void mk(const char *rel)
{
	char p[512], *s;
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	for (s = p + strlen(root) + 1; (s = strchr(s, '/')) != NULL; s++) {
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
	mkdir(p, 0755);
}

static void put(const char *rel, const char *text)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	snprintf(root, sizeof(root), "/tmp/ctrustee-cpus-XXXXXX");
	assert_non_null(mkdtemp(root));
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* v2: the lowest quota over the process's cgroup and its ancestors, rounded up. */
static void test_cpus_v2_nested_quota_lowest_rounded_up(void **state)
{
	mk("kubepods/pod1/ctr");
	put("cpu.max", "max 100000\n");
	put("kubepods/cpu.max", "400000 100000\n");
	put("kubepods/pod1/cpu.max", "150000 100000\n");
	put("kubepods/pod1/ctr/cpu.max", "max 100000\n");
	assert_int_equal(cpus_quota(root, "0::/kubepods/pod1/ctr\n"), 2);
	put("kubepods/pod1/ctr/cpu.max", "50000 100000\n");
	assert_int_equal(cpus_quota(root, "0::/kubepods/pod1/ctr\n"), 1);
	/* a quota of 2.5 CPUs lets three threads run at once */
	put("kubepods/pod1/ctr/cpu.max", "250000 100000\n");
	put("kubepods/pod1/cpu.max", "max 100000\n");
	assert_int_equal(cpus_quota(root, "0::/kubepods/pod1/ctr\n"), 3);
	/* a quota near LLONG_MAX is capped, not overflowed (the fuzz target found the overflow) */
	put("kubepods/pod1/ctr/cpu.max", "9223372036854775807 1\n");
	assert_int_equal(cpus_quota(root, "0::/kubepods/pod1/ctr\n"), 4); /* the parent's 4 */
	put("kubepods/cpu.max", "max 100000\n");
	assert_int_equal(cpus_quota(root, "0::/kubepods/pod1/ctr\n"), 4096);
}

/* No limit anywhere, and a container that sees its own cgroup as the root of the mount: the
 * path named in /proc/self/cgroup is absent, the mount's own cpu.max still counts. */
static void test_cpus_v2_unlimited_and_namespaced_root(void **state)
{
	mk("a/b");
	put("cpu.max", "max 100000\n");
	put("a/cpu.max", "max 100000\n");
	assert_int_equal(cpus_quota(root, "0::/a/b\n"), 0);
	assert_int_equal(cpus_quota(root, "0::/\n"), 0);
	put("cpu.max", "200000 100000\n");
	assert_int_equal(cpus_quota(root, "0::/not/here\n"), 2);
}

/* v1 with the cpu controller named alone or beside cpuacct, quota -1 meaning none. */
static void test_cpus_v1_quota_and_no_limit(void **state)
{
	mk("cpu,cpuacct/docker/abc");
	put("cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
	put("cpu,cpuacct/cpu.cfs_period_us", "100000\n");
	put("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
	put("cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
	const char *self = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n";
	assert_int_equal(cpus_quota(root, self), 0);
	put("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "300000\n");
	assert_int_equal(cpus_quota(root, self), 3);
	/* "cpuacct" alone is not the cpu controller */
	assert_int_equal(cpus_quota(root, "4:cpuacct:/docker/abc\n"), 0);
	mk("cpu");
	put("cpu/cpu.cfs_quota_us", "100000\n");
	put("cpu/cpu.cfs_period_us", "100000\n");
	assert_int_equal(cpus_quota(root, "3:cpu:/\n"), 1);
}

/* Malformed files and lines are no limit, never a crash or a zero count. */
static void test_cpus_malformed_is_no_limit(void **state)
{
	static const char *const bad[] = {
	    "",           "max",        "0 100000\n",      "-5 100000\n",
	    "100000 0\n", "100000\n",   "12x 100000",      "100000 abc\n",
	    "1 2 3\n",    " 100 100\n", "100000  100000\n"};
	mk("g");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put("g/cpu.max", bad[i]);
		assert_int_equal(cpus_quota(root, "0::/g\n"), 0);
	}
	assert_int_equal(cpus_quota(root, ""), 0);
	assert_int_equal(cpus_quota(root, NULL), 0);
	assert_int_equal(cpus_quota(root, "garbage without colons\n::\n0:\n"), 0);
	assert_int_equal(cpus_quota("/nonexistent-cgroup-root", "0::/x\n1:cpu:/y\n"), 0);
}

/* A real affinity mask of one CPU: a child process pinned to it counts one usable CPU and sizes
 * the gRPC workers from it; the parent, unpinned, counts what the machine lets it use. */
static void test_cpus_follow_the_affinity_mask(void **state)
{
	/* forked before this process asks: cpus_usable remembers its first answer */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		cpu_set_t one;
		CPU_ZERO(&one);
		CPU_SET(sched_getcpu() < 0 ? 0 : sched_getcpu(), &one);
		if (sched_setaffinity(0, sizeof(one), &one) != 0)
			_exit(2);
		_exit(cpus_usable() == 1 && workers_from_cpus() == WORKERS_MIN ? 0 : 1);
	}
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	int all = cpus_usable();
	assert_true(all >= 1);
	assert_true(all <= sysconf(_SC_NPROCESSORS_ONLN));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_cpus_v2_nested_quota_lowest_rounded_up, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_cpus_v2_unlimited_and_namespaced_root, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_cpus_v1_quota_and_no_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cpus_malformed_is_no_limit, setup, teardown),
	    cmocka_unit_test(test_cpus_follow_the_affinity_mask),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
