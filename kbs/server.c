/*
 * server: the KBS HTTP API (kbs-protocol.md §1): routing in Trustee's dispatch order, the
 * RCAR handshake (/auth, /attest), the admin endpoints, and the plugin calls (resource,
 * sample) behind token verification, resource policy and JWE. Every /kbs/v0 request runs on
 * the HTTP layer's worker pool, so a handler may block on the AS, Redis or the policy engine
 * without holding up the event loops, except an /auth or a resource read that needs nothing
 * but memory (auth_on_loop, resource_on_loop: the pool's code, told not to wait) and an
 * /attest whose only wait is the AS, which the loop calls without blocking and answers when
 * the AS does (attest_on_loop); with sessions in Redis the two also send their session round
 * trips from the loop (its kv_loop) and go on when Redis answers. /metrics and /healthz
 * (alive) answer on the loop, /readyz (the AS answers its health check) on the pool.
 *
 * Status codes and problem bodies are Trustee's: 404 only for an unknown plugin, 401 for
 * everything else, `type` naming the top-level error variant. Causes that Trustee does not
 * put in the detail go to the log with the session id.
 */
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#ifdef __GLIBC__
#endif
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>
#include <time.h>

#include "b64.h"
#include "cpus.h"
#include "grpcx.h"
#include "hash.h"
#include "http.h"
#include "jose/jose.h"
#include "kbs.h"
#include "kv/kv.h"
#include "kv/kv_loop.h"
#include "log.h"
#include "memtune.h"
#include "vcache.h"

/* The claims an /attest verified, kept for the session's first resource read so that it does
 * not parse the token's payload again (the session keeps the payload's text, not the claims:
 * see session.c). Keyed by the SHA-256 of the session id; an entry is taken by that read, holds
 * until the claims' deadline (the token's exp plus leeway, the chain's notAfter) or the
 * session's, whichever is first, and is used only while the session table still says the
 * session's claims are live (kbs_sessions_claims_live, checked on every take). A session is
 * attested once, so its id names one token for good. Bounded: one entry per attestation in
 * flight up to FRESH_CLAIMS, least recently put dropped first; a dropped or missed entry
 * only means the read decodes the token as before. It takes the payload's
 * second jansson parse off the handshake: 3.10M -> 2.84M kbs instructions per handshake
 * (callgrind, 8 attesters at 20/s). */
#define FRESH_CLAIMS 128

struct kbs_server {
	struct kbs_config cfg;
	struct kv *kv;
	struct kv *session_kv; /* NULL: sessions in memory */
	struct kbs_sessions *sessions;
	struct kbs_as *as;
	struct kbs_as_loop **as_loops; /* [loop]: its AS client, NULL: /attest on the pool */
	/* [loop]: its client to the session store (sessions in Redis), NULL: /auth and /attest
	 * with such sessions on the pool */
	struct kv_loop **kv_loops;
	struct kbs_token_verifier *tv;
	struct vcache *fresh; /* sid digest -> json_t claims verified at /attest, owned */
	struct kbs_policy *policy;
	struct kbs_resources *resources; /* the resource plugin's store */
	struct {
		const struct kbs_plugin *p; /* a row of kbs_plugins */
		void *st;                   /* from p->open, released by p->free */
	} plugins[8];
	size_t n_plugins;
	struct http_server *http;
	struct kbs_limiter *limiter; /* /auth and /attest in progress */
	struct kbs_limiter *conns;   /* open connections per TCP peer (max_connections_per_ip) */
	struct kbs_cidrs *proxies;   /* trusted_proxies */
	pthread_t sweeper;
	int sweeper_running;
	pthread_mutex_t smu;
	pthread_cond_t scv;
	int stopping;
};

/* How far the gate of an attestation-path plugin call (plugin_gate) has come. */
enum gate_stage {
	GATE_TOKEN = 0, /* to find: the session's verified claims, else a token */
	GATE_VERIFY,    /* a token to verify */
	GATE_POLICY,    /* verified claims for the resource policy */
	GATE_PASSED,    /* the policy allowed the call for these claims */
};

/* What a stage of a request did: went through, answered the request (a refusal or the
 * answer), or stopped before a step that would wait on the network, a store or a compile
 * (only when asked not to wait: on an event loop, which then hands the request to the pool). */
enum step { STEP_ON = 0, STEP_ANSWERED, STEP_WAIT };

/* A /kbs/v0 request split as §1.1: plugin name, the remaining segments, the query map; and
 * where its gate stands, so that a resource read begun on an event loop goes on in the pool
 * from the stage where it stopped: every check runs once, in one order, wherever it runs. */
struct call {
	struct kbs_server *k;
	char *plugin;
	json_t *segs;  /* array of strings */
	char *rpath;   /* segments re-joined with '/' */
	json_t *query; /* object */
	enum gate_stage stage;
	char *token;    /* GATE_VERIFY: the token to verify, owned */
	json_t *claims; /* GATE_POLICY, GATE_PASSED: the verified claims, owned */
	char who[64];   /* "session <id>" or "bearer" once the token is found, for the log */
};

static void call_free(struct call *c)
{
	free(c->plugin);
	json_decref(c->segs);
	free(c->rpath);
	json_decref(c->query);
	free(c->token);
	json_decref(c->claims);
	free(c);
}

static void problem(struct http_req *r, int status, const char *variant, const char *detail)
{
	http_reply_problem(r, status, KBS_ERR_TYPE_PREFIX, variant, detail);
}

static void problem401(struct http_req *r, const char *variant, const char *detail)
{
	problem(r, 401, variant, detail);
}

/* Trustee's detail followed by ": <cause>", which Trustee leaves out (field-notes §1 #11). */
static void problem401_cause(struct http_req *r, const char *variant, const char *detail,
                             const char *cause)
{
	char d[ERR_MSG_MAX + 128];
	snprintf(d, sizeof(d), "%s: %s", detail, cause);
	problem(r, 401, variant, d);
}

/* A failure the client should retry after a moment (session store or AS unreachable, the
 * session table full): 503 with Retry-After, the detail saying what failed. */
static void problem503(struct http_req *r, const char *variant, const char *detail)
{
	http_reply_header(r, "Retry-After", "1");
	problem(r, 503, variant, detail);
}

static void set_cookie(struct http_req *r, const char *id, long long expires)
{
	char date[64], hdr[160];
	http_date(expires, date, sizeof(date));
	snprintf(hdr, sizeof(hdr), "kbs-session-id=%s; Expires=%s", id, date);
	http_reply_header(r, "Set-Cookie", hdr);
}

/* ------------------------------------------------------------------ /auth */

static void auth_fail(struct http_req *r, const char *cause)
{
	char d[ERR_MSG_MAX + 64];
	kbs_metrics_inc(KM_AUTH_ERRORS);
	snprintf(d, sizeof(d), "Attestation error: RCAR handshake Auth failed: %s", cause);
	log_info("kbs: /auth refused: %s", cause);
	problem401(r, "AttestationError", d);
}

/* `se` negotiates SHA-512; every other TEE gets "". */
static json_t *se_extra_params(const json_t *req_extra, struct err *err)
{
	json_t *algs = json_object_get(req_extra, "supported-hash-algorithms");
	if (!json_is_array(algs))
		return json_string("");
	for (size_t i = 0; i < json_array_size(algs); i++) {
		json_t *a = json_array_get(algs, i);
		if (json_is_string(a) && strcasecmp(json_string_value(a), "sha512") == 0)
			return json_pack("{s:s}", "selected-hash-algorithm", "sha512");
	}
	err_set(err, "the se TEE needs sha512, which is not in supported-hash-algorithms");
	return NULL;
}

#define SAMPLE_OFF                                                                                 \
	"the sample TEEs (sample, sampledevice) are turned off on this KBS "                       \
	"([attestation_service] allow_sample_tee = false): their evidence proves nothing"

/* An /auth between its checks and its session record: on the stack of a worker, or on the
 * heap while a loop waits for the store (auth_on_loop). */
struct auth {
	struct kbs_server *k;
	struct http_req *r;
	struct kbs_auth_req ar;
	json_t *extra;
	char *nonce;
	long long expires;
	char id[33];
};

static void auth_clear(struct auth *a)
{
	json_decref(a->extra);
	free(a->nonce);
	kbs_auth_req_free(&a->ar);
}

/* The request's checks, the nonce and the extra-params: STEP_ON, or STEP_ANSWERED (refused). */
static enum step auth_check(struct auth *a)
{
	struct kbs_server *k = a->k;
	struct http_req *r = a->r;
	struct kbs_auth_req *ar = &a->ar;
	struct err e = {0};
	/* extra-params live with the session (in Redis too): a stranger may not make them big */
	size_t xl = ar->extra_params
	                ? json_dumpb(ar->extra_params, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY)
	                : 0;
	if (xl > (size_t)k->cfg.max_extra_params_size) {
		snprintf(e.msg, sizeof(e.msg),
		         "extra-params is %zu bytes, more than max_extra_params_size (%lld)", xl,
		         k->cfg.max_extra_params_size);
		auth_fail(r, e.msg);
		return STEP_ANSWERED;
	}
	if (kbs_version_check(ar->version) != 0) {
		snprintf(
		    e.msg, sizeof(e.msg),
		    "KBS Client Protocol Version Mismatch: expect =%s while the request is %.64s",
		    KBS_PROTOCOL_VERSION, ar->version);
		auth_fail(r, e.msg);
		return STEP_ANSWERED;
	}
	if (!k->cfg.allow_sample_tee && kbs_tee_is_test(ar->tee)) {
		auth_fail(r, SAMPLE_OFF);
		return STEP_ANSWERED;
	}
	if (strcmp(ar->tee, "se") == 0) {
		a->extra = se_extra_params(ar->extra_params, &e);
		if (!a->extra) {
			auth_fail(r, e.msg);
			return STEP_ANSWERED;
		}
		char *params = json_dumps(ar->extra_params, JSON_COMPACT | JSON_ENCODE_ANY);
		a->nonce = kbs_as_challenge(k->as, "se", params ? params : "", &e);
		free(params);
	} else {
		uint8_t raw[32];
		if (RAND_bytes(raw, sizeof(raw)) != 1) {
			auth_fail(r, "random number generator failed");
			return STEP_ANSWERED;
		}
		a->nonce = b64_encode(raw, sizeof(raw), B64_STD);
		a->extra = kbs_as_auth_params(k->as, ar->tee, ar->extra_params, &e);
	}
	if (!a->nonce || !a->extra) {
		auth_fail(r, e.msg);
		return STEP_ANSWERED;
	}
	a->expires = (long long)time(NULL) + k->cfg.session_timeout_min * 60;
	return STEP_ON;
}

