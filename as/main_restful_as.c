/*
 * restful-as: the Attestation Service over HTTP/JSON (as-rvps.md §1.4), Trustee's restful-as:
 * the same AS library and config as grpc-as, served by the kbs's libevent server
 * (common/http.h: its body cap, request deadlines and worker pool).
 *
 *   restful-as -s|--socket ADDR [-c|--config-file F.json] [-t CERT.pem -k KEY.pem]
 *              [-r|--allowed_origin ORIGIN[,ORIGIN...]]...   [-V|--version]
 *
 *   POST /attestation            {"verification_requests":[...],"policy_ids":[...]} -> token
 *   POST /policy                 {"policy_id","policy"(b64url Rego)}               -> ""
 *   GET  /policy                 [{"policy-id":"default_cpu"},...]
 *   POST /challenge              {"tee","tee_params",...}                          -> challenge
 *   GET  /.well-known/jwks.json  the token signing key;  GET /healthz;  GET /metrics (ours)
 *
 * Trustee's answers are kept: a refused call is 500 with the text body
 * "An internal error occured: \n0: <cause>\n1: <cause>"; a body that is not the JSON the route
 * takes is 400 with a sentence naming what is wrong (Trustee's framework says only that the JSON
 * did not deserialize). CORS as Trustee configures it: only the -r origins, methods POST, GET,
 * OPTIONS, headers Content-Type and Authorization, max-age 86400; a request from another
 * origin is refused with 400.
 */
#include <getopt.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>

#include "as/as.h"
#include "as/metrics.h"
#include "attestation.pb-c.h"
#include "config.h"
#include "http.h"
#include "keyfile.h"
#include "kv/kv.h"
#include "log.h"
#include "memtune.h"
#include "version.h"

#define MAX_ORIGINS 64

struct restful {
	struct as as;
	char *jwks;                 /* the JWK set text, made at start */
	char *origins[MAX_ORIGINS]; /* -r, each starting with http:// or https:// */
	size_t n_origins;
};

/* ---- replies ------------------------------------------------------------------------- */

/* Trustee's refusal: 500 and the numbered cause chain as text ("0: <what failed>\n1: <why>"
 * when `what` is given). */
static void internal_error(struct http_req *r, const char *what, const char *cause)
{
	char *body = NULL;
	int n = what ? asprintf(&body, "An internal error occured: \n0: %s\n1: %s", what, cause)
	             : asprintf(&body, "An internal error occured: \n0: %s", cause);
	log_warn("restful-as: %s %s: %s", http_req_method_name(r), http_req_path(r), cause);
	http_reply(r, 500, "text/plain; charset=utf-8", n > 0 ? body : "", n > 0 ? (size_t)n : 0);
	free(body);
}

static void bad_request(struct http_req *r, const char *what)
{
	log_info("restful-as: %s %s: refused: %s", http_req_method_name(r), http_req_path(r), what);
	http_reply(r, 400, "text/plain; charset=utf-8", what, strlen(what));
}

/* The JSON body of a POST, or NULL after a 400 naming why. */
static json_t *json_body(struct http_req *r)
{
	const char *ct = http_req_header(r, "Content-Type");
	size_t len;
	const uint8_t *b = http_req_body(r, &len);
	json_error_t je;
	char msg[300];

	if (ct == NULL || strstr(ct, "json") == NULL) {
		bad_request(r, "Content type error: the body must be application/json");
		return NULL;
	}
	json_t *v = json_loadb((const char *)b, len, JSON_REJECT_DUPLICATES, &je);
	if (v == NULL || !json_is_object(v)) {
		snprintf(msg, sizeof(msg), "Json deserialize error: %s",
		         v == NULL ? je.text : "the body must be a JSON object");
		json_decref(v);
		bad_request(r, msg);
		return NULL;
	}
	return v;
}

/* ---- POST /attestation ----------------------------------------------------------------- */

/* The TEE names restful-as accepts (as-rvps.md §1.3: not tpm, not nvidia). */
static int rest_tee(const char *t)
{
	static const char *const tees[] = {"az-snp-vtpm", "sgx", "snp",     "tdx",
	                                   "cca",         "csv", "sample",  "sampledevice",
	                                   "az-tdx-vtpm", "se",  "hygondcu"};
	for (size_t i = 0; i < sizeof(tees) / sizeof(tees[0]); i++)
		if (strcmp(t, tees[i]) == 0)
			return 1;
	return 0;
}

