/*
 * snp_report: AMD SEV-SNP attestation reports (their certificate chains: snp_vek.h).
 *
 * A report is parsed from its 1184-byte ABI form (SEV-SNP Firmware ABI #56860,
 * ATTESTATION_REPORT) or rebuilt into that form from the sev-crate JSON that Trustee's
 * attesters send, because the signature covers the raw bytes [0, 0x2A0). The VEK (VCEK or
 * VLEK) is checked against AMD's ARK/ASK/ASVK of the report's processor generation, which
 * are built in. The same code serves the `snp` and `az-snp-vtpm` verifiers.
 */
#ifndef CTRUSTEE_SNP_REPORT_H
#define CTRUSTEE_SNP_REPORT_H

#include <jansson.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "err.h"

#define SNP_REPORT_SIZE 1184
#define SNP_SIGNED_SIZE 0x2A0

enum snp_gen { SNP_GEN_UNKNOWN = 0, SNP_GEN_MILAN, SNP_GEN_GENOA, SNP_GEN_TURIN };

struct snp_tcb {
	int has_fmc;
	uint8_t fmc, bootloader, tee, snp, microcode;
};

struct snp_report {
	uint8_t raw[SNP_REPORT_SIZE]; /* the ABI bytes (rebuilt for JSON evidence) */
	uint32_t version, guest_svn, vmpl, sig_algo, key_info;
	uint64_t policy, plat_info;
	uint8_t cpuid_fam, cpuid_mod, cpuid_step;
	enum snp_gen gen;
	struct snp_tcb current_tcb, reported_tcb, committed_tcb, launch_tcb;
	const uint8_t *report_data; /* 64, into raw */
	const uint8_t *measurement; /* 48 */
	const uint8_t *host_data;   /* 32 */
	const uint8_t *chip_id;     /* 64 */
};

/* Parse the ABI form. The generation comes from the CPUID fields (report v3+); for older
 * reports pass a hint (SNP_GEN_UNKNOWN = take it from the VEK later). */
int snp_report_parse(const uint8_t *buf, size_t len, enum snp_gen hint, struct snp_report *out,
                     struct err *err);
/* Rebuild the ABI form from the sev-crate JSON object and parse it. */
int snp_report_from_json(const json_t *j, struct snp_report *out, struct err *err);

/* Set the generation of a v2 report (known only from its VEK) and re-decode its TCBs. */
void snp_report_set_gen(struct snp_report *r, enum snp_gen gen);
const char *snp_gen_name(enum snp_gen g); /* "Milan", "Genoa", "Turin" */
enum snp_gen snp_gen_from_cpuid(uint8_t fam, uint8_t mod);

struct snp_vek; /* snp_vek.h */

/* Report signature by the VEK, chip id and TCB bound to the VEK, VMPL 0. */
int snp_report_verify(const struct snp_report *r, const struct snp_vek *vek, struct err *err);

/* Trustee's KDS/offline-store naming: hwid hex (8 bytes on Turin), the TCB query/prefix. */
void snp_hwid_hex(const struct snp_report *r, char out[129]);
void snp_tcb_prefix(const struct snp_report *r, char *out, size_t cap);
void snp_kds_query(const struct snp_report *r, char *out, size_t cap);

/* Every user of a report verifies it against a VEK: one include serves both halves. */
#include "as/evidence/snp_vek.h"

#endif
