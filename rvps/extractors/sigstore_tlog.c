/*
 * sigstore_tlog: one Rekor transparency log entry of a bundle, checked offline:
 *   - its log is one of the trusted root's (by log id), the key valid at the integrated time;
 *   - its canonicalized body is the bundle's: same signature, same certificate or key, same
 *     content digest (hashedrekord 0.0.1 and 0.0.2, dsse 0.0.1, intoto 0.0.2 understood;
 *     any other kind is refused);
 *   - its inclusion proof (RFC 9162) leads from the body's leaf hash to the proof's root, and
 *     a checkpoint (signed note) the log signed commits to that root and tree size;
 *   - its signed entry timestamp, when present, is the log's signature over the canonical
 *     JSON of {body, integratedTime, logID, logIndex}; only then is the integrated time a
 *     verified time for the certificate checks.
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "rvps/extractors/sigstore.h"

/* ---- checkpoints ---- */

static const char *line_end(const char *p, const char *end)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));

	return nl;
}

int sigstore_checkpoint_parse(const uint8_t *buf, size_t len, struct sigstore_checkpoint *out,
                              struct err *err)
{
	const char *p = (const char *)buf, *end = p + len, *nl;
	char tmp[128];
	uint8_t *h = NULL;
	size_t hl = 0, n;
	char *e;

	memset(out, 0, sizeof(*out));
	if (buf == NULL || len == 0 || len > 65536 || buf[len - 1] != '\n')
		return err_set(err, "checkpoint: empty, over 64 KiB or not ending in a newline");
	if (memchr(buf, '\0', len) != NULL)
		return err_set(err, "checkpoint: contains a NUL byte");
	/* origin */
	nl = line_end(p, end);
	n = (size_t)(nl - p);
	if (n == 0 || n >= sizeof(out->origin))
		return err_set(err, "checkpoint: no origin line");
	memcpy(out->origin, p, n);
	p = nl + 1;
	/* tree size */
	nl = line_end(p, end);
	n = nl ? (size_t)(nl - p) : 0;
	if (n == 0 || n >= 21 || p[0] < '0' || p[0] > '9')
		return err_set(err, "checkpoint: no tree size line");
	memcpy(tmp, p, n);
	tmp[n] = '\0';
	out->size = strtoull(tmp, &e, 10);
	if (*e != '\0')
		return err_set(err, "checkpoint: the tree size is not a decimal number");
	p = nl + 1;
	/* root hash */
	nl = line_end(p, end);
	n = nl ? (size_t)(nl - p) : 0;
	if (n == 0 || b64_decode(p, n, B64_STD, &h, &hl) < 0 || hl != 32) {
		free(h);
		return err_set(err, "checkpoint: no base64 root hash of 32 bytes");
	}
	memcpy(out->root_hash, h, 32);
	free(h);
	p = nl + 1;
	/* extension lines, up to the blank line */
	while (p < end && *p != '\n') {
		nl = line_end(p, end);
		if (nl == NULL)
			return err_set(err, "checkpoint: no blank line before the signatures");
		p = nl + 1;
	}
	if (p >= end)
		return err_set(err, "checkpoint: no blank line before the signatures");
	out->signed_len = (size_t)(p - (const char *)buf);
	p++;
	/* signature lines: "\u2014 <name> <base64(hint[4] || sig)>" */
	while (p < end) {
		const char *sp;
		uint8_t *raw = NULL;
		size_t rl = 0;

		nl = line_end(p, end);
		if (out->n_sigs == SIGSTORE_NOTE_MAX_SIGS)
			return err_set(err, "checkpoint: more than %d signatures",
			               SIGSTORE_NOTE_MAX_SIGS);
		if ((size_t)(nl - p) < 4 || memcmp(p, "\xe2\x80\x94 ", 4) != 0)
			return err_set(
			    err, "checkpoint: a signature line does not start with an em dash");
		p += 4;
		sp = memchr(p, ' ', (size_t)(nl - p));
		if (sp == NULL || sp == p || (size_t)(sp - p) >= sizeof(out->sigs[0].name))
			return err_set(err, "checkpoint: a signature line has no key name");
		if (b64_decode(sp + 1, (size_t)(nl - sp - 1), B64_STD, &raw, &rl) < 0 || rl < 5 ||
		    rl - 4 > sizeof(out->sigs[0].sig)) {
			free(raw);
			return err_set(err,
			               "checkpoint: a signature is not base64 of a key hint and "
			               "signature");
		}
		memcpy(out->sigs[out->n_sigs].name, p, (size_t)(sp - p));
		memcpy(out->sigs[out->n_sigs].hint, raw, 4);
		memcpy(out->sigs[out->n_sigs].sig, raw + 4, rl - 4);
		out->sigs[out->n_sigs].sig_len = rl - 4;
		out->n_sigs++;
		free(raw);
		p = nl + 1;
	}
	if (out->n_sigs == 0)
		return err_set(err, "checkpoint: no signature");
	return 0;
}

