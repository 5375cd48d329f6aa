/*
 * eventlog: one walker over a TCG2 crypto-agile CC event log, and its two users: the claim
 * builder (`uefi_event_logs`) and the replay a verifier compares with its RTMRs (SHA-384 for
 * TDX, SM3 for Hygon CSV v2).
 *
 * The walker owns all bounds checking of the record framing; it hands each event to a visitor
 * as pointers into the caller's buffer, so the builder and the replay see exactly the same
 * events and neither re-reads lengths. The format is in eventlog.h.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as/evidence/eventlog.h"
#include "b64.h"

/* TCG algorithm registry entries Trustee knows. md is NULL where Trustee refuses the
 * algorithm in an event (it has no way to compute digest_matches_event for it). */
struct alg {
	uint16_t id;
	const char *name;
	uint16_t size; /* 0: whatever the TCG_EfiSpecIdEvent says */
	const EVP_MD *(*md)(void);
};

#ifndef OPENSSL_NO_SM3
#define SM3_MD EVP_sm3
#else
#define SM3_MD NULL
#endif

static const struct alg algs[] = {
    {0x0001, "RSA", 0, NULL},
    {0x0003, "TDES", 0, NULL},
    {0x0004, "SHA-1", 20, NULL},
    {0x000b, "SHA-256", 32, EVP_sha256},
    {0x000c, "SHA-384", 48, EVP_sha384},
    {0x000d, "SHA-512", 64, EVP_sha512},
    {0x0012, "SM3", 32, SM3_MD},
};
#define NALGS (sizeof(algs) / sizeof(algs[0]))

static const struct alg *alg_find(uint16_t id)
{
	for (size_t i = 0; i < NALGS; i++)
		if (algs[i].id == id)
			return &algs[i];
	return NULL;
}

static const struct {
	uint32_t type;
	const char *name;
} types[] = {
    {0x0, "EV_PREBOOT_CERT"},
    {0x1, "EV_POST_CODE"},
    {0x2, "EV_UNUSED"},
    {0x3, "EV_NO_ACTION"},
    {0x4, "EV_SEPARATOR"},
    {0x5, "EV_ACTION"},
    {0x6, "EV_EVENT_TAG"},
    {0x7, "EV_S_CRTM_CONTENTS"},
    {0x8, "EV_S_CRTM_VERSION"},
    {0x9, "EV_CPU_MICROCODE"},
    {0xa, "EV_PLATFORM_CONFIG_FLAGS"},
    {0xb, "EV_TABLE_OF_DEVICES"},
    {0xc, "EV_COMPACT_HASH"},
    {0xd, "EV_IPL"},
    {0xe, "EV_IPL_PARTITION_DATA"},
    {0xf, "EV_NONHOST_CODE"},
    {0x10, "EV_NONHOST_CONFIG"},
    {0x11, "EV_NONHOST_INFO"},
    {0x12, "EV_OMIT_BOOT_DEVICE_EVENTS"},
    {0x80000000, "EV_EFI_EVENT_BASE"},
    {0x80000001, "EV_EFI_VARIABLE_DRIVER_CONFIG"},
    {0x80000002, "EV_EFI_VARIABLE_BOOT"},
    {0x80000003, "EV_EFI_BOOT_SERVICES_APPLICATION"},
    {0x80000004, "EV_EFI_BOOT_SERVICES_DRIVER"},
    {0x80000005, "EV_EFI_RUNTIME_SERVICES_DRIVER"},
    {0x80000006, "EV_EFI_GPT_EVENT"},
    {0x80000007, "EV_EFI_ACTION"},
    {0x80000008, "EV_EFI_PLATFORM_FIRMWARE_BLOB"},
    {0x80000009, "EV_EFI_HANDOFF_TABLES"},
    {0x8000000a, "EV_EFI_PLATFORM_FIRMWARE_BLOB2"},
    {0x8000000b, "EV_EFI_HANDOFF_TABLES2"},
    {0x8000000c, "EV_EFI_VARIABLE_BOOT2"},
    {0x80000010, "EV_EFI_HCRTM_EVENT"},
    {0x800000e0, "EV_EFI_VARIABLE_AUTHORITY"},
    {0x800000e1, "EV_EFI_SPDM_FIRMWARE_BLOB"},
    {0x800000e2, "EV_EFI_SPDM_FIRMWARE_CONFIG"},
};

