/*
 * dcap_verify: deciding whether a quote is genuine and what Intel says about its platform.
 *
 * Order: the PCK chain to the trusted root (cached by the chain's bytes, since a platform
 * sends the same chain every time), validity of every certificate, CRL and collateral
 * document at the verification time, revocation of the PCK and its CA, the QE report's
 * signature by the PCK and its commitment to the attestation key, the quote's signature,
 * the QE's identity, and finally TCB level matching:
 *
 *   platform  the first TCB Info level (they are sorted newest first) whose 16 SGX component
 *             SVNs and PCESVN are all <= the PCK certificate's, and for TDX whose TDX
 *             component SVNs are <= the TD report's TEE_TCB_SVN (from index 2 when
 *             TEE_TCB_SVN[1], the module's major version, is non-zero: the module itself is
 *             then judged by its identity);
 *   module    TDX_<TEE_TCB_SVN[1]> in tdxModuleIdentities: MRSIGNERSEAM and masked
 *             SEAM attributes must match, status from the first level with isvsvn <=
 *             TEE_TCB_SVN[0]; with no module version, the tdxModule signer/attributes;
 *   QE        MRSIGNER, ISVPRODID, masked MISCSELECT/ATTRIBUTES, then the first level with
 *             isvsvn <= the QE's ISVSVN.
 *
 * An out-of-date module or QE turns an otherwise acceptable platform status into OutOfDate
 * (or OutOfDateConfigurationNeeded); Revoked anywhere is Revoked. No matching level at all
 * is "TCB level not supported". Statuses other than the accepted eight refuse the quote.
 */
