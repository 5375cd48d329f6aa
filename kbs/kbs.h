/*
 * kbs: the Key Broker Service daemon's internal interfaces (one header for the handful of
 * modules that make up the daemon: config, sessions, AS client, token verifier, admin auth,
 * resource policy, plugins, metrics, HTTP API).
 */
#ifndef CTRUSTEE_KBS_H
#define CTRUSTEE_KBS_H

#include <jansson.h>
#include <openssl/evp.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "rego/rego.h"

struct kv;

#define KBS_PROTOCOL_VERSION "0.4.0"
#define KBS_ERR_TYPE_PREFIX "https://github.com/confidential-containers/kbs/errors/"

/* ---------------- config (kbs/config.c) ---------------- */

enum kbs_admin_mode { KBS_ADMIN_DENY_ALL = 0, KBS_ADMIN_ALLOW_ALL, KBS_ADMIN_AUTHENTICATED };

struct kbs_idp {
	char *issuer;         /* NULL = not checked */
	char *audience;       /* NULL = not checked */
	char *public_key_uri; /* as configured */
	char *jwk_set_uri;
	EVP_PKEY *key; /* loaded from public_key_uri */
	json_t *jwks;  /* loaded from jwk_set_uri: {"keys":[...]} */
};

struct kbs_acl {
	char *role;
	char *pattern;
	regex_t re;
	unsigned methods; /* ours, allowed_methods: kbs_acl_method() bits; 0 = any (Trustee) */
};

struct kbs_strv {
	char **v;
	size_t n;
};

enum kbs_as_type { KBS_AS_NONE = 0, KBS_AS_GRPC, KBS_AS_BUILTIN, KBS_AS_INTEL_TA };

struct kbs_config {
	/* [http_server] */
	struct kbs_strv sockets;
	bool insecure_http;
	char *private_key;
	char *certificate;
	long long payload_request_size; /* MiB */
	long long worker_count;
	/* request handler threads; 0 = from the CPUs (server.c) */
	long long worker_threads;
	/* /attest's AS call and the Redis session round trips of /auth and /attest sent from the
	 * event loops (default true); false keeps them on the worker pool */
	bool loop_round_trips;
	char *tls_profile;     /* old | intermediate (default) | modern | custom */
	char *tls_min_version; /* "1.2" | "1.3" | NULL */
	char *tls_max_version;
	char *tls_ciphers; /* OpenSSL list; TLS_* names are TLS 1.3 suites */
	char *tls_groups;  /* NULL = the §8 default */
	/* /auth + /attest calls in progress: in all, and per client address (0 = no limit) */
	long long attestation_concurrency_limit;
	long long attestation_concurrency_limit_per_ip;
	/* connection budget (common/http.h): open connections (0 = RLIMIT_NOFILE less a
	 * reserve), per TCP peer (0 = none; trusted_proxies are exempt), deadlines in seconds for
	 * a request head and for its body, the least body rate (bytes/s, 0 = none), keep-alive */
	long long max_connections;
	long long max_connections_per_ip;
	long long request_head_timeout;
	long long request_body_timeout;
	long long min_request_body_rate;
	long long keep_alive_timeout;
	/* proxies whose forwarding header names the client (CIDRs), and which header */
	struct kbs_strv trusted_proxies;
	bool client_address_forwarded; /* "Forwarded" (RFC 7239) instead of X-Forwarded-For */
	/* [admin] */
	enum kbs_admin_mode admin_mode;
	struct kbs_idp *idps;
	size_t n_idps;
	struct kbs_acl *acls;
	size_t n_acls;
	/* [attestation_token] */
	struct kbs_strv trusted_certs_paths;
	struct kbs_strv trusted_jwk_sets;
	struct kbs_strv extra_teekey_paths;
	bool insecure_header_jwk;
	/* ours: an x5c leaf must list one of these extendedKeyUsage purposes (OIDs or OpenSSL
	 * short names) when it has any; none = any purpose but TLS-only (serverAuth/clientAuth) */
	struct kbs_strv trusted_signer_ekus;
	/* ours: when set, an x5c leaf's subject (RFC 2253: "CN=AS,O=Example") must be listed */
	struct kbs_strv trusted_signer_subjects;
	/* [attestation_service] */
	enum kbs_as_type as_type;
	char *as_addr;
	char *as_ca_cert;     /* PEM roots for an https:// as_addr (NULL: system roots) */
	char *as_client_cert; /* client certificate chain for mutual TLS (with as_client_key) */
	char *as_client_key;
	long long as_pool_size;
	long long session_timeout_min;
	long long as_timeout_s; /* each call to the AS (default 60; Trustee waits 300) */
	long long max_sessions; /* in-memory session table bound (default 100000) */
	/* /auth extra-params kept with a session, compact JSON bytes (default 64 KiB) */
	long long max_extra_params_size;
	/* ours: the in-memory session table's bytes (entries, nonces, tokens; default 256 MiB),
	 * the EAR token one session may keep, in memory or a store (default 256 KiB), and
	 * whether the test TEEs (sample, sampledevice) may open sessions (default true) */
	long long max_sessions_bytes;
	long long max_session_token_size;
	bool allow_sample_tee;
	/* [policy_engine] (Trustee's table; max_steps, max_memory_mib, timeout_ms are ours): the
	 * budgets of one resource-policy evaluation, rego.h defaults when absent */
	struct rego_limits policy_limits;
	/* storage */
	json_t *storage_backend;    /* borrowed from root, may be NULL */
	char *session_storage_type; /* else [storage_backend] storage_type, else NULL = Memory */
	/* [[plugins]] */
	bool plugin_resource;
	char *resource_backend;            /* "kvstorage" | "vault" */
	const json_t *resource_plugin_cfg; /* the [[plugins]] table, borrowed from root */
	bool plugin_sample;
	char *sample_item;
	char *unsupported_plugin; /* first [[plugins]] entry this build cannot run */
	json_t *root;
};

