"""OCSP for NVIDIA device chains (nvidia_verifier.ocsp_url): a forged GPU's leaf and
intermediate asked of a loopback responder (nvidia_ocsp_server.py) through evidence-verify with
an AS config. Good certificates pass and the claims say so; a revoked leaf, a response signed by
someone else, one without our nonce, a stale one and a responder error refuse the GPU; an
unreachable responder refuses it by default and passes it as "unavailable" only with
ocsp_fail_open. Without ocsp_url nothing is asked and the claims carry no ocsp_status."""
import json
import os
import subprocess

import harness
from harness import BIN, free_port, tmpdir

import nvidia_forge as F
from nvidia_ocsp_server import OcspServer

NONCE = bytes(range(32))


def main():
    t = harness.Tap()
    d = tmpdir("nv-ocsp-")
    dev = F.Device()
    paths = {}
    for name, data in (("t.bin", dev.transcript(NONCE)), ("chain.pem", dev.chain_pem()),
                       ("root.pem", dev.root_pem())):
        paths[name] = os.path.join(d, name)
        open(paths[name], "wb").write(data)

    def run(ocsp_cfg):
        cfg = os.path.join(d, "as.json")
        nv = {"root_ca_file": paths["root.pem"]}
        nv.update(ocsp_cfg)
        json.dump({"verifier_config": {"nvidia_verifier": nv}}, open(cfg, "w"))
        p = subprocess.run([os.path.join(BIN, "evidence-verify"), "--tee", "nvidia", "--evidence",
                            paths["t.bin"], "--cert-chain", paths["chain.pem"], "--config", cfg,
                            "--report-data", NONCE.hex()], capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout + p.stderr

    rc, out = run({})
    t.ok(rc == 0 and "ocsp_status" not in out, "without ocsp_url no OCSP is asked", out)

    srv = OcspServer(dev)
    try:
        rc, out = run({"ocsp_url": srv.url})
        t.ok(rc == 0 and json.loads(out)["nvidia"]["ocsp_status"] == "good" and srv.requests == 2,
             "leaf and intermediate good at the responder: accepted, ocsp_status good", out)
        for mode, want in (("revoked", "is revoked (keyCompromise)"),
                           ("wrong-signer", "not signed by the certificate's issuer"),
                           ("no-nonce", "does not echo our nonce"),
                           ("stale", "is not current"),
                           ("http-500", "OCSP responder")):
            srv.mode = mode
            rc, out = run({"ocsp_url": srv.url})
            t.ok(rc == 1 and want in out, "responder %s: refused (%s)" % (mode, want), out)
        srv.mode = "http-500"
        rc, out = run({"ocsp_url": srv.url, "ocsp_fail_open": True})
        t.ok(rc == 0 and json.loads(out)["nvidia"]["ocsp_status"] == "unavailable",
             "responder error with ocsp_fail_open: passed as unavailable", out)
        srv.mode = "revoked"
        rc, out = run({"ocsp_url": srv.url, "ocsp_fail_open": True})
        t.ok(rc == 1 and "revoked" in out, "fail-open never passes a revoked certificate", out)
    finally:
        srv.stop()

    down = "http://127.0.0.1:%d/ocsp" % free_port()
    rc, out = run({"ocsp_url": down, "ocsp_timeout_ms": 3000})
    t.ok(rc == 1 and "OCSP responder" in out, "unreachable responder: refused by default (closed)", out)
    rc, out = run({"ocsp_url": down, "ocsp_fail_open": True, "ocsp_timeout_ms": 3000})
    t.ok(rc == 0 and json.loads(out)["nvidia"]["ocsp_status"] == "unavailable",
         "unreachable responder with ocsp_fail_open: passed as unavailable", out)
    rc, out = run({"ocsp_url": 5})
    t.ok(rc == 2 and "ocsp_url must be a string" in out, "a malformed ocsp_url stops the tool", out)
    t.done()


if __name__ == "__main__":
    main()
