"""TDX and SGX guests through the whole KBS flow: /auth, a TDX quote whose REPORT_DATA carries the KBS
nonce and the guest's key (forged under a test root by dcap_forge.py, since a real TD cannot be
run here), /attest through grpc-as with file:// collateral at a pinned verification time, the EAR
token's tdx claims, and the resource released as a JWE to the guest's key. Also the refusals on
the same path: a quote for another nonce, a quote whose PCK is revoked, and a debug TD denied by a
resource policy that reads the token's td_attributes."""
import hashlib
import json
import os

import harness
from harness import BIN, Daemon, free_port, tmpdir
from kbs_testlib import Attester, Kbs, Pki, b64u_dec, jcs, kbs_config, require_kbs

import dcap_forge as F

WHEN = "2025-06-01T00:00:00Z"  # inside dcap_forge's collateral windows
SECRET = b"tdx secret"
POLICY = """package policy
import rego.v1
default allow := false
allow if {
	data.plugin == "resource"
	tdx := input.submods.cpu0["ear.veraison.annotated-evidence"].tdx
	tdx.td_attributes.debug == false
	tdx.tcb_status == "UpToDate"
}
"""


def quote_for(a, scenario, d, tag, nonce=None, debug=False):
    """The scenario's quote with REPORT_DATA = SHA-384(JCS(runtime data)) zero-padded to 64."""
    rd = {"tee-pubkey": a.pubkey, "nonce": nonce or a.nonce, "additional-evidence": ""}
    s = F.copy_scenario(scenario)
    s.body["report_data"] = hashlib.sha384(jcs(rd)).digest() + bytes(16)
    if debug:
        s.body["td_attributes"] = bytes.fromhex("0100001000000000")
    return s.write(d, tag)


def attest(a, quote_path):
    import base64
    body = a.attest_body()
    body["tee-evidence"]["primary_evidence"] = {"quote": base64.b64encode(open(quote_path, "rb").read()).decode(),
                                                "cc_eventlog": None}
    return a.attest(body=body)


def main():
    require_kbs()
    t = harness.Tap()
    d = tmpdir("kbs-tdx-")
    pki = Pki()
    base = F.Scenario(F.PKI())
    _, bundle = base.write(d, "base")
    root = os.path.join(d, "root.pem")
    open(root, "wb").write(F.pem(base.pki.root))
    revoked = F.copy_scenario(base)
    revoked.pck_crl_revoked = [F.serial("pck-leaf")]
    _, rbundle = revoked.write(d, "crl-revoked")

    def start_as(bundle_path, name):
        port = free_port()
        cfg = os.path.join(d, name + ".json")
        json.dump({"work_dir": d, "attestation_token_broker": {"signer": {
            "key_path": pki.path("token.key"), "cert_path": pki.path("token-cert-chain.pem")}},
            "verifier_config": {"dcap_verifier": {"collateral_service": "file://" + bundle_path,
                                                  "root_ca_file": root, "verification_time": WHEN}}},
                  open(cfg, "w"))
        return Daemon(name, [os.path.join(BIN, "grpc-as"), "--socket", "127.0.0.1:%d" % port,
                             "--config-file", cfg], port).start(), port

    sgx = F.Scenario(base.pki, tee="sgx")
    _, sgx_bundle = sgx.write(d, "sgx-base")
    both = os.path.join(d, "both.json")
    json.dump([json.load(open(bundle)), json.load(open(sgx_bundle))], open(both, "w"))
    bundle = both
    asd, aport = start_as(bundle, "grpc-as")
    kbs = Kbs(kbs_config(pki, as_addr="http://127.0.0.1:%d" % aport)).start()
    kbs.set_policy(pki, POLICY)
    kbs.set_resource(pki, "default/tdx/key", SECRET)

    a = Attester(kbs, tee="tdx")
    st, _, body = a.auth()
    t.ok(st == 200, "/auth for tee tdx", body)
    qp, _ = quote_for(a, base, d, "good")
    st, _, body = attest(a, qp)
    if t.ok(st == 200, "/attest with a TDX quote bound to the nonce and key: token issued", body):
        claims = json.loads(b64u_dec(a.token.split(".")[1]))
        tdx = claims["submods"]["cpu0"]["ear.veraison.annotated-evidence"]["tdx"]
        t.eq((tdx["tcb_status"], tdx["td_attributes"]["debug"]), ("UpToDate", False),
             "the EAR token carries the TDX claims (tcb_status, td_attributes)")
        st, _, data = a.get("default/tdx/key")
        t.ok(st == 200 and a.decrypt(data) == SECRET, "resource released as a JWE to the TD's key", data[:200])

    g = Attester(kbs, tee="sgx")
    g.auth()
    qp, _ = quote_for(g, sgx, d, "sgx-good")
    st, _, body = attest(g, qp)
    if t.ok(st == 200, "/attest with an SGX quote bound to the nonce and key: token issued", body):
        claims = json.loads(b64u_dec(g.token.split(".")[1]))
        ann = claims["submods"]["cpu0"]["ear.veraison.annotated-evidence"]
        t.eq((ann["sgx"]["tcb_status"], ann["sgx"]["header"]["version"]), ("UpToDate", "0300"),
             "the EAR token carries the SGX claims")

    b = Attester(kbs, tee="tdx")
    b.auth()
    qp, _ = quote_for(b, base, d, "other-nonce", nonce="not-the-challenge")
    st, _, body = attest(b, qp)
    t.ok(st == 401 and b"report_data does not match" in body, "a quote for another nonce is refused", body)

    c = Attester(kbs, tee="tdx")
    c.auth()
    qp, _ = quote_for(c, base, d, "debug", debug=True)
    st, _, body = attest(c, qp)
    t.ok(st == 200, "a debug TD attests (the AS reports it; policy decides)", body)
    st, _, data = c.get("default/tdx/key")
    t.ok(st == 401 and b"PolicyDeny" in data and b"debug" in data,
         "the resource policy denies the debug TD and says which expression failed", data)
    kbs.stop()
    asd.stop()

    asd, aport = start_as(rbundle, "grpc-as-revoked")
    kbs = Kbs(kbs_config(pki, as_addr="http://127.0.0.1:%d" % aport), name="kbs-revoked").start()
    r = Attester(kbs, tee="tdx")
    r.auth()
    qp, _ = quote_for(r, base, d, "revoked")
    st, _, body = attest(r, qp)
    t.ok(st == 401 and b"PCK certificate is revoked" in body, "a quote whose PCK is revoked is refused", body)
    kbs.stop()
    asd.stop()
    t.done()


if __name__ == "__main__":
    main()