/* The session record made (rc 0, a->id) or not (err): the reply. */
static void auth_created(struct auth *a, int rc, const struct err *e)
{
	struct http_req *r = a->r;
	if (rc != 0) {
		/* the store or the table, not the request: worth a retry */
		char d[ERR_MSG_MAX + 64];
		kbs_metrics_inc(KM_AUTH_ERRORS);
		log_info("kbs: /auth refused: %s", e->msg);
		snprintf(d, sizeof(d), "Attestation error: RCAR handshake Auth failed: %s", e->msg);
		problem503(r, "AttestationError", d);
		return;
	}
	json_t *resp = json_object();
	json_object_set_new(resp, "nonce", json_string(a->nonce));
	json_object_set(resp, "extra-params", a->extra);
	set_cookie(r, a->id, a->expires);
	http_reply_json(r, 200, resp);
	json_decref(resp);
	kbs_metrics_inc(KM_AUTH_SUCCESSES);
	log_info("kbs: session %s: /auth (tee %s)", a->id, a->ar.tee);
}

/* /auth after its body was parsed; ar is freed here. */
static void auth_parsed(struct kbs_server *k, struct http_req *r, struct kbs_auth_req *req)
{
	struct auth a = {.k = k, .r = r, .ar = *req};
	struct err e = {0};
	if (auth_check(&a) == STEP_ON)
		auth_created(&a,
		             kbs_sessions_create(k->sessions, a.ar.tee, a.nonce, a.ar.extra_params,
		                                 a.expires, a.id, &e),
		             &e);
	auth_clear(&a);
}

static void handle_auth(struct call *c, struct http_req *r)
{
	struct err e = {0};
	struct kbs_auth_req ar;
	size_t bl;
	const uint8_t *body = http_req_body(r, &bl);
	kbs_metrics_inc(KM_AUTH_REQUESTS);
	if (kbs_auth_req_parse(body, bl, &ar, &e) != 0) {
		auth_fail(r, e.msg);
		return;
	}
	auth_parsed(c->k, r, &ar);
}

/* An /auth that needs nothing but memory is answered on the event loop: with sessions in
 * memory, a body of at most AUTH_ON_LOOP_MAX bytes and a TEE whose challenge is ours (not
 * `se`, whose nonce comes from the AS), it is a parse, a random nonce and a table insert, and
 * handing it to the pool and its reply back cost more than that (a condition-variable wake, a
 * loop wake-up, two context switches). With sessions in Redis the record's SET NX goes out on
 * the loop's own connection (kv_loop.h) and the reply is sent when Redis answers
 * (auth_stored), while the loop serves others. With /attest's two round trips also on the
 * loop, against the pool's blocked workers (bench replica section, 16 attesters, alternated
 * A B A B 3 s runs on the loaded 2-core machine): kbs context switches per handshake
 * 8.5 / 10.4 -> 2.7 / 3.1, kbs CPU per handshake 0.56 / 0.62 -> 0.43 / 0.46 ms, 3 replicas
 * behind HAProxy 837 / 806 -> 1372 / 1065 handshakes/s. 0: not answered, hand it to the
 * pool. */
#define AUTH_ON_LOOP_MAX 4096
#define SESSION_LOOP_INFLIGHT 128 /* session round trips in flight per loop; more: the pool */

/* The loop's client to the session store with room for one more call, or NULL. */
static struct kv_loop *session_loop(struct kbs_server *k, struct http_req *r)
{
	struct kv_loop *l = k->kv_loops ? k->kv_loops[http_req_loop(r)] : NULL;
	return l && !kv_loop_full(l) ? l : NULL;
}

static void auth_stored(void *arg, int rc, struct err *e)
{
	struct auth *a = arg;
	auth_created(a, rc, e);
	auth_clear(a);
	free(a);
}

static int auth_on_loop(struct kbs_server *k, struct http_req *r)
{
	struct err e = {0};
	struct kbs_auth_req ar;
	size_t bl;
	const uint8_t *body = http_req_body(r, &bl);
	struct kv_loop *l = k->session_kv ? session_loop(k, r) : NULL;
	if ((k->session_kv && !l) || bl > AUTH_ON_LOOP_MAX)
		return 0;
	if (kbs_auth_req_parse(body, bl, &ar, &e) != 0) {
		kbs_metrics_inc(KM_AUTH_REQUESTS);
		auth_fail(r, e.msg);
		return 1;
	}
	if (strcmp(ar.tee, "se") == 0) {
		kbs_auth_req_free(&ar);
		return 0;
	}
	kbs_metrics_inc(KM_AUTH_REQUESTS);
	if (!l) {
		auth_parsed(k, r, &ar);
		return 1;
	}
	struct auth *a = calloc(1, sizeof(*a));
	if (!a) {
		struct auth oom = {.k = k, .r = r, .ar = ar};
		auth_created(&oom, -1, &(struct err){.msg = "out of memory"});
		auth_clear(&oom);
		return 1;
	}
	*a = (struct auth){.k = k, .r = r, .ar = ar};
	if (auth_check(a) != STEP_ON) {
		auth_clear(a);
		free(a);
		return 1;
	}
	kbs_sessions_create_loop(k->sessions, l, a->ar.tee, a->nonce, a->ar.extra_params,
	                         a->expires, a->id, auth_stored, a);
	return 1;
}

/* ---------------------------------------------------------------- /attest */

#define NONCE_USED                                                                                 \
	"the challenge nonce of this session was already used by a successful /attest; start a "   \
	"new handshake with /auth"

static void attest_fail_status(struct http_req *r, int status, const char *sid, const char *cause)
{
	char detail[ERR_MSG_MAX + 64];
	log_info("kbs: session %s: /attest refused: %s", sid ? sid : "-", cause);
	/* Trustee's text, then the cause it leaves out (field-notes: unexplained refusals) */
	snprintf(detail, sizeof(detail), "Attestation error: RCAR handshake Attest failed: %s",
	         cause);
	if (status == 503)
		problem503(r, "AttestationError", detail);
	else
		problem401(r, "AttestationError", detail);
}

static void attest_fail(struct http_req *r, const char *sid, const char *cause)
{
	attest_fail_status(r, 401, sid, cause);
}

/* An AS call that failed: did the AS judge the evidence (401), or not answer (503)? */
static int as_failure(const struct kbs_server *k, struct err *e)
{
	char cause[ERR_MSG_MAX];
	if (e->code == GRPCX_DEADLINE_EXCEEDED) {
		snprintf(e->msg, sizeof(e->msg),
		         "the attestation service did not answer within %lld s "
		         "([attestation_service] as_timeout); try again",
		         k->cfg.as_timeout_s);
		return 503;
	}
	if (e->code == GRPCX_UNAVAILABLE) {
		kbs_scrub_hosts(e->msg, cause, sizeof(cause));
		snprintf(e->msg, sizeof(e->msg),
		         "the attestation service is unavailable (%.900s); "
		         "try again",
		         cause);
		return 503;
	}
	/* the AS's own sentence may name its storage hosts */
	kbs_scrub_hosts(e->msg, cause, sizeof(cause));
	snprintf(e->msg, sizeof(e->msg), "%s", cause);
	return 401;
}

static void reply_token(struct http_req *r, const struct kbs_session *s, const char *token)
{
	json_t *o = json_pack("{s:s}", "token", token);
	set_cookie(r, s->id, s->expires);
	http_reply_json(r, 200, o);
	json_decref(o);
}

/* One verification request for the AS: evidence as b64url of its JSON text, runtime data as
 * JSON text (the AS canonicalises it before hashing). */
static json_t *ver_req(const char *tee, const json_t *evidence, const json_t *runtime_data,
                       const char *init_toml)
{
	char *ev = json_dumps(evidence, JSON_COMPACT | JSON_ENCODE_ANY);
	char *rd = json_dumps(runtime_data, JSON_COMPACT | JSON_SORT_KEYS);
	char *ev64 = ev ? b64_encode((const uint8_t *)ev, strlen(ev), B64_URL) : NULL;
	json_t *o = NULL;
	if (ev64 && rd) {
		o = json_pack("{s:s,s:s,s:s,s:s}", "tee", tee, "evidence", ev64, "runtime_data", rd,
		              "hash", strcmp(tee, "se") == 0 ? "sha512" : "sha384");
		if (o && init_toml)
			json_object_set_new(o, "init_data_toml", json_string(init_toml));
	}
	free(ev);
	free(rd);
	free(ev64);
	return o;
}

static json_t *build_requests(const struct kbs_server *k, const struct kbs_session *s,
                              const struct kbs_attest_req *a, struct err *err)
{
	if (!k->cfg.allow_sample_tee && kbs_tee_is_test(s->tee)) {
		err_set(err, "%s", SAMPLE_OFF); /* a session a replica with them on opened */
		return NULL;
	}
	if (a->init_data_format && strcmp(a->init_data_format, "toml") != 0) {
		err_set(err, "Unsupported initdata format %.32s", a->init_data_format);
		return NULL;
	}
	json_t *list = json_array();
	json_t *rd = json_pack("{s:O,s:s,s:s}", "tee-pubkey", a->tee_pubkey, "nonce", s->nonce,
	                       "additional-evidence", a->additional_evidence);
	json_t *prim = ver_req(s->tee, a->primary_evidence, rd, a->init_data_body);
	json_decref(rd);
	if (!prim) {
		json_decref(list);
		err_set(err, "cannot serialise the evidence");
		return NULL;
	}
	json_array_append_new(list, prim);
	if (a->additional_evidence[0]) {
		json_error_t je;
		json_t *m = json_loads(a->additional_evidence, JSON_REJECT_DUPLICATES, &je);
		if (!json_is_object(m)) {
			json_decref(m);
			json_decref(list);
			err_set(err, "additional_evidence is not a JSON map of TEE to evidence");
			return NULL;
		}
		json_t *ard =
		    json_pack("{s:O,s:s}", "tee-pubkey", a->tee_pubkey, "nonce", s->nonce);
		for (void *it = json_object_iter(m); it; it = json_object_iter_next(m, it)) {
			const char *tee = json_object_iter_key(it);
			json_t *ev = json_object_iter_value(it);
			if (!kbs_tee_known(tee)) {
				err_set(err, "additional_evidence names unknown TEE %.32s", tee);
				json_decref(list);
				list = NULL;
				break;
			}
			if (!k->cfg.allow_sample_tee && kbs_tee_is_test(tee)) {
				err_set(err, "additional_evidence: %s", SAMPLE_OFF);
				json_decref(list);
				list = NULL;
				break;
			}
			json_t *q = ver_req(tee, ev, ard, NULL);
			if (!q) {
				err_set(err, "cannot serialise the evidence");
				json_decref(list);
				list = NULL;
				break;
			}
			json_array_append_new(list, q);
		}
		json_decref(ard);
		json_decref(m);
	}
	return list;
}

