/*
 * kbs-client: a KBS client for people and scripts, with the command line of Trustee's
 * `tools/kbs-client` so its scripts, Makefiles and README examples run unchanged:
 *
 *   kbs-client [--url URL] [--cert-file CA.pem] COMMAND
 *     attest [--tee-key-file PEM] [INIT_DATA]                       prints the EAR token
 *     get-resource --path R/T/G [--tee-key-file PEM] [--attestation-token FILE] [INIT_DATA]
 *                                                                  prints the secret in base64
 *     config [--admin-token-file FILE] SUBCOMMAND
 *       set-attestation-policy [--type rego] [--id ID] --policy-file F
 *       set-resource-policy --policy-file F | --allow-all | --deny-all | --affirming | --default
 *       set-resource --path P --resource-file F         delete-resource --path P
 *       get-reference-value --id ID
 *       set-sample-reference-value NAME VALUE [--as-integer | --as-bool] [--as-single-value]
 *       set-reference-value --type TYPE --payload-file F [--version V]
 *
 * URL defaults to http://127.0.0.1:8080. Without --admin-token-file the admin token is read
 * from kbs/config/docker-compose/admin-token, then ~/.trustee/admin-token; with neither the
 * request goes out anonymous (what an InsecureAllowAll KBS accepts), as Trustee's client does.
 *
 * Extensions kept from our own client: `config --auth-private-key KEY [--issuer I] [--role R]
 * [--audience A]` mints a short-lived admin JWT here (aud defaults to "kbs", which identity
 * providers configured with `audience = "kbs"` require); `--init-data FILE` reads the
 * init-data from a file; `get-resource --bearer-token TOKEN` takes the token inline; and
 * `set-sample-reference-value NAME V1 V2 ...` registers several values at once; and
 * `set-reference-value` sends any RVPS message type (corim, swid, in-toto, sample): the file's
 * bytes, base64, as the message's payload (Trustee's client offers only the sample type).
 *
 * As an attester it runs RCAR as Trustee's `sample` TEE, binding the report data to the nonce
 * and its key like the guest attestation agent does, and decrypts the JWE it gets.
 */
#include <curl/curl.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "version.h"
#include "b64.h"
#include "hash.h"
#include "jcs.h"
#include "jose/jose.h"

#define DEFAULT_URL "http://127.0.0.1:8080"
#define COMPOSE_ADMIN_TOKEN "kbs/config/docker-compose/admin-token"

/* ------------------------------------------------------------------ HTTP */

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

/* libcurl's sentence for the last transfer that got no HTTP answer (TLS, connect, ...). */
static char curl_err[CURL_ERROR_SIZE];

