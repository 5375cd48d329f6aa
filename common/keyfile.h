/*
 * keyfile: private key files that daemons load at start (the AS's token signing key, the KBS's
 * TLS key). Refused, with a sentence saying what to change: a file that is not a regular file
 * (after symlinks, as Kubernetes Secret mounts are), and one that its group or other users may
 * write (mode & 022). Accepted with a warning in the log: one that other users may read
 * (mode & 004), or its group when root does not own it. A Secret mounted without defaultMode is
 * 0644 (Trustee's Helm chart sets none), and in a container no other user exists to read it;
 * a root-owned 0440/0640 file (defaultMode 0440 with an fsGroup) is accepted silently.
 */
#ifndef CTRUSTEE_KEYFILE_H
#define CTRUSTEE_KEYFILE_H

#include <openssl/evp.h>
#include <sys/types.h>

#include "err.h"

/* 0 when a file with this owner and mode may hold a private key; else -1 and a sentence. */
int keyfile_mode_ok(const char *path, uid_t owner, mode_t mode, struct err *err);
/* 1 and the warning's sentence in err when others may read such a file; else 0. */
int keyfile_mode_readable(const char *path, uid_t owner, mode_t mode, struct err *err);
/* Stats path (following symlinks, as Kubernetes secret mounts are) and applies the rule,
 * logging the warning if any. */
int keyfile_check(const char *path, struct err *err);
/* Opens path, applies the rule to the opened file, reads the PEM private key from a buffer
 * that is wiped afterwards. NULL with a sentence in err on any failure. */
EVP_PKEY *keyfile_read_private(const char *path, struct err *err);

#endif
