#!/usr/bin/python3
"""An empty nonce binds nothing (issue 14, W7): `/auth` as `se` takes its challenge from the
AS's verifier. Our grpc-as now defines one (as/verifiers/se.c), so the AS here is the stand-in
answering "" like an AS without an SE verifier; /auth passes that on as Trustee does, but the kbs
refuses the /attest that echoes "" with a sentence, before the evidence reaches the AS, and keeps
serving real handshakes."""
import json

from harness import Tap
from kbs_testlib import ERR, Attester, FakeAs, Kbs, Pki, kbs_config, require_kbs


def main():
    require_kbs()
    t = Tap()
    pki = Pki()
    asvc = FakeAs(pki)
    asvc.challenge = ""
    kbs = Kbs(kbs_config(pki, as_addr=asvc.addr), name="kbs-empty-nonce").start()

    a = Attester(kbs, tee="se")
    st, _, data = a.auth(extra={"supported-hash-algorithms": ["SHA512"]})
    t.ok(st == 200 and json.loads(data)["nonce"] == "",
         "auth as se: the AS defines no challenge, the nonce is empty", data)
    st, _, data = a.attest()
    body = json.loads(data) if data else {}
    t.ok(st == 401 and body.get("type") == ERR + "AttestationError" and
         "the challenge nonce is empty" in body.get("detail", ""),
         "attest with the empty nonce is refused by the kbs", body)

    b = Attester(kbs)
    b.auth()
    st, _, data = b.attest()
    t.eq(st, 200, "a sample handshake with a real nonce still attests")
    t.ok(kbs.alive(), "the kbs still serving")
    kbs.stop()
    asvc.stop()
    t.done()


if __name__ == "__main__":
    main()
