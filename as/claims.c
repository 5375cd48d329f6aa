/*
 * claims: build the §2.5 object (the Rego `input` and the EAR annotated evidence) from a
 * verifier's claims. The verifier object is copied, `report_data` and `init_data` strings are
 * hoisted beside their runtime/init-data claims, and the rest is nested under the TEE name.
 * Keys come out sorted, as Trustee emits them.
 */
#include <string.h>

#include "as/claims.h"

static json_t *sorted_copy(const json_t *v);

static json_t *sorted_object(const json_t *obj)
{
	const char *keys[1024];
	size_t n = 0;
	const char *k;
	json_t *val, *out = json_object();

	json_object_foreach((json_t *)obj, k, val)
	{
		if (n < sizeof(keys) / sizeof(keys[0]))
			keys[n++] = k;
	}
	/* insertion sort: objects here are small */
	for (size_t i = 1; i < n; i++) {
		const char *t = keys[i];
		size_t j = i;
		while (j > 0 && strcmp(keys[j - 1], t) > 0) {
			keys[j] = keys[j - 1];
			j--;
		}
		keys[j] = t;
	}
	for (size_t i = 0; i < n; i++)
		json_object_set_new(out, keys[i], sorted_copy(json_object_get(obj, keys[i])));
	return out;
}

static json_t *sorted_copy(const json_t *v)
{
	if (json_is_object(v))
		return sorted_object(v);
	if (json_is_array(v)) {
		json_t *out = json_array();
		size_t i;
		json_t *e;
		json_array_foreach(v, i, e) json_array_append_new(out, sorted_copy(e));
		return out;
	}
	return json_deep_copy(v);
}

/* The object is assembled from shallow copies and references to the borrowed claims, and
 * sorted_object then copies it once, deeply (the claims were copied twice before: 3% of
 * grpc-as's CPU per KBS handshake went to json_deep_copy and sorted_object). */
json_t *claims_policy_input(const char *tee, const json_t *verifier_claims,
                            const json_t *runtime_data_claims, const json_t *init_data_claims,
                            int verbose)
{
	json_t *tee_obj =
	    json_is_object(verifier_claims) ? json_copy((json_t *)verifier_claims) : json_object();
	json_t *top = json_object();
	json_t *rd, *id, *out;

	id = json_object_get(tee_obj, "init_data");
	if (json_is_string(id)) {
		json_object_set(top, "init_data", id);
		json_object_set_new(top, "init_data_claims",
		                    init_data_claims ? json_incref((json_t *)init_data_claims)
		                                     : json_null());
		json_object_del(tee_obj, "init_data");
	}
	rd = json_object_get(tee_obj, "report_data");
	if (json_is_string(rd)) {
		json_t *rdc =
		    runtime_data_claims ? json_incref((json_t *)runtime_data_claims) : json_null();
		if (!verbose && json_is_object(rdc) &&
		    json_is_object(json_object_get(rdc, "additional-evidence"))) {
			json_t *trimmed =
			    json_copy(rdc); /* shallow: the borrowed one stays whole */
			json_decref(rdc);
			rdc = trimmed;
			json_object_del(rdc, "additional-evidence");
		}
		json_object_set(top, "report_data", rd);
		json_object_set_new(top, "runtime_data_claims", rdc);
		json_object_del(tee_obj, "report_data");
	}
	json_object_set_new(top, tee, tee_obj);
	out = sorted_object(top);
	json_decref(top);
	return out;
}
