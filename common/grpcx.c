/*
 * grpcx: unary gRPC over gRPC core's C API (see grpcx.h).
 *
 * Server shape. gRPC core hands out incoming calls only against calls we have "requested"
 * on a completion queue, and it matches an incoming call to whichever queue has a request
 * pending. If the thread polling that queue were busy inside a slow handler, the call would
 * sit there while other threads idle. So the work is split in two:
 *   - pollers: a few threads, each polling its own completion queue and keeping several
 *     calls requested per method on it; they never run handler code, they only move calls
 *     into a FIFO and reap finished calls, so an incoming call is always picked up at once;
 *   - handlers: `workers` threads taking calls from the FIFO, running the service handler
 *     and starting the response batch (its completion comes back to the call's poller).
 * Calls for methods nobody registered are answered UNIMPLEMENTED by the poller itself.
 * grpc.health.v1.Health/Check is one more registered method served from a name table.
 *
 * Shutdown. grpcx_server_shutdown only writes a byte to a pipe, so it is safe from a
 * signal handler; the teardown itself (graceful server shutdown, cancel after a grace
 * period, join threads, destroy queues) runs in grpcx_server_wait or grpcx_server_free.
 *
 * The client is in grpcx_client.c.
 */
#include "grpcx.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "grpcx_core.h"
#include "health.pb-c.h"
#include "log.h"

/* HTTP/2 streams one client connection may have open at once (calls in flight) */
#define GRPCX_MAX_STREAMS 100
#define GRPCX_MAX_METHODS 64
#define GRPCX_REQUESTS_PER_METHOD 4
#define GRPCX_MAX_POLLERS 4
#define GRPCX_GRACE_MS 5000

#define HEALTH_CHECK_METHOD "/grpc.health.v1.Health/Check"

/* ------------------------------------------------------------------------------------ */
/* shared helpers */

/* gRPC core sees a connection attempt finish only while some thread polls. Our client calls
 * fail fast while a channel is in TRANSIENT_FAILURE, so between calls nobody polls but core's
 * backup poller, every 5 s by default, and a restarted peer stayed unreachable for seconds
 * after it was back. Poll every 100 ms instead (core reads this once, at the first
 * grpc_init; an operator's own setting wins). */
static void gpr_to_log(gpr_log_func_args *a)
{
	log_debug("grpc core: %s", a->message);
}

void grpcx_init(void)
{
	setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "100", 0);
	/* Core's own lines ("Handshake failed ...") repeat what our errors already say, better
	 * (see grpcx_tls.c): into our log at debug level, unless the operator asked core to
	 * log (GRPC_VERBOSITY). */
	if (getenv("GRPC_VERBOSITY") == NULL)
		gpr_set_log_function(gpr_to_log);
	grpc_init();
}

