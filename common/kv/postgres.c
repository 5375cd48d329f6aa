/*
 * kv postgres backend ("Postgres", libpq): Trustee's layout, one table per namespace named
 * after it, `(value BYTEA, key TEXT PRIMARY KEY)`, so a database Trustee's Helm chart set up
 * (its init script creates kbs, repository, kbs_protocol_session, attestation_service_policy and
 * reference_value) reads the same here, and tables we make ourselves look the same to Trustee.
 * A missing table is created on first use of its namespace.
 *
 * Where to connect: POSTGRES_URL in the environment wins (a libpq URI or key=value string);
 * otherwise backends.postgres {db, username, password, port, host} with Trustee's defaults
 * (postgres, postgres, none, 5432, localhost), handed to libpq as separate parameters, never
 * pasted into a string.
 *
 * No SQL is built from input: keys and values travel as bound parameters ($1, $2; values in
 * binary), and the one name in the statement text, the table, is the namespace the calling
 * code names (kv.h's constants), quoted by libpq's PQescapeIdentifier.
 *
 * A bounded pool of connections (backends.postgres.pool_size, default 5 as Trustee's pool),
 * shaped as the Redis backend's: a caller takes an idle connection or opens one while fewer
 * than pool_size exist, or waits up to PG_WAIT_S for one to come back, and runs its statement
 * with no lock held (serialized = 0). Every statement has a PG_TIMEOUT_S deadline (sent
 * asynchronously, the socket polled), so a server that stopped answering is an outage, not a
 * hung worker. A connection that failed is closed along with every idle one (after a server
 * restart they are all dead) and the statement is tried once more on a fresh connection, so
 * the daemon recovers by itself. An outage sets ERR_UNAVAILABLE with "postgres at HOST:PORT
 * unavailable: <cause>"; libpq's full message of a broken
 * statement goes to the log.
 *
 * No expiry: a TTL is not stored (Trustee's tables have no column for it); the kbs's session
 * records carry their own deadline and the kbs sweeps dead ones, as for local_fs.
 *
 * libpq is opened when a Postgres store is opened (dlib.h), not at exec, so the daemons that
 * keep their state elsewhere do not map it and its Kerberos/LDAP/GnuTLS dependencies. The
 * calls go through the table `pq`, libpq's names mapped onto it by macros.
 */
#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlib.h"
#include "log.h"
#include "kv/kv_backend.h"

static struct {
	__typeof__(PQclear) *PQclear;
	__typeof__(PQcmdTuples) *PQcmdTuples;
	__typeof__(PQconnectdbParams) *PQconnectdbParams;
	__typeof__(PQconninfoFree) *PQconninfoFree;
	__typeof__(PQconninfoParse) *PQconninfoParse;
	__typeof__(PQconsumeInput) *PQconsumeInput;
	__typeof__(PQerrorMessage) *PQerrorMessage;
	__typeof__(PQescapeIdentifier) *PQescapeIdentifier;
	__typeof__(PQfinish) *PQfinish;
	__typeof__(PQfreemem) *PQfreemem;
	__typeof__(PQgetResult) *PQgetResult;
	__typeof__(PQgetisnull) *PQgetisnull;
	__typeof__(PQgetlength) *PQgetlength;
	__typeof__(PQgetvalue) *PQgetvalue;
	__typeof__(PQisBusy) *PQisBusy;
	__typeof__(PQntuples) *PQntuples;
	__typeof__(PQresultErrorField) *PQresultErrorField;
	__typeof__(PQresultErrorMessage) *PQresultErrorMessage;
	__typeof__(PQresultStatus) *PQresultStatus;
	__typeof__(PQsendQueryParams) *PQsendQueryParams;
	__typeof__(PQsetNoticeProcessor) *PQsetNoticeProcessor;
	__typeof__(PQsocket) *PQsocket;
	__typeof__(PQstatus) *PQstatus;
} pq;
static struct err pq_err; /* why libpq could not be opened (set once, under pq_once) */
static int pq_failed;
static pthread_once_t pq_once = PTHREAD_ONCE_INIT;

