/*
 * rcar_parse: the parsers for what an attester sends the KBS — the /auth Request, the
 * /attest Attestation, the TeePubKey inside it — plus the protocol version check and the
 * resource path rule. They take untrusted bytes, check every shape before use, and produce
 * owned values; nothing else in the KBS reads request bodies. Fuzzed by
 * tests/fuzz/fuzz_kbs_*.c.
 */
#include <stdlib.h>
#include <string.h>

#include "jsonr.h"
#include "kbs.h"

static const char *const tees[] = {
    "az-snp-vtpm", "az-tdx-vtpm", "nvidia",   "sgx", "snp",    "tdx",          "cca",
    "csv",         "se",          "hygondcu", "tpm", "sample", "sampledevice", "nvidiadpu",
};

int kbs_tee_known(const char *tee)
{
	for (size_t i = 0; i < sizeof(tees) / sizeof(tees[0]); i++)
		if (strcmp(tee, tees[i]) == 0)
			return 1;
	return 0;
}

/* A semver numeric identifier: digits, no leading zero unless "0". */
static const char *num_ident(const char *p, unsigned long *v)
{
	const char *s = p;
	unsigned long n = 0;
	while (*p >= '0' && *p <= '9') {
		if (n > 100000000UL)
			return NULL;
		n = n * 10 + (unsigned long)(*p - '0');
		p++;
	}
	if (p == s || (p - s > 1 && *s == '0'))
		return NULL;
	*v = n;
	return p;
}

/* Dot-separated identifiers of [0-9A-Za-z-], none empty. */
static const char *idents(const char *p)
{
	for (;;) {
		const char *s = p;
		while ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
		       (*p >= 'A' && *p <= 'Z') || *p == '-')
			p++;
		if (p == s)
			return NULL;
		if (*p != '.')
			return p;
		p++;
	}
}

int kbs_version_check(const char *v)
{
	unsigned long maj, min, pat;
	const char *p = num_ident(v, &maj);
	if (!p || *p++ != '.')
		return -1;
	if (!(p = num_ident(p, &min)) || *p++ != '.')
		return -1;
	if (!(p = num_ident(p, &pat)))
		return -1;
	int pre = 0;
	if (*p == '-') {
		pre = 1;
		if (!(p = idents(p + 1)))
			return -1;
	}
	if (*p == '+') {
		if (!(p = idents(p + 1)))
			return -1;
	}
	if (*p)
		return -1;
	/* "=0.4.0" matches exactly 0.4.0; a pre-release of it is a different version. */
	if (maj != 0 || min != 4 || pat != 0 || pre)
		return -2;
	return 0;
}

void kbs_auth_req_free(struct kbs_auth_req *r)
{
	free(r->version);
	free(r->tee);
	json_decref(r->extra_params);
	memset(r, 0, sizeof(*r));
}

static json_t *parse_object(const uint8_t *buf, size_t len, struct err *err)
{
	json_error_t je;
	/* jansson's reading, faster (common/jsonr.h); what jsonr leaves, jansson decides */
	json_t *root = jsonr_object((const char *)buf, len);
	if (!root)
		root = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		err_set(err, "invalid JSON at line %d, column %d: %s", je.line, je.column, je.text);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		err_set(err, "expected a JSON object");
		return NULL;
	}
	return root;
}

int kbs_auth_req_parse(const uint8_t *buf, size_t len, struct kbs_auth_req *out, struct err *err)
{
	memset(out, 0, sizeof(*out));
	json_t *root = parse_object(buf, len, err);
	if (!root)
		return -1;
	int rc = -1;
	json_t *ver = json_object_get(root, "version");
	json_t *tee = json_object_get(root, "tee");
	json_t *extra = json_object_get(root, "extra-params");
	if (!json_is_string(ver)) {
		err_set(err, "missing field `version`");
		goto out;
	}
	if (!json_is_string(tee)) {
		err_set(err, "missing field `tee`");
		goto out;
	}
	if (!extra) {
		err_set(err, "missing field `extra-params`");
		goto out;
	}
	if (!kbs_tee_known(json_string_value(tee))) {
		err_set(err, "unknown variant `%.64s` for field `tee`", json_string_value(tee));
		goto out;
	}
	out->version = strdup(json_string_value(ver));
	out->tee = strdup(json_string_value(tee));
	out->extra_params = json_incref(extra);
	if (!out->version || !out->tee) {
		err_set(err, "out of memory");
		kbs_auth_req_free(out);
		goto out;
	}
	rc = 0;
out:
	json_decref(root);
	return rc;
}

/* Copies string member k of src into dst; -1 if absent or not a string. */
static int copy_str(json_t *dst, const json_t *src, const char *k, struct err *err)
{
	json_t *v = json_object_get(src, k);
	if (!json_is_string(v))
		return err_set(err, "tee-pubkey: missing string member `%s`", k);
	json_object_set(dst, k, v);
	return 0;
}

