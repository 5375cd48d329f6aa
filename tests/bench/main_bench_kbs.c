/*
 * bench-kbs: full KBS handshakes per second — /auth, /attest with sample evidence bound to a
 * fresh P-256 key, GET of a resource and JWE decryption — at several numbers of concurrent
 * attesters, each a thread with its own keep-alive connection, as guest-components does it.
 *   bench-kbs --url http://127.0.0.1:8080 --path default/bench/key [--seconds 5]
 *             [--concurrency 1,16,64] [--expect SECRET]
 * Prints one line per concurrency: handshakes/s, p50, p99 and p99.9 latency, failures.
 * --cpu name=pid,... reads each daemon's utime+stime from /proc/<pid>/stat around every run
 * and prints the server CPU per handshake, per daemon and in total, beside the crypto floor
 * (one ES256 signature, one P-256 key generation, one P-256 ECDH derivation, timed with
 * OpenSSL in this process in the same run) and their ratio. --json FILE writes every figure.
 * --rate R paces the attesters together at R handshakes/s, a constant arrival rate as a soak
 * wants (the KBS holds rate x session lifetime sessions, so unpaced, its RSS would follow the
 * machine's speed). Soak mode (make soak) adds [--report-every 30] [--warmup 120] [--rss
 * kbs=PID,...]
 * [--max-rss-growth 5]: a line per interval with that interval's figures and each daemon's
 * RSS, the failure causes, and a verdict; the exit status is 1 when a handshake failed or a
 * daemon's RSS at the end exceeds its first sample after warm-up by more than the limit.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "b64.h"
#include "bench_time.h"
#include "hash.h"
#include "jose/jose.h"

static char host[256] = "127.0.0.1";
static int port = 8080;
static const char *res_path = "default/bench/key";
static const char *expect;

/* Latencies go into a log-bucketed histogram (1% wide buckets from 10 µs), so a soak of
 * millions of handshakes needs no growing arrays and a reporter can read it while workers
 * run. Percentiles are the upper edge of the bucket: at most 1% high. */
#define HBUCKETS 2048
#define HMIN_MS 0.01
#define HSTEP 1.01

struct histo {
	uint64_t n[HBUCKETS];
	uint64_t count;
};

static void histo_add(struct histo *h, double ms)
{
	int i = ms <= HMIN_MS ? 0 : (int)(log(ms / HMIN_MS) / log(HSTEP));
	if (i >= HBUCKETS)
		i = HBUCKETS - 1;
	h->n[i]++;
	h->count++;
}

static void histo_merge(struct histo *into, const struct histo *h)
{
	for (int i = 0; i < HBUCKETS; i++)
		into->n[i] += h->n[i];
	into->count += h->count;
}

static double histo_pct(const struct histo *h, double q)
{
	if (h->count == 0)
		return 0;
	uint64_t want = (uint64_t)ceil(q * (double)h->count), seen = 0;
	if (want == 0)
		want = 1;
	for (int i = 0; i < HBUCKETS; i++) {
		seen += h->n[i];
		if (seen >= want)
			return HMIN_MS * pow(HSTEP, i + 1);
	}
	return HMIN_MS * pow(HSTEP, HBUCKETS);
}

