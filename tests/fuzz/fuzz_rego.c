/* Fuzz the Rego parser and, for what compiles, evaluation under a small step budget (a hostile
 * policy must end in an error, never a hang or a crash): data.policy.allow with an explanation,
 * then the whole data document, which evaluates every rule of every package. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "rego/rego.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rego_module m = {"fuzz.rego", (const char *)data, size};
	struct err err;
	struct rego_policy *p = rego_compile(&m, 1, NULL, 0, &err);
	if (p != NULL) {
		json_t *in = json_pack("{s:[i,i,i],s:{s:s},s:{s:{s:i}},s:b}", "a", 1, 2, 3, "o",
		                       "k", "v", "nested", "x", "y", 1, "b", 1),
		       *r = NULL;
		struct rego_eval_opts o = {.input = in, .max_steps = 20000, .explain = 1};
		char *why = NULL;
		rego_eval_rule(p, "data.policy.allow", &o, &r, &why, &err);
		json_decref(r);
		free(why);
		r = NULL;
		rego_eval_rule(p, "data", &o, &r, NULL, &err);
		json_decref(r);
		json_decref(in);
		rego_policy_free(p);
	}
	return 0;
}
