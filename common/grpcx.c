/*
 * grpcx: the unary gRPC server (see grpcx.h): its methods, its health table, the worker
 * threads that run handlers, and its life cycle. The HTTP/2 side is elsewhere: the front
 * (grpcfront.c) owns the port, TLS and the event loop, and runs one nghttp2 session per
 * connection (grpcx_h2.c); a complete call comes here through grpcx_server_dispatch and goes
 * back to its loop with h2loop_reply.
 *
 * Workers. `workers` threads take calls from one FIFO, so a slow handler never delays
 * another call's acceptance (the loop only parses and queues) and calls start in arrival
 * order. A call whose grpc-timeout passed while it waited is answered DEADLINE_EXCEEDED
 * without running; one whose client reset the stream meanwhile is dropped unrun. A call that
 * finds a worker idle is handed to it directly (struct worker) instead of through the FIFO.
 *
 * Running workers. At most RUN_PER_CPU per usable CPU run calls at once while the others
 * sleep: a call that finds them all busy waits in the FIFO for the first to finish, which
 * takes it without going to sleep and being woken again. Measured at 64 KBS attesters on 2
 * CPUs (8 workers, cap 4, 9 alternated pairs): grpc-as 0.22-0.26 -> 0.18-0.23 ms CPU per
 * handshake (medians 0.230 -> 0.204), context switches 2.9-3.1 -> 2.5-2.7, futex calls
 * 2.3-2.4 -> 1.3-1.5 per handshake, handshakes/s and p99 unchanged within the noise. The
 * other workers are for calls that block (an RVPS round trip, a collateral fetch): a call
 * still queued after STALL_MS while a worker sleeps gets that worker (the loop's stall timer,
 * grpcx_server_unstall), so busy workers stuck on a slow peer delay others by STALL_MS at most
 * (a 20 ms stall time saved a little more CPU but let a preempted worker hold calls up: p99
 * 285 and 590 ms in two of four runs).
 *
 * The loop first. A method added with a try handler (grpcx_server_add_try) is offered to it
 * on the loop thread as soon as the call is complete; when it answers from what the process
 * holds, the call costs no worker wake and no reply hand-off (the gRPC health check, the RVPS
 * reading a value it knows); when it says GRPCX_DEFER the call goes to the FIFO. Both paths
 * run call_invoke, so the deadline rule and the checks on a handler's answer are one code.
 *
 * Shutdown. grpcx_server_shutdown only writes a byte to a pipe, so it is safe from a
 * signal handler; the teardown (front: stop accepting, GOAWAY; running calls get GRACE_MS;
 * workers joined; front: last replies written, connections closed) runs in
 * grpcx_server_wait or grpcx_server_free.
 *
 * The client is in grpcx_client.c.
 */
#include "grpcx.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "cpus.h"
#include "grpcfront.h"
#include "grpcx_h2.h"
#include "health.pb-c.h"
#include "log.h"

#define GRPCX_MAX_METHODS 64
#define GRPCX_GRACE_MS 5000
#define RUN_PER_CPU 2
#define STALL_MS 5

#define HEALTH_CHECK_METHOD "/grpc.health.v1.Health/Check"

struct health_entry {
	char *service;
	int serving;
	struct health_entry *next;
};

/* One handler thread. An idle worker sleeps on its own semaphore and the dispatcher hands it
 * the call in `job`, so a wake is one futex call and the woken thread starts the call without
 * taking mu. (Woken from pthread_cond_wait, a thread retakes mu marked contended, and its
 * unlock is one more futex call per call: 1 of grpc-as's 13 syscalls per KBS handshake.) */
struct worker {
	pthread_t tid;
	struct grpcx_server *s;
	sem_t wake;               /* posted once per hand-off, or once at quit with job NULL */
	struct grpcx_call *job;   /* set under mu by whoever took this worker off `idle` */
	struct worker *next_idle; /* under mu: the idle stack */
};

struct grpcx_server {
	int started, torn_down;
	volatile int stopping;

	/* fixed once started: the loop thread reads it without a lock */
	struct grpcx_method methods[GRPCX_MAX_METHODS];
	int nmethods;

	struct gfront *front; /* the front serving this server (attached by gfront_new) */
	struct gfront *own;   /* the front grpcx_server_new made, freed with the server */

	struct worker *workers; /* nhandlers of them, nstarted running */
	int nhandlers, nstarted;

