/*
 * dcap_quote: the byte layout of Intel ECDSA quotes and of the PCK certificate's SGX
 * extension (see dcap.h).
 *
 * Layout (all little-endian): a 48-byte header (version, attestation key type, TEE type,
 * QE/PCE SVN, QE vendor id, user data); the body (v3: SGX report 384 B; v4: TD report
 * 584 B; v5: u16 body type + u32 body size, then 584 or 648 B); then u32 signature data
 * length and the signature data: quote signature (64), attestation key (64), and the
 * certification data. v3 carries the QE report directly after the key; v4/v5 wrap it in
 * certification data of type 6. Either way the QE report is followed by its signature, the
 * QE authentication data (u16 length) and certification data of type 5, the PEM PCK chain.
 * Quotes are often zero-padded to a fixed buffer size, so bytes after the signature data
 * are ignored; everything inside it must be consistent.
 */
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <string.h>

#include "as/evidence/dcap.h"

static const uint8_t intel_qe_vendor[16] = {0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9,
                                            0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07};

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A bounded reader over the quote. */
struct rd {
	const uint8_t *p, *end;
	const uint8_t *base;
};

static const uint8_t *take(struct rd *r, size_t n, const char *what, struct err *err)
{
	if ((size_t)(r->end - r->p) < n) {
		err_set(err,
		        "quote is truncated: %s needs %zu bytes at offset %zu but only %zu remain",
		        what, n, (size_t)(r->p - r->base), (size_t)(r->end - r->p));
		return NULL;
	}
	const uint8_t *at = r->p;
	r->p += n;
	return at;
}

/* QE report, its signature, auth data and the type-5 PCK chain, inside `r`. */
static int parse_qe_part(struct rd *r, struct dcap_quote *q, struct err *err)
{
	const uint8_t *p;

	if ((q->qe_report = take(r, DCAP_SGX_REPORT_SIZE, "the QE report", err)) == NULL ||
	    (q->qe_report_sig = take(r, 64, "the QE report signature", err)) == NULL ||
	    (p = take(r, 2, "the QE authentication data size", err)) == NULL)
		return -1;
	q->qe_auth_len = le16(p);
	if ((q->qe_auth = take(r, q->qe_auth_len, "the QE authentication data", err)) == NULL ||
	    (p = take(r, 6, "the PCK certification data header", err)) == NULL)
		return -1;
	uint16_t type = le16(p);
	uint32_t size = le32(p + 2);
	if (type != 5)
		return err_set(err,
		               "quote certification data type is %u; only type 5 (PCK certificate "
		               "chain) is supported",
		               type);
	if (size == 0)
		return err_set(err, "quote PCK certificate chain is empty");
	if ((q->pck_pem = take(r, size, "the PCK certificate chain", err)) == NULL)
		return -1;
	q->pck_pem_len = size;
	return 0;
}

