/*
 * kv: the key-value store behind every daemon's state (see kv.h for the byte layout).
 *
 * One interface, four backends behind a table of function pointers. Memory and the file
 * backends serialise with a mutex (they are for single-process deployments); Redis keeps a
 * bounded pool of connections (redis.pool_size, default 8), so concurrent callers do not wait
 * on each other's round trips, and replaces a connection after any failure, so a daemon
 * recovers by itself as soon as Redis is back. Every Redis call has a timeout.
 */
#include <dirent.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "b64.h"
#include "kv/kv.h"
#include "log.h"

struct kv_backend {
	const char *name;
	int (*set)(struct kv *kv, const char *ns, const char *key, const void *val, size_t len,
	           int overwrite, unsigned ttl, struct err *err);
	int (*get)(struct kv *kv, const char *ns, const char *key, uint8_t **val, size_t *len,
	           int take, struct err *err);
	int (*del)(struct kv *kv, const char *ns, const char *key, struct err *err);
	int (*list)(struct kv *kv, const char *ns, char ***keys, size_t *n, struct err *err);
	void (*close)(struct kv *kv);
	int validates_keys;
	int locks_itself; /* 0: every call runs under kv->mu */
};

/* memory backend: one list of entries, fine for the handful of keys tests and dev use hold */
struct mem_entry {
	char *ns, *key;
	uint8_t *val;
	size_t len;
	time_t expires; /* 0 = never */
	struct mem_entry *next;
};

struct kv {
	const struct kv_backend *be;
	pthread_mutex_t mu;
	char dir[512];         /* local_fs / local_json */
	struct mem_entry *mem; /* memory */
	/* redis: pool[0..pool_idle) idle connections, pool_open <= pool_size open ones */
	redisContext **pool;
	size_t pool_size, pool_idle, pool_open;
	pthread_cond_t pool_cv;
	char host[400], user[400], pass[400];
	int port, db;
};

int kv_key_valid(const char *key)
{
	if (key == NULL || *key == '\0')
		return 0;
	for (const char *p = key; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '/' || *p == '-'))
			return 0;
	return 1;
}

static int ns_valid(const char *ns)
{
	size_t n = ns ? strlen(ns) : 0;
	if (n == 0 || ns[0] == '/' || ns[n - 1] == '/' || strstr(ns, "//") != NULL)
		return 0;
	for (const char *seg = ns; seg; seg = strchr(seg, '/') ? strchr(seg, '/') + 1 : NULL) {
		size_t l = strcspn(seg, "/");
		if ((l == 1 && seg[0] == '.') || (l == 2 && seg[0] == '.' && seg[1] == '.'))
			return 0;
	}
	return 1;
}

/* ---- memory ---- */

static struct mem_entry **mem_find(struct kv *kv, const char *ns, const char *key)
{
	struct mem_entry **pp = &kv->mem;
	for (; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->ns, ns) == 0 && strcmp((*pp)->key, key) == 0)
			break;
	return pp;
}

static void mem_free_entry(struct mem_entry *e)
{
	free(e->ns);
	free(e->key);
	if (e->val != NULL)
		OPENSSL_cleanse(e->val, e->len); /* resources and sessions are secrets */
	free(e->val);
	free(e);
}

static int mem_expired(const struct mem_entry *e)
{
	return e->expires != 0 && time(NULL) >= e->expires;
}

static int mem_set(struct kv *kv, const char *ns, const char *key, const void *val, size_t len,
                   int overwrite, unsigned ttl, struct err *err)
{
	struct mem_entry **pp = mem_find(kv, ns, key), *e = *pp;
	uint8_t *copy = malloc(len + 1);

	if (copy == NULL)
		return err_set(err, "out of memory");
	memcpy(copy, val, len);
	copy[len] = 0;
	if (e != NULL && !mem_expired(e) && !overwrite) {
		OPENSSL_cleanse(copy, len);
		free(copy);
		return 1;
	}
	if (e == NULL) {
		e = calloc(1, sizeof(*e));
		if (e == NULL || (e->ns = strdup(ns)) == NULL || (e->key = strdup(key)) == NULL) {
			if (e)
				free(e->ns);
			free(e);
			free(copy);
			return err_set(err, "out of memory");
		}
		e->next = kv->mem;
		kv->mem = e;
	} else {
		OPENSSL_cleanse(e->val, e->len);
		free(e->val);
	}
	e->val = copy;
	e->len = len;
	e->expires = ttl ? time(NULL) + ttl : 0;
	return 0;
}

