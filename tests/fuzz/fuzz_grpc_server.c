/* Fuzz what the gRPC server parses from a client by itself (grpcx_wire.c): the grpc-timeout
 * header, the 5-byte message prefix, and the percent-encoding of a grpc-message built from
 * the input. Checks their promises too: a parsed timeout is never negative, a parsed flag
 * is 0 or 1, an encoding is NUL-terminated, within its buffer, and printable ASCII. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grpcx_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err err;
	int64_t ns;
	int flag;
	uint32_t len;
	char out[64];
	size_t n;
	/* a heap copy of exactly `size` bytes, so ASan sees any read past the end */
	uint8_t *buf = malloc(size ? size : 1);

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	if (grpcx_wire_timeout_parse(buf, size, &ns, &err) == 0 && ns < 0)
		abort();
	if (grpcx_wire_prefix_parse(buf, size, &flag, &len, &err) == 1 && flag != 0 && flag != 1)
		abort();
	n = grpcx_wire_pct_encode(buf, size, out, (size ? buf[0] : 0) % sizeof(out));
	if (n > 0 && (n >= sizeof(out) || out[n] != '\0' || strlen(out) != n))
		abort();
	for (size_t i = 0; i < n; i++)
		if (out[i] < ' ' || out[i] > '~')
			abort();
	free(buf);
	return 0;
}