#include <openssl/sha.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "as/evidence/dcap_internal.h"
#include "b64.h"

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static time_t asn1_time(const ASN1_TIME *t)
{
	struct tm tm;
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

/* ---- PCK chains, verified once and cached by their bytes ---- */

struct pck_entry {
	uint8_t key[32];
	int used;
	struct dcap_pck pck;
	time_t not_before, not_after; /* intersection of the three certificates' windows */
	time_t first_issue;           /* the earliest notBefore, for earliest_issue_date */
};

#define PCK_CACHE 64
static struct pck_entry pck_cache[PCK_CACHE];
static unsigned pck_next;
static pthread_mutex_t pck_lock = PTHREAD_MUTEX_INITIALIZER;

static int pck_verify_chain(struct dcap_pck *p, X509 *root, struct err *err)
{
	if (X509_cmp(p->root, root) != 0)
		return err_set(err,
		               "PCK certificate chain does not end at the trusted Intel SGX Root "
		               "CA");
	if (X509_verify(p->ca, X509_get0_pubkey(root)) != 1)
		return err_set(err,
		               "PCK CA certificate signature does not verify with the Intel SGX "
		               "Root CA");
	if (X509_verify(p->leaf, X509_get0_pubkey(p->ca)) != 1)
		return err_set(err, "PCK certificate signature does not verify with the PCK CA");
	return 0;
}

/* Copies the verified chain for `pem` into *out (up-referenced); win = {latest notBefore,
 * earliest notAfter, earliest notBefore} of its three certificates. */
static int pck_get(const uint8_t *pem, size_t len, struct dcap_pck *out, time_t win[3],
                   struct err *err)
{
	uint8_t key[32];
	X509 *root = dcap_root_ca();

	SHA256(pem, len, key);
	pthread_mutex_lock(&pck_lock);
	for (int i = 0; i < PCK_CACHE; i++) {
		struct pck_entry *e = &pck_cache[i];
		if (e->used && memcmp(e->key, key, 32) == 0 && X509_cmp(e->pck.root, root) == 0) {
			*out = e->pck;
			X509_up_ref(out->leaf);
			X509_up_ref(out->ca);
			X509_up_ref(out->root);
			win[0] = e->not_before;
			win[1] = e->not_after;
			win[2] = e->first_issue;
			pthread_mutex_unlock(&pck_lock);
			return 0;
		}
	}
	pthread_mutex_unlock(&pck_lock);

	struct dcap_pck p;
	if (dcap_pck_parse(pem, len, &p, err) < 0)
		return -1;
	if (pck_verify_chain(&p, root, err) < 0) {
		dcap_pck_free(&p);
		return -1;
	}
	X509 *c[3] = {p.leaf, p.ca, p.root};
	win[0] = 0;
	win[1] = win[2] = (time_t)1 << 62;
	for (int i = 0; i < 3; i++) {
		time_t nb = asn1_time(X509_get0_notBefore(c[i])),
		       na = asn1_time(X509_get0_notAfter(c[i]));
		if (nb > win[0])
			win[0] = nb;
		if (na < win[1])
			win[1] = na;
		if (nb < win[2])
			win[2] = nb;
	}
	pthread_mutex_lock(&pck_lock);
	struct pck_entry *e = &pck_cache[pck_next++ % PCK_CACHE];
	if (e->used)
		dcap_pck_free(&e->pck);
	memcpy(e->key, key, 32);
	e->pck = p;
	e->not_before = win[0];
	e->not_after = win[1];
	e->first_issue = win[2];
	e->used = 1;
	*out = p;
	X509_up_ref(out->leaf);
	X509_up_ref(out->ca);
	X509_up_ref(out->root);
	pthread_mutex_unlock(&pck_lock);
	return 0;
}

void dcap_pck_cache_reset(void)
{
	pthread_mutex_lock(&pck_lock);
	for (int i = 0; i < PCK_CACHE; i++) {
		if (pck_cache[i].used)
			dcap_pck_free(&pck_cache[i].pck);
		pck_cache[i].used = 0;
	}
	pthread_mutex_unlock(&pck_lock);
}

int dcap_quote_fmspc(const struct dcap_quote *q, uint8_t fmspc[6], enum dcap_pck_ca *ca,
                     struct err *err)
{
	struct dcap_pck pck;
	time_t win[3];
	if (pck_get(q->pck_pem, q->pck_pem_len, &pck, win, err) < 0)
		return -1;
	memcpy(fmspc, pck.ext.fmspc, 6);
	if (ca != NULL)
		*ca = pck.ca_kind;
	dcap_pck_free(&pck);
	return 0;
}

/* ---- validity at the verification time ---- */

static int window(time_t now, time_t from, time_t to, const char *what, struct err *err)
{
	char a[32], b[32];
	if (now >= from && now <= to)
		return 0;
	dcap_format_time(from, a);
	dcap_format_time(to, b);
	return err_set(err, "%s %s at the verification time (valid from %s to %s)", what,
	               now < from ? "is not yet valid" : "has expired", a, b);
}

/* The supplemental dates, as Intel's QvE takes them: over both CRLs, the TCB Info and QE
 * Identity, and every certificate of the PCK chain and of the three issuer chains. */
struct span {
	time_t earliest_issue, latest_issue, earliest_expiration;
};

static void span_add(struct span *s, time_t issue, time_t expire)
{
	if (s->earliest_issue == 0 || issue < s->earliest_issue)
		s->earliest_issue = issue;
	if (issue > s->latest_issue)
		s->latest_issue = issue;
	if (s->earliest_expiration == 0 || expire < s->earliest_expiration)
		s->earliest_expiration = expire;
}

static int chain_window(STACK_OF(X509) * sk, time_t now, const char *what, struct span *s,
                        struct err *err)
{
	for (int i = 0; i < sk_X509_num(sk); i++) {
		X509 *x = sk_X509_value(sk, i);
		time_t nb = asn1_time(X509_get0_notBefore(x)),
		       na = asn1_time(X509_get0_notAfter(x));
		if (window(now, nb, na, what, err) < 0)
			return -1;
		span_add(s, nb, na);
	}
	return 0;
}

static int collateral_windows(const struct dcap_collateral *c, time_t now, struct span *s,
                              struct err *err)
{
	time_t pt = asn1_time(X509_CRL_get0_lastUpdate(c->pck_crl));
	time_t pn = asn1_time(X509_CRL_get0_nextUpdate(c->pck_crl));
	time_t rt = asn1_time(X509_CRL_get0_lastUpdate(c->root_ca_crl));
	time_t rn = asn1_time(X509_CRL_get0_nextUpdate(c->root_ca_crl));
	if (window(now, c->tcb_issue, c->tcb_next, "TCB Info", err) < 0 ||
	    window(now, c->qe_issue, c->qe_next, "QE Identity", err) < 0 ||
	    window(now, pt, pn, "PCK CRL", err) < 0 ||
	    window(now, rt, rn, "Root CA CRL", err) < 0 ||
	    chain_window(c->tcb_info_chain, now, "TCB Info signing certificate chain", s, err) <
	        0 ||
	    chain_window(c->qe_identity_chain, now, "QE Identity signing certificate chain", s,
	                 err) < 0 ||
	    chain_window(c->pck_crl_chain, now, "PCK CRL issuer chain", s, err) < 0)
		return -1;
	span_add(s, c->tcb_issue, c->tcb_next);
	span_add(s, c->qe_issue, c->qe_next);
	span_add(s, pt, pn);
	span_add(s, rt, rn);
	return 0;
}

/* ---- TCB levels ---- */

static const char *const accepted[] = {"UpToDate",
                                       "SWHardeningNeeded",
                                       "ConfigurationNeeded",
                                       "ConfigurationAndSWHardeningNeeded",
                                       "OutOfDate",
                                       "OutOfDateConfigurationNeeded",
                                       "TDRelaunchAdvised",
                                       "TDRelaunchAdvisedConfigurationNeeded"};

static int is_accepted(const char *st)
{
	for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++)
		if (strcmp(st, accepted[i]) == 0)
			return 1;
	return 0;
}

