/*
 * config: the kbs configuration file (kbs-protocol.md §8) turned into `struct kbs_config`,
 * with every refusal Trustee makes at start-up (missing [admin], unknown admin keys or modes,
 * unanchored ACL regexes, no token trust material, TLS version range) and a sentence that
 * names the key. Admin public keys and JWK sets are read here, once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "config.h"
#include "cpus.h"
#include "kbs.h"
#include "toml.h"

static void strv_free(struct kbs_strv *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->v[i]);
	free(v->v);
	v->v = NULL;
	v->n = 0;
}

/* Optional array of strings at `key` in `obj`. */
static int get_strv(const json_t *obj, const char *sect, const char *key, struct kbs_strv *out,
                    struct err *err)
{
	json_t *a = obj ? json_object_get(obj, key) : NULL;
	if (!a)
		return 0;
	if (!json_is_array(a))
		return err_set(err, "[%s] %s: expected an array of strings", sect, key);
	out->v = calloc(json_array_size(a) + 1, sizeof(char *));
	if (!out->v)
		return err_set(err, "out of memory");
	for (size_t i = 0; i < json_array_size(a); i++) {
		json_t *e = json_array_get(a, i);
		if (!json_is_string(e))
			return err_set(err, "[%s] %s: expected an array of strings", sect, key);
		out->v[out->n++] = strdup(json_string_value(e));
	}
	return 0;
}

static int get_str(const json_t *obj, const char *sect, const char *key, char **out,
                   struct err *err)
{
	json_t *v = obj ? json_object_get(obj, key) : NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return err_set(err, "[%s] %s: expected a string", sect, key);
	*out = strdup(json_string_value(v));
	return 0;
}

static int get_int(const json_t *obj, const char *sect, const char *key, long long def,
                   long long *out, struct err *err)
{
	json_t *v = obj ? json_object_get(obj, key) : NULL;
	*out = def;
	if (!v)
		return 0;
	if (!json_is_integer(v))
		return err_set(err, "[%s] %s: expected an integer", sect, key);
	*out = json_integer_value(v);
	return 0;
}

static int get_bool(const json_t *obj, const char *sect, const char *key, bool def, bool *out,
                    struct err *err)
{
	json_t *v = obj ? json_object_get(obj, key) : NULL;
	*out = def;
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return err_set(err, "[%s] %s: expected true or false", sect, key);
	*out = json_is_true(v);
	return 0;
}

/* "file:///x" -> "/x"; a bare path stays; anything else is NULL. */
static const char *local_path(const char *uri)
{
	if (strncmp(uri, "file://", 7) == 0)
		return uri + 7;
	if (strstr(uri, "://"))
		return NULL;
	return uri;
}

bool kbs_acl_pattern_anchored(const char *p)
{
	size_t n = strlen(p);
	return strncmp(p, "^/kbs", 5) == 0 && n >= 6 && p[n - 1] == '$';
}

