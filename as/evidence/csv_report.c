/*
 * csv_report: parse Hygon CSV certificates and attestation reports and check their SM2/SM3
 * signatures (layouts and chain in csv_report.h). The JSON evidence is rebuilt into the exact
 * byte layouts before anything is checked: a certificate's signature covers its body bytes,
 * so every field the JSON gives must land at its offset with its width, and a missing or
 * oversized field is refused rather than zero-filled.
 */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <stdlib.h>
#include <string.h>

#include "as/evidence/csv_report.h"
#include "b64.h"

#define CSV_MAX_EVENTLOG (1024 * 1024)

static const uint8_t ext_magic[16] = "ATTESTATION_EXT";

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* A 72-byte little-endian SM2 coordinate: the low 32 bytes reversed; the rest must be 0. */
static int coord(const uint8_t *p, uint8_t out[32])
{
	for (size_t i = 32; i < 72; i++)
		if (p[i] != 0)
			return -1;
	for (size_t i = 0; i < 32; i++)
		out[i] = p[31 - i];
	return 0;
}

/* The public key at p: group u32, x[72], y[72]; then uid_size u16 and user_id[254] at uid. */
static int key_parse(const uint8_t *p, const uint8_t *uid, uint32_t usage, struct csv_key *k,
                     const char *what, struct err *err)
{
	memset(k, 0, sizeof(*k));
	k->usage = usage;
	if (le32(p) != CSV_GROUP_SM2_256)
		return err_set(err, "CSV %s key: curve group %u is not SM2-256 (3)", what, le32(p));
	if (coord(p + 4, k->x) < 0 || coord(p + 76, k->y) < 0)
		return err_set(err, "CSV %s key: a coordinate is longer than 32 bytes", what);
	k->uid_size = le16(uid);
	if (k->uid_size > sizeof(k->uid))
		return err_set(err, "CSV %s: uid_size %u exceeds the 254-byte user id", what,
		               k->uid_size);
	memcpy(k->uid, uid + 2, sizeof(k->uid));
	return 0;
}

int csv_ca_cert_parse(const uint8_t *buf, size_t len, struct csv_ca_cert *out, struct err *err)
{
	memset(out, 0, sizeof(*out));
	if (buf == NULL || len != CSV_CA_CERT_LEN)
		return err_set(err, "CSV CA certificate is %zu bytes, expected %d", len,
		               CSV_CA_CERT_LEN);
	memcpy(out->raw, buf, len);
	out->ver = le32(buf);
	if (key_parse(buf + 64, buf + 212, le32(buf + 36), &out->key, "CA certificate", err) < 0)
		return -1;
	memcpy(out->sig, buf + CSV_CA_BODY_LEN, CSV_SIG_LEN);
	return 0;
}

int csv_cert_parse(const uint8_t *buf, size_t len, struct csv_cert *out, struct err *err)
{
	memset(out, 0, sizeof(*out));
	if (buf == NULL || len != CSV_CERT_LEN)
		return err_set(err, "CSV certificate is %zu bytes, expected %d", len, CSV_CERT_LEN);
	memcpy(out->raw, buf, len);
	out->ver = le32(buf);
	out->fw_major = buf[4];
	out->fw_minor = buf[5];
	out->algo = le32(buf + 12);
	if (key_parse(buf + 16, buf + 164, le32(buf + 8), &out->key, "certificate", err) < 0)
		return -1;
	for (int i = 0; i < 2; i++) {
		const uint8_t *s = buf + CSV_CERT_BODY_LEN + (size_t)i * 520;
		out->sigs[i].usage = le32(s);
		out->sigs[i].algo = le32(s + 4);
		memcpy(out->sigs[i].sig, s + 8, CSV_SIG_LEN);
	}
	return 0;
}

