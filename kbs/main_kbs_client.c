/*
 * kbs-client: a KBS client for people and scripts.
 *   kbs-client --url URL [--cert-file CA.pem] get-resource --path R/T/G [--tee-key-file PEM]
 *              [--init-data FILE] [--bearer-token T]
 *   kbs-client --url URL attest [--tee-key-file PEM]
 *   kbs-client --url URL config --auth-private-key KEY.pem [--issuer I] [--role R]
 *              set-resource --path P --resource-file F | set-resource-policy --policy-file F |
 *              set-attestation-policy --id ID --policy-file F | set-sample-reference-value NAME
 * VALUE... As an attester it runs RCAR as Trustee's `sample` TEE, binding the report data to the
 * nonce and its key like the guest attestation agent does, and decrypts the JWE it gets.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "b64.h"
#include "config.h"
#include "hash.h"
#include "jcs.h"
#include "jose.h"

struct buf {
	char *p;
	size_t n;
};

static size_t on_body(char *d, size_t s, size_t n, void *u)
{
	struct buf *b = u;
	char *np = realloc(b->p, b->n + s * n + 1);
	if (np == NULL)
		return 0;
	memcpy(np + b->n, d, s * n);
	b->p = np;
	b->n += s * n;
	b->p[b->n] = 0;
	return s * n;
}

struct client {
	const char *url, *ca;
	CURL *c;
};

/* One request; returns the HTTP status, body in *out (malloc'd). */
static long http(struct client *cl, const char *method, const char *path, const char *body,
                 size_t blen, const char *bearer, char **out)
{
	char url[2048], auth[8192];
	struct buf b = {0};
	struct curl_slist *h = NULL;
	long code = 0;

	snprintf(url, sizeof(url), "%s%s", cl->url, path);
	curl_easy_setopt(cl->c, CURLOPT_URL, url);
	curl_easy_setopt(cl->c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(cl->c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(cl->c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(cl->c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(cl->c, CURLOPT_POSTFIELDSIZE, (long)(body ? blen : 0));
	if (body == NULL)
		curl_easy_setopt(cl->c, CURLOPT_HTTPGET, 1L),
		    curl_easy_setopt(cl->c, CURLOPT_CUSTOMREQUEST, method);
	h = curl_slist_append(h, "Content-Type: application/json");
	if (bearer) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer);
		h = curl_slist_append(h, auth);
	}
	curl_easy_setopt(cl->c, CURLOPT_HTTPHEADER, h);
	if (curl_easy_perform(cl->c) == CURLE_OK)
		curl_easy_getinfo(cl->c, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(h);
	*out = b.p ? b.p : strdup("");
	return code;
}

/* libcurl's sentence for the last transfer that got no HTTP answer (TLS, connect, ...). */
static char curl_err[CURL_ERROR_SIZE];

static int fail_with(long code, const char *what, const char *body)
{
	json_t *j = json_loads(body ? body : "", 0, NULL);
	const char *d = json_string_value(json_object_get(j, "detail"));
	fprintf(stderr, "kbs-client: %s failed (HTTP %ld): %s\n", what, code,
	        d ? d : (code ? body : curl_err[0] ? curl_err : "no answer"));
	json_decref(j);
	return 1;
}

/* RCAR as the sample TEE; returns the token (malloc'd) */
static char *attest(struct client *cl, EVP_PKEY *key, const char *initdata, struct err *err)
{
	char *out = NULL;
	long code =
	    http(cl, "POST", "/kbs/v0/auth",
	         "{\"version\":\"0.4.0\",\"tee\":\"sample\",\"extra-params\":{\"supported-hash-"
	         "algorithms\":[\"sha256\",\"sha384\",\"sha512\"]}}",
	         strlen("{\"version\":\"0.4.0\",\"tee\":\"sample\",\"extra-params\":{\"supported-"
	                "hash-algorithms\":[\"sha256\",\"sha384\",\"sha512\"]}}"),
	         NULL, &out);
	json_t *ch = json_loads(out, 0, NULL);
	const char *nonce = json_string_value(json_object_get(ch, "nonce"));
	if (code != 200 || nonce == NULL) {
		fail_with(code, "/auth", out);
		free(out);
		json_decref(ch);
		err_set(err, "auth");
		return NULL;
	}
	free(out);
	json_t *pub = jwk_from_pkey(key, 0, err);
	json_t *tpk;
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA)
		tpk = json_pack("{s:s,s:s,s:O,s:O}", "kty", "RSA", "alg", "RSA-OAEP-256", "n",
		                json_object_get(pub, "n"), "e", json_object_get(pub, "e"));
	else
		tpk = json_pack("{s:s,s:O,s:s,s:O,s:O}", "kty", "EC", "crv",
		                json_object_get(pub, "crv"), "alg", "ECDH-ES+A256KW", "x",
		                json_object_get(pub, "x"), "y", json_object_get(pub, "y"));
	json_decref(pub);
	json_t *rd = json_pack("{s:s,s:s,s:O}", "additional-evidence", "", "nonce", nonce,
	                       "tee-pubkey", tpk);
	char *canon = jcs_serialize(rd, NULL);
	uint8_t digest[HASH_MAX];
	size_t dl = hash_digest(HASH_SHA384, canon, strlen(canon), digest);
	char *rdb64 = b64_encode(digest, dl, B64_STD);
	json_t *att =
	    json_pack("{s:{s:{s:s,s:s},s:s},s:{s:s,s:O},s:n}", "tee-evidence", "primary_evidence",
	              "svn", "1", "report_data", rdb64, "additional_evidence", "", "runtime-data",
	              "nonce", nonce, "tee-pubkey", tpk, "init-data");
	if (initdata) {
		size_t il;
		char *t = file_read_all(initdata, &il, err);
		if (t)
			json_object_set_new(att, "init-data",
			                    json_pack("{s:s,s:s}", "format", "toml", "body", t));
		free(t);
	}
	char *body = json_dumps(att, JSON_COMPACT);
	code = http(cl, "POST", "/kbs/v0/attest", body, strlen(body), NULL, &out);
	json_t *tok = json_loads(out, 0, NULL);
	char *token = NULL;
	if (code == 200 && json_is_string(json_object_get(tok, "token")))
		token = strdup(json_string_value(json_object_get(tok, "token")));
	else
		fail_with(code, "/attest", out), err_set(err, "attest");
	free(out);
	free(body);
	free(canon);
	free(rdb64);
	json_decref(tok);
	json_decref(att);
	json_decref(rd);
	json_decref(tpk);
	json_decref(ch);
	return token;
}

static int admin(struct client *cl, int argc, char **argv)
{
	const char *keyf = NULL, *iss = "issuer", *role = "admin";
	int i = 0;
	for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
		if (strcmp(argv[i], "--auth-private-key") == 0)
			keyf = argv[i + 1];
		else if (strcmp(argv[i], "--issuer") == 0)
			iss = argv[i + 1];
		else if (strcmp(argv[i], "--role") == 0)
			role = argv[i + 1];
	}
	struct err err = {0};
	EVP_PKEY *k = keyf ? pem_read_private_key(keyf, &err) : NULL;
	if (k == NULL || i >= argc) {
		fprintf(
		    stderr,
		    "kbs-client config: --auth-private-key KEY and a subcommand are required %s\n",
		    err.msg);
		return 2;
	}
	time_t now = time(NULL);
	json_t *h = json_pack("{s:s,s:s}", "alg", jwk_default_alg(k), "typ", "JWT");
	json_t *p = json_pack("{s:s,s:s,s:I,s:I}", "iss", iss, "role", role, "iat", (json_int_t)now,
	                      "exp", (json_int_t)now + 600);
	char *jwt = jws_sign(h, p, k, jwk_default_alg(k), &err);
	const char *cmd = argv[i];
	char path[1024], *body = NULL, *out = NULL;
	size_t blen = 0;
	const char *opt_path = NULL, *file = NULL, *id = NULL;
	for (int j = i + 1; j + 1 < argc; j += 2) {
		if (strcmp(argv[j], "--path") == 0)
			opt_path = argv[j + 1];
		else if (strcmp(argv[j], "--resource-file") == 0 ||
		         strcmp(argv[j], "--policy-file") == 0)
			file = argv[j + 1];
		else if (strcmp(argv[j], "--id") == 0)
			id = argv[j + 1];
	}
	if (strcmp(cmd, "set-resource") == 0 && opt_path && file) {
		snprintf(path, sizeof(path), "/kbs/v0/resource/%s", opt_path);
		body = file_read_all(file, &blen, &err);
	} else if ((strcmp(cmd, "set-resource-policy") == 0 ||
	            strcmp(cmd, "set-attestation-policy") == 0) &&
	           file) {
		size_t l;
		char *t = file_read_all(file, &l, &err);
		char *b = t ? b64_encode((uint8_t *)t, l, B64_URL) : NULL;
		json_t *j = strcmp(cmd, "set-resource-policy") == 0
		                ? json_pack("{s:s}", "policy", b ? b : "")
		                : json_pack("{s:s,s:s,s:s}", "type", "rego", "policy_id",
		                            id ? id : "default_cpu", "policy", b ? b : "");
		snprintf(path, sizeof(path), "/kbs/v0/%s",
		         strcmp(cmd, "set-resource-policy") == 0 ? "resource-policy"
		                                                 : "attestation-policy");
		body = json_dumps(j, JSON_COMPACT);
		blen = strlen(body);
		json_decref(j);
		free(t);
		free(b);
	} else if (strcmp(cmd, "set-sample-reference-value") == 0 && i + 2 < argc) {
		json_t *vals = json_array();
		for (int j = i + 2; j < argc; j++)
			json_array_append_new(vals, json_string(argv[j]));
		json_t *pl = json_pack("{s:o}", argv[i + 1], vals);
		char *pls = json_dumps(pl, JSON_COMPACT);
		char *plb = b64_encode((uint8_t *)pls, strlen(pls), B64_STD);
		json_t *m = json_pack("{s:s,s:s,s:s}", "version", "0.1.0", "type", "sample",
		                      "payload", plb);
		body = json_dumps(m, JSON_COMPACT);
		blen = strlen(body);
		snprintf(path, sizeof(path), "/kbs/v0/reference-value");
		json_decref(m);
		json_decref(pl);
		free(pls);
		free(plb);
	} else {
		fprintf(stderr, "kbs-client config: unknown or incomplete subcommand %s\n", cmd);
		return 2;
	}
	if (body == NULL) {
		fprintf(stderr, "kbs-client: %s\n", err.msg);
		return 1;
	}
	long code = http(cl, "POST", path, body, blen, jwt, &out);
	int rc = code == 200 ? 0 : fail_with(code, cmd, out);
	free(out);
	free(body);
	free(jwt);
	json_decref(h);
	json_decref(p);
	EVP_PKEY_free(k);
	return rc;
}

int main(int argc, char **argv)
{
	struct client cl = {0};
	EVP_PKEY *key = NULL;
	json_t *jwe = NULL;
	char *out = NULL;
	int i = 1, rc = 1;
	for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
		if (strcmp(argv[i], "--url") == 0)
			cl.url = argv[i + 1];
		else if (strcmp(argv[i], "--cert-file") == 0)
			cl.ca = argv[i + 1];
	}
	if (cl.url == NULL || i >= argc) {
		fprintf(stderr, "usage: kbs-client --url URL [--cert-file CA] get-resource --path "
		                "R/T/G | attest | config ...\n");
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	cl.c = curl_easy_init();
	curl_easy_setopt(cl.c, CURLOPT_COOKIEFILE, ""); /* session cookie between calls */
	curl_easy_setopt(cl.c, CURLOPT_ERRORBUFFER, curl_err);
	if (cl.ca)
		curl_easy_setopt(cl.c, CURLOPT_CAINFO, cl.ca); /* trust a private CA for HTTPS */
	const char *cmd = argv[i];
	if (strcmp(cmd, "config") == 0) {
		rc = admin(&cl, argc - i - 1, argv + i + 1);
		goto done;
	}
	const char *path = NULL, *keyf = NULL, *initdata = NULL, *bearer = NULL;
	for (int j = i + 1; j + 1 < argc; j += 2) {
		if (strcmp(argv[j], "--path") == 0)
			path = argv[j + 1];
		else if (strcmp(argv[j], "--tee-key-file") == 0)
			keyf = argv[j + 1];
		else if (strcmp(argv[j], "--init-data") == 0)
			initdata = argv[j + 1];
		else if (strcmp(argv[j], "--bearer-token") == 0)
			bearer = argv[j + 1];
	}
	struct err err = {0};
	key = keyf ? pem_read_private_key(keyf, &err)
	           : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "prime256v1");
	if (key == NULL) {
		fprintf(stderr, "kbs-client: %s\n", err.msg);
		goto done;
	}
	if (strcmp(cmd, "attest") == 0) {
		char *t = attest(&cl, key, initdata, &err);
		if (t == NULL)
			goto done;
		printf("%s\n", t);
		free(t);
		rc = 0;
		goto done;
	}
	if (strcmp(cmd, "get-resource") != 0 || path == NULL) {
		fprintf(stderr, "kbs-client: unknown command %s\n", cmd);
		rc = 2;
		goto done;
	}
	char rpath[1024];
	snprintf(rpath, sizeof(rpath), "/kbs/v0/resource/%s", path);
	long code = 0;
	for (int attempt = 0; attempt < 3;
	     attempt++) { /* like the guest client: redo RCAR on 401 */
		if (bearer == NULL) {
			char *t = attest(&cl, key, initdata, &err);
			if (t == NULL)
				goto done;
			free(t);
		}
		free(out);
		code = http(&cl, "GET", rpath, NULL, 0, bearer, &out);
		if (code != 401)
			break;
	}
	if (code != 200) {
		rc = fail_with(code, "get-resource", out);
		goto done;
	}
	jwe = json_loads(out, 0, NULL);
	uint8_t *plain;
	size_t len;
	if (jwe == NULL || jwe_decrypt(jwe, key, &plain, &len, &err) < 0) {
		fprintf(stderr, "kbs-client: cannot decrypt the resource: %s\n", err.msg);
		goto done;
	}
	fwrite(plain, 1, len, stdout);
	OPENSSL_cleanse(plain, len);
	free(plain);
	rc = 0;
done:
	free(out);
	json_decref(jwe);
	EVP_PKEY_free(key);
	curl_easy_cleanup(cl.c);
	curl_global_cleanup();
	return rc;
}
