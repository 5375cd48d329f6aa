/*
 * rvps: the reference value store (see rvps.h). Register runs a Trustee register message
 * through its extractor and stores every value, overwriting, as the §7.3 document
 *   {"version":"0.1.0","name":<id>,"expiration":"YYYY-MM-DDTHH:MM:SSZ","value":<JSON>}
 * in namespace reference_value of the configured key-value store. The wrapper's field
 * order is fixed by hand; the value is written compact with sorted keys, which is what
 * serde_json produces with or without preserve_order for values it parsed itself.
 * Expiration is the registration time (the pinned verification_time, else the clock) plus the
 * extractor's lifetime (config "lifetime_seconds": {"<type>": N}; default 12 months, as in
 * Trustee), or the end of the validity a signed CoRIM (or a CoRIM's rim-validity) gives when
 * that is earlier. Unlike Trustee it is enforced: a query at or after the expiration (judged
 * at the same clock) answers "not found", and a list marks the value "expired".
 *
 * A message's values land all or none. Where the store writes batches atomically (Redis
 * MULTI/EXEC, one Postgres transaction, memory under its lock: kv_can_batch) every value, its
 * provenance and the audit entry go in one batch. On the file stores every value and its
 * provenance is written in turn, the documents they replace having been read first; if a
 * write fails, the values already written are put back as they were (or removed). That is a
 * best effort: a crash or an outage of the store in the middle of the rollback can leave part
 * of a message stored, which the audit trail then does not show.
 *
 * Each registration and deletion appends one entry to an audit trail in the same store,
 * namespace rvps_audit, keyed "<nanoseconds since the epoch, 20 digits>-<8 random hex>" and
 * written set-if-absent, so entries sort by time and are never overwritten:
 *   {"time":<RFC 3339, the clock>,"action":"register"|"delete","names":[...],
 *    "provenance":<the provenance document, register only>}
 *
 * Beside each value, under the same name in namespace rvps_provenance (so the value document
 * stays byte-for-byte Trustee's), a provenance document says how it arrived:
 *   {"extractor":"corim","message_sha256":<hex of the register message text>,
 *    "registered_at":<RFC 3339, the clock>, "verified_at":<the verification time>,
 *    "signed":true|false, plus what the extractor vouched: "signer", "signer_key",
 *    "signer_issuer", "signature_alg", "not_after"}.
 */
#include "rvps.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "b64.h"
#include "hash.h"
#include "kv/kv.h"
#include "log.h"
#include "rvps/extractors.h"
#include "rvps/message.h"

#define RV_VERSION "0.1.0"
#define RVPS_NS_PROVENANCE "rvps_provenance"
#define RVPS_NS_AUDIT "rvps_audit"
#define MAX_LIFETIME_SECONDS (100LL * 366 * 86400)
#define DUMP_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)

struct rvps {
	struct kv *kv;
	int owns_kv;
	struct rvps_extractor_set *ex; /* owned: each extractor's config and the pinned time */
	json_t *lifetimes;    /* owned: extractor type -> lifetime in seconds (integers), or NULL */
	long long max_values; /* per register message, > 0 */
};

void rvps_set_max_values(struct rvps *r, long long n)
{
	r->max_values = n > 0 ? n : RVPS_MAX_VALUES_DEFAULT;
}

/* "max_reference_values_per_message": a positive integer, default RVPS_MAX_VALUES_DEFAULT. */
static int read_max_values(struct rvps *r, const json_t *config, struct err *err)
{
	const json_t *m =
	    config != NULL ? json_object_get(config, "max_reference_values_per_message") : NULL;

	r->max_values = RVPS_MAX_VALUES_DEFAULT;
	if (m == NULL)
		return 0;
	if (!json_is_integer(m) || json_integer_value(m) < 1)
		return err_set(err, "\"max_reference_values_per_message\" must be a positive "
		                    "integer");
	r->max_values = json_integer_value(m);
	return 0;
}

