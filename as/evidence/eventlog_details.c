/*
 * eventlog_details: the `details` object of one CC event log entry, decoded from its event
 * data by event type exactly as Trustee's eventlog crate does (spec as-rvps.md §5.12), so the
 * `uefi_event_logs` claim policies see is the same string for string.
 *
 * Trustee's decoders have sharp edges that are part of the claim format and are kept:
 *  - EV_EFI_PLATFORM_FIRMWARE_BLOB2 / HANDOFF_TABLES2: a length byte L counting the description
 *    with its NUL; the description is bytes 1..L (L-1 bytes, NUL dropped), strict UTF-8.
 *  - EV_PLATFORM_CONFIG_FLAGS: the whole event as UTF-8 ("" if not valid), 0x10 turned into a
 *    space, then every control character (C0, DEL, C1) removed.
 *  - EV_IPL: "\x2e\x00"-prefixed UTF-16LE (GCE) minus its last 2 bytes; otherwise UTF-8 up to
 *    the first NUL, or the hex of the whole event when that is not UTF-8.
 *  - EV_EVENT_TAG: tagged event {u32 id, u32 size, data}; string = lossy UTF-8 without NULs;
 *    the AAEL tag (0x4141454c) adds data {domain, operation, content} split at the first two
 *    spaces, content parsed as JSON when it is JSON.
 *  - EV_EFI_VARIABLE_*: UEFI_VARIABLE_DATA; variable_name is the GUID's bytes in hex as stored
 *    (not the registry form), variable_data b64 ("" when empty).
 *  - EV_EFI_BOOT_SERVICES_APPLICATION: UEFI_IMAGE_LOAD_EVENT; its device path minus the last
 *    4 bytes (the end node), one string per node; a node no formatter knows becomes
 *    "Path(type,subtype,hex)".
 * Decoders that fail make the whole log fail, as in Trustee. Where Trustee would panic on a
 * malformed event (and so refuse the evidence) this code returns an error instead.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as/evidence/eventlog.h"
#include "b64.h"

static uint16_t rd16le(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32le(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64le(const uint8_t *p)
{
	return (uint64_t)rd32le(p) | (uint64_t)rd32le(p + 4) << 32;
}

/* ---- growable string ---- */

struct sb {
	char *p;
	size_t len, cap;
	int oom;
};

static void sb_add(struct sb *s, const void *d, size_t n)
{
	if (s->oom)
		return;
	if (s->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 64;
		char *np;

		while (cap < s->len + n + 1)
			cap *= 2;
		np = realloc(s->p, cap);
		if (np == NULL) {
			s->oom = 1;
			return;
		}
		s->p = np;
		s->cap = cap;
	}
	memcpy(s->p + s->len, d, n);
	s->len += n;
	s->p[s->len] = 0;
}

