/*
 * as_intel_ta: the intel_ta attestation backend (kbs-protocol.md §2.8), the row kbs_as_intel_ta
 * of as_backends.c's table. The relying party forwards the guest's evidence to Intel Trust
 * Authority (ITA) and takes ITA's token as the attestation token:
 *
 *   build   one appraisal request from the verification requests: tdx / sgx evidence with
 *           runtime_data = std-base64 of the runtime-data JSON text (ITA hashes it itself and
 *           compares with the quote's REPORT_DATA), az-tdx-vtpm with the HCL variable data as
 *           runtime_data and our runtime data as user_data (sent to .../attest/azure), NVIDIA
 *           GPUs (HOPPER, BLACKWELL) with gpu_nonce = hex(SHA-512(runtime data)[0..32]);
 *   post    POST {base_url}/appraisal/v2/attest with x-api-key, under the AS deadline and a
 *           body cap (common/fetch.c);
 *   verify  the token against the certs_file JWK set (kid selects, the key's alg pins RS256 /
 *           PS384, exp checked) with the KBS's own token verifier;
 *   bind    the runtime data ITA echoes in the token (attester_runtime_data, or
 *           attester_user_data for the vTPM) must be exactly what this session sent, so a token
 *           for another nonce or key is refused even when ITA signed it.
 *
 * Failures keep ITA's own message. A 429, a 5xx, no answer or the deadline are outages
 * (err->code = ERR_UNAVAILABLE, which server.c answers with 503 + Retry-After); every other
 * failure is a refusal (401). The API key is never logged.
 */
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "b64.h"
#include "as/evidence/hcl_report.h"
#include "fetch.h"
#include "kbs.h"
#include "log.h"
#include "version.h"

#define ITA_ATTEST_PATH "/appraisal/v2/attest"
#define ITA_MAX_ANSWER (1024 * 1024) /* a token is a few KiB; anything near this is hostile */

struct ita {
	char *base_url; /* without a trailing '/' */
	char *api_key;  /* secret: wiped on free, never logged */
	char *certs_file;
	bool allow_unmatched_policy;
	json_t *policy_ids; /* array of strings, owned */
	long timeout_ms;
	char *jwk_set[1];       /* certs_file, as the one trusted JWK set of `verifier` */
	struct kbs_config vcfg; /* only trusted_jwk_sets: outlives verifier, which borrows it */
	struct kbs_token_verifier *verifier;
};

static void ita_free(void *be)
{
	struct ita *t = be;
	if (!t)
		return;
	kbs_token_verifier_free(t->verifier);
	if (t->api_key) {
		OPENSSL_cleanse(t->api_key, strlen(t->api_key));
		free(t->api_key);
	}
	free(t->base_url);
	free(t->certs_file);
	json_decref(t->policy_ids);
	free(t);
}

static int cfg_str(const json_t *a, const char *key, char **out, struct err *err)
{
	const char *s = json_string_value(json_object_get(a, key));
	if (!s || !*s)
		return err_set(err, "[attestation_service] type intel_ta needs a string `%s`", key);
	if ((*out = strdup(s)) == NULL)
		return err_set(err, "out of memory");
	return 0;
}

static int cfg_policy(const json_t *a, struct ita *t, struct err *err)
{
	json_t *aup = json_object_get(a, "allow_unmatched_policy");
	if (aup && !json_is_boolean(aup))
		return err_set(err,
		               "[attestation_service] allow_unmatched_policy must be a boolean");
	t->allow_unmatched_policy = json_is_true(aup);
	json_t *ids = json_object_get(a, "policy_ids");
	if (ids && !json_is_array(ids))
		return err_set(err, "[attestation_service] policy_ids must be a list of strings");
	t->policy_ids = json_array();
	for (size_t i = 0; i < json_array_size(ids); i++) {
		json_t *v = json_array_get(ids, i);
		if (!json_is_string(v))
			return err_set(err, "[attestation_service] policy_ids[%zu] is not a string",
			               i);
		json_array_append(t->policy_ids, v);
	}
	return 0;
}

