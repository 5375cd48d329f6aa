/* Fuzz the NRAS answer (as/collateral/nvidia_nras.h): the detached EAT bundle's JSON shape,
 * then both tokens' JOSE headers, signatures, times, eat_nonce and submod digest against a
 * fixed JWK set (the seed in seeds/fuzz_nvidia_nras is signed with its key, so mutations reach
 * the claim checks). */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "as/collateral/nvidia_nras.h"

static const char JWKS[] =
    "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-384\",\"use\":\"sig\",\"alg\":\"ES384\","
    "\"kid\":\"fuzz-kid\",\"x\":\"RlLVZ6nwBDhldfGl_7apwDygqN9-KCe-xwf3fC1c7fZTkivtY1xPl80Vry"
    "c4x2kp\",\"y\":\"eUyqYLPPTVDvXNrhbqEb0vzkPS2q5lQF0apDGxlchQtP7YEDIx2qW29w-DXCumhS\"}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static json_t *jwks;
	struct nras_answer a;
	struct err err;
	json_t *claims = NULL;

	if (jwks == NULL)
		jwks = json_loads(JWKS, 0, NULL);
	if (nras_answer_parse(data, size, &a, &err) < 0)
		return 0;
	if (nras_answer_verify(&a, jwks,
	                       "0000000000000000000000000000000000000000000000000000000000000000",
	                       1800000000, &claims, &err) == 0)
		json_decref(claims);
	nras_answer_free(&a);
	return 0;
}