static int parse_http(const json_t *h, struct kbs_config *c, struct err *err)
{
	if (!json_is_object(h))
		return err_set(err, "the [http_server] section is required");
	if (get_strv(h, "http_server", "sockets", &c->sockets, err) ||
	    get_bool(h, "http_server", "insecure_http", false, &c->insecure_http, err) ||
	    get_str(h, "http_server", "private_key", &c->private_key, err) ||
	    get_str(h, "http_server", "certificate", &c->certificate, err) ||
	    get_int(h, "http_server", "payload_request_size", 2, &c->payload_request_size, err) ||
	    get_int(h, "http_server", "worker_count", 0, &c->worker_count, err) ||
	    get_int(h, "http_server", "worker_threads", 0, &c->worker_threads, err) ||
	    get_bool(h, "http_server", "loop_round_trips", true, &c->loop_round_trips, err) ||
	    get_str(h, "http_server", "tls_profile", &c->tls_profile, err) ||
	    get_str(h, "http_server", "tls_min_version", &c->tls_min_version, err) ||
	    get_str(h, "http_server", "tls_max_version", &c->tls_max_version, err) ||
	    get_str(h, "http_server", "tls_ciphers", &c->tls_ciphers, err) ||
	    get_str(h, "http_server", "tls_groups", &c->tls_groups, err) ||
	    get_int(h, "http_server", "attestation_concurrency_limit", 1024,
	            &c->attestation_concurrency_limit, err) ||
	    get_int(h, "http_server", "attestation_concurrency_limit_per_ip", 0,
	            &c->attestation_concurrency_limit_per_ip, err) ||
	    get_int(h, "http_server", "max_connections", 0, &c->max_connections, err) ||
	    get_int(h, "http_server", "max_connections_per_ip", 256, &c->max_connections_per_ip,
	            err) ||
	    get_int(h, "http_server", "request_head_timeout", 10, &c->request_head_timeout, err) ||
	    get_int(h, "http_server", "request_body_timeout", 30, &c->request_body_timeout, err) ||
	    get_int(h, "http_server", "min_request_body_rate", 1024, &c->min_request_body_rate,
	            err) ||
	    get_int(h, "http_server", "keep_alive_timeout", 30, &c->keep_alive_timeout, err) ||
	    get_strv(h, "http_server", "trusted_proxies", &c->trusted_proxies, err))
		return -1;
	if (c->max_connections < 0 || c->max_connections_per_ip < 0 || c->min_request_body_rate < 0)
		return err_set(err, "[http_server] max_connections, max_connections_per_ip and "
		                    "min_request_body_rate must be 0 (derived or none) or more");
	if (c->request_head_timeout <= 0 || c->request_head_timeout > 3600 ||
	    c->request_body_timeout <= 0 || c->request_body_timeout > 3600 ||
	    c->keep_alive_timeout <= 0 || c->keep_alive_timeout > 3600)
		return err_set(err, "[http_server] request_head_timeout, request_body_timeout and "
		                    "keep_alive_timeout must be 1..3600 (seconds)");
	char *hdr = NULL;
	if (get_str(h, "http_server", "client_address_header", &hdr, err))
		return -1;
	if (hdr && strcasecmp(hdr, "X-Forwarded-For") && strcasecmp(hdr, "Forwarded")) {
		err_set(err,
		        "[http_server] client_address_header must be \"X-Forwarded-For\" or "
		        "\"Forwarded\", not \"%.64s\"",
		        hdr);
		free(hdr);
		return -1;
	}
	c->client_address_forwarded = hdr && strcasecmp(hdr, "Forwarded") == 0;
	free(hdr);
	struct kbs_cidrs *cidrs = NULL;
	if (kbs_cidrs_parse(&c->trusted_proxies, &cidrs, err) != 0)
		return -1;
	kbs_cidrs_free(cidrs);
	if (c->attestation_concurrency_limit < 0 || c->attestation_concurrency_limit_per_ip < 0)
		return err_set(err,
		               "[http_server] attestation_concurrency_limit and "
		               "attestation_concurrency_limit_per_ip must be 0 (no limit) or more");
	if (c->sockets.n == 0) {
		c->sockets.v = calloc(2, sizeof(char *));
		c->sockets.v[0] = strdup("127.0.0.1:8080");
		c->sockets.n = 1;
	}
	if (c->payload_request_size <= 0 || c->payload_request_size > 1024)
		return err_set(err, "[http_server] payload_request_size must be 1..1024 (MiB)");
	if (c->worker_threads < 0 || c->worker_threads > 1024)
		return err_set(err,
		               "[http_server] worker_threads must be 0 (from the CPUs) to 1024");
	if (c->worker_count <= 0) {
		c->worker_count = cpus_usable();
	}
	const char *prof = c->tls_profile;
	if (prof && strcmp(prof, "old") && strcmp(prof, "intermediate") && strcmp(prof, "modern") &&
	    strcmp(prof, "custom"))
		return err_set(err,
		               "[http_server] tls_profile must be old, intermediate, modern or "
		               "custom, not \"%s\"",
		               prof);
	const char *tmin = c->tls_min_version;
	const char *tmax = c->tls_max_version;
	for (int i = 0; i < 2; i++) {
		const char *v = i ? tmax : tmin;
		if (v && strcmp(v, "1.2") && strcmp(v, "1.3"))
			return err_set(err, "[http_server] %s must be \"1.2\" or \"1.3\"",
			               i ? "tls_max_version" : "tls_min_version");
	}
	if (tmin && tmax && strcmp(tmin, tmax) > 0)
		return err_set(err, "[http_server] tls_min_version %s exceeds tls_max_version %s",
		               tmin, tmax);
	return 0;
}

