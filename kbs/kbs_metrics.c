/*
 * kbs_metrics: the KBS's Prometheus metrics (kbs-protocol.md §9) with Trustee's names, types,
 * labels and buckets, rendered in the text exposition format. One mutex guards everything:
 * updates are a few additions per request. Unlike Trustee, response sizes are observed in
 * kbs_http_response_size_bytes (Trustee records them in the request-size histogram).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kbs.h"

#ifndef KBS_VERSION
#define KBS_VERSION "0.1.0"
#endif
#ifndef KBS_GIT_HASH
#define KBS_GIT_HASH "unknown"
#endif

struct hist {
	const double *b;
	size_t nb;
	unsigned long long cnt[16];
	unsigned long long count;
	double sum;
};

struct lab {
	char *label;
	unsigned long long v;
	struct lab *next;
};

static const double dur_b[] = {0.0005, 0.001, 0.005, 0.01, 0.05, 0.5, 1};
static const double size_b[] = {32, 128, 512, 2048, 8192};

static const double plugin_b[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1};

/* kbs_plugin_request_duration_seconds, one histogram per external backend */
struct lab_hist {
	char *label;
	struct hist h;
	struct lab_hist *next;
};
static struct lab_hist *plugin_dur;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long counters[KM__N];
static struct lab *labelled[KML__N];
static long long active;
static struct hist h_dur = {dur_b, 7};
static struct hist h_req = {size_b, 5};
static struct hist h_resp = {size_b, 5};

static const struct {
	const char *name, *help;
} cnames[KM__N] = {
    [KM_HTTP_REQUESTS] = {"kbs_http_requests_total", "Total HTTP requests to /kbs paths"},
    [KM_POLICY_EVALS] = {"kbs_policy_evaluations_total", "Resource policy evaluations"},
    [KM_POLICY_APPROVALS] = {"kbs_policy_approvals_total", "Resource policy approvals"},
    [KM_POLICY_VIOLATIONS] = {"kbs_policy_violations_total", "Resource policy denials"},
    [KM_POLICY_ERRORS] = {"kbs_policy_errors_total", "Resource policy evaluation errors"},
    [KM_ATTEST_REQUESTS] = {"kbs_attestation_requests_total", "Attestation requests"},
    [KM_ATTEST_ERRORS] = {"kbs_attestation_errors_total",
                          "Malformed attestation requests or missing sessions"},
    [KM_AUTH_REQUESTS] = {"kbs_auth_requests_total", "Auth requests"},
    [KM_AUTH_SUCCESSES] = {"kbs_auth_successes_total", "Successful auth requests"},
    [KM_AUTH_ERRORS] = {"kbs_auth_errors_total", "Failed auth requests"},
    [KM_LOOP_ANSWERS] = {"kbs_event_loop_answers_total",
                         "Requests to /kbs paths answered on an event loop, without the worker "
                         "pool"},
};

static const struct {
	const char *name, *help, *label;
} lnames[KML__N] = {
    [KML_RES_READS] = {"kbs_resource_reads_total", "Resource reads", "resource_path"},
    [KML_RES_WRITES] = {"kbs_resource_writes_total", "Resource writes", "resource_path"},
    [KML_RES_DELETES] = {"kbs_resource_deletes_total", "Resource deletes", "resource_path"},
    [KML_ATT_OK] = {"kbs_attestation_successes_total", "Successful attestations", "tee_type"},
    [KML_ATT_FAIL] = {"kbs_attestation_failures_total", "Failed attestations", "tee_type"},
    [KML_SESSION_EVICTIONS] = {"kbs_session_evictions_total",
                               "Sessions removed from a full in-memory session table", "reason"},
    [KML_LIMIT_REFUSALS] = {"kbs_limit_refusals_total",
                            "Requests refused by a limit (429, or 503 when the session table "
                            "is full)",
                            "limit"},
    [KML_PLUGIN_REQUESTS] = {"kbs_plugin_requests_total", "External plugin requests",
                             "plugin_name"},
    [KML_PLUGIN_ERRORS] = {"kbs_plugin_errors_total", "External plugin errors", "plugin_name"},
};

void kbs_metrics_init(void)
{
}

void kbs_metrics_inc(enum kbs_counter c)
{
	pthread_mutex_lock(&mu);
	counters[c]++;
	pthread_mutex_unlock(&mu);
}

void kbs_metrics_inc_label(enum kbs_labelled m, const char *label)
{
	pthread_mutex_lock(&mu);
	struct lab *l = labelled[m];
	while (l && strcmp(l->label, label))
		l = l->next;
	if (!l) {
		l = calloc(1, sizeof(*l));
		if (l)
			l->label = strdup(label);
		if (!l || !l->label) {
			free(l);
			pthread_mutex_unlock(&mu);
			return;
		}
		l->next = labelled[m];
		labelled[m] = l;
	}
	l->v++;
	pthread_mutex_unlock(&mu);
}

