/*
 * The few helpers the unit tests share: where the shared testdata lives, reading a fixture
 * whole, a free loopback port and waiting for a child to listen on it, a real redis-server for
 * the kv tests, a clock for timing assertions, and removing a temporary directory.
 *
 * Header-only (static inline) because the Makefile links each tests/unit/test_*.c alone, with no
 * test library beside it. A helper that cannot do its job fails the running cmocka test with a
 * sentence, so callers need no error paths of their own. Include it after <cmocka.h>.
 */
#ifndef CTRUSTEE_TESTLIB_H
#define CTRUSTEE_TESTLIB_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* `$CTRUSTEE_SHARED/testdata/<sub>`; CI keeps ../shared beside the checkout when the runner
 * did not set the variable. */
static inline void tl_testdata_dir(char *out, size_t cap, const char *sub)
{
	const char *shared = getenv("CTRUSTEE_SHARED");
	snprintf(out, cap, "%s/testdata/%s", shared ? shared : "../shared", sub);
}

/* The whole file `dir/rel`, NUL-terminated one byte past *len (so text fixtures are strings);
 * the caller frees it. */
static inline uint8_t *tl_slurp(const char *dir, const char *rel, size_t *len)
{
	char path[1400];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		fail_msg("cannot open %s", path);
	if (fseek(f, 0, SEEK_END) != 0)
		fail_msg("cannot seek in %s", path);
	long n = ftell(f);
	if (n < 0 || fseek(f, 0, SEEK_SET) != 0)
		fail_msg("cannot size %s", path);
	uint8_t *buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = 0;
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* A loopback TCP port nobody listened on a moment ago (the kernel's pick for port 0). */
static inline int tl_free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	assert_true(s >= 0);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &l), 0);
	close(s);
	return ntohs(a.sin_port);
}

/* Waits up to twenty seconds (a Python stand-in starts slowly on a loaded machine) for
 * something to accept on 127.0.0.1:port; fails the test naming
 * `what` otherwise. */
static inline void tl_wait_port(int port, const char *what)
{
	for (int i = 0; i < 400; i++) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET,
		                        .sin_port = htons((uint16_t)port),
		                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		int ok = s >= 0 && connect(s, (struct sockaddr *)&a, sizeof(a)) == 0;
		if (s >= 0)
			close(s);
		if (ok)
			return;
		usleep(50000);
	}
	fail_msg("%s did not start", what);
}

/* Runs argv[0] (found on PATH) as a child with stdout sent to /dev/null. */
static inline pid_t tl_spawn(char *const argv[])
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (freopen("/dev/null", "w", stdout) == NULL)
			_exit(126);
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* Stops a child started by tl_spawn or tl_start_redis and reaps it. */
static inline void tl_stop(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
}

/* A throwaway redis-server on 127.0.0.1:port (no RDB, no AOF), ready to accept. */
static inline pid_t tl_start_redis(int port)
{
	char p[16];
	snprintf(p, sizeof(p), "%d", port);
	char *argv[] = {"redis-server", "--port", p,   "--bind", "127.0.0.1", "--save", "",
	                "--appendonly", "no",     NULL};
	pid_t pid = tl_spawn(argv);
	tl_wait_port(port, "redis-server");
	return pid;
}

/* Monotonic seconds, for "this took less than" assertions. */
static inline double tl_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Monotonic milliseconds. */
static inline long tl_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Removes a directory tree the test made under /tmp; refuses any other path. */
static inline void tl_rm_rf(const char *dir)
{
	char cmd[1100];
	if (strncmp(dir, "/tmp/", 5) != 0 || strchr(dir, '\'') != NULL)
		fail_msg("tl_rm_rf refuses %s", dir);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

#endif