json_t *kbs_teepubkey_parse(const json_t *v, struct err *err)
{
	if (!json_is_object(v)) {
		err_set(err, "tee-pubkey is not a JSON object");
		return NULL;
	}
	const char *kty = json_string_value(json_object_get(v, "kty"));
	if (!kty) {
		err_set(err, "tee-pubkey: missing `kty`");
		return NULL;
	}
	static const char *const rsa[] = {"alg", "n", "e"};
	static const char *const ec[] = {"crv", "alg", "x", "y"};
	static const char *const akp[] = {"alg", "pub"};
	const char *const *mem;
	size_t n;
	if (strcmp(kty, "RSA") == 0) {
		mem = rsa;
		n = 3;
	} else if (strcmp(kty, "EC") == 0) {
		mem = ec;
		n = 4;
	} else if (strcmp(kty, "AKP") == 0) {
		mem = akp;
		n = 2;
	} else {
		err_set(err, "tee-pubkey: unknown kty `%.32s`", kty);
		return NULL;
	}
	json_t *o = json_object();
	if (!o) {
		err_set(err, "out of memory");
		return NULL;
	}
	json_object_set_new(o, "kty", json_string(kty));
	for (size_t i = 0; i < n; i++) {
		if (copy_str(o, v, mem[i], err) != 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

void kbs_attest_req_free(struct kbs_attest_req *r)
{
	free(r->nonce);
	json_decref(r->tee_pubkey);
	json_decref(r->primary_evidence);
	free(r->additional_evidence);
	free(r->init_data_format);
	free(r->init_data_body);
	memset(r, 0, sizeof(*r));
}

int kbs_attest_req_parse(const uint8_t *buf, size_t len, struct kbs_attest_req *out,
                         struct err *err)
{
	memset(out, 0, sizeof(*out));
	json_t *root = parse_object(buf, len, err);
	if (!root)
		return -1;
	int rc = -1;
	json_t *rd = json_object_get(root, "runtime-data");
	json_t *te = json_object_get(root, "tee-evidence");
	json_t *id = json_object_get(root, "init-data");
	if (!json_is_object(rd)) {
		err_set(err, "missing object `runtime-data`");
		goto out;
	}
	if (!json_is_object(te)) {
		err_set(err, "missing object `tee-evidence`");
		goto out;
	}
	json_t *nonce = json_object_get(rd, "nonce");
	if (!json_is_string(nonce)) {
		err_set(err, "runtime-data: missing string `nonce`");
		goto out;
	}
	json_t *pk = json_object_get(rd, "tee-pubkey");
	if (!pk) {
		err_set(err, "runtime-data: missing `tee-pubkey`");
		goto out;
	}
	json_t *pe = json_object_get(te, "primary_evidence");
	json_t *ae = json_object_get(te, "additional_evidence");
	if (!pe) {
		err_set(err, "tee-evidence: missing `primary_evidence`");
		goto out;
	}
	if (!json_is_string(ae)) {
		err_set(err, "tee-evidence: `additional_evidence` must be a string");
		goto out;
	}
	if (id && !json_is_null(id)) {
		json_t *fmt = json_object_get(id, "format");
		json_t *body = json_object_get(id, "body");
		if (!json_is_object(id) || !json_is_string(fmt) || !json_is_string(body)) {
			err_set(err, "init-data must be {\"format\": string, \"body\": string}");
			goto out;
		}
		out->init_data_format = strdup(json_string_value(fmt));
		out->init_data_body = strndup(json_string_value(body), json_string_length(body));
	}
	out->tee_pubkey = kbs_teepubkey_parse(pk, err);
	if (!out->tee_pubkey) {
		kbs_attest_req_free(out);
		goto out;
	}
	out->nonce = strdup(json_string_value(nonce));
	out->primary_evidence = json_incref(pe);
	out->additional_evidence = strndup(json_string_value(ae), json_string_length(ae));
	rc = 0;
out:
	json_decref(root);
	return rc;
}

/* seg = [A-Za-z0-9_-][A-Za-z0-9_.-]* */
static int seg_char(char c, int first)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	    c == '_' || c == '-')
		return 1;
	return !first && c == '.';
}

bool kbs_resource_path_valid(const char *path)
{
	int segs = 0;
	const char *p = path;
	for (;;) {
		if (!seg_char(*p, 1))
			return false;
		p++;
		while (*p && *p != '/') {
			if (!seg_char(*p, 0))
				return false;
			p++;
		}
		segs++;
		if (!*p)
			break;
		p++; /* '/' */
	}
	return segs == 3;
}
