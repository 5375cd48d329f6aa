/*
 * snp_vek: the VEK (VCEK or VLEK) certificate of an SEV-SNP report and its chain to AMD's
 * roots (see snp_vek.h). The AMD extensions of a VEK carry the TCB it was issued for and,
 * for a VCEK, the chip's hwid; the chain is VEK -> ASK (ASVK for a VLEK) -> ARK, and the
 * built-in roots per generation are what it must end in. A VEK whose chain verified once is
 * remembered by digest, so the hot path skips the chain's three RSA-4096 verifications.
 */
#include <openssl/asn1.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "as/evidence/snp_vek.h"
#include "embed.h"

/* AMD's ASK, ARK and ASVK per generation, as published by AMD KDS (the PEM bundles in
 * as/evidence/roots/). */
EMBED_FILE(snp_milan_pem, "as/evidence/roots/amd_milan_ask_ark_asvk.pem");
EMBED_FILE(snp_genoa_pem, "as/evidence/roots/amd_genoa_ask_ark_asvk.pem");
EMBED_FILE(snp_turin_pem, "as/evidence/roots/amd_turin_ask_ark_asvk.pem");

struct amd_roots {
	X509 *ark, *ask, *asvk;
};
static struct amd_roots roots[4];
static pthread_once_t roots_once = PTHREAD_ONCE_INIT;

/* ---- certificates ---- */

static void load_bundle(const char *pem, struct amd_roots *r)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *c;

	while (bio != NULL && (c = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		char cn[128] = "";
		X509_NAME_get_text_by_NID(X509_get_subject_name(c), NID_commonName, cn, sizeof(cn));
		if (strncmp(cn, "ARK-", 4) == 0 && r->ark == NULL)
			r->ark = c;
		else if (strncmp(cn, "SEV-VLEK-", 9) == 0 && r->asvk == NULL)
			r->asvk = c;
		else if (strncmp(cn, "SEV-", 4) == 0 && r->ask == NULL)
			r->ask = c;
		else
			X509_free(c);
	}
	BIO_free(bio);
}

static void load_roots(void)
{
	load_bundle(snp_milan_pem, &roots[SNP_GEN_MILAN]);
	load_bundle(snp_genoa_pem, &roots[SNP_GEN_GENOA]);
	load_bundle(snp_turin_pem, &roots[SNP_GEN_TURIN]);
}

static const ASN1_OCTET_STRING *ext_data(X509 *cert, const char *oid)
{
	ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
	int idx = obj ? X509_get_ext_by_OBJ(cert, obj, -1) : -1;

	ASN1_OBJECT_free(obj);
	if (idx < 0)
		return NULL;
	return X509_EXTENSION_get_data(X509_get_ext(cert, idx));
}

/* SPL extensions hold a DER INTEGER. Returns -1 if absent or malformed. */
static int ext_spl(X509 *cert, const char *oid)
{
	const ASN1_OCTET_STRING *os = ext_data(cert, oid);
	const unsigned char *p;
	ASN1_INTEGER *ai;
	long v;

	if (os == NULL)
		return -1;
	p = ASN1_STRING_get0_data(os);
	ai = d2i_ASN1_INTEGER(NULL, &p, ASN1_STRING_length(os));
	if (ai == NULL)
		return -1;
	v = ASN1_INTEGER_get(ai);
	ASN1_INTEGER_free(ai);
	return v < 0 || v > 255 ? -1 : (int)v;
}

