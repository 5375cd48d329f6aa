/*
 * builtins_time: time.* (nanoseconds since the epoch, Go's layouts and durations, civil
 * dates in UTC or an IANA zone read from /usr/share/zoneinfo), units.parse / parse_bytes
 * and semver.*.
 *
 * Dates are computed with days-from-civil arithmetic on int64 seconds rather than the C
 * library's gmtime/timegm, so the range matches Go's and nothing depends on TZ or locale.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rego/builtins.h"

#define NS 1000000000LL

/* ------------------------------------------------------------------ civil calendar */

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int64_t floordiv(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

struct civil {
	int64_t year;
	int month, day, hour, min, sec, yday, wday; /* wday 0 = Sunday */
	int64_t nsec;
	int offset; /* seconds east of UTC */
	char abbr[16];
};

static void to_civil(int64_t sec, int64_t nsec, int offset, struct civil *c)
{
	int64_t local = sec + offset;
	int64_t days = floordiv(local, 86400), rem = local - days * 86400;
	civil_from_days(days, &c->year, &c->month, &c->day);
	c->hour = (int)(rem / 3600);
	c->min = (int)(rem / 60 % 60);
	c->sec = (int)(rem % 60);
	c->nsec = nsec;
	c->wday = (int)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday */
	c->yday = (int)(days - days_from_civil(c->year, 1, 1)) + 1;
	c->offset = offset;
}

/* ------------------------------------------------------------------ zones */

struct zone {
	int utc;
	int64_t *trans;
	uint8_t *idx;
	int32_t *off;
	char (*abbr)[8];
	uint32_t ntrans, ntypes;
};

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* a TZif v2+ file's 64-bit section */
static int zone_load(struct ev *E, const char *name, struct zone *z)
{
	memset(z, 0, sizeof(*z));
	if (name[0] == '\0' || strcmp(name, "UTC") == 0) {
		z->utc = 1;
		return 0;
	}
	if (strcmp(name, "Local") == 0) {
		const char *tz = getenv("TZ");
		name = tz && *tz ? (tz[0] == ':' ? tz + 1 : tz) : "localtime";
		if (strcmp(name, "UTC") == 0) {
			z->utc = 1;
			return 0;
		}
	}
	if (strstr(name, "..") || name[0] == '/')
		return -1;
	char path[512];
	if (strcmp(name, "localtime") == 0)
		snprintf(path, sizeof(path), "/etc/localtime");
	else
		snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", name);
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return -1;
	unsigned char *buf = ar_alloc(E->A, 1 << 17);
	size_t n = buf ? fread(buf, 1, 1 << 17, f) : 0;
	fclose(f);
	if (n < 44 || memcmp(buf, "TZif", 4) != 0 || buf[4] < '2')
		return -1;
	/* skip the v1 block */
	uint32_t c[6];
	for (int i = 0; i < 6; i++)
		c[i] = be32(buf + 20 + 4 * i);
	size_t v1 =
	    44 + (size_t)c[3] * 5 + (size_t)c[4] * 6 + c[5] + (size_t)c[2] * 8 + c[1] + c[0];
	if (v1 + 44 > n || memcmp(buf + v1, "TZif", 4) != 0)
		return -1;
	const unsigned char *h = buf + v1;
	for (int i = 0; i < 6; i++)
		c[i] = be32(h + 20 + 4 * i);
	uint32_t timecnt = c[3], typecnt = c[4], charcnt = c[5];
	const unsigned char *p = h + 44;
	if ((size_t)(p - buf) + (size_t)timecnt * 9 + (size_t)typecnt * 6 + charcnt > n ||
	    typecnt == 0)
		return -1;
	z->trans = ar_alloc(E->A, ((size_t)timecnt + 1) * sizeof(*z->trans));
	z->idx = ar_alloc(E->A, (size_t)timecnt + 1);
	z->off = ar_alloc(E->A, (size_t)typecnt * sizeof(*z->off));
	z->abbr = ar_alloc(E->A, (size_t)typecnt * sizeof(*z->abbr));
	if (!z->trans || !z->idx || !z->off || !z->abbr)
		return -1;
	for (uint32_t i = 0; i < timecnt; i++)
		z->trans[i] = (int64_t)((uint64_t)be32(p + 8 * i) << 32 | be32(p + 8 * i + 4));
	p += (size_t)timecnt * 8;
	for (uint32_t i = 0; i < timecnt; i++)
		z->idx[i] = p[i] < typecnt ? p[i] : 0;
	p += timecnt;
	const unsigned char *chars = p + (size_t)typecnt * 6;
	for (uint32_t i = 0; i < typecnt; i++) {
		z->off[i] = (int32_t)be32(p + 6 * i);
		unsigned ai = p[6 * i + 5];
		if (ai < charcnt)
			snprintf(z->abbr[i], sizeof(z->abbr[i]), "%.*s", (int)(charcnt - ai),
			         (const char *)chars + ai);
	}
	z->ntrans = timecnt;
	z->ntypes = typecnt;
	return 0;
}

static int zone_offset(const struct zone *z, int64_t sec, char abbr[16])
{
	if (z->utc) {
		snprintf(abbr, 16, "UTC");
		return 0;
	}
	uint32_t t = 0;
	if (z->ntrans && sec >= z->trans[0]) {
		uint32_t lo = 0, hi = z->ntrans;
		while (hi - lo > 1) {
			uint32_t mid = (lo + hi) / 2;
			if (z->trans[mid] <= sec)
				lo = mid;
			else
				hi = mid;
		}
		t = z->idx[lo];
	}
	snprintf(abbr, 16, "%s", z->abbr[t]);
	return z->off[t];
}

/* ns, or [ns, "zone"] (, layout): the instant in its zone */
static int time_arg(struct ev *E, const char *fn, struct val *v, struct civil *c,
                    const char **layout)
{
	struct val *ns = v, *tz = NULL;
	if (layout)
		*layout = NULL;
	if (v->k == V_ARR) {
		v_force(v);
		if (v->n < 1 || v->n > (layout ? 3u : 2u))
			return ev_fail(
			    E, REGO_ERR_EVAL_TYPE,
			    "eval_type_error: %s: operand 1 must be a number or an array [ns, tz]",
			    fn);
		ns = v->a[0];
		tz = v->n > 1 ? v->a[1] : NULL;
		if (tz && tz->k != V_STR)
			return ev_type_err(E, fn, 1, "a time zone string", tz);
		if (layout && v->n > 2) {
			if (v->a[2]->k != V_STR)
				return ev_type_err(E, fn, 1, "a layout string", v->a[2]);
			*layout = v->a[2]->s;
		}
	}
	if (bi_want(E, fn, 1, ns, K_NUM) < 0)
		return -1;
	int64_t t;
	if (!v_num_is_int(ns, &t)) {
		double d = v_num_to_double(ns);
		if (d > 9.2e18 || d < -9.2e18)
			return ev_fail(E, REGO_ERR_BUILTIN,
			               "eval_builtin_error: %s: timestamp too big", fn);
		t = (int64_t)d;
	}
	struct zone z;
	if (zone_load(E, tz ? tz->s : "UTC", &z) < 0)
		return ev_fail(E, REGO_ERR_BUILTIN, "eval_builtin_error: %s: unknown time zone %s",
		               fn, tz ? tz->s : "");
	int64_t sec = floordiv(t, NS), nsec = t - sec * NS;
	char abbr[16];
	int off = zone_offset(&z, sec, abbr);
	to_civil(sec, nsec, off, c);
	snprintf(c->abbr, sizeof(c->abbr), "%s", abbr);
	return 0;
}

/* ------------------------------------------------------------------ Go layouts */

static const char *months[] = {"January",   "February", "March",    "April",
                               "May",       "June",     "July",     "August",
                               "September", "October",  "November", "December"};
static const char *days[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                             "Thursday", "Friday", "Saturday"};

enum chunk {
	C_NONE,
	C_LONGMONTH,
	C_MONTH,
	C_NUMMONTH,
	C_ZEROMONTH,
	C_LONGWEEKDAY,
	C_WEEKDAY,
	C_DAY,
	C_UNDERDAY,
	C_ZERODAY,
	C_UNDERYEARDAY,
	C_ZEROYEARDAY,
	C_HOUR,
	C_HOUR12,
	C_ZEROHOUR12,
	C_MINUTE,
	C_ZEROMINUTE,
	C_SECOND,
	C_ZEROSECOND,
	C_LONGYEAR,
	C_YEAR,
	C_PM,
	C_pm,
	C_TZ,
	C_ISO_TZ_SEC_COLON,
	C_ISO_TZ_COLON,
	C_ISO_TZ_SEC,
	C_ISO_TZ,
	C_ISO_TZ_SHORT,
	C_NUM_TZ_SEC_COLON,
	C_NUM_TZ_COLON,
	C_NUM_TZ_SEC,
	C_NUM_TZ,
	C_NUM_SHORT_TZ,
	C_FRAC0, /* .000: n digits in chunk_n */
	C_FRAC9, /* .999: trimmed */
};

struct layout_tok {
	const char *s;
	enum chunk c;
};

/* longest first where prefixes collide */
static const struct layout_tok toks[] = {
    {"January", C_LONGMONTH},
    {"Jan", C_MONTH},
    {"Monday", C_LONGWEEKDAY},
    {"Mon", C_WEEKDAY},
    {"MST", C_TZ},
    {"01", C_ZEROMONTH},
    {"02", C_ZERODAY},
    {"03", C_ZEROHOUR12},
    {"04", C_ZEROMINUTE},
    {"05", C_ZEROSECOND},
    {"06", C_YEAR},
    {"002", C_ZEROYEARDAY},
    {"__2", C_UNDERYEARDAY},
    {"_2", C_UNDERDAY},
    {"15", C_HOUR},
    {"2006", C_LONGYEAR},
    {"Z07:00:00", C_ISO_TZ_SEC_COLON},
    {"Z070000", C_ISO_TZ_SEC},
    {"Z07:00", C_ISO_TZ_COLON},
    {"Z0700", C_ISO_TZ},
    {"Z07", C_ISO_TZ_SHORT},
    {"-07:00:00", C_NUM_TZ_SEC_COLON},
    {"-070000", C_NUM_TZ_SEC},
    {"-07:00", C_NUM_TZ_COLON},
    {"-0700", C_NUM_TZ},
    {"-07", C_NUM_SHORT_TZ},
    {"PM", C_PM},
    {"pm", C_pm},
    {"1", C_NUMMONTH},
    {"2", C_DAY},
    {"3", C_HOUR12},
    {"4", C_MINUTE},
    {"5", C_SECOND},
};

/* the next layout element at s: its kind and length; C_NONE for a literal byte */
static enum chunk next_chunk(const char *s, size_t *len, int *digits)
{
	if ((s[0] == '.' || s[0] == ',') && (s[1] == '0' || s[1] == '9')) {
		char d = s[1];
		size_t n = 1;
		while (s[n] == d)
			n++;
		if (!isdigit((unsigned char)s[n])) {
			*len = n;
			*digits = (int)n - 1;
			return d == '0' ? C_FRAC0 : C_FRAC9;
		}
	}
	for (size_t i = 0; i < sizeof(toks) / sizeof(toks[0]); i++) {
		size_t l = strlen(toks[i].s);
		if (strncmp(s, toks[i].s, l) != 0)
			continue;
		/* "Mon" must not be the start of "Month"-like words; Go checks the next letter */
		if ((toks[i].c == C_WEEKDAY || toks[i].c == C_MONTH) &&
		    islower((unsigned char)s[l]) && strncmp(s, "Monday", 6) != 0 &&
		    strncmp(s, "January", 7) != 0)
			continue;
		if (toks[i].c == C_YEAR && s[l] >= '0' && s[l] <= '9')
			continue;
		*len = l;
		return toks[i].c;
	}
	*len = 1;
	return C_NONE;
}

static const char *named_layout(const char *l)
{
	static const struct {
		const char *name, *layout;
	} named[] = {
	    {"ANSIC", "Mon Jan _2 15:04:05 2006"},
	    {"UnixDate", "Mon Jan _2 15:04:05 MST 2006"},
	    {"RubyDate", "Mon Jan 02 15:04:05 -0700 2006"},
	    {"RFC822", "02 Jan 06 15:04 MST"},
	    {"RFC822Z", "02 Jan 06 15:04 -0700"},
	    {"RFC850", "Monday, 02-Jan-06 15:04:05 MST"},
	    {"RFC1123", "Mon, 02 Jan 2006 15:04:05 MST"},
	    {"RFC1123Z", "Mon, 02 Jan 2006 15:04:05 -0700"},
	    {"RFC3339", "2006-01-02T15:04:05Z07:00"},
	    {"RFC3339Nano", "2006-01-02T15:04:05.999999999Z07:00"},
	    {"Kitchen", "3:04PM"},
	    {"Stamp", "Jan _2 15:04:05"},
	    {"StampMilli", "Jan _2 15:04:05.000"},
	    {"StampMicro", "Jan _2 15:04:05.000000"},
	    {"StampNano", "Jan _2 15:04:05.000000000"},
	    {"DateTime", "2006-01-02 15:04:05"},
	    {"DateOnly", "2006-01-02"},
	    {"TimeOnly", "15:04:05"},
	};
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++)
		if (strcmp(l, named[i].name) == 0)
			return named[i].layout;
	return l;
}