/* The claims of the token the AS just issued, verified here once (§4.2) so that the session's
 * resource reads use them instead of verifying the token again; NULL (nothing kept, and the
 * reads verify the token, and refuse it, themselves) when the session table keeps no claims,
 * the token is over the size a session may keep, or it does not verify. *until: the claims'
 * deadline. */
static json_t *verify_for_session(struct kbs_server *k, const char *sid, const char *token,
                                  double *until)
{
	struct err e = {0};
	*until = 0;
	if (!kbs_sessions_keep_claims(k->sessions) ||
	    (k->cfg.max_session_token_size > 0 &&
	     strlen(token) > (size_t)k->cfg.max_session_token_size))
		return NULL;
	json_t *claims = kbs_token_verify_once(k->tv, token, until, &e);
	if (!claims)
		log_debug("kbs: session %s: the new token does not verify here: %s", sid, e.msg);
	else if (*until <= 0) {
		json_decref(claims);
		claims = NULL;
	}
	return claims;
}

static int sid_key(const char *sid, uint8_t key[HASH_MAX])
{
	return hash_digest(HASH_SHA256, sid, strlen(sid), key) == 32 ? 0 : -1;
}

/* The claims /attest just verified for sid, for its first resource read (a new reference is
 * taken). */
static void fresh_put(struct kbs_server *k, const char *sid, json_t *claims, double until)
{
	uint8_t key[HASH_MAX];
	if (k->fresh && sid_key(sid, key) == 0)
		vcache_put(k->fresh, key, until, json_incref(claims));
}

/* The claims kept by fresh_put for sid, taken (new reference), when the session's claims are
 * still live; else NULL. */
static json_t *fresh_take(struct kbs_server *k, const char *sid)
{
	uint8_t key[HASH_MAX];
	json_t *claims = NULL;
	if (!k->fresh || sid_key(sid, key) != 0 ||
	    !vcache_take(k->fresh, key, (double)time(NULL), (void **)&claims))
		return NULL;
	if (!kbs_sessions_claims_live(k->sessions, sid)) {
		json_decref(claims);
		return NULL;
	}
	return claims;
}

/* An /attest on its way: the request's checks (attest_check) built reqs, the AS's answer
 * (attest_finish) needs the session again. On the stack of a worker, or on the heap while a
 * loop waits for the session store or the AS (attest_on_loop). */
struct attest {
	struct kbs_server *k;
	struct http_req *r;
	struct kbs_as_loop *as; /* on a loop: its AS client */
	struct kv_loop *store;  /* on a loop with sessions in Redis: its store client */
	char *sid;
	struct kbs_attest_req a;
	struct kbs_session s;
	json_t *reqs;   /* the verification requests for the AS, once the checks passed */
	char *token;    /* the AS's token, owned */
	json_t *claims; /* its claims, verified here (verify_for_session), or NULL */
	double until;   /* their deadline */
};

static void attest_clear(struct attest *t)
{
	json_decref(t->reqs);
	json_decref(t->claims);
	free(t->token);
	kbs_session_clear(&t->s);
	kbs_attest_req_free(&t->a);
	free(t->sid);
}

/* Cookie and body: STEP_ON, or STEP_ANSWERED (a refusal was sent). */
static enum step attest_check_request(struct attest *t)
{
	struct http_req *r = t->r;
	struct err e = {0};
	kbs_metrics_inc(KM_ATTEST_REQUESTS);
	t->sid = http_req_cookie(r, "kbs-session-id");
	if (!t->sid) {
		kbs_metrics_inc(KM_ATTEST_ERRORS);
		attest_fail(r, NULL, "cookie not found");
		return STEP_ANSWERED;
	}
	size_t bl;
	const uint8_t *body = http_req_body(r, &bl);
	if (kbs_attest_req_parse(body, bl, &t->a, &e) != 0) {
		kbs_metrics_inc(KM_ATTEST_ERRORS);
		attest_fail(r, t->sid, e.msg);
		return STEP_ANSWERED;
	}
	return STEP_ON;
}

/* The session read (grc as kbs_sessions_lookup returns, t->s), nonce, evidence: STEP_ON with
 * t->reqs built, or STEP_ANSWERED (a refusal was sent). */
static enum step attest_check_session(struct attest *t, int grc, const struct err *ge)
{
	struct http_req *r = t->r;
	struct err e = {0};
	if (grc != 0) {
		kbs_metrics_inc(KM_ATTEST_ERRORS);
		attest_fail_status(r, grc < 0 ? 503 : 401, t->sid,
		                   grc < 0 ? ge->msg : "session not found or expired");
		return STEP_ANSWERED;
	}
	const char *why = NULL;
	if (t->s.state == KBS_SESSION_ATTESTED)
		why = NONCE_USED; /* stricter than Trustee, which answers with the stored token */
	else if (t->s.nonce[0] == '\0')
		/* a TEE whose verifier defines the challenge (se) gets "" from an AS without one:
		 * an empty nonce binds the evidence to nothing, so it is never taken */
		why = "the challenge nonce is empty: no verifier defined one for this TEE, so "
		      "evidence cannot be bound to the session";
	else if (strlen(t->a.nonce) != strlen(t->s.nonce) ||
	         CRYPTO_memcmp(t->a.nonce, t->s.nonce, strlen(t->s.nonce)) != 0)
		why = "runtime-data nonce does not match the challenge";
	else if ((t->reqs = build_requests(t->k, &t->s, &t->a, &e)) == NULL)
		why = e.msg;
	if (why != NULL) {
		kbs_metrics_inc_label(KML_ATT_FAIL, t->s.tee);
		attest_fail(r, t->sid, why);
		return STEP_ANSWERED;
	}
	return STEP_ON;
}

/* Cookie, body, session, nonce, evidence: STEP_ON with t->reqs built, or STEP_ANSWERED (a
 * refusal was sent). Needs nothing but memory when sessions are in memory. */
static enum step attest_check(struct attest *t)
{
	struct err e = {0};
	if (attest_check_request(t) != STEP_ON)
		return STEP_ANSWERED;
	return attest_check_session(t, kbs_sessions_lookup(t->k->sessions, t->sid, &t->s, &e), &e);
}

/* The AS's answer (token owned, or NULL with e): 0 with t->token and its claims verified
 * here, or -1 (the refusal was sent). */
static int attest_answer(struct attest *t, char *token, struct err *e)
{
	if (!token) {
		kbs_metrics_inc_label(KML_ATT_FAIL, t->s.tee);
		attest_fail_status(t->r, as_failure(t->k, e), t->sid, e->msg);
		return -1;
	}
	t->token = token;
	t->claims = verify_for_session(t->k, t->sid, token, &t->until);
	return 0;
}

/* The session recorded as attested (src as kbs_sessions_attest_verified returns) or not: the
 * reply. */
static void attest_recorded(struct attest *t, int src, const struct err *e)
{
	struct kbs_server *k = t->k;
	const char *sid = t->sid;
	if (src == 0 && t->claims)
		fresh_put(k, sid, t->claims,
		          t->until < (double)t->s.expires ? t->until : (double)t->s.expires);
	if (src != 0) {
		kbs_metrics_inc_label(KML_ATT_FAIL, t->s.tee);
		attest_fail_status(t->r, src < 0 ? 503 : 401, sid,
		                   src == 2   ? NONCE_USED
		                   : src == 1 ? "session expired during attestation"
		                              : e->msg);
		return;
	}
	kbs_metrics_inc_label(KML_ATT_OK, t->s.tee);
	log_info("kbs: session %s: attested (%s)", sid, t->s.tee);
	reply_token(t->r, &t->s, t->token);
}

/* The AS's answer: the token verified here and recorded in the session, and the reply. */
static void attest_finish(struct attest *t, char *token, struct err *e)
{
	if (attest_answer(t, token, e) == 0)
		attest_recorded(t,
		                kbs_sessions_attest_verified(t->k->sessions, t->sid, t->token,
		                                             t->claims, t->until, e),
		                e);
}

static void handle_attest(struct call *c, struct http_req *r)
{
	struct attest t = {.k = c->k, .r = r};
	struct err e = {0};
	if (attest_check(&t) == STEP_ON)
		attest_finish(&t, kbs_as_evaluate(c->k->as, t.reqs, &e), &e);
	attest_clear(&t);
}

/* An /attest whose every step but the AS call needs only memory is served by the event loop
 * that read it: sessions in memory, a body of at most ATTEST_ON_LOOP_MAX bytes, and a
 * loop-driven AS client on this loop (coco_as_grpc) with room for
 * one more call. The loop runs the checks, sends the AS call, and goes on with other
 * connections; the answer comes back to the same loop (attest_answered), which verifies the
 * token, records the session and replies. Against the pool's hand-off and blocked worker
 * (six alternated 3 s runs each on the bench stack): kbs context switches per handshake
 * 2.7 -> 1.3 at 64 attesters and 8.5 -> 4.4 at 1, kbs CPU per handshake 0.46 -> 0.40 ms and
 * 0.73 -> 0.54 ms. With sessions in Redis the session's read (MGET) and the nonce's claim
 * (SET NX) also go out on the loop (the loop's kv_loop) and the request goes on from their
 * answers (attest_read, attest_claimed). 0: hand it to the pool. */
#define ATTEST_ON_LOOP_MAX (64 * 1024)
#define ATTEST_LOOP_INFLIGHT 64 /* AS calls in flight per loop; more go to the pool */

static void attest_done(struct attest *t)
{
	attest_clear(t);
	free(t);
}

static void attest_claimed(void *arg, int rc, struct err *e)
{
	struct attest *t = arg;
	attest_recorded(t, rc, e);
	attest_done(t);
}

static void attest_answered(void *arg, char *token, struct err *e)
{
	struct attest *t = arg;
	if (!t->store) {
		attest_finish(t, token, e);
		attest_done(t);
	} else if (attest_answer(t, token, e) == 0) {
		kbs_sessions_attest_loop(t->k->sessions, t->store, t->sid, t->token, t->claims,
		                         t->until, attest_claimed, t);
	} else {
		attest_done(t);
	}
}

/* The AS call of a loop's /attest whose AS client filled while its session was read: on the
 * pool, as if it had been handed there (the claim too, blocking). */
