/* Fuzz the RIM the nvidia verifier reads back from the RVPS (as/collateral/nvidia_rim.h): the
 * stored value is the input, its provenance a signed swid registration, so every shape the
 * value can take reaches the shape check. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "as/collateral/nvidia_rim.h"

struct input {
	const uint8_t *data;
	size_t size;
};

static int query(void *ctx, const char *id, int provenance, char **json, struct err *err)
{
	const struct input *in = ctx;

	if (provenance) {
		*json = strdup("{\"extractor\":\"swid\",\"signed\":true}");
		return *json != NULL;
	}
	if ((*json = malloc(in->size + 1)) == NULL)
		return 0;
	memcpy(*json, in->data, in->size);
	(*json)[in->size] = '\0';
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = {data, size};
	struct verify_rv rv = {query, &in};
	struct err err;
	char name[160];
	json_t *active = NULL;

	if (nvidia_rim_from_rvps(&rv, "GH100", "96.00.9f.00.01", name, &active, &err) == 1)
		json_decref(active);
	return 0;
}