static void put_tz(struct sbuf *b, int off, int iso, int colon, int secs, int shorth)
{
	char t[32];
	if (iso && off == 0) {
		sb_addc(b, 'Z');
		return;
	}
	int a = off < 0 ? -off : off;
	sb_addc(b, off < 0 ? '-' : '+');
	snprintf(t, sizeof(t), "%02d", a / 3600);
	sb_adds(b, t);
	if (shorth)
		return;
	snprintf(t, sizeof(t), "%s%02d", colon ? ":" : "", a / 60 % 60);
	sb_adds(b, t);
	if (secs) {
		snprintf(t, sizeof(t), "%s%02d", colon ? ":" : "", a % 60);
		sb_adds(b, t);
	}
}

static void time_format(struct sbuf *b, const char *layout, const struct civil *c)
{
	char t[64];
	for (const char *s = layout; *s;) {
		size_t len;
		int digits = 0;
		enum chunk k = next_chunk(s, &len, &digits);
		int h12 = c->hour % 12 == 0 ? 12 : c->hour % 12;
		t[0] = '\0';
		switch (k) {
		case C_NONE:
			sb_addc(b, *s);
			break;
		case C_LONGMONTH:
			sb_adds(b, months[c->month - 1]);
			break;
		case C_MONTH:
			sb_add(b, months[c->month - 1], 3);
			break;
		case C_NUMMONTH:
			snprintf(t, sizeof(t), "%d", c->month);
			break;
		case C_ZEROMONTH:
			snprintf(t, sizeof(t), "%02d", c->month);
			break;
		case C_LONGWEEKDAY:
			sb_adds(b, days[c->wday]);
			break;
		case C_WEEKDAY:
			sb_add(b, days[c->wday], 3);
			break;
		case C_DAY:
			snprintf(t, sizeof(t), "%d", c->day);
			break;
		case C_UNDERDAY:
			snprintf(t, sizeof(t), "%2d", c->day);
			break;
		case C_ZERODAY:
			snprintf(t, sizeof(t), "%02d", c->day);
			break;
		case C_UNDERYEARDAY:
			snprintf(t, sizeof(t), "%3d", c->yday);
			break;
		case C_ZEROYEARDAY:
			snprintf(t, sizeof(t), "%03d", c->yday);
			break;
		case C_HOUR:
			snprintf(t, sizeof(t), "%02d", c->hour);
			break;
		case C_HOUR12:
			snprintf(t, sizeof(t), "%d", h12);
			break;
		case C_ZEROHOUR12:
			snprintf(t, sizeof(t), "%02d", h12);
			break;
		case C_MINUTE:
			snprintf(t, sizeof(t), "%d", c->min);
			break;
		case C_ZEROMINUTE:
			snprintf(t, sizeof(t), "%02d", c->min);
			break;
		case C_SECOND:
			snprintf(t, sizeof(t), "%d", c->sec);
			break;
		case C_ZEROSECOND:
			snprintf(t, sizeof(t), "%02d", c->sec);
			break;
		case C_LONGYEAR:
			snprintf(t, sizeof(t), "%04lld", (long long)c->year);
			break;
		case C_YEAR:
			snprintf(t, sizeof(t), "%02lld",
			         (long long)(((c->year % 100) + 100) % 100));
			break;
		case C_PM:
			sb_adds(b, c->hour >= 12 ? "PM" : "AM");
			break;
		case C_pm:
			sb_adds(b, c->hour >= 12 ? "pm" : "am");
			break;
		case C_TZ:
			if (c->abbr[0])
				sb_adds(b, c->abbr);
			else
				put_tz(b, c->offset, 0, 0, 0, 0);
			break;
		case C_ISO_TZ_SEC_COLON:
			put_tz(b, c->offset, 1, 1, 1, 0);
			break;
		case C_ISO_TZ_COLON:
			put_tz(b, c->offset, 1, 1, 0, 0);
			break;
		case C_ISO_TZ_SEC:
			put_tz(b, c->offset, 1, 0, 1, 0);
			break;
		case C_ISO_TZ:
			put_tz(b, c->offset, 1, 0, 0, 0);
			break;
		case C_ISO_TZ_SHORT:
			put_tz(b, c->offset, 1, 0, 0, 1);
			break;
		case C_NUM_TZ_SEC_COLON:
			put_tz(b, c->offset, 0, 1, 1, 0);
			break;
		case C_NUM_TZ_COLON:
			put_tz(b, c->offset, 0, 1, 0, 0);
			break;
		case C_NUM_TZ_SEC:
			put_tz(b, c->offset, 0, 0, 1, 0);
			break;
		case C_NUM_TZ:
			put_tz(b, c->offset, 0, 0, 0, 0);
			break;
		case C_NUM_SHORT_TZ:
			put_tz(b, c->offset, 0, 0, 0, 1);
			break;
		case C_FRAC0:
		case C_FRAC9: {
			char f[16];
			snprintf(f, sizeof(f), "%09lld", (long long)c->nsec);
			int n = digits > 9 ? 9 : digits;
			f[n] = '\0';
			if (k == C_FRAC9) {
				while (n > 0 && f[n - 1] == '0')
					f[--n] = '\0';
				if (n == 0)
					break;
			}
			sb_addc(b, *s);
			sb_adds(b, f);
			break;
		}
		}
		if (t[0])
			sb_adds(b, t);
		s += len;
	}
}

