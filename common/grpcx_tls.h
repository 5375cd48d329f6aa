/*
 * grpcx_tls.h: the client TLS pieces that the blocking client (grpcx_client.c) and the
 * loop-driven one (grpcx_async.c) share, implemented in grpcx_tls.c. Both drive their own
 * handshake and records (one polls, the other waits for loop events), but the rules are one:
 * the same context (TLS 1.2 or later, peer verified against the configured CA or the system
 * roots, ALPN "h2" offered, the client certificate for mutual TLS), the same check of the
 * server's name or IP address, the same words for a failed handshake, and the same reading
 * of a config's files.
 */
#ifndef CTRUSTEE_GRPCX_TLS_H
#define CTRUSTEE_GRPCX_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "err.h"
#include "grpcx.h"
#include "grpcx_wire.h"

/* A client context: ca_pem NULL = the system roots; cert_pem + key_pem (both or neither) the
 * client certificate chain. NULL with err when the material is unusable. */
SSL_CTX *grpcx_tls_client_ctx(const char *ca_pem, const char *cert_pem, const char *key_pem,
                              struct err *err);

/* A connection on fd (connected, blocking or not) that verifies the server as t names it: an
 * IP literal against the certificate's IP addresses, a host name against its DNS names (and
 * sent as SNI). NULL with why. */
SSL *grpcx_tls_conn_new(SSL_CTX *ctx, const struct grpcx_target *t, int fd, char *why, size_t wl);

/* Why SSL_connect failed (ssl_error: SSL_get_error's answer), as the clients say it: a refused
 * certificate and the reason, an OpenSSL reason, or a connection closed mid-handshake. Clears
 * OpenSSL's error queue. */
void grpcx_tls_handshake_why(SSL *ssl, int ssl_error, char *why, size_t wl);

/* After the handshake: 0 when the server chose ALPN "h2", else -1 with why. */
int grpcx_tls_alpn_h2(SSL *ssl, char *why, size_t wl);

/* SSL_write on a socket the peer closed would kill a process that never chose: SIGPIPE is
 * ignored from the first client on, unless the process set its own handler. */
void grpcx_tls_ignore_sigpipe(void);

/* The reason of OpenSSL's latest error, or "unknown TLS error". */
const char *grpcx_tls_reason(void);

/* The TLS material of a link as a config gives it (see grpcx_client_new_files): for an
 * https:// target *tls = 1 and the PEM texts read and checked (each NULL when not set);
 * for a plaintext one *tls = 0 and no files may be set. 0, or -1 with err naming `what`.
 * grpcx_tls_pems_free wipes and frees what it read. */
int grpcx_tls_files_load(const char *target, const struct grpcx_tls_files *f, const char *what,
                         int *tls, char **ca_pem, char **cert_pem, char **key_pem, struct err *err);
void grpcx_tls_pems_free(char *ca_pem, char *cert_pem, char *key_pem);

#endif
