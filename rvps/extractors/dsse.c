/*
 * dsse: parse a DSSE envelope, build its PAE, verify its signatures, and read the in-toto
 * statement inside (see dsse.h). Everything here reads untrusted JSON: sizes are capped
 * before any copy, every member's type is checked, and the payload is decoded once.
 */
#include "rvps/extractors/dsse.h"

#include <openssl/core_names.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"

#define DSSE_MAX_BYTES (4u << 20) /* an envelope larger than 4 MiB is refused */
#define INTOTO_MAX_SUBJECTS 4096

void dsse_free(struct dsse_envelope *e)
{
	if (e == NULL)
		return;
	free(e->payload_type);
	free(e->payload);
	for (size_t i = 0; i < e->n_sigs; i++)
		free(e->sigs[i].sig);
	memset(e, 0, sizeof(*e));
}

int dsse_from_json(const json_t *j, struct dsse_envelope *out, struct err *err)
{
	const json_t *pt, *pl, *sigs;
	size_t i;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(j))
		return err_set(err, "DSSE envelope: not a JSON object");
	pt = json_object_get(j, "payloadType");
	pl = json_object_get(j, "payload");
	sigs = json_object_get(j, "signatures");
	if (!json_is_string(pt) || json_string_length(pt) == 0)
		return err_set(err, "DSSE envelope: payloadType missing or not a string");
	if (!json_is_string(pl))
		return err_set(err, "DSSE envelope: payload missing or not a string");
	if (!json_is_array(sigs) || json_array_size(sigs) == 0)
		return err_set(err, "DSSE envelope: no signatures");
	if (json_array_size(sigs) > DSSE_MAX_SIGS)
		return err_set(err, "DSSE envelope: more than %d signatures", DSSE_MAX_SIGS);
	out->payload_type = strdup(json_string_value(pt));
	if (out->payload_type == NULL)
		return err_set(err, "out of memory");
	if (b64_decode(json_string_value(pl), json_string_length(pl), B64_STD, &out->payload,
	               &out->payload_len) < 0) {
		dsse_free(out);
		return err_set(err, "DSSE envelope: payload is not valid standard base64");
	}
	for (i = 0; i < json_array_size(sigs); i++) {
		const json_t *s = json_array_get(sigs, i), *sig = json_object_get(s, "sig");
		struct dsse_sig *d = &out->sigs[out->n_sigs];

		if (!json_is_object(s) || !json_is_string(sig)) {
			dsse_free(out);
			return err_set(err, "DSSE envelope: signature %zu has no \"sig\" string",
			               i);
		}
		if (b64_decode(json_string_value(sig), json_string_length(sig), B64_STD, &d->sig,
		               &d->len) < 0 ||
		    d->len == 0) {
			free(d->sig);
			d->sig = NULL;
			dsse_free(out);
			return err_set(err, "DSSE envelope: signature %zu is not valid base64", i);
		}
		out->n_sigs++;
	}
	return 0;
}

int dsse_parse(const uint8_t *buf, size_t len, struct dsse_envelope *out, struct err *err)
{
	json_error_t jerr;
	json_t *j;
	int rc;

	memset(out, 0, sizeof(*out));
	if (buf == NULL || len == 0)
		return err_set(err, "DSSE envelope: empty");
	if (len > DSSE_MAX_BYTES)
		return err_set(err, "DSSE envelope: larger than %u bytes", DSSE_MAX_BYTES);
	j = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL)
		return err_set(err, "DSSE envelope: not JSON: %s", jerr.text);
	rc = dsse_from_json(j, out, err);
	json_decref(j);
	return rc;
}

uint8_t *dsse_pae(const struct dsse_envelope *e, size_t *len)
{
	size_t tl = strlen(e->payload_type), cap = tl + e->payload_len + 64;
	uint8_t *p = malloc(cap);
	int n;

	if (p == NULL)
		return NULL;
	n = snprintf((char *)p, cap, "DSSEv1 %zu %s %zu ", tl, e->payload_type, e->payload_len);
	if (n < 0 || (size_t)n + e->payload_len > cap) {
		free(p);
		return NULL;
	}
	if (e->payload_len > 0)
		memcpy(p + n, e->payload, e->payload_len);
	*len = (size_t)n + e->payload_len;
	return p;
}

/* The digest a key pins; NULL for Ed25519 (pure). *ok = 0 for an unsupported key. */
static const EVP_MD *key_md(EVP_PKEY *key, int *ok)
{
	*ok = 1;
	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_ED25519:
		return NULL;
	case EVP_PKEY_RSA:
		return EVP_PKEY_get_bits(key) >= 2048 ? EVP_sha256() : (*ok = 0, NULL);
	case EVP_PKEY_EC:
		switch (EVP_PKEY_get_bits(key)) {
		case 256:
			return EVP_sha256();
		case 384:
			return EVP_sha384();
		case 521:
			return EVP_sha512();
		}
	}
	*ok = 0;
	return NULL;
}

