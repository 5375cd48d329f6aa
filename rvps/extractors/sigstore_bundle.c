/*
 * sigstore_bundle: a Sigstore bundle's JSON (protobuf JSON mapping of
 * dev.sigstore.bundle.v1.Bundle) into struct sigstore_bundle. Only what verification reads is
 * kept; every byte field is decoded here, every count capped, so later steps see no JSON.
 * Version rules kept here: v0.1 entries must carry an inclusion promise, v0.2 and later an
 * inclusion proof; a certificate chain may not carry a self-signed (root) certificate, since
 * the trusted root alone decides which roots count.
 */
#include <jansson.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "rvps/extractors/sigstore.h"

#define BUNDLE_MAX_BYTES (4u << 20)
#define BUNDLE_MAX_ENTRIES 16
#define BUNDLE_MAX_PROOF 64
#define BUNDLE_MAX_CHAIN 8

static const struct {
	const char *media_type;
	int version;
} media_types[] = {
    {"application/vnd.dev.sigstore.bundle+json;version=0.1", 1},
    {"application/vnd.dev.sigstore.bundle+json;version=0.2", 2},
    {"application/vnd.dev.sigstore.bundle+json;version=0.3", 3},
    {"application/vnd.dev.sigstore.bundle.v0.3+json", 3},
};

static X509 *x509_from_json(const json_t *raw)
{
	uint8_t *der = NULL;
	size_t len = 0;
	const unsigned char *p;
	X509 *x;

	if (sigstore_json_b64(raw, &der, &len) < 0)
		return NULL;
	p = der;
	x = d2i_X509(NULL, &p, (long)len);
	if (x != NULL && p != der + len) {
		X509_free(x);
		x = NULL;
	}
	free(der);
	return x;
}

static int self_signed(X509 *x)
{
	return X509_check_issued(x, x) == X509_V_OK;
}

static int parse_material(const json_t *vm, struct sigstore_bundle *b, struct err *err)
{
	const json_t *chain = json_object_get(vm, "x509CertificateChain");
	const json_t *cert = json_object_get(vm, "certificate");

	if (chain != NULL) {
		const json_t *certs = json_object_get(chain, "certificates");

		if (!json_is_array(certs) || json_array_size(certs) == 0)
			return err_set(err, "bundle: the certificate chain is empty");
		if (json_array_size(certs) > BUNDLE_MAX_CHAIN)
			return err_set(err, "bundle: more than %d certificates", BUNDLE_MAX_CHAIN);
		for (size_t i = 0; i < json_array_size(certs); i++) {
			X509 *x =
			    x509_from_json(json_object_get(json_array_get(certs, i), "rawBytes"));

			if (x == NULL)
				return err_set(err, "bundle: certificate %zu is not DER X.509", i);
			if (self_signed(x)) {
				X509_free(x);
				return err_set(
				    err, "bundle: the certificate chain carries a root "
				         "certificate (only the trusted root supplies roots)");
			}
			if (i == 0)
				b->leaf = x;
			else
				X509_free(x); /* intermediates come from the trusted root */
		}
	} else if (cert != NULL) {
		b->leaf = x509_from_json(json_object_get(cert, "rawBytes"));
		if (b->leaf == NULL)
			return err_set(err, "bundle: the certificate is not DER X.509");
		if (self_signed(b->leaf))
			return err_set(err, "bundle: the signing certificate is self-signed");
	} else if (json_is_object(json_object_get(vm, "publicKey"))) {
		b->has_public_key = 1;
	} else {
		return err_set(err, "bundle: no certificate, certificate chain or public key");
	}
	return 0;
}

static int parse_proof(const json_t *ip, struct sigstore_tlog_entry *e, size_t i, struct err *err)
{
	const json_t *hashes = json_object_get(ip, "hashes"), *cp;
	uint8_t *rh = NULL;
	size_t rhl = 0;

	if (sigstore_json_int64(json_object_get(ip, "logIndex"), &e->proof_index) < 0 ||
	    sigstore_json_int64(json_object_get(ip, "treeSize"), &e->tree_size) < 0 ||
	    e->proof_index < 0 || e->tree_size <= 0 || e->proof_index >= e->tree_size)
		return err_set(err, "bundle: tlog entry %zu inclusion proof index/size invalid", i);
	if (sigstore_json_b64(json_object_get(ip, "rootHash"), &rh, &rhl) < 0 || rhl != 32) {
		free(rh);
		return err_set(err, "bundle: tlog entry %zu root hash is not 32 bytes", i);
	}
	memcpy(e->root_hash, rh, 32);
	free(rh);
	if (hashes != NULL && !json_is_array(hashes))
		return err_set(err, "bundle: tlog entry %zu proof hashes not an array", i);
	if (json_array_size(hashes) > BUNDLE_MAX_PROOF)
		return err_set(err, "bundle: tlog entry %zu proof longer than %d", i,
		               BUNDLE_MAX_PROOF);
	e->hashes = calloc(json_array_size(hashes) + 1, 32);
	if (e->hashes == NULL)
		return err_set(err, "out of memory");
	for (size_t k = 0; k < json_array_size(hashes); k++) {
		uint8_t *h = NULL;
		size_t hl = 0;

		if (sigstore_json_b64(json_array_get(hashes, k), &h, &hl) < 0 || hl != 32) {
			free(h);
			return err_set(err, "bundle: tlog entry %zu proof hash %zu is not 32 bytes",
			               i, k);
		}
		memcpy(e->hashes[k], h, 32);
		free(h);
		e->n_hashes++;
	}
	cp = json_object_get(json_object_get(ip, "checkpoint"), "envelope");
	/* a missing checkpoint is refused by the verifier, after the proof itself */
	if (cp != NULL && !json_is_string(cp))
		return err_set(err, "bundle: tlog entry %zu checkpoint is not a string", i);
	if (cp != NULL && (e->checkpoint = strdup(json_string_value(cp))) == NULL)
		return err_set(err, "out of memory");
	e->has_proof = 1;
	return 0;
}