void kbs_metrics_active(int delta)
{
	pthread_mutex_lock(&mu);
	active += delta;
	pthread_mutex_unlock(&mu);
}

static void observe(struct hist *h, double v)
{
	for (size_t i = 0; i < h->nb; i++)
		if (v <= h->b[i])
			h->cnt[i]++;
	h->count++;
	h->sum += v;
}

void kbs_metrics_http_observe(double seconds, size_t req_size, size_t resp_size)
{
	pthread_mutex_lock(&mu);
	observe(&h_dur, seconds);
	observe(&h_req, (double)req_size);
	observe(&h_resp, (double)resp_size);
	pthread_mutex_unlock(&mu);
}

void kbs_metrics_plugin_observe(const char *backend, double seconds)
{
	pthread_mutex_lock(&mu);
	struct lab_hist *l = plugin_dur;
	while (l && strcmp(l->label, backend))
		l = l->next;
	if (!l && (l = calloc(1, sizeof(*l))) != NULL) {
		l->h.b = plugin_b;
		l->h.nb = sizeof(plugin_b) / sizeof(plugin_b[0]);
		if ((l->label = strdup(backend)) == NULL) {
			free(l);
			l = NULL;
		} else {
			l->next = plugin_dur;
			plugin_dur = l;
		}
	}
	if (l)
		observe(&l->h, seconds);
	pthread_mutex_unlock(&mu);
}

struct sb {
	char *s;
	size_t len, cap;
};

static void sb_printf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sb *b, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (b->s && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t nc = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
		char *ns = realloc(b->s, nc);
		if (!ns)
			return;
		b->s = ns;
		b->cap = nc;
	}
}

static void render_hist(struct sb *b, const char *name, const char *help, const struct hist *h)
{
	sb_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (size_t i = 0; i < h->nb; i++)
		sb_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->b[i], h->cnt[i]);
	sb_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.17g\n%s_count %llu\n", name, h->count,
	          name, h->sum, name, h->count);
}

/* Label values are resource paths and TEE names (validated), but escape anyway. */
static void render_label(struct sb *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			sb_printf(b, "\\%c", *v);
		else if (*v == '\n')
			sb_printf(b, "\\n");
		else
			sb_printf(b, "%c", *v);
	}
}

char *kbs_metrics_render(void)
{
	struct sb b = {0};
	pthread_mutex_lock(&mu);
	sb_printf(&b,
	          "# HELP kbs_build_info Build information\n# TYPE kbs_build_info gauge\n"
	          "kbs_build_info{version=\"%s\",git_hash=\"%s\",build_date=\"%s\"} 1\n",
	          KBS_VERSION, KBS_GIT_HASH, __DATE__);
	for (int i = 0; i < KM__N; i++)
		sb_printf(&b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", cnames[i].name,
		          cnames[i].help, cnames[i].name, cnames[i].name, counters[i]);
	for (int i = 0; i < KML__N; i++) {
		sb_printf(&b, "# HELP %s %s\n# TYPE %s counter\n", lnames[i].name, lnames[i].help,
		          lnames[i].name);
		for (struct lab *l = labelled[i]; l; l = l->next) {
			sb_printf(&b, "%s{%s=\"", lnames[i].name, lnames[i].label);
			render_label(&b, l->label);
			sb_printf(&b, "\"} %llu\n", l->v);
		}
	}
	sb_printf(&b,
	          "# HELP kbs_http_active_connections Requests in progress\n"
	          "# TYPE kbs_http_active_connections gauge\nkbs_http_active_connections %lld\n",
	          active);
	render_hist(&b, "kbs_http_request_duration_seconds", "HTTP request handling time", &h_dur);
	render_hist(&b, "kbs_http_request_size_bytes", "HTTP request body sizes", &h_req);
	render_hist(&b, "kbs_http_response_size_bytes", "HTTP response body sizes", &h_resp);
	const char *pn = "kbs_plugin_request_duration_seconds";
	sb_printf(&b, "# HELP %s External plugin call time\n# TYPE %s histogram\n", pn, pn);
	for (const struct lab_hist *l = plugin_dur; l; l = l->next) {
		for (size_t i = 0; i <= l->h.nb; i++) {
			sb_printf(&b, "%s_bucket{plugin_name=\"", pn);
			render_label(&b, l->label);
			if (i < l->h.nb)
				sb_printf(&b, "\",le=\"%g\"} %llu\n", l->h.b[i], l->h.cnt[i]);
			else
				sb_printf(&b, "\",le=\"+Inf\"} %llu\n", l->h.count);
		}
		sb_printf(&b, "%s_sum{plugin_name=\"", pn);
		render_label(&b, l->label);
		sb_printf(&b, "\"} %.17g\n%s_count{plugin_name=\"", l->h.sum, pn);
		render_label(&b, l->label);
		sb_printf(&b, "\"} %llu\n", l->h.count);
	}
	pthread_mutex_unlock(&mu);
	return b.s;
}
