/*
 * token: verification of attestation tokens (EAR JWTs from the AS, or any JWT the operator
 * trusts) as kbs-protocol.md §4.2, and the tee-pubkey lookup of §4.3.
 *
 * The key never comes from the token alone: a header `jwk` is used only when its x5c chain
 * ends in a configured trust anchor and the leaf certificate carries that very key, when it
 * is itself one of the keys of the trusted JWK sets, or when the operator set
 * insecure_header_jwk; a header `kid` only selects a key from the configured JWK sets (files,
 * https:// JWKS or OIDC discovery; see jwks.c). The algorithm is the JWK's own `alg`, never
 * the header's; `none` and HMAC algorithms are refused outright.
 *
 * A chain that verifies is not enough: the leaf must be meant for signing. A keyUsage without
 * digitalSignature (a TLS key-encipherment certificate under the same CA) is refused, and so
 * is an extendedKeyUsage naming only TLS purposes, unless the operator lists the purposes a
 * token signer carries (trusted_signer_ekus); trusted_signer_subjects pins the leaf subjects.
 *
 * Verified once: a token whose key came from an x5c chain (or a header jwk the operator
 * trusts outright) is remembered by the SHA-256 of its exact bytes until its exp plus the
 * leeway, or the chain's earliest notAfter if sooner, and an endorsed chain until its earliest
 * notAfter by the SHA-256 of the header segment that carries it (the chain's bytes are inside
 * it, and header_of has hashed it already: verify_full 1.29M -> 1.22M instructions per token,
 * callgrind, 8 attesters at 20/s), else of its certificates (vcache.c states the rules). A token
 * verified through the JWK sets is not remembered: those sets are refreshed, and a key dropped from
 * them must stop verifying at once. The decoded header is kept by its segment's bytes (the
 * same on every token an AS signs); it is only parsed text, every decision is made afresh.
 * A session keeps the claims kbs_token_verify_once found, with the same deadline (server.c).
 */
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <stdatomic.h>
#include <time.h>

#include "b64.h"
#include "hash.h"
#include "jose/jose.h"
#include "kbs.h"
#include "log.h"
#include "vcache.h"

#define EXP_LEEWAY KBS_TOKEN_EXP_LEEWAY
/* Bounds of the two memos: a verified token's claims are a few kB of JSON, so 256 tokens stay
 * near a megabyte; a deployment has a handful of AS signing chains. */
#define TOKEN_CACHE_ENTRIES 256
#define CHAIN_CACHE_ENTRIES 64
/* An AS puts the same header (alg, jwk, x5c) on every token it signs: its parse is kept by the
 * header segment's bytes. Nothing invalidates an entry but eviction: it is the parse of exactly
 * those bytes, and trust is decided afresh from it each time (chain memo, key, signature). */
#define HEADER_CACHE_ENTRIES 64

struct kbs_token_verifier {
	X509_STORE *store;     /* NULL when no trusted_certs_paths */
	struct kbs_jwks *jwks; /* NULL when no trusted_jwk_sets */
	bool insecure_header_jwk;
	struct kbs_strv extra_paths; /* borrowed from the config */
	ASN1_OBJECT **ekus;          /* trusted_signer_ekus, parsed */
	size_t n_ekus;
	struct kbs_strv subjects; /* trusted_signer_subjects, borrowed from the config */
	struct vcache *tokens;    /* SHA-256(token) -> json_t claims, owned */
	struct vcache *chains;    /* SHA-256(header segment, or x5c chain) -> struct endorsed */
	struct vcache *headers;   /* SHA-256(header segment) -> json_t header, shared read-only */
};

static void *claims_copy(void *v)
{
	return json_deep_copy(v);
}

static void claims_drop(void *v)
{
	json_decref(v);
}

static void *header_share(void *v)
{
	return json_incref(v);
}

/* The chain memo's value: the endorsed leaf key and its public JWK members (jwk_from_pkey),
 * so that a header jwk naming the same key is recognised by comparing its members' text
 * instead of importing it into OpenSSL on every token. Shared by reference, never changed. */
struct endorsed {
	EVP_PKEY *key;
	json_t *jwk;
	atomic_int refs;
};