int csv_hsk_cek_parse(const uint8_t *buf, size_t len, struct csv_ca_cert *hsk, struct csv_cert *cek,
                      struct err *err)
{
	if (buf == NULL || len != CSV_HSK_CEK_LEN)
		return err_set(err, "HSK/CEK file is %zu bytes, expected %d (HSK %d + CEK %d)", len,
		               CSV_HSK_CEK_LEN, CSV_CA_CERT_LEN, CSV_CERT_LEN);
	if (csv_ca_cert_parse(buf, CSV_CA_CERT_LEN, hsk, err) < 0)
		return err_prefix(err, "HSK");
	if (csv_cert_parse(buf + CSV_CA_CERT_LEN, CSV_CERT_LEN, cek, err) < 0)
		return err_prefix(err, "CEK");
	return 0;
}

/* Undo the v1 mask: byte i of a field XOR byte i%4 of anonce (LE); fields are 4-aligned. */
static void unmask(uint8_t *dst, const uint8_t *src, size_t n, uint32_t anonce)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = src[i] ^ (uint8_t)(anonce >> (8 * (i % 4)));
}

int csv_report_parse(const uint8_t magic[16], uint32_t flags, const uint8_t *buf, size_t len,
                     struct csv_report *out, struct err *err)
{
	static const uint8_t zero[16];

	memset(out, 0, sizeof(*out));
	if (buf == NULL || len != CSV_REPORT_LEN)
		return err_set(err, "CSV attestation report is %zu bytes, expected %d", len,
		               CSV_REPORT_LEN);
	if (memcmp(magic, zero, 16) == 0 || (memcmp(magic, ext_magic, 16) == 0 && flags == 0))
		out->version = 1;
	else if (memcmp(magic, ext_magic, 16) == 0 && flags == 1)
		out->version = 2;
	else
		return err_set(err, "CSV attestation report: unknown magic/flags (%u)", flags);
	memcpy(out->raw, buf, len);
	uint32_t a = out->version == 1 ? le32(buf + 188) : 0;
	out->anonce = a;
	unmask(out->user_pubkey_digest, buf, 32, a);
	unmask(out->vm_id, buf + 32, 16, a);
	unmask(out->vm_version, buf + 48, 16, a);
	unmask(out->report_data, buf + 64, 64, a);
	unmask(out->mnonce, buf + 128, 16, a);
	unmask(out->measure, buf + 144, 32, a);
	out->policy = le32(buf + 176) ^ a;
	out->sig_usage = le32(buf + 180) ^ a;
	out->sig_algo = le32(buf + 184) ^ a;
	if (out->version == 1) {
		out->signed_len = 180;
		memcpy(out->sig, buf + 192, CSV_SIG_LEN);
		return 0;
	}
	out->signed_len = 1024;
	out->build = le32(buf + 188);
	out->rtmr_version = le16(buf + 192);
	memcpy(out->reserved0, buf + 194, 14);
	for (int i = 0; i < 5; i++)
		memcpy(out->rtmr[i], buf + 208 + 32 * i, CSV_RTMR_LEN);
	memcpy(out->reserved1, buf + 368, 656);
	memcpy(out->sig, buf + 1024, CSV_SIG_LEN);
	return 0;
}

/* ---- JSON (csv-rs serde) to bytes ---- */

/* obj[path] where path is dot-separated; NULL when any step is missing. */
static const json_t *jpath(const json_t *obj, const char *path)
{
	char key[64];
	while (obj != NULL && *path) {
		size_t n = strcspn(path, ".");
		if (n >= sizeof(key))
			return NULL;
		memcpy(key, path, n);
		key[n] = 0;
		obj = json_object_get(obj, key);
		path += n + (path[n] == '.');
	}
	return obj;
}

/* An array of exactly n integers 0..255 at path into out. */
static int jbytes(const json_t *obj, const char *path, uint8_t *out, size_t n, const char *what,
                  struct err *err)
{
	const json_t *a = jpath(obj, path), *v;
	size_t i;

	if (!json_is_array(a) || json_array_size(a) != n)
		return err_set(err, "CSV %s `%s` must be an array of %zu byte values", what, path,
		               n);
	json_array_foreach(a, i, v)
	{
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 255)
			return err_set(err, "CSV %s `%s`[%zu] is not a byte value", what, path, i);
		out[i] = (uint8_t)json_integer_value(v);
	}
	return 0;
}

