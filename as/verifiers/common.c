/*
 * common: the steps every verifier file would otherwise write again — take a base64 field
 * out of the evidence, bind a report field to the expected report data or init-data hash
 * (as-rvps.md §2.4), and write report bytes as hex claims. Kept here, beside the registry, so
 * a verifier file holds only what is particular to its TEE.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as/evidence/snp_report.h"
#include "as/evidence/tpm_quote.h"
#include "as/verifiers/verifier.h"
#include "b64.h"

int verifier_evidence_bytes(const json_t *evidence, const char *tee, const char *key, int flags,
                            uint8_t **out, size_t *len, struct err *err)
{
	json_t *v = json_object_get(evidence, key);
	int b64 = (flags & VERIFIER_B64URL) ? B64_URL : B64_STD;

	*out = NULL;
	*len = 0;
	if (!json_is_string(v) || b64_decode(json_string_value(v), json_string_length(v),
	                                     b64 | B64_LENIENT, out, len) < 0)
		return err_set(err, "%s evidence `%s` must be a %s string", tee, key,
		               b64 == B64_URL ? "base64url" : "base64");
	return 0;
}

int verifier_bind(const uint8_t *field, size_t n, const uint8_t *want, size_t wlen,
                  const char *field_name, const char *want_name, struct err *err)
{
	uint8_t exp[64];

	if (want == NULL)
		return 0;
	if (n > sizeof(exp))
		return err_set(err, "%s is longer than a report field can be", field_name);
	verifier_regularize(want, wlen, exp, n);
	if (CRYPTO_memcmp(field, exp, n) != 0)
		return err_set(err, "%s does not match %s", field_name, want_name);
	return 0;
}

void verifier_claim_hex(json_t *claims, const char *key, const uint8_t *p, size_t n)
{
	char *h = hex_encode(p, n);
	json_object_set_new(claims, key, json_string(h ? h : ""));
	free(h);
}

json_t *verifier_fields(const uint8_t *base, size_t avail, const struct verifier_field *f, size_t n)
{
	json_t *o = json_object();
	for (size_t i = 0; i < n; i++)
		if (f[i].off + f[i].len <= avail)
			verifier_claim_hex(o, f[i].name, base + f[i].off, f[i].len);
	return o;
}

int verifier_tpm_binding_claims(json_t *claims, const struct tpm_quote *q)
{
	const uint8_t *pcr8 = tpm_pcr(q, 8);

	verifier_claim_hex(claims, "report_data", q->attest.extra_data, q->attest.extra_data_len);
	if (pcr8 == NULL)
		return 0;
	verifier_claim_hex(claims, "init_data", pcr8, 32);
	return 1;
}

json_t *verifier_snp_claims(const struct snp_report *r, int as_strings)
{
	const uint64_t p = r->policy;
	const struct {
		const char *name;
		unsigned long long v;
		int is_bool;
	} f[] = {
	    {"policy_abi_major", (p >> 8) & 0xff, 0},
	    {"policy_abi_minor", p & 0xff, 0},
	    {"policy_smt_allowed", (p >> 16) & 1, 1},
	    {"policy_migrate_ma", (p >> 18) & 1, 1},
	    {"policy_debug_allowed", (p >> 19) & 1, 1},
	    {"policy_single_socket", (p >> 20) & 1, 1},
	    {"reported_tcb_bootloader", r->reported_tcb.bootloader, 0},
	    {"reported_tcb_tee", r->reported_tcb.tee, 0},
	    {"reported_tcb_snp", r->reported_tcb.snp, 0},
	    {"reported_tcb_microcode", r->reported_tcb.microcode, 0},
	    {"platform_tsme_enabled", (r->plat_info >> 1) & 1, 1},
	    {"platform_smt_enabled", r->plat_info & 1, 1},
	};
	json_t *c = json_object();
	char num[32];

	for (size_t i = 0; c != NULL && i < sizeof(f) / sizeof(f[0]); i++) {
		json_t *v;
		if (!as_strings)
			v = f[i].is_bool ? json_boolean(f[i].v) : json_integer((json_int_t)f[i].v);
		else if (f[i].is_bool)
			v = json_string(f[i].v ? "true" : "false");
		else
			v = (snprintf(num, sizeof(num), "%llu", f[i].v), json_string(num));
		json_object_set_new(c, f[i].name, v);
	}
	return c;
}
