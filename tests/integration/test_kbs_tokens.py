#!/usr/bin/python3
"""KBS Bearer-token (passport) verification, kbs-protocol.md §4: a resource-only KBS (no AS)
trusting a CA releases a secret to an EAR token whose jwk is endorsed by an x5c chain to that
CA, and refuses forged, alg:none, HS256, self-signed-header, wrong-anchor, leaf-mismatch and
expired tokens with 401 TokenVerifierError; kid + trusted_jwk_sets; insecure_header_jwk; the
§4.3 tee-pubkey paths including extra_teekey_paths."""
import base64
import json
import os

from cryptography.hazmat.primitives.asymmetric import ec

from harness import Tap, tmpdir
from kbs_testlib import (ALLOW_ALL, ERR, Attester, Kbs, Pki, ec_jwk, kbs_config, make_jwt,
                         require_kbs)

SECRET = b"passport secret"


def verr(t, st, data, name):
    try:
        body = json.loads(data)
    except ValueError:
        body = data
    # Trustee's detail, then the cause (ctrustee says why)
    t.ok(st == 401 and isinstance(body, dict) and sorted(body) == ["detail", "type"] and
         body["type"] == ERR + "TokenVerifierError" and
         body["detail"].startswith("Token Verifier error: "), name, body)


def rd(a):
    return {"tee-pubkey": a.pubkey, "nonce": "n", "additional-evidence": ""}


def check_endorsed_chain(t, kbs, pki):
    for kt in ("RSA", "EC-P256", "EC-P521"):
        a = Attester(kbs, kt)
        tok = pki.ear_token(rd(a))
        st, h, data = a.get("default/pass/key", cookie=False, bearer=tok)
        t.ok(st == 200 and a.decrypt(data) == SECRET,
             "passport: %s token endorsed by leaf+intermediate chain" % kt, data[:300])
    a = Attester(kbs, "RSA")
    # shuffled intermediates: OpenSSL builds the path from the untrusted set
    tok = pki.ear_token(rd(a), x5c=pki.x5c([pki.leaf, pki.inter, pki.ca]))
    st, h, data = a.get("default/pass/key", cookie=False, bearer=tok)
    t.eq(st, 200, "passport: chain with the root included verifies")
    # token signed directly by the root CA key, x5c = [root] (self-signed root that is trusted)
    tok = pki.ear_token(rd(a), key=pki.ca_key, x5c=pki.x5c([pki.ca]))
    st, h, data = a.get("default/pass/key", cookie=False, bearer=tok)
    t.eq(st, 200, "passport: trusted self-signed root as the leaf verifies")


