/*
 * bench_time: the clock and the median the micro-benchmarks report with.
 */
#ifndef CTRUSTEE_BENCH_TIME_H
#define CTRUSTEE_BENCH_TIME_H

#include <stdlib.h>
#include <time.h>

static inline double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static inline int bench_cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Sorts v. */
static inline double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), bench_cmp_d);
	return v[n / 2];
}

#endif
