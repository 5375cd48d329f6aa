/*
 * grpcx: unary gRPC server and client, carrying raw protobuf bytes; callers pack/unpack with
 * protobuf-c. The server speaks HTTP/2 itself on libnghttp2 (grpcx.c, grpcx_h2.c): the front
 * that owns its port (grpcfront.c) reads each connection on an event loop, terminates TLS,
 * and feeds an nghttp2 session; a complete call is answered on the loop by its method's try
 * handler when it can (grpcx_server_add_try), else runs on one of `workers` handler threads
 * fed from a FIFO (a slow handler never delays the acceptance or the loop answers of other
 * calls) and its reply is written by that worker (plaintext, loop idle) or by the loop. It
 * serves the standard grpc.health.v1.Health/Check itself (on the loop) and
 * answers unknown methods UNIMPLEMENTED. Messages up to 64 MiB, uncompressed. The client
 * (grpcx_client.c) is HTTP/2 of our own on libnghttp2 and OpenSSL too: the calling thread
 * does the whole exchange on a pooled connection (exclusive for the call, kept open
 * afterwards), bounded by the call's deadline; no threads or queues of its own. It is
 * thread-safe; during a peer outage calls fail fast with UNAVAILABLE and a restarted peer is
 * reached by the next call. The loop-driven client (grpcx_async.c, below) makes the same
 * calls from a libevent loop without blocking it; both share one stream's rules
 * (grpcx_stream.c).
 */
#ifndef CTRUSTEE_GRPCX_H
#define CTRUSTEE_GRPCX_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* gRPC status codes used by our services (same values as grpc_status_code). */
#define GRPCX_OK 0
#define GRPCX_INVALID_ARGUMENT 3
#define GRPCX_DEADLINE_EXCEEDED 4
#define GRPCX_NOT_FOUND 5
#define GRPCX_ABORTED 10
#define GRPCX_PERMISSION_DENIED 7
#define GRPCX_RESOURCE_EXHAUSTED 8
#define GRPCX_UNIMPLEMENTED 12
#define GRPCX_INTERNAL 13
#define GRPCX_UNAVAILABLE ERR_UNAVAILABLE /* 14, the same code as a local outage */
#define GRPCX_UNAUTHENTICATED 16

/* A handler gets the request message bytes and returns a gRPC status code. On GRPCX_OK it
 * sets *resp (malloc'd, may be NULL with *resp_len 0 for an empty message); otherwise it
 * writes a human sentence into err->msg, sent as grpc-message. Handlers run on worker
 * threads concurrently. */
typedef int (*grpcx_handler)(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp,
                             size_t *resp_len, struct err *err);

struct grpcx_server;

/* addr "127.0.0.1:50004" / "0.0.0.0:50004" / "[::]:50004"; port 0 picks a free one. The
 * listening socket is open on return (a taken port fails here). */
struct grpcx_server *grpcx_server_new(const char *addr, int workers, struct err *err);
/* method is the full path "/attestation.AttestationService/AttestationEvaluate". */
int grpcx_server_add(struct grpcx_server *s, const char *method, grpcx_handler h, void *ctx);
/* A handler that may answer on the front's event loop thread, without a worker: it must not
 * block (no network, disk or lock held for long; memory it knows and bounded work) and then
 * answers as a grpcx_handler does; when it cannot answer without blocking it returns
 * GRPCX_DEFER, having set nothing, and the call goes to a worker as usual, where `h` runs.
 * Only messages up to GRPCX_TRY_MAX_MSG bytes are offered to it; larger ones go straight to
 * a worker. The loop applies the same rules as a worker (an expired grpc-timeout answers
 * DEADLINE_EXCEEDED without running it; grpcx_request_* work inside it). */
#define GRPCX_DEFER (-2)
#define GRPCX_TRY_MAX_MSG (64 * 1024)
int grpcx_server_add_try(struct grpcx_server *s, const char *method, grpcx_handler try_h,
                         grpcx_handler h, void *ctx);