int dcap_quote_parse(const uint8_t *buf, size_t len, struct dcap_quote *q, struct err *err)
{
	memset(q, 0, sizeof(*q));
	if (buf == NULL)
		return err_set(err, "quote is empty");

	struct rd r = {.p = buf, .end = buf + len, .base = buf};
	const uint8_t *p;

	if ((q->header = take(&r, DCAP_HEADER_SIZE, "the header", err)) == NULL)
		return -1;
	q->version = le16(q->header);
	q->att_key_type = le16(q->header + 2);
	q->tee_type = le32(q->header + 4);
	if (q->version != 3 && q->version != 4 && q->version != 5)
		return err_set(err, "quote format not supported: version %u (expected 3, 4 or 5)",
		               q->version);
	if (q->att_key_type != 2)
		return err_set(err,
		               "quote attestation key type is %u; only 2 (ECDSA P-256) is "
		               "supported",
		               q->att_key_type);
	if (memcmp(q->header + 12, intel_qe_vendor, 16) != 0)
		return err_set(err, "quote QE vendor id is not Intel's");
	if (q->version == 3) {
		if (q->tee_type != DCAP_TEE_SGX)
			return err_set(err,
			               "quote format not supported: version 3 must be an SGX "
			               "quote, not TEE type 0x%x",
			               q->tee_type);
		q->body_type = 1;
		q->body_len = DCAP_SGX_REPORT_SIZE;
	} else {
		if (q->tee_type != DCAP_TEE_TDX)
			return err_set(err,
			               "quote format not supported: version %u must be a TDX "
			               "quote, not TEE type 0x%x",
			               q->version, q->tee_type);
		q->body_type = 2;
		q->body_len = DCAP_TD10_BODY_SIZE;
		if (q->version == 5) {
			if ((q->v5_type_size = take(&r, 6, "the body type and size", err)) == NULL)
				return -1;
			q->body_type = le16(q->v5_type_size);
			uint32_t size = le32(q->v5_type_size + 2);
			if (q->body_type == 2)
				q->body_len = DCAP_TD10_BODY_SIZE;
			else if (q->body_type == 3)
				q->body_len = DCAP_TD15_BODY_SIZE;
			else
				return err_set(err,
				               "quote v5 body type %u is not 2 (TDX 1.0) or 3 (TDX "
				               "1.5)",
				               q->body_type);
			if (size != q->body_len)
				return err_set(err,
				               "quote v5 body size is %u; body type %u needs %zu",
				               size, q->body_type, q->body_len);
		}
	}
	if ((q->body = take(&r, q->body_len, "the report body", err)) == NULL)
		return -1;
	q->signed_data = buf;
	q->signed_len = (size_t)(r.p - buf);
	if ((p = take(&r, 4, "the signature data size", err)) == NULL)
		return -1;
	uint32_t sig_len = le32(p);
	if (sig_len > (size_t)(r.end - r.p))
		return err_set(err, "quote signature data size is 0x%x but only 0x%zx bytes follow",
		               sig_len, (size_t)(r.end - r.p));
	struct rd s = {.p = r.p, .end = r.p + sig_len, .base = buf};
	if ((q->signature = take(&s, 64, "the quote signature", err)) == NULL ||
	    (q->att_key = take(&s, 64, "the attestation key", err)) == NULL)
		return -1;
	if (q->version == 3) {
		if (parse_qe_part(&s, q, err) < 0)
			return -1;
	} else {
		if ((p = take(&s, 6, "the certification data header", err)) == NULL)
			return -1;
		uint16_t type = le16(p);
		uint32_t size = le32(p + 2);
		if (type != 6)
			return err_set(err,
			               "quote certification data type is %u; a TDX quote needs "
			               "type 6 (QE report certification data)",
			               type);
		if (size > (size_t)(s.end - s.p))
			return err_set(err,
			               "size of certificate data is 0x%x but the signature data "
			               "holds only 0x%zx more bytes",
			               size, (size_t)(s.end - s.p));
		struct rd c = {.p = s.p, .end = s.p + size, .base = buf};
		if (parse_qe_part(&c, q, err) < 0)
			return -1;
		if (c.p != c.end)
			return err_set(err, "quote QE certification data has %zu unexplained bytes",
			               (size_t)(c.end - c.p));
		s.p = c.end;
	}
	return 0;
}

int dcap_quote_is_tdx(const struct dcap_quote *q)
{
	return q->tee_type == DCAP_TEE_TDX;
}

/* ---- DER walking for the SGX extension ---- */

struct der {
	unsigned tag;
	const uint8_t *val;
	size_t len;
};

/* Read one TLV from [*p, end); short and long definite lengths up to 4 bytes. */
static int der_next(const uint8_t **p, const uint8_t *end, struct der *out)
{
	const uint8_t *s = *p;
	if (end - s < 2)
		return -1;
	out->tag = s[0];
	if ((s[0] & 0x1f) == 0x1f)
		return -1; /* multi-byte tags do not occur here */
	size_t l = s[1];
	s += 2;
	if (l & 0x80) {
		size_t n = l & 0x7f;
		if (n == 0 || n > 4 || (size_t)(end - s) < n)
			return -1;
		l = 0;
		for (size_t i = 0; i < n; i++)
			l = l << 8 | s[i];
		s += n;
	}
	if ((size_t)(end - s) < l)
		return -1;
	out->val = s;
	out->len = l;
	*p = s + l;
	return 0;
}

