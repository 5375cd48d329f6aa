/*
 * dcap: Intel SGX/TDX ECDSA quotes and their verification against Intel's collateral.
 *
 * A quote (v3 SGX, v4 TDX, v5 TDX 1.0/1.5) is signed by an attestation key that the Quoting
 * Enclave certifies in its own report, which the platform's PCK certificate signs; the PCK
 * chain ends at the Intel SGX Root CA. Whether that platform and QE are still trustworthy is
 * Intel's collateral: TCB Info (per FMSPC) and the QE Identity, each signed by Intel's TCB
 * signing key, and the PCK and Root CA revocation lists. This module parses quotes and
 * collateral and decides, as Intel's quote verification library does, the TCB status.
 *
 * Used by the `tdx`, `sgx` and (through `tdx`) `az-tdx-vtpm` verifiers.
 */
#ifndef CTRUSTEE_DCAP_H
#define CTRUSTEE_DCAP_H

#include <jansson.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "err.h"

#define DCAP_TEE_SGX 0x00000000u
#define DCAP_TEE_TDX 0x00000081u
#define DCAP_HEADER_SIZE 48
#define DCAP_SGX_REPORT_SIZE 384
#define DCAP_TD10_BODY_SIZE 584
#define DCAP_TD15_BODY_SIZE 648

/* A parsed quote. Pointers point into the caller's buffer, which must outlive this. */
struct dcap_quote {
	uint16_t version, att_key_type;
	uint32_t tee_type;
	const uint8_t *header;       /* 48 */
	uint16_t body_type;          /* v5: 2 = TDX 1.0, 3 = TDX 1.5; v3: 1 (SGX); v4: 2 */
	const uint8_t *v5_type_size; /* v5: the 6 bytes of type and size, else NULL */
	const uint8_t *body;         /* SGX report (384) or TD report body (584/648) */
	size_t body_len;
	const uint8_t *signed_data; /* header .. end of body: what the attestation key signed */
	size_t signed_len;
	const uint8_t *signature;     /* 64, r || s big-endian */
	const uint8_t *att_key;       /* 64, X || Y */
	const uint8_t *qe_report;     /* 384, an SGX report body */
	const uint8_t *qe_report_sig; /* 64 */
	const uint8_t *qe_auth;
	size_t qe_auth_len;
	const uint8_t *pck_pem; /* certification data type 5: PEM leaf, intermediate, root */
	size_t pck_pem_len;
};

/* Every length is checked before use; the error says which field was wrong. */
int dcap_quote_parse(const uint8_t *buf, size_t len, struct dcap_quote *q, struct err *err);
int dcap_quote_is_tdx(const struct dcap_quote *q);
/* TD report body fields (offsets of TDX 1.0; TDX 1.5 appends tee_tcb_svn2 and mr_servicetd). */
#define DCAP_TD_TEE_TCB_SVN 0
#define DCAP_TD_MR_SEAM 16
#define DCAP_TD_MRSIGNER_SEAM 64
#define DCAP_TD_SEAM_ATTRIBUTES 112
#define DCAP_TD_TD_ATTRIBUTES 120
#define DCAP_TD_XFAM 128
#define DCAP_TD_MR_TD 136
#define DCAP_TD_MR_CONFIG_ID 184
#define DCAP_TD_RTMR0 328
#define DCAP_TD_REPORT_DATA 520
/* SGX report body fields. */
#define DCAP_SGX_CPU_SVN 0
#define DCAP_SGX_MISC_SELECT 16
#define DCAP_SGX_ATTRIBUTES 48
#define DCAP_SGX_MR_ENCLAVE 64
#define DCAP_SGX_MR_SIGNER 128
#define DCAP_SGX_CONFIG_ID 192
#define DCAP_SGX_ISV_PROD_ID 256
#define DCAP_SGX_ISV_SVN 258
#define DCAP_SGX_REPORT_DATA 320

/* The values of the PCK certificate's SGX extension (OID 1.2.840.113741.1.13.1). */
enum dcap_pck_ca { DCAP_PCK_CA_UNKNOWN = 0, DCAP_PCK_CA_PLATFORM, DCAP_PCK_CA_PROCESSOR };
struct dcap_pck_ext {
	uint8_t ppid[16];
	uint8_t cpusvn[16];
	uint8_t comp_svn[16]; /* sgxtcbcomp01svn..16 */
	uint16_t pcesvn;
	uint8_t pceid[2];
	uint8_t fmspc[6];
	int sgx_type; /* 0 Standard, 1 Scalable, 2 Scalable with Integrity */
	int has_platform_instance_id;
	uint8_t platform_instance_id[16];
	int has_config;
	int dynamic_platform, cached_keys, smt_enabled;
};
int dcap_pck_ext_parse(const uint8_t *der, size_t len, struct dcap_pck_ext *out, struct err *err);

