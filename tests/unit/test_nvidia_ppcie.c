/*
 * NVSwitch (LS10) local verification and the PPCIe topology over nvtrust's real sample of one
 * HGX board (shared/testdata/evidence/nvidia/nvtrust/ppcie: 8 H100s and 4 LS10 switches, one
 * nonce): each switch verifies and says what it links to, the 12 devices form the topology
 * and yield the ppcie item, and each way of breaking it is refused with a sentence naming the
 * device. Real evidence cannot be re-signed, so a changed PDI is shown refused by its
 * signature, and the topology rules are then exercised on the parsed devices directly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "as/evidence/nvidia_chain.h"
#include "as/evidence/nvidia_topology.h"
#include "as/evidence/spdm.h"
#include "as/verifiers/verifier.h"
#include "b64.h"
#include "testlib.h"

static char dir[1024];
static const char *NONCE = "4760e30534a0621357d458b1a7936551b5dc4cd1e69718adf7ed9fb0252a537e";

static json_t *load_list(const char *name)
{
	char path[1400];
	snprintf(path, sizeof(path), "%s/evidence/nvidia/nvtrust/ppcie/%s", dir, name);
	json_t *arr = json_load_file(path, 0, NULL);
	assert_non_null(arr);
	return arr;
}

/* {"device_evidence_list": the 8 GPUs then the first `switches` switches}. */
static json_t *board(size_t switches)
{
	json_t *list = load_list("gpu_evidence.json"), *sw = load_list("switch_evidence.json");
	for (size_t i = 0; i < switches; i++)
		json_array_append(list, json_array_get(sw, i));
	json_decref(sw);
	return json_pack("{s:o}", "device_evidence_list", list);
}

static void verify(const json_t *ev, struct verify_result *res)
{
	uint8_t *nonce;
	size_t nl;
	struct err err = {0};
	assert_int_equal(hex_decode(NONCE, strlen(NONCE), &nonce, &nl), 0);
	struct verify_request req = {.evidence = ev, .report_data = nonce, .report_data_len = nl};
	if (verifier_find("nvidia")->verify(&req, res, &err) != 0)
		fail_msg("refused: %s", err.msg);
	free(nonce);
}

static const char *why(const struct verifier_claims *it)
{
	assert_true(it->failed);
	return json_string_value(json_object_get(it->claims, "verification_error"));
}

static void assert_says(const char *got, const char *want)
{
	if (got == NULL || strstr(got, want) == NULL)
		fail_msg("\"%s\" does not say \"%s\"", got ? got : "(null)", want);
}

static void test_switches_verify_locally(void **state)
{
	json_t *ev = json_pack("{s:o}", "device_evidence_list", load_list("switch_evidence.json"));
	struct verify_result res = {0};
	static const char *pdis[] = {"666e93e19dec7d2d", "3a53b743d811e977", "9ae3beba9e673275",
	                             "03dba23b3c11bd8a"};
	verify(ev, &res);
	/* switches alone, attested apart from their GPUs: no ppcie item */
	assert_int_equal(res.n, 4);
	for (size_t i = 0; i < 4; i++) {
		const json_t *c = res.items[i].claims, *cfg = json_object_get(c, "config");
		assert_false(res.items[i].failed);
		assert_string_equal(res.items[i].tee_class, "switch");
		assert_string_equal(json_string_value(json_object_get(c, "arch")), "LS10");
		assert_int_equal(json_object_size(json_object_get(c, "measurements")), 31);
		assert_string_equal(json_string_value(json_object_get(cfg, "vbios_version")),
		                    "96.10.73.00.01");
		assert_string_equal(
		    json_string_value(json_array_get(json_object_get(cfg, "switch_pdi"), 0)),
		    pdis[i]);
		assert_int_equal(json_array_size(json_object_get(cfg, "switch_gpu_pdis")), 8);
		assert_non_null(json_object_get(cfg, "switch_gpu_ports"));
		assert_string_equal(json_string_value(json_object_get(cfg, "lock_switch_status")),
		                    "0100");
		assert_string_equal(json_string_value(json_object_get(cfg, "floorswept_ports")),
		                    "ec00");
		assert_non_null(json_object_get(cfg, "position_id"));
		assert_null(json_object_get(cfg, "driver_version"));
		assert_null(json_object_get(cfg, "fwid")); /* a switch reports none */
	}
	verify_result_clear(&res);
	json_decref(ev);
}