/* The arc after the SGX extension prefix 1.2.840.113741.1.13.1 (DER 2a 86 48 86 f8 4d 01 0d 01). */
static const uint8_t sgx_oid[] = {0x2a, 0x86, 0x48, 0x86, 0xf8, 0x4d, 0x01, 0x0d, 0x01};

/* Returns the sub-arcs after the prefix in arcs[] (each < 128), or -1 if not under it. */
static int sgx_arcs(const struct der *oid, int arcs[3])
{
	if (oid->tag != 0x06 || oid->len <= sizeof(sgx_oid) || oid->len > sizeof(sgx_oid) + 3 ||
	    memcmp(oid->val, sgx_oid, sizeof(sgx_oid)) != 0)
		return -1;
	int n = 0;
	for (size_t i = sizeof(sgx_oid); i < oid->len; i++) {
		if (oid->val[i] & 0x80)
			return -1;
		arcs[n++] = oid->val[i];
	}
	return n;
}

static int der_uint(const struct der *d, unsigned tag, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;
	if (d->tag != tag || d->len == 0 || d->len > 5)
		return -1;
	for (size_t i = 0; i < d->len; i++)
		v = v << 8 | d->val[i];
	if (d->val[0] & 0x80 || v > max)
		return -1;
	*out = v;
	return 0;
}

static int der_octets(const struct der *d, uint8_t *out, size_t n)
{
	if (d->tag != 0x04 || d->len != n)
		return -1;
	memcpy(out, d->val, n);
	return 0;
}

static int der_bool(const struct der *d, int *out)
{
	if (d->tag != 0x01 || d->len != 1)
		return -1;
	*out = d->val[0] != 0;
	return 0;
}

/* Each element of a SEQUENCE of SEQUENCE { OID, value }: calls fn(arcs, nargs, value). */
typedef int (*ext_item_fn)(const int *arcs, int n, const struct der *v, struct dcap_pck_ext *o);

static int walk_items(const struct der *seq, ext_item_fn fn, struct dcap_pck_ext *o)
{
	const uint8_t *p = seq->val, *end = seq->val + seq->len;
	if (seq->tag != 0x30)
		return -1;
	while (p < end) {
		struct der item, oid, val;
		const uint8_t *ip;
		int arcs[3];
		if (der_next(&p, end, &item) < 0 || item.tag != 0x30)
			return -1;
		ip = item.val;
		if (der_next(&ip, item.val + item.len, &oid) < 0 ||
		    der_next(&ip, item.val + item.len, &val) < 0 || ip != item.val + item.len)
			return -1;
		int n = sgx_arcs(&oid, arcs);
		if (n < 0 || fn(arcs, n, &val, o) < 0)
			return -1;
	}
	return 0;
}

static int tcb_item(const int *a, int n, const struct der *v, struct dcap_pck_ext *o)
{
	unsigned long x;
	if (n != 2 || a[0] != 2)
		return -1;
	if (a[1] >= 1 && a[1] <= 16) {
		if (der_uint(v, 0x02, 255, &x) < 0)
			return -1;
		o->comp_svn[a[1] - 1] = (uint8_t)x;
		return 0;
	}
	if (a[1] == 17) {
		if (der_uint(v, 0x02, 65535, &x) < 0)
			return -1;
		o->pcesvn = (uint16_t)x;
		return 0;
	}
	if (a[1] == 18)
		return der_octets(v, o->cpusvn, 16);
	return 0; /* unknown TCB sub-item: ignored */
}

static int config_item(const int *a, int n, const struct der *v, struct dcap_pck_ext *o)
{
	if (n != 2 || a[0] != 7)
		return -1;
	if (a[1] == 1)
		return der_bool(v, &o->dynamic_platform);
	if (a[1] == 2)
		return der_bool(v, &o->cached_keys);
	if (a[1] == 3)
		return der_bool(v, &o->smt_enabled);
	return 0;
}

