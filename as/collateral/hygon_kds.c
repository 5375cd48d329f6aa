/*
 * hygon_kds: the HSK/CEK cache and the Hygon KDS client (see hygon_kds.h).
 *
 * The memory cache is a small array under a mutex, as amd_kds.c keeps VCEKs: a deployment
 * sees a handful of chips, and a lookup is a few string compares beside three SM2
 * verifications. Fetches are serialised by a second mutex and the cache is asked again once
 * it is held, so a burst of guests on one new chip costs one KDS request, not one per guest.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "as/collateral/cache.h"
#include "as/collateral/hygon_kds.h"
#include "as/evidence/csv_report.h"
#include "fetch.h"
#include "log.h"

#define CACHE_MAX 256
#define MAX_ANSWER_BYTES 16384 /* an hsk_cek.cert is 2916 bytes; larger is not one */

struct entry {
	char serial[CSV_SERIAL_LEN + 1];
	uint8_t pair[CSV_HSK_CEK_LEN];
};

static struct {
	pthread_mutex_t mu;       /* guards cache, ncache, next_evict, stats */
	pthread_mutex_t fetch_mu; /* one KDS request at a time */
	struct entry cache[CACHE_MAX];
	size_t ncache, next_evict;
	struct hygon_kds_stats stats;
} kds = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .fetch_mu = PTHREAD_MUTEX_INITIALIZER,
};

static int opt_str(const json_t *cfg, const char *k, const char *section, char *dst, size_t cap,
                   struct err *err)
{
	json_t *v = json_object_get(cfg, k);
	if (v == NULL)
		return 0;
	if (!json_is_string(v) || json_string_length(v) >= cap)
		return err_set(err, "%s.%s must be a string of at most %zu bytes", section, k,
		               cap - 1);
	snprintf(dst, cap, "%s", json_string_value(v));
	return 0;
}

static int opt_ms(const json_t *cfg, const char *k, const char *section, long *dst, struct err *err)
{
	json_t *v = json_object_get(cfg, k);
	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 3600 * 1000)
		return err_set(err, "%s.%s must be milliseconds (0 to 3600000)", section, k);
	*dst = (long)json_integer_value(v);
	return 0;
}

int hygon_kds_configure(const json_t *cfg, const char *section, struct hygon_kds_config *out,
                        struct err *err)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->base_url, sizeof(out->base_url), "%s", HYGON_KDS_DEFAULT_URL);
	out->timeout_ms = 10000;
	out->retry_budget_ms = 30000;
	if (cfg == NULL)
		return 0;
	if (opt_str(cfg, "kds_base_url", section, out->base_url, sizeof(out->base_url), err) < 0 ||
	    opt_str(cfg, "kds_cache_dir", section, out->cache_dir, sizeof(out->cache_dir), err) <
	        0 ||
	    opt_str(cfg, "kds_ca_file", section, out->ca_file, sizeof(out->ca_file), err) < 0 ||
	    opt_ms(cfg, "kds_timeout_ms", section, &out->timeout_ms, err) < 0 ||
	    opt_ms(cfg, "kds_retry_budget_ms", section, &out->retry_budget_ms, err) < 0)
		return -1;
	size_t l = strlen(out->base_url);
	while (l > 0 && out->base_url[l - 1] == '/')
		out->base_url[--l] = '\0';
	if (l > 0 && strncmp(out->base_url, "https://", 8) != 0 &&
	    strncmp(out->base_url, "http://", 7) != 0)
		return err_set(err, "%s.kds_base_url must be an http(s) URL", section);
	return 0;
}

static int cache_lookup(const char *serial, uint8_t **buf, size_t *len)
{
	int found = 0;
	pthread_mutex_lock(&kds.mu);
	for (size_t i = 0; i < kds.ncache && !found; i++) {
		if (strcmp(kds.cache[i].serial, serial) != 0)
			continue;
		if ((*buf = malloc(CSV_HSK_CEK_LEN)) != NULL) {
			memcpy(*buf, kds.cache[i].pair, CSV_HSK_CEK_LEN);
			*len = CSV_HSK_CEK_LEN;
			found = 1;
		}
		break;
	}
	pthread_mutex_unlock(&kds.mu);
	return found;
}