static int mem_get(struct kv *kv, const char *ns, const char *key, uint8_t **val, size_t *len,
                   int take, struct err *err)
{
	struct mem_entry **pp = mem_find(kv, ns, key), *e = *pp;
	if (e == NULL)
		return 1;
	if (mem_expired(e)) {
		*pp = e->next;
		mem_free_entry(e);
		return 1;
	}
	*val = malloc(e->len + 1);
	if (*val == NULL)
		return err_set(err, "out of memory");
	memcpy(*val, e->val, e->len + 1);
	*len = e->len;
	if (take) {
		*pp = e->next;
		mem_free_entry(e);
	}
	return 0;
}

static int mem_del(struct kv *kv, const char *ns, const char *key, struct err *err)
{
	struct mem_entry **pp = mem_find(kv, ns, key), *e = *pp;
	if (e == NULL)
		return 1;
	*pp = e->next;
	int gone = mem_expired(e);
	mem_free_entry(e);
	return gone ? 1 : 0;
}

static int push_key(char ***keys, size_t *n, size_t *cap, const char *k)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		char **nk = realloc(*keys, nc * sizeof(char *));
		if (nk == NULL)
			return -1;
		*keys = nk;
		*cap = nc;
	}
	(*keys)[*n] = strdup(k);
	return (*keys)[(*n)++] == NULL ? -1 : 0;
}

static int mem_list(struct kv *kv, const char *ns, char ***keys, size_t *n, struct err *err)
{
	size_t cap = 0;
	for (struct mem_entry *e = kv->mem; e; e = e->next)
		if (strcmp(e->ns, ns) == 0 && !mem_expired(e) &&
		    push_key(keys, n, &cap, e->key) < 0)
			return err_set(err, "out of memory");
	return 0;
}

static void mem_close(struct kv *kv)
{
	while (kv->mem) {
		struct mem_entry *e = kv->mem;
		kv->mem = e->next;
		mem_free_entry(e);
	}
}

static const struct kv_backend be_memory = {"Memory", mem_set,   mem_get, mem_del,
                                            mem_list, mem_close, 0};

/* ---- local_fs: <dir>/<ns>/<key with '/' as the 4 characters \x2F> ---- */

static void fs_path(struct kv *kv, const char *ns, const char *key, char *out, size_t cap)
{
	size_t o = (size_t)snprintf(out, cap, "%s/%s/", kv->dir, ns);
	for (const char *p = key; *p && o + 5 < cap; p++) {
		if (*p == '/') {
			memcpy(out + o, "\\x2F", 4);
			o += 4;
		} else {
			out[o++] = *p;
		}
	}
	out[o < cap ? o : cap - 1] = '\0';
}

static void mkdirs(const char *path)
{
	char tmp[1024];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(tmp, 0700);
			*p = '/';
		}
	mkdir(tmp, 0700);
}

static int write_file_atomic(const char *path, const void *val, size_t len, struct err *err)
{
	char tmp[1100];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return err_set(err, "cannot write %s: %s", path, strerror(errno));
	if (write(fd, val, len) != (ssize_t)len || fsync(fd) != 0) {
		close(fd);
		unlink(tmp);
		return err_set(err, "cannot write %s: %s", path, strerror(errno));
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		unlink(tmp);
		return err_set(err, "cannot write %s: %s", path, strerror(errno));
	}
	return 0;
}

/* Frees a buffer that held stored values (resources, sessions, policies are secrets). */
static void wipe_free(void *p, size_t n)
{
	if (p != NULL) {
		OPENSSL_cleanse(p, n);
		free(p);
	}
}

/* Reads a whole file straight into one buffer with read(2): no stdio buffer keeps a second
 * copy of the value behind. */
static int read_file(const char *path, uint8_t **val, size_t *len, struct err *err)
{
	struct stat st;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*val = NULL;
	if (fd < 0)
		return errno == ENOENT ? 1
		                       : err_set(err, "cannot read %s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(err, "cannot read %s: not a regular file", path);
	}
	size_t size = (size_t)st.st_size;
	uint8_t *buf = malloc(size + 1);
	if (buf == NULL) {
		close(fd);
		return err_set(err, "cannot read %s: out of memory", path);
	}
	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : 0;
			close(fd);
			wipe_free(buf, got);
			return err_set(err, "cannot read %s: %s", path,
			               e ? strerror(e) : "it shrank while being read");
		}
		got += (size_t)n;
	}
	close(fd);
	buf[size] = 0;
	*val = buf;
	*len = size;
	return 0;
}