static int top_item(const int *a, int n, const struct der *v, struct dcap_pck_ext *o)
{
	unsigned long x;
	if (n != 1)
		return -1;
	switch (a[0]) {
	case 1:
		return der_octets(v, o->ppid, 16);
	case 2:
		return walk_items(v, tcb_item, o);
	case 3:
		return der_octets(v, o->pceid, 2);
	case 4:
		return der_octets(v, o->fmspc, 6);
	case 5:
		if (der_uint(v, 0x0a, 255, &x) < 0)
			return -1;
		o->sgx_type = (int)x;
		return 0;
	case 6:
		o->has_platform_instance_id = 1;
		return der_octets(v, o->platform_instance_id, 16);
	case 7:
		o->has_config = 1;
		return walk_items(v, config_item, o);
	default:
		return 0;
	}
}

int dcap_pck_ext_parse(const uint8_t *der, size_t len, struct dcap_pck_ext *out, struct err *err)
{
	struct der seq;
	const uint8_t *p = der;

	memset(out, 0, sizeof(*out));
	if (der == NULL || der_next(&p, der + len, &seq) < 0 || p != der + len ||
	    walk_items(&seq, top_item, out) < 0)
		return err_set(err, "PCK certificate SGX extension is malformed");
	static const uint8_t zero6[6];
	if (memcmp(out->fmspc, zero6, 6) == 0 && out->pceid[0] == 0 && out->pceid[1] == 0 &&
	    out->pcesvn == 0)
		return err_set(err,
		               "PCK certificate SGX extension lacks the FMSPC, PCE-ID and TCB");
	return 0;
}

/* ---- the PEM chain ---- */

static const char *cn_of(X509_NAME *n, char *buf, size_t cap)
{
	buf[0] = '\0';
	if (X509_NAME_get_text_by_NID(n, NID_commonName, buf, (int)cap) < 0)
		buf[0] = '\0';
	return buf;
}

int dcap_pck_parse(const uint8_t *pem, size_t len, struct dcap_pck *out, struct err *err)
{
	X509 *certs[4] = {0};
	int n = 0;
	char cn[128];

	memset(out, 0, sizeof(*out));
	/* the chain may end with NUL padding: PEM reading stops at the last certificate */
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	if (b == NULL || len > 65536)
		return BIO_free(b), err_set(err, "PCK certificate chain is too large");
	while (n < 4) {
		X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
		if (x == NULL)
			break;
		certs[n++] = x;
	}
	BIO_free(b);
	if (n != 3) {
		for (int i = 0; i < n; i++)
			X509_free(certs[i]);
		return err_set(err,
		               "PCK certificate chain holds %s%d certificates; expected 3 (PCK, "
		               "PCK CA, Root CA)",
		               n == 4 ? "more than " : "", n == 4 ? 3 : n);
	}
	out->leaf = certs[0];
	out->ca = certs[1];
	out->root = certs[2];
	cn_of(X509_get_subject_name(out->ca), cn, sizeof(cn));
	if (strcmp(cn, "Intel SGX PCK Platform CA") == 0)
		out->ca_kind = DCAP_PCK_CA_PLATFORM;
	else if (strcmp(cn, "Intel SGX PCK Processor CA") == 0)
		out->ca_kind = DCAP_PCK_CA_PROCESSOR;
	else {
		dcap_pck_free(out);
		return err_set(err,
		               "PCK chain intermediate \"%s\" is neither the Intel SGX PCK "
		               "Platform CA nor the Processor CA",
		               cn);
	}
	ASN1_OBJECT *oid = OBJ_txt2obj("1.2.840.113741.1.13.1", 1);
	int idx = oid ? X509_get_ext_by_OBJ(out->leaf, oid, -1) : -1;
	ASN1_OBJECT_free(oid);
	X509_EXTENSION *ext = idx >= 0 ? X509_get_ext(out->leaf, idx) : NULL;
	ASN1_OCTET_STRING *os = ext ? X509_EXTENSION_get_data(ext) : NULL;
	if (os == NULL) {
		dcap_pck_free(out);
		return err_set(err, "PCK certificate has no SGX extension");
	}
	if (dcap_pck_ext_parse(ASN1_STRING_get0_data(os), (size_t)ASN1_STRING_length(os), &out->ext,
	                       err) < 0) {
		dcap_pck_free(out);
		return -1;
	}
	return 0;
}

void dcap_pck_free(struct dcap_pck *p)
{
	X509_free(p->leaf);
	X509_free(p->ca);
	X509_free(p->root);
	p->leaf = p->ca = p->root = NULL;
}
