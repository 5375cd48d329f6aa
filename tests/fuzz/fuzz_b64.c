/* Fuzz common/b64's decoder (table-driven, four symbols a step) in every variant, strict and
 * lenient: no read or write out of bounds (ASan), and whatever it takes is canonical where the
 * variant is strict: the decoded bytes, encoded again in the same variant and decoded, give the
 * same bytes back. The byte-for-byte agreement with the one-symbol-at-a-time decoder is
 * tests/unit/test_b64.c's. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int variants[] = {B64_STD, B64_URL, B64_URL_PAD};
	for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++)
		for (int lenient = 0; lenient < 2; lenient++) {
			int v = variants[i] | (lenient ? B64_LENIENT : 0);
			uint8_t *out = NULL, *again = NULL;
			size_t n = 0, m = 0;
			if (b64_decode((const char *)data, size, v, &out, &n) != 0)
				continue;
			char *text = b64_encode(out, n, variants[i]);
			if (text == NULL ||
			    b64_decode(text, strlen(text), variants[i], &again, &m) != 0 ||
			    m != n || (n && memcmp(out, again, n) != 0))
				abort();
			free(text);
			free(again);
			free(out);
		}
	return 0;
}
