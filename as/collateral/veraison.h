/*
 * veraison: a client of a Veraison verifier's challenge-response API (the remote mode of the
 * cca verifier, as-rvps.md §5.9). Discovery (GET /.well-known/veraison/verification) gives the
 * newChallengeResponseSession path and the key the verifier signs its EAR with; a session is
 * opened with the caller's nonce, the evidence posted under its media type, the session polled
 * until complete (bounded) and deleted. The EAR comes back only when it verifies under the
 * discovered key as ES256 (the key pins it) and its eat_nonce is the nonce sent. Trust in the
 * verifier rests on the TLS channel (`ca_file` or the system roots), as the discovered key does.
 */
#ifndef CTRUSTEE_VERAISON_H
#define CTRUSTEE_VERAISON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct veraison_cfg {
	const char *address;    /* base URL, e.g. https://veraison.example:8443 */
	const char *ca_file;    /* PEM roots for the TLS channel, NULL = system roots */
	const char *media_type; /* Content-Type of the evidence */
	long timeout_ms;        /* per HTTP exchange; 0 = 10 s */
};

/* *ear = the verified EAR claims set (new reference). -1 with a sentence (err->code
 * ERR_UNAVAILABLE when the verifier could not be reached or answered 5xx). */
int veraison_verify(const struct veraison_cfg *c, const uint8_t *evidence, size_t len,
                    const uint8_t *nonce, size_t nonce_len, json_t **ear, struct err *err);

#endif