/* The platform status after an out-of-date module or QE. */
static void degrade(char *status, size_t cap, const char *other)
{
	if (strcmp(other, "Revoked") == 0) {
		snprintf(status, cap, "Revoked");
		return;
	}
	if (strcmp(other, "OutOfDate") != 0)
		return;
	if (strcmp(status, "UpToDate") == 0 || strcmp(status, "SWHardeningNeeded") == 0 ||
	    strcmp(status, "TDRelaunchAdvised") == 0)
		snprintf(status, cap, "OutOfDate");
	else if (strcmp(status, "ConfigurationNeeded") == 0 ||
	         strcmp(status, "ConfigurationAndSWHardeningNeeded") == 0 ||
	         strcmp(status, "TDRelaunchAdvisedConfigurationNeeded") == 0)
		snprintf(status, cap, "OutOfDateConfigurationNeeded");
}

static const struct dcap_level *match_platform(const struct dcap_tcbinfo *t,
                                               const struct dcap_pck_ext *pck,
                                               const uint8_t *tee_tcb_svn)
{
	int from = tee_tcb_svn != NULL && tee_tcb_svn[1] > 0 ? 2 : 0;
	for (size_t i = 0; i < t->nlevels; i++) {
		const struct dcap_level *l = &t->levels[i];
		int ok = pck->pcesvn >= l->pcesvn;
		for (int k = 0; ok && k < 16; k++)
			ok = pck->comp_svn[k] >= l->sgx[k];
		for (int k = from; ok && tee_tcb_svn != NULL && k < 16; k++)
			ok = tee_tcb_svn[k] >= l->tdx[k];
		if (ok)
			return l;
	}
	return NULL;
}

static const struct dcap_level *match_isv(const struct dcap_level *l, size_t n, uint16_t isvsvn)
{
	for (size_t i = 0; i < n; i++)
		if (isvsvn >= l[i].isvsvn)
			return &l[i];
	return NULL;
}

static int masked_eq(const uint8_t *a, const uint8_t *b, const uint8_t *mask, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((a[i] & mask[i]) != (b[i] & mask[i]))
			return 0;
	return 1;
}

static void add_advisories(json_t *out, const json_t *adv)
{
	size_t i, j;
	json_t *v, *w;
	json_array_foreach(adv, i, v)
	{
		int dup = !json_is_string(v);
		json_array_foreach(out, j, w) dup = dup || json_equal(v, w);
		if (!dup)
			json_array_append(out, v);
	}
}

