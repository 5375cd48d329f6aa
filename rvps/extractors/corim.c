/*
 * corim extractor: the payload is standard base64 of a CoRIM (draft-ietf-rats-corim),
 * optionally wrapped in CBOR tags 500/502 as Trustee accepts. Reference values come from each
 * CoMID's reference triples exactly as Trustee names them:
 *   <class vendor>/<class model>/<mkey>/<mval name>/<mval serial-number> + "/digests" -> ["hex",
 * ...]
 *                                                                       + "/raw_bytes" -> "hex"
 * (absent parts left out; an mkey is its text, "claim<N>" for an integer, or the UUID's text;
 * a later value of the same name replaces an earlier one).
 *
 * Beyond Trustee, a signed CoRIM (COSE_Sign1, tag 18, bare or inside tag 502) is accepted
 * when one of extractors.corim_extractor.trusted_keys (PEM public keys or certificates, JWK
 * or JWK Set files; each key pins its algorithm, see common/cose.h) verifies it, its
 * protected header says content type application/rim+cbor and carries a corim-meta (label
 * 8) naming the signer, and the verification time lies inside the meta's validity. A
 * CoRIM's rim-validity (map key 4) must hold too, signed or not; the earlier not-after
 * becomes the values' expiration (through the provenance's "not_after"). With
 * require_signature an unsigned CoRIM is refused. The CoRIM's bytes only reach libcbor
 * through common/cborx.h, which bounds nesting and lengths first.
 */
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "cborx.h"
#include "config.h"
#include "cose.h"
#include "jose/jose.h"
#include "rvps/extractors.h"

#define TAG_CORIM 500
#define TAG_UNSIGNED 501
#define TAG_SIGNED 502
#define TAG_COMID 506
#define TAG_UUID 37
#define TAG_BYTES 560
#define RIM_CTYPE "application/rim+cbor"

struct corim_key {
	EVP_PKEY *pkey;
	char fpr[72]; /* "sha256:" + hex of the SubjectPublicKeyInfo */
	char *file;
};

struct corim_cfg {
	struct corim_key *keys;
	size_t n_keys;
	int require_signature;
};

/* ---- configuration ---- */

static void corim_cfg_free(void *p)
{
	struct corim_cfg *c = p;

	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n_keys; i++) {
		EVP_PKEY_free(c->keys[i].pkey);
		free(c->keys[i].file);
	}
	free(c->keys);
	free(c);
}

/* A JWK's public members only: the Veraison test key file also carries "d". */
static EVP_PKEY *jwk_public(const json_t *jwk, struct err *err)
{
	static const char *const pub[] = {"kty", "crv", "x", "y", "n", "e", NULL};
	json_t *p = json_object();
	EVP_PKEY *k;

	if (!json_is_object(jwk) || p == NULL) {
		json_decref(p);
		err_set(err, "a JWK must be a JSON object");
		return NULL;
	}
	for (size_t i = 0; pub[i] != NULL; i++)
		if (json_object_get(jwk, pub[i]) != NULL)
			json_object_set(p, pub[i], json_object_get(jwk, pub[i]));
	k = jwk_to_pkey(p, err);
	json_decref(p);
	return k;
}

