/*
 * keyfile: private key files that daemons load at start (the AS's token signing key, the KBS's
 * TLS key). A key file that other users can read is refused with a sentence saying what to
 * change: nothing for "other" (mode & 007 == 0), and group access only when root owns the file
 * and the group may only read it (mode 0440/0640: the shape Kubernetes gives a secret mounted
 * with defaultMode 0440 for a pod's fsGroup, like PostgreSQL's rule for its server key).
 */
#ifndef CTRUSTEE_KEYFILE_H
#define CTRUSTEE_KEYFILE_H

#include <openssl/evp.h>
#include <sys/types.h>

#include "err.h"

/* 0 when a file with this owner and mode may hold a private key; else -1 and a sentence. */
int keyfile_mode_ok(const char *path, uid_t owner, mode_t mode, struct err *err);
/* Stats path (following symlinks, as Kubernetes secret mounts are) and applies the rule. */
int keyfile_check(const char *path, struct err *err);
/* Opens path, applies the rule to the opened file, reads the PEM private key from a buffer
 * that is wiped afterwards. NULL with a sentence in err on any failure. */
EVP_PKEY *keyfile_read_private(const char *path, struct err *err);

#endif