/* Parses and checks a loaded config document (TOML or JSON already turned into JSON) without
 * touching any other file: types, admin modes and keys, ACL anchoring, TLS version range.
 * 0 / -1 with a sentence in err. */
int kbs_config_from_json(json_t *root, struct kbs_config *cfg, struct err *err);
/* The start-up rules: HTTPS material, token trust material, supported AS type and plugins;
 * reads the admin identity providers' keys. */
int kbs_config_check_startup(struct kbs_config *cfg, struct err *err);
int kbs_config_load(const char *path, struct kbs_config *cfg, struct err *err);
void kbs_config_free(struct kbs_config *cfg);
/* The §5.3 load-time rule: starts with "^/kbs" and ends with "$". */
bool kbs_acl_pattern_anchored(const char *pattern);

/* ---------------- TLS (kbs/tls.c) ---------------- */

/* The HTTPS server context of §8: certificate chain and key, tls_profile, version range,
 * ciphers and groups. Returns an SSL_CTX * (as void *, so callers need no OpenSSL headers) or
 * NULL with a sentence naming the key. */
void *kbs_tls_server_ctx(const struct kbs_config *cfg, struct err *err);
/* What the context will negotiate, for the start-up log: "TLS 1.2-1.3, groups X25519:...". */
void kbs_tls_describe(const void *ctx, char *buf, size_t len);
void kbs_tls_ctx_free(void *ctx);

/* ---------------- request parsers (kbs/rcar_parse.c; fuzzed) ---------------- */

/* kbs-types Tee names (case-sensitive); returns 1 if known. */
int kbs_tee_known(const char *tee);
/* Full semver (MAJOR.MINOR.PATCH[-pre][+build]) satisfying "=0.4.0": build metadata allowed,
 * pre-release refused. 0 ok, -1 not a semver, -2 a semver that does not match. */
int kbs_version_check(const char *v);

struct kbs_auth_req {
	char *version;
	char *tee;
	json_t *extra_params; /* owned */
};
int kbs_auth_req_parse(const uint8_t *buf, size_t len, struct kbs_auth_req *out, struct err *err);
void kbs_auth_req_free(struct kbs_auth_req *r);

struct kbs_attest_req {
	char *nonce;
	json_t *tee_pubkey;        /* owned, members filtered to the TeePubKey shape */
	json_t *primary_evidence;  /* owned, any JSON */
	char *additional_evidence; /* "" or JSON text */
	char *init_data_format;    /* NULL when absent/null */
	char *init_data_body;
};
int kbs_attest_req_parse(const uint8_t *buf, size_t len, struct kbs_attest_req *out,
                         struct err *err);
void kbs_attest_req_free(struct kbs_attest_req *r);

/* TeePubKey (tagged by kty): keeps only {kty,alg,n,e} / {kty,crv,alg,x,y} / {kty,alg,pub}.
 * Returns a new object or NULL with err. */
json_t *kbs_teepubkey_parse(const json_t *v, struct err *err);
/* §7.1 resource path: exactly 3 segments, each [A-Za-z0-9_-][A-Za-z0-9_.-]*. */
bool kbs_resource_path_valid(const char *path);