static int add_key(struct corim_cfg *c, EVP_PKEY *k, const char *file, struct err *err)
{
	struct corim_key *nk = realloc(c->keys, (c->n_keys + 1) * sizeof(*nk));
	unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int derlen;
	char *hex;

	if (nk == NULL) {
		EVP_PKEY_free(k);
		return err_set(err, "out of memory");
	}
	c->keys = nk;
	if (cose_key_alg(k) == 0) {
		EVP_PKEY_free(k);
		return err_set(
		    err, "%s: the key is none of EC P-256, EC P-384, Ed25519, RSA >= 2048", file);
	}
	derlen = i2d_PUBKEY(k, &der);
	if (derlen <= 0 || EVP_Digest(der, (size_t)derlen, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    (hex = hex_encode(md, mdlen)) == NULL) {
		OPENSSL_free(der);
		EVP_PKEY_free(k);
		return err_set(err, "%s: cannot encode the public key", file);
	}
	OPENSSL_free(der);
	nk = &c->keys[c->n_keys++];
	nk->pkey = k;
	snprintf(nk->fpr, sizeof(nk->fpr), "sha256:%s", hex);
	free(hex);
	nk->file = strdup(file);
	return nk->file ? 0 : err_set(err, "out of memory");
}

/* One trusted_keys entry: a file holding a JWK, a JWK Set, or a PEM public key/certificate. */
static int load_key_file(struct corim_cfg *c, const char *path, struct err *err)
{
	size_t len = 0, i = 0;
	char *text = file_read_all(path, &len, err);
	json_error_t jerr;
	json_t *j, *keys, *one;
	EVP_PKEY *k;

	if (text == NULL)
		return err_prefix(err, "trusted key %s", path);
	while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t'))
		i++;
	if (i == len || text[i] != '{') {
		free(text);
		k = pem_read_public_key(path, err);
		if (k == NULL)
			return err_prefix(err, "trusted key %s", path);
		return add_key(c, k, path, err);
	}
	j = json_loadb(text, len, 0, &jerr);
	free(text);
	if (j == NULL)
		return err_set(err, "trusted key %s is not JSON: %s", path, jerr.text);
	keys = json_object_get(j, "keys");
	if (keys != NULL && !json_is_array(keys)) {
		json_decref(j);
		return err_set(err, "trusted key %s: \"keys\" must be an array", path);
	}
	json_array_foreach(keys, i, one)
	{
		if ((k = jwk_public(one, err)) == NULL || add_key(c, k, path, err) < 0) {
			json_decref(j);
			return err_prefix(err, "trusted key %s", path);
		}
	}
	if (keys == NULL && ((k = jwk_public(j, err)) == NULL || add_key(c, k, path, err) < 0)) {
		json_decref(j);
		return err_prefix(err, "trusted key %s", path);
	}
	json_decref(j);
	return 0;
}

static int corim_init(const json_t *config, void **state, struct err *err)
{
	static const char *const known[] = {"trusted_keys", "require_signature", NULL};
	struct corim_cfg *c = calloc(1, sizeof(*c));
	const json_t *keys = config ? json_object_get(config, "trusted_keys") : NULL;
	const json_t *one;
	size_t i;

	if (c == NULL)
		return err_set(err, "out of memory");
	if ((config != NULL && rvps_config_only(config, "corim_extractor", known, err) < 0) ||
	    rvps_config_bool(config, "corim_extractor", "require_signature", 0,
	                     &c->require_signature, err) < 0)
		goto fail;
	if (keys != NULL && !json_is_array(keys)) {
		err_set(err, "trusted_keys must be an array of file names");
		goto fail;
	}
	json_array_foreach(keys, i, one)
	{
		if (!json_is_string(one)) {
			err_set(err, "trusted_keys must be an array of file names");
			goto fail;
		}
		if (load_key_file(c, json_string_value(one), err) < 0)
			goto fail;
	}
	if (c->require_signature && c->n_keys == 0) {
		err_set(err, "require_signature needs at least one of trusted_keys");
		goto fail;
	}
	*state = c;
	return 0;
fail:
	corim_cfg_free(c);
	return -1;
}

/* ---- CoMID to reference values ---- */

/* Path components, at most vendor/model/mkey/name/serial. */
struct path {
	char *part[5];
	int n;
};

static void path_clear(struct path *p, int from)
{
	for (int i = from; i < p->n; i++)
		free(p->part[i]);
	p->n = from < p->n ? from : p->n;
}

static int path_push(struct path *p, char *s, struct err *err)
{
	if (s == NULL)
		return err_set(err, "out of memory");
	p->part[p->n++] = s;
	return 0;
}

/* A text member as a path part; absent is fine, non-text is refused. */
static int push_text(struct path *p, const cbor_item_t *map, int64_t key, const char *what,
                     struct err *err)
{
	cbor_item_t *v;
	char *s;

	if (cborx_map_int(map, key, &v, err) < 0)
		return -1;
	if (v == NULL)
		return 0;
	if ((s = cborx_text(v)) == NULL)
		return err_set(err, "the %s is not a text string", what);
	return path_push(p, s, err);
}

static char *name_with(const struct path *p, const char *last)
{
	size_t n = strlen(last) + 1;
	char *s, *q;

	for (int i = 0; i < p->n; i++)
		n += strlen(p->part[i]) + 1;
	if ((s = q = malloc(n)) == NULL)
		return NULL;
	for (int i = 0; i < p->n; i++)
		q += sprintf(q, "%s/", p->part[i]);
	strcpy(q, last);
	return s;
}

static int push_mkey(struct path *p, const cbor_item_t *mkey, struct err *err)
{
	const cbor_item_t *uuid = cborx_untag(mkey, TAG_UUID);
	const uint8_t *u;
	size_t ulen;
	int64_t n;
	char buf[40];

	if (cbor_isa_string(mkey)) {
		char *s = cborx_text(mkey);
		return s ? path_push(p, s, err)
		         : err_set(err, "the mkey is not a valid text string");
	}
	if (cbor_isa_uint(mkey) && cborx_int(mkey, &n) == 0) {
		snprintf(buf, sizeof(buf), "claim%lld", (long long)n);
		return path_push(p, strdup(buf), err);
	}
	if (uuid != NULL) {
		if (cborx_bytes(uuid, &u, &ulen) < 0 || ulen != 16)
			return err_set(err, "a UUID mkey is not 16 bytes");
		snprintf(buf, sizeof(buf),
		         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		         u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11],
		         u[12], u[13], u[14], u[15]);
		return path_push(p, strdup(buf), err);
	}
	return 0; /* other key types (OIDs, ...) name nothing, as in Trustee */
}