/* An integer 0..2^(8*width)-1 at path, written little-endian. */
static int jint(const json_t *obj, const char *path, uint8_t *out, int width, const char *what,
                struct err *err)
{
	const json_t *v = jpath(obj, path);
	json_int_t max = width == 4 ? 0xffffffffLL : (1LL << (8 * width)) - 1;

	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
		return err_set(err, "CSV %s `%s` must be an integer of %d bytes", what, path,
		               width);
	for (int i = 0; i < width; i++)
		out[i] = (uint8_t)((uint64_t)json_integer_value(v) >> (8 * i));
	return 0;
}

/* An SM2 key {g, x[72], y[72]} at path into p[0..148). */
static int jkey(const json_t *obj, const char *path, uint8_t *p, const char *what, struct err *err)
{
	char k[64];
	snprintf(k, sizeof(k), "%s.g", path);
	if (jint(obj, k, p, 4, what, err) < 0)
		return -1;
	snprintf(k, sizeof(k), "%s.x", path);
	if (jbytes(obj, k, p + 4, 72, what, err) < 0)
		return -1;
	snprintf(k, sizeof(k), "%s.y", path);
	return jbytes(obj, k, p + 76, 72, what, err);
}

/* {r[72], s[72]} at path into p[0..144). */
static int jsig(const json_t *obj, const char *path, uint8_t *p, const char *what, struct err *err)
{
	char k[64];
	snprintf(k, sizeof(k), "%s.r", path);
	if (jbytes(obj, k, p, 72, what, err) < 0)
		return -1;
	snprintf(k, sizeof(k), "%s.s", path);
	return jbytes(obj, k, p + 72, 72, what, err);
}

/* A csv-rs ca::Certificate object (the HSK of cert_chain.hsk_cek) into its 832 bytes. */
static int ca_cert_from_json(const json_t *c, struct csv_ca_cert *out, const char *what,
                             struct err *err)
{
	uint8_t b[CSV_CA_CERT_LEN] = {0};

	if (!json_is_object(c))
		return err_set(err, "CSV %s must be an object", what);
	if (jint(c, "body.preamble.ver", b, 4, what, err) < 0 ||
	    jbytes(c, "body.preamble.data.kid", b + 4, 16, what, err) < 0 ||
	    jbytes(c, "body.preamble.data.sid", b + 20, 16, what, err) < 0 ||
	    jint(c, "body.preamble.data.usage", b + 36, 4, what, err) < 0 ||
	    jbytes(c, "body.preamble.data.reserved", b + 40, 24, what, err) < 0 ||
	    jkey(c, "body.pubkey", b + 64, what, err) < 0 ||
	    jint(c, "body.uid_size", b + 212, 2, what, err) < 0 ||
	    jbytes(c, "body.user_id", b + 214, 254, what, err) < 0 ||
	    jbytes(c, "body.reserved", b + 468, 108, what, err) < 0 ||
	    jsig(c, "signature", b + 576, what, err) < 0 ||
	    jbytes(c, "_reserved", b + 720, 112, what, err) < 0)
		return -1;
	if (csv_ca_cert_parse(b, sizeof(b), out, err) < 0)
		return err_prefix(err, "%s", what);
	return 0;
}