static int fs_set(struct kv *kv, const char *ns, const char *key, const void *val, size_t len,
                  int overwrite, unsigned ttl, struct err *err)
{
	char dir[700], path[1024];
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/%s", kv->dir, ns);
	mkdirs(dir);
	fs_path(kv, ns, key, path, sizeof(path));
	if (!overwrite && stat(path, &st) == 0)
		return 1;
	return write_file_atomic(path, val, len, err);
}

static int fs_get(struct kv *kv, const char *ns, const char *key, uint8_t **val, size_t *len,
                  int take, struct err *err)
{
	char path[1024];
	fs_path(kv, ns, key, path, sizeof(path));
	int rc = read_file(path, val, len, err);
	if (rc == 0 && take)
		unlink(path);
	return rc;
}

static int fs_del(struct kv *kv, const char *ns, const char *key, struct err *err)
{
	char path[1024];
	fs_path(kv, ns, key, path, sizeof(path));
	if (unlink(path) == 0)
		return 0;
	return errno == ENOENT ? 1 : err_set(err, "cannot delete %s: %s", path, strerror(errno));
}

static int fs_list(struct kv *kv, const char *ns, char ***keys, size_t *n, struct err *err)
{
	char cmd_dir[700];
	size_t cap = 0;
	snprintf(cmd_dir, sizeof(cmd_dir), "%s/%s", kv->dir, ns);
	DIR *d = opendir(cmd_dir);
	struct dirent *de;
	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char name[512];
		size_t o = 0;
		if (de->d_name[0] == '.' || strstr(de->d_name, ".tmp.") != NULL)
			continue;
		for (const char *p = de->d_name; *p && o + 1 < sizeof(name); p++) {
			if (strncmp(p, "\\x2F", 4) == 0) {
				name[o++] = '/';
				p += 3;
			} else {
				name[o++] = *p;
			}
		}
		name[o] = '\0';
		if (push_key(keys, n, &cap, name) < 0) {
			closedir(d);
			return err_set(err, "out of memory");
		}
	}
	closedir(d);
	return 0;
}

static void nop_close(struct kv *kv)
{
}

static const struct kv_backend be_local_fs = {"LocalFs", fs_set,    fs_get, fs_del,
                                              fs_list,   nop_close, 1};

/* ---- local_json: <dir>/<ns> = {"key": "<base64url padded>"} ---- */

/* Drops a namespace document loaded by lj_load, wiping every value (base64 of a stored
 * value) first: this reference is the only one. */
static void lj_free(json_t *j)
{
	const char *k;
	json_t *v;
	if (json_is_object(j) && j->refcount == 1)
		json_object_foreach(j, k, v)
		{
			if (json_is_string(v) && v->refcount == 1)
				OPENSSL_cleanse((char *)json_string_value(v),
				                json_string_length(v));
		}
	json_decref(j);
}

static json_t *lj_load(struct kv *kv, const char *ns, char *path, size_t cap, struct err *err)
{
	uint8_t *buf;
	size_t len;
	snprintf(path, cap, "%s/%s", kv->dir, ns);
	int rc = read_file(path, &buf, &len, err);
	if (rc == 1)
		return json_object();
	if (rc < 0)
		return NULL;
	json_t *j = json_loadb((const char *)buf, len, 0, NULL);
	wipe_free(buf, len);
	if (!json_is_object(j)) {
		lj_free(j);
		err_set(err, "%s is not a JSON object", path);
		return NULL;
	}
	return j;
}

static int lj_store(const char *path, json_t *j, struct err *err)
{
	char *text = json_dumps(j, JSON_COMPACT);
	if (text == NULL)
		return err_set(err, "out of memory");
	size_t n = strlen(text);
	int rc = write_file_atomic(path, text, n, err);
	wipe_free(text, n);
	return rc;
}

static int lj_set(struct kv *kv, const char *ns, const char *key, const void *val, size_t len,
                  int overwrite, unsigned ttl, struct err *err)
{
	char path[1024];
	json_t *j;
	mkdirs(kv->dir);
	if ((j = lj_load(kv, ns, path, sizeof(path), err)) == NULL)
		return -1;
	if (!overwrite && json_object_get(j, key) != NULL) {
		lj_free(j);
		return 1;
	}
	char *enc = b64_encode(val, len, B64_URL_PAD);
	if (enc == NULL) {
		lj_free(j);
		return err_set(err, "out of memory");
	}
	json_t *old = json_object_get(j, key);
	if (json_is_string(old) && old->refcount == 1)
		OPENSSL_cleanse((char *)json_string_value(old), json_string_length(old));
	json_object_set_new(j, key, json_string(enc));
	wipe_free(enc, strlen(enc));
	int rc = lj_store(path, j, err);
	lj_free(j);
	return rc;
}