static int check_module(const struct dcap_tcbinfo *t, const uint8_t *body, const uint8_t *svn,
                        const struct dcap_level **mod_level, struct err *err)
{
	const uint8_t *signer = body + DCAP_TD_MRSIGNER_SEAM,
	              *attr = body + DCAP_TD_SEAM_ATTRIBUTES;
	*mod_level = NULL;
	if (svn[1] > 0 && t->nmodules > 0) {
		char id[16];
		snprintf(id, sizeof(id), "TDX_%02X", svn[1]);
		for (size_t i = 0; i < t->nmodules; i++) {
			const struct dcap_module *m = &t->modules[i];
			if (strcasecmp(m->id, id) != 0)
				continue;
			if (memcmp(m->mrsigner, signer, 48) != 0)
				return err_set(err,
				               "TD report MRSIGNERSEAM does not match TDX module "
				               "identity %s",
				               id);
			if (!masked_eq(m->attributes, attr, m->attributes_mask, 8))
				return err_set(err,
				               "TD report SEAM attributes do not match TDX module "
				               "identity %s",
				               id);
			*mod_level = match_isv(m->levels, m->nlevels, svn[0]);
			if (*mod_level == NULL)
				return err_set(err,
				               "TCB level not supported: TDX module %s SVN %u is "
				               "below every level of its identity",
				               id, svn[0]);
			const char *st = (*mod_level)->status;
			if (strcmp(st, "UpToDate") != 0 && strcmp(st, "OutOfDate") != 0 &&
			    strcmp(st, "Revoked") != 0)
				return err_set(
				    err,
				    "TDX module identity %s level has status \"%s\", which "
				    "is not one a module level can have",
				    id, st);
			return 0;
		}
		return err_set(err, "TCB Info has no TDX module identity %s for this TD's module",
		               id);
	}
	if (t->has_module) {
		if (memcmp(t->mod_mrsigner, signer, 48) != 0)
			return err_set(err,
			               "TD report MRSIGNERSEAM does not match the TCB Info TDX "
			               "module signer");
		if (!masked_eq(t->mod_attributes, attr, t->mod_attributes_mask, 8))
			return err_set(err,
			               "TD report SEAM attributes do not match the TCB Info TDX "
			               "module attributes");
	}
	return 0;
}

static int check_qe(const struct dcap_qeid *qe, const uint8_t *rep, const struct dcap_level **level,
                    struct err *err)
{
	if (memcmp(qe->mrsigner, rep + DCAP_SGX_MR_SIGNER, 32) != 0)
		return err_set(err, "QE report MRSIGNER does not match the QE Identity");
	if (le16(rep + DCAP_SGX_ISV_PROD_ID) != qe->isvprodid)
		return err_set(err, "QE report ISVPRODID %u does not match the QE Identity's %u",
		               le16(rep + DCAP_SGX_ISV_PROD_ID), qe->isvprodid);
	if (!masked_eq(qe->miscselect, rep + DCAP_SGX_MISC_SELECT, qe->miscselect_mask, 4))
		return err_set(err, "QE report MISCSELECT does not match the QE Identity");
	if (!masked_eq(qe->attributes, rep + DCAP_SGX_ATTRIBUTES, qe->attributes_mask, 16))
		return err_set(err, "QE report ATTRIBUTES do not match the QE Identity");
	uint16_t isvsvn = le16(rep + DCAP_SGX_ISV_SVN);
	*level = match_isv(qe->levels, qe->nlevels, isvsvn);
	if (*level == NULL)
		return err_set(err,
		               "TCB level not supported: QE ISVSVN %u is below every QE "
		               "Identity level",
		               isvsvn);
	return 0;
}

/* Attestation keys, by their bytes: a platform's QE signs every quote with the same key. */
#define AK_CACHE 32
static struct {
	uint8_t xy[64];
	EVP_PKEY *key;
} ak_cache[AK_CACHE];
static unsigned ak_next;
static pthread_mutex_t ak_lock = PTHREAD_MUTEX_INITIALIZER;

static EVP_PKEY *att_key(const uint8_t xy[64])
{
	EVP_PKEY *k = NULL;
	pthread_mutex_lock(&ak_lock);
	for (int i = 0; i < AK_CACHE && k == NULL; i++)
		if (ak_cache[i].key != NULL && memcmp(ak_cache[i].xy, xy, 64) == 0 &&
		    EVP_PKEY_up_ref(ak_cache[i].key) == 1)
			k = ak_cache[i].key;
	pthread_mutex_unlock(&ak_lock);
	if (k != NULL || (k = dcap_p256_key(xy)) == NULL)
		return k;
	pthread_mutex_lock(&ak_lock);
	unsigned i = ak_next++ % AK_CACHE;
	EVP_PKEY_free(ak_cache[i].key);
	memcpy(ak_cache[i].xy, xy, 64);
	ak_cache[i].key = EVP_PKEY_up_ref(k) == 1 ? k : NULL;
	pthread_mutex_unlock(&ak_lock);
	return k;
}

