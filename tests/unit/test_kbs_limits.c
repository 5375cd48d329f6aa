/*
 * test_kbs_limits: the /auth + /attest concurrency limiter (kbs/limits.c): the global and
 * per-address limits, and the address table staying exact through many enters and leaves in
 * shuffled order (its deletion moves entries back; a wrong move would lose or double a count).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "kbs/kbs.h"

static void test_global_limit(void **state)
{
	struct kbs_limiter *l = kbs_limiter_new(2, 0);
	assert_int_equal(kbs_limiter_enter(l, "10.0.0.1"), 0);
	assert_int_equal(kbs_limiter_enter(l, "10.0.0.2"), 0);
	assert_int_equal(kbs_limiter_enter(l, "10.0.0.3"), 1);
	kbs_limiter_leave(l, "10.0.0.1");
	assert_int_equal(kbs_limiter_enter(l, "10.0.0.3"), 0);
	assert_int_equal(kbs_limiter_inflight(l), 2);
	kbs_limiter_free(l);
}

static void test_per_address_limit(void **state)
{
	struct kbs_limiter *l = kbs_limiter_new(0, 2);
	assert_int_equal(kbs_limiter_enter(l, "::1"), 0);
	assert_int_equal(kbs_limiter_enter(l, "::1"), 0);
	assert_int_equal(kbs_limiter_enter(l, "::1"), 2);
	assert_int_equal(kbs_limiter_enter(l, "127.0.0.1"), 0);
	kbs_limiter_leave(l, "::1");
	assert_int_equal(kbs_limiter_enter(l, "::1"), 0);
	assert_int_equal(kbs_limiter_inflight(l), 3);
	kbs_limiter_free(l);
}

static void test_address_table_stays_exact(void **state)
{
	enum { N = 500, PER = 3 };
	struct kbs_limiter *l = kbs_limiter_new(0, PER);
	char addr[N][32];
	int held[N] = {0};
	for (int i = 0; i < N; i++)
		snprintf(addr[i], sizeof(addr[i]), "10.%d.%d.%d", i % 7, i % 251, i);
	srand(7);
	for (int round = 0; round < 20000; round++) {
		int i = rand() % N;
		if (rand() % 2) {
			int rc = kbs_limiter_enter(l, addr[i]);
			assert_int_equal(rc, held[i] < PER ? 0 : 2);
			if (rc == 0)
				held[i]++;
		} else if (held[i] > 0) {
			kbs_limiter_leave(l, addr[i]);
			held[i]--;
		}
	}
	long long total = 0;
	for (int i = 0; i < N; i++) {
		total += held[i];
		/* each address admits exactly PER - held more */
		for (int k = held[i]; k < PER; k++)
			assert_int_equal(kbs_limiter_enter(l, addr[i]), 0);
		assert_int_equal(kbs_limiter_enter(l, addr[i]), 2);
		held[i] = PER;
	}
	assert_int_equal(kbs_limiter_inflight(l), (long long)N * PER);
	for (int i = 0; i < N; i++)
		for (int k = 0; k < PER; k++)
			kbs_limiter_leave(l, addr[i]);
	assert_int_equal(kbs_limiter_inflight(l), 0);
	(void)total;
	kbs_limiter_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_global_limit),
	    cmocka_unit_test(test_per_address_limit),
	    cmocka_unit_test(test_address_table_stays_exact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
