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

static int check_sample(const struct verify_request *req, const char **svn, const char **rd,
                        struct err *err)
{
	const json_t *ev = req->evidence;
	json_t *s = json_object_get(ev, "svn"), *r = json_object_get(ev, "report_data");

	if (!json_is_object(ev) || !json_is_string(s))
		return err_set(err, "sample evidence must be {\"svn\": string, \"report_data\": "
		                    "base64 string}");
	if (r != NULL && !json_is_string(r))
		return err_set(err, "sample evidence `report_data` must be a base64 string");
	*svn = json_string_value(s);
	*rd = r ? json_string_value(r) : "";
	if (req->report_data != NULL) {
		uint8_t *got;
		size_t n;
		if (b64_decode(*rd, strlen(*rd), B64_STD | B64_LENIENT, &got, &n) < 0)
			return err_set(err, "sample evidence `report_data` is not base64");
		int same =
		    n == req->report_data_len && CRYPTO_memcmp(got, req->report_data, n) == 0;
		free(got);
		if (!same)
			return err_set(err,
			               "sample report_data does not match the expected runtime "
			               "data hash");
	}
	return 0;
}

static int sample_verify(const struct verify_request *req, struct verify_result *out,
                         struct err *err)
{
	const char *svn, *rd;
	if (check_sample(req, &svn, &rd, err) < 0)
		return -1;
	json_t *c = json_pack("{s:s,s:s,s:s,s:{s:i,s:i},s:b}", "svn", svn, "report_data", rd,
	                      "launch_digest", "abcde", "platform_version", "major", 1, "minor", 4,
	                      "debug", 0);
	if (req->init_data_hash != NULL) {
		char *b = b64_encode(req->init_data_hash, req->init_data_hash_len, B64_STD);
		json_object_set_new(c, "init_data", json_string(b ? b : ""));
		free(b);
	}
	snprintf(out->items[0].tee_class, sizeof(out->items[0].tee_class), "cpu");
	out->items[0].claims = c;
	out->n = 1;
	return 0;
}

static int sampledevice_verify(const struct verify_request *req, struct verify_result *out,
                               struct err *err)
{
	const char *svn, *rd;
	if (check_sample(req, &svn, &rd, err) < 0)
		return -1;
	snprintf(out->items[0].tee_class, sizeof(out->items[0].tee_class), "gpu");
	out->items[0].claims = json_pack("{s:s,s:s}", "svn", svn, "report_data", rd);
	out->n = 1;
	return 0;
}

const struct verifier verifier_sample = {.tee = "sample", .verify = sample_verify};
const struct verifier verifier_sampledevice = {.tee = "sampledevice",
                                               .verify = sampledevice_verify};
