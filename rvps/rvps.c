/*
 * rvps: the reference value store (see rvps.h). Register runs a Trustee register message
 * through its extractor and stores every value, overwriting, as the §7.3 document
 *   {"version":"0.1.0","name":<id>,"expiration":"YYYY-MM-DDTHH:MM:SSZ","value":<JSON>}
 * in namespace reference_value of the configured key-value store. The wrapper's field
 * order is fixed by hand; the value is written compact with sorted keys, which is what
 * serde_json produces with or without preserve_order for values it parsed itself.
 * Expiration is creation time + 12 months, or the end of the validity a signed CoRIM (or a
 * CoRIM's rim-validity) gives when that is earlier; as in Trustee, never enforced.
 *
 * Beside each value, under the same name in namespace rvps_provenance (so the value document
 * stays byte-for-byte Trustee's), a provenance document says how it arrived:
 *   {"extractor":"corim","message_sha256":<hex of the register message text>,
 *    "registered_at":<RFC 3339, the clock>, "verified_at":<the verification time>,
 *    "signed":true|false, plus what the extractor vouched: "signer", "signer_key",
 *    "signer_issuer", "signature_alg", "not_after"}.
 */
#include "rvps.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "b64.h"
#include "hash.h"
#include "kv/kv.h"
#include "log.h"
#include "rvps/extractors.h"
#include "rvps/message.h"

#define RV_VERSION "0.1.0"
#define RVPS_NS_PROVENANCE "rvps_provenance"
#define DUMP_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)

struct rvps {
	struct kv *kv;
	int owns_kv;
	struct rvps_extractor_set *ex; /* owned: each extractor's config and the pinned time */
	long long max_values;          /* per register message, > 0 */
};

void rvps_set_max_values(struct rvps *r, long long n)
{
	r->max_values = n > 0 ? n : RVPS_MAX_VALUES_DEFAULT;
}

struct rvps *rvps_new(const json_t *config, struct err *err)
{
	const json_t *storage = NULL;
	struct rvps *r;

	if (config != NULL && !json_is_object(config)) {
		err_set(err, "The RVPS configuration must be a JSON object");
		return NULL;
	}
	if (config != NULL) {
		storage = json_object_get(config, "storage");
		if (storage != NULL && json_is_null(storage))
			storage = NULL;
		if (storage != NULL && !json_is_object(storage)) {
			err_set(err, "RVPS configuration: \"storage\" must be an object");
			return NULL;
		}
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		err_set(err, "out of memory");
		return NULL;
	}
	r->max_values = RVPS_MAX_VALUES_DEFAULT;
	if (config != NULL && json_object_get(config, "max_reference_values_per_message")) {
		json_t *m = json_object_get(config, "max_reference_values_per_message");
		if (!json_is_integer(m) || json_integer_value(m) < 1) {
			err_set(err,
			        "RVPS configuration: \"max_reference_values_per_message\" must "
			        "be a positive integer");
			free(r);
			return NULL;
		}
		r->max_values = json_integer_value(m);
	}
	r->ex = rvps_extractor_set_new(config, err);
	if (r->ex == NULL) {
		err_prefix(err, "RVPS configuration");
		free(r);
		return NULL;
	}
	r->kv = kv_open(storage, err);
	if (r->kv == NULL) {
		err_prefix(err, "RVPS storage");
		rvps_extractor_set_free(r->ex);
		free(r);
		return NULL;
	}
	r->owns_kv = 1;
	log_info("rvps: reference values stored in %s", kv_type_name(r->kv));
	return r;
}

struct rvps *rvps_new_with_kv(struct kv *kv, struct err *err)
{
	struct rvps *r;

	if (kv == NULL) {
		err_set(err, "The RVPS needs a key-value store");
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		err_set(err, "out of memory");
		return NULL;
	}
	r->max_values = RVPS_MAX_VALUES_DEFAULT;
	r->ex = rvps_extractor_set_new(NULL, err);
	if (r->ex == NULL) {
		free(r);
		return NULL;
	}
	r->kv = kv;
	return r;
}

void rvps_free(struct rvps *r)
{
	if (r == NULL)
		return;
	if (r->owns_kv)
		kv_close(r->kv);
	rvps_extractor_set_free(r->ex);
	free(r);
}

/* now + 12 months, seconds precision, UTC. Feb 29 becomes Feb 28 of the next year (chrono's
 * checked_add_months clamps to the last day of the month). not_after (RFC 3339, may be NULL):
 * the end of the validity the extractor verified (a signed CoRIM's), used when earlier. */