static void sb_printf(struct sb *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sb *s, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		sb_add(s, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void sb_hex(struct sb *s, const uint8_t *d, size_t n)
{
	static const char x[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		char c[2] = {x[d[i] >> 4], x[d[i] & 15]};
		sb_add(s, c, 2);
	}
}

static void sb_cp(struct sb *s, uint32_t cp)
{
	uint8_t u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (uint8_t)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (uint8_t)(0xc0 | cp >> 6);
		u[1] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (uint8_t)(0xe0 | cp >> 12);
		u[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
		u[2] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (uint8_t)(0xf0 | cp >> 18);
		u[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
		u[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
		u[3] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 4;
	}
	sb_add(s, u, n);
}

/* A JSON string of the buffer (which is valid UTF-8 and may hold NULs); NULL on OOM. */
static json_t *sb_json(struct sb *s)
{
	json_t *j = s->oom ? NULL : json_stringn(s->p ? s->p : "", s->len);

	free(s->p);
	memset(s, 0, sizeof(*s));
	return j;
}

/* ---- Unicode, with Rust's std semantics (the claim strings must be the same) ---- */

/* Length of the well-formed UTF-8 sequence at p[0..n) (n >= 1), or minus the length of the
 * maximal invalid prefix there (what from_utf8_lossy replaces with one U+FFFD). */
static int utf8_seq(const uint8_t *p, size_t n, uint32_t *cp)
{
	uint8_t b = p[0], lo = 0x80, hi = 0xbf;
	int w;

	if (b < 0x80) {
		*cp = b;
		return 1;
	}
	if (b >= 0xc2 && b <= 0xdf)
		w = 2;
	else if (b >= 0xe0 && b <= 0xef)
		w = 3;
	else if (b >= 0xf0 && b <= 0xf4)
		w = 4;
	else
		return -1;
	if (b == 0xe0)
		lo = 0xa0;
	else if (b == 0xed)
		hi = 0x9f;
	else if (b == 0xf0)
		lo = 0x90;
	else if (b == 0xf4)
		hi = 0x8f;
	*cp = b & (w == 2 ? 0x1f : w == 3 ? 0x0f : 0x07);
	for (int i = 1; i < w; i++) {
		if ((size_t)i >= n || p[i] < lo || p[i] > hi)
			return -i;
		*cp = *cp << 6 | (p[i] & 0x3f);
		lo = 0x80;
		hi = 0xbf;
	}
	return w;
}

static int utf8_valid(const uint8_t *p, size_t n)
{
	uint32_t cp;

	for (size_t i = 0; i < n;) {
		int w = utf8_seq(p + i, n - i, &cp);

		if (w < 0)
			return 0;
		i += (size_t)w;
	}
	return 1;
}

static void sb_utf8_lossy(struct sb *s, const uint8_t *p, size_t n, int drop_nul)
{
	uint32_t cp;

	for (size_t i = 0; i < n;) {
		int w = utf8_seq(p + i, n - i, &cp);

		if (w < 0) {
			sb_cp(s, 0xfffd);
			i += (size_t)-w;
			continue;
		}
		if (!(drop_nul && cp == 0))
			sb_add(s, p + i, (size_t)w);
		i += (size_t)w;
	}
}

/* UTF-16LE of nwords units at p. strict: refuse unpaired surrogates (String::from_utf16),
 * else replace each with U+FFFD (from_utf16_lossy). */
static int sb_utf16(struct sb *s, const uint8_t *p, size_t nwords, int strict)
{
	for (size_t i = 0; i < nwords; i++) {
		uint32_t u = rd16le(p + 2 * i);

		if (u >= 0xd800 && u <= 0xdbff && i + 1 < nwords) {
			uint32_t v = rd16le(p + 2 * i + 2);

			if (v >= 0xdc00 && v <= 0xdfff) {
				sb_cp(s, 0x10000 + ((u - 0xd800) << 10) + (v - 0xdc00));
				i++;
				continue;
			}
		}
		if (u >= 0xd800 && u <= 0xdfff) {
			if (strict)
				return -1;
			u = 0xfffd;
		}
		sb_cp(s, u);
	}
	return 0;
}

/* ---- UEFI device path nodes (UEFI 2.10 §10.3) ---- */

/* EFI_GUID in its registry form: three little-endian fields, then 8 bytes, upper case. */
static void sb_guid(struct sb *s, const uint8_t *g)
{
	sb_printf(s, "%08" PRIX32 "-%04X-%04X-%02X%02X-%02X%02X%02X%02X%02X%02X", rd32le(g),
	          rd16le(g + 4), rd16le(g + 6), g[8], g[9], g[10], g[11], g[12], g[13], g[14],
	          g[15]);
}

static void sb_ipv4(struct sb *s, uint32_t a)
{
	sb_printf(s, "%u.%u.%u.%u", a >> 24, a >> 16 & 0xff, a >> 8 & 0xff, a & 0xff);
}

/* Hardware/1 PCI: function then device number. */
static int dp_pci(struct sb *s, const uint8_t *d, size_t n)
{
	if (n < 2)
		return -1;
	sb_printf(s, "Pci(%u,%u)", d[0], d[1]);
	return 0;
}

/* ACPI/1: compressed EISA HID and UID. */
static int dp_acpi(struct sb *s, const uint8_t *d, size_t n)
{
	uint32_t hid, uid, v;

	if (n < 8)
		return -1;
	hid = rd32le(d);
	uid = rd32le(d + 4);
	v = hid & 0xffff;
	sb_printf(s, "ACPI(%c%c%c%04" PRIX32 ",%" PRIu32 ")", (char)('@' + (v >> 10 & 0x1f)),
	          (char)('@' + (v >> 5 & 0x1f)), (char)('@' + (v & 0x1f)), hid >> 16, uid);
	return 0;
}

static int dp_fibre_ex(struct sb *s, const uint8_t *d, size_t n)
{
	if (n < 16)
		return -1;
	sb_add(s, "FibreEx(0x", 10);
	sb_hex(s, d, 8);
	sb_add(s, ",0x", 3);
	sb_hex(s, d + 8, 8);
	sb_add(s, ")", 1);
	return 0;
}

static int dp_usb(struct sb *s, const uint8_t *d, size_t n)
{
	if (n < 2)
		return -1;
	sb_printf(s, "USB(%u,%u)", d[0], d[1]);
	return 0;
}

/* MAC: 32-byte padded address and an interface type; the hex of the first 31 bytes with its
 * trailing '0' digits trimmed (Trustee's rendering, odd as it is for addresses ending in 0). */
static int dp_mac(struct sb *s, const uint8_t *d, size_t n)
{
	static const char x[] = "0123456789ABCDEF";
	char hex[62];
	size_t len = 62;

	if (n != 33)
		return -1;
	for (int i = 0; i < 31; i++) {
		hex[2 * i] = x[d[i] >> 4];
		hex[2 * i + 1] = x[d[i] & 15];
	}
	while (len > 0 && hex[len - 1] == '0')
		len--;
	sb_add(s, "Mac(", 4);
	sb_add(s, hex, len);
	sb_printf(s, ",0x%02x)", d[32]);
	return 0;
}

/* IPv4: local, remote (u32 read little-endian, printed most significant octet first),
 * ports, protocol, static flag, gateway, subnet mask. */
static int dp_ipv4(struct sb *s, const uint8_t *d, size_t n)
{
	uint16_t proto;
	uint32_t gw, mask;

	if (n < 23)
		return -1;
	proto = rd16le(d + 12);
	gw = rd32le(d + 15);
	mask = rd32le(d + 19);
	sb_add(s, "IPv4(", 5);
	sb_ipv4(s, rd32le(d + 4));
	sb_printf(s, ",%s,%s,",
	          proto == 6    ? "TCP"
	          : proto == 17 ? "UDP"
	                        : "",
	          d[14] == 0   ? "DHCP"
	          : d[14] == 1 ? "Static"
	                       : "");
	sb_ipv4(s, rd32le(d));
	if (gw != 0 || mask != 0)
		sb_printf(s, ",%" PRIu32 ",%" PRIu32, gw, mask);
	sb_add(s, ")", 1);
	return 0;
}

/* Media/1 hard drive: partition number, start, size, signature, MBR/GPT format. Needs the
 * signature type byte too (Trustee indexes byte 37). */
static int dp_hd(struct sb *s, const uint8_t *d, size_t n)
{
	uint32_t part;

	if (n < 38 || (d[36] != 1 && d[36] != 2))
		return -1;
	part = rd32le(d);
	sb_printf(s, "HD(%" PRIu32 ",%s,", part, d[36] == 1 ? "MBR" : "GPT");
	if (d[36] == 1)
		sb_printf(s, "0x%08" PRIx32, rd32le(d + 20));
	else
		sb_guid(s, d + 20);
	if (part != 0)
		sb_printf(s, ",0x%" PRIx64 ",0x%" PRIx64, rd64le(d + 4), rd64le(d + 12));
	sb_add(s, ")", 1);
	return 0;
}

static int dp_ven_media(struct sb *s, const uint8_t *d, size_t n)
{
	if (n < 16)
		return -1;
	sb_add(s, "VenMedia(", 9);
	sb_guid(s, d);
	sb_add(s, ",", 1);
	sb_hex(s, d + 16, n - 16);
	sb_add(s, ")", 1);
	return 0;
}

/* Media/4 file path: UTF-16LE with its terminating NUL unit dropped. */
static int dp_file(struct sb *s, const uint8_t *d, size_t n)
{
	if (n == 0 || n % 2 != 0)
		return -1;
	sb_add(s, "File(", 5);
	sb_utf16(s, d, n / 2 - 1, 0);
	sb_add(s, ")", 1);
	return 0;
}

/* BIOS boot specification: device type, status flag, NUL-terminated description. */
static int dp_bbs(struct sb *s, const uint8_t *d, size_t n)
{
	static const struct {
		uint16_t t;
		const char *name;
	} names[] = {{0x01, "FLOPPY"}, {0x02, "HARD_DRIVE"}, {0x03, "CDROM"},
	             {0x04, "PCMCIA"}, {0x05, "USB"},        {0x06, "EMBEDDED_NETWORK"},
	             {0x80, "DEV"},    {0xff, "UNKNOWN"}};
	const char *name = NULL;
	uint16_t t;
	size_t dlen = 0;

	if (n < 4)
		return -1;
	t = rd16le(d);
	while (4 + dlen < n && d[4 + dlen] != 0)
		dlen++;
	if (!utf8_valid(d + 4, dlen))
		return -1;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].t == t)
			name = names[i].name;
	sb_add(s, "BBS(", 4);
	if (name != NULL)
		sb_add(s, name, strlen(name));
	else
		sb_printf(s, "%u", t);
	sb_add(s, ",", 1);
	sb_add(s, d + 4, dlen);
	sb_printf(s, ",%u)", rd16le(d + 2));
	return 0;
}

static const struct {
	uint8_t type, sub;
	int (*fmt)(struct sb *, const uint8_t *, size_t);
} dp_formats[] = {
    {0x01, 0x01, dp_pci}, {0x02, 0x01, dp_acpi},      {0x03, 0x15, dp_fibre_ex},
    {0x03, 0x05, dp_usb}, {0x03, 0x0b, dp_mac},       {0x03, 0x0c, dp_ipv4},
    {0x04, 0x01, dp_hd},  {0x04, 0x03, dp_ven_media}, {0x04, 0x04, dp_file},
    {0x05, 0x01, dp_bbs},
};

/* One node as a JSON string; data is the node body after its 4-byte header. */
static json_t *dp_node(uint8_t type, uint8_t sub, const uint8_t *d, size_t n)
{
	struct sb s = {0};

	for (size_t i = 0; i < sizeof(dp_formats) / sizeof(dp_formats[0]); i++) {
		if (dp_formats[i].type != type || dp_formats[i].sub != sub)
			continue;
		if (dp_formats[i].fmt(&s, d, n) == 0)
			return sb_json(&s);
		free(s.p);
		memset(&s, 0, sizeof(s));
		break;
	}
	sb_printf(&s, "Path(%u,%u,", type, sub);
	sb_hex(&s, d, n);
	sb_add(&s, ")", 1);
	return sb_json(&s);
}

/* ---- per event type ---- */

static int set_string(json_t *det, struct sb *s, struct err *err)
{
	json_t *j = sb_json(s);

	if (j == NULL || json_object_set_new(det, "string", j) < 0)
		return err_set(err, "out of memory");
	return 0;
}

/* EV_POST_CODE, EV_ACTION, EV_COMPACT_HASH, EV_OMIT_BOOT_DEVICE_EVENTS, EV_EFI_ACTION: the
 * event as UTF-8. */
static int det_utf8(const uint8_t *d, size_t n, json_t *det, struct err *err)
{
	struct sb s = {0};

	if (!utf8_valid(d, n))
		return err_set(err, "event data is not UTF-8");
	sb_add(&s, d, n);
	return set_string(det, &s, err);
}

/* EV_EFI_PLATFORM_FIRMWARE_BLOB2, EV_EFI_HANDOFF_TABLES2: a length-prefixed description. */
static int det_desc(const uint8_t *d, size_t n, json_t *det, struct err *err)
{
	struct sb s = {0};

	if (n == 0)
		return err_set(err, "event data is empty, expected a description length byte");
	if (d[0] == 0)
		return err_set(err, "description length is 0");
	if (n < d[0])
		return err_set(err, "description of %u bytes runs past the %zu-byte event", d[0],
		               n);
	if (!utf8_valid(d + 1, d[0] - 1u))
		return err_set(err, "description is not UTF-8");
	sb_add(&s, d + 1, d[0] - 1u);
	return set_string(det, &s, err);
}

/* EV_PLATFORM_CONFIG_FLAGS (td-shim's "td_hob", "td_payload_info" records and such). */
static int det_config_flags(const uint8_t *d, size_t n, json_t *det, struct err *err)
{
	struct sb s = {0};
	uint32_t cp;

	if (utf8_valid(d, n)) {
		for (size_t i = 0; i < n;) {
			int w = utf8_seq(d + i, n - i, &cp);

			if (cp == 0x10)
				sb_add(&s, " ", 1);
			else if (!(cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)))
				sb_add(&s, d + i, (size_t)w);
			i += (size_t)w;
		}
	}
	return set_string(det, &s, err);
}

static int det_ipl(const uint8_t *d, size_t n, json_t *det, struct err *err)
{
	struct sb s = {0};

	if (n < 2)
		return err_set(err, "event data of %zu bytes is shorter than 2", n);
	if (d[0] == 0x2e && d[1] == 0x00) {
		if (n == 2 || n % 2 != 0)
			return err_set(err,
			               "GCE UTF-16 event data has %zu bytes, expected an even "
			               "number above 2",
			               n);
		sb_utf16(&s, d + 2, (n - 4) / 2, 0);
	} else {
		size_t cut = 0;

		while (cut < n && d[cut] != 0)
			cut++;
		if (utf8_valid(d, cut))
			sb_add(&s, d, cut);
		else
			sb_hex(&s, d, n);
	}
	return set_string(det, &s, err);
}

#define AAEL_TAG 0x4141454c

/* AAEL tagged event "<domain> <operation> <content>". */
static int det_aael(const uint8_t *d, size_t n, json_t *det, struct err *err)
{
	const uint8_t *sp1, *sp2;
	json_t *content, *data;

	if (!utf8_valid(d, n))
		return err_set(err, "AAEL event data is not UTF-8");
	sp1 = memchr(d, ' ', n);
	if (sp1 == NULL)
		return err_set(err, "AAEL event has no space after its domain");
	sp2 = memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - d));
	if (sp2 == NULL)
		return err_set(err, "AAEL event has no space after its operation");
	sp2++;
	content = json_loadb((const char *)sp2, n - (size_t)(sp2 - d),
	                     JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	if (content == NULL)
		content = json_stringn((const char *)sp2, n - (size_t)(sp2 - d));
	data = json_object();
	if (content == NULL || data == NULL ||
	    json_object_set_new(data, "domain", json_stringn((const char *)d, (size_t)(sp1 - d))) <
	        0 ||
	    json_object_set_new(data, "operation",
	                        json_stringn((const char *)sp1 + 1, (size_t)(sp2 - 1 - sp1 - 1))) <
	        0 ||
	    json_object_set_new(data, "content", content) < 0) {
		json_decref(data);
		return err_set(err, "out of memory");
	}
	/* details keys in Trustee's order: string, unicode_name, ..., data */
	if (json_object_set_new(det, "unicode_name", json_string("AAEL")) < 0 ||
	    json_object_set_new(det, "data", data) < 0)
		return err_set(err, "out of memory");
	return 0;
}