static int lj_get(struct kv *kv, const char *ns, const char *key, uint8_t **val, size_t *len,
                  int take, struct err *err)
{
	char path[1024];
	json_t *j = lj_load(kv, ns, path, sizeof(path), err), *v;
	if (j == NULL)
		return -1;
	v = json_object_get(j, key);
	if (!json_is_string(v)) {
		lj_free(j);
		return 1;
	}
	int rc = b64_decode(json_string_value(v), json_string_length(v), B64_URL_PAD | B64_LENIENT,
	                    val, len) < 0
	             ? err_set(err, "%s: value of %s is not base64url", path, key)
	             : 0;
	if (rc == 0 && take) {
		OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
		json_object_del(j, key);
		rc = lj_store(path, j, err);
	}
	lj_free(j);
	return rc;
}

static int lj_del(struct kv *kv, const char *ns, const char *key, struct err *err)
{
	char path[1024];
	json_t *j = lj_load(kv, ns, path, sizeof(path), err);
	if (j == NULL)
		return -1;
	json_t *v = json_object_get(j, key);
	if (v == NULL) {
		lj_free(j);
		return 1;
	}
	if (json_is_string(v) && v->refcount == 1)
		OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
	json_object_del(j, key);
	int rc = lj_store(path, j, err);
	lj_free(j);
	return rc;
}

static int lj_list(struct kv *kv, const char *ns, char ***keys, size_t *n, struct err *err)
{
	char path[1024];
	size_t cap = 0;
	const char *k;
	json_t *v, *j = lj_load(kv, ns, path, sizeof(path), err);
	if (j == NULL)
		return -1;
	json_object_foreach(j, k, v)
	{
		if (push_key(keys, n, &cap, k) < 0) {
			lj_free(j);
			return err_set(err, "out of memory");
		}
	}
	lj_free(j);
	return 0;
}

static const struct kv_backend be_local_json = {"LocalJson", lj_set,    lj_get, lj_del,
                                                lj_list,     nop_close, 0};

/* ---- redis: "<ns>:<key>" ----
 *
 * A bounded pool of connections: a caller takes an idle one (or opens a new one while fewer
 * than pool_size exist, or waits up to REDIS_WAIT_S for one to come back), runs its command
 * without any lock held, and returns it. A connection that failed is closed, not returned, so
 * the next caller reconnects: after a Redis restart every stale connection costs one retry. */

#define REDIS_TIMEOUT_S 2
#define STR_(x) #x
#define STR(x) STR_(x)
#define REDIS_WAIT_S 5
#define REDIS_POOL_DEFAULT 8
#define REDIS_POOL_MAX 256

/* "redis at HOST:PORT unavailable: <cause>" from a failed context (or errno-less cause). */
static int redis_unavailable(struct kv *kv, const redisContext *c, const char *cause,
                             struct err *err)
{
	if (cause == NULL && c != NULL) {
		cause = c->errstr[0] ? c->errstr : "connection lost";
		if (c->err == REDIS_ERR_IO && (strstr(cause, "temporarily unavailable") != NULL ||
		                               strstr(cause, "timed out") != NULL))
			cause = "no answer within " STR(REDIS_TIMEOUT_S) " s";
		else if (c->err == REDIS_ERR_EOF)
			cause = "it closed the connection";
	}
	return err_setc(err, KV_ERR_UNAVAILABLE, "redis at %s:%d unavailable: %s", kv->host,
	                kv->port, cause ? cause : "out of memory");
}

