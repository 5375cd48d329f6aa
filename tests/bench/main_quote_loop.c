/*
 * quote-loop: the warm half of `make bench-peers`. Verifies one raw Intel quote (tdx or sgx)
 * with an offline collateral bundle at a pinned time through the AS verifier, N times in one
 * process, the way a peer library is timed when it is called in a loop; the first call (which
 * loads the bundle and checks its chains) is left out of the median. Prints the verdict the
 * verifier reached (the TCB status claim, or the refusal) and the median, so the peer's
 * verdict can be compared with ours line by line:
 *
 *   quote-loop TEE QUOTE-FILE COLLATERAL-FILE RFC3339-TIME N
 *   -> "verdict UpToDate" and "warm_us 201.3"
 *
 * Exit 0 when every call agreed with the first, 1 on a refusal or a changed verdict.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "as/evidence/dcap.h"
#include "as/verifiers/verifier.h"
#include "b64.h"
#include "config.h"
#include "tests/bench/bench_time.h"

/* The tcb_status claim of the first device, wherever the verifier nests it; NULL if none. */
static const char *tcb_status(const json_t *claims)
{
	const char *key;
	json_t *v;
	if (!json_is_object(claims))
		return NULL;
	v = json_object_get(claims, "tcb_status");
	if (json_is_string(v))
		return json_string_value(v);
	json_object_foreach((json_t *)claims, key, v)
	{
		const char *s = tcb_status(v);
		if (s != NULL)
			return s;
	}
	return NULL;
}

/* One verification; the verdict goes to buf ("refused: <reason>" on refusal). */
static int verify_once(const struct verifier *v, const struct verify_request *req, char *buf,
                       size_t cap)
{
	struct verify_result res = {0};
	struct err err = {0};
	int rc = v->verify(req, &res, &err);
	if (rc != 0)
		snprintf(buf, cap, "refused: %s", err.msg);
	else {
		const char *s = res.n > 0 ? tcb_status(res.items[0].claims) : NULL;
		snprintf(buf, cap, "%s", s ? s : "verified (no tcb_status claim)");
	}
	verify_result_clear(&res);
	return rc;
}

int main(int argc, char **argv)
{
	struct err err = {0};
	size_t qlen;
	time_t when;
	char first[1100], again[1100];

	if (argc != 6 || atoi(argv[5]) < 1) {
		fprintf(stderr, "usage: quote-loop tdx|sgx QUOTE COLLATERAL RFC3339-TIME N\n");
		return 2;
	}
	int iters = atoi(argv[5]);
	const struct verifier *v = verifier_find(argv[1]);
	if (v == NULL || dcap_parse_time(argv[4], &when) < 0) {
		fprintf(stderr, "quote-loop: unknown tee `%s` or bad time `%s`\n", argv[1],
		        argv[4]);
		return 2;
	}
	if (verifiers_init(NULL, &err) < 0) {
		fprintf(stderr, "quote-loop: %s\n", err.msg);
		return 1;
	}
	uint8_t *quote = (uint8_t *)file_read_all(argv[2], &qlen, &err);
	if (quote == NULL) {
		fprintf(stderr, "quote-loop: %s\n", err.msg);
		return 2;
	}
	char *b64 = b64_encode(quote, qlen, B64_STD);
	json_t *ev = json_pack("{s:s}", "quote", b64);
	json_t *opts = json_pack("{s:s}", "collateral", argv[3]);
	struct verify_request req = {.evidence = ev, .now = when, .options = opts};
	double *t = calloc((size_t)iters, sizeof(double));
	int rc = verify_once(v, &req, first, sizeof(first));
	int same = 1;
	for (int i = 0; i < iters && t != NULL; i++) {
		double t0 = now_us();
		int r = verify_once(v, &req, again, sizeof(again));
		t[i] = now_us() - t0;
		same &= r == rc && strcmp(again, first) == 0;
	}
	printf("verdict %s\n", first);
	if (t != NULL)
		printf("warm_us %.1f\n", median(t, iters));
	if (!same)
		fprintf(stderr, "quote-loop: a later call reached another verdict: %s\n", again);
	free(t);
	free(b64);
	free(quote);
	json_decref(ev);
	json_decref(opts);
	return rc == 0 && same && t != NULL ? 0 : 1;
}
