/*
 * sigstore_verify: the checklist of sigstore.h, top to bottom. Each stage is a small
 * function that fills or reads `struct vstate`; the first that fails names the reason.
 * Times: a certificate is judged at every verified time (a log's signed integrated time, a
 * TSA's signed genTime), never at the clock, since Fulcio certificates live ten minutes; the
 * clock (`now`) only bounds those times from above.
 */
#include <openssl/ct.h>
#include <openssl/err.h>
#include <openssl/ts.h>
#include <openssl/x509v3.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "rvps/extractors/sigstore.h"

#define MAX_TIMES 32
#define OID_ISSUER_V2 "1.3.6.1.4.1.57264.1.8"
#define OID_ISSUER_V1 "1.3.6.1.4.1.57264.1.1"

struct vstate {
	const struct sigstore_root *root;
	const struct sigstore_bundle *b;
	const struct sigstore_policy *pol;
	time_t now;
	EVP_PKEY *signer; /* borrowed: the policy key or the leaf's */
	int has_art;
	uint8_t art[32]; /* the artifact's SHA-256 */
	time_t times[MAX_TIMES];
	size_t n_times;
	size_t n_tsa_times; /* times[0 .. n_tsa_times) came from RFC 3161 timestamps */
	struct sigstore_result *res;
};

static int add_time(struct vstate *v, time_t t, struct err *err)
{
	if (t > v->now + 60)
		return err_set(err, "a verified time lies in the future");
	if (v->n_times < MAX_TIMES)
		v->times[v->n_times++] = t;
	return 0;
}

/* ---- stage: the signer ---- */

static int stage_signer(struct vstate *v, struct err *err)
{
	if (v->pol->key != NULL) {
		if (v->b->leaf != NULL)
			return err_set(
			    err, "the bundle is signed with a certificate, not the given key");
		v->signer = v->pol->key;
		return 0;
	}
	if (v->b->leaf == NULL)
		return err_set(err, "the bundle is signed with a key, and no key was given");
	v->signer = X509_get0_pubkey(v->b->leaf);
	if (v->signer == NULL)
		return err_set(err, "the signing certificate's key is unreadable");
	return 0;
}

/* ---- stage: the artifact signature ---- */

static int verify_prehashed(EVP_PKEY *key, const uint8_t d[32], const uint8_t *sig, size_t sl,
                            struct err *err)
{
	EVP_PKEY_CTX *pc;
	int ok;

	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519 ||
	    (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC && EVP_PKEY_get_bits(key) != 256))
		return err_set(err,
		               "a SHA-256 digest alone cannot verify this key's signature; give "
		               "the artifact");
	pc = EVP_PKEY_CTX_new(key, NULL);
	ok = pc != NULL && EVP_PKEY_verify_init(pc) == 1 &&
	     EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) == 1 &&
	     EVP_PKEY_verify(pc, sig, sl, d, 32) == 1;
	EVP_PKEY_CTX_free(pc);
	return ok ? 0 : err_set(err, "the signature does not verify with the key");
}

static int statement_names_artifact(const struct vstate *v, struct err *err)
{
	char *hex = hex_encode(v->art, 32);
	json_t *vals = NULL;
	const char *name;
	json_t *arr;
	int found = 0;

	if (hex == NULL)
		return err_set(err, "out of memory");
	if (strcmp(v->b->dsse.payload_type, INTOTO_PAYLOAD_TYPE) != 0 ||
	    intoto_statement_parse(v->b->dsse.payload, v->b->dsse.payload_len, &vals, err) < 0) {
		free(hex);
		return err_set(err, "the DSSE payload is not an in-toto statement");
	}
	json_object_foreach(vals, name, arr)
	{
		size_t i;
		json_t *d;

		json_array_foreach(arr, i, d)
		{
			if (strcmp(json_string_value(d), hex) == 0)
				found = 1;
		}
	}
	free(hex);
	json_decref(vals);
	return found ? 0 : err_set(err, "no subject of the in-toto statement is the artifact");
}

