/*
 * rv_plan: the ids each kind of appraisal asks the RVPS for (see rv_plan.h). A handful of
 * (policy, TEE) pairs is the norm, so the entries sit in one array searched linearly under a
 * mutex, as the policy cache does; the ids of an entry are a JSON array copied out (deep) on
 * read, so nobody holds the lock while talking to the RVPS.
 */
#include "as/rv_plan.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	char *name;         /* "<policy key>\n<tee>" (owned) */
	uint8_t digest[32]; /* SHA-256 of the policy text the ids were learned with */
	json_t *ids;        /* owned: array of distinct strings, at most AS_RV_PLAN_MAX_IDS */
	unsigned long long used;
};

struct as_rv_plan {
	pthread_mutex_t mu; /* guards everything below */
	struct entry e[AS_RV_PLAN_MAX];
	size_t n;
	unsigned long long tick;
};

struct as_rv_plan *as_rv_plan_new(void)
{
	struct as_rv_plan *p = calloc(1, sizeof(*p));

	if (p != NULL)
		pthread_mutex_init(&p->mu, NULL);
	return p;
}

void as_rv_plan_free(struct as_rv_plan *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n; i++) {
		free(p->e[i].name);
		json_decref(p->e[i].ids);
	}
	pthread_mutex_destroy(&p->mu);
	free(p);
}

static struct entry *find(struct as_rv_plan *p, const char *key, const char *tee)
{
	size_t kl = strlen(key);

	for (size_t i = 0; i < p->n; i++) {
		const char *nm = p->e[i].name;
		if (strncmp(nm, key, kl) == 0 && nm[kl] == '\n' && strcmp(nm + kl + 1, tee) == 0)
			return &p->e[i];
	}
	return NULL;
}

json_t *as_rv_plan_ids(struct as_rv_plan *p, const char *key, const char *tee,
                       const uint8_t digest[32])
{
	json_t *out = NULL;

	pthread_mutex_lock(&p->mu);
	struct entry *e = find(p, key, tee);
	if (e != NULL && memcmp(e->digest, digest, 32) == 0 && json_array_size(e->ids) > 0) {
		e->used = ++p->tick;
		out = json_deep_copy(e->ids);
	}
	pthread_mutex_unlock(&p->mu);
	return out;
}

/* The entry for (key, tee), made (or taken from the least recently used) when missing;
 * emptied when its policy text changed. With mu held. NULL when out of memory. */
static struct entry *slot(struct as_rv_plan *p, const char *key, const char *tee,
                          const uint8_t digest[32])
{
	struct entry *e = find(p, key, tee);

	if (e == NULL) {
		char *name = malloc(strlen(key) + strlen(tee) + 2);
		if (name == NULL)
			return NULL;
		strcpy(name, key);
		strcat(name, "\n");
		strcat(name, tee);
		if (p->n < AS_RV_PLAN_MAX) {
			e = &p->e[p->n++];
		} else {
			e = &p->e[0];
			for (size_t i = 1; i < p->n; i++)
				if (p->e[i].used < e->used)
					e = &p->e[i];
			free(e->name);
			json_decref(e->ids);
		}
		memset(e, 0, sizeof(*e));
		e->name = name;
		memcpy(e->digest, digest, 32);
	}
	if (memcmp(e->digest, digest, 32) != 0) {
		json_decref(e->ids);
		e->ids = NULL;
		memcpy(e->digest, digest, 32);
	}
	if (e->ids == NULL)
		e->ids = json_array();
	e->used = ++p->tick;
	return e->ids != NULL ? e : NULL;
}

static int has(const json_t *arr, const char *s)
{
	size_t i;
	json_t *v;

	json_array_foreach(arr, i, v) if (strcmp(json_string_value(v), s) == 0) return 1;
	return 0;
}

void as_rv_plan_learn(struct as_rv_plan *p, const char *key, const char *tee,
                      const uint8_t digest[32], const json_t *ids)
{
	size_t i;
	json_t *v;

	pthread_mutex_lock(&p->mu);
	struct entry *e = slot(p, key, tee, digest);
	json_array_foreach(ids, i, v)
	{
		if (e == NULL || json_array_size(e->ids) >= AS_RV_PLAN_MAX_IDS)
			break;
		if (json_is_string(v) && !has(e->ids, json_string_value(v)))
			json_array_append(e->ids, v);
	}
	pthread_mutex_unlock(&p->mu);
}
