/*
 * redis_loop: kv_loop.h on hiredis's asynchronous context, driven by the loop's libevent base
 * (hiredis/adapters/libevent.h). One connection per loop, opened on first use and again after
 * it breaks; every call pipelined on it, so a loop's session round trips share one socket and
 * wait on nothing but their answer.
 *
 * A call is an `op` holding its formatted command, so that it can be sent again: after a
 * LOADING answer (REDIS_LOADING_WAIT_MS later, until REDIS_TIMEOUT_S of waits), and once
 * after its connection broke (a Redis restart leaves the loop's connection dead, as it does
 * the pool's: the blocking path also retries once). One timer per op is either its deadline
 * (sent: REDIS_TIMEOUT_S for the answer) or its pause before the next send. A deadline that
 * passes frees the connection, which answers every op on it with a NULL reply; each is sent
 * once more on a new connection (as the pool does after a read time-out) and fails with the
 * time-out sentence when that one does not answer either.
 *
 * With credentials or a database in the URL, a new connection sends AUTH and SELECT first and
 * holds every op back until both are answered: an op pipelined behind a refused AUTH or
 * SELECT would run as the default user or in database 0. Held ops keep their deadline (one
 * per attempt, for the lookup, the AUTH / SELECT and the answer together); a
 * refusal fails them with the pool's sentence; a connection that breaks or stays silent
 * before answering sends them once more on a new one, as for a sent op.
 *
 * A host name (Kubernetes' service names) is resolved on the loop by libevent's evdns
 * (/etc/hosts, then the name servers of /etc/resolv.conf), ops held meanwhile with their
 * deadline; the address is kept and looked up again after a connection to it failed, at most
 * once a second (LOOPDNS_MIN_MS), as the gRPC loop client does; a name that does not resolve
 * fails its ops with the C library's words for it, as the pool's connect says them.
 *
 * hiredis 0.14 (Debian's) has no timeouts of its own for asynchronous contexts, no option to
 * keep replies past the callback, and calls a connect callback only for connections it
 * opened; `ac` is NULL from the moment hiredis starts freeing it, so that a callback that
 * issues its next call gets a new connection rather than the dying one.
 */
#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv/kv_loop.h"
#include "kv/redis_int.h"
#include "loopdns.h"

enum op_kind { OP_SET, OP_MGET, OP_DEL };

struct op {
	struct kv_loop *l;
	struct op *prev, *next; /* on l->ops */
	enum op_kind kind;
	char *cmd; /* the RESP command, owned, wiped (it carries session records) */
	int cmdlen;
	size_t n; /* OP_MGET: keys asked */
	kv_loop_set_fn set_cb;
	kv_loop_get_fn get_cb;
	void *arg;
	struct event *tm;      /* sent or held: the deadline; else the pause before sending */
	long long until;       /* monotonic ms: this attempt's deadline, for the lookup, the
	                        * AUTH / SELECT and the answer together */
	int sent;              /* waiting for the answer on ac */
	redisAsyncContext *ac; /* while sent: the connection it went on (alive until it answers) */
	int held;              /* not sent: waiting on ac's AUTH / SELECT (1), on the name (2) */
	int resent;            /* the one send after a broken connection is spent */
	int loading_waits;     /* LOADING answers so far */
};

