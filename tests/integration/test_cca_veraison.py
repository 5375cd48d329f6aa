"""The cca verifier's remote mode against a stand-in Veraison verifier (veraison_server.py,
whose header says what it does not check): Trustee's example token goes through discovery,
a challenge-response session with the realm challenge as nonce, and comes back as claims
equal to the local mode's; an EAR with another nonce, under another key, without an affirmed
realm identity, without the realm submod or describing another realm image is refused with
its reason, as is a session the verifier places at another address; a token for other
report data is refused before the verifier is asked; a verifier that is down is named."""
import json
import os
import subprocess

import harness
from harness import BIN, free_port, tmpdir
from veraison_server import Veraison

CHALLENGE = ("57e979ae2618de0c1ab73144c440d741cf9236dc9d52ed190053382a4d190252"
             "f9f0370403c35dcb155fb4362d73c66d5b0494bf939315d3dc52b8cdc8b85a96")


def main():
    t = harness.Tap()
    d = tmpdir("cca-veraison-")
    td = harness.testdata("evidence", "cca", "trustee")
    token = os.path.join(td, "cca-example-token.cbor")
    port = free_port()
    v = Veraison(port)

    def run(address, rd=CHALLENGE, local=False):
        cfg = os.path.join(d, "cca.json")
        c = ({"type": "local", "ta-store": os.path.join(td, "tastore.json"),
              "rv-store": os.path.join(td, "rvstore.json")} if local
             else {"type": "remote", "address": address})
        json.dump({"cca-verifier": c}, open(cfg, "w"))
        p = subprocess.run([os.path.join(BIN, "evidence-verify"), "--tee", "cca", "--evidence",
                            token, "--report-data", rd], capture_output=True, text=True,
                           env=dict(os.environ, CCA_CONFIG_FILE=cfg), timeout=60)
        return p.returncode, p.stdout

    addr = "http://127.0.0.1:%d" % port
    rc, out = run(addr)
    t.ok(rc == 0, "example token verified through the stand-in Veraison", out)
    rc_l, out_l = run(addr, local=True)
    t.ok(rc == 0 and rc_l == 0 and json.loads(out) == json.loads(out_l),
         "remote claims equal the local mode's", (out, out_l))
    t.ok(("DELETE", "/challenge-response/v1/session/1") in v.requests, "the session is deleted")

    v.mode = "processing"
    rc, out = run(addr)
    t.ok(rc == 0, "a session still processing is polled until complete", out)

    for mode, reason in [
            ("wrong-nonce", "eat_nonce is not the nonce sent"),
            ("other-key", "Veraison EAR: JWT signature does not verify"),
            ("realm-not-affirmed", "the realm's instance identity is not affirmed (96)"),
            ("drop-realm", "lacks the CCA_REALM or CCA_SSD_PLATFORM submod"),
            ("other-rim", "CCA_REALM cca-realm-initial-measurement is not the token's"),
            ("elsewhere", "the session is at another address")]:
        v.mode = mode
        rc, out = run(addr)
        t.ok(rc == 1 and reason in out, "refused: stand-in in mode " + mode, out)

    v.mode, n = "", len(v.requests)
    rc, out = run(addr, rd="00" * 64)
    t.ok(rc == 1 and "challenge does not match" in out and len(v.requests) == n,
         "other report data is refused before the verifier is asked", out)

    v.stop()
    rc, out = run(addr)
    t.ok(rc == 1 and "Veraison discovery" in out, "a verifier that is down is named", out)
    t.done()


if __name__ == "__main__":
    main()