gpr_timespec deadline_in_ms(long ms)
{
	return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

/* Flatten a (possibly compressed) byte buffer into malloc'd bytes. */
int bb_to_bytes(grpc_byte_buffer *bb, uint8_t **out, size_t *len)
{
	grpc_byte_buffer_reader rd;
	grpc_slice sl;
	size_t n;

	*out = NULL;
	*len = 0;
	if (bb == NULL)
		return 0;
	if (!grpc_byte_buffer_reader_init(&rd, bb))
		return -1;
	sl = grpc_byte_buffer_reader_readall(&rd);
	grpc_byte_buffer_reader_destroy(&rd);
	n = GRPC_SLICE_LENGTH(sl);
	*out = malloc(n + 1);
	if (*out == NULL) {
		grpc_slice_unref(sl);
		return -1;
	}
	if (n > 0)
		memcpy(*out, GRPC_SLICE_START_PTR(sl), n);
	(*out)[n] = 0;
	*len = n;
	grpc_slice_unref(sl);
	return 0;
}

grpc_byte_buffer *bytes_to_bb(const uint8_t *buf, size_t len)
{
	grpc_slice sl =
	    len ? grpc_slice_from_copied_buffer((const char *)buf, len) : grpc_empty_slice();
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
	grpc_slice_unref(sl);
	return bb;
}

/* ------------------------------------------------------------------------------------ */
/* server */

struct method {
	char *path;
	grpcx_handler h;
	void *ctx;
	void *reg; /* handle from grpc_server_register_method */
};

struct health_entry {
	char *service;
	int serving;
	struct health_entry *next;
};

struct poller;

enum slot_state { SLOT_REQUESTED, SLOT_FINISHING };

/* One call's life: requested -> (queued for a handler) -> finishing -> freed. */
struct slot {
	enum slot_state state;
	struct poller *p;
	struct method *m; /* NULL: an unregistered method */
	grpc_call *call;
	gpr_timespec deadline;
	grpc_metadata_array md;
	grpc_call_details details;
	grpc_byte_buffer *payload;
	grpc_byte_buffer *resp;
	grpc_slice status_details;
	int has_details;
	int cancelled;
	int active; /* counted in grpcx_server.active */
	struct slot *next;
};

struct poller {
	struct grpcx_server *s;
	grpc_completion_queue *cq;
	pthread_t th;
};

struct grpcx_server {
	grpc_server *srv;
	int port;
	int started, torn_down;
	volatile int stopping;

	struct method methods[GRPCX_MAX_METHODS];
	int nmethods;

	struct poller pollers[GRPCX_MAX_POLLERS];
	int npollers;
	pthread_t *handlers;
	int nhandlers;

	pthread_mutex_t mu;
	pthread_cond_t cond;      /* job queue */
	pthread_cond_t done_cond; /* active, shutdown_done */
	struct slot *qhead, *qtail;
	int hquit;
	int shutdown_done;
	int active; /* calls received and not yet finished */

	pthread_mutex_t health_mu;
	struct health_entry *health;

	int stop_pipe[2];
	pthread_mutex_t teardown_mu;

	void (*on_stop)(void *ctx); /* run once, before gRPC core starts shutting down */
	void *on_stop_ctx;

	/* peers[fd]: the verified client certificate of the connection the front handed core
	 * on fd (owned; NULL for plaintext). Set at every adoption, before core reads a byte,
	 * so a reused descriptor number never carries an old connection's identity. */
	pthread_mutex_t peers_mu;
	X509 **peers;
	int npeers;
};

/* The call the current handler thread is running (run_call), for grpcx_request_*. */
static __thread struct slot *cur_call;

static char shutdown_tag;

static void slot_free(struct slot *sl)
{
	if (sl == NULL)
		return;
	if (sl->active) {
		struct grpcx_server *s = sl->p->s;

		pthread_mutex_lock(&s->mu);
		s->active--;
		pthread_cond_broadcast(&s->done_cond);
		pthread_mutex_unlock(&s->mu);
	}
	if (sl->call)
		grpc_call_unref(sl->call);
	grpc_metadata_array_destroy(&sl->md);
	grpc_call_details_destroy(&sl->details);
	if (sl->payload)
		grpc_byte_buffer_destroy(sl->payload);
	if (sl->resp)
		grpc_byte_buffer_destroy(sl->resp);
	if (sl->has_details)
		grpc_slice_unref(sl->status_details);
	free(sl);
}

static struct slot *slot_new(struct poller *p, struct method *m)
{
	struct slot *sl = calloc(1, sizeof(*sl));

	if (sl == NULL)
		return NULL;
	sl->p = p;
	sl->m = m;
	sl->state = SLOT_REQUESTED;
	grpc_metadata_array_init(&sl->md);
	grpc_call_details_init(&sl->details);
	return sl;
}

/* Ask gRPC core for the next call of method m (NULL = any unregistered method) on p. */
static void request_call(struct poller *p, struct method *m)
{
	struct grpcx_server *s = p->s;
	struct slot *sl;
	grpc_call_error e;

	if (s->stopping)
		return;
	sl = slot_new(p, m);
	if (sl == NULL) {
		log_error("grpc: out of memory requesting a call");
		return;
	}
	if (m != NULL)
		e = grpc_server_request_registered_call(s->srv, m->reg, &sl->call, &sl->deadline,
		                                        &sl->md, &sl->payload, p->cq, p->cq, sl);
	else
		e = grpc_server_request_call(s->srv, &sl->call, &sl->details, &sl->md, p->cq, p->cq,
		                             sl);
	if (e != GRPC_CALL_OK) {
		if (!s->stopping)
			log_error("grpc: request call failed: %s", grpc_call_error_to_string(e));
		slot_free(sl);
	}
}

/* Send the response (message only when OK) and status; the completion frees the slot. */
static void finish_call(struct slot *sl, int status, const char *msg, const uint8_t *resp,
                        size_t resp_len)
{
	grpc_op ops[4];
	size_t n = 0;
	grpc_call_error e;

	memset(ops, 0, sizeof(ops));
	ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
	n++;
	if (status == GRPCX_OK) {
		sl->resp = bytes_to_bb(resp, resp_len);
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n].data.send_message.send_message = sl->resp;
		n++;
	}
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = (grpc_status_code)status;
	if (msg != NULL && msg[0] != '\0') {
		sl->status_details = grpc_slice_from_copied_string(msg);
		sl->has_details = 1;
		ops[n].data.send_status_from_server.status_details = &sl->status_details;
	}
	n++;
	ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[n].data.recv_close_on_server.cancelled = &sl->cancelled;
	n++;
	sl->state = SLOT_FINISHING;
	e = grpc_call_start_batch(sl->call, ops, n, sl, NULL);
	if (e != GRPC_CALL_OK) {
		log_error("grpc: cannot send the response: %s", grpc_call_error_to_string(e));
		grpc_call_cancel(sl->call, NULL);
		slot_free(sl);
	}
}