static int stage_signature(struct vstate *v, const struct sigstore_artifact *a, struct err *err)
{
	const struct sigstore_bundle *b = v->b;

	if (b->is_dsse) {
		if (dsse_verify_sig(&b->dsse, 0, v->signer, err) < 0)
			return err_prefix(err, "DSSE envelope");
		return v->has_art ? statement_names_artifact(v, err) : 0;
	}
	if (!v->has_art)
		return err_set(err, "a message signature bundle needs the artifact or its digest");
	if (b->md_len == 32 && CRYPTO_memcmp(b->md, v->art, 32) != 0)
		return err_set(err, "the bundle's message digest is not the artifact's SHA-256");
	if (a->data != NULL) {
		if (sig_verify_message(v->signer, a->data, a->len, b->sig, b->sig_len, err) < 0)
			return err_prefix(err, "artifact signature");
		return 0;
	}
	if (verify_prehashed(v->signer, v->art, b->sig, b->sig_len, err) < 0)
		return err_prefix(err, "artifact signature");
	return 0;
}

/* ---- stage: transparency log entries ---- */

/* An entry with no integrated time (Rekor v2) is dated by the RFC 3161 timestamps alone, so
 * its log key must be valid at each of them (stage_timestamps ran first; times[0..n_tsa)). */
static int tlog_key_at_tsa_times(const struct vstate *v, size_t i, struct err *err)
{
	const struct sigstore_tlog_entry *e = &v->b->tlog[i];
	const struct sigstore_key *log =
	    sigstore_find_key(v->root->tlogs, v->root->n_tlogs, e->log_id, e->log_id_len);

	for (size_t k = 0; log != NULL && k < v->n_tsa_times; k++)
		if (!sigstore_time_in(v->times[k], log->start, log->end))
			return err_set(err,
			               "transparency log entry %zu: its log key is not valid at "
			               "the timestamp's time",
			               i);
	return log != NULL ? 0 : err_set(err, "transparency log entry %zu: unknown log", i);
}

static int stage_tlog(struct vstate *v, struct err *err)
{
	if (v->b->n_tlog == 0)
		return err_set(err, "the bundle has no transparency log entry");
	for (size_t i = 0; i < v->b->n_tlog; i++) {
		time_t t = 0;

		if (sigstore_tlog_verify(v->root, v->b, &v->b->tlog[i], v->signer,
		                         v->has_art ? v->art : NULL, &t, err) < 0)
			return err_prefix(err, "transparency log entry %zu", i);
		if (t != 0 && add_time(v, t, err) < 0)
			return -1;
		if (v->b->tlog[i].integrated_time == 0 && tlog_key_at_tsa_times(v, i, err) < 0)
			return -1;
	}
	return 0;
}

/* ---- stage: RFC 3161 timestamps ---- */

static int asn1_to_time(const ASN1_TIME *a, time_t *out)
{
	struct tm tm;

	if (a == NULL || ASN1_TIME_to_tm(a, &tm) != 1)
		return -1;
	*out = timegm(&tm);
	return 0;
}

static int tsa_verify_one(const struct sigstore_ca *tsa, TS_RESP *resp, const uint8_t *sig,
                          size_t sl, time_t gen)
{
	TS_VERIFY_CTX *ctx = TS_VERIFY_CTX_new();
	X509_STORE *st = X509_STORE_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	X509_VERIFY_PARAM *param = X509_VERIFY_PARAM_new();
	int n = sk_X509_num(tsa->certs), ok = 0;
	BIO *data = BIO_new_mem_buf(sig, (int)sl);

	if (ctx == NULL || st == NULL || untrusted == NULL || param == NULL || data == NULL)
		goto out;
	X509_STORE_add_cert(st, sk_X509_value(tsa->certs, n - 1));
	for (int i = 0; i < n - 1; i++)
		if (sk_X509_push(untrusted, sk_X509_value(tsa->certs, i)))
			X509_up_ref(sk_X509_value(tsa->certs, i));
	X509_VERIFY_PARAM_set_time(param, gen);
	X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
	X509_STORE_set1_param(st, param);
	TS_VERIFY_CTX_set_flags(ctx, TS_VFY_VERSION | TS_VFY_SIGNATURE | TS_VFY_DATA);
	TS_VERIFY_CTX_set_store(ctx, st);
	TS_VERIFY_CTX_set_certs(ctx, untrusted);
	TS_VERIFY_CTX_set_data(ctx, data);
	st = NULL;
	untrusted = NULL;
	data = NULL;
	ok = TS_RESP_verify_response(ctx, resp) == 1;
out:
	TS_VERIFY_CTX_free(ctx);
	X509_STORE_free(st);
	sk_X509_pop_free(untrusted, X509_free);
	X509_VERIFY_PARAM_free(param);
	BIO_free(data);
	return ok;
}

