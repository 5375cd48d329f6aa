/* Fuzz the client-address walk over X-Forwarded-For and Forwarded (RFC 7239) header bytes,
 * and the failure-cause scrubber, with the TCP peer a trusted proxy so every hop is read.
 * The first byte picks the header kind; the rest is the header value (not NUL-terminated). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kbs/kbs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kbs_cidrs *trusted;
	if (!trusted) {
		static char *list[] = {"10.0.0.0/8", "2001:db8::/32", "192.0.2.7"};
		struct kbs_strv v = {list, 3};
		struct err e;
		if (kbs_cidrs_parse(&v, &trusted, &e) != 0)
			abort();
	}
	if (size < 1)
		return 0;
	char out[64];
	/* a copy with no terminator past `size`, so an over-read is caught by ASan */
	char *h = malloc(size - 1 ? size - 1 : 1);
	if (!h)
		return 0;
	memcpy(h, data + 1, size - 1);
	kbs_client_addr(trusted, data[0] & 1, "10.1.2.3", h, size - 1, out, sizeof(out));
	if (strlen(out) >= sizeof(out))
		abort();
	char *z = malloc(size);
	if (z) {
		memcpy(z, data + 1, size - 1);
		z[size - 1] = 0;
		char small[32];
		kbs_scrub_hosts(z, small, sizeof(small));
		if (strlen(small) >= sizeof(small))
			abort();
		free(z);
	}
	free(h);
	return 0;
}
