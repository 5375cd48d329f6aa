/*
 * extractors: which payload types the RVPS understands, one row per file under
 * rvps/extractors/, and the set of configured rows an RVPS keeps (see extractors.h). The set
 * holds one init state per row, indexed like rvps_extractors[], and the pinned verification
 * time, so a register call needs no lookup beyond the type.
 */
#include "rvps/extractors.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

const struct rvps_extractor *const rvps_extractors[] = {
    &rvps_extractor_sample,
    &rvps_extractor_corim,
    &rvps_extractor_swid,
    &rvps_extractor_in_toto,
    NULL,
};

#define N_ROWS (sizeof(rvps_extractors) / sizeof(rvps_extractors[0]) - 1)

struct rvps_extractor_set {
	void *state[N_ROWS]; /* owned: row i's init state, freed by its state_free */
	time_t pinned;       /* 0 = judge at the clock */
};

const struct rvps_extractor *rvps_extractor_find(const char *type)
{
	for (size_t i = 0; type != NULL && rvps_extractors[i] != NULL; i++)
		if (strcmp(rvps_extractors[i]->type, type) == 0)
			return rvps_extractors[i];
	return NULL;
}

static int digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int rvps_parse_rfc3339(const char *s, time_t *out)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, mo, d, h, mi, sec, oh = 0, om = 0;
	const char *p;
	struct tm tm = {0};
	long off = 0;

	if (s == NULL || strlen(s) < 20 || digits(s, 4, &y) < 0 || s[4] != '-' ||
	    digits(s + 5, 2, &mo) < 0 || s[7] != '-' || digits(s + 8, 2, &d) < 0 ||
	    (s[10] != 'T' && s[10] != 't') || digits(s + 11, 2, &h) < 0 || s[13] != ':' ||
	    digits(s + 14, 2, &mi) < 0 || s[16] != ':' || digits(s + 17, 2, &sec) < 0)
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
		return -1;
	p = s + 19;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -1;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		if (digits(p + 1, 2, &oh) < 0 || p[3] != ':' || digits(p + 4, 2, &om) < 0 ||
		    oh > 23 || om > 59)
			return -1;
		off = (oh * 3600L + om * 60L) * (*p == '-' ? -1 : 1);
		p += 6;
	} else {
		return -1;
	}
	if (*p != '\0')
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec == 60 ? 59 : sec;
	*out = timegm(&tm) - off;
	return 0;
}

int rvps_config_bool(const json_t *obj, const char *what, const char *key, int def, int *out,
                     struct err *err)
{
	const json_t *v = obj != NULL ? json_object_get(obj, key) : NULL;

	*out = def;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return err_set(err, "extractors.%s.%s must be true or false", what, key);
	*out = json_is_true(v);
	return 0;
}

int rvps_config_only(const json_t *obj, const char *what, const char *const *known, struct err *err)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)obj, key, v)
	{
		size_t i;

		for (i = 0; known[i] != NULL && strcmp(known[i], key) != 0; i++)
			;
		if (known[i] == NULL)
			return err_set(err, "extractors.%s has no option \"%s\"", what, key);
	}
	return 0;
}

static const struct rvps_extractor *row_by_config_key(const char *key, size_t *idx)
{
	for (size_t i = 0; i < N_ROWS; i++)
		if (strcmp(rvps_extractors[i]->config_key, key) == 0) {
			*idx = i;
			return rvps_extractors[i];
		}
	return NULL;
}

static int set_time(struct rvps_extractor_set *s, const json_t *config, struct err *err)
{
	const json_t *vt = config != NULL ? json_object_get(config, "verification_time") : NULL;

	if (vt == NULL || json_is_null(vt))
		return 0;
	if (!json_is_string(vt) || rvps_parse_rfc3339(json_string_value(vt), &s->pinned) < 0 ||
	    s->pinned <= 0)
		return err_set(err, "verification_time must be an RFC 3339 time such as "
		                    "2025-06-01T00:00:00Z");
	log_warn("rvps: verification_time pins the clock at %s for every signature and validity "
	         "check (tests and forensics only)",
	         json_string_value(vt));
	return 0;
}

struct rvps_extractor_set *rvps_extractor_set_new(const json_t *config, struct err *err)
{
	const json_t *exs = config != NULL ? json_object_get(config, "extractors") : NULL;
	struct rvps_extractor_set *s = calloc(1, sizeof(*s));
	const char *key;
	json_t *sub;

	if (s == NULL) {
		err_set(err, "out of memory");
		return NULL;
	}
	if (set_time(s, config, err) < 0)
		goto fail;
	if (exs != NULL && json_is_null(exs))
		exs = NULL;
	if (exs != NULL && !json_is_object(exs)) {
		err_set(err, "\"extractors\" must be an object");
		goto fail;
	}
	json_object_foreach((json_t *)exs, key, sub)
	{
		size_t i;

		if (row_by_config_key(key, &i) == NULL)
			log_warn("rvps: extractors.%s is not an extractor this build has; ignored",
			         key);
		else if (!json_is_object(sub) && !json_is_null(sub)) {
			err_set(err, "extractors.%s must be an object", key);
			goto fail;
		}
	}
	for (size_t i = 0; i < N_ROWS; i++) {
		const struct rvps_extractor *x = rvps_extractors[i];
		const json_t *c = exs != NULL ? json_object_get(exs, x->config_key) : NULL;

		if (c != NULL && json_is_null(c))
			c = NULL;
		if (x->init == NULL) {
			if (c != NULL && json_object_size(c) > 0) {
				err_set(err, "extractors.%s takes no options", x->config_key);
				goto fail;
			}
			continue;
		}
		if (x->init(c, &s->state[i], err) < 0) {
			err_prefix(err, "extractors.%s", x->config_key);
			goto fail;
		}
	}
	return s;
fail:
	rvps_extractor_set_free(s);
	return NULL;
}

void rvps_extractor_set_free(struct rvps_extractor_set *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < N_ROWS; i++)
		if (s->state[i] != NULL && rvps_extractors[i]->state_free != NULL)
			rvps_extractors[i]->state_free(s->state[i]);
	free(s);
}

time_t rvps_extractor_set_time(const struct rvps_extractor_set *s)
{
	return s != NULL && s->pinned != 0 ? s->pinned : time(NULL);
}

int rvps_extractor_set_extract(const struct rvps_extractor_set *s, const char *type,
                               const char *payload, size_t len, json_t **out, json_t *provenance,
                               struct err *err)
{
	struct rvps_extract_ctx ctx = {0};
	size_t i;

	*out = NULL;
	for (i = 0; type != NULL && i < N_ROWS; i++)
		if (strcmp(rvps_extractors[i]->type, type) == 0)
			break;
	if (type == NULL || i == N_ROWS)
		return err_set(err, "Could not find extractor for %s", type ? type : "(none)");
	if (rvps_extractors[i]->extract_ctx == NULL)
		return rvps_extractors[i]->extract(payload, len, out, err);
	ctx.state = s != NULL ? s->state[i] : NULL;
	ctx.now = rvps_extractor_set_time(s);
	ctx.provenance = provenance;
	return rvps_extractors[i]->extract_ctx(&ctx, payload, len, out, err);
}
