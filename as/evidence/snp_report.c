/*
 * snp_report: SEV-SNP report parsing and the report's signature by its VEK (see
 * snp_report.h; the VEK and its AMD chain are in snp_vek.c).
 *
 * Offsets are those of the ATTESTATION_REPORT structure in AMD's SEV-SNP firmware ABI.
 * TCB_VERSION packs its fields differently on Turin (fmc, bl, tee, snp, -, -, -, ucode)
 * than on Milan/Genoa (bl, tee, -, -, -, -, snp, ucode), so decoding needs the generation.
 */
#include <openssl/asn1.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "as/evidence/snp_report.h"

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

const char *snp_gen_name(enum snp_gen g)
{
	switch (g) {
	case SNP_GEN_MILAN:
		return "Milan";
	case SNP_GEN_GENOA:
		return "Genoa";
	case SNP_GEN_TURIN:
		return "Turin";
	default:
		return "unknown";
	}
}

enum snp_gen snp_gen_from_cpuid(uint8_t fam, uint8_t mod)
{
	if (fam == 0x19 && mod <= 0x0F)
		return SNP_GEN_MILAN;
	if (fam == 0x19 && ((mod >= 0x10 && mod <= 0x1F) || (mod >= 0xA0 && mod <= 0xAE)))
		return SNP_GEN_GENOA;
	if (fam == 0x1A && mod <= 0x11)
		return SNP_GEN_TURIN;
	return SNP_GEN_UNKNOWN;
}

static void tcb_decode(const uint8_t *p, enum snp_gen gen, struct snp_tcb *t)
{
	memset(t, 0, sizeof(*t));
	if (gen == SNP_GEN_TURIN) {
		t->has_fmc = 1;
		t->fmc = p[0];
		t->bootloader = p[1];
		t->tee = p[2];
		t->snp = p[3];
	} else {
		t->bootloader = p[0];
		t->tee = p[1];
		t->snp = p[6];
	}
	t->microcode = p[7];
}

static void tcb_encode(uint8_t *p, enum snp_gen gen, const struct snp_tcb *t)
{
	memset(p, 0, 8);
	if (gen == SNP_GEN_TURIN) {
		p[0] = t->fmc;
		p[1] = t->bootloader;
		p[2] = t->tee;
		p[3] = t->snp;
	} else {
		p[0] = t->bootloader;
		p[1] = t->tee;
		p[6] = t->snp;
	}
	p[7] = t->microcode;
}

static void decode_tcbs(struct snp_report *r)
{
	tcb_decode(r->raw + 0x38, r->gen, &r->current_tcb);
	tcb_decode(r->raw + 0x180, r->gen, &r->reported_tcb);
	tcb_decode(r->raw + 0x1E0, r->gen, &r->committed_tcb);
	tcb_decode(r->raw + 0x1F0, r->gen, &r->launch_tcb);
}

void snp_report_set_gen(struct snp_report *r, enum snp_gen gen)
{
	r->gen = gen;
	decode_tcbs(r);
}

int snp_report_parse(const uint8_t *buf, size_t len, enum snp_gen hint, struct snp_report *out,
                     struct err *err)
{
	memset(out, 0, sizeof(*out));
	if (len != SNP_REPORT_SIZE)
		return err_set(err, "SNP report is %zu bytes, expected %d", len, SNP_REPORT_SIZE);
	memcpy(out->raw, buf, SNP_REPORT_SIZE);
	const uint8_t *p = out->raw;
	out->version = le32(p);
	if (out->version < 2 || out->version > 5)
		return err_set(err, "unsupported SNP report version %u (expected 2 to 5)",
		               out->version);
	out->guest_svn = le32(p + 0x04);
	out->policy = le64(p + 0x08);
	out->vmpl = le32(p + 0x30);
	out->sig_algo = le32(p + 0x34);
	out->plat_info = le64(p + 0x40);
	out->key_info = le32(p + 0x48);
	out->report_data = p + 0x50;
	out->measurement = p + 0x90;
	out->host_data = p + 0xC0;
	out->chip_id = p + 0x1A0;
	out->gen = hint;
	if (out->version >= 3) {
		out->cpuid_fam = p[0x188];
		out->cpuid_mod = p[0x189];
		out->cpuid_step = p[0x18A];
		out->gen = snp_gen_from_cpuid(out->cpuid_fam, out->cpuid_mod);
		if (out->gen == SNP_GEN_UNKNOWN)
			return err_set(err,
			               "SNP report names an unknown processor (CPUID family 0x%02x "
			               "model 0x%02x)",
			               out->cpuid_fam, out->cpuid_mod);
	}
	if (out->sig_algo != 1)
		return err_set(err, "SNP report signature algorithm %u is not ECDSA P-384 (1)",
		               out->sig_algo);
	decode_tcbs(out);
	return 0;
}

