/*
 * swid extractor: the payload is standard base64 of a SWID / TCG RIM XML document (NVIDIA's
 * GPU RIMs). As in Trustee, every Payload Resource of type "Measurement" becomes
 *   <Meta PlatformManufacturerStr, spaces as _>.<Meta edition>.measurement_<index>
 * (then every "-" as "_") valued by its non-all-zero Hash0, Hash1, ... attributes (namespace
 * xmlenc#sha384), in order; a measurement with none is skipped.
 *
 * Beyond Trustee, with extractors.swid_extractor.trust_anchors (PEM root certificates) an
 * enveloped XML-DSig is verified with xmlsec1 (OpenSSL engine): one Reference, URI "" (the
 * whole document), the key only from the X.509 chain in KeyInfo, the chain checked to an
 * anchor at the verification time. The enveloped-signature transform leaves the Signature
 * element itself unsigned, so values are read only from signed content: the document element
 * is the one SoftwareIdentity, Meta and Payload are its direct children and appear once, and
 * the one Signature is a direct child too; anything else is refused (signature wrapping).
 * require_signature refuses a RIM without a signature. Without anchors a signature is not
 * checked (Trustee's behaviour) and the values carry no signer.
 * XML is parsed by libxml2 with no network, no DTD and no entity substitution; a document
 * declaring a DTD is refused before parsing.
 *
 * swid.h lets a verifier read a local RIM file with the same checks (signature required);
 * it gets the active measurements by index, as NVIDIA's local verifier compares them. For the
 * RIMs a supply chain registers, the extractor stores the same object beside Trustee's names,
 * under nvidia_rim/<product>/<version> (swid_rim_rv_name), so the nvidia verifier can fetch a
 * device's RIM by the version it reports; the RVPS's provenance says whether it was signed.
 *
 * libxmlsec1-openssl (and through it libxmlsec1, libxml2, libxslt, ICU) is opened when a RIM
 * or a trust anchor is first handled (dlib.h), not at exec: every daemon links this file,
 * few ever see a RIM, and mapping the five libraries cost each daemon ~1.4 MB resident.
 * The calls go through the table `xs`, the libraries' names mapped onto it by macros.
 */
#include <ctype.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <xmlsec/crypto.h>
#include <xmlsec/errors.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/xmltree.h>

#include "b64.h"
#include "dlib.h"
#include "log.h"
#include "rvps/extractors.h"
#include "rvps/extractors/swid.h"

#define SWID_NS "http://standards.iso.org/iso/19770/-2/2015/schema.xsd"
#define RIMIM_NS                                                                                   \
	"https://trustedcomputinggroup.org/resource/"                                              \
	"tcg-reference-integrity-manifest-rim-information-model/"
#define HASH_NS "http://www.w3.org/2001/04/xmlenc#sha384"
#define DSIG_NS "http://www.w3.org/2000/09/xmldsig#"
#define SWID_MAX_LEN ((size_t)8 << 20)