const char *eventlog_type_name(uint32_t type)
{
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (types[i].type == type)
			return types[i].name;
	return NULL;
}

#define EV_NO_ACTION 0x3
#define SPEC_ID_SIGNATURE "Spec ID Event03" /* 16 bytes with its NUL */

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* One TCG_PCR_EVENT2, borrowed from the log buffer. */
struct ev {
	unsigned seq;  /* 1-based position after the TCG_EfiSpecIdEvent */
	size_t offset; /* of the record in the log */
	uint32_t mr;
	uint32_t type;
	const char *type_name;
	unsigned ndigests;
	struct {
		const struct alg *alg;
		const uint8_t *d;
	} dig[EVENTLOG_MAX_DIGESTS];
	const uint8_t *data;
	uint32_t size;
};

typedef int (*ev_visit)(const struct ev *ev, void *arg, struct err *err);

/* Digest sizes declared by the TCG_EfiSpecIdEvent, by index into algs[] (0 = not declared). */
struct sizes {
	uint16_t size[NALGS];
	int declared[NALGS];
};

/* TCG_EfiSpecIdEvent: the header record in the SHA-1 TCG_PCR_EVENT layout (u32 pcr, u32 type,
 * 20-byte digest, u32 size, event), whose event is {signature[16], u32 platformClass,
 * u8 minor, u8 major, u8 errata, u8 uintnSize, u32 numberOfAlgorithms,
 * {u16 algId, u16 digestSize}[n], u8 vendorInfoSize, vendorInfo}. Returns its length. */
static int spec_id_event(const uint8_t *buf, size_t len, struct sizes *sz, size_t *used,
                         struct err *err)
{
	const uint8_t *ev;
	uint32_t type, evsize, nalg;
	size_t off;

	if (len < 32)
		return err_set(err,
		               "CC event log: %zu bytes is too short for the TCG_EfiSpecIdEvent "
		               "header (32 bytes)",
		               len);
	type = rd32(buf + 4);
	if (type != EV_NO_ACTION)
		return err_set(err,
		               "CC event log: first event at offset 0 has type 0x%x, expected "
		               "EV_NO_ACTION (the TCG_EfiSpecIdEvent)",
		               type);
	evsize = rd32(buf + 28);
	if (evsize > len - 32)
		return err_set(err,
		               "CC event log: TCG_EfiSpecIdEvent size %u runs past the end of "
		               "the log (%zu bytes left at offset 32)",
		               evsize, len - 32);
	ev = buf + 32;
	if (evsize < 29)
		return err_set(err,
		               "CC event log: TCG_EfiSpecIdEvent of %u bytes is shorter than "
		               "its 29-byte minimum",
		               evsize);
	if (memcmp(ev, SPEC_ID_SIGNATURE, 16) != 0)
		return err_set(err,
		               "CC event log: TCG_EfiSpecIdEvent signature at offset 32 is not "
		               "\"Spec ID Event03\" (not a crypto-agile log)");
	nalg = rd32(ev + 24);
	off = 28;
	if (nalg > (evsize - off - 1) / 4)
		return err_set(err,
		               "CC event log: TCG_EfiSpecIdEvent declares %u algorithms, more "
		               "than its %u bytes can hold",
		               nalg, evsize);
	memset(sz, 0, sizeof(*sz));
	for (uint32_t i = 0; i < nalg; i++, off += 4) {
		uint16_t id = rd16(ev + off), size = rd16(ev + off + 2);
		const struct alg *a = alg_find(id);

		if (a == NULL)
			return err_set(err,
			               "CC event log: TCG_EfiSpecIdEvent declares unknown "
			               "digest algorithm 0x%04x at offset %zu",
			               id, 32 + off);
		if (a->size != 0 && size != a->size)
			return err_set(err,
			               "CC event log: TCG_EfiSpecIdEvent gives %s digests %u "
			               "bytes, expected %u",
			               a->name, size, a->size);
		sz->size[a - algs] = size;
		sz->declared[a - algs] = 1;
	}
	/* vendorInfoSize, then exactly that much vendor info must end the event. */
	if ((size_t)ev[off] + off + 1 != evsize)
		return err_set(err,
		               "CC event log: TCG_EfiSpecIdEvent vendor info of %u bytes does "
		               "not end the %u-byte event",
		               ev[off], evsize);
	*used = 32 + (size_t)evsize;
	return 0;
}