static int put_value(json_t *out, const struct path *p, const char *last, json_t *v,
                     struct err *err)
{
	char *name = name_with(p, last);

	if (name == NULL || v == NULL || json_object_set_new(out, name, v) < 0) {
		free(name);
		if (v != NULL)
			json_decref(v);
		return err_set(err, "out of memory");
	}
	free(name);
	return 0;
}

static int digests_value(const cbor_item_t *digests, json_t **v, struct err *err)
{
	cbor_item_t **d;

	if (!cbor_isa_array(digests))
		return err_set(err, "digests is not an array");
	*v = json_array();
	d = cbor_array_handle(digests);
	for (size_t i = 0; *v != NULL && i < cbor_array_size(digests); i++) {
		const uint8_t *b;
		size_t blen;
		char *hex;

		if (!cbor_isa_array(d[i]) || cbor_array_size(d[i]) != 2 ||
		    cborx_bytes(cbor_array_handle(d[i])[1], &b, &blen) < 0) {
			json_decref(*v);
			return err_set(err, "a digest is not [algorithm, bytes]");
		}
		if ((hex = hex_encode(b, blen)) == NULL ||
		    json_array_append_new(*v, json_string(hex)) < 0) {
			free(hex);
			json_decref(*v);
			return err_set(err, "out of memory");
		}
		free(hex);
	}
	return *v ? 0 : err_set(err, "out of memory");
}

/* One measurement-map: its mkey and mval name/serial extend the environment's path. */
static int measurement(const cbor_item_t *m, struct path *p, json_t *out, struct err *err)
{
	cbor_item_t *mkey, *mval, *digests, *raw;
	int base = p->n, rc = -1;

	if (!cbor_isa_map(m) || cborx_map_int(m, 0, &mkey, err) < 0 ||
	    cborx_map_int(m, 1, &mval, err) < 0)
		return err_set(err, "a measurement is not a map");
	if (mval == NULL || !cbor_isa_map(mval))
		return err_set(err, "a measurement has no measurement-values map");
	if ((mkey != NULL && push_mkey(p, mkey, err) < 0) ||
	    push_text(p, mval, 11, "measurement name", err) < 0 ||
	    push_text(p, mval, 8, "serial number", err) < 0 ||
	    cborx_map_int(mval, 2, &digests, err) < 0 || cborx_map_int(mval, 4, &raw, err) < 0)
		goto out;
	if (digests != NULL) {
		json_t *v = NULL;
		if (digests_value(digests, &v, err) < 0 || put_value(out, p, "digests", v, err) < 0)
			goto out;
	}
	raw = cborx_untag(raw, TAG_BYTES);
	if (raw != NULL) {
		const uint8_t *b;
		size_t blen;
		char *hex;

		if (cborx_bytes(raw, &b, &blen) < 0 || (hex = hex_encode(b, blen)) == NULL) {
			err_set(err, "a raw value is not a byte string");
			goto out;
		}
		rc = put_value(out, p, "raw_bytes", json_string(hex), err);
		free(hex);
		if (rc < 0)
			goto out;
	}
	rc = 0;
out:
	path_clear(p, base);
	return rc;
}

