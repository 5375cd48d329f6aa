/* Fuzz the SNP report parsers: the raw ABI form and the sev-crate JSON form. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "as/evidence/snp_report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct snp_report r;
	struct err err;

	snp_report_parse(data, size, SNP_GEN_UNKNOWN, &r, &err);
	json_t *j = json_loadb((const char *)data, size, 0, NULL);
	if (j != NULL) {
		snp_report_from_json(j, &r, &err);
		json_decref(j);
	}
	struct snp_vek vek;
	if (snp_vek_load(data, size, &vek, &err) == 0)
		snp_vek_free(&vek);
	return 0;
}
