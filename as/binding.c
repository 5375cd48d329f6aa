/*
 * binding: runtime data and init data -> the bytes a verifier must find in the evidence and
 * the claims the policy sees beside it (as-rvps.md §2.2, §2.3). Kept apart from the pipeline
 * so the rules of §2 read in one place and each is tested on its own.
 */
#include <stdlib.h>
#include <string.h>

#include "as/binding.h"
#include "b64.h"
#include "hash.h"
#include "jcs.h"
#include "jsonr.h"
#include "toml.h"

int binding_structured_runtime_data(struct binding *b, const char *json_text, const char *alg_name,
                                    struct err *err)
{
	enum hash_alg alg =
	    alg_name != NULL && alg_name[0] ? hash_alg_from_name(alg_name) : HASH_SHA384;
	/* an object read by jsonr as jansson would (jsonr.h); anything else read by jansson */
	json_t *claims = json_text ? jsonr_object(json_text, strlen(json_text)) : NULL;
	if (claims == NULL)
		claims = json_loads(json_text, JSON_DECODE_ANY, NULL);
	char *canon = claims ? jcs_serialize(claims, NULL) : NULL;

	if (canon == NULL || alg == HASH_NONE || (b->report_data = malloc(HASH_MAX)) == NULL) {
		free(canon);
		json_decref(claims);
		return err_set(err, "structured runtime data is not JSON, or its hash algorithm is "
		                    "unknown");
	}
	b->report_data_len = hash_digest(alg, canon, strlen(canon), b->report_data);
	b->runtime_data_claims = claims;
	free(canon);
	return 0;
}

int binding_raw_runtime_data(struct binding *b, const char *b64url, struct err *err)
{
	if (b64_decode(b64url, strlen(b64url), B64_URL | B64_LENIENT, &b->report_data,
	               &b->report_data_len) < 0)
		return err_set(err, "raw runtime data is not base64url");
	return 0;
}

/* §2.3's transformations of the `data` table, on a copy the caller owns. */
static json_t *init_data_claims(const json_t *data)
{
	json_t *c = json_deep_copy(data);
	const char *tomls[] = {"cdh.toml", "aa.toml"};

	for (int i = 0; i < 2; i++) {
		json_t *v = json_object_get(c, tomls[i]);
		if (json_is_string(v)) {
			struct err ignored = {0}; /* not TOML: stays a string */
			json_t *t =
			    toml_parse(json_string_value(v), json_string_length(v), &ignored);
			if (t)
				json_object_set_new(c, tomls[i], t);
		}
	}
	json_t *pr = json_object_get(c, "policy.rego");
	const char *at =
	    json_is_string(pr) ? strstr(json_string_value(pr), "policy_data := {") : NULL;
	json_t *pd = at ? json_loads(at + strlen("policy_data := "), 0, NULL) : NULL;
	if (pd != NULL) {
		json_object_del(c, "policy.rego");
		json_object_set_new(c, "agent_policy_claims", pd);
	}
	return c;
}

int binding_init_data_toml(struct binding *b, const char *toml, struct err *err)
{
	json_t *doc = toml_parse(toml, strlen(toml), err);
	if (doc == NULL)
		return err_prefix(err, "init data is not TOML");
	enum hash_alg alg =
	    hash_alg_from_name(json_string_value(json_object_get(doc, "algorithm")));
	json_t *data = json_object_get(doc, "data");
	if (!json_is_string(json_object_get(doc, "version")) || alg == HASH_NONE ||
	    !json_is_object(data)) {
		json_decref(doc);
		return err_set(err, "init data needs a string version, algorithm "
		                    "sha256/sha384/sha512 and a [data] table");
	}
	if ((b->init_data_hash = malloc(HASH_MAX)) == NULL) {
		json_decref(doc);
		return err_set(err, "out of memory");
	}
	b->init_data_hash_len = hash_digest(alg, toml, strlen(toml), b->init_data_hash);
	b->init_data_claims = init_data_claims(data);
	json_decref(doc);
	return 0;
}

int binding_init_data_digest(struct binding *b, const char *b64url, struct err *err)
{
	if (b64_decode(b64url, strlen(b64url), B64_URL | B64_LENIENT, &b->init_data_hash,
	               &b->init_data_hash_len) < 0)
		return err_set(err, "init data digest is not base64url");
	return 0;
}

int binding_from_request(struct binding *b, const Attestation__IndividualAttestationRequest *ir,
                         struct err *err)
{
	int rc = 0;

	memset(b, 0, sizeof(*b));
	switch (ir->runtime_data_case) {
	case ATTESTATION__INDIVIDUAL_ATTESTATION_REQUEST__RUNTIME_DATA_STRUCTURED_RUNTIME_DATA:
		rc = binding_structured_runtime_data(b, ir->structured_runtime_data,
		                                     ir->runtime_data_hash_algorithm, err);
		break;
	case ATTESTATION__INDIVIDUAL_ATTESTATION_REQUEST__RUNTIME_DATA_RAW_RUNTIME_DATA:
		rc = binding_raw_runtime_data(b, ir->raw_runtime_data, err);
		break;
	default:
		break;
	}
	if (rc == 0 && ir->init_data_case ==
	                   ATTESTATION__INDIVIDUAL_ATTESTATION_REQUEST__INIT_DATA_INIT_DATA_TOML)
		rc = binding_init_data_toml(b, ir->init_data_toml, err);
	else if (rc == 0 &&
	         ir->init_data_case ==
	             ATTESTATION__INDIVIDUAL_ATTESTATION_REQUEST__INIT_DATA_INIT_DATA_DIGEST)
		rc = binding_init_data_digest(b, ir->init_data_digest, err);
	if (rc < 0)
		binding_free(b);
	return rc;
}

void binding_free(struct binding *b)
{
	free(b->report_data);
	free(b->init_data_hash);
	json_decref(b->runtime_data_claims);
	json_decref(b->init_data_claims);
	memset(b, 0, sizeof(*b));
}