static int reference_triple(const cbor_item_t *t, json_t *out, struct err *err)
{
	struct path p = {0};
	cbor_item_t *env, *claims, *class = NULL;
	int rc = -1;

	if (!cbor_isa_array(t) || cbor_array_size(t) != 2)
		return err_set(err, "a reference triple is not [environment, measurements]");
	env = cbor_array_handle(t)[0];
	claims = cbor_array_handle(t)[1];
	if (!cbor_isa_map(env) || !cbor_isa_array(claims))
		return err_set(err, "a reference triple is not [environment, measurements]");
	if (cborx_map_int(env, 0, &class, err) < 0)
		return -1;
	if (class != NULL && (!cbor_isa_map(class) || push_text(&p, class, 1, "vendor", err) < 0 ||
	                      push_text(&p, class, 2, "model", err) < 0)) {
		if (!cbor_isa_map(class))
			err_set(err, "a class is not a map");
		goto out;
	}
	for (size_t i = 0; i < cbor_array_size(claims); i++)
		if (measurement(cbor_array_handle(claims)[i], &p, out, err) < 0)
			goto out;
	rc = 0;
out:
	path_clear(&p, 0);
	return rc;
}

static int comid(const uint8_t *buf, size_t len, json_t *out, struct err *err)
{
	cbor_item_t *root = cborx_load(buf, len, err), *triples, *refs;
	int rc = -1;

	if (root == NULL)
		return err_prefix(err, "CoMID");
	if (cborx_map_int(root, 4, &triples, err) < 0 || triples == NULL ||
	    cborx_map_int(triples, 0, &refs, err) < 0) {
		err_set(err, "CoMID: no triples map");
		goto out;
	}
	if (refs != NULL && !cbor_isa_array(refs)) {
		err_set(err, "CoMID: reference-triples is not an array");
		goto out;
	}
	for (size_t i = 0; refs != NULL && i < cbor_array_size(refs); i++)
		if (reference_triple(cbor_array_handle(refs)[i], out, err) < 0) {
			err_prefix(err, "CoMID reference triple %zu", i);
			goto out;
		}
	rc = 0;
out:
	cbor_decref(&root);
	return rc;
}

/* ---- validity periods ---- */

static int meta_time(const cbor_item_t *it, int64_t *t)
{
	const cbor_item_t *in = cborx_untag(it, 1);
	return cborx_int(in != NULL ? in : it, t);
}

static void fmt_time(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 32, "%lld", (long long)t);
}

/* validity = {? 0: not-before, 1: not-after} (corim-meta's and rim-validity's shape) must
 * hold at now; its not-after, when earlier than one already there, becomes prov's
 * "not_after", which the RVPS takes as the values' expiration. `what` names it in errors. */
static int check_validity(const cbor_item_t *validity, time_t now, const char *what, json_t *prov,
                          struct err *err)
{
	cbor_item_t *nb = NULL, *na = NULL;
	int64_t t_nb = INT64_MIN, t_na = INT64_MAX;
	time_t old;
	char tb[32];

	if (cborx_map_int(validity, 0, &nb, err) < 0 || cborx_map_int(validity, 1, &na, err) < 0 ||
	    na == NULL || meta_time(na, &t_na) < 0 || (nb != NULL && meta_time(nb, &t_nb) < 0))
		return err_set(err, "%s is not {? 0: not-before, 1: not-after} times", what);
	if ((int64_t)now < t_nb) {
		fmt_time(t_nb, tb);
		return err_set(err, "the CoRIM is not valid before %s (%s)", tb, what);
	}
	if ((int64_t)now > t_na) {
		fmt_time(t_na, tb);
		return err_set(err, "the CoRIM expired at %s (%s)", tb, what);
	}
	if (prov != NULL) {
		const char *cur = json_string_value(json_object_get(prov, "not_after"));
		if (cur == NULL || rvps_parse_rfc3339(cur, &old) < 0 || (int64_t)old > t_na) {
			fmt_time(t_na, tb);
			json_object_set_new(prov, "not_after", json_string(tb));
		}
	}
	return 0;
}