static void pq_load(void)
{
	const struct dlib_sym syms[] = {
	    DLIB_SYM(pq, PQclear),
	    DLIB_SYM(pq, PQcmdTuples),
	    DLIB_SYM(pq, PQconnectdbParams),
	    DLIB_SYM(pq, PQconninfoFree),
	    DLIB_SYM(pq, PQconninfoParse),
	    DLIB_SYM(pq, PQconsumeInput),
	    DLIB_SYM(pq, PQerrorMessage),
	    DLIB_SYM(pq, PQescapeIdentifier),
	    DLIB_SYM(pq, PQfinish),
	    DLIB_SYM(pq, PQfreemem),
	    DLIB_SYM(pq, PQgetResult),
	    DLIB_SYM(pq, PQgetisnull),
	    DLIB_SYM(pq, PQgetlength),
	    DLIB_SYM(pq, PQgetvalue),
	    DLIB_SYM(pq, PQisBusy),
	    DLIB_SYM(pq, PQntuples),
	    DLIB_SYM(pq, PQresultErrorField),
	    DLIB_SYM(pq, PQresultErrorMessage),
	    DLIB_SYM(pq, PQresultStatus),
	    DLIB_SYM(pq, PQsendQueryParams),
	    DLIB_SYM(pq, PQsetNoticeProcessor),
	    DLIB_SYM(pq, PQsocket),
	    DLIB_SYM(pq, PQstatus),
	};
	pq_failed = dlib_open("libpq.so.5", syms, sizeof(syms) / sizeof(syms[0]), &pq_err) != 0;
}

#define PQclear pq.PQclear
#define PQcmdTuples pq.PQcmdTuples
#define PQconnectdbParams pq.PQconnectdbParams
#define PQconninfoFree pq.PQconninfoFree
#define PQconninfoParse pq.PQconninfoParse
#define PQconsumeInput pq.PQconsumeInput
#define PQerrorMessage pq.PQerrorMessage
#define PQescapeIdentifier pq.PQescapeIdentifier
#define PQfinish pq.PQfinish
#define PQfreemem pq.PQfreemem
#define PQgetResult pq.PQgetResult
#define PQgetisnull pq.PQgetisnull
#define PQgetlength pq.PQgetlength
#define PQgetvalue pq.PQgetvalue
#define PQisBusy pq.PQisBusy
#define PQntuples pq.PQntuples
#define PQresultErrorField pq.PQresultErrorField
#define PQresultErrorMessage pq.PQresultErrorMessage
#define PQresultStatus pq.PQresultStatus
#define PQsendQueryParams pq.PQsendQueryParams
#define PQsetNoticeProcessor pq.PQsetNoticeProcessor
#define PQsocket pq.PQsocket
#define PQstatus pq.PQstatus

#define PG_TIMEOUT_S 2
#define PG_STR_(x) #x
#define PG_STR(x) PG_STR_(x)
#define PG_WAIT_S 5
#define PG_POOL_DEFAULT 5
#define PG_POOL_MAX 256
#define PG_TABLES_MAX 32 /* namespaces whose table is known to exist; more just re-check */
#define PG_NAME_MAX 63   /* Postgres truncates longer identifiers: refused instead */

struct pg {
	pthread_mutex_t mu;     /* guards pool and tables, never held across a statement */
	pthread_cond_t pool_cv; /* signalled when a connection comes back or a slot frees */
	/* pool[0..pool_idle) idle connections; pool_idle <= pool_open <= pool_size */
	PGconn **pool;
	size_t pool_size, pool_idle, pool_open;
	char tables[PG_TABLES_MAX][PG_NAME_MAX + 1]; /* created or found, "" = free slot */
	/* libpq connection parameters, NULL-terminated; values owned (password and url wiped) */
	const char *keys[8];
	char *vals[8];
	int expand;      /* 1: vals[0] is POSTGRES_URL, expanded by libpq */
	char where[300]; /* "HOST:PORT" for sentences */
};

/* The first line of a libpq message, without "FATAL:  " or the "connection to ... failed: "
 * lead: the cause a sentence can carry. */
