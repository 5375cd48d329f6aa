/*
 * intel_pcs: collateral for the DCAP verifiers from a file or from Intel PCS / a PCCS
 * (see intel_pcs.h). Entries are reference counted so a refresh can replace one while
 * verifications still use the old one.
 */
#include <errno.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "as/collateral/cache.h"
#include "as/collateral/intel_pcs.h"
#include "as/verifiers/verifier.h"
#include "b64.h"
#include "config.h"
#include "fetch.h"
#include "log.h"

#define MAX_BODY (4u << 20)
#define MAX_CACHED_BUNDLE (16u << 20) /* four parts of at most MAX_BODY each */

enum mode { MODE_NONE, MODE_FILE, MODE_PCS };

static struct {
	enum mode mode;
	char path[1024]; /* file mode */
	char base[512];  /* PCS mode: scheme://host[:port] */
	int intel_host;  /* base is Intel's PCS: root CA CRL from its distribution point */
	int early;       /* tcb_update_type */
	char cache_dir[1024];
	char ca_file[1024];
	long timeout_ms;
	time_t vtime;
} cfg = {.mode = MODE_PCS,
         .base = "https://api.trustedservices.intel.com",
         .intel_host = 1,
         .early = 1,
         .timeout_ms = 10000};

struct entry {
	struct dcap_collateral c; /* first: callers hold &entry->c */
	char key[1200];
	int refs, live, refreshing;
	time_t mtime;   /* file mode: the file's mtime when loaded */
	time_t expires; /* earliest nextUpdate of the parts */
	time_t issued;  /* latest issue date of the parts: the lifetime runs from here to expires */
	time_t refresh_tried; /* last background refresh attempt (one a minute at most) */
	int tdx;
	uint8_t fmspc[6];
	enum dcap_pck_ca ca;
	struct entry *next;
};

static struct entry *entries;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct intel_pcs_stats stats;
static time_t quiet_until; /* after a 429, the service is left alone until its Retry-After */

time_t intel_pcs_time(void)
{
	return cfg.vtime;
}

static time_t eff_now(void)
{
	return cfg.vtime ? cfg.vtime : time(NULL);
}

void intel_pcs_get_stats(struct intel_pcs_stats *out)
{
	pthread_mutex_lock(&lock);
	*out = stats;
	pthread_mutex_unlock(&lock);
}

static void entry_unref_locked(struct entry *e)
{
	if (--e->refs == 0) {
		dcap_collateral_free(&e->c);
		free(e);
	}
}

void intel_pcs_reset(void)
{
	pthread_mutex_lock(&lock);
	while (entries != NULL) {
		struct entry *e = entries;
		entries = e->next;
		e->live = 0;
		entry_unref_locked(e);
	}
	memset(&stats, 0, sizeof(stats));
	quiet_until = 0;
	pthread_mutex_unlock(&lock);
}

void intel_pcs_release(struct dcap_collateral *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&lock);
	entry_unref_locked((struct entry *)c);
	pthread_mutex_unlock(&lock);
}

