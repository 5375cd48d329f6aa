/*
 * veraison: the challenge-response exchange with a Veraison verifier (see veraison.h). Each
 * answer is capped (64 KiB) and read as JSON before anything in it is used; a session URL is
 * resolved against the newSession URL the way a browser resolves a relative Location, but only
 * within the configured address (an absolute URL elsewhere is refused: the verifier does not
 * get to send our evidence to a third party).
 */
#include "as/collateral/veraison.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "b64.h"
#include "fetch.h"
#include "jose/jose.h"

#define VERAISON_MAX_BODY (64 * 1024)
#define VERAISON_POLLS 20
#define SESSION_TYPE "application/vnd.veraison.challenge-response-session+json"

static struct fetch_opts opts(const struct veraison_cfg *c, const char *const *headers)
{
	struct fetch_opts o = {.timeout_ms = c->timeout_ms,
	                       .max_bytes = VERAISON_MAX_BODY,
	                       .ca_file = c->ca_file,
	                       .headers = headers,
	                       .keep = {"Location"}};
	return o;
}

/* The answer's JSON body (new reference), or NULL and why. */
static json_t *json_body(const struct fetch_result *r, const char *what, struct err *err)
{
	json_t *j = r->body ? json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, NULL) : NULL;
	if (!json_is_object(j)) {
		json_decref(j);
		err_set(err, "Veraison %s: the answer is not a JSON object", what);
		return NULL;
	}
	return j;
}

/* Discovery: the newSession URL and the EAR key. */
static int discover(const struct veraison_cfg *c, char **new_session, EVP_PKEY **key,
                    struct err *err)
{
	struct fetch_opts o = opts(c, NULL);
	struct fetch_result r = {0};
	char url[2048];
	json_t *d = NULL;
	const char *rel;
	int rc = -1;

	snprintf(url, sizeof(url), "%s/.well-known/veraison/verification", c->address);
	if (fetch_get(url, &o, &r, err) < 0) {
		err_prefix(err, "Veraison discovery");
		goto out;
	}
	if ((d = json_body(&r, "discovery", err)) == NULL)
		goto out;
	rel = json_string_value(
	    json_object_get(json_object_get(d, "api-endpoints"), "newChallengeResponseSession"));
	if (rel == NULL || rel[0] != '/') {
		err_set(err, "Veraison discovery names no newChallengeResponseSession path");
		goto out;
	}
	*key = jwk_to_pkey(json_object_get(d, "ear-verification-key"), err);
	if (*key == NULL) {
		err_prefix(err, "Veraison discovery: ear-verification-key");
		goto out;
	}
	if (asprintf(new_session, "%s%s", c->address, rel) < 0) {
		*new_session = NULL;
		err_set(err, "out of memory");
		goto out;
	}
	rc = 0;
out:
	json_decref(d);
	fetch_result_free(&r);
	return rc;
}

/* Location of a new session resolved against the newSession URL, kept under the address. */
static char *session_url(const struct veraison_cfg *c, const char *base, const char *loc,
                         struct err *err)
{
	char *u = NULL;
	size_t al = strlen(c->address);

	if (loc == NULL || loc[0] == '\0' || strstr(loc, "..") != NULL) {
		err_set(err, "Veraison newSession: no usable Location for the session");
		return NULL;
	}
	if (strstr(loc, "://") != NULL) {
		if (strncmp(loc, c->address, al) != 0 || (loc[al] != '/' && loc[al] != '\0')) {
			err_set(err, "Veraison newSession: the session is at another address");
			return NULL;
		}
		u = strdup(loc);
	} else if (loc[0] == '/') {
		if (asprintf(&u, "%s%s", c->address, loc) < 0)
			u = NULL;
	} else {
		const char *slash = strrchr(base, '/');
		if (asprintf(&u, "%.*s/%s", (int)(slash - base), base, loc) < 0)
			u = NULL;
	}
	if (u == NULL)
		err_set(err, "out of memory");
	return u;
}

