/*
 * as_client: the KBS side of the coco_as_grpc attestation backend (kbs-protocol.md §2.8), the
 * row kbs_as_coco_grpc of as_backends.c's table. One gRPC channel to the AS;
 * AttestationEvaluate, SetAttestationPolicy, GetAttestationChallenge, and the RVPS API that
 * the AS proxies on the same address. Calls block; the HTTP layer runs them on its worker
 * pool, except AttestationEvaluate made from an event loop (kbs_as_grpc_loop_new: one
 * loop-driven client per loop, common/grpcx_async.c), which answers on that loop. With
 * [attestation_service] as_bearer_token_file every call carries that token as `authorization:
 * Bearer`, the credential an AS whose writes are restricted asks of the KBS (common/grpcauth.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "attestation.pb-c.h"
#include "grpcauth.h"
#include "grpcx.h"
#include "health.pb-c.h"
#include "kbs.h"
#include "log.h"
#include "reference.pb-c.h"

struct as_grpc {
	struct grpcx_client *c;
	int timeout_ms;
	char addr[256];
	char *bearer; /* the token of as_bearer_token_file, for the loop clients too (wiped) */
	char *tls[3]; /* as_ca_cert, as_client_cert, as_client_key paths (owned; NULL: unset), for
	                 the loop clients */
};

static void bearer_free(char *t)
{
	if (t != NULL) {
		OPENSSL_cleanse(t, strlen(t));
		free(t);
	}
}

static void grpc_free(void *be);

static void *grpc_open(const struct kbs_config *cfg, int timeout_ms, struct err *err)
{
	struct grpcx_tls_files f = {cfg->as_ca_cert, cfg->as_client_cert, cfg->as_client_key};
	struct as_grpc *a = calloc(1, sizeof(*a));

	if (!a) {
		err_set(err, "out of memory");
		return NULL;
	}
	a->c = grpcx_client_new_files(cfg->as_addr, &f, "[attestation_service]", err);
	if (!a->c) {
		free(a);
		return NULL;
	}
	const char *tok = json_string_value(json_object_get(
	    json_object_get(cfg->root, "attestation_service"), "as_bearer_token_file"));
	char *t = tok ? grpcauth_read_token(tok, err) : NULL;
	if (tok != NULL && (t == NULL || grpcx_client_set_bearer(a->c, t, err) < 0)) {
		bearer_free(t);
		err_prefix(err, "[attestation_service] as_bearer_token_file");
		grpcx_client_free(a->c);
		free(a);
		return NULL;
	}
	a->bearer = t;
	const char *paths[3] = {cfg->as_ca_cert, cfg->as_client_cert, cfg->as_client_key};
	for (int i = 0; i < 3; i++)
		if (paths[i] != NULL && (a->tls[i] = strdup(paths[i])) == NULL) {
			err_set(err, "out of memory");
			grpc_free(a);
			return NULL;
		}
	snprintf(a->addr, sizeof(a->addr), "%s", cfg->as_addr);
	a->timeout_ms = timeout_ms > 0 ? timeout_ms : 300000;
	return a;
}

static void grpc_free(void *be)
{
	struct as_grpc *a = be;
	if (!a)
		return;
	grpcx_client_free(a->c);
	bearer_free(a->bearer);
	for (int i = 0; i < 3; i++)
		free(a->tls[i]);
	free(a);
}

/* A call's gRPC status: 0 when OK, else -1 with err->code the status, so the caller tells a
 * refusal from an outage. */
static int link_status(struct as_grpc *a, int st, struct err *err)
{
	if (st == GRPCX_OK)
		return 0;
	/* the link itself failed (TLS refused, AS down): one line naming it */
	if (st == GRPCX_UNAVAILABLE)
		log_warn("kbs: AS link %s: %s", a->addr[0] ? a->addr : "-", err->msg);
	if (st > 0)
		err_prefix(err, "AS returned gRPC status %d", st);
	if (err)
		err->code = st;
	return -1;
}

