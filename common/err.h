/*
 * err: the one error carrier every module fills.
 *
 * Functions that can fail return 0 on success and a negative value on failure, and
 * write a human sentence into a caller-owned `struct err` (may be NULL). The sentence is
 * what ends up in an RFC 7807 `detail`, a gRPC status message or a CLI's stderr, so it
 * says what was wrong with the input, never how the code is laid out.
 */
#ifndef CTRUSTEE_ERR_H
#define CTRUSTEE_ERR_H

#include <stdarg.h>

#define ERR_MSG_MAX 1024

/* err.code of a failure that is not the input's fault: a store, the RVPS, the AS or a
 * collateral service (Intel PCS/PCCS, AMD KDS) could not be reached, failed or asked us to
 * wait, and nothing usable was cached. The same request may succeed later, so callers answer
 * "retry" (gRPC UNAVAILABLE, HTTP 503 + Retry-After), never "refused". Its value is gRPC's
 * UNAVAILABLE so a status from a peer and a local outage read the same. */
#define ERR_UNAVAILABLE 14

struct err {
	int code; /* optional module-specific kind, 0 if unused */
	char msg[ERR_MSG_MAX];
};

/* Overwrite the message. Returns -1 so callers can `return err_set(...)`. */
int err_set(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Overwrite message and kind. Returns -1. */
int err_setc(struct err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prepend context: "ctx: <old message>". Returns -1. */
int err_prefix(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void err_clear(struct err *e);

#endif