/* The switches' chains end in the built-in NVIDIA Device Identity CA itself. */
static void test_switch_chain_ends_in_builtin_root(void **state)
{
	json_t *sw = load_list("switch_evidence.json"), *e;
	size_t i;
	json_array_foreach(sw, i, e)
	{
		const char *c64 = json_string_value(json_object_get(e, "certificate"));
		uint8_t *pem;
		size_t n;
		struct nvidia_chain c = {0};
		struct err err = {0};
		assert_int_equal(b64_decode(c64, strlen(c64), B64_STD, &pem, &n), 0);
		assert_int_equal(nvidia_chain_parse(pem, n, &c, &err), 0);
		assert_int_equal(sk_X509_num(c.certs), 5);
		X509 *root = sk_X509_value(c.certs, 4);
		assert_int_equal(X509_cmp(root, nvidia_device_root()), 0);
		assert_int_equal(nvidia_chain_verify(&c, NULL, NULL, 0, 0, &err), 0);
		uint8_t fwid[NVIDIA_FWID_LEN]; /* the leaf has the extension, the report no fwid */
		assert_int_equal(nvidia_cert_fwid(nvidia_chain_leaf(&c), fwid, &err), 0);
		nvidia_chain_free(&c);
		free(pem);
	}
	json_decref(sw);
}

static void test_board_yields_ppcie(void **state)
{
	json_t *ev = board(4);
	struct verify_result res = {0};
	verify(ev, &res);
	assert_int_equal(res.n, 13);
	for (size_t i = 0; i < 12; i++) {
		assert_false(res.items[i].failed);
		assert_string_equal(res.items[i].tee_class, i < 8 ? "gpu" : "switch");
	}
	assert_string_equal(res.items[12].tee_class, "ppcie");
	assert_false(res.items[12].failed);
	char *s = json_dumps(res.items[12].claims, JSON_SORT_KEYS | JSON_COMPACT);
	assert_string_equal(s, "{\"gpu_count\":8,\"switch_count\":4}");
	free(s);
	verify_result_clear(&res);
	json_decref(ev);
}

static void test_board_without_a_switch(void **state)
{
	json_t *ev = board(3);
	struct verify_result res = {0};
	verify(ev, &res);
	assert_int_equal(res.n, 12);
	for (size_t i = 0; i < 11; i++)
		assert_false(res.items[i].failed);
	assert_string_equal(res.items[11].tee_class, "ppcie");
	assert_says(why(&res.items[11]),
	            "PPCIe topology: PPCIe needs 8 GPUs and 4 switches; the evidence has 8 "
	            "GPU(s) and 3 switch(es)");
	verify_result_clear(&res);
	json_decref(ev);
}

static void test_board_with_a_gpu_twice(void **state)
{
	json_t *ev = board(4), *list = json_object_get(ev, "device_evidence_list");
	struct verify_result res = {0};
	json_array_set(list, 6, json_array_get(list, 1));
	verify(ev, &res);
	assert_int_equal(res.n, 13);
	for (size_t i = 0; i < 12; i++)
		assert_int_equal(res.items[i].failed, i == 6);
	assert_string_equal(res.items[6].tee_class, "gpu");
	assert_says(why(&res.items[6]), "NVIDIA device 6: the same device as device 1");
	assert_says(why(&res.items[12]), "device 6 (a GPU) failed its own verification");
	verify_result_clear(&res);
	json_decref(ev);
}

/* The byte offset of opaque item `type` in a transcript (its data), found by walking it. */
static size_t opaque_at(const uint8_t *r, size_t n, enum spdm_device kind, uint16_t type)
{
	struct spdm_measurements *m = malloc(sizeof(*m));
	struct err err;
	assert_int_equal(spdm_measurements_parse_device(r, n, SPDM_P384_SIG_LEN, kind, m, &err), 0);
	const struct spdm_opaque_item *it = spdm_opaque_find(m, type);
	assert_non_null(it);
	size_t at = (size_t)(it->data - r);
	free(m);
	return at;
}

/* Switch 2's own PDI changed in its transcript: its signature no longer verifies, so it is
 * refused, and so is the topology, naming it. */
