/*
 * registry: TEE name -> verifier. Each verifier file defines its table entry; the
 * references here are weak so a TEE whose verifier is not built simply reports
 * "no verifier" instead of failing the link (libas is linked whole, so every built
 * verifier is present).
 */
#include <string.h>

#include "as/verifiers/verifier.h"

#define WEAK __attribute__((weak))
extern const struct verifier verifier_sample WEAK;
extern const struct verifier verifier_sampledevice WEAK;
extern const struct verifier verifier_tdx WEAK;
extern const struct verifier verifier_sgx WEAK;
extern const struct verifier verifier_snp WEAK;
extern const struct verifier verifier_az_snp_vtpm WEAK;
extern const struct verifier verifier_az_tdx_vtpm WEAK;
extern const struct verifier verifier_tpm WEAK;
extern const struct verifier verifier_cca WEAK;
extern const struct verifier verifier_csv WEAK;
extern const struct verifier verifier_se WEAK;
extern const struct verifier verifier_hygondcu WEAK;
extern const struct verifier verifier_nvidia WEAK;

static const struct verifier *const table[] = {
    &verifier_sample,      &verifier_sampledevice, &verifier_tdx,    &verifier_sgx, &verifier_snp,
    &verifier_az_snp_vtpm, &verifier_az_tdx_vtpm,  &verifier_tpm,    &verifier_cca, &verifier_csv,
    &verifier_se,          &verifier_hygondcu,     &verifier_nvidia,
};

const struct verifier *verifier_find(const char *tee)
{
	if (tee == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i] != NULL && strcmp(table[i]->tee, tee) == 0)
			return table[i];
	return NULL;
}

int verifiers_init(const json_t *verifier_config, struct err *err)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i] != NULL && table[i]->init != NULL &&
		    table[i]->init(verifier_config, err) < 0)
			return err_prefix(err, "%s verifier", table[i]->tee);
	return 0;
}

void verify_result_clear(struct verify_result *r)
{
	for (size_t i = 0; i < r->n; i++) {
		json_decref(r->items[i].claims);
		r->items[i].claims = NULL;
	}
	r->n = 0;
}

void verifier_regularize(const uint8_t *x, size_t xlen, uint8_t *out, size_t n)
{
	size_t k = xlen < n ? xlen : n;
	memset(out, 0, n);
	if (k > 0)
		memcpy(out, x, k);
}
