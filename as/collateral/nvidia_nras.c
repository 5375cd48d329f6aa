/*
 * nvidia_nras: the NRAS client (see nvidia_nras.h): one POST per device over common/fetch.c,
 * the answer parsed by nras_answer_parse (fuzzed) and its two tokens checked by
 * nras_answer_verify against NRAS's JWK set.
 *
 * The JWK set is fetched on first use rather than at start (Trustee fetches it at start and
 * will not start without it): an AS whose GPUs are appraised remotely then starts while NRAS
 * is out of reach, and answers "retry" until it is back. The set is kept and fetched again
 * only when a token names a kid it lacks (NRAS rotated its key), at most once a minute so a
 * stream of forged kids cannot make us hammer NRAS.
 */
#include "as/collateral/nvidia_nras.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "b64.h"
#include "fetch.h"
#include "hash.h"
#include "jose/jose.h"

#define JWKS_MAX_BYTES (64 * 1024)
#define JWKS_REFRESH_S 60
#define CLOCK_LEEWAY_S 60 /* exp/nbf tolerance, as jsonwebtoken's default */

/* Configuration: written by nvidia_nras_configure before any verify runs, then only read.
 * The cached JWK set and the time it was fetched are guarded by `mu`. */
static struct {
	char *url, *jwks_url, *ca_file; /* owned */
	long timeout_ms;
	pthread_mutex_t mu;
	json_t *jwks; /* owned, {"keys": [...]}; NULL until fetched */
	time_t jwks_at;
} nras = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int set_str(char **dst, const char *v)
{
	char *s = v ? strdup(v) : NULL;
	if (v != NULL && s == NULL)
		return -1;
	free(*dst);
	*dst = s;
	return 0;
}

int nvidia_nras_configure(const json_t *c, struct err *err)
{
	const char *url = json_string_value(json_object_get(c, "verifier_url"));
	const char *jwks = json_string_value(json_object_get(c, "jwks_url"));
	const json_t *tmo = json_object_get(c, "nras_timeout_ms");
	size_t n;

	if (tmo != NULL && (!json_is_integer(tmo) || json_integer_value(tmo) <= 0))
		return err_set(err, "nras_timeout_ms must be a positive integer");
	url = url ? url : NRAS_DEFAULT_URL;
	jwks = jwks ? jwks : NRAS_DEFAULT_JWKS_URL;
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		return err_set(err, "verifier_url %.128s is not an http(s) URL", url);
	if (strncmp(jwks, "http://", 7) != 0 && strncmp(jwks, "https://", 8) != 0)
		return err_set(err, "jwks_url %.128s is not an http(s) URL", jwks);
	if (set_str(&nras.url, url) < 0 || set_str(&nras.jwks_url, jwks) < 0 ||
	    set_str(&nras.ca_file, json_string_value(json_object_get(c, "nras_ca_file"))) < 0)
		return err_set(err, "out of memory");
	n = strlen(nras.url);
	while (n > 0 && nras.url[n - 1] == '/')
		nras.url[--n] = '\0';
	nras.timeout_ms = tmo ? (long)json_integer_value(tmo) : NRAS_TIMEOUT_MS;
	pthread_mutex_lock(&nras.mu);
	json_decref(nras.jwks);
	nras.jwks = NULL;
	nras.jwks_at = 0;
	pthread_mutex_unlock(&nras.mu);
	return 0;
}

/* ---- the answer ---------------------------------------------------------------------- */

void nras_answer_free(struct nras_answer *a)
{
	free(a->overall);
	free(a->submod);
	free(a->device);
	memset(a, 0, sizeof(*a));
}