static void attest_on_pool(void *arg, struct http_req *r)
{
	struct attest *t = arg;
	struct err e = {0};
	attest_finish(t, kbs_as_evaluate(t->k->as, t->reqs, &e), &e);
	attest_done(t);
}

static void mark_on_loop(struct http_req *r, bool on);

/* Checks passed (t->reqs): the AS call on the loop's client, or on the pool when it is full
 * (then the pool answers it, and kbs_event_loop_answers_total does not count it). */
static void attest_call_as(struct attest *t)
{
	struct err e = {0};
	if (kbs_as_loop_full(t->as)) {
		mark_on_loop(t->r, false);
		if (http_req_run_async(t->r, attest_on_pool, t) == 0)
			return;
		mark_on_loop(t->r, true);
	}
	if (kbs_as_loop_evaluate(t->as, t->reqs, attest_answered, t, &e) == 0)
		return; /* attest_answered has t now */
	e.code = GRPCX_UNAVAILABLE;
	attest_finish(t, NULL, &e);
	attest_done(t);
}

/* The session read from the store on the loop. */
static void attest_read(void *arg, int rc, struct err *e)
{
	struct attest *t = arg;
	if (attest_check_session(t, rc, e) == STEP_ON)
		attest_call_as(t);
	else
		attest_done(t);
}

static int attest_on_loop(struct kbs_server *k, struct http_req *r)
{
	struct kbs_as_loop *l = k->as_loops ? k->as_loops[http_req_loop(r)] : NULL;
	struct kv_loop *store = k->session_kv ? session_loop(k, r) : NULL;
	size_t bl;
	http_req_body(r, &bl);
	if ((k->session_kv && !store) || !l || bl > ATTEST_ON_LOOP_MAX || kbs_as_loop_full(l))
		return 0;
	struct attest *t = calloc(1, sizeof(*t));
	if (!t)
		return 0;
	*t = (struct attest){.k = k, .r = r, .as = l, .store = store};
	if (!store) {
		if (attest_check(t) == STEP_ON)
			attest_call_as(t);
		else
			attest_done(t);
		return 1;
	}
	if (attest_check_request(t) != STEP_ON)
		attest_done(t);
	else
		kbs_sessions_lookup_loop(k->sessions, store, t->sid, &t->s, attest_read, t);
	return 1;
}

/* ------------------------------------------------------------- admin API */

static int admin_ok(struct kbs_server *k, struct http_req *r, const char *endpoint)
{
	struct err e = {0};
	if (kbs_admin_check_method(&k->cfg, http_req_header(r, "Authorization"),
	                           http_req_method_name(r), http_req_uri(r), &e) == 0)
		return 1;
	char d[ERR_MSG_MAX + 128];
	snprintf(d, sizeof(d), "admin access denied for endpoint %s: %s", endpoint, e.msg);
	log_info("kbs: %s %s: %s", http_req_method_name(r), http_req_uri(r), d);
	problem401(r, "AdminAuthAccess", d);
	return 0;
}

/* {"policy": "<base64url rego>"} (lenient: padding and the standard alphabet accepted). */
static int policy_body(struct http_req *r, const char *member, char **text, size_t *len,
                       json_t **doc, struct err *e)
{
	size_t bl;
	const uint8_t *body = http_req_body(r, &bl);
	json_error_t je;
	*doc = json_loadb((const char *)body, bl, 0, &je);
	const char *p = json_string_value(json_object_get(*doc, member));
	if (!p)
		return err_set(e, "expected a JSON object with a string `%s`", member);
	uint8_t *raw = NULL;
	if (b64_decode(p, strlen(p), B64_URL | B64_LENIENT, &raw, len) != 0)
		return err_set(e, "`%s` is not base64url", member);
	*text = (char *)raw;
	return 0;
}

static void handle_resource_policy(struct call *c, struct http_req *r)
{
	struct kbs_server *k = c->k;
	struct err e = {0};
	char d[ERR_MSG_MAX + 64];
	if (!admin_ok(k, r, "resource-policy"))
		return;
	if (http_req_method(r) == HTTP_M_GET) {
		char **keys = NULL;
		size_t n = 0;
		if (kv_list(k->kv, KV_NS_KBS, &keys, &n, &e) != 0) {
			snprintf(d, sizeof(d), "Policy engine error: %s", e.msg);
			problem401(r, "PolicyEngineError", d);
			return;
		}
		json_t *a = json_array();
		for (size_t i = 0; i < n; i++) {
			size_t l = strlen(keys[i]);
			if (l > 5 && strcmp(keys[i] + l - 5, ".rego") == 0)
				keys[i][l - 5] = 0;
			json_array_append_new(a, json_string(keys[i]));
		}
		kv_list_free(keys, n);
		http_reply_json(r, 200, a);
		json_decref(a);
		return;
	}
	char *text = NULL;
	size_t len = 0;
	json_t *doc = NULL;
	if (policy_body(r, "policy", &text, &len, &doc, &e) != 0) {
		snprintf(d, sizeof(d), "Failed to parse policy: %s", e.msg);
		problem401(r, "ParsePolicyError", d);
	} else if (kbs_policy_set(k->policy, text, len, &e) != 0) {
		snprintf(d, sizeof(d), "Policy engine error: %s", e.msg);
		log_info("kbs: resource policy refused: %s", e.msg);
		problem401(r, "PolicyEngineError", d);
	} else {
		log_info("kbs: resource policy replaced (%zu bytes)", len);
		http_reply(r, 200, NULL, NULL, 0);
	}
	free(text);
	json_decref(doc);
}

static void handle_attestation_policy(struct call *c, struct http_req *r)
{
	struct kbs_server *k = c->k;
	struct err e = {0};
	if (!admin_ok(k, r, "attestation-policy"))
		return;
	size_t bl;
	const uint8_t *body = http_req_body(r, &bl);
	json_error_t je;
	json_t *doc = json_loadb((const char *)body, bl, 0, &je);
	const char *id = json_string_value(json_object_get(doc, "policy_id"));
	const char *pol = json_string_value(json_object_get(doc, "policy"));
	if (!id || !pol) {
		log_info("kbs: attestation-policy: body needs string policy_id and policy");
		problem401(r, "AttestationError",
		           "Attestation error: Set Attestation Policy failed");
	} else if (kbs_as_set_policy(k->as, id, pol, &e) != 0) {
		log_info("kbs: attestation-policy %s: %s", id, e.msg);
		problem401(r, "AttestationError",
		           "Attestation error: Set Attestation Policy failed");
	} else {
		log_info("kbs: attestation policy %s set", id);
		http_reply(r, 200, NULL, NULL, 0);
	}
	json_decref(doc);
}

static void handle_reference_value(struct call *c, struct http_req *r)
{
	struct kbs_server *k = c->k;
	struct err e = {0};
	char d[ERR_MSG_MAX + 64];
	if (!admin_ok(k, r, "reference-value"))
		return;
	if (http_req_method(r) == HTTP_M_POST) {
		size_t bl;
		const uint8_t *body = http_req_body(r, &bl);
		char *msg = strndup((const char *)body, bl);
		if (msg && kbs_as_rv_register(k->as, msg, &e) == 0) {
			http_reply(r, 200, "application/json", NULL, 0);
		} else {
			snprintf(d, sizeof(d), "RVPS configuration failed: %s", e.msg);
			problem401(r, "RvpsError", d);
		}
		free(msg);
		return;
	}
	char *val = NULL;
	int rc = kbs_as_rv_query(k->as, c->rpath, &val, &e);
	if (rc == 0) {
		http_reply(r, 200, "application/json", val, strlen(val));
	} else {
		if (rc == 1)
			snprintf(e.msg, sizeof(e.msg), "reference value %.256s not found",
			         c->rpath);
		snprintf(d, sizeof(d), "RVPS configuration failed: %s", e.msg);
		problem401(r, "RvpsError", d);
	}
	free(val);
}

/* --------------------------------------------------------------- plugins */

static void plugin_error(struct http_req *r, const char *why)
{
	log_info("kbs: %s %s: plugin error: %s", http_req_method_name(r), http_req_uri(r), why);
	problem401_cause(r, "PluginInternalError", "Plugin internal error", why);
}

/* The claims this process verified at the /attest of the request's session, from memory
 * alone (the in-memory table, or a session store's own copies: session_cache.h), in *claims
 * (new reference); `who` gets "session <id>". false when there are none to use. */
static bool kept_claims(struct kbs_server *k, struct http_req *r, char *who, size_t wlen,
                        json_t **claims)
{
	char *sid = k->as ? http_req_cookie(r, "kbs-session-id") : NULL;
	*claims = NULL;
	if (sid && ((*claims = fresh_take(k, sid)) != NULL ||
	            kbs_sessions_claims(k->sessions, sid, claims) == 0))
		snprintf(who, wlen, "session %s", sid);
	free(sid);
	return *claims != NULL;
}

/* The attestation token for a plugin call: an attested session's, else the Bearer one; or,
 * for an attested session that keeps the claims verified at its /attest, no token and those
 * claims in *claims (new reference). `who` gets "session <id>" or "bearer" for the log.
 * *lapsed: the session kept only claims, now past their deadline, and why says what the
 * check of its token would (session.c). */
static char *find_token(struct kbs_server *k, struct http_req *r, char *who, size_t wlen,
                        json_t **claims, struct err *why, bool *lapsed)
{
	snprintf(who, wlen, "bearer");
	if (kept_claims(k, r, who, wlen, claims))
		return NULL;
	char *sid = k->as ? http_req_cookie(r, "kbs-session-id") : NULL;
	if (sid) {
		struct kbs_session s;
		int grc = kbs_sessions_lookup(k->sessions, sid, &s, why);
		if (grc == 0) {
			char *t = s.state == KBS_SESSION_ATTESTED ? s.token : NULL;
			if ((*lapsed = !t && s.claims_lapse))
				err_set(why, "%s", s.claims_lapse);
			s.token = NULL;
			kbs_session_clear(&s);
			if (t || *lapsed)
				snprintf(who, wlen, "session %s", sid);
			free(sid);
			if (t || *lapsed)
				return t;
		} else {
			kbs_metrics_inc(KM_ATTEST_ERRORS); /* Trustee counts this, so do we */
			if (grc > 0)
				err_clear(why);
			free(sid);
		}
	}
	const char *h = http_req_header(r, "Authorization");
	if (h && strncmp(h, "Bearer ", 7) == 0) {
		h += 7;
		while (*h == ' ')
			h++;
		if (*h)
			return strdup(h);
	}
	return NULL;
}