/* ---- Merkle inclusion (RFC 9162 §2.1.3.2) ---- */

static void node_hash(const uint8_t l[32], const uint8_t r[32], uint8_t out[32])
{
	uint8_t buf[65];

	buf[0] = 0x01;
	memcpy(buf + 1, l, 32);
	memcpy(buf + 33, r, 32);
	EVP_Digest(buf, sizeof(buf), out, NULL, EVP_sha256(), NULL);
}

int sigstore_merkle_verify(const uint8_t leaf[32], uint64_t index, uint64_t size,
                           const uint8_t (*path)[32], size_t n, const uint8_t root[32],
                           struct err *err)
{
	uint64_t fn = index, sn = size - 1;
	uint8_t r[32];

	if (size == 0 || index >= size)
		return err_set(err, "inclusion proof: the index is not inside the tree");
	memcpy(r, leaf, 32);
	for (size_t i = 0; i < n; i++) {
		if (sn == 0)
			return err_set(err, "inclusion proof: longer than the tree is deep");
		if ((fn & 1) || fn == sn) {
			node_hash(path[i], r, r);
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			node_hash(r, path[i], r);
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0)
		return err_set(err, "inclusion proof: shorter than the tree is deep");
	if (CRYPTO_memcmp(r, root, 32) != 0)
		return err_set(err, "inclusion proof: does not lead to the root hash");
	return 0;
}

/* ---- body matching ---- */

static int blob_eq(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

/* A JSON base64 string member equal to the bytes? */
static int b64_member_eq(const json_t *s, const uint8_t *want, size_t wl)
{
	uint8_t *d = NULL;
	size_t dl = 0;
	int eq;

	if (sigstore_json_b64(s, &d, &dl) < 0)
		return 0;
	eq = blob_eq(d, dl, want, wl);
	free(d);
	return eq;
}

/* The body's key material (PEM of a certificate or key, or DER) names our signer? */
static int material_eq(const uint8_t *m, size_t ml, int pem, const struct sigstore_bundle *b,
                       EVP_PKEY *signer)
{
	BIO *bio = BIO_new_mem_buf(m, (int)ml);
	const unsigned char *p = m;
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	int eq = 0;

	if (bio == NULL)
		return 0;
	if (b->leaf != NULL) {
		x = pem ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : d2i_X509(NULL, &p, (long)ml);
		eq = x != NULL && X509_cmp(x, b->leaf) == 0;
	} else {
		k = pem ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL)
		        : d2i_PUBKEY(NULL, &p, (long)ml);
		eq = k != NULL && signer != NULL && EVP_PKEY_eq(k, signer) == 1;
	}
	X509_free(x);
	EVP_PKEY_free(k);
	BIO_free(bio);
	return eq;
}

static int hex_member_eq(const json_t *s, const uint8_t *want, size_t wl)
{
	char *hex = hex_encode(want, wl);
	int eq = hex != NULL && json_is_string(s) && strcmp(json_string_value(s), hex) == 0;

	free(hex);
	return eq;
}

/* The digest the log entry commits to for a bundle: the artifact's (message signature) or
 * the PAE's (DSSE logged as hashedrekord 0.0.2). */
static int content_digest(const struct sigstore_bundle *b, const uint8_t *artifact_sha256,
                          uint8_t out[32], struct err *err)
{
	if (b->is_dsse) {
		size_t len;
		uint8_t *pae = dsse_pae(&b->dsse, &len);

		if (pae == NULL)
			return err_set(err, "out of memory");
		EVP_Digest(pae, len, out, NULL, EVP_sha256(), NULL);
		free(pae);
		return 0;
	}
	if (b->md_len == 32)
		memcpy(out, b->md, 32);
	else if (artifact_sha256 != NULL)
		memcpy(out, artifact_sha256, 32);
	else
		return err_set(err, "no artifact digest to match the log entry against");
	return 0;
}

static int match_hashedrekord1(const json_t *spec, const struct sigstore_bundle *b,
                               EVP_PKEY *signer, const uint8_t *art, struct err *err)
{
	const json_t *hash = json_object_get(json_object_get(spec, "data"), "hash");
	const json_t *sig = json_object_get(spec, "signature");
	uint8_t want[32], *pem = NULL;
	size_t pl = 0;
	int ok;

	if (b->is_dsse)
		return err_set(err, "a DSSE bundle cannot be logged as hashedrekord 0.0.1");
	if (content_digest(b, art, want, err) < 0)
		return -1;
	if (!json_is_string(json_object_get(hash, "algorithm")) ||
	    strcmp(json_string_value(json_object_get(hash, "algorithm")), "sha256") != 0 ||
	    !hex_member_eq(json_object_get(hash, "value"), want, 32))
		return err_set(err, "the log entry's digest is not the artifact's");
	if (!b64_member_eq(json_object_get(sig, "content"), b->sig, b->sig_len))
		return err_set(err, "the log entry's signature is not the bundle's");
	if (sigstore_json_b64(json_object_get(json_object_get(sig, "publicKey"), "content"), &pem,
	                      &pl) < 0)
		return err_set(err, "the log entry has no public key");
	ok = material_eq(pem, pl, 1, b, signer);
	free(pem);
	return ok ? 0 : err_set(err, "the log entry's certificate or key is not the bundle's");
}

static int match_hashedrekord2(const json_t *spec, const struct sigstore_bundle *b,
                               EVP_PKEY *signer, const uint8_t *art, struct err *err)
{
	const json_t *h = json_object_get(spec, "hashedRekordV002");
	const json_t *data = json_object_get(h, "data"), *sig = json_object_get(h, "signature");
	const json_t *ver = json_object_get(sig, "verifier"), *raw;
	uint8_t want[32], *der = NULL;
	size_t dl = 0;
	int ok;

	if (content_digest(b, art, want, err) < 0)
		return -1;
	if (!json_is_string(json_object_get(data, "algorithm")) ||
	    strcmp(json_string_value(json_object_get(data, "algorithm")), "SHA2_256") != 0 ||
	    !b64_member_eq(json_object_get(data, "digest"), want, 32))
		return err_set(err, "the log entry's digest is not the %s",
		               b->is_dsse ? "DSSE envelope's PAE digest" : "artifact's");
	if (!b64_member_eq(json_object_get(sig, "content"), b->sig, b->sig_len))
		return err_set(err, "the log entry's signature is not the bundle's");
	raw = json_object_get(json_object_get(ver, b->leaf ? "x509Certificate" : "publicKey"),
	                      "rawBytes");
	if (sigstore_json_b64(raw, &der, &dl) < 0)
		return err_set(err, "the log entry has no verifier");
	ok = material_eq(der, dl, 0, b, signer);
	free(der);
	return ok ? 0 : err_set(err, "the log entry's certificate or key is not the bundle's");
}

static int payload_hash_eq(const json_t *ph, const struct sigstore_bundle *b)
{
	uint8_t d[32];

	EVP_Digest(b->dsse.payload, b->dsse.payload_len, d, NULL, EVP_sha256(), NULL);
	return json_is_string(json_object_get(ph, "algorithm")) &&
	       strcmp(json_string_value(json_object_get(ph, "algorithm")), "sha256") == 0 &&
	       hex_member_eq(json_object_get(ph, "value"), d, 32);
}

static int match_dsse1(const json_t *spec, const struct sigstore_bundle *b, EVP_PKEY *signer,
                       struct err *err)
{
	const json_t *sigs = json_object_get(spec, "signatures");

