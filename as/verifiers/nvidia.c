/*
 * nvidia verifier (as-rvps.md §5.13), local mode: each device of an NVIDIA evidence list is an
 * SPDM GET_MEASUREMENTS transcript signed by the device's attestation key, whose certificate
 * chains to the NVIDIA Device Identity CA and certifies the firmware (FWID) the transcript
 * reports. A device is accepted when, in this order, its chain reaches the root, the leaf's
 * FWID equals the opaque `fwid`, the P-384 signature over request || response verifies with the
 * leaf, and the request's nonce equals the expected report data regularized to 32 bytes (the
 * nonce is required). A device listed twice (same leaf certificate) is refused, so one GPU
 * cannot count as two. Each device becomes one `gpu` (or `switch`) claims object: arch, uuid,
 * measurements by index, and the opaque data as `config`. A device that fails is refused on
 * its own (verify_result_add_failed, "NVIDIA device <i>: <why>"): the AS gives it its own
 * contraindicated submod and the other devices of the list keep theirs.
 *
 * NVSwitches (arch "LS10") are verified the same way. Their chain (leaf "LS_10 A01 FSP FMC LF"
 * <- "LS_10 A01 FSP BROM" <- "NVIDIA LS_10 Provisioner ICA 1" <- "NVIDIA GH100 Identity" <-
 * root) ends in the same NVIDIA Device Identity CA as the GPUs' (SHA-1 72:be:15:b8:...:54:e8,
 * the built-in nvidia_device_root.pem; nvtrust's four LS10 samples all chain to it). A switch
 * reports no FWID although its leaf carries the extension, so the FWID is bound only when the
 * report has one (as NVIDIA's switch verifier does), and it reports its BIOS version as text
 * and no driver version. Switch RIMs are not checked (rim_dir applies to GPUs).
 *
 * When the list holds GPUs and switches, it is a protected PCIe (PPCIe) request and the devices
 * must form its topology (nvidia_topology.h: 8 GPUs and 4 switches whose PDIs name each
 * other); the result then ends with one `ppcie` item, {"switch_count": 4, "gpu_count": 8}, or
 * a failed `ppcie` item whose sentence names the device that breaks the topology. GPUs alone
 * (confidential-computing mode) or switches alone give no `ppcie` item.
 *
 * Evidence: {"device_evidence_list": [{"arch": "Hopper", "uuid": "...", "evidence": hex or
 * base64 transcript, "certificate": base64 of the PEM chain}, ...]}.
 *
 * Hopper GPUs and LS10 switches are verified locally; Blackwell is refused with a sentence
 * rather than passed unchecked. With `nvidia_verifier.type = "Remote"` every device is
 * appraised by NRAS instead (nvidia_remote.c), Blackwell included. The root can be replaced by
 * `verifier_config.nvidia_verifier.root_ca_file` (forged chains in tests) or, for one request,
 * the option "nvidia_root_ca" (a PEM file).
 *
 * With `nvidia_verifier.ocsp_url` set, each device's certificates below the root must also be
 * "good" at that OCSP responder (nvidia_ocsp.h: fail closed unless `ocsp_fail_open`), checked
 * last, after everything the evidence proves by itself; the claims then say `ocsp_status`.
 *
 * With `nvidia_verifier.rim_dir` set, each device's measurements are also checked against
 * NVIDIA's reference integrity manifests (RIMs) for the versions it reports, read from that
 * directory as NVIDIA names them (nvidia_rim_path) and verified, signature required, to
 * `rim_root_ca_file` by swid.c. RIM indices count from 0 where SPDM blocks count from 1: RIM
 * measurement i is block i + 1. Every measurement active in either RIM must be in the report
 * and equal one of that index's alternatives; an index active in both RIMs is refused as
 * NVIDIA's verifier does. Blocks no RIM makes active are not compared.
 *
 * With `nvidia_verifier.rims_from_rvps` true, the RIMs are first looked up in the AS's RVPS,
 * where the supply chain registered them as signed swid messages (nvidia_rim.h: by product
 * and the version the device reports, used only when the RVPS verified the signature); a RIM
 * the RVPS lacks is then read from rim_dir when that is set too, else refused naming the
 * reference value it looked for.
 * A GPU whose measurements were checked against its RIMs either way says `rim_status`
 * "verified" in its claims (a mismatch refuses the device), which default_gpu reads.
 */
