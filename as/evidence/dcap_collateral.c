/*
 * dcap_collateral: Intel's verification collateral for one FMSPC — TCB Info, QE Identity,
 * their issuer chains and signatures, the PCK CRL and the Root CA CRL — loaded from the
 * bundle JSON (testdata MANIFEST §0; also what the PCS fetcher caches), decoded into plain
 * arrays, and checked once: every signature and chain up to the trusted Intel SGX Root CA.
 * Validity windows depend on the verification time and are checked per quote (dcap_verify).
 */
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "as/evidence/dcap_internal.h"
#include "b64.h"
#include "config.h"
#include "embed.h"

EMBED_FILE(dcap_intel_root_pem, "as/evidence/roots/intel_sgx_root_ca.pem");

static X509 *root_ca;
static pthread_mutex_t root_lock = PTHREAD_MUTEX_INITIALIZER;

X509 *dcap_root_ca(void)
{
	pthread_mutex_lock(&root_lock);
	if (root_ca == NULL) {
		BIO *b = BIO_new_mem_buf(dcap_intel_root_pem, -1);
		root_ca = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
		BIO_free(b);
	}
	pthread_mutex_unlock(&root_lock);
	return root_ca;
}

int dcap_set_root_ca_file(const char *path, struct err *err)
{
	size_t len;
	char *buf = file_read_all(path, &len, err);
	if (buf == NULL)
		return err_prefix(err, "Intel root CA");
	BIO *b = BIO_new_mem_buf(buf, (int)len);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	if (x == NULL) {
		const unsigned char *p = (const unsigned char *)buf;
		x = d2i_X509(NULL, &p, (long)len);
	}
	BIO_free(b);
	free(buf);
	if (x == NULL)
		return err_set(err, "Intel root CA %s is neither a PEM nor a DER certificate",
		               path);
	dcap_root_ca();
	pthread_mutex_lock(&root_lock);
	X509_free(root_ca);
	root_ca = x;
	pthread_mutex_unlock(&root_lock);
	return 0;
}

int dcap_parse_time(const char *s, time_t *out)
{
	struct tm tm = {0};
	const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	if (end == NULL)
		return -1;
	if (*end == '.')
		while (*++end >= '0' && *end <= '9')
			;
	if (*end == 'Z')
		end++;
	else if (strncmp(end, "+00:00", 6) == 0)
		end += 6;
	else
		return -1;
	if (*end != '\0')
		return -1;
	*out = timegm(&tm);
	return 0;
}

void dcap_format_time(time_t t, char out[32])
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int dcap_hex_exact(const char *s, uint8_t *out, size_t n)
{
	if (s == NULL || strlen(s) != 2 * n)
		return -1;
	for (size_t i = 0; i < 2 * n; i++) {
		char c = s[i];
		int v = c >= '0' && c <= '9'   ? c - '0'
		        : c >= 'a' && c <= 'f' ? c - 'a' + 10
		        : c >= 'A' && c <= 'F' ? c - 'A' + 10
		                               : -1;
		if (v < 0)
			return -1;
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(v << 4);
		else
			out[i / 2] |= (uint8_t)v;
	}
	return 0;
}

EVP_PKEY *dcap_p256_key(const uint8_t xy[64])
{
	uint8_t pt[65];
	EVP_PKEY *key = NULL;
	pt[0] = 0x04;
	memcpy(pt + 1, xy, 64);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0),
	    OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt)),
	    OSSL_PARAM_construct_end()};
	if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		key = NULL;
	EVP_PKEY_CTX_free(ctx);
	return key;
}

/* SHA-256 fetched once: an implicit fetch per verification costs a provider lookup. */
static EVP_MD *sha256;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
	sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *sha256_md(void)
{
	pthread_once(&sha256_once, sha256_fetch);
	return sha256 ? sha256 : EVP_sha256();
}

int dcap_p256_verify(EVP_PKEY *key, const uint8_t *data, size_t len, const uint8_t sig[64])
{
	ECDSA_SIG *s = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, 32, NULL), *ss = BN_bin2bn(sig + 32, 32, NULL);
	unsigned char *der = NULL;
	int derlen = -1, ok = 0;

	if (s != NULL && r != NULL && ss != NULL && ECDSA_SIG_set0(s, r, ss) == 1) {
		r = ss = NULL;
		derlen = i2d_ECDSA_SIG(s, &der);
	}
	if (derlen > 0 && key != NULL && EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		ok = md != NULL && EVP_DigestVerifyInit(md, NULL, sha256_md(), NULL, key) == 1 &&
		     EVP_DigestVerify(md, der, (size_t)derlen, data, len) == 1;
		EVP_MD_CTX_free(md);
	}
	BN_free(r);
	BN_free(ss);
	ECDSA_SIG_free(s);
	OPENSSL_free(der);
	return ok ? 0 : -1;
}

