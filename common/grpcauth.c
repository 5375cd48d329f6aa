/*
 * grpcauth: the write check of grpc-as and rvps (see grpcauth.h).
 *
 * The bearer token is kept only as its SHA-256, and a presented token is hashed before the
 * compare, so the compare is constant-time over a fixed 32 bytes and says nothing about the
 * token's length. Identities are matched against the certificate grpcx reports for the
 * call's connection, which the front verified against the client CA first: a name
 * in the list is only as good as the CA that vouches for it.
 */
#include "grpcauth.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "grpcx.h"
#include "keyfile.h"
#include "log.h"

#define TOKEN_MAX 4096

struct grpcauth {
	char **ids; /* owned, each of a known form (see grpcauth.h) */
	size_t nids;
	int has_token;
	unsigned char token_hash[SHA256_DIGEST_LENGTH];
};

char *grpcauth_read_token(const char *path, struct err *err)
{
	char buf[TOKEN_MAX + 2];
	size_t n;
	FILE *f;

	if (keyfile_check(path, err) < 0)
		return NULL;
	if ((f = fopen(path, "r")) == NULL) {
		err_set(err, "cannot read the bearer token file %s", path);
		return NULL;
	}
	if (fgets(buf, sizeof(buf), f) == NULL)
		buf[0] = '\0';
	fclose(f);
	n = strcspn(buf, "\r\n");
	buf[n] = '\0';
	char *t = n > 0 && n <= TOKEN_MAX ? strdup(buf) : NULL;
	OPENSSL_cleanse(buf, sizeof(buf));
	if (t == NULL)
		err_set(err,
		        "the bearer token file %s holds no token on its first line (or one over %d "
		        "bytes)",
		        path, TOKEN_MAX);
	return t;
}

static int id_known(const char *id)
{
	static const char *const forms[] = {"dns:", "uri:", "email:", "subject:"};

	if (strncmp(id, "sha256:", 7) == 0) {
		if (strlen(id + 7) != 64)
			return 0;
		for (const char *p = id + 7; *p; p++)
			if (!isxdigit((unsigned char)*p))
				return 0;
		return 1;
	}
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++)
		if (strncmp(id, forms[i], strlen(forms[i])) == 0 && id[strlen(forms[i])] != '\0')
			return 1;
	return 0;
}

static int load_ids(struct grpcauth *a, const json_t *list, const char *what, struct err *err)
{
	size_t i;
	json_t *v;

	if (list == NULL)
		return 0;
	if (!json_is_array(list))
		return err_set(err, "%s.allowed_identities must be a list of strings", what);
	a->ids = calloc(json_array_size(list) + 1, sizeof(*a->ids));
	if (a->ids == NULL)
		return err_set(err, "out of memory");
	json_array_foreach(list, i, v)
	{
		const char *s = json_string_value(v);
		if (s == NULL || !id_known(s))
			return err_set(
			    err,
			    "%s.allowed_identities[%zu] is not \"dns:NAME\", \"uri:URI\", "
			    "\"email:ADDR\", \"subject:RFC2253-NAME\" or \"sha256:<64 hex "
			    "digits of the public key>\"",
			    what, i);
		if ((a->ids[a->nids++] = strdup(s)) == NULL)
			return err_set(err, "out of memory");
	}
	return 0;
}

struct grpcauth *grpcauth_new(const json_t *admin, const char *what, struct err *err)
{
	struct grpcauth *a = calloc(1, sizeof(*a));
	const char *key;
	json_t *v;

	if (a == NULL) {
		err_set(err, "out of memory");
		return NULL;
	}
	if (admin == NULL || json_is_null(admin))
		return a;
	if (!json_is_object(admin)) {
		err_set(err, "%s must be an object", what);
		goto fail;
	}
	json_object_foreach((json_t *)admin, key, v)
	{
		if (strcmp(key, "allowed_identities") != 0 &&
		    strcmp(key, "bearer_token_file") != 0) {
			err_set(err,
			        "%s: unknown key `%s` (expected allowed_identities, "
			        "bearer_token_file)",
			        what, key);
			goto fail;
		}
	}
	if (load_ids(a, json_object_get(admin, "allowed_identities"), what, err) < 0)
		goto fail;
	v = json_object_get(admin, "bearer_token_file");
	if (v != NULL) {
		char *t = json_is_string(v) ? grpcauth_read_token(json_string_value(v), err) : NULL;
		if (t == NULL) {
			if (!json_is_string(v))
				err_set(err, "%s.bearer_token_file must be a path", what);
			goto fail;
		}
		SHA256((const unsigned char *)t, strlen(t), a->token_hash);
		OPENSSL_cleanse(t, strlen(t));
		free(t);
		a->has_token = 1;
	}
	return a;
fail:
	grpcauth_free(a);
	return NULL;
}

void grpcauth_free(struct grpcauth *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < a->nids; i++)
		free(a->ids[i]);
	free(a->ids);
	OPENSSL_cleanse(a, sizeof(*a));
	free(a);
}