int snp_vek_load(const uint8_t *buf, size_t len, struct snp_vek *out, struct err *err)
{
	const unsigned char *p = buf;
	char cn[128] = "";

	memset(out, 0, sizeof(*out));
	if (len > 64 * 1024)
		return err_set(err, "VEK certificate is too large (%zu bytes)", len);
	out->cert = d2i_X509(NULL, &p, (long)len);
	if (out->cert == NULL || p != buf + len) {
		X509_free(out->cert);
		BIO *bio = BIO_new_mem_buf(buf, (int)len);
		out->cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
		BIO_free(bio);
	}
	if (out->cert == NULL)
		return err_set(err, "VEK is neither a DER nor a PEM X.509 certificate");
	X509_NAME_get_text_by_NID(X509_get_subject_name(out->cert), NID_commonName, cn, sizeof(cn));
	if (strcmp(cn, "SEV-VCEK") == 0)
		out->is_vlek = 0;
	else if (strcmp(cn, "SEV-VLEK") == 0)
		out->is_vlek = 1;
	else {
		snp_vek_free(out);
		return err_set(err, "certificate CN \"%s\" is neither SEV-VCEK nor SEV-VLEK", cn);
	}
	int bl = ext_spl(out->cert, "1.3.6.1.4.1.3704.1.3.1");
	int tee = ext_spl(out->cert, "1.3.6.1.4.1.3704.1.3.2");
	int snp = ext_spl(out->cert, "1.3.6.1.4.1.3704.1.3.3");
	int uc = ext_spl(out->cert, "1.3.6.1.4.1.3704.1.3.8");
	int fmc = ext_spl(out->cert, "1.3.6.1.4.1.3704.1.3.9");
	if (bl < 0 || tee < 0 || snp < 0 || uc < 0) {
		snp_vek_free(out);
		return err_set(err, "VEK certificate lacks a TCB SPL extension (bl/tee/snp/ucode)");
	}
	out->tcb.bootloader = (uint8_t)bl;
	out->tcb.tee = (uint8_t)tee;
	out->tcb.snp = (uint8_t)snp;
	out->tcb.microcode = (uint8_t)uc;
	if (fmc >= 0) {
		out->tcb.has_fmc = 1;
		out->tcb.fmc = (uint8_t)fmc;
	}
	const ASN1_OCTET_STRING *hw = ext_data(out->cert, "1.3.6.1.4.1.3704.1.4");
	if (hw != NULL) {
		const uint8_t *d = ASN1_STRING_get0_data(hw);
		size_t n = (size_t)ASN1_STRING_length(hw);
		/* the value is the raw hwID, or a DER OCTET STRING around it */
		if (n >= 2 && d[0] == 0x04 && d[1] < 0x80 && (size_t)d[1] + 2 == n) {
			d += 2;
			n -= 2;
		}
		if (n > sizeof(out->hwid)) {
			snp_vek_free(out);
			return err_set(err, "VEK hwID extension is %zu bytes (at most 64)", n);
		}
		memcpy(out->hwid, d, n);
		out->hwid_len = n;
		out->has_hwid = 1;
	}
	const ASN1_OCTET_STRING *pn = ext_data(out->cert, "1.3.6.1.4.1.3704.1.2");
	if (pn != NULL) {
		const uint8_t *d = ASN1_STRING_get0_data(pn);
		int n = ASN1_STRING_length(pn);
		char name[32] = "";
		if (n > 2 && d[0] == 0x16 && d[1] == n - 2 && n - 2 < (int)sizeof(name))
			memcpy(name, d + 2, (size_t)(n - 2));
		if (strncmp(name, "Milan", 5) == 0)
			out->gen = SNP_GEN_MILAN;
		else if (strncmp(name, "Genoa", 5) == 0)
			out->gen = SNP_GEN_GENOA;
		else if (strncmp(name, "Turin", 5) == 0)
			out->gen = SNP_GEN_TURIN;
	}
	return 0;
}

void snp_vek_free(struct snp_vek *v)
{
	if (v != NULL) {
		X509_free(v->cert);
		v->cert = NULL;
	}
}

static int check_validity(X509 *c, const char *what, time_t now, struct err *err)
{
	time_t t = now;
	if (now == 0)
		return 0;
	if (X509_cmp_time(X509_get0_notBefore(c), &t) > 0)
		return err_set(err, "%s is not valid yet at the verification time", what);
	if (X509_cmp_time(X509_get0_notAfter(c), &t) < 0)
		return err_set(err, "%s has expired at the verification time", what);
	return 0;
}

static int check_signed_by(X509 *child, X509 *issuer, const char *what, time_t now, struct err *err)
{
	EVP_PKEY *pk = X509_get0_pubkey(issuer);

	if (pk == NULL || X509_verify(child, pk) != 1)
		return err_set(err, "%s signature does not verify", what);
	return check_validity(child, what, now, err);
}

/*
 * VEKs whose chain to the built-in roots already verified, by SHA-256 of their DER: a chip's
 * VCEK is presented again and again, and its three RSA-4096 chain verifications cost more
 * than the report signature itself. Validity dates are still checked on every use.
 */
