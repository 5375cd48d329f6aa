/*
 * grpcauth: who may write to a gRPC daemon (SetAttestationPolicy on grpc-as,
 * RegisterReferenceValue on rvps and on the AS that serves or proxies it).
 *
 * The daemon's JSON config carries an "admin" object:
 *   "admin": {"allowed_identities": ["dns:kbs.example", "sha256:<hex>", ...],
 *             "bearer_token_file": "/etc/trustee/as-admin-token"}
 * A write is allowed when the caller's verified client certificate (mutual TLS) matches one
 * listed identity, or its `authorization: Bearer <token>` metadata equals the file's token
 * (compared in constant time through their SHA-256). With neither configured, writes are open
 * as in Trustee; grpcauth_warn_open says so once at start when that daemon listens beyond
 * loopback without requiring client certificates. Reads are never asked about.
 *
 * Identity forms: "sha256:<64 hex>" (SHA-256 of the certificate's DER SubjectPublicKeyInfo),
 * "dns:<name>", "uri:<uri>", "email:<addr>" (a subjectAltName entry, exact), "subject:<RFC 2253
 * name>" (as `openssl x509 -noout -subject -nameopt RFC2253` prints it, after "subject=").
 */
#ifndef CTRUSTEE_GRPCAUTH_H
#define CTRUSTEE_GRPCAUTH_H

#include <jansson.h>

#include "err.h"

struct grpcauth;

/* admin: the "admin" object or NULL. `what` names it in errors ("grpc-as config admin").
 * NULL with err on a bad key, an identity of no known form or an unreadable or empty token
 * file. */
struct grpcauth *grpcauth_new(const json_t *admin, const char *what, struct err *err);
void grpcauth_free(struct grpcauth *a);
/* 1 when some credential is configured (writes need it), 0 when writes are open. */
int grpcauth_required(const struct grpcauth *a);
/* The one start-up warning: writes open, listen_addr not loopback, no client CA. */
void grpcauth_warn_open(const struct grpcauth *a, const char *daemon, const char *listen_addr,
                        int mtls);
/* From inside a grpcx handler: 0 when the calling client may perform `rpc`; else
 * GRPCX_UNAUTHENTICATED (no credential presented) or GRPCX_PERMISSION_DENIED (one presented
 * but not allowed), with a sentence in err. */
int grpcauth_check_write(const struct grpcauth *a, const char *rpc, struct err *err);
/* The first line of a token file, without its line end: malloc'd (free with OPENSSL_cleanse),
 * NULL with err when unreadable or empty. Also for the clients that send it. */
char *grpcauth_read_token(const char *path, struct err *err);

#endif