static struct {
	__typeof__(xmlInitParser) *xmlInitParser;
	__typeof__(xmlGetNsProp) *xmlGetNsProp;
	__typeof__(xmlGetNoNsProp) *xmlGetNoNsProp;
	__typeof__(xmlReadMemory) *xmlReadMemory;
	__typeof__(xmlGetLastError) *xmlGetLastError;
	__typeof__(xmlFreeDoc) *xmlFreeDoc;
	__typeof__(xmlDocGetRootElement) *xmlDocGetRootElement;
	__typeof__(xmlSecInit) *xmlSecInit;
	__typeof__(xmlSecErrorsGetMsg) *xmlSecErrorsGetMsg;
	__typeof__(xmlSecErrorsSetCallback) *xmlSecErrorsSetCallback;
	__typeof__(xmlSecKeysMngrCreate) *xmlSecKeysMngrCreate;
	__typeof__(xmlSecKeysMngrDestroy) *xmlSecKeysMngrDestroy;
	__typeof__(xmlSecDSigCtxCreate) *xmlSecDSigCtxCreate;
	__typeof__(xmlSecDSigCtxVerify) *xmlSecDSigCtxVerify;
	__typeof__(xmlSecDSigCtxDestroy) *xmlSecDSigCtxDestroy;
	__typeof__(xmlSecPtrListAdd) *xmlSecPtrListAdd;
	__typeof__(xmlSecPtrListGetSize) *xmlSecPtrListGetSize;
	__typeof__(xmlSecKeyGetData) *xmlSecKeyGetData;
	__typeof__(xmlSecOpenSSLAppInit) *xmlSecOpenSSLAppInit;
	__typeof__(xmlSecOpenSSLInit) *xmlSecOpenSSLInit;
	__typeof__(xmlSecOpenSSLAppDefaultKeysMngrInit) *xmlSecOpenSSLAppDefaultKeysMngrInit;
	__typeof__(xmlSecOpenSSLAppKeysMngrCertLoad) *xmlSecOpenSSLAppKeysMngrCertLoad;
	__typeof__(xmlSecOpenSSLKeyDataX509GetKlass) *xmlSecOpenSSLKeyDataX509GetKlass;
	__typeof__(xmlSecOpenSSLKeyDataX509GetKeyCert) *xmlSecOpenSSLKeyDataX509GetKeyCert;
	xmlFreeFunc *xmlFree; /* a variable in libxml2: its address */
} xs;
static struct err xs_err; /* why the libraries could not be opened (set under xmlsec_once) */
static int xs_loaded;

static int xs_load(void)
{
	const struct dlib_sym syms[] = {
	    DLIB_SYM(xs, xmlInitParser),
	    DLIB_SYM(xs, xmlGetNsProp),
	    DLIB_SYM(xs, xmlGetNoNsProp),
	    DLIB_SYM(xs, xmlReadMemory),
	    DLIB_SYM(xs, xmlGetLastError),
	    DLIB_SYM(xs, xmlFreeDoc),
	    DLIB_SYM(xs, xmlDocGetRootElement),
	    DLIB_SYM(xs, xmlSecInit),
	    DLIB_SYM(xs, xmlSecErrorsGetMsg),
	    DLIB_SYM(xs, xmlSecErrorsSetCallback),
	    DLIB_SYM(xs, xmlSecKeysMngrCreate),
	    DLIB_SYM(xs, xmlSecKeysMngrDestroy),
	    DLIB_SYM(xs, xmlSecDSigCtxCreate),
	    DLIB_SYM(xs, xmlSecDSigCtxVerify),
	    DLIB_SYM(xs, xmlSecDSigCtxDestroy),
	    DLIB_SYM(xs, xmlSecPtrListAdd),
	    DLIB_SYM(xs, xmlSecPtrListGetSize),
	    DLIB_SYM(xs, xmlSecKeyGetData),
	    DLIB_SYM(xs, xmlSecOpenSSLAppInit),
	    DLIB_SYM(xs, xmlSecOpenSSLInit),
	    DLIB_SYM(xs, xmlSecOpenSSLAppDefaultKeysMngrInit),
	    DLIB_SYM(xs, xmlSecOpenSSLAppKeysMngrCertLoad),
	    DLIB_SYM(xs, xmlSecOpenSSLKeyDataX509GetKlass),
	    DLIB_SYM(xs, xmlSecOpenSSLKeyDataX509GetKeyCert),
	    DLIB_SYM(xs, xmlFree),
	};
	return dlib_open("libxmlsec1-openssl.so.1", syms, sizeof(syms) / sizeof(syms[0]), &xs_err);
}