static void *ita_open(const struct kbs_config *cfg, int timeout_ms, struct err *err)
{
	const json_t *a = json_object_get(cfg->root, "attestation_service");
	struct ita *t = calloc(1, sizeof(*t));
	if (!t) {
		err_set(err, "out of memory");
		return NULL;
	}
	if (cfg_str(a, "base_url", &t->base_url, err) || cfg_str(a, "api_key", &t->api_key, err) ||
	    cfg_str(a, "certs_file", &t->certs_file, err) || cfg_policy(a, t, err))
		goto fail;
	if (strncmp(t->base_url, "https://", 8) != 0 && strncmp(t->base_url, "http://", 7) != 0) {
		err_set(err, "[attestation_service] base_url %s is not an http(s):// URL",
		        t->base_url);
		goto fail;
	}
	for (size_t n = strlen(t->base_url); n > 0 && t->base_url[n - 1] == '/'; n--)
		t->base_url[n - 1] = '\0';
	t->timeout_ms = timeout_ms > 0 ? timeout_ms : 60000;
	t->jwk_set[0] = t->certs_file;
	t->vcfg.trusted_jwk_sets.v = t->jwk_set;
	t->vcfg.trusted_jwk_sets.n = 1;
	t->verifier = kbs_token_verifier_new(&t->vcfg, err);
	if (!t->verifier) {
		err_prefix(err, "[attestation_service] certs_file");
		goto fail;
	}
	log_info("kbs: attestation by Intel Trust Authority at %s (%zu policy ids, must match: %s)",
	         t->base_url, json_array_size(t->policy_ids),
	         json_array_size(t->policy_ids) && !t->allow_unmatched_policy ? "yes" : "no");
	return t;
fail:
	ita_free(t);
	return NULL;
}

/* ------------------------------------------------------------------ build */

static json_t *b64_string(const uint8_t *buf, size_t len)
{
	char *s = b64_encode(buf, len, B64_STD);
	json_t *j = s ? json_string(s) : NULL;
	free(s);
	return j;
}

/* Byte fields of Azure evidence: a JSON array of numbers (version 0) or base64url (version 1). */
static int az_bytes(const json_t *ev, const char *key, uint8_t **out, size_t *len, struct err *err)
{
	const json_t *v = json_object_get(ev, key);
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		if (b64_decode(s, strlen(s), B64_URL | B64_LENIENT, out, len) != 0)
			return err_set(err, "az-tdx-vtpm evidence: %s is not base64url", key);
		return 0;
	}
	if (!json_is_array(v) || json_array_size(v) == 0)
		return err_set(err, "az-tdx-vtpm evidence: missing %s", key);
	*len = json_array_size(v);
	if ((*out = malloc(*len)) == NULL)
		return err_set(err, "out of memory");
	for (size_t i = 0; i < *len; i++) {
		json_t *b = json_array_get(v, i);
		if (!json_is_integer(b) || json_integer_value(b) < 0 ||
		    json_integer_value(b) > 255) {
			free(*out);
			*out = NULL;
			return err_set(err, "az-tdx-vtpm evidence: %s[%zu] is not a byte", key, i);
		}
		(*out)[i] = (uint8_t)json_integer_value(b);
	}
	return 0;
}

/* tdx / sgx: {quote, runtime_data, user_data?, event_log?} as ITA's DCAP evidence. */
static json_t *dcap_part(const json_t *ev, const char *rd, struct err *err)
{
	const char *quote = json_string_value(json_object_get(ev, "quote"));
	if (!quote || !*quote) {
		err_set(err, "the evidence has no `quote` string");
		return NULL;
	}
	json_t *o = json_pack("{s:s,s:o}", "quote", quote, "runtime_data",
	                      b64_string((const uint8_t *)rd, strlen(rd)));
	json_t *ud = json_object_get(ev, "user_data");
	json_t *log = json_object_get(ev, "cc_eventlog");
	if (o && json_is_string(ud))
		json_object_set(o, "user_data", ud);
	if (o && json_is_string(log))
		json_object_set(o, "event_log", log);
	if (!o)
		err_set(err, "out of memory");
	return o;
}

