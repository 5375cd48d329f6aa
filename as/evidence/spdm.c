/*
 * spdm: parse an NVIDIA device's SPDM 1.1 GET_MEASUREMENTS transcript and verify its
 * signature (see spdm.h). The transcript is what the device signed, so the parse is strict:
 * the response's measurement record must hold exactly NumberOfBlocks DMTF blocks, each opaque
 * item must be one NVIDIA knows for that device (GPU or switch) and appear once, and the
 * signature must end the message.
 *
 * Layout (little-endian):
 *   request   0 version 0x11 | 1 code 0xe0 | 2 param1 (bit 0: signature requested) |
 *             3 param2 (measurement operation) | 4 nonce[32] | 36 slot id
 *   response  0 version 0x11 | 1 code 0x60 | 2 param1 | 3 param2 | 4 NumberOfBlocks |
 *             5 MeasurementRecordLength u24 | 8 record | nonce[32] | OpaqueLength u16 |
 *             opaque items {u16 type, u16 size, data} | signature
 *   block     0 index | 1 specification (1 = DMTF) | 2 size u16 | 4 DMTF type |
 *             5 value size u16 | 7 value (size = block size - 3)
 */
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "as/evidence/spdm.h"
#include "b64.h"

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static int parse_request(const uint8_t *p, size_t len, struct spdm_measurements *m, struct err *err)
{
	if (len < SPDM_REQUEST_LEN)
		return err_set(err, "SPDM GET_MEASUREMENTS request truncated: %zu of %d bytes", len,
		               SPDM_REQUEST_LEN);
	if (p[0] != SPDM_VERSION_11)
		return err_set(err, "SPDM request version 0x%02x not supported (want 0x11)", p[0]);
	if (p[1] != SPDM_GET_MEASUREMENTS)
		return err_set(err, "SPDM request code 0x%02x is not GET_MEASUREMENTS", p[1]);
	if ((p[2] & 1) == 0)
		return err_set(err, "SPDM request did not ask for a signature");
	m->req_param1 = p[2];
	m->req_param2 = p[3];
	m->req_nonce = p + 4;
	m->req_slot = p[36];
	return 0;
}

static int parse_block(const uint8_t *p, size_t left, size_t i, struct spdm_block *b, size_t *used,
                       struct err *err)
{
	if (left < 4)
		return err_set(err, "measurement block %zu header truncated", i);
	size_t size = le16(p + 2);
	if (p[1] != 1)
		return err_set(err, "measurement block %zu (index %u) is not in the DMTF layout", i,
		               p[0]);
	if (size > left - 4)
		return err_set(err, "measurement block %zu (index %u) overruns the record", i,
		               p[0]);
	if (size < 3)
		return err_set(err, "measurement block %zu (index %u) too short for a DMTF value",
		               i, p[0]);
	size_t vlen = le16(p + 5);
	if (vlen != size - 3)
		return err_set(
		    err,
		    "measurement block %zu (index %u): DMTF value size %zu does not fill the "
		    "block of %zu bytes",
		    i, p[0], vlen, size);
	b->index = p[0];
	b->dmtf_type = p[4];
	b->value = p + 7;
	b->value_len = vlen;
	*used = 4 + size;
	return 0;
}

static int parse_record(const uint8_t *p, size_t len, size_t n, struct spdm_measurements *m,
                        struct err *err)
{
	size_t off = 0;
	for (size_t i = 0; i < n; i++) {
		size_t used = 0;
		if (parse_block(p + off, len - off, i, &m->blocks[i], &used, err) < 0)
			return -1;
		for (size_t j = 0; j < i; j++)
			if (m->blocks[j].index == m->blocks[i].index)
				return err_set(err, "measurement index %u appears twice",
				               m->blocks[i].index);
		off += used;
	}
	if (off != len)
		return err_set(err, "measurement record has %zu bytes after its %zu blocks",
		               len - off, n);
	m->n_blocks = n;
	return 0;
}