/* EV_EVENT_TAG: TCG_PCClientTaggedEvent {u32 taggedEventID, u32 taggedEventDataSize, data}. */
static int det_event_tag(const uint8_t *d, size_t n, json_t *det, struct err *err)
{
	struct sb s = {0};
	uint32_t id, size;

	if (n < 8)
		return err_set(err, "tagged event of %zu bytes is shorter than its 8-byte header",
		               n);
	id = rd32le(d);
	size = rd32le(d + 4);
	if (size > n - 8)
		return err_set(err,
		               "tagged event data size %" PRIu32 " runs past the %zu-byte event",
		               size, n);
	sb_utf8_lossy(&s, d + 8, size, 1);
	if (set_string(det, &s, err) < 0)
		return -1;
	if (id == AAEL_TAG)
		return det_aael(d + 8, size, det, err);
	return 0;
}

/* EV_EFI_VARIABLE_*: UEFI_VARIABLE_DATA {GUID, u64 name length (chars), u64 data length,
 * UTF-16LE name, data}. */
static int det_variable(const uint8_t *d, size_t n, json_t *det, struct err *err)
{
	struct sb name = {0}, guid = {0};
	uint64_t nlen, dlen;
	char *b64;
	json_t *jname, *jguid;

	if (n < 32)
		return err_set(err,
		               "variable event of %zu bytes is shorter than its 32-byte header", n);
	nlen = rd64le(d + 16);
	dlen = rd64le(d + 24);
	if (nlen > (n - 32) / 2)
		return err_set(err,
		               "variable name of %" PRIu64 " characters runs past the %zu-byte "
		               "event",
		               nlen, n);
	if (sb_utf16(&name, d + 32, (size_t)nlen, 1) < 0) {
		free(name.p);
		return err_set(err, "variable name is not valid UTF-16");
	}
	if (dlen > n - 32 - 2 * nlen) {
		free(name.p);
		return err_set(err,
		               "variable data of %" PRIu64 " bytes runs past the %zu-byte event",
		               dlen, n);
	}
	b64 = b64_encode(d + 32 + 2 * nlen, (size_t)dlen, B64_STD);
	sb_hex(&guid, d, 4);
	sb_add(&guid, "-", 1);
	sb_hex(&guid, d + 4, 2);
	sb_add(&guid, "-", 1);
	sb_hex(&guid, d + 6, 2);
	sb_add(&guid, "-", 1);
	sb_hex(&guid, d + 8, 2);
	sb_add(&guid, "-", 1);
	sb_hex(&guid, d + 10, 6);
	jname = sb_json(&name);
	jguid = sb_json(&guid);
	if (b64 == NULL || jname == NULL || jguid == NULL ||
	    json_object_set_new(det, "unicode_name", jname) < 0 ||
	    json_object_set_new(det, "unicode_name_length", json_integer((json_int_t)nlen)) < 0 ||
	    json_object_set_new(det, "variable_data", json_string(b64)) < 0 ||
	    json_object_set_new(det, "variable_data_length", json_integer((json_int_t)dlen)) < 0 ||
	    json_object_set_new(det, "variable_name", jguid) < 0) {
		free(b64);
		return err_set(err, "out of memory");
	}
	free(b64);
	return 0;
}

