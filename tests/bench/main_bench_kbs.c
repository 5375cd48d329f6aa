/*
 * bench-kbs: full KBS handshakes per second — /auth, /attest with sample evidence bound to a
 * fresh P-256 key, GET of a resource and JWE decryption — at several numbers of concurrent
 * attesters, each with its own keep-alive connection, session and key, as guest-components
 * does it; the attesters are state machines spread over one epoll thread per CPU
 * (--client-threads N), so the client's own CPU stays small beside the server's, and the run
 * prints it (bench client CPU per handshake).
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
#include <errno.h>
#include <stdarg.h>
#include <sys/epoll.h>
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
static int client_threads; /* --client-threads; 0: one per CPU */

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

/* The bytes of one request, head and body in one buffer so one write sends them (no Nagle
 * wait between the two). Returns the length, -1 when it does not fit. */
static int build_req(char *req, size_t cap, const char *method, const char *path,
                     const char *cookie, const char *body)
{
	size_t bl = body ? strlen(body) : 0;
	int hl = snprintf(req, cap - bl,
	                  "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
	                  "Content-Length: %zu\r\n%s%s%s\r\n",
	                  method, path, host, bl, cookie ? "Cookie: " : "", cookie ? cookie : "",
	                  cookie ? "\r\n" : "");
	if (hl < 0 || (size_t)hl + bl >= cap)
		return -1;
	memcpy(req + hl, body ? body : "", bl);
	return hl + (int)bl;
}

/* buf[0..n) (NUL-terminated) holds a complete response: 1 with *r filled (body copied),
 * 0 not complete yet. */
static int parse_resp(const char *buf, size_t n, struct resp *r)
{
	const char *he = strstr(buf, "\r\n\r\n");
	if (he == NULL)
		return 0;
	const char *cl = strcasestr(buf, "\r\nContent-Length:");
	size_t want = (size_t)(he + 4 - buf) + (cl && cl < he ? strtoul(cl + 17, NULL, 10) : 0);
	if (n < want)
		return 0;
	memset(r, 0, sizeof(*r));
	r->status = atoi(buf + 9);
	const char *sc = strcasestr(buf, "\r\nSet-Cookie: ");
	if (sc && sc < he) {
		sc += 14;
		size_t l = strcspn(sc, ";\r");
		if (l < sizeof(r->cookie))
			memcpy(r->cookie, sc, l);
	}
	r->len = want - (size_t)(he + 4 - buf);
	r->body = malloc(r->len + 1);
	memcpy(r->body, he + 4, r->len);
	r->body[r->len] = 0;
	return 1;
}

/* The key's x and y as base64url, from its encoded point (one conversion, as jwk_from_pkey). */
static int b64u_xy(EVP_PKEY *k, char **x, char **y)
{
	uint8_t rx[32], ry[32];
	if (jose_ec_point(k, 32, rx, ry) != 0)
		return -1;
	*x = b64_encode(rx, 32, B64_URL);
	*y = b64_encode(ry, 32, B64_URL);
	return *x && *y ? 0 : -1;
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

/* One attester: a state machine driven by its thread's epoll, so a thread carries many
 * attesters and the client's own CPU per handshake stays small beside the server's. Each
 * attester keeps its own keep-alive connection, session cookie and key, and goes through the
 * whole handshake in order: /auth, /attest, the resource, JWE decryption. */
enum { A_IDLE, A_AUTH, A_ATTEST, A_RESOURCE };
#define REQ_MAX 16384
#define RESP_TIMEOUT_S 30

struct att {
	struct worker *w;
	int ep, fd, step, reused, resent;
	EVP_PKEY *key;
	char *x, *y;
	char cookie[160];
	char req[REQ_MAX];
	int req_len;
	char *buf;
	size_t n, cap;
	double t0, deadline, next;
};

static void att_close(struct att *a)
{
	if (a->fd >= 0)
		close(a->fd);
	a->fd = -1;
}

static void att_reset(struct att *a)
{
	free(a->x);
	free(a->y);
	EVP_PKEY_free(a->key);
	a->x = a->y = NULL;
	a->key = NULL;
	a->step = A_IDLE;
	a->n = 0;
}

static void att_fail(struct att *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void att_fail(struct att *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->w->last_err, sizeof(a->w->last_err), fmt, ap);
	va_end(ap);
	count_cause(a->w->last_err);
	pthread_mutex_lock(&a->w->mu);
	a->w->fail++;
	pthread_mutex_unlock(&a->w->mu);
	att_close(a);
	att_reset(a);
}

/* Sends one request on the attester's connection (dialled when it has none), kept so it can be
 * sent once more if the server had closed a reused connection. 0, or -1 after att_fail. */
static int att_send(struct att *a)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		if (a->fd < 0) {
			if ((a->fd = dial()) < 0) {
				att_fail(a, "cannot connect to %s:%d", host, port);
				return -1;
			}
			struct epoll_event ev = {.events = EPOLLIN, .data.ptr = a};
			epoll_ctl(a->ep, EPOLL_CTL_ADD, a->fd, &ev);
			a->reused = 0;
		}
		if (write(a->fd, a->req, (size_t)a->req_len) == a->req_len) {
			a->n = 0;
			a->deadline = now_s() + RESP_TIMEOUT_S;
			return 0;
		}
		att_close(a);
	}
	att_fail(a, "cannot send the request");
	return -1;
}

