/* Fuzz the TPMS_ATTEST (quote) parser. */
#include <stddef.h>
#include <stdint.h>

#include "as/evidence/tpm_quote.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tpm_attest a;
	struct err err;

	tpm_attest_parse(data, size, &a, &err);
	return 0;
}
