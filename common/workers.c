/*
 * workers: the handler thread count of the gRPC daemons (workers.h). The flag beats the
 * config, the config beats the CPUs; 0 means "from the CPUs" in both, as the kbs's
 * [http_server] worker_threads does.
 */
#include "workers.h"

#include "cpus.h"

#include <errno.h>
#include <stdlib.h>

int workers_from_cpus(void)
{
	long n = cpus_usable();
	n *= WORKERS_PER_CPU;
	return n < WORKERS_MIN ? WORKERS_MIN : n > WORKERS_MAX ? WORKERS_MAX : (int)n;
}

static int parse_flag(const char *s, long *out)
{
	char *end;
	errno = 0;
	*out = strtol(s, &end, 10);
	return errno == 0 && end != s && *end == '\0' ? 0 : -1;
}

int workers_resolve(const json_t *config, const char *flag, int *out, struct err *err)
{
	const json_t *v = json_is_object(config) ? json_object_get(config, "worker_threads") : NULL;
	long n = 0;

	if (flag != NULL) {
		if (parse_flag(flag, &n) < 0 || n < 0 || n > WORKERS_LIMIT)
			return err_set(
			    err, "--worker-threads must be an integer 0 (from the CPUs) to %d",
			    WORKERS_LIMIT);
	} else if (v != NULL && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > WORKERS_LIMIT)
			return err_set(err,
			               "worker_threads must be an integer 0 (from the CPUs) to %d",
			               WORKERS_LIMIT);
		n = (long)json_integer_value(v);
	}
	*out = n > 0 ? (int)n : workers_from_cpus();
	return 0;
}