static int get_num(const char **v, int min, int max, int64_t *out)
{
	const char *s = *v;
	int64_t n = 0;
	int k = 0;
	int neg = 0;
	if (*s == '-' && max > 4) {
		neg = 1;
		s++;
	}
	while (isdigit((unsigned char)s[k]) && k < max)
		n = n * 10 + (s[k++] - '0');
	if (k < min)
		return -1;
	*out = neg ? -n : n;
	*v = s + k;
	return 0;
}

static int lookup_name(const char **v, const char **names, int n, int prefix)
{
	for (int i = 0; i < n; i++) {
		size_t l = prefix ? 3 : strlen(names[i]);
		if (strncasecmp(*v, names[i], l) == 0) {
			*v += l;
			return i;
		}
	}
	return -1;
}

static int parse_tz(const char **v, int iso, int colon, int secs, int shorth, int *off)
{
	const char *s = *v;
	if (iso && *s == 'Z') {
		*v = s + 1;
		*off = 0;
		return 0;
	}
	if (*s != '+' && *s != '-')
		return -1;
	int sign = *s == '-' ? -1 : 1;
	s++;
	int64_t hh, mm = 0, ss = 0;
	if (get_num(&s, 2, 2, &hh) < 0)
		return -1;
	if (!shorth) {
		if (colon && *s++ != ':')
			return -1;
		if (get_num(&s, 2, 2, &mm) < 0)
			return -1;
		if (secs) {
			if (colon && *s++ != ':')
				return -1;
			if (get_num(&s, 2, 2, &ss) < 0)
				return -1;
		}
	}
	*off = sign * (int)(hh * 3600 + mm * 60 + ss);
	*v = s;
	return 0;
}

