/* log: leveled stderr logging (see log.h). Thread-safe: one fprintf per line; repeatable
 * events go through log_ratelimited, one line per interval per call site.
 *
 * One event is one line, whatever the values in it: a client's tee name, session id or
 * claim may carry a newline and a fake "[<time> info kbs] ... attested" after it. So the
 * text format escapes every control byte of the formatted message (\n, \r, \t, \xHH), the
 * Unicode line breaks a viewer may honour (C1 controls, U+2028/9: \u....) and the
 * backslash itself, which keeps the escaping unambiguous. The JSON format escapes as JSON. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static enum log_level cur_level = LOG_INFO;
static const char *prog = "ctrustee";
static int json_format;

static const char *level_names[] = {"error", "warn", "info", "debug", "trace"};

int log_parse_level(const char *s)
{
	int best = -1;
	char buf[256], *tok, *save = NULL;

	if (s == NULL)
		return -1;
	snprintf(buf, sizeof(buf), "%s", s);
	for (tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		char *eq = strchr(tok, '=');
		const char *word = eq ? eq + 1 : tok;
		for (int i = 0; i < 5; i++) {
			if (strcasecmp(word, level_names[i]) == 0 ||
			    (i == LOG_WARN && strcasecmp(word, "warning") == 0))
				best = i > best ? i : best;
		}
		if (strcasecmp(word, "off") == 0 && best < 0)
			best = LOG_ERROR;
	}
	return best;
}

void log_init(const char *progname)
{
	int lvl;

	if (progname != NULL)
		prog = progname;
	lvl = log_parse_level(getenv("LOG_LEVEL"));
	if (lvl < 0)
		lvl = log_parse_level(getenv("RUST_LOG"));
	if (lvl >= 0)
		cur_level = (enum log_level)lvl;
	const char *fmt = getenv("LOG_FORMAT");
	json_format = fmt != NULL && strcmp(fmt, "json") == 0;
}

void log_set_level(enum log_level lvl)
{
	cur_level = lvl;
}

enum log_level log_get_level(void)
{
	return cur_level;
}

static void json_escape(char *dst, size_t cap, const char *src)
{
	size_t o = 0;
	for (; *src && o + 7 < cap; src++) {
		unsigned char c = (unsigned char)*src;
		if (c == '"' || c == '\\') {
			dst[o++] = '\\';
			dst[o++] = (char)c;
		} else if (c < 0x20) {
			o += (size_t)snprintf(dst + o, cap - o, "\\u%04x", c);
		} else {
			dst[o++] = (char)c;
		}
	}
	dst[o] = '\0';
}

static void text_escape(char *dst, size_t cap, const char *src)
{
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)src; *p && o + 7 < cap; p++) {
		unsigned char c = *p;
		if (c == '\\') {
			dst[o++] = '\\';
			dst[o++] = '\\';
		} else if (c == '\n' || c == '\r' || c == '\t') {
			dst[o++] = '\\';
			dst[o++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
		} else if (c < 0x20 || c == 0x7f) {
			o += (size_t)snprintf(dst + o, cap - o, "\\x%02x", c);
		} else if (c == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			o += (size_t)snprintf(dst + o, cap - o, "\\u%04x", p[1]);
			p++;
		} else if (c == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
			o += (size_t)snprintf(dst + o, cap - o, "\\u%04x", 0x2000 + p[2] - 0x80);
			p += 2;
		} else {
			dst[o++] = (char)c;
		}
	}
	dst[o] = '\0';
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	char msg[4096], ts[80];
	struct timespec now;
	struct tm tm;
	va_list ap;

	if (lvl > cur_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	         now.tv_nsec / 1000000);
	if (json_format) {
		char esc[8192];
		json_escape(esc, sizeof(esc), msg);
		fprintf(stderr,
		        "{\"ts\":\"%s\",\"level\":\"%s\",\"target\":\"%s\",\"msg\":\"%s\"}\n", ts,
		        level_names[lvl], prog, esc);
	} else {
		char esc[8192];
		text_escape(esc, sizeof(esc), msg);
		fprintf(stderr, "[%s %-5s %s] %s\n", ts, level_names[lvl], prog, esc);
	}
}

/* One lock for every call site's state: these lines are rare by construction. */
static pthread_mutex_t rl_mu = PTHREAD_MUTEX_INITIALIZER;

void log_ratelimited(struct log_ratelimit *rl, enum log_level lvl, const char *fmt, ...)
{
	char msg[4096];
	struct timespec now;
	unsigned long left_out;
	long long ms;
	va_list ap;

	if (lvl > cur_level)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	pthread_mutex_lock(&rl_mu);
	if (ms < rl->next_ms) {
		rl->suppressed++;
		pthread_mutex_unlock(&rl_mu);
		return;
	}
	rl->next_ms = ms + (rl->interval_ms > 0 ? rl->interval_ms : LOG_RATELIMIT_MS);
	left_out = rl->suppressed;
	rl->suppressed = 0;
	pthread_mutex_unlock(&rl_mu);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (left_out > 0)
		log_msg(lvl, "%s (and %lu more like it since the last such line)", msg, left_out);
	else
		log_msg(lvl, "%s", msg);
}