/* "lifetime_seconds": {"<extractor type>": N} with 1 <= N <= 100 years. A type this build
 * has no extractor for is logged and ignored, as an unknown member of "extractors" is. */
static int read_lifetimes(struct rvps *r, const json_t *config, struct err *err)
{
	const json_t *lt = config != NULL ? json_object_get(config, "lifetime_seconds") : NULL;
	const char *type;
	json_t *v;

	if (lt == NULL || json_is_null(lt))
		return 0;
	if (!json_is_object(lt))
		return err_set(err, "\"lifetime_seconds\" must be an object mapping an extractor "
		                    "type to seconds");
	json_object_foreach((json_t *)lt, type, v)
	{
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > MAX_LIFETIME_SECONDS)
			return err_set(err,
			               "lifetime_seconds.%s must be a whole number of seconds "
			               "from 1 to 100 years",
			               type);
		if (rvps_extractor_find(type) == NULL)
			log_warn(
			    "rvps: lifetime_seconds.%s names no extractor this build has; ignored",
			    type);
	}
	r->lifetimes = json_deep_copy(lt);
	return r->lifetimes == NULL ? err_set(err, "out of memory") : 0;
}

/* The parts of an RVPS both constructors share: extractors, their clock and lifetimes. */
static struct rvps *rvps_alloc(const json_t *config, struct err *err)
{
	struct rvps *r = calloc(1, sizeof(*r));

	if (r == NULL) {
		err_set(err, "out of memory");
		return NULL;
	}
	if (read_max_values(r, config, err) < 0) {
		err_prefix(err, "RVPS configuration");
		free(r);
		return NULL;
	}
	r->ex = rvps_extractor_set_new(config, err);
	if (r->ex == NULL || read_lifetimes(r, config, err) < 0) {
		err_prefix(err, "RVPS configuration");
		rvps_extractor_set_free(r->ex);
		free(r);
		return NULL;
	}
	return r;
}

struct rvps *rvps_new(const json_t *config, struct err *err)
{
	const json_t *storage = NULL;
	struct rvps *r;

	if (config != NULL && !json_is_object(config)) {
		err_set(err, "The RVPS configuration must be a JSON object");
		return NULL;
	}
	if (config != NULL) {
		storage = json_object_get(config, "storage");
		if (storage != NULL && json_is_null(storage))
			storage = NULL;
		if (storage != NULL && !json_is_object(storage)) {
			err_set(err, "RVPS configuration: \"storage\" must be an object");
			return NULL;
		}
	}
	r = rvps_alloc(config, err);
	if (r == NULL)
		return NULL;
	r->kv = kv_open(storage, err);
	if (r->kv == NULL) {
		err_prefix(err, "RVPS storage");
		rvps_free(r);
		return NULL;
	}
	r->owns_kv = 1;
	log_info("rvps: reference values stored in %s", kv_type_name(r->kv));
	return r;
}

struct rvps *rvps_new_with_kv_config(struct kv *kv, const json_t *config, struct err *err)
{
	struct rvps *r;

	if (kv == NULL) {
		err_set(err, "The RVPS needs a key-value store");
		return NULL;
	}
	if (config != NULL && !json_is_object(config)) {
		err_set(err, "The RVPS configuration must be a JSON object");
		return NULL;
	}
	r = rvps_alloc(config, err);
	if (r != NULL)
		r->kv = kv;
	return r;
}

struct rvps *rvps_new_with_kv(struct kv *kv, struct err *err)
{
	return rvps_new_with_kv_config(kv, NULL, err);
}

void rvps_free(struct rvps *r)
{
	if (r == NULL)
		return;
	if (r->owns_kv)
		kv_close(r->kv);
	rvps_extractor_set_free(r->ex);
	json_decref(r->lifetimes);
	free(r);
}

