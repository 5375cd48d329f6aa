/*
 * sigstore_root: the trusted root (application/vnd.dev.sigstore.trustedroot+json;version=0.1)
 * into keys and certificate chains, plus the small JSON helpers the bundle parser shares.
 * Every key of a transparency or CT log must say when its validity starts: a root that does
 * not is refused whole, since a log key of unbounded past would vouch for back-dated entries.
 * A log key OpenSSL cannot read (an unknown algorithm) is refused too, not skipped.
 */
#include <jansson.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "rvps/extractors.h"
#include "rvps/extractors/sigstore.h"

#define ROOT_MAX_BYTES (1u << 20)
#define ROOT_MAX_ENTRIES 64
#define ROOT_MAX_CHAIN 8

int sigstore_json_b64(const void *v, uint8_t **out, size_t *len)
{
	const json_t *s = v;

	*out = NULL;
	if (!json_is_string(s))
		return -1;
	/* protobuf JSON bytes: either alphabet, padding optional, line breaks ignored */
	if (b64_decode(json_string_value(s), json_string_length(s), B64_STD | B64_LENIENT, out,
	               len) < 0) {
		*out = NULL;
		return -1;
	}
	return 0;
}

int sigstore_json_int64(const void *v, int64_t *out)
{
	const json_t *j = v;
	const char *s;
	char *end;
	long long x;

	if (json_is_integer(j)) {
		*out = json_integer_value(j);
		return 0;
	}
	if (!json_is_string(j))
		return -1;
	s = json_string_value(j);
	if (*s == '\0' || json_string_length(j) > 20)
		return -1;
	x = strtoll(s, &end, 10);
	if (*end != '\0')
		return -1;
	*out = x;
	return 0;
}

int sigstore_time_in(time_t t, time_t start, time_t end)
{
	return t >= start && (end == 0 || t <= end);
}

const struct sigstore_key *sigstore_find_key(const struct sigstore_key *keys, size_t n,
                                             const uint8_t *id, size_t id_len)
{
	for (size_t i = 0; i < n; i++)
		if (keys[i].id_len == id_len && memcmp(keys[i].id, id, id_len) == 0)
			return &keys[i];
	return NULL;
}

static int parse_validity(const json_t *vf, time_t *start, time_t *end, int need_start,
                          const char *what, struct err *err)
{
	const json_t *s = json_object_get(vf, "start"), *e = json_object_get(vf, "end");

	*start = 0;
	*end = 0;
	if (json_is_null(s)) /* protobuf JSON: null is the field's absence */
		s = NULL;
	if (json_is_null(e))
		e = NULL;
	if (s == NULL && need_start)
		return err_set(err, "trusted root: %s has no validFor.start", what);
	if (s != NULL &&
	    (!json_is_string(s) || rvps_parse_rfc3339(json_string_value(s), start) < 0))
		return err_set(err, "trusted root: %s validFor.start is not an RFC 3339 time",
		               what);
	if (e != NULL && (!json_is_string(e) || rvps_parse_rfc3339(json_string_value(e), end) < 0))
		return err_set(err, "trusted root: %s validFor.end is not an RFC 3339 time", what);
	return 0;
}

static int parse_key(const json_t *j, struct sigstore_key *k, const char *what, struct err *err)
{
	const json_t *pk = json_object_get(j, "publicKey"), *id = json_object_get(j, "logId");
	uint8_t *raw = NULL, *idb = NULL;
	const unsigned char *p;
	size_t len = 0, idlen = 0;

	if (!json_is_object(pk) ||
	    sigstore_json_b64(json_object_get(pk, "rawBytes"), &raw, &len) < 0)
		return err_set(err, "trusted root: %s has no publicKey.rawBytes", what);
	p = raw;
	k->pkey = d2i_PUBKEY(NULL, &p, (long)len);
	if (k->pkey == NULL) { /* PKCS1_RSA_PKCS1V5 roots carry a bare RSAPublicKey */
		p = raw;
		k->pkey = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, (long)len);
	}
	free(raw);
	if (k->pkey == NULL)
		return err_set(err, "trusted root: %s public key is not readable", what);
	if (!json_is_object(id) ||
	    sigstore_json_b64(json_object_get(id, "keyId"), &idb, &idlen) < 0 || idlen == 0 ||
	    idlen > sizeof(k->id)) {
		free(idb);
		return err_set(err, "trusted root: %s has no logId.keyId of at most 32 bytes",
		               what);
	}
	memcpy(k->id, idb, idlen);
	k->id_len = idlen;
	free(idb);
	return parse_validity(json_object_get(pk, "validFor"), &k->start, &k->end, 1, what, err);
}

