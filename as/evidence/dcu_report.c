/*
 * dcu_report: parse Hygon DCU attestation reports and check them under the chip's CEK (layout
 * in dcu_report.h). The JSON is rebuilt into the report bytes first, so the signature is
 * checked over the bytes the device signed and the claims are read back from those bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as/evidence/dcu_report.h"

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* chip_id as a directory and URL name: printable ASCII, trailing NULs trimmed, no NUL inside. */
static void chip_text(const uint8_t id[DCU_CHIP_ID_LEN], char out[DCU_CHIP_ID_LEN + 1])
{
	size_t n = DCU_CHIP_ID_LEN;
	memset(out, 0, DCU_CHIP_ID_LEN + 1);
	while (n > 0 && id[n - 1] == 0)
		n--;
	for (size_t i = 0; i < n; i++)
		if (id[i] < 0x21 || id[i] > 0x7e)
			return;
	memcpy(out, id, n);
}

int dcu_report_parse(const uint8_t *buf, size_t len, struct dcu_report *out, struct err *err)
{
	memset(out, 0, sizeof(*out));
	if (buf == NULL || len != DCU_REPORT_LEN)
		return err_set(err, "DCU attestation report is %zu bytes, expected %d", len,
		               DCU_REPORT_LEN);
	memcpy(out->raw, buf, len);
	out->version = le32(buf);
	memcpy(out->chip_id, buf + 4, 16);
	memcpy(out->user_data, buf + 20, 64);
	memcpy(out->measure, buf + 84, 32);
	memcpy(out->reserved, buf + 116, 128);
	out->sig_usage = le32(buf + 244);
	out->sig_algo = le32(buf + 248);
	chip_text(out->chip_id, out->chip);
	return 0;
}

/* ---- JSON (csv-rs serde) to bytes ---- */

/* obj[key]: an array of exactly n integers 0..255 into out. */
static int jbytes(const json_t *obj, const char *key, uint8_t *out, size_t n, size_t idx,
                  struct err *err)
{
	const json_t *a = json_object_get(obj, key), *v;
	size_t i;

	if (!json_is_array(a) || json_array_size(a) != n)
		return err_set(err, "DCU report %zu: `%s` must be an array of %zu byte values", idx,
		               key, n);
	json_array_foreach(a, i, v)
	{
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 255)
			return err_set(err, "DCU report %zu: `%s`[%zu] is not a byte value", idx,
			               key, i);
		out[i] = (uint8_t)json_integer_value(v);
	}
	return 0;
}

/* obj[key]: an integer 0..2^32-1, written little-endian. */
static int ju32(const json_t *obj, const char *key, uint8_t *out, size_t idx, struct err *err)
{
	const json_t *v = json_object_get(obj, key);
	json_int_t x = json_integer_value(v);

	if (!json_is_integer(v) || x < 0 || x > 0xffffffffLL)
		return err_set(err, "DCU report %zu: `%s` must be an integer of 4 bytes", idx, key);
	for (int i = 0; i < 4; i++)
		out[i] = (uint8_t)((uint64_t)x >> (8 * i));
	return 0;
}

static int report_from_json(const json_t *r, size_t idx, struct dcu_report *out, struct err *err)
{
	uint8_t b[DCU_REPORT_LEN] = {0};
	const json_t *body = json_object_get(r, "body"), *sig = json_object_get(r, "sig");

	if (!json_is_object(r) || !json_is_object(body) || !json_is_object(sig))
		return err_set(
		    err, "DCU report %zu must be an object with `body` and `sig` objects", idx);
	if (ju32(body, "version", b, idx, err) < 0 ||
	    jbytes(body, "chip_id", b + 4, 16, idx, err) < 0 ||
	    jbytes(body, "user_data", b + 20, 64, idx, err) < 0 ||
	    jbytes(body, "measure", b + 84, 32, idx, err) < 0 ||
	    jbytes(body, "reserved", b + 116, 128, idx, err) < 0 ||
	    ju32(body, "sig_usage", b + 244, idx, err) < 0 ||
	    ju32(body, "sig_algo", b + 248, idx, err) < 0 ||
	    jbytes(sig, "r", b + DCU_BODY_LEN, 72, idx, err) < 0 ||
	    jbytes(sig, "s", b + DCU_BODY_LEN + 72, 72, idx, err) < 0)
		return -1;
	return dcu_report_parse(b, sizeof(b), out, err);
}

int dcu_evidence_from_json(const json_t *ev, struct dcu_evidence *out, struct err *err)
{
	const json_t *list = json_object_get(ev, "attestation_reports");
	size_t n = json_array_size(list);

	memset(out, 0, sizeof(*out));
	if (!json_is_object(ev) || !json_is_array(list) || n == 0)
		return err_set(err, "DCU evidence needs a non-empty `attestation_reports` array");
	if (n > DCU_MAX_REPORTS)
		return err_set(err,
		               "DCU evidence carries %zu reports, more than the %d one host has", n,
		               DCU_MAX_REPORTS);
	if ((out->reports = calloc(n, sizeof(*out->reports))) == NULL)
		return err_set(err, "out of memory");
	for (size_t i = 0; i < n; i++) {
		if (report_from_json(json_array_get(list, i), i, &out->reports[i], err) < 0)
			goto fail;
		for (size_t j = 0; j < i; j++)
			if (memcmp(out->reports[j].chip_id, out->reports[i].chip_id,
			           DCU_CHIP_ID_LEN) == 0) {
				err_set(err,
				        "DCU evidence lists chip %s twice (reports %zu and %zu)",
				        out->reports[i].chip[0] ? out->reports[i].chip
				                                : "(unprintable)",
				        j, i);
				goto fail;
			}
		out->n = i + 1;
	}
	return 0;
fail:
	dcu_evidence_clear(out);
	return -1;
}

int dcu_evidence_parse(const uint8_t *buf, size_t len, struct dcu_evidence *out, struct err *err)
{
	json_error_t je;
	json_t *ev;
	int rc;

	memset(out, 0, sizeof(*out));
	if (buf == NULL)
		return err_set(err, "DCU evidence is empty");
	ev = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &je);
	if (ev == NULL)
		return err_set(err, "DCU evidence is not JSON: %s", je.text);
	rc = dcu_evidence_from_json(ev, out, err);
	json_decref(ev);
	return rc;
}

void dcu_evidence_clear(struct dcu_evidence *ev)
{
	free(ev->reports);
	ev->reports = NULL;
	ev->n = 0;
}

int dcu_verify_report(const struct csv_ca_cert *hrk, const struct csv_ca_cert *hsk,
                      const struct csv_cert *cek, const struct dcu_report *r, struct err *err)
{
	if (csv_verify_hrk_to_cek(hrk, hsk, cek, err) < 0)
		return -1;
	if (csv_sm2_verify(&cek->key, r->raw, DCU_BODY_LEN, r->raw + DCU_BODY_LEN, err) < 0)
		return err_prefix(err, "DCU report signature by the CEK failed");
	return 0;
}