	pthread_mutex_t mu;       /* guards qhead, qtail, idle, hquit and each worker's job */
	pthread_cond_t done_cond; /* active reached 0 while stopping */
	struct grpcx_call *qhead, *qtail; /* calls no idle worker took, oldest first */
	struct worker *idle;              /* workers asleep on their semaphore */
	int running;                      /* workers not on `idle`: in a call or about to look */
	int run_cap;                      /* RUN_PER_CPU per usable CPU; fixed once started */
	int hquit;
	int active; /* calls dispatched and not yet replied; atomic (read under mu by wait_idle) */

	pthread_mutex_t health_mu;
	struct health_entry *health;

	int stop_pipe[2];
	pthread_mutex_t teardown_mu;
};

/* The call the current handler thread is running (run_call), for grpcx_request_*. */
static __thread struct grpcx_call *cur_call;

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ------------------------------------------------------------------------------------ */
/* what the sessions ask */

const struct grpcx_method *grpcx_server_lookup(struct grpcx_server *s, const char *path)
{
	for (int i = 0; i < s->nmethods; i++)
		if (strcmp(s->methods[i].path, path) == 0)
			return &s->methods[i];
	return NULL;
}

int grpcx_server_stopping(const struct grpcx_server *s)
{
	return s->stopping;
}

/* The oldest queued call goes to the idle worker on top of the stack, returned for the
 * caller to post once it released mu. With mu held, qhead and idle non-empty. */
static struct worker *wake_one(struct grpcx_server *s)
{
	struct worker *w = s->idle;
	struct grpcx_call *c = s->qhead;

	assert(w != NULL && c != NULL);
	s->qhead = c->next;
	if (s->qhead == NULL)
		s->qtail = NULL;
	s->idle = w->next_idle;
	w->job = c;
	s->running++;
	return w;
}

/* Whether calls wait in the queue while workers sleep (the stall timer must check them).
 * With mu held. */
static int calls_wait(const struct grpcx_server *s)
{
	return s->qhead != NULL && s->idle != NULL;
}

int grpcx_server_dispatch(struct grpcx_server *s, struct grpcx_call *c)
{
	struct worker *w = NULL;
	int wait;

	c->next = NULL;
	c->queued = mono_ns();
	pthread_mutex_lock(&s->mu);
	__atomic_add_fetch(&s->active, 1, __ATOMIC_SEQ_CST);
	if (s->qtail)
		s->qtail->next = c;
	else
		s->qhead = c;
	s->qtail = c;
	if (s->idle != NULL &&
	    (s->running < s->run_cap || c->queued - s->qhead->queued >= STALL_MS * 1000000LL))
		w = wake_one(s);
	wait = calls_wait(s);
	pthread_mutex_unlock(&s->mu);
	/* after the unlock: a worker woken while the loop still held mu would only wait for it */
	if (w != NULL)
		sem_post(&w->wake);
	return wait;
}

int grpcx_server_unstall(struct grpcx_server *s)
{
	struct worker *woken = NULL;
	int64_t now = mono_ns();
	int wait;

	pthread_mutex_lock(&s->mu);
	while (calls_wait(s) && now - s->qhead->queued >= STALL_MS * 1000000LL) {
		struct worker *w = wake_one(s);
		w->next_idle = woken;
		woken = w;
	}
	wait = calls_wait(s);
	pthread_mutex_unlock(&s->mu);
	while (woken != NULL) {
		struct worker *next = woken->next_idle;
		sem_post(&woken->wake);
		woken = next;
	}
	return wait;
}

int grpcx_server_stall_ms(void)
{
	return STALL_MS;
}

void grpcx_server_attach_front(struct grpcx_server *s, struct gfront *f)
{
	s->front = f;
}

/* ------------------------------------------------------------------------------------ */
/* workers */

/* The call's result, for the loop to send: msg is the sentence of a failed call. */
static void call_set_result(struct grpcx_call *c, int status, const char *msg, uint8_t *resp,
                            size_t resp_len)
{
	c->status = status;
	c->resp = resp;
	c->resp_len = resp_len;
	if (status != GRPCX_OK)
		c->msg = strdup(msg != NULL && msg[0] != '\0' ? msg : "Request failed");
}