#undef xmlFree
#define xmlFree (*xs.xmlFree)
#define xmlInitParser xs.xmlInitParser
#define xmlGetNsProp xs.xmlGetNsProp
#define xmlGetNoNsProp xs.xmlGetNoNsProp
#define xmlReadMemory xs.xmlReadMemory
#define xmlGetLastError xs.xmlGetLastError
#define xmlFreeDoc xs.xmlFreeDoc
#define xmlDocGetRootElement xs.xmlDocGetRootElement
#define xmlSecInit xs.xmlSecInit
#define xmlSecErrorsGetMsg xs.xmlSecErrorsGetMsg
#define xmlSecErrorsSetCallback xs.xmlSecErrorsSetCallback
#define xmlSecKeysMngrCreate xs.xmlSecKeysMngrCreate
#define xmlSecKeysMngrDestroy xs.xmlSecKeysMngrDestroy
#define xmlSecDSigCtxCreate xs.xmlSecDSigCtxCreate
#define xmlSecDSigCtxVerify xs.xmlSecDSigCtxVerify
#define xmlSecDSigCtxDestroy xs.xmlSecDSigCtxDestroy
#define xmlSecPtrListAdd xs.xmlSecPtrListAdd
#define xmlSecPtrListGetSize xs.xmlSecPtrListGetSize
#define xmlSecKeyGetData xs.xmlSecKeyGetData
#define xmlSecOpenSSLAppInit xs.xmlSecOpenSSLAppInit
#define xmlSecOpenSSLInit xs.xmlSecOpenSSLInit
#define xmlSecOpenSSLAppDefaultKeysMngrInit xs.xmlSecOpenSSLAppDefaultKeysMngrInit
#define xmlSecOpenSSLAppKeysMngrCertLoad xs.xmlSecOpenSSLAppKeysMngrCertLoad
#define xmlSecOpenSSLKeyDataX509GetKlass xs.xmlSecOpenSSLKeyDataX509GetKlass
#define xmlSecOpenSSLKeyDataX509GetKeyCert xs.xmlSecOpenSSLKeyDataX509GetKeyCert

struct swid_cfg {
	xmlSecKeysMngrPtr mngr; /* owned; NULL when no trust anchors are configured */
	int require_signature;
	pthread_mutex_t lock; /* serialises verifications on mngr */
};

/* ---- xmlsec set-up, once per process ---- */

static pthread_once_t xmlsec_once = PTHREAD_ONCE_INIT;
static int xmlsec_ok;
/* the first error xmlsec reported on this thread since it was cleared: the cause, where the
 * later ones only say which caller failed */
static __thread char xmlsec_reason[384];

static void xmlsec_quiet(const char *file, int line, const char *func, const char *obj,
                         const char *subj, int reason, const char *msg)
{
	if (xmlsec_reason[0] != '\0')
		return;
	snprintf(xmlsec_reason, sizeof(xmlsec_reason), "%s%s%s",
	         xmlSecErrorsGetMsg((xmlSecSize)reason) ? xmlSecErrorsGetMsg((xmlSecSize)reason)
	                                                : "",
	         msg ? ": " : "", msg ? msg : "");
}

static void xmlsec_setup(void)
{
	if (xs_load() != 0)
		return; /* xs_loaded and xmlsec_ok stay 0 */
	xs_loaded = 1;
	xmlInitParser();
	xmlsec_ok = xmlSecInit() >= 0 && xmlSecCryptoAppInit(NULL) >= 0 && xmlSecCryptoInit() >= 0;
	xmlSecErrorsSetCallback(xmlsec_quiet);
}

/* ---- configuration ---- */

