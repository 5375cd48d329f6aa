/*
 * snp verifier (as-rvps.md §5.5): an AMD SEV-SNP report, its VEK chained to AMD's roots,
 * bound to the expected report data (64 bytes) and init-data hash (HOST_DATA, 32 bytes).
 *
 * Evidence: {"attestation_report": <sev-crate JSON object>, "cert_chain": [...] | null}.
 * As an extension, "attestation_report" may also be the standard base64 of the raw
 * 1184-byte report. The VEK comes from cert_chain, else from the test/CLI option "vcek"
 * (a file), else from the configured VCEK sources (kds.h).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "as/collateral/amd_kds.h"
#include "as/evidence/snp_report.h"
#include "as/verifiers/verifier.h"
#include "b64.h"
#include "config.h"

static int snp_init(const json_t *verifier_config, struct err *err)
{
	return amd_kds_configure(json_object_get(verifier_config, "snp_verifier"), err);
}

/* cert_chain entry data: a JSON array of byte values. */
static int chain_bytes(const json_t *data, uint8_t **out, size_t *len, struct err *err)
{
	size_t i, n = json_array_size(data);
	json_t *e;

	if (!json_is_array(data) || n == 0 || n > 65536)
		return err_set(err, "cert_chain entry `data` must be a non-empty byte array");
	*out = malloc(n);
	if (*out == NULL)
		return err_set(err, "out of memory");
	json_array_foreach(data, i, e)
	{
		if (!json_is_integer(e) || json_integer_value(e) < 0 ||
		    json_integer_value(e) > 255) {
			free(*out);
			return err_set(err, "cert_chain entry `data`[%zu] is not a byte", i);
		}
		(*out)[i] = (uint8_t)json_integer_value(e);
	}
	*len = n;
	return 0;
}

static X509 *der_to_x509(const uint8_t *buf, size_t len)
{
	const unsigned char *p = buf;
	return d2i_X509(NULL, &p, (long)len);
}

struct chain {
	X509 *ark, *ask;
	uint8_t *vek_der;
	size_t vek_len;
	int vek_declared_vlek;
};

static void chain_free(struct chain *c)
{
	X509_free(c->ark);
	X509_free(c->ask);
	free(c->vek_der);
}

static int parse_cert_chain(const json_t *arr, struct chain *c, struct err *err)
{
	size_t i;
	json_t *e;

	if (arr == NULL || json_is_null(arr))
		return 0;
	if (!json_is_array(arr))
		return err_set(err, "`cert_chain` must be an array or null");
	json_array_foreach(arr, i, e)
	{
		const char *type = json_string_value(json_object_get(e, "cert_type"));
		uint8_t *der = NULL;
		size_t len = 0;
		if (type == NULL)
			continue; /* {"OTHER": uuid} and other unknown kinds */
		if (strcmp(type, "Empty") == 0 || strcmp(type, "CRL") == 0)
			continue;
		if (chain_bytes(json_object_get(e, "data"), &der, &len, err) < 0)
			return err_prefix(err, "cert_chain[%zu] (%s)", i, type);
		if ((strcmp(type, "VCEK") == 0 || strcmp(type, "VLEK") == 0) &&
		    c->vek_der == NULL) {
			c->vek_der = der;
			c->vek_len = len;
			c->vek_declared_vlek = strcmp(type, "VLEK") == 0;
			continue;
		}
		X509 **slot = strcmp(type, "ARK") == 0   ? &c->ark
		              : strcmp(type, "ASK") == 0 ? &c->ask
		                                         : NULL;
		if (slot != NULL && *slot == NULL) {
			*slot = der_to_x509(der, len);
			if (*slot == NULL) {
				free(der);
				return err_set(err, "cert_chain %s is not a DER certificate", type);
			}
		}
		free(der);
	}
	return 0;
}

