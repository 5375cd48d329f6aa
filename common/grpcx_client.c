/*
 * grpcx client: unary gRPC calls over gRPC core's C API (see grpcx.h).
 *
 * Client. One channel per client (gRPC core multiplexes calls and reconnects by itself),
 * one short-lived completion queue per call, the whole unary exchange as one batch.
 * Reconnect backoff is capped at one second, and a call that finds the channel in
 * TRANSIENT_FAILURE resets the backoff first, so a restarted peer is reached on the next
 * call while a dead one fails fast with UNAVAILABLE (calls are not wait-for-ready). Core's
 * backup poller runs every 100 ms so that those attempts complete between calls too.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <openssl/crypto.h>

#include "grpcx.h"
#include "grpcx_core.h"

/* ------------------------------------------------------------------------------------ */
/* client */

struct grpcx_client {
	grpc_channel *ch;
	pthread_mutex_t mu;
	gpr_timespec last_reset;
	/* TLS links keep their material to explain a failed handshake (grpcx_tls_probe) */
	int tls;
	char *target, *ca_pem, *cert_pem, *key_pem;
	gpr_timespec last_probe;
	char probe_why[512];
	char *bearer; /* "Bearer <token>" sent as authorization metadata, or NULL (wiped) */
};

static const char *strip_scheme(const char *target, int *tls)
{
	*tls = 0;
	if (strncmp(target, "http://", 7) == 0)
		return target + 7;
	if (strncmp(target, "https://", 8) == 0) {
		*tls = 1;
		return target + 8;
	}
	return target;
}

static struct grpcx_client *client_new_creds(const char *target, grpc_channel_credentials *creds,
                                             struct err *err)
{
	struct grpcx_client *c;
	grpc_arg a[5];
	grpc_channel_args ca;
	char *t;
	size_t n;
	int tls;

