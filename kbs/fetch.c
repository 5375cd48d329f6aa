/*
 * fetch: the KBS's outbound HTTP(S) calls (JWK sets, OIDC discovery, Vault) over libcurl.
 * One easy handle per call, so any thread may fetch; no redirects are followed (a JWKS or a
 * secret store that moves must be reconfigured, not trusted to say where it went); every call
 * has a total timeout and a response-size cap.
 *
 * Trust: `ca_pem` (PEM text, several certificates allowed) when given; otherwise the file
 * named by SSL_CERT_FILE (and directory SSL_CERT_DIR) as OpenSSL-based clients honour them;
 * otherwise the system roots. `insecure` turns verification off (Vault's verify_ssl = false).
 */
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kbs.h"

struct sink {
	char *p;
	size_t n, cap, max;
	int overflow;
};

static size_t on_data(char *d, size_t sz, size_t nm, void *u)
{
	struct sink *s = u;
	size_t n = sz * nm;
	if (s->n + n > s->max) {
		s->overflow = 1;
		return 0;
	}
	if (s->n + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		while (cap < s->n + n + 1)
			cap *= 2;
		/* not realloc: the old block may hold part of a secret (a Vault answer) and must
		 * be wiped before it goes back to the allocator */
		char *np = malloc(cap);
		if (!np)
			return 0;
		if (s->p) {
			memcpy(np, s->p, s->n);
			OPENSSL_cleanse(s->p, s->cap);
			free(s->p);
		}
		s->p = np;
		s->cap = cap;
	}
	memcpy(s->p + s->n, d, n);
	s->n += n;
	s->p[s->n] = 0;
	return n;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

int kbs_fetch(const struct kbs_fetch *f, const char *method, const char *url,
              const char *const *headers, const void *body, size_t blen, long *status, char **out,
              size_t *olen, struct err *err)
{
	pthread_once(&curl_once, curl_init);
	*out = NULL;
	if (olen)
		*olen = 0;
	*status = 0;
	CURL *c = curl_easy_init();
	if (!c)
		return err_set(err, "cannot create an HTTP client");
	char ebuf[CURL_ERROR_SIZE] = "";
	struct sink s = {.max = f && f->max_bytes ? f->max_bytes : (4u << 20)};
	struct curl_slist *h = NULL;
	for (size_t i = 0; headers && headers[i]; i++)
		h = curl_slist_append(h, headers[i]);
	long tmo = f && f->timeout_ms > 0 ? f->timeout_ms : 10000;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	/* HTTP/1.1 only: a JWK set on a gRPC port (grpc-as) is served to HTTP/1.1, and an h2
	 * connection there would reach the gRPC server instead */
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, tmo);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, tmo);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "ctrustee-kbs");
	if (h)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (method && strcmp(method, "GET") != 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)blen);
	}
	if (f && f->insecure) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	} else if (f && f->ca_pem) {
		struct curl_blob blob = {.data = (void *)f->ca_pem,
		                         .len = strlen(f->ca_pem),
		                         .flags = CURL_BLOB_COPY};
		curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
	} else {
		const char *file = getenv("SSL_CERT_FILE"), *dir = getenv("SSL_CERT_DIR");
		if (file && *file)
			curl_easy_setopt(c, CURLOPT_CAINFO, file);
		if (dir && *dir)
			curl_easy_setopt(c, CURLOPT_CAPATH, dir);
	}
	CURLcode rc = curl_easy_perform(c);
	int ret = 0;
	if (rc != CURLE_OK) {
		if (s.overflow)
			err_set(err, "%s: the answer is larger than %zu bytes", url, s.max);
		else
			err_set(err, "%s: %s", url, ebuf[0] ? ebuf : curl_easy_strerror(rc));
		if (s.p)
			OPENSSL_cleanse(s.p, s.cap);
		free(s.p);
		ret = -1;
	} else {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
		*out = s.p ? s.p : strdup("");
		if (olen)
			*olen = s.n;
		if (!*out)
			ret = err_set(err, "out of memory");
	}
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return ret;
}