/* Name of a known opaque type, NULL for an unknown one. */
static const char *const od_names[] = {
    [SPDM_OD_CERT_ISSUER_NAME] = "cert_issuer_name",
    [SPDM_OD_CERT_AUTHORITY_KEY_IDENTIFIER] = "cert_authority_key_identifier",
    [SPDM_OD_DRIVER_VERSION] = "driver_version",
    [SPDM_OD_GPU_INFO] = "gpu_info",
    [SPDM_OD_ID_SKU] = "id_sku",
    [SPDM_OD_VBIOS_VERSION] = "vbios_version",
    [SPDM_OD_MANUFACTURER_ID] = "manufacturer_id",
    [SPDM_OD_TAMPER_DETECTION] = "tamper_detection",
    [SPDM_OD_SMC] = "smc",
    [SPDM_OD_VPR] = "vpr",
    [SPDM_OD_NVDEC0_STATUS] = "nvdec0_status",
    [SPDM_OD_MEASUREMENT_COUNT] = "measurement_count",
    [SPDM_OD_CPR_INFO] = "cpr_info",
    [SPDM_OD_BOARD_ID] = "board_id",
    [SPDM_OD_CHIP_SKU] = "chip_sku",
    [SPDM_OD_CHIP_SKU_MOD] = "chip_sku_mod",
    [SPDM_OD_PROJECT] = "project",
    [SPDM_OD_PROJECT_SKU] = "project_sku",
    [SPDM_OD_PROJECT_SKU_MOD] = "project_sku_mod",
    [SPDM_OD_FWID] = "fwid",
    [SPDM_OD_PROTECTED_PCIE_STATUS] = "protected_pcie_status",
    [SPDM_OD_SWITCH_PDI] = "switch_pdi",
    [SPDM_OD_FLOORSWEPT_PORTS] = "floorswept_ports",
    [SPDM_OD_POSITION_ID] = "position_id",
    [SPDM_OD_LOCK_SWITCH_STATUS] = "lock_switch_status",
    [SPDM_OD_SWITCH_GPU_PDIS] = "switch_gpu_pdis",
    [SPDM_OD_GPU_LINK_CONN] = "gpu_link_conn",
    [SPDM_OD_SYS_ENABLE_STATUS] = "sys_enable_status",
    [SPDM_OD_OPAQUE_DATA_VERSION] = "opaque_data_version",
    [SPDM_OD_CHIP_INFO] = "chip_info",
    [SPDM_OD_FEATURE_FLAG] = "feature_flag",
};

static const char *od_name(uint16_t t)
{
	return t < sizeof(od_names) / sizeof(od_names[0]) ? od_names[t] : NULL;
}

/* Name of a type `device` may carry, NULL when it is unknown to that device's table. */
static const char *od_name_for(enum spdm_device device, uint16_t t)
{
	if (t == SPDM_OD_SWITCH_GPU_PDIS && device != SPDM_DEVICE_SWITCH)
		return NULL;
	return od_name(t);
}

/* The size rules a value must keep so that spdm_opaque_claims can decode it. */
static int check_item_size(uint16_t t, size_t n, struct err *err)
{
	const char *name = od_name(t);
	switch (t) {
	case SPDM_OD_MEASUREMENT_COUNT:
		if (n % 4 != 0)
			return err_set(err, "opaque %s is %zu bytes, not a multiple of 4", name, n);
		break;
	case SPDM_OD_SWITCH_PDI:
		if (n % SPDM_PDI_LEN != 0)
			return err_set(err, "opaque %s is %zu bytes, not a multiple of 8", name, n);
		break;
	case SPDM_OD_SWITCH_GPU_PDIS:
		if (n < SPDM_SWITCH_GPU_PDIS * SPDM_PDI_LEN)
			return err_set(err, "opaque %s is %zu bytes, fewer than the %d GPU PDIs",
			               name, n, SPDM_SWITCH_GPU_PDIS);
		break;
	case SPDM_OD_OPAQUE_DATA_VERSION:
	case SPDM_OD_FEATURE_FLAG:
		if (n > 8)
			return err_set(err, "opaque %s is %zu bytes, more than an integer of 8",
			               name, n);
		break;
	case SPDM_OD_VBIOS_VERSION:
		if (n < 2 || n > 32)
			return err_set(err, "opaque %s is %zu bytes, not a version of 2 to 32",
			               name, n);
		break;
	}
	return 0;
}

