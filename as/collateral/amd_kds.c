/*
 * amd_kds: VCEK sources, cache and the AMD KDS client (see amd_kds.h).
 *
 * The memory cache is a small array under a mutex: a deployment sees a handful of chips and
 * TCB versions, and a lookup is a few string compares next to a P-384 verification. Fetches
 * are serialised by the same rate limiter, so a burst of attesters from one new chip costs
 * one KDS request, not one per attester.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "as/collateral/amd_kds.h"
#include "as/collateral/cache.h"
#include "as/verifiers/verifier.h"
#include "fetch.h"
#include "log.h"

#define MAX_SOURCES 8
#define CACHE_MAX 256
#define MAX_VCEK_BYTES 65536 /* a VCEK is ~1.3 KB; anything this large is not one */

struct source {
	int is_kds;
	char loc[512]; /* base URL or directory */
};

struct entry {
	char key[200]; /* "<hwid>/<tcb prefix>" */
	uint8_t *der;
	size_t len;
};

static struct {
	pthread_mutex_t mu;
	pthread_mutex_t fetch_mu; /* one KDS request at a time, spaced by min_interval */
	struct source src[MAX_SOURCES];
	size_t nsrc;
	char cache_dir[512];
	char ca_file[512];
	long min_interval_ms, retry_budget_ms, timeout_ms;
	struct timespec last_fetch;
	struct entry cache[CACHE_MAX];
	size_t ncache, next_evict;
	struct amd_kds_stats stats;
} kds = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .fetch_mu = PTHREAD_MUTEX_INITIALIZER,
    .src = {{1, "https://kdsintf.amd.com"}},
    .nsrc = 1,
    .min_interval_ms = 10000,
    .retry_budget_ms = 30000,
    .timeout_ms = 10000,
};

static long opt_long(const json_t *cfg, const char *k, long def)
{
	json_t *v = json_object_get(cfg, k);
	return json_is_integer(v) && json_integer_value(v) >= 0 ? (long)json_integer_value(v) : def;
}

static void opt_str(const json_t *cfg, const char *k, char *dst, size_t cap)
{
	json_t *v = json_object_get(cfg, k);
	if (json_is_string(v))
		snprintf(dst, cap, "%s", json_string_value(v));
}

int amd_kds_configure(const json_t *cfg, struct err *err)
{
	json_t *list = json_object_get(cfg, "vcek_sources");
	size_t i;
	json_t *s;

	pthread_mutex_lock(&kds.mu);
	kds.min_interval_ms = opt_long(cfg, "min_interval_ms", 10000);
	kds.retry_budget_ms = opt_long(cfg, "retry_budget_ms", 30000);
	kds.timeout_ms = opt_long(cfg, "timeout_ms", 10000);
	kds.cache_dir[0] = kds.ca_file[0] = '\0';
	opt_str(cfg, "cache_dir", kds.cache_dir, sizeof(kds.cache_dir));
	opt_str(cfg, "ca_file", kds.ca_file, sizeof(kds.ca_file));
	if (json_is_array(list)) {
		kds.nsrc = 0;
		json_array_foreach(list, i, s)
		{
			const char *type = json_string_value(json_object_get(s, "type"));
			struct source *d;
			if (kds.nsrc == MAX_SOURCES) {
				pthread_mutex_unlock(&kds.mu);
				return err_set(err, "snp_verifier.vcek_sources: at most %d sources",
				               MAX_SOURCES);
			}
			d = &kds.src[kds.nsrc];
			if (type != NULL && strcmp(type, "KDS") == 0) {
				d->is_kds = 1;
				snprintf(d->loc, sizeof(d->loc), "%s", "https://kdsintf.amd.com");
				opt_str(s, "base_url", d->loc, sizeof(d->loc));
			} else if (type != NULL && strcmp(type, "OfflineStore") == 0) {
				d->is_kds = 0;
				snprintf(
				    d->loc, sizeof(d->loc), "%s",
				    "/opt/confidential-containers/attestation-service/kds-store");
				opt_str(s, "path", d->loc, sizeof(d->loc));
			} else {
				pthread_mutex_unlock(&kds.mu);
				return err_set(
				    err,
				    "snp_verifier.vcek_sources[%zu]: type must be \"KDS\" "
				    "or \"OfflineStore\"",
				    i);
			}
			size_t l = strlen(d->loc);
			while (l > 1 && d->loc[l - 1] == '/')
				d->loc[--l] = '\0';
			kds.nsrc++;
		}
	}
	pthread_mutex_unlock(&kds.mu);
	return 0;
}

