/*
 * grpcx_tls: the TLS side of outgoing gRPC links, kept apart from grpcx.c's call machinery.
 *
 * Two jobs. First, turn what a config file says about a link (an address plus optional CA,
 * client certificate and key paths) into a client, refusing combinations that would leave
 * an operator believing a link is protected when it is not: TLS files with an http://
 * address, a certificate without its key. Second, explain a failed handshake from the
 * outside: grpcx_tls_probe makes one handshake of its own with the given material and reports
 * what OpenSSL says about it (an expired certificate, a wrong CA, a wrong host name, a server
 * that requires a client certificate). The client (grpcx_client.c) reads the reason from its
 * own handshake and asks the probe only when a connection died without saying why. Between
 * the two, the pieces both clients build their TLS connections from (grpcx_tls.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "grpcx.h"
#include "grpcx_tls.h"
#include "keyfile.h"

#define PEM_FILE_MAX (1024 * 1024)

/* Reads a whole PEM file (bounded) into a NUL-terminated malloc'd string. */
static char *read_pem(const char *path, const char *what, const char *key, struct err *err)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;

	if (f == NULL) {
		err_set(err, "%s %s: cannot open %s: %s", what, key, path, strerror(errno));
		return NULL;
	}
	buf = malloc(PEM_FILE_MAX + 1);
	if (buf == NULL) {
		fclose(f);
		err_set(err, "out of memory");
		return NULL;
	}
	n = fread(buf, 1, PEM_FILE_MAX + 1, f);
	fclose(f);
	if (n > PEM_FILE_MAX || n == 0) {
		OPENSSL_cleanse(buf, n > PEM_FILE_MAX ? PEM_FILE_MAX + 1 : n);
		free(buf);
		err_set(err, "%s %s: %s is %s", what, key, path, n ? "larger than 1 MiB" : "empty");
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

/* 0 when pem holds at least one certificate and nothing unreadable before it. */
static int pem_has_cert(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	int ok = x != NULL;

	X509_free(x);
	BIO_free(b);
	ERR_clear_error();
	return ok ? 0 : -1;
}

int grpcx_tls_files_load(const char *target, const struct grpcx_tls_files *f, const char *what,
                         int *tls, char **ca_pem, char **cert_pem, char **key_pem, struct err *err)
{
	const char *ca = f ? f->ca : NULL, *cert = f ? f->cert : NULL, *key = f ? f->key : NULL;
	EVP_PKEY *pk;

	*ca_pem = *cert_pem = *key_pem = NULL;
	*tls = strncmp(target, "https://", 8) == 0;
	if (!*tls) {
		if (ca || cert || key)
			return err_set(
			    err,
			    "%s %s is plaintext but TLS files are set: write https:// to "
			    "connect over TLS, or drop the CA and client certificate "
			    "settings",
			    what, target);
		return 0;
	}
	if ((cert == NULL) != (key == NULL))
		return err_set(err,
		               "%s: a client certificate and its private key go together: set "
		               "both or neither",
		               what);
	if (ca && (*ca_pem = read_pem(ca, what, "CA", err)) == NULL)
		goto fail;
	if (*ca_pem && pem_has_cert(*ca_pem) < 0) {
		err_set(err, "%s CA: %s holds no PEM certificate", what, ca);
		goto fail;
	}
	if (cert) {
		if ((*cert_pem = read_pem(cert, what, "client certificate", err)) == NULL)
			goto fail;
		if (pem_has_cert(*cert_pem) < 0) {
			err_set(err, "%s client certificate: %s holds no PEM certificate", what,
			        cert);
			goto fail;
		}
		/* the mode rule, and a key that parses, before the client loads it */
		if ((pk = keyfile_read_private(key, err)) == NULL) {
			err_prefix(err, "%s client key", what);
			goto fail;
		}
		EVP_PKEY_free(pk);
		if ((*key_pem = read_pem(key, what, "client key", err)) == NULL)
			goto fail;
	}
	return 0;
fail:
	grpcx_tls_pems_free(*ca_pem, *cert_pem, *key_pem);
	*ca_pem = *cert_pem = *key_pem = NULL;
	return -1;
}

void grpcx_tls_pems_free(char *ca_pem, char *cert_pem, char *key_pem)
{
	free(ca_pem);
	free(cert_pem);
	if (key_pem) {
		OPENSSL_cleanse(key_pem, strlen(key_pem));
		free(key_pem);
	}
}

struct grpcx_client *grpcx_client_new_files(const char *target, const struct grpcx_tls_files *f,
                                            const char *what, struct err *err)
{
	char *ca_pem, *cert_pem, *key_pem;
	struct grpcx_client *c;
	int tls;

	if (grpcx_tls_files_load(target, f, what, &tls, &ca_pem, &cert_pem, &key_pem, err) < 0)
		return NULL;
	c = tls ? grpcx_client_new_tls(target, ca_pem, cert_pem, key_pem, err)
	        : grpcx_client_new(target, err);
	grpcx_tls_pems_free(ca_pem, cert_pem, key_pem);
	return c;
}

struct grpcx_async *grpcx_async_new_files(struct event_base *base, const char *target,
                                          const struct grpcx_tls_files *f, const char *what,
                                          int max_inflight, struct err *err)
{
	char *ca_pem, *cert_pem, *key_pem;
	struct grpcx_async *c;
	int tls;

	if (grpcx_tls_files_load(target, f, what, &tls, &ca_pem, &cert_pem, &key_pem, err) < 0)
		return NULL;
	c = tls ? grpcx_async_new_tls(base, target, ca_pem, cert_pem, key_pem, max_inflight, err)
	        : grpcx_async_new(base, target, max_inflight, err);
	grpcx_tls_pems_free(ca_pem, cert_pem, key_pem);
	return c;
}

/* ------------------------------------------------------------------------------------ */
/* the pieces both clients build their connections from */

static int add_pem_roots(SSL_CTX *ctx, const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x;
	int n = 0;

	while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		if (X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), x) == 1)
			n++;
		X509_free(x);
	}
	BIO_free(b);
	ERR_clear_error();
	return n;
}

