/*
 * CC event log parser and RTMR replay (as/evidence/eventlog.c) against Trustee's golden claims, the
 * go-tdx-guest log and its quote's RTMRs, and hand-built logs for each decoder and each way a
 * log can be malformed (spec as-rvps.md §5.3, §5.12).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "as/evidence/eventlog.h"
#include "b64.h"
#include "testlib.h"

static char evdir[1024];

static void hex48(const char *hex, uint8_t out[48])
{
	uint8_t *b;
	size_t n;

	assert_int_equal(hex_decode(hex, strlen(hex), &b, &n), 0);
	assert_int_equal(n, 48);
	memcpy(out, b, 48);
	free(b);
}

static void assert_mr(const uint8_t mr[48], const char *hex)
{
	char *h = hex_encode(mr, 48);

	assert_string_equal(h, hex);
	free(h);
}

/* expected_values.json: files/<quote>/body/rtmr0..3 */
static void quote_rtmrs(const char *quote, uint8_t rtmr[4][48])
{
	char path[1400], key[16];
	json_t *root, *body;

	snprintf(path, sizeof(path), "%s/expected_values.json", evdir);
	root = json_load_file(path, 0, NULL);
	assert_non_null(root);
	body = json_object_get(json_object_get(json_object_get(root, "files"), quote), "body");
	assert_non_null(body);
	for (int i = 0; i < 4; i++) {
		snprintf(key, sizeof(key), "rtmr%d", i);
		hex48(json_string_value(json_object_get(body, key)), rtmr[i]);
	}
	json_decref(root);
}

/* ---- hand-built logs ---- */

struct lb {
	uint8_t *p;
	size_t len;
};

