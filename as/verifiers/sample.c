/*
 * sample and sampledevice verifiers (as-rvps.md §5.1): Trustee's test TEEs. There is no
 * hardware and no signature; the only check is that the evidence's report_data equals the
 * expected report data, byte for byte. The default resource policy refuses `sample`.
 *
 * Evidence: {"svn": "<string>", "report_data": "<standard base64>"}.
 */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "as/verifiers/verifier.h"
#include "b64.h"

/* The claims both TEEs start from: {"svn", "report_data"} once report_data is bound. */
static json_t *check_sample(const struct verify_request *req, struct err *err)
{
	const json_t *ev = req->evidence;
	json_t *s = json_object_get(ev, "svn"), *r = json_object_get(ev, "report_data");
	uint8_t *got;
	size_t n;

	if (!json_is_object(ev) || !json_is_string(s))
		return err_set(err, "sample evidence must be {\"svn\": string, \"report_data\": "
		                    "base64 string}"),
		       NULL;
	if (r != NULL && !json_is_string(r))
		return err_set(err, "sample evidence `report_data` must be a base64 string"), NULL;
	const char *rd = r ? json_string_value(r) : "";
	if (req->report_data != NULL) {
		if (b64_decode(rd, strlen(rd), B64_STD | B64_LENIENT, &got, &n) < 0)
			return err_set(err, "sample evidence `report_data` is not base64"), NULL;
		int same =
		    n == req->report_data_len && CRYPTO_memcmp(got, req->report_data, n) == 0;
		free(got);
		if (!same)
			return err_set(err, "sample report_data does not match the expected "
			                    "runtime data hash"),
			       NULL;
	}
	return json_pack("{s:O,s:s}", "svn", s, "report_data", rd);
}

static int sample_verify(const struct verify_request *req, struct verify_result *out,
                         struct err *err)
{
	json_t *c = check_sample(req, err);
	if (c == NULL)
		return -1;
	json_object_set_new(c, "launch_digest", json_string("abcde"));
	json_object_set_new(c, "platform_version", json_pack("{s:i,s:i}", "major", 1, "minor", 4));
	json_object_set_new(c, "debug", json_false());
	if (req->init_data_hash != NULL) {
		char *b = b64_encode(req->init_data_hash, req->init_data_hash_len, B64_STD);
		json_object_set_new(c, "init_data", json_string(b ? b : ""));
		free(b);
	}
	return verify_result_add(out, "cpu", c, err);
}

static int sampledevice_verify(const struct verify_request *req, struct verify_result *out,
                               struct err *err)
{
	json_t *c = check_sample(req, err);
	return c == NULL ? -1 : verify_result_add(out, "gpu", c, err);
}

const struct verifier verifier_sample = {.tee = "sample", .verify = sample_verify};
const struct verifier verifier_sampledevice = {.tee = "sampledevice",
                                               .verify = sampledevice_verify};