/* An unsigned CoRIM (tag 501 around a corim-map): every CoMID's values into out, when its
 * rim-validity (key 4), if any, holds at ctx->now. */
static int unsigned_corim(const struct rvps_extract_ctx *ctx, const uint8_t *buf, size_t len,
                          json_t *out, struct err *err)
{
	cbor_item_t *root = cborx_load(buf, len, err), *map, *tags, *validity;
	int rc = -1;

	if (root == NULL)
		return -1;
	map = cborx_untag(root, TAG_UNSIGNED);
	if (map == NULL || !cbor_isa_map(map)) {
		err_set(err, "not an unsigned CoRIM (CBOR tag 501 around a map)");
		goto out;
	}
	if (cborx_map_int(map, 1, &tags, err) < 0 || cborx_map_int(map, 4, &validity, err) < 0)
		goto out;
	if (validity != NULL &&
	    check_validity(validity, ctx->now, "rim-validity", ctx->provenance, err) < 0)
		goto out;
	if (tags == NULL || !cbor_isa_array(tags)) {
		err_set(err, "the CoRIM has no tags array");
		goto out;
	}
	for (size_t i = 0; i < cbor_array_size(tags); i++) {
		cbor_item_t *t = cbor_array_handle(tags)[i], *m = cborx_untag(t, TAG_COMID);
		const uint8_t *b;
		size_t blen;

		if (m != NULL) {
			if (cborx_bytes(m, &b, &blen) < 0) {
				err_set(err, "CoRIM tag %zu: a CoMID must be a byte string", i);
				goto out;
			}
			if (comid(b, blen, out, err) < 0)
				goto out;
		} else if (cborx_bytes(t, &b, &blen) == 0) {
			/* an untagged byte string may hold a CoMID (Trustee tries it too);
			 * one that is not is skipped, not an error */
			json_t *tmp = json_object();
			struct err ignored;

			if (tmp != NULL && comid(b, blen, tmp, &ignored) == 0)
				json_object_update(out, tmp);
			json_decref(tmp);
		}
		/* CoSWID and other tags carry no reference triples */
	}
	rc = 0;
out:
	cbor_decref(&root);
	return rc;
}

/* ---- signed CoRIM ---- */

/* The protected header's corim-meta: the signer's name and the validity at `now`. */
static int check_meta(const struct cose_sign1 *s, time_t now, json_t *prov, struct err *err)
{
	cbor_item_t *m, *meta = NULL, *signer, *name, *validity;
	const uint8_t *b;
	size_t blen;
	char *signer_name = NULL;
	int rc = -1;

	if (cborx_map_int(s->protected, 8, &m, err) < 0)
		return -1;
	if (m == NULL)
		return err_set(err, "the signature's protected header has no corim-meta (signer)");
	if (cborx_bytes(m, &b, &blen) < 0 || (meta = cborx_load(b, blen, err)) == NULL)
		return err_set(err, "corim-meta is not a CBOR-encoded byte string");
	if (cborx_map_int(meta, 0, &signer, err) < 0 || signer == NULL ||
	    cborx_map_int(signer, 0, &name, err) < 0 || (signer_name = cborx_text(name)) == NULL) {
		err_set(err, "corim-meta names no signer");
		goto out;
	}
	if (cborx_map_int(meta, 1, &validity, err) < 0 ||
	    (validity != NULL &&
	     check_validity(validity, now, "corim-meta validity", prov, err) < 0))
		goto out;
	if (prov != NULL)
		json_object_set_new(prov, "signer", json_string(signer_name));
	rc = 0;
out:
	free(signer_name);
	cbor_decref(&meta);
	return rc;
}

static int check_ctype(const struct cose_sign1 *s, struct err *err)
{
	cbor_item_t *ct;
	char *t;
	int ok;

	if (cborx_map_int(s->protected, 3, &ct, err) < 0)
		return -1;
	t = cborx_text(ct);
	ok = t != NULL && strcmp(t, RIM_CTYPE) == 0;
	free(t);
	return ok ? 0 : err_set(err, "the signature's content type is not " RIM_CTYPE);
}

