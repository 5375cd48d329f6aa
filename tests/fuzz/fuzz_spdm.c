/* Fuzz the NVIDIA device evidence parsers: the SPDM GET_MEASUREMENTS transcript with its
 * opaque data (as raw bytes, and as the hex text collectors send; as a GPU's and as an
 * NVSwitch's), its claims, and the PEM certificate chain beside it. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "as/evidence/nvidia_chain.h"
#include "as/evidence/spdm.h"
#include "b64.h"

static void transcript(const uint8_t *buf, size_t len)
{
	static struct spdm_measurements m;
	struct err err;
	if (spdm_measurements_parse(buf, len, SPDM_P384_SIG_LEN, &m, &err) == 0)
		json_decref(spdm_opaque_claims(&m));
	if (spdm_measurements_parse_device(buf, len, SPDM_P384_SIG_LEN, SPDM_DEVICE_SWITCH, &m,
	                                   &err) == 0)
		json_decref(spdm_opaque_claims(&m));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *raw;
	size_t n;
	struct nvidia_chain c = {0};
	struct err err;

	transcript(data, size);
	if (hex_decode((const char *)data, size, &raw, &n) == 0) {
		transcript(raw, n);
		free(raw);
	}
	nvidia_chain_parse(data, size, &c, &err);
	nvidia_chain_free(&c);
	return 0;
}
