/*
 * registry: TEE name -> verifier. One row per verifier file (as/verifiers/<tee>.c defines
 * `verifier_<tee>`); the references are strong, so a program that looks verifiers up links
 * exactly these and nothing else of the AS. A TEE without a row gets "no verifier" from
 * the AS. A new verifier is one file and one line below.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as/verifiers/verifier.h"

extern const struct verifier verifier_sample, verifier_sampledevice, verifier_tdx, verifier_sgx,
    verifier_snp, verifier_az_snp_vtpm, verifier_az_tdx_vtpm, verifier_tpm, verifier_nvidia;
extern const struct verifier verifier_cca;
extern const struct verifier verifier_csv;
extern const struct verifier verifier_se;
extern const struct verifier verifier_hygon_dcu;

static const struct verifier *const table[] = {
    &verifier_sample,    &verifier_sampledevice, &verifier_tdx,         &verifier_sgx,
    &verifier_snp,       &verifier_az_snp_vtpm,  &verifier_az_tdx_vtpm, &verifier_tpm,
    &verifier_nvidia,    &verifier_cca,          &verifier_csv,         &verifier_se,
    &verifier_hygon_dcu,
};

const struct verifier *verifier_find(const char *tee)
{
	if (tee == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (strcmp(table[i]->tee, tee) == 0)
			return table[i];
	return NULL;
}

int verifiers_init(const json_t *verifier_config, struct err *err)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i]->init != NULL && table[i]->init(verifier_config, err) < 0)
			return err_prefix(err, "%s verifier", table[i]->tee);
	return 0;
}

int verify_result_add(struct verify_result *r, const char *tee_class, json_t *claims,
                      struct err *err)
{
	if (claims == NULL)
		return err_set(err, "out of memory building the %s claims", tee_class);
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 4;
		struct verifier_claims *items =
		    cap > r->cap ? realloc(r->items, cap * sizeof(*items)) : NULL;
		if (items == NULL) {
			json_decref(claims);
			return err_set(err, "out of memory holding %zu device claims", r->n + 1);
		}
		r->items = items;
		r->cap = cap;
	}
	snprintf(r->items[r->n].tee_class, sizeof(r->items[r->n].tee_class), "%s", tee_class);
	r->items[r->n].failed = 0;
	r->items[r->n++].claims = claims;
	return 0;
}

int verify_result_add_failed(struct verify_result *r, const char *tee_class, const char *why,
                             struct err *err)
{
	if (verify_result_add(r, tee_class, json_pack("{s:s}", "verification_error", why), err) < 0)
		return -1;
	r->items[r->n - 1].failed = 1;
	return 0;
}

const char *verify_result_first_failure(const struct verify_result *r)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->items[i].failed)
			return json_string_value(
			    json_object_get(r->items[i].claims, "verification_error"));
	return NULL;
}

void verify_result_clear(struct verify_result *r)
{
	for (size_t i = 0; i < r->n; i++)
		json_decref(r->items[i].claims);
	free(r->items);
	r->items = NULL;
	r->n = r->cap = 0;
}

void verifier_regularize(const uint8_t *x, size_t xlen, uint8_t *out, size_t n)
{
	size_t k = xlen < n ? xlen : n;
	memset(out, 0, n);
	if (k > 0)
		memcpy(out, x, k);
}