static int cache_lookup(const char *key, uint8_t **der, size_t *len)
{
	int found = 0;
	pthread_mutex_lock(&kds.mu);
	for (size_t i = 0; i < kds.ncache; i++) {
		if (strcmp(kds.cache[i].key, key) == 0) {
			*der = malloc(kds.cache[i].len);
			if (*der != NULL) {
				memcpy(*der, kds.cache[i].der, kds.cache[i].len);
				*len = kds.cache[i].len;
				found = 1;
				kds.stats.memory_hits++;
			}
			break;
		}
	}
	pthread_mutex_unlock(&kds.mu);
	return found;
}

static void cache_store(const char *key, const uint8_t *der, size_t len)
{
	uint8_t *copy = malloc(len);
	if (copy == NULL)
		return;
	memcpy(copy, der, len);
	pthread_mutex_lock(&kds.mu);
	struct entry *e;
	if (kds.ncache < CACHE_MAX) {
		e = &kds.cache[kds.ncache++];
	} else {
		e = &kds.cache[kds.next_evict];
		kds.next_evict = (kds.next_evict + 1) % CACHE_MAX;
		free(e->der);
	}
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->der = copy;
	e->len = len;
	pthread_mutex_unlock(&kds.mu);
}

static int offline_lookup(const char *dir, const char *hwid, const char *prefix, uint8_t **der,
                          size_t *len)
{
	char name[512];
	snprintf(name, sizeof(name), "vcek/%s/%s_vcek.der", hwid, prefix);
	if (collateral_cache_read(dir, name, MAX_VCEK_BYTES, der, len) == 0)
		return 0;
	snprintf(name, sizeof(name), "vcek/%s/vcek.der", hwid);
	return collateral_cache_read(dir, name, MAX_VCEK_BYTES, der, len);
}

/* A fetched VCEK, kept in the OfflineStore layout so the directory can also serve as one. */
static void disk_store(const char *hwid, const char *prefix, const uint8_t *der, size_t len)
{
	char name[512];
	struct err e = {0};
	if (kds.cache_dir[0] == '\0')
		return;
	snprintf(name, sizeof(name), "vcek/%s/%s_vcek.der", hwid, prefix);
	if (collateral_cache_write(kds.cache_dir, name, der, len, &e) < 0)
		log_warn("snp: %s", e.msg);
}

static int kds_fetch(const char *base, const struct snp_report *r, const char *hwid,
                     const char *key, uint8_t **der, size_t *len, struct err *err)
{
	char url[1400], q[160];
	struct timespec start;
	long waited;

	snp_kds_query(r, q, sizeof(q));
	snprintf(url, sizeof(url), "%s/vcek/v1/%s/%s?%s", base, snp_gen_name(r->gen), hwid, q);
	clock_gettime(CLOCK_MONOTONIC, &start);
	pthread_mutex_lock(&kds.fetch_mu);
	/* another worker may have fetched it while we waited for the limiter */
	if (cache_lookup(key, der, len)) {
		pthread_mutex_unlock(&kds.fetch_mu);
		return 0;
	}
	for (;;) {
		/* space requests: KDS throttles an address that asks too often */
		if (kds.last_fetch.tv_sec != 0) {
			long since = fetch_ms_since(&kds.last_fetch);
			if (since < kds.min_interval_ms)
				fetch_sleep_ms(kds.min_interval_ms - since);
		}
		struct fetch_opts o = {.timeout_ms = kds.timeout_ms,
		                       .max_bytes = MAX_VCEK_BYTES,
		                       .ca_file = kds.ca_file};
		struct fetch_result res;
		struct err fe = {0};
		fetch_get(url, &o, &res, &fe);
		long code = res.status, retry_after = res.retry_after;
		clock_gettime(CLOCK_MONOTONIC, &kds.last_fetch);
		if (code == 200 && res.len > 0) {
			kds.stats.kds_fetches++;
			pthread_mutex_unlock(&kds.fetch_mu);
			*der = (uint8_t *)res.body;
			*len = res.len;
			res.body = NULL;
			fetch_result_free(&res);
			return 0;
		}
		fetch_result_free(&res);
		kds.stats.kds_errors++;
		waited = fetch_ms_since(&start);
		if (code == 429 || code == 503) {
			kds.stats.kds_429 += code == 429;
			long delay = retry_after >= 0 ? retry_after * 1000 : 2000;
			if (waited + delay <= kds.retry_budget_ms) {
				log_warn("AMD KDS answered %ld for %s; retrying in %ld ms", code,
				         url, delay);
				fetch_sleep_ms(delay);
				continue;
			}
			pthread_mutex_unlock(&kds.fetch_mu);
			return err_setc(err, ERR_UNAVAILABLE,
			                "AMD KDS at %s is rate-limiting (HTTP %ld) and no "
			                "cached VCEK exists for chip %.16s…",
			                base, code, hwid);
		}
		pthread_mutex_unlock(&kds.fetch_mu);
		if (code == 0)
			return err_setc(err, ERR_UNAVAILABLE, "AMD KDS at %s unreachable: %s", base,
			                fetch_msg_cause(fe.msg, url));
		return err_setc(err, code >= 500 ? ERR_UNAVAILABLE : 0,
		                "AMD KDS at %s answered HTTP %ld for chip %.16s…", base, code,
		                hwid);
	}
}