#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "as/collateral/nvidia_nras.h"
#include "as/collateral/nvidia_ocsp.h"
#include "as/collateral/nvidia_rim.h"
#include "as/evidence/nvidia_chain.h"
#include "as/evidence/nvidia_topology.h"
#include "as/evidence/spdm.h"
#include "as/verifiers/nvidia_remote.h"
#include "as/verifiers/verifier.h"
#include "b64.h"
#include "rvps/extractors/swid.h"

/* Set by init before any verify runs, then only read. NULL = the built-in root. */
static X509 *configured_root;
/* Set by init like the root: 1 when devices go to NRAS (type "Remote"). */
static int remote_mode;
/* Set by init like the root: the local RIM directory (owned) and the trust store its RIMs
 * must chain to; both NULL when RIMs are not checked. */
static char *rim_dir;
static struct swid_trust *rim_trust;
/* Set by init like the root: RIMs are looked up in the RVPS first (rims_from_rvps). */
static int rims_from_rvps;

static X509 *read_root(const char *path, struct err *err)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		err_set(err, "cannot open the NVIDIA root CA file %s", path);
		return NULL;
	}
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL)
		err_set(err, "%s is not a PEM certificate", path);
	return x;
}

static int rim_configure(const json_t *c, struct err *err)
{
	const char *dir = json_string_value(json_object_get(c, "rim_dir"));
	const char *root = json_string_value(json_object_get(c, "rim_root_ca_file"));
	const json_t *rvps = json_object_get(c, "rims_from_rvps");
	struct swid_trust *t = NULL;
	char *d = NULL;

	if (rvps != NULL && !json_is_boolean(rvps))
		return err_set(err, "rims_from_rvps must be true or false");

	if (dir != NULL && root == NULL)
		return err_set(err, "rim_dir needs rim_root_ca_file, the root NVIDIA's RIMs are "
		                    "signed under");
	if (dir != NULL && ((d = strdup(dir)) == NULL || (t = swid_trust_new(root, err)) == NULL)) {
		free(d);
		return err_prefix(err, "rim_root_ca_file");
	}
	swid_trust_free(rim_trust);
	free(rim_dir);
	rim_trust = t;
	rim_dir = d;
	rims_from_rvps = json_is_true(rvps);
	return 0;
}

static int nvidia_init(const json_t *verifier_config, struct err *err)
{
	const json_t *c = json_object_get(verifier_config, "nvidia_verifier");
	const char *type = json_string_value(json_object_get(c, "type"));
	const char *root = json_string_value(json_object_get(c, "root_ca_file"));

	int remote = type != NULL && strcasecmp(type, "remote") == 0;

	if (type != NULL && !remote && strcasecmp(type, "local") != 0)
		return err_set(err, "nvidia_verifier type %.32s is neither Local nor Remote", type);
	if (remote && nvidia_nras_configure(c, err) < 0)
		return err_prefix(err, "nvidia_verifier");
	if (nvidia_ocsp_configure(c, err) < 0)
		return -1;
	X509 *x = root ? read_root(root, err) : NULL;
	if (root != NULL && x == NULL)
		return err_prefix(err, "nvidia_verifier.root_ca_file");
	if (rim_configure(c, err) < 0) {
		X509_free(x);
		return err_prefix(err, "nvidia_verifier");
	}
	X509_free(configured_root);
	configured_root = x;
	remote_mode = remote;
	return 0;
}

/* "evidence": hex, else standard base64 (both are in use by collectors). */
static int decode_transcript(const char *s, uint8_t **out, size_t *len, struct err *err)
{
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
		n--;
	if (hex_decode(s, n, out, len) == 0)
		return 0;
	if (b64_decode(s, n, B64_STD | B64_LENIENT, out, len) == 0)
		return 0;
	return err_set(err, "`evidence` is neither hex nor base64");
}

struct device {
	const char *arch, *uuid;
	enum spdm_device kind;
	uint8_t *report; /* owned */
	size_t report_len;
	uint8_t *pem; /* owned */
	size_t pem_len;
	struct spdm_measurements m;
	struct nvidia_chain chain;
	const char *ocsp_status; /* static string; NULL when OCSP is not configured */
	int rims_checked;        /* its measurements matched its driver and VBIOS RIMs */
};

static void device_free(struct device *d)
{
	free(d->report);
	free(d->pem);
	nvidia_chain_free(&d->chain);
}

