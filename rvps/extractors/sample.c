/*
 * sample extractor: the payload is standard base64 (padded) of a JSON object
 * {name: value, ...}; each member becomes one reference value, its value kept verbatim.
 * There is no signature or provenance check, exactly as in Trustee.
 */
#include <stdint.h>
#include <stdlib.h>

#include "b64.h"
#include "rvps/extractors.h"

static int sample_extract(const char *payload, size_t len, json_t **out, struct err *err)
{
	uint8_t *raw = NULL;
	size_t raw_len = 0;
	json_error_t jerr;
	json_t *obj;

	*out = NULL;
	if (b64_decode(payload, len, B64_STD, &raw, &raw_len) < 0)
		return err_set(err, "sample extractor: the payload is not valid standard base64");
	obj = json_loadb((const char *)raw, raw_len, JSON_DECODE_ANY, &jerr);
	free(raw);
	if (obj == NULL)
		return err_set(err, "sample extractor: the decoded payload is not JSON: %s",
		               jerr.text);
	if (!json_is_object(obj)) {
		json_decref(obj);
		return err_set(err, "sample extractor: the decoded payload must be a JSON object "
		                    "mapping reference value names to values");
	}
	*out = obj;
	return 0;
}

const struct rvps_extractor rvps_extractor_sample = {
    .type = "sample",
    .extract = sample_extract,
};