int amd_kds_get_vcek(const struct snp_report *r, uint8_t **der, size_t *len, struct err *err)
{
	char hwid[129], prefix[64], key[200];
	struct source src[MAX_SOURCES];
	size_t nsrc;
	int all_zero = 1;

	for (int i = 0; i < 64; i++)
		all_zero &= r->chip_id[i] == 0;
	if (all_zero)
		return err_set(err, "the report's chip_id is all zeros (MASK_CHIP_ID set): no VCEK "
		                    "can be looked up; supply the VCEK in the evidence");
	snp_hwid_hex(r, hwid);
	snp_tcb_prefix(r, prefix, sizeof(prefix));
	snprintf(key, sizeof(key), "%s/%s", hwid, prefix);
	if (cache_lookup(key, der, len))
		return 0;
	pthread_mutex_lock(&kds.mu);
	memcpy(src, kds.src, sizeof(src));
	nsrc = kds.nsrc;
	pthread_mutex_unlock(&kds.mu);
	if (kds.cache_dir[0] != '\0' &&
	    offline_lookup(kds.cache_dir, hwid, prefix, der, len) == 0) {
		kds.stats.disk_hits++;
		cache_store(key, *der, *len);
		return 0;
	}
	struct err last = {0};
	snprintf(last.msg, sizeof(last.msg), "no VCEK source is configured");
	for (size_t i = 0; i < nsrc; i++) {
		if (!src[i].is_kds) {
			if (offline_lookup(src[i].loc, hwid, prefix, der, len) == 0) {
				kds.stats.disk_hits++;
				cache_store(key, *der, *len);
				return 0;
			}
			err_set(&last, "no VCEK for chip %.16s… in the offline store %s", hwid,
			        src[i].loc);
			continue;
		}
		if (r->gen == SNP_GEN_UNKNOWN) {
			err_set(&last,
			        "report version %u carries no CPUID, so the KDS product line "
			        "is unknown; supply the VCEK in the evidence or an offline store",
			        r->version);
			continue;
		}
		if (kds_fetch(src[i].loc, r, hwid, key, der, len, &last) == 0) {
			cache_store(key, *der, *len);
			disk_store(hwid, prefix, *der, *len);
			return 0;
		}
	}
	if (err != NULL)
		*err = last;
	return -1;
}

void amd_kds_get_stats(struct amd_kds_stats *out)
{
	pthread_mutex_lock(&kds.mu);
	*out = kds.stats;
	pthread_mutex_unlock(&kds.mu);
}

void amd_kds_reset(void)
{
	pthread_mutex_lock(&kds.mu);
	for (size_t i = 0; i < kds.ncache; i++)
		free(kds.cache[i].der);
	kds.ncache = kds.next_evict = 0;
	memset(&kds.stats, 0, sizeof(kds.stats));
	kds.last_fetch.tv_sec = 0;
	pthread_mutex_unlock(&kds.mu);
}
