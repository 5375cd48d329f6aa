/* Fuzz the TOML parser (configs and init data are operator and guest input). */
#include <stddef.h>
#include <stdint.h>

#include "toml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err err;
	json_t *j = toml_parse((const char *)data, size, &err);
	json_decref(j);
	return 0;
}