static int load_idp(const json_t *o, struct kbs_idp *p, size_t idx, struct err *err)
{
	if (!json_is_object(o))
		return err_set(err, "[admin] identity_providers[%zu] must be a table", idx);
	if (get_str(o, "admin", "issuer", &p->issuer, err) ||
	    get_str(o, "admin", "audience", &p->audience, err) ||
	    get_str(o, "admin", "public_key_uri", &p->public_key_uri, err) ||
	    get_str(o, "admin", "jwk_set_uri", &p->jwk_set_uri, err))
		return -1;
	if (!p->public_key_uri && !p->jwk_set_uri)
		return err_set(err,
		               "[admin] identity_providers[%zu] needs public_key_uri or "
		               "jwk_set_uri",
		               idx);
	return 0;
}

/* A PEM public key (SPKI) or the key of a PEM certificate. */
static EVP_PKEY *read_pubkey(const char *path, struct err *err)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		err_set(err, "cannot open %s", path);
		return NULL;
	}
	EVP_PKEY *k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	if (!k) {
		rewind(f);
		X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
		if (x) {
			k = X509_get_pubkey(x);
			X509_free(x);
		}
	}
	fclose(f);
	if (!k)
		err_set(err, "%s holds no PEM public key or certificate", path);
	return k;
}

/* Reads the provider's key material (at start-up, not at parse time). */
static int load_idp_keys(struct kbs_idp *p, size_t idx, struct err *err)
{
	if (p->public_key_uri) {
		const char *path = local_path(p->public_key_uri);
		if (!path)
			return err_set(err,
			               "[admin] identity_providers[%zu] public_key_uri \"%s\": "
			               "only file:// and local paths are supported",
			               idx, p->public_key_uri);
		p->key = read_pubkey(path, err);
		if (!p->key)
			return err_prefix(err, "[admin] identity_providers[%zu] public_key_uri",
			                  idx);
	}
	if (p->jwk_set_uri) {
		const char *path = local_path(p->jwk_set_uri);
		if (!path)
			return err_set(err,
			               "[admin] identity_providers[%zu] jwk_set_uri \"%s\": "
			               "only file:// and local paths are supported",
			               idx, p->jwk_set_uri);
		json_error_t je;
		p->jwks = json_load_file(path, 0, &je);
		if (!p->jwks || !json_is_array(json_object_get(p->jwks, "keys")))
			return err_set(err, "[admin] jwk_set_uri %s: not a JWK set (%s)", path,
			               p->jwks ? "no keys array" : je.text);
	}
	return 0;
}

