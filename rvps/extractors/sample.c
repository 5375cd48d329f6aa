/*
 * sample extractor: the payload is standard base64 (padded) of a JSON object
 * {name: value, ...}; each member becomes one reference value, its value kept verbatim.
 * There is no signature or provenance check, exactly as in Trustee. Config
 * extractors.sample_extractor = {"enabled": bool} (default true): false refuses every sample
 * message, for deployments that must accept only signed reference values.
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

/* The state is the "enabled" flag. */
static int sample_init(const json_t *config, void **state, struct err *err)
{
	static const char *const known[] = {"enabled", NULL};
	int *enabled = malloc(sizeof(*enabled));

	if (enabled == NULL)
		return err_set(err, "out of memory");
	if ((config != NULL && rvps_config_only(config, "sample_extractor", known, err) < 0) ||
	    rvps_config_bool(config, "sample_extractor", "enabled", 1, enabled, err) < 0) {
		free(enabled);
		return -1;
	}
	*state = enabled;
	return 0;
}

static int sample_extract_ctx(const struct rvps_extract_ctx *ctx, const char *payload, size_t len,
                              json_t **out, struct err *err)
{
	const int *enabled = ctx->state;

	*out = NULL;
	if (enabled != NULL && !*enabled)
		return err_set(err, "sample extractor: disabled by the RVPS configuration "
		                    "(extractors.sample_extractor.enabled = false); only signed "
		                    "reference values are accepted");
	return sample_extract(payload, len, out, err);
}

const struct rvps_extractor rvps_extractor_sample = {
    .type = "sample",
    .config_key = "sample_extractor",
    .extract = sample_extract,
    .init = sample_init,
    .state_free = free,
    .extract_ctx = sample_extract_ctx,
};
