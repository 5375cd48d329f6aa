/*
 * grpc-as: the Attestation Service daemon. Serves attestation.AttestationService, the
 * reference.ReferenceValueProviderService of its RVPS (built in, or proxied to a remote
 * rvps) and grpc.health.v1 on one gRPC port, and on the same port plain HTTP/1.1
 * GET /.well-known/jwks.json (the token signing key), /healthz and /metrics
 * (common/grpcfront.h). Writes (SetAttestationPolicy, RegisterReferenceValue) pass the
 * config's "admin" check first (common/grpcauth.h); rvps_config.bearer_token_file is the
 * credential sent to a remote RVPS, rvps_config.max_reference_values_per_message the cap of
 * the built-in one.
 *   grpc-as [-s|--socket ADDR] [-c|--config-file F.json]      (default 127.0.0.1:50004)
 *           [-t|--https-pubkey-cert CERT.pem -k|--https-prikey KEY.pem
 *            [--https-client-ca CA.pem]]                       (TLS; with a CA, mutual TLS)
 *           [--worker-threads N]   (gRPC handler threads; 0 = 4 per CPU, common/workers.h)
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>

#include "version.h"
#include "as/as.h"
#include "as/metrics.h"
#include "attestation.pb-c.h"
#include "config.h"
#include "grpcauth.h"
#include "grpcfront.h"
#include "grpcx.h"
#include "log.h"
#include "memtune.h"
#include "rvps/rvps.h"
#include "workers.h"

static int pack_out(const ProtobufCMessage *m, uint8_t **resp, size_t *resp_len)
{
	*resp_len = protobuf_c_message_get_packed_size(m);
	*resp = malloc(*resp_len ? *resp_len : 1);
	if (*resp == NULL)
		return GRPCX_INTERNAL;
	protobuf_c_message_pack(m, *resp);
	return GRPCX_OK;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int h_evaluate(void *ctx, const uint8_t *req, size_t len, uint8_t **resp, size_t *resp_len,
                      struct err *err)
{
	double t0 = now_s();
	char tee[32]; /* the first evidence's, for the metrics label */
	char *token = as_evaluate_tee(ctx, req, len, tee, sizeof(tee), err);

	as_metrics_attestation(tee, token != NULL, now_s() - t0);
	if (token == NULL) {
		log_warn("%s", err->msg);
		/* an outage of storage or the RVPS is UNAVAILABLE, so the KBS says "retry" */
		return err->code == ERR_UNAVAILABLE ? GRPCX_UNAVAILABLE : GRPCX_ABORTED;
	}
	Attestation__AttestationResponse r = ATTESTATION__ATTESTATION_RESPONSE__INIT;
	r.attestation_token = token;
	int rc = pack_out(&r.base, resp, resp_len);
	free(token);
	return rc;
}

static const struct grpcauth *write_auth; /* set once before the server starts */

static int h_set_policy(void *ctx, const uint8_t *req, size_t len, uint8_t **resp, size_t *resp_len,
                        struct err *err)
{
	int st = grpcauth_check_write(write_auth, "SetAttestationPolicy", err);
	if (st != 0)
		return st;
	Attestation__SetPolicyRequest *r = attestation__set_policy_request__unpack(NULL, len, req);
	if (r == NULL) {
		err_set(err, "request is not a SetPolicyRequest");
		return GRPCX_INVALID_ARGUMENT;
	}
	int rc = as_set_policy(ctx, r->policy_id, r->policy, err);
	attestation__set_policy_request__free_unpacked(r, NULL);
	if (rc < 0)
		return GRPCX_ABORTED;
	Attestation__SetPolicyResponse out = ATTESTATION__SET_POLICY_RESPONSE__INIT;
	return pack_out(&out.base, resp, resp_len);
}

static int h_challenge(void *ctx, const uint8_t *req, size_t len, uint8_t **resp, size_t *resp_len,
                       struct err *err)
{
	Attestation__ChallengeRequest *r = attestation__challenge_request__unpack(NULL, len, req);
	const char *tee = NULL, *params = NULL;
	char *text = NULL;
	int rc;

