/* Fuzz what the gRPC client parses from a server's bytes (common/grpcx_wire.c): the response
 * message stream fed in pieces of the sizes the input picks, grpc-status and the
 * percent-encoded grpc-message, and the target syntax. Checks the reader's promises: a
 * message it returns is no longer than the limit and NUL-terminated, a decoded text fits its
 * buffer. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grpcx_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct grpcx_msg_reader r;
	struct grpcx_target t;
	struct err err;
	uint8_t *buf, *msg = NULL;
	size_t off = 1, n = 0;
	char text[64], *s;

	if (size == 0)
		return 0;
	/* a heap copy of exactly `size` bytes, so ASan sees any read past the end */
	buf = malloc(size);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	/* a small limit so that "too large" is reachable */
	grpcx_msg_reader_init(&r, 4096);
	while (off < size) {
		size_t piece = (size_t)(buf[0] % 17) + 1;

		if (piece > size - off)
			piece = size - off;
		if (grpcx_msg_feed(&r, buf + off, piece, &err) < 0)
			break;
		off += piece;
	}
	if (off >= size && grpcx_msg_finish(&r, &msg, &n, &err) == 0) {
		if (msg == NULL || n > 4096 || msg[n] != '\0')
			abort();
		free(msg);
	}
	grpcx_msg_reader_free(&r);

	if (grpcx_percent_decode(buf, size, text, sizeof(text)) >= sizeof(text) ||
	    memchr(text, 0, sizeof(text)) == NULL)
		abort();
	if (grpcx_status_parse(buf, size) > 999)
		abort();
	s = malloc(size);
	if (s != NULL) {
		memcpy(s, buf + 1, size - 1);
		s[size - 1] = '\0';
		if (grpcx_target_parse(s, &t, &err) == 0 &&
		    (t.host[0] == '\0' || t.port[0] == '\0' ||
		     memchr(t.authority, 0, sizeof(t.authority)) == NULL))
			abort();
		free(s);
	}
	free(buf);
	return 0;
}