#define VERIFIED_MAX 512
static struct {
	pthread_mutex_t mu;
	uint8_t digest[VERIFIED_MAX][32];
	uint8_t gen[VERIFIED_MAX];
	size_t n, next;
} verified = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int vek_digest(const struct snp_vek *vek, uint8_t out[32])
{
	unsigned int len = 0;
	return X509_digest(vek->cert, EVP_sha256(), out, &len) == 1 && len == 32 ? 0 : -1;
}

static int vek_known(const uint8_t d[32], enum snp_gen gen)
{
	int hit = 0;
	pthread_mutex_lock(&verified.mu);
	for (size_t i = 0; i < verified.n && !hit; i++)
		hit = verified.gen[i] == gen && memcmp(verified.digest[i], d, 32) == 0;
	pthread_mutex_unlock(&verified.mu);
	return hit;
}

static void vek_remember(const uint8_t d[32], enum snp_gen gen)
{
	pthread_mutex_lock(&verified.mu);
	size_t slot = verified.n < VERIFIED_MAX ? verified.n++ : verified.next++ % VERIFIED_MAX;
	memcpy(verified.digest[slot], d, 32);
	verified.gen[slot] = (uint8_t)gen;
	pthread_mutex_unlock(&verified.mu);
}

static int verify_chain_uncached(const struct snp_vek *vek, enum snp_gen gen, X509 *ark_in,
                                 X509 *ask_in, time_t now, struct err *err);

int snp_vek_verify_chain(const struct snp_vek *vek, enum snp_gen gen, X509 *ark_in, X509 *ask_in,
                         time_t now, struct err *err)
{
	uint8_t d[32];
	int cacheable = ark_in == NULL && ask_in == NULL && vek_digest(vek, d) == 0;

	pthread_once(&roots_once, load_roots);
	if (cacheable && gen > SNP_GEN_UNKNOWN && gen <= SNP_GEN_TURIN && vek_known(d, gen)) {
		struct amd_roots *r = &roots[gen];
		const char *what = vek->is_vlek ? "VLEK" : "VCEK";
		if (check_validity(r->ark, "ARK", now, err) < 0 ||
		    check_validity(vek->is_vlek ? r->asvk : r->ask, vek->is_vlek ? "ASVK" : "ASK",
		                   now, err) < 0 ||
		    check_validity(vek->cert, what, now, err) < 0)
			return -1;
		return 0;
	}
	if (verify_chain_uncached(vek, gen, ark_in, ask_in, now, err) < 0)
		return -1;
	if (cacheable)
		vek_remember(d, gen);
	return 0;
}

static int verify_chain_uncached(const struct snp_vek *vek, enum snp_gen gen, X509 *ark_in,
                                 X509 *ask_in, time_t now, struct err *err)
{
	if (gen <= SNP_GEN_UNKNOWN || gen > SNP_GEN_TURIN)
		return err_set(err, "cannot pick AMD roots: unknown processor generation");
	struct amd_roots *r = &roots[gen];
	const char *g = snp_gen_name(gen);
	if (r->ark == NULL || r->ask == NULL || r->asvk == NULL)
		return err_set(err, "built-in AMD certificates for %s are missing", g);
	if (ark_in != NULL && X509_cmp(ark_in, r->ark) != 0)
		return err_set(err, "the ARK in the evidence is not AMD's ARK-%s", g);
	X509 *inter = vek->is_vlek ? r->asvk : r->ask;
	if (ask_in != NULL && !vek->is_vlek) {
		if (check_signed_by(ask_in, r->ark, "ASK from the evidence", now, err) < 0)
			return -1;
		inter = ask_in;
	}
	if (check_signed_by(r->ark, r->ark, "ARK self-signature", now, err) < 0 ||
	    check_signed_by(inter, r->ark, vek->is_vlek ? "ASVK" : "ASK", now, err) < 0)
		return err_prefix(err, "AMD %s chain", g);
	if (check_signed_by(vek->cert, inter, vek->is_vlek ? "VLEK" : "VCEK", now, err) < 0)
		return err_prefix(err, "%s chain (ARK-%s -> %s)", vek->is_vlek ? "VLEK" : "VCEK", g,
		                  vek->is_vlek ? "ASVK" : "ASK");
	return 0;
}