	if (creds == NULL) {
		err_set(err, "Cannot create the gRPC channel credentials");
		return NULL;
	}
	t = strdup(strip_scheme(target, &tls));
	if (t == NULL) {
		grpc_channel_credentials_release(creds);
		err_set(err, "out of memory");
		return NULL;
	}
	n = strlen(t);
	while (n > 0 && t[n - 1] == '/')
		t[--n] = '\0';
	if (n == 0) {
		free(t);
		grpc_channel_credentials_release(creds);
		err_set(err, "Empty gRPC target address");
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		free(t);
		grpc_channel_credentials_release(creds);
		err_set(err, "out of memory");
		return NULL;
	}
	grpcx_init();
	a[0].type = GRPC_ARG_INTEGER;
	a[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	a[0].value.integer = GRPCX_MAX_MSG;
	a[1].type = GRPC_ARG_INTEGER;
	a[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
	a[1].value.integer = GRPCX_MAX_MSG;
	a[2].type = GRPC_ARG_INTEGER;
	a[2].key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS;
	a[2].value.integer = 100;
	/* gRPC core reads this one as the minimum time a connection attempt may take, not as a
	 * backoff: at 100 ms, an attempt started by a failed-fast call (nobody polling its
	 * socket until the next call) was cut off as "tcp handshaker shutdown" again and again,
	 * and a restarted peer stayed unreachable for seconds. */
	a[3].type = GRPC_ARG_INTEGER;
	a[3].key = GRPC_ARG_MIN_RECONNECT_BACKOFF_MS;
	a[3].value.integer = GRPCX_CONNECT_TIMEOUT_MS;
	a[4].type = GRPC_ARG_INTEGER;
	a[4].key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS;
	a[4].value.integer = 1000;
	ca.num_args = 5;
	ca.args = a;
	c->ch = grpc_channel_create(t, creds, &ca);
	grpc_channel_credentials_release(creds);
	free(t);
	if (c->ch == NULL) {
		free(c);
		grpc_shutdown();
		err_set(err, "Cannot create a gRPC channel to %s", target);
		return NULL;
	}
	pthread_mutex_init(&c->mu, NULL);
	c->last_reset = gpr_now(GPR_CLOCK_MONOTONIC);
	return c;
}

struct grpcx_client *grpcx_client_new(const char *target, struct err *err)
{
	int tls;

	/* An https:// target is never dialled in plaintext: TLS with the system roots. */
	strip_scheme(target, &tls);
	if (tls)
		return grpcx_client_new_tls(target, NULL, NULL, NULL, err);
	return client_new_creds(target, grpc_insecure_credentials_create(), err);
}

struct grpcx_client *grpcx_client_new_tls(const char *target, const char *ca_pem,
                                          const char *cert_pem, const char *key_pem,
                                          struct err *err)
{
	grpc_ssl_pem_key_cert_pair pair = {.private_key = key_pem, .cert_chain = cert_pem};
	struct grpcx_client *c;

	c = client_new_creds(
	    target,
	    grpc_ssl_credentials_create(ca_pem, cert_pem && key_pem ? &pair : NULL, NULL, NULL),
	    err);
	if (c == NULL)
		return NULL;
	c->tls = 1;
	c->target = strdup(target);
	c->ca_pem = ca_pem ? strdup(ca_pem) : NULL;
	if (cert_pem && key_pem) {
		c->cert_pem = strdup(cert_pem);
		c->key_pem = strdup(key_pem);
	}
	return c;
}

/* Core's message for a failed TLS handshake does not say why; one probe (at most every
 * second per client) does. Keeps the status, replaces the message, which names no address
 * (it may reach a client in a problem detail; callers log the link's address). */
static void explain_tls_failure(struct grpcx_client *c, struct err *err)
{
	gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);
	char why[512];

	if (err == NULL || c->target == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	if (c->probe_why[0] != '\0' && gpr_time_cmp(gpr_time_sub(now, c->last_probe),
	                                            gpr_time_from_millis(1000, GPR_TIMESPAN)) < 0) {
		snprintf(why, sizeof(why), "%s", c->probe_why);
	} else {
		pthread_mutex_unlock(&c->mu);
		if (grpcx_tls_probe(c->target, c->ca_pem, c->cert_pem, c->key_pem, 2000, why,
		                    sizeof(why)) == 0)
			return;
		pthread_mutex_lock(&c->mu);
		snprintf(c->probe_why, sizeof(c->probe_why), "%s", why);
		c->last_probe = now;
	}
	pthread_mutex_unlock(&c->mu);
	err_set(err, "TLS connection failed: %s", why);
	err->code = GRPCX_UNAVAILABLE;
}

/* A channel in TRANSIENT_FAILURE waits out its backoff before reconnecting; cut that short
 * (at most every 200 ms) so a restarted peer is reached by the very next call. */
static void maybe_reset_backoff(struct grpcx_client *c)
{
	gpr_timespec now;

	if (grpc_channel_check_connectivity_state(c->ch, 0) != GRPC_CHANNEL_TRANSIENT_FAILURE)
		return;
	now = gpr_now(GPR_CLOCK_MONOTONIC);
	pthread_mutex_lock(&c->mu);
	if (gpr_time_cmp(gpr_time_sub(now, c->last_reset),
	                 gpr_time_from_millis(200, GPR_TIMESPAN)) > 0) {
		c->last_reset = now;
		grpc_channel_reset_connect_backoff(c->ch);
	}
	pthread_mutex_unlock(&c->mu);
}

int grpcx_call(struct grpcx_client *c, const char *method, const uint8_t *req, size_t req_len,
               uint8_t **resp, size_t *resp_len, int timeout_ms, struct err *err)
{
	grpc_completion_queue *cq;
	grpc_call *call;
	grpc_op ops[6];
	grpc_metadata_array init_md, trail_md;
	grpc_metadata auth;
	grpc_byte_buffer *send_bb, *recv_bb = NULL;
	grpc_status_code status = GRPC_STATUS_UNKNOWN;
	grpc_slice details = grpc_empty_slice();
	grpc_slice msl;
	gpr_timespec deadline;
	grpc_call_error ce;
	grpc_event ev;
	int ret;

	*resp = NULL;
	*resp_len = 0;
	err_clear(err);
	maybe_reset_backoff(c);
	deadline =
	    timeout_ms > 0 ? deadline_in_ms(timeout_ms) : gpr_inf_future(GPR_CLOCK_MONOTONIC);
	cq = grpc_completion_queue_create_for_pluck(NULL);
	msl = grpc_slice_from_copied_string(method);
	call = grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, msl, NULL,
	                                deadline, NULL);
	grpc_slice_unref(msl);
	if (call == NULL) {
		grpc_completion_queue_shutdown(cq);
		grpc_completion_queue_destroy(cq);
		return err_set(err, "Cannot create a gRPC call");
	}
	grpc_metadata_array_init(&init_md);
	grpc_metadata_array_init(&trail_md);
	send_bb = bytes_to_bb(req, req_len);

	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	if (c->bearer != NULL) {
		auth.key = grpc_slice_from_static_string("authorization");
		auth.value = grpc_slice_from_static_string(c->bearer);
		ops[0].data.send_initial_metadata.count = 1;
		ops[0].data.send_initial_metadata.metadata = &auth;
	}
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send_bb;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &recv_bb;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &trail_md;
	ops[5].data.recv_status_on_client.status = &status;
	ops[5].data.recv_status_on_client.status_details = &details;

	ce = grpc_call_start_batch(call, ops, 6, (void *)1, NULL);
	if (ce != GRPC_CALL_OK) {
		ret = err_set(err, "Cannot start a gRPC call: %s", grpc_call_error_to_string(ce));
		goto out;
	}
	/* The call's deadline makes core complete the batch; waiting forever is safe. */
	ev = grpc_completion_queue_pluck(cq, (void *)1, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	if (ev.type != GRPC_OP_COMPLETE) {
		grpc_call_cancel(call, NULL);
		ret = err_set(err, "gRPC call did not complete");
		goto out;
	}
	ret = (int)status;
	if (status == GRPC_STATUS_OK) {
		if (bb_to_bytes(recv_bb, resp, resp_len) < 0) {
			ret = err_set(err, "Cannot read the gRPC response message");
		} else if (*resp == NULL) {
			/* OK without a message: callers get an empty one. */
			*resp = calloc(1, 1);
		}
	} else {
		char *d = grpc_slice_to_c_string(details);
		err_set(err, "%s", d && d[0] ? d : "gRPC call failed");
		if (err)
			err->code = (int)status;
		gpr_free(d);
		if (c->tls && status == GRPC_STATUS_UNAVAILABLE)
			explain_tls_failure(c, err);
	}
out:
	grpc_call_unref(call);
	grpc_completion_queue_shutdown(cq);
	while (
	    grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
	    GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(cq);
	grpc_byte_buffer_destroy(send_bb);
	if (recv_bb)
		grpc_byte_buffer_destroy(recv_bb);
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(&init_md);
	grpc_metadata_array_destroy(&trail_md);
	return ret;
}

int grpcx_client_set_bearer(struct grpcx_client *c, const char *token, struct err *err)
{
	char *b = NULL;

	if (token != NULL && asprintf(&b, "Bearer %s", token) < 0)
		return err_set(err, "out of memory");
	if (c->bearer) {
		OPENSSL_cleanse(c->bearer, strlen(c->bearer));
		free(c->bearer);
	}
	c->bearer = b;
	return 0;
}

void grpcx_client_free(struct grpcx_client *c)
{
	if (c == NULL)
		return;
	grpc_channel_destroy(c->ch);
	pthread_mutex_destroy(&c->mu);
	free(c->target);
	free(c->ca_pem);
	free(c->cert_pem);
	if (c->bearer) {
		OPENSSL_cleanse(c->bearer, strlen(c->bearer));
		free(c->bearer);
	}
	if (c->key_pem) {
		OPENSSL_cleanse(c->key_pem, strlen(c->key_pem));
		free(c->key_pem);
	}
	free(c);
	grpc_shutdown();
}