def check_refusals(t, kbs, pki):
    a = Attester(kbs, "EC-P256")
    good = pki.ear_token(rd(a))
    h, p, s = good.split(".")
    other = ec.generate_private_key(ec.SECP256R1())
    # forged: claims changed after signing
    claims = json.loads(base64.urlsafe_b64decode(p + "=="))
    claims["submods"]["cpu0"]["ear.status"] = "affirming"
    forged = h + "." + base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode() + "." + s
    st, _, data = a.get("default/pass/key", cookie=False, bearer=forged)
    verr(t, st, data, "refused: claims modified after signing")
    # signature by another key under the same header
    tok = pki.ear_token(rd(a), key=other, jwk=ec_jwk(pki.token_key.public_key()))
    st, _, data = a.get("default/pass/key", cookie=False, bearer=tok)
    verr(t, st, data, "refused: signature by another key")
    # alg none
    hdr = {"typ": "JWT", "alg": "none", "jwk": dict(ec_jwk(pki.token_key.public_key()), alg="none",
                                                  x5c=pki.x5c())}
    tok = make_jwt(hdr, claims)
    st, _, data = a.get("default/pass/key", cookie=False, bearer=tok)
    verr(t, st, data, "refused: alg none")
    tok = make_jwt(dict(hdr, alg="none", jwk=dict(hdr["jwk"], alg="ES256")), claims)
    st, _, data = a.get("default/pass/key", cookie=False, bearer=tok)
    verr(t, st, data, "refused: header alg none with an ES256 jwk, empty signature")
    # HS256 keyed with the public key bytes (classic confusion)
    pub = json.dumps(ec_jwk(pki.token_key.public_key())).encode()
    hdr2 = {"typ": "JWT", "alg": "HS256", "jwk": dict(ec_jwk(pki.token_key.public_key()),
                                                    alg="HS256", x5c=pki.x5c())}
    st, _, data = a.get("default/pass/key", cookie=False, bearer=make_jwt(hdr2, claims, pub))
    verr(t, st, data, "refused: HS256")
    hdr2 = {"typ": "JWT", "alg": "HS256", "kid": "k1"}
    st, _, data = a.get("default/pass/key", cookie=False, bearer=make_jwt(hdr2, claims, b"k"))
    verr(t, st, data, "refused: HS256 with a kid")
    # self-signed header jwk, no x5c
    tok = pki.ear_token(rd(a), key=other, jwk=ec_jwk(other.public_key()), x5c=False)
    st, _, data = a.get("default/pass/key", cookie=False, bearer=tok)
    verr(t, st, data, "refused: self-signed header jwk without x5c")
    # self-signed cert for an untrusted key in x5c
    rogue = Pki(name="Rogue")
    tok = rogue.ear_token(rd(a))
    st, _, data = a.get("default/pass/key", cookie=False, bearer=tok)
    verr(t, st, data, "refused: chain to another (untrusted) CA")
    tok = rogue.ear_token(rd(a), key=rogue.ca_key, x5c=rogue.x5c([rogue.ca]))
    st, _, data = a.get("default/pass/key", cookie=False, bearer=tok)
    verr(t, st, data, "refused: untrusted self-signed root in x5c")
    # leaf key differs from the jwk
    tok = pki.ear_token(rd(a), key=other, jwk=ec_jwk(other.public_key()))
    st, _, data = a.get("default/pass/key", cookie=False, bearer=tok)
    verr(t, st, data, "refused: x5c leaf key differs from the jwk")
    # intermediate missing from x5c
    tok = pki.ear_token(rd(a), x5c=pki.x5c([pki.leaf]))
    st, _, data = a.get("default/pass/key", cookie=False, bearer=tok)
    verr(t, st, data, "refused: chain missing its intermediate")
    # expired beyond the 60 s leeway; within leeway accepted
    st, _, data = a.get("default/pass/key", cookie=False, bearer=pki.ear_token(rd(a), exp_in=-120))
    verr(t, st, data, "refused: expired token")
    st, _, data = a.get("default/pass/key", cookie=False, bearer=pki.ear_token(rd(a), exp_in=-30))
    t.eq(st, 200, "accepted: expired 30 s ago (60 s leeway)")
    # garbage
    st, _, data = a.get("default/pass/key", cookie=False, bearer="abc.def")
    verr(t, st, data, "refused: not a JWT")
    # no tee-pubkey in claims
    tok = pki.ear_token({"nonce": "n"})
    st, _, data = a.get("default/pass/key", cookie=False, bearer=tok)
    verr(t, st, data, "refused: token without tee-pubkey")
    # unsupported tee-pubkey (P-384) -> JweError
    bad = dict(a.pubkey)
    k384 = ec.generate_private_key(ec.SECP384R1()).public_key().public_numbers()
    bad.update(crv="P-384", x=base64.urlsafe_b64encode(k384.x.to_bytes(48, "big")).rstrip(b"=").decode(),
               y=base64.urlsafe_b64encode(k384.y.to_bytes(48, "big")).rstrip(b"=").decode())
    st, _, data = a.get("default/pass/key", cookie=False,
                        bearer=pki.ear_token({"tee-pubkey": bad, "nonce": "n"}))
    t.ok(st == 401 and json.loads(data) == {"type": ERR + "JweError", "detail":
                                            "JWE failed: the tee-pubkey algorithm or curve is not supported"},
         "refused: P-384 tee key -> JweError", data)
    # the resource-only KBS has no /auth: falls through to plugins
    st, body = kbs.problem("POST", "/kbs/v0/auth", {"version": "0.4.0", "tee": "sample",
                                                   "extra-params": ""})
    t.ok(st == 404 and body["type"] == ERR + "PluginNotFound",
         "resource-only KBS: /auth is PluginNotFound", body)


