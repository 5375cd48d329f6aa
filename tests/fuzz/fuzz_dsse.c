/* Fuzz the DSSE envelope parser, its PAE and signature check with a fixed P-256 key, and the
 * in-toto statement parser, both on the envelope's payload and on the raw input. */
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <stdint.h>

#include "rvps/extractors/dsse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static EVP_PKEY *key;
	struct dsse_envelope env;
	struct err err = {0};
	json_t *vals = NULL;

	if (key == NULL)
		key = EVP_EC_gen("P-256");
	if (dsse_parse(data, size, &env, &err) == 0) {
		for (size_t i = 0; i < env.n_sigs; i++)
			dsse_verify_sig(&env, i, key, &err);
		if (intoto_statement_parse(env.payload, env.payload_len, &vals, &err) == 0)
			json_decref(vals);
		dsse_free(&env);
	}
	vals = NULL;
	if (intoto_statement_parse(data, size, &vals, &err) == 0)
		json_decref(vals);
	return 0;
}
