#!/usr/bin/python3
"""A cookie session keeps the claims the kbs verified at /attest (issue 13): its resource reads
use them instead of verifying the token again, and still see what must be seen on every read:
the token's exp (plus the 60 s leeway) and its chain's notAfter, past which the session is
refused as its token is, the resource policy of the moment, the session's own tee-pubkey. A token the kbs cannot verify is still handed out by /attest, as Trustee does, and
refused at the read with the verifier's sentence; a Bearer token is verified as before."""
import json
import time

from harness import Tap
from kbs_testlib import (ALLOW_ALL, ERR, Attester, FakeAs, Kbs, Pki, _cert, ec_jwk, kbs_config,
                         require_kbs)

SECRET = b"claims kept"
DENY_ALL = "package policy\nimport rego.v1\ndefault allow := false\n"


def problem(data):
    try:
        return json.loads(data)
    except ValueError:
        return {}


def main():
    require_kbs()
    t = Tap()
    pki = Pki()
    asvc = FakeAs(pki)
    kbs = Kbs(kbs_config(pki, as_addr=asvc.addr), name="kbs-session-claims").start()
    kbs.set_policy(pki, ALLOW_ALL)
    kbs.set_resource(pki, "default/claims/key", SECRET)

    a, b = Attester(kbs), Attester(kbs)
    a.rcar()
    b.rcar()
    for who, att in (("first", a), ("second", b)):
        st, _, data = att.get("default/claims/key")
        t.ok(st == 200 and att.decrypt(data) == SECRET,
             "%s session: the read is sealed to its own tee-pubkey" % who, data[:200])
    st, _, data = a.get("default/claims/key")
    t.ok(st == 200 and a.decrypt(data) == SECRET, "a second read on the same session", data[:200])

    # the policy of the moment, not of /attest
    kbs.set_policy(pki, DENY_ALL)
    st, _, data = a.get("default/claims/key")
    t.ok(st == 401 and problem(data).get("type") == ERR + "PolicyDeny",
         "a new policy that denies is seen by the session's next read", data)
    kbs.set_policy(pki, ALLOW_ALL)
    st, _, data = a.get("default/claims/key")
    t.eq(st, 200, "and the policy that allows again")

    # the token's exp, on every read: tokens that expired 57 s ago are good for 3 s more
    asvc.token_exp_in = -57
    c, late = Attester(kbs), Attester(kbs)
    c.rcar()
    late.rcar()
    st, _, data = c.get("default/claims/key")
    t.ok(st == 200 and c.decrypt(data) == SECRET, "a token inside its leeway: read", data[:200])
    time.sleep(4)
    # the claims /attest verified wait for the first read (server.c), but not past their exp
    st, _, data = late.get("default/claims/key")
    d = problem(data)
    t.ok(st == 401 and d.get("type") == ERR + "TokenVerifierError" and
         "expired" in d.get("detail", ""),
         "a first read past exp plus the leeway is refused as expired", data)
    st, _, data = c.get("default/claims/key")
    d = problem(data)
    t.ok(st == 401 and d.get("type") == ERR + "TokenVerifierError" and
         "expired" in d.get("detail", ""),
         "once past exp plus the leeway the same session's read is refused as expired", data)
    # the session keeps the claims, not the token: its answer is the full check's of the token
    st2, _, data2 = c.get("default/claims/key", cookie=False, bearer=c.token)
    t.ok((st, d) == (st2, problem(data2)) and "token expired" in d.get("detail", ""),
         "that refusal is the token's own, sent as a Bearer token", (data, data2))
    asvc.token_exp_in = 300

    # a signer certificate that expires before the token: past its notAfter the session is
    # refused with the chain's sentence, as its token is; and beside it a kbs that also has
    # the AS's key in trusted_jwk_sets, whose full check then takes the token by that key:
    # its session reads on as the token does (the session keeps the token, not claims that
    # would lapse at the notAfter)
    jw = pki.path("jwks-as.json")
    with open(jw, "w") as fh:
        json.dump({"keys": [dict(ec_jwk(pki.token_key.public_key()), kid="as")]}, fh)
    kbs_j = Kbs(kbs_config(pki, as_addr=asvc.addr,
                           extra_token={"trusted_jwk_sets": ["file://" + jw]}),
                name="kbs-session-claims-jwks").start()
    kbs_j.set_policy(pki, ALLOW_ALL)
    kbs_j.set_resource(pki, "default/claims/key", SECRET)
    good_leaf = pki.leaf
    pki.leaf = _cert("Test Token Signer", "Test Intermediate", pki.token_key.public_key(),
                     pki.int_key, False, days=4 / 86400)
    not_after = time.time() + 4
    f, fj = Attester(kbs), Attester(kbs_j)
    f.rcar()
    fj.rcar()
    st, _, data = f.get("default/claims/key")
    t.ok(st == 200 and f.decrypt(data) == SECRET, "a chain before its notAfter: read", data[:200])
    time.sleep(max(0, not_after - time.time()) + 2)
    st, _, data = fj.get("default/claims/key")
    st2, _, data2 = fj.get("default/claims/key", cookie=False, bearer=fj.token)
    t.ok(st == 200 and fj.decrypt(data) == SECRET and st2 == 200,
         "with the AS's key in trusted_jwk_sets, past the chain's notAfter the session reads "
         "as its token does", (data[:200], data2[:200]))
    kbs_j.stop()
    st, _, data = f.get("default/claims/key")
    st2, _, data2 = f.get("default/claims/key", cookie=False, bearer=f.token)
    d = problem(data)
    t.ok(st == 401 and d.get("type") == ERR + "TokenVerifierError" and
         "certificate has expired" in d.get("detail", "") and (st, d) == (st2, problem(data2)),
         "past the chain's notAfter the session is refused as its token is", (data, data2))
    pki.leaf = good_leaf

    # a Bearer token is verified (and a forged one refused) as before
    st, _, data = a.get("default/claims/key", cookie=False, bearer=a.token)
    t.ok(st == 200 and a.decrypt(data) == SECRET, "the session's token as a Bearer token",
         data[:200])
    h, p, s = a.token.split(".")
    forged = "%s.%s.%s" % (h, p, ("A" if s[0] != "A" else "B") + s[1:])
    st, _, data = a.get("default/claims/key", cookie=False, bearer=forged)
    t.ok(st == 401 and problem(data).get("type") == ERR + "TokenVerifierError",
         "a Bearer token with a forged signature is refused", data)
    kbs.stop()

    # a kbs that does not trust the AS's signer: /attest answers, the read is refused
    other = Pki(name="Other")
    kbs2 = Kbs(kbs_config(other, as_addr=asvc.addr), name="kbs-session-claims-untrusted").start()
    kbs2.set_policy(other, ALLOW_ALL)
    kbs2.set_resource(other, "default/claims/key", SECRET)
    u = Attester(kbs2)
    st, _, data = u.auth()
    st, _, data = u.attest()
    t.eq(st, 200, "/attest hands out a token this kbs cannot verify, as Trustee does")
    st, _, data = u.get("default/claims/key")
    d = problem(data)
    t.ok(st == 401 and d.get("type") == ERR + "TokenVerifierError" and
         "x5c" in d.get("detail", ""),
         "the session's read is refused with the verifier's sentence", data)
    t.ok(kbs2.alive(), "kbs alive")
    kbs2.stop()
    asvc.stop()
    t.done()


if __name__ == "__main__":
    main()
