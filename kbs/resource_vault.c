/*
 * resource_vault: the `resource` plugin's HashiCorp Vault / OpenBao KV version 1 backend
 * (kbs-protocol.md §7.2), over the one HTTP client (common/fetch.c).
 *
 *   [[plugins]]
 *   name = "resource"
 *   storage_backend_type = "Vault"
 *   vault_url = "https://vault:8200"   # required
 *   token = "..."                      # required, sent as X-Vault-Token
 *   mount_path = "secret"              # default
 *   verify_ssl = false                 # default, as Trustee; true checks the server
 *   ca_certs = ["/etc/vault/ca.pem"]   # trust for verify_ssl = true (else system roots)
 *
 * A resource repo/type/tag is the secret {vault_url}/v1/{mount_path}/repo/type/tag whose key
 * `data` holds the bytes: written as a JSON array of byte values, read back from such an
 * array or from a string (taken as its UTF-8 bytes, for secrets written by other tools).
 * Vault's 404 is "not found"; a secret without `data` is an error that says so. The token
 * is never logged and never appears in an error sentence.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetch.h"
#include "kbs.h"
#include "log.h"

#define VAULT_TIMEOUT_MS 10000
#define MAX_SECRET_ANSWER (8u << 20)

struct vault {
	char *base;   /* vault_url, no trailing slash */
	char *mount;  /* mount_path, no leading or trailing slash */
	char *header; /* "X-Vault-Token: <token>" */
	char *ca_pem; /* ca_certs concatenated, or NULL */
	int insecure;
};

static void vault_free(void *p)
{
	struct vault *v = p;
	if (!v)
		return;
	free(v->base);
	free(v->mount);
	if (v->header) {
		OPENSSL_cleanse(v->header, strlen(v->header));
		free(v->header);
	}
	free(v->ca_pem);
	free(v);
}

static char *read_text(const char *path, struct err *err)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		err_set(err, "cannot read %s", path);
		return NULL;
	}
	char *buf = NULL;
	size_t n = 0, cap = 0;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			char *nb = cap <= (4u << 20) ? realloc(buf, cap) : NULL;
			if (!nb) {
				free(buf);
				fclose(f);
				err_set(err, "%s is too large", path);
				return NULL;
			}
			buf = nb;
		}
		size_t k = fread(buf + n, 1, 4096, f);
		n += k;
		if (k < 4096)
			break;
	}
	fclose(f);
	buf[n] = 0;
	return buf;
}