static void resource_admin(struct call *c, struct http_req *r)
{
	struct kbs_server *k = c->k;
	struct err e = {0};
	if (!kbs_resource_path_valid(c->rpath)) {
		plugin_error(r, "invalid resource path");
		return;
	}
	if (http_req_method(r) == HTTP_M_POST) {
		size_t bl;
		const uint8_t *body = http_req_body(r, &bl);
		if (kbs_resources_set(k->resources, c->rpath, body, bl, &e) < 0) {
			plugin_error(r, e.msg);
			return;
		}
		kbs_metrics_inc_label(KML_RES_WRITES, c->rpath);
		log_info("kbs: resource %s written (%zu bytes)", c->rpath, bl);
	} else {
		int rc = kbs_resources_delete(k->resources, c->rpath, &e);
		if (rc != 0) {
			plugin_error(r, rc == 1 ? "resource not found" : e.msg);
			return;
		}
		kbs_metrics_inc_label(KML_RES_DELETES, c->rpath);
		log_info("kbs: resource %s deleted", c->rpath);
	}
	http_reply(r, 200, "text/xml", NULL, 0);
}

/* §3.3: RSA with RSA-OAEP-256 or RSA1_5, EC P-256/P-521 with ECDH-ES+A256KW; nothing else. */
static int teepubkey_supported(const json_t *pk)
{
	const char *kty = json_string_value(json_object_get(pk, "kty"));
	const char *alg = json_string_value(json_object_get(pk, "alg"));
	const char *crv = json_string_value(json_object_get(pk, "crv"));
	if (!kty || !alg)
		return 0;
	if (!strcmp(kty, "RSA"))
		return !strcmp(alg, "RSA-OAEP-256") || !strcmp(alg, "RSA1_5");
	if (!strcmp(kty, "EC"))
		return crv && !strcmp(alg, "ECDH-ES+A256KW") &&
		       (!strcmp(crv, "P-256") || !strcmp(crv, "P-521"));
	return 0;
}

/* The gate's first stage: the session's verified claims, else a token to verify (the
 * session's or a Bearer one). With sessions in a store, only the claims this replica kept go
 * on without waiting; anything else needs the store. */
static enum step gate_token(struct call *c, struct http_req *r, bool nowait)
{
	struct err e = {0};
	if (nowait && c->k->session_kv) {
		if (!kept_claims(c->k, r, c->who, sizeof(c->who), &c->claims))
			return STEP_WAIT;
		c->stage = GATE_POLICY;
		return STEP_ON;
	}
	bool lapsed = false;
	c->token = find_token(c->k, r, c->who, sizeof(c->who), &c->claims, &e, &lapsed);
	if (lapsed) { /* refused as gate_verify refuses the token */
		log_info("kbs: %s: token refused: %s", http_req_uri(r), e.msg);
		problem401_cause(r, "TokenVerifierError", "Token Verifier error", e.msg);
		return STEP_ANSWERED;
	}
	if (!c->token && !c->claims) {
		/* 401 even when the session store is down: guest-components answers a 401 on a
		 * resource read with a new handshake (retried), anything else ends the read */
		if (e.msg[0])
			problem401_cause(r, "TokenNotFound", "Attestation Token not found", e.msg);
		else
			problem401(r, "TokenNotFound", "Attestation Token not found");
		return STEP_ANSWERED;
	}
	c->stage = c->claims ? GATE_POLICY : GATE_VERIFY;
	return STEP_ON;
}

/* A token's signature, chain and expiry (§4.2). Waits: a trusted_jwk_sets key may be fetched,
 * and this is the costly check that the claims kept at /attest spare a session. */
static enum step gate_verify(struct call *c, struct http_req *r, bool nowait)
{
	struct err e = {0};
	if (nowait)
		return STEP_WAIT;
	c->claims = kbs_token_verify(c->k->tv, c->token, &e);
	free(c->token);
	c->token = NULL;
	if (!c->claims) {
		log_info("kbs: %s: token refused: %s", http_req_uri(r), e.msg);
		problem401_cause(r, "TokenVerifierError", "Token Verifier error", e.msg);
		return STEP_ANSWERED;
	}
	c->stage = GATE_POLICY;
	return STEP_ON;
}

/* The resource policy for the verified claims, with its evaluation budgets; without waiting,
 * only a policy already compiled and within the loop's budgets (kbs_policy_eval_nowait). */
static enum step gate_policy(struct call *c, struct http_req *r, bool nowait)
{
	struct kbs_server *k = c->k;
	struct err e = {0};
	char *explain = NULL;
	json_t *data = json_pack("{s:s,s:O,s:O}", "plugin", c->plugin, "resource-path", c->segs,
	                         "query", c->query);
	int pr = nowait ? kbs_policy_eval_nowait(k->policy, c->claims, data, &explain, &e)
	                : kbs_policy_eval(k->policy, c->claims, data, &explain, &e);
	json_decref(data);
	if (nowait && pr == KBS_POLICY_UNKNOWN)
		return STEP_WAIT;
	kbs_metrics_inc(KM_POLICY_EVALS);
	if (pr < 0) {
		kbs_metrics_inc(KM_POLICY_ERRORS);
		char d[ERR_MSG_MAX + 64];
		snprintf(d, sizeof(d), "Policy engine error: %s", e.msg);
		log_info("kbs: %s: %s", http_req_uri(r), d);
		problem401(r, "PolicyEngineError", d);
		return STEP_ANSWERED;
	}
	if (pr == 1) {
		kbs_metrics_inc(KM_POLICY_VIOLATIONS);
		char d[2048];
		snprintf(d, sizeof(d), "Access denied by policy%s%.1900s", explain ? ": " : "",
		         explain ? explain : "");
		free(explain);
		log_info("kbs: %s: %s", http_req_uri(r), d);
		problem401(r, "PolicyDeny", d);
		return STEP_ANSWERED;
	}
	kbs_metrics_inc(KM_POLICY_APPROVALS);
	free(explain);
	c->stage = GATE_PASSED;
	return STEP_ON;
}

/* Token and resource policy, the gate of every attestation-path plugin call, from the stage c
 * stands at: STEP_ON with c->claims verified and allowed, STEP_ANSWERED when the refusal has
 * been sent, STEP_WAIT (nowait only) at the first stage that would wait. */
static enum step plugin_gate(struct call *c, struct http_req *r, bool nowait)
{
	enum step st = STEP_ON;
	if (c->stage == GATE_TOKEN)
		st = gate_token(c, r, nowait);
	if (st == STEP_ON && c->stage == GATE_VERIFY)
		st = gate_verify(c, r, nowait);
	if (st == STEP_ON && c->stage == GATE_POLICY)
		st = gate_policy(c, r, nowait);
	return st;
}

/* The secret as a JWE to the tee-pubkey of the verified claims, sent with 200; 0, or -1 when
 * the refusal has been sent. */
static int seal_reply(struct kbs_server *k, struct http_req *r, const json_t *claims,
                      const uint8_t *val, size_t vlen)
{
	struct err e = {0};
	json_t *pk = kbs_token_teepubkey(k->tv, claims, &e), *jwe = NULL;
	if (!pk) {
		log_info("kbs: %s: %s", http_req_uri(r), e.msg);
		problem401_cause(r, "TokenVerifierError", "Token Verifier error", e.msg);
		return -1;
	}
	if (!teepubkey_supported(pk)) {
		log_info("kbs: %s: tee-pubkey algorithm/curve not supported", http_req_uri(r));
		problem401_cause(r, "JweError", "JWE failed",
		                 "the tee-pubkey algorithm or curve is not supported");
		json_decref(pk);
		return -1;
	}
	jwe = jwe_encrypt(pk, val, vlen, &e);
	json_decref(pk);
	if (!jwe) {
		log_info("kbs: %s: JWE: %s", http_req_uri(r), e.msg);
		problem401_cause(r, "JweError", "JWE failed", e.msg);
		return -1;
	}
	http_reply_json(r, 200, jwe);
	json_decref(jwe);
	return 0;
}

/* Token, policy, plugin, JWE: the attestation-gated path of a resource call, from wherever c
 * stands. nowait: on an event loop, STEP_WAIT at the first stage that would wait (nothing
 * sent; the pool goes on from there), the resource read by peeking (kbs_resources_peek). */
static enum step resource_read(struct call *c, struct http_req *r, bool nowait)
{
	struct err e = {0};
	uint8_t *val = NULL;
	size_t vlen = 0;
	enum step st = plugin_gate(c, r, nowait);
	if (st != STEP_ON)
		return st;
	if (strcmp(c->plugin, "sample") == 0) { /* never reached: sample is admin-only */
		plugin_error(r, "sample plugin needs admin");
		return STEP_ANSWERED;
	}
	if (http_req_method(r) != HTTP_M_GET) {
		plugin_error(r, "method not supported by the resource plugin");
		return STEP_ANSWERED;
	}
	if (!kbs_resource_path_valid(c->rpath)) {
		plugin_error(r, "invalid resource path");
		return STEP_ANSWERED;
	}
	int rc = nowait ? kbs_resources_peek(c->k->resources, c->rpath, &val, &vlen, &e)
	                : kbs_resources_get(c->k->resources, c->rpath, &val, &vlen, &e);
	if (nowait && rc == KBS_RESOURCE_UNKNOWN)
		return STEP_WAIT;
	if (rc != 0) {
		plugin_error(r, rc == 1 ? "resource not found" : e.msg);
		return STEP_ANSWERED;
	}
	kbs_metrics_inc_label(KML_RES_READS, c->rpath);
	if (seal_reply(c->k, r, c->claims, val, vlen) == 0)
		log_info("kbs: %s: resource %s released", c->who, c->rpath);
	OPENSSL_cleanse(val, vlen);
	free(val);
	return STEP_ANSWERED;
}

static void plugin_attested(struct call *c, struct http_req *r)
{
	resource_read(c, r, false);
}

/* A plugin of the kbs_plugins table: the backend says whether admin authentication is needed;
 * then the admin check or the token + policy gate, handle, and (attestation path) a JWE when
 * the plugin asks for one, else the raw answer as text/xml (§7.1). */