/* ---------------- sessions (kbs/session.c) ---------------- */

enum kbs_session_state { KBS_SESSION_AUTHED = 1, KBS_SESSION_ATTESTED };

struct kbs_session {
	char id[33];
	enum kbs_session_state state;
	char tee[32];
	char *nonce;
	char *token;
	json_t *extra_params; /* request extra-params */
	long long expires;    /* unix seconds */
	/* in-memory table only: token was verified at /attest (kbs_token_verify_once) and its
	 * claims stand until this deadline (0: not verified here, the reads verify it) */
	double claims_until;
	/* in-memory table only, an Attested session kept as its verified claims: the table has
	 * no token for it (token NULL, nonce ""), and a read that finds no live claims
	 * (kbs_sessions_claims) refuses the session with this sentence, the one the full check
	 * of its token gives past claims_until ("token expired": claims that end at a chain's
	 * notAfter are not kept, the token is); static */
	const char *claims_lapse;
};

struct kbs_sessions;
/* In memory, at most `max` sessions (0 = 100000): when full, /auth evicts expired sessions,
 * then the oldest not yet attested; attested valid sessions are never evicted. */
struct kbs_sessions *kbs_sessions_new(size_t max, struct err *err);
/* Sessions in a key-value store (namespace kbs_protocol_session), shared by replicas. */
struct kbs_sessions *kbs_sessions_new_kv(struct kv *kv, struct err *err);
/* The budgets beyond the count; without this call a table has no byte bound, no token cap
 * and treats every TEE alike. */
struct kbs_session_limits {
	size_t max_bytes;      /* in-memory table: entries + nonces + tokens; 0 = none */
	size_t max_token_size; /* a token kept in a session, memory or store; 0 = none */
	/* test TEEs' sessions (kbs_tee_is_test) make room for the others: when the table is
	 * full, a real TEE's /auth or /attest evicts them, attested or not, before any real
	 * TEE's session; a test TEE's /auth still never evicts an attested session */
	bool test_tees_yield;
};
void kbs_sessions_set_limits(struct kbs_sessions *s, const struct kbs_session_limits *l);
/* sample and sampledevice: evidence anyone can write, for tests. */
bool kbs_tee_is_test(const char *tee);
void kbs_sessions_free(struct kbs_sessions *s);
/* Creates an Authed session; fills id. 0, -1 the store failed or no memory (err says which),
 * -2 the in-memory table is full of attested valid sessions. */
int kbs_sessions_create(struct kbs_sessions *s, const char *tee, const char *nonce,
                        const json_t *extra_params, long long expires, char id_out[33],
                        struct err *err);
/* Copies the live session into *out (free with kbs_session_clear). 0 found, 1 absent or
 * expired (an expired record is removed), -1 the shared store did not answer. */
int kbs_sessions_get(struct kbs_sessions *s, const char *id, struct kbs_session *out);
/* kbs_sessions_get with the reason of a -1 in err ("session store unavailable: <cause>",
 * without storage hosts). */
int kbs_sessions_lookup(struct kbs_sessions *s, const char *id, struct kbs_session *out,
                        struct err *err);
/* Authed -> Attested with token: consumes the session's nonce, once across every replica
 * sharing the store. 0 done, 1 session gone, 2 nonce already consumed (the session was
 * attested before, or a concurrent /attest won), 3 the token is over max_token_size, -1
 * storage error, -2 the in-memory table has no room for the token (err says which). */
int kbs_sessions_set_attested(struct kbs_sessions *s, const char *id, const char *token);
/* kbs_sessions_set_attested with the reason of a -1 in err. */
int kbs_sessions_attest(struct kbs_sessions *s, const char *id, const char *token, struct err *err);
/* Whether the table keeps verified claims (in memory: yes; a shared store: no, a replica that
 * reads the session verifies the token itself). */
bool kbs_sessions_keep_claims(const struct kbs_sessions *s);
/* kbs_sessions_attest for a token whose verification gave `claims` (NULL: it was not
 * verified), which then stand until `until`. In memory the session then keeps the text of
 * the token's payload (what `claims` were parsed from) instead of the token; a shared store
 * keeps the token alone, and this replica's copy the token and the mark. */
int kbs_sessions_attest_verified(struct kbs_sessions *s, const char *id, const char *token,
                                 json_t *claims, double until, struct err *err);
/* The verified claims of an attested in-memory session, parsed again from the payload text of
 * the token verified at /attest (new reference), while now is before
 * their deadline: 0. 1 when there are none to use (no such live session, not attested, no
 * claims kept, past their deadline, or a shared store): the caller takes the token path. */
