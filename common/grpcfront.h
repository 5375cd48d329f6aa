/*
 * grpcfront: one listening port for a gRPC server and a few plain HTTP/1.1 pages.
 *
 * Trustee's grpc-as answers `GET /.well-known/jwks.json` on its gRPC port, so the front owns
 * the socket and serves both. It reads the first bytes of each connection (bounded in size
 * and time, on its own event loop, so a client that sends nothing delays nobody) and routes
 * it:
 *   - the HTTP/2 connection preface -> the gRPC server's HTTP/2 session on this loop
 *     (grpcx_h2.c; handlers run on the server's workers);
 *   - anything else -> a one-request HTTP/1.1 responder (the daemon's page callback; other
 *     paths 404, other methods 405, malformed requests 400), then the connection is closed.
 * With TLS the front terminates TLS itself (OpenSSL; ALPN h2 and http/1.1) and routes on the
 * decrypted bytes the same way. With a client CA, gRPC connections must present a
 * certificate that chains to it (mutual TLS; grpcx_request_peer_cert reports it); the
 * HTTP/1.1 pages, public by nature (a JWK set, a health probe, metrics), are served to any
 * TLS client, and a certificate that is presented must still verify.
 */
#ifndef CTRUSTEE_GRPCFRONT_H
#define CTRUSTEE_GRPCFRONT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct grpcx_server;
struct gfront;

/* What a page callback returns: status, content type and a malloc'd body (owned by the
 * front after the call). */
struct gfront_reply {
	int status;
	const char *ctype;
	char *body;
	size_t len;
};

/* Called on the front's event-loop thread for GET and HEAD, with the path without its query
 * string. Leave out->status 0 for "no such page" (404). Must not block. */
typedef void (*gfront_page_fn)(void *ctx, const char *path, struct gfront_reply *out);

/* PEM texts; client_ca_pem NULL = no client certificates asked for. */
struct gfront_tls {
	const char *cert_pem;
	const char *key_pem;
	const char *client_ca_pem;
};

/* Reads the PEM files behind --https-pubkey-cert, --https-prikey and the optional client
 * CA (NULL); the key file obeys keyfile_check's mode rule. All three NULL leaves *t empty
 * (plaintext) and returns 0; a certificate without its key, or the reverse, or a client CA
 * without both, is an error naming the flags. gfront_tls_clear wipes the key. */
int gfront_tls_load(struct gfront_tls *t, const char *cert, const char *key, const char *ca,
                    struct err *err);
void gfront_tls_clear(struct gfront_tls *t);

/* Listens on addr ("127.0.0.1:50004", "[::]:0", "0.0.0.0:50003"; port 0 picks one) in front
 * of g (made with grpcx_server_new_unbound). tls NULL = plaintext. g's teardown stops the
 * front's accepting and closes its HTTP/2 connections; free g before the front. */
struct gfront *gfront_new(const char *addr, struct grpcx_server *g, const struct gfront_tls *tls,
                          gfront_page_fn page, void *ctx, struct err *err);
int gfront_port(const struct gfront *f);
/* The budget of HTTP/2 connections (ours; the daemon's config "grpc_front" table): at most
 * max_connections at once (0: from the fd limit, RLIMIT_NOFILE - 128, one descriptor each);
 * one more closes the one whose client sent nothing for longest. A connection whose client
 * sends nothing for idle_timeout seconds (0: 300) is closed; live clients answer the
 * server's keepalive pings (every 60 s, grpcx_h2.c), so only dead or hostile peers go quiet
 * that long. */
struct gfront_limits {
	long max_connections;
	long idle_timeout;
};
/* Reads the "grpc_front" table of a daemon's config (NULL or absent: defaults); -1 with a
 * sentence naming the key. */
int gfront_limits_from_config(const json_t *config, struct gfront_limits *out, struct err *err);
/* Applies l before gfront_start. */
void gfront_set_limits(struct gfront *f, const struct gfront_limits *l);
/* Starts the event-loop thread; call after grpcx_server_start. */
int gfront_start(struct gfront *f, struct err *err);
/* Closes the listening socket and every connection still sniffing, and sends GOAWAY on the
 * HTTP/2 ones (waits for the loop to do it); their open calls go on. Idempotent. */
void gfront_stop_accepting(void *f);
/* After the gRPC server is torn down. */
void gfront_free(struct gfront *f);

/* The first request of an HTTP/1.x connection (fuzzed: tests/fuzz/fuzz_grpcfront_http.c).
 * 1: complete head, out filled; 0: need more bytes; -1: malformed or too long, err says why. */
#define GFRONT_HEAD_MAX 8192
struct gfront_http_req {
	char method[16];
	char path[256]; /* without the query string */
	int minor;      /* HTTP/1.<minor> */
};
int gfront_http_parse(const uint8_t *buf, size_t len, struct gfront_http_req *out, struct err *err);

#endif