struct kv_loop {
	struct redis_target t;
	struct event_base *base; /* borrowed: the loop's */
	redisAsyncContext *ac;   /* NULL: none open; never one hiredis is freeing */
	int hellos;              /* ac's AUTH / SELECT not yet answered; ops wait while > 0 */
	char refused[64];        /* ac's AUTH or SELECT was refused: why, else "" */
	int timing_out;          /* inside the free of a connection whose answer is late */
	int closing;             /* kv_loop_free started: nothing is sent again */
	struct op *ops;          /* every op not yet called back */
	size_t inflight, max_inflight;
	/* a host name: its resolver on the loop (NULL: the host is an IP address) */
	struct evdns_base *dns;
	struct evdns_getaddrinfo_request *rq; /* a lookup under way */
	int starting;                         /* inside evdns_getaddrinfo */
	int sync_rc;                          /*   its answer given there (1: none yet) */
	char ips[4][INET6_ADDRSTRLEN];        /* the addresses it gave */
	int nips, cur;                        /* how many; the one connections go to */
	char resolve_why[200];                /* why the last lookup failed */
	long long resolved_at;                /* monotonic ms of the last answer; -1 never */
	int stale;                            /* a connection to each address failed since */
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void op_free(struct op *op)
{
	struct kv_loop *l = op->l;
	if (op->prev)
		op->prev->next = op->next;
	else
		l->ops = op->next;
	if (op->next)
		op->next->prev = op->prev;
	l->inflight--;
	if (op->tm)
		event_free(op->tm);
	if (op->cmd) {
		OPENSSL_cleanse(op->cmd, (size_t)op->cmdlen);
		free(op->cmd);
	}
	free(op);
}

/* The op's answer to its caller, and the op gone. */
static void op_done(struct op *op, int rc, uint8_t **vals, size_t *lens, struct err *err)
{
	kv_loop_set_fn set_cb = op->set_cb;
	kv_loop_get_fn get_cb = op->get_cb;
	void *arg = op->arg;
	op_free(op);
	if (set_cb)
		set_cb(arg, rc, err);
	else if (get_cb)
		get_cb(arg, rc, vals, lens, err);
}

static void op_fail(struct op *op, struct err *err)
{
	op_done(op, -1, NULL, NULL, err);
}

/* A connection to the current address failed: the next one, and after the last the name is
 * looked up again (it may have moved). */
static void addr_failed(struct kv_loop *l)
{
	if (l->cur + 1 < l->nips) {
		l->cur++;
		return;
	}
	l->cur = 0;
	l->stale = 1;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct kv_loop *l = ac->data;
	if (status != REDIS_OK) {
		addr_failed(l);
		if (l->ac == ac)
			l->ac = NULL; /* hiredis frees it now, answering its ops with NULL */
	}
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct kv_loop *l = ac->data;
	if (status != REDIS_OK)
		addr_failed(l);
	if (l->ac == ac)
		l->ac = NULL;
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv);

/* The op's timer set to what is left of its attempt's deadline. */
static void op_arm(struct op *op)
{
	long long left = op->until - now_ms();
	if (left < 1)
		left = 1;
	struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
	evtimer_add(op->tm, &tv);
}

/* A new attempt of op (its first send, the one resend, or a send after LOADING, pause_ms
 * from now): REDIS_TIMEOUT_S from then. */
static void op_attempt(struct op *op, long pause_ms)
{
	op->until = now_ms() + pause_ms + REDIS_TIMEOUT_S * 1000LL;
}

/* Sends op on ac, which has answered its AUTH / SELECT, with its deadline. -1 err set. */
static int op_put(struct op *op, redisAsyncContext *ac, struct err *err)
{
	if (redisAsyncFormattedCommand(ac, on_reply, op, op->cmd, (size_t)op->cmdlen) != REDIS_OK)
		return redis_target_unavailable(&op->l->t, &ac->c, NULL, err);
	op->held = 0;
	op->sent = 1;
	op->ac = ac;
	op_arm(op);
	return 0;
}

/* The ops held for ac's AUTH / SELECT, or (ac NULL) for the host's lookup, oldest first
 * (l->ops is newest first). */
static size_t held_on(struct kv_loop *l, redisAsyncContext *ac, struct op **out, size_t cap)
{
	size_t n = 0;
	struct op *last = l->ops;
	while (last && last->next)
		last = last->next;
	for (struct op *op = last; op && n < cap; op = op->prev)
		if (op->held == (ac ? 1 : 2) && op->ac == ac)
			out[n++] = op;
	return n;
}

static void op_later(struct op *op, long ms);

/* AUTH or SELECT answered. Both accepted: the held ops go out. One refused: they fail with
 * the pool's sentence, and the connection is closed. No answer (the connection broke or its
 * deadline passed): each is sent once more on a new connection, else fails. */
static void on_hello(redisAsyncContext *ac, void *r, void *priv)
{
	struct kv_loop *l = ac->data;
	const redisReply *rep = r;
	struct op *held[256];
	struct err e = {0};
	size_t n;
	if (rep != NULL && rep->type != REDIS_REPLY_ERROR) {
		if (l->ac != ac || --l->hellos > 0)
			return;
		do {
			n = held_on(l, ac, held, sizeof(held) / sizeof(held[0]));
			for (size_t i = 0; i < n; i++)
				if (op_put(held[i], ac, &e) < 0)
					op_fail(held[i], &e);
		} while (n == sizeof(held) / sizeof(held[0]));
		return;
	}
	const char *why = priv ? "it refused to select the database" : "it refused the credentials";
	if (rep != NULL && l->ac == ac && !l->refused[0]) {
		snprintf(l->refused, sizeof(l->refused), "%s", why);
		l->ac = NULL;
		redisAsyncDisconnect(ac);
	}
	if (l->ac == ac)
		l->ac = NULL;
	do {
		n = held_on(l, ac, held, sizeof(held) / sizeof(held[0]));
		for (size_t i = 0; i < n; i++) {
			struct op *op = held[i];
			event_del(op->tm);
			op->held = 0;
			op->ac = NULL;
			if (rep == NULL && !op->resent && !l->closing) {
				op->resent = 1;
				op_attempt(op, 0);
				op_later(op, 0); /* not from inside hiredis's free */
				continue;
			}
			if (rep != NULL)
				redis_target_unavailable(&l->t, NULL, why, &e);
			else
				redis_target_unavailable(
				    &l->t, &ac->c, l->timing_out ? REDIS_NO_ANSWER : NULL, &e);
			op_fail(op, &e);
		}
	} while (n == sizeof(held) / sizeof(held[0]));
}

/* A new connection to the current address with its AUTH and SELECT queued ahead of any
 * command. -1 err set. */
static int connect_one(struct kv_loop *l, struct err *err)
{
	redisAsyncContext *ac = redisAsyncConnect(l->dns ? l->ips[l->cur] : l->t.host, l->t.port);
	if (ac == NULL || ac->err) {
		redis_target_unavailable(&l->t, ac ? &ac->c : NULL, NULL, err);
		if (ac)
			redisAsyncFree(ac);
		return -1;
	}
	ac->data = l;
	if (redisLibeventAttach(ac, l->base) != REDIS_OK) {
		redisAsyncFree(ac);
		return redis_target_unavailable(&l->t, NULL, NULL, err);
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	l->refused[0] = '\0';
	l->hellos = (l->t.pass[0] != '\0') + (l->t.db != 0);
	if (l->t.pass[0] != '\0') {
		if (l->t.user[0])
			redisAsyncCommand(ac, on_hello, NULL, "AUTH %s %s", l->t.user, l->t.pass);
		else
			redisAsyncCommand(ac, on_hello, NULL, "AUTH %s", l->t.pass);
	}
	if (l->t.db != 0)
		redisAsyncCommand(ac, on_hello, (void *)1, "SELECT %d", l->t.db);
	l->ac = ac;
	return 0;
}

/* A new connection; a name's addresses tried in turn while connecting fails at once (no
 * route, a refused or unreachable network), so one dead address does not hold the loop. */
static int loop_connect(struct kv_loop *l, struct err *err)
{
	for (int tried = 1;; tried++) {
		if (connect_one(l, err) == 0)
			return 0;
		if (l->dns == NULL)
			return -1;
		addr_failed(l); /* after the last one, the name is looked up again */
		if (tried >= l->nips)
			return -1;
	}
}

static int op_send(struct op *op, struct err *err);

/* The lookup's answer kept: its first addresses, or why there are none. */
static void resolve_store(struct kv_loop *l, int rc, const struct evutil_addrinfo *res)
{
	const int cap = (int)(sizeof(l->ips) / sizeof(l->ips[0]));
	l->resolved_at = now_ms();
	l->stale = 0;
	l->nips = l->cur = 0;
	for (const struct evutil_addrinfo *a = res; rc == 0 && a && l->nips < cap; a = a->ai_next) {
		const void *in =
		    a->ai_family == AF_INET
		        ? (const void *)&((const struct sockaddr_in *)a->ai_addr)->sin_addr
		    : a->ai_family == AF_INET6
		        ? (const void *)&((const struct sockaddr_in6 *)a->ai_addr)->sin6_addr
		        : NULL;
		if (in && inet_ntop(a->ai_family, in, l->ips[l->nips], sizeof(l->ips[0])) != NULL)
			l->nips++;
	}
	/* the words hiredis's blocking connect gives the pool for the same name */
	snprintf(l->resolve_why, sizeof(l->resolve_why), "%s",
	         rc != 0 ? loopdns_gai_sentence(rc) : "the host name has no address");
}

/* The lookup answered after evdns_getaddrinfo returned: the ops waiting on it are sent, or
 * fail with why the name did not resolve. */
static void on_resolved(int rc, struct evutil_addrinfo *res, void *arg)
{
	struct kv_loop *l = arg;
	struct op *held[256];
	struct err e = {0};
	size_t n;
	if (rc == EVUTIL_EAI_CANCEL) { /* kv_loop_free */
		if (res)
			evutil_freeaddrinfo(res);
		return;
	}
	resolve_store(l, rc, res);
	if (res)
		evutil_freeaddrinfo(res);
	if (l->starting) { /* answered inside evdns_getaddrinfo: loop_resolve goes on */
		l->sync_rc = rc;
		return;
	}
	l->rq = NULL;
	do {
		n = held_on(l, NULL, held, sizeof(held) / sizeof(held[0]));
		for (size_t i = 0; i < n; i++) {
			struct op *op = held[i];
			event_del(op->tm);
			op->held = 0;
			if (l->nips == 0)
				redis_target_unavailable(&l->t, NULL, l->resolve_why, &e);
			if (l->nips == 0 || op_send(op, &e) < 0)
				op_fail(op, &e);
		}
	} while (n == sizeof(held) / sizeof(held[0]));
}

/* Whether the host's address is at hand for a new connection: 0 yes (or the host is an IP
 * address), 1 a lookup is under way (on_resolved goes on), -1 err set (the name did not
 * resolve, now or less than LOOPDNS_MIN_MS ago). */
static int loop_resolve(struct kv_loop *l, struct err *err)
{
	struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC,
	                                .ai_socktype = SOCK_STREAM,
	                                .ai_protocol = IPPROTO_TCP,
	                                .ai_flags = EVUTIL_AI_ADDRCONFIG};
	char port[16];
	if (l->dns == NULL)
		return 0;
	int fresh = l->resolved_at >= 0 && now_ms() - l->resolved_at < LOOPDNS_MIN_MS;
	if (l->nips > 0 && (!l->stale || fresh))
		return 0;
	if (l->nips == 0 && fresh)
		return redis_target_unavailable(&l->t, NULL, l->resolve_why, err);
	if (l->rq)
		return 1;
	snprintf(port, sizeof(port), "%d", l->t.port);
	l->starting = 1;
	l->sync_rc = 1; /* not answered yet */
	struct evdns_getaddrinfo_request *rq =
	    evdns_getaddrinfo(l->dns, l->t.host, port, &hints, on_resolved, l);
	l->starting = 0;
	if (rq != NULL) {
		l->rq = rq;
		return 1;
	}
	if (l->sync_rc == 1)
		return redis_target_unavailable(&l->t, NULL, "the resolver took no query", err);
	return l->nips > 0 ? 0 : redis_target_unavailable(&l->t, NULL, l->resolve_why, err);
}

/* Sends op on the loop's connection (opening one) with its deadline, or holds it there until
 * the connection's AUTH / SELECT are answered (the same deadline). -1 err set. */
static int op_send(struct op *op, struct err *err)
{
	struct kv_loop *l = op->l;
	if (l->closing)
		return redis_target_unavailable(&l->t, NULL, "the kbs is stopping", err);
	if (l->ac == NULL) {
		int rc = loop_resolve(l, err);
		if (rc < 0)
			return -1;
		if (rc > 0) { /* on_resolved sends it */
			op->held = 2;
			op->sent = 0;
			op->ac = NULL;
			op_arm(op);
			return 0;
		}
		if (loop_connect(l, err) < 0)
			return -1;
	}
	if (l->hellos == 0)
		return op_put(op, l->ac, err);
	op->held = 1;
	op->sent = 0;
	op->ac = l->ac;
	op_arm(op);
	return 0;
}

/* Sends op again after a pause of ms. */
static void op_later(struct op *op, long ms)
{
	struct timeval tv = {0, ms * 1000};
	op->sent = 0;
	op->ac = NULL;
	evtimer_add(op->tm, &tv);
}

/* The op's timer: its deadline passed (the connection is freed, answering op with NULL), or
 * its pause is over (send it again). */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct op *op = arg;
	struct kv_loop *l = op->l;
	struct err e = {0};
	if (op->held == 2) { /* the name servers did not answer in time */
		op->held = 0;
		redis_target_unavailable(&l->t, NULL, "its host name did not resolve within 2 s",
		                         &e);
		op_fail(op, &e);
		return;
	}
	if (op->sent || op->held) { /* no answer, or no AUTH / SELECT answer, in time */
		redisAsyncContext *ac = op->ac;
		if (l->ac == ac)
			l->ac = NULL;
		addr_failed(l); /* a half-open connection: the name may point elsewhere now */
		l->timing_out = 1;
		redisAsyncFree(ac); /* answers op, and every other op on ac, with NULL (held ops
		                     * through their connection's AUTH / SELECT) */
		l->timing_out = 0;
		return;
	}
	if (op_send(op, &e) < 0)
		op_fail(op, &e);
}