/* The call's result goes back to its loop; the call no longer counts as active. */
static void reply(struct grpcx_server *s, struct grpcx_call *c, int status, const char *msg,
                  uint8_t *resp, size_t resp_len)
{
	call_set_result(c, status, msg, resp, resp_len);
	h2loop_reply(c);
	/* Only a stopping server waits for active to reach 0 (wait_idle): the lock and the
	 * broadcast are for it alone. stopping is set before wait_idle reads active, and both
	 * sides use sequentially consistent accesses, so one of them sees the other. */
	if (__atomic_sub_fetch(&s->active, 1, __ATOMIC_SEQ_CST) == 0 &&
	    __atomic_load_n(&s->stopping, __ATOMIC_SEQ_CST)) {
		pthread_mutex_lock(&s->mu);
		pthread_cond_broadcast(&s->done_cond);
		pthread_mutex_unlock(&s->mu);
	}
}

/* The rules before a handler runs, the handler fn, and the rules on what it returns; the
 * loop (a try handler, may_defer) and the workers share them. Returns the status, with the
 * message in *resp on GRPCX_OK and the sentence in e otherwise; GRPCX_DEFER (may_defer only)
 * leaves the call as it was. */
static int call_invoke(struct grpcx_call *c, grpcx_handler fn, int may_defer, uint8_t **resp,
                       size_t *resp_len, struct err *e)
{
	int st;

	*resp = NULL;
	*resp_len = 0;
	if (__atomic_load_n(&c->closed, __ATOMIC_ACQUIRE)) {
		/* the client reset the stream while the call waited: nobody to answer */
		err_set(e, "cancelled");
		return GRPCX_UNAVAILABLE;
	}
	if (c->deadline != 0 && mono_ns() > c->deadline) {
		grpcx_call_drop_req(c);
		err_set(e, "Deadline exceeded before the call started");
		return GRPCX_DEADLINE_EXCEEDED;
	}
	cur_call = c;
	st = fn(c->m->ctx, c->req + 5, c->req_len - 5, resp, resp_len, e);
	cur_call = NULL;
	if (may_defer && st == GRPCX_DEFER) {
		free(*resp);
		*resp = NULL;
		err_clear(e);
		return GRPCX_DEFER;
	}
	grpcx_call_drop_req(c);
	if (st < 0)
		st = GRPCX_INTERNAL;
	if (st == GRPCX_OK && *resp_len > GRPCX_MAX_MSG) {
		err_set(e, "the response message is larger than 64 MiB");
		st = GRPCX_RESOURCE_EXHAUSTED;
	}
	if (st != GRPCX_OK) {
		free(*resp);
		*resp = NULL;
		*resp_len = 0;
	}
	return st;
}

static void run_call(struct grpcx_server *s, struct grpcx_call *c)
{
	struct err e;
	uint8_t *resp;
	size_t resp_len;
	int st;

	err_clear(&e);
	st = call_invoke(c, c->m->h, 0, &resp, &resp_len, &e);
	reply(s, c, st, e.msg, resp, resp_len);
}

/* On the loop: a try handler's work is bounded by what it may do (grpcx.h) and by the size of
 * the message it is given (GRPCX_TRY_MAX_MSG); anything else waits for a worker. */
int grpcx_server_try(struct grpcx_server *s, struct grpcx_call *c)
{
	struct err e;
	uint8_t *resp;
	size_t resp_len;
	int st;

	(void)s;
	if (c->m->try_h == NULL || c->req_len - 5 > GRPCX_TRY_MAX_MSG)
		return -1;
	err_clear(&e);
	st = call_invoke(c, c->m->try_h, 1, &resp, &resp_len, &e);
	if (st == GRPCX_DEFER)
		return -1;
	call_set_result(c, st, e.msg, resp, resp_len);
	return 0;
}

/* The oldest queued call, or NULL after putting w on the idle stack (or when quitting: *quit
 * set). With mu held. */
static struct grpcx_call *take_or_idle(struct grpcx_server *s, struct worker *w, int *quit)
{
	struct grpcx_call *c = s->qhead;

	if (c != NULL) {
		s->qhead = c->next;
		if (s->qhead == NULL)
			s->qtail = NULL;
		return c;
	}
	*quit = s->hquit;
	if (!*quit) {
		w->job = NULL;
		w->next_idle = s->idle;
		s->idle = w;
		s->running--;
	}
	return NULL;
}

