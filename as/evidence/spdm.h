/*
 * spdm: the evidence an NVIDIA GPU or NVSwitch gives, an SPDM 1.1 (DMTF DSP0274)
 * GET_MEASUREMENTS request followed by its MEASUREMENTS response, and the NVIDIA opaque data
 * the response carries (type-length-value items: driver and VBIOS versions, FWID, ...).
 *
 * GPUs (Hopper) and NVSwitches (LS10) share the transcript layout and most opaque types, but
 * not all of their meaning: a switch writes its BIOS version as text ("96.10.73.00.01") where
 * a GPU writes bytes, reports no driver version and no FWID, and adds type 26, which NVIDIA's
 * GPU table and Trustee's leave undefined. NVIDIA's switch parsers (nvtrust ppcie-verifier and
 * nv_switch_verifier, OPAQUE_FIELD_ID_SWITCH_GPU_PDIS) read type 26 as the PDIs of the 8 GPUs
 * the switch links to (8 bytes each) followed by one byte per switch port naming which of
 * those GPUs the port reaches (0xff: none). We name it after that table, `switch_gpu_pdis`
 * (the PDIs, hex) plus `switch_gpu_ports` (the port bytes, hex), accept it on switches only,
 * and refuse it shorter than the 8 PDIs; on a GPU it is an unknown type like any other.
 *
 * The parse borrows: every pointer in `struct spdm_measurements` points into the caller's
 * buffer, which must outlive it. Nothing here trusts a length it has not checked against
 * what is left of the buffer; a byte the format does not explain is refused.
 */
#ifndef CTRUSTEE_SPDM_H
#define CTRUSTEE_SPDM_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define SPDM_VERSION_11 0x11
#define SPDM_GET_MEASUREMENTS 0xe0
#define SPDM_MEASUREMENTS 0x60
#define SPDM_NONCE_LEN 32
#define SPDM_REQUEST_LEN 37      /* version, code, param1, param2, nonce, slot id */
#define SPDM_P384_SIG_LEN 96     /* raw r || s, 48 bytes each */
#define SPDM_MAX_OPAQUE_ITEMS 40 /* one per known type: duplicates are refused */

/* One measurement block in the DMTF layout (measurement specification bit 0). */
struct spdm_block {
	uint8_t index;
	uint8_t dmtf_type;
	const uint8_t *value; /* borrowed */
	size_t value_len;
};

/* One NVIDIA opaque data item. */
struct spdm_opaque_item {
	uint16_t type;       /* one of enum spdm_opaque_type */
	const uint8_t *data; /* borrowed */
	size_t len;
};

/* NVIDIA's opaque data types (the numbers are NVIDIA's; the names are its claim names). */
enum spdm_opaque_type {
	SPDM_OD_CERT_ISSUER_NAME = 1,
	SPDM_OD_CERT_AUTHORITY_KEY_IDENTIFIER = 2,
	SPDM_OD_DRIVER_VERSION = 3,
	SPDM_OD_GPU_INFO = 4,
	SPDM_OD_ID_SKU = 5,
	SPDM_OD_VBIOS_VERSION = 6,
	SPDM_OD_MANUFACTURER_ID = 7,
	SPDM_OD_TAMPER_DETECTION = 8,
	SPDM_OD_SMC = 9,
	SPDM_OD_VPR = 10,
	SPDM_OD_NVDEC0_STATUS = 11,
	SPDM_OD_MEASUREMENT_COUNT = 12,
	SPDM_OD_CPR_INFO = 13,
	SPDM_OD_BOARD_ID = 14,
	SPDM_OD_CHIP_SKU = 15,
	SPDM_OD_CHIP_SKU_MOD = 16,
	SPDM_OD_PROJECT = 17,
	SPDM_OD_PROJECT_SKU = 18,
	SPDM_OD_PROJECT_SKU_MOD = 19,
	SPDM_OD_FWID = 20,
	SPDM_OD_PROTECTED_PCIE_STATUS = 21,
	SPDM_OD_SWITCH_PDI = 22,
	SPDM_OD_FLOORSWEPT_PORTS = 23,
	SPDM_OD_POSITION_ID = 24,
	SPDM_OD_LOCK_SWITCH_STATUS = 25,
	SPDM_OD_SWITCH_GPU_PDIS = 26, /* switches only: see the top of this file */
	SPDM_OD_GPU_LINK_CONN = 32,
	SPDM_OD_SYS_ENABLE_STATUS = 33,
	SPDM_OD_OPAQUE_DATA_VERSION = 34,
	SPDM_OD_CHIP_INFO = 35,
	SPDM_OD_FEATURE_FLAG = 36,
};

/* Which device wrote the transcript: decides the opaque types it may carry and how its
 * VBIOS version reads. */
enum spdm_device {
	SPDM_DEVICE_GPU = 0,
	SPDM_DEVICE_SWITCH = 1,
};

#define SPDM_PDI_LEN 8         /* a PCIe device identifier (PDI) in the opaque data */
#define SPDM_SWITCH_GPU_PDIS 8 /* GPU PDIs at the head of a switch's type 26 */

struct spdm_measurements {
	enum spdm_device device;
	/* request */
	uint8_t req_param1, req_param2, req_slot;
	const uint8_t *req_nonce; /* SPDM_NONCE_LEN bytes, borrowed */
	/* response */
	uint8_t param1, param2;
	size_t n_blocks;
	struct spdm_block blocks[255]; /* NumberOfBlocks is one byte */
	const uint8_t *resp_nonce;     /* SPDM_NONCE_LEN bytes, borrowed */
	size_t n_items;
	struct spdm_opaque_item items[SPDM_MAX_OPAQUE_ITEMS];
	const uint8_t *signature; /* sig_len bytes, borrowed */
	size_t sig_len;
	size_t signed_len; /* the signature covers buf[0, signed_len): request || response */
};

/* Parse a GPU's request || response || signature of `sig_len` bytes. Bytes after the
 * signature are accepted only when they are all zero (collectors pad). A GPU's opaque data
 * must hold vbios_version and driver_version. Returns 0 or -1 with the reason. */
int spdm_measurements_parse(const uint8_t *buf, size_t len, size_t sig_len,
                            struct spdm_measurements *out, struct err *err);
/* The same for `device`; a switch's opaque data must hold vbios_version. */
int spdm_measurements_parse_device(const uint8_t *buf, size_t len, size_t sig_len,
                                   enum spdm_device device, struct spdm_measurements *out,
                                   struct err *err);

/* The opaque item of `type`, or NULL. */
const struct spdm_opaque_item *spdm_opaque_find(const struct spdm_measurements *m, uint16_t type);

/* The opaque data as NVIDIA's claim map ({"driver_version": "550.90.07", ...}): text types
 * as text, counts and versions decoded, PDIs as lists of hex, the rest as lowercase hex. NULL
 * on out of memory. */
json_t *spdm_opaque_claims(const struct spdm_measurements *m);

/* Verify the raw ECDSA P-384 / SHA-384 signature over buf[0, signed_len) with `key`, which
 * must be a P-384 key. `buf` is the buffer `m` was parsed from. */
int spdm_verify_p384(const struct spdm_measurements *m, const uint8_t *buf, EVP_PKEY *key,
                     struct err *err);

#endif