/* Health status of a service name ("" is the server as a whole, always SERVING once started). */
void grpcx_server_set_serving(struct grpcx_server *s, const char *service, int serving);
int grpcx_server_start(struct grpcx_server *s, struct err *err);
int grpcx_server_port(const struct grpcx_server *s);
/* Blocks until grpcx_server_shutdown (e.g. from a signal-handling thread). */
void grpcx_server_wait(struct grpcx_server *s);
void grpcx_server_shutdown(struct grpcx_server *s);
void grpcx_server_free(struct grpcx_server *s);
/* Make SIGTERM and SIGINT call grpcx_server_shutdown(s) (one server per process); also
 * ignores SIGPIPE. grpcx_server_shutdown is async-signal-safe: it only wakes
 * grpcx_server_wait, which does the graceful teardown (running calls get up to 5 s). */
int grpcx_server_handle_signals(struct grpcx_server *s);
/* TLS variant of grpcx_server_new: PEM texts (not paths). client_ca_pem non-NULL makes the
 * server require and verify client certificates (mutual TLS). */
struct grpcx_server *grpcx_server_new_tls(const char *addr, int workers, const char *cert_pem,
                                          const char *key_pem, const char *client_ca_pem,
                                          struct err *err);

/* A server with no listening socket of its own: a front that owns the port (common/grpcfront.h,
 * gfront_new) serves it. grpcx_server_new and grpcx_server_new_tls make such a front
 * themselves (without HTTP/1.1 pages) and start it with the server. */
struct grpcx_server *grpcx_server_new_unbound(int workers, struct err *err);

/* Who is calling, asked from inside a handler on its own thread (outside one: -1 / NULL).
 * grpcx_request_metadata copies the value of request metadata `key` (lowercase) into out,
 * NUL-terminated: its length, or -1 when absent or longer than outlen - 1.
 * Metadata excludes pseudo-headers and what gRPC itself reads (content-type, te, grpc-timeout,
 * grpc-encoding, grpc-accept-encoding).
 * grpcx_request_peer_cert: the verified client certificate of the call's connection (mutual
 * TLS, terminated by the front), a new reference the caller X509_free()s; NULL for plaintext
 * and TLS without client certificates. */
struct x509_st;
int grpcx_request_metadata(const char *key, char *out, size_t outlen);
struct x509_st *grpcx_request_peer_cert(void);

struct grpcx_client;

/* target "http://127.0.0.1:50004", "127.0.0.1:50004", "[::1]:50004" or "dns:///host:port"
 * (resolved for each new connection); "https://host:port" is TLS with the system roots
 * (never plaintext). */
struct grpcx_client *grpcx_client_new(const char *target, struct err *err);
/* Returns the gRPC status (GRPCX_OK = 0, >0 status from the peer or transport) or -1 on a
 * local error; err->msg holds the status message, err->code the status. *resp is malloc'd
 * (NUL-terminated) on success. timeout_ms <= 0: no deadline. A call is retried once, on a
 * new connection, only when the server cannot have seen it. */
int grpcx_call(struct grpcx_client *c, const char *method, const uint8_t *req, size_t req_len,
               uint8_t **resp, size_t *resp_len, int timeout_ms, struct err *err);
void grpcx_client_free(struct grpcx_client *c);
/* Every later call of c carries `authorization: Bearer <token>` (copied; NULL stops it). Set
 * it before calls start (not synchronised with them). */
int grpcx_client_set_bearer(struct grpcx_client *c, const char *token, struct err *err);
/* TLS client: ca_pem (NULL = system roots), optional client cert/key PEM texts. */
struct grpcx_client *grpcx_client_new_tls(const char *target, const char *ca_pem,
                                          const char *cert_pem, const char *key_pem,
                                          struct err *err);

/* The TLS settings of one outgoing link as config files give them: file paths, each optional.
 * ca: PEM bundle of the roots to trust (NULL = system roots); cert + key (both or neither):
 * the client certificate chain and its private key, for servers that require mutual TLS. */
struct grpcx_tls_files {
	const char *ca;
	const char *cert;
	const char *key;
};