int kbs_sessions_claims(struct kbs_sessions *s, const char *id, json_t **claims);
/* kbs_sessions_claims would hand out the claims of id now (the same checks), without
 * decoding them: for a caller that kept the claims it gave the session (server.c). */
bool kbs_sessions_claims_live(struct kbs_sessions *s, const char *id);
/* Sessions the in-memory table evicted to make room, by reason. */
void kbs_sessions_evictions(struct kbs_sessions *s, unsigned long long *expired,
                            unsigned long long *unattested);
/* Remove expired sessions; returns the number removed. */
size_t kbs_sessions_sweep(struct kbs_sessions *s);
size_t kbs_sessions_count(struct kbs_sessions *s);
/* The in-memory table's bytes as max_sessions_bytes counts them (0 with a store). */
size_t kbs_sessions_bytes(struct kbs_sessions *s);
void kbs_session_clear(struct kbs_session *ss);
/* The store's round trips of create, lookup and attest_verified sent on an event loop's
 * kv_loop (kv/kv_loop.h) instead of blocking, for sessions in a kv (kbs_sessions_new_kv) on
 * Redis: the same records, keys, copies, answers and sentences, given to done(arg, rc, err)
 * on that loop, exactly once, maybe before the call returns (a copy answered, or a refusal);
 * id_out and out belong to the caller and must outlive the call. */
struct kv_loop;
typedef void (*kbs_sessions_done_fn)(void *arg, int rc, struct err *err);
void kbs_sessions_create_loop(struct kbs_sessions *s, struct kv_loop *l, const char *tee,
                              const char *nonce, const json_t *extra_params, long long expires,
                              char id_out[33], kbs_sessions_done_fn done, void *arg);
void kbs_sessions_lookup_loop(struct kbs_sessions *s, struct kv_loop *l, const char *id,
                              struct kbs_session *out, kbs_sessions_done_fn done, void *arg);
void kbs_sessions_attest_loop(struct kbs_sessions *s, struct kv_loop *l, const char *id,
                              const char *token, json_t *claims, double until,
                              kbs_sessions_done_fn done, void *arg);

/* ---------------- attestation backends (kbs/as_backends.c, kbs/as_client.c) ----------------
 * What answers /auth, /attest and the AS-side admin calls: one row per [attestation_service]
 * type, every slot named, NULL where the backend has no such call; as_backends.c lists the
 * rows and dispatches. Rows: coco_as_grpc (as_client.c, a gRPC AS), intel_ta
 * (as_intel_ta.c, Intel Trust Authority), coco_as_builtin (as_builtin.c, the AS in process). */

struct kbs_as_backend {
	const char *name;      /* Trustee's [attestation_service] type, e.g. "coco_as_grpc" */
	enum kbs_as_type type; /* what config.c parsed that name into */
	/* cfg: [attestation_service] (as_addr, TLS files); returns state, NULL with err */
	void *(*open)(const struct kbs_config *cfg, int timeout_ms, struct err *err);
	void (*free)(void *be);
	char *(*evaluate)(void *be, const json_t *requests, struct err *err);
	int (*set_policy)(void *be, const char *id, const char *policy_b64, struct err *err);
	int (*rv_register)(void *be, const char *message, struct err *err);
	int (*rv_query)(void *be, const char *id, char **out, struct err *err);
	char *(*challenge)(void *be, const char *tee, const char *tee_params, struct err *err);
	/* the /auth answer's extra-params for a non-se TEE, given the request's (new reference);
	 * NULL with err refuses the /auth. NULL slot: "" */
	json_t *(*auth_params)(void *be, const char *tee, const json_t *extra, struct err *err);
	/* NULL: nothing to probe (the backend runs in-process), always ready */
	int (*ready)(void *be, int timeout_ms, struct err *err);
	/* Prometheus text the backend adds to the kbs's /metrics (malloc'd); NULL slot: none.
	 * The built-in AS's counters, which grpc-as serves on its own port. */
	char *(*metrics)(void *be, size_t *len);
};
extern const struct kbs_as_backend kbs_as_coco_grpc, kbs_as_intel_ta;
/* coco_as_builtin (as_builtin.c): the AS library (as/as.h) in process. */
extern const struct kbs_as_backend kbs_as_coco_builtin;
/* The verification requests (as kbs_as_evaluate takes them) as an AttestationRequest with
 * policy_ids ["default"], packed into *buf (malloc'd); 0 / -1 with err (as_client.c). */