static int json_u64(const json_t *j, const char *k, uint64_t *v, struct err *err)
{
	json_t *x = json_object_get(j, k);
	if (!json_is_integer(x) || json_integer_value(x) < 0)
		return err_set(err, "SNP report JSON: `%s` must be a non-negative integer", k);
	*v = (uint64_t)json_integer_value(x);
	return 0;
}

static int json_bytes(const json_t *j, const char *k, uint8_t *dst, size_t n, struct err *err)
{
	json_t *a = json_object_get(j, k);
	size_t i;
	json_t *e;

	if (!json_is_array(a) || json_array_size(a) != n)
		return err_set(err, "SNP report JSON: `%s` must be an array of %zu bytes", k, n);
	json_array_foreach(a, i, e)
	{
		if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > 255)
			return err_set(err, "SNP report JSON: `%s`[%zu] is not a byte", k, i);
		dst[i] = (uint8_t)json_integer_value(e);
	}
	return 0;
}

static int json_tcb(const json_t *j, const char *k, struct snp_tcb *t, struct err *err)
{
	json_t *o = json_object_get(j, k);
	const char *names[] = {"bootloader", "tee", "snp", "microcode"};
	uint8_t *dst[] = {&t->bootloader, &t->tee, &t->snp, &t->microcode};
	uint64_t v;

	memset(t, 0, sizeof(*t));
	if (!json_is_object(o))
		return err_set(err, "SNP report JSON: `%s` must be a TCB object", k);
	for (int i = 0; i < 4; i++) {
		if (json_u64(o, names[i], &v, err) < 0 || v > 255)
			return err_set(err, "SNP report JSON: `%s.%s` must be a byte", k, names[i]);
		*dst[i] = (uint8_t)v;
	}
	json_t *fmc = json_object_get(o, "fmc");
	if (json_is_integer(fmc)) {
		if (json_integer_value(fmc) < 0 || json_integer_value(fmc) > 255)
			return err_set(err, "SNP report JSON: `%s.fmc` must be a byte", k);
		t->has_fmc = 1;
		t->fmc = (uint8_t)json_integer_value(fmc);
	} else if (fmc != NULL && !json_is_null(fmc)) {
		return err_set(err, "SNP report JSON: `%s.fmc` must be a byte or null", k);
	}
	return 0;
}

static int json_version(const json_t *j, const char *k, uint8_t *dst, struct err *err)
{
	json_t *o = json_object_get(j, k);
	uint64_t b, mi, ma;

	if (o == NULL) {
		memset(dst, 0, 3);
		return 0;
	}
	if (!json_is_object(o) || json_u64(o, "build", &b, err) < 0 ||
	    json_u64(o, "minor", &mi, err) < 0 || json_u64(o, "major", &ma, err) < 0 || b > 255 ||
	    mi > 255 || ma > 255)
		return err_set(err, "SNP report JSON: `%s` must be {major, minor, build} bytes", k);
	dst[0] = (uint8_t)b;
	dst[1] = (uint8_t)mi;
	dst[2] = (uint8_t)ma;
	return 0;
}