/* A client for `target` configured from files (common/grpcx_tls.c). An https:// target is
 * TLS; an http:// or bare one is plaintext, and giving TLS files with it is an error (a
 * plaintext link an operator believed protected). `what` names the setting in errors
 * ("[attestation_service] as_addr"). The key file obeys keyfile_check's mode rule. A TLS
 * call that fails with UNAVAILABLE says why in err->msg, "TLS connection failed: <why>"
 * (wrong CA, expired or misnamed certificate, client certificate required, no h2 ALPN). */
struct grpcx_client *grpcx_client_new_files(const char *target, const struct grpcx_tls_files *f,
                                            const char *what, struct err *err);

/* The client certificate chain (first certificate the leaf, the rest sent as its chain) and its
 * private key from PEM texts into ctx, the key checked against the certificate: 0 or -1
 * (OpenSSL's error queue cleared). Shared by grpcx_client.c and grpcx_tls_probe. */
struct ssl_ctx_st;
int grpcx_tls_use_pair(struct ssl_ctx_st *ctx, const char *cert_pem, const char *key_pem);

/* One handshake of our own to `target` with this material: 1 and a sentence in why when it
 * fails (or the server rejects the session right after it), 0 when TLS is fine. */
int grpcx_tls_probe(const char *target, const char *ca_pem, const char *cert_pem,
                    const char *key_pem, int timeout_ms, char *why, size_t wl);

/* The loop-driven client (grpcx_async.c): unary calls made from a libevent loop thread without
 * blocking it, many at once on one HTTP/2 connection, with the blocking client's request,
 * status and retry rules. A client belongs to the loop of `base` and is used only on that
 * loop's thread (no locks). An https:// target is TLS (grpcx_async_new_tls). A host name is
 * resolved on the loop (evdns: /etc/hosts and /etc/resolv.conf) within the calls' deadlines, again
 * after a failed connection (at most once a second); a name that does not resolve fails the call
 * with UNAVAILABLE. At most max_inflight calls (1..GRPCX_ASYNC_MAX, below the server's 100 streams
 * per connection) at once. */
#define GRPCX_ASYNC_MAX 96
struct event_base;
struct grpcx_async;
/* A call's outcome, on the loop thread: status and err as grpcx_call returns them; resp
 * (malloc'd, NUL-terminated, the callee's to free) on GRPCX_OK, else NULL. */
typedef void (*grpcx_async_cb)(void *arg, int status, uint8_t *resp, size_t resp_len,
                               struct err *err);
struct grpcx_async *grpcx_async_new(struct event_base *base, const char *target, int max_inflight,
                                    struct err *err);
/* TLS variant, as grpcx_client_new_tls: ca_pem NULL = the system roots, cert_pem + key_pem
 * the client certificate for mutual TLS. The handshake is driven by the loop's events (the
 * server's certificate checked against the CA and the target's host name or IP, ALPN h2
 * required) and counts within the calls' deadlines; its failure fails them with UNAVAILABLE,
 * "TLS connection failed: <why>", as the blocking client says it. */
struct grpcx_async *grpcx_async_new_tls(struct event_base *base, const char *target,
                                        const char *ca_pem, const char *cert_pem,
                                        const char *key_pem, int max_inflight, struct err *err);
/* From a config's files, as grpcx_client_new_files (grpcx_tls.c): https:// is TLS with them,
 * http:// or bare is plaintext and refuses them. */
struct grpcx_async *grpcx_async_new_files(struct event_base *base, const char *target,
                                          const struct grpcx_tls_files *f, const char *what,
                                          int max_inflight, struct err *err);
int grpcx_async_set_bearer(struct grpcx_async *c, const char *token, struct err *err);
/* 1 when a call now would be refused for the budget. */
int grpcx_async_full(const struct grpcx_async *c);
/* Starts a call (req is copied; timeout_ms <= 0: no deadline): 0, and cb runs exactly once,
 * later, from the loop (never inside this call); or -1 (the budget is spent, out of memory)
 * with err, and cb never runs. */
int grpcx_async_call(struct grpcx_async *c, const char *method, const uint8_t *req, size_t req_len,
                     int timeout_ms, grpcx_async_cb cb, void *arg, struct err *err);
/* On the loop's thread or after it stopped: calls still in flight are delivered at once with
 * UNAVAILABLE, then everything is freed. */
void grpcx_async_free(struct grpcx_async *c);

#endif
