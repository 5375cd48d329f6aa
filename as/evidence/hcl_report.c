/* hcl: Azure HCL report parsing (see hcl.h). */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "as/evidence/hcl_report.h"
#include "b64.h"
#include "jose/jose.h"

#define HCL_HW_OFF 32
#define HCL_HW_AREA 1184
#define HCL_IGVM_OFF (HCL_HW_OFF + HCL_HW_AREA) /* 1216 */
#define HCL_VAR_OFF (HCL_IGVM_OFF + 20)         /* 1236 */

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int hcl_report_parse(const uint8_t *buf, size_t len, struct hcl_report *out, struct err *err)
{
	memset(out, 0, sizeof(*out));
	if (len < HCL_VAR_OFF)
		return err_set(err, "HCL report is %zu bytes, shorter than its fixed part (%d)",
		               len, HCL_VAR_OFF);
	if (memcmp(buf, "HCLA", 4) != 0)
		return err_set(err, "HCL report does not start with the \"HCLA\" signature");
	out->hw_report = buf + HCL_HW_OFF;
	out->report_type = le32(buf + HCL_IGVM_OFF + 8);
	out->hash_type = le32(buf + HCL_IGVM_OFF + 12);
	out->var_data_len = le32(buf + HCL_IGVM_OFF + 16);
	if (out->report_type != HCL_REPORT_TYPE_SNP && out->report_type != HCL_REPORT_TYPE_TDX)
		return err_set(err, "HCL report type %u is neither SNP (2) nor TDX (4)",
		               out->report_type);
	if (out->hash_type != 1)
		return err_set(err, "HCL variable data hash type %u is not SHA-256 (1)",
		               out->hash_type);
	if (out->var_data_len > len - HCL_VAR_OFF)
		return err_set(err,
		               "HCL variable data (%zu bytes) runs past the report (%zu bytes)",
		               out->var_data_len, len);
	out->var_data = buf + HCL_VAR_OFF;
	if (EVP_Digest(out->var_data, out->var_data_len, out->var_data_sha256, NULL, EVP_sha256(),
	               NULL) != 1)
		return err_set(err, "SHA-256 failed");
	out->var_json = json_loadb((const char *)out->var_data, out->var_data_len,
	                           JSON_DISABLE_EOF_CHECK, NULL);
	return 0;
}

void hcl_report_free(struct hcl_report *h)
{
	json_decref(h->var_json);
	h->var_json = NULL;
}

EVP_PKEY *hcl_ak_pub(const struct hcl_report *h, struct err *err)
{
	json_t *keys = json_object_get(h->var_json, "keys");
	size_t i;
	json_t *k;

	if (!json_is_array(keys)) {
		err_set(err, "Failed to get AKpub: HCL variable data has no `keys` array");
		return NULL;
	}
	json_array_foreach(keys, i, k)
	{
		const char *kid = json_string_value(json_object_get(k, "kid"));
		if (kid == NULL || strcmp(kid, "HCLAkPub") != 0)
			continue;
		EVP_PKEY *pk = jwk_to_pkey(k, err);
		if (pk == NULL || EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA) {
			EVP_PKEY_free(pk);
			err_set(err, "Failed to get AKpub: HCLAkPub is not an RSA JWK");
			return NULL;
		}
		return pk;
	}
	err_set(err, "Failed to get AKpub: no key with kid HCLAkPub in the HCL variable data");
	return NULL;
}

int hcl_user_data(const struct hcl_report *h, uint8_t **out, size_t *len, struct err *err)
{
	json_t *u = json_object_get(h->var_json, "user-data");
	if (!json_is_string(u) ||
	    hex_decode(json_string_value(u), json_string_length(u), out, len) < 0)
		return err_set(err, "HCL variable data has no hex `user-data`");
	return 0;
}

int hcl_check_user_data(const struct hcl_report *h, const uint8_t *rd, size_t len, struct err *err)
{
	uint8_t *ud;
	size_t udlen;
	if (hcl_user_data(h, &ud, &udlen, err) < 0)
		return -1;
	int same = udlen >= len && CRYPTO_memcmp(ud, rd, len) == 0;
	free(ud);
	return same ? 0 : err_set(err, "User-data in HCL variable data doesn't match report_data");
}
