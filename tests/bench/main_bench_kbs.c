/*
 * bench-kbs: full KBS handshakes per second — /auth, /attest with sample evidence bound to a
 * fresh P-256 key, GET of a resource and JWE decryption — at several numbers of concurrent
 * attesters, each a thread with its own keep-alive connection, as guest-components does it.
 *   bench-kbs --url http://127.0.0.1:8080 --path default/bench/key [--seconds 5]
 *             [--concurrency 1,16,64] [--expect SECRET]
 * Prints one line per concurrency: handshakes/s, p50 and p99 latency, failures.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "b64.h"
#include "hash.h"
#include "jose.h"

/* Weak until common/jose.c provides it (linked in through jwk_to_pkey's object). */
#pragma weak jwe_decrypt

static char host[256] = "127.0.0.1";
static int port = 8080;
static const char *res_path = "default/bench/key";
static const char *expect;

struct worker {
	double stop_at;
	long ok, fail;
	float *lat_ms;
	size_t nlat, cap;
	char last_err[256];
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dial(void)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	if (getaddrinfo(host, ps, &hints, &ai) != 0)
		return -1;
	int fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd >= 0) {
		struct timeval tv = {.tv_sec = 30};
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	return fd;
}

struct resp {
	int status;
	char cookie[128];
	char *body;
	size_t len;
};

/* One request on a keep-alive connection (reconnects once if the server closed it). */
static int http(int *fd, const char *method, const char *path, const char *cookie, const char *body,
                struct resp *r)
{
	char req[16384];
	size_t bl = body ? strlen(body) : 0;
	int hl = snprintf(req, sizeof(req) - bl,
	                  "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
	                  "Content-Length: %zu\r\n%s%s%s\r\n",
	                  method, path, host, bl, cookie ? "Cookie: " : "", cookie ? cookie : "",
	                  cookie ? "\r\n" : "");
	if (hl < 0 || (size_t)hl + bl >= sizeof(req))
		return -1;
	memcpy(req + hl, body ? body : "", bl); /* one write: no Nagle wait between head and body */
	hl += (int)bl;
	memset(r, 0, sizeof(*r));
	for (int attempt = 0; attempt < 2; attempt++) {
		if (*fd < 0 && (*fd = dial()) < 0)
			return -1;
		if (write(*fd, req, (size_t)hl) != hl) {
			close(*fd);
			*fd = -1;
			continue;
		}
		size_t cap = 16384, n = 0;
		char *buf = malloc(cap + 1);
		char *he = NULL;
		size_t want = 0;
		for (;;) {
			if (n == cap) {
				char *nb = realloc(buf, cap * 2 + 1);
				if (!nb)
					break;
				buf = nb;
				cap *= 2;
			}
			ssize_t k = read(*fd, buf + n, cap - n);
			if (k <= 0)
				break;
			n += (size_t)k;
			buf[n] = 0;
			if (!he && (he = strstr(buf, "\r\n\r\n"))) {
				const char *cl = strcasestr(buf, "\r\nContent-Length:");
				want =
				    (size_t)(he + 4 - buf) + (cl ? strtoul(cl + 17, NULL, 10) : 0);
			}
			if (he && n >= want)
				break;
		}
		if (!he || n < want) {
			free(buf);
			close(*fd);
			*fd = -1;
			continue;
		}
		r->status = atoi(buf + 9);
		const char *sc = strcasestr(buf, "\r\nSet-Cookie: ");
		if (sc && sc < he) {
			sc += 14;
			size_t cl = strcspn(sc, ";\r");
			if (cl < sizeof(r->cookie))
				memcpy(r->cookie, sc, cl);
		}
		r->len = want - (size_t)(he + 4 - buf);
		r->body = malloc(r->len + 1);
		memcpy(r->body, he + 4, r->len);
		r->body[r->len] = 0;
		free(buf);
		return 0;
	}
	return -1;
}

static char *b64u_bn(EVP_PKEY *k, const char *param)
{
	BIGNUM *bn = NULL;
	uint8_t raw[32];
	EVP_PKEY_get_bn_param(k, param, &bn);
	BN_bn2binpad(bn, raw, 32);
	BN_free(bn);
	return b64_encode(raw, 32, B64_URL);
}