/* EV_EFI_BOOT_SERVICES_APPLICATION: UEFI_IMAGE_LOAD_EVENT {u64 location, u64 length,
 * u64 link-time address, u64 device path length, device path}. */
static int det_image_load(const uint8_t *d, size_t n, json_t *det, struct err *err)
{
	json_t *paths;
	uint64_t plen;
	size_t left;
	const uint8_t *p;

	if (n < 32)
		return err_set(err,
		               "image load event of %zu bytes is shorter than its 32-byte "
		               "header",
		               n);
	plen = rd64le(d + 24);
	if (plen == 0)
		return 0;
	if (plen < 4)
		return err_set(err, "device path length %" PRIu64 " is shorter than an end node",
		               plen);
	if (plen - 4 > n - 32)
		return err_set(err, "device path of %" PRIu64 " bytes runs past the %zu-byte event",
		               plen, n);
	left = (size_t)(plen - 4);
	p = d + 32;
	if (left < 4)
		return err_set(err, "device path without its end node is shorter than 4 bytes");
	paths = json_array();
	if (paths == NULL || json_object_set_new(det, "device_paths", paths) < 0)
		return err_set(err, "out of memory");
	while (left > 0) {
		uint16_t nlen;

		if (left < 4)
			return err_set(err, "device path node at byte %zu is truncated (%zu bytes)",
			               (size_t)(p - d), left);
		nlen = rd16le(p + 2);
		if (nlen < 4 || nlen > left)
			return err_set(err,
			               "device path node at byte %zu has length %u, outside 4..%zu",
			               (size_t)(p - d), nlen, left);
		if (json_array_append_new(paths, dp_node(p[0], p[1], p + 4, nlen - 4u)) < 0)
			return err_set(err, "out of memory");
		p += nlen;
		left -= nlen;
	}
	return 0;
}

