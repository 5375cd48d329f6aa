/* Fuzz the RVPS register message parser and the sample extractor it feeds (base64, then
 * JSON), and the stored-document builder through a Memory store. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rvps/extractors.h"
#include "rvps/message.h"
#include "rvps/rvps.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rvps *store;
	struct rvps_message m;
	struct err err;
	char *text;

	if (rvps_message_parse(data, size, &m, &err) == 0) {
		const struct rvps_extractor *ex = rvps_extractor_find(m.type);
		json_t *values = NULL;

		if (ex != NULL && ex->extract(m.payload, m.payload_len, &values, &err) == 0)
			json_decref(values);
		rvps_message_clear(&m);
	}
	/* The payload alone as a sample payload. */
	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	{
		json_t *values = NULL;
		if (rvps_extractor_sample.extract(text, size, &values, &err) == 0)
			json_decref(values);
	}
	/* The whole register path on an in-memory store. */
	if (store == NULL)
		store = rvps_new(NULL, &err);
	if (store != NULL && rvps_register(store, text, &err) == 0) {
		char *value = NULL;
		if (rvps_query(store, "a", &value, &err) == 0)
			free(value);
	}
	free(text);
	return 0;
}