	if (!b->is_dsse)
		return err_set(err, "a dsse log entry for a bundle without a DSSE envelope");
	if (!payload_hash_eq(json_object_get(spec, "payloadHash"), b))
		return err_set(err, "the log entry's payload hash is not the envelope's");
	if (!json_is_array(sigs) || json_array_size(sigs) != 1)
		return err_set(err, "the log entry does not hold exactly one signature");
	for (size_t i = 0; i < json_array_size(sigs); i++) {
		const json_t *s = json_array_get(sigs, i);
		uint8_t *pem = NULL;
		size_t pl = 0;
		int ok;

		if (!b64_member_eq(json_object_get(s, "signature"), b->sig, b->sig_len))
			return err_set(err, "the log entry's signature is not the envelope's");
		if (sigstore_json_b64(json_object_get(s, "verifier"), &pem, &pl) < 0)
			return err_set(err, "the log entry has no verifier");
		ok = material_eq(pem, pl, 1, b, signer);
		free(pem);
		if (!ok)
			return err_set(err,
			               "the log entry's certificate or key is not the bundle's");
	}
	return 0;
}

/* intoto 0.0.2 stores the envelope with its payload and signatures base64-encoded once more. */
static int double_b64_eq(const json_t *s, const uint8_t *want, size_t wl)
{
	char *enc = b64_encode(want, wl, B64_STD);
	int eq = enc != NULL && b64_member_eq(s, (const uint8_t *)enc, strlen(enc));

	free(enc);
	return eq;
}

static int match_intoto2(const json_t *spec, const struct sigstore_bundle *b, EVP_PKEY *signer,
                         struct err *err)
{
	const json_t *c = json_object_get(spec, "content"), *env = json_object_get(c, "envelope");
	const json_t *sigs = json_object_get(env, "signatures"),
	             *pt = json_object_get(env, "payloadType");
	uint8_t *pem = NULL;
	size_t pl = 0;
	int ok;

