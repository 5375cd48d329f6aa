/*
 * session: the RCAR session table (kbs-protocol.md §2.3) — Authed{tee, nonce} then
 * Attested{token}, each with a fixed deadline set at /auth. In memory, one mutex-guarded
 * hash table; reads copy the record out so callers never hold the lock.
 *
 * The in-memory table holds at most `max` sessions ([attestation_service] max_sessions). When
 * it is full, /auth makes room in this order: expired sessions first, then the oldest session
 * that has not attested yet; a session that attested and is still valid is never evicted, so
 * a flood of /auth cannot log real attesters out: when only such sessions are left, /auth is
 * refused (the caller answers 503 + Retry-After) until one expires. To find the victims in
 * O(1), every entry is on a list ordered by deadline (= creation order, since every session
 * gets the same timeout), and each entry that may be evicted early also on the list of its
 * class, in the same order: real Authed, test Authed, test Attested (a real Attested entry is
 * on none).
 * An entry keeps what a later step reads and no more (struct ent): the nonce until /attest
 * consumes it, then the token; and for a token this process verified at /attest, not the
 * token but its payload's text, the claims the reads hand to the policy. The token's header
 * (the AS's jwk, maybe an x5c chain) and signature are of no use once it verified here. In
 * `make bench` an EAR token is ~2420 bytes and its payload 1029: a verified session took 2753
 * bytes of jemalloc's heap keeping the token, 1263 keeping the payload, and the kbs grew by
 * 2.86-2.94 KB a handshake against 1.41-1.44 KB (VmHWM, bench-kbs at 64 attesters for 8 s).
 * Request extra-params are not kept (nothing reads them after /auth).
 *
 * A read past the claims' deadline (the token's exp plus the leeway) answers what the full
 * check of the stored token answers there: the session is refused with that check's sentence
 * ("token expired"), which kbs_sessions_lookup hands out as claims_lapse. A token whose chain
 * ends before its exp plus the leeway is kept whole instead, not as claims: past the chain's
 * notAfter the full check may still take it by its header key in trusted_jwk_sets, so only
 * that check can say what a read gets then; each read verifies it (token.c's caches make
 * that cheap while the chain lives).
 *
 * Test TEEs cannot crowd out real ones. Anyone can write sample evidence, so an attested
 * sample session proves nothing about its holder: 200 sample handshakes took 0.6 s and filled
 * a table of 200, and then every real /auth got 503 for the session lifetime. With
 * test_tees_yield, a real TEE's /auth or /attest evicts test-TEE sessions (unattested first,
 * then attested, oldest first) before any real session, and a test TEE's /auth evicts only
 * test sessions that have not attested: a sample flood can neither fill the table against
 * real TEEs nor push a real attester out between its /auth and its /attest.
 *
 * The table is bounded in bytes as well as in count (max_bytes: entry, nonce and token), and
 * one token in at most max_token_size, also in a store: a 1.4 MB `svn` in sample evidence
 * made 1.87 MB tokens, and 40 of them took the kbs from 26 to 113 MB.
 *
 * A nonce is good for one successful /attest, across every replica sharing the store: the
 * Authed -> Attested step writes the Attested record to `kbs_protocol_nonce:<id>` with
 * set-if-absent, so of two /attest calls racing on two replicas exactly one wins, and a replay
 * of a consumed nonce is refused instead of being answered with the stored token as Trustee
 * does. `kbs_protocol_session:<id>` keeps the Authed record; a read fetches both keys at once
 * and the claim's record wins. Each replica keeps copies of the records it read or wrote
 * (session_cache.h), so a handshake makes three session round trips (SET NX at /auth, MGET and
 * SET NX at /attest) instead of six: a resource read on the replica that attested the session
 * answers from its copy, on another replica it costs one MGET.
 *
 * On Redis the same round trips can also be sent from an event loop without blocking it
 * (the _loop functions at the end, over kv/kv_loop.h): the same records, keys, expiries,
 * copies and sentences, the caller's continuation called with what the blocking function
 * would have returned.
 */
#include <assert.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "b64.h"
#include "kbs.h"
#include "kv/kv.h"
#include "kv/kv_loop.h"
#include "log.h"
#include "session_cache.h"

#define NBUCKETS 4096
#define NS_NONCE "kbs_protocol_nonce"

/* A doubly linked list threaded through the entries (one `struct link` per list). */
struct link {
	struct ent *prev, *next;
};

/* One session in memory, one allocation: the fixed part, then its text. Replaced (ent_attest)
 * when the session attests, since the text changes size. */
struct ent {
	struct ent *next;    /* hash chain */
	struct link byage;   /* every entry, earliest deadline first */
	struct link cls;     /* on `on`, earliest deadline first */
	struct list *on;     /* the class list holding the entry, NULL for a real Attested one */
	long long expires;   /* unix seconds */
	double claims_until; /* > 0: text is the payload of a token verified here, its claims
	                      * good until then; 0: text is what its state says */
	char id[33];
	char tee[32];
	uint8_t state; /* enum kbs_session_state */
	/* Authed: the nonce; Attested: the token, or (claims_until > 0) its payload's JSON text */
	char text[];
};

struct list {
	struct ent *head, *tail;
};

struct kbs_sessions {
	struct kv *kv;             /* borrowed; NULL = the in-memory table */
	struct kbs_scache *copies; /* with kv: this replica's copies (session_cache.h), or NULL */
	pthread_mutex_t mu;
	struct ent *b[NBUCKETS];
	struct list byage;
	/* the class lists: real Authed, test Authed, test Attested (test_tees_yield only) */
	struct list authed, test_authed, test_attested;
	size_t count;
	size_t max;
	size_t bytes; /* sum of ent_bytes() over the table; <= lim.max_bytes when that is set */
	struct kbs_session_limits lim;
	unsigned long long evicted[3]; /* expired, unattested, test_tee */
};

