/*
 * policy: the KBS resource policy (kbs-protocol.md §6). The Rego text lives in the `kbs`
 * namespace under `resource-policy.rego` so replicas share it; it is re-read on every
 * evaluation (one storage read) but compiled only when its bytes change, keyed by SHA-256.
 * The rule evaluated is data.policy.allow with input = the verified token claims and
 * data = {plugin, resource-path, query}; anything but JSON true is a denial, and the engine's
 * explanation of the failing rule bodies is handed back for the problem detail and the log.
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

int kbs_policy_set(struct kbs_policy *p, const char *rego, size_t len, struct err *err)
{
	struct rego_policy *rp = compile(rego, len, err);
	if (!rp)
		return -1;
	rego_policy_free(rp);
	return kv_set(p->kv, KV_NS_KBS, POLICY_KEY, rego, len, 1, err) < 0 ? -1 : 0;
}

/* The compiled form of the stored text, with a reference held for the caller. */
static struct compiled *get_compiled(struct kbs_policy *p, struct err *err)
{
	uint8_t *text = NULL;
	size_t len = 0;
	int rc = kv_get(p->kv, KV_NS_KBS, POLICY_KEY, &text, &len, err);
	if (rc < 0) {
		/* the cause names storage hosts: log it, tell the client only what happened */
		char cause[ERR_MSG_MAX];
		log_warn("kbs: resource policy: storage: %s", err->msg);
		kbs_scrub_hosts(err->msg, cause, sizeof(cause));
		err_set(err, "resource policy storage unavailable: %.900s; try again", cause);
		return NULL;
	}
	if (rc == 1) {
		err_set(err, "no resource policy is stored");
		return NULL;
	}
	uint8_t d[HASH_MAX];
	hash_digest(HASH_SHA256, text, len, d);
	pthread_mutex_lock(&p->mu);
	struct compiled *c = p->cur;
	if (c && memcmp(c->digest, d, 32) == 0) {
		c->refs++;
		pthread_mutex_unlock(&p->mu);
		free(text);
		return c;
	}
	pthread_mutex_unlock(&p->mu);
	struct rego_policy *rp = compile((const char *)text, len, err);
	free(text);
	if (!rp)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c) {
		rego_policy_free(rp);
		err_set(err, "out of memory");
		return NULL;
	}
	memcpy(c->digest, d, 32);
	c->p = rp;
	c->refs = 2; /* the cache and the caller */
	pthread_mutex_lock(&p->mu);
	struct compiled *old = p->cur;
	p->cur = c;
	pthread_mutex_unlock(&p->mu);
	compiled_put(p, old);
	return c;
}

int kbs_policy_eval(struct kbs_policy *p, const json_t *claims, const json_t *data, char **explain,
                    struct err *err)
{
	*explain = NULL;
	struct compiled *c = get_compiled(p, err);
	if (!c)
		return -1;
	struct rego_eval_opts o = {.input = claims, .data = data, .explain = 1};
	rego_limits_apply(&p->limits, &o);
	json_t *res = NULL;
	int rc = rego_eval_rule(c->p, "data.policy.allow", &o, &res, explain, err);
	compiled_put(p, c);
	if (rc != 0)
		return -1;
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