/* One verification request's JSON -> its protobuf (strings point into `v` or are kept in
 * `owned`). 400-class problems return -1 with *bad set; a TEE name we refuse -1 with !*bad. */
static int one_request(const json_t *v, Attestation__IndividualAttestationRequest *it,
                       json_t *owned, int *bad, struct err *err)
{
	const json_t *rd = json_object_get(v, "runtime_data");
	const json_t *id = json_object_get(v, "init_data");
	const json_t *alg = json_object_get(v, "runtime_data_hash_algorithm");

	*bad = 1;
	attestation__individual_attestation_request__init(it);
	if (!json_is_object(v))
		return err_set(err, "a verification request must be a JSON object");
	it->tee = (char *)json_string_value(json_object_get(v, "tee"));
	it->evidence = (char *)json_string_value(json_object_get(v, "evidence"));
	if (it->tee == NULL || it->evidence == NULL)
		return err_set(err, "a verification request needs string `tee` and `evidence`");
	if (alg != NULL && !json_is_null(alg) && !json_is_string(alg))
		return err_set(err, "`runtime_data_hash_algorithm` must be a string");
	it->runtime_data_hash_algorithm =
	    json_is_string(alg) ? (char *)json_string_value(alg) : "sha384";
	if (rd != NULL && !json_is_null(rd)) {
		const json_t *raw = json_object_get(rd, "raw");
		const json_t *st = json_object_get(rd, "structured");
		if (!json_is_object(rd) || json_object_size(rd) != 1 ||
		    (raw == NULL && st == NULL) || (raw != NULL && !json_is_string(raw)))
			return err_set(err, "`runtime_data` must be {\"raw\": \"<base64url>\"} or "
			                    "{\"structured\": <JSON>}");
		if (raw != NULL) {
			it->runtime_data_case =
			    ATTESTATION__INDIVIDUAL_ATTESTATION_REQUEST__RUNTIME_DATA_RAW_RUNTIME_DATA;
			it->raw_runtime_data = (char *)json_string_value(raw);
		} else {
			char *text = json_dumps(st, JSON_COMPACT | JSON_ENCODE_ANY);
			if (text == NULL)
				return err_set(err, "out of memory");
			json_array_append_new(owned, json_string(text));
			free(text);
			it->runtime_data_case =
			    ATTESTATION__INDIVIDUAL_ATTESTATION_REQUEST__RUNTIME_DATA_STRUCTURED_RUNTIME_DATA;
			it->structured_runtime_data = (char *)json_string_value(
			    json_array_get(owned, json_array_size(owned) - 1));
		}
	}
	if (id != NULL && !json_is_null(id)) {
		const json_t *dg = json_object_get(id, "init_data_digest");
		const json_t *tm = json_object_get(id, "init_data_toml");
		if (!json_is_object(id) || json_object_size(id) != 1 ||
		    !json_is_string(dg ? dg : tm))
			return err_set(err, "`init_data` must be {\"init_data_digest\": "
			                    "\"<base64url>\"} or {\"init_data_toml\": \"<TOML>\"}");
		if (dg != NULL) {
			it->init_data_case =
			    ATTESTATION__INDIVIDUAL_ATTESTATION_REQUEST__INIT_DATA_INIT_DATA_DIGEST;
			it->init_data_digest = (char *)json_string_value(dg);
		} else {
			it->init_data_case =
			    ATTESTATION__INDIVIDUAL_ATTESTATION_REQUEST__INIT_DATA_INIT_DATA_TOML;
			it->init_data_toml = (char *)json_string_value(tm);
		}
	}
	*bad = 0;
	if (!rest_tee(it->tee))
		return err_set(err, "tee `%.64s` not supported", it->tee);
	return 0;
}