/* One request; returns the HTTP status (0: no answer), body in *out (malloc'd). */
static long http(struct client *cl, const char *method, const char *path, const char *ctype,
                 const char *body, size_t blen, const char *bearer, char **out)
{
	char url[4096], hdr[256];
	char *auth = NULL;
	struct buf b = {0};
	struct curl_slist *h = NULL;
	long code = 0;

	snprintf(url, sizeof(url), "%s%s", cl->url, path);
	curl_easy_setopt(cl->c, CURLOPT_URL, url);
	curl_easy_setopt(cl->c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(cl->c, CURLOPT_WRITEDATA, &b);
	if (body != NULL) {
		curl_easy_setopt(cl->c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(cl->c, CURLOPT_POSTFIELDSIZE, (long)blen);
	} else {
		curl_easy_setopt(cl->c, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(cl->c, CURLOPT_CUSTOMREQUEST, method);
	if (ctype) {
		snprintf(hdr, sizeof(hdr), "Content-Type: %s", ctype);
		h = curl_slist_append(h, hdr);
	}
	if (bearer && asprintf(&auth, "Authorization: Bearer %s", bearer) > 0)
		h = curl_slist_append(h, auth);
	curl_easy_setopt(cl->c, CURLOPT_HTTPHEADER, h);
	curl_err[0] = 0;
	if (curl_easy_perform(cl->c) == CURLE_OK)
		curl_easy_getinfo(cl->c, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(h);
	free(auth);
	*out = b.p ? b.p : strdup("");
	return code;
}

static int fail_with(long code, const char *what, const char *body)
{
	json_t *j = json_loads(body ? body : "", 0, NULL);
	const char *d = json_string_value(json_object_get(j, "detail"));
	fprintf(stderr, "kbs-client: %s failed (HTTP %ld): %s\n", what, code,
	        d ? d
	          : (code          ? body
	             : curl_err[0] ? curl_err
	                           : "no answer"));
	json_decref(j);
	return 1;
}

/* ------------------------------------------------------------------ arguments */

/* One option of a (sub)command: `--name VALUE` / `--name=VALUE` fills *val, a flag sets
 * *flag. Everything not starting with "--" is a positional argument, wherever it stands. */
struct opt {
	const char *name;
	const char **val;
	bool *flag;
};

/* Fills the options and up to `maxpos` positionals (counted in *npos); 0, or -1 after
 * saying what was wrong. */
static int parse_args(const char *cmd, int argc, char **argv, const struct opt *opts,
                      const char **pos, int maxpos, int *npos)
{
	*npos = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--", 2) != 0 || a[2] == 0) {
			if (*npos >= maxpos) {
				fprintf(stderr, "kbs-client %s: unexpected argument '%s'\n", cmd,
				        a);
				return -1;
			}
			pos[(*npos)++] = a;
			continue;
		}
		const char *eq = strchr(a, '=');
		size_t nl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
		const struct opt *o = opts;
		while (o->name && (strlen(o->name) != nl || strncmp(o->name, a + 2, nl) != 0))
			o++;
		if (o->name == NULL) {
			fprintf(stderr, "kbs-client %s: unknown option '%s'\n", cmd, a);
			return -1;
		}
		if (o->flag) {
			if (eq) {
				fprintf(stderr, "kbs-client %s: --%s takes no value\n", cmd,
				        o->name);
				return -1;
			}
			*o->flag = true;
		} else if (eq) {
			*o->val = eq + 1;
		} else if (i + 1 < argc) {
			*o->val = argv[++i];
		} else {
			fprintf(stderr, "kbs-client %s: --%s needs a value\n", cmd, o->name);
			return -1;
		}
	}
	return 0;
}

/* A whole file, also a pipe (`--policy-file <(echo ...)` in Trustee's scripts), NUL-ended. */
#define READ_MAX (64u << 20)
static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *p = NULL;
	size_t n = 0, cap = 0;
	if (f == NULL) {
		fprintf(stderr, "kbs-client: Failed to read: %s (%s)\n", path, strerror(errno));
		return NULL;
	}
	for (;;) {
		if (cap - n < 4096) {
			/* grown by copy and wipe: a resource file holds a secret */
			char *np = cap < READ_MAX ? malloc(cap ? cap * 2 : 8192) : NULL;
			if (np && p) {
				memcpy(np, p, n);
				OPENSSL_cleanse(p, cap);
			}
			if (np == NULL) {
				fprintf(stderr, "kbs-client: Failed to read: %s (over %u bytes)\n",
				        path, READ_MAX);
				free(p);
				fclose(f);
				return NULL;
			}
			free(p);
			p = np;
			cap = cap ? cap * 2 : 8192;
		}
		size_t r = fread(p + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0)
			break;
	}
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		fprintf(stderr, "kbs-client: Failed to read: %s\n", path);
		free(p);
		return NULL;
	}
	p[n] = 0;
	*len = n;
	return p;
}

/* A file's text without surrounding whitespace (token files end with a newline). */
static char *read_trimmed(const char *path)
{
	size_t len;
	char *t = read_file(path, &len);
	if (t == NULL)
		return NULL;
	while (len > 0 && strchr(" \t\r\n", t[len - 1]))
		t[--len] = 0;
	size_t lead = strspn(t, " \t\r\n");
	memmove(t, t + lead, len - lead + 1);
	return t;
}

/* ------------------------------------------------------------------ attester */

/* The init-data to send: the positional plaintext, or the --init-data FILE's text. */
static char *initdata_text(const char *plain, const char *file, int *bad)
{
	size_t l;
	*bad = 0;
	if (plain)
		return strdup(plain);
	if (file == NULL)
		return NULL;
	char *t = read_file(file, &l);
	*bad = t == NULL;
	return t;
}

static json_t *tee_pubkey(EVP_PKEY *key, struct err *err)
{
	json_t *pub = jwk_from_pkey(key, 0, err), *tpk;
	if (pub == NULL)
		return NULL;
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA)
		tpk = json_pack("{s:s,s:s,s:O,s:O}", "kty", "RSA", "alg", "RSA-OAEP-256", "n",
		                json_object_get(pub, "n"), "e", json_object_get(pub, "e"));
	else
		tpk = json_pack("{s:s,s:O,s:s,s:O,s:O}", "kty", "EC", "crv",
		                json_object_get(pub, "crv"), "alg", "ECDH-ES+A256KW", "x",
		                json_object_get(pub, "x"), "y", json_object_get(pub, "y"));
	json_decref(pub);
	if (tpk == NULL)
		err_set(err, "the TEE key is neither RSA nor an EC key of a supported curve");
	return tpk;
}

static const char AUTH_BODY[] = "{\"version\":\"0.4.0\",\"tee\":\"sample\",\"extra-params\":{"
                                "\"supported-hash-algorithms\":[\"sha256\",\"sha384\","
                                "\"sha512\"]}}";

