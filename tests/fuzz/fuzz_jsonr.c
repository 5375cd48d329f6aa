/* Fuzz common/jsonr against jansson: whatever jsonr_object takes, json_loadb with
 * JSON_REJECT_DUPLICATES takes too and reads as the same values in the same order (equal
 * values and the same compact text), so the fast path never accepts or reads a text
 * differently from the reader it stands in for. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *fast = jsonr_object((const char *)data, size);
	if (fast == NULL)
		return 0;
	json_t *slow = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (slow == NULL || !json_equal(fast, slow))
		abort();
	char *a = json_dumps(fast, JSON_COMPACT | JSON_PRESERVE_ORDER);
	char *b = json_dumps(slow, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (a == NULL || b == NULL || strcmp(a, b) != 0)
		abort();
	free(a);
	free(b);
	json_decref(fast);
	json_decref(slow);
	return 0;
}
