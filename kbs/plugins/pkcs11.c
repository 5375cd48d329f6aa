/*
 * pkcs11: the `pkcs11` plugin (kbs-protocol.md §7.1), the row kbs_plugin_pkcs11. Secrets live
 * in a hardware security module as generic-secret objects labelled repo/type/tag, and an RSA
 * key pair in the module labelled `lookup_label` wraps and unwraps data that never meets a
 * key outside the HSM:
 *
 *   resource/<repo>/<type>/<tag>   GET reads the object's value, POST stores the body as a new
 *                                  object, DELETE destroys it (POST and DELETE admin-gated)
 *   wrap-key                       POST encrypts the body with the public key (admin), GET
 *                                  decrypts the body with the private key (attested guests)
 *
 * Every answer on the attestation path is encrypted to the guest (JWE). The module is the
 * shared library `module`, loaded with dlopen and checked (an absolute path to a regular file
 * exporting C_GetFunctionList, Cryptoki 2.x or later), initialised with OS locking; one
 * read-write session on the slot_index-th slot with a token, logged in as the user with `pin`,
 * serves every request under a mutex (a PKCS#11 session is not shared across threads). The
 * PIN is wiped once the login is done and never logged. rsa_mechanism is RsaPkcsOaep (OAEP
 * with SHA-256 and MGF1-SHA-256, the default) or RsaPkcsTest (OAEP with SHA-1).
 *
 * Objects are token objects (they outlive the kbs process); Trustee makes session objects,
 * which vanish when its session closes.
 */
#include <dlfcn.h>
#include <openssl/crypto.h>
#include <p11-kit-1/p11-kit/pkcs11.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kbs/kbs.h"
#include "log.h"

#define P11_MAX_OUT (64 * 1024) /* largest value or RSA block handled */

struct p11 {
	void *dl;
	CK_FUNCTION_LIST_PTR f;
	CK_SESSION_HANDLE s;
	bool logged_in, initialized;
	char *lookup_label;
	bool sha1;          /* RsaPkcsTest */
	pthread_mutex_t mu; /* guards s */
};