static void test_board_with_a_changed_switch_pdi(void **state)
{
	json_t *ev = board(4), *list = json_object_get(ev, "device_evidence_list");
	json_t *sw = json_array_get(list, 10);
	const char *b = json_string_value(json_object_get(sw, "evidence"));
	uint8_t *raw;
	size_t n;
	struct verify_result res = {0};
	assert_int_equal(b64_decode(b, strlen(b), B64_STD, &raw, &n), 0);
	raw[opaque_at(raw, n, SPDM_DEVICE_SWITCH, SPDM_OD_SWITCH_PDI)] ^= 1;
	char *h = hex_encode(raw, n);
	json_object_set_new(sw, "evidence", json_string(h));
	verify(ev, &res);
	assert_int_equal(res.n, 13);
	for (size_t i = 0; i < 12; i++)
		assert_int_equal(res.items[i].failed, i == 10);
	assert_string_equal(res.items[10].tee_class, "switch");
	assert_says(why(&res.items[10]),
	            "NVIDIA device 10: NVIDIA report signature verification failed");
	assert_says(why(&res.items[12]), "device 10 (a switch) failed its own verification");
	verify_result_clear(&res);
	free(h);
	free(raw);
	json_decref(ev);
}

static void test_type_26_is_unknown_on_a_gpu(void **state)
{
	json_t *sw = load_list("switch_evidence.json");
	const char *b = json_string_value(json_object_get(json_array_get(sw, 0), "evidence"));
	uint8_t *raw;
	size_t n;
	struct spdm_measurements *m = malloc(sizeof(*m));
	struct err err = {0};
	assert_int_equal(b64_decode(b, strlen(b), B64_STD, &raw, &n), 0);
	assert_int_equal(spdm_measurements_parse(raw, n, SPDM_P384_SIG_LEN, m, &err), -1);
	assert_string_equal(err.msg, "unknown opaque data type 26");
	/* shorter than its 8 GPU PDIs: refused, never read past */
	size_t at = opaque_at(raw, n, SPDM_DEVICE_SWITCH, SPDM_OD_SWITCH_GPU_PDIS);
	raw[at - 2] = 63;
	raw[at - 1] = 0;
	assert_int_equal(
	    spdm_measurements_parse_device(raw, n, SPDM_P384_SIG_LEN, SPDM_DEVICE_SWITCH, m, &err),
	    -1);
	assert_says(err.msg, "opaque switch_gpu_pdis is 63 bytes, fewer than the 8 GPU PDIs");
	free(m);
	free(raw);
	json_decref(sw);
}

/* ---- the topology rules on the parsed devices ------------------------------------------- */

static struct nvidia_topo_device devs[12];

/* Parse the 12 real devices (signatures were checked above) into their topology statements. */
static void parse_board(void)
{
	json_t *ev = board(4), *e;
	size_t i;
	json_array_foreach(json_object_get(ev, "device_evidence_list"), i, e)
	{
		const char *b = json_string_value(json_object_get(e, "evidence"));
		const char *c64 = json_string_value(json_object_get(e, "certificate"));
		uint8_t *raw, *pem;
		size_t n, pn;
		struct spdm_measurements *m = malloc(sizeof(*m));
		struct nvidia_chain c = {0};
		struct err err = {0};
		assert_int_equal(b64_decode(b, strlen(b), B64_STD, &raw, &n), 0);
		assert_int_equal(b64_decode(c64, strlen(c64), B64_STD, &pem, &pn), 0);
		assert_int_equal(spdm_measurements_parse_device(
		                     raw, n, SPDM_P384_SIG_LEN,
		                     i < 8 ? SPDM_DEVICE_GPU : SPDM_DEVICE_SWITCH, m, &err),
		                 0);
		assert_int_equal(nvidia_chain_parse(pem, pn, &c, &err), 0);
		assert_int_equal(nvidia_topo_from_report(m, &c, i, &devs[i], &err), 0);
		nvidia_chain_free(&c);
		free(m);
		free(raw);
		free(pem);
	}
	json_decref(ev);
}

static void topo_refused(size_t n, const char *want)
{
	struct err err = {0};
	assert_int_equal(nvidia_ppcie_check(devs, n, &err), -1);
	assert_says(err.msg, want);
}

