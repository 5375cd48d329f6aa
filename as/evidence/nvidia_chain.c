/*
 * nvidia_chain: an NVIDIA device's certificate chain to the NVIDIA Device Identity CA and the
 * FWID its leaf certifies (see nvidia_chain.h). The root is recognised by its SHA-1
 * fingerprint, as NVIDIA's own verifiers do, and the path is then validated by OpenSSL with
 * only that root trusted; the certificates the device sent are never trusted themselves.
 */
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "as/evidence/nvidia_chain.h"
#include "b64.h"
#include "embed.h"

EMBED_FILE(nvidia_device_root_pem, "as/evidence/roots/nvidia_device_root.pem");

static X509 *builtin_root;
static pthread_once_t root_once = PTHREAD_ONCE_INIT;

static void load_root(void)
{
	BIO *b = BIO_new_mem_buf(nvidia_device_root_pem, -1);
	builtin_root = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
}

X509 *nvidia_device_root(void)
{
	pthread_once(&root_once, load_root);
	return builtin_root;
}

int nvidia_chain_parse(const uint8_t *pem, size_t len, struct nvidia_chain *out, struct err *err)
{
	out->certs = sk_X509_new_null();
	if (out->certs == NULL || len > INT32_MAX)
		return err_set(err, "cannot read the certificate chain");
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	if (b == NULL)
		return err_set(err, "out of memory");
	ERR_clear_error();
	for (;;) {
		X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
		if (x == NULL) {
			unsigned long e = ERR_peek_last_error();
			int end = ERR_GET_LIB(e) == ERR_LIB_PEM &&
			          ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
			ERR_clear_error();
			if (end)
				break;
			BIO_free(b);
			return err_set(err, "certificate %d of the chain is not a PEM certificate",
			               sk_X509_num(out->certs) + 1);
		}
		if (sk_X509_num(out->certs) == NVIDIA_CHAIN_MAX || !sk_X509_push(out->certs, x)) {
			X509_free(x);
			BIO_free(b);
			return err_set(err, "the certificate chain has more than %d certificates",
			               NVIDIA_CHAIN_MAX);
		}
	}
	BIO_free(b);
	if (sk_X509_num(out->certs) == 0)
		return err_set(err, "the certificate chain holds no PEM certificate");
	return 0;
}

void nvidia_chain_free(struct nvidia_chain *c)
{
	sk_X509_pop_free(c->certs, X509_free);
	c->certs = NULL;
}

X509 *nvidia_chain_leaf(const struct nvidia_chain *c)
{
	return sk_X509_num(c->certs) > 0 ? sk_X509_value(c->certs, 0) : NULL;
}

int nvidia_cert_fwid(X509 *cert, uint8_t fwid[NVIDIA_FWID_LEN], struct err *err)
{
	ASN1_OBJECT *oid = OBJ_txt2obj("2.23.133.5.4.1", 1);
	int at = oid ? X509_get_ext_by_OBJ(cert, oid, -1) : -1;
	int again = at >= 0 ? X509_get_ext_by_OBJ(cert, oid, at) : -1;
	ASN1_OBJECT_free(oid);
	if (at < 0)
		return err_set(err, "FwId oid not found in the NVIDIA signing certificate");
	if (again >= 0)
		return err_set(err, "the NVIDIA signing certificate has two FwId extensions");
	ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(X509_get_ext(cert, at));
	int n = ASN1_STRING_length(v);
	if (n < NVIDIA_FWID_LEN)
		return err_set(err, "Unexpected fwid oid size");
	memcpy(fwid, ASN1_STRING_get0_data(v) + n - NVIDIA_FWID_LEN, NVIDIA_FWID_LEN);
	return 0;
}

static int same_fingerprint(X509 *a, X509 *b)
{
	unsigned char da[EVP_MAX_MD_SIZE], db[EVP_MAX_MD_SIZE];
	unsigned int la = 0, lb = 0;
	return X509_digest(a, EVP_sha1(), da, &la) == 1 &&
	       X509_digest(b, EVP_sha1(), db, &lb) == 1 && la == lb && memcmp(da, db, la) == 0;
}

static int check_fwid(X509 *leaf, const uint8_t *fwid, size_t fwid_len, struct err *err)
{
	uint8_t got[NVIDIA_FWID_LEN];
	if (nvidia_cert_fwid(leaf, got, err) < 0)
		return -1;
	if (fwid_len == NVIDIA_FWID_LEN && memcmp(got, fwid, NVIDIA_FWID_LEN) == 0)
		return 0;
	char *hc = hex_encode(got, sizeof(got)), *he = hex_encode(fwid, fwid_len);
	err_set(err, "Fwid mismatch: certificate %s, evidence %s", hc ? hc : "?", he ? he : "?");
	free(hc);
	free(he);
	return -1;
}

static int check_path(const struct nvidia_chain *c, X509 *root, time_t now, struct err *err)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	int ok = 0, n = sk_X509_num(c->certs);
	if (store && ctx && untrusted && X509_STORE_add_cert(store, root) == 1) {
		for (int i = 0; i < n - 1; i++)
			sk_X509_push(untrusted, sk_X509_value(c->certs, i));
		if (X509_STORE_CTX_init(ctx, store, nvidia_chain_leaf(c), untrusted) == 1) {
			if (now != 0)
				X509_STORE_CTX_set_time(ctx, 0, now);
			ok = X509_verify_cert(ctx) == 1;
		}
	}
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_free(untrusted);
	if (!ok)
		return err_set(err, "Report certificate chain failed to verify");
	return 0;
}

int nvidia_chain_verify(const struct nvidia_chain *c, X509 *root, const uint8_t *fwid,
                        size_t fwid_len, time_t now, struct err *err)
{
	if (root == NULL)
		root = nvidia_device_root();
	if (root == NULL)
		return err_set(err, "the built-in NVIDIA Device Identity CA does not load");
	if (sk_X509_num(c->certs) < 2)
		return err_set(err, "Certificate chain must have at least the root CA and signing "
		                    "certificates");
	if (!same_fingerprint(sk_X509_value(c->certs, sk_X509_num(c->certs) - 1), root))
		return err_set(err, "Root CA in the certificate chain is not trusted");
	if (fwid != NULL && check_fwid(nvidia_chain_leaf(c), fwid, fwid_len, err) < 0)
		return -1;
	return check_path(c, root, now, err);
}

int nvidia_chain_pdi(const struct nvidia_chain *c, uint8_t pdi[8], struct err *err)
{
	X509 *leaf = nvidia_chain_leaf(c);
	X509_NAME *issuer = leaf ? X509_get_issuer_name(leaf) : NULL;
	int at = issuer ? X509_NAME_get_index_by_NID(issuer, NID_serialNumber, -1) : -1;
	ASN1_STRING *v = at >= 0 ? X509_NAME_ENTRY_get_data(X509_NAME_get_entry(issuer, at)) : NULL;
	uint8_t *raw = NULL;
	size_t n = 0;

	if (v == NULL)
		return err_set(err, "the device certificate's issuer has no serialNumber naming a "
		                    "PDI");
	if (hex_decode((const char *)ASN1_STRING_get0_data(v), (size_t)ASN1_STRING_length(v), &raw,
	               &n) < 0 ||
	    n != 9) {
		free(raw);
		return err_set(err, "the device certificate's issuer serialNumber is not 9 bytes "
		                    "of hex (a kind byte and an 8-byte PDI)");
	}
	memcpy(pdi, raw + 1, 8);
	free(raw);
	return 0;
}