/* The merged status for one TEE_TCB_SVN (NULL for SGX): platform level, module, QE. */
static int evaluate(const struct dcap_tcbinfo *t, const struct dcap_pck_ext *pck,
                    const struct dcap_quote *q, const uint8_t *svn,
                    const struct dcap_level *qe_level, char status[48],
                    const struct dcap_level **plat, const struct dcap_level **mod_level,
                    struct err *err)
{
	*mod_level = NULL;
	if (svn != NULL && check_module(t, q->body, svn, mod_level, err) < 0)
		return -1;
	*plat = match_platform(t, pck, svn);
	if (*plat == NULL)
		return err_set(err,
		               "TCB level not supported: no TCB Info level matches this "
		               "platform's SVNs (PCESVN %u)",
		               pck->pcesvn);
	snprintf(status, 48, "%s", (*plat)->status);
	if (*mod_level != NULL)
		degrade(status, 48, (*mod_level)->status);
	degrade(status, 48, qe_level->status);
	return 0;
}

/* A TDX 1.5 TD launched on an out-of-date TCB whose module has since been updated in place
 * (TEE_TCB_SVN2, the current SVNs, differ from TEE_TCB_SVN, those at launch): when the current
 * SVNs are acceptable, relaunching the TD is what brings it up to date. */
static void relaunch_advice(const struct dcap_tcbinfo *t, const struct dcap_pck_ext *pck,
                            const struct dcap_quote *q, const struct dcap_level *qe_level,
                            char status[48])
{
	static const uint8_t zero[16];
	const struct dcap_level *plat, *mod;
	char cur[48];
	if (q->body_len < DCAP_TD15_BODY_SIZE || q->body_type != 3)
		return;
	const uint8_t *svn2 = q->body + DCAP_TD10_BODY_SIZE;
	if (memcmp(svn2, zero, 16) == 0 || memcmp(svn2, q->body + DCAP_TD_TEE_TCB_SVN, 16) == 0)
		return;
	if (strcmp(status, "OutOfDate") != 0 && strcmp(status, "OutOfDateConfigurationNeeded") != 0)
		return;
	if (evaluate(t, pck, q, svn2, qe_level, cur, &plat, &mod, NULL) < 0)
		return;
	if (strcmp(cur, "UpToDate") == 0 || strcmp(cur, "SWHardeningNeeded") == 0)
		snprintf(status, 48, "TDRelaunchAdvised");
	else if (strcmp(cur, "ConfigurationNeeded") == 0 ||
	         strcmp(cur, "ConfigurationAndSWHardeningNeeded") == 0)
		snprintf(status, 48, "TDRelaunchAdvisedConfigurationNeeded");
}

static long crl_number(X509_CRL *crl)
{
	ASN1_INTEGER *n = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
	long v = n ? ASN1_INTEGER_get(n) : -1;
	ASN1_INTEGER_free(n);
	return v;
}

static void root_key_id(X509 *root, uint8_t out[48])
{
	X509_PUBKEY *pk = X509_get_X509_PUBKEY(root);
	const unsigned char *raw = NULL;
	int rawlen = 0;
	memset(out, 0, 48);
	if (pk != NULL && X509_PUBKEY_get0_param(NULL, &raw, &rawlen, NULL, pk) == 1 && rawlen > 0)
		SHA384(raw, (size_t)rawlen, out);
}