static void swid_cfg_free(void *p)
{
	struct swid_cfg *c = p;

	if (c == NULL)
		return;
	if (c->mngr != NULL)
		xmlSecKeysMngrDestroy(c->mngr);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static int swid_init(const json_t *config, void **state, struct err *err)
{
	static const char *const known[] = {"trust_anchors", "require_signature", NULL};
	const json_t *anchors = config ? json_object_get(config, "trust_anchors") : NULL, *one;
	struct swid_cfg *c = calloc(1, sizeof(*c));
	size_t i;

	if (c == NULL)
		return err_set(err, "out of memory");
	pthread_mutex_init(&c->lock, NULL);
	if ((config != NULL && rvps_config_only(config, "swid_extractor", known, err) < 0) ||
	    rvps_config_bool(config, "swid_extractor", "require_signature", 0,
	                     &c->require_signature, err) < 0)
		goto fail;
	if (anchors != NULL && !json_is_array(anchors)) {
		err_set(err, "trust_anchors must be an array of PEM file names");
		goto fail;
	}
	if (json_array_size(anchors) > 0) {
		pthread_once(&xmlsec_once, xmlsec_setup);
		if (!xs_loaded) {
			err_set(err, "%s", xs_err.msg);
			goto fail;
		}
		if (!xmlsec_ok || (c->mngr = xmlSecKeysMngrCreate()) == NULL ||
		    xmlSecCryptoAppDefaultKeysMngrInit(c->mngr) < 0) {
			err_set(err, "cannot initialise xmlsec");
			goto fail;
		}
	}
	json_array_foreach(anchors, i, one)
	{
		xmlsec_reason[0] = '\0';
		if (!json_is_string(one)) {
			err_set(err, "trust_anchors must be an array of PEM file names");
			goto fail;
		}
		/* xmlsec leaks its file BIO when the open fails: find out first */
		FILE *probe = fopen(json_string_value(one), "r");
		if (probe == NULL) {
			err_set(err, "trust anchor %s cannot be opened", json_string_value(one));
			goto fail;
		}
		fclose(probe);
		if (xmlSecCryptoAppKeysMngrCertLoad(c->mngr, json_string_value(one),
		                                    xmlSecKeyDataFormatPem,
		                                    xmlSecKeyDataTypeTrusted) < 0) {
			err_set(err, "trust anchor %s is not a readable PEM certificate",
			        json_string_value(one));
			goto fail;
		}
	}
	if (c->require_signature && c->mngr == NULL) {
		err_set(err, "require_signature needs at least one of trust_anchors");
		goto fail;
	}
	*state = c;
	return 0;
fail:
	swid_cfg_free(c);
	return -1;
}

/* ---- document shape ---- */

static int is_el(const xmlNode *n, const char *ns, const char *name)
{
	return n->type == XML_ELEMENT_NODE && n->ns != NULL && n->ns->href != NULL &&
	       strcmp((const char *)n->ns->href, ns) == 0 &&
	       strcmp((const char *)n->name, name) == 0;
}

struct shape {
	int identities, metas, payloads, sigs;
};

static void count(const xmlNode *n, struct shape *s)
{
	for (; n != NULL; n = n->next) {
		if (n->type != XML_ELEMENT_NODE)
			continue;
		s->identities += is_el(n, SWID_NS, "SoftwareIdentity");
		s->metas += is_el(n, SWID_NS, "Meta");
		s->payloads += is_el(n, SWID_NS, "Payload");
		s->sigs += is_el(n, DSIG_NS, "Signature");
		count(n->children, s);
	}
}

/* The root's one Meta, Payload and (optional) Signature, each a direct child. */
static int find_parts(xmlNode *root, xmlNode **meta, xmlNode **payload, xmlNode **sig,
                      struct err *err)
{
	struct shape all = {0}, top = {0};

	*meta = *payload = *sig = NULL;
	if (root == NULL || !is_el(root, SWID_NS, "SoftwareIdentity"))
		return err_set(err, "the document element is not a SWID SoftwareIdentity");
	count(root, &all);
	for (xmlNode *n = root->children; n != NULL; n = n->next) {
		if (is_el(n, SWID_NS, "Meta") && top.metas++ == 0)
			*meta = n;
		if (is_el(n, SWID_NS, "Payload") && top.payloads++ == 0)
			*payload = n;
		if (is_el(n, DSIG_NS, "Signature") && top.sigs++ == 0)
			*sig = n;
	}
	if (all.identities != 1)
		return err_set(err,
		               "the document holds %d SoftwareIdentity elements; only the "
		               "document element may be one",
		               all.identities);
	if (all.metas != 1 || top.metas != 1 || all.payloads != 1 || top.payloads != 1)
		return err_set(err,
		               "SoftwareIdentity must have exactly one Meta and one Payload, as "
		               "direct children, and none elsewhere");
	if (all.sigs > 1 || all.sigs != top.sigs)
		return err_set(err, "the document must hold at most one ds:Signature, as a direct "
		                    "child of SoftwareIdentity");
	return 0;
}

/* ---- values ---- */

static int all_zero(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s != '0')
			return 0;
	return 1;
}

