/*
 * se verifier (as-rvps.md §5.10): IBM Secure Execution. Two halves, as Trustee's:
 *  - challenge: an attestation request (ARCB v1, HMAC-SHA512, image and attestation PHKH in
 *    the additional data) sealed to every host-key document that verifies, plus the
 *    measurement key and nonce RSA-encrypted (PKCS#1 v1.5) to the verifier's own key, for
 *    the guest to hand back with its evidence;
 *  - verify: decrypt them, check that this verifier issued the key, bind the user data to the
 *    expected report data, recompute the Ultravisor's measurement and compare it in constant
 *    time, read the PHKHs.
 * The verifier keeps no per-challenge state, so a guest could encrypt a key of its own
 * choosing to our public key and compute a matching measurement without any Ultravisor. We
 * close that without changing the wire format: the measurement key is HMAC-SHA512(a secret
 * derived from our RSA key, nonce), so only a key we made for that nonce is accepted. The
 * image header tags come from the configured SE header (SE_IMAGE_HEADER_FILE), never from
 * the evidence. Paths come from the environment, as Trustee's (§5.10); an SE verifier that
 * cannot load them refuses with the reason and leaves the other TEEs serving.
 */
#include <dirent.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as/evidence/se_attest.h"
#include "as/verifiers/verifier.h"
#include "b64.h"
#include "keyfile.h"
#include "log.h"

#define SE_DIR "/run/confidential-containers/ibmse"
#define SE_MAX_HKDS 64
#define SE_PAF (SE_PAF_PHKH_IMAGE | SE_PAF_PHKH_ATTEST)

/* Set by init, then only read. problem[0] != 0: SE is unusable, and why. */
static struct {
	EVP_PKEY *rsa;                /* SE_MEASUREMENT_ENCR_KEY_PRIVATE */
	EVP_PKEY *hosts[SE_MAX_HKDS]; /* host keys of the verified host-key documents */
	size_t n_hosts;
	uint8_t tags[SE_HDR_TAGS_LEN]; /* of SE_IMAGE_HEADER_FILE */
	uint8_t key_secret[64];        /* derives each challenge's measurement key */
	char problem[300];             /* the reason, cut to fit */
} se;

static const char *env(const char *name, const char *dflt)
{
	const char *v = getenv(name);
	return v && *v ? v : dflt;
}

static void se_reset(void)
{
	EVP_PKEY_free(se.rsa);
	for (size_t i = 0; i < se.n_hosts; i++)
		EVP_PKEY_free(se.hosts[i]);
	OPENSSL_cleanse(&se, sizeof(se));
}

/* Every certificate in the PEM files of `dir` onto `sk`, or with `crls` every CRL into that
 * store (missing dir: none). Returns how many CRLs were added. */
static int certs_from_dir(const char *dir, STACK_OF(X509) * sk, X509_STORE *crls)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n_crls = 0;

	while (d != NULL && (e = readdir(d)) != NULL) {
		char path[4096];
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		FILE *f = fopen(path, "r");
		X509 *c;
		X509_CRL *crl;
		if (f == NULL)
			continue;
		if (crls != NULL) {
			while ((crl = PEM_read_X509_CRL(f, NULL, NULL, NULL)) != NULL) {
				n_crls += X509_STORE_add_crl(crls, crl) == 1;
				X509_CRL_free(crl);
			}
		} else {
			while ((c = PEM_read_X509(f, NULL, NULL, NULL)) != NULL)
				if (!sk_X509_push(sk, c))
					X509_free(c);
		}
		fclose(f);
	}
	if (d != NULL)
		closedir(d);
	return n_crls;
}

/* A host-key document verifies when it chains to the root CA through the IBM signing
 * certificates (CRLs checked when any are configured) and holds a P-521 key. */
static int hkd_verify(X509 *hkd, X509_STORE *store, STACK_OF(X509) * inter, int skip,
                      struct err *err)
{
	EVP_PKEY *k = X509_get0_pubkey(hkd);
	char curve[32] = "";
	size_t cl;

