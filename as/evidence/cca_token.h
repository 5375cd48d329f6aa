/*
 * cca_token: the Arm CCA attestation token (RMM specification §A.7) from untrusted bytes, and
 * the two signature checks and the binding that make it evidence.
 *
 * A token is a collection, CBOR tag 399 around a map with exactly two entries: 44234, the
 * platform token, and 44241, the realm token, each a byte string holding a tagged COSE_Sign1
 * (or, in the later CMW form, tag 907 around the same map with each entry [263, bytes]).
 * The realm token is signed by the realm attestation key (RAK) that it carries itself; the
 * platform token is signed by the platform's CPAK and its challenge is the hash of the RAK
 * (the hash named by the realm's cca-realm-public-key-hash-algo-id). So the platform vouches
 * for the RAK and the RAK for the realm: cca_token_verify_realm checks the realm signature
 * and that binding, cca_token_verify_platform the platform signature under a CPAK the caller
 * found in its trust-anchor store. Every claim is length-checked while parsing; the claim
 * pointers borrow from the decoded payloads, which live until cca_token_clear.
 */
#ifndef CTRUSTEE_CCA_TOKEN_H
#define CTRUSTEE_CCA_TOKEN_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "cborx.h"
#include "cose.h"
#include "err.h"

#define CCA_TAG_COLLECTION 399     /* the collection of the RMM specification 1.0 */
#define CCA_TAG_CMW_COLLECTION 907 /* a CMW collection; entries [263, token] */
#define CCA_CF_EAT_CWT 263
#define CCA_KEY_PLATFORM 44234
#define CCA_KEY_REALM 44241
#define CCA_REM_COUNT 4
#define CCA_MAX_SW_COMPONENTS 64
#define CCA_IMPL_ID_LEN 32
#define CCA_INST_ID_LEN 33 /* EAT UEID: type 0x01 (RAND) and 32 bytes */
#define CCA_REALM_CHALLENGE_LEN 64
#define CCA_PERSO_LEN 64

struct cca_bytes {
	const uint8_t *p; /* borrowed from the token's decoded payload */
	size_t len;
};

struct cca_sw_component {
	char *type;     /* owned, NULL when absent */
	char *version;  /* owned, NULL when absent */
	char *hash_alg; /* owned, NULL when absent */
	struct cca_bytes value, signer_id;
};

struct cca_platform_claims {
	char *profile;              /* owned */
	struct cca_bytes challenge; /* 32, 48 or 64 bytes: the hash of the RAK */
	struct cca_bytes impl_id;   /* 32 bytes */
	struct cca_bytes inst_id;   /* 33 bytes, first 0x01 */
	struct cca_bytes config;
	int64_t lifecycle;
	struct cca_sw_component sw[CCA_MAX_SW_COMPONENTS];
	size_t n_sw;
	char *service;  /* owned, NULL when absent (verification service indicator) */
	char *hash_alg; /* owned */
};

struct cca_realm_claims {
	char *profile;              /* owned, NULL in the legacy profile (RAK a raw EC point) */
	struct cca_bytes challenge; /* 64 bytes */
	struct cca_bytes perso;     /* 64 bytes */
	struct cca_bytes rim;       /* 32, 48 or 64 bytes */
	struct cca_bytes rem[CCA_REM_COUNT];
	char *hash_alg;       /* owned */
	struct cca_bytes rak; /* raw uncompressed P-384 point, or a COSE_Key */
	char *rak_hash_alg;   /* owned */
};

struct cca_token {
	cbor_item_t *collection;               /* owned: the decoded tag-399 item */
	struct cose_sign1 platform, realm;     /* owned */
	cbor_item_t *platform_map, *realm_map; /* owned: the decoded payloads */
	struct cca_platform_claims p;
	struct cca_realm_claims r;
};

/* buf: a tag-399 CCA token collection. Fills out (cca_token_clear it after, also on error). */
int cca_token_parse(const uint8_t *buf, size_t len, struct cca_token *out, struct err *err);
void cca_token_clear(struct cca_token *t);
/* The RAK as a P-384 public key (new reference), or NULL and why. */
EVP_PKEY *cca_token_rak(const struct cca_token *t, struct err *err);
/* The realm token's ES384 signature by its RAK, and the platform challenge equal to the
 * RAK's hash. 0, or -1 and which of the two failed. */
int cca_token_verify_realm(const struct cca_token *t, struct err *err);
/* The platform token's signature by cpak (the key pins the algorithm). */
int cca_token_verify_platform(const struct cca_token *t, EVP_PKEY *cpak, struct err *err);

#endif
