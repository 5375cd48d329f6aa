/* Fuzz the kbs's HTTP/1.1 request-head parser (common/http_head.c): every byte of it comes
 * from whoever can reach the port. Checks the parser's promises too: a complete head lies
 * inside the input, every span it returns lies inside the head, and the framing it reports
 * is one of the three it accepts (none, one Content-Length, chunked alone). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

static void check_span(struct http_span s, size_t head_len)
{
	if (s.off > head_len || s.len > head_len - s.off)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_head h;
	struct err err;
	/* a heap copy of exactly `size` bytes, so ASan sees any read past the end */
	uint8_t *buf = malloc(size ? size : 1);

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	if (http_head_parse(buf, size, 4096, &h, &err) == 1) {
		if (h.head_len > size || h.head_len > 4096 || h.method.len == 0 ||
		    h.n_hdrs > HTTP_HDRS_MAX || (h.chunked && h.content_length >= 0))
			abort();
		check_span(h.method, h.head_len);
		check_span(h.target, h.head_len);
		for (size_t i = 0; i < h.n_hdrs; i++) {
			check_span(h.name[i], h.head_len);
			check_span(h.value[i], h.head_len);
		}
	}
	free(buf);
	return 0;
}