/* The /attest body for the sample TEE: report data = SHA-384(JCS(runtime data)). */
static char *attest_body(const char *nonce, json_t *tpk, const char *initdata)
{
	json_t *rd = json_pack("{s:s,s:s,s:O}", "additional-evidence", "", "nonce", nonce,
	                       "tee-pubkey", tpk);
	char *canon = rd ? jcs_serialize(rd, NULL) : NULL;
	uint8_t digest[HASH_MAX];
	size_t dl = canon ? hash_digest(HASH_SHA384, canon, strlen(canon), digest) : 0;
	char *rdb64 = dl ? b64_encode(digest, dl, B64_STD) : NULL;
	char *body = NULL;
	json_t *att = rdb64 ? json_pack("{s:{s:{s:s,s:s},s:s},s:{s:s,s:O},s:n}", "tee-evidence",
	                                "primary_evidence", "svn", "1", "report_data", rdb64,
	                                "additional_evidence", "", "runtime-data", "nonce", nonce,
	                                "tee-pubkey", tpk, "init-data")
	                    : NULL;
	if (att && initdata)
		json_object_set_new(att, "init-data",
		                    json_pack("{s:s,s:s}", "format", "toml", "body", initdata));
	if (att)
		body = json_dumps(att, JSON_COMPACT);
	json_decref(att);
	json_decref(rd);
	free(canon);
	free(rdb64);
	return body;
}

/* RCAR as the sample TEE; returns the token (malloc'd) or NULL after saying why. */
static char *attest(struct client *cl, EVP_PKEY *key, const char *initdata)
{
	struct err err = {0};
	char *out = NULL, *body = NULL, *token = NULL;
	json_t *ch = NULL, *tok = NULL, *tpk = NULL;
	long code = http(cl, "POST", "/kbs/v0/auth", "application/json", AUTH_BODY,
	                 strlen(AUTH_BODY), NULL, &out);
	ch = json_loads(out, 0, NULL);
	const char *nonce = json_string_value(json_object_get(ch, "nonce"));
	if (code != 200 || nonce == NULL) {
		fail_with(code, "/auth", out);
		goto out;
	}
	if ((tpk = tee_pubkey(key, &err)) == NULL) {
		fprintf(stderr, "kbs-client: %s\n", err.msg);
		goto out;
	}
	if ((body = attest_body(nonce, tpk, initdata)) == NULL) {
		fprintf(stderr, "kbs-client: cannot build the evidence\n");
		goto out;
	}
	free(out);
	code =
	    http(cl, "POST", "/kbs/v0/attest", "application/json", body, strlen(body), NULL, &out);
	tok = json_loads(out, 0, NULL);
	if (code == 200 && json_is_string(json_object_get(tok, "token")))
		token = strdup(json_string_value(json_object_get(tok, "token")));
	else
		fail_with(code, "/attest", out);
out:
	free(out);
	free(body);
	json_decref(tok);
	json_decref(tpk);
	json_decref(ch);
	return token;
}

static EVP_PKEY *tee_key(const char *file)
{
	struct err err = {0};
	EVP_PKEY *k = file ? pem_read_private_key(file, &err)
	                   : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "prime256v1");
	if (k == NULL)
		fprintf(stderr, "kbs-client: %s\n", file ? err.msg : "cannot make a TEE key");
	return k;
}

static int cmd_attest(struct client *cl, int argc, char **argv)
{
	const char *keyf = NULL, *idfile = NULL, *pos[1];
	int npos, bad, rc = 1;
	const struct opt opts[] = {{"tee-key-file", &keyf}, {"init-data", &idfile}, {NULL}};
	if (parse_args("attest", argc, argv, opts, pos, 1, &npos) < 0)
		return 2;
	char *initdata = initdata_text(npos ? pos[0] : NULL, idfile, &bad);
	EVP_PKEY *key = bad ? NULL : tee_key(keyf);
	char *t = key ? attest(cl, key, initdata) : NULL;
	if (t) {
		printf("%s\n", t);
		rc = 0;
	}
	free(t);
	free(initdata);
	EVP_PKEY_free(key);
	return rc;
}

/* Prints the resource in standard base64 and a newline (`| base64 -d` gives the bytes). */
static int print_b64(const uint8_t *p, size_t n)
{
	char *s = b64_encode(p, n, B64_STD);
	if (s == NULL)
		return 1;
	printf("%s\n", s);
	free(s);
	return 0;
}

