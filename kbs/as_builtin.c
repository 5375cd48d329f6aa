/*
 * as_builtin: the coco_as_builtin attestation backend (kbs-protocol.md §2.8), the row
 * kbs_as_coco_builtin of as_backends.c's table. The kbs runs the Attestation Service in
 * process with the very library grpc-as serves (as/as.h), so Trustee's default deployment, one
 * kbs and no grpc-as, works as written.
 *
 * Its configuration is Trustee's: the [attestation_service] table's `rvps_config`,
 * `attestation_token_broker`, `verifier_config` (and our `attestation_policy_limits`) become
 * the AS JSON config as_init reads, and the AS stores policies (and built-in reference values)
 * in the kbs's [storage_backend], whose storage_type an optional [attestation_service]
 * `storage_type` overrides. Trustee's older keys `work_dir` and `policy_engine` are accepted
 * and unused, as in Trustee. Calls run on the kbs's request workers; the AS is built for
 * concurrent evaluations (as.h), so nothing here locks.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "as/as.h"
#include "as/metrics.h"
#include "as/verifiers/verifier.h"
#include "kbs.h"
#include "kv/kv.h"
#include "log.h"
#include "rvps/rvps.h"

struct as_builtin {
	struct as as;   /* as_init'd; owned */
	int timeout_ms; /* a remote RVPS call's deadline */
};

/* The AS config object (as-rvps.md §3) for the kbs's [attestation_service] table. */
static json_t *as_config(const struct kbs_config *cfg, struct err *err)
{
	const json_t *t = json_object_get(cfg->root, "attestation_service");
	const char *keys[] = {"rvps_config", "attestation_token_broker", "verifier_config",
	                      "attestation_policy_limits"};
	const json_t *st = json_object_get(t, "storage_type");
	json_t *out = json_object(), *sb;

	if (out == NULL)
		return err_set(err, "out of memory"), NULL;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		json_t *v = json_object_get(t, keys[i]);
		if (v != NULL && !json_is_null(v))
			json_object_set_new(out, keys[i], json_deep_copy(v));
	}
	sb = cfg->storage_backend ? json_deep_copy(cfg->storage_backend)
	                          : json_pack("{s:s}", "storage_type", "Memory");
	if (sb == NULL) {
		json_decref(out);
		return err_set(err, "out of memory"), NULL;
	}
	if (st != NULL && !json_is_string(st)) {
		json_decref(sb);
		json_decref(out);
		return err_set(err, "[attestation_service] storage_type must be a string"), NULL;
	}
	if (st != NULL)
		json_object_set(sb, "storage_type", (json_t *)st);
	json_object_set_new(out, "storage_backend", sb);
	return out;
}

static void *builtin_open(const struct kbs_config *cfg, int timeout_ms, struct err *err)
{
	struct as_builtin *b = calloc(1, sizeof(*b));
	json_t *c;

	if (b == NULL) {
		err_set(err, "out of memory");
		return NULL;
	}
	if ((c = as_config(cfg, err)) == NULL) {
		free(b);
		return NULL;
	}
	int rc = as_init(&b->as, c, err);
	json_decref(c);
	if (rc < 0) {
		err_prefix(err, "[attestation_service] built-in AS");
		as_free(&b->as);
		free(b);
		return NULL;
	}
	b->timeout_ms = timeout_ms > 0 ? timeout_ms : 60000;
	log_info("kbs: attestation service built in (policies in %s, %s RVPS)",
	         kv_type_name(b->as.kv), b->as.rvps_local ? "built-in" : "remote");
	return b;
}

static void builtin_free(void *be)
{
	struct as_builtin *b = be;

	if (b == NULL)
		return;
	as_free(&b->as);
	free(b);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One evaluation, counted in the AS's own metrics as grpc-as counts its calls (by the first
 * request's TEE), so /metrics of a kbs with the AS built in answers what grpc-as's would. */
static char *builtin_evaluate(void *be, const json_t *requests, struct err *err)
{
	struct as_builtin *b = be;
	uint8_t *req = NULL;
	size_t len = 0;
	double t0 = now_s();
	const char *tee = json_string_value(json_object_get(json_array_get(requests, 0), "tee"));

	if (kbs_as_request_pack(requests, &req, &len, err) < 0)
		return NULL;
	/* err->code: ERR_UNAVAILABLE for an outage (the kbs answers 503), else a refusal */
	char *token = as_evaluate(&b->as, req, len, err);
	free(req);
	as_metrics_attestation(tee ? tee : "", token != NULL, now_s() - t0);
	return token;
}

static char *builtin_metrics(void *be, size_t *len)
{
	return as_metrics_render(len);
}

static int builtin_set_policy(void *be, const char *id, const char *policy_b64, struct err *err)
{
	struct as_builtin *b = be;
	return as_set_policy(&b->as, id, policy_b64, err);
}

static int builtin_rv_register(void *be, const char *message, struct err *err)
{
	struct as_builtin *b = be;
	if (b->as.rvps_local != NULL)
		return rvps_register(b->as.rvps_local, message, err);
	return rvps_client_register(b->as.rvps_remote, message, b->timeout_ms, err);
}

static int builtin_rv_query(void *be, const char *id, char **out, struct err *err)
{
	struct as_builtin *b = be;
	int rc = b->as.rvps_local != NULL
	             ? rvps_query(b->as.rvps_local, id, out, err)
	             : rvps_client_query(b->as.rvps_remote, id, out, b->timeout_ms, err);
	if (rc < 0)
		return -1;
	return *out != NULL ? 0 : 1;
}

/* A verifier-defined challenge exists only for IBM SE (its verifier's challenge); every other
 * TEE gets "" as grpc-as answers. */
static char *builtin_challenge(void *be, const char *tee, const char *tee_params, struct err *err)
{
	const struct verifier *v = verifier_find(tee);
	if (v != NULL && v->challenge != NULL)
		return v->challenge(tee_params, err);
	char *c = strdup("");
	if (c == NULL)
		err_set(err, "out of memory");
	return c;
}

const struct kbs_as_backend kbs_as_coco_builtin = {
    .name = "coco_as_builtin",
    .type = KBS_AS_BUILTIN,
    .open = builtin_open,
    .free = builtin_free,
    .evaluate = builtin_evaluate,
    .set_policy = builtin_set_policy,
    .rv_register = builtin_rv_register,
    .rv_query = builtin_rv_query,
    .challenge = builtin_challenge,
    .ready = NULL, /* in process: ready when the kbs is */
    .metrics = builtin_metrics,
};
