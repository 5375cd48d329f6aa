/* Fuzz the IBM Secure Execution formats (as/evidence/se_attest.c): the input as an SE image
 * header (its tags), as the additional data the Ultravisor appends under each combination of
 * PHKH flags (first byte), and as the measured user and additional data of se_measure with
 * lengths the input picks, including ones over the Ultravisor's limits. */
#include <stddef.h>
#include <stdint.h>

#include "as/evidence/se_attest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t key[SE_MEAS_KEY_LEN], cuid[SE_CUID_LEN], nonce[SE_NONCE_LEN];
	uint8_t tags[SE_HDR_TAGS_LEN] = {0}, m[SE_MEASUREMENT_LEN];
	struct se_additional ad;
	struct err err;

	(void)se_hdr_tags(data, size, tags, &err);
	if (size == 0)
		return 0;
	uint64_t paf =
	    (data[0] & 1 ? SE_PAF_PHKH_IMAGE : 0) | (data[0] & 2 ? SE_PAF_PHKH_ATTEST : 0);
	(void)se_additional_parse(data + 1, size - 1, paf, &ad, &err);
	size_t ulen = size > 2 ? (size_t)data[1] << 1 : 0; /* up to 510: over the 256 limit too */
	if (ulen > size - 1)
		ulen = size - 1;
	(void)se_measure(key, tags, cuid, data + 1, ulen, nonce, data + 1 + ulen, size - 1 - ulen,
	                 m, &err);
	return 0;
}
