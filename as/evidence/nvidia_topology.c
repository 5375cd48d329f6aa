/*
 * nvidia_topology: the PPCIe topology of 8 GPUs and 4 NVSwitches (see nvidia_topology.h).
 * Each rule is one small function over the plain device structs, so a unit test can break
 * exactly one statement of real evidence and read the sentence that names the device.
 */
#include <stdio.h>
#include <string.h>

#include "as/evidence/nvidia_topology.h"

static const uint8_t zero_pdi[NVIDIA_PDI_LEN];

static const char *kind(const struct nvidia_topo_device *d)
{
	return d->is_switch ? "switch" : "GPU";
}

static void pdi_hex(const uint8_t *p, char out[2 * NVIDIA_PDI_LEN + 1])
{
	for (size_t i = 0; i < NVIDIA_PDI_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", p[i]);
}

int nvidia_topo_from_report(const struct spdm_measurements *m, const struct nvidia_chain *c,
                            size_t index, struct nvidia_topo_device *out, struct err *err)
{
	int sw = m->device == SPDM_DEVICE_SWITCH;
	const struct spdm_opaque_item *it =
	    spdm_opaque_find(m, sw ? SPDM_OD_SWITCH_GPU_PDIS : SPDM_OD_SWITCH_PDI);
	const struct spdm_opaque_item *own = sw ? spdm_opaque_find(m, SPDM_OD_SWITCH_PDI) : NULL;
	struct err ignored;
	uint8_t cert[NVIDIA_PDI_LEN];
	int has_cert = nvidia_chain_pdi(c, cert, &ignored) == 0;

	memset(out, 0, sizeof(*out));
	out->index = index;
	out->is_switch = sw;
	out->verified = 1;
	if (sw) {
		out->has_cert_pdi = has_cert;
		memcpy(out->cert_pdi, cert, sizeof(cert));
		out->has_pdi = own != NULL && own->len == NVIDIA_PDI_LEN;
		if (out->has_pdi)
			memcpy(out->pdi, own->data, NVIDIA_PDI_LEN);
	} else {
		out->has_pdi = has_cert;
		memcpy(out->pdi, cert, sizeof(cert));
	}
	if (it == NULL)
		return 0;
	/* spdm: a GPU's switch_pdi is a multiple of 8 bytes, a switch's type 26 starts with 8
	 * PDIs */
	size_t n = sw ? SPDM_SWITCH_GPU_PDIS : it->len / NVIDIA_PDI_LEN;
	if (n > NVIDIA_TOPO_MAX_LINKS)
		return err_set(err, "the %s reports %zu links, more than %d", kind(out), n,
		               NVIDIA_TOPO_MAX_LINKS);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < NVIDIA_PDI_LEN; j++) /* a GPU's are byte-reversed */
			out->links[i][j] =
			    it->data[i * NVIDIA_PDI_LEN + (sw ? j : NVIDIA_PDI_LEN - 1 - j)];
	out->n_links = n;
	return 0;
}

int nvidia_topo_wanted(const struct nvidia_topo_device *d, size_t n)
{
	int gpu = 0, sw = 0;
	for (size_t i = 0; i < n; i++)
		d[i].is_switch ? (sw = 1) : (gpu = 1);
	return gpu && sw;
}

/* Every device verified, and 8 GPUs with 4 switches. */
static int check_counts(const struct nvidia_topo_device *d, size_t n, struct err *err)
{
	size_t gpus = 0, switches = 0;
	for (size_t i = 0; i < n; i++) {
		if (!d[i].verified)
			return err_set(
			    err,
			    "device %zu (a %s) failed its own verification, so the PPCIe "
			    "topology cannot be established",
			    d[i].index, kind(&d[i]));
		d[i].is_switch ? switches++ : gpus++;
	}
	if (gpus != NVIDIA_PPCIE_GPUS || switches != NVIDIA_PPCIE_SWITCHES)
		return err_set(err,
		               "PPCIe needs %d GPUs and %d switches; the evidence has %zu GPU(s) "
		               "and %zu switch(es)",
		               NVIDIA_PPCIE_GPUS, NVIDIA_PPCIE_SWITCHES, gpus, switches);
	return 0;
}