/* A csv-rs csv::Certificate object (CEK, PEK) into its 2084 bytes. */
static int cert_from_json(const json_t *c, struct csv_cert *out, const char *what, struct err *err)
{
	uint8_t b[CSV_CERT_LEN] = {0};
	const json_t *sigs = json_object_get(c, "sigs");

	if (!json_is_object(c))
		return err_set(err, "CSV %s must be an object", what);
	if (jint(c, "body.ver", b, 4, what, err) < 0 ||
	    jint(c, "body.data.firmware.major", b + 4, 1, what, err) < 0 ||
	    jint(c, "body.data.firmware.minor", b + 5, 1, what, err) < 0 ||
	    jint(c, "body.data.reserved1", b + 6, 2, what, err) < 0 ||
	    jint(c, "body.data.pubkey.usage", b + 8, 4, what, err) < 0 ||
	    jint(c, "body.data.pubkey.algo", b + 12, 4, what, err) < 0 ||
	    jkey(c, "body.data.pubkey.key", b + 16, what, err) < 0 ||
	    jint(c, "body.data.uid_size", b + 164, 2, what, err) < 0 ||
	    jbytes(c, "body.data.user_id", b + 166, 254, what, err) < 0 ||
	    jbytes(c, "body.data.sid", b + 420, 16, what, err) < 0 ||
	    jbytes(c, "body.data.reserved2", b + 436, 608, what, err) < 0)
		return -1;
	if (!json_is_array(sigs) || json_array_size(sigs) != 2)
		return err_set(err, "CSV %s `sigs` must be an array of 2 signatures", what);
	for (size_t i = 0; i < 2; i++) {
		const json_t *s = json_array_get(sigs, i);
		uint8_t *p = b + CSV_CERT_BODY_LEN + i * 520;
		if (jint(s, "usage", p, 4, what, err) < 0 ||
		    jint(s, "algo", p + 4, 4, what, err) < 0 ||
		    jsig(s, "signature", p + 8, what, err) < 0 ||
		    jbytes(s, "_reserved", p + 152, 368, what, err) < 0)
			return err_prefix(err, "sigs[%zu]", i);
	}
	if (csv_cert_parse(b, sizeof(b), out, err) < 0)
		return err_prefix(err, "%s", what);
	return 0;
}

static int serial_from_json(const json_t *sn, char out[CSV_SERIAL_LEN + 1], struct err *err)
{
	const json_t *v;
	size_t i, n = json_array_size(sn);

	if (!json_is_array(sn) || n == 0 || n > CSV_SERIAL_LEN)
		return err_set(err, "CSV evidence `serial_number` must be 1 to %d byte values",
		               CSV_SERIAL_LEN);
	memset(out, 0, CSV_SERIAL_LEN + 1);
	json_array_foreach(sn, i, v)
	{
		json_int_t c = json_integer_value(v);
		if (!json_is_integer(v) || c < 0 || c > 126 || (c != 0 && c < 32))
			return err_set(
			    err, "CSV evidence `serial_number`[%zu] is not printable ASCII", i);
		out[i] = (char)c;
	}
	/* Trustee trims trailing NULs; an embedded NUL with text after it is refused. */
	size_t len = strlen(out);
	for (i = len; i < n; i++)
		if (json_integer_value(json_array_get(sn, i)) != 0)
			return err_set(err, "CSV evidence `serial_number` has a NUL inside");
	if (len == 0)
		return err_set(err, "CSV evidence `serial_number` is empty");
	return 0;
}

