/*
 * ear: AR4SI appraisals and the EAR token that carries them (as-rvps.md §4). A device's
 * appraisal is the trust vector the policy set, the worst tier of its claims as the status,
 * the policy's extensions and the annotated evidence. Submods grow with the devices; none is
 * ever dropped, since a dropped contraindicated device would vanish from the token. They are
 * signed sorted by name, as Trustee's serializer emits a sorted map.
 *
 * The protected header ({"typ":"JWT","alg":"ES256","jwk":...}, the jwk carrying the x5c chain)
 * is the same on every token a signer makes, so its base64url text is kept rather than
 * serialised and encoded per token (3% of grpc-as). It is kept by the exact signer: the key, by
 * a reference held so its address names no other key, and the jwk by a deep copy compared
 * member by member with json_equal on each token, so a rotated key, a new chain or a jwk edited
 * in place each give a new header.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as/ear.h"
#include "jose/jose.h"

/* The AR4SI claims in the order the vector is serialized (§4.3). */
static const char *const claim_names[8] = {"instance-identity", "configuration", "executables",
                                           "file-system",       "hardware",      "runtime-opaque",
                                           "storage-opaque",    "sourced-data"};
static const char *const status_names[4] = {"none", "affirming", "warning", "contraindicated"};

/* §4.4: [-1,1] none, |v| < 32 affirming, |v| < 96 warning, else contraindicated. */
static int tier(int v)
{
	return (v >= -1 && v <= 1) ? 0 : (v > -32 && v < 32) ? 1 : (v > -96 && v < 96) ? 2 : 3;
}

/* vals[i]/set[i] from the trust claims; -1 with err set on a claim that is not AR4SI. */
static int read_trust_claims(const json_t *tc, int vals[8], int set[8], struct err *err)
{
	const char *k;
	json_t *v;

	if (tc == NULL) {
		for (int i = 0; i < 8; i++)
			set[i] = 1, vals[i] = 0;
		return 0;
	}
	if (!json_is_object(tc))
		return err_set(err, "Trust claims is not an object");
	json_object_foreach((json_t *)tc, k, v)
	{
		int idx = -1;
		for (int i = 0; i < 8; i++)
			if (strcmp(claim_names[i], k) == 0)
				idx = i;
		if (idx < 0 || !json_is_integer(v))
			return err_set(
			    err, "trust claim \"%s\" is not an AR4SI claim with an integer value",
			    k);
		set[idx] = 1;
		vals[idx] = (int)(signed char)json_integer_value(v); /* i8, wrapping (§4.4) */
	}
	return 0;
}

/* Set the policy's extensions on the appraisal by name. */
static int add_extensions(json_t *out, const json_t *ext, struct err *err)
{
	for (size_t i = 0; json_is_array(ext) && i < json_array_size(ext); i++) {
		json_t *e = json_array_get(ext, i);
		const char *name = json_string_value(json_object_get(e, "name"));
		if (name == NULL || json_object_get(e, "value") == NULL)
			return err_set(err, "policy extension %zu needs a name and a value", i);
		json_object_set(out, name, json_object_get(e, "value"));
	}
	return 0;
}

json_t *ear_appraisal(const char *policy_id, const json_t *trust_claims, const json_t *extensions,
                      const json_t *annotated_evidence, struct err *err)
{
	int vals[8], set[8] = {0}, worst = 0, nset = 0;

	if (read_trust_claims(trust_claims, vals, set, err) < 0)
		return NULL;
	json_t *vec = json_object();
	for (int i = 0; i < 8; i++) {
		if (!set[i])
			continue;
		nset++;
		worst = tier(vals[i]) > worst ? tier(vals[i]) : worst;
		json_object_set_new(vec, claim_names[i], json_integer(vals[i]));
	}
	if (nset == 0) {
		json_decref(vec);
		return err_set(err, "At least one policy claim must be set."), NULL;
	}
	json_t *out = json_object();
	json_object_set_new(out, "ear.status", json_string(status_names[worst]));
	json_object_set_new(out, "ear.trustworthiness-vector", vec);
	json_object_set_new(out, "ear.appraisal-policy-id", json_string(policy_id));
	json_object_set(out, "ear.veraison.annotated-evidence", (json_t *)annotated_evidence);
	if (add_extensions(out, extensions, err) < 0) {
		json_decref(out);
		return NULL;
	}
	return out;
}

int ear_submods_add(struct ear_submods *s, const char *tee_class, json_t *appraisal,
                    struct err *err)
{
	size_t n = 0;

	if (appraisal == NULL)
		return err_set(err, "no appraisal for a %s device", tee_class);
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 8;
		struct ear_submod *v = cap > s->cap ? realloc(s->v, cap * sizeof(*v)) : NULL;
		if (v == NULL) {
			json_decref(appraisal);
			return err_set(err, "out of memory holding %zu appraisals", s->n + 1);
		}
		s->v = v;
		s->cap = cap;
	}
	for (size_t i = 0; i < s->n; i++)
		n += strcmp(s->v[i].tee_class, tee_class) == 0;
	struct ear_submod *m = &s->v[s->n++];
	snprintf(m->tee_class, sizeof(m->tee_class), "%s", tee_class);
	snprintf(m->name, sizeof(m->name), "%s%zu", m->tee_class, n);
	m->appraisal = appraisal;
	return 0;
}