/* Verifies the COSE_Sign1 against the trusted keys; on success the payload is the CoRIM. */
static int signed_corim(const struct corim_cfg *c, const struct rvps_extract_ctx *ctx,
                        const uint8_t *buf, size_t len, json_t *out, struct err *err)
{
	struct cose_sign1 s;
	const struct corim_key *used = NULL;
	struct err last;
	int rc = -1;

	if (cose_sign1_parse(buf, len, &s, err) < 0)
		return -1;
	if (c == NULL || c->n_keys == 0) {
		err_set(err, "a signed CoRIM needs extractors.corim_extractor.trusted_keys");
		goto out;
	}
	err_set(&last, "no trusted key is for %s", cose_alg_name(s.alg));
	for (size_t i = 0; i < c->n_keys && used == NULL; i++)
		if (cose_key_alg(c->keys[i].pkey) == s.alg &&
		    cose_sign1_verify(&s, c->keys[i].pkey, &last) == 0)
			used = &c->keys[i];
	if (used == NULL) {
		err_set(err,
		        "the CoRIM signature does not verify with any of the %zu trusted keys "
		        "(last: %s)",
		        c->n_keys, last.msg);
		goto out;
	}
	if (check_ctype(&s, err) < 0 || check_meta(&s, ctx->now, ctx->provenance, err) < 0)
		goto out;
	if (ctx->provenance != NULL) {
		json_object_set_new(ctx->provenance, "signer_key", json_string(used->fpr));
		json_object_set_new(ctx->provenance, "signature_alg",
		                    json_string(cose_alg_name(s.alg)));
	}
	rc = unsigned_corim(ctx, s.payload, s.payload_len, out, err);
	if (rc < 0)
		err_prefix(err, "signed CoRIM payload");
out:
	cose_sign1_clear(&s);
	return rc;
}

static int corim_extract_ctx(const struct rvps_extract_ctx *ctx, const char *payload, size_t len,
                             json_t **out, struct err *err)
{
	const struct corim_cfg *c = ctx->state;
	uint8_t *raw = NULL, *fixed = NULL;
	const uint8_t *p;
	size_t raw_len = 0, n;
	int in_502 = 0, rc;
	json_t *values;

	*out = NULL;
	if (b64_decode(payload, len, B64_STD, &raw, &raw_len) < 0)
		return err_set(err, "corim extractor: the payload is not valid standard base64");
	/* Trustee drops leading tags 500 and 502 (two-byte tag heads d9 01f4 / d9 01f6) */
	p = raw;
	n = raw_len;
	while (n >= 3 && p[0] == 0xd9 && p[1] == 0x01 && (p[2] == 0xf4 || p[2] == 0xf6)) {
		in_502 |= p[2] == 0xf6;
		p += 3;
		n -= 3;
	}
	/* tag 502 may hold the COSE_Sign1 array without its own tag 18: add it back */
	if (in_502 && n > 0 && p[0] == 0x84) {
		if ((fixed = malloc(n + 1)) == NULL) {
			free(raw);
			return err_set(err, "out of memory");
		}
		fixed[0] = 0xd2;
		memcpy(fixed + 1, p, n);
		p = fixed;
		n++;
	}
	values = json_object();
	if (values == NULL)
		rc = err_set(err, "out of memory");
	else if (n > 0 && p[0] == 0xd2)
		rc = signed_corim(c, ctx, p, n, values, err);
	else if (c != NULL && c->require_signature)
		rc = err_set(err, "an unsigned CoRIM is refused: "
		                  "extractors.corim_extractor.require_signature is true");
	else
		rc = unsigned_corim(ctx, p, n, values, err);
	free(raw);
	free(fixed);
	if (rc < 0) {
		json_decref(values);
		return err_prefix(err, "corim extractor");
	}
	*out = values;
	return 0;
}

static int corim_extract(const char *payload, size_t len, json_t **out, struct err *err)
{
	struct rvps_extract_ctx ctx = {.state = NULL, .now = time(NULL), .provenance = NULL};

	return corim_extract_ctx(&ctx, payload, len, out, err);
}

const struct rvps_extractor rvps_extractor_corim = {
    .type = "corim",
    .config_key = "corim_extractor",
    .extract = corim_extract,
    .init = corim_init,
    .state_free = corim_cfg_free,
    .extract_ctx = corim_extract_ctx,
};