int eventlog_details(uint32_t type, const uint8_t *data, size_t len, json_t **details,
                     struct err *err)
{
	int (*dec)(const uint8_t *, size_t, json_t *, struct err *) = NULL;
	json_t *det = json_object();

	*details = NULL;
	if (det == NULL)
		return err_set(err, "out of memory");
	switch (type) {
	case 0x1:        /* EV_POST_CODE */
	case 0x5:        /* EV_ACTION */
	case 0xc:        /* EV_COMPACT_HASH */
	case 0x12:       /* EV_OMIT_BOOT_DEVICE_EVENTS */
	case 0x80000007: /* EV_EFI_ACTION */
		dec = det_utf8;
		break;
	case 0x6: /* EV_EVENT_TAG */
		dec = det_event_tag;
		break;
	case 0xa: /* EV_PLATFORM_CONFIG_FLAGS */
		dec = det_config_flags;
		break;
	case 0xd: /* EV_IPL */
		dec = det_ipl;
		break;
	case 0x80000001: /* EV_EFI_VARIABLE_DRIVER_CONFIG */
	case 0x80000002: /* EV_EFI_VARIABLE_BOOT */
	case 0x8000000c: /* EV_EFI_VARIABLE_BOOT2 */
	case 0x800000e0: /* EV_EFI_VARIABLE_AUTHORITY */
		dec = det_variable;
		break;
	case 0x80000003: /* EV_EFI_BOOT_SERVICES_APPLICATION */
		dec = det_image_load;
		break;
	case 0x8000000a: /* EV_EFI_PLATFORM_FIRMWARE_BLOB2 */
	case 0x8000000b: /* EV_EFI_HANDOFF_TABLES2 */
		dec = det_desc;
		break;
	default: /* EV_SEPARATOR, EV_NO_ACTION and the rest: no details */
		break;
	}
	if (dec != NULL && dec(data, len, det, err) < 0) {
		json_decref(det);
		return -1;
	}
	*details = det;
	return 0;
}
