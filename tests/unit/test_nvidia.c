/*
 * NVIDIA verifier over the real H100 evidence in shared/testdata/evidence/nvidia (MANIFEST.md
 * rows "NVIDIA H100" and its chain cases 1-4): the claims equal Trustee's golden file byte for
 * byte, and each broken part of the evidence is refused with its own reason.
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
#include "as/evidence/spdm.h"
#include "as/verifiers/verifier.h"
#include "b64.h"
#include "testlib.h"

static char dir[1024];
static const char *NONCE = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb";
static const char *FWID = "f5c384aebb579217a2c66b17ed0f28e6a9b8d639041acd7b4721cec004f7275494ba94"
                          "bb5cdfdb3055ee051762b1f75d";

static uint8_t *unhex(const char *s, size_t *n)
{
	uint8_t *out;
	size_t len = strlen(s);
	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
		len--;
	assert_int_equal(hex_decode(s, len, &out, n), 0);
	return out;
}

static uint8_t *report_bytes(const char *rel, size_t *n)
{
	size_t tl;
	char *txt = (char *)tl_slurp(dir, rel, &tl);
	uint8_t *r = unhex(txt, n);
	free(txt);
	return r;
}

/* Evidence with one Hopper device: the transcript (hex) and the chain file (base64). */
static json_t *evidence(const uint8_t *rep, size_t rlen, const char *chain_rel)
{
	size_t cl;
	uint8_t *chain = tl_slurp(dir, chain_rel, &cl);
	char *h = hex_encode(rep, rlen), *c64 = b64_encode(chain, cl, B64_STD);
	json_t *ev =
	    json_pack("{s:[{s:s,s:s,s:s,s:s}]}", "device_evidence_list", "arch", "Hopper", "uuid",
	              "1111-2222-33333-444444-555555", "evidence", h, "certificate", c64);
	free(h);
	free(c64);
	free(chain);
	return ev;
}

static int run(const json_t *ev, const char *nonce_hex, const json_t *opts, json_t **claims,
               struct err *err)
{
	const struct verifier *v = verifier_find("nvidia");
	struct verify_result res = {0};
	size_t nl = 0;
	uint8_t *nonce = nonce_hex ? unhex(nonce_hex, &nl) : NULL;
	struct verify_request req = {
	    .evidence = ev, .report_data = nonce, .report_data_len = nl, .options = opts};
	assert_non_null(v);
	int rc = v->verify(&req, &res, err);
	if (rc == 0) {
		assert_int_equal(res.n, 1);
		assert_string_equal(res.items[0].tee_class, "gpu");
		if (res.items[0].failed) /* the one device was refused */
			rc = err_set(err, "%s", verify_result_first_failure(&res));
		else if (claims)
			*claims = json_incref(res.items[0].claims);
	}
	verify_result_clear(&res);
	free(nonce);
	return rc;
}

/* Verify the sample report after `mutate` changed it; expect a refusal containing `want`. */
static void refuse(void (*mutate)(uint8_t *, size_t *), const char *chain, const char *nonce,
                   const json_t *opts, const char *want)
{
	size_t n;
	uint8_t *rep = report_bytes("evidence/nvidia/trustee/hopperAttestationReport.txt", &n);
	uint8_t *roomy = realloc(rep, n + 16); /* room for a mutation that appends */
	assert_non_null(roomy);
	rep = roomy;
	if (mutate)
		mutate(rep, &n);
	json_t *ev = evidence(rep, n, chain);
	struct err err = {0};
	assert_int_equal(run(ev, nonce, opts, NULL, &err), -1);
	if (strstr(err.msg, want) == NULL)
		fail_msg("refusal \"%s\" does not say \"%s\"", err.msg, want);
	json_decref(ev);
	free(rep);
}

static void test_claims_equal_trustee_golden(void **state)
{
	size_t n, gl;
	uint8_t *rep = report_bytes("evidence/nvidia/trustee/hopperAttestationReport.txt", &n);
	char *golden = (char *)tl_slurp(
	    dir, "evidence/nvidia/trustee/hopperAttestationReport-claims.txt", &gl);
	json_t *ev = evidence(rep, n, "evidence/nvidia/trustee/hopper_cert_chain_case1.txt");
	json_t *claims = NULL;
	struct err err = {0};
	if (run(ev, NONCE, NULL, &claims, &err) != 0)
		fail_msg("refused: %s", err.msg);
	char *got = json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS);
	/* Trustee sorts measurement indices as strings, as JSON_SORT_KEYS does */
	assert_string_equal(got, golden);
	free(got);
	json_decref(claims);
	json_decref(ev);
	free(golden);
	free(rep);
}