static int mount_valid(const char *m)
{
	if (!*m || strstr(m, "..") || strstr(m, "//"))
		return 0;
	for (const char *p = m; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.' || *p == '/'))
			return 0;
	return 1;
}

static void *vault_open(const json_t *pc, struct kv *kv, struct err *err)
{
	const char *url = json_string_value(json_object_get(pc, "vault_url"));
	const char *token = json_string_value(json_object_get(pc, "token"));
	json_t *mp = json_object_get(pc, "mount_path");
	json_t *vs = json_object_get(pc, "verify_ssl");
	json_t *cas = json_object_get(pc, "ca_certs");
	if (!url || (strncmp(url, "https://", 8) && strncmp(url, "http://", 7))) {
		err_set(err,
		        "[[plugins]] resource (Vault): vault_url must be an http:// or https:// "
		        "URL");
		return NULL;
	}
	if (!token || !*token) {
		err_set(err, "[[plugins]] resource (Vault): token is required");
		return NULL;
	}
	if ((mp && !json_is_string(mp)) || (vs && !json_is_boolean(vs)) ||
	    (cas && !json_is_array(cas))) {
		err_set(err,
		        "[[plugins]] resource (Vault): mount_path must be a string, verify_ssl "
		        "true or false, ca_certs an array of paths");
		return NULL;
	}
	struct vault *v = calloc(1, sizeof(*v));
	if (!v) {
		err_set(err, "out of memory");
		return NULL;
	}
	size_t ul = strlen(url);
	while (ul > 0 && url[ul - 1] == '/')
		ul--;
	v->base = strndup(url, ul);
	const char *m = mp ? json_string_value(mp) : "secret";
	while (*m == '/')
		m++;
	size_t ml = strlen(m);
	while (ml > 0 && m[ml - 1] == '/')
		ml--;
	v->mount = strndup(m, ml);
	size_t hl = strlen(token) + 32;
	v->header = malloc(hl);
	if (!v->base || !v->mount || !v->header) {
		vault_free(v);
		err_set(err, "out of memory");
		return NULL;
	}
	snprintf(v->header, hl, "X-Vault-Token: %s", token);
	if (!mount_valid(v->mount)) {
		vault_free(v);
		err_set(err,
		        "[[plugins]] resource (Vault): mount_path \"%.64s\" is not a Vault path",
		        m);
		return NULL;
	}
	v->insecure = !json_is_true(vs);
	for (size_t i = 0; i < json_array_size(cas); i++) {
		const char *path = json_string_value(json_array_get(cas, i));
		char *pem = path ? read_text(path, err) : NULL;
		if (!pem || !strstr(pem, "-----BEGIN CERTIFICATE-----")) {
			if (pem || !path)
				err_set(err, "%s holds no PEM certificate",
				        path ? path : "(not a string)");
			free(pem);
			vault_free(v);
			err_prefix(err, "[[plugins]] resource (Vault): ca_certs");
			return NULL;
		}
		size_t have = v->ca_pem ? strlen(v->ca_pem) : 0, add = strlen(pem);
		char *n = realloc(v->ca_pem, have + add + 2);
		if (!n) {
			free(pem);
			vault_free(v);
			err_set(err, "out of memory");
			return NULL;
		}
		memcpy(n + have, pem, add);
		n[have + add] = '\n';
		n[have + add + 1] = 0;
		v->ca_pem = n;
		free(pem);
	}
	if (v->insecure && strncmp(v->base, "https://", 8) == 0)
		log_warn("kbs: Vault at %s: verify_ssl is false, so its certificate is not checked",
		         v->base);
	if (v->insecure && v->ca_pem)
		log_warn("kbs: Vault: ca_certs are ignored while verify_ssl is false");
	log_info("kbs: resources are stored in Vault KV v1 at %s/v1/%s", v->base, v->mount);
	return v;
}

/* One call to {base}/v1/{mount}/{path}: 0 with *status and *out (owned, NUL-terminated)
 * whenever Vault answered, whatever the status; -1 when it did not. */
static int call(struct vault *v, const char *method, const char *path, const char *body,
                long *status, char **out, size_t *olen, struct err *err)
{
	char url[2048];
	snprintf(url, sizeof(url), "%s/v1/%s/%s", v->base, v->mount, path);
	const char *hdrs[] = {v->header, "Content-Type: application/json", NULL};
	struct fetch_opts o = {.ca_pem = v->ca_pem,
	                       .insecure = v->insecure,
	                       .timeout_ms = VAULT_TIMEOUT_MS,
	                       .max_bytes = MAX_SECRET_ANSWER,
	                       .headers = hdrs,
	                       .user_agent = "ctrustee-kbs"};
	struct fetch_result r;
	*out = NULL;
	if (olen)
		*olen = 0;
	if (fetch_request(method, url, body, body ? strlen(body) : 0, &o, &r, err) != 0 &&
	    r.status == 0) {
		fetch_result_free(&r);
		/* the sentence names Vault's address: for the log, not for the client */
		log_warn("kbs: Vault %s %s: %s", method, path, err->msg);
		return err_set(err, "Vault did not answer (unreachable, or its TLS certificate was "
		                    "refused), try again");
	}
	/* Vault answered: the caller words the refusal from the status and body */
	err_clear(err);
	/* the body moves to the caller, who wipes it */
	*status = r.status;
	*out = r.body ? r.body : strdup("");
	if (olen)
		*olen = r.len;
	r.body = NULL;
	fetch_result_free(&r);
	if (!*out)
		return err_set(err, "out of memory");
	return 0;
}

/* "Vault answered HTTP 403: permission denied" from Vault's {"errors":[...]}. */
static int vault_error(long status, const char *body, struct err *err)
{
	json_t *j = json_loads(body ? body : "", 0, NULL);
	const char *first = json_string_value(json_array_get(json_object_get(j, "errors"), 0));
	err_set(err, "Vault answered HTTP %ld%s%.200s", status, first ? ": " : "",
	        first ? first : "");
	json_decref(j);
	return -1;
}

static void wipe_free(char *s, size_t n)
{
	if (s) {
		OPENSSL_cleanse(s, n);
		free(s);
	}
}

/* `data` of a KV v1 secret: a byte array or a string. */
static int take_bytes(json_t *d, uint8_t **val, size_t *len, struct err *err)
{
	if (json_is_string(d)) {
		size_t n = json_string_length(d);
		*val = malloc(n + 1);
		if (!*val)
			return err_set(err, "out of memory");
		memcpy(*val, json_string_value(d), n);
		(*val)[n] = 0;
		*len = n;
		OPENSSL_cleanse((char *)json_string_value(d), n);
		return 0;
	}
	if (!json_is_array(d))
		return err_set(err, "Vault secret: 'data' is neither a string nor a byte array");
	size_t n = json_array_size(d);
	*val = malloc(n + 1);
	if (!*val)
		return err_set(err, "out of memory");
	for (size_t i = 0; i < n; i++) {
		json_t *b = json_array_get(d, i);
		json_int_t x = json_is_integer(b) ? json_integer_value(b) : -1;
		if (x < 0 || x > 255) {
			OPENSSL_cleanse(*val, i);
			free(*val);
			*val = NULL;
			return err_set(err,
			               "Vault secret: 'data' holds something other than bytes");
		}
		(*val)[i] = (uint8_t)x;
		json_integer_set(b, 0);
	}
	(*val)[n] = 0;
	*len = n;
	return 0;
}

static int vault_get(void *p, const char *path, uint8_t **val, size_t *len, struct err *err)
{
	struct vault *v = p;
	long st;
	char *body = NULL;
	size_t bl = 0;
	if (call(v, "GET", path, NULL, &st, &body, &bl, err) != 0)
		return -1;
	int rc;
	if (st == 404) {
		err_set(err, "Secret not found");
		rc = 1;
	} else if (st != 200) {
		rc = vault_error(st, body, err);
	} else {
		json_error_t je;
		json_t *j = json_loadb(body, bl, 0, &je);
		json_t *data = json_object_get(j, "data");
		json_t *d = json_object_get(data, "data");
		if (!json_is_object(data))
			rc = err_set(err, "Vault answer has no data object");
		else if (!d)
			rc = err_set(err, "Vault secret: missing required 'data' key");
		else
			rc = take_bytes(d, val, len, err);
		json_decref(j);
	}
	wipe_free(body, bl);
	return rc;
}

static int vault_set(void *p, const char *path, const uint8_t *val, size_t len, struct err *err)
{
	struct vault *v = p;
	/* {"data":[b,b,...]}: at most 4 bytes per value */
	size_t cap = 16 + len * 4;
	char *body = malloc(cap);
	if (!body)
		return err_set(err, "out of memory");
	size_t n = (size_t)snprintf(body, cap, "{\"data\":[");
	for (size_t i = 0; i < len; i++)
		n += (size_t)snprintf(body + n, cap - n, i ? ",%u" : "%u", val[i]);
	n += (size_t)snprintf(body + n, cap - n, "]}");
	long st;
	char *out = NULL;
	size_t ol = 0;
	int rc = call(v, "POST", path, body, &st, &out, &ol, err);
	if (rc == 0 && st != 200 && st != 204)
		rc = vault_error(st, out, err);
	wipe_free(body, n);
	free(out);
	return rc;
}

static int vault_del(void *p, const char *path, struct err *err)
{
	struct vault *v = p;
	uint8_t *val = NULL;
	size_t len = 0;
	/* Vault deletes what is not there without complaint; the plugin reports a missing
	 * resource as kvstorage does */
	int rc = vault_get(p, path, &val, &len, err);
	if (val) {
		OPENSSL_cleanse(val, len);
		free(val);
	}
	if (rc != 0)
		return rc;
	long st;
	char *out = NULL;
	rc = call(v, "DELETE", path, NULL, &st, &out, NULL, err);
	if (rc == 0 && st != 200 && st != 204)
		rc = vault_error(st, out, err);
	free(out);
	return rc;
}

const struct kbs_resource_backend kbs_resource_vault = {
    .name = "Vault",
    .open = vault_open,
    .get = vault_get,
    .peek = NULL, /* every read asks the server */
    .set = vault_set,
    .del = vault_del,
    .free = vault_free,
};