/* An MGET's array into fresh buffers, the reply's copies wiped. 0, -1 err set. */
static int mget_copy(struct kv_loop *l, redisReply *r, size_t n, uint8_t **vals, size_t *lens,
                     struct err *err)
{
	if (r->type != REDIS_REPLY_ARRAY || r->elements != n)
		return err_set(err, "redis: MGET answered %zu values for %zu keys", r->elements, n);
	for (size_t i = 0; i < n; i++) {
		redisReply *e = r->element[i];
		if (e->type == REDIS_REPLY_NIL)
			continue;
		if (e->type != REDIS_REPLY_STRING)
			return err_set(err, "redis at %s:%d: a value is not a string", l->t.host,
			               l->t.port);
		if ((vals[i] = malloc(e->len + 1)) == NULL)
			return err_set(err, "out of memory");
		memcpy(vals[i], e->str, e->len);
		vals[i][e->len] = '\0';
		lens[i] = e->len;
		OPENSSL_cleanse(e->str, e->len);
	}
	return 0;
}

/* A reply that is an answer (not NULL, not LOADING) to its caller. */
static void op_answer(struct op *op, redisReply *r)
{
	struct kv_loop *l = op->l;
	struct err e = {0};
	uint8_t *vals[KV_LOOP_MAX_KEYS] = {0};
	size_t lens[KV_LOOP_MAX_KEYS] = {0};
	if (l->refused[0]) {
		redis_target_unavailable(&l->t, NULL, l->refused, &e);
		op_fail(op, &e);
		return;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		err_set(&e, "redis at %s:%d refused %s: %s", l->t.host, l->t.port,
		        op->kind == OP_MGET  ? "MGET"
		        : op->kind == OP_SET ? "SET"
		                             : "DEL",
		        r->str);
		op_fail(op, &e);
		return;
	}
	if (op->kind != OP_MGET) {
		op_done(op, r->type == REDIS_REPLY_NIL ? 1 : 0, NULL, NULL, &e);
		return;
	}
	if (mget_copy(l, r, op->n, vals, lens, &e) < 0) {
		for (size_t i = 0; i < op->n; i++)
			if (vals[i]) {
				OPENSSL_cleanse(vals[i], lens[i]);
				free(vals[i]);
			}
		op_fail(op, &e);
		return;
	}
	op_done(op, 0, vals, lens, &e);
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct op *op = priv;
	struct kv_loop *l = op->l;
	redisReply *rep = r;
	struct err e = {0};
	event_del(op->tm);
	if (rep == NULL) { /* the connection broke, or is freed (deadline, kv_loop_free) */
		if (l->ac == ac)
			l->ac = NULL;
		/* also after a deadline: a half-open connection (a Redis restarted behind its
		 * address, a dropped NAT entry) answers nothing, and the pool reconnects and
		 * sends once more then too */
		if (!op->resent && !l->closing) {
			op->resent = 1;
			op_attempt(op, 0);
			op_later(op, 0); /* not from inside hiredis's free */
			return;
		}
		redis_target_unavailable(&l->t, &ac->c, l->timing_out ? REDIS_NO_ANSWER : NULL, &e);
		op_fail(op, &e);
		return;
	}
	if (redis_reply_loading(rep) && !l->refused[0]) {
		if (op->loading_waits++ >= REDIS_TIMEOUT_S * 1000 / REDIS_LOADING_WAIT_MS) {
			redis_target_unavailable(&l->t, NULL, "it is still loading its data set",
			                         &e);
			op_fail(op, &e);
			return;
		}
		op_attempt(op, REDIS_LOADING_WAIT_MS); /* LOADING was an answer */
		op_later(op, REDIS_LOADING_WAIT_MS);
		return;
	}
	op_answer(op, rep);
}