static int parse_opaque(const uint8_t *p, size_t len, struct spdm_measurements *m, struct err *err)
{
	size_t off = 0;
	m->n_items = 0;
	while (off < len) {
		if (len - off < 4)
			return err_set(err,
			               "opaque data item header truncated: %zu trailing byte(s)",
			               len - off);
		uint16_t t = le16(p + off);
		size_t n = le16(p + off + 2);
		if (od_name_for(m->device, t) == NULL)
			return err_set(err, "unknown opaque data type %u", t);
		if (n > len - off - 4)
			return err_set(err, "opaque %s (%zu bytes) overruns the opaque data",
			               od_name(t), n);
		if (spdm_opaque_find(m, t) != NULL)
			return err_set(err, "opaque %s appears twice", od_name(t));
		if (check_item_size(t, n, err) < 0)
			return -1;
		if (m->n_items == SPDM_MAX_OPAQUE_ITEMS)
			return err_set(err, "too many opaque data items");
		m->items[m->n_items++] = (struct spdm_opaque_item){t, p + off + 4, n};
		off += 4 + n;
	}
	if (m->device == SPDM_DEVICE_SWITCH) {
		if (spdm_opaque_find(m, SPDM_OD_VBIOS_VERSION) == NULL)
			return err_set(err, "the switch report has no vbios_version");
		return 0;
	}
	if (spdm_opaque_find(m, SPDM_OD_VBIOS_VERSION) == NULL ||
	    spdm_opaque_find(m, SPDM_OD_DRIVER_VERSION) == NULL)
		return err_set(err, "Both vbios_version and driver_version must be present in the "
		                    "report");
	return 0;
}

static int parse_response(const uint8_t *p, size_t len, size_t sig_len, struct spdm_measurements *m,
                          struct err *err)
{
	if (len < 8)
		return err_set(err, "SPDM MEASUREMENTS response truncated: %zu bytes of header",
		               len);
	if (p[0] != SPDM_VERSION_11)
		return err_set(err, "SPDM response version 0x%02x not supported (want 0x11)", p[0]);
	if (p[1] != SPDM_MEASUREMENTS)
		return err_set(err, "SPDM response code 0x%02x is not MEASUREMENTS", p[1]);
	m->param1 = p[2];
	m->param2 = p[3];
	size_t nblocks = p[4];
	size_t rlen = (size_t)p[5] | ((size_t)p[6] << 8) | ((size_t)p[7] << 16);
	size_t off = 8;
	if (rlen > len - off)
		return err_set(err, "measurement record of %zu bytes overruns the response", rlen);
	if (parse_record(p + off, rlen, nblocks, m, err) < 0)
		return -1;
	off += rlen;
	if (len - off < SPDM_NONCE_LEN + 2)
		return err_set(err, "SPDM response truncated before its nonce and opaque length");
	m->resp_nonce = p + off;
	off += SPDM_NONCE_LEN;
	size_t olen = le16(p + off);
	off += 2;
	if (olen > len - off)
		return err_set(err, "opaque data of %zu bytes overruns the response", olen);
	if (parse_opaque(p + off, olen, m, err) < 0)
		return -1;
	off += olen;
	if (len - off < sig_len)
		return err_set(err, "SPDM response truncated: signature needs %zu bytes, %zu left",
		               sig_len, len - off);
	m->signature = p + off;
	m->sig_len = sig_len;
	for (size_t i = off + sig_len; i < len; i++)
		if (p[i] != 0)
			return err_set(err, "%zu unexplained bytes after the signature",
			               len - off - sig_len);
	m->signed_len = SPDM_REQUEST_LEN + off;
	return 0;
}