static int new_session(const struct veraison_cfg *c, const char *ns_url, const uint8_t *nonce,
                       size_t nlen, char **session, struct err *err)
{
	static const char *const hdrs[] = {"Accept: " SESSION_TYPE, NULL};
	struct fetch_opts o = opts(c, hdrs);
	struct fetch_result r = {0};
	char *n64 = b64_encode(nonce, nlen, B64_URL), *url = NULL;
	int rc = -1;

	/* padded base64url as Veraison decodes it, the padding escaped for the query */
	if (n64 == NULL || asprintf(&url, "%s?nonce=%s%s", ns_url, n64,
	                            nlen % 3 == 1   ? "%3D%3D"
	                            : nlen % 3 == 2 ? "%3D"
	                                            : "") < 0) {
		url = NULL;
		err_set(err, "out of memory");
		goto out;
	}
	if (fetch_request("POST", url, NULL, 0, &o, &r, err) < 0) {
		err_prefix(err, "Veraison newSession");
		goto out;
	}
	if (r.status != 201) {
		err_set(err, "Veraison newSession answered %ld, not 201 Created", r.status);
		goto out;
	}
	*session = session_url(c, ns_url, r.kept[0], err);
	rc = *session ? 0 : -1;
out:
	free(n64);
	free(url);
	fetch_result_free(&r);
	return rc;
}

/* Post the evidence, poll until the session is complete; *ear_jwt malloc'd. */
static int run_session(const struct veraison_cfg *c, const char *url, const uint8_t *ev, size_t len,
                       char **ear_jwt, struct err *err)
{
	char ct[512];
	const char *hdrs[] = {ct, "Accept: " SESSION_TYPE, NULL};
	struct fetch_opts o = opts(c, hdrs);
	struct fetch_result r = {0};
	json_t *s = NULL;
	const char *status = NULL;
	int rc = -1;

	snprintf(ct, sizeof(ct), "Content-Type: %s", c->media_type);
	if (fetch_request("POST", url, ev, len, &o, &r, err) < 0) {
		err_prefix(err, "Veraison session");
		goto out;
	}
	for (int i = 0;; i++) {
		json_decref(s);
		if ((s = json_body(&r, "session", err)) == NULL)
			goto out;
		status = json_string_value(json_object_get(s, "status"));
		if (status == NULL || strcmp(status, "processing") != 0 || i == VERAISON_POLLS)
			break;
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
		fetch_result_free(&r);
		o.headers = hdrs + 1;
		if (fetch_get(url, &o, &r, err) < 0) {
			err_prefix(err, "Veraison session");
			goto out;
		}
	}
	if (status == NULL || strcmp(status, "complete") != 0) {
		err_set(err, "Veraison session ended %.32s, not complete",
		        status ? status : "(none)");
		goto out;
	}
	if (!json_is_string(json_object_get(s, "result"))) {
		err_set(err, "Veraison session is complete but holds no result");
		goto out;
	}
	*ear_jwt = strdup(json_string_value(json_object_get(s, "result")));
	rc = *ear_jwt ? 0 : err_set(err, "out of memory");
out:
	json_decref(s);
	fetch_result_free(&r);
	return rc;
}

static int check_ear(const char *jwt, EVP_PKEY *key, const uint8_t *nonce, size_t nlen,
                     json_t **ear, struct err *err)
{
	const char *n;
	uint8_t *got = NULL;
	size_t gl = 0;

	if (jws_verify(jwt, key, "ES256", NULL, ear, err) < 0)
		return err_prefix(err, "Veraison EAR");
	n = json_string_value(json_object_get(*ear, "eat_nonce"));
	if (n == NULL) {
		json_decref(*ear);
		*ear = NULL;
		return err_set(err, "Veraison EAR: no eat_nonce");
	}
	/* base64url, padded or not */
	if (b64_decode(n, strcspn(n, "="), B64_URL, &got, &gl) < 0 || gl != nlen ||
	    memcmp(got, nonce, nlen) != 0) {
		free(got);
		json_decref(*ear);
		*ear = NULL;
		return err_set(err, "Veraison EAR: eat_nonce is not the nonce sent");
	}
	free(got);
	return 0;
}

int veraison_verify(const struct veraison_cfg *c, const uint8_t *evidence, size_t len,
                    const uint8_t *nonce, size_t nonce_len, json_t **ear, struct err *err)
{
	char *ns = NULL, *session = NULL, *jwt = NULL;
	EVP_PKEY *key = NULL;
	int rc = -1;

	*ear = NULL;
	if (discover(c, &ns, &key, err) < 0 ||
	    new_session(c, ns, nonce, nonce_len, &session, err) < 0)
		goto out;
	rc = run_session(c, session, evidence, len, &jwt, err);
	{
		/* best effort: a session left behind expires on the verifier's side */
		struct fetch_opts o = opts(c, NULL);
		struct fetch_result r = {0};
		struct err ignored = {0};
		(void)fetch_request("DELETE", session, NULL, 0, &o, &r, &ignored);
		fetch_result_free(&r);
	}
	if (rc == 0)
		rc = check_ear(jwt, key, nonce, nonce_len, ear, err);
out:
	free(ns);
	free(session);
	free(jwt);
	EVP_PKEY_free(key);
	return rc;
}