/* Go's time.Parse for the elements above; returns 0 and ns since the epoch */
static int time_parse(const char *layout, const char *value, int64_t *out, const char **why)
{
	int64_t year = 0, month = 1, day = 1, hour = 0, min = 0, sec = 0, nsec = 0, yday = -1;
	int pm = -1, off = 0;
	const char *v = value;
	for (const char *s = layout; *s;) {
		size_t len;
		int digits = 0;
		enum chunk k = next_chunk(s, &len, &digits);
		int64_t n = 0;
		int r = 0;
		switch (k) {
		case C_NONE:
			if (*v != *s) {
				*why = "cannot parse";
				return -1;
			}
			v++;
			break;
		case C_LONGMONTH:
			r = lookup_name(&v, months, 12, 0);
			month = r + 1;
			break;
		case C_MONTH:
			r = lookup_name(&v, months, 12, 1);
			month = r + 1;
			break;
		case C_NUMMONTH:
		case C_ZEROMONTH:
			r = get_num(&v, k == C_ZEROMONTH ? 2 : 1, 2, &month);
			if (month < 1 || month > 12)
				r = -1;
			break;
		case C_LONGWEEKDAY:
			r = lookup_name(&v, days, 7, 0);
			break;
		case C_WEEKDAY:
			r = lookup_name(&v, days, 7, 1);
			break;
		case C_DAY:
		case C_UNDERDAY:
		case C_ZERODAY:
			if (k == C_UNDERDAY && *v == ' ')
				v++;
			r = get_num(&v, k == C_ZERODAY ? 2 : 1, 2, &day);
			break;
		case C_UNDERYEARDAY:
		case C_ZEROYEARDAY:
			while (k == C_UNDERYEARDAY && *v == ' ')
				v++;
			r = get_num(&v, k == C_ZEROYEARDAY ? 3 : 1, 3, &yday);
			break;
		case C_HOUR:
			r = get_num(&v, 2, 2, &hour);
			if (hour > 23)
				r = -1;
			break;
		case C_HOUR12:
		case C_ZEROHOUR12:
			r = get_num(&v, k == C_ZEROHOUR12 ? 2 : 1, 2, &hour);
			if (hour > 12)
				r = -1;
			break;
		case C_MINUTE:
		case C_ZEROMINUTE:
			r = get_num(&v, k == C_ZEROMINUTE ? 2 : 1, 2, &min);
			if (min > 59)
				r = -1;
			break;
		case C_SECOND:
		case C_ZEROSECOND:
			r = get_num(&v, k == C_ZEROSECOND ? 2 : 1, 2, &sec);
			if (sec > 59)
				r = -1;
			/* Go: a fraction after the seconds is read even when the layout has none */
			if (r == 0 && (*v == '.' || *v == ',') && isdigit((unsigned char)v[1])) {
				size_t nl;
				int nd;
				enum chunk nk = next_chunk(s + len, &nl, &nd);
				if (nk != C_FRAC0 && nk != C_FRAC9) {
					v++;
					int64_t f = 0;
					int d = 0;
					while (isdigit((unsigned char)*v)) {
						if (d < 9)
							f = f * 10 + (*v - '0'), d++;
						v++;
					}
					while (d++ < 9)
						f *= 10;
					nsec = f;
				}
			}
			break;
		case C_LONGYEAR:
			r = get_num(&v, 4, 4, &year);
			break;
		case C_YEAR:
			r = get_num(&v, 2, 2, &n);
			year = n >= 69 ? 1900 + n : 2000 + n;
			break;
		case C_PM:
		case C_pm:
			if (strncasecmp(v, "PM", 2) == 0)
				pm = 1;
			else if (strncasecmp(v, "AM", 2) == 0)
				pm = 0;
			else
				r = -1;
			v += 2;
			break;
		case C_TZ:
			if (strncmp(v, "UTC", 3) == 0) {
				v += 3;
			} else {
				int l = 0;
				while (isupper((unsigned char)v[l]))
					l++;
				if (l < 3)
					r = -1;
				v += l;
			}
			break;
		case C_ISO_TZ_SEC_COLON:
			r = parse_tz(&v, 1, 1, 1, 0, &off);
			break;
		case C_ISO_TZ_COLON:
			r = parse_tz(&v, 1, 1, 0, 0, &off);
			break;
		case C_ISO_TZ_SEC:
			r = parse_tz(&v, 1, 0, 1, 0, &off);
			break;
		case C_ISO_TZ:
			r = parse_tz(&v, 1, 0, 0, 0, &off);
			break;
		case C_ISO_TZ_SHORT:
			r = parse_tz(&v, 1, 0, 0, 1, &off);
			break;
		case C_NUM_TZ_SEC_COLON:
			r = parse_tz(&v, 0, 1, 1, 0, &off);
			break;
		case C_NUM_TZ_COLON:
			r = parse_tz(&v, 0, 1, 0, 0, &off);
			break;
		case C_NUM_TZ_SEC:
			r = parse_tz(&v, 0, 0, 1, 0, &off);
			break;
		case C_NUM_TZ:
			r = parse_tz(&v, 0, 0, 0, 0, &off);
			break;
		case C_NUM_SHORT_TZ:
			r = parse_tz(&v, 0, 0, 0, 1, &off);
			break;
		case C_FRAC0:
		case C_FRAC9: {
			if (*v != '.' && *v != ',') {
				if (k == C_FRAC9)
					break;
				r = -1;
				break;
			}
			v++;
			int64_t f = 0;
			int d = 0;
			while (isdigit((unsigned char)*v)) {
				if (d < 9)
					f = f * 10 + (*v - '0'), d++;
				v++;
			}
			if (k == C_FRAC0 && d != digits)
				r = -1;
			while (d++ < 9)
				f *= 10;
			nsec = f;
			break;
		}
		}
		if (r < 0) {
			*why = "cannot parse";
			return -1;
		}
		s += len;
	}
	if (*v) {
		*why = "extra text";
		return -1;
	}
	if (pm == 1 && hour < 12)
		hour += 12;
	if (pm == 0 && hour == 12)
		hour = 0;
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (yday >= 0) {
		day = 1;
		month = 1;
	}
	if (day < 1 || day > mdays[month - 1] ||
	    (month == 2 && day == 29 && !((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))) {
		*why = "day out of range";
		return -1;
	}
	int64_t days = days_from_civil(year, month, day) + (yday > 0 ? yday - 1 : 0);
	int64_t secs = days * 86400 + hour * 3600 + min * 60 + sec - off;
	if (secs > INT64_MAX / NS - 1 || secs < INT64_MIN / NS + 1) {
		*why = "time outside of valid range";
		return -1;
	}
	*out = secs * NS + nsec;
	return 0;
}

/* ------------------------------------------------------------------ time.* */

static int ret_int(struct ev *E, int64_t x, struct val **out)
{
	*out = v_int(E->A, x);
	return *out ? 0 : bi_oom(E);
}

static int bi_now_ns(struct ev *E, struct val **a, struct val **out)
{
	return ret_int(E, (int64_t)ev_now_ns(E), out);
}

static int bi_parse_ns(struct ev *E, struct val **a, struct val **out)
{
	if (bi_want(E, "time.parse_ns", 1, a[0], K_STR) < 0 ||
	    bi_want(E, "time.parse_ns", 2, a[1], K_STR) < 0)
		return -1;
	int64_t ns;
	const char *why = "";
	if (time_parse(named_layout(a[0]->s), a[1]->s, &ns, &why) < 0)
		return ev_fail(
		    E, REGO_ERR_BUILTIN,
		    "eval_builtin_error: time.parse_ns: parsing time \"%s\" as \"%s\": %s", a[1]->s,
		    a[0]->s, why);
	return ret_int(E, ns, out);
}

static int bi_parse_rfc3339_ns(struct ev *E, struct val **a, struct val **out)
{
	if (bi_want(E, "time.parse_rfc3339_ns", 1, a[0], K_STR) < 0)
		return -1;
	int64_t ns;
	const char *why = "";
	if (time_parse("2006-01-02T15:04:05Z07:00", a[0]->s, &ns, &why) < 0)
		return ev_fail(E, REGO_ERR_BUILTIN,
		               "eval_builtin_error: time.parse_rfc3339_ns: parsing time \"%s\" as "
		               "\"2006-01-02T15:04:05Z07:00\": %s",
		               a[0]->s, why);
	return ret_int(E, ns, out);
}

static int bi_parse_duration_ns(struct ev *E, struct val **a, struct val **out)
{
	if (bi_want(E, "time.parse_duration_ns", 1, a[0], K_STR) < 0)
		return -1;
	const char *s = a[0]->s;
	int neg = 0;
	if (*s == '-' || *s == '+')
		neg = *s++ == '-';
	if (strcmp(s, "0") == 0)
		return ret_int(E, 0, out);
	if (*s == '\0')
		goto bad;
	long double total = 0;
	while (*s) {
		if (!isdigit((unsigned char)*s) && *s != '.')
			goto bad;
		char *e;
		long double x = strtold(s, &e);
		if (e == s)
			goto bad;
		s = e;
		static const struct {
			const char *u;
			long double mul;
		} units[] = {{"ns", 1},   {"us", 1e3}, {"\xc2\xb5s", 1e3}, {"\xce\xbcs", 1e3},
		             {"ms", 1e6}, {"s", 1e9},  {"m", 6e10},        {"h", 3.6e12}};
		int found = 0;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && !found; i++) {
			size_t l = strlen(units[i].u);
			if (strncmp(s, units[i].u, l) == 0 &&
			    !(units[i].u[0] == 'm' && l == 1 && s[1] == 's')) {
				total += x * units[i].mul;
				s += l;
				found = 1;
			}
		}
		if (!found)
			goto bad;
	}
	if (total > 9.2233720368547758e18L)
		goto bad;
	return ret_int(E, (int64_t)(neg ? -total : total), out);
bad:
	return ev_fail(E, REGO_ERR_BUILTIN,
	               "eval_builtin_error: time.parse_duration_ns: time: invalid duration \"%s\"",
	               a[0]->s);
}

