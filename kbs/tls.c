/*
 * tls: the KBS's HTTPS server context (kbs-protocol.md §8). A profile sets the version range
 * and the TLS 1.2 cipher list; tls_min_version, tls_max_version and tls_ciphers override any
 * profile; `custom` starts from OpenSSL's defaults over TLS 1.2-1.3. tls_ciphers is one
 * OpenSSL list: names beginning with TLS_ are TLS 1.3 suites, the rest TLS 1.2 ciphers, and
 * each half is applied only when the version range includes its version. Groups default to
 * the first post-quantum hybrid this OpenSSL offers, then X25519, P-256, P-384.
 *
 * Everything is checked here, at start-up: a cipher list or group list OpenSSL rejects, a
 * profile whose range leaves nothing to negotiate, or a key that does not match the
 * certificate refuses to start with a sentence naming the key.
 */
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kbs.h"
#include "keyfile.h"

/* Mozilla's server-side TLS recommendations (v5): TLS 1.2 cipher lists per profile. */
static const char intermediate_ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";
static const char old_ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA:"
    "ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:"
    "ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:DHE-RSA-AES128-SHA256:DHE-RSA-AES256-SHA256:"
    "AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA256:AES256-SHA256:AES128-SHA:AES256-SHA";

static const char *const pq_groups[] = {"X25519MLKEM768", "SecP256r1MLKEM768", "X448MLKEM1024",
                                        "SecP384r1MLKEM1024"};
static const char classic_groups[] = "X25519:secp256r1:secp384r1";

static int ossl_err(struct err *err, const char *what)
{
	char buf[256] = "";
	unsigned long e = ERR_get_error();
	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return err_set(err, "%s%s%s", what, buf[0] ? ": " : "", buf);
}

static int version_of(const char *v)
{
	return v && strcmp(v, "1.3") == 0 ? TLS1_3_VERSION : TLS1_2_VERSION;
}

/* Split "A:TLS_B:C" into the TLS 1.2 part "A:C" and the TLS 1.3 part "TLS_B". */
static void split_ciphers(const char *list, char *v12, char *v13, size_t cap)
{
	v12[0] = v13[0] = 0;
	const char *p = list;
	while (*p) {
		size_t n = strcspn(p, ":, ");
		if (n) {
			char *dst = strncmp(p, "TLS_", 4) == 0 ? v13 : v12;
			size_t l = strlen(dst);
			if (l + n + 2 < cap) {
				if (l)
					dst[l++] = ':';
				memcpy(dst + l, p, n);
				dst[l + n] = 0;
			}
		}
		p += n;
		while (*p == ':' || *p == ',' || *p == ' ')
			p++;
	}
}

/* tls_groups was refused: name the groups this OpenSSL does not know, each tried alone
 * (OpenSSL 3.0 refuses an unknown name without queueing an error, so the queue says nothing
 * about it). */
static int refuse_groups(SSL_CTX *ctx, const char *groups, struct err *err)
{
	char bad[512] = "", one[128];
	size_t o = 0, nbad = 0;
	for (const char *p = groups; *p;) {
		size_t n = strcspn(p, ":");
		snprintf(one, sizeof(one), "%.*s", (int)n, p);
		if (n > 0 && (n >= sizeof(one) || SSL_CTX_set1_groups_list(ctx, one) != 1) &&
		    o < sizeof(bad)) {
			o += (size_t)snprintf(bad + o, sizeof(bad) - o, "%s%s", nbad ? ", " : "",
			                      one);
			nbad++;
		}
		p += n;
		p += *p == ':';
	}
	ERR_clear_error();
	if (nbad == 0)
		return err_set(err,
		               "[http_server] tls_groups \"%s\" is not a list of groups %s "
		               "accepts",
		               groups, OpenSSL_version(OPENSSL_VERSION));
	return err_set(err, "[http_server] tls_groups names %s, which %s does not support%s", bad,
	               OpenSSL_version(OPENSSL_VERSION),
	               strstr(bad, "MLKEM") ? " (ML-KEM hybrids need OpenSSL 3.5 or later)" : "");
}

static int set_groups(SSL_CTX *ctx, const char *groups, struct err *err)
{
	ERR_clear_error(); /* an earlier failure must not be reported as this one's cause */
	if (groups) {
		if (SSL_CTX_set1_groups_list(ctx, groups) != 1)
			return refuse_groups(ctx, groups, err);
		return 0;
	}
	char list[128];
	snprintf(list, sizeof(list), "%s", classic_groups);
	for (size_t i = 0; i < sizeof(pq_groups) / sizeof(pq_groups[0]); i++) {
		if (SSL_CTX_set1_groups_list(ctx, pq_groups[i]) == 1) {
			snprintf(list, sizeof(list), "%s:%s", pq_groups[i], classic_groups);
			break;
		}
	}
	ERR_clear_error();
	if (SSL_CTX_set1_groups_list(ctx, list) != 1)
		return ossl_err(err, "cannot set the default TLS groups");
	return 0;
}