static void ignore_sigpipe(void)
{
	struct sigaction sa;

	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);
}

void grpcx_tls_ignore_sigpipe(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, ignore_sigpipe);
}

SSL_CTX *grpcx_tls_client_ctx(const char *ca_pem, const char *cert_pem, const char *key_pem,
                              struct err *err)
{
	static const unsigned char alpn[] = {2, 'h', '2'};
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	grpcx_tls_ignore_sigpipe();

	if (ctx == NULL) {
		err_set(err, "Cannot create a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	                          SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn));
	if (ca_pem != NULL ? add_pem_roots(ctx, ca_pem) == 0
	                   : SSL_CTX_set_default_verify_paths(ctx) != 1) {
		SSL_CTX_free(ctx);
		err_set(err, "The TLS CA for the gRPC link holds no usable certificate");
		return NULL;
	}
	if (cert_pem != NULL && key_pem != NULL && grpcx_tls_use_pair(ctx, cert_pem, key_pem) < 0) {
		SSL_CTX_free(ctx);
		err_set(err, "The TLS client certificate or key for the gRPC link is unusable");
		return NULL;
	}
	return ctx;
}

const char *grpcx_tls_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	return r ? r : "unknown TLS error";
}

SSL *grpcx_tls_conn_new(SSL_CTX *ctx, const struct grpcx_target *t, int fd, char *why, size_t wl)
{
	SSL *ssl = SSL_new(ctx);

	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
		snprintf(why, wl, "cannot set up TLS: %s", grpcx_tls_reason());
		SSL_free(ssl);
		ERR_clear_error();
		return NULL;
	}
	if (t->is_ip) {
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), t->host);
	} else {
		SSL_set_tlsext_host_name(ssl, t->host);
		SSL_set1_host(ssl, t->host);
	}
	return ssl;
}

void grpcx_tls_handshake_why(SSL *ssl, int ssl_error, char *why, size_t wl)
{
	long vr = SSL_get_verify_result(ssl);

	if (vr != X509_V_OK)
		snprintf(why, wl, "the server's certificate is refused: %s",
		         X509_verify_cert_error_string(vr));
	else if (ssl_error == SSL_ERROR_SSL)
		snprintf(why, wl, "the TLS handshake failed: %s", grpcx_tls_reason());
	else
		snprintf(why, wl, "the server closed the connection during the TLS handshake");
	ERR_clear_error();
}

int grpcx_tls_alpn_h2(SSL *ssl, char *why, size_t wl)
{
	const unsigned char *proto = NULL;
	unsigned int plen = 0;

	SSL_get0_alpn_selected(ssl, &proto, &plen);
	if (plen != 2 || memcmp(proto, "h2", 2) != 0) {
		snprintf(why, wl, "the server did not agree to HTTP/2 (ALPN \"h2\")");
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* handshake probe */

/* "https://host:port", "host:port", "dns:///host:port", "[::1]:port" -> host, port. */
static int split_target(const char *target, char *host, size_t hl, char *port, size_t pl)
{
	const char *p = target, *colon, *end;

	if (strncmp(p, "https://", 8) == 0)
		p += 8;
	else if (strncmp(p, "http://", 7) == 0)
		p += 7;
	if (strncmp(p, "dns:///", 7) == 0)
		p += 7;
	if (*p == '[') {
		end = strchr(p, ']');
		if (end == NULL || end[1] != ':')
			return -1;
		snprintf(host, hl, "%.*s", (int)(end - p - 1), p + 1);
		colon = end + 1;
	} else {
		colon = strrchr(p, ':');
		if (colon == NULL)
			return -1;
		snprintf(host, hl, "%.*s", (int)(colon - p), p);
	}
	snprintf(port, pl, "%s", colon + 1);
	end = strchr(port, '/');
	if (end)
		*(char *)end = '\0';
	return host[0] && port[0] ? 0 : -1;
}

static int connect_timeout(const char *host, const char *port, int ms, char *why, size_t wl)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL, *a;
	int fd = -1, rc;

	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0) {
		snprintf(why, wl, "cannot resolve the host name: %s", gai_strerror(rc));
		return -1;
	}
	for (a = ai; a; a = a->ai_next) {
		struct pollfd pfd;
		int soerr = 0;
		socklen_t sl = sizeof(soerr);

		fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		            a->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS)
			goto next;
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, ms) != 1 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr != 0) {
			errno = soerr ? soerr : ETIMEDOUT;
			goto next;
		}
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		break;
	next:
		snprintf(why, wl, "cannot connect: %s", strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd >= 0) {
		struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	return fd;
}

