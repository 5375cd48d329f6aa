/*
 * nvidia_ocsp: one OCSP request per certificate below the root, each with a fresh nonce,
 * POSTed to the configured responder (see nvidia_ocsp.h). A response counts only when it is
 * successful, signed by the certificate's issuer or a responder that issuer delegated to
 * (OpenSSL's OCSP_basic_verify with the device root as the only trust anchor), echoes the
 * nonce, is current (thisUpdate/nextUpdate, five minutes of clock skew), and says "good".
 * Nothing is cached: the nonce makes every answer single-use.
 */
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "as/collateral/nvidia_ocsp.h"
#include "fetch.h"
#include "log.h"

/* Written by configure before any check runs, then only read. */
static char *ocsp_url;
static int fail_open;
static long timeout_ms = 10000;

int nvidia_ocsp_configure(const json_t *cfg, struct err *err)
{
	const json_t *url = json_object_get(cfg, "ocsp_url");
	const json_t *fo = json_object_get(cfg, "ocsp_fail_open");
	const json_t *to = json_object_get(cfg, "ocsp_timeout_ms");

	if (url != NULL && !json_is_string(url))
		return err_set(err, "nvidia_verifier.ocsp_url must be a string");
	if (fo != NULL && !json_is_boolean(fo))
		return err_set(err, "nvidia_verifier.ocsp_fail_open must be true or false");
	if (to != NULL && (!json_is_integer(to) || json_integer_value(to) <= 0))
		return err_set(err, "nvidia_verifier.ocsp_timeout_ms must be a positive integer");
	free(ocsp_url);
	ocsp_url = url ? strdup(json_string_value(url)) : NULL;
	fail_open = fo ? json_is_true(fo) : 0;
	timeout_ms = to ? (long)json_integer_value(to) : 10000;
	return 0;
}

int nvidia_ocsp_enabled(void)
{
	return ocsp_url != NULL;
}

static const char *cn_of(X509 *x, char *buf, size_t cap)
{
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, (int)cap) < 0)
		snprintf(buf, cap, "(no CN)");
	return buf;
}

/* The DER request for `id` with a fresh nonce; *req keeps the nonce for the check. */
static unsigned char *make_request(OCSP_CERTID *id, OCSP_REQUEST **req, int *len)
{
	unsigned char *der = NULL;
	*req = OCSP_REQUEST_new();
	OCSP_CERTID *mine = OCSP_CERTID_dup(id);
	if (*req == NULL || mine == NULL || OCSP_request_add0_id(*req, mine) == NULL) {
		OCSP_CERTID_free(mine);
		return NULL;
	}
	if (OCSP_request_add1_nonce(*req, NULL, 32) != 1)
		return NULL;
	*len = i2d_OCSP_REQUEST(*req, &der);
	return *len > 0 ? der : NULL;
}

static int ask(const unsigned char *der, int len, OCSP_RESPONSE **resp, struct err *err)
{
	static const char *const hdrs[] = {"Content-Type: application/ocsp-request",
	                                   "Accept: application/ocsp-response", NULL};
	struct fetch_opts o = {.timeout_ms = timeout_ms, .max_bytes = 64 * 1024, .headers = hdrs};
	struct fetch_result r = {0};
	struct err fe = {0};
	if (fetch_request("POST", ocsp_url, der, (size_t)len, &o, &r, &fe) < 0) {
		fetch_result_free(&r);
		/* any failure to get an answer is an outage here: the device is not at fault */
		return err_setc(err, ERR_UNAVAILABLE, "OCSP responder: %s", fe.msg);
	}
	const unsigned char *p = (const unsigned char *)r.body;
	*resp = p ? d2i_OCSP_RESPONSE(NULL, &p, (long)r.len) : NULL;
	int whole = *resp != NULL && p == (const unsigned char *)r.body + r.len;
	fetch_result_free(&r);
	if (!whole)
		return err_set(err, "the OCSP responder's answer is not one DER OCSP response");
	return 0;
}