static void p11_free(void *st)
{
	struct p11 *p = st;
	if (!p)
		return;
	if (p->f) {
		if (p->logged_in)
			p->f->C_Logout(p->s);
		if (p->s)
			p->f->C_CloseSession(p->s);
		if (p->initialized)
			p->f->C_Finalize(NULL);
	}
	if (p->dl)
		dlclose(p->dl);
	free(p->lookup_label);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

static int ck(CK_RV rv, const char *what, struct err *err)
{
	if (rv == CKR_OK)
		return 0;
	return err_set(err, "pkcs11: %s failed (CKR 0x%lx)", what, (unsigned long)rv);
}

static int load_module(struct p11 *p, const char *path, struct err *err)
{
	struct stat sb;
	if (path[0] != '/' || stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
		return err_set(
		    err, "[[plugins]] pkcs11: module %s is not an absolute path to a file", path);
	if ((p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL)
		return err_set(err, "[[plugins]] pkcs11: cannot load module %s: %s", path,
		               dlerror());
	CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(p->dl, "C_GetFunctionList");
	if (!get)
		return err_set(err,
		               "[[plugins]] pkcs11: %s is not a PKCS#11 module (no "
		               "C_GetFunctionList)",
		               path);
	if (get(&p->f) != CKR_OK || p->f == NULL || p->f->version.major < 2)
		return err_set(err, "[[plugins]] pkcs11: %s gives no Cryptoki 2.x function list",
		               path);
	return 0;
}

static int open_session(struct p11 *p, long long slot_index, char *pin, struct err *err)
{
	CK_C_INITIALIZE_ARGS ia = {0};
	ia.flags = CKF_OS_LOCKING_OK;
	CK_RV rv = p->f->C_Initialize(&ia);
	if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED)
		return ck(rv, "C_Initialize", err);
	p->initialized = rv == CKR_OK;
	CK_ULONG n = 0;
	if (ck(p->f->C_GetSlotList(CK_TRUE, NULL, &n), "C_GetSlotList", err))
		return -1;
	if (slot_index < 0 || (CK_ULONG)slot_index >= n)
		return err_set(err,
		               "[[plugins]] pkcs11: slot_index %lld out of range (%lu slots "
		               "with a token)",
		               slot_index, (unsigned long)n);
	CK_SLOT_ID *slots = calloc(n, sizeof(*slots));
	if (!slots)
		return err_set(err, "out of memory");
	rv = p->f->C_GetSlotList(CK_TRUE, slots, &n);
	CK_SLOT_ID slot = slots[slot_index];
	free(slots);
	if (ck(rv, "C_GetSlotList", err) ||
	    ck(p->f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &p->s),
	       "C_OpenSession", err))
		return -1;
	rv = p->f->C_Login(p->s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
	if (rv == CKR_PIN_INCORRECT)
		return err_set(err, "[[plugins]] pkcs11: the module refused the configured pin");
	if (ck(rv, "C_Login", err))
		return -1;
	p->logged_in = true;
	return 0;
}

static void *p11_open(const json_t *cfg, struct err *err)
{
	const char *module = json_string_value(json_object_get(cfg, "module"));
	const char *pin = json_string_value(json_object_get(cfg, "pin"));
	const char *mech = json_string_value(json_object_get(cfg, "rsa_mechanism"));
	const char *label = json_string_value(json_object_get(cfg, "lookup_label"));
	const json_t *si = json_object_get(cfg, "slot_index");
	if (!module || !pin) {
		err_set(err, "[[plugins]] pkcs11 needs string `module` and `pin`");
		return NULL;
	}
	if (si && !json_is_integer(si)) {
		err_set(err, "[[plugins]] pkcs11: slot_index must be an integer");
		return NULL;
	}
	if (mech && strcmp(mech, "RsaPkcsOaep") && strcmp(mech, "RsaPkcsTest")) {
		err_set(err,
		        "[[plugins]] pkcs11: rsa_mechanism must be RsaPkcsOaep or RsaPkcsTest");
		return NULL;
	}
	struct p11 *p = calloc(1, sizeof(*p));
	if (!p) {
		err_set(err, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&p->mu, NULL);
	p->sha1 = mech && !strcmp(mech, "RsaPkcsTest");
	p->lookup_label = strdup(label ? label : "");
	char *pin_copy = strdup(pin);
	int rc = !p->lookup_label || !pin_copy ? err_set(err, "out of memory") : 0;
	if (rc == 0)
		rc = load_module(p, module, err);
	if (rc == 0)
		rc = open_session(p, si ? json_integer_value(si) : 0, pin_copy, err);
	if (pin_copy) {
		OPENSSL_cleanse(pin_copy, strlen(pin_copy));
		free(pin_copy);
	}
	if (rc != 0) {
		p11_free(p);
		return NULL;
	}
	log_info("kbs: pkcs11 plugin: module %s, slot %lld, wrap key label \"%s\"", module,
	         si ? (long long)json_integer_value(si) : 0LL, p->lookup_label);
	return p;
}

/* The first object with this label (and class, unless class is (CK_ULONG)-1): 0, 1 none, -1. */
static int find(struct p11 *p, const char *label, CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE *o,
                struct err *err)
{
	CK_ATTRIBUTE t[2] = {{CKA_LABEL, (void *)label, strlen(label)},
	                     {CKA_CLASS, &cls, sizeof(cls)}};
	CK_ULONG n = 0;
	if (ck(p->f->C_FindObjectsInit(p->s, t, cls == (CK_ULONG)-1 ? 1 : 2), "C_FindObjectsInit",
	       err))
		return -1;
	CK_RV rv = p->f->C_FindObjects(p->s, o, 1, &n);
	p->f->C_FindObjectsFinal(p->s);
	if (ck(rv, "C_FindObjects", err))
		return -1;
	return n == 1 ? 0 : 1;
}

static int read_value(struct p11 *p, const char *label, uint8_t **out, size_t *len, struct err *err)
{
	CK_OBJECT_HANDLE o;
	int rc = find(p, label, CKO_SECRET_KEY, &o, err);
	if (rc)
		return rc > 0 ? err_set(err, "pkcs11: no object labelled %s", label) : -1;
	CK_ATTRIBUTE a = {CKA_VALUE, NULL, 0};
	if (ck(p->f->C_GetAttributeValue(p->s, o, &a, 1), "reading the value", err))
		return -1;
	if (a.ulValueLen == (CK_ULONG)-1 || a.ulValueLen > P11_MAX_OUT)
		return err_set(err, "pkcs11: the value of %s is not readable", label);
	if ((a.pValue = malloc(a.ulValueLen ? a.ulValueLen : 1)) == NULL)
		return err_set(err, "out of memory");
	if (ck(p->f->C_GetAttributeValue(p->s, o, &a, 1), "reading the value", err)) {
		free(a.pValue);
		return -1;
	}
	*out = a.pValue;
	*len = a.ulValueLen;
	return 0;
}

static int store(struct p11 *p, const char *label, const uint8_t *val, size_t len, struct err *err)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE t[] = {
	    {CKA_CLASS, &cls, sizeof(cls)},           {CKA_KEY_TYPE, &kt, sizeof(kt)},
	    {CKA_TOKEN, &yes, sizeof(yes)},           {CKA_EXTRACTABLE, &yes, sizeof(yes)},
	    {CKA_PRIVATE, &yes, sizeof(yes)},         {CKA_VALUE, (void *)val, len},
	    {CKA_LABEL, (void *)label, strlen(label)}};
	CK_OBJECT_HANDLE o;
	if (len == 0)
		return err_set(err, "pkcs11: an empty secret cannot be stored");
	return ck(p->f->C_CreateObject(p->s, t, sizeof(t) / sizeof(t[0]), &o), "storing", err);
}

static int destroy(struct p11 *p, const char *label, struct err *err)
{
	CK_OBJECT_HANDLE o;
	int rc = find(p, label, CKO_SECRET_KEY, &o, err);
	if (rc)
		return rc > 0 ? err_set(err, "pkcs11: no object labelled %s", label) : -1;
	return ck(p->f->C_DestroyObject(p->s, o), "destroying", err);
}

/* RSA-OAEP with the wrap key: encrypt (public key) or decrypt (private key). */
static int rsa(struct p11 *p, int encrypt, const uint8_t *in, size_t ilen, uint8_t **out,
               size_t *olen, struct err *err)
{
	CK_RSA_PKCS_OAEP_PARAMS prm = {p->sha1 ? CKM_SHA_1 : CKM_SHA256,
	                               p->sha1 ? CKG_MGF1_SHA1 : CKG_MGF1_SHA256,
	                               CKZ_DATA_SPECIFIED, NULL, 0};
	CK_MECHANISM m = {CKM_RSA_PKCS_OAEP, &prm, sizeof(prm)};
	CK_OBJECT_HANDLE k;
	int rc = find(p, p->lookup_label, encrypt ? CKO_PUBLIC_KEY : CKO_PRIVATE_KEY, &k, err);
	if (rc)
		return rc > 0 ? err_set(err, "pkcs11: no %s key labelled \"%s\"",
		                        encrypt ? "public" : "private", p->lookup_label)
		              : -1;
	CK_ULONG n = P11_MAX_OUT;
	if ((*out = malloc(n)) == NULL)
		return err_set(err, "out of memory");
	CK_RV rv = encrypt ? p->f->C_EncryptInit(p->s, &m, k) : p->f->C_DecryptInit(p->s, &m, k);
	if (rv == CKR_OK)
		rv = encrypt ? p->f->C_Encrypt(p->s, (CK_BYTE_PTR)in, ilen, *out, &n)
		             : p->f->C_Decrypt(p->s, (CK_BYTE_PTR)in, ilen, *out, &n);
	if (ck(rv, encrypt ? "wrapping" : "unwrapping", err)) {
		OPENSSL_cleanse(*out, P11_MAX_OUT);
		free(*out);
		*out = NULL;
		return -1;
	}
	*olen = n;
	return 0;
}

static int p11_validate_auth(void *st, const struct kbs_plugin_req *q, struct err *err)
{
	if (!strcmp(q->method, "GET"))
		return 0;
	if (!strcmp(q->method, "POST") || !strcmp(q->method, "DELETE"))
		return 1;
	return err_set(err, "pkcs11: method %s is not supported", q->method);
}

static int p11_needs_encryption(void *st, const struct kbs_plugin_req *q, struct err *err)
{
	return 1;
}

static int p11_handle(void *st, const struct kbs_plugin_req *q, uint8_t **out, size_t *len,
                      struct err *err)
{
	struct p11 *p = st;
	const char *first = json_string_value(json_array_get(q->path, 0));
	size_t np = json_array_size(q->path);
	int rc = -1;
	*out = NULL;
	*len = 0;
	pthread_mutex_lock(&p->mu);
	if (first && !strcmp(first, "wrap-key") && np == 1) {
		if (!strcmp(q->method, "POST") || !strcmp(q->method, "GET"))
			rc =
			    rsa(p, !strcmp(q->method, "POST"), q->body, q->body_len, out, len, err);
		else
			err_set(err, "pkcs11: wrap-key takes POST (wrap) or GET (unwrap)");
	} else if (first && !strcmp(first, "resource") && np == 4) {
		char label[600];
		snprintf(label, sizeof(label), "%s/%s/%s",
		         json_string_value(json_array_get(q->path, 1)),
		         json_string_value(json_array_get(q->path, 2)),
		         json_string_value(json_array_get(q->path, 3)));
		if (!kbs_resource_path_valid(label))
			err_set(err, "pkcs11: invalid resource path");
		else if (!strcmp(q->method, "GET"))
			rc = read_value(p, label, out, len, err);
		else if (!strcmp(q->method, "POST"))
			rc = store(p, label, q->body, q->body_len, err);
		else if (!strcmp(q->method, "DELETE"))
			rc = destroy(p, label, err);
		else
			err_set(err, "pkcs11: method %s is not supported", q->method);
	} else {
		err_set(err, "pkcs11: invalid path (resource/<repo>/<type>/<tag> or wrap-key)");
	}
	pthread_mutex_unlock(&p->mu);
	if (rc == 0 && *out == NULL && (*out = malloc(1)) == NULL)
		rc = err_set(err, "out of memory");
	return rc;
}

const struct kbs_plugin kbs_plugin_pkcs11 = {
    .name = "pkcs11",
    .open = p11_open,
    .free = p11_free,
    .validate_auth = p11_validate_auth,
    .handle = p11_handle,
    .needs_encryption = p11_needs_encryption,
};