static int parse_ca(const json_t *j, struct sigstore_ca *ca, const char *what, struct err *err)
{
	const json_t *certs = json_object_get(json_object_get(j, "certChain"), "certificates");

	if (!json_is_array(certs) || json_array_size(certs) == 0 ||
	    json_array_size(certs) > ROOT_MAX_CHAIN)
		return err_set(err, "trusted root: %s has no certChain.certificates (1..%d)", what,
		               ROOT_MAX_CHAIN);
	ca->certs = sk_X509_new_null();
	if (ca->certs == NULL)
		return err_set(err, "out of memory");
	for (size_t i = 0; i < json_array_size(certs); i++) {
		uint8_t *der = NULL;
		size_t len = 0;
		const unsigned char *p;
		X509 *x;

		if (sigstore_json_b64(json_object_get(json_array_get(certs, i), "rawBytes"), &der,
		                      &len) < 0)
			return err_set(err, "trusted root: %s certificate %zu is not base64", what,
			               i);
		p = der;
		x = d2i_X509(NULL, &p, (long)len);
		if (x == NULL || p != der + len) {
			X509_free(x);
			free(der);
			return err_set(err, "trusted root: %s certificate %zu is not DER X.509",
			               what, i);
		}
		free(der);
		if (!sk_X509_push(ca->certs, x)) {
			X509_free(x);
			return err_set(err, "out of memory");
		}
	}
	return parse_validity(json_object_get(j, "validFor"), &ca->start, &ca->end, 0, what, err);
}

#define PARSE_LIST(field, nfield, type, fn, member, label)                                         \
	do {                                                                                       \
		const json_t *a = json_object_get(j, member);                                      \
		if (a != NULL && !json_is_array(a)) {                                              \
			err_set(err, "trusted root: %s is not an array", member);                  \
			goto fail;                                                                 \
		}                                                                                  \
		if (json_array_size(a) > ROOT_MAX_ENTRIES) {                                       \
			err_set(err, "trusted root: more than %d %s", ROOT_MAX_ENTRIES, member);   \
			goto fail;                                                                 \
		}                                                                                  \
		r->field = calloc(json_array_size(a) + 1, sizeof(type));                           \
		if (r->field == NULL) {                                                            \
			err_set(err, "out of memory");                                             \
			goto fail;                                                                 \
		}                                                                                  \
		for (size_t i = 0; i < json_array_size(a); i++) {                                  \
			char what[48];                                                             \
			snprintf(what, sizeof(what), "%s %zu", label, i);                          \
			r->nfield++;                                                               \
			if (!json_is_object(json_array_get(a, i)) ||                               \
			    fn(json_array_get(a, i), &r->field[i], what, err) < 0) {               \
				if (!json_is_object(json_array_get(a, i)))                         \
					err_set(err, "trusted root: %s is not an object", what);   \
				goto fail;                                                         \
			}                                                                          \
		}                                                                                  \
	} while (0)

int sigstore_root_parse(const uint8_t *buf, size_t len, struct sigstore_root **out, struct err *err)
{
	struct sigstore_root *r = NULL;
	json_error_t jerr;
	const json_t *mt;
	json_t *j;

	*out = NULL;
	if (buf == NULL || len == 0 || len > ROOT_MAX_BYTES)
		return err_set(err, "trusted root: empty or larger than %u bytes", ROOT_MAX_BYTES);
	j = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL)
		return err_set(err, "trusted root: not JSON: %s", jerr.text);
	mt = json_object_get(j, "mediaType");
	if (!json_is_string(mt) ||
	    strncmp(json_string_value(mt), "application/vnd.dev.sigstore.trustedroot", 40) != 0) {
		err_set(err, "trusted root: mediaType is not a Sigstore trusted root");
		json_decref(j);
		return -1;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		err_set(err, "out of memory");
		goto fail;
	}
	PARSE_LIST(tlogs, n_tlogs, struct sigstore_key, parse_key, "tlogs", "tlog");
	PARSE_LIST(ctlogs, n_ctlogs, struct sigstore_key, parse_key, "ctlogs", "ctlog");
	PARSE_LIST(cas, n_cas, struct sigstore_ca, parse_ca, "certificateAuthorities",
	           "certificate authority");
	PARSE_LIST(tsas, n_tsas, struct sigstore_ca, parse_ca, "timestampAuthorities",
	           "timestamp authority");
	json_decref(j);
	*out = r;
	return 0;
fail:
	json_decref(j);
	sigstore_root_free(r);
	return -1;
}

void sigstore_root_free(struct sigstore_root *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n_tlogs; i++)
		EVP_PKEY_free(r->tlogs[i].pkey);
	for (size_t i = 0; i < r->n_ctlogs; i++)
		EVP_PKEY_free(r->ctlogs[i].pkey);
	for (size_t i = 0; i < r->n_cas; i++)
		sk_X509_pop_free(r->cas[i].certs, X509_free);
	for (size_t i = 0; i < r->n_tsas; i++)
		sk_X509_pop_free(r->tsas[i].certs, X509_free);
	free(r->tlogs);
	free(r->ctlogs);
	free(r->cas);
	free(r->tsas);
	free(r);
}
