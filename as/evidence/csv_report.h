/*
 * csv_report: the byte formats of Hygon CSV attestation (as-rvps.md §5.11) and their SM2
 * signatures. A CSV guest's report is signed by the platform's PEK; the PEK is signed by the
 * chip's CEK, the CEK by the HSK and the HSK by the Hygon root key (HRK), which signs itself.
 * Two certificate layouts carry these keys: the CA layout (HRK, HSK: 832 bytes) and the CSV
 * layout (CEK, PEK: 2084 bytes, two signature slots). Numbers are little-endian, SM2 public
 * key coordinates and signature halves too (72-byte fields, the first 32 bytes used).
 * Every signature is SM2 over SM3 with the signer's user id (`user_id[0..uid_size)`) as the
 * SM2 distinguishing id, checked through OpenSSL 3 (EVP_PKEY_SM2 + EVP_PKEY_CTX_set1_id).
 *
 * The report is 4096 bytes: a v1 TEE info (0x150 bytes, every field but `anonce` XOR-masked with
 * the firmware's `anonce`) or a v2 one (0x490 bytes, unmasked, with RTMRs), then the signer
 * block (PEK copy, serial number, HMAC; masked by the firmware, restored by the attester). v1 signs
 * bytes [0, 180), v2 bytes [0, 1024). Evidence arrives as the JSON that Trustee's attester writes
 * (csv-rs serde: byte arrays as integer arrays); csv_evidence_parse turns it into these byte
 * layouts, checking every field's presence, type and length, so the signatures are checked over
 * exactly the bytes the hardware signed. No disk and no network here.
 */
#ifndef CTRUSTEE_CSV_REPORT_H
#define CTRUSTEE_CSV_REPORT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define CSV_CA_CERT_LEN 832
#define CSV_CA_BODY_LEN 576
#define CSV_CERT_LEN 2084
#define CSV_CERT_BODY_LEN 1044
#define CSV_HSK_CEK_LEN (CSV_CA_CERT_LEN + CSV_CERT_LEN)
#define CSV_REPORT_LEN 4096
#define CSV_SIG_LEN 144 /* r[72] ‖ s[72], little-endian */
#define CSV_SERIAL_LEN 64
#define CSV_RTMR_LEN 32

/* Key usages (the certificate's own, and a signature slot's: the usage of the key that
 * signed) and the one signature algorithm family. */
enum {
	CSV_USAGE_HRK = 0x0000,
	CSV_USAGE_HSK = 0x0013,
	CSV_USAGE_OCA = 0x1001,
	CSV_USAGE_PEK = 0x1002,
	CSV_USAGE_PDH = 0x1003,
	CSV_USAGE_CEK = 0x1004,
};
#define CSV_ALGO_SM2_SA 0x0004
#define CSV_ALGO_SM2_DH 0x0005
#define CSV_GROUP_SM2_256 3

struct csv_key {
	uint32_t usage;
	uint8_t x[32], y[32]; /* big-endian, as OpenSSL takes them */
	uint8_t uid[254];     /* the SM2 id this key signs with */
	uint16_t uid_size;    /* <= 254, checked */
};

/* An HRK or HSK. raw holds the 832 bytes; the body [0, 576) is what the issuer signed. */
struct csv_ca_cert {
	uint8_t raw[CSV_CA_CERT_LEN];
	uint32_t ver;
	struct csv_key key;
	uint8_t sig[CSV_SIG_LEN];
};

/* A CEK or PEK. raw holds the 2084 bytes; the body [0, 1044) is what the issuer signed. */
struct csv_cert {
	uint8_t raw[CSV_CERT_LEN];
	uint32_t ver, algo;
	uint8_t fw_major, fw_minor;
	struct csv_key key;
	struct {
		uint32_t usage, algo; /* of the signing key */
		uint8_t sig[CSV_SIG_LEN];
	} sigs[2];
};