static int parse_admin(const json_t *a, struct kbs_config *c, struct err *err)
{
	if (!json_is_object(a))
		return err_set(err, "the [admin] section is required (set authorization_mode)");
	for (void *it = json_object_iter((json_t *)a); it;
	     it = json_object_iter_next((json_t *)a, it)) {
		const char *k = json_object_iter_key(it);
		if (strcmp(k, "authorization_mode") && strcmp(k, "authentication") &&
		    strcmp(k, "authorization"))
			return err_set(err,
			               "[admin] unknown key `%s` (expected authorization_mode, "
			               "authentication, authorization)",
			               k);
	}
	const char *mode = json_string_value(json_object_get(a, "authorization_mode"));
	if (!mode)
		return err_set(err, "[admin] missing authorization_mode (DenyAll, InsecureAllowAll "
		                    "or AuthenticatedAuthorization)");
	if (strcmp(mode, "DenyAll") == 0) {
		c->admin_mode = KBS_ADMIN_DENY_ALL;
		return 0;
	}
	if (strcmp(mode, "InsecureAllowAll") == 0) {
		c->admin_mode = KBS_ADMIN_ALLOW_ALL;
		return 0;
	}
	if (strcmp(mode, "AuthenticatedAuthorization") != 0)
		return err_set(err,
		               "[admin] unknown authorization_mode \"%s\" (expected DenyAll, "
		               "InsecureAllowAll or AuthenticatedAuthorization)",
		               mode);
	c->admin_mode = KBS_ADMIN_AUTHENTICATED;
	json_t *idps =
	    json_object_get(json_object_get(json_object_get(a, "authentication"), "bearer_jwt"),
	                    "identity_providers");
	if (!json_is_array(idps) || json_array_size(idps) == 0)
		return err_set(err, "[admin] AuthenticatedAuthorization needs at least one "
		                    "[[admin.authentication.bearer_jwt.identity_providers]]");
	c->n_idps = json_array_size(idps);
	c->idps = calloc(c->n_idps, sizeof(*c->idps));
	if (!c->idps)
		return err_set(err, "out of memory");
	for (size_t i = 0; i < c->n_idps; i++)
		if (load_idp(json_array_get(idps, i), &c->idps[i], i, err))
			return -1;
	json_t *acls = json_object_get(
	    json_object_get(json_object_get(a, "authorization"), "regex_acl"), "acls");
	if (acls && !json_is_array(acls))
		return err_set(err, "[admin] authorization.regex_acl.acls must be an array");
	size_t n = json_array_size(acls);
	c->acls = calloc(n ? n : 1, sizeof(*c->acls));
	if (!c->acls)
		return err_set(err, "out of memory");
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(acls, i);
		const char *role = json_string_value(json_object_get(e, "role"));
		const char *pat = json_string_value(json_object_get(e, "allowed_endpoints"));
		if (!role || !pat)
			return err_set(err,
			               "[admin] acls[%zu] needs string role and "
			               "allowed_endpoints",
			               i);
		if (!kbs_acl_pattern_anchored(pat))
			return err_set(err,
			               "[admin] acls[%zu]: Admin Role regex must be anchored "
			               "(start with ^/kbs and end with $): %s",
			               i, pat);
		struct kbs_acl *acl = &c->acls[i];
		if (regcomp(&acl->re, pat, REG_EXTENDED | REG_NOSUB) != 0)
			return err_set(err, "[admin] acls[%zu]: invalid regex %s", i, pat);
		acl->role = strdup(role);
		acl->pattern = strdup(pat);
		c->n_acls++;
		json_t *ms = json_object_get(e, "allowed_methods");
		if (ms && (!json_is_array(ms) || json_array_size(ms) == 0))
			return err_set(
			    err,
			    "[admin] acls[%zu]: allowed_methods must be a non-empty array "
			    "of GET, POST, PUT, DELETE",
			    i);
		for (size_t j = 0; j < json_array_size(ms); j++) {
			const char *m = json_string_value(json_array_get(ms, j));
			unsigned bit = m ? kbs_acl_method(m) : 0;
			if (!bit)
				return err_set(
				    err,
				    "[admin] acls[%zu]: allowed_methods: \"%s\" is not one of "
				    "GET, POST, PUT, DELETE",
				    i, m ? m : "(not a string)");
			acl->methods |= bit;
		}
	}
	return 0;
}

static int parse_token(const json_t *t, struct kbs_config *c, struct err *err)
{
	if (t && !json_is_object(t))
		return err_set(err, "[attestation_token] must be a table");
	if (get_strv(t, "attestation_token", "trusted_certs_paths", &c->trusted_certs_paths, err) ||
	    get_strv(t, "attestation_token", "trusted_jwk_sets", &c->trusted_jwk_sets, err) ||
	    get_strv(t, "attestation_token", "extra_teekey_paths", &c->extra_teekey_paths, err) ||
	    get_strv(t, "attestation_token", "trusted_signer_ekus", &c->trusted_signer_ekus, err) ||
	    get_strv(t, "attestation_token", "trusted_signer_subjects", &c->trusted_signer_subjects,
	             err) ||
	    get_bool(t, "attestation_token", "insecure_header_jwk", false, &c->insecure_header_jwk,
	             err))
		return -1;
	for (size_t i = 0; i < c->extra_teekey_paths.n; i++)
		if (c->extra_teekey_paths.v[i][0] != '/')
			return err_set(err,
			               "[attestation_token] extra_teekey_paths: \"%s\" is not a "
			               "JSON pointer (must start with /)",
			               c->extra_teekey_paths.v[i]);
	return 0;
}

