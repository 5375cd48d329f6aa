/*
 * utf8: the length of one well-formed UTF-8 sequence (RFC 3629), for the JSON reader and writer
 * (jsonr.c, jsonw.c), which must refuse exactly what jansson refuses: an overlong form, a
 * surrogate, a code point above U+10FFFF or a sequence cut short. Inline: both call it for
 * every non-ASCII byte on their hot paths.
 */
#ifndef CTRUSTEE_UTF8_H
#define CTRUSTEE_UTF8_H

#include <stddef.h>

/* The length of the well-formed sequence starting at s[0] >= 0x80 with left bytes at hand,
 * 0 if there is none. */
static inline size_t utf8_seq(const unsigned char *s, size_t left)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xBF; /* the bounds of the second byte */
	size_t need;

	if (c >= 0xC2 && c <= 0xDF)
		need = 2;
	else if (c >= 0xE0 && c <= 0xEF) {
		need = 3;
		lo = c == 0xE0 ? 0xA0 : 0x80;
		hi = c == 0xED ? 0x9F : 0xBF;
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 4;
		lo = c == 0xF0 ? 0x90 : 0x80;
		hi = c == 0xF4 ? 0x8F : 0xBF;
	} else
		return 0;
	if (left < need || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < need; i++)
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
	return need;
}

#endif
