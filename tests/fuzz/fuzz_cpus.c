/* Fuzz common/cpus's readers: the input is both a /proc/self/cgroup text (against a cgroup root
 * that does not exist, so only the line parser runs) and the content of a v2 cpu.max and a v1
 * cpu.cfs_quota_us in a temp tree made once, read through a fixed cgroup line. A quota is
 * never negative and never more than the 4096 the reader caps it at. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cpus.h"

static char root[64];

static void put(const char *rel, const uint8_t *data, size_t size)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	FILE *f = fopen(p, "w");
	if (!f)
		abort();
	if (size)
		fwrite(data, 1, size, f);
	fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!root[0]) {
		char p[128];
		snprintf(root, sizeof(root), "/tmp/ctrustee-fuzz-cpus-XXXXXX");
		if (!mkdtemp(root))
			abort();
		snprintf(p, sizeof(p), "%s/g", root);
		mkdir(p, 0755);
		snprintf(p, sizeof(p), "%s/cpu", root);
		mkdir(p, 0755);
		put("cpu/cpu.cfs_period_us", (const uint8_t *)"100000\n", 7);
	}
	char *self = malloc(size + 1);
	if (!self)
		return 0;
	memcpy(self, data, size);
	self[size] = '\0';
	int q = cpus_quota("/nonexistent-fuzz-cgroup", self);
	free(self);
	if (q != 0)
		abort();
	put("g/cpu.max", data, size);
	put("cpu/cpu.cfs_quota_us", data, size);
	q = cpus_quota(root, "0::/g\n3:cpu:/\n");
	if (q < 0 || q > 4096)
		abort();
	return 0;
}