int spdm_measurements_parse(const uint8_t *buf, size_t len, size_t sig_len,
                            struct spdm_measurements *out, struct err *err)
{
	return spdm_measurements_parse_device(buf, len, sig_len, SPDM_DEVICE_GPU, out, err);
}

int spdm_measurements_parse_device(const uint8_t *buf, size_t len, size_t sig_len,
                                   enum spdm_device device, struct spdm_measurements *out,
                                   struct err *err)
{
	memset(out, 0, sizeof(*out));
	out->device = device;
	if (buf == NULL)
		len = 0;
	if (parse_request(buf, len, out, err) < 0)
		return -1;
	return parse_response(buf + SPDM_REQUEST_LEN, len - SPDM_REQUEST_LEN, sig_len, out, err);
}

const struct spdm_opaque_item *spdm_opaque_find(const struct spdm_measurements *m, uint16_t type)
{
	for (size_t i = 0; i < m->n_items; i++)
		if (m->items[i].type == type)
			return &m->items[i];
	return NULL;
}

static json_t *hex_json(const uint8_t *p, size_t n)
{
	char *h = hex_encode(p, n);
	json_t *s = h ? json_string(h) : NULL;
	free(h);
	return s;
}

/* Text with its trailing NULs dropped. A value that is not UTF-8 is given in hex instead: a
 * replacement character would make different device values compare equal in a policy. */
static json_t *text_json(const uint8_t *p, size_t n)
{
	while (n > 0 && p[n - 1] == 0)
		n--;
	json_t *s = json_stringn((const char *)p, n);
	return s != NULL ? s : hex_json(p, n);
}

static uint64_t le_uint(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = n; i > 0; i--)
		v = (v << 8) | p[i - 1];
	return v;
}

/* "96.00.9f.00.01": the first half reversed, then the first byte of the second half. */
static json_t *vbios_json(const uint8_t *p, size_t n)
{
	char buf[3 * 32 / 2 + 4], *q = buf; /* n <= 32: check_item_size */
	size_t half = n / 2;
	for (size_t i = half; i > 0; i--)
		q += sprintf(q, "%02x.", p[i - 1]);
	sprintf(q, "%02x", p[half]);
	return json_string(buf);
}

static json_t *counts_json(const uint8_t *p, size_t n)
{
	json_t *o = json_object();
	for (size_t i = 0; o != NULL && i < n / 4; i++) {
		char k[24];
		snprintf(k, sizeof(k), "%zu", i + 1);
		json_object_set_new(o, k, json_integer((json_int_t)le_uint(p + 4 * i, 4)));
	}
	return o;
}

static json_t *pdi_json(const uint8_t *p, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a != NULL && i < n / SPDM_PDI_LEN; i++)
		json_array_append_new(a, hex_json(p + SPDM_PDI_LEN * i, SPDM_PDI_LEN));
	return a;
}

static json_t *feature_json(const uint8_t *p, size_t n)
{
	static const char *const names[] = {"SPT", "MPT", "PPCIE"};
	uint64_t v = le_uint(p, n);
	return json_string(v < 3 ? names[v] : "unknown");
}