int nras_answer_parse(const uint8_t *buf, size_t len, struct nras_answer *out, struct err *err)
{
	json_t *j = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, NULL);
	json_t *jwt = json_array_get(j, 0), *eats = json_array_get(j, 1), *v;
	const char *k;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (!json_is_array(j) || json_array_size(j) != 2) {
		err_set(err, "the NRAS answer is not a JSON array of two elements");
		goto out;
	}
	if (!json_is_array(jwt) || json_array_size(jwt) != 2 ||
	    !json_is_string(json_array_get(jwt, 1))) {
		err_set(err, "the NRAS answer does not open with [\"JWT\", <overall token>]");
		goto out;
	}
	if (!json_is_object(eats) || json_object_size(eats) != 1) {
		err_set(err, "the NRAS answer carries %zu device tokens where one device was sent",
		        json_is_object(eats) ? json_object_size(eats) : 0);
		goto out;
	}
	json_object_foreach(eats, k, v)
	{
		if (!json_is_string(v)) {
			err_set(err, "the NRAS device token %.64s is not a string", k);
			goto out;
		}
		out->submod = strdup(k);
		out->device = strdup(json_string_value(v));
	}
	out->overall = strdup(json_string_value(json_array_get(jwt, 1)));
	if (out->submod == NULL || out->device == NULL || out->overall == NULL) {
		err_set(err, "out of memory");
		goto out;
	}
	rc = 0;
out:
	if (rc < 0)
		nras_answer_free(out);
	json_decref(j);
	return rc;
}

/* ---- the tokens ---------------------------------------------------------------------- */

static const json_t *jwks_key(const json_t *jwks, const char *kid)
{
	const json_t *keys = json_object_get(jwks, "keys"), *k;
	size_t i;

	json_array_foreach(keys, i, k)
	{
		const char *id = json_string_value(json_object_get(k, "kid"));
		if (id != NULL && strcmp(id, kid) == 0)
			return k;
	}
	return NULL;
}

static int check_times(const json_t *p, const char *what, time_t now, struct err *err)
{
	const json_t *exp = json_object_get(p, "exp"), *nbf = json_object_get(p, "nbf");

	if (!json_is_integer(exp))
		return err_set(err, "the NRAS %s token has no exp", what);
	if ((json_int_t)now > json_integer_value(exp) + CLOCK_LEEWAY_S)
		return err_set(err, "the NRAS %s token expired", what);
	if (nbf != NULL && !json_is_integer(nbf))
		return err_set(err, "the NRAS %s token's nbf is not a number", what);
	if (nbf != NULL && (json_int_t)now + CLOCK_LEEWAY_S < json_integer_value(nbf))
		return err_set(err, "the NRAS %s token is not valid yet", what);
	return 0;
}

/* One token: ES384 with the JWK its kid names, within exp/nbf. *payload a new reference. */
static int verify_token(const char *token, const json_t *jwks, const char *what, time_t now,
                        json_t **payload, struct err *err)
{
	json_t *h = NULL;
	EVP_PKEY *key = NULL;
	const json_t *jwk;
	const char *alg, *kid, *kalg;
	int rc = -1;

	*payload = NULL;
	if (jws_decode_unverified(token, &h, NULL, err) < 0)
		return err_prefix(err, "the NRAS %s token", what);
	alg = json_string_value(json_object_get(h, "alg"));
	kid = json_string_value(json_object_get(h, "kid"));
	if (alg == NULL || strcmp(alg, "ES384") != 0) {
		err_set(err, "the NRAS %s token is signed with \"%.16s\"; NRAS signs ES384 only",
		        what, alg ? alg : "");
		goto out;
	}
	if (kid == NULL) {
		err_set(err, "the NRAS %s token names no kid", what);
		goto out;
	}
	if ((jwk = jwks_key(jwks, kid)) == NULL) {
		err_setc(err, NRAS_ERR_UNKNOWN_KID,
		         "the NRAS %s token is signed by kid %.80s, which NRAS's JWK set lacks",
		         what, kid);
		goto out;
	}
	if ((key = jwk_to_pkey(jwk, err)) == NULL) {
		err_prefix(err, "NRAS JWK %.80s", kid);
		goto out;
	}
	kalg = jwk_default_alg(key);
	if (kalg == NULL || strcmp(kalg, "ES384") != 0) {
		err_set(err, "NRAS JWK %.80s is not a P-384 key", kid);
		goto out;
	}
	if (jws_verify(token, key, "ES384", NULL, payload, err) < 0) {
		err_prefix(err, "the NRAS %s token", what);
		goto out;
	}
	if (check_times(*payload, what, now, err) < 0) {
		json_decref(*payload);
		*payload = NULL;
		goto out;
	}
	rc = 0;
out:
	EVP_PKEY_free(key);
	json_decref(h);
	return rc;
}