static int load_report(const json_t *ev, struct snp_report *r, struct err *err)
{
	json_t *rep = json_object_get(ev, "attestation_report");

	if (json_is_object(rep))
		return snp_report_from_json(rep, r, err);
	if (json_is_string(rep)) {
		uint8_t *raw;
		size_t len;
		if (verifier_evidence_bytes(ev, "SNP", "attestation_report", 0, &raw, &len, err) <
		    0)
			return -1;
		int rc = snp_report_parse(raw, len, SNP_GEN_UNKNOWN, r, err);
		free(raw);
		return rc;
	}
	return err_set(err, "SNP evidence lacks `attestation_report`");
}

static int find_vek(const struct verify_request *req, const struct snp_report *r, struct chain *c,
                    struct snp_vek *vek, struct err *err)
{
	const char *vpath = json_string_value(json_object_get(req->options, "vcek"));
	uint8_t *der = NULL;
	size_t len = 0;
	int rc;

	if (c->vek_der != NULL) {
		if (snp_vek_load(c->vek_der, c->vek_len, vek, err) < 0)
			return -1;
		if (vek->is_vlek != c->vek_declared_vlek)
			return err_set(err, "cert_chain declares a %s but the certificate is a %s",
			               c->vek_declared_vlek ? "VLEK" : "VCEK",
			               vek->is_vlek ? "VLEK" : "VCEK");
		return 0;
	}
	if (vpath != NULL) {
		char *buf = file_read_all(vpath, &len, err);
		if (buf == NULL)
			return -1;
		rc = snp_vek_load((const uint8_t *)buf, len, vek, err);
		free(buf);
		return rc;
	}
	if (amd_kds_get_vcek(r, &der, &len, err) < 0)
		return -1;
	rc = snp_vek_load(der, len, vek, err);
	free(der);
	return rc;
}

static json_t *snp_claims(const struct snp_report *r)
{
	json_t *c = verifier_snp_claims(r, 0);

	verifier_claim_hex(c, "measurement", r->measurement, 48);
	verifier_claim_hex(c, "chip_id", r->chip_id, 64);
	verifier_claim_hex(c, "report_data", r->report_data, 64);
	verifier_claim_hex(c, "init_data", r->host_data, 32);
	return c;
}

static int snp_verify(const struct verify_request *req, struct verify_result *out, struct err *err)
{
	struct snp_report r;
	struct snp_vek vek = {0};
	struct chain c = {0};
	int rc = -1;

	if (!json_is_object(req->evidence))
		return err_set(err, "SNP evidence must be a JSON object");
	if (load_report(req->evidence, &r, err) < 0 ||
	    parse_cert_chain(json_object_get(req->evidence, "cert_chain"), &c, err) < 0)
		goto out;
	if (find_vek(req, &r, &c, &vek, err) < 0)
		goto out;
	if (r.gen == SNP_GEN_UNKNOWN) /* v2 reports carry no CPUID: use the VEK's product */
		snp_report_set_gen(&r, vek.gen);
	if (r.gen == SNP_GEN_UNKNOWN) {
		err_set(err, "cannot tell the processor generation of a v2 report whose VEK "
		             "names no product");
		goto out;
	}
	if (vek.gen != SNP_GEN_UNKNOWN && vek.gen != r.gen) {
		err_set(err, "report is from %s but the %s is for %s", snp_gen_name(r.gen),
		        vek.is_vlek ? "VLEK" : "VCEK", snp_gen_name(vek.gen));
		goto out;
	}
	if (snp_vek_verify_chain(&vek, r.gen, c.ark, c.ask, req->now ? req->now : time(NULL), err) <
	        0 ||
	    snp_report_verify(&r, &vek, err) < 0)
		goto out;
	if (verifier_bind(r.report_data, 64, req->report_data, req->report_data_len,
	                  "SNP report_data", "the expected runtime data hash", err) < 0 ||
	    verifier_bind(r.host_data, 32, req->init_data_hash, req->init_data_hash_len,
	                  "SNP HOST_DATA", "the expected init-data hash", err) < 0)
		goto out;
	rc = verify_result_add(out, "cpu", snp_claims(&r), err);
out:
	snp_vek_free(&vek);
	chain_free(&c);
	return rc;
}

const struct verifier verifier_snp = {
    .tee = "snp",
    .init = snp_init,
    .verify = snp_verify,
};
