#!/usr/bin/python3
"""Passport mode (kbs-protocol.md §4): a resource-only KBS (no AS) releasing secrets to Bearer
tokens issued elsewhere, with the key found

- by `kid` in trusted_jwk_sets: an https:// JWKS, an https:// issuer found by OIDC discovery
  (directly, and after an empty JWKS), a file:// JWKS; served by a loopback HTTPS server whose
  CA the KBS trusts through SSL_CERT_FILE. Tokens are minted by python3-jwcrypto (ES256, RS256,
  PS256, EdDSA). The sets are cached (no fetch per token), refetched when an unknown kid shows
  up (key rotation), kept when the server goes down, and fetched late when it was down at start;
- by the header `jwk` endorsed by an x5c chain to trusted_certs_paths: the jwk scenarios of
  issue 6 (self-signed trusted root OK, leaf key != jwk refused, no x5c refused, wrong anchor
  refused, two intermediates in any order OK);

and the whole passport flow: KBS-A with the real AS issues the token by RCAR, KBS-B releases
its own secret to it (RSA tee key, §11.20)."""
import http.server
import json
import os
import ssl
import threading
import time

from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto import jwk as jjwk
from jwcrypto import jwt as jjwt

from harness import Tap, free_port, tmpdir
from kbs_testlib import (ALLOW_ALL, ERR, Attester, Kbs, Pki, _cert, ec_jwk, kbs_config,
                         require_kbs, start_as)

SECRET = b"passport secret"
PATH = "default/passport/key"


class JwksServer:
    """HTTPS on loopback: /jwks.json (a JWKS), /oidc/.well-known/openid-configuration ->
    /oidc/keys (OIDC discovery; /oidc itself is 404), /empty (a JWKS with no key, whose
    discovery document also points at /oidc/keys). Counts requests per path."""

    def __init__(self, pki, port=None):
        self.pki = pki
        self.port = port or free_port()
        self.base = "https://127.0.0.1:%d" % self.port
        self.direct, self.oidc = [], []
        self.hits = {}
        self.srv = None

    def start(self):
        key, chain = self.pki.server_cert("jwks-server", "EC")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(chain, key)
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.hits[self.path] = outer.hits.get(self.path, 0) + 1
                disc = {"issuer": outer.base + "/oidc", "jwks_uri": outer.base + "/oidc/keys"}
                body = {"/jwks.json": {"keys": outer.direct},
                        "/oidc/keys": {"keys": outer.oidc},
                        "/oidc/.well-known/openid-configuration": disc,
                        "/empty": {"keys": []},
                        "/empty/.well-known/openid-configuration": disc}.get(self.path)
                data = json.dumps(body).encode() if body is not None else b"not found"
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.srv:
            self.srv.shutdown()
            self.srv.server_close()
            self.srv = None


def new_key(kind, kid):
    if kind == "ES256":
        k = jjwk.JWK.generate(kty="EC", crv="P-256")
    elif kind in ("RS256", "PS256"):
        k = jjwk.JWK.generate(kty="RSA", size=2048)
    elif kind == "EdDSA":
        k = jjwk.JWK.generate(kty="OKP", crv="Ed25519")
    else:
        raise ValueError(kind)
    pub = k.export_public(as_dict=True)
    pub.update(kid=kid, alg=kind)
    return k, pub


def claims_for(a, exp_in=300, drop_exp=False):
    now = int(time.time())
    c = {"iat": now, "exp": now + exp_in, "iss": "another-deployment",
         "submods": {"cpu0": {"ear.status": "affirming", "ear.veraison.annotated-evidence": {
             "runtime_data_claims": {"tee-pubkey": a.pubkey}}}}}
    if drop_exp:
        del c["exp"]
    return c


def mint(key, alg, kid, claims):
    t = jjwt.JWT(header={"alg": alg, "kid": kid, "typ": "JWT"}, claims=claims)
    t.make_signed_token(key)
    return t.serialize()


