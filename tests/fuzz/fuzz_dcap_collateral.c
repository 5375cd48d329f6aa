/* Fuzz the collateral decoders: a bundle document, or TCB Info / QE identity JSON alone. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "as/evidence/dcap_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dcap_collateral c;
	struct dcap_tcbinfo t;
	struct dcap_qeid q;
	struct err err;
	json_t *j = json_loadb((const char *)data, size, 0, NULL);

	if (j == NULL)
		return 0;
	if (dcap_collateral_from_json(j, &c, &err) == 0) {
		dcap_collateral_check(&c, dcap_root_ca(), &err);
		dcap_collateral_free(&c);
	}
	if (dcap_tcbinfo_decode(j, &t, &err) == 0)
		dcap_tcbinfo_free(&t);
	if (dcap_qeid_decode(j, &q, &err) == 0)
		dcap_qeid_free(&q);
	json_decref(j);
	return 0;
}