/* The expiration of a value registered at `base` by extractor `type`: base + the configured
 * lifetime, else + 12 months (Feb 29 becomes Feb 28 of the next year, as chrono's
 * checked_add_months clamps), seconds precision, UTC. not_after (RFC 3339, may be NULL): the
 * end of the validity the extractor verified (a signed CoRIM's), used when earlier. */
static void expiration_string(const struct rvps *r, const char *type, time_t base,
                              const char *not_after, char out[32])
{
	const json_t *lt = r->lifetimes != NULL ? json_object_get(r->lifetimes, type) : NULL;
	time_t exp, cap;
	struct tm tm;

	gmtime_r(&base, &tm);
	if (lt != NULL) {
		exp = base + (time_t)json_integer_value(lt);
	} else {
		tm.tm_year += 1;
		if (tm.tm_mon == 1 && tm.tm_mday == 29)
			tm.tm_mday = 28;
		exp = timegm(&tm);
	}
	if (not_after != NULL && rvps_parse_rfc3339(not_after, &cap) == 0 && cap < exp)
		exp = cap;
	gmtime_r(&exp, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The stored document for one value; malloc'd text. */
static char *rv_document(const char *name, const json_t *value, const char *exp)
{
	json_t *jname = json_string(name);
	char *name_s = NULL, *value_s = NULL, *doc = NULL;

	if (jname == NULL)
		return NULL;
	name_s = json_dumps(jname, JSON_ENCODE_ANY | JSON_COMPACT);
	value_s = json_dumps(value, DUMP_FLAGS);
	json_decref(jname);
	if (name_s != NULL && value_s != NULL &&
	    asprintf(&doc, "{\"version\":\"%s\",\"name\":%s,\"expiration\":\"%s\",\"value\":%s}",
	             RV_VERSION, name_s, exp, value_s) < 0)
		doc = NULL;
	free(name_s);
	free(value_s);
	return doc;
}

/* 1 when a stored document's expiration is at or before `now`, or cannot be read (fail
 * closed: Trustee's parser accepts only "YYYY-MM-DDTHH:MM:SSZ" too). */
static int doc_expired(const json_t *doc, time_t now)
{
	const char *exp = json_string_value(json_object_get(doc, "expiration"));
	time_t t;

	if (exp == NULL || rvps_parse_rfc3339(exp, &t) < 0)
		return 1;
	return t <= now;
}

static void rfc3339(time_t t, char out[32])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The provenance document of one message (compact JSON, malloc'd); prov: what the extractor
 * added. */
static char *provenance_document(const char *type, const char *message_json, json_t *prov)
{
	uint8_t md[HASH_MAX];
	size_t n = hash_digest(HASH_SHA256, message_json, strlen(message_json), md);
	char *hex = n ? hex_encode(md, n) : NULL, when[32], *doc = NULL;
	json_t *d = json_object();

	if (hex != NULL && d != NULL) {
		rfc3339(time(NULL), when);
		json_object_set_new(d, "extractor", json_string(type));
		json_object_set_new(d, "message_sha256", json_string(hex));
		json_object_set_new(d, "registered_at", json_string(when));
		json_object_set_new(d, "signed",
		                    json_boolean(json_object_get(prov, "signature_alg") != NULL));
		json_object_update(d, prov);
		doc = json_dumps(d, JSON_COMPACT);
	}
	json_decref(d);
	free(hex);
	return doc;
}

/* ---- the audit trail ---- */

/* One entry {"time", "action", "names", ["provenance"]} (names and prov borrowed): its key
 * and its text (*text malloc'd). 0 or -1 err set. */
static int audit_entry_make(const char *action, json_t *names, const char *prov_doc, char key[48],
                            char **text, struct err *err)
{
	struct timespec ts;
	uint32_t rnd = 0;
	char when[32];
	json_t *e = json_object(), *prov = NULL;
	int rc = -1;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) != 1)
		rnd = (uint32_t)ts.tv_nsec ^ (uint32_t)getpid();
	snprintf(key, 48, "%020lld-%08x", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec, rnd);
	rfc3339(ts.tv_sec, when);
	if (prov_doc != NULL)
		prov = json_loads(prov_doc, 0, NULL);
	if (e == NULL || json_object_set_new(e, "time", json_string(when)) < 0 ||
	    json_object_set_new(e, "action", json_string(action)) < 0 ||
	    json_object_set(e, "names", names) < 0 ||
	    (prov != NULL && json_object_set(e, "provenance", prov) < 0) ||
	    (*text = json_dumps(e, JSON_COMPACT)) == NULL) {
		err_set(err, "out of memory");
		goto out;
	}
	rc = 0;
out:
	json_decref(prov);
	json_decref(e);
	return rc;
}

/* Appends one entry, set-if-absent. */
static int audit_append(struct rvps *r, const char *action, json_t *names, const char *prov_doc,
                        struct err *err)
{
	char key[48], *text = NULL;
	int rc = audit_entry_make(action, names, prov_doc, key, &text, err);

	if (rc == 0)
		rc = kv_set(r->kv, RVPS_NS_AUDIT, key, text, strlen(text), 0, err);
	if (rc == 1)
		rc = err_set(err, "audit entry %s exists already", key);
	if (rc < 0)
		err_prefix(err, "append to the audit trail");
	free(text);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every document of a namespace, sorted by key, through `each` (which may skip one by
 * returning 0 without adding it); *out_json the compact JSON array (malloc'd). */
static int list_docs(struct rvps *r, const char *ns,
                     int (*each)(struct rvps *, const char *, json_t *, json_t *), char **out_json,
                     struct err *err)
{
	char **keys = NULL;
	size_t n = 0;
	json_t *arr = json_array();
	int rc = -1;

	*out_json = NULL;
	if (arr == NULL)
		return err_set(err, "out of memory");
	if (kv_list(r->kv, ns, &keys, &n, err) < 0) {
		json_decref(arr);
		return -1;
	}
	if (n > 0)
		qsort(keys, n, sizeof(*keys), cmp_str);
	for (size_t i = 0; i < n; i++) {
		uint8_t *raw = NULL;
		size_t len = 0;
		json_t *doc;
		int g = kv_get(r->kv, ns, keys[i], &raw, &len, err);

		if (g < 0)
			goto out;
		if (g == 1) /* removed since the listing */
			continue;
		doc = json_loadb((const char *)raw, len, 0, NULL);
		free(raw);
		if (doc == NULL || !json_is_object(doc)) {
			log_warn("rvps: %s:%s is not a JSON object; left out of the listing", ns,
			         keys[i]);
			json_decref(doc);
			continue;
		}
		g = each(r, keys[i], doc, arr);
		json_decref(doc);
		if (g < 0) {
			err_set(err, "out of memory");
			goto out;
		}
	}
	if ((*out_json = json_dumps(arr, JSON_COMPACT)) == NULL) {
		err_set(err, "out of memory");
		goto out;
	}
	rc = 0;
out:
	kv_list_free(keys, n);
	json_decref(arr);
	return rc;
}

static int audit_entry(struct rvps *r, const char *key, json_t *doc, json_t *arr)
{
	(void)r;
	return json_object_set_new(doc, "id", json_string(key)) < 0 ||
	               json_array_append(arr, doc) < 0
	           ? -1
	           : 0;
}

int rvps_audit(struct rvps *r, char **audit_json, struct err *err)
{
	if (list_docs(r, RVPS_NS_AUDIT, audit_entry, audit_json, err) < 0)
		return err_prefix(err, "read the audit trail");
	return 0;
}

/* ---- registration: staged, written in turn, rolled back on failure ---- */

/* One value of a message: what is written and what it replaces. */
struct staged {
	const char *name;            /* borrowed from the extracted values */
	char *doc;                   /* owned: the new §7.3 document */
	uint8_t *old_doc, *old_prov; /* owned: what was stored before, NULL when absent */
	size_t old_doc_len, old_prov_len;
	int written; /* 1 once the write of doc was attempted (it may have landed) */
};

/* Put one namespace's key back as it was: the old bytes, or nothing. */
static int restore_one(struct rvps *r, const char *ns, const char *name, const uint8_t *old,
                       size_t len, struct err *err)
{
	if (old != NULL)
		return kv_set(r->kv, ns, name, old, len, 1, err);
	return kv_delete(r->kv, ns, name, err) < 0 ? -1 : 0;
}

static void rollback(struct rvps *r, struct staged *st, size_t n)
{
	for (size_t i = n; i-- > 0;) {
		struct err e;

		if (!st[i].written)
			continue;
		err_clear(&e);
		if (restore_one(r, KV_NS_REFERENCE_VALUE, st[i].name, st[i].old_doc,
		                st[i].old_doc_len, &e) < 0 ||
		    restore_one(r, RVPS_NS_PROVENANCE, st[i].name, st[i].old_prov,
		                st[i].old_prov_len, &e) < 0)
			log_error("rvps: rollback of reference value %s failed, it may be left as "
			          "the refused message wrote it: %s",
			          st[i].name, e.msg);
		else
			log_info("rvps: rolled back reference value %s", st[i].name);
	}
}

/* Reads what st->name replaces, then writes the value and its provenance. */
static int write_one(struct rvps *r, struct staged *st, const char *pdoc, struct err *err)
{
	int g = kv_get(r->kv, KV_NS_REFERENCE_VALUE, st->name, &st->old_doc, &st->old_doc_len, err);

	if (g == 0)
		g = kv_get(r->kv, RVPS_NS_PROVENANCE, st->name, &st->old_prov, &st->old_prov_len,
		           err);
	if (g < 0)
		return -1;
	st->written = 1;
	if (kv_set(r->kv, KV_NS_REFERENCE_VALUE, st->name, st->doc, strlen(st->doc), 1, err) < 0 ||
	    kv_set(r->kv, RVPS_NS_PROVENANCE, st->name, pdoc, strlen(pdoc), 1, err) < 0)
		return -1;
	return 0;
}

/* On a store that writes batches (Redis, Postgres, memory): every value, its provenance and
 * the audit entry in one atomic batch, so nothing needs putting back. */
static int store_batch(struct rvps *r, const struct staged *st, size_t n, json_t *names,
                       const char *pdoc, struct err *err)
{
	struct kv_write *w = calloc(2 * n + 1, sizeof(*w));
	char key[48], *text = NULL;
	int rc = -1;

	if (w == NULL) {
		err_set(err, "out of memory");
		goto out;
	}
	if (audit_entry_make("register", names, pdoc, key, &text, err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		w[2 * i] = (struct kv_write){KV_NS_REFERENCE_VALUE, st[i].name, st[i].doc,
		                             strlen(st[i].doc), 1};
		w[2 * i + 1] =
		    (struct kv_write){RVPS_NS_PROVENANCE, st[i].name, pdoc, strlen(pdoc), 1};
	}
	w[2 * n] = (struct kv_write){RVPS_NS_AUDIT, key, text, strlen(text), 0};
	rc = kv_set_batch(r->kv, w, 2 * n + 1, err);
	if (rc == 1)
		rc = err_set(err, "audit entry %s exists already", key);
	if (rc < 0)
		err_prefix(err, "store the message's %zu reference values (none of them is kept)",
		           n);
out:
	free(text);
	free(w);
	return rc;
}

/* Stages every value; writes them, their provenance and the audit entry in one batch where
 * the store can, else in turn with a rollback; all or none. */
static int store_values(struct rvps *r, const char *type, json_t *values, const char *pdoc,
                        const char *not_after, struct err *err)
{
	size_t n = json_object_size(values), i = 0;
	struct staged *st = calloc(n ? n : 1, sizeof(*st));
	json_t *names = json_array(), *value;
	const char *name;
	char exp[32];
	int rc = -1;

	if (st == NULL || names == NULL) {
		err_set(err, "out of memory");
		goto out;
	}
	expiration_string(r, type, rvps_extractor_set_time(r->ex), not_after, exp);
	json_object_foreach(values, name, value)
	{
		st[i].name = name;
		if ((st[i].doc = rv_document(name, value, exp)) == NULL ||
		    json_array_append_new(names, json_string(name)) < 0) {
			err_set(err, "out of memory");
			goto out;
		}
		i++;
	}
	if (kv_can_batch(r->kv)) {
		rc = store_batch(r, st, n, names, pdoc, err);
		goto logged;
	}
	for (i = 0; i < n; i++)
		if (write_one(r, &st[i], pdoc, err) < 0) {
			err_prefix(err, "store reference value %s (nothing of the message is kept)",
			           st[i].name);
			goto out;
		}
	if (audit_append(r, "register", names, pdoc, err) < 0)
		goto out;
	rc = 0;
logged:
	for (i = 0; rc == 0 && i < n; i++)
		log_info("rvps: registered reference value %s, expires %s", st[i].name, exp);
out:
	if (rc < 0 && st != NULL)
		rollback(r, st, n);
	for (i = 0; st != NULL && i < n; i++) {
		free(st[i].doc);
		free(st[i].old_doc);
		free(st[i].old_prov);
	}
	free(st);
	json_decref(names);
	return rc;
}

int rvps_register(struct rvps *r, const char *message_json, struct err *err)
{
	struct rvps_message m;
	json_t *values = NULL, *prov = NULL;
	char *pdoc = NULL, when[32];
	int rc = -1;

	if (message_json == NULL)
		return err_set(err, "parse message: no message given");
	if (rvps_message_parse((const uint8_t *)message_json, strlen(message_json), &m, err) < 0)
		return -1;
	if ((prov = json_object()) == NULL) {
		err_set(err, "out of memory");
		goto out;
	}
	if (rvps_extractor_set_extract(r->ex, m.type, m.payload, m.payload_len, &values, prov,
	                               err) < 0)
		goto out;
	if ((long long)json_object_size(values) > r->max_values) {
		err_set(err,
		        "the message carries %zu reference values, over the limit of %lld per "
		        "message (max_reference_values_per_message): register them in smaller "
		        "messages",
		        json_object_size(values), r->max_values);
		goto out;
	}
	rfc3339(rvps_extractor_set_time(r->ex), when);
	json_object_set_new(prov, "verified_at", json_string(when));
	if ((pdoc = provenance_document(m.type, message_json, prov)) == NULL) {
		err_set(err, "out of memory");
		goto out;
	}
	rc = store_values(r, m.type, values, pdoc,
	                  json_string_value(json_object_get(prov, "not_after")), err);
out:
	free(pdoc);
	json_decref(prov);
	json_decref(values);
	rvps_message_clear(&m);
	return rc;
}

int rvps_query_provenance(struct rvps *r, const char *id, char **prov_json, struct err *err)
{
	uint8_t *raw = NULL;
	size_t len = 0;
	int rc;

	*prov_json = NULL;
	if (id == NULL || id[0] == '\0')
		return 0;
	rc = kv_get(r->kv, RVPS_NS_PROVENANCE, id, &raw, &len, err);
	if (rc < 0)
		return err_prefix(err, "read the provenance of %s", id);
	if (rc == 1)
		return 0;
	*prov_json = malloc(len + 1);
	if (*prov_json == NULL) {
		free(raw);
		return err_set(err, "out of memory");
	}
	memcpy(*prov_json, raw, len);
	(*prov_json)[len] = '\0';
	free(raw);
	return 0;
}

/* The "value" of a stored document raw[0..len) (new reference), or NULL when it has expired
 * (*value NULL, 0 returned); -1 when the document is not one of ours. */
static int stored_value(struct rvps *r, const char *id, const uint8_t *raw, size_t len,
                        json_t **value, struct err *err)
{
	json_error_t jerr;
	json_t *doc = json_loadb((const char *)raw, len, 0, &jerr);

	*value = NULL;
	if (doc == NULL)
		return err_set(err, "stored reference value %s is not JSON: %s", id, jerr.text);
	if (json_object_get(doc, "value") == NULL) {
		json_decref(doc);
		return err_set(err, "stored reference value %s has no \"value\" field", id);
	}
	if (doc_expired(doc, rvps_extractor_set_time(r->ex)))
		log_info("rvps: reference value %s expired at %s; not returned", id,
		         json_string_value(json_object_get(doc, "expiration")));
	else
		*value = json_incref(json_object_get(doc, "value"));
	json_decref(doc);
	return 0;
}

/* How a query reads the store: kv_get, or kv_peek (never waits; KV_PEEK_UNKNOWN). */
typedef int (*read_fn)(struct kv *, const char *, const char *, uint8_t **, size_t *, struct err *);

/* rvps_query and rvps_query_peek: the same steps, read with `rd`. */
static int query_read(struct rvps *r, read_fn rd, const char *id, char **value_json,
                      struct err *err)
{
	uint8_t *raw = NULL;
	size_t len = 0;
	json_t *value;
	int rc;

	*value_json = NULL;
	if (id == NULL || id[0] == '\0')
		return 0;
	rc = rd(r->kv, KV_NS_REFERENCE_VALUE, id, &raw, &len, err);
	if (rc < 0)
		return err_prefix(err, "read reference value %s", id);
	if (rc == 1 || rc == KV_PEEK_UNKNOWN)
		return rc == KV_PEEK_UNKNOWN ? KV_PEEK_UNKNOWN : 0;
	if (rd == kv_peek && len > RVPS_PEEK_MAX) {
		free(raw); /* parsing it is a worker's job */
		return KV_PEEK_UNKNOWN;
	}
	rc = stored_value(r, id, raw, len, &value, err);
	free(raw);
	if (rc < 0 || value == NULL)
		return rc;
	*value_json = json_dumps(value, DUMP_FLAGS);
	json_decref(value);
	if (*value_json == NULL)
		return err_set(err, "out of memory");
	return 0;
}

int rvps_query(struct rvps *r, const char *id, char **value_json, struct err *err)
{
	return query_read(r, kv_get, id, value_json, err);
}

int rvps_query_peek(struct rvps *r, const char *id, char **value_json, struct err *err)
{
	int rc = query_read(r, kv_peek, id, value_json, err);

	if (rc < 0) {
		err_clear(err); /* a worker reads again and says what is wrong */
		return KV_PEEK_UNKNOWN;
	}
	return rc;
}

/* The stored documents of keys[0..n) by kv_peek, all of them known and together at most
 * RVPS_PEEK_MAX bytes: 0, else KV_PEEK_UNKNOWN with nothing left in raw. */
static int peek_many(struct kv *kv, const char *const *keys, size_t n, uint8_t **raw, size_t *len)
{
	size_t total = 0, i;
	struct err e;

	for (i = 0; i < n; i++) {
		int rc = kv_peek(kv, KV_NS_REFERENCE_VALUE, keys[i], &raw[i], &len[i], &e);

		if (rc == 1) {
			raw[i] = NULL;
			continue;
		}
		if (rc != 0 || (total += len[i]) > RVPS_PEEK_MAX) {
			if (rc == 0)
				i++;
			while (i-- > 0) {
				free(raw[i]);
				raw[i] = NULL;
			}
			return KV_PEEK_UNKNOWN;
		}
	}
	return 0;
}

/* rvps_query_many and rvps_query_many_peek (peek: KV_PEEK_UNKNOWN when the store must be
 * asked, nothing in *values). */
static int query_many_read(struct rvps *r, int peek, const char *const *ids, size_t n,
                           json_t **values, struct err *err)
{
	uint8_t **raw = calloc(n + 1, sizeof(*raw));
	size_t *len = calloc(n + 1, sizeof(*len));
	const char **keys = calloc(n + 1, sizeof(*keys));
	size_t nk = 0, i;
	int rc = -1;

	*values = json_object();
	if (raw == NULL || len == NULL || keys == NULL || *values == NULL) {
		err_set(err, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) /* an empty id has no value, as in rvps_query */
		if (ids[i] != NULL && ids[i][0] != '\0')
			keys[nk++] = ids[i];
	if (peek && peek_many(r->kv, keys, nk, raw, len) != 0) {
		rc = KV_PEEK_UNKNOWN;
		goto out;
	}
	if (!peek && kv_get_many(r->kv, KV_NS_REFERENCE_VALUE, keys, nk, raw, len, err) < 0) {
		err_prefix(err, "read reference values");
		goto out;
	}
	for (i = 0; i < nk; i++) {
		json_t *v = NULL;
		if (raw[i] != NULL && stored_value(r, keys[i], raw[i], len[i], &v, err) < 0)
			goto out;
		if (v != NULL && json_object_set_new(*values, keys[i], v) < 0) {
			err_set(err, "out of memory");
			goto out;
		}
	}
	rc = 0;
out:
	for (i = 0; raw != NULL && i < nk; i++)
		free(raw[i]);
	free(raw);
	free(len);
	free(keys);
	if (rc != 0) {
		json_decref(*values);
		*values = NULL;
	}
	return rc;
}

int rvps_query_many(struct rvps *r, const char *const *ids, size_t n, json_t **values,
                    struct err *err)
{
	return query_many_read(r, 0, ids, n, values, err);
}

int rvps_query_many_peek(struct rvps *r, const char *const *ids, size_t n, json_t **values,
                         struct err *err)
{
	int rc = query_many_read(r, 1, ids, n, values, err);

	if (rc < 0) {
		err_clear(err); /* a worker reads again and says what is wrong */
		return KV_PEEK_UNKNOWN;
	}
	return rc;
}

static int list_entry(struct rvps *r, const char *key, json_t *doc, json_t *arr)
{
	(void)key;
	if (json_object_set_new(doc, "expired",
	                        json_boolean(doc_expired(doc, rvps_extractor_set_time(r->ex)))) < 0)
		return -1;
	return json_array_append(arr, doc) < 0 ? -1 : 0;
}

int rvps_list(struct rvps *r, char **list_json, struct err *err)
{
	if (list_docs(r, KV_NS_REFERENCE_VALUE, list_entry, list_json, err) < 0)
		return err_prefix(err, "list reference values");
	return 0;
}

int rvps_delete(struct rvps *r, const char *id, int *deleted, struct err *err)
{
	json_t *names;
	int rc;

	*deleted = 0;
	if (id == NULL || id[0] == '\0')
		return 0;
	rc = kv_delete(r->kv, KV_NS_REFERENCE_VALUE, id, err);
	if (rc < 0)
		return err_prefix(err, "delete reference value %s", id);
	if (kv_delete(r->kv, RVPS_NS_PROVENANCE, id, err) < 0)
		log_warn("rvps: the provenance of deleted value %s stays: %s", id, err->msg);
	if (rc == 1)
		return 0;
	*deleted = 1;
	log_info("rvps: deleted reference value %s", id);
	if ((names = json_pack("[s]", id)) == NULL)
		return err_set(err, "out of memory");
	rc = audit_append(r, "delete", names, NULL, err);
	json_decref(names);
	return rc;
}
