/*
 * external: the `external` plugin (kbs-protocol.md §7.1), the row kbs_plugin_external. Each
 * configured backend is a gRPC service kbs.plugin.v1.KbsPlugin (proto/plugin.proto), reached
 * in plaintext (http://) or over TLS with the roots in ca_cert_path (https://, required then).
 * A request to /kbs/v0/external/<backend>/<rest...> goes to <backend> with path = <rest...>:
 * the backend decides whether admin authentication is needed (ValidateAuth) and whether its
 * answer is encrypted to the guest (NeedsEncryption); Handle answers with body and status, and
 * a status other than 0 or 2xx is a plugin error. Each backend has its own deadline
 * (timeout_ms) on every call; every backend is reached once at start-up, so a kbs whose
 * backend is down does not start. Calls and failures are counted per backend, and Handle's
 * time observed in kbs_plugin_request_duration_seconds (metrics §9).
 *
 * The three request messages share their fields and numbers, so one packed PluginRequest is
 * sent to all three methods.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grpcx.h"
#include "kbs/kbs.h"
#include "log.h"
#include "plugin.pb-c.h"

#define EXT_DEFAULT_TIMEOUT_MS 10000
#define EXT_MAX_BACKENDS 64

struct ext_backend {
	char *name;
	char *endpoint;
	int timeout_ms;
	struct grpcx_client *c;
};

struct ext {
	struct ext_backend *be;
	size_t n;
};

static void ext_free(void *st)
{
	struct ext *x = st;
	if (!x)
		return;
	for (size_t i = 0; i < x->n; i++) {
		grpcx_client_free(x->be[i].c);
		free(x->be[i].name);
		free(x->be[i].endpoint);
	}
	free(x->be);
	free(x);
}

static int name_ok(const char *s)
{
	if (!*s || strlen(s) > 128)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
			return 0;
	return 1;
}

/* Packs the request as a PluginRequest; *buf malloc'd. */
static int pack(const struct kbs_plugin_req *q, uint8_t **buf, size_t *len, struct err *err)
{
	Kbs__Plugin__V1__PluginRequest m = KBS__PLUGIN__V1__PLUGIN_REQUEST__INIT;
	size_t nq = json_object_size(q->query), np = json_array_size(q->path);
	Kbs__Plugin__V1__PluginRequest__QueryEntry *ents = calloc(nq ? nq : 1, sizeof(*ents));
	Kbs__Plugin__V1__PluginRequest__QueryEntry **eps = calloc(nq ? nq : 1, sizeof(*eps));
	char **path = calloc(np ? np : 1, sizeof(*path));
	int rc = -1;
	if (!ents || !eps || !path) {
		err_set(err, "out of memory");
		goto out;
	}
	size_t i = 0;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)q->query, k, v)
	{
		kbs__plugin__v1__plugin_request__query_entry__init(&ents[i]);
		ents[i].key = (char *)k;
		ents[i].value = (char *)(json_string_value(v) ? json_string_value(v) : "");
		eps[i] = &ents[i];
		i++;
	}
	for (size_t j = 0; j < np; j++) {
		const char *s = json_string_value(json_array_get(q->path, j));
		path[j] = (char *)(s ? s : "");
	}
	m.body.data = (uint8_t *)q->body;
	m.body.len = q->body ? q->body_len : 0;
	m.n_query = i;
	m.query = eps;
	m.n_path = np;
	m.path = path;
	m.method = (char *)q->method;
	*len = kbs__plugin__v1__plugin_request__get_packed_size(&m);
	if ((*buf = malloc(*len ? *len : 1)) == NULL) {
		err_set(err, "out of memory");
		goto out;
	}
	kbs__plugin__v1__plugin_request__pack(&m, *buf);
	rc = 0;
out:
	free(ents);
	free(eps);
	free(path);
	return rc;
}

