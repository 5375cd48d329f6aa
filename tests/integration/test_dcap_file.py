"""Air-gapped DCAP collateral (`dcap_verifier.collateral_service = "file://..."`): one bundle, an
array of bundles chosen by FMSPC and TEE type, and the Intel PCS Client Tool's JSON document, each
verifying the dcap-qvl TDX and SGX quotes through evidence-verify with an AS config file."""
import json
import os
import subprocess

import harness

EV = os.path.join(harness.BIN, "evidence-verify")
E = harness.testdata("evidence")
TDX_Q = os.path.join(E, "tdx", "dcap-qvl", "tdx_quote")
SGX_Q = os.path.join(E, "sgx", "dcap-qvl", "sgx_quote")
TDX_B = json.load(open(os.path.join(E, "tdx", "dcap-qvl", "tdx_quote_collateral.json")))
SGX_B = json.load(open(os.path.join(E, "sgx", "dcap-qvl", "sgx_quote_collateral.json")))
WHEN = "2025-07-19T10:00:00Z"


def verify(d, tee, quote, doc, name):
    path = os.path.join(d, name + ".json")
    json.dump(doc, open(path, "w"))
    cfg = os.path.join(d, name + "-as.json")
    json.dump({"verifier_config": {"dcap_verifier": {"collateral_service": "file://" + path,
                                                     "tcb_update_type": "early"}}}, open(cfg, "w"))
    r = subprocess.run([EV, "--tee", tee, "--evidence", quote, "--config", cfg, "--time", WHEN],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def pcs_response(text, member, sig):
    return '{"%s":%s,"signature":"%s"}' % (member, text, sig)


def tool_doc(as_objects):
    """The PCS Client Tool's layout; responses as parsed objects or as their raw text."""
    def resp(b, which):
        member = "tcbInfo" if which == "tcb" else "enclaveIdentity"
        text = pcs_response(b["tcb_info" if which == "tcb" else "qe_identity"], member,
                            b["tcb_info_signature" if which == "tcb" else "qe_identity_signature"])
        return json.loads(text) if as_objects else text
    return {"collaterals": {
        "tcbinfos": [{"fmspc": "B0C06F000000", "tdx_tcbinfo": resp(TDX_B, "tcb")},
                     {"fmspc": "00A067110000", "sgx_tcbinfo": resp(SGX_B, "tcb")}],
        "pckcacrl": {"platformCrl": TDX_B["pck_crl"], "processorCrl": SGX_B["pck_crl"]},
        "tdqeidentity": resp(TDX_B, "qe"), "qeidentity": resp(SGX_B, "qe"),
        "certificates": {"TCB-Info-Issuer-Chain": TDX_B["tcb_info_issuer_chain"],
                         "SGX-Enclave-Identity-Issuer-Chain": TDX_B["qe_identity_issuer_chain"],
                         "SGX-PCK-Certificate-Issuer-Chain": {"PLATFORM": TDX_B["pck_crl_issuer_chain"],
                                                              "PROCESSOR": SGX_B["pck_crl_issuer_chain"]}},
        "rootcacrl": TDX_B["root_ca_crl"]}}


def main():
    t = harness.Tap()
    d = harness.tmpdir("dcap-file-")
    rc, out = verify(d, "tdx", TDX_Q, TDX_B, "one")
    t.ok(rc == 0 and '"UpToDate"' in out, "file:// with one bundle verifies the TDX quote", out[-400:])
    for tee, q, want in (("tdx", TDX_Q, "UpToDate"), ("sgx", SGX_Q, "ConfigurationAndSWHardeningNeeded")):
        rc, out = verify(d, tee, q, [SGX_B, TDX_B], "array")
        t.ok(rc == 0 and '"%s"' % want in out, "file:// with an array of bundles picks the %s collateral" % tee,
             out[-400:])
    rc, out = verify(d, "tdx", TDX_Q, [SGX_B], "array-miss")
    t.ok(rc == 1 and "no TDX collateral for FMSPC B0C06F000000" in out,
         "an array without the quote's FMSPC is refused by name", out)
    for as_objects in (True, False):
        kind = "parsed objects" if as_objects else "raw response text"
        for tee, q, want in (("tdx", TDX_Q, "UpToDate"), ("sgx", SGX_Q, "ConfigurationAndSWHardeningNeeded")):
            rc, out = verify(d, tee, q, tool_doc(as_objects), "tool")
            t.ok(rc == 0 and '"%s"' % want in out,
                 "PCS Client Tool JSON (%s) verifies the %s quote" % (kind, tee), out[-400:])
    doc = tool_doc(True)
    doc["collaterals"]["tcbinfos"][0]["tdx_tcbinfo"]["tcbInfo"]["tcbEvaluationDataNumber"] = 99
    rc, out = verify(d, "tdx", TDX_Q, doc, "tool-edited")
    t.ok(rc == 1 and "TCB Info signature" in out, "an edited TCB Info in the tool's JSON fails its signature", out)
    rc, out = verify(d, "tdx", TDX_Q, {"collaterals": {"tcbinfos": []}}, "tool-empty")
    t.ok(rc == 1 and "no TDX TCB Info for FMSPC B0C06F000000" in out, "tool JSON without the FMSPC is refused", out)
    # trustee's tdx_quote_6.dat with its TCB Info / QE identity responses: Intel's PCK CRL for
    # that window is not in the testdata (MANIFEST §5), and revocation is never skipped
    tr = os.path.join(E, "tdx", "trustee")
    chain = open(os.path.join(E, "intel-common", "tcb_signing_chain_2025.pem")).read()
    root_crl = open(os.path.join(E, "intel-common", "IntelSGXRootCA_crl_2025-03-20.der"), "rb").read().hex()
    doc = {"collaterals": {
        "tcbinfos": [{"fmspc": "00A06D080000", "tdx_tcbinfo": open(os.path.join(tr, "tcbInfo.json")).read()}],
        "tdqeidentity": open(os.path.join(tr, "enclaveIdentity.json")).read(), "pckcacrl": {},
        "certificates": {"TCB-Info-Issuer-Chain": chain, "SGX-Enclave-Identity-Issuer-Chain": chain},
        "rootcacrl": root_crl}}
    rc, out = verify(d, "tdx", os.path.join(tr, "tdx_quote_6.dat"), doc, "q6")
    t.ok(rc == 1 and "PCK CRL for FMSPC 00A06D080000" in out,
         "trustee q6 without a PCK CRL for its window is refused, not verified without revocation", out)
    rc, out = verify(d, "tdx", TDX_Q, "not a bundle", "junk")
    t.ok(rc == 1 and out.startswith("refused:"), "a collateral file that is not a bundle is refused", out)
    t.done()


if __name__ == "__main__":
    main()
