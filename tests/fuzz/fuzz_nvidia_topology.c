/* Fuzz the NVSwitch side of the NVIDIA evidence: one input parsed as a switch's and as a GPU's
 * SPDM transcript (type 26, the text BIOS version, PDI lists), its opaque claims, its topology
 * statements (nvidia_topo_from_report, with the certificate chain that follows the transcript
 * after a 0xff 0xff 0xff 0xff separator when there is one), and the PPCIe rules over a board
 * of 8 GPU and 4 switch copies of what parsed. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "as/evidence/nvidia_chain.h"
#include "as/evidence/nvidia_topology.h"
#include "as/evidence/spdm.h"

static struct spdm_measurements m;
static struct nvidia_topo_device board[12];

static void one(const uint8_t *buf, size_t len, enum spdm_device kind, const struct nvidia_chain *c)
{
	struct err err;
	if (spdm_measurements_parse_device(buf, len, SPDM_P384_SIG_LEN, kind, &m, &err) < 0)
		return;
	json_decref(spdm_opaque_claims(&m));
	struct nvidia_topo_device d;
	if (nvidia_topo_from_report(&m, c, 0, &d, &err) < 0)
		return;
	for (size_t i = 0; i < 12; i++) {
		board[i] = d;
		board[i].index = i;
		board[i].is_switch = i >= 8;
	}
	nvidia_topo_wanted(board, 12);
	nvidia_ppcie_check(board, 12, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t sep[4] = {0xff, 0xff, 0xff, 0xff};
	const uint8_t *at = size >= 4 ? memmem(data, size, sep, sizeof(sep)) : NULL;
	size_t tlen = at ? (size_t)(at - data) : size;
	struct nvidia_chain c = {0};
	struct err err;

	if (at != NULL)
		nvidia_chain_parse(at + 4, size - tlen - 4, &c, &err);
	one(data, tlen, SPDM_DEVICE_SWITCH, &c);
	one(data, tlen, SPDM_DEVICE_GPU, &c);
	nvidia_chain_free(&c);
	return 0;
}
