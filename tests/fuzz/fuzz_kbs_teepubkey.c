/* Fuzz the TeePubKey member filter (any JSON value) and the resource path rule (any bytes). */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kbs/kbs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err err;
	json_t *v = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);

	if (v) {
		json_t *k = kbs_teepubkey_parse(v, &err);
		json_decref(k);
		json_decref(v);
	}
	char *p = malloc(size + 1);
	if (p) {
		memcpy(p, data, size);
		p[size] = 0;
		(void)kbs_resource_path_valid(p);
		free(p);
	}
	return 0;
}
