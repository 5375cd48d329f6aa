"""The nvidia verifier's remote mode (nvidia_verifier.type = "Remote", as-rvps.md 5.13) against a
loopback NRAS stand-in (nras_server.py: NVIDIA's v3 request and detached-EAT answer, ES384 tokens
under a test key served as a JWK set; it verifies no evidence, only reads the SPDM request's
nonce). First through evidence-verify with an AS config: the request NRAS gets (endpoint, arch,
base64 evidence, claims version), Hopper, Blackwell and an LS10 switch accepted with NRAS's
claims, and each way an answer can be wrong refused with its sentence: a bad signature, an
unknown kid, HS256 and none, an expired token, another eat_nonce, a device token the overall
token does not digest, nonce-match false, overall result false, NRAS 5xx/429/timeout, an
oversize answer and malformed shapes; the PPCIe claim for 8 GPUs + 4 switches and not for 7;
the same GPU twice; Blackwell refused in local mode. Then a sample CPU + GPU through a real
kbs -> grpc-as -> rvps with the AS in remote mode: gpu0 affirming under default_gpu and the
resource released; NRAS answering 503 or too slowly is UNAVAILABLE at grpc-as and 503 at the
kbs (retry), while a nonce NRAS says does not match refuses only gpu0."""
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
import nvidia_forge as F
from nras_server import Nras

NONCE = bytes(range(32))
SECRET = b"gpu secret via nras"
RESOURCE_POLICY = """package policy
import rego.v1
default allow := false
allow if {
	input.submods.cpu0
	input.submods.gpu0["ear.status"] == "affirming"
}
"""


def docs(text):
    """The JSON documents evidence-verify printed, one per device."""
    out, i, dec = [], 0, json.JSONDecoder()
    text = text.strip()
    while i < len(text):
        obj, i = dec.raw_decode(text, i)
        out.append(obj["nvidia"])
        while i < len(text) and text[i] in " \r\n":
            i += 1
    return out