static void job_push(struct grpcx_server *s, struct slot *sl)
{
	pthread_mutex_lock(&s->mu);
	sl->next = NULL;
	if (s->qtail)
		s->qtail->next = sl;
	else
		s->qhead = sl;
	s->qtail = sl;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->mu);
}

static void *poller_main(void *arg)
{
	struct poller *p = arg;
	struct grpcx_server *s = p->s;

	for (;;) {
		grpc_event ev =
		    grpc_completion_queue_next(p->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		struct slot *sl;

		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		if (ev.tag == &shutdown_tag) {
			pthread_mutex_lock(&s->mu);
			s->shutdown_done = 1;
			pthread_cond_broadcast(&s->done_cond);
			pthread_mutex_unlock(&s->mu);
			continue;
		}
		sl = ev.tag;
		if (sl->state == SLOT_FINISHING) {
			slot_free(sl);
			continue;
		}
		/* A requested call arrived (or the request was flushed by shutdown). */
		if (!ev.success || sl->call == NULL) {
			slot_free(sl);
			continue;
		}
		pthread_mutex_lock(&s->mu);
		s->active++;
		pthread_mutex_unlock(&s->mu);
		sl->active = 1;
		request_call(p, sl->m);
		if (sl->m == NULL) {
			char *path = grpc_slice_to_c_string(sl->details.method);
			char msg[512];

			snprintf(msg, sizeof(msg), "Method not found: %s", path);
			log_debug("grpc: unimplemented method %s", path);
			gpr_free(path);
			finish_call(sl, GRPCX_UNIMPLEMENTED, msg, NULL, 0);
			continue;
		}
		job_push(s, sl);
	}
	return NULL;
}

static void run_call(struct grpcx_server *s, struct slot *sl)
{
	struct err e;
	uint8_t *req = NULL, *resp = NULL;
	size_t req_len = 0, resp_len = 0;
	int st;

	err_clear(&e);
	if (gpr_time_cmp(gpr_now(GPR_CLOCK_MONOTONIC),
	                 gpr_convert_clock_type(sl->deadline, GPR_CLOCK_MONOTONIC)) > 0) {
		finish_call(sl, GRPCX_DEADLINE_EXCEEDED,
		            "Deadline exceeded before the call started", NULL, 0);
		return;
	}
	if (sl->payload == NULL) {
		finish_call(sl, GRPCX_INVALID_ARGUMENT, "The request carried no message", NULL, 0);
		return;
	}
	if (bb_to_bytes(sl->payload, &req, &req_len) < 0) {
		finish_call(sl, GRPCX_INTERNAL, "Cannot read the request message", NULL, 0);
		return;
	}
	cur_call = sl;
	st = sl->m->h(sl->m->ctx, req, req_len, &resp, &resp_len, &e);
	cur_call = NULL;
	free(req);
	if (st < 0)
		st = GRPCX_INTERNAL;
	if (st != GRPCX_OK && e.msg[0] == '\0')
		snprintf(e.msg, sizeof(e.msg), "Request failed");
	finish_call(sl, st, st == GRPCX_OK ? NULL : e.msg, resp, resp_len);
	free(resp);
}

static void *handler_main(void *arg)
{
	struct grpcx_server *s = arg;

	for (;;) {
		struct slot *sl;

		pthread_mutex_lock(&s->mu);
		while (s->qhead == NULL && !s->hquit)
			pthread_cond_wait(&s->cond, &s->mu);
		sl = s->qhead;
		if (sl == NULL) {
			pthread_mutex_unlock(&s->mu);
			break;
		}
		s->qhead = sl->next;
		if (s->qhead == NULL)
			s->qtail = NULL;
		pthread_mutex_unlock(&s->mu);
		run_call(s, sl);
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
		serving = !s->stopping;
	} else {
		pthread_mutex_lock(&s->health_mu);
		for (struct health_entry *h = s->health; h; h = h->next) {
			if (strcmp(h->service, in->service) == 0) {
				found = 1;
				serving = h->serving && !s->stopping;
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

static void server_args(grpc_arg *a, grpc_channel_args *ca)
{
	a[0].type = GRPC_ARG_INTEGER;
	a[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	a[0].value.integer = GRPCX_MAX_MSG;
	a[1].type = GRPC_ARG_INTEGER;
	a[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
	a[1].value.integer = GRPCX_MAX_MSG;
	/* Two daemons must never share a port silently. */
	a[2].type = GRPC_ARG_INTEGER;
	a[2].key = GRPC_ARG_ALLOW_REUSEPORT;
	a[2].value.integer = 0;
	/* Clients (Trustee's AS among them) send HTTP/2 keep-alive pings every 10 s. */
	a[3].type = GRPC_ARG_INTEGER;
	a[3].key = GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS;
	a[3].value.integer = 1;
	a[4].type = GRPC_ARG_INTEGER;
	a[4].key = GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS;
	a[4].value.integer = 1000;
	a[5].type = GRPC_ARG_INTEGER;
	a[5].key = GRPC_ARG_HTTP2_MAX_PING_STRIKES;
	a[5].value.integer = 0;
	/* Budgets of one connection (issue 14 V6, W1): streams at once, and core's own pings
	 * every 60 s, closing a peer that does not answer within 20 s; the front closes clients
	 * quiet for longer (grpcfront.c). Calls never last 10 minutes: a connection without
	 * any for that long gets a GOAWAY. */
	a[6].type = GRPC_ARG_INTEGER;
	a[6].key = GRPC_ARG_MAX_CONCURRENT_STREAMS;
	a[6].value.integer = GRPCX_MAX_STREAMS;
	a[7].type = GRPC_ARG_INTEGER;
	a[7].key = GRPC_ARG_KEEPALIVE_TIME_MS;
	a[7].value.integer = 60000;
	a[8].type = GRPC_ARG_INTEGER;
	a[8].key = GRPC_ARG_KEEPALIVE_TIMEOUT_MS;
	a[8].value.integer = 20000;
	a[9].type = GRPC_ARG_INTEGER;
	a[9].key = GRPC_ARG_MAX_CONNECTION_IDLE_MS;
	a[9].value.integer = 600000;
	/* keep pinging a connection without calls (core stops after 2 by default): a live
	 * client's acks are what tell the front's idle sweep it is alive */
	a[10].type = GRPC_ARG_INTEGER;
	a[10].key = GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA;
	a[10].value.integer = 0;
	ca->num_args = 11;
	ca->args = a;
}

static struct grpcx_server *server_new_creds(const char *addr, int workers,
                                             grpc_server_credentials *creds, struct err *err)
{
	struct grpcx_server *s;
	grpc_arg a[11];
	grpc_channel_args ca;

	if (creds == NULL) {
		err_set(err, "Cannot create the gRPC server credentials");
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		grpc_server_credentials_release(creds);
		err_set(err, "out of memory");
		return NULL;
	}
	if (workers < 1)
		workers = 1;
	s->nhandlers = workers;
	s->npollers = (workers + 3) / 4;
	if (s->npollers > GRPCX_MAX_POLLERS)
		s->npollers = GRPCX_MAX_POLLERS;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cond, NULL);
	pthread_cond_init(&s->done_cond, NULL);
	pthread_mutex_init(&s->health_mu, NULL);
	pthread_mutex_init(&s->teardown_mu, NULL);
	pthread_mutex_init(&s->peers_mu, NULL);
	s->stop_pipe[0] = s->stop_pipe[1] = -1;
	if (pipe2(s->stop_pipe, O_CLOEXEC) < 0) {
		err_set(err, "Cannot create a pipe: %s", strerror(errno));
		grpc_server_credentials_release(creds);
		free(s);
		return NULL;
	}

	grpcx_init();
	server_args(a, &ca);
	s->srv = grpc_server_create(&ca, NULL);
	for (int i = 0; i < s->npollers; i++) {
		s->pollers[i].s = s;
		s->pollers[i].cq = grpc_completion_queue_create_for_next(NULL);
		grpc_server_register_completion_queue(s->srv, s->pollers[i].cq, NULL);
	}
	if (addr == NULL) {
		/* unbound: connections arrive through grpcx_server_adopt_fd */
		grpc_server_credentials_release(creds);
		grpcx_server_add(s, HEALTH_CHECK_METHOD, health_check, s);
		return s;
	}
	s->port = grpc_server_add_http2_port(s->srv, addr, creds);
	grpc_server_credentials_release(creds);
	if (s->port <= 0) {
		err_set(err, "Cannot listen on %s (address in use or invalid)", addr);
		grpcx_server_free(s);
		return NULL;
	}
	grpcx_server_add(s, HEALTH_CHECK_METHOD, health_check, s);
	return s;
}

struct grpcx_server *grpcx_server_new(const char *addr, int workers, struct err *err)
{
	return server_new_creds(addr, workers, grpc_insecure_server_credentials_create(), err);
}

struct grpcx_server *grpcx_server_new_unbound(int workers, struct err *err)
{
	return server_new_creds(NULL, workers, grpc_insecure_server_credentials_create(), err);
}

static int adopt(struct grpcx_server *s, int fd);

/* Record (or clear) the client certificate of the connection on fd. */
static int peer_set(struct grpcx_server *s, int fd, X509 *cert)
{
	int rc = 0;

	if (fd < 0)
		return -1;
	pthread_mutex_lock(&s->peers_mu);
	if (fd >= s->npeers && cert != NULL) {
		int n = fd + 64;
		X509 **p = realloc(s->peers, (size_t)n * sizeof(*p));
		if (p == NULL) {
			rc = -1;
		} else {
			memset(p + s->npeers, 0, (size_t)(n - s->npeers) * sizeof(*p));
			s->peers = p;
			s->npeers = n;
		}
	}
	if (rc == 0 && fd < s->npeers) {
		X509_free(s->peers[fd]);
		s->peers[fd] = cert;
		if (cert != NULL)
			X509_up_ref(cert);
	}
	pthread_mutex_unlock(&s->peers_mu);
	return rc;
}

int grpcx_server_adopt_fd_peer(struct grpcx_server *s, int fd, struct x509_st *peer_cert)
{
	if (!s->started || s->stopping || peer_set(s, fd, peer_cert) < 0)
		return -1;
	return adopt(s, fd);
}

int grpcx_request_metadata(const char *key, char *out, size_t outlen)
{
	struct slot *sl = cur_call;

	if (sl == NULL || outlen == 0)
		return -1;
	for (size_t i = 0; i < sl->md.count; i++) {
		const grpc_metadata *m = &sl->md.metadata[i];
		size_t kl = GRPC_SLICE_LENGTH(m->key), vl = GRPC_SLICE_LENGTH(m->value);

		if (kl != strlen(key) || memcmp(GRPC_SLICE_START_PTR(m->key), key, kl) != 0)
			continue;
		if (vl >= outlen)
			return -1;
		memcpy(out, GRPC_SLICE_START_PTR(m->value), vl);
		out[vl] = '\0';
		return (int)vl;
	}
	return -1;
}

/* A call on a connection core's own TLS terminated: the certificate from its auth context. */
static X509 *core_peer_cert(grpc_call *call)
{
	grpc_auth_context *ctx = grpc_call_auth_context(call);
	grpc_auth_property_iterator it;
	const grpc_auth_property *p;
	X509 *x = NULL;

	if (ctx == NULL)
		return NULL;
	it = grpc_auth_context_find_properties_by_name(ctx, GRPC_X509_PEM_CERT_PROPERTY_NAME);
	if ((p = grpc_auth_property_iterator_next(&it)) != NULL && p->value_length > 0) {
		BIO *b = BIO_new_mem_buf(p->value, (int)p->value_length);
		x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
		BIO_free(b);
	}
	grpc_auth_context_release(ctx);
	return x;
}

struct x509_st *grpcx_request_peer_cert(void)
{
	struct slot *sl = cur_call;
	struct grpcx_server *s;
	char *peer;
	X509 *x = NULL;
	int fd = -1;

	if (sl == NULL)
		return NULL;
	s = sl->p->s;
	/* an adopted connection's peer is "fd:N"; core keeps N open while this call lives */
	peer = grpc_call_get_peer(sl->call);
	if (peer != NULL && sscanf(peer, "fd:%d", &fd) == 1 && fd >= 0) {
		pthread_mutex_lock(&s->peers_mu);
		if (fd < s->npeers && s->peers[fd] != NULL) {
			x = s->peers[fd];
			X509_up_ref(x);
		}
		pthread_mutex_unlock(&s->peers_mu);
	} else {
		x = core_peer_cert(sl->call);
	}
	gpr_free(peer);
	return x;
}

static int adopt(struct grpcx_server *s, int fd)
{
	grpc_server_credentials *creds;

	/* gRPC core 1.51 takes only insecure credentials here: TLS, if any, ended before. */
	creds = grpc_insecure_server_credentials_create();
	grpc_server_add_channel_from_fd(s->srv, fd, creds);
	grpc_server_credentials_release(creds);
	return 0;
}

int grpcx_server_adopt_fd(struct grpcx_server *s, int fd)
{
	if (!s->started || s->stopping || peer_set(s, fd, NULL) < 0)
		return -1;
	return adopt(s, fd);
}

void grpcx_server_on_stop(struct grpcx_server *s, void (*fn)(void *ctx), void *ctx)
{
	s->on_stop = fn;
	s->on_stop_ctx = ctx;
}

struct grpcx_server *grpcx_server_new_tls(const char *addr, int workers, const char *cert_pem,
                                          const char *key_pem, const char *client_ca_pem,
                                          struct err *err)
{
	grpc_ssl_pem_key_cert_pair pair = {.private_key = key_pem, .cert_chain = cert_pem};
	grpc_server_credentials *creds;

	if (cert_pem == NULL || key_pem == NULL) {
		err_set(err, "TLS needs both a certificate and a private key");
		return NULL;
	}
	creds = grpc_ssl_server_credentials_create_ex(
	    client_ca_pem, &pair, 1,
	    client_ca_pem ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
	                  : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
	    NULL);
	return server_new_creds(addr, workers, creds, err);
}

int grpcx_server_add(struct grpcx_server *s, const char *method, grpcx_handler h, void *ctx)
{
	struct method *m;

	if (s->started || s->nmethods >= GRPCX_MAX_METHODS || method == NULL || h == NULL)
		return -1;
	m = &s->methods[s->nmethods];
	m->path = strdup(method);
	if (m->path == NULL)
		return -1;
	m->h = h;
	m->ctx = ctx;
	m->reg = grpc_server_register_method(s->srv, m->path, NULL,
	                                     GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
	if (m->reg == NULL) {
		free(m->path);
		m->path = NULL;
		return -1;
	}
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
	int i, j;

	if (s->started)
		return err_set(err, "The gRPC server is already started");
	grpc_server_start(s->srv);
	s->started = 1;
	s->handlers = calloc((size_t)s->nhandlers, sizeof(pthread_t));
	if (s->handlers == NULL)
		return err_set(err, "out of memory");
	for (i = 0; i < s->nhandlers; i++) {
		if (pthread_create(&s->handlers[i], NULL, handler_main, s) != 0) {
			s->nhandlers = i;
			return err_set(err, "Cannot start gRPC worker threads");
		}
	}
	for (i = 0; i < s->npollers; i++) {
		struct poller *p = &s->pollers[i];

		for (j = 0; j < s->nmethods; j++)
			for (int k = 0; k < GRPCX_REQUESTS_PER_METHOD; k++)
				request_call(p, &s->methods[j]);
		for (int k = 0; k < GRPCX_REQUESTS_PER_METHOD; k++)
			request_call(p, NULL);
		if (pthread_create(&p->th, NULL, poller_main, p) != 0) {
			s->npollers = i;
			return err_set(err, "Cannot start gRPC poller threads");
		}
	}
	return 0;
}

int grpcx_server_port(const struct grpcx_server *s)
{
	return s->port;
}

/* Wait until gRPC core reports the shutdown complete or, with idle_ok, until no call is
 * running any more (idle client connections would otherwise hold the shutdown open). */
static int wait_shutdown_done(struct grpcx_server *s, long ms, int idle_ok)
{
	struct timespec ts;
	int done;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->mu);
	while (!s->shutdown_done && !(idle_ok && s->active == 0)) {
		if (pthread_cond_timedwait(&s->done_cond, &s->mu, &ts) == ETIMEDOUT)
			break;
	}
	done = s->shutdown_done;
	pthread_mutex_unlock(&s->mu);
	return done;
}

/* Graceful stop: refuse new calls, let running ones finish (cancel them after a grace
 * period), then stop the threads. Idempotent. */
static void server_teardown(struct grpcx_server *s)
{
	pthread_mutex_lock(&s->teardown_mu);
	if (s->torn_down) {
		pthread_mutex_unlock(&s->teardown_mu);
		return;
	}
	s->stopping = 1;
	if (s->on_stop != NULL) {
		s->on_stop(s->on_stop_ctx);
		s->on_stop = NULL;
	}
	if (!s->started) {
		/* gRPC core insists on a completed shutdown even for a server never started. */
		grpc_event ev;
		grpc_server_shutdown_and_notify(s->srv, s->pollers[0].cq, &shutdown_tag);
		do {
			ev = grpc_completion_queue_next(s->pollers[0].cq, deadline_in_ms(10000),
			                                NULL);
		} while (ev.type == GRPC_OP_COMPLETE && ev.tag != &shutdown_tag);
	} else {
		grpc_server_shutdown_and_notify(s->srv, s->pollers[0].cq, &shutdown_tag);
		if (!wait_shutdown_done(s, GRPCX_GRACE_MS, 1)) {
			pthread_mutex_lock(&s->mu);
			if (s->active > 0)
				log_warn(
				    "grpc: %d calls still running after %d ms, cancelling them",
				    s->active, GRPCX_GRACE_MS);
			pthread_mutex_unlock(&s->mu);
			/* Also drops idle client connections, which lets the shutdown finish. */
			grpc_server_cancel_all_calls(s->srv);
			wait_shutdown_done(s, GRPCX_GRACE_MS, 0);
		}
		pthread_mutex_lock(&s->mu);
		s->hquit = 1;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->mu);
		for (int i = 0; i < s->nhandlers; i++)
			pthread_join(s->handlers[i], NULL);
		/* Anything still queued was never started: drop it. */
		while (s->qhead) {
			struct slot *sl = s->qhead;
			s->qhead = sl->next;
			grpc_call_cancel(sl->call, NULL);
			slot_free(sl);
		}
		s->qtail = NULL;
	}
	for (int i = 0; i < s->npollers; i++)
		grpc_completion_queue_shutdown(s->pollers[i].cq);
	if (s->started) {
		for (int i = 0; i < s->npollers; i++)
			pthread_join(s->pollers[i].th, NULL);
	} else {
		/* No poller thread ever ran: drain the queues here. */
		for (int i = 0; i < s->npollers; i++) {
			grpc_event ev;
			do {
				ev = grpc_completion_queue_next(
				    s->pollers[i].cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
			} while (ev.type != GRPC_QUEUE_SHUTDOWN);
		}
	}
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
	if (s->srv)
		grpc_server_destroy(s->srv);
	for (int i = 0; i < s->npollers; i++)
		if (s->pollers[i].cq)
			grpc_completion_queue_destroy(s->pollers[i].cq);
	for (int i = 0; i < s->nmethods; i++)
		free(s->methods[i].path);
	while (s->health) {
		struct health_entry *h = s->health;
		s->health = h->next;
		free(h->service);
		free(h);
	}
	free(s->handlers);
	if (s->stop_pipe[0] >= 0)
		close(s->stop_pipe[0]);
	if (s->stop_pipe[1] >= 0)
		close(s->stop_pipe[1]);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cond);
	pthread_cond_destroy(&s->done_cond);
	pthread_mutex_destroy(&s->health_mu);
	pthread_mutex_destroy(&s->teardown_mu);
	for (int i = 0; i < s->npeers; i++)
		X509_free(s->peers[i]);
	free(s->peers);
	pthread_mutex_destroy(&s->peers_mu);
	free(s);
	grpc_shutdown();
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
