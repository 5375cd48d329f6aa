/*
 * sigstore: offline verification of Sigstore bundles (v0.1, v0.2, v0.3) against a trusted
 * root, the way the Sigstore client specification describes it:
 *   1. the bundle and trusted root parsed (sigstore_bundle.c, sigstore_root.c);
 *   2. each transparency log entry (sigstore_tlog.c): its log known to the root, its body
 *      matching the bundle's signature, key or certificate and content, its inclusion proof
 *      against a checkpoint the log signed, its signed entry timestamp (SET);
 *   3. the RFC 3161 timestamps against the root's timestamp authorities;
 *   4. the signing certificate (sigstore_verify.c): chained to a Fulcio CA of the root at every
 *      verified time (the SET's integrated time, each timestamp), with an SCT from a CT log of
 *      the root, its SAN and OIDC issuer matched against the wanted identities; or a public key
 *      the caller gives;
 *   5. the signature: over the artifact (message signature) or over the DSSE PAE, whose
 *      in-toto statement must name the artifact when one is given.
 * A bundle passes only when every step passes; nothing is fetched.
 */
#ifndef CTRUSTEE_RVPS_SIGSTORE_H
#define CTRUSTEE_RVPS_SIGSTORE_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <regex.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "err.h"
#include "hash.h"
#include "rvps/extractors/dsse.h"

/* ---- trusted root (application/vnd.dev.sigstore.trustedroot+json;version=0.1) ---- */

struct sigstore_key {
	EVP_PKEY *pkey; /* owned */
	uint8_t id[32]; /* logId.keyId */
	size_t id_len;
	time_t start, end; /* validFor; end 0 = open */
};

struct sigstore_ca {
	STACK_OF(X509) * certs; /* owned: leaf/intermediates first, root last */
	time_t start, end;
};

struct sigstore_root {
	struct sigstore_key *tlogs, *ctlogs;
	size_t n_tlogs, n_ctlogs;
	struct sigstore_ca *cas, *tsas;
	size_t n_cas, n_tsas;
};

/* buf: trusted root JSON (untrusted bytes). */
int sigstore_root_parse(const uint8_t *buf, size_t len, struct sigstore_root **out,
                        struct err *err);
void sigstore_root_free(struct sigstore_root *r);

/* ---- bundle ---- */

struct sigstore_tlog_entry {
	int64_t log_index;
	uint8_t log_id[32];
	size_t log_id_len;
	char kind[32], version[16];
	int64_t integrated_time; /* 0 when absent */
	uint8_t *set;            /* owned: inclusionPromise.signedEntryTimestamp, NULL = none */
	size_t set_len;
	char *body_b64; /* owned: canonicalizedBody as given */
	uint8_t *body;  /* owned: decoded */
	size_t body_len;
	int has_proof;
	int64_t proof_index, tree_size;
	uint8_t root_hash[32];
	uint8_t (*hashes)[32]; /* owned */
	size_t n_hashes;
	char *checkpoint; /* owned: the checkpoint note text, NULL when absent */
};

struct sigstore_blob {
	uint8_t *der;
	size_t len;
};

struct sigstore_bundle {
	int version;        /* 1, 2 or 3 */
	X509 *leaf;         /* owned: the signing certificate, NULL with a public key */
	int has_public_key; /* verificationMaterial.publicKey */
	int is_dsse;
	struct dsse_envelope dsse;
	enum hash_alg md_alg; /* messageSignature.messageDigest, HASH_NONE when absent */
	uint8_t md[HASH_MAX];
	size_t md_len;
	uint8_t *sig; /* owned: the message signature, or the DSSE signature */
	size_t sig_len;
	struct sigstore_tlog_entry *tlog;
	size_t n_tlog;
	struct sigstore_blob *tsa; /* RFC 3161 TimeStampResp DERs */
	size_t n_tsa;
};

/* buf: bundle JSON (untrusted bytes). */
int sigstore_bundle_parse(const uint8_t *buf, size_t len, struct sigstore_bundle **out,
                          struct err *err);
void sigstore_bundle_free(struct sigstore_bundle *b);

/* ---- checkpoints (signed notes, c2sp.org/tlog-checkpoint) ---- */

#define SIGSTORE_NOTE_MAX_SIGS 16
struct sigstore_checkpoint {
	char origin[256];
	uint64_t size;
	uint8_t root_hash[32];
	size_t signed_len; /* the signed text is buf[0 .. signed_len) */
	struct {
		char name[256];
		uint8_t hint[4];
		uint8_t sig[512];
		size_t sig_len;
	} sigs[SIGSTORE_NOTE_MAX_SIGS];
	size_t n_sigs;
};
int sigstore_checkpoint_parse(const uint8_t *buf, size_t len, struct sigstore_checkpoint *out,
                              struct err *err);

/* RFC 9162 §2.1.3.2: root from a leaf hash and its audit path. 0 when it equals `root`. */
int sigstore_merkle_verify(const uint8_t leaf[32], uint64_t index, uint64_t size,
                           const uint8_t (*path)[32], size_t n, const uint8_t root[32],
                           struct err *err);

/* ---- verification ---- */

struct sigstore_identity {
	const char *issuer;       /* exact OIDC issuer */
	const char *san;          /* exact SAN, or NULL */
	const regex_t *san_regex; /* or a POSIX ERE over the SAN */
};

struct sigstore_policy {
	EVP_PKEY *key;                       /* keyful: the signer's public key; NULL = keyless */
	const struct sigstore_identity *ids; /* keyless: one must match */
	size_t n_ids;
};

struct sigstore_artifact {
	const uint8_t *data; /* the artifact bytes, or NULL */
	size_t len;
	int has_digest; /* or only its SHA-256 */
	uint8_t sha256[32];
};

struct sigstore_result {
	char san[512];    /* the certificate's identity ("" keyful) */
	char issuer[512]; /* its OIDC issuer */
	time_t signed_at; /* the earliest verified time */
};

/* Verifies b against root. art may be NULL (then a DSSE bundle's statement is not matched to
 * an artifact; a message signature bundle needs an artifact). now: the time the trusted root's
 * open-ended validity and "not in the future" are judged at. */
int sigstore_verify(const struct sigstore_root *root, const struct sigstore_bundle *b,
                    const struct sigstore_policy *pol, const struct sigstore_artifact *art,
                    time_t now, struct sigstore_result *res, struct err *err);

/* Internal, shared by the sigstore_*.c files. */
int sigstore_tlog_verify(const struct sigstore_root *root, const struct sigstore_bundle *b,
                         const struct sigstore_tlog_entry *e, EVP_PKEY *signer,
                         const uint8_t *artifact_sha256, time_t *verified_time, struct err *err);
const struct sigstore_key *sigstore_find_key(const struct sigstore_key *keys, size_t n,
                                             const uint8_t *id, size_t id_len);
int sigstore_time_in(time_t t, time_t start, time_t end);
/* A base64 (standard) JSON string member into bytes; NULL member = -1 with "missing". */
int sigstore_json_b64(const void *json_str, uint8_t **out, size_t *len);
/* A protobuf-JSON int64 (a string of digits or a number). */
int sigstore_json_int64(const void *json_val, int64_t *out);

#endif
