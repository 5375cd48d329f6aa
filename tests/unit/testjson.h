/*
 * Random JSON documents for the tests that hold our JSON reader and writer (jsonr, jsonw) to
 * jansson: strings built from the bytes that need care (quotes, escapes, control characters,
 * DEL, two- to four-byte UTF-8), integers, literals, and nested objects and arrays, from a
 * fixed-seed xorshift64 so that every run sees the same documents.
 *
 * Header-only for the same reason as testlib.h. Include it after <cmocka.h> and <jansson.h>.
 */
#ifndef CTRUSTEE_TESTJSON_H
#define CTRUSTEE_TESTJSON_H

#include <jansson.h>
#include <stdint.h>
#include <string.h>

/* What the documents may hold beyond the common ground. */
struct tj_kinds {
	int nuls;      /* an embedded NUL in a string or a key now and then */
	int wide_ints; /* integers over the whole int64 range, else up to 18 digits */
};

static uint64_t tj_rng = 0x2545F4914F6CDD1DULL;

static inline void tj_seed(uint64_t seed)
{
	tj_rng = seed;
}

/* xorshift64 */
static inline uint64_t tj_next(void)
{
	tj_rng ^= tj_rng << 13;
	tj_rng ^= tj_rng >> 7;
	tj_rng ^= tj_rng << 17;
	return tj_rng;
}

static inline json_t *tj_string(const struct tj_kinds *kinds)
{
	static const char *const parts[] = {"a",
	                                    "Z",
	                                    "\"",
	                                    "\\",
	                                    "/",
	                                    "\n",
	                                    "\x01",
	                                    "\x1f",
	                                    " ",
	                                    "\x7f",
	                                    "\xc3\xa9",
	                                    "\xe2\x82\xac",
	                                    "\xf0\x9f\x98\x80",
	                                    "tee-pubkey",
	                                    "0"};
	char s[64];
	size_t n = 0, k = tj_next() % 8;
	for (size_t i = 0; i < k; i++) {
		const char *p = parts[tj_next() % (sizeof(parts) / sizeof(parts[0]))];
		size_t pl = strlen(p);
		memcpy(s + n, p, pl);
		n += pl;
	}
	if (kinds->nuls && tj_next() % 10 == 0)
		s[n++] = '\0';
	return json_stringn(s, n);
}

/* A value, nested at most 5 deep below depth. */
static inline json_t *tj_value(int depth, const struct tj_kinds *kinds)
{
	switch (tj_next() % (depth < 5 ? 7 : 5)) {
	case 0:
		return tj_string(kinds);
	case 1:
		return json_integer(kinds->wide_ints
		                        ? (json_int_t)tj_next() >> (tj_next() % 64)
		                        : (json_int_t)(tj_next() % 1000000000000000000ULL));
	case 2:
		return json_boolean(tj_next() & 1);
	case 3:
		return json_null();
	case 4:
		return json_integer(-(json_int_t)(tj_next() % 100000));
	case 5: {
		json_t *o = json_object();
		for (size_t i = 0, n = tj_next() % 6; i < n; i++) {
			json_t *k = tj_string(kinds);
			json_object_setn_new(o, json_string_value(k), json_string_length(k),
			                     tj_value(depth + 1, kinds));
			json_decref(k);
		}
		return o;
	}
	default: {
		json_t *a = json_array();
		for (size_t i = 0, n = tj_next() % 6; i < n; i++)
			json_array_append_new(a, tj_value(depth + 1, kinds));
		return a;
	}
	}
}

#endif