struct kv_loop *kv_loop_new(struct kv *kv, struct event_base *base, size_t max_inflight,
                            struct err *err)
{
	struct kv_loop *l = calloc(1, sizeof(*l));
	unsigned char addr[16];
	if (l == NULL) {
		err_set(err, "out of memory");
		return NULL;
	}
	l->resolved_at = -1;
	if (redis_target_of(kv, &l->t) < 0) {
		err_set(err, "the store is %s, not Redis", kv_type_name(kv));
	} else if (inet_pton(AF_INET, l->t.host, addr) != 1 &&
	           inet_pton(AF_INET6, l->t.host, addr) != 1 &&
	           (l->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
	                                              EVDNS_BASE_DISABLE_WHEN_INACTIVE)) == NULL) {
		/* reads /etc/resolv.conf and /etc/hosts now; idle, it keeps the loop from nothing
		 */
		err_set(err,
		        "cannot set up the resolver for the redis host \"%s\" (/etc/resolv.conf)",
		        l->t.host);
	} else {
		l->base = base;
		l->max_inflight = max_inflight;
		return l;
	}
	OPENSSL_cleanse(&l->t, sizeof(l->t));
	free(l);
	return NULL;
}

void kv_loop_free(struct kv_loop *l)
{
	if (l == NULL)
		return;
	l->closing = 1;
	if (l->ac) {
		redisAsyncContext *ac = l->ac;
		l->ac = NULL;
		redisAsyncFree(ac); /* the ops sent on it are answered with NULL */
	}
	int cancelled = l->rq != NULL;
	if (l->rq)
		evdns_getaddrinfo_cancel(l->rq); /* its callback sees EVUTIL_EAI_CANCEL */
	l->rq = NULL;
	while (l->ops) { /* those waiting for their next send, or for the name */
		struct err e = {0};
		redis_target_unavailable(&l->t, NULL, "the kbs is stopping", &e);
		op_fail(l->ops, &e);
	}
	loopdns_free(l->base, l->dns, cancelled);
	OPENSSL_cleanse(&l->t, sizeof(l->t));
	free(l);
}