def refused(t, st, data, name):
    try:
        body = json.loads(data)
    except ValueError:
        body = data
    t.ok(st == 401 and isinstance(body, dict) and body.get("type") == ERR + "TokenVerifierError"
         and body.get("detail", "").startswith("Token Verifier error"), name, body)


def opens(t, a, tok, name):
    st, _, data = a.get(PATH, cookie=False, bearer=tok)
    t.ok(st == 200 and a.decrypt(data) == SECRET, name, data[:200])


def resource_kbs(pki, jwk_sets, name, extra=None):
    tokcfg = {"trusted_certs_paths": [pki.path("ca-cert.pem")], "trusted_jwk_sets": jwk_sets}
    tokcfg.update(extra or {})
    k = Kbs(kbs_config(pki, extra_token=tokcfg), name=name,
            env={"SSL_CERT_FILE": pki.path("ca-cert.pem")}).start()
    k.set_policy(pki, ALLOW_ALL)
    k.set_resource(pki, PATH, SECRET)
    return k


def check_jwk_sets(t, pki, srv, kbs, keys):
    a = Attester(kbs, "EC-P256")
    es, rs, ps, ed, filek = keys
    opens(t, a, mint(es[0], "ES256", "direct-es", claims_for(a)),
          "kid from an https:// JWKS (ES256)")
    opens(t, a, mint(rs[0], "RS256", "oidc-rs", claims_for(a)),
          "kid from OIDC discovery: /.well-known/openid-configuration -> jwks_uri (RS256)")
    opens(t, a, mint(ps[0], "PS256", "oidc-ps", claims_for(a)), "... PS256 key from the same set")
    opens(t, a, mint(filek[0], "EdDSA", "file-ed", claims_for(a)), "kid from a file:// JWKS "
          "(EdDSA)")
    b = Attester(kbs, "RSA")
    opens(t, b, mint(es[0], "ES256", "direct-es", claims_for(b)), "RSA tee key in the token")
    refused(t, *a.get(PATH, cookie=False, bearer=mint(es[0], "ES256", "nosuch",
                                                      claims_for(a)))[::2],
            "refused: unknown kid")
    other, _ = new_key("ES256", "direct-es")
    refused(t, *a.get(PATH, cookie=False, bearer=mint(other, "ES256", "direct-es",
                                                      claims_for(a)))[::2],
            "refused: right kid, signed by another key")
    refused(t, *a.get(PATH, cookie=False, bearer=mint(rs[0], "PS256", "oidc-rs",
                                                      claims_for(a)))[::2],
            "refused: header alg PS256 for a key published as RS256")
    refused(t, *a.get(PATH, cookie=False, bearer=mint(ed[0], "EdDSA", "no-alg",
                                                      claims_for(a)))[::2],
            "refused: a published key without alg")
    hs = jjwk.JWK.generate(kty="oct", size=256)
    refused(t, *a.get(PATH, cookie=False, bearer=mint(hs, "HS256", "direct-es",
                                                      claims_for(a)))[::2],
            "refused: HS256 under a published kid")
    refused(t, *a.get(PATH, cookie=False, bearer=mint(es[0], "ES256", "direct-es",
                                                      claims_for(a, exp_in=-120)))[::2],
            "refused: expired beyond the 60 s leeway")
    refused(t, *a.get(PATH, cookie=False, bearer=mint(es[0], "ES256", "direct-es",
                                                      claims_for(a, drop_exp=True)))[::2],
            "refused: no exp claim")
    tok = mint(es[0], "ES256", "direct-es", {"exp": int(time.time()) + 60, "nothing": 1})
    refused(t, *a.get(PATH, cookie=False, bearer=tok)[::2], "refused: no tee-pubkey in claims")