static void put(struct lb *b, const void *d, size_t n)
{
	b->p = realloc(b->p, b->len + n + 1);
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void put32(struct lb *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	put(b, x, 4);
}

static void put16(struct lb *b, uint16_t v)
{
	uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
	put(b, x, 2);
}

/* TCG_EfiSpecIdEvent declaring SHA-384 (and SHA-1 when with_sha1). */
static void spec_id(struct lb *b, int with_sha1)
{
	uint8_t zero[20] = {0};
	uint32_t evsize = 16 + 4 + 4 + 4 + 4 * (with_sha1 ? 2 : 1) + 1;

	put32(b, 0);
	put32(b, 3); /* EV_NO_ACTION */
	put(b, zero, 20);
	put32(b, evsize);
	put(b, "Spec ID Event03", 16);
	put32(b, 0);                   /* platformClass */
	put(b, "\x00\x02\x00\x02", 4); /* minor 0, major 2, errata 0, uintnSize 2 */
	put32(b, with_sha1 ? 2 : 1);
	put16(b, 0x000c);
	put16(b, 48);
	if (with_sha1) {
		put16(b, 0x0004);
		put16(b, 20);
	}
	put(b, "", 1); /* no vendor info */
}

/* One TCG_PCR_EVENT2 with the SHA-384 of its data as its only digest. */
static void event(struct lb *b, uint32_t mr, uint32_t type, const void *data, size_t n)
{
	uint8_t md[48];

	assert_true(EVP_Digest(data, n, md, NULL, EVP_sha384(), NULL));
	put32(b, mr);
	put32(b, type);
	put32(b, 1);
	put16(b, 0x000c);
	put(b, md, 48);
	put32(b, (uint32_t)n);
	put(b, data, n);
}

static json_t *parse_ok(struct lb *b)
{
	struct err err = {0};
	json_t *e = NULL;

	if (eventlog_parse(b->p, b->len, &e, &err) < 0)
		fail_msg("parse failed: %s", err.msg);
	return e;
}

static void parse_fails(const uint8_t *buf, size_t len, const char *want)
{
	struct err err = {0};
	json_t *e = (json_t *)1;

	assert_int_equal(eventlog_parse(buf, len, &e, &err), -1);
	assert_null(e);
	if (strstr(err.msg, want) == NULL)
		fail_msg("error \"%s\" does not contain \"%s\"", err.msg, want);
}

static json_t *details_of(const char *hex, uint32_t type)
{
	uint8_t *d;
	size_t n;
	struct err err = {0};
	json_t *det;

	assert_int_equal(hex_decode(hex, strlen(hex), &d, &n), 0);
	if (eventlog_details(type, d, n, &det, &err) < 0)
		fail_msg("details failed: %s", err.msg);
	free(d);
	return det;
}

static void assert_json(json_t *got, const char *want)
{
	json_t *w = json_loads(want, JSON_DECODE_ANY, NULL);

	assert_non_null(w);
	if (!json_equal(got, w)) {
		char *g = json_dumps(got, JSON_SORT_KEYS | JSON_ENCODE_ANY);
		fail_msg("got %s\nwant %s", g, want);
	}
	json_decref(w);
}

/* ---- golden data ---- */

static void test_eventlog_trustee_ccel_equals_golden_claims(void **state)
{
	size_t len;
	uint8_t *buf = tl_slurp(evdir, "tdx/trustee/CCEL_data", &len);
	char path[1400];
	json_t *golden, *entries;
	struct err err = {0};

	snprintf(path, sizeof(path), "%s/tdx/trustee/parse_tdx_claims_expected.json", evdir);
	golden = json_load_file(path, 0, NULL);
	assert_non_null(golden);
	assert_int_equal(eventlog_parse(buf, len, &entries, &err), 0);
	assert_int_equal(json_array_size(entries), 5);
	assert_true(json_equal(entries, json_object_get(golden, "uefi_event_logs")));
	json_decref(entries);
	json_decref(golden);
	free(buf);
}

static void test_eventlog_go_tdx_guest_replay_equals_cos113_rtmrs(void **state)
{
	size_t len;
	uint8_t *buf = tl_slurp(evdir, "tdx/go-tdx-guest/ccel/ccel_data.dat", &len);
	uint8_t rtmr[4][48], mr[EVENTLOG_MAX_MR][48];
	int present[EVENTLOG_MAX_MR];
	struct err err = {0};
	json_t *entries;

	quote_rtmrs("tdx/go-tdx-guest/ccel/cos-113-tdx-quote.dat", rtmr);
	assert_int_equal(eventlog_replay_sha384(buf, len, mr, present, &err), 0);
	/* CC-MR index i+1 is RTMR i; this boot never extended RTMR3 (index 4). */
	for (int i = 0; i < 4; i++)
		assert_memory_equal(mr[i + 1], rtmr[i], 48);
	assert_true(present[1] && present[2] && present[3]);
	assert_false(present[0] || present[4]);
	assert_int_equal(eventlog_check_rtmrs(buf, len, (const uint8_t(*)[48])rtmr, &err), 0);
	/* and the same log decodes to claims */
	assert_int_equal(eventlog_parse(buf, len, &entries, &err), 0);
	assert_true(json_array_size(entries) > 0);
	json_decref(entries);
	free(buf);
}

#define SECUREBOOT_DIGEST                                                                          \
	"cfa4e2c606f572627bf06d5669cc2ab1128358d27b45bc63ee9ea56ec109cfafb7194006f847a6a74b5eaed6" \
	"b7333"                                                                                    \
	"2ec"
#define SECUREBOOT_EVENT "Yd/ki8qT0hGqDQDgmAMrjAoAAAAAAAAAAQAAAAAAAABTAGUAYwB1AHIAZQBCAG8AbwB0AAA="

/* A COS (grub) boot: decoded details of the real log, beside its replay above. */
static void test_eventlog_go_tdx_guest_claims(void **state)
{
	size_t len;
	uint8_t *buf = tl_slurp(evdir, "tdx/go-tdx-guest/ccel/ccel_data.dat", &len);
	struct err err = {0};
	json_t *entries;

	assert_int_equal(eventlog_parse(buf, len, &entries, &err), 0);
	assert_int_equal(json_array_size(entries), 43);
	assert_json(
	    json_array_get(entries, 2),
	    "{\"details\": {\"unicode_name\": \"SecureBoot\", \"unicode_name_length\": 10,"
	    " \"variable_data\": \"AA==\", \"variable_data_length\": 1,"
	    " \"variable_name\": \"61dfe48b-ca93-d211-aa0d-00e098032b8c\"},"
	    " \"digest_matches_event\": true, \"digests\": [{\"alg\": \"SHA-384\", \"digest\":"
	    " \"" SECUREBOOT_DIGEST "\"}],"
	    " \"event\": \"" SECUREBOOT_EVENT "\", \"index\": 1,"
	    " \"type_name\": \"EV_EFI_VARIABLE_DRIVER_CONFIG\"}");
	/* shim's device path: the NVMe node has no formatter and falls back to Path() */
	assert_json(json_object_get(json_object_get(json_array_get(entries, 17), "details"),
	                            "device_paths"),
	            "[\"ACPI(PNP0A03,0)\", \"Pci(0,4)\", \"Path(3,23,010000000000000000000000)\","
	            " \"HD(12,GPT,58EC8B8F-8E5B-ED42-83A4-0691ABB8F3C7,0x3d000,0x10000)\","
	            " \"File(\\\\EFI\\\\BOOT\\\\BOOTX64.EFI)\"]");
	assert_json(json_object_get(json_array_get(entries, 0), "details"),
	            "{\"string\": \"TdxTable\"}");
	assert_json(json_object_get(json_array_get(entries, 1), "details"),
	            "{\"string\": \"Fv(48DB5E17-707C-472D-91CD-1613E7EF51B0)\"}");
	json_decref(entries);
	free(buf);
}

/* Trustee's CCEL_data replays to the values Trustee's own eventlog test pins, which are not
 * tdx_quote_4.dat's RTMRs: the log and that quote come from different boots. */
static void test_eventlog_trustee_ccel_replay_and_quote4_mismatch(void **state)
{
	size_t len;
	uint8_t *buf = tl_slurp(evdir, "tdx/trustee/CCEL_data", &len);
	uint8_t rtmr[4][48], mr[EVENTLOG_MAX_MR][48];
	int present[EVENTLOG_MAX_MR];
	struct err err = {0};

	assert_int_equal(eventlog_replay_sha384(buf, len, mr, present, &err), 0);
	assert_mr(mr[1], "2dc712306a963eadb894ad47dbaa17df44814151555aee11cbb843becca88950ffd079664"
	                 "902e6f22c66f7c8213543f4");
	assert_mr(mr[2], "0fa3be56af61208bbd179dc7b124988eb929319154663c539d6f46445ecac2fec28707504"
	                 "7ff7bd1922829fec28cd3cf");
	assert_true(present[1] && present[2]);
	assert_false(present[0] || present[3] || present[4]);

	quote_rtmrs("tdx/trustee/tdx_quote_4.dat", rtmr);
	assert_int_equal(eventlog_check_rtmrs(buf, len, (const uint8_t(*)[48])rtmr, &err), -1);
	assert_string_equal(err.msg,
	                    "Eventlog does not pass measurement replay CC Event Log Measurement "
	                    "Register [index = 1]. Calculated value: "
	                    "2dc712306a963eadb894ad47dbaa17df44814151555aee11cbb843becca88950ffd079"
	                    "664902e6f22c66f7c8213543f4"
	                    ", Given value: "
	                    "e940da7c2712d2790e2961e00484f4fa8e6f9eed71361655ae22699476b14f9e63867e"
	                    "b41edd4b480fef0c59f496b288");
	free(buf);
}

static void test_eventlog_trustee_ovmf_log_parses_and_replays(void **state)
{
	size_t len;
	uint8_t *buf = tl_slurp(evdir, "tdx/trustee/CCEL_data_ovmf", &len);
	uint8_t mr[EVENTLOG_MAX_MR][48];
	int present[EVENTLOG_MAX_MR];
	struct err err = {0};
	json_t *entries, *last;

	assert_int_equal(eventlog_parse(buf, len, &entries, &err), 0);
	assert_int_equal(json_array_size(entries), 20);
	/* the kernel loaded by OVMF, decoded from its device path */
	last = NULL;
	for (size_t i = 0; i < json_array_size(entries); i++) {
		json_t *e = json_array_get(entries, i);
		if (strcmp(json_string_value(json_object_get(e, "type_name")),
		           "EV_EFI_BOOT_SERVICES_APPLICATION") == 0)
			last = e;
	}
	assert_non_null(last);
	assert_json(json_object_get(json_object_get(last, "details"), "device_paths"),
	            "[\"VenMedia(1428F772-B64A-441E-B8C3-9EBDD7F893C7,)\", \"File(kernel)\"]");
	json_decref(entries);

	assert_int_equal(eventlog_replay_sha384(buf, len, mr, present, &err), 0);
	assert_mr(mr[1], "8566f998798db09443b244c62de9a3041fb02e2e6936c4396d784bba2e90177329ec5aba3"
	                 "bb484404f2ab9cc90abe193");
	assert_mr(mr[2], "775b9f6bfe99f8a31396f0d0218e67ffa796d3b96ccf961cbb0deba48c79c00f082cda1a5"
	                 "567c1c16305f1fc210c13c6");
	assert_mr(mr[3], "94eaf7a7bf398ed8d888c91057ae0261802e4f3df084213a76ca7f0b5055ac9d2241de43c"
	                 "d58d9e8b49c503bbf25f34a");
	assert_false(present[4]);
	free(buf);
}

/* ---- digests and replay on hand-built logs ---- */

static void test_eventlog_digest_matches_event_is_computed(void **state)
{
	struct lb b = {0};
	json_t *e;

	spec_id(&b, 0);
	event(&b, 1, 0x4, "\0\0\0\0", 4); /* EV_SEPARATOR, digest of its data */
	event(&b, 2, 0x5, "abc", 3);      /* EV_ACTION */
	b.p[b.len - 3 - 4 - 1] ^= 1;      /* last byte of the EV_ACTION digest */
	e = parse_ok(&b);
	assert_int_equal(json_array_size(e), 2);
	assert_true(json_is_true(json_object_get(json_array_get(e, 0), "digest_matches_event")));
	assert_true(json_is_false(json_object_get(json_array_get(e, 1), "digest_matches_event")));
	assert_json(json_array_get(e, 1),
	            "{\"details\": {\"string\": \"abc\"}, \"digest_matches_event\": false,"
	            " \"digests\": [{\"alg\": \"SHA-384\", \"digest\": "
	            "\"cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7"
	            "cc2358baeca134c825a6\"}],"
	            " \"event\": \"YWJj\", \"index\": 2, \"type_name\": \"EV_ACTION\"}");
	json_decref(e);
	free(b.p);
}

static void test_eventlog_replay_extends_per_index(void **state)
{
	struct lb b = {0};
	uint8_t mr[EVENTLOG_MAX_MR][48], want[48], x[96];
	int present[EVENTLOG_MAX_MR];
	struct err err = {0};

	spec_id(&b, 0);
	event(&b, 3, 0x5, "a", 1);
	event(&b, 9, 0x5, "out of range index", 18); /* kept in claims, not replayed */
	event(&b, 3, 0x5, "b", 1);
	assert_int_equal(eventlog_replay_sha384(b.p, b.len, mr, present, &err), 0);
	memset(x, 0, 48);
	EVP_Digest("a", 1, x + 48, NULL, EVP_sha384(), NULL);
	EVP_Digest(x, 96, want, NULL, EVP_sha384(), NULL);
	memcpy(x, want, 48);
	EVP_Digest("b", 1, x + 48, NULL, EVP_sha384(), NULL);
	EVP_Digest(x, 96, want, NULL, EVP_sha384(), NULL);
	assert_memory_equal(mr[3], want, 48);
	for (int i = 0; i < EVENTLOG_MAX_MR; i++)
		assert_int_equal(present[i], i == 3);
	free(b.p);
}

/* A Hygon CSV v2 log: SM3 digests only (TCG alg 0x0012, 32 bytes), replayed with SM3. */
static void sm3_event(struct lb *b, uint32_t mr, const void *data, size_t n)
{
	uint8_t md[32];

	assert_true(EVP_Digest(data, n, md, NULL, EVP_sm3(), NULL));
	put32(b, mr);
	put32(b, 0x80000007); /* EV_EFI_ACTION */
	put32(b, 1);
	put16(b, 0x0012);
	put(b, md, 32);
	put32(b, (uint32_t)n);
	put(b, data, n);
}

static void test_eventlog_replays_sm3_digests(void **state)
{
	struct lb b = {0};
	uint8_t zero[20] = {0}, mr[EVENTLOG_MAX_MR][EVENTLOG_MAX_DIGEST], want[4][32], x[64];
	int present[EVENTLOG_MAX_MR], bad = -1;
	struct err err = {0};

	put32(&b, 0);
	put32(&b, 3);
	put(&b, zero, 20);
	put32(&b, 16 + 4 + 4 + 4 + 4 + 1);
	put(&b, "Spec ID Event03", 16);
	put32(&b, 0);
	put(&b, "\x00\x02\x00\x02", 4);
	put32(&b, 1);
	put16(&b, 0x0012);
	put16(&b, 32);
	put(&b, "", 1);
	sm3_event(&b, 2, "one", 3);
	sm3_event(&b, 2, "two", 3);
	json_t *e = parse_ok(&b);
	assert_string_equal(
	    json_string_value(json_object_get(
	        json_array_get(json_object_get(json_array_get(e, 1), "digests"), 0), "alg")),
	    "SM3");
	assert_true(json_is_true(json_object_get(json_array_get(e, 1), "digest_matches_event")));
	json_decref(e);
	assert_int_equal(eventlog_replay(b.p, b.len, EVENTLOG_ALG_SM3, mr, present, &err), 0);
	memset(x, 0, 32);
	EVP_Digest("one", 3, x + 32, NULL, EVP_sm3(), NULL);
	EVP_Digest(x, 64, x, NULL, EVP_sm3(), NULL);
	EVP_Digest("two", 3, x + 32, NULL, EVP_sm3(), NULL);
	EVP_Digest(x, 64, want[1], NULL, EVP_sm3(), NULL);
	assert_memory_equal(mr[2], want[1], 32);
	assert_int_equal(present[2], 1);
	/* CC-MR 1..4 against four registers: 1, 3, 4 empty (zeros), 2 the chain */
	memset(want, 0, sizeof(want));
	memcpy(want[1], mr[2], 32);
	assert_int_equal(
	    eventlog_check_ccmrs(b.p, b.len, EVENTLOG_ALG_SM3, &want[0][0], &bad, &err), 0);
	want[3][31] ^= 1;
	assert_int_equal(
	    eventlog_check_ccmrs(b.p, b.len, EVENTLOG_ALG_SM3, &want[0][0], &bad, &err), -1);
	assert_int_equal(bad, 4);
	assert_non_null(strstr(err.msg, "Register [index = 4]"));
	/* SHA-384 replay of an SM3-only log leaves every register at zero */
	uint8_t mr384[EVENTLOG_MAX_MR][48];
	assert_int_equal(eventlog_replay_sha384(b.p, b.len, mr384, present, &err), 0);
	assert_memory_equal(mr384[2], (uint8_t[48]){0}, 48);
	/* an algorithm without a digest to replay */
	assert_int_equal(eventlog_replay(b.p, b.len, 0x0004, mr, present, &err), -1);
	assert_string_equal(err.msg, "CC event log: cannot replay digests of algorithm 0x0004");
	free(b.p);
}

static void test_eventlog_stops_at_end_markers(void **state)
{
	struct lb b = {0};
	json_t *e;
	size_t at;

	spec_id(&b, 0);
	event(&b, 1, 0x4, "\0\0\0\0", 4);
	at = b.len;
	put(&b, "\xff\xff\xff\xff\xff\xff\xff\xff garbage after the marker", 33);
	e = parse_ok(&b);
	assert_int_equal(json_array_size(e), 1);
	json_decref(e);
	memset(b.p + at, 0, 8);
	e = parse_ok(&b);
	assert_int_equal(json_array_size(e), 1);
	json_decref(e);
	b.len = at; /* no marker: the buffer's end */
	e = parse_ok(&b);
	assert_int_equal(json_array_size(e), 1);
	json_decref(e);
	free(b.p);
}

/* ---- details decoders ---- */

static void test_eventlog_details_decoders(void **state)
{
	json_t *d;

	/* EV_EFI_BOOT_SERVICES_APPLICATION: ACPI, PCI, GPT partition, file, unknown, end */
	d = details_of(
	    "000000000000000000000000000000000000000000000000"
	    "5700000000000000"
	    "02010c00d041030a00000000"
	    "010106000102"
	    "04012a000f000000002800000000000000500300000000005e27f1007553d5439eb5de2add4c99320202"
	    "040412006b00650072006e0065006c000000"
	    "0309050001"
	    "7fff0400",
	    0x80000003);
	assert_json(d, "{\"device_paths\": [\"ACPI(PNP0A03,0)\", \"Pci(1,2)\","
	               " \"HD(15,GPT,00F1275E-5375-43D5-9EB5-DE2ADD4C9932,0x2800,0x35000)\","
	               " \"File(kernel)\", \"Path(3,9,01)\"]}");
	json_decref(d);
	/* an image without a device path has no details */
	d = details_of("0000000000000000000000000000000000000000000000000000000000000000",
	               0x80000003);
	assert_json(d, "{}");
	json_decref(d);

	/* EV_EFI_VARIABLE_DRIVER_CONFIG SecureBoot = 01 */
	d = details_of("61dfe48bca93d211aa0d00e098032b8c0a000000000000000100000000000000"
	               "53006500630075007200650042006f006f007400"
	               "01",
	               0x80000001);
	assert_json(d, "{\"unicode_name\": \"SecureBoot\", \"unicode_name_length\": 10,"
	               " \"variable_data\": \"AQ==\", \"variable_data_length\": 1,"
	               " \"variable_name\": \"61dfe48b-ca93-d211-aa0d-00e098032b8c\"}");
	json_decref(d);

	/* EV_IPL: plain UTF-8 up to the NUL; GCE UTF-16 with its terminator dropped */
	d = details_of("677275625f636d6420736574000000", 0xd);
	assert_json(d, "{\"string\": \"grub_cmd set\"}");
	json_decref(d);
	d = details_of("2e006c0069006e00750078000000", 0xd);
	assert_json(d, "{\"string\": \"linux\"}");
	json_decref(d);
	d = details_of("ff00", 0xd);
	assert_json(d, "{\"string\": \"ff00\"}");
	json_decref(d);

	/* EV_EFI_HANDOFF_TABLES2: the length byte counts the NUL */
	d = details_of("095464785461626c6500aabb", 0x8000000b);
	assert_json(d, "{\"string\": \"TdxTable\"}");
	json_decref(d);

	/* EV_PLATFORM_CONFIG_FLAGS: 0x10 becomes a space, control characters go, non-UTF-8 is "" */
	d = details_of("6b6579000010000076616c7565", 0xa);
	assert_json(d, "{\"string\": \"key value\"}");
	json_decref(d);
	d = details_of("6b6579ff", 0xa);
	assert_json(d, "{\"string\": \"\"}");
	json_decref(d);

	/* EV_EVENT_TAG: NULs dropped; AAEL tagged events split, JSON content parsed */
	d = details_of("ed223b8f0d0000004c696e757820696e6974726400", 0x6);
	assert_json(d, "{\"string\": \"Linux initrd\"}");
	json_decref(d);
	{
		const char *ev = "kata_agent create_container {\"id\": 7}";
		char hex[256];
		char *h = hex_encode((const uint8_t *)ev, strlen(ev));

		/* tag 0x4141454c, size, data */
		snprintf(hex, sizeof(hex), "4c454141%02x000000%s", (unsigned)strlen(ev), h);
		free(h);
		d = details_of(hex, 0x6);
		assert_json(d, "{\"string\": \"kata_agent create_container {\\\"id\\\": 7}\","
		               " \"unicode_name\": \"AAEL\", \"data\": {\"domain\": \"kata_agent\","
		               " \"operation\": \"create_container\", \"content\": {\"id\": 7}}}");
		json_decref(d);
	}

	/* EV_SEPARATOR and types without a decoder: empty */
	d = details_of("00000000", 0x4);
	assert_json(d, "{}");
	json_decref(d);
}

/* ---- malformed logs ---- */

static void test_eventlog_refuses_truncated_logs(void **state)
{
	size_t len;
	uint8_t *buf = tl_slurp(evdir, "tdx/trustee/CCEL_data", &len);
	uint8_t mr[EVENTLOG_MAX_MR][48];
	int present[EVENTLOG_MAX_MR];
	struct err err = {0};

	parse_fails(buf, 0, "too short for the TCG_EfiSpecIdEvent");
	parse_fails(buf, 40,
	            "TCG_EfiSpecIdEvent size 40 runs past the end of the log (8 bytes "
	            "left at offset 32)");
	/* entry 1 (at 72) has a 5268-byte event: cut inside it, inside its digest, before it */
	parse_fails(buf, 72 + 100,
	            "entry 1 at offset 72 has event size 5268 but only 34 bytes "
	            "are left");
	parse_fails(buf, 72 + 20, "entry 1 at offset 72 is truncated in its SHA-384 digest");
	parse_fails(buf, 72 + 10, "entry 1 at offset 72 is truncated before its digest count");
	assert_int_equal(eventlog_replay_sha384(buf, 72 + 100, mr, present, &err), -1);
	assert_non_null(strstr(err.msg, "but only"));
	free(buf);
}

static void test_eventlog_refuses_oversized_event_size(void **state)
{
	size_t len;
	uint8_t *buf = tl_slurp(evdir, "tdx/go-tdx-guest/ccel/ccel_data.dat", &len);
	struct err err = {0};
	json_t *e;
	/* first entry after the spec ID event: u32 mr, type, count=1, u16 alg, 48, then size */
	size_t spec = 32 + (buf[28] | buf[29] << 8);
	size_t at = spec + 12 + 2 + 48;

	assert_int_equal(buf[spec + 8], 1);
	memcpy(buf + at, "\xf0\xff\xff\xff", 4);
	parse_fails(buf, len, "has event size 4294967280, more than the 1048576-byte limit");
	memcpy(buf + at, "\x00\x00\x08\x00", 4); /* 512 KiB: under the limit, past the end */
	parse_fails(buf, len, "has event size 524288 but only");
	assert_int_equal(eventlog_parse(buf, len, &e, &err), -1);
	free(buf);
}

static void test_eventlog_refuses_corrupt_headers(void **state)
{
	struct lb b = {0};
	size_t spec;

	spec_id(&b, 0);
	spec = b.len;
	b.p[4] = 4; /* first event not EV_NO_ACTION */
	parse_fails(b.p, b.len, "expected EV_NO_ACTION");
	b.p[4] = 3;
	b.p[32 + 14] = '0'; /* "Spec ID Event00": SHA-1 log format */
	parse_fails(b.p, b.len, "not a crypto-agile log");
	b.p[32 + 14] = '3';
	b.p[32 + 30] = 32; /* SHA-384 said to be 32 bytes */
	parse_fails(b.p, b.len, "gives SHA-384 digests 32 bytes, expected 48");
	b.p[32 + 30] = 48;
	b.p[32 + 28] = 0x77; /* unknown algorithm */
	parse_fails(b.p, b.len, "unknown digest algorithm 0x0077");
	b.p[32 + 28] = 0x0c;

	event(&b, 1, 0x4, "\0\0\0\0", 4);
	b.p[spec + 4] = 0x42; /* unknown event type */
	parse_fails(b.p, b.len, "entry 1 at offset 65 has unknown event type 0x42");
	b.p[spec + 4] = 0x4;
	b.p[spec + 8] = 17; /* digest count */
	parse_fails(b.p, b.len, "has 17 digests, more than 16");
	b.p[spec + 8] = 1;
	b.p[spec + 12] = 0x0b; /* SHA-256, not declared by the spec ID event */
	parse_fails(b.p, b.len,
	            "SHA-256 digest, an algorithm the TCG_EfiSpecIdEvent does not "
	            "declare");
	b.p[spec + 12] = 0x0c;
	put(&b, "\x01\x02\x03", 3); /* stray bytes at the end */
	parse_fails(b.p, b.len, "3 stray bytes at offset 135 after entry 1");
	free(b.p);
}

static void test_eventlog_refuses_sha1_digests(void **state)
{
	struct lb b = {0};
	uint8_t sha1[20] = {0};

	spec_id(&b, 1);
	put32(&b, 1);
	put32(&b, 0x4);
	put32(&b, 1);
	put16(&b, 0x0004);
	put(&b, sha1, 20);
	put32(&b, 0);
	parse_fails(b.p, b.len, "has a SHA-1 digest; only SHA-256, SHA-384, SHA-512 and SM3");
	free(b.p);
}

static void test_eventlog_refuses_bad_details(void **state)
{
	struct lb b = {0};
	uint8_t mr[EVENTLOG_MAX_MR][48];
	int present[EVENTLOG_MAX_MR];
	struct err err = {0};

	spec_id(&b, 0);
	event(&b, 1, 0x8000000a, "\x20td", 3); /* description longer than the event */
	parse_fails(b.p, b.len,
	            "entry 1 at offset 65 (EV_EFI_PLATFORM_FIRMWARE_BLOB2): "
	            "description of 32 bytes runs past the 3-byte event");
	/* the replay only needs the framing */
	assert_int_equal(eventlog_replay_sha384(b.p, b.len, mr, present, &err), 0);
	free(b.p);

	memset(&b, 0, sizeof(b));
	spec_id(&b, 0);
	event(&b, 1, 0x80000003,
	      "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
	      "\x0c\0\0\0\0\0\0\0"
	      "\x04\x04\x02\x00"
	      "\x7f\xff\x04\x00",
	      40);
	parse_fails(b.p, b.len, "device path node at byte 32 has length 2, outside 4..8");
	free(b.p);

	memset(&b, 0, sizeof(b));
	spec_id(&b, 0);
	event(&b, 1, 0x80000001,
	      "0123456789abcdef\xff\xff\xff\xff\xff\xff\xff\x7f"
	      "\0\0\0\0\0\0\0\0",
	      32);
	parse_fails(b.p, b.len, "variable name of 9223372036854775807 characters runs past");
	free(b.p);

	memset(&b, 0, sizeof(b));
	spec_id(&b, 0);
	event(&b, 1, 0x5, "\xc3\x28", 2);
	parse_fails(b.p, b.len, "(EV_ACTION): event data is not UTF-8");
	free(b.p);
}

static void test_eventlog_refuses_too_many_entries(void **state)
{
	struct lb b = {0};
	uint8_t *big;
	size_t at;

	spec_id(&b, 0);
	at = b.len;
	big = calloc(1, at + (EVENTLOG_MAX_ENTRIES + 1) * 16);
	memcpy(big, b.p, at);
	for (unsigned i = 0; i <= EVENTLOG_MAX_ENTRIES; i++) {
		big[at + 16 * i + 4] = 0x4; /* EV_SEPARATOR with no digests and no data */
	}
	parse_fails(big, at + (EVENTLOG_MAX_ENTRIES + 1) * 16, "more than 65536 entries");
	free(big);
	free(b.p);
}

int main(void)
{
	tl_testdata_dir(evdir, sizeof(evdir), "evidence");
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_eventlog_trustee_ccel_equals_golden_claims),
	    cmocka_unit_test(test_eventlog_go_tdx_guest_replay_equals_cos113_rtmrs),
	    cmocka_unit_test(test_eventlog_go_tdx_guest_claims),
	    cmocka_unit_test(test_eventlog_trustee_ccel_replay_and_quote4_mismatch),
	    cmocka_unit_test(test_eventlog_trustee_ovmf_log_parses_and_replays),
	    cmocka_unit_test(test_eventlog_digest_matches_event_is_computed),
	    cmocka_unit_test(test_eventlog_replay_extends_per_index),
	    cmocka_unit_test(test_eventlog_replays_sm3_digests),
	    cmocka_unit_test(test_eventlog_stops_at_end_markers),
	    cmocka_unit_test(test_eventlog_details_decoders),
	    cmocka_unit_test(test_eventlog_refuses_truncated_logs),
	    cmocka_unit_test(test_eventlog_refuses_oversized_event_size),
	    cmocka_unit_test(test_eventlog_refuses_corrupt_headers),
	    cmocka_unit_test(test_eventlog_refuses_sha1_digests),
	    cmocka_unit_test(test_eventlog_refuses_bad_details),
	    cmocka_unit_test(test_eventlog_refuses_too_many_entries),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