/* Walk every TCG_PCR_EVENT2 after the TCG_EfiSpecIdEvent, calling fn for each. */
static int walk(const uint8_t *buf, size_t len, ev_visit fn, void *arg, struct err *err)
{
	struct sizes sz;
	struct ev ev;
	size_t off = 0;
	unsigned seq = 0;
	static const uint8_t zeros[8], ones[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

	if (buf == NULL && len != 0)
		return err_set(err, "CC event log: no data");
	if (spec_id_event(buf, len, &sz, &off, err) < 0)
		return -1;
	while (off < len) {
		size_t left = len - off, p;
		uint32_t count, size;

		if (left < 8)
			return err_set(err,
			               "CC event log: %zu stray bytes at offset %zu after entry %u "
			               "are neither an event nor an end marker",
			               left, off, seq);
		if (memcmp(buf + off, zeros, 8) == 0 || memcmp(buf + off, ones, 8) == 0)
			break;
		if (seq == EVENTLOG_MAX_ENTRIES)
			return err_set(err, "CC event log: more than %u entries",
			               EVENTLOG_MAX_ENTRIES);
		memset(&ev, 0, sizeof(ev));
		ev.seq = ++seq;
		ev.offset = off;
		ev.mr = rd32(buf + off);
		ev.type = rd32(buf + off + 4);
		ev.type_name = eventlog_type_name(ev.type);
		if (ev.type_name == NULL)
			return err_set(err,
			               "CC event log: entry %u at offset %zu has unknown event "
			               "type 0x%x",
			               seq, off, ev.type);
		p = 8;
		if (left - p < 4)
			return err_set(err,
			               "CC event log: entry %u at offset %zu is truncated before "
			               "its digest count",
			               seq, off);
		count = rd32(buf + off + p);
		p += 4;
		if (count > EVENTLOG_MAX_DIGESTS)
			return err_set(err,
			               "CC event log: entry %u at offset %zu has %u digests, "
			               "more than %u",
			               seq, off, count, EVENTLOG_MAX_DIGESTS);
		for (uint32_t i = 0; i < count; i++) {
			const struct alg *a;
			uint16_t id;
			size_t dlen;

			if (left - p < 2)
				return err_set(err,
				               "CC event log: entry %u at offset %zu is truncated "
				               "in digest %u",
				               seq, off, i + 1);
			id = rd16(buf + off + p);
			a = alg_find(id);
			if (a == NULL)
				return err_set(err,
				               "CC event log: entry %u at offset %zu has a digest "
				               "of unknown algorithm 0x%04x",
				               seq, off, id);
			if (!sz.declared[a - algs])
				return err_set(err,
				               "CC event log: entry %u at offset %zu has a %s "
				               "digest, an algorithm the TCG_EfiSpecIdEvent does "
				               "not declare",
				               seq, off, a->name);
			if (a->md == NULL)
				return err_set(err,
				               "CC event log: entry %u at offset %zu has a %s "
				               "digest; only SHA-256, SHA-384, SHA-512 and SM3 "
				               "digests are supported",
				               seq, off, a->name);
			p += 2;
			dlen = sz.size[a - algs];
			if (left - p < dlen)
				return err_set(err,
				               "CC event log: entry %u at offset %zu is truncated "
				               "in its %s digest",
				               seq, off, a->name);
			ev.dig[i].alg = a;
			ev.dig[i].d = buf + off + p;
			p += dlen;
		}
		ev.ndigests = count;
		if (left - p < 4)
			return err_set(err,
			               "CC event log: entry %u at offset %zu is truncated before "
			               "its event size",
			               seq, off);
		size = rd32(buf + off + p);
		p += 4;
		if (size > EVENTLOG_MAX_EVENT_SIZE)
			return err_set(err,
			               "CC event log: entry %u at offset %zu has event size %u, "
			               "more than the %u-byte limit",
			               seq, off, size, EVENTLOG_MAX_EVENT_SIZE);
		if (size > left - p)
			return err_set(err,
			               "CC event log: entry %u at offset %zu has event size %u "
			               "but only %zu bytes are left",
			               seq, off, size, left - p);
		ev.data = buf + off + p;
		ev.size = size;
		p += size;
		if (fn(&ev, arg, err) < 0)
			return -1;
		off += p;
	}
	return 0;
}

/* ---- claims ---- */

/* Trustee: true when every digest of the entry is the hash of its event data. */
static int digests_match(const struct ev *ev, int *match, struct err *err)
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned mdlen;

	*match = 1;
	for (unsigned i = 0; i < ev->ndigests; i++) {
		const struct alg *a = ev->dig[i].alg;

		if (!EVP_Digest(ev->data, ev->size, md, &mdlen, a->md(), NULL))
			return err_set(err, "CC event log: %s digest computation failed", a->name);
		if (mdlen != a->size || CRYPTO_memcmp(md, ev->dig[i].d, mdlen) != 0)
			*match = 0;
	}
	return 0;
}