static redisContext *redis_connect(struct kv *kv, struct err *err)
{
	struct timeval tv = {REDIS_TIMEOUT_S, 0};
	redisReply *r;
	redisContext *c = redisConnectWithTimeout(kv->host, kv->port, tv);

	if (c == NULL || c->err) {
		redis_unavailable(kv, c, NULL, err);
		redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	if (kv->pass[0] != '\0') {
		r = kv->user[0] ? redisCommand(c, "AUTH %s %s", kv->user, kv->pass)
		                : redisCommand(c, "AUTH %s", kv->pass);
		int bad = r == NULL || r->type == REDIS_REPLY_ERROR;
		if (r == NULL)
			redis_unavailable(kv, c, NULL, err);
		else if (bad)
			redis_unavailable(kv, c, "it refused the credentials", err);
		freeReplyObject(r);
		if (bad) {
			redisFree(c);
			return NULL;
		}
	}
	if (kv->db != 0) {
		r = redisCommand(c, "SELECT %d", kv->db);
		int bad = r == NULL || r->type == REDIS_REPLY_ERROR;
		if (bad)
			redis_unavailable(kv, c, r ? "it refused to select the database" : NULL,
			                  err);
		freeReplyObject(r);
		if (bad) {
			redisFree(c);
			return NULL;
		}
	}
	return c;
}

/* Take a connection: an idle one, a new one, or the first one returned within REDIS_WAIT_S. */
static redisContext *redis_acquire(struct kv *kv, struct err *err)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += REDIS_WAIT_S;
	pthread_mutex_lock(&kv->mu);
	while (kv->pool_idle == 0 && kv->pool_open >= kv->pool_size) {
		if (pthread_cond_timedwait(&kv->pool_cv, &kv->mu, &until) != 0 &&
		    kv->pool_idle == 0 && kv->pool_open >= kv->pool_size) {
			pthread_mutex_unlock(&kv->mu);
			err_setc(err, KV_ERR_UNAVAILABLE,
			         "redis at %s:%d unavailable: all %zu connections stayed busy for "
			         "%d s",
			         kv->host, kv->port, kv->pool_size, REDIS_WAIT_S);
			return NULL;
		}
	}
	if (kv->pool_idle > 0) {
		redisContext *c = kv->pool[--kv->pool_idle];
		pthread_mutex_unlock(&kv->mu);
		return c;
	}
	kv->pool_open++; /* a slot reserved for the connection opened below */
	pthread_mutex_unlock(&kv->mu);
	redisContext *c = redis_connect(kv, err);
	if (c == NULL) {
		pthread_mutex_lock(&kv->mu);
		kv->pool_open--;
		pthread_cond_signal(&kv->pool_cv);
		pthread_mutex_unlock(&kv->mu);
	}
	return c;
}

/* Give a connection back. A broken one (c->err set) is closed, and so is every idle one:
 * when one connection fails (Redis restarted, a proxy dropped us) the others opened before
 * it are most likely dead too, and a retry must not pick one of them. */
static void redis_release(struct kv *kv, redisContext *c)
{
	redisContext **stale = NULL;
	size_t n_stale = 0;
	pthread_mutex_lock(&kv->mu);
	if (c->err != 0) {
		stale = malloc((kv->pool_idle + 1) * sizeof(*stale));
		if (stale != NULL) {
			memcpy(stale, kv->pool, kv->pool_idle * sizeof(*stale));
			n_stale = kv->pool_idle;
			kv->pool_open -= kv->pool_idle;
			kv->pool_idle = 0;
		}
		kv->pool_open--;
		pthread_cond_broadcast(&kv->pool_cv);
	} else {
		kv->pool[kv->pool_idle++] = c;
		pthread_cond_signal(&kv->pool_cv);
		c = NULL;
	}
	pthread_mutex_unlock(&kv->mu);
	redisFree(c);
	for (size_t i = 0; i < n_stale; i++)
		redisFree(stale[i]);
	free(stale);
}

/* Run a command on `c`; on a connection error, reconnect once and retry (a pooled connection
 * may be stale after a Redis restart). *cp may be replaced; it is never NULL on return unless
 * no connection could be made. */
static redisReply *redis_cmd_on(struct kv *kv, redisContext **cp, struct err *err, int argc,
                                const char **argv, const size_t *argvlen)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		if (*cp == NULL && (*cp = redis_acquire(kv, err)) == NULL)
			return NULL;
		redisReply *r = redisCommandArgv(*cp, argc, argv, argvlen);
		if (r != NULL) {
			if (r->type == REDIS_REPLY_ERROR) {
				err_set(err, "redis at %s:%d refused %s: %s", kv->host, kv->port,
				        argv[0], r->str);
				freeReplyObject(r);
				return NULL;
			}
			return r;
		}
		redis_unavailable(kv, *cp, NULL, err);
		redis_release(kv, *cp); /* closes it: err is set */
		*cp = NULL;
	}
	return NULL;
}

/* One command on a pooled connection. */
static redisReply *redis_cmd(struct kv *kv, struct err *err, int argc, const char **argv,
                             const size_t *argvlen)
{
	redisContext *c = NULL;
	redisReply *r = redis_cmd_on(kv, &c, err, argc, argv, argvlen);
	if (c != NULL)
		redis_release(kv, c);
	return r;
}

static void redis_key(char *out, size_t cap, const char *ns, const char *key)
{
	snprintf(out, cap, "%s:%s", ns, key);
}

