/*
 * extractors: which payload types the RVPS understands. Trustee also has swid and corim;
 * only the sample extractor exists here so far, so those types are refused like any
 * unknown one.
 */
#include "extractors.h"

#include <string.h>

static const struct rvps_extractor extractors[] = {
    {"sample", rvps_extract_sample},
};

const struct rvps_extractor *rvps_extractor_find(const char *type)
{
	for (size_t i = 0; i < sizeof(extractors) / sizeof(extractors[0]); i++)
		if (strcmp(extractors[i].type, type) == 0)
			return &extractors[i];
	return NULL;
}