class Runner:
    def __init__(self, d, srv):
        self.d, self.srv, self.n = d, srv, 0

    def config(self, **nv):
        cfg = {"type": "Remote", "verifier_url": self.srv.url, "jwks_url": self.srv.jwks_url}
        cfg.update(nv)
        path = os.path.join(self.d, "as.json")
        json.dump({"verifier_config": {"nvidia_verifier": cfg}}, open(path, "w"))
        return path

    def run(self, devices, nonce=NONCE, **nv):
        self.n += 1
        ev = os.path.join(self.d, "ev%d.json" % self.n)
        json.dump({"device_evidence_list": devices}, open(ev, "w"))
        p = subprocess.run([os.path.join(BIN, "evidence-verify"), "--tee", "nvidia", "--evidence",
                            ev, "--config", self.config(**nv), "--report-data", nonce.hex()],
                           capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout + p.stderr


def device(dev, nonce=NONCE, arch="Hopper", hexed=False, cert=None):
    t = dev.transcript(nonce)
    return {"arch": arch, "uuid": "GPU-nras-0",
            "evidence": t.hex() if hexed else base64.b64encode(t).decode(),
            "certificate": cert or base64.b64encode(dev.chain_pem()).decode()}


def requests_and_claims(t, run, srv, dev):
    rc, out = run.run([device(dev)])
    if t.ok(rc == 0, "remote mode: a Hopper GPU appraised by NRAS is accepted", out):
        c = docs(out)[0]
        t.ok(c["x-nvidia-overall-att-result"] is True and
             c["x-nvidia-gpu-attestation-report-nonce-match"] is True and c["measres"] == "success",
             "claims = NRAS's device EAT plus x-nvidia-overall-att-result", c)
    path, req, ctype = srv.requests[-1]
    t.eq((path, ctype, sorted(req), req["arch"], req["claims_version"], req["nonce"]),
         ("/v3/attest/gpu", "application/json", ["arch", "claims_version", "evidence_list", "nonce"],
          "HOPPER", "3.0", NONCE.hex()),
         "POST <verifier_url>/gpu with nonce, arch HOPPER, evidence_list and claims_version 3.0")
    ev = req["evidence_list"][0]
    t.ok(base64.b64decode(ev["evidence"]) == dev.transcript(NONCE)[:37] + base64.b64decode(ev["evidence"])[37:]
         and ev["certificate"] == base64.b64encode(dev.chain_pem()).decode(),
         "the evidence goes as base64, the certificate as the device sent it", ev)
    rc, out = run.run([device(dev, hexed=True)])
    sent = srv.requests[-1][1]["evidence_list"][0]["evidence"]
    t.ok(rc == 0 and base64.b64decode(sent)[:36] == dev.transcript(NONCE)[:36],
         "a hex transcript is re-encoded as base64 for NRAS", out)
    rc, out = run.run([device(dev, arch="Blackwell")])
    t.ok(rc == 0 and srv.requests[-1][0] == "/v3/attest/gpu" and srv.requests[-1][1]["arch"] == "BLACKWELL",
         "a Blackwell GPU is carried to NRAS as BLACKWELL and accepted", out)
    rc, out = run.run([device(dev, arch="LS10")])
    ok = rc == 0 and srv.requests[-1][0] == "/v3/attest/switch"
    t.ok(ok and docs(out)[0]["x-nvidia-switch-attestation-report-nonce-match"] is True,
         "an LS10 switch goes to <verifier_url>/switch and is accepted with switch claims", out)


REFUSALS = (
    ("bad-signature", "the NRAS device token: JWT signature does not verify"),
    ("unknown-kid", "signed by kid rotated-key-2, which NRAS's JWK set lacks"),
    ("hs256", "is signed with \"HS256\"; NRAS signs ES384 only"),
    ("none", "is signed with \"none\"; NRAS signs ES384 only"),
    ("expired", "the NRAS device token expired"),
    ("other-eat-nonce", "eat_nonce is not the nonce we sent"),
    ("digest-mismatch", "is not the one the overall token digests"),
    ("nonce-false", "NRAS found the report's nonce is not ours (x-nvidia-gpu-attestation-report-nonce-match is false)"),
    ("overall-false", "NRAS's overall attestation result is false"),
    ("http-500", "answered HTTP 500"),
    ("http-503", "answered HTTP 503"),
    ("http-429", "answered HTTP 429"),
    ("oversize", "the answer is larger than 262144 bytes"),
    ("not-json", "the NRAS answer is not a JSON array of two elements"),
    ("shape-object", "the NRAS answer is not a JSON array of two elements"),
    ("shape-three", "the NRAS answer is not a JSON array of two elements"),
    ("shape-two-eats", "carries 2 device tokens where one device was sent"),
    ("shape-jwt-number", "does not open with [\"JWT\", <overall token>]"),
)


def refusals(t, run, srv, dev):
    for mode, want in REFUSALS:
        srv.mode = mode
        rc, out = run.run([device(dev)])
        t.ok(rc == 1 and want in out and "NVIDIA device 0" in out,
             "NRAS answer %s: refused (%s)" % (mode, want), out)
    srv.mode, srv.slow_s = "slow", 4
    rc, out = run.run([device(dev)], nras_timeout_ms=1500)
    t.ok(rc == 1 and "NRAS" in out and "imeout" in out, "NRAS slower than the timeout: refused, timed out", out)
    srv.mode = ""
    rc, out = run.run([device(dev, nonce=bytes(32))])
    t.ok(rc == 1 and "nonce-match is false" in out,
         "a report for another nonce: NRAS says nonce-match false, refused", out)
    rc, out = run.run([device(dev), device(dev)])
    t.ok(rc == 1 and "NVIDIA device 1: the same device as device 0 (same ueid)" in out,
         "the same GPU listed twice is refused", out)
    t.ok(out.count('"x-nvidia-overall-att-result": true') == 1,
         "the copy is refused on its own: device 0 keeps its NRAS claims", out)
    rc, out = run.run([dict(device(dev), arch="Ampere")])
    t.ok(rc == 1 and "unknown device architecture Ampere" in out, "an unknown arch is refused", out)


def ppcie(t, run, srv):
    gpdi = ["%016x" % (0x1000 + i) for i in range(8)]
    spdi = ["%016x" % (0x2000 + j) for j in range(4)]

    def extra(endpoint, ev):
        i = ev[37]
        if endpoint == "gpu":
            return {"x-nvidia-gpu-switch-pdis": spdi + ["0000000000000000"] * 2}
        return {"x-nvidia-switch-pdi": spdi[i - 8], "x-nvidia-switch-gpu-pdis": gpdi}

    def dev(i, arch):
        ev = bytes([0x11, 0xE0, 0x01, 0xFF]) + NONCE + b"\x00" + bytes([i])
        return {"arch": arch, "evidence": base64.b64encode(ev).decode(),
                "certificate": base64.b64encode(b"device certificate %d" % i).decode()}

    srv.extra = extra
    try:
        devices = [dev(i, "HOPPER") for i in range(8)] + [dev(8 + j, "LS10") for j in range(4)]
        rc, out = run.run(devices)
        if t.ok(rc == 0, "8 GPUs + 4 switches through NRAS accepted", out):
            c = docs(out)
            t.eq((len(c), c[-1]), (13, {"switch_count": 4, "gpu_count": 8}),
                 "a 13th claims object: ppcie {switch_count 4, gpu_count 8}")
        rc, out = run.run(devices[1:])
        t.ok(rc == 0 and len(docs(out)) == 11 and "switch_count" not in out,
             "7 GPUs + 4 switches: accepted, no ppcie claim", out)
    finally:
        srv.extra = None


def local_blackwell(t, d, dev):
    path = os.path.join(d, "local.json")
    json.dump({"device_evidence_list": [device(dev, arch="Blackwell")]}, open(path, "w"))
    p = subprocess.run([os.path.join(BIN, "evidence-verify"), "--tee", "nvidia", "--evidence", path,
                        "--report-data", NONCE.hex()], capture_output=True, text=True, timeout=60)
    t.ok(p.returncode == 1 and "Blackwell cannot be verified locally" in p.stdout,
         "local mode refuses a Blackwell GPU with a sentence (local is Hopper only)", p.stdout)


def evidence_verify(t):
    d = tmpdir("nras-")
    srv = Nras(free_port())
    run = Runner(d, srv)
    dev = F.Device()
    try:
        requests_and_claims(t, run, srv, dev)
        refusals(t, run, srv, dev)
        ppcie(t, run, srv)
        local_blackwell(t, d, dev)
    finally:
        srv.stop()


# ---- through kbs -> grpc-as -> rvps -------------------------------------------------------

def gpu_nonce(a):
    return hashlib.sha384(jcs({"nonce": a.nonce, "tee-pubkey": a.pubkey})).digest()[:32]


def start_stack(d, srv, timeout_ms):
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
               "verifier_config": {"nvidia_verifier": {
                   "type": "Remote", "verifier_url": srv.url, "jwks_url": srv.jwks_url,
                   "nras_timeout_ms": timeout_ms}}},
              open(os.path.join(d, "as.json"), "w"))
    gas = Daemon("grpc-as", [os.path.join(BIN, "grpc-as"), "--socket", "127.0.0.1:%d" % aport,
                             "--config-file", os.path.join(d, "as.json")], aport).start()
    kbs = Kbs(kbs_config(pki, as_addr="http://127.0.0.1:%d" % aport)).start()
    return pki, kbs, aport, [kbs, gas, rvps, redis]