static json_t *az_part(const json_t *ev, const char *rd, struct err *err)
{
	uint8_t *hcl = NULL, *quote = NULL;
	size_t hl = 0, ql = 0;
	struct hcl_report h = {0};
	json_t *o = NULL;
	if (az_bytes(ev, "hcl_report", &hcl, &hl, err) ||
	    az_bytes(ev, "td_quote", &quote, &ql, err))
		goto out;
	if (hcl_report_parse(hcl, hl, &h, err) != 0) {
		err_prefix(err, "az-tdx-vtpm evidence");
		goto out;
	}
	o = json_pack("{s:o,s:o,s:o}", "quote", b64_string(quote, ql), "runtime_data",
	              b64_string(h.var_data, h.var_data_len), "user_data",
	              b64_string((const uint8_t *)rd, strlen(rd)));
	if (!o)
		err_set(err, "out of memory");
	hcl_report_free(&h);
out:
	free(hcl);
	free(quote);
	return o;
}

/* NVIDIA: the HOPPER and BLACKWELL devices (ITA takes no others), one gpu_nonce for all. */
static json_t *gpu_part(const json_t *ev, const char *rd, struct err *err)
{
	const json_t *list = json_object_get(ev, "device_evidence_list");
	if (!json_is_array(list)) {
		err_set(err, "nvidia evidence has no device_evidence_list");
		return NULL;
	}
	json_t *items = json_array();
	const char *arch = NULL;
	for (size_t i = 0; i < json_array_size(list); i++) {
		json_t *d = json_array_get(list, i);
		const char *a = json_string_value(json_object_get(d, "arch"));
		const char *e = json_string_value(json_object_get(d, "evidence"));
		const char *c = json_string_value(json_object_get(d, "certificate"));
		if (!a || !e || !c) {
			json_decref(items);
			err_set(err,
			        "nvidia evidence: device %zu lacks arch, evidence or certificate",
			        i);
			return NULL;
		}
		if (strcmp(a, "HOPPER") != 0 && strcmp(a, "BLACKWELL") != 0) {
			log_info(
			    "kbs: Intel Trust Authority takes no %.32s GPU; device %zu skipped", a,
			    i);
			continue;
		}
		arch = arch ? arch : a;
		json_array_append_new(items,
		                      json_pack("{s:s,s:s}", "evidence", e, "certificate", c));
	}
	if (!arch) {
		json_decref(items);
		return json_null(); /* nothing ITA can appraise: the evidence is dropped */
	}
	uint8_t md[SHA512_DIGEST_LENGTH];
	SHA512((const uint8_t *)rd, strlen(rd), md);
	char *nonce = hex_encode(md, 32);
	json_t *o = nonce ? json_pack("{s:s,s:s,s:o}", "gpu_nonce", nonce, "arch", arch,
	                              "evidence_list", items)
	                  : NULL;
	free(nonce);
	if (!o)
		err_set(err, "out of memory");
	return o;
}

/* The evidence JSON of one verification request (sent to us as b64url of its text). */
static json_t *request_evidence(const json_t *r, struct err *err)
{
	const char *ev = json_string_value(json_object_get(r, "evidence"));
	uint8_t *raw = NULL;
	size_t n = 0;
	if (!ev || b64_decode(ev, strlen(ev), B64_URL, &raw, &n) != 0) {
		err_set(err, "internal: evidence is not base64url");
		return NULL;
	}
	json_error_t je;
	json_t *j = json_loadb((const char *)raw, n, JSON_DECODE_ANY, &je);
	free(raw);
	if (!j)
		err_set(err, "the evidence is not JSON: %s", je.text);
	return j;
}

