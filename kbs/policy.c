/*
 * policy: the KBS resource policy (kbs-protocol.md §6). The Rego text lives in the `kbs`
 * namespace under `resource-policy.rego` so replicas share it; it is re-read on every
 * evaluation (one storage read) but compiled only when its bytes change, keyed by SHA-256.
 * The rule evaluated is data.policy.allow with input = the verified token claims and
 * data = {plugin, resource-path, query}; anything but JSON true is a denial, and the engine's
 * explanation of the failing rule bodies is handed back for the problem detail and the log.
 *
 * An event loop evaluates too (kbs_policy_eval_nowait, for a resource read answered without
 * the worker pool): it takes only a text the store gives without a round trip and that is
 * already compiled, and evaluates it under budgets of its own, each the smaller of the
 * configured one and LOOP_*, so one evaluation holds a loop for at most LOOP_TIMEOUT_US and
 * LOOP_MAX_STEPS steps. A policy that needs more is evaluated again on a worker under the
 * configured budgets, so the answer is the worker's either way.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "kbs.h"
#include "kv/kv.h"
#include "log.h"
#include "rego/rego.h"

#define POLICY_KEY "resource-policy.rego"

/* An event loop's evaluation budgets: the default policy takes under 20 steps (an allow-all
 * one under 5: found with [policy_engine] max_steps), so these leave a policy thousands of
 * times its size while another connection of the loop waits 5 ms at worst. */
#define LOOP_MAX_STEPS 50000
#define LOOP_MAX_MEMORY (4u << 20)
#define LOOP_TIMEOUT_US 5000

/* Written at start-up unless a policy is already stored: resources for every TEE except the
 * `sample` test TEE, whose evidence anyone can forge. */
const char kbs_default_policy[] =
    "package policy\n"
    "\n"
    "import rego.v1\n"
    "\n"
    "# Release resources to attested guests, but never to the sample (test) TEE.\n"
    "default allow := false\n"
    "\n"
    "allow if {\n"
    "\tdata.plugin == \"resource\"\n"
    "\tnot input.submods.cpu0[\"ear.veraison.annotated-evidence\"].sample\n"
    "}\n";

struct compiled {
	uint8_t digest[32];
	struct rego_policy *p;
	int refs;
};

struct kbs_policy {
	struct kv *kv; /* borrowed */
	pthread_mutex_t mu;
	struct compiled *cur;
	struct rego_limits limits; /* set once before serving; read-only after */
};

static void compiled_put(struct kbs_policy *kp, struct compiled *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&kp->mu);
	int last = --c->refs == 0;
	pthread_mutex_unlock(&kp->mu);
	if (last) {
		rego_policy_free(c->p);
		free(c);
	}
}

struct kbs_policy *kbs_policy_new(struct kv *kv, struct err *err)
{
	struct kbs_policy *p = calloc(1, sizeof(*p));
	if (!p) {
		err_set(err, "out of memory");
		return NULL;
	}
	p->kv = kv;
	pthread_mutex_init(&p->mu, NULL);
	return p;
}

void kbs_policy_set_limits(struct kbs_policy *p, const struct rego_limits *l)
{
	p->limits = *l;
}