int kv_loop_full(const struct kv_loop *l)
{
	return l->inflight >= l->max_inflight;
}

/* An op for argv, sent. -1 err set (nothing will be called back). */
static int op_start(struct kv_loop *l, enum op_kind kind, int argc, const char **argv,
                    const size_t *argvlen, struct op **out, struct err *err)
{
	struct op *op = calloc(1, sizeof(*op));
	if (op == NULL)
		return err_set(err, "out of memory");
	op->l = l;
	op->kind = kind;
	op_attempt(op, 0);
	op->cmdlen = redisFormatCommandArgv(&op->cmd, argc, argv, argvlen);
	op->tm = evtimer_new(l->base, on_timer, op);
	op->next = l->ops;
	if (l->ops)
		l->ops->prev = op;
	l->ops = op;
	l->inflight++;
	if (op->cmdlen < 0 || op->tm == NULL) {
		op->cmdlen = 0;
		op_free(op);
		return err_set(err, "out of memory");
	}
	*out = op;
	return 0;
}

static int key_of(char *out, size_t cap, const char *ns, const char *key, struct err *err)
{
	if (!kv_key_valid(key) || (size_t)snprintf(out, cap, "%s:%s", ns, key) >= cap)
		return err_set(err, "invalid key");
	return 0;
}