/* Hopper GPUs and LS10 switches are verified here; the other NVIDIA names are refused. */
static int device_kind(const char *arch, enum spdm_device *kind, struct err *err)
{
	if (strcasecmp(arch, "hopper") == 0)
		*kind = SPDM_DEVICE_GPU;
	else if (strcmp(arch, "LS10") == 0)
		*kind = SPDM_DEVICE_SWITCH;
	else if (strcasecmp(arch, "blackwell") == 0)
		return err_set(
		    err, "Device architecture not supported: %s cannot be verified locally", arch);
	else
		return err_set(err, "unknown device architecture %.32s", arch);
	return 0;
}

static int load_device(const json_t *e, struct device *d, struct err *err)
{
	const char *ev = json_string_value(json_object_get(e, "evidence"));
	const char *cert = json_string_value(json_object_get(e, "certificate"));
	json_t *uuid = json_object_get(e, "uuid");

	d->arch = json_string_value(json_object_get(e, "arch"));
	if (!json_is_object(e) || d->arch == NULL || ev == NULL || cert == NULL)
		return err_set(err, "a device needs string `arch`, `evidence` and `certificate`");
	if (uuid != NULL && !json_is_string(uuid))
		return err_set(err, "device `uuid` must be a string");
	d->uuid = uuid ? json_string_value(uuid) : "unknown";
	if (device_kind(d->arch, &d->kind, err) < 0)
		return -1;
	if (decode_transcript(ev, &d->report, &d->report_len, err) < 0)
		return -1;
	if (b64_decode(cert, strlen(cert), B64_STD | B64_LENIENT, &d->pem, &d->pem_len) < 0)
		return err_set(err, "`certificate` is not base64");
	if (spdm_measurements_parse_device(d->report, d->report_len, SPDM_P384_SIG_LEN, d->kind,
	                                   &d->m, err) < 0)
		return -1;
	return nvidia_chain_parse(d->pem, d->pem_len, &d->chain, err);
}

/* The file NVIDIA's RIM service would name the device's driver (vbios = 0) or VBIOS RIM:
 * NV_GPU_DRIVER_GH100_<driver_version> or NV_GPU_VBIOS_<project>_<project_sku>_<chip_sku>_
 * <vbios_version without dots, upper case>, with ".swidtag" under rim_dir. */
static int nvidia_rim_path(const json_t *config, int vbios, char *out, size_t cap, struct err *err)
{
	const char *drv = json_string_value(json_object_get(config, "driver_version"));
	const char *vb = json_string_value(json_object_get(config, "vbios_version"));
	const char *proj = json_string_value(json_object_get(config, "project"));
	const char *sku = json_string_value(json_object_get(config, "project_sku"));
	const char *chip = json_string_value(json_object_get(config, "chip_sku"));
	char v[64];
	size_t n = 0;
	int w;

	if (!vbios) {
		if (drv == NULL || strchr(drv, '/') != NULL)
			return err_set(err,
			               "the report has no usable driver_version to find its RIM");
		w = snprintf(out, cap, "%s/NV_GPU_DRIVER_GH100_%s.swidtag", rim_dir, drv);
		return w < 0 || (size_t)w >= cap ? err_set(err, "the RIM path is too long") : 0;
	}
	if (vb == NULL || proj == NULL || sku == NULL || chip == NULL)
		return err_set(err,
		               "the report lacks the VBIOS version or project numbers that name "
		               "its VBIOS RIM");
	for (; *vb != '\0' && n + 1 < sizeof(v); vb++)
		if (*vb != '.')
			v[n++] = (char)toupper((unsigned char)*vb);
	v[n] = '\0';
	if (strchr(proj, '/') || strchr(sku, '/') || strchr(chip, '/') || strchr(v, '/'))
		return err_set(err, "the report's VBIOS RIM name holds a '/'");
	w = snprintf(out, cap, "%s/NV_GPU_VBIOS_%s_%s_%s_%s.swidtag", rim_dir, proj, sku, chip, v);
	return w < 0 || (size_t)w >= cap ? err_set(err, "the RIM path is too long") : 0;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && n <= (8L << 20) &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n)) != NULL &&
	    fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	*len = buf ? (size_t)n : 0;
	fclose(f);
	return buf;
}

/* The device's RIM from the RVPS: 1 with *active, 0 when the RVPS lacks it and rim_dir is to
 * be asked, -1 refused. */