int snp_report_from_json(const json_t *j, struct snp_report *out, struct err *err)
{
	uint8_t raw[SNP_REPORT_SIZE];
	uint64_t v;
	struct snp_tcb tcb[4];
	const char *tcb_keys[] = {"current_tcb", "reported_tcb", "committed_tcb", "launch_tcb"};
	const size_t tcb_off[] = {0x38, 0x180, 0x1E0, 0x1F0};
	enum snp_gen gen = SNP_GEN_UNKNOWN;

	if (!json_is_object(j))
		return err_set(err, "SNP attestation_report must be a JSON object");
	memset(raw, 0, sizeof(raw));
	struct {
		const char *k;
		size_t off, width;
	} ints[] = {{"version", 0x00, 4}, {"guest_svn", 0x04, 4}, {"policy", 0x08, 8},
	            {"vmpl", 0x30, 4},    {"sig_algo", 0x34, 4},  {"plat_info", 0x40, 8},
	            {"key_info", 0x48, 4}};
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		if (json_u64(j, ints[i].k, &v, err) < 0)
			return -1;
		if (ints[i].width == 4) {
			if (v > UINT32_MAX)
				return err_set(err, "SNP report JSON: `%s` out of range",
				               ints[i].k);
			put_le32(raw + ints[i].off, (uint32_t)v);
		} else {
			put_le64(raw + ints[i].off, v);
		}
	}
	struct {
		const char *k;
		size_t off, n;
	} arrays[] = {{"family_id", 0x10, 16},          {"image_id", 0x20, 16},
	              {"report_data", 0x50, 64},        {"measurement", 0x90, 48},
	              {"host_data", 0xC0, 32},          {"id_key_digest", 0xE0, 48},
	              {"author_key_digest", 0x110, 48}, {"report_id", 0x140, 32},
	              {"report_id_ma", 0x160, 32},      {"chip_id", 0x1A0, 64}};
	for (size_t i = 0; i < sizeof(arrays) / sizeof(arrays[0]); i++)
		if (json_bytes(j, arrays[i].k, raw + arrays[i].off, arrays[i].n, err) < 0)
			return -1;
	if (le32(raw) >= 3) {
		uint64_t fam, mod, step;
		if (json_u64(j, "cpuid_fam_id", &fam, err) < 0 ||
		    json_u64(j, "cpuid_mod_id", &mod, err) < 0 ||
		    json_u64(j, "cpuid_step", &step, err) < 0 || fam > 255 || mod > 255 ||
		    step > 255)
			return err_set(err, "SNP report JSON: cpuid_fam_id/cpuid_mod_id/cpuid_step "
			                    "must be bytes for report version 3 and later");
		raw[0x188] = (uint8_t)fam;
		raw[0x189] = (uint8_t)mod;
		raw[0x18A] = (uint8_t)step;
		gen = snp_gen_from_cpuid((uint8_t)fam, (uint8_t)mod);
	}
	for (int i = 0; i < 4; i++)
		if (json_tcb(j, tcb_keys[i], &tcb[i], err) < 0)
			return -1;
	if (gen == SNP_GEN_UNKNOWN && tcb[1].has_fmc)
		gen = SNP_GEN_TURIN;
	for (int i = 0; i < 4; i++)
		tcb_encode(raw + tcb_off[i], gen, &tcb[i]);
	if (json_version(j, "current", raw + 0x1E8, err) < 0 ||
	    json_version(j, "committed", raw + 0x1EC, err) < 0)
		return -1;
	json_t *mv = json_object_get(j, "launch_mit_vector");
	if (json_is_integer(mv))
		put_le64(raw + 0x1F8, (uint64_t)json_integer_value(mv));
	mv = json_object_get(j, "current_mit_vector");
	if (json_is_integer(mv))
		put_le64(raw + 0x200, (uint64_t)json_integer_value(mv));
	json_t *sig = json_object_get(j, "signature");
	if (!json_is_object(sig) || json_bytes(sig, "r", raw + 0x2A0, 72, err) < 0 ||
	    json_bytes(sig, "s", raw + 0x2E8, 72, err) < 0)
		return err_set(err, "SNP report JSON: `signature` must be {r: [72 bytes], s: [72 "
		                    "bytes]}");
	return snp_report_parse(raw, sizeof(raw), gen, out, err);
}

static int tcb_equal(const struct snp_tcb *rep, const struct snp_tcb *cert, enum snp_gen gen)
{
	if (rep->bootloader != cert->bootloader || rep->tee != cert->tee || rep->snp != cert->snp ||
	    rep->microcode != cert->microcode)
		return 0;
	if (gen == SNP_GEN_TURIN && (!cert->has_fmc || rep->fmc != cert->fmc))
		return 0;
	return 1;
}