/* The appraisal request body; *azure set when the evidence goes to .../attest/azure. */
static json_t *build_body(const struct ita *t, const json_t *requests, int *azure, struct err *err)
{
	bool must = json_array_size(t->policy_ids) > 0 && !t->allow_unmatched_policy;
	json_t *body =
	    json_pack("{s:O,s:b}", "policy_ids", t->policy_ids, "policy_must_match", must);
	*azure = 0;
	for (size_t i = 0; body && i < json_array_size(requests); i++) {
		const json_t *r = json_array_get(requests, i);
		const char *tee = json_string_value(json_object_get(r, "tee"));
		const char *rd = json_string_value(json_object_get(r, "runtime_data"));
		json_t *ev = request_evidence(r, err), *part = NULL;
		const char *key = NULL;
		if (!ev || !tee || !rd)
			goto bad;
		if (!strcmp(tee, "tdx") || !strcmp(tee, "sgx")) {
			key = tee;
			part = dcap_part(ev, rd, err);
		} else if (!strcmp(tee, "az-tdx-vtpm")) {
			key = "tdx";
			*azure = 1;
			part = az_part(ev, rd, err);
		} else if (!strcmp(tee, "nvidia")) {
			key = "nvgpu";
			part = gpu_part(ev, rd, err);
		} else {
			err_set(err,
			        "Intel Trust Authority does not appraise %.32s evidence (tdx, sgx, "
			        "az-tdx-vtpm and nvidia only)",
			        tee);
		}
		json_decref(ev);
		if (!part)
			goto bad;
		if (json_is_null(part))
			json_decref(part);
		else
			json_object_set_new(body, key, part);
		continue;
	bad:
		json_decref(body);
		return NULL;
	}
	if (!body)
		err_set(err, "out of memory");
	return body;
}

/* ------------------------------------------------------------------ post */

/* ITA's error answers are {"error": "..."} (or {"message": ...}); other bodies are not quoted. */
static void ita_message(const struct fetch_result *res, char *out, size_t n)
{
	json_error_t je;
	json_t *j = res->body ? json_loadb(res->body, res->len, 0, &je) : NULL;
	const char *m = json_string_value(json_object_get(j, "error"));
	if (!m)
		m = json_string_value(json_object_get(j, "message"));
	snprintf(out, n, "%.300s", m ? m : "no message");
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	json_decref(j);
}

/* The token from a 200 answer, malloc'd, or NULL with err (code ERR_UNAVAILABLE = retry). */
static char *post(const struct ita *t, const json_t *body, int azure, struct err *err)
{
	char url[1024], key_hdr[1024], ua[128], msg[320];
	snprintf(url, sizeof(url), "%s" ITA_ATTEST_PATH "%s", t->base_url, azure ? "/azure" : "");
	snprintf(key_hdr, sizeof(key_hdr), "x-api-key: %s", t->api_key);
	snprintf(ua, sizeof(ua), "Confidential-containers-trustee kbs/%s", version_string());
	const char *hdrs[] = {key_hdr, "Accept: application/json", "Content-Type: application/json",
	                      NULL};
	struct fetch_opts o = {.timeout_ms = t->timeout_ms,
	                       .max_bytes = ITA_MAX_ANSWER,
	                       .headers = hdrs,
	                       .user_agent = ua};
	struct fetch_result res = {0};
	char *text = json_dumps(body, JSON_COMPACT);
	char *token = NULL;
	if (!text) {
		err_set(err, "out of memory");
		goto out;
	}
	int rc = fetch_request("POST", url, text, strlen(text), &o, &res, err);
	if (rc != 0 && (res.status == 0 || res.status / 100 == 2)) {
		/* err->code from fetch: unreachable or deadline -> retry; oversized -> refusal */
		err_prefix(err, "Intel Trust Authority %s",
		           err && err->code == ERR_UNAVAILABLE ? "did not answer"
		                                               : "sent an answer that was refused");
		goto out;
	}
	if (rc != 0 || res.status != 200) {
		ita_message(&res, msg, sizeof(msg));
		int retry = res.status == 429 || res.status >= 500;
		err_setc(err, retry ? ERR_UNAVAILABLE : 0,
		         "Intel Trust Authority %s the evidence: HTTP %ld: %s",
		         retry ? "could not appraise" : "refused", res.status, msg);
		goto out;
	}
	json_error_t je;
	json_t *j = json_loadb(res.body, res.len, 0, &je);
	const char *tok = json_string_value(json_object_get(j, "token"));
	if (!tok)
		err_set(err, "Intel Trust Authority answered 200 without a `token` string%s",
		        j ? "" : " (not JSON)");
	else if ((token = strdup(tok)) == NULL)
		err_set(err, "out of memory");
	json_decref(j);
out:
	OPENSSL_cleanse(key_hdr, sizeof(key_hdr));
	free(text);
	fetch_result_free(&res);
	return token;
}

