/*
 * nvidia_remote: NVIDIA devices appraised by NRAS (as-rvps.md §5.13 "Remote"). Each device
 * of the evidence list goes to NRAS on its own, to the gpu endpoint for Hopper and
 * Blackwell and the switch endpoint for LS10 NVSwitches; NRAS's signed claims become the
 * device's claims. A device is accepted when NRAS says its report's nonce is ours
 * (x-nvidia-<gpu|switch>-attestation-report-nonce-match true: NRAS compared the nonce we
 * sent with the one in the signed report) and its overall result is true; a device whose
 * signed identity (ueid) came already is refused, so one GPU cannot count twice. As in local
 * mode, a refused device is refused on its own (a failed item, "NVIDIA device <i>: <why>"),
 * the others keep their claims; only NRAS being out of reach fails the whole evidence, so the
 * AS answers "retry".
 *
 * Blackwell is carried here although the local mode refuses it: the format and the checks
 * are NRAS's. The evidence goes as base64 (a hex transcript is re-encoded, as Trustee does),
 * the certificate as the device sent it.
 *
 * PPCIe: when the twelve devices are 8 GPUs and 4 switches that name each other (each GPU
 * lists 4 switch PDIs in x-nvidia-gpu-switch-pdis, all-zero entries being unused ports;
 * each switch gives its own x-nvidia-switch-pdi and 8 GPU PDIs in
 * x-nvidia-switch-gpu-pdis), and the PDIs come to 8 GPUs and 4 switches in all, a `ppcie`
 * claims object {"switch_count": 4, "gpu_count": 8} follows. Any other set of devices (one
 * of them refused included) gets none, as in Trustee: NRAS's topology is a claim, not a
 * condition.
 */
#include "as/verifiers/nvidia_remote.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "as/collateral/nvidia_nras.h"
#include "b64.h"
#include "log.h"

struct nv_arch {
	const char *name, *upper, *endpoint; /* endpoint = TEE class */
};

static const struct nv_arch ARCHS[] = {
    {"Hopper", "HOPPER", "gpu"},
    {"Blackwell", "BLACKWELL", "gpu"},
    {"LS10", "LS10", "switch"},
};

static const struct nv_arch *arch_of(const char *s)
{
	for (size_t i = 0; s != NULL && i < sizeof(ARCHS) / sizeof(ARCHS[0]); i++)
		if (strcasecmp(s, ARCHS[i].name) == 0)
			return &ARCHS[i];
	return NULL;
}

/* The device's evidence as NRAS takes it: base64. A hex transcript is re-encoded; anything
 * else must already be base64. Returns a malloc'd string. */
static char *evidence_b64(const char *s, struct err *err)
{
	size_t n = strlen(s), len;
	uint8_t *raw = NULL;
	char *out;

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
		n--;
	if (hex_decode(s, n, &raw, &len) == 0) {
		out = b64_encode(raw, len, B64_STD);
		free(raw);
		return out ? out : (err_set(err, "out of memory"), NULL);
	}
	if (b64_decode(s, n, B64_STD | B64_LENIENT, &raw, &len) < 0) {
		err_set(err, "`evidence` is neither hex nor base64");
		return NULL;
	}
	free(raw);
	if ((out = strndup(s, n)) == NULL)
		err_set(err, "out of memory");
	return out;
}

/* What NRAS said of the device, after its tokens verified. */
static int judge(const json_t *claims, const char *endpoint, struct err *err)
{
	char key[64];
	const json_t *match, *overall;
	const char *details = json_string_value(json_object_get(claims, "x-nvidia-error-details"));

	snprintf(key, sizeof(key), "x-nvidia-%s-attestation-report-nonce-match", endpoint);
	match = json_object_get(claims, key);
	if (!json_is_boolean(match))
		return err_set(err, "NRAS gives no %s%s%.200s", key, details ? ": " : "",
		               details ? details : "");
	if (!json_is_true(match))
		return err_set(err,
		               "NRAS found the report's nonce is not ours (%s is false): the "
		               "report is not bound to this request",
		               key);
	overall = json_object_get(claims, "x-nvidia-overall-att-result");
	if (!json_is_true(overall))
		return err_set(err, "NRAS's overall attestation result is %s%s%.200s",
		               overall ? "false" : "missing", details ? ": " : "",
		               details ? details : "");
	return 0;
}