static json_t *item_json(enum spdm_device device, const struct spdm_opaque_item *it)
{
	switch (it->type) {
	case SPDM_OD_DRIVER_VERSION:
	case SPDM_OD_CHIP_SKU:
	case SPDM_OD_CHIP_SKU_MOD:
	case SPDM_OD_PROJECT:
	case SPDM_OD_PROJECT_SKU:
	case SPDM_OD_CHIP_INFO:
	case SPDM_OD_NVDEC0_STATUS:
	case SPDM_OD_PROTECTED_PCIE_STATUS:
		return text_json(it->data, it->len);
	case SPDM_OD_VBIOS_VERSION: /* a switch writes it as text */
		return device == SPDM_DEVICE_SWITCH ? text_json(it->data, it->len)
		                                    : vbios_json(it->data, it->len);
	case SPDM_OD_SWITCH_GPU_PDIS: /* check_item_size: at least the 8 PDIs */
		return pdi_json(it->data, SPDM_SWITCH_GPU_PDIS * SPDM_PDI_LEN);
	case SPDM_OD_MEASUREMENT_COUNT:
		return counts_json(it->data, it->len);
	case SPDM_OD_SWITCH_PDI:
		return pdi_json(it->data, it->len);
	case SPDM_OD_OPAQUE_DATA_VERSION:
		return json_integer((json_int_t)le_uint(it->data, it->len));
	case SPDM_OD_FEATURE_FLAG:
		return feature_json(it->data, it->len);
	default:
		return hex_json(it->data, it->len);
	}
}

/* Type 26's port bytes, after its GPU PDIs, as their own key. */
static int set_switch_ports(json_t *o, const struct spdm_opaque_item *it)
{
	size_t head = SPDM_SWITCH_GPU_PDIS * SPDM_PDI_LEN;
	if (it->type != SPDM_OD_SWITCH_GPU_PDIS)
		return 0;
	return json_object_set_new(o, "switch_gpu_ports",
	                           hex_json(it->data + head, it->len - head));
}

json_t *spdm_opaque_claims(const struct spdm_measurements *m)
{
	json_t *o = json_object();
	for (size_t i = 0; o != NULL && i < m->n_items; i++) {
		json_t *v = item_json(m->device, &m->items[i]);
		if (v == NULL || json_object_set_new(o, od_name(m->items[i].type), v) < 0 ||
		    set_switch_ports(o, &m->items[i]) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

static int is_p384(EVP_PKEY *key)
{
	char group[64];
	size_t glen = 0;
	return key != NULL && EVP_PKEY_base_id(key) == EVP_PKEY_EC &&
	       EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
	                                      &glen) == 1 &&
	       strcmp(group, "secp384r1") == 0;
}

/* raw r || s (48 + 48) -> DER ECDSA-Sig-Value; NULL on failure. */
static unsigned char *raw_to_der(const uint8_t *sig, int *der_len)
{
	ECDSA_SIG *s = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, 48, NULL), *ss = BN_bin2bn(sig + 48, 48, NULL);
	unsigned char *der = NULL;
	if (s == NULL || r == NULL || ss == NULL || ECDSA_SIG_set0(s, r, ss) != 1) {
		BN_free(r);
		BN_free(ss);
		ECDSA_SIG_free(s);
		return NULL;
	}
	*der_len = i2d_ECDSA_SIG(s, &der);
	ECDSA_SIG_free(s);
	return *der_len > 0 ? der : NULL;
}

int spdm_verify_p384(const struct spdm_measurements *m, const uint8_t *buf, EVP_PKEY *key,
                     struct err *err)
{
	if (m->sig_len != SPDM_P384_SIG_LEN)
		return err_set(err, "Invalid raw ECDSA P-384 signature");
	if (!is_p384(key))
		return err_set(err, "the signing certificate's key is not an ECDSA P-384 key");
	int der_len = 0;
	unsigned char *der = raw_to_der(m->signature, &der_len);
	if (der == NULL)
		return err_set(err, "Invalid raw ECDSA P-384 signature");
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, EVP_sha384(), NULL, key) == 1 &&
	         EVP_DigestVerify(ctx, der, (size_t)der_len, buf, m->signed_len) == 1;
	EVP_MD_CTX_free(ctx);
	OPENSSL_free(der);
	if (!ok)
		return err_set(err, "NVIDIA report signature verification failed");
	return 0;
}
