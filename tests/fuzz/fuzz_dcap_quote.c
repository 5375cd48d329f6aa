/* Fuzz the Intel quote parser and, when a quote parses, its PCK chain and SGX extension. */
#include <stddef.h>
#include <stdint.h>

#include "as/evidence/dcap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dcap_quote q;
	struct dcap_pck pck;
	struct err err;

	if (dcap_quote_parse(data, size, &q, &err) == 0 &&
	    dcap_pck_parse(q.pck_pem, q.pck_pem_len, &pck, &err) == 0)
		dcap_pck_free(&pck);
	return 0;
}