	if (k == NULL ||
	    EVP_PKEY_get_utf8_string_param(k, "group", curve, sizeof(curve), &cl) != 1 ||
	    strcmp(curve, "secp521r1") != 0)
		return err_set(err, "the host key is not an EC P-521 key");
	if (skip)
		return 0;
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ok = ctx != NULL && X509_STORE_CTX_init(ctx, store, hkd, inter) == 1 &&
	         X509_verify_cert(ctx) == 1;
	if (!ok)
		err_set(err, "%s",
		        ctx ? X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx))
		            : "out of memory");
	X509_STORE_CTX_free(ctx);
	return ok ? 0 : -1;
}

/* Read the host-key documents of the HKD directory, keeping the keys of those that verify. */
static int load_hkds(struct err *err)
{
	const char *dir = env("DEFAULT_SE_HOST_KEY_DOCUMENTS_ROOT", SE_DIR "/hkds");
	int skip = strcmp(env("SE_SKIP_CERTS_VERIFICATION", "false"), "true") == 0;
	STACK_OF(X509) *hkds = sk_X509_new_null(), *inter = sk_X509_new_null();
	X509_STORE *store = X509_STORE_new();
	int rc = -1;

	certs_from_dir(dir, hkds, NULL);
	certs_from_dir(env("SE_CERTIFICATES_ROOT", SE_DIR "/certs"), inter, NULL);
	int n_crls = certs_from_dir(env("SE_CERTIFICATE_REVOCATION_LISTS_ROOT", SE_DIR "/crls"),
	                            NULL, store);
	const char *ca = env("SE_CERTIFICATE_ROOT_CA", SE_DIR "/root_ca.crt");
	if (!skip && X509_STORE_load_file(store, ca) != 1) {
		err_set(err, "cannot read the SE root CA %s", ca);
		goto out;
	}
	if (!skip && n_crls > 0)
		X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
	for (int i = 0; i < sk_X509_num(hkds) && se.n_hosts < SE_MAX_HKDS; i++) {
		struct err e = {0};
		X509 *h = sk_X509_value(hkds, i);
		if (hkd_verify(h, store, inter, skip, &e) < 0) {
			log_warn("se verifier: a host-key document in %s is refused: %s", dir,
			         e.msg);
			continue;
		}
		EVP_PKEY_up_ref(X509_get0_pubkey(h));
		se.hosts[se.n_hosts++] = X509_get0_pubkey(h);
	}
	if (se.n_hosts == 0)
		err_set(err, "no host-key document in %s verifies", dir);
	else
		rc = 0;
out:
	sk_X509_pop_free(hkds, X509_free);
	sk_X509_pop_free(inter, X509_free);
	X509_STORE_free(store);
	return rc;
}

static int load_header(struct err *err)
{
	const char *path = env("SE_IMAGE_HEADER_FILE", SE_DIR "/hdr/hdr.bin");
	uint8_t buf[2 * 4096 + 1];
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return err_set(err, "cannot read the SE image header %s", path);
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (se_hdr_tags(buf, n, se.tags, err) < 0)
		return err_prefix(err, "%s", path);
	return 0;
}

static int se_load(struct err *err)
{
	const char *kp = env("SE_MEASUREMENT_ENCR_KEY_PRIVATE", SE_DIR "/rsa/encrypt_key.pem");
	uint8_t *der = NULL;

	if ((se.rsa = keyfile_read_private(kp, err)) == NULL)
		return err_prefix(err, "SE_MEASUREMENT_ENCR_KEY_PRIVATE");
	if (!EVP_PKEY_is_a(se.rsa, "RSA"))
		return err_set(err, "the SE measurement encryption key %s is not an RSA key", kp);
	int dl = i2d_PrivateKey(se.rsa, &der);
	if (dl <= 0)
		return err_set(err, "cannot encode the SE measurement encryption key");
	unsigned int ol = 0;
	HMAC(EVP_sha512(), "ctrustee se measurement key", 27, der, (size_t)dl, se.key_secret, &ol);
	OPENSSL_clear_free(der, (size_t)dl);
	return load_header(err) < 0 || load_hkds(err) < 0 ? -1 : 0;
}

static int se_init(const json_t *vc, struct err *err)
{
	struct err e = {0};
	se_reset();
	if (se_load(&e) < 0) {
		snprintf(se.problem, sizeof(se.problem), "IBM SE is not usable here: %.250s",
		         e.msg);
		log_info("se verifier: %s", se.problem);
	}
	return 0;
}