/* The PCK chain of a quote, verified to the trusted root. */
struct dcap_pck {
	X509 *leaf, *ca, *root; /* owned */
	enum dcap_pck_ca ca_kind;
	struct dcap_pck_ext ext;
};
/* Parse the PEM chain (exactly three certificates) and the leaf's SGX extension. */
int dcap_pck_parse(const uint8_t *pem, size_t len, struct dcap_pck *out, struct err *err);
void dcap_pck_free(struct dcap_pck *p);

struct dcap_tcbinfo;
struct dcap_qeid;

/* One FMSPC's collateral, as in the bundle format of the testdata (MANIFEST §0) or as fetched
 * from Intel PCS / a PCCS. The `*_json` strings are the exact text Intel signed. */
struct dcap_collateral {
	char *tcb_info_json, *qe_identity_json;
	size_t tcb_info_len, qe_identity_len;
	uint8_t tcb_info_sig[64], qe_identity_sig[64];
	STACK_OF(X509) * tcb_info_chain, *qe_identity_chain, *pck_crl_chain;
	X509_CRL *pck_crl, *root_ca_crl;
	/* derived at load */
	json_t *tcb_info, *qe_identity; /* the parsed objects */
	struct dcap_tcbinfo *tcb;       /* decoded (dcap_internal.h) */
	struct dcap_qeid *qe;
	time_t tcb_issue, tcb_next, qe_issue, qe_next;
	/* set by dcap_collateral_check: the signatures, chains and CRL issuers verified */
	int checked;
};

/* Load a bundle object ({pck_crl_issuer_chain, pck_crl, root_ca_crl, tcb_info_issuer_chain,
 * tcb_info, tcb_info_signature, qe_identity_issuer_chain, qe_identity, qe_identity_signature}). */
int dcap_collateral_from_json(const json_t *bundle, struct dcap_collateral *c, struct err *err);
int dcap_collateral_load_file(const char *path, struct dcap_collateral *c, struct err *err);
void dcap_collateral_free(struct dcap_collateral *c);
/* Verify the collateral's own signatures and chains to `root` and the CRLs' issuers, at no
 * particular time (validity windows are checked per quote). Sets c->checked. */
int dcap_collateral_check(struct dcap_collateral *c, X509 *root, struct err *err);

/* The built-in Intel SGX Root CA (or the one set by dcap_set_root_ca). */
X509 *dcap_root_ca(void);
int dcap_set_root_ca_file(const char *path, struct err *err);

/* Outcome of a verification. */
struct dcap_result {
	char tcb_status[48];  /* Trustee's spelling, e.g. "UpToDate" */
	json_t *advisory_ids; /* array of strings */
	char tcb_date[32];
	time_t earliest_issue, latest_issue, earliest_expiration;
	long pck_crl_num, root_ca_crl_num, tcb_eval_num;
	uint8_t root_key_id[48];
	struct dcap_pck_ext pck;
	enum dcap_pck_ca ca_kind;
};
void dcap_result_free(struct dcap_result *r);

/* Full verification of a parsed quote against checked collateral at `now` (0 = current
 * time): quote signature, QE report signature and binding, PCK chain to the trusted root,
 * revocation, collateral validity, FMSPC/PCE-ID, TCB level matching (platform, TDX module,
 * QE). Refuses any status other than the accepted ones with the reason. */
int dcap_verify(const struct dcap_quote *q, struct dcap_collateral *c, time_t now,
                struct dcap_result *out, struct err *err);
/* The DCAP supplemental claims of as-rvps.md §5.2, added to `claims`. */
void dcap_result_claims(const struct dcap_result *r, json_t *claims);

/* Forget the verified PCK chains kept by dcap_verify (bench, tests). */
void dcap_pck_cache_reset(void);

/* The FMSPC of a quote's PCK certificate (to find its collateral) and its CA kind. */
int dcap_quote_fmspc(const struct dcap_quote *q, uint8_t fmspc[6], enum dcap_pck_ca *ca,
                     struct err *err);

/* RFC 3339 "YYYY-MM-DDTHH:MM:SS[.frac]Z" -> time_t. */
int dcap_parse_time(const char *s, time_t *out);
void dcap_format_time(time_t t, char out[32]);

#endif