static int cmd_get_resource(struct client *cl, int argc, char **argv)
{
	const char *path = NULL, *keyf = NULL, *tokf = NULL, *idfile = NULL, *bearer = NULL;
	const char *pos[1];
	int npos, bad, rc = 1;
	char *out = NULL, *initdata = NULL, *token = NULL;
	EVP_PKEY *key = NULL;
	json_t *jwe = NULL;
	const struct opt opts[] = {
	    {"path", &path},        {"tee-key-file", &keyf},   {"attestation-token", &tokf},
	    {"init-data", &idfile}, {"bearer-token", &bearer}, {NULL}};
	if (parse_args("get-resource", argc, argv, opts, pos, 1, &npos) < 0)
		return 2;
	if (path == NULL) {
		fprintf(stderr, "kbs-client get-resource: --path is required\n");
		return 2;
	}
	if ((tokf || bearer) && keyf == NULL) {
		fprintf(stderr,
		        "kbs-client get-resource: with --attestation-token, --tee-key-file "
		        "is required too: the token's tee-pubkey must be its public half\n");
		return 2;
	}
	if (tokf && (token = read_trimmed(tokf)) == NULL)
		return 1;
	if (bearer && token == NULL)
		token = strdup(bearer);
	initdata = initdata_text(npos ? pos[0] : NULL, idfile, &bad);
	if (bad || (key = tee_key(keyf)) == NULL)
		goto done;

	char rpath[2048];
	snprintf(rpath, sizeof(rpath), "/kbs/v0/resource/%s", path);
	long code = 0;
	/* Passport: the token goes as Bearer, no handshake. Background check: RCAR first, and
	 * again on a 401 as the guest client does (the session may have expired). */
	for (int attempt = 0; attempt < 3; attempt++) {
		if (token == NULL) {
			char *t = attest(cl, key, initdata);
			if (t == NULL)
				goto done;
			free(t);
		}
		free(out);
		code = http(cl, "GET", rpath, NULL, NULL, 0, token, &out);
		if (code != 401 || token != NULL)
			break;
	}
	if (code != 200) {
		rc = fail_with(code, "get-resource", out);
		goto done;
	}
	struct err err = {0};
	uint8_t *plain;
	size_t len;
	jwe = json_loads(out, 0, NULL);
	if (jwe == NULL || jwe_decrypt(jwe, key, &plain, &len, &err) < 0) {
		fprintf(stderr, "kbs-client: cannot decrypt the resource: %s\n", err.msg);
		goto done;
	}
	rc = print_b64(plain, len);
	OPENSSL_cleanse(plain, len);
	free(plain);
done:
	free(out);
	free(initdata);
	free(token);
	json_decref(jwe);
	EVP_PKEY_free(key);
	return rc;
}

/* ------------------------------------------------------------------ admin */

/* Options of `config` before its subcommand. */
struct admin_opts {
	const char *token_file, *key_file, *issuer, *role, *audience;
};

/* A short-lived admin JWT signed with KEY (our extension; Trustee mints it elsewhere). */
static char *mint_token(const struct admin_opts *ao)
{
	struct err err = {0};
	char *jwt = NULL;
	EVP_PKEY *k = pem_read_private_key(ao->key_file, &err);
	if (k == NULL) {
		fprintf(stderr, "kbs-client config: %s\n", err.msg);
		return NULL;
	}
	time_t now = time(NULL);
	const char *alg = jwk_default_alg(k);
	json_t *h = json_pack("{s:s,s:s}", "alg", alg, "typ", "JWT");
	json_t *p = json_pack("{s:s,s:s}", "iss", ao->issuer, "role", ao->role);
	if (ao->audience[0])
		json_object_set_new(p, "aud", json_pack("[s]", ao->audience));
	json_object_set_new(p, "iat", json_integer(now));
	json_object_set_new(p, "exp", json_integer(now + 600));
	jwt = jws_sign(h, p, k, alg, &err);
	if (jwt == NULL)
		fprintf(stderr, "kbs-client config: cannot sign the admin token: %s\n", err.msg);
	json_decref(h);
	json_decref(p);
	EVP_PKEY_free(k);
	return jwt;
}

/* The admin token, as Trustee's client finds it; *anon is set when there is none. */
static char *admin_token(const struct admin_opts *ao, int *anon)
{
	*anon = 0;
	if (ao->key_file)
		return mint_token(ao);
	if (ao->token_file)
		return read_trimmed(ao->token_file);
	if (access(COMPOSE_ADMIN_TOKEN, R_OK) == 0)
		return read_trimmed(COMPOSE_ADMIN_TOKEN);
	const char *home = getenv("HOME");
	char p[4096];
	if (home && snprintf(p, sizeof(p), "%s/.trustee/admin-token", home) < (int)sizeof(p) &&
	    access(p, F_OK) == 0)
		return read_trimmed(p);
	fprintf(stderr, "kbs-client: no admin token configured: sending an anonymous admin "
	                "request (only a KBS in InsecureAllowAll mode accepts it)\n");
	*anon = 1;
	return NULL;
}

/* The resource policies `set-resource-policy` can install by name. */
static const char POLICY_ALLOW_ALL[] = "package policy\n"
                                       "import rego.v1\n\n"
                                       "# Release every resource of the resource plugin.\n"
                                       "default allow := false\n\n"
                                       "allow if data.plugin == \"resource\"\n";
static const char POLICY_DENY_ALL[] = "package policy\n"
                                      "import rego.v1\n\n"
                                      "# Release nothing.\n"
                                      "default allow := false\n";
static const char POLICY_AFFIRMING[] =
    "package policy\n"
    "import rego.v1\n\n"
    "# Release only to a token with at least one submodule, every one of them affirming.\n"
    "default allow := false\n\n"
    "allow if {\n"
    "\tcount(input.submods) > 0\n"
    "\tnot some_submod_not_affirming\n"
    "}\n\n"
    "some_submod_not_affirming if {\n"
    "\tsome s in input.submods\n"
    "\ts[\"ear.status\"] != \"affirming\"\n"
    "}\n";