static int bi_date(struct ev *E, struct val **a, struct val **out)
{
	struct civil c;
	if (time_arg(E, "time.date", a[0], &c, NULL) < 0)
		return -1;
	struct val *r = v_arr(E->A, 3);
	if (r == NULL || !(r->a[0] = v_int(E->A, c.year)) || !(r->a[1] = v_int(E->A, c.month)) ||
	    !(r->a[2] = v_int(E->A, c.day)))
		return bi_oom(E);
	*out = r;
	return 0;
}

static int bi_clock(struct ev *E, struct val **a, struct val **out)
{
	struct civil c;
	if (time_arg(E, "time.clock", a[0], &c, NULL) < 0)
		return -1;
	struct val *r = v_arr(E->A, 3);
	if (r == NULL || !(r->a[0] = v_int(E->A, c.hour)) || !(r->a[1] = v_int(E->A, c.min)) ||
	    !(r->a[2] = v_int(E->A, c.sec)))
		return bi_oom(E);
	*out = r;
	return 0;
}

static int bi_weekday(struct ev *E, struct val **a, struct val **out)
{
	struct civil c;
	if (time_arg(E, "time.weekday", a[0], &c, NULL) < 0)
		return -1;
	*out = v_str_ref(E->A, days[c.wday], strlen(days[c.wday]));
	return *out ? 0 : bi_oom(E);
}

