/*
 * grpc_service: reference.ReferenceValueProviderService on a grpcx server, either from a
 * local store or by forwarding to a remote RVPS. Wire behaviour is Trustee's (as-rvps.md
 * §7.1): an unknown id is an OK answer with the optional field unset (the AS probes with
 * "__healthcheck__" and needs that to be fast); store errors are ABORTED with
 * "Query reference value: ..." / "Register reference value: ...". ListReferenceValues and
 * DeleteReferenceValue (Trustee's later RPCs) and our ListReferenceValueAudit follow the
 * same rules ("List reference values: ...", "Delete reference value: ..."); deleting an
 * unknown id is OK with deleted=false. Our QueryReferenceValues answers several ids in one
 * call (at most RVPS_BATCH_MAX) as a JSON object of those that have a value. Bytes that are not the
 * request message are refused with INVALID_ARGUMENT and the server keeps serving.
 * RegisterReferenceValue and DeleteReferenceValue, local or forwarded, first pass the
 * process's write check
 * (rvps_grpc_set_write_auth): a forwarded one would otherwise ride on the AS's own credential.
 * The two queries run first on the server's event loop (grpcx_server_add_try) and answer
 * there when the store knows the values without a round trip (kv_peek: Memory always, Redis
 * from its tracked cache); otherwise, and for every other RPC, a worker runs them. Both runs
 * are one code path (on_query_with, on_query_batch_with) counting each call once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpcauth.h"
#include "grpcx.h"
#include "kv/kv.h"
#include "log.h"
#include "reference.pb-c.h"
#include "rvps/rvps.h"

#define PROXY_TIMEOUT_MS 10000

/* counters for GET /metrics (rvps_metrics_render) */
enum {
	M_QUERY_FOUND,
	M_QUERY_MISSING,
	M_QUERY_ERROR,
	M_REGISTER_OK,
	M_REGISTER_ERROR,
	M_CALL_QUERY, /* QueryReferenceValue calls */
	M_CALL_BATCH, /* QueryReferenceValues calls */
	M_N
};
static unsigned long long metrics[M_N];

static const struct grpcauth *write_auth; /* set once before the server starts */

void rvps_grpc_set_write_auth(const struct grpcauth *auth)
{
	write_auth = auth;
}

static void count(int m)
{
	__atomic_add_fetch(&metrics[m], 1, __ATOMIC_RELAXED);
}