/* Judge the response for `id`; `x` names the certificate in sentences. */
static int judge(OCSP_RESPONSE *resp, OCSP_REQUEST *req, OCSP_CERTID *id, X509 *x,
                 STACK_OF(X509) * certs, X509_STORE *store, struct err *err)
{
	char cn[128];
	int st = OCSP_response_status(resp), reason = 0, status = -1, rc = -1;
	ASN1_GENERALIZEDTIME *thisupd = NULL, *nextupd = NULL, *revtime = NULL;
	if (st != OCSP_RESPONSE_STATUS_SUCCESSFUL)
		return err_set(err, "OCSP for %s: responder answered %s", cn_of(x, cn, sizeof(cn)),
		               OCSP_response_status_str(st));
	OCSP_BASICRESP *bs = OCSP_response_get1_basic(resp);
	if (bs == NULL)
		err_set(err, "OCSP for %s: no basic response", cn_of(x, cn, sizeof(cn)));
	else if (OCSP_basic_verify(bs, certs, store, 0) != 1)
		err_set(err, "OCSP for %s: the response is not signed by the certificate's issuer",
		        cn_of(x, cn, sizeof(cn)));
	else if (OCSP_check_nonce(req, bs) != 1)
		err_set(err, "OCSP for %s: the response does not echo our nonce",
		        cn_of(x, cn, sizeof(cn)));
	else if (OCSP_resp_find_status(bs, id, &status, &reason, &revtime, &thisupd, &nextupd) != 1)
		err_set(err, "OCSP for %s: the response does not cover the certificate",
		        cn_of(x, cn, sizeof(cn)));
	else if (OCSP_check_validity(thisupd, nextupd, 300, -1) != 1)
		err_set(err, "OCSP for %s: the response is not current", cn_of(x, cn, sizeof(cn)));
	else if (status == V_OCSP_CERTSTATUS_REVOKED)
		err_set(err, "OCSP: the NVIDIA certificate %s is revoked (%s)",
		        cn_of(x, cn, sizeof(cn)), OCSP_crl_reason_str(reason));
	else if (status != V_OCSP_CERTSTATUS_GOOD)
		err_set(err, "OCSP: the NVIDIA certificate %s has status %s",
		        cn_of(x, cn, sizeof(cn)), OCSP_cert_status_str(status));
	else
		rc = 0;
	OCSP_BASICRESP_free(bs);
	return rc;
}

static int check_one(X509 *x, X509 *issuer, STACK_OF(X509) * certs, X509_STORE *store,
                     struct err *err)
{
	OCSP_CERTID *id = OCSP_cert_to_id(EVP_sha1(), x, issuer);
	OCSP_REQUEST *req = NULL;
	OCSP_RESPONSE *resp = NULL;
	int len = 0, rc = -1;
	unsigned char *der = id ? make_request(id, &req, &len) : NULL;
	if (der == NULL)
		err_set(err, "cannot build an OCSP request");
	else if (ask(der, len, &resp, err) == 0)
		rc = judge(resp, req, id, x, certs, store, err);
	OPENSSL_free(der);
	OCSP_RESPONSE_free(resp);
	OCSP_REQUEST_free(req);
	OCSP_CERTID_free(id);
	return rc;
}

int nvidia_ocsp_check(const struct nvidia_chain *c, X509 *root, const char **status,
                      struct err *err)
{
	int n = sk_X509_num(c->certs), rc = 0;
	X509_STORE *store = X509_STORE_new();
	*status = "good";
	if (ocsp_url == NULL)
		return err_set(err, "OCSP is not configured");
	if (store == NULL || X509_STORE_add_cert(store, root) != 1) {
		X509_STORE_free(store);
		return err_set(err, "out of memory");
	}
	for (int i = 0; rc == 0 && i < n - 1; i++)
		rc = check_one(sk_X509_value(c->certs, i), sk_X509_value(c->certs, i + 1), c->certs,
		               store, err);
	X509_STORE_free(store);
	if (rc < 0 && err != NULL && err->code == ERR_UNAVAILABLE && fail_open) {
		log_warn("nvidia: %s; passing the device as ocsp_fail_open is set", err->msg);
		err_clear(err);
		*status = "unavailable";
		return 0;
	}
	return rc;
}