static json_t *verify_device(const struct verify_request *req, const json_t *e,
                             const uint8_t nonce[32], const char **tee_class, struct err *err)
{
	const char *arch = json_string_value(json_object_get(e, "arch"));
	const char *ev = json_string_value(json_object_get(e, "evidence"));
	const char *cert = json_string_value(json_object_get(e, "certificate"));
	const struct nv_arch *a;
	json_t *claims = NULL;
	char *b64;

	if (!json_is_object(e) || arch == NULL || ev == NULL || cert == NULL) {
		err_set(err, "a device needs string `arch`, `evidence` and `certificate`");
		return NULL;
	}
	if ((a = arch_of(arch)) == NULL) {
		err_set(err, "unknown device architecture %.32s", arch);
		return NULL;
	}
	*tee_class = a->endpoint;
	if ((b64 = evidence_b64(ev, err)) == NULL)
		return NULL;
	if (nvidia_nras_attest(a->endpoint, a->upper, nonce, b64, cert, req->now, &claims, err) ==
	        0 &&
	    judge(claims, a->endpoint, err) < 0) {
		json_decref(claims);
		claims = NULL;
	}
	free(b64);
	return claims;
}

/* ---- PPCIe ---------------------------------------------------------------------------- */

/* Add each string of `arr` (skipping all-zero PDIs when skip_zero) to the set `set` (an
 * object used as a set); the number added, -1 when an entry is not a string. */
static int add_pdis(json_t *set, const json_t *arr, int skip_zero)
{
	const json_t *v;
	size_t i;
	int n = 0;

	if (!json_is_array(arr))
		return -1;
	json_array_foreach(arr, i, v)
	{
		const char *s = json_string_value(v);
		if (s == NULL)
			return -1;
		if (skip_zero && strstr(s, "0000000000000000") != NULL)
			continue;
		json_object_set_new(set, s, json_true());
		n++;
	}
	return n;
}

static int ppcie_topology(const struct verify_result *r)
{
	json_t *gpus = json_object(), *switches = json_object();
	int ok = r->n == 12;

	for (size_t i = 0; ok && i < r->n; i++) {
		const json_t *c = r->items[i].claims;
		if (r->items[i].failed) {
			ok = 0;
		} else if (strcmp(r->items[i].tee_class, "gpu") == 0) {
			ok = add_pdis(switches, json_object_get(c, "x-nvidia-gpu-switch-pdis"),
			              1) == 4;
		} else {
			const char *own =
			    json_string_value(json_object_get(c, "x-nvidia-switch-pdi"));
			ok = own != NULL && json_object_set_new(switches, own, json_true()) == 0 &&
			     add_pdis(gpus, json_object_get(c, "x-nvidia-switch-gpu-pdis"), 0) == 8;
		}
	}
	ok = ok && json_object_size(gpus) == 8 && json_object_size(switches) == 4;
	json_decref(gpus);
	json_decref(switches);
	return ok;
}

/* Device i into `out`: its claims, or its refusal as a failed item. -1 only for an outage
 * (err->code ERR_UNAVAILABLE) or out of memory. */
static int remote_device(const struct verify_request *req, const json_t *list, size_t i,
                         const uint8_t nonce[32], json_t *seen, struct verify_result *out,
                         struct err *err)
{
	const char *cls = "gpu", *ueid;
	struct err why = {0};
	json_t *claims = verify_device(req, json_array_get(list, i), nonce, &cls, &why);

	if (claims == NULL && why.code == ERR_UNAVAILABLE) {
		*err = why;
		return err_prefix(err, "NVIDIA device %zu", i);
	}
	ueid = json_string_value(json_object_get(claims, "ueid"));
	if (ueid != NULL && json_object_get(seen, ueid) != NULL) {
		err_set(&why, "the same device as device %lld (same ueid)",
		        (long long)json_integer_value(json_object_get(seen, ueid)));
		json_decref(claims);
		claims = NULL;
	}
	if (claims == NULL) {
		err_prefix(&why, "NVIDIA device %zu", i);
		return verify_result_add_failed(out, cls, why.msg, err);
	}
	if (ueid != NULL)
		json_object_set_new(seen, ueid, json_integer((json_int_t)i));
	return verify_result_add(out, cls, claims, err);
}

int nvidia_remote_verify(const struct verify_request *req, const json_t *list,
                         const uint8_t nonce[32], struct verify_result *out, struct err *err)
{
	json_t *seen = json_object(); /* ueid -> device index */
	int rc = -1;

	if (seen == NULL)
		return err_set(err, "out of memory");
	for (size_t i = 0; i < json_array_size(list); i++)
		if (remote_device(req, list, i, nonce, seen, out, err) < 0)
			goto out;
	if (ppcie_topology(out) &&
	    verify_result_add(out, "ppcie",
	                      json_pack("{s:i,s:i}", "switch_count", 4, "gpu_count", 8), err) < 0)
		goto out;
	rc = 0;
out:
	if (rc < 0)
		verify_result_clear(out);
	json_decref(seen);
	return rc;
}