static void pg_cause(const char *msg, char *out, size_t cap)
{
	const char *s = msg ? msg : "";
	const char *f;
	size_t n = strcspn(s, "\n");
	while ((f = strstr(s, "failed: ")) != NULL && (size_t)(f - s) < n) {
		n -= (size_t)(f + 8 - s);
		s = f + 8;
	}
	if (strncmp(s, "FATAL:  ", 8) == 0 || strncmp(s, "ERROR:  ", 8) == 0) {
		s += 8;
		n = n > 8 ? n - 8 : 0;
	}
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\r'))
		n--;
	snprintf(out, cap, "%.*s", (int)n, n ? s : "connection lost");
}

static int pg_unavailable(struct pg *pg, const char *cause, struct err *err)
{
	return err_setc(err, ERR_UNAVAILABLE, "postgres at %s unavailable: %s", pg->where, cause);
}

static int pg_conn_failed(struct pg *pg, PGconn *c, struct err *err)
{
	char cause[256];
	pg_cause(c ? PQerrorMessage(c) : "out of memory", cause, sizeof(cause));
	return pg_unavailable(pg, cause, err);
}

/* Server notices ("relation ... already exists, skipping") are not errors: dropped, instead of
 * libpq's default of printing them to stderr. */
static void pg_quiet(void *arg, const char *msg)
{
}

static PGconn *pg_connect(struct pg *pg, struct err *err)
{
	PGconn *c = PQconnectdbParams(pg->keys, (const char *const *)pg->vals, pg->expand);
	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		pg_conn_failed(pg, c, err);
		PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, pg_quiet, NULL);
	return c;
}

/* Take a connection: an idle one, a new one, or the first one returned within PG_WAIT_S. */
static PGconn *pg_acquire(struct pg *pg, struct err *err)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += PG_WAIT_S;
	pthread_mutex_lock(&pg->mu);
	while (pg->pool_idle == 0 && pg->pool_open >= pg->pool_size) {
		if (pthread_cond_timedwait(&pg->pool_cv, &pg->mu, &until) != 0 &&
		    pg->pool_idle == 0 && pg->pool_open >= pg->pool_size) {
			pthread_mutex_unlock(&pg->mu);
			err_setc(err, ERR_UNAVAILABLE,
			         "postgres at %s unavailable: all %zu connections stayed busy for "
			         "%d s",
			         pg->where, pg->pool_size, PG_WAIT_S);
			return NULL;
		}
	}
	if (pg->pool_idle > 0) {
		PGconn *c = pg->pool[--pg->pool_idle];
		pthread_mutex_unlock(&pg->mu);
		return c;
	}
	pg->pool_open++; /* a slot reserved for the connection opened below */
	pthread_mutex_unlock(&pg->mu);
	PGconn *c = pg_connect(pg, err);
	if (c == NULL) {
		pthread_mutex_lock(&pg->mu);
		pg->pool_open--;
		pthread_cond_signal(&pg->pool_cv);
		pthread_mutex_unlock(&pg->mu);
	}
	return c;
}

/* Give a connection back. A broken one is closed, and so is every idle one: when one
 * connection fails (server restarted) the others opened before it are most likely dead too,
 * and the retry must not pick one of them. */
static void pg_release(struct pg *pg, PGconn *c, int broken)
{
	PGconn **stale = NULL;
	size_t n_stale = 0;
	pthread_mutex_lock(&pg->mu);
	if (broken) {
		stale = malloc((pg->pool_idle + 1) * sizeof(*stale));
		if (stale != NULL) {
			memcpy(stale, pg->pool, pg->pool_idle * sizeof(*stale));
			n_stale = pg->pool_idle;
			pg->pool_open -= pg->pool_idle;
			pg->pool_idle = 0;
		}
		pg->pool_open--;
		pthread_cond_broadcast(&pg->pool_cv);
	} else {
		pg->pool[pg->pool_idle++] = c;
		pthread_cond_signal(&pg->pool_cv);
		c = NULL;
	}
	pthread_mutex_unlock(&pg->mu);
	PQfinish(c);
	for (size_t i = 0; i < n_stale; i++)
		PQfinish(stale[i]);
	free(stale);
}