void kbs_policy_free(struct kbs_policy *p)
{
	if (!p)
		return;
	compiled_put(p, p->cur);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

static struct rego_policy *compile(const char *text, size_t len, struct err *err)
{
	struct rego_module m = {.name = "resource-policy.rego", .text = text, .len = len};
	return rego_compile(&m, 1, NULL, 0, err);
}

int kbs_policy_init_default(struct kbs_policy *p, struct err *err)
{
	int rc = kv_set(p->kv, KV_NS_KBS, POLICY_KEY, kbs_default_policy,
	                strlen(kbs_default_policy), 0, err);
	return rc < 0 ? -1 : 0;
}

/* Makes rp (the compiled text of digest d) the current policy, with refs references (the
 * cache's and the caller's, or the cache's alone); NULL, rp freed, when out of memory. */
static struct compiled *install(struct kbs_policy *p, const uint8_t d[HASH_MAX],
                                struct rego_policy *rp, int refs)
{
	struct compiled *c = calloc(1, sizeof(*c));
	if (!c) {
		rego_policy_free(rp);
		return NULL;
	}
	memcpy(c->digest, d, 32);
	c->p = rp;
	c->refs = refs;
	pthread_mutex_lock(&p->mu);
	struct compiled *old = p->cur;
	p->cur = c;
	pthread_mutex_unlock(&p->mu);
	compiled_put(p, old);
	return c;
}

/* The policy compiled to validate it becomes the current one once stored, so the next
 * evaluation (an event loop's too) finds it compiled; cur stays a cache keyed by the text's
 * digest, so a concurrent set by another thread or replica only costs a compile. */
int kbs_policy_set(struct kbs_policy *p, const char *rego, size_t len, struct err *err)
{
	struct rego_policy *rp = compile(rego, len, err);
	if (!rp)
		return -1;
	if (kv_set(p->kv, KV_NS_KBS, POLICY_KEY, rego, len, 1, err) < 0) {
		rego_policy_free(rp);
		return -1;
	}
	uint8_t d[HASH_MAX];
	hash_digest(HASH_SHA256, rego, len, d);
	install(p, d, rp, 1); /* when out of memory, the next evaluation compiles it */
	return 0;
}

/* The compiled form of the stored text, with a reference held for the caller, in *out: 0, or
 * -1 with err. nowait (an event loop): the text is only peeked at (kv_peek), and
 * KBS_POLICY_UNKNOWN is returned when the store would have to be asked or the text is not the
 * one compiled last, compiling being a worker's job. */
static int get_compiled(struct kbs_policy *p, bool nowait, struct compiled **out, struct err *err)
{
	uint8_t *text = NULL;
	size_t len = 0;
	*out = NULL;
	int rc = nowait ? kv_peek(p->kv, KV_NS_KBS, POLICY_KEY, &text, &len, err)
	                : kv_get(p->kv, KV_NS_KBS, POLICY_KEY, &text, &len, err);
	if (rc == KV_PEEK_UNKNOWN && nowait)
		return KBS_POLICY_UNKNOWN;
	if (rc < 0) {
		/* the cause names storage hosts: log it, tell the client only what happened */
		char cause[ERR_MSG_MAX];
		log_warn("kbs: resource policy: storage: %s", err->msg);
		kbs_scrub_hosts(err->msg, cause, sizeof(cause));
		return err_set(err, "resource policy storage unavailable: %.900s; try again",
		               cause);
	}
	if (rc == 1)
		return err_set(err, "no resource policy is stored");
	uint8_t d[HASH_MAX];
	hash_digest(HASH_SHA256, text, len, d);
	pthread_mutex_lock(&p->mu);
	struct compiled *c = p->cur;
	if (c && memcmp(c->digest, d, 32) == 0) {
		c->refs++;
		pthread_mutex_unlock(&p->mu);
		free(text);
		*out = c;
		return 0;
	}
	pthread_mutex_unlock(&p->mu);
	if (nowait) {
		free(text);
		return KBS_POLICY_UNKNOWN;
	}
	struct rego_policy *rp = compile((const char *)text, len, err);
	free(text);
	if (!rp)
		return -1;
	if ((*out = install(p, d, rp, 2)) == NULL) /* the cache's and the caller's */
		return err_set(err, "out of memory");
	return 0;
}

/* The budgets of an evaluation that must not wait: each the configured one or LOOP_*, the
 * smaller. *final: 1 when none is smaller than configured, so running out of them is the
 * answer and not a reason to evaluate again on a worker. */
static void loop_limits(const struct rego_limits *cfg, struct rego_eval_opts *o, int *final)
{
	uint64_t steps = cfg->max_steps ? cfg->max_steps : REGO_DEFAULT_MAX_STEPS;
	uint64_t mem = cfg->max_memory ? cfg->max_memory : REGO_DEFAULT_MAX_MEMORY;
	uint64_t us = cfg->timeout_us ? cfg->timeout_us : REGO_DEFAULT_TIMEOUT_US;
	*final = steps <= LOOP_MAX_STEPS && mem <= LOOP_MAX_MEMORY && us <= LOOP_TIMEOUT_US;
	o->max_steps = steps < LOOP_MAX_STEPS ? steps : LOOP_MAX_STEPS;
	o->max_memory = mem < LOOP_MAX_MEMORY ? mem : LOOP_MAX_MEMORY;
	o->timeout_us = us < LOOP_TIMEOUT_US ? us : LOOP_TIMEOUT_US;
}

static int eval(struct kbs_policy *p, bool nowait, const json_t *claims, const json_t *data,
                char **explain, struct err *err)
{
	*explain = NULL;
	struct compiled *c = NULL;
	int rc = get_compiled(p, nowait, &c, err);
	if (rc != 0)
		return rc;
	struct rego_eval_opts o = {.input = claims, .data = data, .explain = 1};
	int final = 1;
	if (nowait)
		loop_limits(&p->limits, &o, &final);
	else
		rego_limits_apply(&p->limits, &o);
	json_t *res = NULL;
	rc = rego_eval_rule(c->p, "data.policy.allow", &o, &res, explain, err);
	compiled_put(p, c);
	if (rc != 0) {
		if (!final && err->code == REGO_ERR_BUDGET) {
			free(*explain);
			*explain = NULL;
			err_clear(err);
			return KBS_POLICY_UNKNOWN;
		}
		return -1;
	}
	int allowed = json_is_true(res);
	if (res && !json_is_boolean(res))
		kbs_metrics_inc(KM_POLICY_ERRORS);
	json_decref(res);
	if (allowed) {
		free(*explain);
		*explain = NULL;
		return 0;
	}
	if (!*explain && !res)
		*explain = strdup("data.policy.allow is undefined");
	return 1;
}

int kbs_policy_eval(struct kbs_policy *p, const json_t *claims, const json_t *data, char **explain,
                    struct err *err)
{
	return eval(p, false, claims, data, explain, err);
}

int kbs_policy_eval_nowait(struct kbs_policy *p, const json_t *claims, const json_t *data,
                           char **explain, struct err *err)
{
	return eval(p, true, claims, data, explain, err);
}
