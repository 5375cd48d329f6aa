"""Our JOSE against python3-jwcrypto (an implementation we did not write): JWEs we encrypt
to P-256, P-521, RSA-OAEP-256 and RSA1_5 tee keys decrypt there, with the protected header
bytes of kbs-protocol.md §3.4; JWS we sign verify there; JWS it signs verify here; tokens
with alg none, HS256, a mismatched alg or a flipped bit are refused."""
import base64
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import harness  # noqa: E402
from jwcrypto import jwe, jwk, jws  # noqa: E402
from jwcrypto.common import json_encode  # noqa: E402

TOOL = os.path.join(harness.BIN, "jose-tool")


def run(args, data):
    r = subprocess.run([TOOL] + args, input=data, capture_output=True, timeout=30)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def tee_pubkey(key, alg):
    pub = json.loads(key.export_public())
    if pub["kty"] == "EC":
        return {"kty": "EC", "crv": pub["crv"], "alg": alg, "x": pub["x"], "y": pub["y"]}
    return {"kty": "RSA", "alg": alg, "n": pub["n"], "e": pub["e"]}


def main():
    t = harness.Tap()
    d = harness.tmpdir("jose-")
    secret = os.urandom(100) + b"resource bytes"
    cases = [("P-256", jwk.JWK.generate(kty="EC", crv="P-256"), "ECDH-ES+A256KW"),
             ("P-521", jwk.JWK.generate(kty="EC", crv="P-521"), "ECDH-ES+A256KW"),
             ("RSA-OAEP-256", jwk.JWK.generate(kty="RSA", size=2048), "RSA-OAEP-256"),
             ("RSA1_5", jwk.JWK.generate(kty="RSA", size=2048), "RSA1_5")]
    for name, key, alg in cases:
        path = os.path.join(d, name + ".json")
        with open(path, "w") as f:
            json.dump(tee_pubkey(key, alg), f)
        rc, out, err = run(["jwe-encrypt", path], secret)
        if not t.ok(rc == 0, "JWE to a %s tee key is produced" % name, err):
            continue
        doc = json.loads(out)
        t.eq(list(doc.keys()), ["protected", "encrypted_key", "iv", "ciphertext", "tag"],
             "%s: flattened members in order, no aad" % name)
        hdr = b64d(doc["protected"]).decode()
        if alg == "ECDH-ES+A256KW":
            epk = json.loads(hdr)["epk"]
            size = 32 if name == "P-256" else 66
            want = '{"alg":"ECDH-ES+A256KW","enc":"A256GCM","epk":{"crv":"%s","kty":"EC","x":"%s","y":"%s"}}' % (
                epk["crv"], epk["x"], epk["y"])
            t.eq(hdr, want, "%s: protected header bytes as §3.4" % name)
            t.ok(len(b64d(epk["x"])) == size and len(b64d(epk["y"])) == size,
                 "%s: epk coordinates are %d bytes" % (name, size))
        else:
            t.eq(hdr, '{"alg":"%s","enc":"A256GCM"}' % alg, "%s: protected header bytes" % name)
        t.eq(len(b64d(doc["iv"])), 12, "%s: 12-byte IV" % name)
        token = jwe.JWE()
        if name == "RSA1_5":
            token = jwe.JWE(algs=["RSA1_5", "A256GCM"])
        try:
            token.deserialize(out, key=key)
            t.eq(token.payload, secret, "%s: jwcrypto decrypts to the same bytes" % name)
        except Exception as e:  # noqa: BLE001
            t.ok(False, "%s: jwcrypto decrypts to the same bytes" % name, repr(e))

    bad = {"kty": "EC", "crv": "P-384", "alg": "ECDH-ES+A256KW", "x": "AA", "y": "AA"}
    path = os.path.join(d, "p384.json")
    with open(path, "w") as f:
        json.dump(bad, f)
    rc, _, err = run(["jwe-encrypt", path], b"x")
    t.ok(rc == 1 and "not supported" in err, "P-384 tee key refused", err)
    k = jwk.JWK.generate(kty="RSA", size=2048)
    path = os.path.join(d, "oaep1.json")
    with open(path, "w") as f:
        json.dump(tee_pubkey(k, "RSA-OAEP"), f)
    rc, _, err = run(["jwe-encrypt", path], b"x")
    t.ok(rc == 1, "RSA-OAEP (SHA-1) tee key refused", err)

    # JWS both ways for every algorithm family
    payload = json.dumps({"iss": "issuer", "role": "admin", "exp": 4102444800}).encode()
    for alg, gen in [("ES256", dict(kty="EC", crv="P-256")), ("ES384", dict(kty="EC", crv="P-384")),
                     ("ES512", dict(kty="EC", crv="P-521")), ("RS256", dict(kty="RSA", size=2048)),
                     ("PS256", dict(kty="RSA", size=2048)), ("EdDSA", dict(kty="OKP", crv="Ed25519"))]:
        key = jwk.JWK.generate(**gen)
        priv = os.path.join(d, alg + ".key")
        pub = os.path.join(d, alg + ".pub")
        open(priv, "wb").write(key.export_to_pem(private_key=True, password=None))
        open(pub, "wb").write(key.export_to_pem())
        rc, out, err = run(["jws-sign", priv, alg], payload)
        ok = t.ok(rc == 0, "%s: we sign" % alg, err)
        if ok:
            try:
                s = jws.JWS()
                s.deserialize(out.strip())
                s.verify(key, alg=alg)
                t.ok(True, "%s: jwcrypto verifies our signature" % alg)
            except Exception as e:  # noqa: BLE001
                t.ok(False, "%s: jwcrypto verifies our signature" % alg, repr(e))
        s = jws.JWS(payload)
        s.add_signature(key, alg=alg, protected=json_encode({"alg": alg}))
        theirs = s.serialize(compact=True)
        rc, out, err = run(["jws-verify", pub, alg], theirs.encode())
        t.ok(rc == 0 and json.loads(out)["role"] == "admin", "%s: we verify jwcrypto's signature" % alg, out)
        h, p, sig = theirs.split(".")
        flipped = bytearray(b64d(sig))
        flipped[5] ^= 1
        forged = "%s.%s.%s" % (h, p, base64.urlsafe_b64encode(bytes(flipped)).decode().rstrip("="))
        rc, out, _ = run(["jws-verify", pub, alg], forged.encode())
        t.ok(rc == 1 and "does not verify" in out, "%s: flipped signature bit refused" % alg, out)

    key = jwk.JWK.generate(kty="EC", crv="P-256")
    pub = os.path.join(d, "es.pub")
    open(pub, "wb").write(key.export_to_pem())
    p64 = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    none_tok = base64.urlsafe_b64encode(b'{"alg":"none"}').decode().rstrip("=") + "." + p64 + "."
    rc, out, _ = run(["jws-verify", pub, "ES256"], none_tok.encode())
    t.ok(rc == 1, "alg none refused", out)
    rc, out, _ = run(["jws-verify", pub, "HS256"], none_tok.encode())
    t.ok(rc == 1 and "not accepted" in out, "HS256 with a public key refused", out)
    s = jws.JWS(payload)
    s.add_signature(key, alg="ES256", protected=json_encode({"alg": "ES256"}))
    rc, out, _ = run(["jws-verify", pub, "ES384"], s.serialize(compact=True).encode())
    t.ok(rc == 1, "a key pinned to another algorithm refuses the token", out)
    t.done()


if __name__ == "__main__":
    main()
