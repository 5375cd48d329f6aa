/* Fuzz the Sigstore trusted root parser (keys, validity periods, certificate chains). */
#include <stdint.h>

#include "rvps/extractors/sigstore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sigstore_root *r = NULL;
	struct err err = {0};

	if (sigstore_root_parse(data, size, &r, &err) == 0)
		sigstore_root_free(r);
	return 0;
}
