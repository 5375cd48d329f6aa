"""NVIDIA GPUs as additional evidence, end to end. First `evidence-verify --tee nvidia` on the real
H100 report of the shared testdata, checked against an independent oracle (python-cryptography
verifies the P-384 transcript signature and reads the leaf's FWID) and the chain cases of
MANIFEST.md. Then a sample CPU plus a GPU report bound to a fresh KBS nonce (forged under a test
root by nvidia_forge.py, configured as the AS's NVIDIA root) through a real kbs -> grpc-as -> rvps:
the token carries cpu0 and gpu0, each appraised by its default policy, and a resource policy that
requires gpu0 to be affirming follows the GPU's status: refused under the default GPU policy
(local claims cannot satisfy it), released under a GPU policy whose reference values (registered
in the RVPS through the KBS) the GPU meets, refused again for a GPU with another VBIOS. A GPU report
that fails verification (another nonce, another root) does not refuse the attestation: the token
keeps cpu0 and carries gpu0 contraindicated with the refusal in its annotation, so a resource
policy requiring gpu0 refuses while one requiring only cpu0 releases."""
import base64
import hashlib
import json
import os
import subprocess

import harness
from harness import BIN, Daemon, Redis, free_port, tmpdir
from kbs_testlib import Attester, Kbs, Pki, b64u, b64u_dec, jcs, kbs_config, require_kbs

import nvidia_forge as F

NONCE = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb"
SECRET = b"gpu secret"
RESOURCE_POLICY = """package policy
import rego.v1
default allow := false
allow if {
	input.submods.cpu0
	input.submods.gpu0["ear.status"] == "affirming"
}
"""
CPU_ONLY_POLICY = """package policy
import rego.v1
default allow := false
allow if input.submods.cpu0
"""
GPU_POLICY = """package policy
import rego.v1
default hardware := 97
default configuration := 36
default executables := 33
trust_claims := {"hardware": hardware, "configuration": configuration, "executables": executables}
hardware := 2 if input.nvidia.config.fwid
configuration := 2 if input.nvidia.config.vbios_version in query_reference_value("allowed_vbios_versions")
executables := 2 if input.nvidia.measurements["2"] in query_reference_value("gpu_vbios_measurement")
"""