static int bi_format(struct ev *E, struct val **a, struct val **out)
{
	struct civil c;
	const char *layout;
	if (time_arg(E, "time.format", a[0], &c, &layout) < 0)
		return -1;
	struct sbuf b = {0};
	time_format(&b, layout ? named_layout(layout) : "2006-01-02T15:04:05.999999999Z07:00", &c);
	if (b.oom) {
		free(b.s);
		return bi_oom(E);
	}
	*out = v_str(E->A, b.s ? b.s : "", b.n);
	free(b.s);
	return *out ? 0 : bi_oom(E);
}

static int bi_add_date(struct ev *E, struct val **a, struct val **out)
{
	int64_t ns, y, m, d;
	if (bi_int_arg(E, "time.add_date", 1, a[0], &ns) < 0 ||
	    bi_int_arg(E, "time.add_date", 2, a[1], &y) < 0 ||
	    bi_int_arg(E, "time.add_date", 3, a[2], &m) < 0 ||
	    bi_int_arg(E, "time.add_date", 4, a[3], &d) < 0)
		return -1;
	struct civil c;
	int64_t sec = floordiv(ns, NS), nsec = ns - sec * NS;
	to_civil(sec, nsec, 0, &c);
	/* Go's Date normalises month and day overflow */
	int64_t mon = c.month - 1 + m, yr = c.year + y;
	yr += floordiv(mon, 12);
	mon -= floordiv(mon, 12) * 12;
	int64_t days = days_from_civil(yr, mon + 1, 1) + c.day - 1 + d;
	int64_t s2 = days * 86400 + c.hour * 3600 + c.min * 60 + c.sec;
	if (s2 > INT64_MAX / NS - 1 || s2 < INT64_MIN / NS + 1)
		return ev_fail(E, REGO_ERR_BUILTIN,
		               "eval_builtin_error: time.add_date: time outside of valid range");
	return ret_int(E, s2 * NS + nsec, out);
}

static int bi_diff(struct ev *E, struct val **a, struct val **out)
{
	struct civil c1, c2;
	if (time_arg(E, "time.diff", a[0], &c1, NULL) < 0 ||
	    time_arg(E, "time.diff", a[1], &c2, NULL) < 0)
		return -1;
	/* the second instant in the first one's offset; earlier first */
	int64_t s1 = days_from_civil(c1.year, c1.month, c1.day) * 86400 + c1.hour * 3600 +
	             c1.min * 60 + c1.sec - c1.offset;
	int64_t s2 = days_from_civil(c2.year, c2.month, c2.day) * 86400 + c2.hour * 3600 +
	             c2.min * 60 + c2.sec - c2.offset;
	to_civil(s2, c2.nsec, c1.offset, &c2);
	if (s1 > s2 || (s1 == s2 && c1.nsec > c2.nsec)) {
		struct civil t = c1;
		c1 = c2;
		c2 = t;
	}
	int64_t year = c2.year - c1.year, month = c2.month - c1.month, day = c2.day - c1.day;
	int64_t hour = c2.hour - c1.hour, min = c2.min - c1.min, sec = c2.sec - c1.sec;
	if (sec < 0)
		sec += 60, min--;
	if (min < 0)
		min += 60, hour--;
	if (hour < 0)
		hour += 24, day--;
	if (day < 0) {
		/* days in c1's month: Date(y1, M1, 32) rolls into the next month */
		int64_t y;
		int m, d;
		civil_from_days(days_from_civil(c1.year, c1.month, 1) + 31, &y, &m, &d);
		day += 32 - d;
		month--;
	}
	if (month < 0)
		month += 12, year--;
	struct val *r = v_arr(E->A, 6);
	int64_t parts[6] = {year, month, day, hour, min, sec};
	if (r == NULL)
		return bi_oom(E);
	for (int i = 0; i < 6; i++)
		if ((r->a[i] = v_int(E->A, parts[i])) == NULL)
			return bi_oom(E);
	*out = r;
	return 0;
}