void ear_submods_free(struct ear_submods *s)
{
	for (size_t i = 0; i < s->n; i++)
		json_decref(s->v[i].appraisal);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static int by_name(const void *a, const void *b)
{
	return strcmp((*(const struct ear_submod *const *)a)->name,
	              (*(const struct ear_submod *const *)b)->name);
}

/* The submods object, keys in byte order (jansson keeps insertion order). */
static json_t *sorted_submods(const struct ear_submods *s)
{
	const struct ear_submod **order = malloc((s->n ? s->n : 1) * sizeof(*order));
	json_t *out = order ? json_object() : NULL;

	for (size_t i = 0; out != NULL && i < s->n; i++)
		order[i] = &s->v[i];
	if (out != NULL)
		qsort(order, s->n, sizeof(*order), by_name);
	for (size_t i = 0; out != NULL && i < s->n; i++)
		json_object_set(out, order[i]->name, order[i]->appraisal);
	free(order);
	return out;
}

/* One kept header; immutable once made, freed by whoever drops the last reference. */
struct ear_hdr {
	int refs;      /* guarded by hdr_lock */
	EVP_PKEY *key; /* owned reference */
	json_t *jwk;   /* owned deep copy of the signer's jwk when the text was made */
	char *b64;     /* owned: b64url of {"typ":"JWT","alg":"ES256","jwk":jwk} */
};
#define HDR_SLOTS 4
static struct ear_hdr *hdrs[HDR_SLOTS]; /* guarded by hdr_lock; each slot holds one ref */
static unsigned hdr_next;
static pthread_mutex_t hdr_lock = PTHREAD_MUTEX_INITIALIZER;

static void hdr_release(struct ear_hdr *h)
{
	pthread_mutex_lock(&hdr_lock);
	int last = h != NULL && --h->refs == 0;
	pthread_mutex_unlock(&hdr_lock);
	if (!last)
		return;
	EVP_PKEY_free(h->key);
	json_decref(h->jwk);
	free(h->b64);
	free(h);
}

static struct ear_hdr *hdr_make(const struct ear_signer *signer)
{
	struct ear_hdr *h = calloc(1, sizeof(*h));
	json_t *hdr = json_pack("{s:s,s:s,s:O}", "typ", "JWT", "alg", "ES256", "jwk", signer->jwk);

	if (h == NULL || hdr == NULL || (h->b64 = jws_header_b64(hdr)) == NULL ||
	    (h->jwk = json_deep_copy(signer->jwk)) == NULL || EVP_PKEY_up_ref(signer->key) != 1) {
		if (h != NULL) {
			json_decref(h->jwk);
			free(h->b64);
		}
		free(h);
		json_decref(hdr);
		return NULL;
	}
	json_decref(hdr);
	h->key = signer->key;
	h->refs = 2; /* the slot's and the caller's */
	return h;
}

/* The header segment for this signer, made now if no slot holds it (a new reference). */
static struct ear_hdr *hdr_get(const struct ear_signer *signer)
{
	struct ear_hdr *h = NULL, *old = NULL;

	pthread_mutex_lock(&hdr_lock);
	for (size_t i = 0; h == NULL && i < HDR_SLOTS; i++)
		if (hdrs[i] != NULL && hdrs[i]->key == signer->key &&
		    json_equal(hdrs[i]->jwk, signer->jwk))
			(h = hdrs[i])->refs++;
	pthread_mutex_unlock(&hdr_lock);
	if (h != NULL || (h = hdr_make(signer)) == NULL)
		return h;
	pthread_mutex_lock(&hdr_lock);
	old = hdrs[hdr_next % HDR_SLOTS];
	hdrs[hdr_next++ % HDR_SLOTS] = h;
	pthread_mutex_unlock(&hdr_lock);
	hdr_release(old);
	return h;
}

char *ear_sign(const struct ear_signer *signer, const struct ear_submods *s, time_t now,
               struct err *err)
{
	if (s->n == 0)
		return err_set(err, "an EAR token needs at least one appraisal"), NULL;
	json_t *submods = sorted_submods(s);
	if (submods == NULL)
		return err_set(err, "out of memory sorting %zu appraisals", s->n), NULL;
	json_t *claims =
	    json_pack("{s:s,s:I,s:{s:s,s:s},s:o,s:I,s:s}", "eat_profile", signer->profile, "iat",
	              (json_int_t)now, "ear.verifier-id", "developer", signer->developer, "build",
	              signer->build, "submods", submods, "exp",
	              (json_int_t)(now + signer->duration_min * 60), "iss", signer->issuer);
	struct ear_hdr *hdr = claims ? hdr_get(signer) : NULL;
	char *token = hdr ? jws_sign_b64_header(hdr->b64, claims, signer->key, "ES256", err) : NULL;
	if (token == NULL && (claims == NULL || hdr == NULL))
		err_set(err, "out of memory building the EAR token");
	hdr_release(hdr);
	json_decref(claims);
	return token;
}
