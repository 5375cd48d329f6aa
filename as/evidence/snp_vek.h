/*
 * snp_vek: the VEK of an SEV-SNP report, a VCEK (per chip and TCB) or a VLEK (per cloud
 * provider), with the values of its AMD extensions, and its chain to AMD's ARK/ASK/ASVK of
 * the report's processor generation, which are built in (as/evidence/roots/).
 */
#ifndef CTRUSTEE_SNP_VEK_H
#define CTRUSTEE_SNP_VEK_H

#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "as/evidence/snp_report.h" /* enum snp_gen, struct snp_tcb */
#include "err.h"

/* The VEK: a VCEK or VLEK certificate, with the values of its AMD extensions. */
struct snp_vek {
	X509 *cert; /* owned */
	int is_vlek;
	enum snp_gen gen; /* from productName, SNP_GEN_UNKNOWN if absent */
	struct snp_tcb tcb;
	int has_hwid;
	uint8_t hwid[64];
	size_t hwid_len;
};

/* Parse a DER or PEM VCEK/VLEK. */
int snp_vek_load(const uint8_t *buf, size_t len, struct snp_vek *out, struct err *err);
void snp_vek_free(struct snp_vek *v);

/* Verify VEK -> ASK (or ASVK for a VLEK) -> ARK against the built-in roots of `gen`, each
 * certificate valid at `now` (0 = skip the time check). `ark_in`/`ask_in` (may be NULL)
 * are certificates the evidence supplied; a supplied ARK must equal the built-in one. */
int snp_vek_verify_chain(const struct snp_vek *vek, enum snp_gen gen, X509 *ark_in, X509 *ask_in,
                         time_t now, struct err *err);

#endif