char *rvps_metrics_render(size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	unsigned long long v[M_N];

	if (f == NULL)
		return NULL;
	for (int i = 0; i < M_N; i++)
		v[i] = __atomic_load_n(&metrics[i], __ATOMIC_RELAXED);
	fprintf(f,
	        "# HELP rvps_queries_total QueryReferenceValue calls, by result.\n"
	        "# TYPE rvps_queries_total counter\n"
	        "rvps_queries_total{result=\"found\"} %llu\n"
	        "rvps_queries_total{result=\"missing\"} %llu\n"
	        "rvps_queries_total{result=\"error\"} %llu\n"
	        "# HELP rvps_registrations_total RegisterReferenceValue calls, by result.\n"
	        "# TYPE rvps_registrations_total counter\n"
	        "rvps_registrations_total{result=\"ok\"} %llu\n"
	        "rvps_registrations_total{result=\"error\"} %llu\n"
	        "# HELP rvps_query_calls_total Query RPCs (each id of a batch also counts in "
	        "rvps_queries_total).\n"
	        "# TYPE rvps_query_calls_total counter\n"
	        "rvps_query_calls_total{method=\"QueryReferenceValue\"} %llu\n"
	        "rvps_query_calls_total{method=\"QueryReferenceValues\"} %llu\n",
	        v[M_QUERY_FOUND], v[M_QUERY_MISSING], v[M_QUERY_ERROR], v[M_REGISTER_OK],
	        v[M_REGISTER_ERROR], v[M_CALL_QUERY], v[M_CALL_BATCH]);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static int pack_query_response(const char *value, uint8_t **resp, size_t *resp_len, struct err *err)
{
	Reference__ReferenceValueQueryResponse out =
	    REFERENCE__REFERENCE_VALUE_QUERY_RESPONSE__INIT;

	if (value != NULL) {
		out._reference_value_results_case =
		    REFERENCE__REFERENCE_VALUE_QUERY_RESPONSE___REFERENCE_VALUE_RESULTS_REFERENCE_VALUE_RESULTS;
		out.reference_value_results = (char *)value;
	}
	*resp_len = reference__reference_value_query_response__get_packed_size(&out);
	*resp = malloc(*resp_len + 1);
	if (*resp == NULL) {
		err_set(err, "out of memory");
		return GRPCX_INTERNAL;
	}
	reference__reference_value_query_response__pack(&out, *resp);
	return GRPCX_OK;
}

typedef int (*query_fn)(struct rvps *, const char *, char **, struct err *);

/* QueryReferenceValue and its kin, read with `get`; call_metric counts the RPC (-1: none).
 * A get that peeks (rvps_query_peek) may say KV_PEEK_UNKNOWN: then GRPCX_DEFER, with nothing
 * counted, and the worker's run of the same code counts the call. */
static int on_query_with(struct rvps *r, query_fn get, int call_metric, const uint8_t *req,
                         size_t req_len, uint8_t **resp, size_t *resp_len, struct err *err)
{
	Reference__ReferenceValueQueryRequest *in;
	char *value = NULL;
	int st, rc;

	in = reference__reference_value_query_request__unpack(NULL, req_len, req);
	if (in == NULL) {
		if (call_metric >= 0)
			count(call_metric);
		count(M_QUERY_ERROR);
		err_set(err, "The request is not a valid ReferenceValueQueryRequest message");
		return GRPCX_INVALID_ARGUMENT;
	}
	rc = get(r, in->reference_value_id, &value, err);
	if (rc == KV_PEEK_UNKNOWN) {
		reference__reference_value_query_request__free_unpacked(in, NULL);
		return GRPCX_DEFER;
	}
	if (call_metric >= 0)
		count(call_metric);
	if (rc < 0) {
		count(M_QUERY_ERROR);
		reference__reference_value_query_request__free_unpacked(in, NULL);
		err_prefix(err, "Query reference value");
		return err->code == ERR_UNAVAILABLE ? GRPCX_UNAVAILABLE : GRPCX_ABORTED;
	}
	reference__reference_value_query_request__free_unpacked(in, NULL);
	count(value != NULL ? M_QUERY_FOUND : M_QUERY_MISSING);
	st = pack_query_response(value, resp, resp_len, err);
	free(value);
	return st;
}

static int on_query(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp, size_t *resp_len,
                    struct err *err)
{
	return on_query_with(ctx, rvps_query, M_CALL_QUERY, req, req_len, resp, resp_len, err);
}

/* On the loop: answered when the store knows the value without a round trip. */
static int try_query(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp,
                     size_t *resp_len, struct err *err)
{
	return on_query_with(ctx, rvps_query_peek, M_CALL_QUERY, req, req_len, resp, resp_len, err);
}

static int on_provenance(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp,
                         size_t *resp_len, struct err *err)
{
	return on_query_with(ctx, rvps_query_provenance, -1, req, req_len, resp, resp_len, err);
}

typedef int (*query_many_fn)(struct rvps *, const char *const *, size_t, json_t **, struct err *);

/* The values of ids[0..n) that have one, as one JSON object (new reference) in *obj; each id
 * counts in rvps_queries_total as a single query would. Returns what get returns. */
static int query_many(struct rvps *r, query_many_fn get, char *const *ids, size_t n, json_t **obj,
                      struct err *err)
{
	int rc = get(r, (const char *const *)ids, n, obj, err);

	if (rc == KV_PEEK_UNKNOWN)
		return rc;
	count(M_CALL_BATCH);
	if (rc < 0) {
		count(M_QUERY_ERROR);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		count(json_object_get(*obj, ids[i]) != NULL ? M_QUERY_FOUND : M_QUERY_MISSING);
	return 0;
}

/* QueryReferenceValues (ours): several ids, one object of the values found. A get that
 * peeks may defer, as in on_query_with. */
static int on_query_batch_with(struct rvps *r, query_many_fn get, const uint8_t *req,
                               size_t req_len, uint8_t **resp, size_t *resp_len, struct err *err)
{
	Reference__ReferenceValueBatchQueryRequest *in;
	Reference__ReferenceValueBatchQueryResponse out =
	    REFERENCE__REFERENCE_VALUE_BATCH_QUERY_RESPONSE__INIT;
	json_t *obj = NULL;
	char *text;
	int rc;

	in = reference__reference_value_batch_query_request__unpack(NULL, req_len, req);
	if (in == NULL) {
		count(M_CALL_BATCH);
		err_set(err, "The request is not a valid ReferenceValueBatchQueryRequest message");
		return GRPCX_INVALID_ARGUMENT;
	}
	if (in->n_reference_value_ids > RVPS_BATCH_MAX) {
		count(M_CALL_BATCH);
		err_set(err, "Query reference values: %zu ids in one call, over the limit of %d",
		        in->n_reference_value_ids, RVPS_BATCH_MAX);
		reference__reference_value_batch_query_request__free_unpacked(in, NULL);
		return GRPCX_INVALID_ARGUMENT;
	}
	rc = query_many(r, get, in->reference_value_ids, in->n_reference_value_ids, &obj, err);
	reference__reference_value_batch_query_request__free_unpacked(in, NULL);
	if (rc == KV_PEEK_UNKNOWN)
		return GRPCX_DEFER;
	if (rc < 0) {
		err_prefix(err, "Query reference values");
		return err->code == ERR_UNAVAILABLE ? GRPCX_UNAVAILABLE : GRPCX_ABORTED;
	}
	text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(obj);
	if (text == NULL) {
		err_set(err, "out of memory");
		return GRPCX_INTERNAL;
	}
	out.reference_value_results = text;
	*resp_len = reference__reference_value_batch_query_response__get_packed_size(&out);
	*resp = malloc(*resp_len + 1);
	if (*resp == NULL) {
		free(text);
		err_set(err, "out of memory");
		return GRPCX_INTERNAL;
	}
	reference__reference_value_batch_query_response__pack(&out, *resp);
	free(text);
	return GRPCX_OK;
}

static int on_query_batch(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp,
                          size_t *resp_len, struct err *err)
{
	return on_query_batch_with(ctx, rvps_query_many, req, req_len, resp, resp_len, err);
}

/* On the loop: answered when the store knows every value without a round trip. */
static int try_query_batch(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp,
                           size_t *resp_len, struct err *err)
{
	return on_query_batch_with(ctx, rvps_query_many_peek, req, req_len, resp, resp_len, err);
}

static int on_register(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp,
                       size_t *resp_len, struct err *err)
{
	struct rvps *r = ctx;
	Reference__ReferenceValueRegisterRequest *in;
	int rc;

	if ((rc = grpcauth_check_write(write_auth, "RegisterReferenceValue", err)) != 0) {
		count(M_REGISTER_ERROR);
		return rc;
	}
	in = reference__reference_value_register_request__unpack(NULL, req_len, req);
	if (in == NULL) {
		count(M_REGISTER_ERROR);
		err_set(err, "The request is not a valid ReferenceValueRegisterRequest message");
		return GRPCX_INVALID_ARGUMENT;
	}
	rc = rvps_register(r, in->message, err);
	reference__reference_value_register_request__free_unpacked(in, NULL);
	count(rc < 0 ? M_REGISTER_ERROR : M_REGISTER_OK);
	if (rc < 0) {
		err_prefix(err, "Register reference value");
		return err->code == ERR_UNAVAILABLE ? GRPCX_UNAVAILABLE : GRPCX_ABORTED;
	}
	*resp = NULL; /* ReferenceValueRegisterResponse is empty: zero bytes */
	*resp_len = 0;
	return GRPCX_OK;
}

/* ListReferenceValues and ListReferenceValueAudit: an empty request, a JSON array back. */
static int on_list_with(struct rvps *r, int (*get)(struct rvps *, char **, struct err *),
                        const char *what, const uint8_t *req, size_t req_len, uint8_t **resp,
                        size_t *resp_len, struct err *err)
{
	Reference__ReferenceValueListRequest *in;
	Reference__ReferenceValueListResponse out = REFERENCE__REFERENCE_VALUE_LIST_RESPONSE__INIT;
	char *json = NULL;

	in = reference__reference_value_list_request__unpack(NULL, req_len, req);
	if (in == NULL) {
		err_set(err, "The request is not a valid ReferenceValueListRequest message");
		return GRPCX_INVALID_ARGUMENT;
	}
	reference__reference_value_list_request__free_unpacked(in, NULL);
	if (get(r, &json, err) < 0) {
		err_prefix(err, "%s", what);
		return err->code == ERR_UNAVAILABLE ? GRPCX_UNAVAILABLE : GRPCX_ABORTED;
	}
	out.reference_value_results = json;
	*resp_len = reference__reference_value_list_response__get_packed_size(&out);
	*resp = malloc(*resp_len + 1);
	if (*resp == NULL) {
		free(json);
		err_set(err, "out of memory");
		return GRPCX_INTERNAL;
	}
	reference__reference_value_list_response__pack(&out, *resp);
	free(json);
	return GRPCX_OK;
}

static int on_list(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp, size_t *resp_len,
                   struct err *err)
{
	return on_list_with(ctx, rvps_list, "List reference values", req, req_len, resp, resp_len,
	                    err);
}

static int on_audit(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp, size_t *resp_len,
                    struct err *err)
{
	return on_list_with(ctx, rvps_audit, "List the audit trail", req, req_len, resp, resp_len,
	                    err);
}

static int on_delete(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp,
                     size_t *resp_len, struct err *err)
{
	Reference__ReferenceValueDeleteRequest *in;
	Reference__ReferenceValueDeleteResponse out =
	    REFERENCE__REFERENCE_VALUE_DELETE_RESPONSE__INIT;
	int deleted = 0, rc;

	if ((rc = grpcauth_check_write(write_auth, "DeleteReferenceValue", err)) != 0)
		return rc;
	in = reference__reference_value_delete_request__unpack(NULL, req_len, req);
	if (in == NULL) {
		err_set(err, "The request is not a valid ReferenceValueDeleteRequest message");
		return GRPCX_INVALID_ARGUMENT;
	}
	rc = rvps_delete(ctx, in->reference_value_id, &deleted, err);
	reference__reference_value_delete_request__free_unpacked(in, NULL);
	if (rc < 0) {
		err_prefix(err, "Delete reference value");
		return err->code == ERR_UNAVAILABLE ? GRPCX_UNAVAILABLE : GRPCX_ABORTED;
	}
	out.deleted = deleted;
	*resp_len = reference__reference_value_delete_response__get_packed_size(&out);
	*resp = malloc(*resp_len + 1);
	if (*resp == NULL) {
		err_set(err, "out of memory");
		return GRPCX_INTERNAL;
	}
	reference__reference_value_delete_response__pack(&out, *resp);
	return GRPCX_OK;
}

int rvps_grpc_serve(struct grpcx_server *s, struct rvps *r)
{
	if (grpcx_server_add_try(s, RVPS_METHOD_QUERY, try_query, on_query, r) < 0 ||
	    grpcx_server_add(s, RVPS_METHOD_PROVENANCE, on_provenance, r) < 0 ||
	    grpcx_server_add(s, RVPS_METHOD_REGISTER, on_register, r) < 0 ||
	    grpcx_server_add(s, RVPS_METHOD_LIST, on_list, r) < 0 ||
	    grpcx_server_add(s, RVPS_METHOD_DELETE, on_delete, r) < 0 ||
	    grpcx_server_add(s, RVPS_METHOD_AUDIT, on_audit, r) < 0 ||
	    grpcx_server_add_try(s, RVPS_METHOD_QUERY_BATCH, try_query_batch, on_query_batch, r) <
	        0)
		return -1;
	grpcx_server_set_serving(s, RVPS_SERVICE, 1);
	return 0;
}

/* Forwarding: the bytes go through untouched, the remote's status and message come back. */
static int forward(struct grpcx_client *c, const char *method, const uint8_t *req, size_t req_len,
                   uint8_t **resp, size_t *resp_len, struct err *err)
{
	int st = grpcx_call(c, method, req, req_len, resp, resp_len, PROXY_TIMEOUT_MS, err);

	if (st < 0) {
		err_prefix(err, "RVPS unreachable");
		st = GRPCX_UNAVAILABLE;
	}
	if (st == GRPCX_UNAVAILABLE)
		log_warn("RVPS link: %s", err->msg);
	return st;
}

static int on_query_proxy(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp,
                          size_t *resp_len, struct err *err)
{
	return forward(ctx, RVPS_METHOD_QUERY, req, req_len, resp, resp_len, err);
}

static int on_provenance_proxy(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp,
                               size_t *resp_len, struct err *err)
{
	return forward(ctx, RVPS_METHOD_PROVENANCE, req, req_len, resp, resp_len, err);
}

static int on_register_proxy(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp,
                             size_t *resp_len, struct err *err)
{
	int rc = grpcauth_check_write(write_auth, "RegisterReferenceValue", err);

	if (rc != 0)
		return rc;
	return forward(ctx, RVPS_METHOD_REGISTER, req, req_len, resp, resp_len, err);
}

static int on_query_batch_proxy(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp,
                                size_t *resp_len, struct err *err)
{
	return forward(ctx, RVPS_METHOD_QUERY_BATCH, req, req_len, resp, resp_len, err);
}

static int on_list_proxy(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp,
                         size_t *resp_len, struct err *err)
{
	return forward(ctx, RVPS_METHOD_LIST, req, req_len, resp, resp_len, err);
}

static int on_delete_proxy(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp,
                           size_t *resp_len, struct err *err)
{
	int rc = grpcauth_check_write(write_auth, "DeleteReferenceValue", err);

	if (rc != 0)
		return rc;
	return forward(ctx, RVPS_METHOD_DELETE, req, req_len, resp, resp_len, err);
}

static int on_audit_proxy(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp,
                          size_t *resp_len, struct err *err)
{
	return forward(ctx, RVPS_METHOD_AUDIT, req, req_len, resp, resp_len, err);
}

int rvps_grpc_serve_proxy(struct grpcx_server *s, struct grpcx_client *c)
{
	if (grpcx_server_add(s, RVPS_METHOD_QUERY, on_query_proxy, c) < 0 ||
	    grpcx_server_add(s, RVPS_METHOD_PROVENANCE, on_provenance_proxy, c) < 0 ||
	    grpcx_server_add(s, RVPS_METHOD_REGISTER, on_register_proxy, c) < 0 ||
	    grpcx_server_add(s, RVPS_METHOD_LIST, on_list_proxy, c) < 0 ||
	    grpcx_server_add(s, RVPS_METHOD_DELETE, on_delete_proxy, c) < 0 ||
	    grpcx_server_add(s, RVPS_METHOD_AUDIT, on_audit_proxy, c) < 0 ||
	    grpcx_server_add(s, RVPS_METHOD_QUERY_BATCH, on_query_batch_proxy, c) < 0)
		return -1;
	grpcx_server_set_serving(s, RVPS_SERVICE, 1);
	return 0;
}
