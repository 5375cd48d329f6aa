/*
 * as_backends: the KBS's attestation backends behind one table, curl-vtls style. Each
 * backend is a file defining one row (as_client.c: coco_as_grpc, as_intel_ta.c: intel_ta,
 * as_builtin.c: coco_as_builtin), every slot named; the row is chosen once, at start-up, by
 * [attestation_service] type, and kbs_as_* dispatch to it. A slot a backend leaves NULL answers
 * with a sentence saying that this backend has no such call, so a route never reaches a
 * missing function.
 */
#include <stdlib.h>

#include "kbs.h"

const struct kbs_as_backend *const kbs_as_backends[] = {
    &kbs_as_coco_grpc,
    &kbs_as_intel_ta,
    &kbs_as_coco_builtin,
    NULL,
};

struct kbs_as {
	const struct kbs_as_backend *be; /* a row of kbs_as_backends */
	void *state;                     /* from be->open, released by be->free */
};

struct kbs_as *kbs_as_new_tls(const struct kbs_config *cfg, int timeout_ms, struct err *err)
{
	const struct kbs_as_backend *be = NULL;
	for (size_t i = 0; kbs_as_backends[i] != NULL && be == NULL; i++)
		if (kbs_as_backends[i]->type == cfg->as_type)
			be = kbs_as_backends[i];
	if (be == NULL) {
		err_set(err, "[attestation_service] this build has no backend for the configured "
		             "type (coco_as_grpc, intel_ta, coco_as_builtin)");
		return NULL;
	}
	struct kbs_as *a = calloc(1, sizeof(*a));
	if (a == NULL) {
		err_set(err, "out of memory");
		return NULL;
	}
	a->be = be;
	if ((a->state = be->open(cfg, timeout_ms, err)) == NULL) {
		free(a);
		return NULL;
	}
	return a;
}

void kbs_as_free(struct kbs_as *a)
{
	if (a == NULL)
		return;
	a->be->free(a->state);
	free(a);
}

const char *kbs_as_name(const struct kbs_as *a)
{
	return a->be->name;
}

static int lacks(const struct kbs_as *a, const char *what, struct err *err)
{
	return err_set(err, "the %s attestation service has no %s", a->be->name, what);
}

struct kbs_as_loop *kbs_as_loop_new(struct kbs_as *a, struct event_base *base, int max_inflight,
                                    struct err *err)
{
	if (a->be != &kbs_as_coco_grpc) {
		lacks(a, "event-loop client", err);
		return NULL;
	}
	return kbs_as_grpc_loop_new(a->state, base, max_inflight, err);
}

char *kbs_as_evaluate(struct kbs_as *a, const json_t *requests, struct err *err)
{
	if (a->be->evaluate == NULL) {
		lacks(a, "evidence evaluation", err);
		return NULL;
	}
	return a->be->evaluate(a->state, requests, err);
}

int kbs_as_set_policy(struct kbs_as *a, const char *id, const char *policy_b64, struct err *err)
{
	if (a->be->set_policy == NULL)
		return lacks(a, "attestation policies to set", err);
	return a->be->set_policy(a->state, id, policy_b64, err);
}

int kbs_as_rv_register(struct kbs_as *a, const char *message, struct err *err)
{
	if (a->be->rv_register == NULL)
		return lacks(a, "reference value provider", err);
	return a->be->rv_register(a->state, message, err);
}

int kbs_as_rv_query(struct kbs_as *a, const char *id, char **out, struct err *err)
{
	*out = NULL;
	if (a->be->rv_query == NULL)
		return lacks(a, "reference value provider", err);
	return a->be->rv_query(a->state, id, out, err);
}

int kbs_as_ready(struct kbs_as *a, int timeout_ms, struct err *err)
{
	return a->be->ready == NULL ? 0 : a->be->ready(a->state, timeout_ms, err);
}

char *kbs_as_metrics(struct kbs_as *a, size_t *len)
{
	*len = 0;
	return a->be->metrics == NULL ? NULL : a->be->metrics(a->state, len);
}

char *kbs_as_challenge(struct kbs_as *a, const char *tee, const char *tee_params, struct err *err)
{
	if (a->be->challenge == NULL) {
		lacks(a, "challenge", err);
		return NULL;
	}
	return a->be->challenge(a->state, tee, tee_params, err);
}

json_t *kbs_as_auth_params(struct kbs_as *a, const char *tee, const json_t *extra, struct err *err)
{
	if (a == NULL || a->be->auth_params == NULL)
		return json_string("");
	return a->be->auth_params(a->state, tee, extra, err);
}
