/*
 * rvps: the reference value store, usable in-process (the AS's BuiltIn RVPS) and behind the
 * rvps daemon's gRPC service. Messages and storage are Trustee's (as-rvps.md §7.2, §7.3):
 * register = {"version":"0.1.0","type":"sample"|...,"payload":...} run through the named
 * extractor, each value stored under reference_value:<name> as
 * {"version":"0.1.0","name":...,"expiration":"YYYY-MM-DDTHH:MM:SSZ","value":...}.
 */
#ifndef CTRUSTEE_RVPS_H
#define CTRUSTEE_RVPS_H

#include <jansson.h>

#include "err.h"

struct rvps;
struct kv;

/* config = the RVPS JSON config object ({"storage": StorageBackendConfig, "extractors": {...}})
 * or NULL for Memory storage. */
struct rvps *rvps_new(const json_t *config, struct err *err);
/* An RVPS on an existing key-value store (borrowed: it must outlive the RVPS and is not
 * closed by rvps_free) — the AS's BuiltIn RVPS on the AS storage backend. */
struct rvps *rvps_new_with_kv(struct kv *kv, struct err *err);
/* The same with the RVPS config's other members (borrowed, may be NULL): "extractors",
 * "verification_time", "lifetime_seconds" ("storage" is not read) — the AS's rvps_config. */
struct rvps *rvps_new_with_kv_config(struct kv *kv, const json_t *config, struct err *err);
void rvps_free(struct rvps *r);
/* How many reference values one register message may carry: the config's
 * "max_reference_values_per_message", default RVPS_MAX_VALUES_DEFAULT; a message with more is
 * refused whole, before anything is stored. rvps_set_max_values(r, 0) restores the default. */
#define RVPS_MAX_VALUES_DEFAULT 4096
void rvps_set_max_values(struct rvps *r, long long n);
/* message_json: the register message text. Returns 0 or -1 with a sentence in err. */
int rvps_register(struct rvps *r, const char *message_json, struct err *err);
/* *value_json = compact JSON text of the stored value (malloc'd), NULL when the id is unknown.
 * Returns 0 (found or not) or -1 on a storage error. */
int rvps_query(struct rvps *r, const char *id, char **value_json, struct err *err);

/* *values = a JSON object (new reference) of the ids[0..n) that have a value (not expired),
 * read from the store in one round trip where it can (kv_get_many). Returns 0 or -1 on a
 * storage error (nothing in *values). */
int rvps_query_many(struct rvps *r, const char *const *ids, size_t n, json_t **values,
                    struct err *err);

/* rvps_query and rvps_query_many from what the store knows without waiting (kv_peek), for
 * an event loop: the same answers and returns, or KV_PEEK_UNKNOWN when only a read that may
 * block can tell (the store must be asked, a read failed, or the documents are larger than
 * RVPS_PEEK_MAX bytes in all, left to parse off the loop); then nothing is set. */
#define RVPS_PEEK_MAX (64 * 1024)
int rvps_query_peek(struct rvps *r, const char *id, char **value_json, struct err *err);
int rvps_query_many_peek(struct rvps *r, const char *const *ids, size_t n, json_t **values,
                         struct err *err);

/* *prov_json = the provenance document stored with the value (see rvps.c; malloc'd), NULL
 * when there is none. Returns 0 or -1 on a storage error. */
int rvps_query_provenance(struct rvps *r, const char *id, char **prov_json, struct err *err);

/* *list_json = compact JSON array of every stored value sorted by name, each the stored
 * document {"version","name","expiration","value"} plus "expired": true|false (malloc'd).
 * Returns 0 or -1 on a storage error. */
int rvps_list(struct rvps *r, char **list_json, struct err *err);
/* Removes a value and its provenance; *deleted = 1 when it existed (then an audit entry is
 * appended), 0 when there was nothing to delete. Returns 0 or -1 on a storage error. */
int rvps_delete(struct rvps *r, const char *id, int *deleted, struct err *err);
/* *audit_json = compact JSON array of the audit trail, oldest first, each entry
 * {"id","time","action":"register"|"delete","names":[...],"provenance"?} (malloc'd). */
int rvps_audit(struct rvps *r, char **audit_json, struct err *err);

/* ---- gRPC side (rvps/grpc_service.c, rvps/client.c) ---- */

struct grpcx_server;
struct grpcx_client;