/* Ours, beside max_sessions: the session table's bytes, the token one session keeps, and the
 * switch for the test TEEs (kbs/session.c says why). */
static int parse_session_budget(const json_t *a, struct kbs_config *c, struct err *err)
{
	if (get_int(a, "attestation_service", "max_sessions_bytes", 256LL << 20,
	            &c->max_sessions_bytes, err) ||
	    get_int(a, "attestation_service", "max_session_token_size", 256 << 10,
	            &c->max_session_token_size, err) ||
	    get_bool(a, "attestation_service", "allow_sample_tee", true, &c->allow_sample_tee, err))
		return -1;
	if (c->max_sessions_bytes < (64 << 10) || c->max_sessions_bytes > (1LL << 40))
		return err_set(err, "[attestation_service] max_sessions_bytes must be "
		                    "65536..1099511627776 (bytes)");
	if (c->max_session_token_size < 1024 || c->max_session_token_size > c->max_sessions_bytes)
		return err_set(err, "[attestation_service] max_session_token_size must be 1024 "
		                    "bytes or more and at most max_sessions_bytes");
	return 0;
}

static int parse_as(const json_t *a, struct kbs_config *c, struct err *err)
{
	if (!a) {
		c->as_type = KBS_AS_NONE; /* resource-only (passport) KBS */
		return 0;
	}
	if (!json_is_object(a))
		return err_set(err, "[attestation_service] must be a table");
	const char *type = json_string_value(json_object_get(a, "type"));
	if (!type || !strcmp(type, "coco_as_builtin") || !strcmp(type, "CoCoASBuiltIn"))
		c->as_type = KBS_AS_BUILTIN;
	else if (!strcmp(type, "intel_ta") || !strcmp(type, "IntelTA"))
		c->as_type = KBS_AS_INTEL_TA;
	else if (!strcmp(type, "coco_as_grpc") || !strcmp(type, "CoCoASGrpc"))
		c->as_type = KBS_AS_GRPC;
	else
		return err_set(err, "[attestation_service] unknown type \"%s\"", type);
	if (get_str(a, "attestation_service", "as_addr", &c->as_addr, err) ||
	    get_str(a, "attestation_service", "as_ca_cert", &c->as_ca_cert, err) ||
	    get_str(a, "attestation_service", "as_client_cert", &c->as_client_cert, err) ||
	    get_str(a, "attestation_service", "as_client_key", &c->as_client_key, err) ||
	    get_int(a, "attestation_service", "pool_size", 100, &c->as_pool_size, err) ||
	    get_int(a, "attestation_service", "timeout", 5, &c->session_timeout_min, err) ||
	    get_int(a, "attestation_service", "as_timeout", 60, &c->as_timeout_s, err) ||
	    get_int(a, "attestation_service", "max_sessions", 100000, &c->max_sessions, err) ||
	    get_int(a, "attestation_service", "max_extra_params_size", 65536,
	            &c->max_extra_params_size, err))
		return -1;
	if (c->max_extra_params_size <= 0 || c->max_extra_params_size > (64 << 20))
		return err_set(err, "[attestation_service] max_extra_params_size must be "
		                    "1..67108864 (bytes)");
	if (c->as_timeout_s <= 0 || c->as_timeout_s > 3600)
		return err_set(err, "[attestation_service] as_timeout must be 1..3600 (seconds)");
	if (c->max_sessions <= 0 || c->max_sessions > 100000000)
		return err_set(err, "[attestation_service] max_sessions must be 1..100000000");
	if (parse_session_budget(a, c, err))
		return -1;
	if (!c->as_addr)
		c->as_addr = strdup("http://127.0.0.1:50004");
	if ((c->as_client_cert == NULL) != (c->as_client_key == NULL))
		return err_set(err, "[attestation_service] as_client_cert and as_client_key go "
		                    "together: set both for mutual TLS, or neither");
	if ((c->as_ca_cert || c->as_client_cert) && strncmp(c->as_addr, "https://", 8) != 0)
		return err_set(err,
		               "[attestation_service] as_addr %s is plaintext but TLS files are "
		               "set: write https:// to reach the AS over TLS",
		               c->as_addr);
	if (c->as_pool_size <= 0 || c->as_pool_size > 4096)
		return err_set(err, "[attestation_service] pool_size must be 1..4096");
	if (c->session_timeout_min <= 0)
		return err_set(err, "[attestation_service] timeout must be a positive number of "
		                    "minutes");
	return 0;
}