/* What one admin subcommand sends; `ok` is printed on success, then `echo` in base64. */
struct admin_req {
	const char *method, *ctype, *ok;
	char path[2048];
	char *body;
	size_t blen;
	const uint8_t *echo;
	size_t echo_len;
	bool print_body;
};

static int post_json(struct admin_req *q, const char *path, json_t *doc)
{
	snprintf(q->path, sizeof(q->path), "%s", path);
	q->method = "POST";
	q->ctype = "application/json";
	q->body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	q->blen = q->body ? strlen(q->body) : 0;
	json_decref(doc);
	return q->body ? 0 : 1;
}

static int sub_set_attestation_policy(int argc, char **argv, struct admin_req *q, char **keep,
                                      size_t *klen)
{
	const char *type = "rego", *id = NULL, *file = NULL, *pos[1];
	int npos;
	const struct opt opts[] = {{"type", &type}, {"id", &id}, {"policy-file", &file}, {NULL}};
	if (parse_args("set-attestation-policy", argc, argv, opts, pos, 0, &npos) < 0)
		return 2;
	if (file == NULL) {
		fprintf(stderr, "kbs-client set-attestation-policy: --policy-file is required\n");
		return 2;
	}
	if ((*keep = read_file(file, klen)) == NULL)
		return 1;
	if (id == NULL) {
		fprintf(stderr, "kbs-client: no --id given: setting policy default_cpu\n");
		id = "default_cpu";
	}
	char *b = b64_encode((uint8_t *)*keep, *klen, B64_URL);
	json_t *doc =
	    b ? json_pack("{s:s,s:s,s:s}", "type", type, "policy_id", id, "policy", b) : NULL;
	free(b);
	q->ok = "Set attestation policy success \n policy: ";
	q->echo = (uint8_t *)*keep;
	q->echo_len = *klen;
	return post_json(q, "/kbs/v0/attestation-policy", doc);
}

static int sub_set_resource_policy(int argc, char **argv, struct admin_req *q, char **keep,
                                   size_t *klen)
{
	const char *file = NULL, *pos[1];
	bool all = false, none = false, aff = false, def = false;
	int npos;
	const struct opt opts[] = {{"policy-file", &file},    {"allow-all", NULL, &all},
	                           {"deny-all", NULL, &none}, {"affirming", NULL, &aff},
	                           {"default", NULL, &def},   {NULL}};
	if (parse_args("set-resource-policy", argc, argv, opts, pos, 0, &npos) < 0)
		return 2;
	if ((file != NULL) + all + none + aff + def != 1) {
		fprintf(stderr,
		        "kbs-client set-resource-policy: give exactly one of --policy-file, "
		        "--allow-all, --deny-all, --affirming, --default\n");
		return 2;
	}
	/* --default installs the deny-all policy, as Trustee's client does. */
	const char *text = all ? POLICY_ALLOW_ALL : aff ? POLICY_AFFIRMING : POLICY_DENY_ALL;
	if (file) {
		if ((*keep = read_file(file, klen)) == NULL)
			return 1;
	} else {
		*keep = strdup(text);
		*klen = strlen(text);
	}
	char *b = b64_encode((uint8_t *)*keep, *klen, B64_URL);
	json_t *doc = b ? json_pack("{s:s}", "policy", b) : NULL;
	free(b);
	q->ok = "Set resource policy success \n policy: ";
	q->echo = (uint8_t *)*keep;
	q->echo_len = *klen;
	return post_json(q, "/kbs/v0/resource-policy", doc);
}

static int sub_set_resource(int argc, char **argv, struct admin_req *q, char **keep, size_t *klen)
{
	const char *path = NULL, *file = NULL, *pos[1];
	int npos;
	const struct opt opts[] = {{"path", &path}, {"resource-file", &file}, {NULL}};
	if (parse_args("set-resource", argc, argv, opts, pos, 0, &npos) < 0)
		return 2;
	if (path == NULL || file == NULL) {
		fprintf(stderr,
		        "kbs-client set-resource: --path and --resource-file are required\n");
		return 2;
	}
	if ((*keep = read_file(file, klen)) == NULL)
		return 1;
	snprintf(q->path, sizeof(q->path), "/kbs/v0/resource/%s", path);
	q->method = "POST";
	q->ctype = "application/octet-stream";
	q->body = malloc(*klen + 1);
	if (q->body == NULL)
		return 1;
	memcpy(q->body, *keep, *klen);
	q->blen = *klen;
	q->ok = "Set resource success \n resource: ";
	q->echo = (uint8_t *)*keep;
	q->echo_len = *klen;
	return 0;
}