static struct endorsed *endorsed_new(EVP_PKEY *key)
{
	struct endorsed *en = calloc(1, sizeof(*en));
	if (!en)
		return NULL;
	en->key = key; /* the caller's reference, moved in */
	en->jwk = jwk_from_pkey(key, 0, NULL);
	atomic_init(&en->refs, 1);
	return en;
}

static void *endorsed_copy(void *v)
{
	struct endorsed *en = v;
	atomic_fetch_add(&en->refs, 1);
	return en;
}

static void endorsed_drop(void *v)
{
	struct endorsed *en = v;
	if (!en || atomic_fetch_sub(&en->refs, 1) != 1)
		return;
	EVP_PKEY_free(en->key);
	json_decref(en->jwk);
	free(en);
}

static int load_certs(X509_STORE *st, const char *path, struct err *err)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return err_set(err, "trusted_certs_paths: cannot open %s", path);
	int n = 0;
	X509 *x;
	while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
		X509_STORE_add_cert(st, x);
		X509_free(x);
		n++;
	}
	fclose(f);
	if (n == 0)
		return err_set(err, "trusted_certs_paths: no PEM certificate in %s", path);
	return 0;
}

bool kbs_token_verifier_may_fetch(const struct kbs_token_verifier *v)
{
	return v && kbs_jwks_remote(v->jwks);
}

struct kbs_token_verifier *kbs_token_verifier_new(const struct kbs_config *cfg, struct err *err)
{
	struct kbs_token_verifier *v = calloc(1, sizeof(*v));
	if (!v) {
		err_set(err, "out of memory");
		return NULL;
	}
	v->insecure_header_jwk = cfg->insecure_header_jwk;
	v->extra_paths = cfg->extra_teekey_paths;
	v->subjects = cfg->trusted_signer_subjects;
	v->tokens = vcache_new(TOKEN_CACHE_ENTRIES, claims_copy, claims_drop);
	v->chains = vcache_new(CHAIN_CACHE_ENTRIES, endorsed_copy, endorsed_drop);
	v->headers = vcache_new(HEADER_CACHE_ENTRIES, header_share, claims_drop);
	if (!v->tokens || !v->chains || !v->headers) {
		err_set(err, "out of memory");
		goto fail;
	}
	if (cfg->trusted_signer_ekus.n) {
		v->ekus = calloc(cfg->trusted_signer_ekus.n, sizeof(*v->ekus));
		if (!v->ekus) {
			err_set(err, "out of memory");
			goto fail;
		}
		for (size_t i = 0; i < cfg->trusted_signer_ekus.n; i++, v->n_ekus++)
			if ((v->ekus[i] = OBJ_txt2obj(cfg->trusted_signer_ekus.v[i], 0)) == NULL) {
				err_set(err,
				        "trusted_signer_ekus: \"%s\" is not an OID or a known name",
				        cfg->trusted_signer_ekus.v[i]);
				goto fail;
			}
	}
	if (cfg->trusted_certs_paths.n) {
		v->store = X509_STORE_new();
		for (size_t i = 0; i < cfg->trusted_certs_paths.n; i++)
			if (load_certs(v->store, cfg->trusted_certs_paths.v[i], err))
				goto fail;
	}
	if (cfg->trusted_jwk_sets.n) {
		v->jwks = kbs_jwks_new(&cfg->trusted_jwk_sets, err);
		if (!v->jwks)
			goto fail;
	}
	return v;
fail:
	kbs_token_verifier_free(v);
	return NULL;
}

void kbs_token_verifier_free(struct kbs_token_verifier *v)
{
	if (!v)
		return;
	X509_STORE_free(v->store);
	kbs_jwks_free(v->jwks);
	vcache_free(v->tokens);
	vcache_free(v->chains);
	vcache_free(v->headers);
	for (size_t i = 0; i < v->n_ekus; i++)
		ASN1_OBJECT_free(v->ekus[i]);
	free(v->ekus);
	free(v);
}

static X509 *der_cert(const char *b64, struct err *err)
{
	uint8_t *der = NULL;
	size_t len = 0;
	if (b64_decode(b64, strlen(b64), B64_STD | B64_LENIENT, &der, &len) != 0) {
		err_set(err, "x5c entry is not base64");
		return NULL;
	}
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	free(der);
	if (!x)
		err_set(err, "x5c entry is not a DER certificate");
	return x;
}