static int parse_plugins(const json_t *p, struct kbs_config *c, struct err *err)
{
	if (!p)
		return 0;
	if (!json_is_array(p))
		return err_set(err, "[[plugins]] must be an array of tables");
	for (size_t i = 0; i < json_array_size(p); i++) {
		json_t *e = json_array_get(p, i);
		const char *name = json_string_value(json_object_get(e, "name"));
		if (!name)
			return err_set(err, "[[plugins]] entry %zu has no name", i);
		if (!strcmp(name, "resource")) {
			const char *be =
			    json_string_value(json_object_get(e, "storage_backend_type"));
			if (!be)
				be = "kvstorage";
			int vault = !strcmp(be, "Vault") || !strcmp(be, "vault");
			if (!vault && strcmp(be, "kvstorage") && strcmp(be, "KvStorage") &&
			    !c->unsupported_plugin) {
				c->unsupported_plugin = malloc(strlen(be) + 32);
				if (c->unsupported_plugin)
					sprintf(c->unsupported_plugin, "resource with %s backend",
					        be);
			}
			c->plugin_resource = true;
			c->resource_plugin_cfg = e;
			free(c->resource_backend);
			c->resource_backend = strdup(vault ? "vault" : "kvstorage");
		} else if (!strcmp(name, "sample")) {
			const char *item = json_string_value(json_object_get(e, "item"));
			if (!item)
				return err_set(err, "[[plugins]] sample: missing string `item`");
			c->plugin_sample = true;
			free(c->sample_item);
			c->sample_item = strdup(item);
		} else if (kbs_plugin_find(name) != NULL) {
			/* a tabled plugin: its own open checks its table at start-up */
		} else if (!c->unsupported_plugin) {
			c->unsupported_plugin = strdup(name);
		}
	}
	return 0;
}

int kbs_config_from_json(json_t *root, struct kbs_config *c, struct err *err)
{
	memset(c, 0, sizeof(*c));
	c->session_timeout_min = 5;
	c->as_timeout_s = 60;
	c->max_sessions = 100000;
	c->max_extra_params_size = 65536;
	c->max_sessions_bytes = 256LL << 20;
	c->max_session_token_size = 256 << 10;
	c->allow_sample_tee = true;
	if (!json_is_object(root))
		return err_set(err, "the configuration is not a table");
	c->root = json_incref(root);
	if (parse_http(json_object_get(root, "http_server"), c, err) ||
	    parse_admin(json_object_get(root, "admin"), c, err) ||
	    parse_token(json_object_get(root, "attestation_token"), c, err) ||
	    parse_as(json_object_get(root, "attestation_service"), c, err) ||
	    parse_plugins(json_object_get(root, "plugins"), c, err))
		goto fail;
	if (rego_limits_from_config(json_object_get(root, "policy_engine"), "[policy_engine]",
	                            &c->policy_limits, err) < 0)
		goto fail;
	c->storage_backend = json_object_get(root, "storage_backend");
	if (c->storage_backend && !json_is_object(c->storage_backend)) {
		err_set(err, "[storage_backend] must be a table");
		goto fail;
	}
	if (get_str(root, "top level", "session_storage_type", &c->session_storage_type, err))
		goto fail;
	/* As Trustee: sessions follow [storage_backend] unless session_storage_type says
	 * otherwise, so replicas sharing a store share sessions; "Memory" keeps them in process. */
	const char *st = json_string_value(json_object_get(c->storage_backend, "storage_type"));
	if (c->session_storage_type == NULL && st != NULL &&
	    (c->session_storage_type = strdup(st)) == NULL) {
		err_set(err, "out of memory");
		goto fail;
	}
	return 0;
fail:
	kbs_config_free(c);
	return -1;
}