static void cache_store(const char *serial, const uint8_t *pair)
{
	struct entry *e = NULL;
	pthread_mutex_lock(&kds.mu);
	for (size_t i = 0; i < kds.ncache && e == NULL; i++)
		if (strcmp(kds.cache[i].serial, serial) == 0)
			e = &kds.cache[i];
	if (e == NULL && kds.ncache < CACHE_MAX)
		e = &kds.cache[kds.ncache++];
	if (e == NULL) {
		e = &kds.cache[kds.next_evict];
		kds.next_evict = (kds.next_evict + 1) % CACHE_MAX;
	}
	snprintf(e->serial, sizeof(e->serial), "%s", serial);
	memcpy(e->pair, pair, CSV_HSK_CEK_LEN);
	pthread_mutex_unlock(&kds.mu);
}

static void count(unsigned long *counter)
{
	pthread_mutex_lock(&kds.mu);
	(*counter)++;
	pthread_mutex_unlock(&kds.mu);
}

/* The answer must be exactly an HSK and a CEK in their layouts before anything keeps it. */
static int check_pair(const uint8_t *b, size_t len, struct err *err)
{
	struct csv_ca_cert hsk;
	struct csv_cert cek;
	return csv_hsk_cek_parse(b, len, &hsk, &cek, err);
}

static int disk_lookup(const struct hygon_kds_config *c, const char *serial, uint8_t **buf,
                       size_t *len)
{
	char name[128];
	struct err e = {0};
	if (c->cache_dir[0] == '\0')
		return -1;
	snprintf(name, sizeof(name), "%s/hsk_cek.cert", serial);
	if (collateral_cache_read(c->cache_dir, name, CSV_HSK_CEK_LEN, buf, len) < 0)
		return -1;
	if (check_pair(*buf, *len, &e) < 0) {
		log_warn("hygon kds: ignoring %s/%s: %s", c->cache_dir, name, e.msg);
		free(*buf);
		*buf = NULL;
		return -1;
	}
	return 0;
}

static void disk_store(const struct hygon_kds_config *c, const char *serial, const uint8_t *pair)
{
	char name[128];
	struct err e = {0};
	if (c->cache_dir[0] == '\0')
		return;
	snprintf(name, sizeof(name), "%s/hsk_cek.cert", serial);
	if (collateral_cache_write(c->cache_dir, name, pair, CSV_HSK_CEK_LEN, &e) < 0)
		log_warn("hygon kds: %s", e.msg);
}

/* One answer's verdict: 0 = body kept in *buf, 1 = retry after *delay_ms, -1 = refused. */
static int judge(const struct hygon_kds_config *c, const char *serial, const char *url,
                 struct fetch_result *res, const struct err *fe, uint8_t **buf, size_t *len,
                 long *delay_ms, struct err *err)
{
	long code = res->status;

	if (code == 200) {
		if (check_pair((const uint8_t *)res->body, res->len, err) < 0)
			return err_prefix(err,
			                  "Hygon KDS at %s answered for chip %s with a body "
			                  "that is not an HSK/CEK pair",
			                  c->base_url, serial);
		*buf = (uint8_t *)res->body;
		*len = res->len;
		res->body = NULL;
		return 0;
	}
	count(&kds.stats.kds_errors);
	if (code == 429 || code == 503) {
		if (code == 429)
			count(&kds.stats.kds_429);
		*delay_ms = res->retry_after >= 0 ? res->retry_after * 1000 : 2000;
		return 1;
	}
	if (code == 0)
		return err_setc(err, fe->code == ERR_UNAVAILABLE ? ERR_UNAVAILABLE : 0,
		                "Hygon KDS at %s, asked for the HSK/CEK of chip %s: %s",
		                c->base_url, serial, fetch_msg_cause(fe->msg, url));
	if (code == 404)
		return err_set(err,
		               "Hygon KDS at %s has no HSK/CEK for chip %s (HTTP 404): the serial "
		               "number is not one Hygon issued",
		               c->base_url, serial);
	return err_setc(err, code >= 500 ? ERR_UNAVAILABLE : 0,
	                "Hygon KDS at %s answered HTTP %ld for the HSK/CEK of chip %s", c->base_url,
	                code, serial);
}

