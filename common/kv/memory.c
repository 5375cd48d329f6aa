/*
 * kv memory backend ("Memory"): one list of entries per store, lost on exit. It holds the
 * handful of keys tests and single-process dev setups keep, so a list is enough; expiry is
 * checked on read. Values are secrets (resources, sessions) and are wiped when dropped.
 * kv.c serialises calls (serialized = 1), so nothing here locks.
 */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv/kv_backend.h"

struct mem_entry {
	char *ns, *key;
	uint8_t *val; /* owned, len bytes + a NUL */
	size_t len;
	time_t expires; /* 0 = never */
	struct mem_entry *next;
};

struct mem {
	struct mem_entry *head;
};

static struct mem_entry **mem_find(struct mem *m, const char *ns, const char *key)
{
	struct mem_entry **pp = &m->head;
	for (; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->ns, ns) == 0 && strcmp((*pp)->key, key) == 0)
			break;
	return pp;
}

static void mem_free_entry(struct mem_entry *e)
{
	free(e->ns);
	free(e->key);
	kv_wipe_free(e->val, e->len);
	free(e);
}

static int mem_expired(const struct mem_entry *e)
{
	return e->expires != 0 && time(NULL) >= e->expires;
}

static void *mem_open(const json_t *backends, struct err *err)
{
	struct mem *m = calloc(1, sizeof(*m));
	if (m == NULL)
		err_set(err, "out of memory");
	return m;
}

static void mem_close(void *state)
{
	struct mem *m = state;
	while (m->head) {
		struct mem_entry *e = m->head;
		m->head = e->next;
		mem_free_entry(e);
	}
	free(m);
}

static int mem_set(void *state, const char *ns, const char *key, const void *val, size_t len,
                   int overwrite, unsigned ttl, struct err *err)
{
	struct mem *m = state;
	struct mem_entry **pp = mem_find(m, ns, key), *e = *pp;
	uint8_t *copy = malloc(len + 1);

	if (copy == NULL)
		return err_set(err, "out of memory");
	memcpy(copy, val, len);
	copy[len] = 0;
	if (e != NULL && !mem_expired(e) && !overwrite) {
		kv_wipe_free(copy, len);
		return 1;
	}
	if (e == NULL) {
		e = calloc(1, sizeof(*e));
		if (e == NULL || (e->ns = strdup(ns)) == NULL || (e->key = strdup(key)) == NULL) {
			if (e)
				free(e->ns);
			free(e);
			kv_wipe_free(copy, len);
			return err_set(err, "out of memory");
		}
		e->next = m->head;
		m->head = e;
	} else {
		kv_wipe_free(e->val, e->len);
	}
	e->val = copy;
	e->len = len;
	e->expires = ttl ? time(NULL) + ttl : 0;
	return 0;
}

static int mem_read(struct mem *m, const char *ns, const char *key, uint8_t **val, size_t *len,
                    int take, struct err *err)
{
	struct mem_entry **pp = mem_find(m, ns, key), *e = *pp;
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

static int mem_get(void *state, const char *ns, const char *key, uint8_t **val, size_t *len,
                   struct err *err)
{
	return mem_read(state, ns, key, val, len, 0, err);
}

static int mem_take(void *state, const char *ns, const char *key, uint8_t **val, size_t *len,
                    struct err *err)
{
	return mem_read(state, ns, key, val, len, 1, err);
}

static int mem_del(void *state, const char *ns, const char *key, struct err *err)
{
	struct mem_entry **pp = mem_find(state, ns, key), *e = *pp;
	if (e == NULL)
		return 1;
	*pp = e->next;
	int gone = mem_expired(e);
	mem_free_entry(e);
	return gone ? 1 : 0;
}

static int mem_list(void *state, const char *ns, char ***keys, size_t *n, struct err *err)
{
	struct mem *m = state;
	size_t cap = 0;
	for (struct mem_entry *e = m->head; e; e = e->next)
		if (strcmp(e->ns, ns) == 0 && !mem_expired(e) &&
		    kv_keys_push(keys, n, &cap, e->key) < 0)
			return err_set(err, "out of memory");
	return 0;
}

/* A fresh entry holding copies of one write, not linked. NULL out of memory. */
static struct mem_entry *mem_entry_new(const struct kv_write *w)
{
	struct mem_entry *e = calloc(1, sizeof(*e));
	if (e == NULL)
		return NULL;
	e->ns = strdup(w->ns);
	e->key = strdup(w->key);
	e->val = malloc(w->len + 1);
	if (e->ns == NULL || e->key == NULL || e->val == NULL) {
		mem_free_entry(e);
		return NULL;
	}
	memcpy(e->val, w->val, w->len);
	e->val[w->len] = 0;
	e->len = w->len;
	return e;
}

/* All or none under kv.c's lock: set-if-absent keys checked and every copy made before the
 * first entry changes, so nothing after that point can fail. */
static int mem_set_batch(void *state, const struct kv_write *w, size_t n, struct err *err)
{
	struct mem *m = state;
	struct mem_entry **fresh = calloc(n, sizeof(*fresh));
	int rc = 0;

	if (fresh == NULL)
		return err_set(err, "out of memory");
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct mem_entry *e = *mem_find(m, w[i].ns, w[i].key);
		if (!w[i].overwrite && e != NULL && !mem_expired(e))
			rc = 1;
		else if ((fresh[i] = mem_entry_new(&w[i])) == NULL)
			rc = err_set(err, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		struct mem_entry *e = rc == 0 ? *mem_find(m, w[i].ns, w[i].key) : NULL;
		if (rc == 0 && e == NULL) {
			fresh[i]->next = m->head;
			m->head = fresh[i];
			continue;
		}
		if (e != NULL) { /* replace the value in place, keep the entry's place */
			kv_wipe_free(e->val, e->len);
			e->val = fresh[i]->val;
			e->len = fresh[i]->len;
			e->expires = 0;
			fresh[i]->val = NULL;
			fresh[i]->len = 0;
		}
		if (fresh[i] != NULL)
			mem_free_entry(fresh[i]);
	}
	free(fresh);
	return rc;
}

const struct kv_backend kv_backend_memory = {
    .name = "Memory",
    .alias = "memory",
    .validates_keys = 0,
    .serialized = 1,
    .open = mem_open,
    .close = mem_close,
    .set = mem_set,
    .get = mem_get,
    .peek = mem_get, /* memory is always known */
    .take = mem_take,
    .del = mem_del,
    .list = mem_list,
    .set_batch = mem_set_batch,
};