/* An extendedKeyUsage the operator listed, or, with no list, one purpose beyond TLS. */
static int eku_allowed(const struct kbs_token_verifier *v, EXTENDED_KEY_USAGE *eku)
{
	for (int i = 0; i < sk_ASN1_OBJECT_num(eku); i++) {
		ASN1_OBJECT *o = sk_ASN1_OBJECT_value(eku, i);
		int nid = OBJ_obj2nid(o);
		if (v->n_ekus == 0 && nid != NID_server_auth && nid != NID_client_auth)
			return 1;
		for (size_t j = 0; j < v->n_ekus; j++)
			if (OBJ_cmp(o, v->ekus[j]) == 0)
				return 1;
	}
	return 0;
}

/* The verified leaf is meant to sign tokens: keyUsage, extendedKeyUsage, pinned subjects. */
static int signer_allowed(const struct kbs_token_verifier *v, X509 *leaf, struct err *err)
{
	uint32_t flags = X509_get_extension_flags(leaf);
	if ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE))
		return err_set(err, "the x5c leaf certificate's keyUsage does not allow "
		                    "digitalSignature: it is not a token signer");
	if (flags & EXFLAG_XKUSAGE) {
		EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(leaf, NID_ext_key_usage, NULL, NULL);
		int ok = eku && eku_allowed(v, eku);
		sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
		if (!ok)
			return err_set(err, v->n_ekus
			                        ? "the x5c leaf certificate's extendedKeyUsage has "
			                          "none of trusted_signer_ekus"
			                        : "the x5c leaf certificate's extendedKeyUsage is "
			                          "for TLS only: it is not a token signer");
	}
	if (v->subjects.n == 0)
		return 0;
	char subj[1024] = "";
	BIO *b = BIO_new(BIO_s_mem());
	if (b) {
		X509_NAME_print_ex(b, X509_get_subject_name(leaf), 0, XN_FLAG_RFC2253);
		int n = BIO_read(b, subj, sizeof(subj) - 1);
		subj[n > 0 ? n : 0] = '\0';
		BIO_free(b);
	}
	for (size_t i = 0; i < v->subjects.n; i++)
		if (strcmp(subj, v->subjects.v[i]) == 0)
			return 0;
	return err_set(err,
	               "the x5c leaf certificate's subject \"%s\" is not one of "
	               "trusted_signer_subjects",
	               subj);
}

/* The earliest notAfter of a verified chain, in seconds since the epoch (0 if unreadable,
 * which keeps it out of the memo). */
static double chain_not_after(X509_STORE_CTX *ctx)
{
	STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
	double min = 0;
	for (int i = 0; i < sk_X509_num(chain); i++) {
		struct tm tm;
		if (ASN1_TIME_to_tm(X509_get0_notAfter(sk_X509_value(chain, i)), &tm) != 1)
			return 0;
		double t = (double)timegm(&tm);
		if (min == 0 || t < min)
			min = t;
	}
	return min;
}

/* The SHA-256 over the x5c entries, each preceded by its length; -1 if one is not a string. */
static int chain_digest(const json_t *x5c, uint8_t out[32], struct err *err)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int rc = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 ? 0 : -1;
	for (size_t i = 0; rc == 0 && i < json_array_size(x5c); i++) {
		const json_t *e = json_array_get(x5c, i);
		uint64_t n = json_string_length(e);
		if (!json_is_string(e))
			rc = err_set(err, "x5c entries must be strings");
		else if (EVP_DigestUpdate(md, &n, sizeof(n)) != 1 ||
		         EVP_DigestUpdate(md, json_string_value(e), n) != 1)
			rc = -1;
	}
	if (rc == 0 && EVP_DigestFinal_ex(md, out, NULL) != 1)
		rc = -1;
	EVP_MD_CTX_free(md);
	if (rc < 0 && err && !err->msg[0])
		err_set(err, "cannot hash the x5c chain");
	return rc;
}

/* Decodes and verifies the x5c chain against the trust store and the signer rules; returns a
 * new reference to the leaf's key and sets *until to the chain's earliest notAfter. */