static int att_request(struct att *a, int step, const char *method, const char *path,
                       const char *body)
{
	a->req_len =
	    build_req(a->req, sizeof(a->req), method, path, a->cookie[0] ? a->cookie : NULL, body);
	if (a->req_len < 0) {
		att_fail(a, "request too large");
		return -1;
	}
	a->step = step;
	a->resent = 0;
	return att_send(a);
}

static void att_start(struct att *a)
{
	a->t0 = now_s();
	a->cookie[0] = 0;
	a->key = fresh_key();
	if (a->key == NULL) {
		att_fail(a, "cannot make a P-256 key");
		return;
	}
	if (b64u_xy(a->key, &a->x, &a->y) != 0) {
		att_fail(a, "cannot export the P-256 key");
		return;
	}
	att_request(a, A_AUTH, "POST", "/kbs/v0/auth",
	            "{\"version\":\"0.4.0\",\"tee\":\"sample\",\"extra-params\":\"\"}");
}

/* The evidence for /attest: the sample TEE's report bound to the nonce and the key through
 * the RFC 8785 form of the runtime data (keys sorted, compact; no value needs escaping). */
static void attest_body(const struct att *a, const char *nonce, char *buf, size_t cap)
{
	char pk[512];
	snprintf(pk, sizeof(pk),
	         "{\"alg\":\"ECDH-ES+A256KW\",\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":"
	         "\"%s\"}",
	         a->x, a->y);
	snprintf(buf, cap, "{\"additional-evidence\":\"\",\"nonce\":\"%s\",\"tee-pubkey\":%s}",
	         nonce, pk);
	uint8_t d[HASH_MAX];
	size_t dl = hash_digest(HASH_SHA384, buf, strlen(buf), d);
	char *rd = b64_encode(d, dl, B64_STD);
	snprintf(buf, cap,
	         "{\"runtime-data\":{\"nonce\":\"%s\",\"tee-pubkey\":%s},\"tee-evidence\":"
	         "{\"primary_evidence\":{\"svn\":\"1\",\"report_data\":\"%s\"},"
	         "\"additional_evidence\":\"\"}}",
	         nonce, pk, rd);
	free(rd);
}

/* A complete response to the attester's current step: check it and send the next request,
 * or finish the handshake. */
static void att_step(struct att *a, struct resp *r)
{
	static const char *const names[] = {"", "auth", "attest", "resource"};
	if (r->status != 200) {
		att_fail(a, "%s: status %d %.150s", names[a->step], r->status, r->body);
		return;
	}
	if (a->step == A_AUTH) {
		char nonce[128] = "", buf[4096];
		snprintf(a->cookie, sizeof(a->cookie), "%s", r->cookie);
		const char *np = strstr(r->body, "\"nonce\":\"");
		if (np)
			sscanf(np + 9, "%127[^\"]", nonce);
		attest_body(a, nonce, buf, sizeof(buf));
		att_request(a, A_ATTEST, "POST", "/kbs/v0/attest", buf);
		return;
	}
	if (a->step == A_ATTEST) {
		char path[300];
		snprintf(path, sizeof(path), "/kbs/v0/resource/%s", res_path);
		att_request(a, A_RESOURCE, "GET", path, NULL);
		return;
	}
	json_t *jwe = json_loadb(r->body, r->len, 0, NULL);
	uint8_t *plain = NULL;
	size_t plen = 0;
	struct err e = {0};
	int bad = !jwe || jwe_decrypt(jwe, a->key, &plain, &plen, &e) != 0;
	json_decref(jwe);
	if (bad) {
		att_fail(a, "JWE: %.200s", e.msg);
		return;
	}
	bad = expect && (plen != strlen(expect) || memcmp(plain, expect, plen));
	free(plain);
	if (bad) {
		att_fail(a, "secret differs");
		return;
	}
	double ms = (now_s() - a->t0) * 1000;
	pthread_mutex_lock(&a->w->mu);
	a->w->ok++;
	histo_add(&a->w->h, ms);
	pthread_mutex_unlock(&a->w->mu);
	att_reset(a);
}

/* The connection is readable: take what arrived; a complete response moves the handshake on.
 * A reused connection the server closed before answering gets the request once more. */