def check_teekey_paths(t, kbs, pki):
    a = Attester(kbs, "EC-P256")
    for path in ("tdx/attester_runtime_data", "customized_claims/runtime_data"):
        outer, inner = path.split("/")
        tok = make_jwt({"typ": "JWT", "alg": "ES256",
                        "jwk": dict(ec_jwk(pki.token_key.public_key()), x5c=pki.x5c())},
                       {"exp": 9999999999, outer: {inner: {"tee-pubkey": a.pubkey}}},
                       pki.token_key)
        st, _, data = a.get("default/pass/key", cookie=False, bearer=tok)
        t.ok(st == 200 and a.decrypt(data) == SECRET, "tee-pubkey found at /%s" % path, data)


def check_jwks_and_extra_paths(t, pki):
    d = tmpdir("jwks-")
    k = ec.generate_private_key(ec.SECP256R1())
    with open(os.path.join(d, "jwks.json"), "w") as f:
        json.dump({"keys": [dict(ec_jwk(k.public_key()), kid="as-key-1")]}, f)
    cfg = kbs_config(pki, admin="InsecureAllowAll",
                     extra_token={"trusted_certs_paths": [],
                                  "trusted_jwk_sets": ["file://" + os.path.join(d, "jwks.json")],
                                  "extra_teekey_paths": ["/custom/pk"]})
    kbs = Kbs(cfg, name="kbs-jwks").start()
    kbs.set_policy(pki, ALLOW_ALL)
    kbs.set_resource(pki, "default/pass/key", SECRET)
    a = Attester(kbs, "RSA")
    tok = make_jwt({"typ": "JWT", "alg": "ES256", "kid": "as-key-1"},
                   {"exp": 9999999999, "custom": {"pk": a.pubkey}}, k)
    st, _, data = a.get("default/pass/key", cookie=False, bearer=tok)
    t.ok(st == 200 and a.decrypt(data) == SECRET, "kid looked up in trusted_jwk_sets; "
         "tee-pubkey from extra_teekey_paths", data)
    tok = make_jwt({"typ": "JWT", "alg": "ES256", "kid": "unknown"},
                   {"exp": 9999999999, "custom": {"pk": a.pubkey}}, k)
    st, _, data = a.get("default/pass/key", cookie=False, bearer=tok)
    verr(t, st, data, "refused: unknown kid")
    tok = pki.ear_token(rd(a))
    st, _, data = a.get("default/pass/key", cookie=False, bearer=tok)
    verr(t, st, data, "refused: header jwk when no trusted_certs_paths")
    kbs.stop()
    # insecure_header_jwk: the header key is taken as is
    cfg = kbs_config(pki, admin="InsecureAllowAll",
                     extra_token={"trusted_certs_paths": [], "insecure_header_jwk": True})
    kbs = Kbs(cfg, name="kbs-insecure").start()
    kbs.set_policy(pki, ALLOW_ALL)
    kbs.set_resource(pki, "default/pass/key", SECRET)
    a.kbs = kbs
    tok = pki.ear_token(rd(a), key=k, jwk=ec_jwk(k.public_key()), x5c=False)
    st, _, data = a.get("default/pass/key", cookie=False, bearer=tok)
    t.eq(st, 200, "insecure_header_jwk: self-signed header jwk accepted")
    kbs.stop()


def main():
    require_kbs()
    t = Tap()
    pki = Pki()
    kbs = Kbs(kbs_config(pki, as_addr=None), name="kbs-passport").start()
    kbs.set_policy(pki, ALLOW_ALL)
    kbs.set_resource(pki, "default/pass/key", SECRET)
    t.run(check_endorsed_chain, kbs, pki)
    t.run(check_refusals, kbs, pki)
    t.run(check_teekey_paths, kbs, pki)
    t.ok(kbs.alive(), "kbs survived")
    kbs.stop()
    t.run(check_jwks_and_extra_paths, pki)
    t.done()


if __name__ == "__main__":
    main()