/* Wait until the connection has a whole result, at most until `deadline_ms` (monotonic).
 * 0 ready, -1 connection failed or no answer in time (cause written). */
static int pg_wait(PGconn *c, long long deadline_ms, char *cause, size_t cap)
{
	while (PQisBusy(c)) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		long long left = deadline_ms - ((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
		struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
		if (p.fd < 0 || left <= 0 || poll(&p, 1, (int)left) == 0) {
			snprintf(cause, cap, "no answer within " PG_STR(PG_TIMEOUT_S) " s");
			return -1;
		}
		if (!PQconsumeInput(c)) {
			pg_cause(PQerrorMessage(c), cause, cap);
			return -1;
		}
	}
	return 0;
}

/* An SQLSTATE that says the server, not the statement, is the problem: connection exceptions
 * (08), shutting down or starting up (57P01..57P03), out of resources (53). */
static int pg_state_is_outage(const char *st)
{
	return st != NULL && (strncmp(st, "08", 2) == 0 || strncmp(st, "57P0", 4) == 0 ||
	                      strncmp(st, "53", 2) == 0);
}

/* How a statement failed, beyond err: the connection must not be reused (an outage, err.code
 * ERR_UNAVAILABLE), or the table does not exist (the database was recreated under us). */
struct pg_fail {
	int broken, no_table;
};

/* One statement on `c` with its parameters (text keys, binary values), results in binary.
 * Returns the result (caller PQclears) or NULL with err and *f set. */
static PGresult *pg_exec(struct pg *pg, PGconn *c, const char *sql, int n, const char *const *v,
                         const int *lens, const int *fmts, struct pg_fail *f, struct err *err)
{
	struct timespec ts;
	char cause[256];
	PGresult *res = NULL, *r;

	f->broken = f->no_table = 0;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	long long deadline =
	    (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + PG_TIMEOUT_S * 1000;
	if (!PQsendQueryParams(c, sql, n, NULL, v, lens, fmts, 1)) {
		pg_cause(PQerrorMessage(c), cause, sizeof(cause));
		f->broken = 1;
		log_warn("postgres at %s: %s", pg->where, PQerrorMessage(c));
		pg_unavailable(pg, cause, err);
		return NULL;
	}
	for (;;) {
		if (pg_wait(c, deadline, cause, sizeof(cause)) < 0) {
			PQclear(res);
			f->broken = 1;
			log_warn("postgres at %s: %s", pg->where, cause);
			pg_unavailable(pg, cause, err);
			return NULL;
		}
		if ((r = PQgetResult(c)) == NULL)
			break;
		if (res == NULL)
			res = r;
		else
			PQclear(r);
	}
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return res;
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *m = res ? PQresultErrorMessage(res) : PQerrorMessage(c);
	pg_cause(m, cause, sizeof(cause));
	if (PQstatus(c) != CONNECTION_OK || pg_state_is_outage(state)) {
		f->broken = 1;
		log_warn("postgres at %s: %s", pg->where, m);
		pg_unavailable(pg, cause, err);
	} else {
		err_setc(err, 0, "postgres at %s refused the statement: %s", pg->where, cause);
		f->no_table = state != NULL && strcmp(state, "42P01") == 0;
	}
	PQclear(res);
	return NULL;
}

/* Is the table of `ns` known to exist? Remember (known = 1) or forget (known = 0) it. */
static int pg_table_known(struct pg *pg, const char *ns, int set, int known)
{
	int found = 0;
	pthread_mutex_lock(&pg->mu);
	for (size_t i = 0; i < PG_TABLES_MAX && !found; i++) {
		if (strcmp(pg->tables[i], ns) == 0) {
			found = 1;
			if (set && !known)
				pg->tables[i][0] = '\0';
		}
	}
	for (size_t i = 0; set && known && !found && i < PG_TABLES_MAX; i++) {
		if (pg->tables[i][0] == '\0') {
			snprintf(pg->tables[i], sizeof(pg->tables[i]), "%s", ns);
			found = 1;
		}
	}
	pthread_mutex_unlock(&pg->mu);
	return found;
}

/* CREATE TABLE IF NOT EXISTS in Trustee's shape. 0 (or a refusal only logged: the statement
 * that follows says what is wrong), -1 when the connection broke. */
static int pg_make_table(struct pg *pg, PGconn *c, const char *ns, const char *table,
                         struct err *err)
{
	char sql[256];
	struct err e = {0};
	struct pg_fail f;
	snprintf(sql, sizeof(sql),
	         "CREATE TABLE IF NOT EXISTS %s (value BYTEA, key TEXT PRIMARY KEY)", table);
	PGresult *r = pg_exec(pg, c, sql, 0, NULL, NULL, NULL, &f, &e);
	if (r != NULL) {
		PQclear(r);
		pg_table_known(pg, ns, 1, 1);
		return 0;
	}
	if (f.broken) {
		if (err)
			*err = e;
		return -1;
	}
	log_warn("postgres at %s: cannot create table for namespace %s: %s", pg->where, ns, e.msg);
	return 0;
}

/* Run `head <table of ns> tail` with parameters, on a pooled connection: the table made if
 * needed, one more try on a fresh connection when the first one broke. */
static PGresult *pg_run(struct pg *pg, const char *ns, const char *head, const char *tail, int n,
                        const char *const *v, const int *lens, const int *fmts, struct err *err)
{
	char sql[512];
	PGresult *r = NULL;

	if (strlen(ns) > PG_NAME_MAX) {
		err_set(err, "namespace \"%s\" is longer than a Postgres table name", ns);
		return NULL;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		struct pg_fail f = {0};
		PGconn *c = pg_acquire(pg, err);
		if (c == NULL)
			return NULL;
		char *table = PQescapeIdentifier(c, ns, strlen(ns));
		if (table == NULL) {
			pg_release(pg, c, 0);
			err_set(err, "namespace \"%s\" cannot be a table name", ns);
			return NULL;
		}
		if (!pg_table_known(pg, ns, 0, 0) && pg_make_table(pg, c, ns, table, err) < 0) {
			PQfreemem(table);
			pg_release(pg, c, 1);
			continue;
		}
		snprintf(sql, sizeof(sql), "%s%s%s", head, table, tail);
		PQfreemem(table);
		r = pg_exec(pg, c, sql, n, v, lens, fmts, &f, err);
		pg_release(pg, c, f.broken);
		if (r != NULL || (!f.broken && !f.no_table))
			break;
		if (f.no_table) /* dropped, or the database was recreated: make it again */
			pg_table_known(pg, ns, 1, 0);
	}
	return r;
}

/* Copy a bytea column out of a result into a NUL-terminated malloc'd buffer, then wipe the
 * result's copy: stored values are secrets. */
static int pg_take_value(PGresult *r, uint8_t **val, size_t *len, struct err *err)
{
	char *p = PQgetisnull(r, 0, 0) ? NULL : PQgetvalue(r, 0, 0);
	size_t n = p ? (size_t)PQgetlength(r, 0, 0) : 0;
	*val = malloc(n + 1);
	if (*val == NULL) {
		if (p)
			OPENSSL_cleanse(p, n);
		return err_set(err, "out of memory");
	}
	if (n)
		memcpy(*val, p, n);
	(*val)[n] = 0;
	*len = n;
	if (p)
		OPENSSL_cleanse(p, n);
	return 0;
}

static int pg_set(void *state, const char *ns, const char *key, const void *val, size_t len,
                  int overwrite, unsigned ttl, struct err *err)
{
	const char *v[2] = {key, len ? val : ""};
	int lens[2] = {0, (int)len}, fmts[2] = {0, 1};
	if (len > 0x7fffffff)
		return err_set(err, "value of %zu bytes is too large for postgres", len);
	/* overwrite: an upsert; otherwise a conflict inserts nothing and reports 0 rows */
	const char *tail = overwrite ? " (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE "
	                               "SET value = EXCLUDED.value"
	                             : " (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING";
	PGresult *r = pg_run(state, ns, "INSERT INTO ", tail, 2, v, lens, fmts, err);
	if (r == NULL)
		return -1;
	int rc = strcmp(PQcmdTuples(r), "0") == 0 ? 1 : 0;
	PQclear(r);
	return rc;
}

static int pg_read(void *state, const char *ns, const char *key, uint8_t **val, size_t *len,
                   int take, struct err *err)
{
	const char *v[1] = {key};
	PGresult *r = take ? pg_run(state, ns, "DELETE FROM ", " WHERE key = $1 RETURNING value", 1,
	                            v, NULL, NULL, err)
	                   : pg_run(state, ns, "SELECT value FROM ", " WHERE key = $1", 1, v, NULL,
	                            NULL, err);
	if (r == NULL)
		return -1;
	int rc = PQntuples(r) == 0 ? 1 : pg_take_value(r, val, len, err);
	PQclear(r);
	return rc;
}

static int pg_get(void *state, const char *ns, const char *key, uint8_t **val, size_t *len,
                  struct err *err)
{
	return pg_read(state, ns, key, val, len, 0, err);
}

static int pg_take(void *state, const char *ns, const char *key, uint8_t **val, size_t *len,
                   struct err *err)
{
	return pg_read(state, ns, key, val, len, 1, err);
}

static int pg_del(void *state, const char *ns, const char *key, struct err *err)
{
	const char *v[1] = {key};
	PGresult *r = pg_run(state, ns, "DELETE FROM ", " WHERE key = $1", 1, v, NULL, NULL, err);
	if (r == NULL)
		return -1;
	int rc = strcmp(PQcmdTuples(r), "0") == 0 ? 1 : 0;
	PQclear(r);
	return rc;
}

static int pg_list(void *state, const char *ns, char ***keys, size_t *n, struct err *err)
{
	size_t cap = 0;
	PGresult *r = pg_run(state, ns, "SELECT key FROM ", "", 0, NULL, NULL, NULL, err);
	if (r == NULL)
		return -1;
	int rc = 0;
	for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
		/* a binary TEXT column is the string's bytes, not NUL-terminated by contract */
		char k[1024];
		snprintf(k, sizeof(k), "%.*s", PQgetlength(r, i, 0), PQgetvalue(r, i, 0));
		if (kv_keys_push(keys, n, &cap, k) < 0)
			rc = err_set(err, "out of memory");
	}
	PQclear(r);
	return rc;
}

/* One statement of a batch on `c`, inside its transaction: the upsert (or insert-if-absent)
 * of w into its namespace's table. 0, 1 (a set-if-absent key exists), -1 err and *f set. */
static int pg_batch_one(struct pg *pg, PGconn *c, const struct kv_write *w, struct pg_fail *f,
                        struct err *err)
{
	char sql[512];
	const char *v[2] = {w->key, w->len ? w->val : ""};
	int lens[2] = {0, (int)w->len}, fmts[2] = {0, 1};
	char *table = PQescapeIdentifier(c, w->ns, strlen(w->ns));

	f->broken = f->no_table = 0;
	if (table == NULL)
		return err_set(err, "namespace \"%s\" cannot be a table name", w->ns);
	snprintf(sql, sizeof(sql),
	         "INSERT INTO %s (key, value) VALUES ($1, $2) ON CONFLICT (key) %s", table,
	         w->overwrite ? "DO UPDATE SET value = EXCLUDED.value" : "DO NOTHING");
	PQfreemem(table);
	PGresult *r = pg_exec(pg, c, sql, 2, v, lens, fmts, f, err);
	if (r == NULL)
		return -1;
	int rc = strcmp(PQcmdTuples(r), "0") == 0 ? 1 : 0;
	PQclear(r);
	return rc;
}

/* A statement without parameters whose result is only checked. */
static int pg_simple(struct pg *pg, PGconn *c, const char *sql, struct pg_fail *f, struct err *err)
{
	PGresult *r = pg_exec(pg, c, sql, 0, NULL, NULL, NULL, f, err);
	PQclear(r);
	return r == NULL ? -1 : 0;
}

/* The batch on one connection: tables made first (outside the transaction), then BEGIN, the
 * statements, COMMIT; any refusal or a set-if-absent key that exists rolls all of it back. */
static int pg_batch_on(struct pg *pg, PGconn *c, const struct kv_write *w, size_t n,
                       struct pg_fail *f, struct err *err)
{
	int rc = 0;

	f->broken = f->no_table = 0;
	for (size_t i = 0; i < n; i++) {
		if (pg_table_known(pg, w[i].ns, 0, 0))
			continue;
		char *table = PQescapeIdentifier(c, w[i].ns, strlen(w[i].ns));
		if (table == NULL)
			return err_set(err, "namespace \"%s\" cannot be a table name", w[i].ns);
		int m = pg_make_table(pg, c, w[i].ns, table, err);
		PQfreemem(table);
		if (m < 0) {
			f->broken = 1;
			return -1;
		}
	}
	if (pg_simple(pg, c, "BEGIN", f, err) < 0)
		return -1;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = pg_batch_one(pg, c, &w[i], f, err);
	if (rc == 0 && pg_simple(pg, c, "COMMIT", f, err) == 0)
		return 0;
	if (!f->broken) {
		struct pg_fail rf;
		struct err re = {0};
		if (pg_simple(pg, c, "ROLLBACK", &rf, &re) < 0)
			f->broken = 1; /* not reusable in an unknown transaction state */
	}
	return rc == 1 ? 1 : -1;
}

/* All or none in one transaction on one pooled connection; tried once more on a fresh
 * connection when the first broke (nothing of a transaction that did not commit is kept). */
static int pg_set_batch(void *state, const struct kv_write *w, size_t n, struct err *err)
{
	struct pg *pg = state;
	int rc = -1;

	for (size_t i = 0; i < n; i++) {
		if (strlen(w[i].ns) > PG_NAME_MAX)
			return err_set(err, "namespace \"%s\" is longer than a Postgres table name",
			               w[i].ns);
		if (w[i].len > 0x7fffffff)
			return err_set(err, "value of %zu bytes is too large for postgres",
			               w[i].len);
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		struct pg_fail f = {0};
		PGconn *c = pg_acquire(pg, err);
		if (c == NULL)
			return -1;
		rc = pg_batch_on(pg, c, w, n, &f, err);
		pg_release(pg, c, f.broken);
		if (rc >= 0 || (!f.broken && !f.no_table))
			break;
		if (f.no_table)
			for (size_t i = 0; i < n; i++)
				pg_table_known(pg, w[i].ns, 1, 0);
	}
	return rc;
}

static void pg_close(void *state)
{
	struct pg *pg = state;
	for (size_t i = 0; i < pg->pool_idle; i++)
		PQfinish(pg->pool[i]);
	free(pg->pool);
	for (size_t i = 0; pg->keys[i] != NULL; i++) {
		OPENSSL_cleanse(pg->vals[i], strlen(pg->vals[i]));
		free(pg->vals[i]);
	}
	pthread_cond_destroy(&pg->pool_cv);
	pthread_mutex_destroy(&pg->mu);
	free(pg);
}

static int pg_param(struct pg *pg, const char *k, const char *v)
{
	size_t i = 0;
	while (pg->keys[i] != NULL)
		i++;
	if ((pg->vals[i] = strdup(v)) == NULL)
		return -1;
	pg->keys[i] = k;
	return 0;
}

/* "HOST:PORT" for sentences, from what libpq would use (the URL parsed, or the config). */
static void pg_where(struct pg *pg, const char *url, const char *host, const char *port)
{
	PQconninfoOption *o = url ? PQconninfoParse(url, NULL) : NULL;
	for (PQconninfoOption *p = o; p && p->keyword; p++) {
		if (strcmp(p->keyword, "host") == 0 && p->val && *p->val)
			host = p->val;
		else if (strcmp(p->keyword, "hostaddr") == 0 && p->val && *p->val)
			host = p->val;
		else if (strcmp(p->keyword, "port") == 0 && p->val && *p->val)
			port = p->val;
	}
	snprintf(pg->where, sizeof(pg->where), "%s:%s", host, port);
	if (o)
		PQconninfoFree(o);
}

/* backends.postgres, Trustee's keys and defaults, into libpq parameters. */
static int pg_config(struct pg *pg, const json_t *o, struct err *err)
{
	const char *url = getenv("POSTGRES_URL");
	char port[16] = "5432", timeout[16];
	const char *names[] = {"db", "username", "password", "host"};
	for (size_t i = 0; i < 4; i++) {
		const json_t *s = json_object_get(o, names[i]);
		if (s && !json_is_string(s) && !json_is_null(s))
			return err_set(err, "storage_backend.backends.postgres.%s must be a string",
			               names[i]);
	}
	const json_t *jp = json_object_get(o, "port");
	if (jp &&
	    (!json_is_integer(jp) || json_integer_value(jp) < 1 || json_integer_value(jp) > 65535))
		return err_set(err, "storage_backend.backends.postgres.port must be an integer "
		                    "from 1 to 65535");
	if (jp)
		snprintf(port, sizeof(port), "%lld", (long long)json_integer_value(jp));
	const char *db = json_string_value(json_object_get(o, "db"));
	const char *user = json_string_value(json_object_get(o, "username"));
	const char *pass = json_string_value(json_object_get(o, "password"));
	const char *host = json_string_value(json_object_get(o, "host"));
	host = host ? host : "localhost";
	snprintf(timeout, sizeof(timeout), "%d", PG_TIMEOUT_S);
	int bad = 0;
	if (url != NULL && *url != '\0') {
		pg->expand = 1; /* libpq reads the URL; later parameters would override it */
		bad |= pg_param(pg, "dbname", url);
	} else {
		url = NULL;
		bad |= pg_param(pg, "host", host) | pg_param(pg, "port", port) |
		       pg_param(pg, "dbname", db ? db : "postgres") |
		       pg_param(pg, "user", user ? user : "postgres");
		if (pass)
			bad |= pg_param(pg, "password", pass);
	}
	bad |= pg_param(pg, "connect_timeout", timeout);
	bad |= pg_param(pg, "application_name", "ctrustee");
	if (bad)
		return err_set(err, "out of memory");
	pg_where(pg, url, host, port);
	return 0;
}

static void *pg_open(const json_t *backends, struct err *err)
{
	const json_t *o = json_object_get(backends, "postgres");
	const char *url = getenv("POSTGRES_URL");
	pthread_once(&pq_once, pq_load);
	if (pq_failed) {
		err_set(err, "the Postgres store needs libpq: %s", pq_err.msg);
		return NULL;
	}
	if (o == NULL && (url == NULL || *url == '\0')) {
		err_set(err, "storage_backend.backends.postgres is required for Postgres (or "
		             "POSTGRES_URL in the environment)");
		return NULL;
	}
	json_t *ps = json_object_get(o, "pool_size");
	json_int_t size = ps ? json_integer_value(ps) : PG_POOL_DEFAULT;
	if (ps && (!json_is_integer(ps) || size < 1 || size > PG_POOL_MAX)) {
		err_set(
		    err,
		    "storage_backend.backends.postgres.pool_size must be an integer from 1 to %d",
		    PG_POOL_MAX);
		return NULL;
	}
	struct pg *pg = calloc(1, sizeof(*pg));
	if (pg == NULL || (pg->pool = calloc((size_t)size, sizeof(*pg->pool))) == NULL) {
		free(pg);
		err_set(err, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&pg->mu, NULL);
	pthread_cond_init(&pg->pool_cv, NULL);
	pg->pool_size = (size_t)size;
	if (pg_config(pg, o, err) < 0) {
		pg_close(pg);
		return NULL;
	}
	struct err cerr = {0};
	PGconn *c = pg_connect(pg, &cerr);
	if (c == NULL) { /* not fatal: each call connects again */
		log_warn("%s (will retry on use)", cerr.msg);
	} else {
		pg->pool[pg->pool_idle++] = c;
		pg->pool_open = 1;
	}
	return pg;
}

const struct kv_backend kv_backend_postgres = {
    .name = "Postgres",
    .alias = "postgres",
    .validates_keys = 1,
    .serialized = 0,
    .open = pg_open,
    .close = pg_close,
    .set = pg_set,
    .get = pg_get,
    .take = pg_take,
    .del = pg_del,
    .list = pg_list,
    .set_batch = pg_set_batch,
};