/* The overall token's submods entry for the device, when it has one, must be
 * ["DIGEST", ["SHA256", <hex SHA-256 of the device token>]]. */
static int check_digest(const json_t *overall, const struct nras_answer *a, struct err *err)
{
	const json_t *sm = json_object_get(overall, "submods"), *e, *d;
	const char *alg, *want;
	uint8_t h[HASH_MAX];
	char *hex;
	int ok;

	if (sm == NULL)
		return 0;
	if ((e = json_object_get(sm, a->submod)) == NULL)
		return err_set(err, "the NRAS overall token does not list the device token %.64s",
		               a->submod);
	d = json_array_get(e, 1);
	alg = json_string_value(json_array_get(d, 0));
	want = json_string_value(json_array_get(d, 1));
	if (json_array_size(e) != 2 ||
	    strcmp(json_string_value(json_array_get(e, 0)) ?: "", "DIGEST") != 0 || alg == NULL ||
	    want == NULL)
		return err_set(err, "the NRAS overall token's submods entry %.64s is not a DIGEST",
		               a->submod);
	if (strcasecmp(alg, "SHA256") != 0 && strcasecmp(alg, "SHA-256") != 0)
		return err_set(err, "the NRAS overall token digests %.64s with %.16s, not SHA-256",
		               a->submod, alg);
	if (hash_digest(HASH_SHA256, a->device, strlen(a->device), h) != 32 ||
	    (hex = hex_encode(h, 32)) == NULL)
		return err_set(err, "out of memory");
	ok = strcasecmp(hex, want) == 0;
	free(hex);
	return ok ? 0
	          : err_set(err,
	                    "the NRAS device token %.64s is not the one the overall token "
	                    "digests",
	                    a->submod);
}

int nras_answer_verify(const struct nras_answer *a, const json_t *jwks, const char *nonce_hex,
                       time_t now, json_t **claims, struct err *err)
{
	json_t *op = NULL, *dp = NULL;
	const json_t *res;
	const char *n;
	int rc = -1;

	*claims = NULL;
	if (verify_token(a->overall, jwks, "overall", now, &op, err) < 0 ||
	    verify_token(a->device, jwks, "device", now, &dp, err) < 0)
		goto out;
	n = json_string_value(json_object_get(op, "eat_nonce"));
	if (n == NULL || strcasecmp(n, nonce_hex) != 0) {
		err_set(err, "the NRAS overall token's eat_nonce %s the nonce we sent",
		        n ? "is not" : "is missing, so it cannot be");
		goto out;
	}
	if (check_digest(op, a, err) < 0)
		goto out;
	if ((res = json_object_get(op, "x-nvidia-overall-att-result")) != NULL &&
	    json_object_set(dp, "x-nvidia-overall-att-result", (json_t *)res) < 0) {
		err_set(err, "out of memory");
		goto out;
	}
	*claims = dp;
	dp = NULL;
	rc = 0;
out:
	json_decref(op);
	json_decref(dp);
	return rc;
}

/* ---- the network ----------------------------------------------------------------------- */

static struct fetch_opts opts(size_t cap, const char *const *headers)
{
	struct fetch_opts o = {.timeout_ms = nras.timeout_ms,
	                       .max_bytes = cap,
	                       .ca_file = nras.ca_file,
	                       .headers = headers};
	return o;
}

/* The JWK set (new reference): the cached one, or fetched when there is none or `refresh`
 * asks and the cached one is over a minute old. A set that cannot be had is an outage. */