static void *handler_main(void *arg)
{
	struct worker *w = arg;
	struct grpcx_server *s = w->s;

	for (;;) {
		struct grpcx_call *c;
		int quit = 0;

		pthread_mutex_lock(&s->mu);
		c = take_or_idle(s, w, &quit);
		pthread_mutex_unlock(&s->mu);
		if (quit)
			break;
		if (c == NULL) {
			while (sem_wait(&w->wake) < 0 && errno == EINTR)
				;
			c = w->job; /* written before the post */
			if (c == NULL)
				break; /* woken to quit */
		}
		run_call(s, c);
	}
	return NULL;
}

/* grpc.health.v1.Health/Check */
static int health_check(void *ctx, const uint8_t *req, size_t req_len, uint8_t **resp,
                        size_t *resp_len, struct err *err)
{
	struct grpcx_server *s = ctx;
	Grpc__Health__V1__HealthCheckRequest *in;
	Grpc__Health__V1__HealthCheckResponse out = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
	int found = 0, serving = 0;

	in = grpc__health__v1__health_check_request__unpack(NULL, req_len, req);
	if (in == NULL) {
		err_set(err, "The health check request is not a valid HealthCheckRequest message");
		return GRPCX_INVALID_ARGUMENT;
	}
	if (in->service == NULL || in->service[0] == '\0') {
		found = 1;
		serving = !grpcx_server_stopping(s);
	} else {
		pthread_mutex_lock(&s->health_mu);
		for (struct health_entry *h = s->health; h; h = h->next) {
			if (strcmp(h->service, in->service) == 0) {
				found = 1;
				serving = h->serving && !grpcx_server_stopping(s);
				break;
			}
		}
		pthread_mutex_unlock(&s->health_mu);
	}
	if (!found) {
		err_set(err, "unknown service %s", in->service);
		grpc__health__v1__health_check_request__free_unpacked(in, NULL);
		return GRPCX_NOT_FOUND;
	}
	grpc__health__v1__health_check_request__free_unpacked(in, NULL);
	out.status = serving ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
	                     : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
	*resp_len = grpc__health__v1__health_check_response__get_packed_size(&out);
	*resp = malloc(*resp_len + 1);
	if (*resp == NULL) {
		err_set(err, "out of memory");
		return GRPCX_INTERNAL;
	}
	grpc__health__v1__health_check_response__pack(&out, *resp);
	return GRPCX_OK;
}

/* ------------------------------------------------------------------------------------ */
/* life cycle */

static struct grpcx_server *server_alloc(int workers, struct err *err)
{
	struct grpcx_server *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		err_set(err, "out of memory");
		return NULL;
	}
	s->nhandlers = workers < 1 ? 1 : workers;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->done_cond, NULL);
	pthread_mutex_init(&s->health_mu, NULL);
	pthread_mutex_init(&s->teardown_mu, NULL);
	s->stop_pipe[0] = s->stop_pipe[1] = -1;
	if (pipe2(s->stop_pipe, O_CLOEXEC) < 0) {
		err_set(err, "Cannot create a pipe: %s", strerror(errno));
		grpcx_server_free(s);
		return NULL;
	}
	/* the health check only reads the table: it answers on the loop */
	if (grpcx_server_add_try(s, HEALTH_CHECK_METHOD, health_check, health_check, s) < 0) {
		err_set(err, "out of memory");
		grpcx_server_free(s);
		return NULL;
	}
	return s;
}

/* A server with a front of its own on addr (no HTTP/1.1 pages). */
static struct grpcx_server *server_bound(const char *addr, int workers,
                                         const struct gfront_tls *tls, struct err *err)
{
	struct grpcx_server *s = server_alloc(workers, err);

	if (s == NULL)
		return NULL;
	s->own = gfront_new(addr, s, tls, NULL, NULL, err);
	if (s->own == NULL) {
		grpcx_server_free(s);
		return NULL;
	}
	return s;
}

struct grpcx_server *grpcx_server_new(const char *addr, int workers, struct err *err)
{
	return server_bound(addr, workers, NULL, err);
}

struct grpcx_server *grpcx_server_new_unbound(int workers, struct err *err)
{
	return server_alloc(workers, err);
}

struct grpcx_server *grpcx_server_new_tls(const char *addr, int workers, const char *cert_pem,
                                          const char *key_pem, const char *client_ca_pem,
                                          struct err *err)
{
	struct gfront_tls tls = {cert_pem, key_pem, client_ca_pem};