	if (!b->is_dsse)
		return err_set(err, "an intoto log entry for a bundle without a DSSE envelope");
	if (!payload_hash_eq(json_object_get(c, "payloadHash"), b) ||
	    !double_b64_eq(json_object_get(env, "payload"), b->dsse.payload, b->dsse.payload_len) ||
	    !json_is_string(pt) || strcmp(json_string_value(pt), b->dsse.payload_type) != 0)
		return err_set(err, "the log entry's envelope payload is not the bundle's");
	if (!json_is_array(sigs) || json_array_size(sigs) != 1 ||
	    !double_b64_eq(json_object_get(json_array_get(sigs, 0), "sig"), b->sig, b->sig_len))
		return err_set(err, "the log entry's signature is not the envelope's");
	if (sigstore_json_b64(json_object_get(json_array_get(sigs, 0), "publicKey"), &pem, &pl) < 0)
		return err_set(err, "the log entry has no public key");
	ok = material_eq(pem, pl, 1, b, signer);
	free(pem);
	return ok ? 0 : err_set(err, "the log entry's certificate or key is not the bundle's");
}

static int match_body(const struct sigstore_tlog_entry *e, const struct sigstore_bundle *b,
                      EVP_PKEY *signer, const uint8_t *art, struct err *err)
{
	json_error_t jerr;
	json_t *j = json_loadb((const char *)e->body, e->body_len, JSON_REJECT_DUPLICATES, &jerr);
	const json_t *kind, *ver, *spec;
	int rc;

	if (j == NULL)
		return err_set(err, "the log entry body is not JSON: %s", jerr.text);
	kind = json_object_get(j, "kind");
	ver = json_object_get(j, "apiVersion");
	spec = json_object_get(j, "spec");
	if (!json_is_string(kind) || !json_is_string(ver) || !json_is_object(spec) ||
	    strcmp(json_string_value(kind), e->kind) != 0 ||
	    strcmp(json_string_value(ver), e->version) != 0) {
		json_decref(j);
		return err_set(err, "the log entry body's kind/version is not the entry's");
	}
	if (strcmp(e->kind, "hashedrekord") == 0 && strcmp(e->version, "0.0.1") == 0)
		rc = match_hashedrekord1(spec, b, signer, art, err);
	else if (strcmp(e->kind, "hashedrekord") == 0 && strcmp(e->version, "0.0.2") == 0)
		rc = match_hashedrekord2(spec, b, signer, art, err);
	else if (strcmp(e->kind, "dsse") == 0 && strcmp(e->version, "0.0.1") == 0)
		rc = match_dsse1(spec, b, signer, err);
	else if (strcmp(e->kind, "intoto") == 0 && strcmp(e->version, "0.0.2") == 0)
		rc = match_intoto2(spec, b, signer, err);
	else
		rc = err_set(err, "log entry kind %s %s is not supported", e->kind, e->version);
	json_decref(j);
	return rc;
}

/* ---- proofs ---- */

static int verify_checkpoint(const struct sigstore_tlog_entry *e, const struct sigstore_key *log,
                             struct err *err)
{
	struct sigstore_checkpoint cp;
	struct err ignored;

