#!/usr/bin/python3
"""Signed reference values end to end: a real rvps on a real redis-server with the
"extractors" config, fed Trustee's and Veraison's CoRIMs and NVIDIA's RIMs over gRPC
(python3-grpcio) and rvps-tool. Independent oracles: python3-cryptography checks the COSE
signatures and re-signs a CoRIM with a fresh validity; the xmlsec1 command line checks the
RIM signatures, including that the wrapped RIM we refuse still verifies there (the attack
is real). Refused messages store nothing and the daemon keeps serving."""
import base64
import datetime
import hashlib
import json
import os
import subprocess

import grpc
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (decode_dss_signature,
                                                              encode_dss_signature)

from harness import BIN, Redis, Tap, testdata, tmpdir
from test_rvps import Rvps

RV = "ACME/RoadRunner/31fb5abf-023e-4992-aa4e-95f9c1503bfa/digests"
RV_VALUE = '["a3a5e715f0cc574a73c3f9bebb6bc24f32ffd5b67b387244c2c909da779a1478"]'
M12 = "NVIDIA_Corporation.GPU.measurement_12"
M12_0 = ("758af96044c700f98a85347be27124d51c05b8784ba216b629b9aaab6d538c759aed9922a133e4ac4735"
         "64d359b271d5")
PINNED = "2025-06-01T00:00:00Z"
VERAISON = testdata("rvps", "corim", "veraison")
NVTRUST = testdata("evidence", "nvidia", "nvtrust")
RIM_ROOT = os.path.join(NVTRUST, "verifier_RIM_root.pem")
RIMS = {"1010_0200_882_96005E0001_test_no_gpu.swidtag": 9, "Driver_RIM_test_no_gpu.swidtag": 20}


# ---- a small CBOR codec, enough for COSE_Sign1 and corim-meta ----
class Tag:
    def __init__(self, tag, value):
        self.tag, self.value = tag, value


def cbor_dec(b, i=0):
    ib = b[i]
    mt, ai = ib >> 5, ib & 31
    i += 1
    if ai < 24:
        n = ai
    else:
        k = 1 << (ai - 24)
        n = int.from_bytes(b[i:i + k], "big")
        i += k
    if mt == 0:
        return n, i
    if mt == 1:
        return -1 - n, i
    if mt in (2, 3):
        v = b[i:i + n]
        return (v if mt == 2 else v.decode()), i + n
    if mt == 4:
        out = []
        for _ in range(n):
            v, i = cbor_dec(b, i)
            out.append(v)
        return out, i
    if mt == 5:
        out = {}
        for _ in range(n):
            k, i = cbor_dec(b, i)
            v, i = cbor_dec(b, i)
            out[k] = v
        return out, i
    if mt == 6:
        v, i = cbor_dec(b, i)
        return Tag(n, v), i
    raise ValueError("simple values not needed here")


def head(mt, n):
    if n < 24:
        return bytes([mt << 5 | n])
    for ai, k in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * k):
            return bytes([mt << 5 | ai]) + n.to_bytes(k, "big")


def cbor_enc(v):
    if isinstance(v, Tag):
        return head(6, v.tag) + cbor_enc(v.value)
    if isinstance(v, bool) or v is None:
        raise ValueError("not needed")
    if isinstance(v, int):
        return head(0, v) if v >= 0 else head(1, -1 - v)
    if isinstance(v, bytes):
        return head(2, len(v)) + v
    if isinstance(v, str):
        e = v.encode()
        return head(3, len(e)) + e
    if isinstance(v, list):
        return head(4, len(v)) + b"".join(cbor_enc(x) for x in v)
    if isinstance(v, dict):
        return head(5, len(v)) + b"".join(cbor_enc(k) + cbor_enc(x) for k, x in v.items())
    raise ValueError(type(v))


def b64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def veraison_key():
    jwk = json.load(open(os.path.join(VERAISON, "src", "ec-p256.jwk")))
    d = int.from_bytes(b64u(jwk["d"]), "big")
    return jwk, ec.derive_private_key(d, ec.SECP256R1())