/* ---- bundle loading ---- */

static STACK_OF(X509) * pem_chain(const char *pem, const char *what, struct err *err)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	BIO *b = pem ? BIO_new_mem_buf(pem, -1) : NULL;
	X509 *x;
	while (b != NULL && sk != NULL && sk_X509_num(sk) < 8 &&
	       (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
		sk_X509_push(sk, x);
	BIO_free(b);
	if (sk == NULL || sk_X509_num(sk) < 2) {
		sk_X509_pop_free(sk, X509_free);
		err_set(err, "collateral %s must be a PEM chain of at least 2 certificates", what);
		return NULL;
	}
	return sk;
}

static X509_CRL *hex_crl(const char *hex, const char *what, struct err *err)
{
	uint8_t *der = NULL;
	size_t len = 0;
	X509_CRL *crl = NULL;
	if (hex != NULL && hex_decode(hex, strlen(hex), &der, &len) == 0) {
		const unsigned char *p = der;
		crl = d2i_X509_CRL(NULL, &p, (long)len);
	} else if (hex != NULL && strncmp(hex, "-----BEGIN", 10) == 0) {
		BIO *b = BIO_new_mem_buf(hex, -1);
		crl = b ? PEM_read_bio_X509_CRL(b, NULL, NULL, NULL) : NULL;
		BIO_free(b);
	}
	free(der);
	if (crl == NULL)
		err_set(err, "collateral %s must be a CRL in hex-encoded DER (or PEM)", what);
	return crl;
}

static const char *str(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static int json_time(const json_t *o, const char *k, time_t *out, const char *what, struct err *err)
{
	if (dcap_parse_time(str(o, k), out) < 0)
		return err_set(err, "%s `%s` is not an RFC 3339 UTC time", what, k);
	return 0;
}

int dcap_collateral_from_json(const json_t *bundle, struct dcap_collateral *c, struct err *err)
{
	memset(c, 0, sizeof(*c));
	const char *ti = str(bundle, "tcb_info"), *qe = str(bundle, "qe_identity");
	if (!json_is_object(bundle))
		return err_set(err, "collateral bundle must be a JSON object");
	if (ti == NULL || qe == NULL)
		return err_set(err, "collateral bundle lacks `tcb_info` or `qe_identity` text");
	if (dcap_hex_exact(str(bundle, "tcb_info_signature"), c->tcb_info_sig, 64) < 0 ||
	    dcap_hex_exact(str(bundle, "qe_identity_signature"), c->qe_identity_sig, 64) < 0)
		return err_set(err,
		               "collateral `tcb_info_signature` and `qe_identity_signature` must "
		               "be 64 bytes of hex (r || s)");
	c->tcb_info_len = strlen(ti);
	c->qe_identity_len = strlen(qe);
	c->tcb_info_json = strdup(ti);
	c->qe_identity_json = strdup(qe);
	if ((c->tcb_info_chain = pem_chain(str(bundle, "tcb_info_issuer_chain"),
	                                   "tcb_info_issuer_chain", err)) == NULL ||
	    (c->qe_identity_chain = pem_chain(str(bundle, "qe_identity_issuer_chain"),
	                                      "qe_identity_issuer_chain", err)) == NULL ||
	    (c->pck_crl_chain = pem_chain(str(bundle, "pck_crl_issuer_chain"),
	                                  "pck_crl_issuer_chain", err)) == NULL ||
	    (c->pck_crl = hex_crl(str(bundle, "pck_crl"), "pck_crl", err)) == NULL ||
	    (c->root_ca_crl = hex_crl(str(bundle, "root_ca_crl"), "root_ca_crl", err)) == NULL)
		goto fail;
	json_error_t je;
	c->tcb_info = json_loadb(c->tcb_info_json, c->tcb_info_len, 0, &je);
	if (!json_is_object(c->tcb_info)) {
		err_set(err, "collateral tcb_info is not a JSON object: %s", je.text);
		goto fail;
	}
	c->qe_identity = json_loadb(c->qe_identity_json, c->qe_identity_len, 0, &je);
	if (!json_is_object(c->qe_identity)) {
		err_set(err, "collateral qe_identity is not a JSON object: %s", je.text);
		goto fail;
	}
	c->tcb = calloc(1, sizeof(*c->tcb));
	c->qe = calloc(1, sizeof(*c->qe));
	if (c->tcb == NULL || c->qe == NULL || dcap_tcbinfo_decode(c->tcb_info, c->tcb, err) < 0 ||
	    dcap_qeid_decode(c->qe_identity, c->qe, err) < 0 ||
	    json_time(c->tcb_info, "issueDate", &c->tcb_issue, "TCB Info", err) < 0 ||
	    json_time(c->tcb_info, "nextUpdate", &c->tcb_next, "TCB Info", err) < 0 ||
	    json_time(c->qe_identity, "issueDate", &c->qe_issue, "QE Identity", err) < 0 ||
	    json_time(c->qe_identity, "nextUpdate", &c->qe_next, "QE Identity", err) < 0)
		goto fail;
	return 0;
fail:
	dcap_collateral_free(c);
	return -1;
}

int dcap_collateral_load_file(const char *path, struct dcap_collateral *c, struct err *err)
{
	size_t len;
	char *buf = file_read_all(path, &len, err);
	if (buf == NULL)
		return err_prefix(err, "collateral");
	json_error_t je;
	json_t *j = json_loadb(buf, len, 0, &je);
	free(buf);
	if (j == NULL)
		return err_set(err, "collateral %s is not JSON: %s (line %d)", path, je.text,
		               je.line);
	int rc = dcap_collateral_from_json(j, c, err);
	json_decref(j);
	return rc;
}

void dcap_collateral_free(struct dcap_collateral *c)
{
	free(c->tcb_info_json);
	free(c->qe_identity_json);
	sk_X509_pop_free(c->tcb_info_chain, X509_free);
	sk_X509_pop_free(c->qe_identity_chain, X509_free);
	sk_X509_pop_free(c->pck_crl_chain, X509_free);
	X509_CRL_free(c->pck_crl);
	X509_CRL_free(c->root_ca_crl);
	if (c->tcb != NULL)
		dcap_tcbinfo_free(c->tcb);
	if (c->qe != NULL)
		dcap_qeid_free(c->qe);
	free(c->tcb);
	free(c->qe);
	json_decref(c->tcb_info);
	json_decref(c->qe_identity);
	memset(c, 0, sizeof(*c));
}

/* ---- decoding the signed JSON ---- */

static int svn_of(const json_t *v, unsigned max, unsigned *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
		return -1;
	*out = (unsigned)json_integer_value(v);
	return 0;
}

/* A "tcbLevels" entry's status, date and advisories. */
static int level_common(const json_t *l, struct dcap_level *lv, const char *what, struct err *err)
{
	const char *st = str(l, "tcbStatus"), *date = str(l, "tcbDate");
	time_t t;
	if (st == NULL || strlen(st) >= sizeof(lv->status))
		return err_set(err, "%s TCB level lacks `tcbStatus`", what);
	snprintf(lv->status, sizeof(lv->status), "%s", st);
	if (date == NULL || dcap_parse_time(date, &t) < 0)
		return err_set(err, "%s TCB level lacks an RFC 3339 `tcbDate`", what);
	dcap_format_time(t, lv->date);
	json_t *adv = json_object_get(l, "advisoryIDs");
	if (adv != NULL && !json_is_array(adv))
		return err_set(err, "%s TCB level `advisoryIDs` must be an array", what);
	lv->advisories = adv;
	return 0;
}

/* 16 SVNs from a v3 components array ([{"svn": n}, ...]) or v2 keys sgxtcbcompNNsvn. */
static int components(const json_t *tcb, const char *key, const char *v2prefix, uint8_t out[16],
                      const char *what, struct err *err)
{
	json_t *arr = json_object_get(tcb, key);
	unsigned v;
	if (arr != NULL) {
		if (!json_is_array(arr) || json_array_size(arr) != 16)
			return err_set(
			    err,
			    "%s component count mismatch: `%s` has %zu entries, expected "
			    "16",
			    what, key, json_is_array(arr) ? json_array_size(arr) : 0);
		for (size_t i = 0; i < 16; i++) {
			if (svn_of(json_object_get(json_array_get(arr, i), "svn"), 255, &v) < 0)
				return err_set(err, "%s `%s[%zu].svn` must be an integer 0..255",
				               what, key, i);
			out[i] = (uint8_t)v;
		}
		return 0;
	}
	if (v2prefix == NULL)
		return err_set(err, "%s TCB level lacks `%s`", what, key);
	for (int i = 0; i < 16; i++) {
		char k[32];
		snprintf(k, sizeof(k), "%s%02dsvn", v2prefix, i + 1);
		if (svn_of(json_object_get(tcb, k), 255, &v) < 0)
			return err_set(err, "%s TCB level lacks `%s`", what, k);
		out[i] = (uint8_t)v;
	}
	return 0;
}

static int hex_field(const json_t *o, const char *k, uint8_t *out, size_t n, const char *what,
                     struct err *err)
{
	if (dcap_hex_exact(str(o, k), out, n) < 0)
		return err_set(err, "%s `%s` must be %zu bytes of hex", what, k, n);
	return 0;
}

static struct dcap_level *levels_alloc(const json_t *arr, size_t *n, const char *what,
                                       struct err *err)
{
	if (!json_is_array(arr) || json_array_size(arr) == 0 ||
	    json_array_size(arr) > DCAP_MAX_LEVELS) {
		err_set(err, "%s `tcbLevels` must be an array of 1..%d levels", what,
		        DCAP_MAX_LEVELS);
		return NULL;
	}
	*n = json_array_size(arr);
	struct dcap_level *l = calloc(*n, sizeof(*l));
	if (l == NULL)
		err_set(err, "out of memory");
	return l;
}

/* Levels holding only {"tcb": {"isvsvn": n}} (QE identity, TDX module identities). */
static int isv_levels(const json_t *arr, struct dcap_level **out, size_t *n, const char *what,
                      struct err *err)
{
	struct dcap_level *l = levels_alloc(arr, n, what, err);
	if (l == NULL)
		return -1;
	for (size_t i = 0; i < *n; i++) {
		json_t *e = json_array_get(arr, i);
		unsigned v;
		if (svn_of(json_object_get(json_object_get(e, "tcb"), "isvsvn"), 65535, &v) < 0) {
			free(l);
			return err_set(err, "%s TCB level %zu lacks `tcb.isvsvn`", what, i);
		}
		l[i].isvsvn = (uint16_t)v;
		if (level_common(e, &l[i], what, err) < 0) {
			free(l);
			return -1;
		}
	}
	*out = l;
	return 0;
}

int dcap_tcbinfo_decode(const json_t *j, struct dcap_tcbinfo *t, struct err *err)
{
	const char *id = str(j, "id");
	json_t *ver = json_object_get(j, "version");
	memset(t, 0, sizeof(*t));
	t->version = json_is_integer(ver) ? (int)json_integer_value(ver) : 0;
	if (t->version != 2 && t->version != 3)
		return err_set(err, "TCB Info version %d is not supported (2 or 3)", t->version);
	if (t->version == 3) {
		if (id == NULL || (strcmp(id, "TDX") != 0 && strcmp(id, "SGX") != 0))
			return err_set(err, "TCB Info id must be \"SGX\" or \"TDX\"");
		t->is_tdx = strcmp(id, "TDX") == 0;
	}
	json_t *en = json_object_get(j, "tcbEvaluationDataNumber");
	t->eval_num = json_is_integer(en) ? (long)json_integer_value(en) : -1;
	if (hex_field(j, "fmspc", t->fmspc, 6, "TCB Info", err) < 0 ||
	    hex_field(j, "pceId", t->pceid, 2, "TCB Info", err) < 0)
		return -1;
	json_t *mod = json_object_get(j, "tdxModule");
	if (mod != NULL) {
		t->has_module = 1;
		if (hex_field(mod, "mrsigner", t->mod_mrsigner, 48, "TCB Info tdxModule", err) <
		        0 ||
		    hex_field(mod, "attributes", t->mod_attributes, 8, "TCB Info tdxModule", err) <
		        0 ||
		    hex_field(mod, "attributesMask", t->mod_attributes_mask, 8,
		              "TCB Info tdxModule", err) < 0)
			return -1;
	}
	json_t *mods = json_object_get(j, "tdxModuleIdentities");
	if (mods != NULL) {
		if (!json_is_array(mods) || json_array_size(mods) > DCAP_MAX_MODULES)
			return err_set(err,
			               "TCB Info `tdxModuleIdentities` must be an array of at most "
			               "%d entries",
			               DCAP_MAX_MODULES);
		for (size_t i = 0; i < json_array_size(mods); i++) {
			json_t *m = json_array_get(mods, i);
			struct dcap_module *dm = &t->modules[t->nmodules++];
			const char *mid = str(m, "id");
			if (mid == NULL || strlen(mid) >= sizeof(dm->id))
				return dcap_tcbinfo_free(t),
				       err_set(err, "TDX module identity lacks `id`");
			snprintf(dm->id, sizeof(dm->id), "%s", mid);
			if (hex_field(m, "mrsigner", dm->mrsigner, 48, "TDX module identity", err) <
			        0 ||
			    hex_field(m, "attributes", dm->attributes, 8, "TDX module identity",
			              err) < 0 ||
			    hex_field(m, "attributesMask", dm->attributes_mask, 8,
			              "TDX module identity", err) < 0 ||
			    isv_levels(json_object_get(m, "tcbLevels"), &dm->levels, &dm->nlevels,
			               "TDX module identity", err) < 0) {
				dcap_tcbinfo_free(t);
				return -1;
			}
		}
	}
	json_t *arr = json_object_get(j, "tcbLevels");
	if ((t->levels = levels_alloc(arr, &t->nlevels, "TCB Info", err)) == NULL) {
		dcap_tcbinfo_free(t);
		return -1;
	}
	for (size_t i = 0; i < t->nlevels; i++) {
		json_t *e = json_array_get(arr, i), *tcb = json_object_get(e, "tcb");
		struct dcap_level *l = &t->levels[i];
		unsigned v;
		if (!json_is_object(tcb)) {
			err_set(err, "TCB Info level %zu lacks `tcb`", i);
			dcap_tcbinfo_free(t);
			return -1;
		}
		if (components(tcb, "sgxtcbcomponents", t->version == 2 ? "sgxtcbcomp" : NULL,
		               l->sgx, "SGX TCB", err) < 0) {
			dcap_tcbinfo_free(t);
			return -1;
		}
		if (svn_of(json_object_get(tcb, "pcesvn"), 65535, &v) < 0) {
			err_set(err, "TCB Info level %zu lacks `tcb.pcesvn`", i);
			dcap_tcbinfo_free(t);
			return -1;
		}
		l->pcesvn = (uint16_t)v;
		if (t->is_tdx) {
			if (components(tcb, "tdxtcbcomponents", NULL, l->tdx, "TDX TCB", err) < 0) {
				dcap_tcbinfo_free(t);
				return -1;
			}
			l->has_tdx = 1;
		}
		if (level_common(e, l, "TCB Info", err) < 0) {
			dcap_tcbinfo_free(t);
			return -1;
		}
	}
	return 0;
}

void dcap_tcbinfo_free(struct dcap_tcbinfo *t)
{
	for (size_t i = 0; i < t->nmodules; i++)
		free(t->modules[i].levels);
	free(t->levels);
	memset(t, 0, sizeof(*t));
}

int dcap_qeid_decode(const json_t *j, struct dcap_qeid *q, struct err *err)
{
	const char *id = str(j, "id");
	json_t *ver = json_object_get(j, "version");
	unsigned v;
	memset(q, 0, sizeof(*q));
	if (!json_is_integer(ver) || json_integer_value(ver) != 2)
		return err_set(err, "QE Identity version must be 2");
	if (id == NULL || (strcmp(id, "QE") != 0 && strcmp(id, "TD_QE") != 0))
		return err_set(err, "QE Identity id must be \"QE\" or \"TD_QE\"");
	q->is_td_qe = strcmp(id, "TD_QE") == 0;
	json_t *en = json_object_get(j, "tcbEvaluationDataNumber");
	q->eval_num = json_is_integer(en) ? (long)json_integer_value(en) : -1;
	if (hex_field(j, "miscselect", q->miscselect, 4, "QE Identity", err) < 0 ||
	    hex_field(j, "miscselectMask", q->miscselect_mask, 4, "QE Identity", err) < 0 ||
	    hex_field(j, "attributes", q->attributes, 16, "QE Identity", err) < 0 ||
	    hex_field(j, "attributesMask", q->attributes_mask, 16, "QE Identity", err) < 0 ||
	    hex_field(j, "mrsigner", q->mrsigner, 32, "QE Identity", err) < 0)
		return -1;
	if (svn_of(json_object_get(j, "isvprodid"), 65535, &v) < 0)
		return err_set(err, "QE Identity lacks `isvprodid`");
	q->isvprodid = (uint16_t)v;
	return isv_levels(json_object_get(j, "tcbLevels"), &q->levels, &q->nlevels, "QE Identity",
	                  err);
}

void dcap_qeid_free(struct dcap_qeid *q)
{
	free(q->levels);
	memset(q, 0, sizeof(*q));
}

/* ---- the one-time signature and chain checks ---- */

static int same_cert(X509 *a, X509 *b)
{
	return a != NULL && b != NULL && X509_cmp(a, b) == 0;
}

/* chain[0] <- ... <- chain[n-1] == root; each signed by the next. */
static int check_chain(STACK_OF(X509) * chain, X509 *root, const char *what, struct err *err)
{
	int n = sk_X509_num(chain);
	if (!same_cert(sk_X509_value(chain, n - 1), root))
		return err_set(err, "%s does not end at the trusted Intel SGX Root CA", what);
	for (int i = 0; i < n - 1; i++) {
		EVP_PKEY *k = X509_get0_pubkey(sk_X509_value(chain, i + 1));
		if (k == NULL || X509_verify(sk_X509_value(chain, i), k) != 1)
			return err_set(err, "%s: certificate %d is not signed by the next one",
			               what, i);
	}
	return 0;
}

int dcap_collateral_check(struct dcap_collateral *c, X509 *root, struct err *err)
{
	EVP_PKEY *rk = root ? X509_get0_pubkey(root) : NULL;
	if (rk == NULL)
		return err_set(err, "no trusted Intel SGX Root CA is loaded");
	if (check_chain(c->tcb_info_chain, root, "TCB Info issuer chain", err) < 0 ||
	    check_chain(c->qe_identity_chain, root, "QE Identity issuer chain", err) < 0 ||
	    check_chain(c->pck_crl_chain, root, "PCK CRL issuer chain", err) < 0)
		return -1;
	if (dcap_p256_verify(X509_get0_pubkey(sk_X509_value(c->tcb_info_chain, 0)),
	                     (const uint8_t *)c->tcb_info_json, c->tcb_info_len,
	                     c->tcb_info_sig) < 0)
		return err_set(err, "TCB Info signature does not verify with the TCB signing key");
	if (dcap_p256_verify(X509_get0_pubkey(sk_X509_value(c->qe_identity_chain, 0)),
	                     (const uint8_t *)c->qe_identity_json, c->qe_identity_len,
	                     c->qe_identity_sig) < 0)
		return err_set(err,
		               "QE Identity signature does not verify with the TCB signing key");
	if (X509_CRL_verify(c->root_ca_crl, rk) != 1)
		return err_set(err, "Root CA CRL is not signed by the Intel SGX Root CA");
	if (X509_CRL_verify(c->pck_crl, X509_get0_pubkey(sk_X509_value(c->pck_crl_chain, 0))) != 1)
		return err_set(err, "PCK CRL is not signed by the first certificate of its issuer "
		                    "chain");
	X509_REVOKED *rev;
	if (X509_CRL_get0_by_cert(c->root_ca_crl, &rev, sk_X509_value(c->tcb_info_chain, 0)) == 1)
		return err_set(err, "TCB Info signing certificate is revoked by the Root CA CRL");
	if (X509_CRL_get0_by_cert(c->root_ca_crl, &rev, sk_X509_value(c->qe_identity_chain, 0)) ==
	    1)
		return err_set(err,
		               "QE Identity signing certificate is revoked by the Root CA CRL");
	if (X509_CRL_get0_by_cert(c->root_ca_crl, &rev, sk_X509_value(c->pck_crl_chain, 0)) == 1)
		return err_set(
		    err, "PCK CA certificate (the PCK CRL's issuer) is revoked by the Root CA "
		         "CRL");
	if (c->tcb->is_tdx != c->qe->is_td_qe)
		return err_set(err, "collateral mixes %s TCB Info with a %s identity",
		               c->tcb->is_tdx ? "TDX" : "SGX", c->qe->is_td_qe ? "TD_QE" : "QE");
	c->checked = 1;
	return 0;
}
