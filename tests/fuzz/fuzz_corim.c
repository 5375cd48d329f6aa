/* Fuzz the CoRIM extractor on raw CBOR bytes: the bounded CBOR walk and decode
 * (common/cborx.c), COSE_Sign1 parsing and verification with a fixed P-256 key
 * (common/cose.c), and the CoRIM/CoMID walk, unsigned and signed, with and without the
 * 500/502 wrapper tags. */
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "cborx.h"
#include "cose.h"
#include "rvps/extractors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static EVP_PKEY *key;
	struct cose_sign1 s;
	struct err err = {0};
	cbor_item_t *it;
	json_t *values = NULL;
	char *b64;

	if (key == NULL)
		key = EVP_EC_gen("P-256");
	it = cborx_load(data, size, &err);
	if (it != NULL)
		cbor_decref(&it);
	if (cose_sign1_parse(data, size, &s, &err) == 0) {
		if (key != NULL)
			(void)cose_sign1_verify(&s, key, &err);
		cose_sign1_clear(&s);
	}
	b64 = b64_encode(data, size, B64_STD);
	if (b64 == NULL)
		return 0;
	if (rvps_extractor_corim.extract(b64, strlen(b64), &values, &err) == 0)
		json_decref(values);
	free(b64);
	return 0;
}