#define RVPS_SERVICE "reference.ReferenceValueProviderService"
#define RVPS_METHOD_QUERY "/reference.ReferenceValueProviderService/QueryReferenceValue"
#define RVPS_METHOD_REGISTER "/reference.ReferenceValueProviderService/RegisterReferenceValue"
#define RVPS_METHOD_LIST "/reference.ReferenceValueProviderService/ListReferenceValues"
#define RVPS_METHOD_DELETE "/reference.ReferenceValueProviderService/DeleteReferenceValue"
/* Our extension: the audit trail, in a ListResponse. */
#define RVPS_METHOD_AUDIT "/reference.ReferenceValueProviderService/ListReferenceValueAudit"
/* Our extension: several ids in one call (ReferenceValueBatchQueryRequest, at most
 * RVPS_BATCH_MAX ids), the values found as one JSON object in a BatchQueryResponse. */
#define RVPS_METHOD_QUERY_BATCH "/reference.ReferenceValueProviderService/QueryReferenceValues"
#define RVPS_BATCH_MAX 256
/* Our extension: the provenance document of a value, in a QueryResponse. */
#define RVPS_METHOD_PROVENANCE                                                                     \
	"/reference.ReferenceValueProviderService/QueryReferenceValueProvenance"

/* Serve reference.ReferenceValueProviderService from the local store r (borrowed, must
 * outlive the server) and mark it SERVING in the health service. Call before start. */
int rvps_grpc_serve(struct grpcx_server *s, struct rvps *r);
/* Serve the same service by forwarding each call's bytes unchanged to a remote RVPS
 * (grpc-as with a GrpcRemote RVPS). c is borrowed. */
int rvps_grpc_serve_proxy(struct grpcx_server *s, struct grpcx_client *c);
/* Who may call RegisterReferenceValue on the service of this process (borrowed, NULL = open):
 * checked before the local store or the remote RVPS sees the message (common/grpcauth.h). */
struct grpcauth;
void rvps_grpc_set_write_auth(const struct grpcauth *auth);
/* A remote RVPS client sends the token on the first line of `path` as `authorization: Bearer`
 * with every call (the rvps's admin.bearer_token_file holds the same). */
struct rvps_client;
int rvps_client_set_bearer_file(struct rvps_client *c, const char *path, struct err *err);

/* Prometheus text of the service's query and registration counters (malloc'd), or NULL. */
char *rvps_metrics_render(size_t *len);

/* A client of a remote RVPS (addr "http://127.0.0.1:50003", "http://" optional). */
struct rvps_client;
struct rvps_client *rvps_client_new(const char *addr, struct err *err);
struct grpcx_tls_files;
/* The same over TLS when addr is https:// (files may be NULL: system roots, no client
 * certificate); `what` names the setting in errors. */
struct rvps_client *rvps_client_new_files(const char *addr, const struct grpcx_tls_files *f,
                                          const char *what, struct err *err);
/* The client's channel (borrowed), e.g. for rvps_grpc_serve_proxy. */
struct grpcx_client *rvps_client_channel(struct rvps_client *c);
void rvps_client_free(struct rvps_client *c);
/* Return 0, or -1 with the peer's status message in err->msg and the gRPC status code in
 * err->code. Query sets *value_json (malloc'd) or leaves it NULL when the id is unknown. */
int rvps_client_register(struct rvps_client *c, const char *message_json, int timeout_ms,
                         struct err *err);
int rvps_client_query(struct rvps_client *c, const char *id, char **value_json, int timeout_ms,
                      struct err *err);
/* QueryReferenceValues: *values = a JSON object (new reference) of the ids[0..n) that have a
 * value. A Trustee RVPS answers GRPCX_UNIMPLEMENTED in err->code. */
int rvps_client_query_many(struct rvps_client *c, const char *const *ids, size_t n, json_t **values,
                           int timeout_ms, struct err *err);
/* The same for the value's provenance document. */
int rvps_client_query_provenance(struct rvps_client *c, const char *id, char **prov_json,
                                 int timeout_ms, struct err *err);
/* ListReferenceValues / ListReferenceValueAudit: *json malloc'd as rvps_list / rvps_audit. */
int rvps_client_list(struct rvps_client *c, char **list_json, int timeout_ms, struct err *err);
int rvps_client_audit(struct rvps_client *c, char **audit_json, int timeout_ms, struct err *err);
/* DeleteReferenceValue: *deleted as rvps_delete. */
int rvps_client_delete(struct rvps_client *c, const char *id, int *deleted, int timeout_ms,
                       struct err *err);

#endif