/* Every device names its PDI (a switch the one its certificate names), and no two share one. */
static int check_identities(const struct nvidia_topo_device *d, size_t n, struct err *err)
{
	char a[2 * NVIDIA_PDI_LEN + 1], b[2 * NVIDIA_PDI_LEN + 1];
	for (size_t i = 0; i < n; i++) {
		if (!d[i].has_pdi)
			return err_set(err, "device %zu (a %s) names no PDI", d[i].index,
			               kind(&d[i]));
		if (memcmp(d[i].pdi, zero_pdi, NVIDIA_PDI_LEN) == 0)
			return err_set(err, "device %zu (a %s) has the zero PDI", d[i].index,
			               kind(&d[i]));
		if (d[i].is_switch &&
		    (!d[i].has_cert_pdi || memcmp(d[i].pdi, d[i].cert_pdi, NVIDIA_PDI_LEN) != 0)) {
			pdi_hex(d[i].pdi, a);
			if (!d[i].has_cert_pdi)
				return err_set(err,
				               "device %zu (a switch) reports PDI %s but its "
				               "certificate names none",
				               d[i].index, a);
			pdi_hex(d[i].cert_pdi, b);
			return err_set(err,
			               "device %zu (a switch) reports PDI %s but its certificate "
			               "names %s",
			               d[i].index, a, b);
		}
		for (size_t j = 0; j < i; j++)
			if (memcmp(d[i].pdi, d[j].pdi, NVIDIA_PDI_LEN) == 0) {
				pdi_hex(d[i].pdi, a);
				return err_set(err,
				               "device %zu (a %s) has the PDI %s of device %zu",
				               d[i].index, kind(&d[i]), a, d[j].index);
			}
	}
	return 0;
}

/* The device of class `sw` whose PDI is `pdi`, or NULL. */
static const struct nvidia_topo_device *by_pdi(const struct nvidia_topo_device *d, size_t n, int sw,
                                               const uint8_t *pdi)
{
	for (size_t i = 0; i < n; i++)
		if (d[i].is_switch == sw && memcmp(d[i].pdi, pdi, NVIDIA_PDI_LEN) == 0)
			return &d[i];
	return NULL;
}

/* Does `from` list `pdi` among its (enabled) links? */
static int links_to(const struct nvidia_topo_device *from, const uint8_t *pdi)
{
	for (size_t i = 0; i < from->n_links; i++)
		if (memcmp(from->links[i], pdi, NVIDIA_PDI_LEN) == 0)
			return 1;
	return 0;
}

/* Each device's links reach devices of the other class in the request, and all of them: a
 * GPU the 4 switches (zero links are disabled), a switch the 8 GPUs. */
static int check_links(const struct nvidia_topo_device *d, size_t n, struct err *err)
{
	char a[2 * NVIDIA_PDI_LEN + 1];
	for (size_t i = 0; i < n; i++) {
		const char *peer = d[i].is_switch ? "GPU" : "switch";
		const char *peers = d[i].is_switch ? "GPUs" : "switches";
		for (size_t k = 0; k < d[i].n_links; k++) {
			const uint8_t *l = d[i].links[k];
			if (!d[i].is_switch && memcmp(l, zero_pdi, NVIDIA_PDI_LEN) == 0)
				continue;
			if (by_pdi(d, n, !d[i].is_switch, l) == NULL) {
				pdi_hex(l, a);
				return err_set(
				    err,
				    "device %zu (a %s) links to %s PDI %s, which is none "
				    "of the request's %s",
				    d[i].index, kind(&d[i]), peer, a, peers);
			}
		}
		for (size_t j = 0; j < n; j++)
			if (d[j].is_switch != d[i].is_switch && !links_to(&d[i], d[j].pdi)) {
				pdi_hex(d[j].pdi, a);
				return err_set(
				    err,
				    "device %zu (a %s) has no link to device %zu (the %s "
				    "with PDI %s)",
				    d[i].index, kind(&d[i]), d[j].index, peer, a);
			}
	}
	return 0;
}

int nvidia_ppcie_check(const struct nvidia_topo_device *d, size_t n, struct err *err)
{
	if (check_counts(d, n, err) < 0 || check_identities(d, n, err) < 0 ||
	    check_links(d, n, err) < 0)
		return err_prefix(err, "PPCIe topology");
	return 0;
}
