/*
 * jwks: the trusted JWK sets of [attestation_token] trusted_jwk_sets (kbs-protocol.md §4.2),
 * from which a token header's `kid` selects the verification key, or which vouch for a
 * header `jwk` that is one of their keys (an AS's own JWKS, as grpc-as serves it).
 *
 * Sources: `file://PATH` or a bare path (a JWKS file), and `https://` (or `http://`) URLs:
 * the URL itself is fetched as a JWKS; if that fails or holds no key,
 * `{url}/.well-known/openid-configuration` is fetched and its `jwks_uri` followed (OIDC
 * discovery), as Trustee does.
 *
 * Caching: each remote set is kept for REFRESH_S and then fetched again on the next lookup; a
 * lookup of an unknown kid refetches at once (key rotation), at most once per RETRY_S per
 * source so random kids cannot turn the KBS into a JWKS-server hammer. A failed fetch keeps
 * the keys already held (a JWKS server outage does not stop verification of known keys). A
 * fetch runs without the lock, so lookups of other threads are never held up by a slow
 * server. A file source is read again when a lookup misses and its mtime changed.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fetch.h"
#include "kbs.h"
#include "log.h"

#define REFRESH_S 300.0
#define RETRY_S 1.0
#define FETCH_TIMEOUT_MS 5000
#define MAX_JWKS_BYTES (1u << 20)

struct source {
	char *uri;
	char *path;   /* file source, else NULL */
	json_t *keys; /* array, owned; NULL until the first successful load */
	double loaded_at, tried_at;
	long long mtime;
	int fetching;
};

struct kbs_jwks {
	pthread_mutex_t mu;
	struct source *src;
	size_t n;
};

static double now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* {"keys":[...]} text -> the keys array (new reference) or NULL with err. */
static json_t *parse_set(const char *text, size_t len, const char *where, struct err *err)
{
	json_error_t je;
	json_t *set = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	json_t *keys = json_object_get(set, "keys");
	if (!json_is_array(keys)) {
		err_set(err, "%s is not a JWK set (%s)", where, set ? "no keys array" : je.text);
		json_decref(set);
		return NULL;
	}
	json_incref(keys);
	json_decref(set);
	return keys;
}

static json_t *load_file(const char *path, long long *mtime, struct err *err)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		err_set(err, "cannot read %s", path);
		return NULL;
	}
	*mtime = (long long)st.st_mtime;
	FILE *f = fopen(path, "rb");
	if (!f) {
		err_set(err, "cannot read %s", path);
		return NULL;
	}
	size_t cap = (size_t)st.st_size + 1, n;
	if (cap > MAX_JWKS_BYTES) {
		fclose(f);
		err_set(err, "%s is larger than %u bytes", path, MAX_JWKS_BYTES);
		return NULL;
	}
	char *buf = malloc(cap);
	n = buf ? fread(buf, 1, cap - 1, f) : 0;
	fclose(f);
	if (!buf) {
		err_set(err, "out of memory");
		return NULL;
	}
	json_t *keys = parse_set(buf, n, path, err);
	free(buf);
	return keys;
}

static int get_json(const char *url, json_t **out, struct err *err)
{
	static const char *const hdrs[] = {"Accept: application/json", NULL};
	struct fetch_opts o = {.timeout_ms = FETCH_TIMEOUT_MS,
	                       .max_bytes = MAX_JWKS_BYTES,
	                       .headers = hdrs,
	                       .user_agent = "ctrustee-kbs"};
	struct fetch_result r;
	if (fetch_get(url, &o, &r, err) != 0 || r.status != 200) {
		long status = r.status;
		fetch_result_free(&r);
		if (status == 0)
			return -1;
		return err_setc(err, 0, "%s answered HTTP %ld", url, status);
	}
	json_error_t je;
	*out = json_loadb(r.body ? r.body : "", r.len, JSON_REJECT_DUPLICATES, &je);
	fetch_result_free(&r);
	if (!*out)
		return err_set(err, "%s: not JSON (%s)", url, je.text);
	return 0;
}

