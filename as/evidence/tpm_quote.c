/*
 * tpm: TPMS_ATTEST parsing and quote checks (see tpm.h). All TPM structures are
 * big-endian with 16-bit size prefixes; the reader below refuses to step past the end.
 */
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as/evidence/tpm_quote.h"
#include "b64.h"

#define TPM_GENERATED_VALUE 0xff544347u
#define TPM_ST_ATTEST_QUOTE 0x8018
#define TPM_ALG_RSASSA 0x0014
#define TPM_ALG_ECDSA 0x0018
#define TPM_ALG_SHA256 0x000b

struct rd {
	const uint8_t *p;
	size_t left;
	int bad;
};

static uint32_t rd_be(struct rd *r, int n)
{
	uint32_t v = 0;
	if (r->bad || r->left < (size_t)n) {
		r->bad = 1;
		return 0;
	}
	for (int i = 0; i < n; i++)
		v = v << 8 | r->p[i];
	r->p += n;
	r->left -= (size_t)n;
	return v;
}

static uint64_t rd_u64(struct rd *r)
{
	uint64_t hi = rd_be(r, 4);
	return hi << 32 | rd_be(r, 4);
}

static const uint8_t *rd_bytes(struct rd *r, size_t n)
{
	const uint8_t *p = r->p;
	if (r->bad || r->left < n) {
		r->bad = 1;
		return NULL;
	}
	r->p += n;
	r->left -= n;
	return p;
}

/* TPM2B: u16 size, then size bytes */
static const uint8_t *rd_tpm2b(struct rd *r, size_t *n)
{
	*n = rd_be(r, 2);
	return rd_bytes(r, *n);
}

int tpm_attest_parse(const uint8_t *buf, size_t len, struct tpm_attest *out, struct err *err)
{
	struct rd r = {buf, len, 0};
	size_t n;

	memset(out, 0, sizeof(*out));
	if (rd_be(&r, 4) != TPM_GENERATED_VALUE)
		return err_set(err, "TPM quote message does not start with TPM_GENERATED_VALUE");
	out->type = (uint16_t)rd_be(&r, 2);
	if (!r.bad && out->type != TPM_ST_ATTEST_QUOTE)
		return err_set(err, "TPM attest type 0x%04x is not a quote (0x8018)", out->type);
	rd_tpm2b(&r, &n); /* qualifiedSigner */
	out->extra_data = rd_tpm2b(&r, &out->extra_data_len);
	out->clock = rd_u64(&r);
	out->reset_count = rd_be(&r, 4);
	out->restart_count = rd_be(&r, 4);
	rd_be(&r, 1); /* safe */
	out->firmware_version = rd_u64(&r);
	uint32_t count = rd_be(&r, 4);
	if (!r.bad && count != 1)
		return err_set(err,
		               "TPM quote selects %u PCR banks; exactly one SHA-256 bank is "
		               "accepted",
		               count);
	out->pcr_hash_alg = (uint16_t)rd_be(&r, 2);
	size_t sel_len = rd_be(&r, 1);
	const uint8_t *sel = rd_bytes(&r, sel_len);
	out->pcr_digest = rd_tpm2b(&r, &out->pcr_digest_len);
	if (r.bad)
		return err_set(err, "TPM quote message is truncated");
	if (r.left != 0)
		return err_set(err, "TPM quote message has %zu trailing bytes", r.left);
	if (out->pcr_hash_alg != TPM_ALG_SHA256)
		return err_set(err, "TPM quote PCR bank 0x%04x is not SHA-256", out->pcr_hash_alg);
	for (size_t i = 0; i < sel_len * 8; i++) {
		if (!(sel[i / 8] >> (i % 8) & 1))
			continue;
		if (i >= TPM_MAX_PCRS)
			return err_set(err, "TPM quote selects PCR %zu (at most 23)", i);
		out->pcr_selected[i] = 1;
		out->n_selected++;
	}
	if (out->pcr_digest_len != 32)
		return err_set(err, "TPM quote PCR digest is %zu bytes, expected 32",
		               out->pcr_digest_len);
	return 0;
}

void tpm_quote_free(struct tpm_quote *q)
{
	free(q->message);
	free(q->signature);
	q->message = q->signature = NULL;
}

