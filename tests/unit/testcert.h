/*
 * A self-signed certificate for the unit tests that stand up TLS servers and clients (gRPC's
 * blocking and loop clients): P-256, valid from an hour ago for a day, a CA as well, so one PEM
 * serves as the server's certificate and as the trust store a client is given.
 *
 * Header-only for the same reason as testlib.h (each test program is linked alone). Include it
 * after <cmocka.h>.
 */
#ifndef CTRUSTEE_TESTCERT_H
#define CTRUSTEE_TESTCERT_H

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

/* The PEM text of what write() puts in a memory BIO, malloc'd. */
static inline char *tc_pem(int (*write)(BIO *, const void *), const void *obj)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p = NULL;
	assert_non_null(b);
	assert_int_equal(write(b, obj), 1);
	long n = BIO_get_mem_data(b, &p);
	char *s = strndup(p, (size_t)n);
	BIO_free(b);
	assert_non_null(s);
	return s;
}

static inline int tc_write_cert(BIO *b, const void *x)
{
	return PEM_write_bio_X509(b, (X509 *)x);
}

static inline int tc_write_key(BIO *b, const void *k)
{
	return PEM_write_bio_PrivateKey(b, (EVP_PKEY *)k, NULL, NULL, 0, NULL, NULL);
}

/* Subject CN cn, subjectAltName san (OpenSSL's text form, e.g. "IP:127.0.0.1,DNS:localhost");
 * the certificate and its key as PEM texts, malloc'd. */
static inline void tc_self_signed(const char *cn, const char *san, char **cert_pem, char **key_pem)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509V3_CTX ctx;
	assert_non_null(k);
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, k);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	const struct {
		int nid;
		const char *value;
	} exts[] = {{NID_subject_alt_name, san}, {NID_basic_constraints, "critical,CA:TRUE"}};
	for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, exts[i].nid, exts[i].value);
		assert_non_null(ext);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	*cert_pem = tc_pem(tc_write_cert, x);
	*key_pem = tc_pem(tc_write_key, k);
	X509_free(x);
	EVP_PKEY_free(k);
}

#endif