static void plugin_tabled(struct call *c, struct http_req *r, const struct kbs_plugin *p, void *st)
{
	struct err e = {0};
	size_t bl = 0;
	const uint8_t *body = http_req_body(r, &bl);
	struct kbs_plugin_req q = {body, bl, c->query, c->segs, http_req_method_name(r)};
	uint8_t *out = NULL;
	size_t olen = 0;
	const char *who = "admin";
	int admin = p->validate_auth(st, &q, &e);
	if (admin < 0) {
		plugin_error(r, e.msg);
		return;
	}
	if (admin) {
		if (kbs_admin_check_method(&c->k->cfg, http_req_header(r, "Authorization"),
		                           http_req_method_name(r), http_req_uri(r), &e) != 0) {
			char d[ERR_MSG_MAX + 64];
			snprintf(d, sizeof(d), "admin access denied: %s", e.msg);
			log_info("kbs: %s %s: %s", http_req_method_name(r), http_req_uri(r), d);
			problem401(r, "AdminAuthAccess", d);
			return;
		}
	} else if (plugin_gate(c, r, false) != STEP_ON) {
		return;
	} else {
		who = c->who;
	}
	if (p->handle(st, &q, &out, &olen, &e) != 0) {
		plugin_error(r, e.msg);
		goto out;
	}
	int enc = admin ? 0 : p->needs_encryption(st, &q, &e);
	if (enc < 0) {
		plugin_error(r, e.msg);
		goto out;
	}
	/* logged first: a reply hands r back to the HTTP layer */
	log_info("kbs: %s: %s %s answered (%zu bytes%s)", who, http_req_method_name(r),
	         http_req_uri(r), olen, enc ? ", encrypted" : "");
	if (enc == 0)
		http_reply(r, 200, "text/xml", out, olen);
	else
		seal_reply(c->k, r, c->claims, out, olen);
out:
	if (out) {
		OPENSSL_cleanse(out, olen);
		free(out);
	}
}

static void handle_plugin(struct call *c, struct http_req *r)
{
	struct kbs_server *k = c->k;
	enum http_method m = http_req_method(r);
	for (size_t i = 0; i < k->n_plugins; i++)
		if (strcmp(c->plugin, k->plugins[i].p->name) == 0) {
			plugin_tabled(c, r, k->plugins[i].p, k->plugins[i].st);
			return;
		}
	int is_resource = strcmp(c->plugin, "resource") == 0 && k->cfg.plugin_resource;
	int is_sample = strcmp(c->plugin, "sample") == 0 && k->cfg.plugin_sample;
	if (!is_resource && !is_sample) {
		char d[300];
		snprintf(d, sizeof(d), "Plugin %.256s not found", c->plugin);
		problem(r, 404, "PluginNotFound", d);
		return;
	}
	int needs_admin = is_sample || m == HTTP_M_POST || m == HTTP_M_DELETE;
	if (needs_admin) {
		struct err e = {0};
		if (kbs_admin_check_method(&k->cfg, http_req_header(r, "Authorization"),
		                           http_req_method_name(r), http_req_uri(r), &e) != 0) {
			char d[ERR_MSG_MAX + 64];
			snprintf(d, sizeof(d), "failed to initialize [admin] configuration: %s",
			         e.msg);
			log_info("kbs: %s %s: %s", http_req_method_name(r), http_req_uri(r), d);
			problem401(r, "AdminAuthInitialization", d);
			return;
		}
		if (is_sample) {
			static const char resp[] = "sample plugin response";
			http_reply(r, 200, "text/xml", resp, sizeof(resp) - 1);
			return;
		}
		resource_admin(c, r);
		return;
	}
	plugin_attested(c, r);
}

/* A resource read whose every piece is in memory is answered on the event loop: the
 * session's verified claims (kept at /attest, in the session table or, with sessions in a
 * store, in this replica's own copy), the resource policy already compiled, and the resource's
 * bytes (kbs_resources_peek: the Memory store, Redis's tracked cache). Then it is a policy
 * evaluation (within the loop's budgets, policy.c) and a JWE (one key generation and one ECDH:
 * ~0.1 ms of the loop with P-256, ~0.6 ms with P-521 by `openssl speed`), cheaper than the
 * hand-off to the pool and back. It runs the pool's own stages (resource_read) without
 * waiting; at the first stage that would wait (a token to verify, a session or a policy to
 * read, a policy to compile, a resource the store must be asked for) it stops with nothing
 * sent, and the pool goes on from that stage. 0: hand the request to the pool. */
static int resource_on_loop(struct kbs_server *k, struct call *c, struct http_req *r)
{
	if (!k->cfg.plugin_resource || !k->resources || strcmp(c->plugin, "resource") != 0 ||
	    !kbs_resources_can_peek(k->resources))
		return 0;
	for (size_t i = 0; i < k->n_plugins; i++)
		if (strcmp(c->plugin, k->plugins[i].p->name) == 0)
			return 0; /* handle_plugin's first choice: a tabled plugin of that name */
	return resource_read(c, r, true) == STEP_ANSWERED;
}

/* ---------------------------------------------------------------- routing */

static void dispatch(void *arg, struct http_req *r)
{
	struct call *c = arg;
	struct kbs_server *k = c->k;
	enum http_method m = http_req_method(r);
	const char *p = c->plugin;
	if (k->as && m == HTTP_M_POST && !strcmp(p, "auth"))
		handle_auth(c, r);
	else if (k->as && m == HTTP_M_POST && !strcmp(p, "attest"))
		handle_attest(c, r);
	else if (k->as && m == HTTP_M_POST && !strcmp(p, "attestation-policy"))
		handle_attestation_policy(c, r);
	else if (k->as && (m == HTTP_M_GET || m == HTTP_M_POST) && !strcmp(p, "reference-value"))
		handle_reference_value(c, r);
	else if ((m == HTTP_M_GET || m == HTTP_M_POST) && !strcmp(p, "resource-policy"))
		handle_resource_policy(c, r);
	else
		handle_plugin(c, r);
	call_free(c);
}

static json_t *parse_query(const char *q)
{
	json_t *o = json_object();
	if (!q || !*q)
		return o;
	struct evkeyvalq kvq;
	kvq.tqh_first = NULL;
	kvq.tqh_last = &kvq.tqh_first;
	if (evhttp_parse_query_str(q, &kvq) == 0) {
		for (struct evkeyval *e = kvq.tqh_first; e; e = e->next.tqe_next) {
			json_t *v = json_string(e->value);
			if (v && !json_object_get(o, e->key))
				json_object_set_new(o, e->key, v);
			else
				json_decref(v);
		}
	}
	evhttp_clear_headers(&kvq);
	return o;
}

static struct call *split(struct kbs_server *k, const char *rest, const char *query)
{
	struct call *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->k = k;
	c->segs = json_array();
	const char *slash = strchr(rest, '/');
	c->plugin = slash ? strndup(rest, (size_t)(slash - rest)) : strdup(rest);
	c->rpath = strdup(slash ? slash + 1 : "");
	if (slash) {
		const char *s = slash + 1;
		for (;;) {
			const char *n = strchr(s, '/');
			size_t l = n ? (size_t)(n - s) : strlen(s);
			char *seg = strndup(s, l);
			json_t *js = seg ? json_stringn(seg, l) : NULL;
			free(seg);
			json_array_append_new(c->segs, js ? js : json_string(""));
			if (!n)
				break;
			s = n + 1;
		}
	}
	c->query = parse_query(query);
	if (!c->plugin || !c->rpath || !c->segs || !c->query) {
		call_free(c);
		return NULL;
	}
	return c;
}

/* Ready = the AS answers its gRPC health check (liveness stays /healthz). */
static void readyz(void *arg, struct http_req *r)
{
	struct kbs_server *k = arg;
	struct err e = {0};
	if (kbs_as_ready(k->as, 2000, &e) == 0) {
		http_reply(r, 200, NULL, NULL, 0);
		return;
	}
	log_debug("kbs: /readyz: not ready: %s", e.msg);
	static const char body[] = "attestation service unreachable";
	http_reply(r, 503, "text/plain", body, sizeof(body) - 1);
}

#define INET6_ADDRSTRLEN_MAX 64

/* A request admitted by the limiter: the address it was counted under; on_loop: being
 * answered on the event loop (counted by on_done, which runs before the reply's first byte
 * leaves, so a client holding its answer finds it counted). */
struct limited {
	struct kbs_server *k;
	char addr[INET6_ADDRSTRLEN_MAX];
	bool on_loop;
};

/* The data of a request that the limiter did not count, while it is answered on the loop. */
static struct limited loop_answer = {.on_loop = true};

static void mark_on_loop(struct http_req *r, bool on)
{
	struct limited *l = http_req_data(r);
	if (l && l != &loop_answer)
		l->on_loop = on;
	else
		http_req_set_data(r, on ? &loop_answer : NULL);
}

/* Answers r on the event loop when it needs nothing but memory (auth_on_loop,
 * resource_on_loop) or the loop's own AS client (attest_on_loop, answered later by the same
 * loop): 1 answered, 0 hand it to the pool. */
static int answer_on_loop(struct kbs_server *k, struct call *c, struct http_req *r)
{
	enum http_method m = http_req_method(r);
	int done = 0;
	mark_on_loop(r, true);
	if (k->as && m == HTTP_M_POST && !strcmp(c->plugin, "auth"))
		done = auth_on_loop(k, r);
	else if (k->as && m == HTTP_M_POST && !strcmp(c->plugin, "attest"))
		done = attest_on_loop(k, r);
	else if (m == HTTP_M_GET)
		done = resource_on_loop(k, c, r);
	if (!done)
		mark_on_loop(r, false);
	return done;
}

/* The client's address: the peer, or what trusted proxies say (kbs/client_addr.c). */
static void client_addr(struct kbs_server *k, struct http_req *r, char *out, size_t n)
{
	const char *name = k->cfg.client_address_forwarded ? "Forwarded" : "X-Forwarded-For";
	const char *one = kbs_cidrs_count(k->proxies) ? http_req_header(r, name) : NULL;
	if (!one || !http_req_header_nth(r, name, 1)) {
		kbs_client_addr(k->proxies, k->cfg.client_address_forwarded, http_req_peer(r), one,
		                one ? strlen(one) : 0, out, n);
		return;
	}
	/* several header lines are one list, in order */
	size_t len = 0;
	const char *h;
	for (size_t i = 0; (h = http_req_header_nth(r, name, i)); i++)
		len += strlen(h) + 1;
	char *all = malloc(len + 1);
	if (!all) {
		kbs_client_addr(k->proxies, 0, http_req_peer(r), NULL, 0, out, n);
		return;
	}
	size_t o = 0;
	for (size_t i = 0; (h = http_req_header_nth(r, name, i)); i++) {
		size_t hl = strlen(h);
		if (i)
			all[o++] = ',';
		memcpy(all + o, h, hl);
		o += hl;
	}
	all[o] = 0;
	kbs_client_addr(k->proxies, k->cfg.client_address_forwarded, http_req_peer(r), all, o, out,
	                n);
	free(all);
}