int csv_evidence_from_json(const json_t *ev, struct csv_evidence *out, struct err *err)
{
	const json_t *ar = json_object_get(ev, "attestation_report");
	const json_t *cc = json_object_get(ev, "cert_chain"), *hc, *el;
	uint8_t magic[16];
	uint8_t *data = malloc(CSV_REPORT_LEN);

	memset(out, 0, sizeof(*out));
	if (data == NULL)
		return err_set(err, "out of memory");
	if (!json_is_object(ev) || !json_is_object(ar) || !json_is_object(cc)) {
		free(data);
		return err_set(err, "CSV evidence needs `attestation_report` and `cert_chain` "
		                    "objects");
	}
	int rc = jbytes(ar, "magic", magic, 16, "attestation_report", err) < 0 ||
	                 jint(ar, "flags", (uint8_t *)&(uint32_t){0}, 4, "attestation_report",
	                      err) < 0 ||
	                 jbytes(ar, "data", data, CSV_REPORT_LEN, "attestation_report", err) < 0
	             ? -1
	             : 0;
	if (rc == 0)
		rc = csv_report_parse(magic,
		                      (uint32_t)json_integer_value(json_object_get(ar, "flags")),
		                      data, CSV_REPORT_LEN, &out->report, err);
	free(data);
	if (rc < 0)
		return -1;
	if (cert_from_json(json_object_get(cc, "pek"), &out->pek, "PEK", err) < 0)
		return -1;
	hc = json_object_get(cc, "hsk_cek");
	if (hc != NULL && !json_is_null(hc)) {
		if (ca_cert_from_json(json_object_get(hc, "hsk"), &out->hsk, "HSK", err) < 0 ||
		    cert_from_json(json_object_get(hc, "cek"), &out->cek, "CEK", err) < 0)
			return -1;
		out->has_hsk_cek = 1;
	}
	if (serial_from_json(json_object_get(ev, "serial_number"), out->serial, err) < 0)
		return -1;
	el = json_object_get(ev, "cc_eventlog");
	if (el != NULL && !json_is_null(el)) {
		const char *s = json_string_value(el);
		if (s == NULL || strlen(s) > CSV_MAX_EVENTLOG * 4 / 3 + 4 ||
		    b64_decode(s, strlen(s), B64_STD, &out->cc_eventlog, &out->cc_eventlog_len) < 0)
			return err_set(err,
			               "CSV evidence `cc_eventlog` must be base64 of at most %d "
			               "bytes",
			               CSV_MAX_EVENTLOG);
	}
	return 0;
}

int csv_evidence_parse(const uint8_t *buf, size_t len, struct csv_evidence *out, struct err *err)
{
	json_error_t je;
	json_t *ev;
	int rc;

	memset(out, 0, sizeof(*out));
	if (buf == NULL)
		return err_set(err, "CSV evidence is empty");
	ev = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &je);
	if (ev == NULL)
		return err_set(err, "CSV evidence is not JSON: %s", je.text);
	rc = csv_evidence_from_json(ev, out, err);
	json_decref(ev);
	if (rc < 0)
		csv_evidence_clear(out);
	return rc;
}

void csv_evidence_clear(struct csv_evidence *ev)
{
	free(ev->cc_eventlog);
	ev->cc_eventlog = NULL;
	ev->cc_eventlog_len = 0;
}

/* ---- SM2 with SM3 ---- */

static EVP_PKEY *sm2_key(const struct csv_key *k)
{
	uint8_t pt[65];
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "SM2", NULL);
	EVP_PKEY *pkey = NULL;

	pt[0] = 4;
	memcpy(pt + 1, k->x, 32);
	memcpy(pt + 33, k->y, 32);
	if (bld == NULL || ctx == NULL ||
	    !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "SM2", 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt)) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		pkey = NULL;
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	return pkey;
}

/* r ‖ s (72 bytes each, LE, upper 40 bytes zero) as a DER ECDSA-Sig-Value. */
static int sig_der(const uint8_t sig[CSV_SIG_LEN], uint8_t **der)
{
	uint8_t r[32], s[32];
	ECDSA_SIG *es;
	BIGNUM *br, *bs;
	int n;

	if (coord(sig, r) < 0 || coord(sig + 72, s) < 0)
		return -1;
	es = ECDSA_SIG_new();
	br = BN_bin2bn(r, 32, NULL);
	bs = BN_bin2bn(s, 32, NULL);
	if (es == NULL || br == NULL || bs == NULL || !ECDSA_SIG_set0(es, br, bs)) {
		BN_free(br);
		BN_free(bs);
		ECDSA_SIG_free(es);
		return -1;
	}
	*der = NULL;
	n = i2d_ECDSA_SIG(es, der);
	ECDSA_SIG_free(es);
	return n;
}

