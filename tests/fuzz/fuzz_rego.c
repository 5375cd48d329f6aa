/* Fuzz the Rego parser and, for what compiles, evaluation of data.policy.allow under a small
 * step budget (a hostile policy must end in an error, never a hang or a crash). */
#include <stddef.h>
#include <stdint.h>

#include "rego/rego.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rego_module m = {"fuzz.rego", (const char *)data, size};
	struct err err;
	struct rego_policy *p = rego_compile(&m, 1, NULL, 0, &err);
	if (p != NULL) {
		json_t *in = json_pack("{s:[i,i,i],s:{s:s}}", "a", 1, 2, 3, "o", "k", "v"), *r = NULL;
		struct rego_eval_opts o = {.input = in, .max_steps = 20000};
		rego_eval_rule(p, "data.policy.allow", &o, &r, NULL, &err);
		json_decref(r);
		json_decref(in);
		rego_policy_free(p);
	}
	return 0;
}