static void test_topology_of_the_real_board(void **state)
{
	struct err err = {0};
	parse_board();
	assert_true(nvidia_topo_wanted(devs, 12));
	assert_false(nvidia_topo_wanted(devs, 8));     /* GPUs alone: CC mode */
	assert_false(nvidia_topo_wanted(devs + 8, 4)); /* switches alone */
	assert_true(nvidia_topo_wanted(devs + 7, 2));  /* one of each */
	for (size_t i = 0; i < 8; i++) {
		assert_false(devs[i].is_switch);
		assert_int_equal(devs[i].n_links, 18); /* one per NVLink */
	}
	assert_int_equal(devs[8].n_links, 8);
	if (nvidia_ppcie_check(devs, 12, &err) != 0)
		fail_msg("%s", err.msg);
	/* a disabled link (zero PDI) is not a link to an unknown switch */
	memset(devs[3].links[17], 0, NVIDIA_PDI_LEN);
	assert_int_equal(nvidia_ppcie_check(devs, 12, &err), 0);
}

static void test_topology_refuses_a_foreign_switch_link(void **state)
{
	parse_board();
	devs[4].links[7][0] ^= 0x80;
	topo_refused(12, "device 4 (a GPU) links to switch PDI ");
	topo_refused(12, "which is none of the request's switches");
}

static void test_topology_refuses_a_gpu_missing_a_switch(void **state)
{
	parse_board();
	/* GPU 2 lists every switch but switch 3 (device 11): its links to it become disabled */
	for (size_t k = 0; k < devs[2].n_links; k++)
		if (memcmp(devs[2].links[k], devs[11].pdi, NVIDIA_PDI_LEN) == 0)
			memset(devs[2].links[k], 0, NVIDIA_PDI_LEN);
	topo_refused(12, "device 2 (a GPU) has no link to device 11 (the switch with PDI "
	                 "03dba23b3c11bd8a)");
}

static void test_topology_refuses_a_switch_listing_another_gpu(void **state)
{
	parse_board();
	devs[9].links[3][5] ^= 1;
	topo_refused(12, "device 9 (a switch) links to GPU PDI ");
}

static void test_topology_refuses_a_switch_pdi_its_certificate_does_not_name(void **state)
{
	parse_board();
	devs[8].pdi[0] ^= 1;
	topo_refused(12, "device 8 (a switch) reports PDI 676e93e19dec7d2d but its certificate "
	                 "names 666e93e19dec7d2d");
}

static void test_topology_refuses_two_devices_with_one_pdi(void **state)
{
	parse_board();
	memcpy(devs[7].pdi, devs[0].pdi, NVIDIA_PDI_LEN); /* GPU 0 counted twice */
	topo_refused(12, "device 7 (a GPU) has the PDI 2921ce551e4eeda3 of device 0");
}

static void test_topology_refuses_wrong_counts(void **state)
{
	parse_board();
	topo_refused(11, "the evidence has 8 GPU(s) and 3 switch(es)");
	devs[11] = devs[0]; /* a ninth GPU in place of switch 3 */
	devs[11].index = 11;
	topo_refused(12, "the evidence has 9 GPU(s) and 3 switch(es)");
}

static void test_topology_refuses_an_unverified_device(void **state)
{
	parse_board();
	devs[5].verified = 0;
	topo_refused(12, "device 5 (a GPU) failed its own verification");
}

static void test_topology_refuses_a_device_without_pdi(void **state)
{
	parse_board();
	devs[1].has_pdi = 0;
	topo_refused(12, "device 1 (a GPU) names no PDI");
}

int main(void)
{
	tl_testdata_dir(dir, sizeof(dir), "");
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_switches_verify_locally),
	    cmocka_unit_test(test_switch_chain_ends_in_builtin_root),
	    cmocka_unit_test(test_board_yields_ppcie),
	    cmocka_unit_test(test_board_without_a_switch),
	    cmocka_unit_test(test_board_with_a_gpu_twice),
	    cmocka_unit_test(test_board_with_a_changed_switch_pdi),
	    cmocka_unit_test(test_type_26_is_unknown_on_a_gpu),
	    cmocka_unit_test(test_topology_of_the_real_board),
	    cmocka_unit_test(test_topology_refuses_a_foreign_switch_link),
	    cmocka_unit_test(test_topology_refuses_a_gpu_missing_a_switch),
	    cmocka_unit_test(test_topology_refuses_a_switch_listing_another_gpu),
	    cmocka_unit_test(test_topology_refuses_a_switch_pdi_its_certificate_does_not_name),
	    cmocka_unit_test(test_topology_refuses_two_devices_with_one_pdi),
	    cmocka_unit_test(test_topology_refuses_wrong_counts),
	    cmocka_unit_test(test_topology_refuses_an_unverified_device),
	    cmocka_unit_test(test_topology_refuses_a_device_without_pdi),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