static int sub_delete_resource(int argc, char **argv, struct admin_req *q, char **keep,
                               size_t *klen)
{
	const char *path = NULL, *pos[1];
	int npos;
	const struct opt opts[] = {{"path", &path}, {NULL}};
	if (parse_args("delete-resource", argc, argv, opts, pos, 0, &npos) < 0)
		return 2;
	if (path == NULL) {
		fprintf(stderr, "kbs-client delete-resource: --path is required\n");
		return 2;
	}
	snprintf(q->path, sizeof(q->path), "/kbs/v0/resource/%s", path);
	q->method = "DELETE";
	q->ok = "Delete resource success";
	return 0;
}

static int sub_get_reference_value(int argc, char **argv, struct admin_req *q, char **keep,
                                   size_t *klen)
{
	const char *id = NULL, *pos[1];
	int npos;
	const struct opt opts[] = {{"id", &id}, {NULL}};
	if (parse_args("get-reference-value", argc, argv, opts, pos, 0, &npos) < 0)
		return 2;
	if (id == NULL) {
		fprintf(stderr, "kbs-client get-reference-value: --id is required\n");
		return 2;
	}
	snprintf(q->path, sizeof(q->path), "/kbs/v0/reference-value/%s", id);
	q->method = "GET";
	q->ctype = "application/json";
	q->print_body = true;
	return 0;
}

/* One value as --as-integer (a 32-bit integer), --as-bool (true|false) or a string. */
static json_t *rv_value(const char *s, bool as_int, bool as_bool)
{
	if (as_int) {
		char *end;
		errno = 0;
		long v = strtol(s, &end, 10);
		if (*s == 0 || *end != 0 || errno || v < INT_MIN || v > INT_MAX) {
			fprintf(stderr, "kbs-client: '%s' is not a 32-bit integer\n", s);
			return NULL;
		}
		return json_integer(v);
	}
	if (as_bool) {
		if (strcmp(s, "true") && strcmp(s, "false")) {
			fprintf(stderr, "kbs-client: '%s' is neither true nor false\n", s);
			return NULL;
		}
		return json_boolean(strcmp(s, "true") == 0);
	}
	return json_string(s);
}

static int sub_set_sample_rv(int argc, char **argv, struct admin_req *q, char **keep, size_t *klen)
{
	const char *pos[64];
	bool as_int = false, as_bool = false, single = false;
	int npos;
	const struct opt opts[] = {{"as-integer", NULL, &as_int},
	                           {"as-bool", NULL, &as_bool},
	                           {"as-single-value", NULL, &single},
	                           {NULL}};
	if (parse_args("set-sample-reference-value", argc, argv, opts, pos, 64, &npos) < 0)
		return 2;
	if (npos < 2 || (as_int && as_bool) || (single && npos > 2)) {
		fprintf(stderr, "kbs-client set-sample-reference-value: NAME VALUE [--as-integer | "
		                "--as-bool] [--as-single-value] (several VALUEs make a list)\n");
		return 2;
	}
	json_t *vals = json_array();
	for (int i = 1; i < npos; i++) {
		json_t *v = rv_value(pos[i], as_int, as_bool);
		if (v == NULL) {
			json_decref(vals);
			return 2;
		}
		json_array_append_new(vals, v);
	}
	json_t *rv = single ? json_incref(json_array_get(vals, 0)) : json_incref(vals);
	json_decref(vals);
	json_t *pl = json_object();
	json_object_set_new(pl, pos[0], rv);
	char *pls = json_dumps(pl, JSON_COMPACT);
	char *plb = pls ? b64_encode((uint8_t *)pls, strlen(pls), B64_STD) : NULL;
	json_t *m =
	    plb ? json_pack("{s:s,s:s,s:s}", "version", "0.1.0", "type", "sample", "payload", plb)
	        : NULL;
	json_decref(pl);
	free(pls);
	free(plb);
	q->ok = "Reference Values Updated";
	return post_json(q, "/kbs/v0/reference-value", m);
}

/* {"version", "type", "payload": std base64 of the file's bytes}: the extractor of TYPE gets
 * the file as it is (a CoRIM's CBOR, a RIM's XML, a DSSE envelope or Sigstore bundle). */
static int sub_set_rv(int argc, char **argv, struct admin_req *q, char **keep, size_t *klen)
{
	const char *type = NULL, *file = NULL, *version = "0.1.0", *pos[1];
	int npos;
	const struct opt opts[] = {
	    {"type", &type}, {"payload-file", &file}, {"version", &version}, {NULL}};
	if (parse_args("set-reference-value", argc, argv, opts, pos, 0, &npos) < 0)
		return 2;
	if (type == NULL || file == NULL || *type == '\0') {
		fprintf(stderr, "kbs-client set-reference-value: --type TYPE (corim, swid, "
		                "in-toto, sample) and --payload-file FILE are required\n");
		return 2;
	}
	if ((*keep = read_file(file, klen)) == NULL)
		return 1;
	char *b = b64_encode((uint8_t *)*keep, *klen, B64_STD);
	json_t *m =
	    b ? json_pack("{s:s,s:s,s:s}", "version", version, "type", type, "payload", b) : NULL;
	free(b);
	q->ok = "Reference Values Updated";
	return post_json(q, "/kbs/v0/reference-value", m);
}