/* Packs `msg`, calls `method`, returns the response bytes. */
static int call(struct as_grpc *a, const char *method, const ProtobufCMessage *msg, uint8_t **resp,
                size_t *resp_len, struct err *err)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf)
		return err_set(err, "out of memory");
	protobuf_c_message_pack(msg, buf);
	int st = grpcx_call(a->c, method, buf, n, resp, resp_len, a->timeout_ms, err);
	free(buf);
	return link_status(a, st, err);
}

int kbs_as_request_pack(const json_t *requests, uint8_t **buf, size_t *len, struct err *err)
{
	size_t n = json_array_size(requests);
	Attestation__AttestationRequest req = ATTESTATION__ATTESTATION_REQUEST__INIT;
	Attestation__IndividualAttestationRequest *items = calloc(n ? n : 1, sizeof(*items));
	Attestation__IndividualAttestationRequest **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
	char *policy = "default";
	int rc = -1;

	*buf = NULL;
	if (!items || !ptrs) {
		err_set(err, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *r = json_array_get(requests, i);
		Attestation__IndividualAttestationRequest *it = &items[i];
		attestation__individual_attestation_request__init(it);
		it->tee = (char *)json_string_value(json_object_get(r, "tee"));
		it->evidence = (char *)json_string_value(json_object_get(r, "evidence"));
		it->runtime_data_hash_algorithm =
		    (char *)json_string_value(json_object_get(r, "hash"));
		it->runtime_data_case =
		    ATTESTATION__INDIVIDUAL_ATTESTATION_REQUEST__RUNTIME_DATA_STRUCTURED_RUNTIME_DATA;
		it->structured_runtime_data =
		    (char *)json_string_value(json_object_get(r, "runtime_data"));
		const char *idt = json_string_value(json_object_get(r, "init_data_toml"));
		if (idt) {
			it->init_data_case =
			    ATTESTATION__INDIVIDUAL_ATTESTATION_REQUEST__INIT_DATA_INIT_DATA_TOML;
			it->init_data_toml = (char *)idt;
		}
		if (!it->tee || !it->evidence || !it->structured_runtime_data) {
			err_set(err, "internal: incomplete verification request");
			goto out;
		}
		if (!it->runtime_data_hash_algorithm)
			it->runtime_data_hash_algorithm = "sha384";
		ptrs[i] = it;
	}
	req.n_verification_requests = n;
	req.verification_requests = ptrs;
	req.n_policy_ids = 1;
	req.policy_ids = &policy;
	*len = protobuf_c_message_get_packed_size(&req.base);
	if ((*buf = malloc(*len ? *len : 1)) == NULL) {
		err_set(err, "out of memory");
		goto out;
	}
	protobuf_c_message_pack(&req.base, *buf);
	rc = 0;
out:
	free(items);
	free(ptrs);
	return rc;
}

#define EVALUATE "/attestation.AttestationService/AttestationEvaluate"

/* The token of an AttestationEvaluate answer (resp freed), malloc'd, or NULL with err. */
static char *evaluate_token(uint8_t *resp, size_t rl, struct err *err)
{
	char *token = NULL;
	Attestation__AttestationResponse *r =
	    attestation__attestation_response__unpack(NULL, rl, resp);
	free(resp);
	if (!r) {
		err_set(err, "AS sent an unparsable AttestationResponse");
		return NULL;
	}
	if (!r->attestation_token || !*r->attestation_token)
		err_set(err, "AS returned an empty attestation token");
	else
		token = strdup(r->attestation_token);
	attestation__attestation_response__free_unpacked(r, NULL);
	return token;
}

static char *grpc_evaluate(void *be, const json_t *requests, struct err *err)
{
	struct as_grpc *a = be;
	uint8_t *req = NULL, *resp = NULL;
	size_t n = 0, rl = 0;

	if (kbs_as_request_pack(requests, &req, &n, err) < 0)
		return NULL;
	int st = grpcx_call(a->c, EVALUATE, req, n, &resp, &rl, a->timeout_ms, err);
	free(req);
	if (link_status(a, st, err) < 0)
		return NULL;
	return evaluate_token(resp, rl, err);
}

/* ---- AttestationEvaluate from an event loop */

struct kbs_as_loop {
	struct as_grpc *a; /* borrowed: the backend's state (address, deadline) */
	struct grpcx_async *c;
};

struct loop_call {
	struct kbs_as_loop *l;
	kbs_as_token_cb cb;
	void *arg;
};

struct kbs_as_loop *kbs_as_grpc_loop_new(void *be, struct event_base *base, int max_inflight,
                                         struct err *err)
{
	struct as_grpc *a = be;
	struct kbs_as_loop *l = calloc(1, sizeof(*l));

	if (l == NULL) {
		err_set(err, "out of memory");
		return NULL;
	}
	l->a = a;
	struct grpcx_tls_files f = {a->tls[0], a->tls[1], a->tls[2]};
	l->c = grpcx_async_new_files(base, a->addr, &f, "[attestation_service]", max_inflight, err);
	if (l->c == NULL || (a->bearer && grpcx_async_set_bearer(l->c, a->bearer, err) < 0)) {
		kbs_as_loop_free(l);
		return NULL;
	}
	return l;
}

void kbs_as_loop_free(struct kbs_as_loop *l)
{
	if (l == NULL)
		return;
	grpcx_async_free(l->c);
	free(l);
}

int kbs_as_loop_full(const struct kbs_as_loop *l)
{
	return grpcx_async_full(l->c);
}

static void loop_answered(void *arg, int st, uint8_t *resp, size_t rl, struct err *err)
{
	struct loop_call *lc = arg;
	char *token = NULL;

	if (link_status(lc->l->a, st, err) < 0)
		free(resp);
	else
		token = evaluate_token(resp, rl, err);
	lc->cb(lc->arg, token, err);
	free(lc);
}

int kbs_as_loop_evaluate(struct kbs_as_loop *l, const json_t *requests, kbs_as_token_cb cb,
                         void *arg, struct err *err)
{
	struct loop_call *lc = calloc(1, sizeof(*lc));
	uint8_t *req = NULL;
	size_t n = 0;
	int rc = -1;

	if (lc == NULL)
		return err_set(err, "out of memory");
	*lc = (struct loop_call){.l = l, .cb = cb, .arg = arg};
	if (kbs_as_request_pack(requests, &req, &n, err) == 0)
		rc = grpcx_async_call(l->c, EVALUATE, req, n, l->a->timeout_ms, loop_answered, lc,
		                      err);
	free(req);
	if (rc != 0)
		free(lc);
	return rc;
}

static int grpc_set_policy(void *be, const char *id, const char *policy_b64, struct err *err)
{
	struct as_grpc *a = be;
	Attestation__SetPolicyRequest req = ATTESTATION__SET_POLICY_REQUEST__INIT;
	req.policy_id = (char *)id;
	req.policy = (char *)policy_b64;
	uint8_t *resp = NULL;
	size_t rl = 0;
	if (call(a, "/attestation.AttestationService/SetAttestationPolicy",
	         (ProtobufCMessage *)&req, &resp, &rl, err) != 0)
		return -1;
	free(resp);
	return 0;
}

static int grpc_rv_register(void *be, const char *message, struct err *err)
{
	struct as_grpc *a = be;
	Reference__ReferenceValueRegisterRequest req =
	    REFERENCE__REFERENCE_VALUE_REGISTER_REQUEST__INIT;
	req.message = (char *)message;
	uint8_t *resp = NULL;
	size_t rl = 0;
	if (call(a, "/reference.ReferenceValueProviderService/RegisterReferenceValue",
	         (ProtobufCMessage *)&req, &resp, &rl, err) != 0)
		return -1;
	free(resp);
	return 0;
}

static int grpc_rv_query(void *be, const char *id, char **out, struct err *err)
{
	struct as_grpc *a = be;
	*out = NULL;
	Reference__ReferenceValueQueryRequest req = REFERENCE__REFERENCE_VALUE_QUERY_REQUEST__INIT;
	req.reference_value_id = (char *)id;
	uint8_t *resp = NULL;
	size_t rl = 0;
	if (call(a, "/reference.ReferenceValueProviderService/QueryReferenceValue",
	         (ProtobufCMessage *)&req, &resp, &rl, err) != 0)
		return -1;
	Reference__ReferenceValueQueryResponse *r =
	    reference__reference_value_query_response__unpack(NULL, rl, resp);
	free(resp);
	if (!r)
		return err_set(err, "AS sent an unparsable ReferenceValueQueryResponse");
	int rc = 1;
	if (r->_reference_value_results_case ==
	    REFERENCE__REFERENCE_VALUE_QUERY_RESPONSE___REFERENCE_VALUE_RESULTS_REFERENCE_VALUE_RESULTS) {
		*out = strdup(r->reference_value_results);
		rc = *out ? 0 : -1;
	}
	reference__reference_value_query_response__free_unpacked(r, NULL);
	return rc;
}

static char *grpc_challenge(void *be, const char *tee, const char *tee_params, struct err *err)
{
	struct as_grpc *a = be;
	Attestation__ChallengeRequest req = ATTESTATION__CHALLENGE_REQUEST__INIT;
	Attestation__ChallengeRequest__InnerEntry e1 =
	    ATTESTATION__CHALLENGE_REQUEST__INNER_ENTRY__INIT;
	Attestation__ChallengeRequest__InnerEntry e2 =
	    ATTESTATION__CHALLENGE_REQUEST__INNER_ENTRY__INIT;
	Attestation__ChallengeRequest__InnerEntry *ents[2] = {&e1, &e2};
	e1.key = "tee";
	e1.value = (char *)tee;
	e2.key = "tee_params";
	e2.value = (char *)tee_params;
	req.n_inner = 2;
	req.inner = ents;
	uint8_t *resp = NULL;
	size_t rl = 0;
	if (call(a, "/attestation.AttestationService/GetAttestationChallenge",
	         (ProtobufCMessage *)&req, &resp, &rl, err) != 0)
		return NULL;
	Attestation__ChallengeResponse *r = attestation__challenge_response__unpack(NULL, rl, resp);
	free(resp);
	if (!r) {
		err_set(err, "AS sent an unparsable ChallengeResponse");
		return NULL;
	}
	char *c = strdup(r->attestation_challenge);
	attestation__challenge_response__free_unpacked(r, NULL);
	return c;
}

static int grpc_ready(void *be, int timeout_ms, struct err *err)
{
	struct as_grpc *a = be;
	Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	req.service = "attestation.AttestationService";
	uint8_t *buf = NULL, *resp = NULL;
	size_t n = protobuf_c_message_get_packed_size((ProtobufCMessage *)&req), rl = 0;
	buf = malloc(n ? n : 1);
	if (!buf)
		return err_set(err, "out of memory");
	protobuf_c_message_pack((ProtobufCMessage *)&req, buf);
	int st =
	    grpcx_call(a->c, "/grpc.health.v1.Health/Check", buf, n, &resp, &rl, timeout_ms, err);
	free(buf);
	if (st != GRPCX_OK) {
		if (st > 0)
			err_prefix(err, "AS health check: gRPC status %d", st);
		return -1;
	}
	Grpc__Health__V1__HealthCheckResponse *r =
	    grpc__health__v1__health_check_response__unpack(NULL, rl, resp);
	free(resp);
	if (!r)
		return err_set(err, "AS sent an unparsable HealthCheckResponse");
	int serving = r->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
	grpc__health__v1__health_check_response__free_unpacked(r, NULL);
	return serving ? 0 : err_set(err, "the AS reports it is not serving");
}

const struct kbs_as_backend kbs_as_coco_grpc = {
    .name = "coco_as_grpc",
    .type = KBS_AS_GRPC,
    .open = grpc_open,
    .free = grpc_free,
    .evaluate = grpc_evaluate,
    .set_policy = grpc_set_policy,
    .rv_register = grpc_rv_register,
    .rv_query = grpc_rv_query,
    .challenge = grpc_challenge,
    .auth_params = NULL,
    .ready = grpc_ready,
};