static int add_pem_certs(X509_STORE *st, const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x;
	int n = 0;

	while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		X509_STORE_add_cert(st, x);
		X509_free(x);
		n++;
	}
	BIO_free(b);
	ERR_clear_error();
	return n;
}

int grpcx_tls_use_pair(SSL_CTX *ctx, const char *cert_pem, const char *key_pem)
{
	BIO *b = BIO_new_mem_buf(cert_pem, -1);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	EVP_PKEY *k = NULL;
	int ok = 0;

	if (x && SSL_CTX_use_certificate(ctx, x) == 1) {
		X509 *extra;
		while ((extra = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
			if (SSL_CTX_add_extra_chain_cert(ctx, extra) != 1)
				X509_free(extra);
		BIO_free(b);
		b = BIO_new_mem_buf(key_pem, -1);
		k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
		ok =
		    k && SSL_CTX_use_PrivateKey(ctx, k) == 1 && SSL_CTX_check_private_key(ctx) == 1;
	}
	X509_free(x);
	EVP_PKEY_free(k);
	BIO_free(b);
	ERR_clear_error();
	return ok ? 0 : -1;
}

/* The reason of the first OpenSSL error on the queue, or "". */
static const char *ssl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	return r ? r : "";
}

int grpcx_tls_probe(const char *target, const char *ca_pem, const char *cert_pem,
                    const char *key_pem, int timeout_ms, char *why, size_t wl)
{
	char host[256], port[32];
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	int fd = -1, ret = 0, is_ip;
	unsigned char probe_ip[16];
	static const unsigned char alpn[] = {2, 'h', '2'};

	why[0] = '\0';
	if (split_target(target, host, sizeof(host), port, sizeof(port)) < 0)
		return 0;
	is_ip = inet_pton(AF_INET, host, probe_ip) == 1 || inet_pton(AF_INET6, host, probe_ip) == 1;
	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
		goto out;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (ca_pem)
		add_pem_certs(SSL_CTX_get_cert_store(ctx), ca_pem);
	else
		SSL_CTX_set_default_verify_paths(ctx);
	if (cert_pem && key_pem && grpcx_tls_use_pair(ctx, cert_pem, key_pem) < 0)
		goto out;
	SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn));
	fd = connect_timeout(host, port, timeout_ms, why, wl);
	if (fd < 0) {
		ret = 1;
		goto out;
	}
	ssl = SSL_new(ctx);
	if (ssl == NULL)
		goto out;
	SSL_set_fd(ssl, fd);
	if (is_ip) {
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
	} else {
		SSL_set_tlsext_host_name(ssl, host);
		SSL_set1_host(ssl, host);
	}
	if (SSL_connect(ssl) != 1) {
		long vr = SSL_get_verify_result(ssl);

		if (vr != X509_V_OK)
			snprintf(why, wl, "the server's certificate is refused: %s",
			         X509_verify_cert_error_string(vr));
		else if (*ssl_reason())
			snprintf(why, wl, "the TLS handshake failed: %s", ssl_reason());
		else
			snprintf(why, wl,
			         "the server closed the connection during the TLS "
			         "handshake");
		ret = 1;
		goto out;
	}
	/* TLS 1.3: a server that wants a client certificate says so after our Finished. */
	{
		char b;
		int r = SSL_read(ssl, &b, 1);
		int se = r <= 0 ? SSL_get_error(ssl, r) : SSL_ERROR_NONE;

		if (se == SSL_ERROR_SSL) {
			snprintf(why, wl, "the server refused the TLS session: %s%s", ssl_reason(),
			         cert_pem ? "" : " (no client certificate is configured)");
			ret = 1;
		}
	}
out:
	if (ssl)
		SSL_free(ssl);
	if (fd >= 0)
		close(fd);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return ret;
}