/* GET /metrics: the kbs's metrics, then those of an attestation backend that has its own (the
 * built-in AS's counters; grpc-as serves these on its port instead). */
static void reply_metrics(struct kbs_server *k, struct http_req *r)
{
	char *t = kbs_metrics_render();
	size_t tl = t ? strlen(t) : 0, al = 0;
	char *a = k->as ? kbs_as_metrics(k->as, &al) : NULL;
	char *all = a && t ? realloc(t, tl + al + 1) : NULL;

	if (all != NULL) {
		memcpy(all + tl, a, al);
		all[tl + al] = 0;
		t = all;
		tl += al;
	}
	http_reply(r, 200, "text/plain; version=0.0.4", t ? t : "", tl);
	free(t);
	free(a);
}

static void on_request(void *ctx, struct http_req *r)
{
	struct kbs_server *k = ctx;
	const char *path = http_req_path(r);
	enum http_method m = http_req_method(r);
	if (strncmp(path, "/kbs", 4) == 0) {
		kbs_metrics_inc(KM_HTTP_REQUESTS);
		kbs_metrics_active(1);
	}
	if (strcmp(path, "/metrics") == 0) {
		if (m != HTTP_M_GET) {
			http_reply(r, 405, NULL, NULL, 0);
			return;
		}
		reply_metrics(k, r);
		return;
	}
	if (strcmp(path, "/readyz") == 0) {
		if (m != HTTP_M_GET && m != HTTP_M_HEAD)
			http_reply(r, 405, NULL, NULL, 0);
		else if (!k->as) /* resource-only KBS: nothing to wait for */
			http_reply(r, 200, NULL, NULL, 0);
		else if (http_req_run_async(r, readyz, k) != 0)
			http_reply(r, 503, NULL, NULL, 0);
		return;
	}
	if (strcmp(path, "/healthz") == 0) {
		http_reply(r, m == HTTP_M_GET || m == HTTP_M_HEAD ? 200 : 405, NULL, NULL, 0);
		return;
	}
	if (strncmp(path, "/kbs/v0/", 8) != 0) {
		http_reply(r, 404, NULL, NULL, 0);
		return;
	}
	if (m != HTTP_M_GET && m != HTTP_M_POST && m != HTTP_M_PUT && m != HTTP_M_DELETE) {
		http_reply(r, 405, NULL, NULL, 0);
		return;
	}
	struct call *c = split(k, path + 8, http_req_query(r));
	if (!c) {
		problem401(r, "SerdeError", "Serialize/Deserialize failed");
		return;
	}
	if (c->plugin[0] == 0) {
		char d[600];
		snprintf(d, sizeof(d), "Request path %.512s is invalid", path);
		problem(r, 404, "InvalidRequestPath", d);
		call_free(c);
		return;
	}
	if (k->as && m == HTTP_M_POST &&
	    (!strcmp(c->plugin, "auth") || !strcmp(c->plugin, "attest"))) {
		char addr[INET6_ADDRSTRLEN_MAX];
		client_addr(k, r, addr, sizeof(addr));
		int lr = kbs_limiter_enter(k->limiter, addr);
		if (lr != 0) {
			log_debug("kbs: %s from %s refused: %s", path, addr,
			          lr == 1 ? "too many attestations in progress"
			                  : "too many attestations in progress from this address");
			kbs_metrics_inc_label(KML_LIMIT_REFUSALS,
			                      lr == 1 ? "attestation_concurrency_limit"
			                              : "attestation_concurrency_limit_per_ip");
			call_free(c);
			http_reply_header(r, "Retry-After", "1");
			problem(r, 429, "TooManyRequests",
			        lr == 1 ? "Too many attestation requests in progress, retry later"
			                : "Too many attestation requests in progress from this "
			                  "address, retry later");
			return;
		}
		/* on_done leaves with the same address */
		struct limited *l = malloc(sizeof(*l));
		if (!l) {
			kbs_limiter_leave(k->limiter, addr);
			call_free(c);
			problem503(r, "TooManyRequests", "out of memory, retry later");
			return;
		}
		l->k = k;
		l->on_loop = false;
		memcpy(l->addr, addr, sizeof(l->addr));
		http_req_set_data(r, l);
	}
	if (answer_on_loop(k, c, r)) {
		call_free(c);
		return;
	}
	if (http_req_run_async(r, dispatch, c) != 0) {
		call_free(c);
		http_reply(r, 503, NULL, NULL, 0);
	}
}

static void on_done(void *ctx, const struct http_req *r, int status, size_t resp_len,
                    double seconds)
{
	struct kbs_server *k = ctx;
	struct limited *l = http_req_data(r);
	if (l && l->on_loop)
		kbs_metrics_inc(KM_LOOP_ANSWERS);
	if (l && l != &loop_answer && l->k == k) {
		kbs_limiter_leave(k->limiter, l->addr);
		free(l);
	}
	if (strncmp(http_req_path(r), "/kbs", 4) != 0)
		return;
	size_t bl;
	http_req_body(r, &bl);
	kbs_metrics_active(-1);
	kbs_metrics_http_observe(seconds, bl, resp_len);
	log_debug("kbs: %s %s -> %d (%zu bytes, %.3f ms)", http_req_method_name(r), http_req_uri(r),
	          status, resp_len, seconds * 1000);
}

/* ---------------------------------------------------------------- daemon */

/* The sweeper wakes every SWEEP_EVERY_S seconds. An in-memory session table is swept at
 * each wake, so it holds expired records for at most that long past their deadline (with a
 * once-a-minute sweep the table, and the kbs's RSS, swung by a whole minute of sessions); a
 * shared store, whose sweep reads every record, every SWEEP_KV_EVERY wakes. */
#define SWEEP_EVERY_S 10
#define SWEEP_KV_EVERY 6

/* Hands the pages of freed memory back to the kernel, and says how long that took. Sessions
 * churn through malloc at the attestation rate and are freed by the sweeper, in whichever of
 * glibc's arenas the worker that created them used; the free space left between live
 * records in each arena stays resident until reused, so without this the kbs's RSS crept up
 * over a soak while the bytes in use stayed level. */
static double release_free_memory(void)
{
	return memtune_release();
}

static void *sweeper_main(void *arg)
{
	struct kbs_server *k = arg;
	unsigned wakes = 0;
	pthread_mutex_lock(&k->smu);
	while (!k->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += SWEEP_EVERY_S;
		pthread_cond_timedwait(&k->scv, &k->smu, &ts);
		if (k->stopping)
			break;
		pthread_mutex_unlock(&k->smu);
		if (k->session_kv == NULL || ++wakes % SWEEP_KV_EVERY == 0) {
			size_t n = kbs_sessions_sweep(k->sessions);
			double ms = release_free_memory();
			if (n)
				log_debug("kbs: swept %zu expired sessions; free memory released "
				          "in %.2f ms",
				          n, ms);
		}
		pthread_mutex_lock(&k->smu);
	}
	pthread_mutex_unlock(&k->smu);
	return NULL;
}

/* Request handler threads: each runs a request to its end, the AS call included, so the count
 * bounds the requests in progress; more queue in common/http.c. Sized from the CPUs, 4 per
 * online CPU (8..256), since the AS shares the machine in the usual deployment and threads
 * beyond what the CPUs can run only add switches and malloc contention: the kbs ran 100
 * ([attestation_service] pool_size) on 2 CPUs, then 16; three replicas of 16 behind HAProxy
 * on 2 CPUs spent ~45% more kbs CPU per handshake than one (2.4-2.7 ms against 1.7) and were
 * slower than one, with 8 each they were not (make bench's replica rows). An AS far away on
 * the network may want more in flight: [http_server] worker_threads sets the count. */
static long long handler_threads(const struct kbs_config *c)
{
	if (c->worker_threads > 0)
		return c->worker_threads;
	long n = cpus_usable() * 4L;
	return n < 8 ? 8 : n > 256 ? 256 : n;
}

/* Connections per TCP peer; a trusted proxy carries many clients and is not counted. */
static int conn_admit(void *ctx, const char *peer)
{
	struct kbs_server *k = ctx;
	if (kbs_cidrs_contains(k->proxies, peer))
		return 1;
	return kbs_limiter_enter(k->conns, peer) == 0;
}

static void conn_release(void *ctx, const char *peer)
{
	struct kbs_server *k = ctx;
	if (!kbs_cidrs_contains(k->proxies, peer))
		kbs_limiter_leave(k->conns, peer);
}

static void *claims_share(void *v)
{
	return json_incref(v);
}

static void claims_drop(void *v)
{
	json_decref(v);
}

/* Before the AS clients (kv_loops_close's answers may lead to an AS call on a live loop's
 * client) and the HTTP server: calls in flight are answered with an outage. */
static void kv_loops_close(struct kbs_server *k)
{
	int n = k->http ? http_server_loops(k->http) : 0;
	for (int i = 0; k->kv_loops && i < n; i++)
		kv_loop_free(k->kv_loops[i]);
	free(k->kv_loops);
	k->kv_loops = NULL;
}

/* One AS client per event loop for /attest (attest_on_loop); a backend or address that
 * cannot be driven from a loop leaves /attest on the pool, said once. -1: out of memory. */
static int as_loops_open(struct kbs_server *k)
{
	int n = http_server_loops(k->http);
	struct err e = {0};
	if (!k->cfg.loop_round_trips) {
		log_info("kbs: /attest calls the AS from the worker pool: [http_server] "
		         "loop_round_trips = false");
		return 0;
	}
	if (kbs_token_verifier_may_fetch(k->tv)) {
		/* the AS token is verified where the answer arrives, and a trusted_jwk_sets URL
		 * fetched there (seconds, when its server is slow) would hold up the whole loop */
		log_info("kbs: /attest calls the AS from the worker pool: [attestation_token] "
		         "trusted_jwk_sets names a URL, fetched while the AS token is verified");
		return 0;
	}
	k->as_loops = calloc((size_t)n, sizeof(*k->as_loops));
	if (!k->as_loops)
		return -1;
	for (int i = 0; i < n; i++) {
		k->as_loops[i] = kbs_as_loop_new(k->as, http_server_loop_base(k->http, i),
		                                 ATTEST_LOOP_INFLIGHT, &e);
		if (!k->as_loops[i]) {
			log_info("kbs: /attest calls the AS from the worker pool: %s", e.msg);
			for (int j = 0; j < i; j++) /* none or all: the log says which */
				kbs_as_loop_free(k->as_loops[j]);
			free(k->as_loops);
			k->as_loops = NULL;
			return 0;
		}
	}
	log_info("kbs: /attest calls the AS from the event loops (%d per loop at once)",
	         ATTEST_LOOP_INFLIGHT);
	return 0;
}

