"""NVSwitches and protected PCIe (PPCIe), end to end. First nvtrust's real HGX sample (8 H100s and
4 LS10 switches, one nonce) through `evidence-verify --tee nvidia`: the switches verify locally
(an independent oracle, python-cryptography, agrees on each P-384 transcript signature), the 12
devices form the PPCIe topology, and a missing switch, a changed PDI (the signature refuses it)
or another nonce are refused with a sentence naming the device. Then the same real devices
through a real grpc-as beside a sample CPU: one submod per device (cpu0, gpu0..gpu7,
switch0..switch3) and ppcie0; a GPU listed twice is contraindicated alone, the others keep
their status and ppcie0 names it; 10,000 devices are refused with a sentence and grpc-as keeps
serving. Last, a board forged under a test root (nvswitch_forge.py) and bound to a fresh KBS
nonce through kbs -> grpc-as -> rvps: a resource policy requiring switch0 and ppcie0 to be
affirming releases under a switch policy the switch meets, and refuses when switch 0 reports
itself unlocked or a switch is missing from the board."""
import base64
import hashlib
import json
import os
import subprocess

import grpc

import harness
from harness import BIN, Daemon, Redis, free_port, tmpdir
from kbs_testlib import Attester, Kbs, Pki, b64u, b64u_dec, jcs, kbs_config, require_kbs

import attestation_pb2 as A  # noqa: E402
import nvidia_forge
import nvswitch_forge as F

NONCE = "4760e30534a0621357d458b1a7936551b5dc4cd1e69718adf7ed9fb0252a537e"
SECRET = b"nvlink secret"
RESOURCE_POLICY = """package policy
import rego.v1
default allow := false
allow if {
	input.submods.cpu0
	input.submods.switch0["ear.status"] == "affirming"
	input.submods.ppcie0["ear.status"] == "affirming"
}
"""
SWITCH_POLICY = """package policy
import rego.v1
default hardware := 97
default configuration := 36
default executables := 33
trust_claims := {"hardware": hardware, "configuration": configuration, "executables": executables}
hardware := 2 if input.nvidia.arch == "LS10"
configuration := 2 if {
	input.nvidia.config.lock_switch_status == "0100"
	input.nvidia.config.vbios_version in query_reference_value("allowed_switch_bios_versions")
}
executables := 2 if input.nvidia.measurements["1"] in query_reference_value("switch_bios_measurement")
"""


def ppcie_dir():
    return harness.testdata("evidence", "nvidia", "nvtrust", "ppcie")


def real_devices():
    d = ppcie_dir()
    gpus = json.load(open(os.path.join(d, "gpu_evidence.json")))
    switches = json.load(open(os.path.join(d, "switch_evidence.json")))
    return gpus, switches