int kbs_as_request_pack(const json_t *requests, uint8_t **buf, size_t *len, struct err *err);
/* AttestationEvaluate from an event loop without blocking it (as_client.c): a client of the
 * coco_as_grpc backend's AS for the loop of `base`, used only on that loop's thread; NULL
 * with err when this backend or its address cannot be driven that way (not coco_as_grpc, an
 * https:// or host-name as_addr: see grpcx_async_new), and the caller keeps the blocking
 * kbs_as_evaluate. At most max_inflight calls at once (kbs_as_loop_full). The answer comes to
 * cb on the loop, later: a token (malloc'd, cb's) or NULL with err as kbs_as_evaluate fills
 * it (err->code the gRPC status), after the same AS-link log line. kbs_as_loop_evaluate: 0,
 * or -1 with err and cb never runs. */
struct event_base;
struct kbs_as;
struct kbs_as_loop;
typedef void (*kbs_as_token_cb)(void *arg, char *token, struct err *err);
struct kbs_as_loop *kbs_as_loop_new(struct kbs_as *a, struct event_base *base, int max_inflight,
                                    struct err *err);
struct kbs_as_loop *kbs_as_grpc_loop_new(void *state, struct event_base *base, int max_inflight,
                                         struct err *err);
int kbs_as_loop_full(const struct kbs_as_loop *l);
int kbs_as_loop_evaluate(struct kbs_as_loop *l, const json_t *requests, kbs_as_token_cb cb,
                         void *arg, struct err *err);
/* Calls in flight are answered at once (UNAVAILABLE); then freed. */
void kbs_as_loop_free(struct kbs_as_loop *l);
/* Every attestation backend, NULL-terminated. */
extern const struct kbs_as_backend *const kbs_as_backends[];

struct kbs_as;
/* Opens the backend cfg->as_type names, with the [attestation_service] TLS files (as_ca_cert,
 * as_client_cert, as_client_key; each may be NULL) for an https:// as_addr. NULL with err
 * when the type has no backend in this build or it cannot be opened. */
struct kbs_as *kbs_as_new_tls(const struct kbs_config *cfg, int timeout_ms, struct err *err);
void kbs_as_free(struct kbs_as *a);
const char *kbs_as_name(const struct kbs_as *a);
/* verification_requests: array of
 * {"tee","evidence_text","runtime_data_text","hash","init_data_toml"?}. Returns a malloc'd token or
 * NULL with err. */
char *kbs_as_evaluate(struct kbs_as *a, const json_t *requests, struct err *err);
int kbs_as_set_policy(struct kbs_as *a, const char *id, const char *policy_b64, struct err *err);
/* 0 registered / -1 */
int kbs_as_rv_register(struct kbs_as *a, const char *message, struct err *err);
/* 0 found (*out malloc'd JSON text), 1 not found, -1 error */
int kbs_as_rv_query(struct kbs_as *a, const char *id, char **out, struct err *err);
/* grpc.health.v1 Check of the AttestationService: 0 serving, -1 not (err says why). */
int kbs_as_ready(struct kbs_as *a, int timeout_ms, struct err *err);
/* The backend's own metrics text for /metrics (malloc'd), or NULL when it has none. */
char *kbs_as_metrics(struct kbs_as *a, size_t *len);
/* For `se`: returns the challenge string or NULL. */
char *kbs_as_challenge(struct kbs_as *a, const char *tee, const char *tee_params, struct err *err);
/* The /auth extra-params for any other TEE (new reference; "" when a is NULL or the backend
 * has no say), NULL with err when the backend refuses the request's extra-params. */
json_t *kbs_as_auth_params(struct kbs_as *a, const char *tee, const json_t *extra, struct err *err);

/* ---------------- resource backends (kbs/resource.c, kbs/resource_*.c) ----------------
 * The `resource` plugin's storage: kvstorage (namespace `repository` of [storage_backend],
 * resource_kv.c) or HashiCorp Vault / OpenBao KV v1 (kbs-protocol.md §7.2, resource_vault.c).
 * Each backend file defines one row `kbs_resource_<name>`, every slot named; resource.c lists
 * the rows and picks one by the plugin's storage_backend_type once, at start-up. Paths are
 * repo/type/tag, already checked by kbs_resource_path_valid. */

