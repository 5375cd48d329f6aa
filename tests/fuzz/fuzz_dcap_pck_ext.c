/* Fuzz the DER decoder of the PCK certificate's SGX extension (OID 1.2.840.113741.1.13.1). */
#include <stddef.h>
#include <stdint.h>

#include "as/evidence/dcap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dcap_pck_ext ext;
	struct err err;

	dcap_pck_ext_parse(data, size, &ext, &err);
	return 0;
}
