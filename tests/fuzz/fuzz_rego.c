/* Fuzz the Rego parser and, for what compiles, evaluation under a small step budget (a hostile
 * policy must end in an error, never a hang or a crash): data.policy.allow with an explanation,
 * then the whole data document, which evaluates every rule of every package. The same bytes are
 * also run as a query (with no policy) and read as an input term. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rego/rego.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rego_module m = {"fuzz.rego", (const char *)data, size};
	struct err err;
	json_t *in = json_pack("{s:[i,i,i],s:{s:s},s:{s:{s:i}},s:b}", "a", 1, 2, 3, "o", "k", "v",
	                       "nested", "x", "y", 1, "b", 1),
	       *r = NULL;
	struct rego_eval_opts o = {.input = in, .data = in, .max_steps = 20000, .explain = 1};
	struct rego_policy *p = rego_compile(&m, 1, NULL, 0, &err);
	if (p != NULL) {
		char *why = NULL;
		rego_eval_rule(p, "data.policy.allow", &o, &r, &why, &err);
		json_decref(r);
		free(why);
		r = NULL;
		rego_eval_rule(p, "data", &o, &r, NULL, &err);
		json_decref(r);
		rego_policy_free(p);
	}
	char *q = malloc(size + 1);
	if (q != NULL && memchr(data, '\0', size) == NULL) {
		memcpy(q, data, size);
		q[size] = '\0';
		char *text = NULL;
		rego_eval_query_text(NULL, q, &o, &text, &err);
		free(text);
		struct rego_eval_opts t = {.input_term = q, .max_steps = 20000};
		rego_eval_query_text(NULL, "x := input", &t, &text, &err);
		free(text);
	}
	free(q);
	json_decref(in);
	return 0;
}
