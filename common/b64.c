/*
 * b64: RFC 4648 base64 / base64url and hex (see b64.h).
 *
 * Decoding is strict unless B64_LENIENT is given: the alphabet must be the variant's,
 * padding must be present (B64_STD, B64_URL_PAD) or absent (B64_URL), and the unused low
 * bits of the last symbol must be zero, so one byte string has exactly one encoding.
 */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"

static const char std_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *b64_encode(const uint8_t *buf, size_t len, int variant)
{
	const char *a = (variant & 3) == B64_STD ? std_alpha : url_alpha;
	int pad = (variant & 3) != B64_URL;
	char *out = malloc((len + 2) / 3 * 4 + 1);
	size_t o = 0, i;

	if (out == NULL)
		return NULL;
	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)buf[i] << 16 | (uint32_t)buf[i + 1] << 8 | buf[i + 2];
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		out[o++] = a[v >> 6 & 63];
		out[o++] = a[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)buf[i] << 16 | (i + 1 < len ? (uint32_t)buf[i + 1] << 8 : 0);
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		if (i + 1 < len)
			out[o++] = a[v >> 6 & 63];
		else if (pad)
			out[o++] = '=';
		if (pad)
			out[o++] = '=';
	}
	out[o] = '\0';
	return out;
}

/* 0..63, or -1 if c is not in the alphabet(s) allowed */
static int sym(char c, int url, int lenient)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if ((c == '+' && (!url || lenient)))
		return 62;
	if ((c == '/' && (!url || lenient)))
		return 63;
	if ((c == '-' && (url || lenient)))
		return 62;
	if ((c == '_' && (url || lenient)))
		return 63;
	return -1;
}

/* sym() as three tables (strict standard, strict URL, lenient), filled before main: decoding
 * looks a byte up instead of testing ranges (b64_decode was ~79K instructions of the kbs's
 * handshake, most of it in sym). */
static int8_t sym_tab[3][256];

__attribute__((constructor)) static void sym_tab_fill(void)
{
	for (int c = 0; c < 256; c++) {
		sym_tab[0][c] = (int8_t)sym((char)c, 0, 0);
		sym_tab[1][c] = (int8_t)sym((char)c, 1, 0);
		sym_tab[2][c] = (int8_t)sym((char)c, 1, 1);
	}
}

int b64_decode(const char *s, size_t slen, int variant, uint8_t **out, size_t *outlen)
{
	int lenient = (variant & B64_LENIENT) != 0, v = variant & 3;
	int url = v != B64_STD;
	size_t n = 0, pads = 0, o = 0;
	uint32_t acc = 0;
	uint8_t *buf;

	*out = NULL;
	*outlen = 0;
	buf = malloc(slen / 4 * 3 + 4);
	if (buf == NULL)
		return -1;
	const int8_t *t = sym_tab[lenient ? 2 : url ? 1 : 0];
	for (size_t i = 0; i < slen; i++) {
		/* four symbols at a group's start, the common case, in one step */
		while (n % 4 == 0 && pads == 0 && slen - i >= 4) {
			int a = t[(uint8_t)s[i]], b = t[(uint8_t)s[i + 1]],
			    c = t[(uint8_t)s[i + 2]], d = t[(uint8_t)s[i + 3]];
			if ((a | b | c | d) < 0)
				break; /* padding, white space or a bad byte: one at a time below */
			uint32_t v =
			    (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
			buf[o++] = (uint8_t)(v >> 16);
			buf[o++] = (uint8_t)(v >> 8);
			buf[o++] = (uint8_t)v;
			i += 4;
			n += 4;
		}
		if (i >= slen)
			break;
		char c = s[i];
		if (lenient && (c == '\n' || c == '\r' || c == ' ' || c == '\t'))
			continue;
		if (c == '=') {
			pads++;
			continue;
		}
		if (pads > 0)
			goto bad; /* data after padding */
		int d = t[(uint8_t)c];
		if (d < 0)
			goto bad;
		acc = acc << 6 | (uint32_t)d;
		n++;
		if (n % 4 == 0) {
			buf[o++] = (uint8_t)(acc >> 16);
			buf[o++] = (uint8_t)(acc >> 8);
			buf[o++] = (uint8_t)acc;
			acc = 0;
		}
	}
	size_t rem = n % 4;
	if (rem == 1 || pads > 2)
		goto bad;
	if (!lenient) {
		size_t want_pads = rem == 0 ? 0 : 4 - rem;
		if (v == B64_URL && pads != 0)
			goto bad;
		if (v != B64_URL && pads != want_pads)
			goto bad;
	} else if (pads != 0 && (rem == 0 || pads != 4 - rem)) {
		goto bad;
	}
	if (rem == 2) {
		if (!lenient && (acc & 0xF) != 0)
			goto bad;
		buf[o++] = (uint8_t)(acc >> 4);
	} else if (rem == 3) {
		if (!lenient && (acc & 0x3) != 0)
			goto bad;
		buf[o++] = (uint8_t)(acc >> 10);
		buf[o++] = (uint8_t)(acc >> 2);
	}
	buf[o] = '\0';
	*out = buf;
	*outlen = o;
	return 0;
bad:
	OPENSSL_cleanse(buf, o); /* what was decoded may be part of a secret */
	free(buf);
	return -1;
}

char *hex_encode(const uint8_t *buf, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	char *out = malloc(2 * len + 1);

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[buf[i] >> 4];
		out[2 * i + 1] = digits[buf[i] & 15];
	}
	out[2 * len] = '\0';
	return out;
}

int hex_nibble(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int hex_decode(const char *s, size_t slen, uint8_t **out, size_t *outlen)
{
	uint8_t *buf;

	*out = NULL;
	*outlen = 0;
	if (slen % 2 != 0)
		return -1;
	buf = malloc(slen / 2 + 1);
	if (buf == NULL)
		return -1;
	for (size_t i = 0; i < slen / 2; i++) {
		int hi = hex_nibble((unsigned char)s[2 * i]),
		    lo = hex_nibble((unsigned char)s[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			free(buf);
			return -1;
		}
		buf[i] = (uint8_t)(hi << 4 | lo);
	}
	buf[slen / 2] = '\0';
	*out = buf;
	*outlen = slen / 2;
	return 0;
}
