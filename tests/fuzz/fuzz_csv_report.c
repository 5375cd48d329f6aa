/* Fuzz the Hygon CSV formats (as/evidence/csv_report.c): the input as Trustee's evidence JSON
 * (report wrapper, PEK, optional inline HSK/CEK, serial number, event log), and its leading
 * bytes as the binary CA certificate, CSV certificate, hsk_cek.cert file and v1/v2 report.
 * On evidence that parses with an inline HSK/CEK, the chain check runs with the HSK standing
 * in as the root (it can only fail, but walks every SM2 import and signature path). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "as/evidence/csv_report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t zero[16], ext[16] = "ATTESTATION_EXT";
	struct csv_evidence *ev = malloc(sizeof(*ev));
	struct csv_report *r = malloc(sizeof(*r));
	struct csv_ca_cert *ca = malloc(sizeof(*ca));
	struct csv_cert *c = malloc(sizeof(*c));
	struct err err;

	if (ev == NULL || r == NULL || ca == NULL || c == NULL)
		goto out;
	if (csv_evidence_parse(data, size, ev, &err) == 0) {
		if (ev->has_hsk_cek)
			(void)csv_verify_chain(&ev->hsk, &ev->hsk, &ev->cek, &ev->pek, &ev->report,
			                       &err);
		(void)csv_sm2_verify(&ev->pek.key, ev->report.raw, ev->report.signed_len,
		                     ev->report.sig, &err);
		csv_evidence_clear(ev);
	}
	if (csv_ca_cert_parse(data, size < CSV_CA_CERT_LEN ? size : CSV_CA_CERT_LEN, ca, &err) == 0)
		(void)csv_sm2_verify(&ca->key, ca->raw, CSV_CA_BODY_LEN, ca->sig, &err);
	(void)csv_cert_parse(data, size < CSV_CERT_LEN ? size : CSV_CERT_LEN, c, &err);
	(void)csv_hsk_cek_parse(data, size < CSV_HSK_CEK_LEN ? size : CSV_HSK_CEK_LEN, ca, c, &err);
	(void)csv_report_parse(zero, 0, data, size < CSV_REPORT_LEN ? size : CSV_REPORT_LEN, r,
	                       &err);
	(void)csv_report_parse(ext, 1, data, size < CSV_REPORT_LEN ? size : CSV_REPORT_LEN, r,
	                       &err);
out:
	free(ev);
	free(r);
	free(ca);
	free(c);
	return 0;
}