struct kbs_resources;
struct kbs_resource_backend {
	const char *name; /* storage_backend_type, matched without case: "kvstorage", "Vault" */
	/* plugin: the [[plugins]] resource table (may be NULL); kv: the daemon's store,
	 * borrowed. Returns the backend's state, NULL with a sentence naming the bad key. */
	void *(*open)(const json_t *plugin, struct kv *kv, struct err *err);
	/* 0 found (*val malloc'd), 1 not found, -1 error */
	int (*get)(void *be, const char *path, uint8_t **val, size_t *len, struct err *err);
	/* get without waiting on the store (an event loop): as get, or KBS_RESOURCE_UNKNOWN when
	 * the answer needs a round trip. NULL: every peek is unknown */
	int (*peek)(void *be, const char *path, uint8_t **val, size_t *len, struct err *err);
	int (*set)(void *be, const char *path, const uint8_t *val, size_t len, struct err *err);
	/* 0 deleted, 1 not found, -1 error */
	int (*del)(void *be, const char *path, struct err *err);
	void (*free)(void *be);
};
extern const struct kbs_resource_backend kbs_resource_kvstorage, kbs_resource_vault;
/* Every resource backend, NULL-terminated; the first is the default. */
extern const struct kbs_resource_backend *const kbs_resource_backends[];
/* Opens the backend the config names (kv is the daemon's store, borrowed). */
struct kbs_resources *kbs_resources_new(const struct kbs_config *cfg, struct kv *kv,
                                        struct err *err);
void kbs_resources_free(struct kbs_resources *r);
const char *kbs_resources_name(const struct kbs_resources *r);
int kbs_resources_get(struct kbs_resources *r, const char *path, uint8_t **val, size_t *len,
                      struct err *err);
/* kbs_resources_get that never waits: KBS_RESOURCE_UNKNOWN when only a round trip to the
 * backend would tell (always for a backend without peek). */
#define KBS_RESOURCE_UNKNOWN 2
int kbs_resources_peek(struct kbs_resources *r, const char *path, uint8_t **val, size_t *len,
                       struct err *err);
/* Whether the backend may answer a peek at all. */
bool kbs_resources_can_peek(const struct kbs_resources *r);
int kbs_resources_set(struct kbs_resources *r, const char *path, const uint8_t *val, size_t len,
                      struct err *err);
int kbs_resources_delete(struct kbs_resources *r, const char *path, struct err *err);

/* ---------------- plugins (kbs/plugins.c, kbs/plugins/<name>.c) ----------------
 * The §7.1 contract for plugins other than resource and sample: each file defines one row
 * `kbs_plugin_<name>`, every slot named; plugins.c lists the rows. A [[plugins]] entry whose
 * name has a row is opened at start-up with its table; a request to /kbs/v0/<name>/... asks
 * validate_auth, then runs the admin check or the token + resource-policy gate, then handle,
 * then (attestation path only) needs_encryption. */

struct kbs_plugin_req {
	const uint8_t *body;
	size_t body_len;
	const json_t *query; /* object of strings */
	const json_t *path;  /* array of the segments after the plugin name */
	const char *method;  /* "GET", "POST", ... */
};

struct kbs_plugin {
	const char *name; /* the [[plugins]] name and the URL segment */
	/* cfg: the [[plugins]] table (borrowed). Returns state, NULL with a sentence. */
	void *(*open)(const json_t *cfg, struct err *err);
	void (*free)(void *st);
	/* 1 admin authentication required, 0 not, -1 err */
	int (*validate_auth)(void *st, const struct kbs_plugin_req *q, struct err *err);
	/* 0 with *out malloc'd (may be empty), -1 err */
	int (*handle)(void *st, const struct kbs_plugin_req *q, uint8_t **out, size_t *len,
	              struct err *err);
	/* 1 encrypt the answer to the tee-pubkey, 0 return it as is, -1 err */
	int (*needs_encryption)(void *st, const struct kbs_plugin_req *q, struct err *err);
};
extern const struct kbs_plugin kbs_plugin_external, kbs_plugin_pkcs11, kbs_plugin_nebula_ca;
/* Every tabled plugin, NULL-terminated. */
extern const struct kbs_plugin *const kbs_plugins[];
/* The row named `name`, or NULL. */
const struct kbs_plugin *kbs_plugin_find(const char *name);

/* ---------------- concurrency limits (kbs/limits.c) ---------------- */

struct kbs_limiter;
/* max / per_addr <= 0: no limit. */
struct kbs_limiter *kbs_limiter_new(long long max, long long per_addr);
void kbs_limiter_free(struct kbs_limiter *l);
/* 0 admitted (call kbs_limiter_leave later), 1 the global limit is reached, 2 this address's. */
int kbs_limiter_enter(struct kbs_limiter *l, const char *addr);
void kbs_limiter_leave(struct kbs_limiter *l, const char *addr);
long long kbs_limiter_inflight(struct kbs_limiter *l);