	if (sigstore_checkpoint_parse((const uint8_t *)e->checkpoint, strlen(e->checkpoint), &cp,
	                              err) < 0)
		return -1;
	if (cp.size != (uint64_t)e->tree_size || memcmp(cp.root_hash, e->root_hash, 32) != 0)
		return err_set(err, "checkpoint: its tree size or root hash is not the proof's");
	for (size_t i = 0; i < cp.n_sigs; i++) {
		if (log->id_len < 4 || memcmp(cp.sigs[i].hint, log->id, 4) != 0)
			continue;
		if (sig_verify_message(log->pkey, (const uint8_t *)e->checkpoint, cp.signed_len,
		                       cp.sigs[i].sig, cp.sigs[i].sig_len, &ignored) == 0)
			return 0;
	}
	return err_set(err, "checkpoint: no signature by the log's key verifies");
}

static int verify_proof(const struct sigstore_tlog_entry *e, const struct sigstore_key *log,
                        struct err *err)
{
	uint8_t leaf[32];
	EVP_MD_CTX *mc = EVP_MD_CTX_new();
	int ok;

	ok = mc != NULL && EVP_DigestInit_ex(mc, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(mc, "\x00", 1) == 1 &&
	     EVP_DigestUpdate(mc, e->body, e->body_len) == 1 &&
	     EVP_DigestFinal_ex(mc, leaf, NULL) == 1;
	EVP_MD_CTX_free(mc);
	if (!ok)
		return err_set(err, "out of memory");
	if (sigstore_merkle_verify(leaf, (uint64_t)e->proof_index, (uint64_t)e->tree_size,
	                           (const uint8_t(*)[32])e->hashes, e->n_hashes, e->root_hash,
	                           err) < 0)
		return -1;
	if (e->checkpoint == NULL)
		return err_set(err, "the inclusion proof has no checkpoint the log signed");
	return verify_checkpoint(e, log, err);
}

static int verify_set(const struct sigstore_tlog_entry *e, const struct sigstore_key *log,
                      struct err *err)
{
	char *hex = hex_encode(e->log_id, e->log_id_len), *msg;
	size_t cap = strlen(e->body_b64) + 256;
	int n, rc;

	msg = malloc(cap);
	if (hex == NULL || msg == NULL) {
		free(hex);
		free(msg);
		return err_set(err, "out of memory");
	}
	n = snprintf(msg, cap,
	             "{\"body\":\"%s\",\"integratedTime\":%lld,\"logID\":\"%s\",\"logIndex\":%lld}",
	             e->body_b64, (long long)e->integrated_time, hex, (long long)e->log_index);
	rc =
	    sig_verify_message(log->pkey, (const uint8_t *)msg, (size_t)n, e->set, e->set_len, err);
	free(hex);
	free(msg);
	return rc < 0 ? err_prefix(err, "signed entry timestamp") : 0;
}

int sigstore_tlog_verify(const struct sigstore_root *root, const struct sigstore_bundle *b,
                         const struct sigstore_tlog_entry *e, EVP_PKEY *signer,
                         const uint8_t *artifact_sha256, time_t *verified_time, struct err *err)
{
	const struct sigstore_key *log =
	    sigstore_find_key(root->tlogs, root->n_tlogs, e->log_id, e->log_id_len);

	*verified_time = 0;
	if (log == NULL)
		return err_set(err, "the entry's transparency log is not in the trusted root");
	if (match_body(e, b, signer, artifact_sha256, err) < 0)
		return -1;
	if (e->has_proof && verify_proof(e, log, err) < 0)
		return -1;
	if (e->set != NULL) {
		if (e->integrated_time == 0)
			return err_set(err, "an inclusion promise without an integrated time");
		if (verify_set(e, log, err) < 0)
			return -1;
	}
	if (e->integrated_time != 0) {
		if (!sigstore_time_in((time_t)e->integrated_time, log->start, log->end))
			return err_set(err,
			               "the integrated time is outside the log key's validity");
		if (e->set != NULL)
			*verified_time = (time_t)e->integrated_time;
	}
	if (!e->has_proof && e->set == NULL)
		return err_set(err, "the entry has neither an inclusion proof nor a promise");
	return 0;
}