static EVP_PKEY *verify_chain(struct kbs_token_verifier *v, const json_t *x5c, double *until,
                              struct err *err)
{
	X509 *leaf = NULL;
	STACK_OF(X509) *inter = sk_X509_new_null();
	X509_STORE_CTX *ctx = NULL;
	EVP_PKEY *lk = NULL;
	for (size_t i = 0; i < json_array_size(x5c); i++) {
		X509 *x = der_cert(json_string_value(json_array_get(x5c, i)), err);
		if (!x)
			goto out;
		if (i == 0)
			leaf = x;
		else
			sk_X509_push(inter, x);
	}
	ctx = X509_STORE_CTX_new();
	if (!ctx || X509_STORE_CTX_init(ctx, v->store, leaf, inter) != 1) {
		err_set(err, "cannot set up certificate verification");
		goto out;
	}
	if (X509_verify_cert(ctx) != 1) {
		err_set(err, "x5c chain does not verify against trusted_certs_paths: %s",
		        X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
		goto out;
	}
	if (signer_allowed(v, leaf, err) < 0)
		goto out;
	if ((lk = X509_get0_pubkey(leaf)) == NULL || EVP_PKEY_up_ref(lk) != 1) {
		lk = NULL;
		err_set(err, "the x5c leaf certificate has no usable key");
		goto out;
	}
	*until = chain_not_after(ctx);
out:
	X509_STORE_CTX_free(ctx);
	X509_free(leaf);
	sk_X509_pop_free(inter, X509_free);
	return lk;
}

/* The members that name an RSA or EC public key are the same text in both JWKs. */
static int same_public_jwk(const json_t *a, const json_t *b)
{
	static const char *const rsa[] = {"kty", "n", "e", NULL}, *const ec[] = {"kty", "crv", "x",
	                                                                         "y", NULL};
	const char *kty = json_string_value(json_object_get(a, "kty"));
	const char *const *m = !kty                  ? NULL
	                       : !strcmp(kty, "RSA") ? rsa
	                       : !strcmp(kty, "EC")  ? ec
	                                             : NULL;
	for (; m && *m; m++) {
		const json_t *x = json_object_get(a, *m), *y = json_object_get(b, *m);
		if (!json_is_string(x) || !json_is_string(y) ||
		    json_string_length(x) != json_string_length(y) ||
		    memcmp(json_string_value(x), json_string_value(y), json_string_length(x)) != 0)
			return 0;
	}
	return m != NULL;
}

/* The header jwk is endorsed by its x5c chain ending in a trusted certificate. A chain
 * verified before (same bytes, before its earliest notAfter) is taken from the memo; the jwk
 * is compared with the chain's leaf key either way: by the text of its key members when they
 * are the leaf's own (as an AS writes them), else by importing it. Returns a new reference to
 * the key; *until gets the chain's deadline. */
static EVP_PKEY *endorsed_key(struct kbs_token_verifier *v, const json_t *jwk, const json_t *header,
                              const uint8_t *header_digest, double *until, struct err *err)
{
	const char *kty = json_string_value(json_object_get(jwk, "kty"));
	const char *crv = json_string_value(json_object_get(jwk, "crv"));
	if (!kty || !(strcmp(kty, "RSA") == 0 ||
	              (strcmp(kty, "EC") == 0 && crv && strcmp(crv, "P-256") == 0))) {
		err_set(err, "header jwk must be an RSA or EC P-256 key");
		return NULL;
	}
	if (!v->store) {
		err_set(err, "header jwk is not trusted: no trusted_certs_paths configured");
		return NULL;
	}
	json_t *x5c = json_object_get(jwk, "x5c");
	if (!json_is_array(x5c))
		x5c = json_object_get(header, "x5c");
	if (!json_is_array(x5c) || json_array_size(x5c) == 0) {
		err_set(err, "header jwk has no x5c certificate chain");
		return NULL;
	}
	uint8_t d[32];
	if (header_digest) /* the header holds the chain (jwk.x5c or x5c): its bytes name it */
		memcpy(d, header_digest, sizeof(d));
	else if (chain_digest(x5c, d, err) != 0)
		return NULL;
	struct endorsed *en = NULL;
	EVP_PKEY *key = NULL;
	if (!vcache_get(v->chains, d, (double)time(NULL), (void **)&en, until)) {
		EVP_PKEY *lk = verify_chain(v, x5c, until, err);
		if (!lk || (en = endorsed_new(lk)) == NULL) {
			EVP_PKEY_free(lk);
			if (lk)
				err_set(err, "out of memory");
			return NULL;
		}
		if (*until > 0)
			vcache_put(v->chains, d, *until, endorsed_copy(en));
	}
	if (en->jwk && same_public_jwk(jwk, en->jwk)) {
		if (EVP_PKEY_up_ref(en->key) == 1)
			key = en->key;
		else
			err_set(err, "out of memory");
	} else if ((key = jwk_to_pkey(jwk, err)) != NULL && pkey_public_equal(en->key, key) != 1) {
		err_set(err, "x5c leaf certificate key differs from the header jwk");
		EVP_PKEY_free(key);
		key = NULL;
	}
	endorsed_drop(en);
	return key;
}

static int alg_acceptable(const char *alg)
{
	static const char *const ok[] = {"ES256", "ES384", "ES512", "RS256", "RS384",
	                                 "RS512", "PS256", "PS384", "PS512", "EdDSA"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (strcmp(alg, ok[i]) == 0)
			return 1;
	return 0;
}

/* The decoded header of token (new reference, never modified by anyone), from the header
 * memo when the same header segment was decoded before; *hashed says whether d holds the
 * segment's SHA-256. */
static json_t *header_of(struct kbs_token_verifier *v, const char *token, uint8_t d[HASH_MAX],
                         bool *hashed, struct err *err)
{
	const char *d1 = strchr(token, '.');
	json_t *h = NULL;
	*hashed = d1 && hash_digest(HASH_SHA256, token, (size_t)(d1 - token), d) == 32;
	if (!*hashed)
		return jws_header(token, err);
	if (vcache_get(v->headers, d, 0, (void **)&h, NULL))
		return h;
	if ((h = jws_header(token, err)) != NULL)
		vcache_put(v->headers, d, INFINITY, json_incref(h));
	return h;
}

/* The whole check of §4.2, with no memo of its result: the claims (new reference), and in *until
 * the time up to which the result may be reused (0: never, the key came from the refreshed JWK
 * sets). */
static json_t *verify_full(struct kbs_token_verifier *v, const char *token, double now,
                           double *until, struct err *err)
{
	json_t *hdr = NULL, *payload = NULL, *owned_jwk = NULL;
	EVP_PKEY *key = NULL;
	const json_t *jwk = NULL;
	uint8_t hd[HASH_MAX];
	bool hashed = false;
	*until = 0;
	if ((hdr = header_of(v, token, hd, &hashed, err)) == NULL)
		return NULL;
	json_t *hjwk = json_object_get(hdr, "jwk");
	const char *kid = json_string_value(json_object_get(hdr, "kid"));
	if (json_is_object(hjwk)) {
		jwk = hjwk;
		if (v->insecure_header_jwk) {
			key = jwk_to_pkey(jwk, err);
			*until = INFINITY;
		} else if ((key = endorsed_key(v, jwk, hdr, hashed ? hd : NULL, until, err)) ==
		               NULL &&
		           v->jwks) {
			/* not endorsed by a chain, but perhaps one of the trusted sets' keys (an
			 * AS's JWKS fetched from its port): trusted as a kid lookup would be */
			if ((owned_jwk = kbs_jwks_find_key(v->jwks, hjwk, NULL)) != NULL)
				key = jwk_to_pkey(jwk = owned_jwk, err);
			else if (err) {
				char why[ERR_MSG_MAX];
				snprintf(why, sizeof(why), "%s", err->msg);
				err_set(err, "%.900s, and it is not a key of trusted_jwk_sets",
				        why);
			}
		}
	} else if (kid) {
		if (!v->jwks)
			err_set(err,
			        "token names kid \"%.64s\" but no trusted_jwk_sets are configured",
			        kid);
		else if ((owned_jwk = kbs_jwks_find(v->jwks, kid, err)) != NULL)
			key = jwk_to_pkey(jwk = owned_jwk, err);
	} else {
		err_set(err, "token header has neither jwk nor kid");
	}
	if (!key)
		goto fail;
	const char *alg = json_string_value(json_object_get(jwk, "alg"));
	if (!alg) {
		err_set(err, "the verification key has no `alg`");
		goto fail;
	}
	if (!alg_acceptable(alg)) {
		err_set(err, "algorithm %.32s is not accepted for attestation tokens", alg);
		goto fail;
	}
	if (jws_verify_with_header(token, hdr, key, alg, &payload, err) != 0)
		goto fail;
	json_t *exp = json_object_get(payload, "exp");
	if (!json_is_number(exp)) {
		err_set(err, "token has no exp claim");
		goto fail;
	}
	if (now > json_number_value(exp) + EXP_LEEWAY) {
		err_set(err, "token expired");
		goto fail;
	}
	if (owned_jwk) /* a key of the JWK sets: those are refreshed, so never reused */
		*until = 0;
	else if (*until > 0 && json_number_value(exp) + EXP_LEEWAY < *until)
		*until = json_number_value(exp) + EXP_LEEWAY;
	EVP_PKEY_free(key);
	json_decref(owned_jwk);
	json_decref(hdr);
	return payload;
fail:
	*until = 0;
	EVP_PKEY_free(key);
	json_decref(owned_jwk);
	json_decref(hdr);
	json_decref(payload);
	return NULL;
}

json_t *kbs_token_verify(struct kbs_token_verifier *v, const char *token, struct err *err)
{
	json_t *payload = NULL;
	double now = (double)time(NULL), until = 0;
	uint8_t d[HASH_MAX];
	int memo = hash_digest(HASH_SHA256, token, strlen(token), d) == 32;
	if (memo && vcache_get(v->tokens, d, now, (void **)&payload, NULL))
		return payload;
	if ((payload = verify_full(v, token, now, &until, err)) == NULL)
		return NULL;
	if (memo && until > 0) { /* endorsed by a chain, or trusted outright */
		json_t *copy = json_deep_copy(payload);
		if (copy)
			vcache_put(v->tokens, d, until, copy);
	}
	return payload;
}

json_t *kbs_token_verify_once(struct kbs_token_verifier *v, const char *token, double *until,
                              struct err *err)
{
	return verify_full(v, token, (double)time(NULL), until, err);
}

/* RFC 6901 JSON pointer; borrowed result or NULL. */
static json_t *json_pointer(const json_t *doc, const char *ptr)
{
	if (*ptr == 0)
		return (json_t *)doc;
	if (*ptr != '/')
		return NULL;
	const json_t *cur = doc;
	const char *p = ptr + 1;
	char tok[256];
	for (;;) {
		size_t n = 0;
		while (*p && *p != '/') {
			char c = *p++;
			if (c == '~') {
				if (*p == '0')
					c = '~';
				else if (*p == '1')
					c = '/';
				else
					return NULL;
				p++;
			}
			if (n + 1 >= sizeof(tok))
				return NULL;
			tok[n++] = c;
		}
		tok[n] = 0;
		if (json_is_object(cur)) {
			cur = json_object_get(cur, tok);
		} else if (json_is_array(cur)) {
			char *end;
			unsigned long idx = strtoul(tok, &end, 10);
			if (!n || *end)
				return NULL;
			cur = json_array_get(cur, idx);
		} else {
			return NULL;
		}
		if (!cur)
			return NULL;
		if (!*p)
			return (json_t *)cur;
		p++;
	}
}

static const char *const std_paths[] = {
    "/tdx/attester_runtime_data/tee-pubkey",
    "/tdx/attester_user_data/tee-pubkey",
    "/customized_claims/runtime_data/tee-pubkey",
    "/submods/cpu0/ear.veraison.annotated-evidence/runtime_data_claims/tee-pubkey",
    "/tee-pubkey",
};

json_t *kbs_token_teepubkey(struct kbs_token_verifier *v, const json_t *claims, struct err *err)
{
	json_t *found = NULL;
	for (size_t i = 0; !found && v && i < v->extra_paths.n; i++)
		found = json_pointer(claims, v->extra_paths.v[i]);
	for (size_t i = 0; !found && i < sizeof(std_paths) / sizeof(std_paths[0]); i++)
		found = json_pointer(claims, std_paths[i]);
	if (!found) {
		err_set(err, "no tee-pubkey in the token claims");
		return NULL;
	}
	return kbs_teepubkey_parse(found, err);
}