static int kds_fetch(const struct hygon_kds_config *c, const char *serial, uint8_t **buf,
                     size_t *len, struct err *err)
{
	char url[700];
	struct timespec start;
	int rc;

	snprintf(url, sizeof(url), "%s/hsk_cek?snumber=%s", c->base_url, serial);
	clock_gettime(CLOCK_MONOTONIC, &start);
	pthread_mutex_lock(&kds.fetch_mu);
	if (cache_lookup(serial, buf, len)) { /* fetched while we waited */
		pthread_mutex_unlock(&kds.fetch_mu);
		return 0;
	}
	for (;;) {
		struct fetch_opts o = {.timeout_ms = c->timeout_ms,
		                       .max_bytes = MAX_ANSWER_BYTES,
		                       .ca_file = c->ca_file[0] ? c->ca_file : NULL};
		struct fetch_result res;
		struct err fe = {0};
		long delay = 0;

		fetch_get(url, &o, &res, &fe);
		rc = judge(c, serial, url, &res, &fe, buf, len, &delay, err);
		fetch_result_free(&res);
		if (rc != 1)
			break;
		if (fetch_ms_since(&start) + delay > c->retry_budget_ms) {
			rc = err_setc(err, ERR_UNAVAILABLE,
			              "Hygon KDS at %s is rate-limiting (HTTP 429/503) and no "
			              "cached HSK/CEK exists for chip %s",
			              c->base_url, serial);
			break;
		}
		log_warn("Hygon KDS asked to wait for chip %s; retrying in %ld ms", serial, delay);
		fetch_sleep_ms(delay);
	}
	if (rc == 0) {
		count(&kds.stats.kds_fetches);
		cache_store(serial, *buf);
		disk_store(c, serial, *buf);
	}
	pthread_mutex_unlock(&kds.fetch_mu);
	return rc;
}

int hygon_kds_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > CSV_SERIAL_LEN)
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == n;
}

int hygon_kds_get_hsk_cek(const struct hygon_kds_config *c, const char *serial, uint8_t **buf,
                          size_t *len, struct err *err)
{
	*buf = NULL;
	if (!hygon_kds_name_ok(serial))
		return err_set(err,
		               "a Hygon chip serial must be 1 to %d letters, digits, '-' or '_'",
		               CSV_SERIAL_LEN);
	if (cache_lookup(serial, buf, len)) {
		count(&kds.stats.memory_hits);
		return 0;
	}
	if (disk_lookup(c, serial, buf, len) == 0) {
		count(&kds.stats.disk_hits);
		cache_store(serial, *buf);
		return 0;
	}
	if (c->base_url[0] == '\0')
		return err_set(err,
		               "no HSK/CEK for chip %s is cached and Hygon KDS fetching is "
		               "off (kds_base_url is empty)",
		               serial);
	return kds_fetch(c, serial, buf, len, err);
}

void hygon_kds_forget(const struct hygon_kds_config *c, const char *serial)
{
	char name[128], path[1200];
	if (!hygon_kds_name_ok(serial))
		return;
	pthread_mutex_lock(&kds.mu);
	for (size_t i = 0; i < kds.ncache; i++) {
		if (strcmp(kds.cache[i].serial, serial) != 0)
			continue;
		kds.cache[i] = kds.cache[--kds.ncache];
		if (kds.next_evict >= kds.ncache)
			kds.next_evict = 0;
		break;
	}
	pthread_mutex_unlock(&kds.mu);
	if (c->cache_dir[0] == '\0')
		return;
	snprintf(name, sizeof(name), "%s/hsk_cek.cert", serial);
	snprintf(path, sizeof(path), "%s/%s", c->cache_dir, name);
	if (remove(path) == 0)
		log_warn("hygon kds: dropped %s, whose HSK/CEK did not verify", path);
}

void hygon_kds_get_stats(struct hygon_kds_stats *out)
{
	pthread_mutex_lock(&kds.mu);
	*out = kds.stats;
	pthread_mutex_unlock(&kds.mu);
}

void hygon_kds_reset(void)
{
	pthread_mutex_lock(&kds.mu);
	kds.ncache = kds.next_evict = 0;
	memset(&kds.stats, 0, sizeof(kds.stats));
	pthread_mutex_unlock(&kds.mu);
}