#define LINK(e, off) ((struct link *)((char *)(e) + (off)))

/* Inserts e keeping the list sorted by deadline; sessions arrive in deadline order, so the
 * walk from the tail stops at once in practice. */
static void list_insert(struct list *l, struct ent *e, size_t off)
{
	struct ent *after = l->tail;
	while (after && after->expires > e->expires)
		after = LINK(after, off)->prev;
	LINK(e, off)->prev = after;
	LINK(e, off)->next = after ? LINK(after, off)->next : l->head;
	if (LINK(e, off)->next)
		LINK(LINK(e, off)->next, off)->prev = e;
	else
		l->tail = e;
	if (after)
		LINK(after, off)->next = e;
	else
		l->head = e;
}

static void list_remove(struct list *l, struct ent *e, size_t off)
{
	struct link *k = LINK(e, off);
	if (k->prev)
		LINK(k->prev, off)->next = k->next;
	else
		l->head = k->next;
	if (k->next)
		LINK(k->next, off)->prev = k->prev;
	else
		l->tail = k->prev;
	k->prev = k->next = NULL;
}

#define OFF_AGE offsetof(struct ent, byage)
#define OFF_CLS offsetof(struct ent, cls)

bool kbs_tee_is_test(const char *tee)
{
	return strcmp(tee, "sample") == 0 || strcmp(tee, "sampledevice") == 0;
}

/* What an entry costs the table: the one allocation that holds it and its text. */
static size_t ent_bytes(const struct ent *e)
{
	return sizeof(*e) + strlen(e->text) + 1;
}

/* A new entry holding text[0..len) (NUL added), the rest zero; NULL when out of memory. */
static struct ent *ent_new(const char *text, size_t len)
{
	struct ent *e = calloc(1, sizeof(*e) + len + 1);
	if (e)
		memcpy(e->text, text, len);
	return e;
}

/* The text is a nonce, a bearer token or the claims of one: wiped. */
static void ent_free(struct ent *e)
{
	if (e) {
		OPENSSL_cleanse(e->text, strlen(e->text));
		free(e);
	}
}

