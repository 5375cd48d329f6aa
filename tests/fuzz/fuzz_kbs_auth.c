/* Fuzz the KBS /auth request parser (kbs-types Request) and the protocol version check it
 * feeds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kbs/kbs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kbs_auth_req r;
	struct err err;

	if (kbs_auth_req_parse(data, size, &r, &err) == 0) {
		(void)kbs_version_check(r.version);
		(void)kbs_tee_known(r.tee);
		kbs_auth_req_free(&r);
	}
	/* the raw bytes as a version string */
	char *v = malloc(size + 1);
	if (v) {
		memcpy(v, data, size);
		v[size] = 0;
		(void)kbs_version_check(v);
		free(v);
	}
	return 0;
}