static void test_nvtrust_copy_verifies_too(void **state)
{
	size_t n;
	uint8_t *rep = report_bytes("evidence/nvidia/nvtrust/hopperAttestationReport.txt", &n);
	json_t *ev = evidence(rep, n, "evidence/nvidia/nvtrust/hopperCertChain.txt");
	struct err err = {0};
	if (run(ev, NONCE, NULL, NULL, &err) != 0)
		fail_msg("refused: %s", err.msg);
	json_decref(ev);
	free(rep);
}

static void test_coco_report_with_48_byte_report_data(void **state)
{
	size_t n;
	uint8_t *rep = report_bytes("evidence/nvidia/trustee/hopper_coco_report1.txt", &n);
	json_t *ev = evidence(rep, n, "evidence/nvidia/trustee/hopper_coco_certs1.txt");
	struct err err = {0};
	const char *rd =
	    "87d8e24ab336adafe228d49e83d745f6dba4ae505372b6a5704820856b343fece279b616efef"
	    "c2aae21da80cf5581250";
	if (run(ev, rd, NULL, NULL, &err) != 0)
		fail_msg("refused: %s", err.msg);
	json_decref(ev);
	free(rep);
}

static void test_chain_case2_root_only(void **state)
{
	refuse(NULL, "evidence/nvidia/trustee/hopper_cert_chain_case2.txt", NONCE, NULL,
	       "Certificate chain must have at least the root CA and signing certificates");
}

static void test_chain_case3_missing_intermediate(void **state)
{
	refuse(NULL, "evidence/nvidia/trustee/hopper_cert_chain_case3.txt", NONCE, NULL,
	       "Report certificate chain failed to verify");
}

static void test_chain_case4_missing_leaf(void **state)
{
	refuse(NULL, "evidence/nvidia/trustee/hopper_cert_chain_case4.txt", NONCE, NULL,
	       "FwId oid not found in the NVIDIA signing certificate");
}

static void test_fwid_of_signing_cert(void **state)
{
	size_t n;
	uint8_t *pem = tl_slurp(dir, "evidence/nvidia/trustee/hopper_signing_cert.pem", &n);
	struct nvidia_chain c = {0};
	struct err err = {0};
	uint8_t fwid[NVIDIA_FWID_LEN];
	assert_int_equal(nvidia_chain_parse(pem, n, &c, &err), 0);
	assert_int_equal(nvidia_cert_fwid(nvidia_chain_leaf(&c), fwid, &err), 0);
	char *h = hex_encode(fwid, sizeof(fwid));
	assert_string_equal(h, FWID);
	free(h);
	nvidia_chain_free(&c);
	free(pem);
}

static void flip_measurement(uint8_t *r, size_t *n)
{
	r[37 + 8 + 4 + 3 + 48 + 7 + 5] ^= 1; /* a byte of measurement index 2 */
}

static void truncate_response(uint8_t *r, size_t *n)
{
	*n -= 10;
}

/* The opaque fwid item is the 48 bytes after its {20, 48} header, before {21, 1, 'U'} and the
 * signature. */
static size_t fwid_at(const uint8_t *r, size_t n)
{
	size_t at = n - 96 - 5 - 48;
	assert_int_equal(r[at - 4], 20);
	assert_int_equal(r[at - 2], 48);
	return at;
}

static void break_fwid(uint8_t *r, size_t *n)
{
	r[fwid_at(r, *n)] ^= 0xff;
}

static void fwid_type_to_vbios(uint8_t *r, size_t *n)
{
	r[fwid_at(r, *n) - 4] = 6;
}

static void unknown_opaque_type(uint8_t *r, size_t *n)
{
	r[fwid_at(r, *n) - 4] = 37;
}

static void trailing_garbage(uint8_t *r, size_t *n)
{
	r[*n] = 0x01; /* refuse() left room */
	(*n)++;
}

static void test_refuses_flipped_measurement_byte(void **state)
{
	refuse(flip_measurement, "evidence/nvidia/trustee/hopper_cert_chain_case1.txt", NONCE, NULL,
	       "NVIDIA report signature verification failed");
}

static void test_refuses_truncated_response(void **state)
{
	refuse(truncate_response, "evidence/nvidia/trustee/hopper_cert_chain_case1.txt", NONCE,
	       NULL, "SPDM response truncated: signature needs 96 bytes, 86 left");
}