/* One unary call to backend b: the response bytes in *resp (malloc'd). */
static int call(struct ext_backend *b, const char *method, const uint8_t *req, size_t rl,
                uint8_t **resp, size_t *resp_len, struct err *err)
{
	char full[96];
	struct timespec t0, t1;
	snprintf(full, sizeof(full), "/kbs.plugin.v1.KbsPlugin/%s", method);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int st = grpcx_call(b->c, full, req, rl, resp, resp_len, b->timeout_ms, err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (!strcmp(method, "Handle"))
		kbs_metrics_plugin_observe(b->name, (double)(t1.tv_sec - t0.tv_sec) +
		                                        (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	if (st == GRPCX_OK)
		return 0;
	if (err)
		err->code = st; /* the start-up probe tells "down" from "answered with an error" */
	if (st == GRPCX_DEADLINE_EXCEEDED)
		err_set(err, "external backend %s did not answer %s within %d ms", b->name, method,
		        b->timeout_ms);
	else if (st > 0)
		err_prefix(err, "external backend %s: %s: gRPC status %d", b->name, method, st);
	return -1;
}

static void *ext_open(const json_t *cfg, struct err *err)
{
	const json_t *list = json_object_get(cfg, "backends");
	if (!json_is_array(list) || json_array_size(list) == 0 ||
	    json_array_size(list) > EXT_MAX_BACKENDS) {
		err_set(err,
		        "[[plugins]] external: `backends` must be a non-empty list (at most %d)",
		        EXT_MAX_BACKENDS);
		return NULL;
	}
	struct ext *x = calloc(1, sizeof(*x));
	if (!x || !(x->be = calloc(json_array_size(list), sizeof(*x->be)))) {
		free(x);
		err_set(err, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < json_array_size(list); i++) {
		const json_t *e = json_array_get(list, i);
		const char *name = json_string_value(json_object_get(e, "name"));
		const char *ep = json_string_value(json_object_get(e, "endpoint"));
		const char *ca = json_string_value(json_object_get(e, "ca_cert_path"));
		const json_t *tm = json_object_get(e, "timeout_ms");
		if (!name || !name_ok(name)) {
			err_set(err,
			        "[[plugins]] external: backend %zu needs a `name` of letters, "
			        "digits, - _ .",
			        i);
			goto fail;
		}
		for (size_t j = 0; j < x->n; j++)
			if (!strcmp(x->be[j].name, name)) {
				err_set(err,
				        "[[plugins]] external: backend name \"%s\" is used twice",
				        name);
				goto fail;
			}
		if (!ep || (strncmp(ep, "http://", 7) && strncmp(ep, "https://", 8))) {
			err_set(err,
			        "[[plugins]] external: backend %s needs an http:// or https:// "
			        "`endpoint`",
			        name);
			goto fail;
		}
		if (!strncmp(ep, "https://", 8) && !ca) {
			err_set(err,
			        "[[plugins]] external: backend %s is https:// and needs "
			        "`ca_cert_path`",
			        name);
			goto fail;
		}
		if (tm && (!json_is_integer(tm) || json_integer_value(tm) <= 0 ||
		           json_integer_value(tm) > 3600000)) {
			err_set(err,
			        "[[plugins]] external: backend %s: timeout_ms must be 1..3600000",
			        name);
			goto fail;
		}
		struct ext_backend *b = &x->be[x->n];
		b->name = strdup(name);
		b->endpoint = strdup(ep);
		b->timeout_ms = tm ? (int)json_integer_value(tm) : EXT_DEFAULT_TIMEOUT_MS;
		struct grpcx_tls_files f = {ca, NULL, NULL};
		char what[200];
		snprintf(what, sizeof(what), "[[plugins]] external backend %s endpoint", name);
		x->n++;
		if (!b->name || !b->endpoint || !(b->c = grpcx_client_new_files(ep, &f, what, err)))
			goto fail;
	}
	/* reach every backend now: a kbs with a backend down refuses to start */
	static const struct kbs_plugin_req probe = {.method = "GET"};
	uint8_t *req = NULL, *resp = NULL;
	size_t rl = 0, respl = 0;
	if (pack(&probe, &req, &rl, err))
		goto fail;
	for (size_t i = 0; i < x->n; i++) {
		if (call(&x->be[i], "ValidateAuth", req, rl, &resp, &respl, err) != 0 &&
		    (err->code == GRPCX_UNAVAILABLE || err->code == GRPCX_DEADLINE_EXCEEDED ||
		     err->code <= 0)) {
			err_prefix(err, "[[plugins]] external: backend %s at %s unreachable",
			           x->be[i].name, x->be[i].endpoint);
			free(req);
			goto fail;
		}
		free(resp);
		resp = NULL;
		log_info("kbs: external plugin backend %s at %s (timeout %d ms)", x->be[i].name,
		         x->be[i].endpoint, x->be[i].timeout_ms);
	}
	free(req);
	return x;
fail:
	ext_free(x);
	return NULL;
}

/* The backend the first path segment names, and the request with that segment stripped. */
static struct ext_backend *route(struct ext *x, const struct kbs_plugin_req *q,
                                 struct kbs_plugin_req *fwd, json_t **rest, struct err *err)
{
	const char *name = json_string_value(json_array_get(q->path, 0));
	if (!name || !*name) {
		err_set(err, "external: no backend named in the path");
		return NULL;
	}
	for (size_t i = 0; i < x->n; i++)
		if (!strcmp(x->be[i].name, name)) {
			*rest = json_array();
			for (size_t j = 1; j < json_array_size(q->path); j++)
				json_array_append(*rest, json_array_get(q->path, j));
			*fwd = *q;
			fwd->path = *rest;
			kbs_metrics_inc_label(KML_PLUGIN_REQUESTS, x->be[i].name);
			return &x->be[i];
		}
	err_set(err, "external: unknown backend \"%.64s\"", name);
	return NULL;
}

/* A boolean answer (field 1) from ValidateAuth or NeedsEncryption: 1, 0 or -1. */
static int ask(struct ext *x, const char *method, const struct kbs_plugin_req *q, struct err *err)
{
	struct kbs_plugin_req fwd;
	json_t *rest = NULL;
	uint8_t *req = NULL, *resp = NULL;
	size_t rl = 0, respl = 0;
	int rc = -1;
	struct ext_backend *b = route(x, q, &fwd, &rest, err);
	if (!b || pack(&fwd, &req, &rl, err) || call(b, method, req, rl, &resp, &respl, err))
		goto out;
	if (!strcmp(method, "ValidateAuth")) {
		Kbs__Plugin__V1__ValidateAuthResponse *r =
		    kbs__plugin__v1__validate_auth_response__unpack(NULL, respl, resp);
		if (r) {
			rc = r->requires_admin_auth ? 1 : 0;
			kbs__plugin__v1__validate_auth_response__free_unpacked(r, NULL);
		}
	} else {
		Kbs__Plugin__V1__NeedsEncryptionResponse *r =
		    kbs__plugin__v1__needs_encryption_response__unpack(NULL, respl, resp);
		if (r) {
			rc = r->requires_payload_encryption ? 1 : 0;
			kbs__plugin__v1__needs_encryption_response__free_unpacked(r, NULL);
		}
	}
	if (rc < 0)
		err_set(err, "external backend %s sent an unparsable %s answer", b->name, method);
out:
	if (rc < 0 && b)
		kbs_metrics_inc_label(KML_PLUGIN_ERRORS, b->name);
	json_decref(rest);
	free(req);
	free(resp);
	return rc;
}

static int ext_validate_auth(void *st, const struct kbs_plugin_req *q, struct err *err)
{
	return ask(st, "ValidateAuth", q, err);
}

static int ext_needs_encryption(void *st, const struct kbs_plugin_req *q, struct err *err)
{
	return ask(st, "NeedsEncryption", q, err);
}

static int ext_handle(void *st, const struct kbs_plugin_req *q, uint8_t **out, size_t *len,
                      struct err *err)
{
	struct kbs_plugin_req fwd;
	json_t *rest = NULL;
	uint8_t *req = NULL, *resp = NULL;
	size_t rl = 0, respl = 0;
	int rc = -1;
	*out = NULL;
	*len = 0;
	struct ext_backend *b = route(st, q, &fwd, &rest, err);
	if (!b || pack(&fwd, &req, &rl, err) || call(b, "Handle", req, rl, &resp, &respl, err))
		goto out;
	Kbs__Plugin__V1__PluginResponse *r =
	    kbs__plugin__v1__plugin_response__unpack(NULL, respl, resp);
	if (!r) {
		err_set(err, "external backend %s sent an unparsable Handle answer", b->name);
		goto out;
	}
	if (r->status_code != 0 && (r->status_code < 200 || r->status_code > 299)) {
		err_set(err, "external backend %s answered status %d", b->name, r->status_code);
	} else if ((*out = malloc(r->body.len ? r->body.len : 1)) == NULL) {
		err_set(err, "out of memory");
	} else {
		if (r->body.len)
			memcpy(*out, r->body.data, r->body.len);
		*len = r->body.len;
		rc = 0;
	}
	kbs__plugin__v1__plugin_response__free_unpacked(r, NULL);
out:
	if (rc < 0 && b)
		kbs_metrics_inc_label(KML_PLUGIN_ERRORS, b->name);
	json_decref(rest);
	free(req);
	free(resp);
	return rc;
}

const struct kbs_plugin kbs_plugin_external = {
    .name = "external",
    .open = ext_open,
    .free = ext_free,
    .validate_auth = ext_validate_auth,
    .handle = ext_handle,
    .needs_encryption = ext_needs_encryption,
};