def check_caching_and_rotation(t, pki, srv, kbs, keys):
    es = keys[0]
    a = Attester(kbs, "EC-P256")
    before = dict(srv.hits)
    for _ in range(10):
        st, _, _ = a.get(PATH, cookie=False, bearer=mint(es[0], "ES256", "direct-es",
                                                         claims_for(a)))
    t.ok(st == 200 and srv.hits == before, "cached: 10 verifications fetch nothing",
         (before, srv.hits))
    # rotation: a new key appears at the server; its first token triggers a refetch
    new = new_key("ES256", "rotated-1")
    srv.direct.append(new[1])
    time.sleep(1.1)
    opens(t, a, mint(new[0], "ES256", "rotated-1", claims_for(a)),
          "rotation: an unknown kid refetches the set and the new key verifies")
    # unknown kids do not hammer the server: at most one refetch per second per source
    n0 = srv.hits.get("/jwks.json", 0)
    for i in range(20):
        a.get(PATH, cookie=False, bearer=mint(es[0], "ES256", "junk-%d" % i, claims_for(a)))
    t.ok(srv.hits.get("/jwks.json", 0) - n0 <= 3,
         "20 unknown kids in a burst cost at most a few refetches (%d)" %
         (srv.hits.get("/jwks.json", 0) - n0))
    # the JWKS server goes down: known keys keep verifying from the cache
    srv.stop()
    time.sleep(1.1)
    opens(t, a, mint(es[0], "ES256", "direct-es", claims_for(a)),
          "server down: a cached key still verifies")
    newer = new_key("ES256", "rotated-2")
    srv.direct.append(newer[1])
    refused(t, *a.get(PATH, cookie=False, bearer=mint(newer[0], "ES256", "rotated-2",
                                                      claims_for(a)))[::2],
            "server down: a key it has not seen yet is refused")
    t.ok(kbs.alive(), "server down: the KBS carries on")
    srv.start()
    time.sleep(1.1)
    opens(t, a, mint(newer[0], "ES256", "rotated-2", claims_for(a)),
          "server back: the new key is fetched and verifies")


def check_late_jwks(t, pki):
    """The JWKS server is down when the KBS starts: it starts, says so, and fetches later."""
    srv = JwksServer(pki)
    key, pub = new_key("ES256", "late-1")
    srv.direct.append(pub)
    kbs = resource_kbs(pki, [srv.base + "/jwks.json"], "kbs-late-jwks")
    t.ok("trusted_jwk_sets " + srv.base + "/jwks.json" in kbs.log_text(),
         "KBS starts with its JWKS server down and logs why", kbs.log_tail(5))
    a = Attester(kbs, "EC-P256")
    refused(t, *a.get(PATH, cookie=False, bearer=mint(key, "ES256", "late-1",
                                                      claims_for(a)))[::2],
            "late JWKS: refused while the server is down")
    srv.start()
    time.sleep(1.1)
    opens(t, a, mint(key, "ES256", "late-1", claims_for(a)),
          "late JWKS: accepted once the server is up")
    srv.stop()
    kbs.stop()