def evverify(*args):
    p = subprocess.run([os.path.join(BIN, "evidence-verify"), "--tee", "nvidia"] + list(args),
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout


def real_report(t):
    d = harness.testdata("evidence", "nvidia", "trustee")
    rep = os.path.join(d, "hopperAttestationReport.txt")
    chain = os.path.join(d, "hopper_cert_chain_case1.txt")
    raw = bytes.fromhex(open(rep).read().strip())
    pem = open(chain, "rb").read()
    t.ok(F.oracle_verify(raw, pem), "oracle: the H100 transcript signature verifies with the leaf")
    rc, out = evverify("--evidence", rep, "--cert-chain", chain, "--report-data", NONCE)
    if t.ok(rc == 0, "evidence-verify accepts the real H100 report with chain case 1", out):
        nv = json.loads(out)["nvidia"]
        leaf = open(os.path.join(d, "hopper_signing_cert.pem"), "rb").read()
        t.eq(nv["config"]["fwid"], F.oracle_fwid(leaf), "the opaque fwid is the leaf's FWID (oracle)")
        golden = json.load(open(os.path.join(d, "hopperAttestationReport-claims.txt")))
        t.eq(nv["measurements"], golden["measurements"], "measurements equal the golden claims")
    tmp = tmpdir("nv-ev-")
    for at in (45, 2000, len(raw) - 200, len(raw) - 1):
        bad = bytearray(raw)
        bad[at] ^= 0x10
        path = os.path.join(tmp, "flip-%d.bin" % at)
        open(path, "wb").write(bytes(bad))
        rc, out = evverify("--evidence", path, "--cert-chain", chain, "--report-data", NONCE)
        oracle = F.oracle_verify(bytes(bad), pem)
        t.ok(rc == 1 and not oracle and "refused" in out,
             "byte %d flipped: refused, and the oracle agrees the signature fails" % at, out)
    for case, want in ((2, "Certificate chain must have at least the root CA and signing certificates"),
                       (3, "Report certificate chain failed to verify"),
                       (4, "FwId oid not found in the NVIDIA signing certificate")):
        rc, out = evverify("--evidence", rep, "--cert-chain",
                           os.path.join(d, "hopper_cert_chain_case%d.txt" % case), "--report-data", NONCE)
        t.ok(rc == 1 and want in out, "chain case %d refused: %s" % (case, want), out)
    rc, out = evverify("--evidence", rep, "--cert-chain", chain, "--report-data", "00" * 32)
    t.ok(rc == 1 and "nonce mismatch" in out, "another nonce is refused", out)
    rc, out = evverify("--evidence", rep, "--cert-chain", chain)
    t.ok(rc == 1 and "report data not provided" in out, "no report data is refused", out)


def start_stack(d, root_path):
    redis = Redis().start()
    storage = {"storage_type": "Redis", "backends": {"redis": {"url": redis.url}}}
    rport, aport = free_port(), free_port()
    json.dump({"storage": storage}, open(os.path.join(d, "rvps.json"), "w"))
    rvps = Daemon("rvps", [os.path.join(BIN, "rvps"), "--config", os.path.join(d, "rvps.json"),
                           "--address", "127.0.0.1:%d" % rport], rport).start()
    pki = Pki()
    json.dump({"storage_backend": storage,
               "rvps_config": {"type": "GrpcRemote", "address": "127.0.0.1:%d" % rport},
               "attestation_token_broker": {"signer": {
                   "key_path": pki.path("token.key"), "cert_path": pki.path("token-cert-chain.pem")}},
               "verifier_config": {"nvidia_verifier": {"type": "Local", "root_ca_file": root_path}}},
              open(os.path.join(d, "as.json"), "w"))
    gas = Daemon("grpc-as", [os.path.join(BIN, "grpc-as"), "--socket", "127.0.0.1:%d" % aport,
                             "--config-file", os.path.join(d, "as.json")], aport).start()
    kbs = Kbs(kbs_config(pki, as_addr="http://127.0.0.1:%d" % aport)).start()
    return pki, kbs, [kbs, gas, rvps, redis]


def gpu_nonce(a):
    """The report data the KBS gives additional devices: SHA-384(JCS({nonce, tee-pubkey})), cut
    to the SPDM nonce's 32 bytes."""
    return hashlib.sha384(jcs({"nonce": a.nonce, "tee-pubkey": a.pubkey})).digest()[:32]


def attest_with_gpu(kbs, dev, **kw):
    a = Attester(kbs)
    st, _, body = a.auth()
    assert st == 200, (st, body)
    extra = json.dumps({"nvidia": dev.evidence(gpu_nonce(a), **kw)})
    st, _, body = a.attest(additional=extra)
    return a, st, body


def submods(a):
    return json.loads(b64u_dec(a.token.split(".")[1]))["submods"]


def failed_gpu(t, a, st, body, why, what):
    """/attest answered with a token whose gpu0 is contraindicated for `why` and whose cpu0 was
    appraised as usual; the gpu0-requiring resource policy refuses it."""
    if not t.ok(st == 200, "%s: /attest still yields a token" % what, body):
        a.token = None
        return
    sm = submods(a)
    t.eq(sorted(sm), ["cpu0", "gpu0"], "%s: the token keeps cpu0 and gpu0" % what)
    gpu = sm["gpu0"]
    err = gpu["ear.veraison.annotated-evidence"].get("nvidia", {}).get("verification_error", "")
    t.ok(gpu["ear.status"] == "contraindicated" and why in err and
         gpu["ear.trustworthiness-vector"].get("hardware") == 97,
         "%s: gpu0 contraindicated, annotated with the refusal" % what, gpu)
    t.ok("sample" in sm["cpu0"]["ear.veraison.annotated-evidence"],
         "%s: cpu0 appraised on its own evidence" % what, sm["cpu0"])
    st, _, data = a.get("default/gpu/key")
    t.ok(st == 401 and b"PolicyDeny" in data, "%s: a policy requiring gpu0 refuses" % what, data)


def through_kbs(t):
    d = tmpdir("kbs-nvidia-")
    dev = F.Device()
    root = os.path.join(d, "nvidia-root.pem")
    open(root, "wb").write(dev.root_pem())
    pki, kbs, procs = start_stack(d, root)
    try:
        kbs.set_policy(pki, RESOURCE_POLICY)
        kbs.set_resource(pki, "default/gpu/key", SECRET)

        a, st, body = attest_with_gpu(kbs, dev)
        if t.ok(st == 200, "/attest with sample CPU + an H100 report bound to the nonce", body):
            sm = submods(a)
            t.eq(sorted(sm), ["cpu0", "gpu0"], "the token has one submod per device: cpu0, gpu0")
            gpu = sm["gpu0"]
            ann = gpu["ear.veraison.annotated-evidence"]
            t.eq((ann["nvidia"]["arch"], ann["nvidia"]["uuid"], ann["nvidia"]["config"]["fwid"]),
                 ("Hopper", "GPU-test-0", dev.fwid.hex()), "gpu0 carries the GPU's local claims")
            tv = gpu["ear.trustworthiness-vector"]
            t.eq((tv["hardware"], tv["executables"], tv["configuration"], gpu["ear.status"]),
                 (2, 33, 36, "warning"),
                 "gpu0 appraised by default_gpu in local mode: genuine hardware, versions not "
                 "reference values, no RIMs checked: warning")
            t.ok("ear.trustworthiness-vector" in sm["cpu0"] and
                 "sample" in sm["cpu0"]["ear.veraison.annotated-evidence"],
                 "cpu0 appraised by default_cpu on the sample evidence", sm["cpu0"])
            st, _, data = a.get("default/gpu/key")
            t.ok(st == 401 and b"PolicyDeny" in data, "resource refused while gpu0 is not affirming", data)

        b = Attester(kbs)
        b.auth()
        wrong = json.dumps({"nvidia": dev.evidence(bytes(32))})
        st, _, body = b.attest(additional=wrong)
        failed_gpu(t, b, st, body, "nonce mismatch", "a GPU report for another nonce")
        other = F.Device()
        c = Attester(kbs)
        c.auth()
        st, _, body = c.attest(additional=json.dumps({"nvidia": other.evidence(gpu_nonce(c))}))
        failed_gpu(t, c, st, body, "Root CA in the certificate chain is not trusted",
                   "a GPU chained to another root")

        rv = {"allowed_vbios_versions": ["96.00.9f.00.01"],
              "gpu_vbios_measurement": [hashlib.sha384(b"vbios").hexdigest()]}
        msg = json.dumps({"version": "0.1.0", "type": "sample",
                          "payload": base64.b64encode(json.dumps(rv).encode()).decode()})
        st, _, data = kbs.admin("POST", "/kbs/v0/reference-value", msg, pki)
        t.ok(st == 200, "reference values for the GPU registered in the RVPS through the KBS", data)
        st, _, data = kbs.admin("POST", "/kbs/v0/attestation-policy",
                                {"policy_id": "default_gpu", "policy": b64u(GPU_POLICY),
                                 "type": "rego"}, pki)
        t.ok(st == 200, "a GPU policy over the local claims set through the KBS", data)

        a, st, body = attest_with_gpu(kbs, dev)
        if t.ok(st == 200, "/attest again under the new GPU policy", body):
            gpu = submods(a)["gpu0"]
            t.eq(gpu["ear.status"], "affirming", "gpu0 is affirming: its VBIOS and measurement are reference values")
            st, _, data = a.get("default/gpu/key")
            t.ok(st == 200 and a.decrypt(data) == SECRET, "resource released to the guest's key", data[:200])

        a, st, body = attest_with_gpu(kbs, dev, vbios=b"\x00\xa0\x00\x96\x01\x00\x00\x00")
        if t.ok(st == 200, "/attest with a GPU running another VBIOS", body):
            gpu = submods(a)["gpu0"]
            t.eq((gpu["ear.trustworthiness-vector"]["configuration"], gpu["ear.status"]),
                 (36, "warning"), "gpu0 is only warning: its VBIOS is not a reference value")
            st, _, data = a.get("default/gpu/key")
            t.ok(st == 401 and b"PolicyDeny" in data, "resource refused for that GPU", data)

        kbs.set_policy(pki, CPU_ONLY_POLICY)
        for who, name in ((b, "another nonce"), (c, "another root")):
            if who.token is None:
                continue
            st, _, data = who.get("default/gpu/key")
            t.ok(st == 200 and who.decrypt(data) == SECRET,
                 "a resource policy requiring only cpu0 releases despite the GPU of %s" % name,
                 data[:200])
    finally:
        for p in procs:
            p.stop()


def main():
    require_kbs()
    t = harness.Tap()
    if not os.access(os.path.join(BIN, "evidence-verify"), os.X_OK):
        t.skip("nvidia", "build/bin/evidence-verify not built")
        t.done()
    t.run(real_report)
    t.run(through_kbs)
    t.done()


if __name__ == "__main__":
    main()
