/*
 * grpcwire: the texts and bytes of gRPC over HTTP/2 the server handles itself (see
 * grpcwire.h). Everything here reads untrusted client bytes: each index is checked
 * against len before the read.
 */
#include "grpcwire.h"

#include <stdio.h>
#include <string.h>

int grpcwire_timeout_parse(const uint8_t *buf, size_t len, int64_t *ns, struct err *err)
{
	int64_t v = 0, unit;
	size_t i;

	if (len < 2 || len > 9)
		return err_set(err, "grpc-timeout must be 1 to 8 digits and a unit");
	for (i = 0; i + 1 < len; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return err_set(err, "grpc-timeout must be 1 to 8 digits and a unit");
		v = v * 10 + (buf[i] - '0');
	}
	switch (buf[len - 1]) {
	case 'H':
		unit = 3600LL * 1000000000LL;
		break;
	case 'M':
		unit = 60LL * 1000000000LL;
		break;
	case 'S':
		unit = 1000000000LL;
		break;
	case 'm':
		unit = 1000000LL;
		break;
	case 'u':
		unit = 1000LL;
		break;
	case 'n':
		unit = 1;
		break;
	default:
		return err_set(err, "grpc-timeout has no unit of H, M, S, m, u or n");
	}
	/* at most 99999999 hours: clamp instead of overflowing */
	*ns = v > INT64_MAX / unit ? INT64_MAX : v * unit;
	return 0;
}

int grpcwire_prefix_parse(const uint8_t *buf, size_t len, int *compressed, uint32_t *msg_len,
                          struct err *err)
{
	if (len < GRPCWIRE_PREFIX_LEN)
		return 0;
	if (buf[0] > 1) {
		err_set(err, "the message prefix's compressed flag is %u, not 0 or 1", buf[0]);
		return -1;
	}
	*compressed = buf[0];
	*msg_len = (uint32_t)buf[1] << 24 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 8 |
	           (uint32_t)buf[4];
	return 1;
}

void grpcwire_prefix_write(uint8_t out[GRPCWIRE_PREFIX_LEN], uint32_t msg_len)
{
	out[0] = 0;
	out[1] = (uint8_t)(msg_len >> 24);
	out[2] = (uint8_t)(msg_len >> 16);
	out[3] = (uint8_t)(msg_len >> 8);
	out[4] = (uint8_t)msg_len;
}

size_t grpcwire_pct_encode(const uint8_t *msg, size_t len, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	if (outlen == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = msg[i];

		if (c >= ' ' && c <= '~' && c != '%') {
			if (o + 1 >= outlen)
				break;
			out[o++] = (char)c;
		} else {
			if (o + 3 >= outlen)
				break;
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return o;
}