static int redis_set(struct kv *kv, const char *ns, const char *key, const void *val, size_t len,
                     int overwrite, unsigned ttl, struct err *err)
{
	char k[1024], ttls[16];
	const char *argv[6] = {"SET", k, val};
	size_t argvlen[6] = {3, 0, len};
	int argc = 3;

	redis_key(k, sizeof(k), ns, key);
	argvlen[1] = strlen(k);
	if (ttl) {
		snprintf(ttls, sizeof(ttls), "%u", ttl);
		argv[argc] = "EX";
		argvlen[argc++] = 2;
		argv[argc] = ttls;
		argvlen[argc++] = strlen(ttls);
	}
	if (!overwrite) {
		argv[argc] = "NX";
		argvlen[argc++] = 2;
	}
	redisReply *r = redis_cmd(kv, err, argc, argv, argvlen);
	if (r == NULL)
		return -1;
	int rc = r->type == REDIS_REPLY_NIL ? 1 : 0;
	freeReplyObject(r);
	return rc;
}

static int redis_get(struct kv *kv, const char *ns, const char *key, uint8_t **val, size_t *len,
                     int take, struct err *err)
{
	char k[1024];
	redis_key(k, sizeof(k), ns, key);
	const char *argv[2] = {take ? "GETDEL" : "GET", k};
	size_t argvlen[2] = {strlen(argv[0]), strlen(k)};
	redisReply *r = redis_cmd(kv, err, 2, argv, argvlen);
	if (r == NULL)
		return -1;
	if (r->type == REDIS_REPLY_NIL) {
		freeReplyObject(r);
		return 1;
	}
	if (r->type != REDIS_REPLY_STRING) {
		freeReplyObject(r);
		return err_set(err, "redis: %s holds a non-string value", k);
	}
	*val = malloc(r->len + 1);
	if (*val == NULL) {
		freeReplyObject(r);
		return err_set(err, "out of memory");
	}
	memcpy(*val, r->str, r->len);
	(*val)[r->len] = 0;
	*len = r->len;
	OPENSSL_cleanse(r->str, r->len); /* resources and sessions are secrets */
	freeReplyObject(r);
	return 0;
}

static int redis_del(struct kv *kv, const char *ns, const char *key, struct err *err)
{
	char k[1024];
	redis_key(k, sizeof(k), ns, key);
	const char *argv[2] = {"DEL", k};
	size_t argvlen[2] = {3, strlen(k)};
	redisReply *r = redis_cmd(kv, err, 2, argv, argvlen);
	if (r == NULL)
		return -1;
	int rc = r->type == REDIS_REPLY_INTEGER && r->integer > 0 ? 0 : 1;
	freeReplyObject(r);
	return rc;
}

static int redis_list(struct kv *kv, const char *ns, char ***keys, size_t *n, struct err *err)
{
	char pattern[600], cursor[32] = "0";
	size_t cap = 0, plen = strlen(ns) + 1;
	snprintf(pattern, sizeof(pattern), "%s:*", ns);
	redisContext *c = NULL; /* one connection for the whole walk */
	int rc = 0;
	do {
		const char *argv[6] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "500"};
		size_t argvlen[6] = {4, strlen(cursor), 5, strlen(pattern), 5, 3};
		redisReply *r = redis_cmd_on(kv, &c, err, 6, argv, argvlen);
		if (r == NULL) {
			rc = -1;
			break;
		}
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    r->element[1]->type != REDIS_REPLY_ARRAY) {
			freeReplyObject(r);
			rc = err_set(err, "redis at %s:%d sent an unexpected SCAN reply", kv->host,
			             kv->port);
			break;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		for (size_t i = 0; i < r->element[1]->elements; i++) {
			const redisReply *e = r->element[1]->element[i];
			if (e->type == REDIS_REPLY_STRING && e->len >= plen &&
			    push_key(keys, n, &cap, e->str + plen) < 0) {
				rc = err_set(err, "out of memory");
				break;
			}
		}
		freeReplyObject(r);
	} while (rc == 0 && strcmp(cursor, "0") != 0);
	if (c != NULL)
		redis_release(kv, c);
	return rc;
}

static void redis_close(struct kv *kv)
{
	for (size_t i = 0; i < kv->pool_idle; i++)
		redisFree(kv->pool[i]);
	free(kv->pool);
	kv->pool = NULL;
	kv->pool_idle = kv->pool_open = 0;
	pthread_cond_destroy(&kv->pool_cv);
}

static const struct kv_backend be_redis = {"Redis",    redis_set,   redis_get, redis_del,
                                           redis_list, redis_close, 1,         .locks_itself = 1};