struct csv_report {
	uint8_t raw[CSV_REPORT_LEN];
	int version;       /* 1 or 2 */
	size_t signed_len; /* 180 (v1) or 1024 (v2) */
	/* Unmasked TEE info (v1: XOR anonce undone; v2: as stored). */
	uint8_t user_pubkey_digest[32], vm_id[16], vm_version[16], report_data[64], mnonce[16],
	    measure[32];
	uint32_t policy, sig_usage, sig_algo, anonce; /* anonce: v1 only, 0 for v2 */
	/* v2 only */
	uint32_t build;
	uint16_t rtmr_version;
	uint8_t reserved0[14], rtmr[5][CSV_RTMR_LEN], reserved1[656];
	uint8_t sig[CSV_SIG_LEN];
};

struct csv_evidence {
	struct csv_report report;
	struct csv_cert pek;
	int has_hsk_cek; /* the evidence carried cert_chain.hsk_cek */
	struct csv_ca_cert hsk;
	struct csv_cert cek;
	char serial[CSV_SERIAL_LEN + 1]; /* NUL padding trimmed; printable ASCII only */
	uint8_t *cc_eventlog;            /* owned, NULL when absent */
	size_t cc_eventlog_len;
};

/* The 832-byte CA layout (HRK, HSK). */
int csv_ca_cert_parse(const uint8_t *buf, size_t len, struct csv_ca_cert *out, struct err *err);
/* The 2084-byte CSV layout (CEK, PEK). */
int csv_cert_parse(const uint8_t *buf, size_t len, struct csv_cert *out, struct err *err);
/* The report wrapper: 16-byte magic, flags, 4096 bytes (as csv-rs: a zero magic, or
 * "ATTESTATION_EXT\0" with flags 0, is v1; that magic with flags 1 is v2). */
int csv_report_parse(const uint8_t magic[16], uint32_t flags, const uint8_t *buf, size_t len,
                     struct csv_report *out, struct err *err);
/* An hsk_cek.cert file: HSK (CA layout) followed by CEK (CSV layout), nothing else. */
int csv_hsk_cek_parse(const uint8_t *buf, size_t len, struct csv_ca_cert *hsk, struct csv_cert *cek,
                      struct err *err);
/* Trustee's CSV evidence JSON (text in buf[0..len)), or an already-decoded document. */
int csv_evidence_parse(const uint8_t *buf, size_t len, struct csv_evidence *out, struct err *err);
int csv_evidence_from_json(const json_t *ev, struct csv_evidence *out, struct err *err);
void csv_evidence_clear(struct csv_evidence *ev);

/* SM2/SM3 signature (r ‖ s, 72 bytes each, LE) by `signer` over msg[0..len). 0 = valid. */
int csv_sm2_verify(const struct csv_key *signer, const uint8_t *msg, size_t len,
                   const uint8_t sig[CSV_SIG_LEN], struct err *err);

/* The chip's half of the chain, shared with Hygon DCU reports (dcu_report.h): HRK
 * self-signed with usage HRK, HSK (usage HSK) signed by the HRK, CEK (usage CEK) by the HSK.
 * The refusal names the link that failed. */
int csv_verify_hrk_to_cek(const struct csv_ca_cert *hrk, const struct csv_ca_cert *hsk,
                          const struct csv_cert *cek, struct err *err);

/* The chain and the report signature, in order: HRK self-signed with usage HRK; HSK (usage
 * HSK) signed by HRK; CEK (usage CEK) by HSK; PEK (usage PEK) by CEK; the report by PEK. A
 * CSV-layout certificate is accepted when a slot whose usage is the signer's and whose
 * algorithm is SM2 verifies. The refusal names the link that failed. */
int csv_verify_chain(const struct csv_ca_cert *hrk, const struct csv_ca_cert *hsk,
                     const struct csv_cert *cek, const struct csv_cert *pek,
                     const struct csv_report *report, struct err *err);

#endif