static int rvps_rim(const struct verify_request *req, const json_t *config, int vbios,
                    json_t **active, struct err *err)
{
	const char *what = vbios ? "VBIOS" : "driver";
	const char *ver =
	    json_string_value(json_object_get(config, vbios ? "vbios_version" : "driver_version"));
	char name[160];
	int rc;

	if (ver == NULL)
		return err_set(err, "the report has no %s version to find its RIM", what);
	if (req->rv == NULL)
		rc = err_set(err,
		             "no %s RIM for this device: RIMs come from the RVPS and there is "
		             "none here",
		             what);
	else
		rc = nvidia_rim_from_rvps(req->rv, "GH100", ver, name, active, err);
	if (rc < 0)
		return err_prefix(err, "%s RIM", what);
	if (rc == 0 && rim_dir == NULL)
		return err_set(err, "no %s RIM for this device: the RVPS holds no %s", what, name);
	return rc;
}

/* The active measurements of one RIM of the device, by RIM index. */
static json_t *load_rim(const struct verify_request *req, const json_t *config, int vbios,
                        struct err *err)
{
	const char *what = vbios ? "VBIOS" : "driver";
	char path[4096];
	size_t len = 0;
	uint8_t *xml;
	json_t *active = NULL;
	int rc;

	if (rims_from_rvps && (rc = rvps_rim(req, config, vbios, &active, err)) != 0)
		return rc > 0 ? active : NULL;

	if (nvidia_rim_path(config, vbios, path, sizeof(path), err) < 0)
		return NULL;
	if ((xml = read_file(path, &len)) == NULL)
		return err_set(err, "no %s RIM for this device: cannot read %s", what, path), NULL;
	if (swid_rim_active(rim_trust, xml, len, req->now, &active, err) < 0)
		err_prefix(err, "%s RIM %s", what, path);
	free(xml);
	return active;
}

static const struct spdm_block *block_at(const struct spdm_measurements *m, long index)
{
	for (size_t i = 0; i < m->n_blocks; i++)
		if (m->blocks[i].index == index)
			return &m->blocks[i];
	return NULL;
}

/* Each active index of `rim` against the report; `other` is the device's other RIM. */
static int match_rim(const struct spdm_measurements *m, const json_t *rim, const json_t *other,
                     const char *what, struct err *err)
{
	const char *k;
	const json_t *alts, *one;
	size_t i;

	json_object_foreach((json_t *)rim, k, alts)
	{
		char *end;
		long idx = strtol(k, &end, 10);
		const struct spdm_block *b =
		    *end == '\0' && idx >= 0 && idx < 255 ? block_at(m, idx + 1) : NULL;
		int ok = 0;

		if (json_object_get(other, k) != NULL)
			return err_set(err,
			               "measurement %.16s is active in both the driver and the "
			               "VBIOS RIM",
			               k);
		if (b == NULL)
			return err_set(err, "measurement %.16s of the %s RIM is not in the report",
			               k, what);
		char *h = hex_encode(b->value, b->value_len);
		if (h == NULL)
			return err_set(err, "out of memory");
		json_array_foreach(alts, i, one) ok |= strcasecmp(h, json_string_value(one)) == 0;
		free(h);
		if (!ok)
			return err_set(err,
			               "measurement %ld (SPDM block %ld) matches none of the "
			               "%s RIM's values",
			               idx, idx + 1, what);
	}
	return 0;
}

/* The device's measurements against its driver and VBIOS RIMs from rim_dir. */
static int check_rims(const struct verify_request *req, const struct device *d, struct err *err)
{
	json_t *config = spdm_opaque_claims(&d->m), *drv = NULL, *vb = NULL;
	int rc = -1;

	if (config == NULL)
		return err_set(err, "out of memory");
	if ((drv = load_rim(req, config, 0, err)) != NULL &&
	    (vb = load_rim(req, config, 1, err)) != NULL &&
	    match_rim(&d->m, drv, vb, "driver", err) == 0 &&
	    match_rim(&d->m, vb, drv, "VBIOS", err) == 0)
		rc = 0;
	json_decref(config);
	json_decref(drv);
	json_decref(vb);
	return rc;
}

