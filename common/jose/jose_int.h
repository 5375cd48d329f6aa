/*
 * What the JOSE files share and nobody else needs: the curve of an EC key (jwk.c, used by the
 * JWS algorithm table) and the base64url(JSON) segments JWS and JWE headers are made of (jws.c,
 * used by jwe.c).
 */
#ifndef CTRUSTEE_JOSE_INT_H
#define CTRUSTEE_JOSE_INT_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>

#include "err.h"

/* Coordinate size in bytes of an EC key on P-256, P-384 or P-521 (32, 48, 66) and its JOSE curve
 * name in *crv (borrowed, static); 0 for any other key or curve. */
size_t jose_ec_size(const EVP_PKEY *pk, const char **crv);

/* The domain parameters of P-256, P-384 or P-521 as a parameters-only key, built once per
 * process (borrowed; NULL for another curve): the template every EC import and ephemeral key
 * starts from, so no call builds a curve group from its name again. */
EVP_PKEY *jose_ec_params(const char *crv);

/* base64url of the compact JSON text, members in insertion order; malloc'd, NULL on failure. */
char *jose_b64url_json(const json_t *j);

/* One base64url segment that must hold a JSON object (duplicate members refused); `what` names
 * it in the error. Returns a new reference or NULL. */
json_t *jose_decode_segment(const char *seg, size_t len, const char *what, struct err *err);

#endif