/* ---------------- client address behind proxies (kbs/client_addr.c; fuzzed) ---------------- */

struct kbs_cidrs;
/* "10.0.0.0/8", "192.0.2.7", "2001:db8::/32": 0 / -1 with a sentence naming the entry. */
int kbs_cidrs_parse(const struct kbs_strv *list, struct kbs_cidrs **out, struct err *err);
void kbs_cidrs_free(struct kbs_cidrs *c);
size_t kbs_cidrs_count(const struct kbs_cidrs *c);
/* Is the address text (an IP literal) inside one of the ranges? */
int kbs_cidrs_contains(const struct kbs_cidrs *c, const char *addr);
/* The client's address in canonical text: the TCP peer, or, when the peer is a trusted proxy,
 * the right-most hop of the forwarding header (`hdr`, every such header joined with ",";
 * NULL when absent) that is not a trusted proxy. forwarded: hdr is RFC 7239 Forwarded rather
 * than X-Forwarded-For. */
void kbs_client_addr(const struct kbs_cidrs *trusted, int forwarded, const char *peer,
                     const char *hdr, size_t hlen, char *out, size_t n);

/* ---------------- trusted JWK sets (kbs/jwks.c) ---------------- */

struct kbs_jwks;
/* file:// or path sources are read now (an error refuses the start); https:// sources are
 * fetched now and on demand (an unreachable server is logged, not fatal). */
struct kbs_jwks *kbs_jwks_new(const struct kbs_strv *uris, struct err *err);
void kbs_jwks_free(struct kbs_jwks *j);
/* The JWK with this kid (new reference) or NULL with err; refreshes stale or rotated sets. */
json_t *kbs_jwks_find(struct kbs_jwks *j, const char *kid, struct err *err);
size_t kbs_jwks_count(struct kbs_jwks *j);
/* Whether any source is a URL: a lookup may then wait on a fetch (up to its timeouts). */
bool kbs_jwks_remote(const struct kbs_jwks *j);
/* The trusted JWK (a new reference) whose public key equals jwk's, or NULL with a sentence;
 * misses refetch as kbs_jwks_find does. */
json_t *kbs_jwks_find_key(struct kbs_jwks *j, const json_t *jwk, struct err *err);

/* ---------------- token verification (kbs/token.c) ---------------- */

/* Seconds a token is still taken after its exp (the deadline of the claims a session keeps,
 * kbs_token_verify_once). */
#define KBS_TOKEN_EXP_LEEWAY 60
struct kbs_token_verifier;
struct kbs_token_verifier *kbs_token_verifier_new(const struct kbs_config *cfg, struct err *err);
void kbs_token_verifier_free(struct kbs_token_verifier *v);
/* Whether a verification may wait on the network (a trusted_jwk_sets URL fetched or
 * refreshed): such a verification must not run on an event loop. */
bool kbs_token_verifier_may_fetch(const struct kbs_token_verifier *v);
/* Verifies an attestation JWT per §4.2; returns the claims (new reference) or NULL. */
json_t *kbs_token_verify(struct kbs_token_verifier *v, const char *token, struct err *err);
/* The same check without the verified-token memo (neither read nor filled), for a token the
 * caller keeps the claims of itself: *until gets the time (seconds since the epoch) up to
 * which the claims stand in for the token, the same deadline the memo would give it (its exp
 * plus the leeway, or its x5c chain's earliest notAfter if sooner), or 0 when they must not be
 * reused (the key came from trusted_jwk_sets, which are refreshed). */
json_t *kbs_token_verify_once(struct kbs_token_verifier *v, const char *token, double *until,
                              struct err *err);
/* §4.3: tee-pubkey from verified claims (new reference, TeePubKey-filtered) or NULL. */
json_t *kbs_token_teepubkey(struct kbs_token_verifier *v, const json_t *claims, struct err *err);

/* ---------------- admin (kbs/admin.c) ---------------- */

/* Checks the Authorization header for `uri`. 0 allowed; -1 with err->msg the admin error
 * text of §1.4 ("Admin access denied: ..."). */
int kbs_admin_check(const struct kbs_config *cfg, const char *authorization, const char *uri,
                    struct err *err);
/* The same for a request with `method` ("GET", "POST", ...): an ACL entry that lists
 * allowed_methods grants only those. kbs_admin_check is this with any method. */
int kbs_admin_check_method(const struct kbs_config *cfg, const char *authorization,
                           const char *method, const char *uri, struct err *err);