static int stage_timestamps(struct vstate *v, struct err *err)
{
	for (size_t i = 0; i < v->b->n_tsa; i++) {
		const unsigned char *p = v->b->tsa[i].der;
		TS_RESP *resp = d2i_TS_RESP(NULL, &p, (long)v->b->tsa[i].len);
		TS_TST_INFO *info;
		time_t gen = 0;
		int ok = 0;

		if (resp == NULL || p != v->b->tsa[i].der + v->b->tsa[i].len) {
			TS_RESP_free(resp);
			return err_set(err, "timestamp %zu is not a DER RFC 3161 response", i);
		}
		info = TS_RESP_get_tst_info(resp);
		if (info == NULL || asn1_to_time(TS_TST_INFO_get_time(info), &gen) < 0) {
			TS_RESP_free(resp);
			return err_set(err, "timestamp %zu has no token time", i);
		}
		for (size_t k = 0; !ok && k < v->root->n_tsas; k++)
			ok = sigstore_time_in(gen, v->root->tsas[k].start, v->root->tsas[k].end) &&
			     tsa_verify_one(&v->root->tsas[k], resp, v->b->sig, v->b->sig_len, gen);
		ERR_clear_error();
		TS_RESP_free(resp);
		if (!ok)
			return err_set(
			    err,
			    "timestamp %zu: no trusted timestamp authority, valid at its "
			    "time, signed it over the bundle's signature",
			    i);
		if (add_time(v, gen, err) < 0)
			return -1;
	}
	return 0;
}

/* ---- stage: the certificate ---- */

/* The chain to one CA at time t; *issuer gets the leaf's issuer (up-ref'd). */
static int chain_at(X509 *leaf, const struct sigstore_ca *ca, time_t t, X509 **issuer)
{
	X509_STORE *st = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	int n = sk_X509_num(ca->certs), ok = 0;

	if (st == NULL || ctx == NULL || untrusted == NULL)
		goto out;
	X509_STORE_add_cert(st, sk_X509_value(ca->certs, n - 1));
	for (int i = 0; i < n - 1; i++)
		sk_X509_push(untrusted, sk_X509_value(ca->certs, i));
	if (X509_STORE_CTX_init(ctx, st, leaf, untrusted) != 1)
		goto out;
	X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), t);
	X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(ctx), X509_V_FLAG_PARTIAL_CHAIN);
	ok = X509_verify_cert(ctx) == 1;
	if (ok && issuer != NULL) {
		STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);

		*issuer = sk_X509_num(chain) >= 2 ? sk_X509_value(chain, 1) : NULL;
		if (*issuer != NULL)
			X509_up_ref(*issuer);
		ok = *issuer != NULL;
	}
out:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	sk_X509_free(untrusted);
	return ok;
}

static int stage_chain(struct vstate *v, X509 **issuer, struct err *err)
{
	X509 *leaf = v->b->leaf;

	*issuer = NULL;
	if (v->n_times == 0)
		return err_set(err, "no verified time: the bundle has neither a signed entry "
		                    "timestamp nor a trusted RFC 3161 timestamp");
	if (!(X509_get_extension_flags(leaf) & EXFLAG_XKUSAGE) ||
	    !(X509_get_extended_key_usage(leaf) & XKU_CODE_SIGN))
		return err_set(err, "the signing certificate is not for code signing");
	if (X509_check_ca(leaf) != 0 || !(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE))
		return err_set(err, "the signing certificate is a CA certificate or not for "
		                    "digital signatures");
	for (size_t i = 0; i < v->n_times; i++) {
		int ok = 0;

		for (size_t k = 0; !ok && k < v->root->n_cas; k++) {
			X509 *is = NULL;

			if (!sigstore_time_in(v->times[i], v->root->cas[k].start,
			                      v->root->cas[k].end))
				continue;
			ok = chain_at(leaf, &v->root->cas[k], v->times[i], &is);
			if (ok && *issuer == NULL)
				*issuer = is;
			else
				X509_free(is);
		}
		if (!ok)
			return err_set(err, "the signing certificate does not chain to a trusted "
			                    "certificate authority valid at its signing time");
	}
	return 0;
}

