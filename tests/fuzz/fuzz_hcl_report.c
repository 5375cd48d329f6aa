/* Fuzz the Azure HCL report parser and the AK/user-data lookups in its variable data. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "as/evidence/hcl_report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hcl_report h;
	struct err err;

	if (hcl_report_parse(data, size, &h, &err) == 0) {
		EVP_PKEY *ak = hcl_ak_pub(&h, &err);
		EVP_PKEY_free(ak);
		uint8_t *ud;
		size_t n;
		if (hcl_user_data(&h, &ud, &n, &err) == 0)
			free(ud);
	}
	hcl_report_free(&h);
	return 0;
}
