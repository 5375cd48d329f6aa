/*
 * log: leveled logging to stderr, one line per event.
 *
 * The level comes from LOG_LEVEL (error|warn|info|debug|trace) or, for drop-in use with
 * Trustee's deployments, RUST_LOG: its bare level words are honoured ("info",
 * "warn,grpc_as=debug" takes the most verbose level named). LOG_FORMAT=json switches to
 * one JSON object per line. Never log secrets: keys, resource bytes, tokens.
 */
#ifndef CTRUSTEE_LOG_H
#define CTRUSTEE_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG, LOG_TRACE };

void log_init(const char *progname);
void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* Parse a LOG_LEVEL / RUST_LOG value; returns -1 if no level word was found. */
int log_parse_level(const char *s);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Rate-limited lines for events a stranger can repeat at will (connection churn, refused
 * handshakes): at most one line per interval per call site; the next line printed after a
 * quiet spell says how many were left out. State is per call site (the macros below keep a
 * static one); calls from any thread. */
struct log_ratelimit {
	long long next_ms;        /* monotonic ms before which lines are counted, not printed */
	unsigned long suppressed; /* counted since the last printed line */
	int interval_ms;
};
#define LOG_RATELIMIT_MS 10000
void log_ratelimited(struct log_ratelimit *rl, enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define log_ratelimited_at(lvl, ...)                                                               \
	do {                                                                                       \
		static struct log_ratelimit rl_ = {0, 0, LOG_RATELIMIT_MS};                        \
		log_ratelimited(&rl_, (lvl), __VA_ARGS__);                                         \
	} while (0)
#define log_warn_ratelimited(...) log_ratelimited_at(LOG_WARN, __VA_ARGS__)
#define log_info_ratelimited(...) log_ratelimited_at(LOG_INFO, __VA_ARGS__)

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_get_level() >= LOG_DEBUG)                                                  \
			log_msg(LOG_DEBUG, __VA_ARGS__);                                           \
	} while (0)

#endif