void *kbs_tls_server_ctx(const struct kbs_config *c, struct err *err)
{
	const char *prof = c->tls_profile ? c->tls_profile : "intermediate";
	int minv = TLS1_2_VERSION, maxv = TLS1_3_VERSION;
	const char *ciphers12 = NULL; /* NULL: OpenSSL's default */
	if (strcmp(prof, "modern") == 0)
		minv = TLS1_3_VERSION;
	else if (strcmp(prof, "old") == 0)
		ciphers12 = old_ciphers;
	else if (strcmp(prof, "intermediate") == 0)
		ciphers12 = intermediate_ciphers;
	if (c->tls_min_version)
		minv = version_of(c->tls_min_version);
	if (c->tls_max_version)
		maxv = version_of(c->tls_max_version);
	if (minv > maxv) {
		err_set(err,
		        "[http_server] tls_profile %s with tls_max_version %s leaves no TLS "
		        "version to negotiate",
		        prof, c->tls_max_version ? c->tls_max_version : "1.3");
		return NULL;
	}
	ERR_clear_error(); /* every cause reported below is this context's own */
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		ossl_err(err, "cannot create a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, minv);
	SSL_CTX_set_max_proto_version(ctx, maxv);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_dh_auto(ctx, 1);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	char v12[2048] = "", v13[2048] = "";
	if (c->tls_ciphers) {
		split_ciphers(c->tls_ciphers, v12, v13, sizeof(v12));
		if (!v12[0] && !v13[0]) {
			err_set(err, "[http_server] tls_ciphers is empty");
			goto fail;
		}
		if (maxv == TLS1_2_VERSION && !v12[0]) {
			err_set(err,
			        "[http_server] tls_ciphers names only TLS 1.3 suites (TLS_...) "
			        "but the version range is TLS 1.2 only");
			goto fail;
		}
		if (minv == TLS1_3_VERSION && !v13[0]) {
			err_set(err,
			        "[http_server] tls_ciphers names no TLS 1.3 suite (TLS_...) but "
			        "the version range is TLS 1.3 only");
			goto fail;
		}
	}
	if (!v12[0] && ciphers12)
		snprintf(v12, sizeof(v12), "%s", ciphers12);
	if (minv <= TLS1_2_VERSION && v12[0] && SSL_CTX_set_cipher_list(ctx, v12) != 1) {
		ossl_err(err, "[http_server] tls_ciphers: no usable TLS 1.2 cipher");
		goto fail;
	}
	if (maxv >= TLS1_3_VERSION && v13[0] && SSL_CTX_set_ciphersuites(ctx, v13) != 1) {
		ossl_err(err, "[http_server] tls_ciphers: no usable TLS 1.3 suite");
		goto fail;
	}
	if (set_groups(ctx, c->tls_groups, err) != 0)
		goto fail;
	if (SSL_CTX_use_certificate_chain_file(ctx, c->certificate) != 1) {
		ossl_err(err, "[http_server] certificate: cannot read a PEM certificate chain");
		err_prefix(err, "%s", c->certificate);
		goto fail;
	}
	/* refused when other users can read it (keyfile.h), and read without leaving its PEM
	 * text behind */
	EVP_PKEY *pk = keyfile_read_private(c->private_key, err);
	if (pk == NULL) {
		err_prefix(err, "[http_server] private_key");
		goto fail;
	}
	int used = SSL_CTX_use_PrivateKey(ctx, pk);
	EVP_PKEY_free(pk);
	if (used != 1) {
		ossl_err(err, "[http_server] private_key: cannot use the private key");
		err_prefix(err, "%s", c->private_key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ossl_err(err, "[http_server] private_key does not match the certificate");
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

void kbs_tls_describe(const void *vctx, char *buf, size_t len)
{
	SSL_CTX *ctx = (SSL_CTX *)vctx;
	int minv = (int)SSL_CTX_get_min_proto_version(ctx);
	int maxv = (int)SSL_CTX_get_max_proto_version(ctx);
	snprintf(buf, len, "TLS %s-%s", minv == TLS1_3_VERSION ? "1.3" : "1.2",
	         maxv == TLS1_2_VERSION ? "1.2" : "1.3");
}

void kbs_tls_ctx_free(void *ctx)
{
	SSL_CTX_free(ctx);
}