int kv_loop_set_ttl(struct kv_loop *l, const char *ns, const char *key, const void *val, size_t len,
                    int overwrite, unsigned ttl_seconds, kv_loop_set_fn cb, void *arg,
                    struct err *err)
{
	char k[1024], ttls[16];
	const char *argv[6] = {"SET", k, len ? val : ""};
	size_t argvlen[6] = {3, 0, len};
	int argc = 3;
	struct op *op;
	if (key_of(k, sizeof(k), ns, key, err) < 0)
		return -1;
	argvlen[1] = strlen(k);
	argc = redis_set_options(argv, argvlen, argc, ttl_seconds, overwrite, ttls, sizeof(ttls));
	if (op_start(l, OP_SET, argc, argv, argvlen, &op, err) < 0)
		return -1;
	op->set_cb = cb;
	op->arg = arg;
	if (op_send(op, err) < 0) {
		op_free(op);
		return -1;
	}
	return 0;
}

int kv_loop_get_each(struct kv_loop *l, const char *const *ns, const char *const *keys, size_t n,
                     kv_loop_get_fn cb, void *arg, struct err *err)
{
	char k[KV_LOOP_MAX_KEYS][1024];
	const char *argv[KV_LOOP_MAX_KEYS + 1] = {"MGET"};
	size_t argvlen[KV_LOOP_MAX_KEYS + 1] = {4};
	struct op *op;
	if (n == 0 || n > KV_LOOP_MAX_KEYS)
		return err_set(err, "kv_loop_get_each takes 1 to %d keys", KV_LOOP_MAX_KEYS);
	for (size_t i = 0; i < n; i++) {
		if (key_of(k[i], sizeof(k[i]), ns[i], keys[i], err) < 0)
			return -1;
		argv[i + 1] = k[i];
		argvlen[i + 1] = strlen(k[i]);
	}
	if (op_start(l, OP_MGET, (int)n + 1, argv, argvlen, &op, err) < 0)
		return -1;
	op->n = n;
	op->get_cb = cb;
	op->arg = arg;
	if (op_send(op, err) < 0) {
		op_free(op);
		return -1;
	}
	return 0;
}

void kv_loop_delete(struct kv_loop *l, const char *ns, const char *key)
{
	char k[1024];
	const char *argv[2] = {"DEL", k};
	size_t argvlen[2] = {3, 0};
	struct err e = {0};
	struct op *op;
	if (key_of(k, sizeof(k), ns, key, &e) < 0)
		return;
	argvlen[1] = strlen(k);
	if (op_start(l, OP_DEL, 2, argv, argvlen, &op, &e) == 0 && op_send(op, &e) < 0)
		op_free(op);
}
