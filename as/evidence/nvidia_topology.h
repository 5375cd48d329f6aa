/*
 * nvidia_topology: NVIDIA protected PCIe (PPCIe) mode, where one confidential VM owns an HGX
 * board's 8 GPUs and the 4 NVSwitches between them and NVLink traffic goes in the clear. Each
 * device's own evidence says which devices its links reach, by PCIe device identifier (PDI):
 * a GPU lists the switch at the far end of each NVLink (opaque switch_pdi), a switch reports
 * its own PDI (switch_pdi) and the 8 GPUs it links to (switch_gpu_pdis). The topology holds
 * when these statements close on the devices of the request and nothing else:
 *
 *   - exactly 8 GPUs and 4 switches, each of which passed its own verification;
 *   - every device has a PDI (a GPU's from its certificate, a switch's from its report, which
 *     must equal the one its certificate names), and no two devices share one;
 *   - every GPU's enabled links (a zero PDI is a disabled link) reach exactly the 4 switches;
 *   - every switch lists exactly the 8 GPUs.
 *
 * NVIDIA's PPCIe verifier (nvtrust ppcie-verifier, validate_topology.py) checks the first
 * three rules on counts and sets; it does not tie the switches' GPU lists to the GPUs in the
 * request, since its GPU parser reads no GPU PDI. We do, with the PDI the GPU's certificate
 * names (nvidia_chain_pdi), so 8 GPUs from elsewhere cannot stand in for the switches' own.
 *
 * Byte order: a GPU writes each switch PDI byte-reversed relative to the switch's own report
 * (NVIDIA reads them little-endian); nvidia_topo_device holds every PDI in the switch's order.
 * No allocation; the structs are plain values a test can build or alter.
 */
#ifndef CTRUSTEE_NVIDIA_TOPOLOGY_H
#define CTRUSTEE_NVIDIA_TOPOLOGY_H

#include <stddef.h>
#include <stdint.h>

#include "as/evidence/nvidia_chain.h"
#include "as/evidence/spdm.h"
#include "err.h"

#define NVIDIA_PDI_LEN 8
#define NVIDIA_PPCIE_GPUS 8
#define NVIDIA_PPCIE_SWITCHES 4
#define NVIDIA_TOPO_MAX_LINKS 32 /* a GPU has 18 NVLinks; a switch lists 8 GPUs */

struct nvidia_topo_device {
	size_t index;  /* position in the evidence list, for the sentences */
	int is_switch; /* else a GPU */
	int verified;  /* 0: refused on its own; the topology cannot hold */
	int has_pdi;
	uint8_t pdi[NVIDIA_PDI_LEN]; /* GPU: from its certificate; switch: from its report */
	int has_cert_pdi;            /* switch: the PDI its certificate names */
	uint8_t cert_pdi[NVIDIA_PDI_LEN];
	size_t n_links; /* GPU: one per NVLink, zero = disabled; switch: the GPUs it lists */
	uint8_t links[NVIDIA_TOPO_MAX_LINKS][NVIDIA_PDI_LEN];
};

/* A verified device's topology statements from its parsed report and accepted chain. A device
 * that lacks one (a GPU without switch_pdi, a certificate naming no PDI) gets has_pdi 0 or no
 * links, and the check names what is missing. -1 only when the report holds more links than
 * NVIDIA_TOPO_MAX_LINKS. */
int nvidia_topo_from_report(const struct spdm_measurements *m, const struct nvidia_chain *c,
                            size_t index, struct nvidia_topo_device *out, struct err *err);

/* 1 when the devices look like a PPCIe request (GPUs and switches together), so the topology
 * must be checked; 0 for GPUs alone (the confidential-computing mode) or switches alone
 * (attested apart, as NVIDIA's switch verifier does): no ppcie claim then. */
int nvidia_topo_wanted(const struct nvidia_topo_device *d, size_t n);

/* The rules above over devices d[0..n) (every device of the request, in list order). 0 when
 * they hold, else -1 with a sentence naming the first device that breaks one. */
int nvidia_ppcie_check(const struct nvidia_topo_device *d, size_t n, struct err *err);

#endif
