/*
 * workers: how many gRPC handler threads grpc-as and rvps run. A handler holds one call to its
 * end (an appraisal, or an RVPS round trip inside one), so the count is how many calls run at
 * once; threads beyond what the CPUs can run only add switches and idle stacks. Sized from the
 * usable CPUs (common/cpus.h: the affinity mask and a cgroup CPU quota) unless the config's
 * `worker_threads` or the `--worker-threads` flag says otherwise.
 */
#ifndef CTRUSTEE_WORKERS_H
#define CTRUSTEE_WORKERS_H

#include <jansson.h>

#include "err.h"

/* Handler threads per usable CPU and the range the derived count is kept in. */
#define WORKERS_PER_CPU 4
#define WORKERS_MIN 4
#define WORKERS_MAX 256
/* The most a config or flag may ask for. */
#define WORKERS_LIMIT 1024

/* WORKERS_PER_CPU per usable CPU (cpus_usable), within WORKERS_MIN..WORKERS_MAX. */
int workers_from_cpus(void);

/* The handler count: `flag` (the --worker-threads argument; NULL = not given) over the config's
 * top-level `worker_threads` (0 or absent = from the CPUs). -1 with a sentence naming the key
 * or flag when either is not an integer 0..WORKERS_LIMIT. */
int workers_resolve(const json_t *config, const char *flag, int *out, struct err *err);

#endif