def check_x5c_scenarios(t, pki, kbs):
    a = Attester(kbs, "RSA")
    rd = {"tee-pubkey": a.pubkey, "nonce": "n"}
    opens(t, a, pki.ear_token(rd, key=pki.ca_key, x5c=pki.x5c([pki.ca])),
          "x5c: the trusted self-signed root itself signs")
    other = ec.generate_private_key(ec.SECP256R1())
    refused(t, *a.get(PATH, cookie=False, bearer=pki.ear_token(rd, key=other,
                                                               jwk=ec_jwk(other.public_key())))[::2],
            "x5c: leaf certificate key differs from the jwk")
    refused(t, *a.get(PATH, cookie=False, bearer=pki.ear_token(rd, x5c=False))[::2],
            "x5c: header jwk without x5c")
    rogue = Pki(name="Rogue")
    refused(t, *a.get(PATH, cookie=False, bearer=rogue.ear_token(rd))[::2],
            "x5c: chain to an anchor the KBS does not trust")
    # root -> int1 -> int2 -> leaf; x5c lists the intermediates out of order
    k1 = ec.generate_private_key(ec.SECP256R1())
    k2 = ec.generate_private_key(ec.SECP256R1())
    kl = ec.generate_private_key(ec.SECP256R1())
    i1 = _cert("Int One", "Test Root CA", k1.public_key(), pki.ca_key, True)
    i2 = _cert("Int Two", "Int One", k2.public_key(), k1, True)
    leaf = _cert("Signer Two Deep", "Int Two", kl.public_key(), k2, False)
    opens(t, a, pki.ear_token(rd, key=kl, x5c=pki.x5c([leaf, i2, i1])),
          "x5c: two intermediates in order")
    opens(t, a, pki.ear_token(rd, key=kl, x5c=pki.x5c([leaf, i1, i2])),
          "x5c: two intermediates shuffled")
    refused(t, *a.get(PATH, cookie=False, bearer=pki.ear_token(rd, key=kl,
                                                               x5c=pki.x5c([leaf, i2])))[::2],
            "x5c: one intermediate missing")


def check_passport_flow(t, pki, kbs_b):
    asvc = start_as(pki)
    kbs_a = Kbs(kbs_config(pki, as_addr=asvc.addr), name="kbs-a").start()
    a = Attester(kbs_a, "RSA")
    tok = a.rcar()
    a.kbs = kbs_b
    st, _, data = a.get(PATH, cookie=False, bearer=tok)
    t.ok(st == 200 and a.decrypt(data) == SECRET,
         "passport: KBS-A's EAR token (RCAR through the AS) opens KBS-B", data[:200])
    st, _, data = a.get(PATH)
    t.ok(st == 401 and json.loads(data)["type"] == ERR + "TokenNotFound",
         "passport: KBS-B has no sessions; KBS-A's cookie means nothing there", data)
    st, body = kbs_b.problem("POST", "/kbs/v0/attest", {})
    t.ok(st == 404 and body["type"] == ERR + "PluginNotFound",
         "passport: KBS-B has no RCAR endpoints", body)
    st, _, _ = kbs_b.request("GET", "/readyz")
    t.eq(st, 200, "passport: a resource-only KBS is ready without an AS")
    kbs_a.stop()
    asvc.stop()


def main():
    require_kbs()
    t = Tap()
    pki = Pki()
    srv = JwksServer(pki)
    es, rs, ps = new_key("ES256", "direct-es"), new_key("RS256", "oidc-rs"), \
        new_key("PS256", "oidc-ps")
    ed = new_key("EdDSA", "no-alg")
    del ed[1]["alg"]
    srv.direct += [es[1], ed[1]]
    srv.oidc += [rs[1], ps[1]]
    filek = new_key("EdDSA", "file-ed")
    d = tmpdir("jwks-file-")
    with open(os.path.join(d, "jwks.json"), "w") as f:
        json.dump({"keys": [filek[1]]}, f)
    srv.start()
    kbs = resource_kbs(pki, [srv.base + "/jwks.json", srv.base + "/oidc", srv.base + "/empty",
                             "file://" + os.path.join(d, "jwks.json")], "kbs-passport-b")
    log = kbs.log_text()
    t.ok(srv.base + "/oidc: 2 keys loaded" in log and srv.base + "/empty: 2 keys loaded" in log,
         "OIDC discovery used for a 404 JWKS URL and for an empty one", log[-600:])
    keys = (es, rs, ps, ed, filek)
    t.run(check_jwk_sets, pki, srv, kbs, keys)
    t.run(check_caching_and_rotation, pki, srv, kbs, keys)
    t.run(check_x5c_scenarios, pki, kbs)
    t.run(check_passport_flow, pki, kbs)
    t.ok(kbs.alive(), "KBS-B survived")
    kbs.stop()
    srv.stop()
    t.run(check_late_jwks, pki)
    t.done()


if __name__ == "__main__":
    main()