	if (r == NULL) {
		err_set(err, "request is not a ChallengeRequest");
		return GRPCX_INVALID_ARGUMENT;
	}
	for (size_t i = 0; i < r->n_inner; i++) {
		if (strcmp(r->inner[i]->key, "tee") == 0)
			tee = r->inner[i]->value;
		if (strcmp(r->inner[i]->key, "tee_params") == 0)
			params = r->inner[i]->value;
	}
	if (tee == NULL || params == NULL) {
		attestation__challenge_request__free_unpacked(r, NULL);
		err_set(err, "challenge request needs `tee` and `tee_params`");
		return GRPCX_ABORTED;
	}
	/* a verifier-defined challenge exists only for IBM SE; every other TEE answers "" */
	const struct verifier *v = verifier_find(tee);
	if (v != NULL && v->challenge != NULL && (text = v->challenge(params, err)) == NULL) {
		attestation__challenge_request__free_unpacked(r, NULL);
		return GRPCX_ABORTED;
	}
	attestation__challenge_request__free_unpacked(r, NULL);
	Attestation__ChallengeResponse out = ATTESTATION__CHALLENGE_RESPONSE__INIT;
	out.attestation_challenge = text ? text : "";
	rc = pack_out(&out.base, resp, resp_len);
	free(text);
	return rc;
}

/* The HTTP/1.1 pages on the gRPC port; `jwks` is the JWK set text made at start. */
struct pages {
	char *jwks;
};

static void page(void *ctx, const char *path, struct gfront_reply *out)
{
	struct pages *p = ctx;

	if (strcmp(path, "/.well-known/jwks.json") == 0) {
		out->body = p->jwks ? strdup(p->jwks) : NULL;
		out->status = out->body ? 200 : 500;
		out->ctype = out->body ? "application/json" : "text/plain";
		if (out->body == NULL) {
			out->body = strdup("failed to get JWKS\n");
			out->len = out->body ? strlen(out->body) : 0;
			return;
		}
		out->len = strlen(out->body);
	} else if (strcmp(path, "/healthz") == 0) {
		out->status = 200;
		out->ctype = "text/plain";
		out->body = strdup("ok\n");
		out->len = out->body ? 3 : 0;
	} else if (strcmp(path, "/metrics") == 0) {
		out->body = as_metrics_render(&out->len);
		out->status = out->body ? 200 : 500;
		out->ctype = "text/plain; version=0.0.4";
	}
}

/* admin (who may write), the remote RVPS's credential, the built-in RVPS's cap. */
static int setup_writes(struct as *a, const json_t *cfg, const char *addr, int mtls,
                        struct err *err)
{
	const json_t *rv = json_object_get(cfg, "rvps_config");
	const char *tok = json_string_value(json_object_get(rv, "bearer_token_file"));
	const json_t *max = json_object_get(rv, "max_reference_values_per_message");
	struct grpcauth *auth =
	    grpcauth_new(json_object_get(cfg, "admin"), "grpc-as config admin", err);

	if (auth == NULL)
		return -1;
	write_auth = auth; /* lives as long as the process */
	rvps_grpc_set_write_auth(auth);
	grpcauth_warn_open(auth, "grpc-as", addr, mtls);
	if (max != NULL && (!json_is_integer(max) || json_integer_value(max) < 1))
		return err_set(err, "rvps_config.max_reference_values_per_message must be a "
		                    "positive integer");
	if (a->rvps_local != NULL && max != NULL)
		rvps_set_max_values(a->rvps_local, json_integer_value(max));
	if (a->rvps_remote != NULL && tok != NULL &&
	    rvps_client_set_bearer_file(a->rvps_remote, tok, err) < 0)
		return err_prefix(err, "rvps_config.bearer_token_file");
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: grpc-as [-s|--socket ADDR] [-c|--config-file F.json]\n"
	           "               [-t|--https-pubkey-cert CERT.pem -k|--https-prikey KEY.pem\n"
	           "                [--https-client-ca CA.pem]] [--worker-threads N]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
	                                     {"config-file", required_argument, NULL, 'c'},
	                                     {"https-pubkey-cert", required_argument, NULL, 't'},
	                                     {"https-prikey", required_argument, NULL, 'k'},
	                                     {"https-client-ca", required_argument, NULL, 'C'},
	                                     {"worker-threads", required_argument, NULL, 'W'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {"version", no_argument, NULL, 'V'},
	                                     {NULL, 0, NULL, 0}};
	const char *addr = "127.0.0.1:50004", *cfgpath = NULL;
	const char *tls_cert = NULL, *tls_key = NULL, *client_ca = NULL, *workers_flag = NULL;
	struct err err = {0};
	static struct as a;
	struct gfront_tls tls = {0};
	struct pages pages = {0};
	json_t *cfg;
	int c, workers;