int dcap_verify(const struct dcap_quote *q, struct dcap_collateral *c, time_t now,
                struct dcap_result *out, struct err *err)
{
	struct dcap_pck pck = {0};
	struct span span = {0};
	time_t win[3];
	EVP_PKEY *ak = NULL;
	X509_REVOKED *rev;
	X509 *root = dcap_root_ca();
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (now == 0)
		now = time(NULL);
	if (root == NULL)
		return err_set(err, "no trusted Intel SGX Root CA is loaded");
	if (pck_get(q->pck_pem, q->pck_pem_len, &pck, win, err) < 0)
		return -1;
	if (window(now, win[0], win[1], "PCK certificate chain", err) < 0)
		goto out;
	if (!c->checked && dcap_collateral_check(c, root, err) < 0)
		goto out;
	if (collateral_windows(c, now, &span, err) < 0)
		goto out;
	span_add(&span, win[2], win[1]);
	span_add(&span, win[0], win[1]);
	const struct dcap_tcbinfo *t = c->tcb;
	int tdx = dcap_quote_is_tdx(q);
	if (t->is_tdx != tdx || c->qe->is_td_qe != tdx) {
		err_set(err, "collateral mismatch: the collateral is for %s but the quote is %s",
		        t->is_tdx ? "TDX" : "SGX", tdx ? "TDX" : "SGX");
		goto out;
	}
	/* revocation: the PCK by its CA's CRL, the CA by the root's */
	if (X509_NAME_cmp(X509_CRL_get_issuer(c->pck_crl), X509_get_subject_name(pck.ca)) != 0 ||
	    X509_cmp(sk_X509_value(c->pck_crl_chain, 0), pck.ca) != 0) {
		err_set(err,
		        "collateral PCK CRL is issued by the %s CA but the quote's PCK is issued "
		        "by the %s CA",
		        pck.ca_kind == DCAP_PCK_CA_PLATFORM ? "Processor" : "Platform",
		        pck.ca_kind == DCAP_PCK_CA_PLATFORM ? "Platform" : "Processor");
		goto out;
	}
	if (X509_CRL_get0_by_cert(c->pck_crl, &rev, pck.leaf) == 1) {
		err_set(err, "PCK certificate is revoked by the PCK CRL");
		goto out;
	}
	if (X509_CRL_get0_by_cert(c->root_ca_crl, &rev, pck.ca) == 1) {
		err_set(err, "PCK CA certificate is revoked by the Root CA CRL");
		goto out;
	}
	/* the QE vouches for the attestation key; the PCK vouches for the QE */
	if (dcap_p256_verify(X509_get0_pubkey(pck.leaf), q->qe_report, DCAP_SGX_REPORT_SIZE,
	                     q->qe_report_sig) < 0) {
		err_set(err, "QE report signature does not verify with the PCK certificate");
		goto out;
	}
	{
		uint8_t h[32];
		static const uint8_t zero[32];
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		int ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
		         EVP_DigestUpdate(md, q->att_key, 64) == 1 &&
		         EVP_DigestUpdate(md, q->qe_auth, q->qe_auth_len) == 1 &&
		         EVP_DigestFinal_ex(md, h, NULL) == 1;
		EVP_MD_CTX_free(md);
		if (!ok || memcmp(h, q->qe_report + DCAP_SGX_REPORT_DATA, 32) != 0 ||
		    memcmp(zero, q->qe_report + DCAP_SGX_REPORT_DATA + 32, 32) != 0) {
			err_set(err, "QE report data does not commit to the attestation key and QE "
			             "authentication data");
			goto out;
		}
	}
	if ((ak = att_key(q->att_key)) == NULL) {
		err_set(err, "quote attestation key is not a valid P-256 point");
		goto out;
	}
	if (dcap_p256_verify(ak, q->signed_data, q->signed_len, q->signature) < 0) {
		err_set(err, "quote signature does not verify with the attestation key");
		goto out;
	}
	/* collateral applies to this platform */
	if (memcmp(t->fmspc, pck.ext.fmspc, 6) != 0) {
		char a[13], b[13];
		for (int i = 0; i < 6; i++) {
			snprintf(a + 2 * i, 3, "%02x", t->fmspc[i]);
			snprintf(b + 2 * i, 3, "%02x", pck.ext.fmspc[i]);
		}
		err_set(err, "FMSPC mismatch: TCB Info is for %s, the PCK certificate says %s", a,
		        b);
		goto out;
	}
	if (memcmp(t->pceid, pck.ext.pceid, 2) != 0) {
		err_set(err, "PCEID mismatch between TCB Info and the PCK certificate");
		goto out;
	}
	/* TCB levels */
	const struct dcap_level *qe_level, *mod_level = NULL, *plat;
	if (check_qe(c->qe, q->qe_report, &qe_level, err) < 0)
		goto out;
	if (evaluate(t, &pck.ext, q, tdx ? q->body + DCAP_TD_TEE_TCB_SVN : NULL, qe_level,
	             out->tcb_status, &plat, &mod_level, err) < 0)
		goto out;
	if (!is_accepted(out->tcb_status)) {
		err_set(err, "TCB status is %s (platform %s, QE %s%s%s)", out->tcb_status,
		        plat->status, qe_level->status, mod_level ? ", TDX module " : "",
		        mod_level ? mod_level->status : "");
		goto out;
	}
	relaunch_advice(t, &pck.ext, q, qe_level, out->tcb_status);
	out->advisory_ids = json_array();
	add_advisories(out->advisory_ids, plat->advisories);
	if (mod_level != NULL)
		add_advisories(out->advisory_ids, mod_level->advisories);
	add_advisories(out->advisory_ids, qe_level->advisories);
	snprintf(out->tcb_date, sizeof(out->tcb_date), "%s", plat->date);
	out->earliest_issue = span.earliest_issue;
	out->latest_issue = span.latest_issue;
	out->earliest_expiration = span.earliest_expiration;
	out->pck_crl_num = crl_number(c->pck_crl);
	out->root_ca_crl_num = crl_number(c->root_ca_crl);
	out->tcb_eval_num = t->eval_num < c->qe->eval_num ? t->eval_num : c->qe->eval_num;
	root_key_id(root, out->root_key_id);
	out->pck = pck.ext;
	out->ca_kind = pck.ca_kind;
	rc = 0;
out:
	EVP_PKEY_free(ak);
	dcap_pck_free(&pck);
	return rc;
}