static void test_refuses_wrong_nonce(void **state)
{
	refuse(NULL, "evidence/nvidia/trustee/hopper_cert_chain_case1.txt",
	       "031d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb", NULL,
	       "Nvidia report nonce mismatch");
}

static void test_refuses_missing_report_data(void **state)
{
	refuse(NULL, "evidence/nvidia/trustee/hopper_cert_chain_case1.txt", NULL, NULL,
	       "Nvidia report data not provided");
}

static void test_refuses_wrong_root(void **state)
{
	char path[1400];
	snprintf(path, sizeof(path), "%s/evidence/nvidia/nvtrust/verifier_RIM_root.pem", dir);
	json_t *opts = json_pack("{s:s}", "nvidia_root_ca", path);
	refuse(NULL, "evidence/nvidia/trustee/hopper_cert_chain_case1.txt", NONCE, opts,
	       "Root CA in the certificate chain is not trusted");
	json_decref(opts);
}

static void test_refuses_mismatched_fwid(void **state)
{
	refuse(break_fwid, "evidence/nvidia/trustee/hopper_cert_chain_case1.txt", NONCE, NULL,
	       "Fwid mismatch: certificate f5c384ae");
}

static void test_refuses_duplicate_opaque_item(void **state)
{
	refuse(fwid_type_to_vbios, "evidence/nvidia/trustee/hopper_cert_chain_case1.txt", NONCE,
	       NULL, "opaque vbios_version appears twice");
}

static void test_refuses_unknown_opaque_type(void **state)
{
	refuse(unknown_opaque_type, "evidence/nvidia/trustee/hopper_cert_chain_case1.txt", NONCE,
	       NULL, "unknown opaque data type 37");
}

static void test_refuses_bytes_after_signature(void **state)
{
	refuse(trailing_garbage, "evidence/nvidia/trustee/hopper_cert_chain_case1.txt", NONCE, NULL,
	       "1 unexplained bytes after the signature");
}

static void test_refuses_blackwell_locally(void **state)
{
	json_t *ev = json_pack("{s:[{s:s,s:s,s:s}]}", "device_evidence_list", "arch", "Blackwell",
	                       "evidence", "11", "certificate", "");
	struct err err = {0};
	assert_int_equal(run(ev, NONCE, NULL, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "Device architecture not supported"));
	json_decref(ev);
}

/* The 8 H100s of nvtrust's PPCIe sample (MANIFEST: all verify and chain, nonce 4760e305...). */
static json_t *ppcie_gpus(void)
{
	char path[1400];
	snprintf(path, sizeof(path), "%s/evidence/nvidia/nvtrust/ppcie/gpu_evidence.json", dir);
	json_t *arr = json_load_file(path, 0, NULL), *e;
	size_t i;
	assert_true(json_array_size(arr) == 8);
	json_array_foreach(arr, i, e)
	{
		json_object_del(
		    e, "nonce"); /* the collector's copy; the verifier reads the transcript */
	}
	json_t *ev = json_pack("{s:o}", "device_evidence_list", arr);
	return ev;
}

static const char *PPCIE_NONCE = "4760e30534a0621357d458b1a7936551b5dc4cd1e69718adf7ed9fb0252a537e";

static void test_ppcie_eight_gpus_verify(void **state)
{
	json_t *ev = ppcie_gpus();
	const struct verifier *v = verifier_find("nvidia");
	struct verify_result res = {0};
	size_t nl;
	uint8_t *nonce = unhex(PPCIE_NONCE, &nl);
	struct verify_request req = {.evidence = ev, .report_data = nonce, .report_data_len = nl};
	struct err err = {0};
	if (v->verify(&req, &res, &err) != 0)
		fail_msg("refused: %s", err.msg);
	assert_int_equal(res.n, 8);
	for (size_t i = 0; i < res.n; i++) {
		json_t *cfg = json_object_get(res.items[i].claims, "config");
		assert_string_equal(res.items[i].tee_class, "gpu");
		assert_string_equal(json_string_value(json_object_get(cfg, "driver_version")),
		                    "590.12");
		assert_string_equal(json_string_value(json_object_get(cfg, "vbios_version")),
		                    "96.00.a5.00.01");
		assert_string_equal(json_string_value(json_object_get(cfg, "feature_flag")),
		                    "PPCIE");
		/* a status byte that is not text (0xaa) is given in hex, not as U+FFFD */
		const char *pcie = json_string_value(json_object_get(cfg, "protected_pcie_status"));
		assert_non_null(pcie);
		assert_string_equal(pcie, "aa");
	}
	verify_result_clear(&res);
	free(nonce);
	json_decref(ev);
}

