/*
 * weakdeps: the JOSE and Rego functions the KBS calls, referenced weakly so the daemon links
 * (and fails closed, saying why) in a build where those modules are not complete yet. When
 * common/jose.c and common/rego/ provide them they are linked in through their other users
 * (jwk_to_pkey here, the AS policy engine in libas) and these references resolve to them.
 * Every call site checks kbs_jose_available() / kbs_rego_available() first.
 */
#ifndef CTRUSTEE_KBS_WEAKDEPS_H
#define CTRUSTEE_KBS_WEAKDEPS_H

#include "jose.h"
#include "rego/rego.h"

#pragma weak jws_verify
#pragma weak jws_decode_unverified
#pragma weak jwe_encrypt
#pragma weak jwk_default_alg
#pragma weak pkey_public_equal
#pragma weak rego_compile
#pragma weak rego_eval_rule
#pragma weak rego_policy_free

static inline int kbs_jose_available(void)
{
	return jws_verify && jws_decode_unverified && jwe_encrypt && jwk_default_alg &&
	       pkey_public_equal;
}

static inline int kbs_rego_available(void)
{
	return rego_compile && rego_eval_rule && rego_policy_free;
}

#endif