/* The payload segment of a compact JWS, decoded (malloc'd, NUL-terminated): 0, or -1. */
static int jws_payload_text(const char *token, char **txt, size_t *n)
{
	const char *d1 = strchr(token, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	uint8_t *b = NULL;
	*txt = NULL;
	if (d2 == NULL || b64_decode(d1 + 1, (size_t)(d2 - d1 - 1), B64_URL, &b, n) < 0)
		return -1;
	char *t = realloc(b, *n + 1);
	if (t == NULL) {
		free(b);
		return -1;
	}
	t[*n] = '\0';
	*txt = t;
	return 0;
}

/* Claims text as JSON (new reference), or NULL. Only for the payload of a token this process
 * verified: jansson would hold an EAR claims set in about 7.7 times the bytes of its text, so
 * a session keeps the text and parses it again on each read, which costs a small part of
 * verifying the token. */
static json_t *claims_parse(const char *txt, size_t n)
{
	json_t *j = json_loadb(txt, n, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* The payload of a compact JWS as JSON (new reference), or NULL: the claims a store's copy
 * keeps (session_cache.h), with its token. */
static json_t *jws_payload(const char *token)
{
	char *txt = NULL;
	size_t n = 0;
	if (jws_payload_text(token, &txt, &n) != 0)
		return NULL;
	json_t *j = claims_parse(txt, n);
	OPENSSL_cleanse(txt, n);
	free(txt);
	return j;
}

/* What a read past the verified claims' deadline (the token's exp plus the leeway: claims that
 * end at a chain's notAfter are not kept, see mem_attest) answers: the sentence the full check
 * of the token (token.c, verify_full) gives then. */
#define LAPSE_SENTENCE "token expired"

static unsigned bucket_of(const char *id)
{
	unsigned h = 2166136261u;
	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h % NBUCKETS;
}

void kbs_session_clear(struct kbs_session *ss)
{
	free(ss->nonce);
	if (ss->token) {
		/* a bearer token for the passport flow */
		OPENSSL_cleanse(ss->token, strlen(ss->token));
		free(ss->token);
	}
	json_decref(ss->extra_params);
	memset(ss, 0, sizeof(*ss));
}

struct kbs_sessions *kbs_sessions_new(size_t max, struct err *err)
{
	struct kbs_sessions *s = calloc(1, sizeof(*s));
	if (!s) {
		err_set(err, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&s->mu, NULL);
	s->max = max ? max : 100000;
	return s;
}

void kbs_sessions_set_limits(struct kbs_sessions *s, const struct kbs_session_limits *l)
{
	pthread_mutex_lock(&s->mu);
	s->lim = *l;
	pthread_mutex_unlock(&s->mu);
}

void kbs_sessions_free(struct kbs_sessions *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < NBUCKETS; i++) {
		struct ent *e = s->b[i];
		while (e) {
			struct ent *n = e->next;
			ent_free(e);
			e = n;
		}
	}
	kbs_scache_free(s->copies);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* A UUIDv4 in simple form: 32 lowercase hex digits. */
static int new_id(char out[33])
{
	unsigned char u[16];
	if (RAND_bytes(u, sizeof(u)) != 1)
		return -1;
	u[6] = (u[6] & 0x0f) | 0x40;
	u[8] = (u[8] & 0x3f) | 0x80;
	static const char hx[] = "0123456789abcdef";
	for (int i = 0; i < 16; i++) {
		out[2 * i] = hx[u[i] >> 4];
		out[2 * i + 1] = hx[u[i] & 15];
	}
	out[32] = 0;
	return 0;
}

struct kbs_sessions *kbs_sessions_new_kv(struct kv *kv, struct err *err)
{
	struct kbs_sessions *s = kbs_sessions_new(0, err);
	if (s) {
		s->kv = kv;
		s->copies = kbs_scache_new();
	}
	return s;
}

/* {"state":"Authed"|"Attested","tee","nonce","extra-params"?,"token"?,"expires"}, malloc'd;
 * NULL when out of memory. */
static char *record_json(const struct kbs_session *ss)
{
	json_t *o = json_pack("{s:s,s:s,s:s,s:I}", "state",
	                      ss->state == KBS_SESSION_ATTESTED ? "Attested" : "Authed", "tee",
	                      ss->tee, "nonce", ss->nonce, "expires", (json_int_t)ss->expires);
	if (!o)
		return NULL;
	if (ss->extra_params)
		json_object_set(o, "extra-params", ss->extra_params);
	if (ss->token)
		json_object_set_new(o, "token", json_string(ss->token));
	char *doc = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return doc;
}

static int kv_put(struct kbs_sessions *s, const struct kbs_session *ss, int overwrite,
                  struct err *err)
{
	long long left = ss->expires - (long long)time(NULL);
	if (left <= 0)
		return 1;
	char *doc = record_json(ss);
	if (!doc)
		return err_set(err, "out of memory");
	int rc = kv_set_ttl(s->kv, KV_NS_SESSION, ss->id, doc, strlen(doc), overwrite,
	                    (unsigned)left, err);
	free(doc);
	return rc;
}

/* The Authed -> Attested step: the Attested record written to kbs_protocol_nonce:<id> only if
 * that key is absent, alive as long as the session; kbs_protocol_session:<id> keeps the Authed
 * record. One plain set-if-absent: it was a Lua script claiming the key and writing the record
 * beside it, which cost Redis ~40-100 us a call (a 6 KB token through Lua) against ~3 us for a
 * SET NX, and was half of the Redis CPU a handshake added. 0 done, 1 the claim exists, -2 the
 * session expired, -1 err set. */
static void wipe_doc(char *doc)
{
	if (doc) {
		OPENSSL_cleanse(doc, strlen(doc));
		free(doc);
	}
}

/* The Attested record of ss and the seconds it has left: 0, -2 the session expired, -1 err
 * set. */
static int claim_doc(const struct kbs_session *ss, char **doc, unsigned *ttl, struct err *err)
{
	long long left = ss->expires - (long long)time(NULL);
	if (left <= 0)
		return -2;
	if ((*doc = record_json(ss)) == NULL)
		return err_set(err, "out of memory");
	*ttl = (unsigned)left;
	return 0;
}

static int kv_claim(struct kbs_sessions *s, const struct kbs_session *ss, struct err *err)
{
	char *doc = NULL;
	unsigned ttl = 0;
	int rc = claim_doc(ss, &doc, &ttl, err);
	if (rc == 0)
		rc = kv_set_ttl(s->kv, NS_NONCE, ss->id, doc, strlen(doc), 0, ttl, err);
	wipe_doc(doc);
	return rc;
}

/* A storage failure: the full sentence to the log, the client's sentence (no hosts) in err. */
static int store_failed(const char *id, struct err *e, struct err *err)
{
	char cause[ERR_MSG_MAX];
	log_warn("kbs: session %s: storage: %s", id ? id : "-", e->msg);
	kbs_scrub_hosts(e->msg, cause, sizeof(cause));
	err_set(err, "session store unavailable: %s", cause);
	return -1;
}

/* A stored record (untrusted bytes: whoever can write to the store wrote them) into *out:
 * 0, or 1 when it is not a record, -2 when it has expired. */
static int record_parse(const uint8_t *val, size_t len, const char *id, struct kbs_session *out)
{
	json_t *o = json_loadb((const char *)val, len, 0, NULL);
	const char *st = json_string_value(json_object_get(o, "state"));
	const char *tee = json_string_value(json_object_get(o, "tee"));
	const char *nonce = json_string_value(json_object_get(o, "nonce"));
	json_t *exp = json_object_get(o, "expires");
	if (!st || !tee || !nonce || !json_is_integer(exp)) {
		json_decref(o);
		return 1;
	}
	if (json_integer_value(exp) < (long long)time(NULL)) {
		json_decref(o);
		return -2;
	}
	snprintf(out->id, sizeof(out->id), "%s", id);
	snprintf(out->tee, sizeof(out->tee), "%s", tee);
	out->state = strcmp(st, "Attested") == 0 ? KBS_SESSION_ATTESTED : KBS_SESSION_AUTHED;
	out->nonce = strdup(nonce);
	const char *tok = json_string_value(json_object_get(o, "token"));
	out->token = tok ? strdup(tok) : NULL;
	json_t *ep = json_object_get(o, "extra-params");
	out->extra_params = ep ? json_incref(ep) : NULL;
	out->expires = json_integer_value(exp);
	json_decref(o);
	if (!out->nonce || (tok && !out->token)) {
		kbs_session_clear(out);
		return 1;
	}
	return 0;
}

/* The session record val[0] and its nonce claim val[1] (either NULL when absent) into *out,
 * both wiped and freed: 0, 1 no session, -2 the session record has expired. */
static int load_records(const char *id, uint8_t *val[2], const size_t len[2],
                        struct kbs_session *out)
{
	int rc = val[0] ? record_parse(val[0], len[0], id, out) : 1;
	if (rc == 0 && val[1]) {
		struct kbs_session att = {0};
		int arc = record_parse(val[1], len[1], id, &att);
		if (arc == 0 && att.state == KBS_SESSION_ATTESTED) {
			kbs_session_clear(out);
			*out = att;
		} else if (arc == 0) {
			kbs_session_clear(&att);
		}
	}
	for (int i = 0; i < 2; i++)
		if (val[i]) {
			OPENSSL_cleanse(val[i], len[i]);
			free(val[i]);
		}
	return rc;
}

/* The session and its nonce claim in one read (MGET on Redis): the claim, when made, holds
 * the Attested record; without the session record the session is gone, whatever the claim
 * says. A claim that is not a record ("1", written by kbs versions that kept the Attested
 * record under the session key) leaves the session record to speak. */
static int kv_load(struct kbs_sessions *s, const char *id, struct kbs_session *out, struct err *err)
{
	const char *const nss[2] = {KV_NS_SESSION, NS_NONCE}, *const keys[2] = {id, id};
	uint8_t *val[2] = {NULL, NULL};
	size_t len[2] = {0, 0};
	struct err e = {0};
	if (kv_get_each(s->kv, nss, keys, 2, val, len, &e) != 0)
		return store_failed(id, &e, err);
	int rc = load_records(id, val, len, out);
	if (rc == -2)
		kv_delete(s->kv, KV_NS_SESSION, id, &e);
	return rc == 0 ? 0 : 1;
}

static int make_room(struct kbs_sessions *s, long long now, int add, size_t need,
                     const struct ent *keep, int real);
static void refused(struct kbs_sessions *s, int rc, size_t need, struct err *err);

int kbs_sessions_create(struct kbs_sessions *s, const char *tee, const char *nonce,
                        const json_t *extra_params, long long expires, char id_out[33],
                        struct err *err)
{
	if (s->kv) {
		struct kbs_session ss = {.state = KBS_SESSION_AUTHED, .expires = expires};
		if (new_id(ss.id) != 0)
			return err_set(err, "random number generator failed");
		snprintf(ss.tee, sizeof(ss.tee), "%s", tee);
		ss.nonce = (char *)nonce;
		ss.extra_params = (json_t *)extra_params;
		struct err e = {0};
		int rc = kv_put(s, &ss, 0, &e);
		if (rc < 0)
			return store_failed(ss.id, &e, err);
		if (rc != 0)
			return err_set(err, "session id collision or expiry in the past");
		memcpy(id_out, ss.id, 33);
		return 0;
	}
	struct ent *e = ent_new(nonce, strlen(nonce));
	if (!e)
		return err_set(err, "out of memory");
	if (new_id(e->id) != 0) {
		ent_free(e);
		return err_set(err, "random number generator failed");
	}
	e->state = KBS_SESSION_AUTHED;
	snprintf(e->tee, sizeof(e->tee), "%s", tee);
	e->expires = expires;
	size_t need = ent_bytes(e);
	pthread_mutex_lock(&s->mu);
	int test = s->lim.test_tees_yield && kbs_tee_is_test(tee);
	int rc = make_room(s, (long long)time(NULL), 1, need, NULL, !test);
	if (rc != 0) {
		refused(s, rc, need, err);
		pthread_mutex_unlock(&s->mu);
		ent_free(e);
		return -2;
	}
	unsigned b = bucket_of(e->id);
	e->next = s->b[b];
	s->b[b] = e;
	list_insert(&s->byage, e, OFF_AGE);
	e->on = test ? &s->test_authed : &s->authed;
	list_insert(e->on, e, OFF_CLS);
	s->count++;
	s->bytes += need;
	memcpy(id_out, e->id, 33);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

/* Unlinks and returns the entry for id (lock held), or NULL. */
static struct ent **find(struct kbs_sessions *s, const char *id)
{
	struct ent **pp = &s->b[bucket_of(id)];
	size_t n = strlen(id);
	if (n != sizeof((*pp)->id) - 1) /* ids are 32 hex digits */
		return NULL;
	/* the id is the session cookie, a credential: compare it in constant time */
	for (; *pp; pp = &(*pp)->next)
		if (CRYPTO_memcmp((*pp)->id, id, n) == 0)
			return pp;
	return NULL;
}

static void drop(struct kbs_sessions *s, struct ent **pp)
{
	struct ent *e = *pp;
	*pp = e->next;
	list_remove(&s->byage, e, OFF_AGE);
	if (e->on)
		list_remove(e->on, e, OFF_CLS);
	s->bytes -= ent_bytes(e);
	ent_free(e);
	s->count--;
}

/* Drops entry e, wherever it is in its hash chain (lock held). */
static void drop_ent(struct kbs_sessions *s, struct ent *e)
{
	struct ent **pp = &s->b[bucket_of(e->id)];
	while (*pp && *pp != e)
		pp = &(*pp)->next;
	if (*pp)
		drop(s, pp);
}

/* The first entry of list l other than keep. */
static struct ent *first_but(const struct list *l, size_t off, const struct ent *keep)
{
	struct ent *e = l->head;
	return e && e == keep ? LINK(e, off)->next : e;
}

/* The next victim (lock held), never keep: an expired session, then a test-TEE session that
 * has not attested; for a real TEE then an attested test-TEE session, then a real one that
 * has not attested. *why is the eviction counter's index. */
static struct ent *victim(struct kbs_sessions *s, long long now, const struct ent *keep, int real,
                          int *why)
{
	struct ent *e = first_but(&s->byage, OFF_AGE, keep);
	if (e && e->expires < now)
		return *why = 0, e;
	*why = 1;
	if ((e = first_but(&s->test_authed, OFF_CLS, keep)) || !real)
		return e;
	*why = 2;
	if ((e = first_but(&s->test_attested, OFF_CLS, keep)))
		return e;
	*why = 1;
	return first_but(&s->authed, OFF_CLS, keep);
}

/* Makes room for `add` more entries and `need` more bytes (lock held), never evicting keep;
 * real: the request is for a real TEE (test-TEE sessions yield to it). 0 when there is room,
 * 1 when the count is the bound, 2 the bytes. */
static int make_room(struct kbs_sessions *s, long long now, int add, size_t need,
                     const struct ent *keep, int real)
{
	static const char *const reason[3] = {"expired", "unattested", "test_tee"};
	size_t max_bytes = s->lim.max_bytes;
	while (s->count + add > s->max || (max_bytes && s->bytes + need > max_bytes)) {
		int why = 0;
		struct ent *old = victim(s, now, keep, real, &why);
		if (!old)
			return s->count + add > s->max ? 1 : 2;
		log_debug("kbs: session %s evicted (table full, %s)", old->id, reason[why]);
		drop_ent(s, old);
		s->evicted[why]++;
		kbs_metrics_inc_label(KML_SESSION_EVICTIONS, reason[why]);
	}
	return 0;
}

/* The sentence and counters of a make_room refusal (lock held). */
static void refused(struct kbs_sessions *s, int rc, size_t need, struct err *err)
{
	static unsigned long long last;
	unsigned long long now = (unsigned long long)time(NULL);
	const char *key = rc == 1 ? "max_sessions" : "max_sessions_bytes";
	kbs_metrics_inc_label(KML_LIMIT_REFUSALS, key);
	if (now != last) { /* one line a second at most: a flood would repeat it */
		last = now;
		log_warn("kbs: session table full: %zu sessions, %zu bytes, every one attested "
		         "and valid ([attestation_service] %s); refused until one expires",
		         s->count, s->bytes, key);
	}
	if (rc == 1)
		err_set(err,
		        "session table full: all %zu sessions are attested and still valid; "
		        "retry when one expires",
		        s->count);
	else
		err_set(err,
		        "session table full: %zu more bytes do not fit in max_sessions_bytes "
		        "(%zu) beside the attested sessions; retry when one expires",
		        need, s->lim.max_bytes);
}

/* The session of entry e as a kbs_session (lock held): an Attested one has no nonce left
 * (""), and one kept as its verified claims has no token; claims_lapse says what a read
 * answers once now is past their deadline. 0, or -1 out of memory (out cleared). */
static int ent_copy(const struct ent *e, double now, struct kbs_session *out)
{
	bool authed = e->state == KBS_SESSION_AUTHED;
	memcpy(out->id, e->id, sizeof(out->id));
	memcpy(out->tee, e->tee, sizeof(out->tee));
	out->state = (enum kbs_session_state)e->state;
	out->expires = e->expires;
	out->claims_until = e->claims_until;
	out->nonce = strdup(authed ? e->text : "");
	if (!authed && e->claims_until <= 0)
		out->token = strdup(e->text);
	else if (!authed)
		out->claims_lapse = now >= e->claims_until
		                        ? LAPSE_SENTENCE
		                        : "the claims verified at /attest could not be read";
	if (!out->nonce || (!authed && e->claims_until <= 0 && !out->token)) {
		kbs_session_clear(out);
		return -1;
	}
	return 0;
}

int kbs_sessions_get(struct kbs_sessions *s, const char *id, struct kbs_session *out)
{
	struct err e = {0};
	return kbs_sessions_lookup(s, id, out, &e);
}

int kbs_sessions_lookup(struct kbs_sessions *s, const char *id, struct kbs_session *out,
                        struct err *err)
{
	memset(out, 0, sizeof(*out));
	if (strlen(id) != 32 || strspn(id, "0123456789abcdef") != 32)
		return 1;
	if (s->kv) {
		if (kbs_scache_get(s->copies, id, 1, out) == 0)
			return 0;
		int rc = kv_load(s, id, out, err);
		if (rc == 0)
			kbs_scache_put(s->copies, out);
		return rc;
	}
	pthread_mutex_lock(&s->mu);
	struct ent **pp = find(s, id);
	if (!pp) {
		pthread_mutex_unlock(&s->mu);
		return 1;
	}
	double now = (double)time(NULL);
	const struct ent *e = *pp;
	if (e->expires < (long long)now) {
		drop(s, pp);
		pthread_mutex_unlock(&s->mu);
		return 1;
	}
	int rc = ent_copy(e, now, out);
	pthread_mutex_unlock(&s->mu);
	if (rc != 0)
		return err_set(err, "out of memory");
	return 0;
}

/* With a store, the claims of a session this replica attested live in its own copy, never in
 * the store: a resource read that lands here (HAProxy's stickiness, or one kbs) takes them
 * like the in-memory table's instead of verifying the token again; another replica verifies. */
bool kbs_sessions_keep_claims(const struct kbs_sessions *s)
{
	return s->kv == NULL || s->copies != NULL;
}

/* The session's claims may be used now: attested with claims kept, the session's own
 * deadline first, then the claims' (kbs_sessions_lookup decides what an expired session
 * means). Under s->mu. */
static const struct ent *claims_live(struct kbs_sessions *s, const char *id, double now)
{
	struct ent **pp = find(s, id);
	const struct ent *e = pp ? *pp : NULL;
	if (e && e->state == KBS_SESSION_ATTESTED && e->claims_until > 0 &&
	    e->expires >= (long long)now && now < e->claims_until)
		return e;
	return NULL;
}

bool kbs_sessions_claims_live(struct kbs_sessions *s, const char *id)
{
	if (strlen(id) != 32)
		return false;
	if (s->kv)
		return kbs_scache_claims_live(s->copies, id, (double)time(NULL)) == 1;
	pthread_mutex_lock(&s->mu);
	bool live = claims_live(s, id, (double)time(NULL)) != NULL;
	pthread_mutex_unlock(&s->mu);
	return live;
}

int kbs_sessions_claims(struct kbs_sessions *s, const char *id, json_t **claims)
{
	*claims = NULL;
	if (strlen(id) != 32)
		return 1;
	char *txt = NULL;
	if (s->kv) {
		struct kbs_session c;
		double now = (double)time(NULL);
		if (kbs_scache_get(s->copies, id, 1, &c) != 0)
			return 1;
		/* kbs_scache_get checked the session's deadline */
		if (c.token && c.claims_until > 0 && now < c.claims_until)
			*claims = jws_payload(c.token);
		kbs_session_clear(&c);
		return *claims ? 0 : 1;
	}
	/* copied out under the lock, parsed outside it */
	size_t n = 0;
	pthread_mutex_lock(&s->mu);
	const struct ent *e = claims_live(s, id, (double)time(NULL));
	if (e && (txt = malloc((n = strlen(e->text)) + 1)) != NULL)
		memcpy(txt, e->text, n + 1);
	pthread_mutex_unlock(&s->mu);
	if (txt != NULL) {
		*claims = claims_parse(txt, n);
		OPENSSL_cleanse(txt, n);
		free(txt);
	}
	return *claims ? 0 : 1;
}

int kbs_sessions_set_attested(struct kbs_sessions *s, const char *id, const char *token)
{
	struct err e = {0};
	return kbs_sessions_attest(s, id, token, &e);
}

int kbs_sessions_attest(struct kbs_sessions *s, const char *id, const char *token, struct err *err)
{
	return kbs_sessions_attest_verified(s, id, token, NULL, 0, err);
}

/* ss (Authed, from the store or a copy) made the Attested record of token: 0, 2 it is
 * attested already, -1 err set. */
static int claim_ready(struct kbs_session *ss, const char *token, json_t *claims, double until,
                       struct err *e)
{
	if (ss->state == KBS_SESSION_ATTESTED)
		return 2;
	free(ss->token);
	ss->token = strdup(token);
	ss->state = KBS_SESSION_ATTESTED;
	ss->claims_until = claims != NULL ? until : 0; /* the copy's, never the store's */
	return ss->token ? 0 : err_set(e, "out of memory");
}

/* The claim's outcome rc (kv_claim's, or claim_ready's 2) as kbs_sessions_attest_verified
 * returns it: the copy kept when it was made; ss cleared. */
static int claim_done(struct kbs_sessions *s, struct kbs_session *ss, int rc, struct err *e,
                      struct err *err)
{
	if (rc == 0)
		kbs_scache_put(s->copies, ss);
	else if (rc == 1)
		rc = 2; /* another /attest won the race */
	else if (rc == -2)
		rc = 1;
	if (rc < 0)
		store_failed(ss->id, e, err);
	kbs_session_clear(ss);
	return rc;
}

/* A token over max_session_token_size: counted, err set, 1. */
static int token_too_big(struct kbs_sessions *s, const char *token, struct err *err)
{
	size_t tlen = strlen(token);
	if (!s->lim.max_token_size || tlen <= s->lim.max_token_size)
		return 0;
	kbs_metrics_inc_label(KML_LIMIT_REFUSALS, "max_session_token_size");
	err_set(err,
	        "the attestation token is %zu bytes, more than max_session_token_size (%zu) "
	        "a session may keep; the evidence made too many or too large claims",
	        tlen, s->lim.max_token_size);
	return 1;
}

/* Entry n, a copy of e's fixed part with its Attested text, takes e's place in the hash chain,
 * the deadline list and the class lists (lock held); e freed. */
static void ent_attest(struct kbs_sessions *s, struct ent *e, struct ent *n)
{
	struct ent **pp = &s->b[bucket_of(e->id)];
	while (*pp != e)
		pp = &(*pp)->next;
	double claims_until = n->claims_until;
	assert(e->state == KBS_SESSION_AUTHED && e->on != NULL); /* on a class list */
	list_remove(e->on, e, OFF_CLS);
	memcpy(n, e, offsetof(struct ent, text));
	n->claims_until = claims_until;
	*pp = n;
	struct link *k = &n->byage;
	if (k->prev)
		k->prev->byage.next = n;
	else
		s->byage.head = n;
	if (k->next)
		k->next->byage.prev = n;
	else
		s->byage.tail = n;
	n->state = KBS_SESSION_ATTESTED;
	n->on = e->on == &s->test_authed ? &s->test_attested : NULL;
	if (n->on)
		list_insert(n->on, n, OFF_CLS);
	s->bytes = s->bytes - ent_bytes(e) + ent_bytes(n);
	ent_free(e);
}

/* The Attested text of token: with its claims verified here and a deadline, the payload's
 * text (owned, *verified set), else the token itself (borrowed). NULL when out of memory. */
static const char *attested_text(const char *token, const json_t *claims, double until,
                                 char **owned, size_t *len)
{
	*owned = NULL;
	if (claims != NULL && until > 0 && jws_payload_text(token, owned, len) == 0)
		return *owned;
	*len = strlen(token);
	return token;
}

/* Whether the claims' deadline `until` is the token's exp plus the leeway, not a chain's
 * earlier notAfter (the token verifier's rule, token.c): only then are the claims kept, since
 * only then is what a read past it gets known here (LAPSE_SENTENCE). */
static bool ends_at_exp(const json_t *claims, double until)
{
	const json_t *exp = json_object_get(claims, "exp");
	return json_is_number(exp) && until >= json_number_value(exp) + KBS_TOKEN_EXP_LEEWAY;
}

/* kbs_sessions_attest_verified in memory: the entry replaced by its Attested one. */
static int mem_attest(struct kbs_sessions *s, const char *id, const char *token, json_t *claims,
                      double until, struct err *err)
{
	char *payload = NULL;
	size_t len = 0;
	if (claims != NULL && !ends_at_exp(claims, until))
		claims = NULL; /* the token kept whole, verified by each read */
	const char *text = attested_text(token, claims, until, &payload, &len);
	struct ent *n = ent_new(text, len);
	if (payload) {
		OPENSSL_cleanse(payload, len);
		free(payload);
	}
	if (!n)
		return err_set(err, "out of memory");
	if (payload)
		n->claims_until = until;
	long long now = (long long)time(NULL);
	pthread_mutex_lock(&s->mu);
	struct ent **pp = find(s, id);
	struct ent *e = pp ? *pp : NULL; /* pp dies with the first eviction */
	size_t old = e ? ent_bytes(e) : 0, grow = ent_bytes(n) > old ? ent_bytes(n) - old : 0;
	int rc = 0;
	if (!e || e->expires < now) {
		rc = 1;
	} else if (e->state == KBS_SESSION_ATTESTED) {
		rc = 2;
	} else if ((rc = make_room(s, now, 0, grow, e, e->on != &s->test_authed)) != 0) {
		refused(s, rc, grow, err);
		rc = -2;
	} else {
		ent_attest(s, e, n);
		n = NULL;
	}
	pthread_mutex_unlock(&s->mu);
	ent_free(n);
	return rc;
}

int kbs_sessions_attest_verified(struct kbs_sessions *s, const char *id, const char *token,
                                 json_t *claims, double until, struct err *err)
{
	if (token_too_big(s, token, err))
		return 3;
	if (s->kv) {
		struct kbs_session ss;
		struct err e = {0};
		/* an Authed copy will do: the claim below is what decides */
		int rc = kbs_scache_get(s->copies, id, 0, &ss) == 0
		             ? 0
		             : kbs_sessions_lookup(s, id, &ss, err);
		if (rc != 0)
			return rc;
		/* the claim: set-if-absent, alive as long as the session, and the Attested record
		 * written only when it was made */
		rc = claim_ready(&ss, token, claims, until, &e);
		if (rc == 0)
			rc = kv_claim(s, &ss, &e);
		return claim_done(s, &ss, rc, &e, err);
	}
	return mem_attest(s, id, token, claims, until, err);
}

/* Backends without native expiry keep dead records until read; list and drop them, and the
 * nonce claims of sessions that are gone. */
static size_t kv_sweep(struct kbs_sessions *s)
{
	char **keys = NULL;
	size_t n = 0, dropped = 0;
	struct err e = {0};
	if (kv_list(s->kv, KV_NS_SESSION, &keys, &n, &e) != 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		struct kbs_session ss;
		int rc = kv_load(s, keys[i], &ss, &e);
		if (rc == 0)
			kbs_session_clear(&ss);
		else if (rc == 1)
			dropped++;
	}
	kv_list_free(keys, n);
	if (kv_list(s->kv, NS_NONCE, &keys, &n, &e) != 0)
		return dropped;
	for (size_t i = 0; i < n; i++) {
		struct kbs_session ss;
		if (kv_load(s, keys[i], &ss, &e) == 1)
			kv_delete(s->kv, NS_NONCE, keys[i], &e);
		else
			kbs_session_clear(&ss);
	}
	kv_list_free(keys, n);
	return dropped;
}

size_t kbs_sessions_sweep(struct kbs_sessions *s)
{
	long long now = (long long)time(NULL);
	size_t n = 0;
	if (s->kv) /* Redis expires records itself */
		return strcasecmp(kv_type_name(s->kv), "redis") == 0 ? 0 : kv_sweep(s);
	pthread_mutex_lock(&s->mu);
	while (s->byage.head && s->byage.head->expires < now) {
		drop_ent(s, s->byage.head);
		n++;
	}
	pthread_mutex_unlock(&s->mu);
	return n;
}

void kbs_sessions_evictions(struct kbs_sessions *s, unsigned long long *expired,
                            unsigned long long *unattested)
{
	pthread_mutex_lock(&s->mu);
	*expired = s->evicted[0];
	*unattested = s->evicted[1];
	pthread_mutex_unlock(&s->mu);
}

size_t kbs_sessions_count(struct kbs_sessions *s)
{
	if (s->kv) {
		char **keys = NULL;
		size_t n = 0;
		struct err e = {0};
		if (kv_list(s->kv, KV_NS_SESSION, &keys, &n, &e) != 0)
			return 0;
		kv_list_free(keys, n);
		return n;
	}
	pthread_mutex_lock(&s->mu);
	size_t n = s->count;
	pthread_mutex_unlock(&s->mu);
	return n;
}

size_t kbs_sessions_bytes(struct kbs_sessions *s)
{
	pthread_mutex_lock(&s->mu);
	size_t n = s->bytes;
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* ------------------------------------------------------ on an event loop (kv_loop.h) */

/* One call of the _loop functions: what its round trip's answer needs. */
struct loop_call {
	struct kbs_sessions *s;
	struct kv_loop *l;
	kbs_sessions_done_fn done;
	void *arg;
	struct kbs_session *out; /* lookup: the caller's */
	struct kbs_session ss;   /* attest: the record to claim with */
	char *token;             /* attest after a lookup: the token, owned */
	bool claims;             /* attest: the token's claims were verified */
	double until;
	struct err e;   /* the store's own sentence */
	struct err err; /* the caller's */
};

static struct loop_call *loop_call_new(struct kbs_sessions *s, struct kv_loop *l,
                                       kbs_sessions_done_fn done, void *arg)
{
	struct loop_call *c = calloc(1, sizeof(*c));
	if (c) {
		c->s = s;
		c->l = l;
		c->done = done;
		c->arg = arg;
	}
	return c;
}

/* The caller told, c freed. */
static void loop_call_end(struct loop_call *c, int rc)
{
	kbs_sessions_done_fn done = c->done;
	void *arg = c->arg;
	struct err err = c->err;
	kbs_session_clear(&c->ss);
	if (c->token) {
		OPENSSL_cleanse(c->token, strlen(c->token));
		free(c->token);
	}
	free(c);
	done(arg, rc, &err);
}

static void created(void *arg, int rc, struct err *e)
{
	struct loop_call *c = arg;
	if (rc < 0)
		rc = store_failed(c->ss.id, e, &c->err);
	else if (rc != 0)
		rc = err_set(&c->err, "session id collision or expiry in the past");
	loop_call_end(c, rc);
}

void kbs_sessions_create_loop(struct kbs_sessions *s, struct kv_loop *l, const char *tee,
                              const char *nonce, const json_t *extra_params, long long expires,
                              char id_out[33], kbs_sessions_done_fn done, void *arg)
{
	struct loop_call *c = loop_call_new(s, l, done, arg);
	struct err oom = {0};
	if (c == NULL) {
		err_set(&oom, "out of memory");
		done(arg, -1, &oom);
		return;
	}
	struct kbs_session ss = {.state = KBS_SESSION_AUTHED, .expires = expires};
	if (new_id(ss.id) != 0) {
		loop_call_end(c, err_set(&c->err, "random number generator failed"));
		return;
	}
	snprintf(ss.tee, sizeof(ss.tee), "%s", tee);
	ss.nonce = (char *)nonce;
	ss.extra_params = (json_t *)extra_params;
	memcpy(id_out, ss.id, 33);
	memcpy(c->ss.id, ss.id, 33); /* for store_failed */
	long long left = expires - (long long)time(NULL);
	char *doc = left > 0 ? record_json(&ss) : NULL;
	if (left <= 0 || doc == NULL) {
		loop_call_end(c, err_set(&c->err, left <= 0
		                                      ? "session id collision or expiry in the past"
		                                      : "out of memory"));
		return;
	}
	int rc = kv_loop_set_ttl(l, KV_NS_SESSION, ss.id, doc, strlen(doc), 0, (unsigned)left,
	                         created, c, &c->e);
	free(doc);
	if (rc < 0)
		loop_call_end(c, store_failed(ss.id, &c->e, &c->err));
}

static void loaded(void *arg, int rc, uint8_t **vals, size_t *lens, struct err *e)
{
	struct loop_call *c = arg;
	const char *id = c->out->id;
	if (rc < 0) {
		loop_call_end(c, store_failed(id, e, &c->err));
		return;
	}
	char sid[33];
	snprintf(sid, sizeof(sid), "%s", id);
	rc = load_records(sid, vals, lens, c->out);
	if (rc == -2)
		kv_loop_delete(c->l, KV_NS_SESSION, sid);
	if (rc == 0)
		kbs_scache_put(c->s->copies, c->out);
	loop_call_end(c, rc == 0 ? 0 : 1);
}

/* lookup into out, then done(arg, rc, err) */
static void lookup_loop(struct loop_call *c, const char *id, struct kbs_session *out)
{
	const char *const nss[2] = {KV_NS_SESSION, NS_NONCE}, *const keys[2] = {id, id};
	memset(out, 0, sizeof(*out));
	if (strlen(id) != 32 || strspn(id, "0123456789abcdef") != 32) {
		loop_call_end(c, 1);
		return;
	}
	if (kbs_scache_get(c->s->copies, id, 1, out) == 0) {
		loop_call_end(c, 0);
		return;
	}
	snprintf(out->id, sizeof(out->id), "%s", id); /* for loaded(), cleared by the parse */
	c->out = out;
	if (kv_loop_get_each(c->l, nss, keys, 2, loaded, c, &c->e) < 0) {
		out->id[0] = '\0';
		loop_call_end(c, store_failed(id, &c->e, &c->err));
	}
}

void kbs_sessions_lookup_loop(struct kbs_sessions *s, struct kv_loop *l, const char *id,
                              struct kbs_session *out, kbs_sessions_done_fn done, void *arg)
{
	struct loop_call *c = loop_call_new(s, l, done, arg);
	if (c == NULL) {
		struct err oom = {0};
		memset(out, 0, sizeof(*out));
		err_set(&oom, "out of memory");
		done(arg, -1, &oom);
		return;
	}
	lookup_loop(c, id, out);
}

static void claimed(void *arg, int rc, struct err *e)
{
	struct loop_call *c = arg;
	loop_call_end(c, claim_done(c->s, &c->ss, rc, e, &c->err));
}

/* c->ss holds the session (Authed copy or record): the claim. */
static void claim_loop(struct loop_call *c, const char *token)
{
	char *doc = NULL;
	unsigned ttl = 0;
	int rc = claim_ready(&c->ss, token, c->claims ? json_true() : NULL, c->until, &c->e);
	if (rc == 0)
		rc = claim_doc(&c->ss, &doc, &ttl, &c->e);
	if (rc == 0)
		rc = kv_loop_set_ttl(c->l, NS_NONCE, c->ss.id, doc, strlen(doc), 0, ttl, claimed, c,
		                     &c->e);
	wipe_doc(doc);
	if (rc != 0)
		loop_call_end(c, claim_done(c->s, &c->ss, rc, &c->e, &c->err));
}

/* The session read from the store for an attest: on to the claim. */
static void looked_up(void *arg, int rc, struct err *err)
{
	struct loop_call *a = arg;
	if (rc != 0) {
		a->err = *err;
		loop_call_end(a, rc);
		return;
	}
	claim_loop(a, a->token);
}

void kbs_sessions_attest_loop(struct kbs_sessions *s, struct kv_loop *l, const char *id,
                              const char *token, json_t *claims, double until,
                              kbs_sessions_done_fn done, void *arg)
{
	struct loop_call *c = loop_call_new(s, l, done, arg), *look;
	struct err oom = {0};
	if (c == NULL) {
		err_set(&oom, "out of memory");
		done(arg, -1, &oom);
		return;
	}
	c->claims = claims != NULL;
	c->until = until;
	if (token_too_big(s, token, &c->err)) {
		loop_call_end(c, 3);
		return;
	}
	/* an Authed copy will do, as on the blocking path: the claim is what decides */
	if (kbs_scache_get(s->copies, id, 0, &c->ss) == 0) {
		claim_loop(c, token);
		return;
	}
	if ((c->token = strdup(token)) == NULL ||
	    (look = loop_call_new(s, l, looked_up, c)) == NULL) {
		loop_call_end(c, err_set(&c->err, "out of memory"));
		return;
	}
	lookup_loop(look, id, &c->ss);
}