def cose_verify(data, pub):
    """The oracle: True when the tag-18 COSE_Sign1 in data verifies with pub (ES256)."""
    root, _ = cbor_dec(data)
    prot, _unprot, payload, sig = root.value
    tbs = cbor_enc(["Signature1", prot, b"", payload])
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    try:
        pub.verify(der, tbs, ec.ECDSA(hashes.SHA256()))
        return True
    except Exception:
        return False


def cose_resign(data, priv, not_before, not_after):
    """The same payload signed again with a corim-meta validity [not_before, not_after]."""
    root, _ = cbor_dec(data)
    payload = root.value[2]
    meta = cbor_enc({0: {0: "ACME Ltd signing key"},
                     1: {0: Tag(1, not_before), 1: Tag(1, not_after)}})
    prot = cbor_enc({1: -7, 3: "application/rim+cbor", 4: b"1", 8: meta})
    der = priv.sign(cbor_enc(["Signature1", prot, b"", payload]), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return cbor_enc(Tag(18, [prot, {}, payload, sig]))


def message(typ, raw):
    return json.dumps({"version": "0.1.0", "type": typ,
                       "payload": base64.b64encode(raw).decode()})


def refused(r, msg, want):
    try:
        r.register(msg)
        return False, "registered"
    except grpc.RpcError as e:
        return want in (e.details() or ""), e.details()


def xmlsec_verify(path, gmt_time):
    p = subprocess.run(["xmlsec1", "--verify", "--trusted-pem", RIM_ROOT, "--enabled-key-data",
                        "x509", "--enabled-reference-uris", "empty", "--verification-gmt-time",
                        gmt_time, path], capture_output=True, text=True)
    return p.returncode == 0


def wrapped_rim(xml):
    """A second Payload hidden in a ds:Object of the ds:Signature element, which the
    enveloped transform leaves out of the digest."""
    at = xml.index(b"</ds:Signature>")
    fake = (b'<ds:Object><ns0:Payload><ns0:Resource type="Measurement" index="12" '
            b'xmlns:h="http://www.w3.org/2001/04/xmlenc#sha384" h:Hash0="ff"/></ns0:Payload>'
            b'</ds:Object>')
    return xml[:at] + fake + xml[at:]


def main():
    t = Tap()
    d = tmpdir("rvps-supply-")
    jwk, priv = veraison_key()
    pub_path = os.path.join(d, "signer.jwk")
    with open(pub_path, "w") as f:
        json.dump({k: jwk[k] for k in ("kty", "crv", "x", "y", "kid")}, f)
    signed = open(os.path.join(VERAISON, "signed-good-corim.cbor"), "rb").read()
    unsigned = open(testdata("rvps", "corim", "trustee", "unsigned-example-corim.cbor"),
                    "rb").read()
    trustee_rim = base64.b64decode(open(testdata("rvps", "swid", "trustee", "test-rim.b64")).read())

    # oracles first: the data is what the MANIFEST says
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    flipped = bytearray(signed)
    flipped[len(flipped) - 80] ^= 1
    t.ok(cose_verify(signed, priv.public_key()), "oracle: Veraison's signed CoRIM verifies "
         "with ec-p256.jwk (python3-cryptography)")
    t.ok(not cose_verify(signed, other) and not cose_verify(bytes(flipped), priv.public_key()),
         "oracle: not with another key, not with a flipped payload byte")
    rim_path = os.path.join(d, "test-rim.xml")
    with open(rim_path, "wb") as f:
        f.write(trustee_rim)
    wrap_path = os.path.join(d, "wrapped.xml")
    with open(wrap_path, "wb") as f:
        f.write(wrapped_rim(trustee_rim))
    for name in list(RIMS) + ["test-rim.xml"]:
        path = rim_path if name == "test-rim.xml" else os.path.join(NVTRUST, name)
        t.ok(xmlsec_verify(path, "2025-06-01 00:00:00"), "oracle: xmlsec1 verifies %s at "
             "2025-06-01" % name)
        t.ok(not xmlsec_verify(path, "2026-12-07 00:00:00"), "oracle: xmlsec1 refuses %s at "
             "2026-12-07 (signer expired)" % name)
    t.ok(xmlsec_verify(wrap_path, "2025-06-01 00:00:00"),
         "oracle: xmlsec1 still verifies the RIM with a Payload hidden in its Signature")

    # rvps A: pinned clock, Redis, signatures required, sample off
    redis = Redis().start()
    a = Rvps({"verification_time": PINNED,
              "storage": {"storage_type": "Redis", "backends": {"redis": {"url": redis.url}}},
              "extractors": {"corim_extractor": {"trusted_keys": [pub_path],
                                                 "require_signature": True},
                             "swid_extractor": {"trust_anchors": [RIM_ROOT],
                                                "require_signature": True},
                             "sample_extractor": {"enabled": False}}}, name="rvps-pinned")
    cases = [
        ("an unsigned CoRIM", message("corim", unsigned), "an unsigned CoRIM is refused"),
        ("a CoRIM with a flipped byte", message("corim", bytes(flipped)), "does not verify"),
        ("a CoRIM signed by another key",
         message("corim", cose_resign(signed, ec.generate_private_key(ec.SECP256R1()),
                                      1700000000, 1800000000)), "does not verify"),
        ("a sample message", message("sample", b'{"x":["y"]}'), "sample extractor: disabled"),
        ("a wrapped RIM", message("swid", wrapped_rim(trustee_rim)),
         "exactly one Meta and one Payload"),
        ("a RIM with a changed hash", message("swid", trustee_rim.replace(
            M12_0.encode(), b"8" + M12_0[1:].encode())), "does not verify"),
        ("an entity bomb", message("swid", b'<!DOCTYPE l [<!ENTITY a "aaaa">]><l>&a;</l>'),
         "DTD"),
    ]
    for what, msg, want in cases:
        ok, details = refused(a, msg, want)
        t.ok(ok, "pinned rvps refuses %s, saying why" % what, details)
    t.eq(redis.command("KEYS", "*"), [], "refused messages stored nothing (no value, no provenance)")
    t.ok(a.daemon.alive(), "rvps serving after the refusals")

    a.register(message("corim", signed))
    t.eq(a.query(RV), RV_VALUE, "Veraison's signed CoRIM registers at the pinned time")
    for name, n in RIMS.items():
        a.register(message("swid", open(os.path.join(NVTRUST, name), "rb").read()))
    a.register(message("swid", trustee_rim))
    got = a.query(M12)
    t.ok(got is not None and json.loads(got)[0] == M12_0,
         "Trustee's signed test RIM registers: %s[0] as Trustee asserts" % M12, got)
    keys = redis.command("KEYS", "reference_value:NVIDIA_Corporation.GPU.*")
    t.eq(len(keys), 9 + 20, "VBIOS (9) and driver (20) RIM values stored in Redis")

    msg_path = os.path.join(d, "message")
    with open(msg_path, "w") as f:
        f.write(message("corim", signed))
    p = subprocess.run([os.path.join(BIN, "rvps-tool"), "register", "--path", msg_path, "--addr",
                        a.addr()], capture_output=True, text=True)
    t.eq(p.returncode, 0, "rvps-tool registers the signed CoRIM")
    p = subprocess.run([os.path.join(BIN, "rvps-tool"), "query", "--reference-value-id", RV,
                        "--addr", a.addr()], capture_output=True, text=True)
    t.eq(p.stdout.strip(), RV_VALUE, "rvps-tool query prints it")
    p = subprocess.run([os.path.join(BIN, "rvps-tool"), "query", "--reference-value-id", RV,
                        "--provenance", "--addr", a.addr()], capture_output=True, text=True)
    lines = p.stdout.splitlines()
    prov = json.loads(lines[1][len("provenance: "):]) if len(lines) == 2 and \
        lines[1].startswith("provenance: ") else {}
    t.eq(lines[:1], [RV_VALUE], "rvps-tool query --provenance still prints the value first")
    want_key = "sha256:" + hashlib.sha256(priv.public_key().public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()
    t.eq({k: prov.get(k) for k in ("extractor", "signed", "signer", "signer_key",
                                   "signature_alg", "not_after", "verified_at",
                                   "message_sha256")},
         {"extractor": "corim", "signed": True, "signer": "ACME Ltd signing key",
          "signer_key": want_key, "signature_alg": "ES256",
          "not_after": "2025-12-31T00:00:00Z", "verified_at": PINNED,
          "message_sha256": hashlib.sha256(message("corim", signed).encode()).hexdigest()},
         "provenance: extractor, signer, key fingerprint, validity, time, message digest")
    p = subprocess.run([os.path.join(BIN, "rvps-tool"), "query", "--reference-value-id", M12,
                        "--provenance", "--addr", a.addr()], capture_output=True, text=True)
    prov = json.loads(p.stdout.splitlines()[1][len("provenance: "):])
    t.ok(prov.get("extractor") == "swid" and prov.get("signed") is True and
         "HCC RIM L4 Signer" in prov.get("signer", "") and
         "NVIDIA Reference Value L3 GH100 002" in prov.get("signer_issuer", ""),
         "provenance of a RIM value names the signer certificate and its issuer", prov)

    # rvps B: today's clock, Trustee's defaults plus the CoRIM key
    b = Rvps({"extractors": {"corim_extractor": {"trusted_keys": [pub_path]},
                             "swid_extractor": {}}}, name="rvps-today")
    ok, details = refused(b, message("corim", signed), "expired at 2025-12-31T00:00:00Z")
    t.ok(ok, "today's clock refuses Veraison's signed CoRIM (validity over)", details)
    t.eq(b.query(RV), None, "and stores nothing")
    for what, raw, want in [
            ("a CBOR nesting bomb", b"\xd9\x01\xf5" + b"\x81" * 5000 + b"\x00",
             "nest deeper than 32"),
            ("an oversized CBOR length", b"\xd9\x01\xf5\x9b" + b"\xff" * 8, "declares")]:
        ok, details = refused(b, message("corim", raw), want)
        t.ok(ok, "rvps refuses %s, saying why" % what, details)
    now = int(datetime.datetime.now(datetime.timezone.utc).timestamp())
    fresh = cose_resign(signed, priv, now - 3600, now + 86400)
    t.ok(cose_verify(fresh, priv.public_key()), "oracle: the re-signed CoRIM verifies")
    b.register(message("corim", fresh))
    t.eq(b.query(RV), RV_VALUE, "the same payload re-signed with a current validity registers")
    stale = cose_resign(signed, priv, now - 86400 * 2, now - 86400)
    ok, details = refused(b, message("corim", stale), "expired at")
    t.ok(ok, "re-signed with a validity that ended yesterday: refused", details)
    b.register(message("corim", unsigned))
    t.eq(b.query(RV), RV_VALUE, "Trustee's unsigned CoRIM registers where no signature is "
         "required")
    b.register(message("swid", trustee_rim))
    got = b.query(M12)
    t.ok(got is not None and len(json.loads(got)) == 3 and json.loads(got)[0] == M12_0,
         "Trustee's RIM registers with Trustee's swid config ({}), three hashes", got)
    b.register(message("sample", b'{"s":["1"]}'))
    t.eq(b.query("s"), '["1"]', "the sample extractor is on by default")
    p = subprocess.run([os.path.join(BIN, "rvps-tool"), "query", "--reference-value-id", "s",
                        "--provenance", "--addr", b.addr()], capture_output=True, text=True)
    prov = json.loads(p.stdout.splitlines()[1][len("provenance: "):])
    t.ok(prov.get("extractor") == "sample" and prov.get("signed") is False and
         "signer" not in prov, "a sample value's provenance says unsigned", prov)
    p = subprocess.run([os.path.join(BIN, "rvps-tool"), "query", "--reference-value-id", "nosuch",
                        "--provenance", "--addr", b.addr()], capture_output=True, text=True)
    t.eq(p.stdout.splitlines(), ["No reference values found", "provenance: none"],
         "an unknown id has no provenance")
    t.ok(a.daemon.alive() and b.daemon.alive(), "both daemons still serving")
    t.done()


if __name__ == "__main__":
    main()