struct worker {
	double stop_at;
	double period, phase; /* --rate: seconds between this worker's handshakes, first offset */
	pthread_mutex_t mu;   /* guards ok, fail and h against the reporter */
	long ok, fail;
	struct histo h;
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
		/* the response in a stack buffer; a bigger one moves to the heap */
		char sbuf[16385];
		size_t cap = sizeof(sbuf) - 1, n = 0;
		char *buf = sbuf;
		char *he = NULL;
		size_t want = 0;
		for (;;) {
			if (n == cap) {
				char *nb =
				    buf == sbuf ? malloc(cap * 2 + 1) : realloc(buf, cap * 2 + 1);
				if (!nb)
					break;
				if (buf == sbuf)
					memcpy(nb, sbuf, n + 1);
				he = he ? nb + (he - buf) : NULL;
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
			if (buf != sbuf)
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
		if (buf != sbuf)
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

/* A fresh P-256 key for every handshake, as an attester makes one; the key-generation context
 * (curve and algorithm looked up once) is kept per thread. */
static EVP_PKEY *fresh_key(void)
{
	static __thread EVP_PKEY_CTX *ctx;
	EVP_PKEY *k = NULL;

	if (ctx == NULL) {
		ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
		if (ctx == NULL || EVP_PKEY_keygen_init(ctx) <= 0 ||
		    EVP_PKEY_CTX_set_group_name(ctx, "P-256") <= 0) {
			EVP_PKEY_CTX_free(ctx);
			ctx = NULL;
			return NULL;
		}
	}
	if (EVP_PKEY_keygen(ctx, &k) <= 0)
		return NULL;
	return k;
}

static int handshake(int *fd, char *err, size_t errlen)
{
	struct resp r;
	int rc = -1;
	EVP_PKEY *key = fresh_key();
	char *x = b64u_bn(key, OSSL_PKEY_PARAM_EC_PUB_X),
	     *y = b64u_bn(key, OSSL_PKEY_PARAM_EC_PUB_Y);
	char cookie[160] = "", nonce[128] = "", buf[4096];
	if (http(fd, "POST", "/kbs/v0/auth", NULL,
	         "{\"version\":\"0.4.0\",\"tee\":\"sample\",\"extra-params\":\"\"}", &r) ||
	    r.status != 200) {
		snprintf(err, errlen, "auth: status %d %.150s", r.status,
		         r.body ? r.body : "(no response)");
		free(r.body);
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
		snprintf(err, errlen, "attest: status %d %.150s", r.status,
		         r.body ? r.body : "(no response)");
		free(r.body);
		goto out;
	}
	free(r.body);
	char path[300];
	snprintf(path, sizeof(path), "/kbs/v0/resource/%s", res_path);
	if (http(fd, "GET", path, cookie, NULL, &r) || r.status != 200) {
		snprintf(err, errlen, "resource: status %d %.150s", r.status,
		         r.body ? r.body : "(no response)");
		free(r.body);
		goto out;
	}
	json_t *jwe = json_loadb(r.body, r.len, 0, NULL);
	free(r.body);
	uint8_t *plain = NULL;
	size_t plen = 0;
	struct err e = {0};
	if (!jwe || jwe_decrypt(jwe, key, &plain, &plen, &e) != 0) {
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

/* Distinct failure causes with their counts, so a soak says what went wrong, not only how
 * often. */
#define MAX_CAUSES 16
static struct {
	char msg[200];
	long n;
} causes[MAX_CAUSES];
static long other_causes;
static pthread_mutex_t causes_mu = PTHREAD_MUTEX_INITIALIZER;

static void count_cause(const char *msg)
{
	pthread_mutex_lock(&causes_mu);
	int i;
	for (i = 0; i < MAX_CAUSES && causes[i].n; i++)
		if (strncmp(causes[i].msg, msg, sizeof(causes[i].msg) - 1) == 0)
			break;
	if (i == MAX_CAUSES) {
		other_causes++;
	} else {
		if (!causes[i].n)
			snprintf(causes[i].msg, sizeof(causes[i].msg), "%.199s", msg);
		causes[i].n++;
	}
	pthread_mutex_unlock(&causes_mu);
}

static void print_causes(void)
{
	for (int i = 0; i < MAX_CAUSES && causes[i].n; i++)
		printf("  failed %ld x: %s\n", causes[i].n, causes[i].msg);
	if (other_causes)
		printf("  failed %ld x: (other causes)\n", other_causes);
	memset(causes, 0, sizeof(causes));
	other_causes = 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int fd = -1;
	double next = now_s() + w->period * w->phase;
	while (now_s() < w->stop_at) {
		if (w->period > 0) { /* paced: start one handshake every period, never in bursts */
			double now = now_s();
			if (next > now)
				usleep((useconds_t)((next - now) * 1e6));
			next = (next > now ? next : now) + w->period;
			if (now_s() >= w->stop_at)
				break;
		}
		double t0 = now_s();
		if (handshake(&fd, w->last_err, sizeof(w->last_err)) != 0) {
			count_cause(w->last_err);
			pthread_mutex_lock(&w->mu);
			w->fail++;
			pthread_mutex_unlock(&w->mu);
			if (fd >= 0) {
				close(fd);
				fd = -1;
			}
			continue;
		}
		double ms = (now_s() - t0) * 1000;
		pthread_mutex_lock(&w->mu);
		w->ok++;
		histo_add(&w->h, ms);
		pthread_mutex_unlock(&w->mu);
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* Moves what the workers recorded since the last drain into *h, *ok, *fail. */
static void drain(struct worker *w, int n, struct histo *h, long *ok, long *fail)
{
	for (int i = 0; i < n; i++) {
		pthread_mutex_lock(&w[i].mu);
		histo_merge(h, &w[i].h);
		*ok += w[i].ok;
		*fail += w[i].fail;
		memset(&w[i].h, 0, sizeof(w[i].h));
		w[i].ok = w[i].fail = 0;
		pthread_mutex_unlock(&w[i].mu);
	}
}

/* --rss name=pid,...: daemons whose resident set the soak samples at each report. */
#define MAX_RSS 8
static struct {
	char name[32];
	int pid;
	long base_kb, last_kb, max_kb; /* base: first sample after warm-up */
} rss[MAX_RSS];
static int nrss;

static long rss_kb(int pid)
{
	char path[64], line[256];
	long kb = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* --cpu name=pid,...: daemons whose CPU time is read around each run. */
static struct {
	char name[32];
	int pid;
} cpu[MAX_RSS];
static int ncpu;
static double floor_ms; /* the crypto floor, measured at start */
static json_t *jout;    /* --json: the figures, written at exit */

/* utime + stime of a process in seconds (fields 14 and 15 of /proc/<pid>/stat, after the
 * command name, which may hold spaces and parentheses: read from the last ')'). */
static double cpu_s(int pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *p = strrchr(buf, ')');
	unsigned long long ut = 0, st = 0;
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double thread_cpu_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The unavoidable crypto of one handshake on the server side: the AS signs one ES256 token,
 * the KBS makes one ephemeral P-256 key and derives one ECDH secret for the JWE, each done the
 * cheapest correct way (the key from the curve's parameters, the peer not checked a second
 * time at derivation, as common/jose/jwe.c does). CPU time of this thread, median of rounds of
 * 50, so other processes on the machine move it little. */
static double crypto_floor_ms(void)
{
	EVP_PKEY *signer = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *peer = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), *params = NULL;
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (pc && EVP_PKEY_paramgen_init(pc) == 1 && EVP_PKEY_CTX_set_group_name(pc, "P-256") == 1)
		EVP_PKEY_paramgen(pc, &params);
	EVP_PKEY_CTX_free(pc);
	uint8_t msg[600], sig[80], z[32];
	RAND_bytes(msg, sizeof(msg));
	double r[15];
	for (int round = 0; round < 15; round++) {
		double t0 = thread_cpu_ms();
		for (int i = 0; i < 50; i++) {
			EVP_MD_CTX *md = EVP_MD_CTX_new();
			size_t sl = sizeof(sig), zl = sizeof(z);
			EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, signer);
			EVP_DigestSign(md, sig, &sl, msg, sizeof(msg));
			EVP_MD_CTX_free(md);
			EVP_PKEY *eph = NULL;
			EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_from_pkey(NULL, params, NULL);
			EVP_PKEY_keygen_init(kc);
			EVP_PKEY_keygen(kc, &eph);
			EVP_PKEY_CTX_free(kc);
			EVP_PKEY_CTX *dc = EVP_PKEY_CTX_new(eph, NULL);
			EVP_PKEY_derive_init(dc);
			EVP_PKEY_derive_set_peer_ex(dc, peer, 0);
			EVP_PKEY_derive(dc, z, &zl);
			EVP_PKEY_CTX_free(dc);
			EVP_PKEY_free(eph);
		}
		r[round] = (thread_cpu_ms() - t0) / 50;
	}
	EVP_PKEY_free(signer);
	EVP_PKEY_free(peer);
	EVP_PKEY_free(params);
	return median(r, 15);
}

static void print_line(const char *what, int n, double secs, const struct histo *h, long ok,
                       long fail)
{
	printf("%s, %2d attesters: %8.1f /s  p50 %7.2f ms  p99 %7.2f ms  p999 %7.2f ms  (%ld ok, "
	       "%ld failed)\n",
	       what, n, secs > 0 ? ok / secs : 0.0, histo_pct(h, 0.50), histo_pct(h, 0.99),
	       histo_pct(h, 0.999), ok, fail);
}

/* Prints (and adds to --json) the server CPU per handshake of one run beside the floor. */
static void report_cpu(int n, double secs, const struct histo *h, long ok, long fail,
                       const double *cpu0)
{
	json_t *r = json_pack("{s:i,s:f,s:f,s:f,s:f,s:I,s:I}", "attesters", n, "per_s",
	                      secs > 0 ? ok / secs : 0.0, "p50_ms", histo_pct(h, 0.50), "p99_ms",
	                      histo_pct(h, 0.99), "p999_ms", histo_pct(h, 0.999), "ok",
	                      (json_int_t)ok, "failed", (json_int_t)fail);
	if (ncpu && ok) {
		json_t *c = json_object();
		double total = 0;
		printf("  server CPU per handshake:");
		for (int i = 0; i < ncpu; i++) {
			double ms = (cpu_s(cpu[i].pid) - cpu0[i]) * 1e3 / (double)ok;
			total += ms;
			printf(" %s %.3f ms,", cpu[i].name, ms);
			json_object_set_new(c, cpu[i].name, json_real(ms));
		}
		json_object_set_new(c, "total", json_real(total));
		json_object_set_new(r, "cpu_ms_per_handshake", c);
		printf(" total %.3f ms = %.1fx the crypto floor (%.3f ms)\n", total,
		       floor_ms > 0 ? total / floor_ms : 0.0, floor_ms);
		if (floor_ms > 0)
			json_object_set_new(r, "cpu_floor_ratio", json_real(total / floor_ms));
	}
	if (jout)
		json_array_append_new(json_object_get(jout, "runs"), r);
	else
		json_decref(r);
}

/* Runs n attesters for secs. With report_every > 0 (the soak), prints one line per interval
 * with that interval's throughput and latencies and each --rss daemon's RSS, then a summary
 * judged against max_growth (percent RSS growth after warmup seconds). Returns the number of
 * failed handshakes plus one per daemon whose RSS grew too much. */
static long run(int n, double secs, double rate, double report_every, double warmup,
                double max_growth)
{
	struct worker *w = calloc((size_t)n, sizeof(*w));
	pthread_t *t = calloc((size_t)n, sizeof(*t));
	struct histo *total = calloc(1, sizeof(*total)), *iv = calloc(1, sizeof(*iv)),
	             *steady = calloc(1, sizeof(*steady));
	long ok = 0, fail = 0, steady_ok = 0, steady_fail = 0, bad = 0;
	double cpu0[MAX_RSS];
	for (int i = 0; i < ncpu; i++)
		cpu0[i] = cpu_s(cpu[i].pid);
	double t0 = now_s(), steady_secs = 0;
	for (int i = 0; i < n; i++) {
		w[i].stop_at = t0 + secs;
		w[i].period = rate > 0 ? n / rate : 0;
		w[i].phase = (double)i / n;
		pthread_mutex_init(&w[i].mu, NULL);
		pthread_create(&t[i], NULL, worker_main, &w[i]);
	}
	if (report_every > 0) {
		printf(
		    "soak: %d attesters for %.0f s, a report every %.0f s, RSS judged after %.0f s "
		    "of warm-up\n",
		    n, secs, report_every, warmup);
		if (rate > 0)
			printf("soak: paced at %.0f handshakes/s in all\n", rate);
		double next = t0 + report_every, last = t0;
		while (last < t0 + secs - 0.001) {
			double at = next < t0 + secs ? next : t0 + secs;
			while (now_s() < at)
				usleep(50 * 1000);
			long iok = 0, ifail = 0;
			memset(iv, 0, sizeof(*iv));
			drain(w, n, iv, &iok, &ifail);
			double now = now_s();
			char what[64];
			snprintf(what, sizeof(what), "[%5.0f s]", now - t0);
			print_line(what, n, now - last, iv, iok, ifail);
			histo_merge(total, iv);
			ok += iok;
			fail += ifail;
			if (last - t0 >= warmup - 0.001) { /* intervals that began after warm-up */
				histo_merge(steady, iv);
				steady_ok += iok;
				steady_fail += ifail;
				steady_secs += now - last;
			}
			for (int i = 0; i < nrss; i++) {
				long kb = rss_kb(rss[i].pid);
				rss[i].last_kb = kb;
				if (now - t0 >= warmup && !rss[i].base_kb)
					rss[i].base_kb = kb;
				if (rss[i].base_kb && kb > rss[i].max_kb)
					rss[i].max_kb = kb;
				printf("%s   RSS %s %.1f MB", i ? "," : "         ", rss[i].name,
				       kb / 1024.0);
			}
			if (nrss)
				printf("\n");
			if (ifail)
				print_causes();
			fflush(stdout);
			last = now;
			next += report_every;
		}
	}
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	drain(w, n, total, &ok, &fail);
	double el = now_s() - t0;
	const char *lastmsg = NULL;
	for (int i = 0; i < n; i++)
		if (w[i].last_err[0])
			lastmsg = w[i].last_err;
	if (report_every > 0) {
		print_line("soak total", n, el, total, ok, fail);
		print_line("after warm-up", n, steady_secs, steady, steady_ok, steady_fail);
		for (int i = 0; i < nrss; i++) {
			double g = rss[i].base_kb ? 100.0 * (rss[i].last_kb - rss[i].base_kb) /
			                                (double)rss[i].base_kb
			                          : 0;
			int grew = g > max_growth;
			printf("RSS %-8s after warm-up %.1f MB, at the end %.1f MB (%+.1f%%), peak "
			       "%.1f "
			       "MB: %s\n",
			       rss[i].name, rss[i].base_kb / 1024.0, rss[i].last_kb / 1024.0, g,
			       rss[i].max_kb / 1024.0,
			       grew ? "GREW more than the limit" : "stable");
			bad += grew;
		}
		printf(
		    "soak verdict: %ld failed handshakes, %ld daemons grew more than %.0f%%: %s\n",
		    fail, bad, max_growth, fail || bad ? "FAIL" : "PASS");
	} else {
		print_line("kbs handshakes (auth+attest+resource+JWE)", n, el, total, ok, fail);
		if (fail && lastmsg)
			printf("  last failure: %s\n", lastmsg);
		report_cpu(n, el, total, ok, fail, cpu0);
	}
	print_causes();
	fflush(stdout);
	for (int i = 0; i < n; i++)
		pthread_mutex_destroy(&w[i].mu);
	free(total);
	free(iv);
	free(steady);
	free(w);
	free(t);
	return fail + bad;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"url", required_argument, NULL, 'u'},
	                                     {"path", required_argument, NULL, 'p'},
	                                     {"seconds", required_argument, NULL, 's'},
	                                     {"concurrency", required_argument, NULL, 'c'},
	                                     {"expect", required_argument, NULL, 'e'},
	                                     {"report-every", required_argument, NULL, 'r'},
	                                     {"warmup", required_argument, NULL, 'w'},
	                                     {"rss", required_argument, NULL, 'm'},
	                                     {"max-rss-growth", required_argument, NULL, 'g'},
	                                     {"rate", required_argument, NULL, 'R'},
	                                     {"cpu", required_argument, NULL, 'C'},
	                                     {"json", required_argument, NULL, 'j'},
	                                     {NULL, 0, NULL, 0}};
	const char *json_path = NULL;
	double secs = 5, report_every = 0, warmup = 120, max_growth = 5, rate = 0;
	char conc[128] = "1,16,64";
	int o;
	while ((o = getopt_long(argc, argv, "u:p:s:c:e:r:w:m:g:R:C:j:", opts, NULL)) != -1) {
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
		case 'r':
			report_every = atof(optarg);
			break;
		case 'w':
			warmup = atof(optarg);
			break;
		case 'g':
			max_growth = atof(optarg);
			break;
		case 'R':
			rate = atof(optarg);
			break;
		case 'j':
			json_path = optarg;
			break;
		case 'C':
			for (char *e = strtok(optarg, ","); e && ncpu < MAX_RSS;
			     e = strtok(NULL, ",")) {
				char *eq = strchr(e, '=');
				if (!eq || atoi(eq + 1) <= 0) {
					fprintf(stderr,
					        "bench-kbs: --cpu name=pid[,name=pid...]\n");
					return 2;
				}
				snprintf(cpu[ncpu].name, sizeof(cpu[ncpu].name), "%.*s",
				         (int)(eq - e), e);
				cpu[ncpu++].pid = atoi(eq + 1);
			}
			break;
		case 'm':
			for (char *e = strtok(optarg, ","); e && nrss < MAX_RSS;
			     e = strtok(NULL, ",")) {
				char *eq = strchr(e, '=');
				if (!eq || atoi(eq + 1) <= 0) {
					fprintf(stderr,
					        "bench-kbs: --rss name=pid[,name=pid...]\n");
					return 2;
				}
				snprintf(rss[nrss].name, sizeof(rss[nrss].name), "%.*s",
				         (int)(eq - e), e);
				rss[nrss++].pid = atoi(eq + 1);
			}
			break;
		default:
			fprintf(stderr,
			        "usage: bench-kbs --url URL --path R/T/G [--seconds N] "
			        "[--concurrency 1,16,64] [--expect SECRET] [--rate PER_S] "
			        "[--report-every S "
			        "[--warmup S] [--rss name=pid,...] [--max-rss-growth PCT]]\n");
			return 2;
		}
	}
	if (json_path)
		jout = json_pack("{s:[]}", "runs");
	if (ncpu) {
		floor_ms = crypto_floor_ms();
		printf("crypto floor (ES256 sign + P-256 keygen + P-256 ECDH, OpenSSL, CPU time): "
		       "%.3f ms\n",
		       floor_ms);
		if (jout)
			json_object_set_new(jout, "crypto_floor_ms", json_real(floor_ms));
	}
	long bad = 0;
	for (char *s = strtok(conc, ","); s; s = strtok(NULL, ","))
		bad += run(atoi(s), secs, rate, report_every, warmup, max_growth);
	if (jout) {
		if (json_dump_file(jout, json_path, JSON_INDENT(1)) != 0)
			fprintf(stderr, "bench-kbs: cannot write %s\n", json_path);
		json_decref(jout);
	}
	return report_every > 0 && bad ? 1 : 0;
}