def evverify(*args):
    p = subprocess.run([os.path.join(BIN, "evidence-verify"), "--tee", "nvidia"] + list(args),
                       capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout


def outputs(out):
    """The JSON objects and refusal lines evidence-verify printed, in order."""
    dec, objs, i = json.JSONDecoder(), [], 0
    while i < len(out):
        if out[i].isspace():
            i += 1
        elif out.startswith("refused:", i):
            j = out.find("\n", i)
            j = len(out) if j < 0 else j
            objs.append(out[i:j])
            i = j
        else:
            o, i = dec.raw_decode(out, i)
            objs.append(o)
    return objs


def with_evidence_verify(t):
    gpus, switches = real_devices()
    tmp = tmpdir("nv-ppcie-")
    for i, s in enumerate(switches):
        raw = base64.b64decode(s["evidence"])
        pem = base64.b64decode(s["certificate"])
        t.ok(nvidia_forge.oracle_verify(raw, pem),
             "oracle: switch %d's transcript signature verifies with its leaf" % i)
    rc, out = evverify("--evidence", os.path.join(ppcie_dir(), "switch_evidence.json"),
                       "--report-data", NONCE)
    objs = outputs(out) if rc == 0 else []
    t.ok(rc == 0 and len(objs) == 4, "the 4 real LS10 switches verify locally (nvtrust's list)",
         out[-400:])
    if len(objs) == 4:
        t.eq([o["nvidia"]["arch"] for o in objs], ["LS10"] * 4, "each is an LS10")
        t.eq([o["nvidia"]["config"]["switch_pdi"] for o in objs],
             [["666e93e19dec7d2d"], ["3a53b743d811e977"], ["9ae3beba9e673275"],
              ["03dba23b3c11bd8a"]], "each reports its own PDI")
        t.eq(objs[0]["nvidia"]["config"]["vbios_version"], "96.10.73.00.01",
             "the switch BIOS version reads as its text")
        t.eq(len(objs[0]["nvidia"]["config"]["switch_gpu_pdis"]), 8,
             "type 26 names the 8 GPUs the switch links to")

    raw = base64.b64decode(switches[1]["evidence"])
    tpath, cpath = os.path.join(tmp, "sw1.bin"), os.path.join(tmp, "sw1.pem")
    open(tpath, "wb").write(raw)
    open(cpath, "wb").write(base64.b64decode(switches[1]["certificate"]))
    rc, out = evverify("--arch", "LS10", "--evidence", tpath, "--cert-chain", cpath,
                       "--report-data", NONCE)
    t.ok(rc == 0 and '"LS10"' in out, "one raw switch transcript with --arch LS10 verifies", out[-300:])
    rc, out = evverify("--evidence", tpath, "--cert-chain", cpath, "--report-data", NONCE)
    t.ok(rc == 1 and "unknown opaque data type 26" in out,
         "the same transcript read as a GPU's is refused: type 26 is a switch's", out)
    rc, out = evverify("--arch", "LS10", "--evidence", tpath, "--cert-chain", cpath,
                       "--report-data", "00" * 32)
    t.ok(rc == 1 and "nonce mismatch" in out, "a switch for another nonce is refused", out)

    board = os.path.join(tmp, "board.json")
    json.dump(gpus + switches, open(board, "w"))
    rc, out = evverify("--evidence", board, "--report-data", NONCE)
    objs = outputs(out)
    t.ok(rc == 0 and len(objs) == 13, "the 12 real devices verify", out[-300:])
    if len(objs) == 13:
        t.eq(objs[12], {"nvidia": {"gpu_count": 8, "switch_count": 4}},
             "and form the PPCIe topology: the ppcie claim")

    json.dump(gpus + switches[:2] + switches[3:], open(board, "w"))
    rc, out = evverify("--evidence", board, "--report-data", NONCE)
    t.ok(rc == 1 and "refused: PPCIe topology: PPCIe needs 8 GPUs and 4 switches; the "
         "evidence has 8 GPU(s) and 3 switch(es)" in out, "a board with a switch removed: refused",
         out[-300:])

    bad = bytearray(raw)
    at = bytes(bad).find(bytes.fromhex("3a53b743d811e977"))
    bad[at] ^= 1
    changed = dict(switches[1], evidence=base64.b64encode(bytes(bad)).decode())
    json.dump(gpus + [switches[0], changed] + switches[2:], open(board, "w"))
    rc, out = evverify("--evidence", board, "--report-data", NONCE)
    t.ok(not nvidia_forge.oracle_verify(bytes(bad), base64.b64decode(switches[1]["certificate"])),
         "oracle: a switch PDI changed in the transcript breaks its signature")
    t.ok(rc == 1 and "refused: NVIDIA device 9: NVIDIA report signature verification failed" in out
         and "device 9 (a switch) failed its own verification" in out,
         "the changed switch is refused by its signature, and the topology names it", out[-500:])


def switch_fwid(t):
    """A switch whose report does carry a FWID has it bound to its leaf's (forged: real LS10
    reports carry none)."""
    board = F.Board()
    tmp = tmpdir("nv-swfwid-")
    root = os.path.join(tmp, "root.pem")
    open(root, "wb").write(board.root_pem())
    sw = board.switches[0]
    nonce = bytes(range(32))
    for name, fwid, want in (("the leaf's FWID", sw.fwid, None),
                             ("another FWID", hashlib.sha384(b"other").digest(), "Fwid mismatch")):
        path = os.path.join(tmp, "ev.json")
        json.dump([board.entry(sw, board.switch_transcript(sw, nonce, fwid=fwid), "SW-0")],
                  open(path, "w"))
        rc, out = evverify("--evidence", path, "--root-ca", root, "--report-data", nonce.hex())
        if want is None:
            t.ok(rc == 0 and json.loads(out)["nvidia"]["config"]["fwid"] == sw.fwid.hex(),
                 "a switch reporting %s verifies" % name, out[-300:])
        else:
            t.ok(rc == 1 and want in out, "a switch reporting %s is refused" % name, out)


def b64url(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def token_claims(tok):
    return json.loads(b64u_dec(tok.split(".")[1]))


def with_grpc_as(t):
    gpus, switches = real_devices()
    d = tmpdir("as-ppcie-")
    redis = Redis().start()
    storage = {"storage_type": "Redis", "backends": {"redis": {"url": redis.url}}}
    json.dump({"storage_backend": storage}, open(os.path.join(d, "as.json"), "w"))
    aport = free_port()
    gas = Daemon("grpc-as", [os.path.join(BIN, "grpc-as"), "--socket", "127.0.0.1:%d" % aport,
                             "--config-file", os.path.join(d, "as.json")], aport).start()
    try:
        ch = grpc.insecure_channel("127.0.0.1:%d" % aport)
        evaluate = ch.unary_unary("/attestation.AttestationService/AttestationEvaluate",
                                  request_serializer=A.AttestationRequest.SerializeToString,
                                  response_deserializer=A.AttestationResponse.FromString)

        def request(devices, nonce=NONCE):
            sample = {"svn": "1", "report_data": base64.b64encode(b"rd").decode()}
            return A.AttestationRequest(verification_requests=[
                A.IndividualAttestationRequest(tee="sample", evidence=b64url(json.dumps(sample).encode()),
                                               raw_runtime_data=b64url(b"rd")),
                A.IndividualAttestationRequest(
                    tee="nvidia", evidence=b64url(json.dumps({"device_evidence_list": devices}).encode()),
                    raw_runtime_data=b64url(bytes.fromhex(nonce)))], policy_ids=["default"])

        sm = token_claims(evaluate(request(gpus + switches), timeout=60).attestation_token)["submods"]
        want = ["cpu0"] + ["gpu%d" % i for i in range(8)] + ["ppcie0"] + \
               ["switch%d" % i for i in range(4)]
        t.eq(sorted(sm), want, "sample CPU + 8 GPUs + 4 switches: cpu0, gpu0..7, switch0..3, ppcie0")
        t.eq(sm.get("ppcie0", {}).get("ear.veraison.annotated-evidence"),
             {"nvidia": {"gpu_count": 8, "switch_count": 4}}, "ppcie0 carries the ppcie claim")
        t.eq((sm.get("ppcie0", {}).get("ear.status"),
              sm.get("ppcie0", {}).get("ear.trustworthiness-vector", {}).get("configuration")),
             ("affirming", 2), "ppcie0 appraised by default_ppcie: affirming")
        sw = sm.get("switch2", {})
        t.eq((sw.get("ear.veraison.annotated-evidence", {}).get("nvidia", {}).get("arch"),
              sw.get("ear.status")), ("LS10", "warning"),
             "switch2 carries LS10 claims, appraised by default_switch in local mode: genuine "
             "hardware, BIOS version not a reference value here, no switch RIMs: warning")

        dup = gpus[:5] + [gpus[2]] + gpus[6:] + switches
        sm = token_claims(evaluate(request(dup), timeout=60).attestation_token)["submods"]
        t.eq(sorted(sm), want, "a GPU listed twice: still one submod per device")
        err = sm["gpu5"]["ear.veraison.annotated-evidence"]["nvidia"].get("verification_error", "")
        t.ok(sm["gpu5"]["ear.status"] == "contraindicated" and
             "NVIDIA device 5: the same device as device 2" in err,
             "gpu5 alone is contraindicated, with its reason", sm["gpu5"])
        t.ok(all("verification_error" not in sm["gpu%d" % i]["ear.veraison.annotated-evidence"]["nvidia"]
                 for i in (0, 1, 2, 3, 4, 6, 7)),
             "the other GPUs keep their own claims")
        perr = sm["ppcie0"]["ear.veraison.annotated-evidence"]["nvidia"].get("verification_error", "")
        t.ok(sm["ppcie0"]["ear.status"] == "contraindicated" and
             "device 5 (a GPU) failed its own verification" in perr,
             "ppcie0 is contraindicated, naming the device", perr)

        junk = [{"arch": "HOPPER", "evidence": "11", "certificate": ""}] * 10000
        sm = token_claims(evaluate(request(junk), timeout=60).attestation_token)["submods"]
        err = sm.get("gpu0", {}).get("ear.veraison.annotated-evidence", {}).get("nvidia", {})
        t.ok(sorted(sm) == ["cpu0", "gpu0"] and
             "NVIDIA evidence lists 10000 devices, more than 32" in err.get("verification_error", ""),
             "10,000 devices are refused with a sentence (one contraindicated gpu0)", sm.get("gpu0"))
        sm = token_claims(evaluate(request(gpus + switches), timeout=60).attestation_token)["submods"]
        t.ok(sm.get("ppcie0", {}).get("ear.status") == "affirming", "grpc-as keeps serving")
    finally:
        gas.stop()
        redis.stop()


def ocsp_outage(t):
    """An OCSP responder that cannot be reached (fail closed) is an outage, not a verdict on a
    device: grpc-as answers UNAVAILABLE for the whole board (retry), not 12 contraindicated
    submods."""
    board = F.Board()
    d = tmpdir("as-ppcie-ocsp-")
    root = os.path.join(d, "root.pem")
    open(root, "wb").write(board.root_pem())
    redis = Redis().start()
    storage = {"storage_type": "Redis", "backends": {"redis": {"url": redis.url}}}
    json.dump({"storage_backend": storage, "verifier_config": {"nvidia_verifier": {
        "type": "Local", "root_ca_file": root, "ocsp_url": "http://127.0.0.1:%d/" % free_port(),
        "ocsp_timeout_ms": 2000}}}, open(os.path.join(d, "as.json"), "w"))
    aport = free_port()
    gas = Daemon("grpc-as", [os.path.join(BIN, "grpc-as"), "--socket", "127.0.0.1:%d" % aport,
                             "--config-file", os.path.join(d, "as.json")], aport).start()
    try:
        nonce = bytes(range(32))
        ev = board.evidence(nonce)
        evaluate = grpc.insecure_channel("127.0.0.1:%d" % aport).unary_unary(
            "/attestation.AttestationService/AttestationEvaluate",
            request_serializer=A.AttestationRequest.SerializeToString,
            response_deserializer=A.AttestationResponse.FromString)
        req = A.AttestationRequest(verification_requests=[A.IndividualAttestationRequest(
            tee="nvidia", evidence=b64url(json.dumps(ev).encode()),
            raw_runtime_data=b64url(nonce))], policy_ids=["default"])
        try:
            evaluate(req, timeout=60)
            t.ok(False, "an unreachable OCSP responder: grpc-as answers UNAVAILABLE")
        except grpc.RpcError as e:
            t.ok(e.code() == grpc.StatusCode.UNAVAILABLE and "OCSP responder" in e.details(),
                 "an unreachable OCSP responder: grpc-as answers UNAVAILABLE (retry)",
                 (e.code(), e.details()))
    finally:
        gas.stop()
        redis.stop()


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


def device_nonce(a):
    """The report data the KBS gives additional devices, cut to the SPDM nonce's 32 bytes."""
    return hashlib.sha384(jcs({"nonce": a.nonce, "tee-pubkey": a.pubkey})).digest()[:32]


def attest_board(kbs, board, **kw):
    a = Attester(kbs)
    st, _, body = a.auth()
    assert st == 200, (st, body)
    st, _, body = a.attest(additional=json.dumps({"nvidia": board.evidence(device_nonce(a), **kw)}))
    sm = json.loads(b64u_dec(a.token.split(".")[1]))["submods"] if st == 200 else {}
    return a, st, body, sm


def through_kbs(t):
    d = tmpdir("kbs-ppcie-")
    board = F.Board()
    root = os.path.join(d, "root.pem")
    open(root, "wb").write(board.root_pem())
    pki, kbs, procs = start_stack(d, root)
    try:
        kbs.set_policy(pki, RESOURCE_POLICY)
        kbs.set_resource(pki, "default/nvlink/key", SECRET)
        rv = {"allowed_switch_bios_versions": ["96.10.73.00.01"],
              "switch_bios_measurement": [hashlib.sha384(b"switch bios").hexdigest()]}
        msg = json.dumps({"version": "0.1.0", "type": "sample",
                          "payload": base64.b64encode(json.dumps(rv).encode()).decode()})
        st, _, data = kbs.admin("POST", "/kbs/v0/reference-value", msg, pki)
        t.ok(st == 200, "switch reference values registered in the RVPS through the KBS", data)

        a, st, body, sm = attest_board(kbs, board)
        want = ["cpu0"] + ["gpu%d" % i for i in range(8)] + ["ppcie0"] + \
               ["switch%d" % i for i in range(4)]
        t.ok(st == 200 and sorted(sm) == want,
             "/attest with a sample CPU + a forged board of 8 GPUs and 4 switches: cpu0, "
             "gpu0..7, switch0..3, ppcie0", (st, body, sorted(sm)))
        t.eq(sm.get("ppcie0", {}).get("ear.status"), "affirming", "ppcie0 affirming")
        tv = sm.get("switch0", {}).get("ear.trustworthiness-vector", {})
        t.eq((tv.get("hardware"), tv.get("configuration"), tv.get("executables"),
              sm.get("switch0", {}).get("ear.status")), (2, 2, 33, "warning"),
             "switch0 under default_switch: genuine hardware, BIOS a reference value, no switch "
             "RIMs checked: warning")
        st, _, data = a.get("default/nvlink/key")
        t.ok(st == 401 and b"PolicyDeny" in data, "resource refused while switch0 is not affirming", data)

        st, _, data = kbs.admin("POST", "/kbs/v0/attestation-policy",
                                {"policy_id": "default_switch", "policy": b64u(SWITCH_POLICY),
                                 "type": "rego"}, pki)
        t.ok(st == 200, "a switch policy over the local claims set through the KBS", data)
        a, st, body, sm = attest_board(kbs, board)
        t.eq([sm.get("switch%d" % i, {}).get("ear.status") for i in range(4)], ["affirming"] * 4,
             "the 4 switches are affirming under it")
        st, _, data = a.get("default/nvlink/key")
        t.ok(st == 200 and a.decrypt(data) == SECRET, "resource released", data[:200])

        a, st, body, sm = attest_board(kbs, board, lock=b"\x00\x00")
        t.eq((sm.get("switch0", {}).get("ear.status"), sm.get("switch1", {}).get("ear.status")),
             ("warning", "affirming"), "switch 0 reporting itself unlocked: switch0 only warning")
        st, _, data = a.get("default/nvlink/key")
        t.ok(st == 401 and b"PolicyDeny" in data, "resource refused for the unlocked switch", data)

        a, st, body, sm = attest_board(kbs, board, drop_switch=3)
        perr = sm.get("ppcie0", {}).get("ear.veraison.annotated-evidence", {}).get(
            "nvidia", {}).get("verification_error", "")
        t.ok(sm.get("ppcie0", {}).get("ear.status") == "contraindicated" and
             "the evidence has 8 GPU(s) and 3 switch(es)" in perr,
             "a board missing a switch: ppcie0 contraindicated with the reason", perr)
        st, _, data = a.get("default/nvlink/key")
        t.ok(st == 401 and b"PolicyDeny" in data, "resource refused without the PPCIe topology", data)
    finally:
        for p in procs:
            p.stop()


def main():
    require_kbs()
    t = harness.Tap()
    if not os.access(os.path.join(BIN, "evidence-verify"), os.X_OK):
        t.skip("nvidia ppcie", "build/bin/evidence-verify not built")
        t.done()
    t.run(with_evidence_verify)
    t.run(switch_fwid)
    t.run(with_grpc_as)
    t.run(ocsp_outage)
    t.run(through_kbs)
    t.done()


if __name__ == "__main__":
    main()
