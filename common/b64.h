/*
 * b64: base64 (RFC 4648 §4, padded) and base64url (§5, unpadded or padded).
 * Decoders are strict by default: wrong alphabet, bad padding or trailing garbage is refused.
 */
#ifndef CTRUSTEE_B64_H
#define CTRUSTEE_B64_H

#include <stddef.h>
#include <stdint.h>

enum b64_variant {
	B64_STD = 1,     /* + / with = padding (required on decode) */
	B64_URL = 2,     /* - _ without padding (padding refused on decode) */
	B64_URL_PAD = 3, /* - _ with = padding */
};
/* Decode flags, or-ed into the variant argument of b64_decode. */
#define B64_LENIENT 0x100 /* accept either alphabet, optional padding, ignore \r\n */

/* Returns a NUL-terminated malloc'd string, or NULL on allocation failure. */
char *b64_encode(const uint8_t *buf, size_t len, int variant);
/* Decodes `s` (slen bytes; pass strlen). *out is malloc'd (always NUL-terminated, not counted).
 * Returns 0 or -1 on invalid input. */
int b64_decode(const char *s, size_t slen, int variant, uint8_t **out, size_t *outlen);

/* Lowercase hex. */
char *hex_encode(const uint8_t *buf, size_t len);
/* The value of one hex digit (either case), or -1. */
int hex_nibble(int c);
/* Accepts upper/lower case; returns -1 on odd length or non-hex. */
int hex_decode(const char *s, size_t slen, uint8_t **out, size_t *outlen);

#endif
