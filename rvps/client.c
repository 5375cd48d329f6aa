/*
 * client: talk to a remote RVPS over gRPC (rvps-tool, and the AS's GrpcRemote RVPS).
 * A thin typed layer over grpcx_call: pack the request, unpack the response, turn a
 * non-OK status into -1 with the peer's message in err->msg and the code in err->code.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "grpcauth.h"
#include "grpcx.h"
#include "reference.pb-c.h"
#include "rvps/rvps.h"

struct rvps_client {
	struct grpcx_client *g;
};

struct rvps_client *rvps_client_new(const char *addr, struct err *err)
{
	struct rvps_client *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		err_set(err, "out of memory");
		return NULL;
	}
	c->g = grpcx_client_new(addr, err);
	if (c->g == NULL) {
		free(c);
		return NULL;
	}
	return c;
}

struct rvps_client *rvps_client_new_files(const char *addr, const struct grpcx_tls_files *f,
                                          const char *what, struct err *err)
{
	struct rvps_client *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		err_set(err, "out of memory");
		return NULL;
	}
	c->g = grpcx_client_new_files(addr, f, what, err);
	if (c->g == NULL) {
		free(c);
		return NULL;
	}
	return c;
}

struct grpcx_client *rvps_client_channel(struct rvps_client *c)
{
	return c->g;
}

int rvps_client_set_bearer_file(struct rvps_client *c, const char *path, struct err *err)
{
	char *t = grpcauth_read_token(path, err);
	int rc;

	if (t == NULL)
		return -1;
	rc = grpcx_client_set_bearer(c->g, t, err);
	OPENSSL_cleanse(t, strlen(t));
	free(t);
	return rc;
}

void rvps_client_free(struct rvps_client *c)
{
	if (c == NULL)
		return;
	grpcx_client_free(c->g);
	free(c);
}

static int call(struct rvps_client *c, const char *method, const uint8_t *req, size_t len,
                uint8_t **resp, size_t *resp_len, int timeout_ms, struct err *err)
{
	int st = grpcx_call(c->g, method, req, len, resp, resp_len, timeout_ms, err);

	if (st == GRPCX_OK)
		return 0;
	if (st > 0 && err != NULL)
		err->code = st;
	return -1;
}

int rvps_client_register(struct rvps_client *c, const char *message_json, int timeout_ms,
                         struct err *err)
{
	Reference__ReferenceValueRegisterRequest req =
	    REFERENCE__REFERENCE_VALUE_REGISTER_REQUEST__INIT;
	uint8_t *buf, *resp = NULL;
	size_t len, resp_len;
	int rc;

	req.message = (char *)message_json;
	len = reference__reference_value_register_request__get_packed_size(&req);
	buf = malloc(len + 1);
	if (buf == NULL)
		return err_set(err, "out of memory");
	reference__reference_value_register_request__pack(&req, buf);
	rc = call(c, RVPS_METHOD_REGISTER, buf, len, &resp, &resp_len, timeout_ms, err);
	free(buf);
	free(resp);
	return rc;
}

static int query_method(struct rvps_client *c, const char *method, const char *id,
                        char **value_json, int timeout_ms, struct err *err)
{
	Reference__ReferenceValueQueryRequest req = REFERENCE__REFERENCE_VALUE_QUERY_REQUEST__INIT;
	Reference__ReferenceValueQueryResponse *out;
	uint8_t *buf, *resp = NULL;
	size_t len, resp_len = 0;
	int rc;

	*value_json = NULL;
	req.reference_value_id = (char *)id;
	len = reference__reference_value_query_request__get_packed_size(&req);
	buf = malloc(len + 1);
	if (buf == NULL)
		return err_set(err, "out of memory");
	reference__reference_value_query_request__pack(&req, buf);
	rc = call(c, method, buf, len, &resp, &resp_len, timeout_ms, err);
	free(buf);
	if (rc < 0)
		return -1;
	out = reference__reference_value_query_response__unpack(NULL, resp_len, resp);
	free(resp);
	if (out == NULL)
		return err_set(err,
		               "The RVPS answered with an invalid ReferenceValueQueryResponse");
	if (out->_reference_value_results_case ==
	        REFERENCE__REFERENCE_VALUE_QUERY_RESPONSE___REFERENCE_VALUE_RESULTS_REFERENCE_VALUE_RESULTS &&
	    out->reference_value_results != NULL) {
		*value_json = strdup(out->reference_value_results);
		if (*value_json == NULL)
			rc = err_set(err, "out of memory");
	}
	reference__reference_value_query_response__free_unpacked(out, NULL);
	return rc;
}

int rvps_client_query(struct rvps_client *c, const char *id, char **value_json, int timeout_ms,
                      struct err *err)
{
	return query_method(c, RVPS_METHOD_QUERY, id, value_json, timeout_ms, err);
}

int rvps_client_query_many(struct rvps_client *c, const char *const *ids, size_t n, json_t **values,
                           int timeout_ms, struct err *err)
{
	Reference__ReferenceValueBatchQueryRequest req =
	    REFERENCE__REFERENCE_VALUE_BATCH_QUERY_REQUEST__INIT;
	Reference__ReferenceValueBatchQueryResponse *out;
	uint8_t *buf, *resp = NULL;
	size_t len, resp_len = 0;

	*values = NULL;
	req.n_reference_value_ids = n;
	req.reference_value_ids = (char **)ids;
	len = reference__reference_value_batch_query_request__get_packed_size(&req);
	buf = malloc(len + 1);
	if (buf == NULL)
		return err_set(err, "out of memory");
	reference__reference_value_batch_query_request__pack(&req, buf);
	int rc = call(c, RVPS_METHOD_QUERY_BATCH, buf, len, &resp, &resp_len, timeout_ms, err);
	free(buf);
	if (rc < 0)
		return -1;
	out = reference__reference_value_batch_query_response__unpack(NULL, resp_len, resp);
	free(resp);
	if (out == NULL)
		return err_set(
		    err, "The RVPS answered with an invalid ReferenceValueBatchQueryResponse");
	*values =
	    json_loads(out->reference_value_results ? out->reference_value_results : "", 0, NULL);
	reference__reference_value_batch_query_response__free_unpacked(out, NULL);
	if (!json_is_object(*values)) {
		json_decref(*values);
		*values = NULL;
		return err_set(err, "The RVPS answered QueryReferenceValues with no JSON object");
	}
	return 0;
}

int rvps_client_query_provenance(struct rvps_client *c, const char *id, char **prov_json,
                                 int timeout_ms, struct err *err)
{
	return query_method(c, RVPS_METHOD_PROVENANCE, id, prov_json, timeout_ms, err);
}

int rvps_client_delete(struct rvps_client *c, const char *id, int *deleted, int timeout_ms,
                       struct err *err)
{
	Reference__ReferenceValueDeleteRequest req =
	    REFERENCE__REFERENCE_VALUE_DELETE_REQUEST__INIT;
	Reference__ReferenceValueDeleteResponse *out;
	uint8_t *buf, *resp = NULL;
	size_t len, resp_len = 0;

	*deleted = 0;
	req.reference_value_id = (char *)id;
	len = reference__reference_value_delete_request__get_packed_size(&req);
	buf = malloc(len + 1);
	if (buf == NULL)
		return err_set(err, "out of memory");
	reference__reference_value_delete_request__pack(&req, buf);
	if (call(c, RVPS_METHOD_DELETE, buf, len, &resp, &resp_len, timeout_ms, err) < 0) {
		free(buf);
		return -1;
	}
	free(buf);
	out = reference__reference_value_delete_response__unpack(NULL, resp_len, resp);
	free(resp);
	if (out == NULL)
		return err_set(err,
		               "The RVPS answered with an invalid ReferenceValueDeleteResponse");
	*deleted = out->deleted != 0;
	reference__reference_value_delete_response__free_unpacked(out, NULL);
	return 0;
}

static int list_method(struct rvps_client *c, const char *method, char **json, int timeout_ms,
                       struct err *err)
{
	Reference__ReferenceValueListResponse *out;
	uint8_t *resp = NULL;
	size_t resp_len = 0;
	int rc = 0;

	*json = NULL;
	/* ReferenceValueListRequest is empty: zero bytes */
	if (call(c, method, (const uint8_t *)"", 0, &resp, &resp_len, timeout_ms, err) < 0)
		return -1;
	out = reference__reference_value_list_response__unpack(NULL, resp_len, resp);
	free(resp);
	if (out == NULL)
		return err_set(err, "The RVPS answered with an invalid ReferenceValueListResponse");
	*json = strdup(out->reference_value_results ? out->reference_value_results : "");
	if (*json == NULL)
		rc = err_set(err, "out of memory");
	reference__reference_value_list_response__free_unpacked(out, NULL);
	return rc;
}

int rvps_client_list(struct rvps_client *c, char **list_json, int timeout_ms, struct err *err)
{
	return list_method(c, RVPS_METHOD_LIST, list_json, timeout_ms, err);
}

int rvps_client_audit(struct rvps_client *c, char **audit_json, int timeout_ms, struct err *err)
{
	return list_method(c, RVPS_METHOD_AUDIT, audit_json, timeout_ms, err);
}