/* redis://[user[:pass]@]host[:port][/db] */
static int parse_redis_url(struct kv *kv, const char *url, struct err *err)
{
	const char *p = url;
	char hostport[300];

	kv->port = 6379;
	kv->db = 0;
	if (strncmp(p, "redis://", 8) != 0)
		return err_set(err, "redis url \"%s\" must start with redis://", url);
	p += 8;
	const char *at = strrchr(p, '@');
	if (at != NULL) {
		char cred[400];
		snprintf(cred, sizeof(cred), "%.*s", (int)(at - p), p);
		char *colon = strchr(cred, ':');
		if (colon) {
			*colon = '\0';
			snprintf(kv->user, sizeof(kv->user), "%s", cred);
			snprintf(kv->pass, sizeof(kv->pass), "%s", colon + 1);
		} else {
			snprintf(kv->pass, sizeof(kv->pass), "%s", cred);
		}
		p = at + 1;
	}
	snprintf(hostport, sizeof(hostport), "%.*s", (int)strcspn(p, "/"), p);
	const char *slash = strchr(p, '/');
	if (slash && slash[1])
		kv->db = atoi(slash + 1);
	char *colon = strrchr(hostport, ':');
	if (colon && strchr(hostport, ']') < colon) {
		*colon = '\0';
		kv->port = atoi(colon + 1);
	}
	char *h = hostport;
	if (h[0] == '[') {
		h++;
		h[strcspn(h, "]")] = '\0';
	}
	snprintf(kv->host, sizeof(kv->host), "%s", h[0] ? h : "127.0.0.1");
	if (kv->port <= 0 || kv->port > 65535)
		return err_set(err, "redis url \"%s\" has an invalid port", url);
	return 0;
}

/* ---- public interface ---- */

static const struct kv_backend *backend_by_name(const char *t)
{
	if (t == NULL || strcmp(t, "Memory") == 0 || strcmp(t, "memory") == 0)
		return &be_memory;
	if (strcmp(t, "LocalFs") == 0 || strcmp(t, "local_fs") == 0)
		return &be_local_fs;
	if (strcmp(t, "LocalJson") == 0 || strcmp(t, "local_json") == 0)
		return &be_local_json;
	if (strcmp(t, "Redis") == 0 || strcmp(t, "redis") == 0)
		return &be_redis;
	return NULL;
}

struct kv *kv_open_type(const char *type, const json_t *backends, struct err *err)
{
	const struct kv_backend *be = backend_by_name(type);
	struct kv *kv;

	if (be == NULL) {
		err_set(err, "storage_type \"%s\" is not one of Memory, LocalFs, LocalJson, Redis",
		        type);
		return NULL;
	}
	kv = calloc(1, sizeof(*kv));
	if (kv == NULL)
		return NULL;
	kv->be = be;
	pthread_mutex_init(&kv->mu, NULL);
	if (be == &be_local_fs || be == &be_local_json) {
		const char *sub = be == &be_local_fs ? "local_fs" : "local_json";
		const char *key = be == &be_local_fs ? "dir_path" : "file_dir_path";
		const char *def = be == &be_local_fs
		                      ? "/opt/confidential-containers/storage/local_fs"
		                      : "/opt/confidential-containers/storage/local_json";
		json_t *o = json_object_get(backends, sub);
		if (backends != NULL && o == NULL) {
			err_set(err, "storage_backend.backends.%s is required for %s", sub,
			        be->name);
			kv_close(kv);
			return NULL;
		}
		const char *dir = json_string_value(json_object_get(o, key));
		snprintf(kv->dir, sizeof(kv->dir), "%s", dir ? dir : def);
	} else if (be == &be_redis) {
		const char *url = getenv("REDIS_URL");
		if (url == NULL || *url == '\0')
			url = json_string_value(
			    json_object_get(json_object_get(backends, "redis"), "url"));
		pthread_cond_init(&kv->pool_cv, NULL);
		json_t *ps = json_object_get(json_object_get(backends, "redis"), "pool_size");
		json_int_t size = ps ? json_integer_value(ps) : REDIS_POOL_DEFAULT;
		if (ps && (!json_is_integer(ps) || size < 1 || size > REDIS_POOL_MAX)) {
			err_set(err,
			        "storage_backend.backends.redis.pool_size must be an integer "
			        "from 1 to %d",
			        REDIS_POOL_MAX);
			kv_close(kv);
			return NULL;
		}
		kv->pool_size = (size_t)size;
		kv->pool = calloc(kv->pool_size, sizeof(*kv->pool));
		if (kv->pool == NULL ||
		    parse_redis_url(kv, url ? url : "redis://127.0.0.1:6379", err) < 0) {
			if (kv->pool == NULL)
				err_set(err, "out of memory");
			kv_close(kv);
			return NULL;
		}
		struct err cerr = {0};
		redisContext *c = redis_connect(kv, &cerr);
		if (c == NULL) { /* not fatal: each call connects again */
			log_warn("%s (will retry on use)", cerr.msg);
		} else {
			kv->pool[kv->pool_idle++] = c;
			kv->pool_open = 1;
		}
	}
	return kv;
}

