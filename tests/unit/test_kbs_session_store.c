/*
 * Sessions in a shared store, seen by two replicas (two session tables on one kv, each with
 * its own copies): the Attested record lives in the nonce claim, written set-if-absent, so
 * a nonce is consumed once across replicas, every replica reads the attested state, and a
 * session whose record is gone is gone whatever its claim holds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "kbs/kbs.h"
#include "kv/kv.h"

struct two {
	struct kv *kv;
	struct kbs_sessions *a, *b; /* two replicas */
};

static int setup(void **state)
{
	struct err e = {0};
	struct two *t = calloc(1, sizeof(*t));
	t->kv = kv_open(NULL, &e);
	t->a = kbs_sessions_new_kv(t->kv, &e);
	t->b = kbs_sessions_new_kv(t->kv, &e);
	assert_non_null(t->a);
	assert_non_null(t->b);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct two *t = *state;
	kbs_sessions_free(t->a);
	kbs_sessions_free(t->b);
	kv_close(t->kv);
	free(t);
	return 0;
}

static void new_session(struct kbs_sessions *s, char id[33])
{
	struct err e = {0};
	assert_int_equal(
	    kbs_sessions_create(s, "sample", "n0nce", NULL, (long long)time(NULL) + 300, id, &e),
	    0);
}

/* state of id as replica s sees it: 0 absent, else the kbs_session_state */
static int state_of(struct kbs_sessions *s, const char *id)
{
	struct kbs_session ss;
	if (kbs_sessions_get(s, id, &ss) != 0)
		return 0;
	int st = (int)ss.state;
	kbs_session_clear(&ss);
	return st;
}

static void test_attest_on_one_replica_is_seen_by_the_other(void **state)
{
	struct two *t = *state;
	char id[33];
	new_session(t->a, id);
	assert_int_equal(state_of(t->b, id), KBS_SESSION_AUTHED);
	assert_int_equal(kbs_sessions_set_attested(t->a, id, "tok.en.sig"), 0);
	struct kbs_session ss;
	assert_int_equal(kbs_sessions_get(t->b, id, &ss), 0);
	assert_int_equal(ss.state, KBS_SESSION_ATTESTED);
	assert_string_equal(ss.token, "tok.en.sig");
	assert_string_equal(ss.nonce, "n0nce");
	kbs_session_clear(&ss);
}

/* b read the session while Authed (its copy says so); a attests; b's /attest is refused by the
 * claim, not answered from the stale copy */
static void test_nonce_is_single_use_across_replicas(void **state)
{
	struct two *t = *state;
	char id[33];
	new_session(t->a, id);
	assert_int_equal(state_of(t->b, id), KBS_SESSION_AUTHED);
	assert_int_equal(kbs_sessions_set_attested(t->a, id, "first"), 0);
	assert_int_equal(kbs_sessions_set_attested(t->b, id, "second"), 2);
	assert_int_equal(kbs_sessions_set_attested(t->a, id, "third"), 2);
	struct kbs_session ss;
	assert_int_equal(kbs_sessions_get(t->b, id, &ss), 0);
	assert_string_equal(ss.token, "first");
	kbs_session_clear(&ss);
}

static void test_claim_holds_the_attested_record(void **state)
{
	struct two *t = *state;
	struct err e = {0};
	char id[33];
	uint8_t *v = NULL;
	size_t n = 0;
	new_session(t->a, id);
	assert_int_equal(kbs_sessions_set_attested(t->a, id, "tok"), 0);
	assert_int_equal(kv_get(t->kv, "kbs_protocol_nonce", id, &v, &n, &e), 0);
	json_t *o = json_loadb((const char *)v, n, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(o, "state")), "Attested");
	assert_string_equal(json_string_value(json_object_get(o, "token")), "tok");
	json_decref(o);
	free(v);
	assert_int_equal(kv_get(t->kv, KV_NS_SESSION, id, &v, &n, &e), 0);
	o = json_loadb((const char *)v, n, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(o, "state")), "Authed");
	json_decref(o);
	free(v);
}

/* the session record deleted: no replica without a copy serves the session, though its claim
 * still holds an Attested record */
static void test_deleted_session_is_gone_despite_its_claim(void **state)
{
	struct two *t = *state;
	struct err e = {0};
	char id[33];
	new_session(t->a, id);
	assert_int_equal(kbs_sessions_set_attested(t->a, id, "tok"), 0);
	assert_int_equal(kv_delete(t->kv, KV_NS_SESSION, id, &e), 0);
	assert_int_equal(state_of(t->b, id), 0);
}

/* the layout of earlier versions: the Attested record under the session key, "1" as the
 * claim; still read as attested, and still consumed */
static void test_earlier_layout_still_reads(void **state)
{
	struct two *t = *state;
	struct err e = {0};
	char id[33] = "0123456789abcdef0123456789abcdef";
	char rec[256];
	snprintf(rec, sizeof(rec),
	         "{\"state\":\"Attested\",\"tee\":\"sample\",\"nonce\":\"n\",\"token\":\"old\","
	         "\"expires\":%lld}",
	         (long long)time(NULL) + 300);
	assert_int_equal(kv_set(t->kv, KV_NS_SESSION, id, rec, strlen(rec), 1, &e), 0);
	assert_int_equal(kv_set(t->kv, "kbs_protocol_nonce", id, "1", 1, 1, &e), 0);
	struct kbs_session ss;
	assert_int_equal(kbs_sessions_get(t->b, id, &ss), 0);
	assert_int_equal(ss.state, KBS_SESSION_ATTESTED);
	assert_string_equal(ss.token, "old");
	kbs_session_clear(&ss);
	assert_int_equal(kbs_sessions_set_attested(t->a, id, "new"), 2);
}

/* a claim record whose deadline passed does not make the session attested longer */
static void test_expired_claim_record_is_not_served(void **state)
{
	struct two *t = *state;
	struct err e = {0};
	char id[33];
	char rec[256];
	new_session(t->a, id);
	snprintf(rec, sizeof(rec),
	         "{\"state\":\"Attested\",\"tee\":\"sample\",\"nonce\":\"n0nce\",\"token\":\"t\","
	         "\"expires\":%lld}",
	         (long long)time(NULL) - 5);
	assert_int_equal(kv_set(t->kv, "kbs_protocol_nonce", id, rec, strlen(rec), 1, &e), 0);
	assert_int_equal(state_of(t->b, id), KBS_SESSION_AUTHED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_attest_on_one_replica_is_seen_by_the_other, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_nonce_is_single_use_across_replicas, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_claim_holds_the_attested_record, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deleted_session_is_gone_despite_its_claim, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_earlier_layout_still_reads, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expired_claim_record_is_not_served, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