int intel_pcs_configure(const json_t *dc, struct err *err)
{
	const char *svc = NULL, *upd = "early", *cache = "", *ca = "", *root = NULL, *vt = NULL;
	long long timeout = 10000;

	if (dc != NULL && !json_is_object(dc))
		return err_set(err, "dcap_verifier must be an object");
	if (dc != NULL && json_object_get(dc, "collateral_service") == NULL)
		return err_set(err,
		               "dcap_verifier.collateral_service is required when dcap_verifier "
		               "is present");
	if (config_string(dc, "collateral_service", NULL, &svc, err) < 0 ||
	    config_string(dc, "tcb_update_type", "early", &upd, err) < 0 ||
	    config_string(dc, "cache_dir", "", &cache, err) < 0 ||
	    config_string(dc, "ca_file", "", &ca, err) < 0 ||
	    config_string(dc, "root_ca_file", NULL, &root, err) < 0 ||
	    config_string(dc, "verification_time", NULL, &vt, err) < 0 ||
	    config_int(dc, "timeout_ms", 10000, &timeout, err) < 0)
		return err_prefix(err, "dcap_verifier");
	if (strcmp(upd, "early") != 0 && strcmp(upd, "standard") != 0)
		return err_set(err,
		               "dcap_verifier.tcb_update_type must be \"early\" or \"standard\"");
	if (timeout < 100 || timeout > 600000)
		return err_set(err, "dcap_verifier.timeout_ms must be 100..600000");
	time_t t = 0;
	if (vt != NULL && dcap_parse_time(vt, &t) < 0)
		return err_set(err, "dcap_verifier.verification_time must be RFC 3339 UTC");
	if (root != NULL && dcap_set_root_ca_file(root, err) < 0)
		return err_prefix(err, "dcap_verifier.root_ca_file");
	intel_pcs_reset();
	cfg.vtime = t;
	cfg.early = strcmp(upd, "early") == 0;
	cfg.timeout_ms = (long)timeout;
	snprintf(cfg.cache_dir, sizeof(cfg.cache_dir), "%s", cache);
	snprintf(cfg.ca_file, sizeof(cfg.ca_file), "%s", ca);
	if (svc == NULL) {
		cfg.mode = MODE_PCS;
		snprintf(cfg.base, sizeof(cfg.base), "https://api.trustedservices.intel.com");
		cfg.intel_host = 1;
		return 0;
	}
	if (strncmp(svc, "file://", 7) == 0) {
		cfg.mode = MODE_FILE;
		snprintf(cfg.path, sizeof(cfg.path), "%s", svc + 7);
		return 0;
	}
	const char *p = strstr(svc, "://");
	if (p == NULL || (strncmp(svc, "https://", 8) != 0 && strncmp(svc, "http://", 7) != 0))
		return err_set(err,
		               "dcap_verifier.collateral_service must be an http(s):// URL or a "
		               "file:// path");
	const char *host = p + 3, *slash = strchr(host, '/');
	size_t n = slash ? (size_t)(slash - svc) : strlen(svc);
	if (n >= sizeof(cfg.base) || host[0] == '\0' || host[0] == '/')
		return err_set(err, "dcap_verifier.collateral_service has no host");
	memcpy(cfg.base, svc, n);
	cfg.base[n] = '\0';
	cfg.intel_host = strcmp(host, "api.trustedservices.intel.com") == 0 ||
	                 strncmp(host, "api.trustedservices.intel.com/", 30) == 0;
	cfg.mode = MODE_PCS;
	return 0;
}

/* ---- shared helpers ---- */

static void fmspc_hex(const uint8_t f[6], char out[13], int upper)
{
	for (int i = 0; i < 6; i++)
		snprintf(out + 2 * i, 3, upper ? "%02X" : "%02x", f[i]);
}

static const char *ca_name(enum dcap_pck_ca ca)
{
	return ca == DCAP_PCK_CA_PROCESSOR ? "processor" : "platform";
}

static time_t crl_next(X509_CRL *crl)
{
	struct tm tm;
	const ASN1_TIME *t = X509_CRL_get0_nextUpdate(crl);
	return t && ASN1_TIME_to_tm(t, &tm) == 1 ? timegm(&tm) : 0;
}

static time_t expiry_of(const struct dcap_collateral *c)
{
	time_t e = c->tcb_next < c->qe_next ? c->tcb_next : c->qe_next;
	time_t a = crl_next(c->pck_crl), b = crl_next(c->root_ca_crl);
	if (a && a < e)
		e = a;
	if (b && b < e)
		e = b;
	return e;
}

/* Build and check an entry from a bundle object. */
static struct entry *entry_from_bundle(const json_t *bundle, const char *key, struct err *err)
{
	struct entry *e = calloc(1, sizeof(*e));
	if (e == NULL) {
		err_set(err, "out of memory");
		return NULL;
	}
	if (dcap_collateral_from_json(bundle, &e->c, err) < 0 ||
	    dcap_collateral_check(&e->c, dcap_root_ca(), err) < 0) {
		dcap_collateral_free(&e->c);
		free(e);
		return NULL;
	}
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->expires = expiry_of(&e->c);
	e->issued = e->c.tcb_issue > e->c.qe_issue ? e->c.tcb_issue : e->c.qe_issue;
	e->refs = 1;
	return e;
}

