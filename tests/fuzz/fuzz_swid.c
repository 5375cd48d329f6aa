/* Fuzz the SWID/RIM extractor on raw XML bytes: the DTD refusal, libxml2 parsing, the
 * document-shape (signature-wrapping) checks and the value walk, without trust anchors and,
 * when the shared test data is there, with NVIDIA's RIM root so xmlsec verifies each input
 * at a fixed time. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "rvps/extractors.h"

static struct rvps_extractor_set *with_root(void)
{
	const char *shared = getenv("CTRUSTEE_SHARED");
	char cfg[1400];
	json_t *j;
	struct rvps_extractor_set *s;
	struct err err = {0};

	snprintf(cfg, sizeof(cfg),
	         "{\"verification_time\":\"2025-06-01T00:00:00Z\",\"extractors\":{"
	         "\"swid_extractor\":{\"trust_anchors\":[\"%s/testdata/evidence/nvidia/nvtrust/"
	         "verifier_RIM_root.pem\"]}}}",
	         shared ? shared : "../shared");
	j = json_loads(cfg, 0, NULL);
	s = rvps_extractor_set_new(j, &err);
	json_decref(j);
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rvps_extractor_set *set;
	static int tried;
	struct err err = {0};
	json_t *values = NULL;
	char *b64;

	if (!tried) {
		tried = 1;
		set = with_root();
	}
	b64 = b64_encode(data, size, B64_STD);
	if (b64 == NULL)
		return 0;
	if (rvps_extractor_swid.extract(b64, strlen(b64), &values, &err) == 0)
		json_decref(values);
	values = NULL;
	if (set != NULL &&
	    rvps_extractor_set_extract(set, "swid", b64, strlen(b64), &values, NULL, &err) == 0)
		json_decref(values);
	free(b64);
	return 0;
}