/* ------------------------------------------------------------------ bind */

/* Each tdx / sgx / az-tdx-vtpm request's runtime data must come back in the token unchanged. */
static int bind_runtime_data(const json_t *claims, const json_t *requests, struct err *err)
{
	for (size_t i = 0; i < json_array_size(requests); i++) {
		const json_t *r = json_array_get(requests, i);
		const char *tee = json_string_value(json_object_get(r, "tee"));
		const char *rd = json_string_value(json_object_get(r, "runtime_data"));
		const char *key = NULL, *member = "attester_runtime_data";
		if (!strcmp(tee, "tdx") || !strcmp(tee, "sgx"))
			key = tee;
		else if (!strcmp(tee, "az-tdx-vtpm"))
			key = "tdx", member = "attester_user_data";
		else
			continue; /* GPU evidence is bound by ITA's gpu_nonce check */
		json_t *want = json_loads(rd, 0, NULL);
		const json_t *got = json_object_get(json_object_get(claims, key), member);
		int same = want && got && json_equal(want, (json_t *)got);
		json_decref(want);
		if (!got)
			return err_set(err,
			               "the Intel Trust Authority token has no %s.%s, so it is not "
			               "bound to this session",
			               key, member);
		if (!same)
			return err_set(err,
			               "the Intel Trust Authority token's %s.%s is not this "
			               "session's runtime data (another nonce or key)",
			               key, member);
	}
	return 0;
}

static char *ita_evaluate(void *be, const json_t *requests, struct err *err)
{
	struct ita *t = be;
	int azure = 0;
	json_t *body = build_body(t, requests, &azure, err);
	if (!body)
		return NULL;
	if (!json_object_get(body, "tdx") && !json_object_get(body, "sgx") &&
	    !json_object_get(body, "nvgpu")) {
		json_decref(body);
		err_set(err, "no evidence Intel Trust Authority can appraise");
		return NULL;
	}
	char *token = post(t, body, azure, err);
	json_decref(body);
	if (!token)
		return NULL;
	struct err ve = {0};
	json_t *claims = kbs_token_verify(t->verifier, token, &ve);
	if (!claims)
		err_set(err,
		        "the Intel Trust Authority token does not verify against certs_file: %s",
		        ve.msg);
	else if (bind_runtime_data(claims, requests, err) == 0) {
		json_decref(claims);
		return token;
	}
	json_decref(claims);
	free(token);
	return NULL;
}

/* /auth extra-params (§2.2): with a supported-hash-algorithms list, the algorithm ITA expects
 * the TEE to have hashed the runtime data with; without one, "" (the client's default). */
static json_t *ita_auth_params(void *be, const char *tee, const json_t *extra, struct err *err)
{
	const json_t *list = json_object_get(extra, "supported-hash-algorithms");
	if (!list)
		return json_string("");
	if (!json_is_array(list)) {
		err_set(err, "ITA: supported-hash-algorithms is not a list");
		return NULL;
	}
	const char *need = !strcmp(tee, "tdx")                                  ? "sha512"
	                   : !strcmp(tee, "sgx") || !strcmp(tee, "az-tdx-vtpm") ? "sha256"
	                                                                        : NULL;
	if (!need) {
		err_set(err, "ITA: Unknown TEE specified");
		return NULL;
	}
	for (size_t i = 0; i < json_array_size(list); i++) {
		const char *s = json_string_value(json_array_get(list, i));
		if (s && !strcasecmp(s, need))
			return json_pack("{s:s}", "selected-hash-algorithm", need);
	}
	err_set(err, "ITA: %.32s TEE does not support %s", tee, need);
	return NULL;
}

const struct kbs_as_backend kbs_as_intel_ta = {
    .name = "intel_ta",
    .type = KBS_AS_INTEL_TA,
    .open = ita_open,
    .free = ita_free,
    .evaluate = ita_evaluate,
    .set_policy = NULL, /* ITA's policies live in ITA: Trustee answers "unimplemented" too */
    .rv_register = NULL,
    .rv_query = NULL,
    .challenge = NULL,
    .auth_params = ita_auth_params,
    .ready = NULL,
};