typedef int (*admin_fn)(int argc, char **argv, struct admin_req *q, char **keep, size_t *klen);

static const struct {
	const char *name;
	admin_fn fn;
} admin_cmds[] = {
    {"set-attestation-policy", sub_set_attestation_policy},
    {"set-resource-policy", sub_set_resource_policy},
    {"set-resource", sub_set_resource},
    {"delete-resource", sub_delete_resource},
    {"get-reference-value", sub_get_reference_value},
    {"set-sample-reference-value", sub_set_sample_rv},
    {"set-reference-value", sub_set_rv},
};

/* Rust's `{:?}` of a string, which is how Trustee's client prints a reference value. */
static void print_debug_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch == '\n')
			fputs("\\n", stdout);
		else if (ch == '\r')
			fputs("\\r", stdout);
		else if (ch == '\t')
			fputs("\\t", stdout);
		else if (ch == 0x7f || ch < 0x20)
			printf("\\u{%x}", ch);
		else
			putchar(ch);
	}
	printf("\"\n");
}

static int cmd_config(struct client *cl, int argc, char **argv)
{
	struct admin_opts ao = {.issuer = "issuer", .role = "admin", .audience = "kbs"};
	const struct opt opts[] = {{"admin-token-file", &ao.token_file},
	                           {"auth-private-key", &ao.key_file},
	                           {"issuer", &ao.issuer},
	                           {"role", &ao.role},
	                           {"audience", &ao.audience},
	                           {NULL}};
	int i = 0, npos, anon, rc;
	const char *pos[1];
	/* the options of `config` stop at its subcommand */
	while (i < argc && strncmp(argv[i], "--", 2) == 0)
		i += strchr(argv[i], '=') ? 1 : 2;
	if (i > argc)
		i = argc;
	if (parse_args("config", i, argv, opts, pos, 0, &npos) < 0)
		return 2;
	if (i >= argc) {
		fprintf(stderr,
		        "kbs-client config: a subcommand is required: set-attestation-policy, "
		        "set-resource-policy, set-resource, delete-resource, "
		        "get-reference-value, set-sample-reference-value, set-reference-value\n");
		return 2;
	}
	size_t k = 0, n = sizeof(admin_cmds) / sizeof(admin_cmds[0]);
	while (k < n && strcmp(admin_cmds[k].name, argv[i]) != 0)
		k++;
	if (k == n) {
		fprintf(stderr, "kbs-client config: unknown subcommand %s\n", argv[i]);
		return 2;
	}
	struct admin_req q = {0};
	char *keep = NULL, *jwt = NULL, *out = NULL;
	size_t klen = 0;
	rc = admin_cmds[k].fn(argc - i - 1, argv + i + 1, &q, &keep, &klen);
	if (rc != 0)
		goto done;
	jwt = admin_token(&ao, &anon);
	if (jwt == NULL && !anon) {
		rc = 1;
		goto done;
	}
	long code = http(cl, q.method, q.path, q.ctype, q.body, q.blen, jwt, &out);
	if (code != 200) {
		rc = fail_with(code, admin_cmds[k].name, out);
		goto done;
	}
	if (q.print_body)
		print_debug_string(out);
	else if (q.echo) {
		printf("%s", q.ok);
		rc = print_b64(q.echo, q.echo_len);
	} else
		printf("%s\n", q.ok);
done:
	free(out);
	free(q.body);
	free(jwt);
	if (keep)
		OPENSSL_cleanse(keep, klen); /* a resource file holds a secret */
	free(keep);
	return rc;
}

/* ------------------------------------------------------------------ TLS trust */

/* --cert-file adds roots to the ones trusted already, as Trustee's client does (reqwest's
 * add_root_certificate), instead of replacing them: the certificates are read once here and
 * put into each TLS context libcurl makes. The default roots are libcurl's, or the bundle
 * SSL_CERT_FILE names (the OpenSSL convention the kbs itself follows). */
static STACK_OF(X509) * extra_roots;

static int load_roots(const char *path)
{
	BIO *b = BIO_new_file(path, "r");
	X509 *x;
	if (b == NULL || (extra_roots = sk_X509_new_null()) == NULL) {
		fprintf(stderr, "kbs-client: Failed to read: %s\n", path);
		BIO_free(b);
		return -1;
	}
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
		if (!sk_X509_push(extra_roots, x))
			X509_free(x);
	ERR_clear_error();
	BIO_free(b);
	if (sk_X509_num(extra_roots) == 0) {
		fprintf(stderr, "kbs-client: %s holds no PEM certificate\n", path);
		return -1;
	}
	return 0;
}