	log_init("grpc-as");
	/* OpenSSL's global state lives as long as the process: its atexit cleanup would free it
	 * while gRPC's pool threads may still be running with per-thread OpenSSL state. */
	OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
	memtune_daemon(0); /* large blocks mapped: a refused policy's memory leaves */
	while ((c = getopt_long(argc, argv, "s:c:t:k:hV", opts, NULL)) != -1) {
		if (c == 's')
			addr = optarg;
		else if (c == 'c')
			cfgpath = optarg;
		else if (c == 't')
			tls_cert = optarg;
		else if (c == 'k')
			tls_key = optarg;
		else if (c == 'C')
			client_ca = optarg;
		else if (c == 'W')
			workers_flag = optarg;
		else if (c == 'h') {
			usage(stdout);
			return 0;
		} else if (c == 'V') {
			version_print("grpc-as");
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (gfront_tls_load(&tls, tls_cert, tls_key, client_ca, &err) < 0) {
		log_error("cannot start: %s", err.msg);
		return 1;
	}
	cfg = cfgpath ? config_load(cfgpath, &err) : json_object();
	if (cfg == NULL || as_init(&a, cfg, &err) < 0) {
		log_error("cannot start: %s", err.msg);
		json_decref(cfg);
		return 1;
	}
	if (setup_writes(&a, cfg, addr, client_ca != NULL, &err) < 0 ||
	    workers_resolve(cfg, workers_flag, &workers, &err) < 0) {
		log_error("cannot start: %s", err.msg);
		json_decref(cfg);
		return 1;
	}
	json_t *set = json_pack("{s:[O]}", "keys", a.jwk);
	pages.jwks = set ? json_dumps(set, JSON_COMPACT) : NULL;
	json_decref(set);
	struct grpcx_server *s = grpcx_server_new_unbound(workers, &err);
	struct gfront *front =
	    s ? gfront_new(addr, s, tls_cert ? &tls : NULL, page, &pages, &err) : NULL;
	gfront_tls_clear(&tls);
	struct gfront_limits gl;
	if (front == NULL || gfront_limits_from_config(cfg, &gl, &err) < 0) {
		log_error("cannot start: %s", err.msg);
		json_decref(cfg);
		return 1;
	}
	gfront_set_limits(front, &gl);
	grpcx_server_add(s, "/attestation.AttestationService/AttestationEvaluate", h_evaluate, &a);
	grpcx_server_add(s, "/attestation.AttestationService/SetAttestationPolicy", h_set_policy,
	                 &a);
	grpcx_server_add(s, "/attestation.AttestationService/GetAttestationChallenge", h_challenge,
	                 &a);
	struct grpcx_client *proxy = NULL;
	if (a.rvps_local != NULL) {
		rvps_grpc_serve(s, a.rvps_local);
	} else {
		/* the proxied RVPS API shares the policy's channel (and its TLS settings) */
		proxy = rvps_client_channel(a.rvps_remote);
		rvps_grpc_serve_proxy(s, proxy);
	}
	grpcx_server_set_serving(s, "attestation.AttestationService", 1);
	if (grpcx_server_start(s, &err) < 0) {
		log_error("cannot start the gRPC server: %s", err.msg);
		return 1;
	}
	if (gfront_start(front, &err) < 0) {
		log_error("cannot start: %s", err.msg);
		return 1;
	}
	grpcx_server_handle_signals(s);
	log_info("listening on %s (port %d, %s, %d handler threads; gRPC and HTTP/1.1 "
	         "/.well-known/jwks.json)",
	         addr, gfront_port(front),
	         client_ca  ? "mutual TLS"
	         : tls_cert ? "TLS"
	                    : "plaintext",
	         workers);
	grpcx_server_wait(s);
	grpcx_server_free(s);
	gfront_free(front); /* after the server: its teardown wrote the last responses */
	free(pages.jwks);
	json_decref(cfg);
	return 0;
}