	if (cert_pem == NULL || key_pem == NULL) {
		err_set(err, "TLS needs both a certificate and a private key");
		return NULL;
	}
	return server_bound(addr, workers, &tls, err);
}

int grpcx_request_metadata(const char *key, char *out, size_t outlen)
{
	struct grpcx_call *c = cur_call;
	size_t i = 0;

	if (c == NULL || outlen == 0 || c->md == NULL)
		return -1;
	while (i < c->md_len) {
		const char *name = c->md + i, *value = name + strlen(name) + 1;
		size_t vl = strlen(value);

		i = (size_t)(value - c->md) + vl + 1;
		if (strcmp(name, key) != 0)
			continue;
		if (vl >= outlen)
			return -1;
		memcpy(out, value, vl + 1);
		return (int)vl;
	}
	return -1;
}

struct x509_st *grpcx_request_peer_cert(void)
{
	struct grpcx_call *c = cur_call;

	if (c == NULL || c->peer == NULL || X509_up_ref(c->peer) != 1)
		return NULL;
	return c->peer;
}

int grpcx_server_add(struct grpcx_server *s, const char *method, grpcx_handler h, void *ctx)
{
	return grpcx_server_add_try(s, method, NULL, h, ctx);
}

int grpcx_server_add_try(struct grpcx_server *s, const char *method, grpcx_handler try_h,
                         grpcx_handler h, void *ctx)
{
	struct grpcx_method *m;

	if (s->started || s->nmethods >= GRPCX_MAX_METHODS || method == NULL || h == NULL)
		return -1;
	m = &s->methods[s->nmethods];
	m->path = strdup(method);
	if (m->path == NULL)
		return -1;
	m->h = h;
	m->try_h = try_h;
	m->ctx = ctx;
	s->nmethods++;
	return 0;
}

void grpcx_server_set_serving(struct grpcx_server *s, const char *service, int serving)
{
	struct health_entry *h;

	if (service == NULL || service[0] == '\0')
		return;
	pthread_mutex_lock(&s->health_mu);
	for (h = s->health; h; h = h->next) {
		if (strcmp(h->service, service) == 0) {
			h->serving = serving;
			pthread_mutex_unlock(&s->health_mu);
			return;
		}
	}
	h = calloc(1, sizeof(*h));
	if (h != NULL)
		h->service = strdup(service);
	if (h == NULL || h->service == NULL) {
		free(h);
		pthread_mutex_unlock(&s->health_mu);
		return;
	}
	h->serving = serving;
	h->next = s->health;
	s->health = h;
	pthread_mutex_unlock(&s->health_mu);
}

int grpcx_server_start(struct grpcx_server *s, struct err *err)
{
	if (s->started)
		return err_set(err, "The gRPC server is already started");
	s->started = 1;
	s->run_cap = cpus_usable() * RUN_PER_CPU;
	if (s->run_cap < 2)
		s->run_cap = 2;
	s->workers = calloc((size_t)s->nhandlers, sizeof(*s->workers));
	if (s->workers == NULL)
		return err_set(err, "out of memory");
	for (int i = 0; i < s->nhandlers; i++) {
		struct worker *w = &s->workers[i];

		w->s = s;
		if (sem_init(&w->wake, 0, 0) < 0)
			return err_set(err, "Cannot start gRPC worker threads");
		if (pthread_create(&w->tid, NULL, handler_main, w) != 0) {
			sem_destroy(&w->wake);
			return err_set(err, "Cannot start gRPC worker threads");
		}
		pthread_mutex_lock(&s->mu);
		s->running++; /* until it first goes idle */
		pthread_mutex_unlock(&s->mu);
		s->nstarted = i + 1;
	}
	if (s->own != NULL && gfront_start(s->own, err) < 0)
		return -1;
	return 0;
}

int grpcx_server_port(const struct grpcx_server *s)
{
	return s->own ? gfront_port(s->own) : 0;
}

/* Wait until no dispatched call is left unanswered, at most ms. */
static int wait_idle(struct grpcx_server *s, long ms)
{
	struct timespec ts;
	int idle;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->mu);
	while (__atomic_load_n(&s->active, __ATOMIC_SEQ_CST) > 0)
		if (pthread_cond_timedwait(&s->done_cond, &s->mu, &ts) == ETIMEDOUT)
			break;
	idle = __atomic_load_n(&s->active, __ATOMIC_SEQ_CST) == 0;
	pthread_mutex_unlock(&s->mu);
	return idle;
}