/* Find a live entry by key (caller holds the lock). */
static struct entry *find_locked(const char *key)
{
	for (struct entry *e = entries; e != NULL; e = e->next)
		if (e->live && strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

/* Insert e (its one reference becomes the list's), replacing an entry with the same key. */
static void insert_locked(struct entry *e)
{
	for (struct entry **pp = &entries; *pp != NULL; pp = &(*pp)->next) {
		if ((*pp)->live && strcmp((*pp)->key, e->key) == 0) {
			struct entry *old = *pp;
			*pp = old->next;
			old->live = 0;
			entry_unref_locked(old);
			break;
		}
	}
	e->live = 1;
	e->next = entries;
	entries = e;
}

/* ---- file mode ---- */

/* The tcbInfo/enclaveIdentity text Intel signed, from a PCS response given as text or object. */
static char *signed_text(const json_t *v, const char *member, char sig[129])
{
	json_t *obj = NULL, *inner;
	char *out = NULL;
	if (json_is_string(v))
		obj = json_loads(json_string_value(v), 0, NULL);
	else
		obj = json_incref((json_t *)v);
	inner = json_object_get(obj, member);
	const char *s = json_string_value(json_object_get(obj, "signature"));
	if (json_is_object(inner) && s != NULL && strlen(s) == 128) {
		snprintf(sig, 129, "%s", s);
		if (json_is_string(v)) {
			/* the exact bytes: the member's value as it appears in the response */
			const char *text = json_string_value(v), *at = NULL;
			char pat[64];
			snprintf(pat, sizeof(pat), "\"%s\"", member);
			at = strstr(text, pat);
			if (at != NULL) {
				at += strlen(pat);
				while (*at == ' ' || *at == ':' || *at == '\n' || *at == '\t' ||
				       *at == '\r')
					at++;
				int depth = 0, in_str = 0;
				const char *p = at;
				for (; *p; p++) {
					if (in_str) {
						if (*p == '\\' && p[1])
							p++;
						else if (*p == '"')
							in_str = 0;
					} else if (*p == '"')
						in_str = 1;
					else if (*p == '{')
						depth++;
					else if (*p == '}' && --depth == 0)
						break;
				}
				if (*p == '}')
					out = strndup(at, (size_t)(p - at + 1));
			}
		} else {
			out = json_dumps(inner, JSON_COMPACT);
		}
	}
	json_decref(obj);
	return out;
}

/* A bundle for (tdx, fmspc, ca) out of the PCS Client Tool's {"collaterals": {...}}. */
static json_t *bundle_from_tool(const json_t *col, int tdx, const char *fhex, enum dcap_pck_ca ca,
                                struct err *err)
{
	json_t *ti = NULL, *e, *certs = json_object_get(col, "certificates");
	size_t i;
	json_array_foreach(json_object_get(col, "tcbinfos"), i, e)
	{
		const char *f = json_string_value(json_object_get(e, "fmspc"));
		if (f != NULL && strcasecmp(f, fhex) == 0) {
			const char *k = tdx ? (cfg.early ? "tdx_tcbinfo_early" : "tdx_tcbinfo")
			                    : (cfg.early ? "sgx_tcbinfo_early" : "sgx_tcbinfo");
			ti = json_object_get(e, k);
			if (ti == NULL || json_is_null(ti))
				ti = json_object_get(e, tdx ? "tdx_tcbinfo" : "sgx_tcbinfo");
		}
	}
	if (ti == NULL || json_is_null(ti)) {
		err_set(err, "collateral file has no %s TCB Info for FMSPC %s", tdx ? "TDX" : "SGX",
		        fhex);
		return NULL;
	}
	const char *qk = tdx ? (cfg.early ? "tdqeidentity_early" : "tdqeidentity")
	                     : (cfg.early ? "qeidentity_early" : "qeidentity");
	json_t *qe = json_object_get(col, qk);
	if (qe == NULL || json_is_null(qe))
		qe = json_object_get(col, tdx ? "tdqeidentity" : "qeidentity");
	char tsig[129], qsig[129];
	char *tt = signed_text(ti, "tcbInfo", tsig),
	     *qt = qe ? signed_text(qe, "enclaveIdentity", qsig) : NULL;
	json_t *pchains = json_object_get(certs, "SGX-PCK-Certificate-Issuer-Chain");
	const char *crl = json_string_value(
	    json_object_get(json_object_get(col, "pckcacrl"),
	                    ca == DCAP_PCK_CA_PROCESSOR ? "processorCrl" : "platformCrl"));
	json_t *b = NULL;
	if (tt == NULL || qt == NULL || crl == NULL)
		err_set(err,
		        "collateral file lacks the signed TCB Info, QE identity or PCK CRL for "
		        "FMSPC %s",
		        fhex);
	else
		b = json_pack(
		    "{s:s, s:s, s:s?, s:s?, s:s, s:s, s:s?, s:s, s:s}", "tcb_info", tt,
		    "tcb_info_signature", tsig, "tcb_info_issuer_chain",
		    json_string_value(json_object_get(certs, "TCB-Info-Issuer-Chain")),
		    "qe_identity_issuer_chain",
		    json_string_value(json_object_get(certs, "SGX-Enclave-Identity-Issuer-Chain")),
		    "qe_identity", qt, "qe_identity_signature", qsig, "pck_crl_issuer_chain",
		    json_string_value(json_object_get(
		        pchains, ca == DCAP_PCK_CA_PROCESSOR ? "PROCESSOR" : "PLATFORM")),
		    "pck_crl", crl, "root_ca_crl",
		    json_string_value(json_object_get(col, "rootcacrl")) ?: "");
	free(tt);
	free(qt);
	return b;
}

/* The bundle in the file for this platform (new reference). */
static json_t *bundle_from_file(const json_t *doc, int tdx, const uint8_t fmspc[6],
                                enum dcap_pck_ca ca, struct err *err)
{
	char fhex[13];
	fmspc_hex(fmspc, fhex, 1);
	if (json_is_object(json_object_get(doc, "collaterals")))
		return bundle_from_tool(json_object_get(doc, "collaterals"), tdx, fhex, ca, err);
	if (json_is_object(doc))
		return json_incref(
		    (json_t *)doc); /* one bundle: a mismatch is reported by verify */
	size_t i;
	json_t *b;
	json_array_foreach(doc, i, b)
	{
		json_t *ti =
		    json_loads(json_string_value(json_object_get(b, "tcb_info")) ?: "", 0, NULL);
		const char *f = json_string_value(json_object_get(ti, "fmspc"));
		const char *id = json_string_value(json_object_get(ti, "id"));
		int match = f != NULL && strcasecmp(f, fhex) == 0 &&
		            (id == NULL ? !tdx : (strcmp(id, "TDX") == 0) == tdx);
		json_decref(ti);
		if (match)
			return json_incref(b);
	}
	err_set(err, "collateral file has no %s collateral for FMSPC %s", tdx ? "TDX" : "SGX",
	        fhex);
	return NULL;
}

static struct entry *get_file(const char *path, int tdx, const uint8_t fmspc[6],
                              enum dcap_pck_ca ca, struct err *err)
{
	struct stat st;
	char key[1200], fhex[13];
	if (stat(path, &st) < 0) {
		err_set(err, "collateral file %s: %s", path, strerror(errno));
		return NULL;
	}
	fmspc_hex(fmspc, fhex, 1);
	snprintf(key, sizeof(key), "file:%s:%s:%d:%d", path, fhex, tdx, (int)ca);
	pthread_mutex_lock(&lock);
	struct entry *e = find_locked(key);
	if (e != NULL && e->mtime == st.st_mtime) {
		e->refs++;
		stats.memory_hits++;
		pthread_mutex_unlock(&lock);
		return e;
	}
	pthread_mutex_unlock(&lock);
	json_error_t je;
	json_t *doc = json_load_file(path, 0, &je);
	if (doc == NULL) {
		err_set(err, "collateral file %s is not JSON: %s (line %d)", path, je.text,
		        je.line);
		return NULL;
	}
	json_t *b = bundle_from_file(doc, tdx, fmspc, ca, err);
	json_decref(doc);
	if (b == NULL)
		return NULL;
	e = entry_from_bundle(b, key, err);
	json_decref(b);
	if (e == NULL)
		return NULL;
	e->mtime = st.st_mtime;
	pthread_mutex_lock(&lock);
	insert_locked(e);
	e->refs++;
	pthread_mutex_unlock(&lock);
	return e;
}

/* ---- PCS / PCCS ---- */

struct resp {
	struct fetch_result f;
	char *chain; /* the issuer chain header, URL-decoded */
};

static char *url_decode(const char *s, size_t n)
{
	char *out = malloc(n + 1), *o = out;
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (s[i] == '%' && i + 2 < n && sscanf(s + i + 1, "%2x", &v) == 1) {
			*o++ = (char)v;
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

static int http_get(const char *url, const char *chain_header, struct resp *r, struct err *err)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_lock(&lock);
	time_t wait = quiet_until - time(NULL);
	pthread_mutex_unlock(&lock);
	if (wait > 0)
		return err_setc(err, ERR_UNAVAILABLE,
		                "collateral service rate-limited us; not asking again for %ld s "
		                "(its Retry-After)",
		                (long)wait);
	struct fetch_opts o = {
	    .timeout_ms = cfg.timeout_ms, .max_bytes = MAX_BODY, .ca_file = cfg.ca_file};
	o.keep[0] = chain_header;
	struct err fe = {0};
	if (fetch_get(url, &o, &r->f, &fe) == 0 && r->f.kept[0] != NULL)
		r->chain = url_decode(r->f.kept[0], strlen(r->f.kept[0]));
	long st = r->f.status;
	if (st == 0)
		return err_setc(err, ERR_UNAVAILABLE, "collateral service %s", fe.msg);
	if (st == 404 || st == 410)
		return err_set(err, "collateral not available from %s (HTTP %ld)", url, st);
	if (st == 429) {
		long ra = r->f.retry_after > 0 && r->f.retry_after < 3600 ? r->f.retry_after : 60;
		pthread_mutex_lock(&lock);
		quiet_until = time(NULL) + ra;
		pthread_mutex_unlock(&lock);
		return err_setc(err, ERR_UNAVAILABLE,
		                "collateral service rate-limited the request to %s (HTTP 429, "
		                "retry after %ld s)",
		                url, ra);
	}
	if (st != 200)
		return err_setc(err, st >= 500 ? ERR_UNAVAILABLE : 0,
		                "collateral service answered HTTP %ld for %s", st, url);
	if (r->f.body == NULL)
		return err_set(err, "collateral service sent an empty body for %s", url);
	if (chain_header != NULL && r->chain == NULL)
		return err_set(err, "collateral service sent no %s header for %s", chain_header,
		               url);
	return 0;
}

static void resp_free(struct resp *r)
{
	fetch_result_free(&r->f);
	free(r->chain);
	memset(r, 0, sizeof(*r));
}

/* A CRL body as hex of DER: PCCS may answer with hex text, PCS with DER. */
static char *crl_hex(const struct resp *r)
{
	const char *body = r->f.body;
	size_t i = 0, len = r->f.len;
	int is_hex = len > 0;
	for (i = 0; i < len && is_hex; i++)
		is_hex = body[i] != '\0' && strchr("0123456789abcdefABCDEF\r\n", body[i]) != NULL;
	if (is_hex) {
		char *s = strndup(body, len);
		if (s)
			s[strcspn(s, "\r\n")] = '\0';
		return s;
	}
	return hex_encode((const uint8_t *)body, len);
}

static char *root_crl_url(const char *qe_chain)
{
	BIO *b = BIO_new_mem_buf(qe_chain, -1);
	X509 *x, *last = NULL;
	char *url = NULL;
	while (b != NULL && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		X509_free(last);
		last = x;
	}
	BIO_free(b);
	STACK_OF(DIST_POINT) *dps =
	    last ? X509_get_ext_d2i(last, NID_crl_distribution_points, NULL, NULL) : NULL;
	for (int i = 0; dps != NULL && url == NULL && i < sk_DIST_POINT_num(dps); i++) {
		DIST_POINT *dp = sk_DIST_POINT_value(dps, i);
		if (dp->distpoint == NULL || dp->distpoint->type != 0)
			continue;
		GENERAL_NAMES *gns = dp->distpoint->name.fullname;
		for (int j = 0; url == NULL && j < sk_GENERAL_NAME_num(gns); j++) {
			GENERAL_NAME *gn = sk_GENERAL_NAME_value(gns, j);
			if (gn->type == GEN_URI)
				url = strdup((const char *)ASN1_STRING_get0_data(
				    gn->d.uniformResourceIdentifier));
		}
	}
	sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
	X509_free(last);
	return url;
}

/* Fetch the four parts and assemble a bundle (new reference). */
static json_t *fetch_bundle(int tdx, const uint8_t fmspc[6], enum dcap_pck_ca ca, struct err *err)
{
	char url[1024], fhex[13], tsig[129], qsig[129];
	struct resp ti = {0}, qe = {0}, pck = {0}, root = {0};
	char *tt = NULL, *qt = NULL, *pck_hex = NULL, *root_hex = NULL, *rurl = NULL;
	json_t *b = NULL;
	const char *tee = tdx ? "tdx" : "sgx", *upd = cfg.early ? "early" : "standard";

	fmspc_hex(fmspc, fhex, 1);
	snprintf(url, sizeof(url), "%s/%s/certification/v4/tcb?fmspc=%s&update=%s", cfg.base, tee,
	         fhex, upd);
	if (http_get(url, "TCB-Info-Issuer-Chain", &ti, err) < 0)
		goto out;
	snprintf(url, sizeof(url), "%s/%s/certification/v4/qe/identity?update=%s", cfg.base, tee,
	         upd);
	if (http_get(url, "SGX-Enclave-Identity-Issuer-Chain", &qe, err) < 0)
		goto out;
	snprintf(url, sizeof(url), "%s/sgx/certification/v4/pckcrl?ca=%s&encoding=der", cfg.base,
	         ca_name(ca));
	if (http_get(url, "SGX-PCK-CRL-Issuer-Chain", &pck, err) < 0)
		goto out;
	if (cfg.intel_host && (rurl = root_crl_url(qe.chain)) != NULL)
		snprintf(url, sizeof(url), "%s", rurl);
	else
		snprintf(url, sizeof(url), "%s/sgx/certification/v4/rootcacrl", cfg.base);
	if (http_get(url, NULL, &root, err) < 0)
		goto out;
	json_t *tj = json_string(ti.f.body), *qj = json_string(qe.f.body);
	tt = tj ? signed_text(tj, "tcbInfo", tsig) : NULL;
	qt = qj ? signed_text(qj, "enclaveIdentity", qsig) : NULL;
	json_decref(tj);
	json_decref(qj);
	pck_hex = crl_hex(&pck);
	root_hex = crl_hex(&root);
	if (tt == NULL || qt == NULL) {
		err_set(err, "collateral service sent a TCB Info or QE identity that is not "
		             "{\"tcbInfo\"|\"enclaveIdentity\": {...}, \"signature\": hex}");
		goto out;
	}
	b = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "tcb_info", tt,
	              "tcb_info_signature", tsig, "tcb_info_issuer_chain", ti.chain, "qe_identity",
	              qt, "qe_identity_signature", qsig, "qe_identity_issuer_chain", qe.chain,
	              "pck_crl_issuer_chain", pck.chain, "pck_crl", pck_hex ? pck_hex : "",
	              "root_ca_crl", root_hex ? root_hex : "");
out:
	resp_free(&ti);
	resp_free(&qe);
	resp_free(&pck);
	resp_free(&root);
	free(tt);
	free(qt);
	free(pck_hex);
	free(root_hex);
	free(rurl);
	return b;
}

static void disk_name(const struct entry *e, char *out, size_t cap)
{
	char fhex[13];
	fmspc_hex(e->fmspc, fhex, 1);
	snprintf(out, cap, "%s-%s-%s-%s.json", e->tdx ? "tdx" : "sgx", fhex, ca_name(e->ca),
	         cfg.early ? "early" : "standard");
}

static void disk_store(const struct entry *e, const json_t *bundle)
{
	char name[128];
	struct err derr = {0};
	if (cfg.cache_dir[0] == '\0')
		return;
	disk_name(e, name, sizeof(name));
	char *text = json_dumps(bundle, JSON_COMPACT);
	if (text == NULL ||
	    collateral_cache_write(cfg.cache_dir, name, text, strlen(text), &derr) < 0)
		log_warn("dcap: cannot write the collateral cache: %s",
		         text ? derr.msg : "out of memory");
	free(text);
}

/* The bundle cached on disk for this entry's key, or NULL. */
static json_t *disk_load(const struct entry *e)
{
	char name[128];
	uint8_t *buf;
	size_t len;
	disk_name(e, name, sizeof(name));
	if (collateral_cache_read(cfg.cache_dir, name, MAX_CACHED_BUNDLE, &buf, &len) < 0)
		return NULL;
	json_t *b = json_loadb((const char *)buf, len, 0, NULL);
	free(buf);
	return b;
}

static void pcs_key(int tdx, const uint8_t fmspc[6], enum dcap_pck_ca ca, char *key, size_t cap)
{
	char fhex[13];
	fmspc_hex(fmspc, fhex, 1);
	snprintf(key, cap, "pcs:%s:%s:%s", tdx ? "tdx" : "sgx", fhex, ca_name(ca));
}

static struct entry *fetch_entry(int tdx, const uint8_t fmspc[6], enum dcap_pck_ca ca,
                                 struct err *err)
{
	char key[128];
	pcs_key(tdx, fmspc, ca, key, sizeof(key));
	json_t *b = fetch_bundle(tdx, fmspc, ca, err);
	pthread_mutex_lock(&lock);
	if (b == NULL)
		stats.fetch_errors++;
	else
		stats.fetches++;
	pthread_mutex_unlock(&lock);
	if (b == NULL)
		return NULL;
	struct entry *e = entry_from_bundle(b, key, err);
	if (e != NULL) {
		e->tdx = tdx;
		memcpy(e->fmspc, fmspc, 6);
		e->ca = ca;
		disk_store(e, b);
	}
	json_decref(b);
	return e;
}

static void *refresh_main(void *arg)
{
	struct entry *old = arg;
	struct err err = {0};
	struct entry *e = fetch_entry(old->tdx, old->fmspc, old->ca, &err);
	pthread_mutex_lock(&lock);
	if (e != NULL) {
		insert_locked(e);
		stats.refreshes++;
	} else {
		log_warn("dcap: background refresh of collateral failed, serving the cached copy "
		         "until it expires: %s",
		         err.msg);
	}
	old->refreshing = 0;
	entry_unref_locked(old);
	pthread_mutex_unlock(&lock);
	return NULL;
}

/* Refresh when less than a tenth of the lifetime (at most a day) remains, trying at most once
 * a minute while the service is failing. */
static int due_for_refresh(const struct entry *e, time_t now)
{
	time_t life = e->expires - e->issued, margin = life / 10;
	if (margin > 86400)
		margin = 86400;
	return cfg.vtime == 0 && now > e->expires - margin && now - e->refresh_tried >= 60;
}

static struct entry *get_pcs(int tdx, const uint8_t fmspc[6], enum dcap_pck_ca ca, struct err *err)
{
	char key[128];
	time_t now = eff_now();
	pcs_key(tdx, fmspc, ca, key, sizeof(key));
	pthread_mutex_lock(&lock);
	struct entry *e = find_locked(key);
	if (e != NULL && now < e->expires) {
		e->refs++;
		stats.memory_hits++;
		if (!e->refreshing && due_for_refresh(e, now)) {
			pthread_t t;
			e->refreshing = 1;
			e->refresh_tried = now;
			e->refs++;
			if (pthread_create(&t, NULL, refresh_main, e) == 0)
				pthread_detach(t);
			else
				e->refreshing = 0, e->refs--;
		}
		pthread_mutex_unlock(&lock);
		return e;
	}
	pthread_mutex_unlock(&lock);
	if (cfg.cache_dir[0]) {
		struct entry probe = {.tdx = tdx, .ca = ca};
		memcpy(probe.fmspc, fmspc, 6);
		json_t *b = disk_load(&probe);
		struct err derr = {0};
		struct entry *d = b ? entry_from_bundle(b, key, &derr) : NULL;
		json_decref(b);
		if (d != NULL && now < d->expires) {
			d->tdx = tdx;
			memcpy(d->fmspc, fmspc, 6);
			d->ca = ca;
			pthread_mutex_lock(&lock);
			insert_locked(d);
			d->refs++;
			stats.disk_hits++;
			pthread_mutex_unlock(&lock);
			return d;
		}
		if (d != NULL) {
			dcap_collateral_free(&d->c);
			free(d);
		}
	}
	e = fetch_entry(tdx, fmspc, ca, err);
	if (e == NULL)
		return NULL;
	pthread_mutex_lock(&lock);
	insert_locked(e);
	e->refs++;
	pthread_mutex_unlock(&lock);
	return e;
}

struct dcap_collateral *intel_pcs_get(int tdx, const uint8_t fmspc[6], enum dcap_pck_ca ca,
                                      const json_t *options, struct err *err)
{
	const char *path = json_string_value(json_object_get(options, "collateral"));
	struct entry *e;
	if (path != NULL)
		e = get_file(path, tdx, fmspc, ca, err);
	else if (cfg.mode == MODE_FILE)
		e = get_file(cfg.path, tdx, fmspc, ca, err);
	else
		e = get_pcs(tdx, fmspc, ca, err);
	return e ? &e->c : NULL;
}
