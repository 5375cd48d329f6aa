/*
 * extractors: which payload types the RVPS understands, one row per file under
 * rvps/extractors/. Trustee also has swid and corim; until their files land those types are
 * refused like any unknown one.
 */
#include "rvps/extractors.h"

#include <string.h>

const struct rvps_extractor *const rvps_extractors[] = {
    &rvps_extractor_sample,
    NULL,
};

const struct rvps_extractor *rvps_extractor_find(const char *type)
{
	for (size_t i = 0; type != NULL && rvps_extractors[i] != NULL; i++)
		if (strcmp(rvps_extractors[i]->type, type) == 0)
			return rvps_extractors[i];
	return NULL;
}