struct kv *kv_open(const json_t *cfg, struct err *err)
{
	if (cfg == NULL || json_is_null(cfg))
		return kv_open_type("Memory", NULL, err);
	json_t *t = json_object_get(cfg, "storage_type");
	if (t != NULL && !json_is_string(t)) {
		err_set(err, "storage_type must be a string");
		return NULL;
	}
	return kv_open_type(t ? json_string_value(t) : "Memory", json_object_get(cfg, "backends"),
	                    err);
}

void kv_close(struct kv *kv)
{
	if (kv == NULL)
		return;
	kv->be->close(kv);
	pthread_mutex_destroy(&kv->mu);
	free(kv);
}

const char *kv_type_name(const struct kv *kv)
{
	return kv->be->name;
}

static int check(struct kv *kv, const char *ns, const char *key, int is_set, struct err *err)
{
	if (!ns_valid(ns))
		return err_set(err, "invalid storage namespace \"%s\"", ns ? ns : "");
	if (key == NULL || *key == '\0')
		return err_set(err, "empty storage key");
	if (kv->be->validates_keys && !kv_key_valid(key))
		return err_set(err, "storage key \"%s\" has characters outside [A-Za-z0-9._/-]",
		               key);
	(void)is_set;
	return 0;
}

int kv_set_ttl(struct kv *kv, const char *ns, const char *key, const void *val, size_t len,
               int overwrite, unsigned ttl_seconds, struct err *err)
{
	if (check(kv, ns, key, 1, err) < 0)
		return -1;
	if (!kv->be->locks_itself)
		pthread_mutex_lock(&kv->mu);
	int rc = kv->be->set(kv, ns, key, val, len, overwrite, ttl_seconds, err);
	if (!kv->be->locks_itself)
		pthread_mutex_unlock(&kv->mu);
	return rc;
}

int kv_set(struct kv *kv, const char *ns, const char *key, const void *val, size_t len,
           int overwrite, struct err *err)
{
	return kv_set_ttl(kv, ns, key, val, len, overwrite, 0, err);
}

static int get_common(struct kv *kv, const char *ns, const char *key, uint8_t **val, size_t *len,
                      int take, struct err *err)
{
	*val = NULL;
	*len = 0;
	if (check(kv, ns, key, 0, err) < 0)
		return -1;
	if (!kv->be->locks_itself)
		pthread_mutex_lock(&kv->mu);
	int rc = kv->be->get(kv, ns, key, val, len, take, err);
	if (!kv->be->locks_itself)
		pthread_mutex_unlock(&kv->mu);
	return rc;
}

int kv_get(struct kv *kv, const char *ns, const char *key, uint8_t **val, size_t *len,
           struct err *err)
{
	return get_common(kv, ns, key, val, len, 0, err);
}

int kv_take(struct kv *kv, const char *ns, const char *key, uint8_t **val, size_t *len,
            struct err *err)
{
	return get_common(kv, ns, key, val, len, 1, err);
}

int kv_delete(struct kv *kv, const char *ns, const char *key, struct err *err)
{
	if (check(kv, ns, key, 0, err) < 0)
		return -1;
	if (!kv->be->locks_itself)
		pthread_mutex_lock(&kv->mu);
	int rc = kv->be->del(kv, ns, key, err);
	if (!kv->be->locks_itself)
		pthread_mutex_unlock(&kv->mu);
	return rc;
}

int kv_list(struct kv *kv, const char *ns, char ***keys, size_t *n, struct err *err)
{
	*keys = NULL;
	*n = 0;
	if (!ns_valid(ns))
		return err_set(err, "invalid storage namespace \"%s\"", ns ? ns : "");
	if (!kv->be->locks_itself)
		pthread_mutex_lock(&kv->mu);
	int rc = kv->be->list(kv, ns, keys, n, err);
	if (!kv->be->locks_itself)
		pthread_mutex_unlock(&kv->mu);
	if (rc < 0) {
		kv_list_free(*keys, *n);
		*keys = NULL;
		*n = 0;
	}
	return rc;
}

void kv_list_free(char **keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
}