static void expiration_string(const char *not_after, char out[32])
{
	time_t now = time(NULL), cap;
	struct tm tm;

	gmtime_r(&now, &tm);
	tm.tm_year += 1;
	if (tm.tm_mon == 1 && tm.tm_mday == 29)
		tm.tm_mday = 28;
	if (not_after != NULL && rvps_parse_rfc3339(not_after, &cap) == 0 && cap < timegm(&tm))
		gmtime_r(&cap, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The stored document for one value; malloc'd text. */
static char *rv_document(const char *name, const json_t *value, const char *not_after)
{
	json_t *jname = json_string(name);
	char *name_s = NULL, *value_s = NULL, *doc = NULL;
	char exp[32];

	if (jname == NULL)
		return NULL;
	name_s = json_dumps(jname, JSON_ENCODE_ANY | JSON_COMPACT);
	value_s = json_dumps(value, DUMP_FLAGS);
	json_decref(jname);
	expiration_string(not_after, exp);
	if (name_s != NULL && value_s != NULL &&
	    asprintf(&doc, "{\"version\":\"%s\",\"name\":%s,\"expiration\":\"%s\",\"value\":%s}",
	             RV_VERSION, name_s, exp, value_s) < 0)
		doc = NULL;
	free(name_s);
	free(value_s);
	return doc;
}

static void rfc3339(time_t t, char out[32])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The provenance document of one message (compact JSON, malloc'd); prov: what the extractor
 * added. */
static char *provenance_document(const char *type, const char *message_json, json_t *prov)
{
	uint8_t md[HASH_MAX];
	size_t n = hash_digest(HASH_SHA256, message_json, strlen(message_json), md);
	char *hex = n ? hex_encode(md, n) : NULL, when[32], *doc = NULL;
	json_t *d = json_object();

	if (hex != NULL && d != NULL) {
		rfc3339(time(NULL), when);
		json_object_set_new(d, "extractor", json_string(type));
		json_object_set_new(d, "message_sha256", json_string(hex));
		json_object_set_new(d, "registered_at", json_string(when));
		json_object_set_new(d, "signed",
		                    json_boolean(json_object_get(prov, "signature_alg") != NULL));
		json_object_update(d, prov);
		doc = json_dumps(d, JSON_COMPACT);
	}
	json_decref(d);
	free(hex);
	return doc;
}

int rvps_register(struct rvps *r, const char *message_json, struct err *err)
{
	struct rvps_message m;
	json_t *values = NULL, *value, *prov = NULL;
	const char *name;
	char *pdoc = NULL, when[32];
	int rc = -1;

	if (message_json == NULL)
		return err_set(err, "parse message: no message given");
	if (rvps_message_parse((const uint8_t *)message_json, strlen(message_json), &m, err) < 0)
		return -1;
	if ((prov = json_object()) == NULL) {
		err_set(err, "out of memory");
		goto out;
	}
	if (rvps_extractor_set_extract(r->ex, m.type, m.payload, m.payload_len, &values, prov,
	                               err) < 0)
		goto out;
	if ((long long)json_object_size(values) > r->max_values) {
		err_set(err,
		        "the message carries %zu reference values, over the limit of %lld per "
		        "message (max_reference_values_per_message): register them in smaller "
		        "messages",
		        json_object_size(values), r->max_values);
		goto out;
	}
	rfc3339(rvps_extractor_set_time(r->ex), when);
	json_object_set_new(prov, "verified_at", json_string(when));
	if ((pdoc = provenance_document(m.type, message_json, prov)) == NULL) {
		err_set(err, "out of memory");
		goto out;
	}
	json_object_foreach(values, name, value)
	{
		char *doc =
		    rv_document(name, value, json_string_value(json_object_get(prov, "not_after")));

		if (doc == NULL) {
			err_set(err, "out of memory");
			goto out;
		}
		if (kv_set(r->kv, KV_NS_REFERENCE_VALUE, name, doc, strlen(doc), 1, err) < 0 ||
		    kv_set(r->kv, RVPS_NS_PROVENANCE, name, pdoc, strlen(pdoc), 1, err) < 0) {
			free(doc);
			err_prefix(err, "store reference value %s", name);
			goto out;
		}
		free(doc);
		log_info("rvps: registered reference value %s", name);
	}
	rc = 0;
out:
	free(pdoc);
	json_decref(prov);
	json_decref(values);
	rvps_message_clear(&m);
	return rc;
}

int rvps_query_provenance(struct rvps *r, const char *id, char **prov_json, struct err *err)
{
	uint8_t *raw = NULL;
	size_t len = 0;
	int rc;

	*prov_json = NULL;
	if (id == NULL || id[0] == '\0')
		return 0;
	rc = kv_get(r->kv, RVPS_NS_PROVENANCE, id, &raw, &len, err);
	if (rc < 0)
		return err_prefix(err, "read the provenance of %s", id);
	if (rc == 1)
		return 0;
	*prov_json = malloc(len + 1);
	if (*prov_json == NULL) {
		free(raw);
		return err_set(err, "out of memory");
	}
	memcpy(*prov_json, raw, len);
	(*prov_json)[len] = '\0';
	free(raw);
	return 0;
}

int rvps_query(struct rvps *r, const char *id, char **value_json, struct err *err)
{
	uint8_t *raw = NULL;
	size_t len = 0;
	json_error_t jerr;
	json_t *doc, *value;
	int rc;

	*value_json = NULL;
	if (id == NULL || id[0] == '\0')
		return 0;
	rc = kv_get(r->kv, KV_NS_REFERENCE_VALUE, id, &raw, &len, err);
	if (rc < 0)
		return err_prefix(err, "read reference value %s", id);
	if (rc == 1)
		return 0;
	doc = json_loadb((const char *)raw, len, 0, &jerr);
	free(raw);
	if (doc == NULL)
		return err_set(err, "stored reference value %s is not JSON: %s", id, jerr.text);
	value = json_object_get(doc, "value");
	if (value == NULL) {
		json_decref(doc);
		return err_set(err, "stored reference value %s has no \"value\" field", id);
	}
	*value_json = json_dumps(value, DUMP_FLAGS);
	json_decref(doc);
	if (*value_json == NULL)
		return err_set(err, "out of memory");
	return 0;
}