def grpc_evaluate(aport, dev):
    ch = grpc.insecure_channel("127.0.0.1:%d" % aport)
    ev = {"device_evidence_list": [device(dev)]}
    call = ch.unary_unary("/attestation.AttestationService/AttestationEvaluate",
                          request_serializer=A.AttestationRequest.SerializeToString,
                          response_deserializer=A.AttestationResponse.FromString)
    req = A.AttestationRequest(verification_requests=[A.IndividualAttestationRequest(
        tee="nvidia", evidence=b64u(json.dumps(ev).encode()), raw_runtime_data=b64u(NONCE))],
        policy_ids=["default"])
    try:
        call(req, timeout=30)
        return None
    except grpc.RpcError as e:
        return e
    finally:
        ch.close()


def through_kbs(t):
    d = tmpdir("kbs-nras-")
    srv = Nras(free_port())
    dev = F.Device()
    pki, kbs, aport, procs = start_stack(d, srv, 3000)
    try:
        kbs.set_policy(pki, RESOURCE_POLICY)
        kbs.set_resource(pki, "default/gpu/key", SECRET)

        def attest():
            a = Attester(kbs)
            st, _, body = a.auth()
            assert st == 200, (st, body)
            ev = {"device_evidence_list": [device(dev, nonce=gpu_nonce(a))]}
            st, h, body = a.attest(additional=json.dumps({"nvidia": ev}))
            return a, st, h, body

        a, st, _, body = attest()
        if t.ok(st == 200, "/attest with sample CPU + a GPU appraised by NRAS", body):
            sm = json.loads(b64u_dec(a.token.split(".")[1]))["submods"]
            t.eq(sorted(sm), ["cpu0", "gpu0"], "the token carries cpu0 and gpu0")
            gpu = sm["gpu0"]
            tv = gpu["ear.trustworthiness-vector"]
            t.eq((tv["hardware"], tv["configuration"], tv["executables"], gpu["ear.status"]),
                 (2, 3, 3, "affirming"), "gpu0 affirming under default_gpu on NRAS's claims")
            st, _, data = a.get("default/gpu/key")
            t.ok(st == 200 and a.decrypt(data) == SECRET, "the resource is released", data[:200])

        srv.mode = "nonce-false"
        a, st, _, body = attest()
        if t.ok(st == 200, "NRAS says nonce-match false: /attest still yields a token", body):
            gpu = json.loads(b64u_dec(a.token.split(".")[1]))["submods"]["gpu0"]
            why = gpu["ear.veraison.annotated-evidence"]["nvidia"]["verification_error"]
            t.ok(gpu["ear.status"] == "contraindicated" and "nonce-match is false" in why,
                 "gpu0 contraindicated with NRAS's nonce refusal", gpu)
            st, _, data = a.get("default/gpu/key")
            t.ok(st == 401, "the resource is refused", data)

        for mode, what in (("http-503", "NRAS answering 503"), ("http-429", "NRAS answering 429"),
                           ("slow", "NRAS slower than nras_timeout_ms")):
            srv.mode, srv.slow_s = mode, 5
            e = grpc_evaluate(aport, dev)
            t.ok(e is not None and e.code() == grpc.StatusCode.UNAVAILABLE and "NRAS" in e.details(),
                 "%s: grpc-as answers UNAVAILABLE naming NRAS" % what, e and (e.code(), e.details()))
            a, st, h, body = attest()
            t.ok(st == 503 and h.get("retry-after") and b"NRAS" in body,
                 "%s: the kbs answers 503 with Retry-After (retry, not refused)" % what, (st, body))
        srv.mode = ""
        a, st, _, body = attest()
        t.ok(st == 200, "NRAS back: the same stack attests again", body)
        t.eq(srv.jwks_gets, 1, "grpc-as fetched NRAS's JWK set once for all its appraisals")
    finally:
        srv.stop()
        for p in procs:
            p.stop()


def main():
    require_kbs()
    t = harness.Tap()
    if not os.access(os.path.join(BIN, "evidence-verify"), os.X_OK):
        t.skip("nvidia nras", "build/bin/evidence-verify not built")
        t.done()
    t.run(evidence_verify)
    t.run(through_kbs)
    t.done()


if __name__ == "__main__":
    main()
