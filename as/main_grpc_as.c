/*
 * grpc-as: the Attestation Service daemon. Serves attestation.AttestationService, the
 * reference.ReferenceValueProviderService of its RVPS (built in, or proxied to a remote
 * rvps) and grpc.health.v1 on one gRPC port.
 *   grpc-as [-s|--socket ADDR] [-c|--config-file F.json]      (default 127.0.0.1:50004)
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as/as.h"
#include "attestation.pb-c.h"
#include "config.h"
#include "grpcx.h"
#include "log.h"
#include "rvps/rvps.h"

static int pack_out(const ProtobufCMessage *m, uint8_t **resp, size_t *resp_len)
{
	*resp_len = protobuf_c_message_get_packed_size(m);
	*resp = malloc(*resp_len ? *resp_len : 1);
	if (*resp == NULL)
		return GRPCX_INTERNAL;
	protobuf_c_message_pack(m, *resp);
	return GRPCX_OK;
}

static int h_evaluate(void *ctx, const uint8_t *req, size_t len, uint8_t **resp, size_t *resp_len,
                      struct err *err)
{
	char *token = as_evaluate(ctx, req, len, err);
	if (token == NULL) {
		log_warn("%s", err->msg);
		return GRPCX_ABORTED;
	}
	Attestation__AttestationResponse r = ATTESTATION__ATTESTATION_RESPONSE__INIT;
	r.attestation_token = token;
	int rc = pack_out(&r.base, resp, resp_len);
	free(token);
	return rc;
}

static int h_set_policy(void *ctx, const uint8_t *req, size_t len, uint8_t **resp, size_t *resp_len,
                        struct err *err)
{
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
	int tee = 0, params = 0;
	if (r == NULL) {
		err_set(err, "request is not a ChallengeRequest");
		return GRPCX_INVALID_ARGUMENT;
	}
	for (size_t i = 0; i < r->n_inner; i++) {
		tee |= strcmp(r->inner[i]->key, "tee") == 0;
		params |= strcmp(r->inner[i]->key, "tee_params") == 0;
	}
	attestation__challenge_request__free_unpacked(r, NULL);
	if (!tee || !params) {
		err_set(err, "challenge request needs `tee` and `tee_params`");
		return GRPCX_ABORTED;
	}
	/* a verifier-specific challenge exists only for IBM SE, which this build does not have */
	Attestation__ChallengeResponse out = ATTESTATION__CHALLENGE_RESPONSE__INIT;
	out.attestation_challenge = "";
	return pack_out(&out.base, resp, resp_len);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
	                                     {"config-file", required_argument, NULL, 'c'},
	                                     {NULL, 0, NULL, 0}};
	const char *addr = "127.0.0.1:50004", *cfgpath = NULL;
	struct err err = {0};
	static struct as a;
	json_t *cfg;
	int c;

	log_init("grpc-as");
	while ((c = getopt_long(argc, argv, "s:c:", opts, NULL)) != -1) {
		if (c == 's')
			addr = optarg;
		else if (c == 'c')
			cfgpath = optarg;
		else {
			fprintf(stderr, "usage: grpc-as [--socket ADDR] [--config-file F.json]\n");
			return 2;
		}
	}
	cfg = cfgpath ? config_load(cfgpath, &err) : json_object();
	if (cfg == NULL || as_init(&a, cfg, &err) < 0) {
		log_error("cannot start: %s", err.msg);
		json_decref(cfg);
		return 1;
	}
	struct grpcx_server *s = grpcx_server_new(addr, 8, &err);
	if (s == NULL) {
		log_error("cannot listen on %s: %s", addr, err.msg);
		json_decref(cfg);
		return 1;
	}
	grpcx_server_add(s, "/attestation.AttestationService/AttestationEvaluate", h_evaluate, &a);
	grpcx_server_add(s, "/attestation.AttestationService/SetAttestationPolicy", h_set_policy,
	                 &a);
	grpcx_server_add(s, "/attestation.AttestationService/GetAttestationChallenge", h_challenge,
	                 &a);
	struct grpcx_client *proxy = NULL;
	if (a.rvps_local != NULL) {
		rvps_grpc_serve(s, a.rvps_local);
	} else {
		proxy = grpcx_client_new(a.rvps_addr, &err);
		if (proxy == NULL) {
			log_error("RVPS %s: %s", a.rvps_addr, err.msg);
			return 1;
		}
		rvps_grpc_serve_proxy(s, proxy);
	}
	grpcx_server_set_serving(s, "attestation.AttestationService", 1);
	if (grpcx_server_start(s, &err) < 0) {
		log_error("cannot start the gRPC server: %s", err.msg);
		return 1;
	}
	grpcx_server_handle_signals(s);
	log_info("listening on %s (port %d)", addr, grpcx_server_port(s));
	grpcx_server_wait(s);
	grpcx_server_free(s);
	grpcx_client_free(proxy); /* after the server: its handlers use it */
	json_decref(cfg);
	return 0;
}