/* The URL as a JWKS, else its OIDC discovery document's jwks_uri. */
static json_t *fetch_remote(const char *uri, struct err *err)
{
	json_t *doc = NULL, *keys = NULL;
	struct err e1 = {0};
	if (get_json(uri, &doc, &e1) == 0) {
		keys = json_object_get(doc, "keys");
		if (json_is_array(keys) && json_array_size(keys) > 0) {
			json_incref(keys);
			json_decref(doc);
			return keys;
		}
		if (!json_is_array(keys))
			err_set(&e1, "%s is not a JWK set", uri);
		else
			err_set(&e1, "%s holds no key", uri);
		keys = NULL;
	}
	json_decref(doc);
	doc = NULL;
	char disc[2048];
	size_t ul = strlen(uri);
	snprintf(disc, sizeof(disc), "%.*s/.well-known/openid-configuration",
	         (int)(ul && uri[ul - 1] == '/' ? ul - 1 : ul), uri);
	struct err e2 = {0};
	if (get_json(disc, &doc, &e2) != 0) {
		err_set(err, "%s; OIDC discovery: %s", e1.msg, e2.msg);
		return NULL;
	}
	const char *ju = json_string_value(json_object_get(doc, "jwks_uri"));
	if (!ju || (strncmp(ju, "https://", 8) != 0 && strncmp(ju, "http://", 7) != 0)) {
		err_set(err, "%s; %s has no http(s) jwks_uri", e1.msg, disc);
		json_decref(doc);
		return NULL;
	}
	json_t *set = NULL;
	if (get_json(ju, &set, &e2) != 0) {
		err_set(err, "%s (from %s)", e2.msg, disc);
		json_decref(doc);
		return NULL;
	}
	keys = json_object_get(set, "keys");
	if (!json_is_array(keys))
		err_set(err, "%s (from %s) is not a JWK set", ju, disc);
	else
		json_incref(keys);
	json_decref(set);
	json_decref(doc);
	return json_is_array(keys) ? keys : NULL;
}

/* Load source i again (lock held on entry and exit; dropped while fetching). */
static void refresh(struct kbs_jwks *j, size_t i)
{
	struct source *s = &j->src[i];
	struct err e = {0};
	json_t *keys;
	s->tried_at = now_mono();
	if (s->path) {
		long long mt = 0;
		keys = load_file(s->path, &mt, &e);
		if (keys)
			s->mtime = mt;
	} else {
		s->fetching = 1;
		char *uri = strdup(s->uri);
		pthread_mutex_unlock(&j->mu);
		keys = uri ? fetch_remote(uri, &e) : NULL;
		free(uri);
		pthread_mutex_lock(&j->mu);
		s = &j->src[i];
		s->fetching = 0;
	}
	if (!keys) {
		log_warn("kbs: trusted_jwk_sets %s: %s (keeping %zu cached keys)", s->uri, e.msg,
		         json_array_size(s->keys));
		return;
	}
	json_decref(s->keys);
	s->keys = keys;
	s->loaded_at = now_mono();
	log_info("kbs: trusted_jwk_sets %s: %zu keys loaded", s->uri, json_array_size(keys));
}

/* A lookup: by kid, or by the public key itself (kbs_jwks_find_key). */
struct match {
	const char *kid;
	const json_t *jwk;
};

static int same_member(const json_t *a, const json_t *b, const char *name)
{
	const char *x = json_string_value(json_object_get(a, name));
	const char *y = json_string_value(json_object_get(b, name));
	return x && y && strcmp(x, y) == 0;
}

/* Same public key: kty and every public parameter of that key type equal. */
static int same_public_key(const json_t *a, const json_t *b)
{
	const char *kty = json_string_value(json_object_get(a, "kty"));
	if (!kty || !same_member(a, b, "kty"))
		return 0;
	if (strcmp(kty, "EC") == 0)
		return same_member(a, b, "crv") && same_member(a, b, "x") && same_member(a, b, "y");
	if (strcmp(kty, "RSA") == 0)
		return same_member(a, b, "n") && same_member(a, b, "e");
	if (strcmp(kty, "OKP") == 0)
		return same_member(a, b, "crv") && same_member(a, b, "x");
	return 0;
}

static json_t *find_in(const struct source *s, const struct match *m)
{
	for (size_t i = 0; i < json_array_size(s->keys); i++) {
		json_t *k = json_array_get(s->keys, i);
		if (m->jwk) {
			if (same_public_key(k, m->jwk))
				return k;
			continue;
		}
		const char *kk = json_string_value(json_object_get(k, "kid"));
		if (kk && strcmp(kk, m->kid) == 0)
			return k;
	}
	return NULL;
}