static void att_readable(struct att *a)
{
	for (;;) {
		if (a->cap - a->n < 4096) {
			size_t nc = a->cap ? a->cap * 2 : 16384;
			char *nb = realloc(a->buf, nc + 1);
			if (nb == NULL) {
				att_fail(a, "out of memory");
				return;
			}
			a->buf = nb;
			a->cap = nc;
		}
		ssize_t k = recv(a->fd, a->buf + a->n, a->cap - a->n, MSG_DONTWAIT);
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (k <= 0) {
			if (a->n == 0 && a->reused && !a->resent) {
				a->resent = 1;
				att_close(a);
				att_send(a);
				return;
			}
			att_fail(a, "%s: the connection closed before a full response",
			         a->step == A_AUTH     ? "auth"
			         : a->step == A_ATTEST ? "attest"
			                               : "resource");
			return;
		}
		a->n += (size_t)k;
		a->buf[a->n] = 0;
		struct resp r;
		if (parse_resp(a->buf, a->n, &r)) {
			a->reused = 1;
			att_step(a, &r);
			free(r.body);
			return;
		}
	}
}

struct attesters {
	struct att *a;
	int n;
};

/* One thread's attesters: start a handshake whenever an attester is idle (or its paced turn
 * comes) until stop_at, finish those in flight, and fail one that waits for a response longer
 * than RESP_TIMEOUT_S. */
static void *worker_main(void *arg)
{
	struct attesters *set = arg;
	int ep = epoll_create1(0);
	struct epoll_event ev[64];
	for (int i = 0; i < set->n; i++) {
		struct att *a = &set->a[i];
		a->ep = ep;
		a->fd = -1;
		a->next = now_s() + a->w->period * a->w->phase;
	}
	for (;;) {
		double now = now_s(), wake = now + 1;
		int busy = 0;
		for (int i = 0; i < set->n; i++) {
			struct att *a = &set->a[i];
			struct worker *w = a->w;
			if (a->step != A_IDLE && now > a->deadline)
				att_fail(a, "no response within %d s", RESP_TIMEOUT_S);
			if (a->step == A_IDLE && now < w->stop_at) {
				if (w->period > 0 && a->next > now) {
					wake = a->next < wake ? a->next : wake;
					busy = 1;
					continue;
				}
				if (w->period > 0)
					a->next = (a->next > now ? a->next : now) + w->period;
				att_start(a);
				busy = 1;
				if (a->step == A_IDLE) /* it failed at once: start it again */
					wake = now;
			}
			if (a->step != A_IDLE) {
				busy = 1;
				wake = a->deadline < wake ? a->deadline : wake;
			}
		}
		if (!busy)
			break;
		int ms = (int)((wake - now_s()) * 1000) + 1;
		int k = epoll_wait(ep, ev, 64, ms < 0 ? 0 : ms);
		for (int i = 0; i < k; i++) {
			struct att *a = ev[i].data.ptr;
			if (a->fd < 0)
				continue;
			if (a->step == A_IDLE) /* the server closed an idle keep-alive connection */
				att_close(a);
			else
				att_readable(a);
		}
	}
	for (int i = 0; i < set->n; i++) {
		att_close(&set->a[i]);
		free(set->a[i].buf);
	}
	close(ep);
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

/* CPU time of this process, every thread, in seconds. */
static double process_cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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
                       const double *cpu0, double client_cpu, int threads)
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
	if (ok) {
		printf("  bench client CPU per handshake: %.3f ms (%d threads)\n",
		       client_cpu * 1e3 / (double)ok, threads);
		json_object_set_new(r, "client_cpu_ms_per_handshake",
		                    json_real(client_cpu * 1e3 / (double)ok));
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
	int nt = client_threads > 0 ? client_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
	nt = nt < 1 ? 1 : nt > n ? n : nt;
	pthread_t *t = calloc((size_t)nt, sizeof(*t));
	struct att *att = calloc((size_t)n, sizeof(*att));
	struct attesters *sets = calloc((size_t)nt, sizeof(*sets));
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
		att[i].w = &w[i];
	}
	/* attesters i, i + nt, i + 2 nt, ... share thread i */
	for (int i = 0, off = 0; i < nt; i++) {
		sets[i].a = att + off;
		sets[i].n = n / nt + (i < n % nt);
		off += sets[i].n;
	}
	double cpu_self0 = process_cpu_s();
	for (int i = 0; i < nt; i++)
		pthread_create(&t[i], NULL, worker_main, &sets[i]);
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
	for (int i = 0; i < nt; i++)
		pthread_join(t[i], NULL);
	double client_cpu = process_cpu_s() - cpu_self0;
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
		report_cpu(n, el, total, ok, fail, cpu0, client_cpu, nt);
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
	free(att);
	free(sets);
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
	                                     {"client-threads", required_argument, NULL, 'T'},
	                                     {NULL, 0, NULL, 0}};
	const char *json_path = NULL;
	double secs = 5, report_every = 0, warmup = 120, max_growth = 5, rate = 0;
	char conc[128] = "1,16,64";
	int o;
	while ((o = getopt_long(argc, argv, "u:p:s:c:e:r:w:m:g:R:C:j:T:", opts, NULL)) != -1) {
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
		case 'T':
			client_threads = atoi(optarg);
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
