/*
 * bench-as: AS appraisal latency in process — one AttestationEvaluate of sample evidence
 * (decode, verify, bind runtime data, appraise with our default CPU policy through the
 * built-in RVPS, sign the EAR token) — with the policy's compiled form cached (the text read
 * from storage and hashed on every call, as in production) beside the same call when the
 * stored text changes before every call and so must be compiled again (what every call cost
 * before the cache). Rounds of the two alternate so both see the same machine load.
 *   bench-as [--rounds 20] [--calls 100]
 * Prints the median per-call time of each and their ratio.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "as/as.h"
#include "attestation.pb-c.h"
#include "b64.h"
#include "bench_time.h"
#include "hash.h"
#include "jcs.h"
#include "log.h"

extern const char as_policy_cpu[];

static uint8_t *request(size_t *len)
{
	json_t *rd = json_pack("{s:s,s:{s:s,s:s}}", "nonce", "bm9uY2U=", "tee-pubkey", "kty", "EC",
	                       "crv", "P-256");
	char *canon = jcs_serialize(rd, NULL);
	uint8_t d[HASH_MAX];
	size_t dl = hash_digest(HASH_SHA384, canon, strlen(canon), d);
	char *d64 = b64_encode(d, dl, B64_STD);
	json_t *ev = json_pack("{s:s,s:s}", "svn", "1", "report_data", d64);
	char *evs = json_dumps(ev, JSON_COMPACT);
	char *ev64 = b64_encode((const uint8_t *)evs, strlen(evs), B64_URL);
	Attestation__IndividualAttestationRequest ir =
	    ATTESTATION__INDIVIDUAL_ATTESTATION_REQUEST__INIT;
	ir.tee = "sample";
	ir.evidence = ev64;
	ir.runtime_data_case =
	    ATTESTATION__INDIVIDUAL_ATTESTATION_REQUEST__RUNTIME_DATA_STRUCTURED_RUNTIME_DATA;
	ir.structured_runtime_data = canon;
	ir.runtime_data_hash_algorithm = "sha384";
	Attestation__IndividualAttestationRequest *irs[1] = {&ir};
	char *pid = "bench";
	Attestation__AttestationRequest r = ATTESTATION__ATTESTATION_REQUEST__INIT;
	r.n_verification_requests = 1;
	r.verification_requests = irs;
	r.n_policy_ids = 1;
	r.policy_ids = &pid;
	*len = protobuf_c_message_get_packed_size((ProtobufCMessage *)&r);
	uint8_t *buf = malloc(*len);
	protobuf_c_message_pack((ProtobufCMessage *)&r, buf);
	free(ev64);
	free(evs);
	free(d64);
	free(canon);
	json_decref(ev);
	json_decref(rd);
	return buf;
}

static int set_policy(struct as *a, long variant)
{
	size_t n = strlen(as_policy_cpu);
	char *text = malloc(n + 64);
	memcpy(text, as_policy_cpu, n);
	n += (size_t)snprintf(text + n, 64, "\n# variant %ld\n", variant);
	char *b = b64_encode((const uint8_t *)text, n, B64_URL);
	struct err e = {0};
	int rc = as_set_policy(a, "bench_cpu", b, &e);
	if (rc != 0)
		fprintf(stderr, "bench-as: SetPolicy: %s\n", e.msg);
	free(b);
	free(text);
	return rc;
}

/* Median µs per call over `calls` evaluations; with `recompile`, a new text before each. */
static double round_us(struct as *a, const uint8_t *req, size_t len, int calls, int recompile,
                       long *variant)
{
	double *t = calloc((size_t)calls, sizeof(*t));
	for (int i = 0; i < calls; i++) {
		if (recompile && set_policy(a, ++*variant) != 0)
			exit(1);
		struct err e = {0};
		double t0 = now_us();
		char *tok = as_evaluate(a, req, len, &e);
		t[i] = now_us() - t0;
		if (!tok) {
			fprintf(stderr, "bench-as: evaluate: %s\n", e.msg);
			exit(1);
		}
		free(tok);
	}
	double m = median(t, calls);
	free(t);
	return m;
}

int main(int argc, char **argv)
{
	int rounds = 20, calls = 100, o;
	static const struct option opts[] = {{"rounds", required_argument, NULL, 'r'},
	                                     {"calls", required_argument, NULL, 'c'},
	                                     {NULL, 0, NULL, 0}};
	while ((o = getopt_long(argc, argv, "r:c:", opts, NULL)) != -1) {
		if (o == 'r')
			rounds = atoi(optarg);
		else if (o == 'c')
			calls = atoi(optarg);
		else {
			fprintf(stderr, "usage: bench-as [--rounds N] [--calls N]\n");
			return 2;
		}
	}
	if (rounds < 1 || calls < 1)
		return 2;
	setenv("LOG_LEVEL", "warn", 0);
	log_init("bench-as");
	static struct as a;
	struct err e = {0};
	json_t *cfg = json_object(); /* Memory storage, built-in RVPS, ephemeral signer */
	if (as_init(&a, cfg, &e) != 0) {
		fprintf(stderr, "bench-as: %s\n", e.msg);
		return 1;
	}
	size_t len;
	uint8_t *req = request(&len);
	long variant = 0;
	if (set_policy(&a, variant) != 0)
		return 1;
	double *cached = calloc((size_t)rounds, sizeof(double));
	double *fresh = calloc((size_t)rounds, sizeof(double));
	for (int r = 0; r < rounds; r++) {
		if (set_policy(&a, 0) != 0) /* the same text every cached round */
			return 1;
		cached[r] = round_us(&a, req, len, calls, 0, &variant);
		fresh[r] = round_us(&a, req, len, calls, 1, &variant);
	}
	double mc = median(cached, rounds), mf = median(fresh, rounds);
	printf(
	    "AS evaluate (sample evidence, default CPU policy, EAR signed): compiled policy cached "
	    "%.0f us, policy text changed before each call (compiled every call) %.0f us: "
	    "%.2fx faster cached (%d rounds x %d calls)\n",
	    mc, mf, mf / mc, rounds, calls);
	free(cached);
	free(fresh);
	free(req);
	json_decref(cfg);
	return 0;
}
