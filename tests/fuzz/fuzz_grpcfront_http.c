/* Fuzz the HTTP/1.x request-head parser of the gRPC port's front (any client can send it
 * bytes). Checks the parser's promises too: a complete head has a method and a path that
 * starts with '/', both NUL-terminated inside their buffers. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grpcfront.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gfront_http_req req;
	struct err err;
	/* a heap copy of exactly `size` bytes, so ASan sees any read past the end */
	uint8_t *buf = malloc(size ? size : 1);

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	if (gfront_http_parse(buf, size, &req, &err) == 1) {
		if (req.method[0] == '\0' || req.path[0] != '/' ||
		    memchr(req.method, 0, sizeof(req.method)) == NULL ||
		    memchr(req.path, 0, sizeof(req.path)) == NULL)
			abort();
	}
	free(buf);
	return 0;
}
