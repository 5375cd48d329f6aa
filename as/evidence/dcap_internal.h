/*
 * dcap_internal: what the DCAP files share beyond dcap.h — the collateral decoded into
 * plain arrays at load time (so matching a quote walks no JSON), and the signature helper.
 */
#ifndef CTRUSTEE_DCAP_INTERNAL_H
#define CTRUSTEE_DCAP_INTERNAL_H

#include <openssl/evp.h>

#include "as/evidence/dcap.h"

#define DCAP_MAX_LEVELS 128
#define DCAP_MAX_MODULES 16

struct dcap_level {
	uint8_t sgx[16];
	uint16_t pcesvn;
	uint8_t tdx[16];
	int has_tdx;
	uint16_t isvsvn; /* QE identity and TDX module levels */
	char status[48];
	char date[32];
	json_t *advisories; /* borrowed from the collateral's parsed JSON, may be NULL */
};

struct dcap_module {
	char id[16]; /* "TDX_01" */
	uint8_t mrsigner[48], attributes[8], attributes_mask[8];
	struct dcap_level *levels;
	size_t nlevels;
};

struct dcap_tcbinfo {
	int is_tdx, version;
	uint8_t fmspc[6], pceid[2];
	long eval_num;
	int has_module;
	uint8_t mod_mrsigner[48], mod_attributes[8], mod_attributes_mask[8];
	struct dcap_module modules[DCAP_MAX_MODULES];
	size_t nmodules;
	struct dcap_level *levels;
	size_t nlevels;
};

struct dcap_qeid {
	int is_td_qe;
	long eval_num;
	uint8_t miscselect[4], miscselect_mask[4], attributes[16], attributes_mask[16];
	uint8_t mrsigner[32];
	uint16_t isvprodid;
	struct dcap_level *levels;
	size_t nlevels;
};

/* Decoders for the signed JSON (filled into c->tcb / c->qe by dcap_collateral_from_json). */
int dcap_tcbinfo_decode(const json_t *j, struct dcap_tcbinfo *t, struct err *err);
int dcap_qeid_decode(const json_t *j, struct dcap_qeid *q, struct err *err);
void dcap_tcbinfo_free(struct dcap_tcbinfo *t);
void dcap_qeid_free(struct dcap_qeid *q);

/* ECDSA P-256 / SHA-256 over data with a raw 64-byte r||s signature. */
int dcap_p256_verify(EVP_PKEY *key, const uint8_t *data, size_t len, const uint8_t sig[64]);
/* The public key of a raw X||Y P-256 point. */
EVP_PKEY *dcap_p256_key(const uint8_t xy[64]);

/* Hex text of exactly n bytes (either case) into out. */
int dcap_hex_exact(const char *s, uint8_t *out, size_t n);

#endif
