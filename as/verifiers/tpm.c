/*
 * tpm verifier (as-rvps.md §5.8): a TPM 2.0 quote signed by the attestation key the
 * evidence names. The AK is NOT trusted here: the policy decides whether `tpm.ak_public`
 * is a known key (the default CPU policy looks it up in the `trusted_aks` reference value).
 *
 * Evidence: {"ak_public": b64 DER SPKI, "tpm_quote": {"signature": b64 TPMT_SIGNATURE,
 * "message": b64 TPMS_ATTEST, "pcrs": [hex SHA-256 PCR values, in selection order]}}.
 */
#include <openssl/x509.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "as/evidence/tpm_quote.h"
#include "as/verifiers/verifier.h"
#include "b64.h"

/*
 * Parsed AKs by SHA-256 of their DER. OpenSSL 3 spends ~70 us decoding an RSA
 * SubjectPublicKeyInfo, four times the signature check, and a machine presents the same AK
 * on every attestation. The cache holds public keys only; it decides nothing about trust.
 */
#define AK_CACHE 64
static struct {
	pthread_mutex_t mu;
	uint8_t digest[AK_CACHE][32];
	EVP_PKEY *key[AK_CACHE];
	size_t n, next;
} ak_cache = {.mu = PTHREAD_MUTEX_INITIALIZER};

static EVP_PKEY *ak_cached(const uint8_t d[32])
{
	EVP_PKEY *k = NULL;
	pthread_mutex_lock(&ak_cache.mu);
	for (size_t i = 0; i < ak_cache.n && k == NULL; i++)
		if (memcmp(ak_cache.digest[i], d, 32) == 0 && EVP_PKEY_up_ref(ak_cache.key[i]))
			k = ak_cache.key[i];
	pthread_mutex_unlock(&ak_cache.mu);
	return k;
}

static void ak_remember(const uint8_t d[32], EVP_PKEY *k)
{
	if (!EVP_PKEY_up_ref(k))
		return;
	pthread_mutex_lock(&ak_cache.mu);
	size_t slot = ak_cache.n < AK_CACHE ? ak_cache.n++ : ak_cache.next++ % AK_CACHE;
	if (ak_cache.key[slot] != NULL)
		EVP_PKEY_free(ak_cache.key[slot]);
	memcpy(ak_cache.digest[slot], d, 32);
	ak_cache.key[slot] = k;
	pthread_mutex_unlock(&ak_cache.mu);
}

static EVP_PKEY *load_ak(const json_t *ev, struct err *err)
{
	uint8_t d[32];
	uint8_t *der;
	size_t len;
	const unsigned char *p;
	EVP_PKEY *k;

	if (!json_is_string(json_object_get(ev, "ak_public")))
		return err_set(err, "TPM evidence lacks `ak_public`"), NULL;
	if (verifier_evidence_bytes(ev, "TPM", "ak_public", 0, &der, &len, err) < 0)
		return NULL;
	if (EVP_Digest(der, len, d, NULL, EVP_sha256(), NULL) == 1 && (k = ak_cached(d)) != NULL) {
		free(der);
		return k;
	}
	p = der;
	k = d2i_PUBKEY(NULL, &p, (long)len);
	if (k == NULL || p != der + len) {
		EVP_PKEY_free(k);
		k = NULL;
		err_set(err, "`ak_public` is not a DER SubjectPublicKeyInfo");
	} else {
		ak_remember(d, k);
	}
	free(der);
	return k;
}

static int tpm_verify(const struct verify_request *req, struct verify_result *out, struct err *err)
{
	struct tpm_quote q;
	EVP_PKEY *ak;
	int rc = -1;

	if (!json_is_object(req->evidence))
		return err_set(err, "TPM evidence must be a JSON object");
	ak = load_ak(req->evidence, err);
	if (ak == NULL)
		return -1;
	if (tpm_quote_from_json(json_object_get(req->evidence, "tpm_quote"), TPM_JSON_B64_TPMT, &q,
	                        err) < 0) {
		EVP_PKEY_free(ak);
		return -1;
	}
	if (tpm_quote_verify(&q, ak, err) < 0)
		goto out;
	if (req->report_data != NULL &&
	    tpm_check_nonce(&q, req->report_data, req->report_data_len, 1, err) < 0)
		goto out;
	if (req->init_data_hash != NULL &&
	    tpm_check_pcr8(&q, req->init_data_hash, req->init_data_hash_len, err) < 0)
		goto out;
	json_t *c = json_object();
	json_object_set(c, "ak_public", json_object_get(req->evidence, "ak_public"));
	tpm_pcr_claims(&q, c);
	verifier_tpm_binding_claims(c, &q);
	rc = verify_result_add(out, "cpu", c, err);
out:
	tpm_quote_free(&q);
	EVP_PKEY_free(ak);
	return rc;
}

const struct verifier verifier_tpm = {
    .tee = "tpm",
    .verify = tpm_verify,
};