/* The bit of an HTTP method name in kbs_acl.methods (case-insensitive); 0 if not one the
 * KBS routes (GET, POST, PUT, DELETE). */
unsigned kbs_acl_method(const char *name);

/* ---------------- resource policy (kbs/policy.c) ---------------- */

struct kbs_policy;
struct kbs_policy *kbs_policy_new(struct kv *kv, struct err *err);
void kbs_policy_free(struct kbs_policy *p);
/* Writes the default policy unless one is stored. */
int kbs_policy_init_default(struct kbs_policy *p, struct err *err);
/* 0 allowed, 1 denied (*explain may be set, malloc'd), -1 engine error (err). */
int kbs_policy_eval(struct kbs_policy *p, const json_t *claims, const json_t *data, char **explain,
                    struct err *err);
/* kbs_policy_eval for a caller that must not wait (an event loop): KBS_POLICY_UNKNOWN, nothing
 * counted and nothing to free, when the answer needs a worker: the stored text is not known
 * without a round trip (kv_peek), it is not the text compiled last, or the evaluation ran out
 * of the loop's budgets where the configured ones are larger (policy.c). Then call
 * kbs_policy_eval from a worker. */
#define KBS_POLICY_UNKNOWN 2
int kbs_policy_eval_nowait(struct kbs_policy *p, const json_t *claims, const json_t *data,
                           char **explain, struct err *err);
/* Validates (compiles) and stores. 0 / -1. */
int kbs_policy_set(struct kbs_policy *p, const char *rego, size_t len, struct err *err);
/* The budgets of every later evaluation ([policy_engine] of the config). */
void kbs_policy_set_limits(struct kbs_policy *p, const struct rego_limits *l);
extern const char kbs_default_policy[];

/* ---------------- metrics (kbs/kbs_metrics.c) ---------------- */

enum kbs_counter {
	KM_HTTP_REQUESTS = 0,
	KM_POLICY_EVALS,
	KM_POLICY_APPROVALS,
	KM_POLICY_VIOLATIONS,
	KM_POLICY_ERRORS,
	KM_ATTEST_REQUESTS,
	KM_ATTEST_ERRORS,
	KM_AUTH_REQUESTS,
	KM_AUTH_SUCCESSES,
	KM_AUTH_ERRORS,
	KM_LOOP_ANSWERS, /* ours: /kbs requests answered on an event loop, not the pool */
	KM__N
};
enum kbs_labelled {
	KML_RES_READS = 0,
	KML_RES_WRITES,
	KML_RES_DELETES,
	KML_ATT_OK,
	KML_ATT_FAIL,
	KML_SESSION_EVICTIONS, /* reason: expired | unattested | test_tee */
	/* limit: attestation_concurrency_limit[_per_ip] | max_sessions | max_sessions_bytes |
	 * max_session_token_size */
	KML_LIMIT_REFUSALS,
	KML_PLUGIN_REQUESTS, /* plugin_name: the external backend */
	KML_PLUGIN_ERRORS,
	KML__N
};
void kbs_metrics_init(void);
void kbs_metrics_inc(enum kbs_counter c);
void kbs_metrics_inc_label(enum kbs_labelled m, const char *label);
void kbs_metrics_active(int delta);
void kbs_metrics_http_observe(double seconds, size_t req_size, size_t resp_size);
/* kbs_plugin_request_duration_seconds{plugin_name=backend} */
void kbs_metrics_plugin_observe(const char *backend, double seconds);
/* Prometheus text exposition, malloc'd. */
char *kbs_metrics_render(void);

/* ---------------- client-facing causes (kbs/cause.c) ---------------- */

/* Copies an internal error sentence for a client: "at <host>:<port>" and URLs are left out
 * ("redis at 10.0.0.5:6379 unreachable: Connection refused" -> "redis unreachable:
 * Connection refused"), so a detail can say what failed without mapping the network. */
void kbs_scrub_hosts(const char *in, char *out, size_t n);

/* ---------------- the daemon (kbs/server.c) ---------------- */

struct kbs_server;
/* Takes ownership of *cfg (zeroed on return). Opens storage, connects the AS, writes the
 * default resource policy, binds the sockets. */
struct kbs_server *kbs_server_new(struct kbs_config *cfg, struct err *err);
int kbs_server_start(struct kbs_server *k, struct err *err);
/* The bound port of socket i (port 0 in the config picks a free one). */
int kbs_server_port(const struct kbs_server *k, size_t i);
void kbs_server_stop(struct kbs_server *k);
void kbs_server_free(struct kbs_server *k);

#endif