int grpcauth_required(const struct grpcauth *a)
{
	return a != NULL && (a->nids > 0 || a->has_token);
}

static int is_loopback(const char *addr)
{
	return strncmp(addr, "127.", 4) == 0 || strncmp(addr, "[::1]:", 6) == 0 ||
	       strncmp(addr, "localhost:", 10) == 0 || strncmp(addr, "unix:", 5) == 0;
}

void grpcauth_warn_open(const struct grpcauth *a, const char *daemon, const char *listen_addr,
                        int mtls)
{
	if (grpcauth_required(a) || mtls || is_loopback(listen_addr))
		return;
	log_warn("%s: listening on %s beyond loopback with unauthenticated writes: anyone who "
	         "reaches the port may set policies or reference values; set \"admin\": "
	         "{\"allowed_identities\" or \"bearer_token_file\"} or require client "
	         "certificates (--https-client-ca)",
	         daemon, listen_addr);
}

/* ------------------------------------------------------------------------------------ */
/* matching */

static int spki_matches(X509 *x, const char *hex)
{
	unsigned char *der = NULL, md[SHA256_DIGEST_LENGTH];
	char h[2 * SHA256_DIGEST_LENGTH + 1];
	int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);

	if (n <= 0)
		return 0;
	SHA256(der, (size_t)n, md);
	OPENSSL_free(der);
	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
		snprintf(h + 2 * i, 3, "%02x", md[i]);
	return strcasecmp(h, hex) == 0;
}

static int subject_matches(X509 *x, const char *want)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long n;
	int ok = 0;

	if (b == NULL)
		return 0;
	if (X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0) {
		n = BIO_get_mem_data(b, &p);
		ok = n >= 0 && (size_t)n == strlen(want) && memcmp(p, want, (size_t)n) == 0;
	}
	BIO_free(b);
	return ok;
}

static int san_matches(X509 *x, int type, const char *want)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int ok = 0;

	for (int i = 0; names != NULL && !ok && i < sk_GENERAL_NAME_num(names); i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		if (g->type != type)
			continue;
		const ASN1_STRING *s = g->d.ia5;
		ok = (size_t)ASN1_STRING_length(s) == strlen(want) &&
		     memcmp(ASN1_STRING_get0_data(s), want, strlen(want)) == 0;
	}
	GENERAL_NAMES_free(names);
	return ok;
}

static int id_matches(X509 *x, const char *id)
{
	if (strncmp(id, "sha256:", 7) == 0)
		return spki_matches(x, id + 7);
	if (strncmp(id, "subject:", 8) == 0)
		return subject_matches(x, id + 8);
	if (strncmp(id, "dns:", 4) == 0)
		return san_matches(x, GEN_DNS, id + 4);
	if (strncmp(id, "uri:", 4) == 0)
		return san_matches(x, GEN_URI, id + 4);
	if (strncmp(id, "email:", 6) == 0)
		return san_matches(x, GEN_EMAIL, id + 6);
	return 0;
}

/* 1 allowed, 0 presented but wrong, -1 none presented */
static int bearer_ok(const struct grpcauth *a)
{
	char v[TOKEN_MAX + 16];
	unsigned char md[SHA256_DIGEST_LENGTH];
	int n = grpcx_request_metadata("authorization", v, sizeof(v)), ok;

	if (n < 0)
		return -1;
	if (n < 7 || strncasecmp(v, "Bearer ", 7) != 0 || !a->has_token) {
		OPENSSL_cleanse(v, sizeof(v));
		return 0;
	}
	SHA256((const unsigned char *)v + 7, (size_t)n - 7, md);
	OPENSSL_cleanse(v, sizeof(v));
	ok = CRYPTO_memcmp(md, a->token_hash, sizeof(md)) == 0;
	OPENSSL_cleanse(md, sizeof(md));
	return ok;
}

int grpcauth_check_write(const struct grpcauth *a, const char *rpc, struct err *err)
{
	X509 *x;
	int presented = 0, b;

	if (!grpcauth_required(a))
		return 0;
	if ((x = grpcx_request_peer_cert()) != NULL) {
		presented = 1;
		for (size_t i = 0; i < a->nids; i++)
			if (id_matches(x, a->ids[i])) {
				X509_free(x);
				return 0;
			}
		X509_free(x);
	}
	b = bearer_ok(a);
	if (b == 1)
		return 0;
	presented |= b == 0;
	if (!presented) {
		err_set(err,
		        "%s needs an authorized client: present an allowed client certificate or "
		        "the configured bearer credential (authorization: Bearer ...)",
		        rpc);
		log_info("refused %s from a client with no credential", rpc);
		return GRPCX_UNAUTHENTICATED;
	}
	err_set(err,
	        "%s is not allowed for this client: its certificate is not in "
	        "admin.allowed_identities and it sent no valid bearer credential",
	        rpc);
	log_info("refused %s from a client whose credential is not allowed", rpc);
	return GRPCX_PERMISSION_DENIED;
}