/* Graceful stop: no new connections or calls (GOAWAY), running calls get GRACE_MS, then the
 * workers stop, calls never started are answered UNAVAILABLE, and the front writes the last
 * replies and closes its HTTP/2 connections. Idempotent. */
static void server_teardown(struct grpcx_server *s)
{
	pthread_mutex_lock(&s->teardown_mu);
	if (s->torn_down) {
		pthread_mutex_unlock(&s->teardown_mu);
		return;
	}
	__atomic_store_n(&s->stopping, 1, __ATOMIC_SEQ_CST); /* before wait_idle (reply) */
	if (s->front != NULL)
		gfront_stop_accepting(s->front);
	if (s->started) {
		if (!wait_idle(s, GRPCX_GRACE_MS)) {
			pthread_mutex_lock(&s->mu);
			log_warn(
			    "grpc: %d calls still running after %d ms; waiting for their handlers",
			    __atomic_load_n(&s->active, __ATOMIC_SEQ_CST), GRPCX_GRACE_MS);
			pthread_mutex_unlock(&s->mu);
		}
		struct worker *asleep;

		pthread_mutex_lock(&s->mu);
		s->hquit = 1;
		asleep = s->idle;
		s->idle = NULL;
		for (struct worker *w = asleep; w != NULL; w = w->next_idle)
			w->job = NULL;
		pthread_mutex_unlock(&s->mu);
		/* the busy ones see hquit when they next find the queue empty */
		while (asleep != NULL) {
			struct worker *next = asleep->next_idle;
			sem_post(&asleep->wake);
			asleep = next;
		}
		for (int i = 0; i < s->nstarted; i++)
			pthread_join(s->workers[i].tid, NULL);
		/* anything still queued was never started */
		while (s->qhead) {
			struct grpcx_call *c = s->qhead;

			s->qhead = c->next;
			grpcx_call_drop_req(c);
			reply(s, c, GRPCX_UNAVAILABLE, "the server is shutting down", NULL, 0);
		}
		s->qtail = NULL;
	}
	if (s->front != NULL)
		gfront_close_grpc(s->front);
	s->torn_down = 1;
	pthread_mutex_unlock(&s->teardown_mu);
}

void grpcx_server_wait(struct grpcx_server *s)
{
	char c;

	for (;;) {
		ssize_t r = read(s->stop_pipe[0], &c, 1);
		if (r == 1 || (r < 0 && errno != EINTR))
			break;
		if (r == 0)
			break;
	}
	server_teardown(s);
}

void grpcx_server_shutdown(struct grpcx_server *s)
{
	/* Async-signal-safe: the teardown runs in grpcx_server_wait / grpcx_server_free. */
	char c = 1;
	ssize_t r;

	if (s == NULL)
		return;
	s->stopping = 1;
	do {
		r = write(s->stop_pipe[1], &c, 1);
	} while (r < 0 && errno == EINTR);
}

void grpcx_server_free(struct grpcx_server *s)
{
	if (s == NULL)
		return;
	if (!s->torn_down)
		server_teardown(s);
	if (s->own != NULL)
		gfront_free(s->own);
	else if (s->front != NULL)
		gfront_detach(s->front);
	for (int i = 0; i < s->nmethods; i++)
		free(s->methods[i].path);
	while (s->health) {
		struct health_entry *h = s->health;
		s->health = h->next;
		free(h->service);
		free(h);
	}
	for (int i = 0; i < s->nstarted; i++)
		sem_destroy(&s->workers[i].wake);
	free(s->workers);
	if (s->stop_pipe[0] >= 0)
		close(s->stop_pipe[0]);
	if (s->stop_pipe[1] >= 0)
		close(s->stop_pipe[1]);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->done_cond);
	pthread_mutex_destroy(&s->health_mu);
	pthread_mutex_destroy(&s->teardown_mu);
	free(s);
}

static struct grpcx_server *signal_server;

static void on_stop_signal(int sig)
{
	(void)sig;
	grpcx_server_shutdown(signal_server);
}

int grpcx_server_handle_signals(struct grpcx_server *s)
{
	struct sigaction sa;

	signal_server = s;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	return 0;
}