static CURLcode add_roots(CURL *c, void *sslctx, void *user)
{
	X509_STORE *st = SSL_CTX_get_cert_store((SSL_CTX *)sslctx);
	for (int i = 0; i < sk_X509_num(extra_roots); i++)
		X509_STORE_add_cert(st, sk_X509_value(extra_roots, i)); /* a duplicate is fine */
	ERR_clear_error();
	return CURLE_OK;
}

/* 0, or -1 after saying why (an unreadable --cert-file stops the client, as Trustee's). */
static int setup_trust(struct client *cl)
{
	const char *bundle = getenv("SSL_CERT_FILE");
	if (bundle && *bundle)
		curl_easy_setopt(cl->c, CURLOPT_CAINFO, bundle);
	if (cl->ca == NULL)
		return 0;
	if (load_roots(cl->ca) < 0)
		return -1;
	if (curl_easy_setopt(cl->c, CURLOPT_SSL_CTX_FUNCTION, add_roots) != CURLE_OK)
		curl_easy_setopt(cl->c, CURLOPT_CAINFO, cl->ca); /* a TLS backend without it */
	return 0;
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *f)
{
	fprintf(
	    f, "A command line client tool for KBS APIs.\n\n"
	       "Usage: kbs-client [--url URL] [--cert-file CA.pem] COMMAND\n\n"
	       "Commands:\n"
	       "  attest [--tee-key-file PEM] [INIT_DATA]\n"
	       "  get-resource --path R/T/G [--tee-key-file PEM] [--attestation-token FILE] "
	       "[INIT_DATA]\n"
	       "  config [--admin-token-file FILE | --auth-private-key KEY [--issuer I] [--role R] "
	       "[--audience A]]\n"
	       "    set-attestation-policy [--type rego] [--id ID] --policy-file FILE\n"
	       "    set-resource-policy --policy-file FILE | --allow-all | --deny-all | "
	       "--affirming | --default\n"
	       "    set-resource --path R/T/G --resource-file FILE\n"
	       "    delete-resource --path R/T/G\n"
	       "    get-reference-value --id ID\n"
	       "    set-sample-reference-value NAME VALUE [--as-integer | --as-bool] "
	       "[--as-single-value]\n"
	       "    set-reference-value --type corim|swid|in-toto|sample --payload-file FILE "
	       "[--version V]\n\n"
	       "Options:\n"
	       "  --url URL        the KBS root URL (default " DEFAULT_URL ")\n"
	       "  --cert-file PEM  root certificates to trust for HTTPS, besides the default ones\n"
	       "                   (SSL_CERT_FILE names another default bundle)\n"
	       "  --init-data FILE (attest, get-resource) init-data read from a file\n"
	       "  -h, --help       this text\n"
	       "  -V, --version    the version\n");
}

int main(int argc, char **argv)
{
	struct client cl = {.url = DEFAULT_URL};
	int i = 1, rc = 2;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i], *eq = strchr(a, '=');
		size_t nl = eq ? (size_t)(eq - a) : strlen(a);
		const char **slot = NULL;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
			version_print("kbs-client");
			return 0;
		}
		if (nl == 5 && !strncmp(a, "--url", nl))
			slot = &cl.url;
		else if (nl == 11 && !strncmp(a, "--cert-file", nl))
			slot = &cl.ca;
		if (slot == NULL || (!eq && i + 1 >= argc)) {
			fprintf(stderr, "kbs-client: unknown option or missing value: %s\n", a);
			usage(stderr);
			return 2;
		}
		*slot = eq ? eq + 1 : argv[++i];
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	/* Trustee's client joins "<url>/kbs/v0/..." as given: drop a trailing slash once. */
	char url[2048];
	snprintf(url, sizeof(url), "%s", cl.url);
	size_t ul = strlen(url);
	if (ul > 0 && url[ul - 1] == '/')
		url[ul - 1] = 0;
	cl.url = url;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	cl.c = curl_easy_init();
	curl_easy_setopt(cl.c, CURLOPT_COOKIEFILE, ""); /* session cookie between calls */
	curl_easy_setopt(cl.c, CURLOPT_ERRORBUFFER, curl_err);
	char ua[128]; /* "kbs-client/<version>", as Trustee's client names itself */
	snprintf(ua, sizeof(ua), "kbs-client/%s", version_string());
	curl_easy_setopt(cl.c, CURLOPT_USERAGENT, ua);
	const char *cmd = argv[i];
	if (setup_trust(&cl) < 0)
		rc = 1;
	else if (!strcmp(cmd, "config"))
		rc = cmd_config(&cl, argc - i - 1, argv + i + 1);
	else if (!strcmp(cmd, "attest"))
		rc = cmd_attest(&cl, argc - i - 1, argv + i + 1);
	else if (!strcmp(cmd, "get-resource"))
		rc = cmd_get_resource(&cl, argc - i - 1, argv + i + 1);
	else
		fprintf(stderr, "kbs-client: unknown command %s\n", cmd);
	fflush(stdout);
	sk_X509_pop_free(extra_roots, X509_free);
	curl_easy_cleanup(cl.c);
	curl_global_cleanup();
	return rc;
}