static int check_device(const struct verify_request *req, struct device *d, X509 *root,
                        const uint8_t nonce[SPDM_NONCE_LEN], struct err *err)
{
	const struct spdm_opaque_item *fwid = spdm_opaque_find(&d->m, SPDM_OD_FWID);
	int sw = d->kind == SPDM_DEVICE_SWITCH;
	if (fwid == NULL && !sw) /* a switch reports none: nvidia_chain_verify skips it */
		return err_set(err, "Nvidia report fwid not found");
	if (nvidia_chain_verify(&d->chain, root, fwid ? fwid->data : NULL, fwid ? fwid->len : 0,
	                        req->now, err) < 0)
		return -1;
	if (spdm_verify_p384(&d->m, d->report, X509_get0_pubkey(nvidia_chain_leaf(&d->chain)),
	                     err) < 0)
		return -1;
	if (CRYPTO_memcmp(d->m.req_nonce, nonce, SPDM_NONCE_LEN) != 0)
		return err_set(err, "Nvidia report nonce mismatch");
	if ((rim_dir != NULL || rims_from_rvps) && !sw) {
		if (check_rims(req, d, err) < 0)
			return -1;
		d->rims_checked = 1;
	}
	if (nvidia_ocsp_enabled() &&
	    nvidia_ocsp_check(&d->chain, root ? root : nvidia_device_root(), &d->ocsp_status, err) <
	        0)
		return -1;
	return 0;
}

static json_t *device_claims(const struct device *d)
{
	json_t *meas = json_object();
	for (size_t i = 0; meas != NULL && i < d->m.n_blocks; i++) {
		char k[8], *h = hex_encode(d->m.blocks[i].value, d->m.blocks[i].value_len);
		snprintf(k, sizeof(k), "%u", d->m.blocks[i].index);
		json_object_set_new(meas, k, json_string(h ? h : ""));
		free(h);
	}
	json_t *config = spdm_opaque_claims(&d->m);
	if (meas == NULL || config == NULL) {
		json_decref(meas);
		json_decref(config);
		return NULL;
	}
	json_t *c = json_pack("{s:s,s:s,s:o,s:o}", "arch",
	                      d->kind == SPDM_DEVICE_SWITCH ? "LS10" : "Hopper", "uuid", d->uuid,
	                      "measurements", meas, "config", config);
	if (c != NULL &&
	    ((d->ocsp_status != NULL &&
	      json_object_set_new(c, "ocsp_status", json_string(d->ocsp_status)) < 0) ||
	     (d->rims_checked &&
	      json_object_set_new(c, "rim_status", json_string("verified")) < 0))) {
		json_decref(c);
		return NULL;
	}
	return c;
}

static int request_root(const struct verify_request *req, X509 **owned, struct err *err)
{
	const char *path = json_string_value(json_object_get(req->options, "nvidia_root_ca"));
	*owned = NULL;
	if (path == NULL)
		return 0;
	*owned = read_root(path, err);
	return *owned ? 0 : -1;
}

/* The class a device's submod gets, from its arch alone (also for a device that failed). */
static const char *device_class(const json_t *e)
{
	const char *arch = json_string_value(json_object_get(e, "arch"));
	return arch != NULL && strcmp(arch, "LS10") == 0 ? "switch" : "gpu";
}

/* One device: its claims, `id`, the SHA-256 of its leaf certificate (the device's identity),
 * and its topology statements `t` (index and class are set even when it fails). */
static int verify_one(const struct verify_request *req, const json_t *e, X509 *root,
                      const uint8_t nonce[SPDM_NONCE_LEN], json_t **claims, uint8_t id[32],
                      struct nvidia_topo_device *t, struct err *err)
{
	struct device d = {0};
	unsigned int idlen = 0;
	int rc = -1;
	if (load_device(e, &d, err) == 0 && check_device(req, &d, root, nonce, err) == 0) {
		if (X509_digest(nvidia_chain_leaf(&d.chain), EVP_sha256(), id, &idlen) != 1 ||
		    idlen != 32) {
			device_free(&d);
			return err_set(err, "cannot fingerprint the device certificate");
		}
		if (nvidia_topo_from_report(&d.m, &d.chain, t->index, t, err) < 0) {
			device_free(&d);
			return -1;
		}
		*claims = device_claims(&d);
		rc = *claims ? 0 : err_set(err, "out of memory");
	}
	device_free(&d);
	return rc;
}

/* The most devices one evidence may list: each costs a chain validation and a P-384
 * signature check, and a real host has at most 8 GPUs and 4 NVSwitches. More is refused. */
#define NVIDIA_MAX_DEVICES 32