static char *xml_attr(const xmlNode *n, const char *name, const char *ns)
{
	xmlChar *v =
	    ns ? xmlGetNsProp(n, BAD_CAST name, BAD_CAST ns) : xmlGetNoNsProp(n, BAD_CAST name);
	char *s = v ? strdup((const char *)v) : NULL;

	xmlFree(v);
	return s;
}

/* One Measurement resource into out (nothing when every hash is zero). */
static int measurement(const xmlNode *res, const char *prefix, json_t *out, struct err *err)
{
	char *index = xml_attr(res, "index", NULL), *name = NULL, attr[32];
	json_t *hashes = json_array();
	int rc = -1;

	if (index == NULL || hashes == NULL) {
		err_set(err, "a Measurement resource has no index");
		goto out;
	}
	for (int i = 0; i < 1000000; i++) {
		char *h;

		snprintf(attr, sizeof(attr), "Hash%d", i);
		if ((h = xml_attr(res, attr, HASH_NS)) == NULL)
			break;
		if (!all_zero(h))
			json_array_append_new(hashes, json_string(h));
		free(h);
	}
	if (json_array_size(hashes) == 0) {
		rc = 0;
		goto out;
	}
	if (asprintf(&name, "%s.measurement_%s", prefix, index) < 0) {
		name = NULL;
		err_set(err, "out of memory");
		goto out;
	}
	for (char *p = name; *p != '\0'; p++)
		if (*p == '-')
			*p = '_';
	rc = json_object_set(out, name, hashes) < 0 ? err_set(err, "out of memory") : 0;
out:
	json_decref(hashes);
	free(index);
	free(name);
	return rc;
}

/* Every Resource of type Measurement under n, depth first, handed to visit with prefix. */
typedef int (*measurement_fn)(const xmlNode *res, const char *prefix, json_t *out, struct err *err);
static int walk_resources(const xmlNode *n, measurement_fn visit, const char *prefix, json_t *out,
                          struct err *err)
{
	for (; n != NULL; n = n->next) {
		char *type;
		int is_m;

		if (n->type != XML_ELEMENT_NODE)
			continue;
		if (is_el(n, SWID_NS, "Resource")) {
			type = xml_attr(n, "type", NULL);
			is_m = type != NULL && strcmp(type, "Measurement") == 0;
			free(type);
			if (is_m && visit(n, prefix, out, err) < 0)
				return -1;
		}
		if (walk_resources(n->children, visit, prefix, out, err) < 0)
			return -1;
	}
	return 0;
}

static int values_from(const xmlNode *meta, const xmlNode *payload, json_t *out, struct err *err)
{
	char *maker = xml_attr(meta, "PlatformManufacturerStr", RIMIM_NS);
	char *edition = xml_attr(meta, "edition", NULL), *prefix = NULL;
	int rc = -1;

	if (maker == NULL || edition == NULL) {
		err_set(err, "Meta lacks %s",
		        maker == NULL ? "PlatformManufacturerStr" : "edition");
		goto out;
	}
	for (char *p = maker; *p != '\0'; p++)
		if (*p == ' ')
			*p = '_';
	if (asprintf(&prefix, "%s.%s", maker, edition) < 0) {
		prefix = NULL;
		err_set(err, "out of memory");
		goto out;
	}
	rc = walk_resources(payload->children, measurement, prefix, out, err);
out:
	free(maker);
	free(edition);
	free(prefix);
	return rc;
}

