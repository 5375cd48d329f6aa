/*
 * message: the RVPS register message (as-rvps.md §7.2), parsed from untrusted bytes:
 *   {"version": "0.1.0" (default when absent), "type": "sample"|..., "payload": "<string>"}
 * Any other version is refused with Trustee's sentence "Version unmatched! Need 0.1.0,
 * given X.".
 */
#ifndef CTRUSTEE_RVPS_MESSAGE_H
#define CTRUSTEE_RVPS_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define RVPS_MESSAGE_VERSION "0.1.0"

struct rvps_message {
	char *version; /* owned */
	char *type;    /* owned */
	char *payload; /* owned, NUL-terminated, payload_len bytes */
	size_t payload_len;
};

/* Returns 0 with *out filled (release with rvps_message_clear), or -1 with a sentence. */
int rvps_message_parse(const uint8_t *buf, size_t len, struct rvps_message *out, struct err *err);
void rvps_message_clear(struct rvps_message *m);

#endif