static int verify_sig(struct tpm_quote *q, EVP_PKEY *ak, struct err *err)
{
	const uint8_t *sig = q->signature;
	size_t siglen = q->signature_len;
	unsigned char *der = NULL;
	int der_len = 0, ok = 0, is_ec = EVP_PKEY_get_base_id(ak) == EVP_PKEY_EC;

	if (q->sig_is_tpmt) {
		struct rd r = {q->signature, q->signature_len, 0};
		uint16_t alg = (uint16_t)rd_be(&r, 2), hash = (uint16_t)rd_be(&r, 2);
		if (r.bad)
			return err_set(err, "TPMT_SIGNATURE is truncated");
		if (hash != TPM_ALG_SHA256)
			return err_set(err, "TPM signature hash 0x%04x is not SHA-256", hash);
		if (alg == TPM_ALG_RSASSA && !is_ec) {
			sig = rd_tpm2b(&r, &siglen);
		} else if (alg == TPM_ALG_ECDSA && is_ec) {
			size_t rl, sl;
			const uint8_t *rp = rd_tpm2b(&r, &rl), *sp = rd_tpm2b(&r, &sl);
			if (r.bad)
				return err_set(err, "TPMT_SIGNATURE (ECDSA) is truncated");
			ECDSA_SIG *es = ECDSA_SIG_new();
			BIGNUM *br = BN_bin2bn(rp, (int)rl, NULL),
			       *bs = BN_bin2bn(sp, (int)sl, NULL);
			if (es == NULL || br == NULL || bs == NULL || !ECDSA_SIG_set0(es, br, bs)) {
				BN_free(br);
				BN_free(bs);
				ECDSA_SIG_free(es);
				return err_set(err, "out of memory");
			}
			der_len = i2d_ECDSA_SIG(es, &der);
			ECDSA_SIG_free(es);
			sig = der;
			siglen = der_len > 0 ? (size_t)der_len : 0;
		} else {
			return err_set(
			    err, "TPM signature scheme 0x%04x does not fit the AK's key type", alg);
		}
		if (r.bad || sig == NULL) {
			OPENSSL_free(der);
			return err_set(err, "TPMT_SIGNATURE is truncated");
		}
	}
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	if (md != NULL && EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, ak) == 1 &&
	    (is_ec || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1) &&
	    EVP_DigestVerify(md, sig, siglen, q->message, q->message_len) == 1)
		ok = 1;
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	if (!ok)
		return err_set(err, "TPM quote signature does not verify with the AK");
	return 0;
}

int tpm_quote_verify(struct tpm_quote *q, EVP_PKEY *ak, struct err *err)
{
	uint8_t digest[32], concat[TPM_MAX_PCRS * 32];
	size_t k = 0;

	if (ak == NULL)
		return err_set(err, "no attestation key to verify the TPM quote with");
	if (verify_sig(q, ak, err) < 0)
		return -1;
	if (tpm_attest_parse(q->message, q->message_len, &q->attest, err) < 0)
		return -1;
	if (q->n_pcrs != q->attest.n_selected)
		return err_set(err, "evidence carries %zu PCR values but the quote selects %zu",
		               q->n_pcrs, q->attest.n_selected);
	for (int i = 0; i < TPM_MAX_PCRS; i++)
		if (q->attest.pcr_selected[i])
			q->pcr_index[k++] = i;
	for (size_t i = 0; i < q->n_pcrs; i++)
		memcpy(concat + 32 * i, q->pcrs[i], 32);
	if (EVP_Digest(concat, 32 * q->n_pcrs, digest, NULL, EVP_sha256(), NULL) != 1)
		return err_set(err, "SHA-256 failed");
	if (memcmp(digest, q->attest.pcr_digest, 32) != 0)
		return err_set(err,
		               "PCR values in the evidence do not match the quoted PCR digest");
	return 0;
}

int tpm_check_nonce(const struct tpm_quote *q, const uint8_t *rd, size_t rdlen, int resize32,
                    struct err *err)
{
	uint8_t want[32];

	if (resize32) {
		size_t k = rdlen < 32 ? rdlen : 32;
		memset(want, 0, sizeof(want));
		memcpy(want, rd, k);
		rd = want;
		rdlen = 32;
	}
	if (q->attest.extra_data_len != rdlen ||
	    CRYPTO_memcmp(q->attest.extra_data, rd, rdlen) != 0)
		return err_set(err,
		               "TPM quote nonce (extraData, %zu bytes) does not match the "
		               "expected report data",
		               q->attest.extra_data_len);
	return 0;
}

const uint8_t *tpm_pcr(const struct tpm_quote *q, int n)
{
	for (size_t i = 0; i < q->n_pcrs; i++)
		if (q->pcr_index[i] == n)
			return q->pcrs[i];
	return NULL;
}

