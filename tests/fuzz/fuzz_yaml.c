/* Fuzz the YAML configuration reader (common/yaml_json.c): any bytes either give a JSON
 * value jansson can serialise again, or a refusal with a sentence; never both, never
 * neither. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "yaml_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err err = {0};
	json_t *j = NULL;
	int rc = yaml_json_parse(data, size, &j, &err);
	if ((rc == 0) != (j != NULL) || (rc != 0 && err.msg[0] == 0))
		abort();
	if (j != NULL) {
		char *s = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
		if (s == NULL)
			abort();
		free(s);
	}
	json_decref(j);
	return 0;
}