static int parse_entry(const json_t *t, struct sigstore_tlog_entry *e, int version, size_t i,
                       struct err *err)
{
	const json_t *kv = json_object_get(t, "kindVersion"),
	             *body = json_object_get(t, "canonicalizedBody");
	const json_t *k = json_object_get(kv, "kind"), *v = json_object_get(kv, "version");
	const json_t *it = json_object_get(t, "integratedTime"),
	             *ip = json_object_get(t, "inclusionProof");
	const json_t *pr = json_object_get(t, "inclusionPromise");
	uint8_t *id = NULL;
	size_t idl = 0;

	if (!json_is_object(t))
		return err_set(err, "bundle: tlog entry %zu is not an object", i);
	if (sigstore_json_int64(json_object_get(t, "logIndex"), &e->log_index) < 0 ||
	    e->log_index < 0)
		return err_set(err, "bundle: tlog entry %zu has a missing or negative log index",
		               i);
	if (sigstore_json_b64(json_object_get(json_object_get(t, "logId"), "keyId"), &id, &idl) <
	        0 ||
	    idl == 0 || idl > 32) {
		free(id);
		return err_set(err, "bundle: tlog entry %zu has no logId.keyId", i);
	}
	memcpy(e->log_id, id, idl);
	e->log_id_len = idl;
	free(id);
	if (!json_is_string(k) || !json_is_string(v) || json_string_length(k) >= sizeof(e->kind) ||
	    json_string_length(v) >= sizeof(e->version))
		return err_set(err, "bundle: tlog entry %zu has no kindVersion", i);
	strcpy(e->kind, json_string_value(k));
	strcpy(e->version, json_string_value(v));
	if (it != NULL &&
	    (sigstore_json_int64(it, &e->integrated_time) < 0 || e->integrated_time < 0))
		return err_set(err, "bundle: tlog entry %zu integratedTime is not a time", i);
	if (!json_is_string(body) || (e->body_b64 = strdup(json_string_value(body))) == NULL ||
	    sigstore_json_b64(body, &e->body, &e->body_len) < 0 || e->body_len == 0)
		return err_set(err, "bundle: tlog entry %zu canonicalizedBody is not base64", i);
	if (pr != NULL && (sigstore_json_b64(json_object_get(pr, "signedEntryTimestamp"), &e->set,
	                                     &e->set_len) < 0 ||
	                   e->set_len == 0))
		return err_set(err, "bundle: tlog entry %zu signedEntryTimestamp is not base64", i);
	if (ip != NULL && parse_proof(ip, e, i, err) < 0)
		return -1;
	if (version == 1 && e->set == NULL)
		return err_set(err, "bundle v0.1: tlog entry %zu has no inclusion promise", i);
	if (version >= 2 && !e->has_proof)
		return err_set(err, "bundle v0.%d: tlog entry %zu has no inclusion proof", version,
		               i);
	return 0;
}

static int parse_content(const json_t *j, struct sigstore_bundle *b, struct err *err)
{
	const json_t *ms = json_object_get(j, "messageSignature"),
	             *env = json_object_get(j, "dsseEnvelope");

	if ((ms != NULL) == (env != NULL))
		return err_set(err, "bundle: needs exactly one of messageSignature, dsseEnvelope");
	if (env != NULL) {
		b->is_dsse = 1;
		if (dsse_from_json(env, &b->dsse, err) < 0)
			return err_prefix(err, "bundle");
		if (b->dsse.n_sigs != 1)
			return err_set(
			    err, "bundle: the DSSE envelope must carry exactly one signature");
		b->sig = malloc(b->dsse.sigs[0].len);
		if (b->sig == NULL)
			return err_set(err, "out of memory");
		memcpy(b->sig, b->dsse.sigs[0].sig, b->dsse.sigs[0].len);
		b->sig_len = b->dsse.sigs[0].len;
		return 0;
	}
	if (sigstore_json_b64(json_object_get(ms, "signature"), &b->sig, &b->sig_len) < 0 ||
	    b->sig_len == 0)
		return err_set(err, "bundle: the message signature is missing or not base64");
	if (json_object_get(ms, "messageDigest") != NULL) {
		const json_t *md = json_object_get(ms, "messageDigest");
		const json_t *alg = json_object_get(md, "algorithm");
		uint8_t *d = NULL;
		size_t dl = 0;

		if (!json_is_string(alg) || strcmp(json_string_value(alg), "SHA2_256") != 0)
			return err_set(err, "bundle: messageDigest algorithm is not SHA2_256");
		if (sigstore_json_b64(json_object_get(md, "digest"), &d, &dl) < 0 || dl != 32) {
			free(d);
			return err_set(err,
			               "bundle: messageDigest digest is not 32 bytes of base64");
		}
		b->md_alg = HASH_SHA256;
		memcpy(b->md, d, 32);
		b->md_len = 32;
		free(d);
	}
	return 0;
}