/* The request body -> packed AttestationRequest bytes; -1 with *bad for a 400. */
static int pack_attestation(const json_t *body, uint8_t **out, size_t *out_len, int *bad,
                            struct err *err)
{
	const json_t *vr = json_object_get(body, "verification_requests");
	const json_t *ids = json_object_get(body, "policy_ids");
	Attestation__AttestationRequest req = ATTESTATION__ATTESTATION_REQUEST__INIT;
	size_t n = json_array_size(vr), np = json_array_size(ids);
	Attestation__IndividualAttestationRequest *items = NULL, **ptrs = NULL;
	char **pids = NULL;
	json_t *owned = json_array();
	int rc = -1;

	*bad = 1;
	if (!json_is_array(vr) || !json_is_array(ids)) {
		err_set(err,
		        "Json deserialize error: the body needs arrays `verification_requests` "
		        "and `policy_ids`");
		goto out;
	}
	if (n > AS_MAX_DEVICES) {
		err_set(err, "Json deserialize error: more than %d verification requests",
		        AS_MAX_DEVICES);
		goto out;
	}
	items = calloc(n ? n : 1, sizeof(*items));
	ptrs = calloc(n ? n : 1, sizeof(*ptrs));
	pids = calloc(np ? np : 1, sizeof(*pids));
	if (items == NULL || ptrs == NULL || pids == NULL || owned == NULL) {
		*bad = 0;
		err_set(err, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < np; i++)
		if ((pids[i] = (char *)json_string_value(json_array_get(ids, i))) == NULL) {
			err_set(err, "Json deserialize error: `policy_ids` must hold strings");
			goto out;
		}
	for (size_t i = 0; i < n; i++) {
		if (one_request(json_array_get(vr, i), &items[i], owned, bad, err) < 0) {
			if (*bad)
				err_prefix(err,
				           "Json deserialize error: verification_requests[%zu]", i);
			goto out;
		}
		ptrs[i] = &items[i];
	}
	req.n_verification_requests = n;
	req.verification_requests = ptrs;
	req.n_policy_ids = np; /* none: the AS uses "default" */
	req.policy_ids = pids;
	*out_len = protobuf_c_message_get_packed_size(&req.base);
	if ((*out = malloc(*out_len ? *out_len : 1)) == NULL) {
		*bad = 0;
		err_set(err, "out of memory");
		goto out;
	}
	protobuf_c_message_pack(&req.base, *out);
	rc = 0;
out:
	free(items);
	free(ptrs);
	free(pids);
	json_decref(owned);
	return rc;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* On the worker pool: evaluation verifies signatures and may fetch collateral. */
static void do_attestation(void *arg, struct http_req *r)
{
	struct restful *s = arg;
	struct err e = {0};
	uint8_t *req = NULL;
	size_t len = 0;
	int bad = 0;
	double t0 = now_s();
	json_t *body = json_body(r);

	if (body == NULL)
		return;
	const char *tee = json_string_value(json_object_get(
	    json_array_get(json_object_get(body, "verification_requests"), 0), "tee"));
	char teebuf[32];
	snprintf(teebuf, sizeof(teebuf), "%s", tee ? tee : "");
	if (pack_attestation(body, &req, &len, &bad, &e) < 0) {
		json_decref(body);
		if (bad)
			bad_request(r, e.msg);
		else
			internal_error(r, NULL, e.msg);
		return;
	}
	json_decref(body);
	char *token = as_evaluate(&s->as, req, len, &e);
	free(req);
	as_metrics_attestation(teebuf, token != NULL, now_s() - t0);
	if (token == NULL) {
		internal_error(r, "attestation report evaluate", e.msg);
		return;
	}
	http_reply(r, 200, "text/plain; charset=utf-8", token, strlen(token));
	free(token);
}

/* ---- /policy, /challenge ----------------------------------------------------------------- */

static void do_set_policy(void *arg, struct http_req *r)
{
	struct restful *s = arg;
	struct err e = {0};
	json_t *body = json_body(r);

	if (body == NULL)
		return;
	const char *id = json_string_value(json_object_get(body, "policy_id"));
	const char *pol = json_string_value(json_object_get(body, "policy"));
	if (id == NULL || pol == NULL || *id == '\0')
		bad_request(r, "Json deserialize error: the body needs strings `policy_id` and "
		               "`policy`");
	else if (!kv_key_valid(id) || strchr(id, '/') != NULL)
		bad_request(r, "Json deserialize error: `policy_id` is not a valid policy id");
	else if (as_set_policy(&s->as, id, pol, &e) < 0)
		internal_error(r, "set policy", e.msg);
	else
		http_reply(r, 200, NULL, "", 0);
	json_decref(body);
}

static void do_list_policies(void *arg, struct http_req *r)
{
	struct restful *s = arg;
	struct err e = {0};
	char **keys = NULL;
	size_t n = 0;

	if (kv_list(s->as.kv, KV_NS_AS_POLICY, &keys, &n, &e) < 0) {
		internal_error(r, "get policies", e.msg);
		return;
	}
	json_t *list = json_array();
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(keys[i]);
		if (l > 5 && strcmp(keys[i] + l - 5, ".rego") == 0)
			keys[i][l - 5] = '\0';
		json_array_append_new(list, json_pack("{s:s}", "policy-id", keys[i]));
	}
	kv_list_free(keys, n);
	char *text = json_dumps(list, JSON_COMPACT);
	json_decref(list);
	if (text == NULL) {
		internal_error(r, "serialize response body", "out of memory");
		return;
	}
	http_reply(r, 200, "text/plain; charset=utf-8", text, strlen(text));
	free(text);
}

/* A flat object of strings with `tee` and `tee_params`; the challenge is verifier-defined and
 * only IBM SE has one (its verifier's challenge); every other TEE gets "" as from grpc-as. */
static void do_challenge(void *arg, struct http_req *r)
{
	json_t *body = json_body(r);
	const char *k;
	json_t *v;

	if (body == NULL)
		return;
	int strings = 1;
	json_object_foreach(body, k, v) strings &= json_is_string(v) ? 1 : 0;
	if (!strings) {
		json_decref(body);
		bad_request(r, "Json deserialize error: the challenge request must be an object of "
		               "strings");
		return;
	}
	const char *tee = json_string_value(json_object_get(body, "tee"));
	if (tee == NULL)
		internal_error(r, NULL, "Failed to get inner tee");
	else if (json_object_get(body, "tee_params") == NULL)
		internal_error(r, NULL, "Failed to get inner tee_params");
	else if (!rest_tee(tee)) {
		char msg[128];
		snprintf(msg, sizeof(msg), "tee `%.64s` not supported", tee);
		internal_error(r, NULL, msg);
	} else {
		const struct verifier *v = verifier_find(tee);
		struct err e = {0};
		char *text =
		    v != NULL && v->challenge != NULL
		        ? v->challenge(json_string_value(json_object_get(body, "tee_params")), &e)
		        : strdup("");
		if (text == NULL)
			internal_error(r, NULL, e.msg[0] ? e.msg : "out of memory");
		else
			http_reply(r, 200, "text/plain; charset=utf-8", text, strlen(text));
		free(text);
	}
	json_decref(body);
}

/* ---- routing and CORS --------------------------------------------------------------------- */

/* 1: no Origin, or an allowed one (its CORS headers added); 0: refused with 400. */
static int cors(struct restful *s, struct http_req *r)
{
	const char *o = http_req_header(r, "Origin");
	if (o == NULL)
		return 1;
	for (size_t i = 0; i < s->n_origins; i++)
		if (strcmp(s->origins[i], o) == 0) {
			http_reply_header(r, "Access-Control-Allow-Origin", o);
			http_reply_header(r, "Vary", "Origin");
			return 1;
		}
	bad_request(r, "Origin is not allowed to make this request");
	return 0;
}

static void preflight(struct restful *s, struct http_req *r)
{
	const char *m = http_req_header(r, "Access-Control-Request-Method");
	if (m == NULL ||
	    (strcmp(m, "POST") != 0 && strcmp(m, "GET") != 0 && strcmp(m, "OPTIONS") != 0)) {
		bad_request(r, "Requested method is not allowed");
		return;
	}
	if (http_req_header(r, "Origin") == NULL) {
		bad_request(r, "Origin is not allowed to make this request");
		return;
	}
	if (!cors(s, r))
		return;
	http_reply_header(r, "Access-Control-Allow-Methods", "GET, OPTIONS, POST");
	http_reply_header(r, "Access-Control-Allow-Headers", "authorization, content-type");
	http_reply_header(r, "Access-Control-Max-Age", "86400");
	http_reply(r, 200, NULL, "", 0);
}

struct route {
	enum http_method method;
	const char *path;
	http_async_fn fn; /* run on the worker pool */
};

static const struct route routes[] = {
    {HTTP_M_POST, "/attestation", do_attestation},
    {HTTP_M_POST, "/policy", do_set_policy},
    {HTTP_M_GET, "/policy", do_list_policies},
    {HTTP_M_POST, "/challenge", do_challenge},
};

static void on_request(void *ctx, struct http_req *r)
{
	struct restful *s = ctx;
	const char *p = http_req_path(r);
	enum http_method m = http_req_method(r);
	int known = 0;

	if (strcmp(http_req_method_name(r), "OPTIONS") == 0) {
		preflight(s, r);
		return;
	}
	if (!cors(s, r))
		return;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strcmp(p, routes[i].path) != 0)
			continue;
		known = 1;
		if (m == routes[i].method) {
			if (http_req_run_async(r, routes[i].fn, s) != 0)
				http_reply(r, 503, NULL, "", 0);
			return;
		}
	}
	if (m == HTTP_M_GET && strcmp(p, "/.well-known/jwks.json") == 0)
		http_reply(r, 200, "application/json", s->jwks, strlen(s->jwks));
	else if (m == HTTP_M_GET && strcmp(p, "/healthz") == 0)
		http_reply(r, 200, NULL, "", 0);
	else if (m == HTTP_M_GET && strcmp(p, "/metrics") == 0) {
		size_t len = 0;
		char *text = as_metrics_render(&len);
		if (text == NULL)
			internal_error(r, NULL, "cannot render the metrics");
		else
			http_reply(r, 200, "text/plain; version=0.0.4", text, len);
		free(text);
	} else if (known || strcmp(p, "/.well-known/jwks.json") == 0 || strcmp(p, "/healthz") == 0)
		http_reply(r, 405, NULL, "", 0);
	else
		http_reply(r, 404, NULL, "", 0);
}