/* The copy is refused on its own: device 5 fails, the 7 others keep their claims. */
static void test_refuses_same_gpu_twice(void **state)
{
	json_t *ev = ppcie_gpus();
	json_t *list = json_object_get(ev, "device_evidence_list");
	json_array_set(list, 5, json_array_get(list, 2));
	size_t nl;
	uint8_t *nonce = unhex(PPCIE_NONCE, &nl);
	struct verify_request req = {.evidence = ev, .report_data = nonce, .report_data_len = nl};
	struct verify_result res = {0};
	struct err err = {0};
	assert_int_equal(verifier_find("nvidia")->verify(&req, &res, &err), 0);
	assert_int_equal(res.n, 8);
	for (size_t i = 0; i < res.n; i++) {
		assert_string_equal(res.items[i].tee_class, "gpu");
		assert_int_equal(res.items[i].failed, i == 5);
	}
	assert_string_equal(
	    json_string_value(json_object_get(res.items[5].claims, "verification_error")),
	    "NVIDIA device 5: the same device as device 2 (same device "
	    "certificate)");
	verify_result_clear(&res);
	free(nonce);
	json_decref(ev);
}

static void test_refuses_too_many_devices(void **state)
{
	json_t *ev = ppcie_gpus();
	json_t *list = json_object_get(ev, "device_evidence_list");
	json_t *one = json_array_get(list, 0);
	while (json_array_size(list) < 10000)
		json_array_append(list, one);
	struct err err = {0};
	assert_int_equal(run(ev, PPCIE_NONCE, NULL, NULL, &err), -1);
	assert_string_equal(err.msg, "NVIDIA evidence lists 10000 devices, more than 32");
	json_decref(ev);
}

static void test_parser_refuses_every_truncation(void **state)
{
	size_t n;
	uint8_t *rep = report_bytes("evidence/nvidia/trustee/hopperAttestationReport.txt", &n);
	struct spdm_measurements *m = malloc(sizeof(*m));
	struct err err = {0};
	assert_int_equal(spdm_measurements_parse(rep, n, SPDM_P384_SIG_LEN, m, &err), 0);
	assert_int_equal(m->n_blocks, 64);
	assert_int_equal(m->signed_len, n - 96);
	for (size_t k = 0; k < n; k++) {
		uint8_t *cut = malloc(k ? k : 1);
		memcpy(cut, rep, k);
		if (spdm_measurements_parse(cut, k, SPDM_P384_SIG_LEN, m, &err) == 0)
			fail_msg("a transcript cut to %zu bytes parsed", k);
		free(cut);
	}
	free(m);
	free(rep);
}

/* ---- measurements against RIMs from nvidia_verifier.rim_dir ----
 * The testdata RIMs are for another driver and VBIOS than the sample report, so the tests
 * write RIMs whose hashes are the report's own measurements and sign them with the xmlsec1
 * CLI under a test root made with the openssl CLI (and a second root to refuse). */

static char rimdir[64] = "";
static const char *DRV_RIM = "NV_GPU_DRIVER_GH100_550.90.07.swidtag";
static const char *VB_RIM = "NV_GPU_VBIOS_1010_0200_882_96009F0001.swidtag";
#define NO_INDEX 999 /* no RIM index is this */

static void sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		fail_msg("command failed: %s", cmd);
}

static int rim_setup(void **state)
{
	strcpy(rimdir, "/tmp/ctrustee-rimXXXXXX");
	if (mkdtemp(rimdir) == NULL)
		return -1;
	for (int i = 0; i < 2; i++)
		sh("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes "
		   "-keyout root%d.key -out root%d.pem -days 30 -subj /CN=test-rim-root%d "
		   "2>/dev/null",
		   rimdir, i, i, i);
	sh("cd %s && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -keyout "
	   "signer.key -out signer.csr -subj /CN=test-rim-signer 2>/dev/null && openssl x509 -req "
	   "-in signer.csr -CA root0.pem -CAkey root0.key -set_serial 7 -days 30 -out signer.pem "
	   "2>/dev/null",
	   rimdir);
	return 0;
}