/* ------------------------------------------------------------------ units */

static int units(struct ev *E, const char *fn, struct val *v, int bytes, struct val **out)
{
	if (bi_want(E, fn, 1, v, K_STR) < 0)
		return -1;
	char s[128];
	size_t n = 0;
	for (size_t i = 0; i < v->n && n + 1 < sizeof(s); i++)
		if (!isspace((unsigned char)v->s[i]) && v->s[i] != '"')
			s[n++] = v->s[i];
	s[n] = '\0';
	size_t num = 0;
	while (num < n &&
	       (isdigit((unsigned char)s[num]) || s[num] == '.' ||
	        ((s[num] == 'e' || s[num] == 'E') && num + 1 < n &&
	         (isdigit((unsigned char)s[num + 1]) || s[num + 1] == '-' || s[num + 1] == '+')) ||
	        ((s[num] == '-' || s[num] == '+') &&
	         (num == 0 || s[num - 1] == 'e' || s[num - 1] == 'E'))))
		num++;
	if (num == 0)
		return ev_fail(E, REGO_ERR_BUILTIN, "eval_builtin_error: %s: no amount provided",
		               fn);
	struct val *x = v_num_from_text(E->A, s, num);
	if (x == NULL)
		return ev_fail(E, REGO_ERR_BUILTIN,
		               "eval_builtin_error: %s: could not parse amount to a number", fn);
	const char *u = s + num;
	static const struct {
		const char *u;
		const char *mul;
	} si[] = {{"", "1"},
	          {"m", "0.001"},
	          {"k", "1000"},
	          {"K", "1000"},
	          {"M", "1000000"},
	          {"G", "1e9"},
	          {"T", "1e12"},
	          {"P", "1e15"},
	          {"E", "1e18"},
	          {"Ki", "1024"},
	          {"ki", "1024"},
	          {"Mi", "1048576"},
	          {"Gi", "1073741824"},
	          {"Ti", "1099511627776"},
	          {"Pi", "1125899906842624"},
	          {"Ei", "1152921504606846976"}},
	  by[] = {{"", "1"},
	          {"b", "1"},
	          {"k", "1000"},
	          {"kb", "1000"},
	          {"ki", "1024"},
	          {"kib", "1024"},
	          {"m", "1e6"},
	          {"mb", "1e6"},
	          {"mi", "1048576"},
	          {"mib", "1048576"},
	          {"g", "1e9"},
	          {"gb", "1e9"},
	          {"gi", "1073741824"},
	          {"gib", "1073741824"},
	          {"t", "1e12"},
	          {"tb", "1e12"},
	          {"ti", "1099511627776"},
	          {"tib", "1099511627776"},
	          {"p", "1e15"},
	          {"pb", "1e15"},
	          {"pi", "1125899906842624"},
	          {"pib", "1125899906842624"},
	          {"e", "1e18"},
	          {"eb", "1e18"},
	          {"ei", "1152921504606846976"},
	          {"eib", "1152921504606846976"}};
	const char *mul = NULL;
	if (bytes) {
		char low[16];
		size_t l = strlen(u);
		if (l >= sizeof(low))
			l = sizeof(low) - 1;
		for (size_t i = 0; i < l; i++)
			low[i] = (char)tolower((unsigned char)u[i]);
		low[l] = '\0';
		for (size_t i = 0; i < sizeof(by) / sizeof(by[0]) && !mul; i++)
			if (strcmp(low, by[i].u) == 0)
				mul = by[i].mul;
	} else {
		for (size_t i = 0; i < sizeof(si) / sizeof(si[0]) && !mul; i++)
			if (strcmp(u, si[i].u) == 0)
				mul = si[i].mul;
		if (mul == NULL) { /* suffixes other than m/M are case-insensitive */
			for (size_t i = 0; i < sizeof(si) / sizeof(si[0]) && !mul; i++)
				if (strcasecmp(u, si[i].u) == 0 && strcmp(u, "m") != 0 &&
				    strcmp(si[i].u, "m") != 0)
					mul = si[i].mul;
		}
	}
	if (mul == NULL)
		return ev_fail(E, REGO_ERR_BUILTIN, "eval_builtin_error: %s: unknown unit %s", fn,
		               u);
	struct val *m = v_num_from_text(E->A, mul, strlen(mul));
	struct val *r = m ? v_num_mul(E->A, x, m) : NULL;
	if (r == NULL)
		return bi_oom(E);
	if (bytes && !r->isint) {
		/* whole bytes, truncated (trunc, not a cast to int64: "17e" is past INT64_MAX) */
		r = v_num_from_double(E->A, trunc(v_num_to_double(r)));
		if (r == NULL)
			return bi_oom(E);
	}
	*out = r;
	return 0;
}

static int bi_units_parse(struct ev *E, struct val **a, struct val **out)
{
	return units(E, "units.parse", a[0], 0, out);
}
static int bi_units_parse_bytes(struct ev *E, struct val **a, struct val **out)
{
	return units(E, "units.parse_bytes", a[0], 1, out);
}

/* ------------------------------------------------------------------ semver */