/* Before the HTTP server is freed: calls in flight are answered (their replies queued to the
 * stopped loops, sent or dropped by http_server_free). */
static void as_loops_close(struct kbs_server *k)
{
	int n = k->http ? http_server_loops(k->http) : 0;
	for (int i = 0; k->as_loops && i < n; i++)
		kbs_as_loop_free(k->as_loops[i]);
	free(k->as_loops);
	k->as_loops = NULL;
}

/* With sessions in Redis, one store client per event loop for /auth and /attest
 * (auth_on_loop, attest_on_loop); a store the loops cannot reach without blocking leaves
 * them on the pool, said once. -1: out of memory. */
static int kv_loops_open(struct kbs_server *k)
{
	int n = http_server_loops(k->http);
	struct err e = {0};
	if (!k->session_kv)
		return 0;
	if (!k->cfg.loop_round_trips) {
		log_info("kbs: /auth and /attest read and write sessions from the worker pool: "
		         "[http_server] loop_round_trips = false");
		return 0;
	}
	k->kv_loops = calloc((size_t)n, sizeof(*k->kv_loops));
	if (!k->kv_loops)
		return -1;
	for (int i = 0; i < n; i++) {
		k->kv_loops[i] = kv_loop_new(k->session_kv, http_server_loop_base(k->http, i),
		                             SESSION_LOOP_INFLIGHT, &e);
		if (!k->kv_loops[i]) {
			log_info("kbs: /auth and /attest read and write sessions from the worker "
			         "pool: %s",
			         e.msg);
			kv_loops_close(k);
			return 0;
		}
	}
	log_info("kbs: /auth and /attest read and write sessions in %s from the event loops (%d "
	         "round trips per loop at once)",
	         kv_type_name(k->session_kv), SESSION_LOOP_INFLIGHT);
	return 0;
}

struct kbs_server *kbs_server_new(struct kbs_config *cfg, struct err *err)
{
	struct kbs_server *k = calloc(1, sizeof(*k));
	if (!k) {
		kbs_config_free(cfg);
		err_set(err, "out of memory");
		return NULL;
	}
	k->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	pthread_mutex_init(&k->smu, NULL);
	pthread_cond_init(&k->scv, NULL);
	if (kbs_config_check_startup(&k->cfg, err) != 0)
		goto fail;
	kbs_metrics_init();
	k->limiter = kbs_limiter_new(k->cfg.attestation_concurrency_limit,
	                             k->cfg.attestation_concurrency_limit_per_ip);
	if (!k->limiter) {
		err_set(err, "out of memory");
		goto fail;
	}
	k->conns = kbs_limiter_new(0, k->cfg.max_connections_per_ip);
	if (!k->conns) {
		err_set(err, "out of memory");
		goto fail;
	}
	if (kbs_cidrs_parse(&k->cfg.trusted_proxies, &k->proxies, err) != 0)
		goto fail;
	if (k->cfg.attestation_concurrency_limit_per_ip > 0 && kbs_cidrs_count(k->proxies))
		log_info("kbs: per-address limit keyed on the client named by %zu trusted proxy "
		         "range(s) in %s",
		         kbs_cidrs_count(k->proxies),
		         k->cfg.client_address_forwarded ? "Forwarded" : "X-Forwarded-For");
	k->kv = kv_open(k->cfg.storage_backend, err);
	if (!k->kv) {
		err_prefix(err, "[storage_backend]");
		goto fail;
	}
	/* Sessions stay in process memory only when session_storage_type (which falls back to
	 * [storage_backend] storage_type, as in Trustee: kbs_config_load) resolves to Memory. */
	if (k->cfg.session_storage_type && strcasecmp(k->cfg.session_storage_type, "memory")) {
		k->session_kv =
		    kv_open_type(k->cfg.session_storage_type,
		                 json_object_get(k->cfg.storage_backend, "backends"), err);
		if (!k->session_kv) {
			err_prefix(err, "session_storage_type %s", k->cfg.session_storage_type);
			goto fail;
		}
		k->sessions = kbs_sessions_new_kv(k->session_kv, err);
		log_info("kbs: sessions are stored in %s (shared by replicas)",
		         kv_type_name(k->session_kv));
	} else {
		k->sessions = kbs_sessions_new((size_t)k->cfg.max_sessions, err);
	}
	if (!k->sessions)
		goto fail;
	kbs_sessions_set_limits(k->sessions,
	                        &(struct kbs_session_limits){
	                            .max_bytes = (size_t)k->cfg.max_sessions_bytes,
	                            .max_token_size = (size_t)k->cfg.max_session_token_size,
	                            .test_tees_yield = true,
	                        });
	if (k->cfg.plugin_resource) {
		k->resources = kbs_resources_new(&k->cfg, k->kv, err);
		if (!k->resources)
			goto fail;
	}
	const json_t *pl = json_object_get(k->cfg.root, "plugins");
	for (size_t i = 0; i < json_array_size(pl); i++) {
		const json_t *pe = json_array_get(pl, i);
		const struct kbs_plugin *p =
		    kbs_plugin_find(json_string_value(json_object_get(pe, "name")));
		if (!p)
			continue; /* resource and sample: served above */
		if (k->n_plugins == sizeof(k->plugins) / sizeof(k->plugins[0])) {
			err_set(err, "[[plugins]] too many plugin tables");
			goto fail;
		}
		if ((k->plugins[k->n_plugins].st = p->open(pe, err)) == NULL)
			goto fail;
		k->plugins[k->n_plugins++].p = p;
	}
	k->tv = kbs_token_verifier_new(&k->cfg, err);
	if (!k->tv) {
		err_prefix(err, "[attestation_token]");
		goto fail;
	}
	if (kbs_sessions_keep_claims(k->sessions) &&
	    (k->fresh = vcache_new(FRESH_CLAIMS, claims_share, claims_drop)) == NULL) {
		err_set(err, "out of memory");
		goto fail;
	}
	k->policy = kbs_policy_new(k->kv, err);
	if (!k->policy || kbs_policy_init_default(k->policy, err) != 0) {
		err_prefix(err, "resource policy");
		goto fail;
	}
	kbs_policy_set_limits(k->policy, &k->cfg.policy_limits);
	if (k->cfg.as_type != KBS_AS_NONE) {
		k->as = kbs_as_new_tls(&k->cfg, (int)(k->cfg.as_timeout_s * 1000), err);
		if (!k->as) {
			if (k->cfg.as_type == KBS_AS_GRPC)
				err_prefix(err, "[attestation_service] as_addr %s", k->cfg.as_addr);
			goto fail;
		}
	}
	long long pool = handler_threads(&k->cfg);
	void *tls = NULL;
	if (!k->cfg.insecure_http) {
		tls = kbs_tls_server_ctx(&k->cfg, err);
		if (!tls)
			goto fail;
		char d[128];
		kbs_tls_describe(tls, d, sizeof(d));
		log_info("kbs: HTTPS with %s (tls_profile %s), certificate %s", d,
		         k->cfg.tls_profile ? k->cfg.tls_profile : "intermediate",
		         k->cfg.certificate);
	}
	struct http_server_opts o = {
	    .sockets = (const char *const *)k->cfg.sockets.v,
	    .n_sockets = k->cfg.sockets.n,
	    .threads = (int)(k->cfg.worker_count > 16 ? 16 : k->cfg.worker_count),
	    .pool_threads = (int)pool,
	    .max_body = (size_t)k->cfg.payload_request_size << 20,
	    .timeout_s = (int)k->cfg.keep_alive_timeout,
	    .head_timeout_s = (double)k->cfg.request_head_timeout,
	    .body_timeout_s = (double)k->cfg.request_body_timeout,
	    .min_body_rate = (size_t)k->cfg.min_request_body_rate,
	    .max_conns = (long)k->cfg.max_connections,
	    .admit = k->cfg.max_connections_per_ip > 0 ? conn_admit : NULL,
	    .release = k->cfg.max_connections_per_ip > 0 ? conn_release : NULL,
	    .tls_ctx = tls,
	    .handler = on_request,
	    .done = on_done,
	    .ctx = k,
	};
	k->http = http_server_new(&o, err);
	kbs_tls_ctx_free(tls); /* the server holds its own reference */
	if (!k->http)
		goto fail;
	if ((k->as && as_loops_open(k) != 0) || kv_loops_open(k) != 0) {
		err_set(err, "out of memory");
		goto fail;
	}
	log_info("kbs: at most %ld connections, %lld per address; request head within %lld s, "
	         "body within %lld s at %lld bytes/s or more",
	         http_server_max_conns(k->http), k->cfg.max_connections_per_ip,
	         k->cfg.request_head_timeout, k->cfg.request_body_timeout,
	         k->cfg.min_request_body_rate);
	return k;
fail:
	kbs_server_free(k);
	return NULL;
}

int kbs_server_start(struct kbs_server *k, struct err *err)
{
	if (pthread_create(&k->sweeper, NULL, sweeper_main, k) == 0)
		k->sweeper_running = 1;
	return http_server_start(k->http, err);
}

int kbs_server_port(const struct kbs_server *k, size_t i)
{
	return http_server_port(k->http, i);
}

void kbs_server_stop(struct kbs_server *k)
{
	if (k->http)
		http_server_stop(k->http);
	pthread_mutex_lock(&k->smu);
	k->stopping = 1;
	pthread_cond_broadcast(&k->scv);
	pthread_mutex_unlock(&k->smu);
	if (k->sweeper_running) {
		pthread_join(k->sweeper, NULL);
		k->sweeper_running = 0;
	}
}

void kbs_server_free(struct kbs_server *k)
{
	if (!k)
		return;
	kv_loops_close(k); /* first: its answers may go on to an AS call, never the reverse */
	as_loops_close(k);
	http_server_free(k->http);
	kbs_limiter_free(k->limiter);
	kbs_limiter_free(k->conns);
	kbs_cidrs_free(k->proxies);
	kbs_as_free(k->as);
	kbs_policy_free(k->policy);
	kbs_resources_free(k->resources);
	for (size_t i = 0; i < k->n_plugins; i++)
		k->plugins[i].p->free(k->plugins[i].st);
	kbs_token_verifier_free(k->tv);
	vcache_free(k->fresh);
	kbs_sessions_free(k->sessions);
	kv_close(k->session_kv);
	kv_close(k->kv);
	kbs_config_free(&k->cfg);
	pthread_mutex_destroy(&k->smu);
	pthread_cond_destroy(&k->scv);
	free(k);
}