int tpm_check_pcr8(const struct tpm_quote *q, const uint8_t *hash, size_t len, struct err *err)
{
	uint8_t buf[64], want[32];
	const uint8_t *pcr8 = tpm_pcr(q, 8);

	if (len != 32)
		return err_set(err,
		               "init-data hash is %zu bytes; PCR8 binding needs a 32-byte "
		               "SHA-256 digest",
		               len);
	if (pcr8 == NULL)
		return err_set(err, "the TPM quote does not include PCR8, which binds init data");
	memset(buf, 0, 32);
	memcpy(buf + 32, hash, 32);
	if (EVP_Digest(buf, sizeof(buf), want, NULL, EVP_sha256(), NULL) != 1)
		return err_set(err, "SHA-256 failed");
	if (memcmp(want, pcr8, 32) != 0)
		return err_set(err, "PCR8 does not match the init-data hash");
	return 0;
}

void tpm_pcr_claims(const struct tpm_quote *q, json_t *obj)
{
	for (size_t i = 0; i < q->n_pcrs; i++) {
		char name[8];
		char *h = hex_encode(q->pcrs[i], 32);
		snprintf(name, sizeof(name), "pcr%02d", q->pcr_index[i]);
		json_object_set_new(obj, name, json_string(h ? h : ""));
		free(h);
	}
}

int tpm_json_bytes(const json_t *v, enum tpm_json_form form, uint8_t **out, size_t *len,
                   struct err *err)
{
	*out = NULL;
	*len = 0;
	if (form == TPM_JSON_BYTES_RAW) {
		size_t i, n = json_array_size(v);
		json_t *e;
		if (!json_is_array(v) || n > (1u << 20))
			return err_set(err, "expected an array of byte values");
		*out = malloc(n ? n : 1);
		if (*out == NULL)
			return err_set(err, "out of memory");
		json_array_foreach(v, i, e)
		{
			json_int_t b = json_integer_value(e);
			if (!json_is_integer(e) || b < 0 || b > 255) {
				free(*out);
				*out = NULL;
				return err_set(err, "element %zu is not a byte value", i);
			}
			(*out)[i] = (uint8_t)b;
		}
		*len = n;
		return 0;
	}
	if (!json_is_string(v))
		return err_set(err, "expected a %s string",
		               form == TPM_JSON_HEX_RAW ? "hex" : "base64");
	if (form == TPM_JSON_HEX_RAW)
		return hex_decode(json_string_value(v), json_string_length(v), out, len) < 0
		           ? err_set(err, "not valid hex")
		           : 0;
	return b64_decode(json_string_value(v), json_string_length(v), B64_STD | B64_LENIENT, out,
	                  len) < 0
	           ? err_set(err, "not valid base64")
	           : 0;
}

int tpm_quote_from_json(const json_t *j, enum tpm_json_form form, struct tpm_quote *q,
                        struct err *err)
{
	json_t *pcrs = json_object_get(j, "pcrs");
	size_t i;
	json_t *e;

	memset(q, 0, sizeof(*q));
	q->sig_is_tpmt = form == TPM_JSON_B64_TPMT;
	if (!json_is_object(j))
		return err_set(err, "TPM quote must be an object with signature, message and pcrs");
	if (tpm_json_bytes(json_object_get(j, "signature"), form, &q->signature, &q->signature_len,
	                   err) < 0)
		return err_prefix(err, "TPM quote signature");
	if (tpm_json_bytes(json_object_get(j, "message"), form, &q->message, &q->message_len, err) <
	    0) {
		tpm_quote_free(q);
		return err_prefix(err, "TPM quote message");
	}
	if (!json_is_array(pcrs) || json_array_size(pcrs) > TPM_MAX_PCRS) {
		tpm_quote_free(q);
		return err_set(err, "TPM quote pcrs must be an array of at most %d values",
		               TPM_MAX_PCRS);
	}
	json_array_foreach(pcrs, i, e)
	{
		uint8_t *b;
		size_t n;
		/* PCR values are hex in both string forms */
		enum tpm_json_form f = form == TPM_JSON_BYTES_RAW ? form : TPM_JSON_HEX_RAW;
		if (tpm_json_bytes(e, f, &b, &n, err) < 0 || n != 32) {
			if (b != NULL)
				free(b);
			tpm_quote_free(q);
			return err_set(err, "TPM quote pcrs[%zu] is not a 32-byte SHA-256 value",
			               i);
		}
		memcpy(q->pcrs[i], b, 32);
		free(b);
	}
	q->n_pcrs = json_array_size(pcrs);
	return 0;
}