/* The measurement key this verifier gives the challenge with `nonce`. */
static void measurement_key(const uint8_t nonce[SE_NONCE_LEN], uint8_t out[SE_MEAS_KEY_LEN])
{
	unsigned int ol = 0;
	HMAC(EVP_sha512(), se.key_secret, sizeof(se.key_secret), nonce, SE_NONCE_LEN, out, &ol);
}

/* RSA PKCS#1 v1.5 to our own key, or from it (dec). */
static int rsa_crypt(int dec, const uint8_t *in, size_t n, uint8_t *out, size_t *olen)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(se.rsa, NULL);
	int ok = c != NULL && (dec ? EVP_PKEY_decrypt_init(c) : EVP_PKEY_encrypt_init(c)) == 1 &&
	         EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) == 1 &&
	         (dec ? EVP_PKEY_decrypt(c, out, olen, in, n)
	              : EVP_PKEY_encrypt(c, out, olen, in, n)) == 1;
	EVP_PKEY_CTX_free(c);
	return ok ? 0 : -1;
}

static char *b64_of_rsa(const uint8_t *in, size_t n)
{
	uint8_t out[1024];
	size_t ol = sizeof(out);
	return rsa_crypt(0, in, n, out, &ol) == 0 ? b64_encode(out, ol, B64_STD) : NULL;
}

static char *se_challenge(const char *tee_params, struct err *err)
{
	uint8_t nonce[SE_NONCE_LEN], mkey[SE_MEAS_KEY_LEN], *arcb = NULL;
	size_t alen = 0;
	char *out = NULL;

	if (se.problem[0])
		return err_set(err, "%s", se.problem), NULL;
	if (RAND_bytes(nonce, sizeof(nonce)) != 1)
		return err_set(err, "no randomness for the SE nonce"), NULL;
	measurement_key(nonce, mkey);
	if (se_arcb_build(se.hosts, se.n_hosts, SE_PAF, mkey, nonce, &arcb, &alen, err) == 0) {
		char *blob = b64_encode(arcb, alen, B64_STD), *ek = b64_of_rsa(mkey, sizeof(mkey));
		char *en = b64_of_rsa(nonce, sizeof(nonce)),
		     *tags = b64_encode(se.tags, sizeof(se.tags), B64_STD);
		json_t *j =
		    blob && ek && en && tags
		        ? json_pack("{s:s,s:i,s:i,s:s,s:s,s:s}", "request_blob", blob,
		                    "measurement_size", SE_MEASUREMENT_LEN, "additional_size",
		                    2 * SE_PHKH_LEN, "encr_measurement_key", ek,
		                    "encr_request_nonce", en, "image_hdr_tags", tags)
		        : NULL;
		out = j ? json_dumps(j, JSON_COMPACT) : NULL;
		if (out == NULL)
			err_set(err, "cannot encode the SE challenge");
		json_decref(j);
		free(blob), free(ek), free(en), free(tags);
	}
	OPENSSL_cleanse(mkey, sizeof(mkey));
	free(arcb);
	return out;
}

/* The evidence's fields, decoded. */
struct se_ev {
	uint8_t *meas, *add, *user, *cuid, *ekey, *enonce, *tags;
	size_t meas_n, add_n, user_n, cuid_n, ekey_n, enonce_n, tags_n;
};

static void se_ev_free(struct se_ev *v)
{
	free(v->meas), free(v->add), free(v->user), free(v->cuid);
	free(v->ekey), free(v->enonce), free(v->tags);
}

static int se_ev_decode(const json_t *ev, struct se_ev *v, struct err *err)
{
	const struct {
		const char *key;
		uint8_t **p;
		size_t *n;
	} f[] = {
	    {"measurement", &v->meas, &v->meas_n},
	    {"additional_data", &v->add, &v->add_n},
	    {"user_data", &v->user, &v->user_n},
	    {"cuid", &v->cuid, &v->cuid_n},
	    {"encr_measurement_key", &v->ekey, &v->ekey_n},
	    {"encr_request_nonce", &v->enonce, &v->enonce_n},
	    {"image_hdr_tags", &v->tags, &v->tags_n},
	};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (verifier_evidence_bytes(ev, "se", f[i].key, 0, f[i].p, f[i].n, err) < 0)
			return -1;
	if (v->meas_n != SE_MEASUREMENT_LEN || v->cuid_n != SE_CUID_LEN ||
	    v->tags_n != SE_HDR_TAGS_LEN || v->user_n > SE_USER_DATA_MAX)
		return err_set(err, "se evidence has a measurement, cuid, image_hdr_tags or "
		                    "user_data of the wrong size");
	return 0;
}