static int parse_timestamps(const json_t *tvd, struct sigstore_bundle *b, struct err *err)
{
	const json_t *ts = json_object_get(tvd, "rfc3161Timestamps");

	if (ts == NULL)
		return 0;
	if (!json_is_array(ts) || json_array_size(ts) > BUNDLE_MAX_ENTRIES)
		return err_set(err, "bundle: rfc3161Timestamps is not an array of at most %d",
		               BUNDLE_MAX_ENTRIES);
	b->tsa = calloc(json_array_size(ts) + 1, sizeof(*b->tsa));
	if (b->tsa == NULL)
		return err_set(err, "out of memory");
	for (size_t i = 0; i < json_array_size(ts); i++) {
		struct sigstore_blob *t = &b->tsa[i];

		if (sigstore_json_b64(json_object_get(json_array_get(ts, i), "signedTimestamp"),
		                      &t->der, &t->len) < 0 ||
		    t->len == 0)
			return err_set(err, "bundle: timestamp %zu is not base64", i);
		b->n_tsa++;
	}
	return 0;
}

int sigstore_bundle_parse(const uint8_t *buf, size_t len, struct sigstore_bundle **out,
                          struct err *err)
{
	struct sigstore_bundle *b = NULL;
	const json_t *mt, *vm, *tl;
	json_error_t jerr;
	json_t *j;
	size_t i;

	*out = NULL;
	if (buf == NULL || len == 0 || len > BUNDLE_MAX_BYTES)
		return err_set(err, "bundle: empty or larger than %u bytes", BUNDLE_MAX_BYTES);
	j = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL)
		return err_set(err, "bundle: not JSON: %s (line %d)", jerr.text, jerr.line);
	b = calloc(1, sizeof(*b));
	if (b == NULL) {
		err_set(err, "out of memory");
		goto fail;
	}
	mt = json_object_get(j, "mediaType");
	for (i = 0; json_is_string(mt) && i < sizeof(media_types) / sizeof(media_types[0]); i++)
		if (strcmp(json_string_value(mt), media_types[i].media_type) == 0)
			b->version = media_types[i].version;
	if (b->version == 0) {
		err_set(err, "bundle: unsupported mediaType %s",
		        json_is_string(mt) ? json_string_value(mt) : "(none)");
		goto fail;
	}
	vm = json_object_get(j, "verificationMaterial");
	if (!json_is_object(vm)) {
		err_set(err, "bundle: no verificationMaterial");
		goto fail;
	}
	if (parse_material(vm, b, err) < 0 || parse_content(j, b, err) < 0 ||
	    parse_timestamps(json_object_get(vm, "timestampVerificationData"), b, err) < 0)
		goto fail;
	tl = json_object_get(vm, "tlogEntries");
	if (tl != NULL && (!json_is_array(tl) || json_array_size(tl) > BUNDLE_MAX_ENTRIES)) {
		err_set(err, "bundle: tlogEntries is not an array of at most %d",
		        BUNDLE_MAX_ENTRIES);
		goto fail;
	}
	b->tlog = calloc(json_array_size(tl) + 1, sizeof(*b->tlog));
	if (b->tlog == NULL) {
		err_set(err, "out of memory");
		goto fail;
	}
	for (i = 0; i < json_array_size(tl); i++) {
		b->n_tlog++;
		if (parse_entry(json_array_get(tl, i), &b->tlog[i], b->version, i, err) < 0)
			goto fail;
	}
	json_decref(j);
	*out = b;
	return 0;
fail:
	json_decref(j);
	sigstore_bundle_free(b);
	return -1;
}

void sigstore_bundle_free(struct sigstore_bundle *b)
{
	if (b == NULL)
		return;
	X509_free(b->leaf);
	dsse_free(&b->dsse);
	free(b->sig);
	for (size_t i = 0; i < b->n_tlog; i++) {
		struct sigstore_tlog_entry *e = &b->tlog[i];

		free(e->set);
		free(e->body_b64);
		free(e->body);
		free(e->hashes);
		free(e->checkpoint);
	}
	free(b->tlog);
	for (size_t i = 0; i < b->n_tsa; i++)
		free(b->tsa[i].der);
	free(b->tsa);
	free(b);
}