static int rim_teardown(void **state)
{
	if (rimdir[0] != '\0')
		tl_rm_rf(rimdir);
	return 0;
}

/* Write and sign one RIM making RIM indices [from[k], to[k]] active with the report's block
 * (index + 1) values; `wrong` (or NO_INDEX) gets a value that is not the report's, `twice` (or
 * NO_INDEX) a wrong first alternative and the right second one. */
static void write_rim(const char *name, const struct spdm_measurements *m, const int *from,
                      const int *to, size_t nr, int wrong, int twice)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/tmpl.xml", rimdir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "<SoftwareIdentity xmlns=\"http://standards.iso.org/iso/19770/-2/2015/"
	           "schema.xsd\" xmlns:h=\"http://www.w3.org/2001/04/xmlenc#sha384\" "
	           "name=\"GH100\" tagId=\"test\" version=\"1.0\">\n"
	           "<Meta xmlns:r=\"https://trustedcomputinggroup.org/resource/"
	           "tcg-reference-integrity-manifest-rim-information-model/\" edition=\"GPU\" "
	           "r:PlatformManufacturerStr=\"NVIDIA Corporation\"/>\n<Payload>\n");
	/* an inactive index whose value is not the report's: not compared */
	fprintf(
	    f, "<Resource type=\"Measurement\" index=\"63\" active=\"False\" h:Hash0=\"%096d\"/>\n",
	    1);
	for (size_t r = 0; r < nr; r++)
		for (int i = from[r]; i <= to[r]; i++) {
			const struct spdm_block *b = &m->blocks[i]; /* block index i + 1 */
			assert_int_equal(b->index, i + 1);
			char *h = hex_encode(b->value, b->value_len);
			if (b->index == wrong + 1)
				h[0] = h[0] == 'a' ? 'b' : 'a';
			if (b->index == twice + 1)
				fprintf(
				    f,
				    "<Resource type=\"Measurement\" index=\"%d\" active=\"True\" "
				    "h:Hash0=\"%096d\" h:Hash1=\"%s\"/>\n",
				    i, 2, h);
			else
				fprintf(
				    f,
				    "<Resource type=\"Measurement\" index=\"%d\" active=\"True\" "
				    "h:Hash0=\"%s\"/>\n",
				    i, h);
			free(h);
		}
	fprintf(f,
	        "</Payload>\n<Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\"><SignedInfo>"
	        "<CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>"
	        "<SignatureMethod Algorithm=\"http://www.w3.org/2001/04/"
	        "xmldsig-more#ecdsa-sha384\"/><Reference URI=\"\"><Transforms><Transform "
	        "Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>"
	        "</Transforms><DigestMethod Algorithm=\"http://www.w3.org/2001/04/"
	        "xmldsig-more#sha384\"/><DigestValue/></Reference></SignedInfo>"
	        "<SignatureValue/><KeyInfo><X509Data><X509Certificate/></X509Data></KeyInfo>"
	        "</Signature>\n</SoftwareIdentity>\n");
	fclose(f);
	sh("cd %s && xmlsec1 --sign --privkey-pem signer.key,signer.pem --output %s tmpl.xml "
	   ">/dev/null 2>&1",
	   rimdir, name);
}

/* RIMs covering the report as NVIDIA's split them: VBIOS RIM indices 0-6 and 8-12, driver 7
 * and 21-40. */
static void write_rims(int vb_wrong, int with_vbios)
{
	static const int vf[] = {0, 8}, vt[] = {6, 12}, df[] = {7, 21}, dt[] = {7, 40};
	size_t n;
	uint8_t *rep = report_bytes("evidence/nvidia/trustee/hopperAttestationReport.txt", &n);
	struct spdm_measurements *m = malloc(sizeof(*m));
	struct err err = {0};
	assert_int_equal(spdm_measurements_parse(rep, n, SPDM_P384_SIG_LEN, m, &err), 0);
	sh("rm -f %s/NV_GPU_*", rimdir);
	write_rim(DRV_RIM, m, df, dt, 2, NO_INDEX, 30);
	if (with_vbios)
		write_rim(VB_RIM, m, vf, vt, 2, vb_wrong, NO_INDEX);
	free(m);
	free(rep);
}

static void configure_rims(int root)
{
	char r[128];
	struct err err = {0};
	snprintf(r, sizeof(r), "%s/root%d.pem", rimdir, root);
	json_t *c =
	    json_pack("{s:{s:s,s:s}}", "nvidia_verifier", "rim_dir", rimdir, "rim_root_ca_file", r);
	if (verifier_find("nvidia")->init(c, &err) != 0)
		fail_msg("init: %s", err.msg);
	json_decref(c);
}

