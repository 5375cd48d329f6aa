/*
 * admin: who may call the admin API (kbs-protocol.md §5). DenyAll, InsecureAllowAll, or
 * bearer JWTs checked against each configured identity provider in turn (signature, exp with
 * 60 s leeway, issuer, audience), then the mandatory `role` claim matched against the regex
 * ACL on the full request URI. Error texts are Trustee's, since operators' tests match them.
 * An ACL entry may also list allowed_methods (our extension): a role meant to read a path is
 * then refused a POST or DELETE to it; without the list every method passes, as in Trustee.
 */
#include <string.h>
#include <strings.h>
#include <time.h>

#include "jose/jose.h"
#include "kbs.h"
#include "log.h"

#define LEEWAY 60

/* The algorithm to verify with: the header may only choose within the key's family. */
static const char *alg_for_key(EVP_PKEY *key, const char *hdr_alg)
{
	const char *def = jwk_default_alg(key);
	if (!def || !hdr_alg)
		return def;
	if (EVP_PKEY_is_a(key, "RSA") &&
	    (!strncmp(hdr_alg, "RS", 2) || !strncmp(hdr_alg, "PS", 2)) &&
	    (strstr(hdr_alg, "256") || strstr(hdr_alg, "384") || strstr(hdr_alg, "512")) &&
	    strlen(hdr_alg) == 5)
		return hdr_alg;
	return def;
}

static int aud_ok(const json_t *claims, const char *aud)
{
	json_t *a = json_object_get(claims, "aud");
	if (json_is_string(a))
		return strcmp(json_string_value(a), aud) == 0;
	for (size_t i = 0; i < json_array_size(a); i++) {
		json_t *e = json_array_get(a, i);
		if (json_is_string(e) && strcmp(json_string_value(e), aud) == 0)
			return 1;
	}
	return 0;
}

/* Verifies with one provider; claims (new ref) on success. */
static json_t *try_idp(const struct kbs_idp *p, const char *token, const json_t *hdr)
{
	struct err e = {0};
	json_t *claims = NULL;
	const char *hdr_alg = json_string_value(json_object_get(hdr, "alg"));
	if (p->key) {
		const char *alg = alg_for_key(p->key, hdr_alg);
		if (alg && jws_verify(token, p->key, alg, NULL, &claims, &e) != 0)
			claims = NULL;
	}
	if (!claims && p->jwks) {
		const char *kid = json_string_value(json_object_get(hdr, "kid"));
		json_t *keys = json_object_get(p->jwks, "keys");
		for (size_t i = 0; i < json_array_size(keys); i++) {
			json_t *k = json_array_get(keys, i);
			const char *kk = json_string_value(json_object_get(k, "kid"));
			const char *alg = json_string_value(json_object_get(k, "alg"));
			if (!kid || !kk || strcmp(kid, kk) || !alg)
				continue;
			EVP_PKEY *key = jwk_to_pkey(k, &e);
			if (key && jws_verify(token, key, alg, NULL, &claims, &e) != 0)
				claims = NULL;
			EVP_PKEY_free(key);
			break;
		}
	}
	if (!claims)
		return NULL;
	json_t *exp = json_object_get(claims, "exp");
	if (!json_is_number(exp) || (double)time(NULL) > json_number_value(exp) + LEEWAY)
		goto no;
	if (p->issuer) {
		const char *iss = json_string_value(json_object_get(claims, "iss"));
		if (!iss || strcmp(iss, p->issuer))
			goto no;
	}
	if (p->audience && !aud_ok(claims, p->audience))
		goto no;
	return claims;
no:
	json_decref(claims);
	return NULL;
}

unsigned kbs_acl_method(const char *name)
{
	static const char *const names[] = {"GET", "POST", "PUT", "DELETE"};
	for (unsigned i = 0; name && i < 4; i++)
		if (strcasecmp(name, names[i]) == 0)
			return 1u << i;
	return 0;
}

int kbs_admin_check(const struct kbs_config *cfg, const char *authorization, const char *uri,
                    struct err *err)
{
	return kbs_admin_check_method(cfg, authorization, NULL, uri, err);
}

int kbs_admin_check_method(const struct kbs_config *cfg, const char *authorization,
                           const char *method, const char *uri, struct err *err)
{
	if (cfg->admin_mode == KBS_ADMIN_ALLOW_ALL)
		return 0;
	if (cfg->admin_mode == KBS_ADMIN_DENY_ALL)
		return err_set(err, "Admin access denied: Admin access denied as DenyAll "
		                    "authorization_mode is enabled");
	if (!authorization || strncmp(authorization, "Bearer ", 7) != 0)
		return err_set(err, "Failed to parse HTTP Auth Bearer header");
	const char *token = authorization + 7;
	while (*token == ' ')
		token++;
	json_t *hdr = NULL;
	struct err e = {0};
	if (jws_decode_unverified(token, &hdr, NULL, &e) != 0)
		return err_set(err, "Admin access denied: Cannot verify token with any of the "
		                    "issuers");
	json_t *claims = NULL;
	for (size_t i = 0; i < cfg->n_idps && !claims; i++)
		claims = try_idp(&cfg->idps[i], token, hdr);
	json_decref(hdr);
	if (!claims)
		return err_set(err, "Admin access denied: Cannot verify token with any of the "
		                    "issuers");
	const char *role = json_string_value(json_object_get(claims, "role"));
	if (!role) {
		json_decref(claims);
		return err_set(err, "Admin access denied: Missing required `role` claim in JWT");
	}
	unsigned want = method ? kbs_acl_method(method) : 0;
	int path_only = 0; /* some entry matched the path but not the method */
	for (size_t i = 0; i < cfg->n_acls; i++) {
		const struct kbs_acl *a = &cfg->acls[i];
		if (strcmp(a->role, role) != 0 || regexec(&a->re, uri, 0, NULL, 0) != 0)
			continue;
		if (a->methods == 0 || (method && (a->methods & want))) {
			json_decref(claims);
			return 0;
		}
		path_only = 1;
	}
	if (path_only)
		err_set(err,
		        "Admin access denied: Role %.128s not allowed for path %.512s with method "
		        "%.16s (allowed_methods)",
		        role, uri, method ? method : "?");
	else
		err_set(err, "Admin access denied: Role %.128s not allowed for path %.512s", role,
		        uri);
	json_decref(claims);
	return -1;
}
