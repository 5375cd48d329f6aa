/* Fuzz the CC event log parser (claims and details decoders) and the RTMR replay, SHA-384
 * (TDX) and SM3 (Hygon CSV v2). */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "as/evidence/eventlog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t mr[EVENTLOG_MAX_MR][48], rtmr[4][48] = {{0}},
	                                 any[EVENTLOG_MAX_MR][EVENTLOG_MAX_DIGEST];
	uint8_t sm3_rtmr[4 * 32] = {0};
	int bad;
	int present[EVENTLOG_MAX_MR];
	json_t *entries = NULL;
	struct err err;

	if (eventlog_parse(data, size, &entries, &err) == 0) {
		char *s = json_dumps(entries, JSON_COMPACT);
		free(s);
		json_decref(entries);
	}
	eventlog_replay_sha384(data, size, mr, present, &err);
	eventlog_check_rtmrs(data, size, (const uint8_t(*)[48])rtmr, &err);
	eventlog_replay(data, size, EVENTLOG_ALG_SM3, any, present, &err);
	eventlog_check_ccmrs(data, size, EVENTLOG_ALG_SM3, sm3_rtmr, &bad, &err);
	/* each decoder on its own, typed by the first 4 bytes */
	if (size >= 4) {
		json_t *det = NULL;
		uint32_t type = (uint32_t)data[0] | (uint32_t)data[1] << 8 |
		                (uint32_t)data[2] << 16 | (uint32_t)data[3] << 24;
		if (eventlog_details(type, data + 4, size - 4, &det, &err) == 0)
			json_decref(det);
	}
	return 0;
}