static void unconfigure_rims(void)
{
	json_t *c = json_object();
	struct err err = {0};
	assert_int_equal(verifier_find("nvidia")->init(c, &err), 0);
	json_decref(c);
}

static void test_rims_accept(void **state)
{
	size_t n;
	uint8_t *rep = report_bytes("evidence/nvidia/trustee/hopperAttestationReport.txt", &n);
	json_t *ev = evidence(rep, n, "evidence/nvidia/trustee/hopper_cert_chain_case1.txt");
	struct err err = {0};
	write_rims(NO_INDEX, 1);
	configure_rims(0);
	int rc = run(ev, NONCE, NULL, NULL, &err);
	unconfigure_rims();
	if (rc != 0)
		fail_msg("refused: %s", err.msg);
	json_decref(ev);
	free(rep);
}

static void test_rim_mismatch_names_the_index(void **state)
{
	write_rims(12, 1);
	configure_rims(0);
	refuse(NULL, "evidence/nvidia/trustee/hopper_cert_chain_case1.txt", NONCE, NULL,
	       "measurement 12 (SPDM block 13) matches none of the VBIOS RIM's values");
	unconfigure_rims();
}

static void test_missing_rim_names_the_file(void **state)
{
	char want[256];
	write_rims(NO_INDEX, 0);
	configure_rims(0);
	snprintf(want, sizeof(want), "no VBIOS RIM for this device: cannot read %s/%s", rimdir,
	         VB_RIM);
	refuse(NULL, "evidence/nvidia/trustee/hopper_cert_chain_case1.txt", NONCE, NULL, want);
	unconfigure_rims();
}

static void test_rim_signed_under_another_root_refused(void **state)
{
	write_rims(NO_INDEX, 1);
	configure_rims(1);
	refuse(NULL, "evidence/nvidia/trustee/hopper_cert_chain_case1.txt", NONCE, NULL,
	       "cannot be verified");
	unconfigure_rims();
}

static void test_rim_dir_needs_a_root(void **state)
{
	struct err err = {0};
	json_t *c = json_pack("{s:{s:s}}", "nvidia_verifier", "rim_dir", "/nonexistent");
	assert_int_equal(verifier_find("nvidia")->init(c, &err), -1);
	assert_non_null(strstr(err.msg, "rim_root_ca_file"));
	json_decref(c);
}

int main(void)
{
	tl_testdata_dir(dir, sizeof(dir), "");
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_claims_equal_trustee_golden),
	    cmocka_unit_test(test_nvtrust_copy_verifies_too),
	    cmocka_unit_test(test_coco_report_with_48_byte_report_data),
	    cmocka_unit_test(test_chain_case2_root_only),
	    cmocka_unit_test(test_chain_case3_missing_intermediate),
	    cmocka_unit_test(test_chain_case4_missing_leaf),
	    cmocka_unit_test(test_fwid_of_signing_cert),
	    cmocka_unit_test(test_refuses_flipped_measurement_byte),
	    cmocka_unit_test(test_refuses_truncated_response),
	    cmocka_unit_test(test_refuses_wrong_nonce),
	    cmocka_unit_test(test_refuses_missing_report_data),
	    cmocka_unit_test(test_refuses_wrong_root),
	    cmocka_unit_test(test_refuses_mismatched_fwid),
	    cmocka_unit_test(test_refuses_duplicate_opaque_item),
	    cmocka_unit_test(test_refuses_unknown_opaque_type),
	    cmocka_unit_test(test_refuses_bytes_after_signature),
	    cmocka_unit_test(test_refuses_blackwell_locally),
	    cmocka_unit_test(test_parser_refuses_every_truncation),
	    cmocka_unit_test(test_ppcie_eight_gpus_verify),
	    cmocka_unit_test(test_refuses_same_gpu_twice),
	    cmocka_unit_test(test_refuses_too_many_devices),
	    cmocka_unit_test(test_rims_accept),
	    cmocka_unit_test(test_rim_mismatch_names_the_index),
	    cmocka_unit_test(test_missing_rim_names_the_file),
	    cmocka_unit_test(test_rim_signed_under_another_root_refused),
	    cmocka_unit_test(test_rim_dir_needs_a_root),
	};
	return cmocka_run_group_tests(tests, rim_setup, rim_teardown);
}