struct kbs_jwks *kbs_jwks_new(const struct kbs_strv *uris, struct err *err)
{
	struct kbs_jwks *j = calloc(1, sizeof(*j));
	if (!j) {
		err_set(err, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&j->mu, NULL);
	j->src = calloc(uris->n ? uris->n : 1, sizeof(*j->src));
	if (!j->src) {
		kbs_jwks_free(j);
		err_set(err, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < uris->n; i++) {
		const char *u = uris->v[i];
		struct source *s = &j->src[j->n++];
		s->uri = strdup(u);
		if (strncmp(u, "https://", 8) == 0 || strncmp(u, "http://", 7) == 0)
			continue;
		const char *path = strncmp(u, "file://", 7) == 0 ? u + 7 : u;
		if (strstr(path, "://")) {
			err_set(err, "trusted_jwk_sets: %s: expected file://, https:// or a path",
			        u);
			kbs_jwks_free(j);
			return NULL;
		}
		s->path = strdup(path);
		/* a local file that is missing or malformed is a configuration error */
		s->keys = load_file(s->path, &s->mtime, err);
		if (!s->keys) {
			err_prefix(err, "trusted_jwk_sets");
			kbs_jwks_free(j);
			return NULL;
		}
		s->loaded_at = s->tried_at = now_mono();
	}
	/* remote sets: fetched now, but a server that is down does not stop the start */
	pthread_mutex_lock(&j->mu);
	for (size_t i = 0; i < j->n; i++)
		if (!j->src[i].path)
			refresh(j, i);
	pthread_mutex_unlock(&j->mu);
	return j;
}

void kbs_jwks_free(struct kbs_jwks *j)
{
	if (!j)
		return;
	for (size_t i = 0; i < j->n; i++) {
		free(j->src[i].uri);
		free(j->src[i].path);
		json_decref(j->src[i].keys);
	}
	free(j->src);
	pthread_mutex_destroy(&j->mu);
	free(j);
}

static int file_changed(const struct source *s)
{
	struct stat st;
	return stat(s->path, &st) == 0 && (long long)st.st_mtime != s->mtime;
}

static json_t *find(struct kbs_jwks *j, const struct match *m, struct err *err);

json_t *kbs_jwks_find(struct kbs_jwks *j, const char *kid, struct err *err)
{
	struct match m = {kid, NULL};
	return find(j, &m, err);
}

json_t *kbs_jwks_find_key(struct kbs_jwks *j, const json_t *jwk, struct err *err)
{
	struct match m = {NULL, jwk};
	return find(j, &m, err);
}

static json_t *find(struct kbs_jwks *j, const struct match *m, struct err *err)
{
	json_t *found = NULL;
	pthread_mutex_lock(&j->mu);
	double now = now_mono();
	/* stale remote sets first */
	for (size_t i = 0; i < j->n; i++) {
		struct source *s = &j->src[i];
		if (!s->path && !s->fetching && now - s->loaded_at > REFRESH_S &&
		    now - s->tried_at > RETRY_S)
			refresh(j, i);
	}
	for (size_t i = 0; !found && i < j->n; i++)
		found = find_in(&j->src[i], m);
	/* unknown kid: the key may have rotated in */
	for (size_t i = 0; !found && i < j->n; i++) {
		struct source *s = &j->src[i];
		if (s->fetching || now_mono() - s->tried_at < RETRY_S)
			continue;
		if (s->path && !file_changed(s))
			continue;
		refresh(j, i);
		found = find_in(&j->src[i], m);
	}
	if (found)
		json_incref(found);
	else if (m->kid)
		err_set(err, "no trusted JWK with kid \"%.64s\"", m->kid);
	else
		err_set(err, "the token's header jwk is not in trusted_jwk_sets");
	pthread_mutex_unlock(&j->mu);
	return found;
}

bool kbs_jwks_remote(const struct kbs_jwks *j)
{
	for (size_t i = 0; j && i < j->n; i++)
		if (j->src[i].path == NULL)
			return true;
	return false;
}

size_t kbs_jwks_count(struct kbs_jwks *j)
{
	size_t n = 0;
	pthread_mutex_lock(&j->mu);
	for (size_t i = 0; i < j->n; i++)
		n += json_array_size(j->src[i].keys);
	pthread_mutex_unlock(&j->mu);
	return n;
}