/* RFC 6962 §3.2: the SCT signs the precertificate's TBS (this TBS without the SCT list). */
static int sct_verify(const struct sigstore_root *root, const SCT *sct, const uint8_t ikh[32],
                      const uint8_t *tbs, size_t tl, struct err *err)
{
	unsigned char *id, *ext, *sig;
	size_t idl = SCT_get0_log_id(sct, &id), el = SCT_get0_extensions(sct, &ext);
	size_t sl = SCT_get0_signature(sct, &sig), n = 0;
	uint64_t ts = SCT_get_timestamp(sct);
	const struct sigstore_key *log;
	uint8_t *m;
	int rc;

	if (SCT_get_version(sct) != SCT_VERSION_V1)
		return err_set(err, "not a v1 SCT");
	log = sigstore_find_key(root->ctlogs, root->n_ctlogs, id, idl);
	if (log == NULL)
		return err_set(err, "the SCT's log is not a trusted CT log");
	if (!sigstore_time_in((time_t)(ts / 1000), log->start, log->end))
		return err_set(err, "the SCT is outside its CT log key's validity");
	m = malloc(tl + el + 64);
	if (m == NULL)
		return err_set(err, "out of memory");
	m[n++] = 0; /* version v1 */
	m[n++] = 0; /* certificate_timestamp */
	for (int s = 56; s >= 0; s -= 8)
		m[n++] = (uint8_t)(ts >> s);
	m[n++] = 0; /* entry type precert_entry (1) */
	m[n++] = 1;
	memcpy(m + n, ikh, 32);
	n += 32;
	m[n++] = (uint8_t)(tl >> 16);
	m[n++] = (uint8_t)(tl >> 8);
	m[n++] = (uint8_t)tl;
	memcpy(m + n, tbs, tl);
	n += tl;
	m[n++] = (uint8_t)(el >> 8);
	m[n++] = (uint8_t)el;
	if (el > 0)
		memcpy(m + n, ext, el);
	n += el;
	rc = sig_verify_message(log->pkey, m, n, sig, sl, err);
	free(m);
	return rc;
}

static int stage_sct(struct vstate *v, X509 *issuer, struct err *err)
{
	STACK_OF(SCT) *scts = X509_get_ext_d2i(v->b->leaf, NID_ct_precert_scts, NULL, NULL);
	X509 *pre = NULL;
	unsigned char *tbs = NULL, *spki = NULL;
	uint8_t ikh[32];
	int tl, sl, idx, ok = 0;
	struct err last;

	err_set(&last, "no SCT");
	if (scts == NULL || sk_SCT_num(scts) == 0) {
		SCT_LIST_free(scts);
		return err_set(err, "the signing certificate carries no SCT");
	}
	pre = X509_dup(v->b->leaf);
	idx = pre ? X509_get_ext_by_NID(pre, NID_ct_precert_scts, -1) : -1;
	if (idx >= 0)
		X509_EXTENSION_free(X509_delete_ext(pre, idx));
	tl = idx >= 0 ? i2d_re_X509_tbs(pre, &tbs) : -1;
	sl = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(issuer), &spki);
	if (tl > 0 && sl > 0 && EVP_Digest(spki, (size_t)sl, ikh, NULL, EVP_sha256(), NULL) == 1)
		for (int i = 0; !ok && i < sk_SCT_num(scts); i++)
			ok = sct_verify(v->root, sk_SCT_value(scts, i), ikh, tbs, (size_t)tl,
			                &last) == 0;
	OPENSSL_free(tbs);
	OPENSSL_free(spki);
	X509_free(pre);
	SCT_LIST_free(scts);
	return ok ? 0 : err_set(err, "no SCT of the certificate verifies: %s", last.msg);
}

