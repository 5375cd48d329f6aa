/* Fuzz the Hygon DCU formats (as/evidence/dcu_report.c): the input as Trustee's DCU evidence
 * JSON and its leading bytes as one binary report. Each report that parses has its signature
 * checked with a CEK built from the input (it can only fail, but walks the SM2 import and
 * verification paths over the rebuilt body). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "as/evidence/dcu_report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dcu_evidence ev;
	struct dcu_report *r = malloc(sizeof(*r));
	struct csv_key k = {.usage = CSV_USAGE_CEK, .uid_size = 13};
	struct err err;

	if (r == NULL)
		return 0;
	memcpy(k.uid, "HYGON-SSD-CEK", 13);
	if (size >= 64) {
		memcpy(k.x, data, 32);
		memcpy(k.y, data + 32, 32);
	}
	if (dcu_evidence_parse(data, size, &ev, &err) == 0) {
		for (size_t i = 0; i < ev.n; i++)
			(void)csv_sm2_verify(&k, ev.reports[i].raw, DCU_BODY_LEN,
			                     ev.reports[i].raw + DCU_BODY_LEN, &err);
		dcu_evidence_clear(&ev);
	}
	if (dcu_report_parse(data, size < DCU_REPORT_LEN ? size : DCU_REPORT_LEN, r, &err) == 0)
		(void)csv_sm2_verify(&k, r->raw, DCU_BODY_LEN, r->raw + DCU_BODY_LEN, &err);
	free(r);
	return 0;
}