void dcap_result_free(struct dcap_result *r)
{
	json_decref(r->advisory_ids);
	r->advisory_ids = NULL;
}

static void set_hex(json_t *o, const char *k, const uint8_t *b, size_t n)
{
	char *h = hex_encode(b, n);
	json_object_set_new(o, k, json_string(h ? h : ""));
	free(h);
}

static void set_time(json_t *o, const char *k, time_t t)
{
	char s[32];
	dcap_format_time(t, s);
	json_object_set_new(o, k, json_string(s));
}

void dcap_result_claims(const struct dcap_result *r, json_t *claims)
{
	static const char *const types[] = {"Standard", "Scalable", "Scalable with Integrity"};
	char st[32];

	set_time(claims, "earliest_issue_date", r->earliest_issue);
	set_time(claims, "latest_issue_date", r->latest_issue);
	set_time(claims, "earliest_expiration_date", r->earliest_expiration);
	json_object_set_new(claims, "tcb_date", json_string(r->tcb_date));
	json_object_set_new(claims, "pck_crl_num", json_integer(r->pck_crl_num));
	json_object_set_new(claims, "root_ca_crl_num", json_integer(r->root_ca_crl_num));
	json_object_set_new(claims, "tcb_eval_num", json_integer(r->tcb_eval_num));
	set_hex(claims, "platform_provider_id", r->pck.ppid, 16);
	if (r->pck.sgx_type >= 0 && r->pck.sgx_type <= 2)
		snprintf(st, sizeof(st), "%s", types[r->pck.sgx_type]);
	else
		snprintf(st, sizeof(st), "Unknown (%d)", r->pck.sgx_type);
	json_object_set_new(claims, "sgx_type", json_string(st));
	if ((r->pck.sgx_type == 1 || r->pck.sgx_type == 2) && r->pck.has_config) {
		json_object_set_new(claims, "is_dynamic_platform",
		                    json_boolean(r->pck.dynamic_platform));
		json_object_set_new(claims, "is_cached_keys", json_boolean(r->pck.cached_keys));
		json_object_set_new(claims, "is_smt_enabled", json_boolean(r->pck.smt_enabled));
	}
	set_hex(claims, "root_key_id", r->root_key_id, 48);
	json_object_set_new(claims, "tcb_status", json_string(r->tcb_status));
	/* expired collateral is refused, so what was accepted had none expired */
	json_object_set_new(claims, "collateral_expiration_status", json_string("0"));
	json_object_set_new(claims, "advisory_ids",
	                    r->advisory_ids ? json_incref(r->advisory_ids) : json_array());
}