/* ---- start-up -------------------------------------------------------------------------- */

static int add_origins(struct restful *s, const char *arg)
{
	char *copy = strdup(arg), *save = NULL;
	if (copy == NULL)
		return -1;
	for (char *o = strtok_r(copy, ",", &save); o != NULL; o = strtok_r(NULL, ",", &save)) {
		while (*o == ' ')
			o++;
		size_t l = strlen(o);
		while (l > 0 && o[l - 1] == ' ')
			o[--l] = '\0';
		if (l == 0)
			continue;
		if (strncmp(o, "http://", 7) != 0 && strncmp(o, "https://", 8) != 0) {
			log_error("Invalid CORS origin format: '%s'. Must start with http:// or "
			          "https://",
			          o);
			continue;
		}
		if (s->n_origins == MAX_ORIGINS || (s->origins[s->n_origins] = strdup(o)) == NULL) {
			free(copy);
			return -1;
		}
		log_info("Allowed CORS origin: \"%s\"", o);
		s->n_origins++;
	}
	free(copy);
	return 0;
}

/* HTTPS as Trustee's restful-as sets it up: TLS 1.2 and 1.3, the key and chain given. */
static SSL_CTX *tls_ctx(const char *cert, const char *key, struct err *err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	EVP_PKEY *pk = keyfile_read_private(key, err);

	if (ctx == NULL || pk == NULL) {
		if (pk == NULL)
			err_prefix(err, "failed to read HTTPS private key");
		SSL_CTX_free(ctx);
		EVP_PKEY_free(pk);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
		err_set(err, "set HTTPS public key cert: cannot read a certificate chain from %s",
		        cert);
	else if (SSL_CTX_use_PrivateKey(ctx, pk) != 1 || SSL_CTX_check_private_key(ctx) != 1)
		err_set(err, "set private key failed: %s is not the key of %s", key, cert);
	else {
		EVP_PKEY_free(pk);
		return ctx;
	}
	EVP_PKEY_free(pk);
	SSL_CTX_free(ctx);
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: restful-as -s|--socket ADDR [-c|--config-file F.json]\n"
	        "                  [-t|--https-pubkey-cert CERT.pem -k|--https-prikey KEY.pem]\n"
	        "                  [-r|--allowed_origin ORIGIN[,ORIGIN...]]... [-V|--version]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
	                                     {"config-file", required_argument, NULL, 'c'},
	                                     {"https-pubkey-cert", required_argument, NULL, 't'},
	                                     {"https-prikey", required_argument, NULL, 'k'},
	                                     {"allowed_origin", required_argument, NULL, 'r'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {"version", no_argument, NULL, 'V'},
	                                     {NULL, 0, NULL, 0}};
	const char *addr = NULL, *cfgpath = NULL, *cert = NULL, *key = NULL;
	static struct restful s;
	struct err err = {0};
	SSL_CTX *tls = NULL;
	json_t *cfg;
	int c;

	log_init("restful-as");
	/* OpenSSL's global state lives as long as the process: its atexit cleanup would free it
	 * while gRPC's pool threads may still be running with per-thread OpenSSL state. */
	OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
	memtune_daemon(0); /* large blocks mapped: a refused policy's memory leaves */
	while ((c = getopt_long(argc, argv, "s:c:t:k:r:hV", opts, NULL)) != -1) {
		if (c == 's')
			addr = optarg;
		else if (c == 'c')
			cfgpath = optarg;
		else if (c == 't')
			cert = optarg;
		else if (c == 'k')
			key = optarg;
		else if (c == 'r') {
			if (add_origins(&s, optarg) < 0) {
				log_error("cannot start: too many --allowed_origin values");
				return 1;
			}
		} else if (c == 'h') {
			usage(stdout);
			return 0;
		} else if (c == 'V') {
			version_print("restful-as");
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (addr == NULL || optind != argc) {
		fprintf(stderr, "restful-as: --socket ADDR is required\n");
		usage(stderr);
		return 2;
	}
	/* as Trustee: HTTPS only when both are given */
	if (cert != NULL && key != NULL && (tls = tls_ctx(cert, key, &err)) == NULL) {
		log_error("cannot start: %s", err.msg);
		return 1;
	}
	cfg = cfgpath ? config_load(cfgpath, &err) : json_object();
	/* fail closed: grpc-as's `admin` write guard (common/grpcauth.h) is not served here, so a
	 * config that asks for it must not start with POST /policy open */
	if (cfg != NULL && json_object_get(cfg, "admin") != NULL) {
		log_error(
		    "cannot start: the config's `admin` (who may set policies) is enforced by "
		    "grpc-as only; restful-as serves POST /policy to every client, as Trustee's");
		json_decref(cfg);
		return 1;
	}
	if (cfg == NULL || as_init(&s.as, cfg, &err) < 0) {
		log_error("cannot start: %s", err.msg);
		json_decref(cfg);
		return 1;
	}
	json_decref(cfg);
	json_t *set = json_pack("{s:[O]}", "keys", s.as.jwk);
	s.jwks = set ? json_dumps(set, JSON_COMPACT) : NULL;
	json_decref(set);
	if (s.jwks == NULL) {
		log_error("cannot start: out of memory");
		return 1;
	}

	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL); /* every thread; main collects them */
	signal(SIGPIPE, SIG_IGN);
	const char *socks[] = {addr};
	struct http_server_opts o = {
	    .sockets = socks,
	    .n_sockets = 1,
	    .threads = 2,
	    .pool_threads = 16,
	    .max_body = 2u << 20, /* the kbs's default payload_request_size */
	    .timeout_s = 30,
	    .head_timeout_s = 10,
	    .body_timeout_s = 30,
	    .min_body_rate = 1024,
	    .tls_ctx = tls,
	    .handler = on_request,
	    .ctx = &s,
	};
	struct http_server *srv = http_server_new(&o, &err);
	SSL_CTX_free(tls); /* the server holds its own reference */
	if (srv == NULL || http_server_start(srv, &err) < 0) {
		log_error("cannot start: %s", err.msg);
		return 1;
	}
	log_info("starting %s server at %s (port %d)", tls ? "HTTPS" : "HTTP", addr,
	         http_server_port(srv, 0));
	int sig = 0;
	sigwait(&stop, &sig);
	log_info("restful-as: signal %d, stopping", sig);
	http_server_stop(srv);
	http_server_free(srv);
	as_free(&s.as);
	free(s.jwks);
	for (size_t i = 0; i < s.n_origins; i++)
		free(s.origins[i]);
	return 0;
}
