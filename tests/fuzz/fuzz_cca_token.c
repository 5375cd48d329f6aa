/* Fuzz the Arm CCA token parser (as/evidence/cca_token.c) on raw bytes: the tag-399
 * collection, both COSE_Sign1 envelopes and their claims maps; on a token that parses, the
 * RAK import, the realm signature and binding, and the platform signature under a fixed
 * P-384 key (which can only fail, but walks the Sig_structure). */
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "as/evidence/cca_token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static EVP_PKEY *cpak;
	struct cca_token t;
	struct err err;

	if (cpak == NULL)
		cpak = EVP_EC_gen("P-384");
	if (cca_token_parse(data, size, &t, &err) == 0) {
		(void)cca_token_verify_realm(&t, &err);
		if (cpak != NULL)
			(void)cca_token_verify_platform(&t, cpak, &err);
	}
	cca_token_clear(&t);
	return 0;
}