static int add_entry(const struct ev *ev, void *arg, struct err *err)
{
	json_t *entries = arg, *entry = NULL, *details = NULL, *digests;
	char *b64 = NULL;
	int match;

	if (eventlog_details(ev->type, ev->data, ev->size, &details, err) < 0)
		return err_prefix(err, "CC event log: entry %u at offset %zu (%s)", ev->seq,
		                  ev->offset, ev->type_name);
	if (digests_match(ev, &match, err) < 0)
		goto fail;
	digests = json_array();
	entry = json_object();
	if (digests == NULL || entry == NULL) {
		json_decref(digests);
		goto oom;
	}
	/* Trustee's field order (serde), though only the values matter to consumers. */
	json_object_set_new(entry, "details", details);
	details = NULL;
	json_object_set_new(entry, "digest_matches_event", json_boolean(match));
	json_object_set_new(entry, "digests", digests);
	for (unsigned i = 0; i < ev->ndigests; i++) {
		const struct alg *a = ev->dig[i].alg;
		char *hex = hex_encode(ev->dig[i].d, a->size);
		json_t *d = hex ? json_pack("{s:s,s:s}", "alg", a->name, "digest", hex) : NULL;

		free(hex);
		if (d == NULL || json_array_append_new(digests, d) < 0)
			goto oom;
	}
	b64 = b64_encode(ev->data, ev->size, B64_STD);
	if (b64 == NULL)
		goto oom;
	if (json_object_set_new(entry, "event", json_string(b64)) < 0 ||
	    json_object_set_new(entry, "index", json_integer(ev->mr)) < 0 ||
	    json_object_set_new(entry, "type_name", json_string(ev->type_name)) < 0)
		goto oom;
	if (json_array_append_new(entries, entry) < 0) {
		entry = NULL; /* consumed even on failure */
		goto oom;
	}
	free(b64);
	return 0;
oom:
	err_set(err, "CC event log: out of memory");
fail:
	free(b64);
	json_decref(details);
	json_decref(entry);
	return -1;
}

int eventlog_parse(const uint8_t *buf, size_t len, json_t **entries, struct err *err)
{
	json_t *arr = json_array();

	*entries = NULL;
	if (arr == NULL)
		return err_set(err, "CC event log: out of memory");
	if (walk(buf, len, add_entry, arr, err) < 0) {
		json_decref(arr);
		return -1;
	}
	*entries = arr;
	return 0;
}