int snp_report_verify(const struct snp_report *r, const struct snp_vek *vek, struct err *err)
{
	uint8_t rb[48], sb[48];
	BIGNUM *bn_r = NULL, *bn_s = NULL;
	ECDSA_SIG *sig = NULL;
	unsigned char *der = NULL;
	int der_len, ok = 0;
	EVP_MD_CTX *md = NULL;

	if (!vek->is_vlek) {
		size_t n = r->gen == SNP_GEN_TURIN ? 8 : 64;
		if (!vek->has_hwid || vek->hwid_len < n || memcmp(vek->hwid, r->chip_id, n) != 0)
			return err_set(err, "VCEK hwID does not match the report's chip_id");
	}
	if (!tcb_equal(&r->reported_tcb, &vek->tcb, r->gen))
		return err_set(err,
		               "report reported_tcb (bl %u tee %u snp %u ucode %u) differs from "
		               "the %s TCB (bl %u tee %u snp %u ucode %u)",
		               r->reported_tcb.bootloader, r->reported_tcb.tee, r->reported_tcb.snp,
		               r->reported_tcb.microcode, vek->is_vlek ? "VLEK" : "VCEK",
		               vek->tcb.bootloader, vek->tcb.tee, vek->tcb.snp, vek->tcb.microcode);
	for (int i = 0; i < 48; i++) {
		rb[i] = r->raw[0x2A0 + 47 - i];
		sb[i] = r->raw[0x2E8 + 47 - i];
	}
	EVP_PKEY *pk = X509_get0_pubkey(vek->cert);
	if (pk == NULL || EVP_PKEY_get_base_id(pk) != EVP_PKEY_EC)
		return err_set(err, "VEK public key is not an EC key");
	sig = ECDSA_SIG_new();
	bn_r = BN_bin2bn(rb, 48, NULL);
	bn_s = BN_bin2bn(sb, 48, NULL);
	if (sig == NULL || bn_r == NULL || bn_s == NULL || !ECDSA_SIG_set0(sig, bn_r, bn_s)) {
		BN_free(bn_r);
		BN_free(bn_s);
		ECDSA_SIG_free(sig);
		return err_set(err, "out of memory");
	}
	der_len = i2d_ECDSA_SIG(sig, &der);
	md = EVP_MD_CTX_new();
	if (der_len > 0 && md != NULL &&
	    EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, pk) == 1 &&
	    EVP_DigestVerify(md, der, (size_t)der_len, r->raw, SNP_SIGNED_SIZE) == 1)
		ok = 1;
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	ECDSA_SIG_free(sig);
	if (!ok)
		return err_set(err, "SNP report signature does not verify with the %s",
		               vek->is_vlek ? "VLEK" : "VCEK");
	if (r->vmpl != 0)
		return err_set(err, "SNP report comes from VMPL %u; only VMPL 0 is accepted",
		               r->vmpl);
	return 0;
}

void snp_hwid_hex(const struct snp_report *r, char out[129])
{
	size_t n = r->gen == SNP_GEN_TURIN ? 8 : 64;
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", r->chip_id[i]);
	out[2 * n] = '\0';
}

void snp_tcb_prefix(const struct snp_report *r, char *out, size_t cap)
{
	const struct snp_tcb *t = &r->reported_tcb;
	int n = snprintf(out, cap, "bl%02u_tee%02u_snp%02u_ucode%02u", t->bootloader, t->tee,
	                 t->snp, t->microcode);
	if (r->gen == SNP_GEN_TURIN && n > 0 && (size_t)n < cap)
		snprintf(out + n, cap - (size_t)n, "_fmc%02u", t->fmc);
}

void snp_kds_query(const struct snp_report *r, char *out, size_t cap)
{
	const struct snp_tcb *t = &r->reported_tcb;
	int n = 0;
	if (r->gen == SNP_GEN_TURIN)
		n = snprintf(out, cap, "fmcSPL=%02u&", t->fmc);
	if (n >= 0 && (size_t)n < cap)
		snprintf(out + n, cap - (size_t)n,
		         "blSPL=%02u&teeSPL=%02u&snpSPL=%02u&ucodeSPL=%02u", t->bootloader, t->tee,
		         t->snp, t->microcode);
}