struct semver {
	const char *s;
	int64_t major, minor, patch;
	const char *pre;
	size_t prelen;
};

static int ident_ok(const char *s, size_t n, int numeric_no_lead)
{
	if (n == 0)
		return 0;
	int digits = 1;
	for (size_t i = 0; i < n; i++) {
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return 0;
		digits &= isdigit((unsigned char)s[i]) != 0;
	}
	return !(numeric_no_lead && digits && n > 1 && s[0] == '0');
}

static int semver_parse(const char *s, struct semver *v)
{
	const char *p = s;
	int64_t *parts[3] = {&v->major, &v->minor, &v->patch};
	memset(v, 0, sizeof(*v));
	for (int i = 0; i < 3; i++) {
		if (!isdigit((unsigned char)*p) || (p[0] == '0' && isdigit((unsigned char)p[1])))
			return -1;
		errno = 0;
		char *e;
		long long x = strtoll(p, &e, 10);
		if (errno)
			return -1;
		*parts[i] = x;
		p = e;
		if (i < 2 && *p++ != '.')
			return -1;
	}
	if (*p == '-') {
		p++;
		v->pre = p;
		while (*p && *p != '+')
			p++;
		v->prelen = (size_t)(p - v->pre);
		for (const char *q = v->pre; q < p;) {
			const char *d = memchr(q, '.', (size_t)(p - q));
			if (d == NULL)
				d = p;
			if (!ident_ok(q, (size_t)(d - q), 1))
				return -1;
			q = d + 1;
			if (d == p)
				break;
		}
	}
	if (*p == '+') {
		p++;
		const char *b = p;
		while (*p)
			p++;
		for (const char *q = b; q <= p;) {
			const char *d = memchr(q, '.', (size_t)(p - q));
			if (d == NULL)
				d = p;
			if (!ident_ok(q, (size_t)(d - q), 0))
				return -1;
			q = d + 1;
			if (d == p)
				break;
		}
	}
	return *p == '\0' ? 0 : -1;
}

static int pre_cmp(const struct semver *a, const struct semver *b)
{
	if (a->prelen == 0 || b->prelen == 0)
		return a->prelen == b->prelen ? 0 : a->prelen == 0 ? 1 : -1;
	const char *x = a->pre, *xe = a->pre + a->prelen, *y = b->pre, *ye = b->pre + b->prelen;
	while (x < xe && y < ye) {
		const char *xd = memchr(x, '.', (size_t)(xe - x)),
		           *yd = memchr(y, '.', (size_t)(ye - y));
		if (!xd)
			xd = xe;
		if (!yd)
			yd = ye;
		size_t xl = (size_t)(xd - x), yl = (size_t)(yd - y);
		int xn = 1, yn = 1;
		for (size_t i = 0; i < xl; i++)
			xn &= isdigit((unsigned char)x[i]) != 0;
		for (size_t i = 0; i < yl; i++)
			yn &= isdigit((unsigned char)y[i]) != 0;
		int c;
		if (xn && yn)
			c = xl != yl ? (xl < yl ? -1 : 1) : memcmp(x, y, xl);
		else if (xn || yn)
			c = xn ? -1 : 1;
		else {
			size_t m = xl < yl ? xl : yl;
			c = memcmp(x, y, m);
			if (c == 0)
				c = xl == yl ? 0 : xl < yl ? -1 : 1;
		}
		if (c)
			return c < 0 ? -1 : 1;
		x = xd + 1;
		y = yd + 1;
	}
	int xr = x < xe, yr = y < ye;
	return xr == yr ? 0 : xr ? 1 : -1;
}

static int bi_semver_is_valid(struct ev *E, struct val **a, struct val **out)
{
	struct semver v;
	*out = v_bool(a[0]->k == V_STR && semver_parse(a[0]->s, &v) == 0);
	return 0;
}

static int bi_semver_compare(struct ev *E, struct val **a, struct val **out)
{
	struct semver x, y;
	if (bi_want(E, "semver.compare", 1, a[0], K_STR) < 0 ||
	    bi_want(E, "semver.compare", 2, a[1], K_STR) < 0)
		return -1;
	if (semver_parse(a[0]->s, &x) < 0)
		return ev_fail(E, REGO_ERR_BUILTIN,
		               "eval_builtin_error: semver.compare: operand 1: string %s is not a "
		               "valid SemVer",
		               a[0]->s);
	if (semver_parse(a[1]->s, &y) < 0)
		return ev_fail(E, REGO_ERR_BUILTIN,
		               "eval_builtin_error: semver.compare: operand 2: string %s is not a "
		               "valid SemVer",
		               a[1]->s);
	int c = x.major != y.major   ? (x.major < y.major ? -1 : 1)
	        : x.minor != y.minor ? (x.minor < y.minor ? -1 : 1)
	        : x.patch != y.patch ? (x.patch < y.patch ? -1 : 1)
	                             : pre_cmp(&x, &y);
	return ret_int(E, c, out);
}

const struct builtin rego_builtins_time[] = {
    {"time.now_ns", 0, bi_now_ns},
    {"time.parse_ns", 2, bi_parse_ns},
    {"time.parse_rfc3339_ns", 1, bi_parse_rfc3339_ns},
    {"time.parse_duration_ns", 1, bi_parse_duration_ns},
    {"time.date", 1, bi_date},
    {"time.clock", 1, bi_clock},
    {"time.weekday", 1, bi_weekday},
    {"time.format", 1, bi_format},
    {"time.add_date", 4, bi_add_date},
    {"time.diff", 2, bi_diff},
    {"units.parse", 1, bi_units_parse},
    {"units.parse_bytes", 1, bi_units_parse_bytes},
    {"semver.is_valid", 1, bi_semver_is_valid},
    {"semver.compare", 2, bi_semver_compare},
};
const size_t rego_builtins_time_n = sizeof(rego_builtins_time) / sizeof(rego_builtins_time[0]);
