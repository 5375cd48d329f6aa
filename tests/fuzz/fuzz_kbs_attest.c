/* Fuzz the KBS /attest request parser (kbs-types Attestation, with its TeePubKey and
 * init-data members). */
#include <stddef.h>
#include <stdint.h>

#include "kbs/kbs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kbs_attest_req r;
	struct err err;

	if (kbs_attest_req_parse(data, size, &r, &err) == 0)
		kbs_attest_req_free(&r);
	return 0;
}
