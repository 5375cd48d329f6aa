/*
 * message: parse and check an RVPS register message (see message.h). The text is
 * untrusted (it arrives over gRPC and through the KBS admin API); jansson reads it within
 * the given length (and refuses \u0000 in strings, so the copies are plain C strings), and
 * the fields are copied out so the JSON can be released at once.
 */
#include "rvps/message.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

void rvps_message_clear(struct rvps_message *m)
{
	free(m->version);
	free(m->type);
	free(m->payload);
	memset(m, 0, sizeof(*m));
}

static char *dup_string(const json_t *s, size_t *len)
{
	size_t n = json_string_length(s);
	char *out = malloc(n + 1);

	if (out == NULL)
		return NULL;
	memcpy(out, json_string_value(s), n);
	out[n] = '\0';
	if (len)
		*len = n;
	return out;
}

int rvps_message_parse(const uint8_t *buf, size_t len, struct rvps_message *out, struct err *err)
{
	json_error_t jerr;
	json_t *msg, *version, *type, *payload;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	msg = json_loadb((const char *)buf, len, JSON_DECODE_ANY, &jerr);
	if (msg == NULL)
		return err_set(err, "parse message: %s at line %d column %d", jerr.text, jerr.line,
		               jerr.column);
	if (!json_is_object(msg)) {
		err_set(err, "parse message: expected a JSON object");
		goto out;
	}
	version = json_object_get(msg, "version");
	type = json_object_get(msg, "type");
	payload = json_object_get(msg, "payload");
	if (version != NULL && !json_is_string(version)) {
		err_set(err, "parse message: \"version\" must be a string");
		goto out;
	}
	if (type == NULL || !json_is_string(type)) {
		err_set(err, "parse message: missing field `type` (a string)");
		goto out;
	}
	if (payload == NULL || !json_is_string(payload)) {
		err_set(err, "parse message: missing field `payload` (a string)");
		goto out;
	}
	out->version = version ? dup_string(version, NULL) : strdup(RVPS_MESSAGE_VERSION);
	out->type = dup_string(type, NULL);
	out->payload = dup_string(payload, &out->payload_len);
	if (out->version == NULL || out->type == NULL || out->payload == NULL) {
		err_set(err, "out of memory");
		goto out;
	}
	if (strcmp(out->version, RVPS_MESSAGE_VERSION) != 0) {
		err_set(err, "Version unmatched! Need %s, given %s.", RVPS_MESSAGE_VERSION,
		        out->version);
		goto out;
	}
	rc = 0;
out:
	json_decref(msg);
	if (rc < 0)
		rvps_message_clear(out);
	return rc;
}