static json_t *jwks_get(int refresh, time_t now, struct err *err)
{
	struct fetch_result r = {0};
	struct fetch_opts o = opts(JWKS_MAX_BYTES, NULL);
	json_t *set = NULL;

	pthread_mutex_lock(&nras.mu);
	if (nras.jwks != NULL && (!refresh || now - nras.jwks_at < JWKS_REFRESH_S))
		set = json_incref(nras.jwks);
	pthread_mutex_unlock(&nras.mu);
	if (set != NULL)
		return set;
	if (fetch_get(nras.jwks_url, &o, &r, err) < 0) {
		err->code = ERR_UNAVAILABLE;
		err_prefix(err, "NRAS JWK set");
		goto out;
	}
	set = json_loadb(r.body ? r.body : "", r.len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_array(json_object_get(set, "keys"))) {
		json_decref(set);
		set = NULL;
		err_setc(err, ERR_UNAVAILABLE, "NRAS JWK set %s is not {\"keys\": [...]}",
		         nras.jwks_url);
		goto out;
	}
	pthread_mutex_lock(&nras.mu);
	json_decref(nras.jwks);
	nras.jwks = json_incref(set);
	nras.jwks_at = now;
	pthread_mutex_unlock(&nras.mu);
out:
	fetch_result_free(&r);
	return set;
}

static int post(const char *endpoint, const char *arch, const uint8_t nonce[32],
                const char *evidence_b64, const char *certificate, struct fetch_result *r,
                struct err *err)
{
	static const char *const hdrs[] = {"Content-Type: application/json",
	                                   "Accept: application/json", NULL};
	struct fetch_opts o = opts(NRAS_MAX_ANSWER, hdrs);
	char *hex = hex_encode(nonce, 32), *url = NULL, *body = NULL;
	json_t *req = NULL;
	int rc = -1;

	if (hex == NULL || asprintf(&url, "%s/%s", nras.url, endpoint) < 0) {
		url = NULL;
		err_set(err, "out of memory");
		goto out;
	}
	req = json_pack("{s:s,s:s,s:[{s:s,s:s}],s:s}", "nonce", hex, "arch", arch, "evidence_list",
	                "evidence", evidence_b64, "certificate", certificate, "claims_version",
	                "3.0");
	if (req == NULL || (body = json_dumps(req, JSON_COMPACT)) == NULL) {
		err_set(err, "out of memory");
		goto out;
	}
	if (fetch_request("POST", url, body, strlen(body), &o, r, err) < 0) {
		err_prefix(err, "NRAS");
		goto out;
	}
	rc = 0;
out:
	json_decref(req);
	free(body);
	free(url);
	free(hex);
	return rc;
}

int nvidia_nras_attest(const char *endpoint, const char *arch, const uint8_t nonce[32],
                       const char *evidence_b64, const char *certificate, time_t now,
                       json_t **claims, struct err *err)
{
	struct fetch_result r = {0};
	struct nras_answer a = {0};
	json_t *set = NULL;
	char nonce_hex[65];
	int rc = -1;

	*claims = NULL;
	if (nras.url == NULL)
		return err_set(err, "the NVIDIA remote verifier is not configured");
	if (now == 0)
		now = time(NULL);
	for (int i = 0; i < 32; i++)
		snprintf(nonce_hex + 2 * i, 3, "%02x", nonce[i]);
	if (post(endpoint, arch, nonce, evidence_b64, certificate, &r, err) < 0)
		goto out;
	if (nras_answer_parse((const uint8_t *)(r.body ? r.body : ""), r.len, &a, err) < 0 ||
	    (set = jwks_get(0, now, err)) == NULL)
		goto out;
	rc = nras_answer_verify(&a, set, nonce_hex, now, claims, err);
	if (rc < 0 && err->code == NRAS_ERR_UNKNOWN_KID) {
		json_decref(set);
		if ((set = jwks_get(1, now, err)) == NULL)
			goto out;
		err->code = 0;
		rc = nras_answer_verify(&a, set, nonce_hex, now, claims, err);
	}
	if (rc < 0 && err->code == NRAS_ERR_UNKNOWN_KID)
		err->code = 0;
out:
	json_decref(set);
	nras_answer_free(&a);
	fetch_result_free(&r);
	return rc;
}