static int ext_string(X509 *x, const char *oid, int utf8, char *out, size_t cap)
{
	ASN1_OBJECT *o = OBJ_txt2obj(oid, 1);
	int idx = o ? X509_get_ext_by_OBJ(x, o, -1) : -1;
	const ASN1_OCTET_STRING *os;
	const unsigned char *p;
	ASN1_UTF8STRING *u = NULL;
	int rc = -1, n;

	ASN1_OBJECT_free(o);
	if (idx < 0)
		return -1;
	os = X509_EXTENSION_get_data(X509_get_ext(x, idx));
	p = ASN1_STRING_get0_data(os);
	n = ASN1_STRING_length(os);
	if (utf8) {
		u = d2i_ASN1_UTF8STRING(NULL, &p, n);
		if (u == NULL)
			return -1;
		p = ASN1_STRING_get0_data(u);
		n = ASN1_STRING_length(u);
	}
	if (n >= 0 && (size_t)n < cap && memchr(p, '\0', (size_t)n) == NULL) {
		memcpy(out, p, (size_t)n);
		out[n] = '\0';
		rc = 0;
	}
	ASN1_UTF8STRING_free(u);
	return rc;
}

static int leaf_san(X509 *x, char *out, size_t cap)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int rc = -1;

	for (int i = 0; rc < 0 && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const ASN1_STRING *s = NULL;

		if (g->type == GEN_URI || g->type == GEN_EMAIL)
			s = g->d.ia5;
		if (s != NULL && (size_t)ASN1_STRING_length(s) < cap &&
		    memchr(ASN1_STRING_get0_data(s), '\0', (size_t)ASN1_STRING_length(s)) == NULL) {
			memcpy(out, ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
			out[ASN1_STRING_length(s)] = '\0';
			rc = 0;
		}
	}
	GENERAL_NAMES_free(gens);
	return rc;
}

static int stage_identity(struct vstate *v, struct err *err)
{
	struct sigstore_result *r = v->res;

	if (leaf_san(v->b->leaf, r->san, sizeof(r->san)) < 0)
		return err_set(err, "the signing certificate names no URI or e-mail identity");
	if (ext_string(v->b->leaf, OID_ISSUER_V2, 1, r->issuer, sizeof(r->issuer)) < 0 &&
	    ext_string(v->b->leaf, OID_ISSUER_V1, 0, r->issuer, sizeof(r->issuer)) < 0)
		return err_set(err, "the signing certificate names no OIDC issuer");
	for (size_t i = 0; i < v->pol->n_ids; i++) {
		const struct sigstore_identity *id = &v->pol->ids[i];

		if (id->issuer == NULL || strcmp(id->issuer, r->issuer) != 0)
			continue;
		if (id->san != NULL && strcmp(id->san, r->san) == 0)
			return 0;
		if (id->san_regex != NULL && regexec(id->san_regex, r->san, 0, NULL, 0) == 0)
			return 0;
	}
	return err_set(err, "the certificate's identity %s (issuer %s) matches no trusted identity",
	               r->san, r->issuer);
}

int sigstore_verify(const struct sigstore_root *root, const struct sigstore_bundle *b,
                    const struct sigstore_policy *pol, const struct sigstore_artifact *art,
                    time_t now, struct sigstore_result *res, struct err *err)
{
	struct vstate v = {.root = root, .b = b, .pol = pol, .now = now, .res = res};
	X509 *issuer = NULL;
	int rc = -1;

	memset(res, 0, sizeof(*res));
	if (art != NULL && art->data != NULL) {
		EVP_Digest(art->data, art->len, v.art, NULL, EVP_sha256(), NULL);
		v.has_art = 1;
	} else if (art != NULL && art->has_digest) {
		memcpy(v.art, art->sha256, 32);
		v.has_art = 1;
	}
	if (stage_signer(&v, err) < 0 || stage_signature(&v, art, err) < 0 ||
	    stage_timestamps(&v, err) < 0)
		goto out;
	v.n_tsa_times = v.n_times;
	if (stage_tlog(&v, err) < 0)
		goto out;
	if (b->leaf != NULL && (stage_chain(&v, &issuer, err) < 0 ||
	                        stage_sct(&v, issuer, err) < 0 || stage_identity(&v, err) < 0))
		goto out;
	for (size_t i = 0; i < v.n_times; i++)
		if (res->signed_at == 0 || v.times[i] < res->signed_at)
			res->signed_at = v.times[i];
	rc = 0;
out:
	X509_free(issuer);
	return rc;
}