int kbs_config_check_startup(struct kbs_config *c, struct err *err)
{
	if (!c->insecure_http) {
		if (!c->private_key || !c->certificate)
			return err_set(err, "[http_server] insecure_http is false, so HTTPS needs "
			                    "both private_key and certificate");
	}
	if (c->trusted_certs_paths.n == 0 && c->trusted_jwk_sets.n == 0 && !c->insecure_header_jwk)
		return err_set(err,
		               "[attestation_token] no trust material: set trusted_certs_paths "
		               "or trusted_jwk_sets (or insecure_header_jwk = true for tests)");
	if (c->as_type == KBS_AS_INTEL_TA) {
		/* Intel Trust Authority: the keys its backend cannot run without */
		static const char *const need[] = {"base_url", "api_key", "certs_file"};
		const json_t *a = json_object_get(c->root, "attestation_service");
		for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
			const char *v = json_string_value(json_object_get(a, need[i]));
			if (!v || !*v)
				return err_set(
				    err, "[attestation_service] type intel_ta needs a string `%s`",
				    need[i]);
		}
	}
	if (c->unsupported_plugin)
		return err_set(err,
		               "[[plugins]] \"%s\" is not available in this build (resource "
		               "with kvstorage or Vault, sample, external, pkcs11, nebula-ca)",
		               c->unsupported_plugin);
	for (size_t i = 0; i < c->n_idps; i++)
		if (load_idp_keys(&c->idps[i], i, err))
			return -1;
	return 0;
}

int kbs_config_load(const char *path, struct kbs_config *cfg, struct err *err)
{
	json_t *root = config_load(path, err);
	if (!root)
		return -1;
	int rc = kbs_config_from_json(root, cfg, err);
	json_decref(root);
	if (rc)
		err_prefix(err, "%s", path);
	return rc;
}

void kbs_config_free(struct kbs_config *c)
{
	strv_free(&c->sockets);
	strv_free(&c->trusted_proxies);
	strv_free(&c->trusted_signer_ekus);
	strv_free(&c->trusted_signer_subjects);
	free(c->private_key);
	free(c->certificate);
	free(c->tls_profile);
	free(c->tls_min_version);
	free(c->tls_max_version);
	free(c->tls_ciphers);
	free(c->tls_groups);
	for (size_t i = 0; c->idps && i < c->n_idps; i++) {
		free(c->idps[i].issuer);
		free(c->idps[i].audience);
		free(c->idps[i].public_key_uri);
		free(c->idps[i].jwk_set_uri);
		EVP_PKEY_free(c->idps[i].key);
		json_decref(c->idps[i].jwks);
	}
	free(c->idps);
	for (size_t i = 0; i < c->n_acls; i++) {
		free(c->acls[i].role);
		free(c->acls[i].pattern);
		regfree(&c->acls[i].re);
	}
	free(c->acls);
	strv_free(&c->trusted_certs_paths);
	strv_free(&c->trusted_jwk_sets);
	strv_free(&c->extra_teekey_paths);
	free(c->as_addr);
	free(c->as_ca_cert);
	free(c->as_client_cert);
	free(c->as_client_key);
	free(c->session_storage_type);
	free(c->resource_backend);
	free(c->sample_item);
	free(c->unsupported_plugin);
	json_decref(c->root);
	memset(c, 0, sizeof(*c));
}