/* The nonce and measurement key the guest handed back, checked to be ours. */
static int se_secrets(const struct se_ev *v, uint8_t nonce[SE_NONCE_LEN],
                      uint8_t mkey[SE_MEAS_KEY_LEN], struct err *err)
{
	uint8_t buf[1024], want[SE_MEAS_KEY_LEN];
	size_t n = sizeof(buf);
	int ok;

	if (rsa_crypt(1, v->enonce, v->enonce_n, buf, &n) < 0 || n != SE_NONCE_LEN)
		return err_set(err, "se evidence `encr_request_nonce` does not decrypt to a nonce");
	memcpy(nonce, buf, SE_NONCE_LEN);
	n = sizeof(buf);
	if (rsa_crypt(1, v->ekey, v->ekey_n, buf, &n) < 0 || n != SE_MEAS_KEY_LEN) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return err_set(err, "se evidence `encr_measurement_key` does not decrypt to a key");
	}
	memcpy(mkey, buf, SE_MEAS_KEY_LEN);
	measurement_key(nonce, want);
	ok = CRYPTO_memcmp(mkey, want, SE_MEAS_KEY_LEN) == 0;
	OPENSSL_cleanse(buf, sizeof(buf));
	OPENSSL_cleanse(want, sizeof(want));
	return ok ? 0 : err_set(err, "the SE measurement key was not issued by this verifier");
}

static int se_verify(const struct verify_request *req, struct verify_result *out, struct err *err)
{
	struct se_ev v = {0};
	struct se_additional ad;
	uint8_t nonce[SE_NONCE_LEN], mkey[SE_MEAS_KEY_LEN], m[SE_MEASUREMENT_LEN], ud[64];
	int rc = -1;

	if (se.problem[0])
		return err_set(err, "%s", se.problem);
	if (se_ev_decode(req->evidence, &v, err) < 0)
		goto out;
	if (CRYPTO_memcmp(v.tags, se.tags, SE_HDR_TAGS_LEN) != 0) {
		err_set(err,
		        "se evidence `image_hdr_tags` are not those of the configured SE image");
		goto out;
	}
	if (se_secrets(&v, nonce, mkey, err) < 0)
		goto out;
	verifier_regularize(v.user, v.user_n, ud, sizeof(ud));
	if (verifier_bind(ud, sizeof(ud), req->report_data, req->report_data_len, "SE user_data",
	                  "the expected report data", err) < 0 ||
	    se_additional_parse(v.add, v.add_n, SE_PAF, &ad, err) < 0 ||
	    se_measure(mkey, se.tags, v.cuid, v.user, v.user_n, nonce, v.add, v.add_n, m, err) < 0)
		goto out;
	if (CRYPTO_memcmp(m, v.meas, SE_MEASUREMENT_LEN) != 0) {
		err_set(err, "the SE attestation measurement does not match the recomputed one");
		goto out;
	}
	json_t *c = json_pack("{s:i}", "version", SE_ARCB_VERSION);
	if (c != NULL) {
		verifier_claim_hex(c, "cuid", v.cuid, SE_CUID_LEN);
		if (req->report_data != NULL)
			verifier_claim_hex(c, "report_data", req->report_data,
			                   req->report_data_len);
		else
			json_object_set_new(c, "report_data", json_string(""));
		verifier_claim_hex(c, "image_phkh", ad.image_phkh, SE_PHKH_LEN);
		verifier_claim_hex(c, "attestation_phkh", ad.attest_phkh, SE_PHKH_LEN);
		verifier_claim_hex(c, "tag", se.tags + 192, 16);
	}
	rc = verify_result_add(out, "cpu", c, err);
out:
	OPENSSL_cleanse(mkey, sizeof(mkey));
	se_ev_free(&v);
	return rc;
}

const struct verifier verifier_se = {
    .tee = "se", .init = se_init, .verify = se_verify, .challenge = se_challenge};