/* ---- the RIM by version ---- */

int swid_rim_rv_name(const char *product, const char *version, char *out, size_t cap)
{
	const char *parts[2] = {product, version};
	int w;

	for (int i = 0; i < 2; i++) {
		if (parts[i] == NULL || parts[i][0] == '\0' || strlen(parts[i]) > 64)
			return -1;
		for (const char *p = parts[i]; *p != '\0'; p++)
			if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
				return -1;
	}
	w = snprintf(out, cap, SWID_RIM_RV_PREFIX "%s/%s", product, version);
	if (w < 0 || (size_t)w >= cap)
		return -1;
	for (char *p = out + strlen(SWID_RIM_RV_PREFIX) + strlen(product); *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return 0;
}

static int active_measurement(const xmlNode *res, const char *unused, json_t *out, struct err *err);

/* values[nvidia_rim/<product>/<version>] = the RIM's active measurements by index, when its
 * Meta names a product and a colloquialVersion that make a name; else nothing is added. */
static int rim_by_version(const xmlNode *meta, const xmlNode *payload, json_t *values,
                          struct err *err)
{
	char *product = xml_attr(meta, "product", NULL);
	char *version = xml_attr(meta, "colloquialVersion", NULL), name[160];
	json_t *active = NULL;
	int rc = 0;

	if (swid_rim_rv_name(product, version, name, sizeof(name)) < 0)
		goto out;
	rc = -1;
	if ((active = json_object()) == NULL) {
		err_set(err, "out of memory");
		goto out;
	}
	if (walk_resources(payload->children, active_measurement, NULL, active, err) < 0)
		goto out;
	rc = json_object_size(active) == 0 || json_object_set(values, name, active) == 0
	         ? 0
	         : err_set(err, "out of memory");
out:
	json_decref(active);
	free(product);
	free(version);
	return rc;
}

/* ---- signature ---- */

static void cert_name(X509_NAME *n, char *out, size_t cap)
{
	if (n == NULL || X509_NAME_oneline(n, out, (int)cap) == NULL)
		snprintf(out, cap, "(unknown)");
}

static int verify(struct swid_cfg *c, xmlNode *sig, time_t now, json_t *prov, struct err *err)
{
	xmlSecDSigCtxPtr d = xmlSecDSigCtxCreate(c->mngr);
	int rc = -1, vr;

	if (d == NULL)
		return err_set(err, "out of memory");
	d->enabledReferenceUris = xmlSecTransformUriTypeEmpty;
	d->keyInfoReadCtx.certsVerificationTime = now;
	if (xmlSecPtrListAdd(&d->keyInfoReadCtx.enabledKeyData, BAD_CAST xmlSecKeyDataX509Id) < 0) {
		err_set(err, "cannot restrict xmlsec to X.509 keys");
		goto out;
	}
	xmlsec_reason[0] = '\0';
	pthread_mutex_lock(&c->lock);
	vr = xmlSecDSigCtxVerify(d, sig);
	pthread_mutex_unlock(&c->lock);
	if (vr < 0) {
		err_set(err, "the RIM signature cannot be verified (%s)",
		        xmlsec_reason[0] ? xmlsec_reason : "no signer chain to a trust anchor");
		goto out;
	}
	if (d->status != xmlSecDSigStatusSucceeded) {
		err_set(err, "the RIM signature does not verify (a digest or the signature value "
		             "is wrong)");
		goto out;
	}
	if (xmlSecPtrListGetSize(&d->signedInfoReferences) != 1) {
		err_set(err, "the RIM signature must have exactly one Reference");
		goto out;
	}
	if (prov != NULL) {
		xmlSecKeyDataPtr x =
		    d->signKey ? xmlSecKeyGetData(d->signKey, xmlSecKeyDataX509Id) : NULL;
		X509 *leaf = x ? xmlSecOpenSSLKeyDataX509GetKeyCert(x) : NULL;
		char name[512];

		if (leaf != NULL) {
			cert_name(X509_get_subject_name(leaf), name, sizeof(name));
			json_object_set_new(prov, "signer", json_string(name));
			cert_name(X509_get_issuer_name(leaf), name, sizeof(name));
			json_object_set_new(prov, "signer_issuer", json_string(name));
		}
		json_object_set_new(prov, "signature_alg", json_string("XML-DSig"));
	}
	rc = 0;
out:
	xmlSecDSigCtxDestroy(d);
	return rc;
}

/* ---- the extractor ---- */

static xmlDoc *parse_xml(const uint8_t *raw, size_t len, struct err *err)
{
	xmlDoc *doc;

	if (raw == NULL || len == 0 || len > SWID_MAX_LEN)
		return err_set(err, "the RIM is empty or larger than %zu bytes", SWID_MAX_LEN),
		       NULL;
	if (memmem(raw, len, "<!DOCTYPE", 9) != NULL || memmem(raw, len, "<!ENTITY", 8) != NULL)
		return err_set(err, "the RIM declares a DTD or entities, which are not accepted"),
		       NULL;
	doc = xmlReadMemory((const char *)raw, (int)len, NULL, NULL,
	                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (doc == NULL) {
		const xmlError *e = xmlGetLastError();
		err_set(err, "the RIM is not well-formed XML%s%s", e && e->message ? ": " : "",
		        e && e->message ? e->message : "");
		if (err != NULL) {
			size_t n = strlen(err->msg);
			if (n > 0 && err->msg[n - 1] == '\n')
				err->msg[n - 1] = '\0';
		}
		return NULL;
	}
	if (doc->intSubset != NULL || doc->extSubset != NULL) {
		xmlFreeDoc(doc);
		return err_set(err, "the RIM declares a DTD, which is not accepted"), NULL;
	}
	return doc;
}

static int swid_extract_ctx(const struct rvps_extract_ctx *ctx, const char *payload, size_t len,
                            json_t **out, struct err *err)
{
	struct swid_cfg *c = (struct swid_cfg *)ctx->state;
	uint8_t *raw = NULL;
	size_t raw_len = 0;
	xmlDoc *doc = NULL;
	xmlNode *meta, *body, *sig;
	json_t *values = NULL;
	int rc = -1;

	*out = NULL;
	if (b64_decode(payload, len, B64_STD, &raw, &raw_len) < 0)
		return err_set(err, "swid extractor: the payload is not valid standard base64");
	pthread_once(&xmlsec_once, xmlsec_setup);
	if (!xs_loaded) {
		err_set(err, "%s", xs_err.msg);
		goto out;
	}
	if ((doc = parse_xml(raw, raw_len, err)) == NULL ||
	    find_parts(xmlDocGetRootElement(doc), &meta, &body, &sig, err) < 0)
		goto out;
	if (sig == NULL && c != NULL && c->require_signature) {
		err_set(err, "an unsigned RIM is refused: extractors.swid_extractor."
		             "require_signature is true");
		goto out;
	}
	if (sig != NULL && c != NULL && c->mngr != NULL) {
		if (verify(c, sig, ctx->now, ctx->provenance, err) < 0)
			goto out;
	} else if (sig != NULL) {
		log_warn("rvps: swid extractor: RIM signature not checked (no "
		         "extractors.swid_extractor.trust_anchors configured)");
	}
	if ((values = json_object()) == NULL) {
		err_set(err, "out of memory");
		goto out;
	}
	if (values_from(meta, body, values, err) < 0 || rim_by_version(meta, body, values, err) < 0)
		goto out;
	*out = values;
	values = NULL;
	rc = 0;
out:
	json_decref(values);
	if (doc != NULL)
		xmlFreeDoc(doc);
	free(raw);
	return rc < 0 ? err_prefix(err, "swid extractor") : 0;
}

static int swid_extract(const char *payload, size_t len, json_t **out, struct err *err)
{
	struct rvps_extract_ctx ctx = {.state = NULL, .now = time(NULL), .provenance = NULL};

	return swid_extract_ctx(&ctx, payload, len, out, err);
}

/* ---- RIMs read by a verifier (swid.h) ---- */

struct swid_trust *swid_trust_new(const char *root_pem_file, struct err *err)
{
	json_t *cfg =
	    json_pack("{s:[s],s:b}", "trust_anchors", root_pem_file, "require_signature", 1);
	void *state = NULL;

	if (cfg == NULL)
		return err_set(err, "out of memory"), NULL;
	if (swid_init(cfg, &state, err) < 0)
		state = NULL;
	json_decref(cfg);
	return state;
}

void swid_trust_free(struct swid_trust *t)
{
	swid_cfg_free(t);
}

/* One active Measurement resource: its index and every Hash<N>, zeros included. */
static int active_measurement(const xmlNode *res, const char *unused, json_t *out, struct err *err)
{
	char *index = xml_attr(res, "index", NULL), *act = xml_attr(res, "active", NULL), attr[32];
	json_t *hashes = json_array();
	int rc = -1;

	if (index == NULL || hashes == NULL) {
		err_set(err, "a Measurement resource has no index");
		goto out;
	}
	for (int i = 0; act != NULL && strcasecmp(act, "true") == 0 && i < 1000000; i++) {
		char *h;

		snprintf(attr, sizeof(attr), "Hash%d", i);
		if ((h = xml_attr(res, attr, HASH_NS)) == NULL)
			break;
		json_array_append_new(hashes, json_string(h));
		free(h);
	}
	if (json_object_get(out, index) != NULL) {
		err_set(err, "the RIM lists measurement %.16s twice", index);
		goto out;
	}
	rc = json_array_size(hashes) == 0 || json_object_set(out, index, hashes) == 0
	         ? 0
	         : err_set(err, "out of memory");
out:
	json_decref(hashes);
	free(index);
	free(act);
	return rc;
}

int swid_rim_active(struct swid_trust *t, const uint8_t *xml, size_t len, time_t now,
                    json_t **active, struct err *err)
{
	struct swid_cfg *c = (struct swid_cfg *)t;
	xmlDoc *doc = NULL;
	xmlNode *meta, *body, *sig;
	json_t *values = NULL;
	int rc = -1;

	*active = NULL;
	pthread_once(&xmlsec_once, xmlsec_setup);
	if (!xs_loaded) {
		err_set(err, "%s", xs_err.msg);
		goto out;
	}
	if ((doc = parse_xml(xml, len, err)) == NULL ||
	    find_parts(xmlDocGetRootElement(doc), &meta, &body, &sig, err) < 0)
		goto out;
	if (sig == NULL || c == NULL || c->mngr == NULL) {
		err_set(err, "the RIM is not signed");
		goto out;
	}
	if (verify(c, sig, now, NULL, err) < 0)
		goto out;
	if ((values = json_object()) == NULL) {
		err_set(err, "out of memory");
		goto out;
	}
	if (walk_resources(body->children, active_measurement, NULL, values, err) < 0)
		goto out;
	*active = values;
	values = NULL;
	rc = 0;
out:
	json_decref(values);
	if (doc != NULL)
		xmlFreeDoc(doc);
	return rc;
}

const struct rvps_extractor rvps_extractor_swid = {
    .type = "swid",
    .config_key = "swid_extractor",
    .extract = swid_extract,
    .init = swid_init,
    .state_free = swid_cfg_free,
    .extract_ctx = swid_extract_ctx,
};