int sig_verify_message(EVP_PKEY *key, const uint8_t *msg, size_t len, const uint8_t *sig,
                       size_t sig_len, struct err *err)
{
	EVP_MD_CTX *mc;
	const EVP_MD *md;
	int ok, rc;

	md = key_md(key, &ok);
	if (!ok)
		return err_set(err,
		               "the key is none of EC P-256/P-384/P-521, RSA >= 2048, Ed25519");
	mc = EVP_MD_CTX_new();
	if (mc == NULL)
		return err_set(err, "out of memory");
	rc = EVP_DigestVerifyInit(mc, NULL, md, NULL, key) == 1 &&
	     EVP_DigestVerify(mc, sig, sig_len, msg, len) == 1;
	EVP_MD_CTX_free(mc);
	return rc ? 0 : err_set(err, "the signature does not verify with the key");
}

int dsse_verify_sig(const struct dsse_envelope *e, size_t i, EVP_PKEY *key, struct err *err)
{
	size_t len;
	uint8_t *pae;
	int rc;

	if (i >= e->n_sigs)
		return err_set(err, "DSSE envelope: no signature %zu", i);
	pae = dsse_pae(e, &len);
	if (pae == NULL)
		return err_set(err, "out of memory");
	rc = sig_verify_message(key, pae, len, e->sigs[i].sig, e->sigs[i].len, err);
	free(pae);
	return rc;
}

/* Expected hex length of a known digest algorithm, 0 when unknown. */
static size_t digest_hex_len(const char *alg)
{
	static const struct {
		const char *name;
		size_t hexlen;
	} known[] = {{"sha256", 64},     {"sha384", 96},     {"sha512", 128},  {"sha224", 56},
	             {"sha1", 40},       {"sha3_256", 64},   {"sha3_384", 96}, {"sha3_512", 128},
	             {"sha512_224", 56}, {"sha512_256", 64}, {"gitCommit", 40}};

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(known[i].name, alg) == 0)
			return known[i].hexlen;
	return 0;
}

static int is_lower_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return n > 0 && n % 2 == 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* One subject's digests, in algorithm order, as an array of hex strings. */
static json_t *subject_digests(const json_t *dig, size_t idx, struct err *err)
{
	const char *algs[64], *k;
	json_t *v, *arr;
	size_t n = 0;

	if (!json_is_object(dig) || json_object_size(dig) == 0) {
		err_set(err, "in-toto statement: subject %zu has no digest", idx);
		return NULL;
	}
	if (json_object_size(dig) > 64) {
		err_set(err, "in-toto statement: subject %zu has more than 64 digests", idx);
		return NULL;
	}
	json_object_foreach((json_t *)dig, k, v)
	{
		size_t want = digest_hex_len(k);

		if (!json_is_string(v) ||
		    !is_lower_hex(json_string_value(v), json_string_length(v)) ||
		    (want != 0 && json_string_length(v) != want)) {
			err_set(err,
			        "in-toto statement: subject %zu digest \"%s\" is not lowercase hex "
			        "of the algorithm's length",
			        idx, k);
			return NULL;
		}
		algs[n++] = k;
	}
	qsort(algs, n, sizeof(algs[0]), cmp_str);
	arr = json_array();
	for (size_t i = 0; arr != NULL && i < n; i++)
		json_array_append(arr, json_object_get(dig, algs[i]));
	if (arr == NULL)
		err_set(err, "out of memory");
	return arr;
}

int intoto_statement_parse(const uint8_t *buf, size_t len, json_t **out, struct err *err)
{
	json_error_t jerr;
	json_t *j = NULL, *vals = NULL, *subj;
	const json_t *type;
	int rc = -1;

	*out = NULL;
	if (buf == NULL || len == 0 || len > DSSE_MAX_BYTES)
		return err_set(err, "in-toto statement: empty or larger than %u bytes",
		               DSSE_MAX_BYTES);
	j = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL)
		return err_set(err, "in-toto statement: not JSON: %s", jerr.text);
	type = json_object_get(j, "_type");
	if (!json_is_string(type) ||
	    (strcmp(json_string_value(type), "https://in-toto.io/Statement/v1") != 0 &&
	     strcmp(json_string_value(type), "https://in-toto.io/Statement/v0.1") != 0)) {
		err_set(err, "in-toto statement: _type is not https://in-toto.io/Statement/v1 or "
		             "v0.1");
		goto out;
	}
	subj = json_object_get(j, "subject");
	if (!json_is_array(subj) || json_array_size(subj) == 0) {
		err_set(err, "in-toto statement: no subject");
		goto out;
	}
	if (json_array_size(subj) > INTOTO_MAX_SUBJECTS) {
		err_set(err, "in-toto statement: more than %d subjects", INTOTO_MAX_SUBJECTS);
		goto out;
	}
	vals = json_object();
	if (vals == NULL) {
		err_set(err, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < json_array_size(subj); i++) {
		const json_t *s = json_array_get(subj, i), *name = json_object_get(s, "name");
		json_t *d;

		if (!json_is_string(name) || json_string_length(name) == 0) {
			err_set(err, "in-toto statement: subject %zu has no name", i);
			goto out;
		}
		if (json_object_get(vals, json_string_value(name)) != NULL) {
			err_set(err, "in-toto statement: subject \"%s\" is listed twice",
			        json_string_value(name));
			goto out;
		}
		d = subject_digests(json_object_get(s, "digest"), i, err);
		if (d == NULL)
			goto out;
		json_object_set_new(vals, json_string_value(name), d);
	}
	*out = vals;
	vals = NULL;
	rc = 0;
out:
	json_decref(vals);
	json_decref(j);
	return rc;
}