int csv_sm2_verify(const struct csv_key *signer, const uint8_t *msg, size_t len,
                   const uint8_t sig[CSV_SIG_LEN], struct err *err)
{
	uint8_t *der = NULL;
	int dlen = sig_der(sig, &der), ok = 0;
	EVP_PKEY *pkey = sm2_key(signer);
	EVP_PKEY_CTX *pctx = pkey ? EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL) : NULL;
	EVP_MD_CTX *mctx = EVP_MD_CTX_new();

	if (dlen <= 0) {
		ok = -1;
		err_set(err, "signature halves are longer than 32 bytes");
	} else if (pkey == NULL) {
		ok = -1;
		err_set(err, "the signing key is not a point on SM2");
	} else if (pctx != NULL && mctx != NULL &&
	           EVP_PKEY_CTX_set1_id(pctx, signer->uid, signer->uid_size) > 0) {
		EVP_MD_CTX_set_pkey_ctx(mctx, pctx);
		if (EVP_DigestVerifyInit(mctx, NULL, EVP_sm3(), NULL, pkey) > 0 &&
		    EVP_DigestVerify(mctx, der, (size_t)dlen, msg, len) == 1)
			ok = 1;
	}
	if (ok == 0)
		err_set(err, "SM2 signature does not verify");
	EVP_MD_CTX_free(mctx);
	EVP_PKEY_CTX_free(pctx);
	EVP_PKEY_free(pkey);
	OPENSSL_free(der);
	return ok == 1 ? 0 : -1;
}

/* A CSV-layout certificate signed by `signer`: some slot with the signer's usage and an SM2
 * algorithm verifies over the body. */
static int cert_signed_by(const struct csv_cert *c, const struct csv_key *signer, struct err *err)
{
	int tried = 0;
	for (int i = 0; i < 2; i++) {
		if (c->sigs[i].usage != signer->usage ||
		    (c->sigs[i].algo != CSV_ALGO_SM2_SA && c->sigs[i].algo != CSV_ALGO_SM2_DH))
			continue;
		tried++;
		if (csv_sm2_verify(signer, c->raw, CSV_CERT_BODY_LEN, c->sigs[i].sig, err) == 0)
			return 0;
	}
	if (tried == 0)
		return err_set(err, "no SM2 signature slot of usage 0x%04x", signer->usage);
	return -1;
}

int csv_verify_hrk_to_cek(const struct csv_ca_cert *hrk, const struct csv_ca_cert *hsk,
                          const struct csv_cert *cek, struct err *err)
{
	if (hrk->key.usage != CSV_USAGE_HRK)
		return err_set(err, "HRK has usage 0x%04x, not HRK", hrk->key.usage);
	if (csv_sm2_verify(&hrk->key, hrk->raw, CSV_CA_BODY_LEN, hrk->sig, err) < 0)
		return err_prefix(err, "HRK self-signature verification failed");
	if (hsk->key.usage != CSV_USAGE_HSK)
		return err_set(err, "HSK has usage 0x%04x, not HSK", hsk->key.usage);
	if (csv_sm2_verify(&hrk->key, hsk->raw, CSV_CA_BODY_LEN, hsk->sig, err) < 0)
		return err_prefix(err, "HSK signature by the HRK failed");
	if (cek->key.usage != CSV_USAGE_CEK)
		return err_set(err, "CEK has usage 0x%04x, not CEK", cek->key.usage);
	if (cert_signed_by(cek, &hsk->key, err) < 0)
		return err_prefix(err, "CEK signature by the HSK failed");
	return 0;
}

int csv_verify_chain(const struct csv_ca_cert *hrk, const struct csv_ca_cert *hsk,
                     const struct csv_cert *cek, const struct csv_cert *pek,
                     const struct csv_report *report, struct err *err)
{
	if (csv_verify_hrk_to_cek(hrk, hsk, cek, err) < 0)
		return -1;
	if (pek->key.usage != CSV_USAGE_PEK)
		return err_set(err, "PEK has usage 0x%04x, not PEK", pek->key.usage);
	if (cert_signed_by(pek, &cek->key, err) < 0)
		return err_prefix(err, "PEK signature by the CEK failed");
	if (csv_sm2_verify(&pek->key, report->raw, report->signed_len, report->sig, err) < 0)
		return err_prefix(err, "attestation report signature by the PEK failed");
	return 0;
}
