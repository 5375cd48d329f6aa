/* Fuzz the transparency log checkpoint (signed note) parser, then the RFC 9162 inclusion
 * check with a proof, index and size taken from the input's tail. */
#include <stdint.h>
#include <string.h>

#include "rvps/extractors/sigstore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sigstore_checkpoint cp;
	struct err err = {0};
	uint8_t path[8][32] = {{0}}, leaf[32] = {0};
	size_t n;

	if (sigstore_checkpoint_parse(data, size, &cp, &err) == 0 && size >= 34) {
		n = data[size - 1] % 9;
		for (size_t i = 0; i < n && (i + 1) * 32 <= size; i++)
			memcpy(path[i], data + i * 32, 32);
		memcpy(leaf, data + size - 33, 32);
		sigstore_merkle_verify(leaf, data[size - 2], cp.size, (const uint8_t(*)[32])path, n,
		                       cp.root_hash, &err);
	}
	return 0;
}