/* Device i of the list into `out`: its claims, or its refusal as a failed item. A device whose
 * leaf certificate an earlier device already showed is refused as a copy. A collateral outage
 * (ERR_UNAVAILABLE) is no verdict on the device: it fails the whole evidence, to be retried. */
static int verify_device(const struct verify_request *req, const json_t *list, size_t i, X509 *root,
                         const uint8_t nonce[SPDM_NONCE_LEN], uint8_t ids[][32],
                         struct nvidia_topo_device *t, struct verify_result *out, struct err *err)
{
	const json_t *e = json_array_get(list, i);
	json_t *claims = NULL;
	struct err why = {0};

	memset(t, 0, sizeof(*t));
	t->index = i;
	t->is_switch = strcmp(device_class(e), "switch") == 0;
	int rc = verify_one(req, e, root, nonce, &claims, ids[i], t, &why);
	for (size_t j = 0; rc == 0 && j < i; j++)
		if (memcmp(ids[i], ids[j], 32) == 0) {
			json_decref(claims);
			rc = err_set(&why,
			             "the same device as device %zu (same device certificate)", j);
		}
	if (rc == 0)
		return verify_result_add(out, device_class(e), claims, err);
	if (why.code == ERR_UNAVAILABLE) /* an OCSP outage: the request is retried, not refused */
		return err_setc(err, ERR_UNAVAILABLE, "NVIDIA device %zu: %s", i, why.msg);
	memset(ids[i], 0, 32); /* a refused device proves no identity */
	t->verified = 0;
	err_prefix(&why, "NVIDIA device %zu", i);
	return verify_result_add_failed(out, device_class(e), why.msg, err);
}

/* The ppcie item after the devices, when the list holds GPUs and switches
 * (nvidia_topology.h). */
static int add_ppcie(const struct nvidia_topo_device *t, size_t n, struct verify_result *out,
                     struct err *err)
{
	struct err why = {0};

	if (!nvidia_topo_wanted(t, n))
		return 0;
	if (nvidia_ppcie_check(t, n, &why) < 0)
		return verify_result_add_failed(out, "ppcie", why.msg, err);
	return verify_result_add(out, "ppcie",
	                         json_pack("{s:i,s:i}", "switch_count", NVIDIA_PPCIE_SWITCHES,
	                                   "gpu_count", NVIDIA_PPCIE_GPUS),
	                         err);
}

static int verify_devices(const struct verify_request *req, const json_t *list, X509 *root,
                          const uint8_t nonce[SPDM_NONCE_LEN], struct verify_result *out,
                          struct err *err)
{
	size_t n = json_array_size(list);
	uint8_t ids[NVIDIA_MAX_DEVICES][32]; /* device certificate fingerprints */
	struct nvidia_topo_device t[NVIDIA_MAX_DEVICES];

	for (size_t i = 0; i < n; i++)
		if (verify_device(req, list, i, root, nonce, ids, &t[i], out, err) < 0)
			return -1;
	return add_ppcie(t, n, out, err);
}

static int nvidia_verify(const struct verify_request *req, struct verify_result *out,
                         struct err *err)
{
	const json_t *list = json_object_get(req->evidence, "device_evidence_list");
	uint8_t nonce[SPDM_NONCE_LEN];
	X509 *req_root = NULL;
	size_t n = json_array_size(list);

	if (!json_is_array(list))
		return err_set(err, "NVIDIA evidence lacks the array `device_evidence_list`");
	if (n == 0)
		return err_set(err, "NVIDIA evidence lists no device");
	if (n > NVIDIA_MAX_DEVICES)
		return err_set(err, "NVIDIA evidence lists %zu devices, more than %d", n,
		               NVIDIA_MAX_DEVICES);
	if (req->report_data == NULL)
		return err_set(err, "Nvidia report data not provided");
	verifier_regularize(req->report_data, req->report_data_len, nonce, sizeof(nonce));
	if (remote_mode)
		return nvidia_remote_verify(req, list, nonce, out, err);
	if (request_root(req, &req_root, err) < 0)
		return -1;
	X509 *root = req_root ? req_root : configured_root;
	int rc = verify_devices(req, list, root, nonce, out, err);
	if (rc < 0)
		verify_result_clear(out);
	X509_free(req_root);
	return rc;
}

const struct verifier verifier_nvidia = {
    .tee = "nvidia",
    .init = nvidia_init,
    .verify = nvidia_verify,
};