/* ---- replay ---- */

struct replay {
	const struct alg *alg;
	uint8_t (*mr)[EVENTLOG_MAX_DIGEST];
	int *present;
};

static int extend(const struct ev *ev, void *arg, struct err *err)
{
	struct replay *r = arg;
	size_t n = r->alg->size;
	EVP_MD_CTX *ctx;
	int ok = 1;

	if (ev->mr >= EVENTLOG_MAX_MR)
		return 0;
	r->present[ev->mr] = 1;
	for (unsigned i = 0; i < ev->ndigests && ok; i++) {
		if (ev->dig[i].alg != r->alg)
			continue;
		ctx = EVP_MD_CTX_new();
		ok = ctx != NULL && EVP_DigestInit_ex(ctx, r->alg->md(), NULL) &&
		     EVP_DigestUpdate(ctx, r->mr[ev->mr], n) &&
		     EVP_DigestUpdate(ctx, ev->dig[i].d, n) &&
		     EVP_DigestFinal_ex(ctx, r->mr[ev->mr], NULL);
		EVP_MD_CTX_free(ctx);
	}
	return ok ? 0 : err_set(err, "CC event log: %s extend failed", r->alg->name);
}

int eventlog_replay(const uint8_t *buf, size_t len, uint16_t alg_id,
                    uint8_t mr[EVENTLOG_MAX_MR][EVENTLOG_MAX_DIGEST], int present[EVENTLOG_MAX_MR],
                    struct err *err)
{
	struct replay r = {alg_find(alg_id), mr, present};

	memset(mr, 0, EVENTLOG_MAX_MR * EVENTLOG_MAX_DIGEST);
	memset(present, 0, EVENTLOG_MAX_MR * sizeof(int));
	if (r.alg == NULL || r.alg->md == NULL || r.alg->size == 0)
		return err_set(err, "CC event log: cannot replay digests of algorithm 0x%04x",
		               alg_id);
	return walk(buf, len, extend, &r, err);
}

int eventlog_replay_sha384(const uint8_t *buf, size_t len, uint8_t mr[EVENTLOG_MAX_MR][48],
                           int present[EVENTLOG_MAX_MR], struct err *err)
{
	uint8_t all[EVENTLOG_MAX_MR][EVENTLOG_MAX_DIGEST];

	if (eventlog_replay(buf, len, EVENTLOG_ALG_SHA384, all, present, err) < 0)
		return -1;
	for (int i = 0; i < EVENTLOG_MAX_MR; i++)
		memcpy(mr[i], all[i], 48);
	return 0;
}

int eventlog_check_ccmrs(const uint8_t *buf, size_t len, uint16_t alg_id, const uint8_t *want,
                         int *bad_index, struct err *err)
{
	uint8_t mr[EVENTLOG_MAX_MR][EVENTLOG_MAX_DIGEST];
	int present[EVENTLOG_MAX_MR];
	size_t n;

	if (bad_index != NULL)
		*bad_index = 0;
	if (eventlog_replay(buf, len, alg_id, mr, present, err) < 0)
		return -1;
	n = alg_find(alg_id)->size;
	for (int i = 0; i < 4; i++) {
		char *calc, *given;

		if (CRYPTO_memcmp(mr[i + 1], want + (size_t)i * n, n) == 0)
			continue;
		calc = hex_encode(mr[i + 1], n);
		given = hex_encode(want + (size_t)i * n, n);
		err_set(err,
		        "Eventlog does not pass measurement replay CC Event Log Measurement "
		        "Register [index = %d]. Calculated value: %s, Given value: %s",
		        i + 1, calc ? calc : "?", given ? given : "?");
		free(calc);
		free(given);
		if (bad_index != NULL)
			*bad_index = i + 1;
		return -1;
	}
	return 0;
}

int eventlog_check_rtmrs(const uint8_t *buf, size_t len, const uint8_t rtmr[4][48], struct err *err)
{
	return eventlog_check_ccmrs(buf, len, EVENTLOG_ALG_SHA384, &rtmr[0][0], NULL, err);
}
