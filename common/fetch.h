/*
 * fetch: the one outbound HTTP(S) client (JWK sets and OIDC discovery, Vault, Intel PCS/PCCS,
 * AMD KDS), over libcurl with one easy handle per call so any thread may fetch.
 *
 * Every call is budgeted: one deadline for the whole exchange (connect, TLS, headers, body)
 * and a body cap enforced while bytes arrive (an answer above it is refused, never truncated).
 * Only http and https are spoken and no redirect is followed: a service that moves must be
 * reconfigured, not trusted to say where it went. HTTP/1.1 only (a JWK set served on a gRPC
 * port must not be reached over h2).
 *
 * Trust: `ca_pem` (PEM text) or `ca_file` when given; otherwise the file named by
 * SSL_CERT_FILE (and directory SSL_CERT_DIR), as OpenSSL-based clients honour them; otherwise
 * the system roots. `insecure` turns verification off (Vault's verify_ssl = false).
 *
 * Outcome: 0 only for a 2xx answer. Otherwise -1 with a sentence in err, and err->code =
 * ERR_UNAVAILABLE when retrying later may help: the service could not be reached, the
 * deadline passed, or it answered 5xx or 429. A 404 or another 4xx, a refused certificate
 * and an oversized answer are plain failures (code 0). After any HTTP answer r->status, the
 * body, Retry-After and the kept headers are filled, so a caller can word its own refusal;
 * r->status is 0 when no answer came.
 *
 * Bodies may be secrets (Vault): the buffer grows by copy-and-wipe, never realloc, and
 * fetch_result_free wipes it.
 */
#ifndef CTRUSTEE_FETCH_H
#define CTRUSTEE_FETCH_H

#include <stddef.h>
#include <time.h>

#include "err.h"

#define FETCH_MAX_KEEP 4 /* response headers a caller may ask to keep */

struct fetch_opts {
	long timeout_ms;                  /* whole call; 0 = 10 s */
	size_t max_bytes;                 /* body cap; 0 = 4 MiB */
	const char *ca_pem;               /* PEM text to trust, or NULL */
	const char *ca_file;              /* PEM file to trust, or NULL */
	int insecure;                     /* no certificate verification */
	const char *const *headers;       /* NULL-terminated "Name: value" list, or NULL */
	const char *keep[FETCH_MAX_KEEP]; /* response header names to keep, NULL-padded */
	const char *user_agent;           /* NULL = "ctrustee" */
};

struct fetch_result {
	long status;      /* HTTP status of the answer; 0 when none came */
	char *body;       /* owned, NUL-terminated (binary bodies: use len); NULL when none */
	size_t len;       /* body bytes */
	size_t cap;       /* allocated bytes of body: what fetch_result_free wipes */
	long retry_after; /* seconds from Retry-After (delay or HTTP-date), -1 when absent */
	char *kept[FETCH_MAX_KEEP]; /* owned values of opts->keep[i] as sent, NULL when absent */
};

/* GET url. r is overwritten; release it with fetch_result_free on every path. */
int fetch_get(const char *url, const struct fetch_opts *o, struct fetch_result *r, struct err *err);
/* Any method, with an optional body (NULL = none). */
int fetch_request(const char *method, const char *url, const void *body, size_t blen,
                  const struct fetch_opts *o, struct fetch_result *r, struct err *err);
/* Wipe and free the body, free the kept headers, zero r. Safe on a zeroed r. */
void fetch_result_free(struct fetch_result *r);
/* Seconds from a Retry-After value ("120" or an HTTP-date; a past date gives 0), -1 if
 * it is neither. `now` is the current time. */
long fetch_parse_retry_after(const char *v, long now);

/* For a client that paces its retries (the AMD and Hygon KDS clients): milliseconds of the
 * monotonic clock since *t; a sleep of `ms` that a signal does not cut short; and a fetch
 * error's sentence without the URL it starts with, for a caller whose message names the
 * service already. */
long fetch_ms_since(const struct timespec *t);
void fetch_sleep_ms(long ms);
const char *fetch_msg_cause(const char *msg, const char *url);

#endif