static int handshake(int *fd, char *err, size_t errlen)
{
	struct resp r;
	int rc = -1;
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	char *x = b64u_bn(key, OSSL_PKEY_PARAM_EC_PUB_X),
	     *y = b64u_bn(key, OSSL_PKEY_PARAM_EC_PUB_Y);
	char cookie[160] = "", nonce[128] = "", buf[4096];
	if (http(fd, "POST", "/kbs/v0/auth", NULL,
	         "{\"version\":\"0.4.0\",\"tee\":\"sample\",\"extra-params\":\"\"}", &r) ||
	    r.status != 200) {
		snprintf(err, errlen, "auth: status %d", r.status);
		goto out;
	}
	snprintf(cookie, sizeof(cookie), "%s", r.cookie);
	const char *np = strstr(r.body, "\"nonce\":\"");
	if (np)
		sscanf(np + 9, "%127[^\"]", nonce);
	free(r.body);
	/* RFC 8785 form of the runtime data: keys sorted, compact; values need no escaping */
	char pk[512];
	snprintf(pk, sizeof(pk),
	         "{\"alg\":\"ECDH-ES+A256KW\",\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":"
	         "\"%s\"}",
	         x, y);
	snprintf(buf, sizeof(buf),
	         "{\"additional-evidence\":\"\",\"nonce\":\"%s\",\"tee-pubkey\":%s}", nonce, pk);
	uint8_t d[HASH_MAX];
	size_t dl = hash_digest(HASH_SHA384, buf, strlen(buf), d);
	char *rd = b64_encode(d, dl, B64_STD);
	snprintf(buf, sizeof(buf),
	         "{\"runtime-data\":{\"nonce\":\"%s\",\"tee-pubkey\":%s},\"tee-evidence\":"
	         "{\"primary_evidence\":{\"svn\":\"1\",\"report_data\":\"%s\"},"
	         "\"additional_evidence\":\"\"}}",
	         nonce, pk, rd);
	free(rd);
	if (http(fd, "POST", "/kbs/v0/attest", cookie, buf, &r) || r.status != 200) {
		snprintf(err, errlen, "attest: status %d %.150s", r.status, r.body ? r.body : "");
		free(r.body);
		goto out;
	}
	free(r.body);
	char path[300];
	snprintf(path, sizeof(path), "/kbs/v0/resource/%s", res_path);
	if (http(fd, "GET", path, cookie, NULL, &r) || r.status != 200) {
		snprintf(err, errlen, "resource: status %d %.150s", r.status, r.body ? r.body : "");
		free(r.body);
		goto out;
	}
	json_t *jwe = json_loadb(r.body, r.len, 0, NULL);
	free(r.body);
	uint8_t *plain = NULL;
	size_t plen = 0;
	struct err e = {0};
	if (!jwe_decrypt)
		err_set(&e, "this build has no JWE decryption");
	if (!jwe || !jwe_decrypt || jwe_decrypt(jwe, key, &plain, &plen, &e) != 0) {
		snprintf(err, errlen, "JWE: %.200s", e.msg);
		json_decref(jwe);
		goto out;
	}
	json_decref(jwe);
	if (expect && (plen != strlen(expect) || memcmp(plain, expect, plen))) {
		snprintf(err, errlen, "secret differs");
		free(plain);
		goto out;
	}
	free(plain);
	rc = 0;
out:
	free(x);
	free(y);
	EVP_PKEY_free(key);
	return rc;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int fd = -1;
	while (now_s() < w->stop_at) {
		double t0 = now_s();
		if (handshake(&fd, w->last_err, sizeof(w->last_err)) != 0) {
			w->fail++;
			if (fd >= 0) {
				close(fd);
				fd = -1;
			}
			continue;
		}
		w->ok++;
		if (w->nlat == w->cap) {
			w->cap = w->cap ? w->cap * 2 : 1024;
			w->lat_ms = realloc(w->lat_ms, w->cap * sizeof(float));
		}
		w->lat_ms[w->nlat++] = (float)((now_s() - t0) * 1000);
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static int cmpf(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return x < y ? -1 : x > y;
}

static void run(int n, double secs)
{
	struct worker *w = calloc((size_t)n, sizeof(*w));
	pthread_t *t = calloc((size_t)n, sizeof(*t));
	double t0 = now_s();
	for (int i = 0; i < n; i++) {
		w[i].stop_at = t0 + secs;
		pthread_create(&t[i], NULL, worker_main, &w[i]);
	}
	long ok = 0, fail = 0;
	size_t nl = 0;
	for (int i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		ok += w[i].ok;
		fail += w[i].fail;
		nl += w[i].nlat;
	}
	double el = now_s() - t0;
	float *all = malloc((nl ? nl : 1) * sizeof(float));
	size_t k = 0;
	const char *last = NULL;
	for (int i = 0; i < n; i++) {
		memcpy(all + k, w[i].lat_ms, w[i].nlat * sizeof(float));
		k += w[i].nlat;
		if (w[i].last_err[0])
			last = w[i].last_err;
	}
	qsort(all, nl, sizeof(float), cmpf);
	printf("kbs handshakes (auth+attest+resource+JWE), %2d attesters: %8.1f /s  p50 %7.2f ms  "
	       "p99 %7.2f ms  (%ld ok, %ld failed)\n",
	       n, ok / el, nl ? all[nl / 2] : 0.0, nl ? all[(size_t)(nl * 0.99)] : 0.0, ok, fail);
	if (fail && last)
		printf("  last failure: %s\n", last);
	fflush(stdout);
	for (int i = 0; i < n; i++)
		free(w[i].lat_ms);
	free(all);
	free(w);
	free(t);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"url", required_argument, NULL, 'u'},
	                                     {"path", required_argument, NULL, 'p'},
	                                     {"seconds", required_argument, NULL, 's'},
	                                     {"concurrency", required_argument, NULL, 'c'},
	                                     {"expect", required_argument, NULL, 'e'},
	                                     {NULL, 0, NULL, 0}};
	double secs = 5;
	char conc[128] = "1,16,64";
	int o;
	while ((o = getopt_long(argc, argv, "u:p:s:c:e:", opts, NULL)) != -1) {
		switch (o) {
		case 'u':
			if (sscanf(optarg, "http://%255[^:/]:%d", host, &port) < 1) {
				fprintf(stderr, "bench-kbs: --url http://host:port\n");
				return 2;
			}
			break;
		case 'p':
			res_path = optarg;
			break;
		case 's':
			secs = atof(optarg);
			break;
		case 'c':
			snprintf(conc, sizeof(conc), "%s", optarg);
			break;
		case 'e':
			expect = optarg;
			break;
		default:
			fprintf(stderr, "usage: bench-kbs --url URL --path R/T/G [--seconds N] "
			                "[--concurrency 1,16,64] [--expect SECRET]\n");
			return 2;
		}
	}
	for (char *s = strtok(conc, ","); s; s = strtok(NULL, ","))
		run(atoi(s), secs);
	return 0;
}
