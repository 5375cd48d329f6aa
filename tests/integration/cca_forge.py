"""Forge Arm CCA attestation tokens under test keys, as an oracle independent of the C parser:
a minimal deterministic CBOR encoder (definite lengths, shortest heads) and COSE_Sign1 signed
with python3-cryptography. A token is the tag-399 collection {44234: platform COSE_Sign1,
44241: realm COSE_Sign1}; the platform challenge is the hash of the RAK claim bytes, as the RMM
specification binds them. Every field can be overridden to build the refusal cases."""
import base64
import hashlib
import json

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


class Tag:
    def __init__(self, tag, value):
        self.tag, self.value = tag, value


def _head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for ai, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | ai]) + n.to_bytes(size, "big")
    raise ValueError("too large")


def cbor(v):
    if isinstance(v, bool):
        return b"\xf5" if v else b"\xf4"
    if isinstance(v, int):
        return _head(0, v) if v >= 0 else _head(1, -1 - v)
    if isinstance(v, (bytes, bytearray)):
        return _head(2, len(v)) + bytes(v)
    if isinstance(v, str):
        b = v.encode()
        return _head(3, len(b)) + b
    if isinstance(v, list):
        return _head(4, len(v)) + b"".join(cbor(x) for x in v)
    if isinstance(v, dict):
        return _head(5, len(v)) + b"".join(cbor(k) + cbor(x) for k, x in v.items())
    if isinstance(v, Tag):
        return _head(6, v.tag) + cbor(v.value)
    raise TypeError(type(v))


ALG = {"P-256": (-7, hashes.SHA256(), 32), "P-384": (-35, hashes.SHA384(), 48)}


def curve_name(key):
    return {"secp256r1": "P-256", "secp384r1": "P-384"}[key.curve.name]


def sign1(key, payload, alg=None):
    """Tagged COSE_Sign1 over payload bytes; alg overrides the protected header's value."""
    a, h, n = ALG[curve_name(key)]
    prot = cbor({1: alg if alg is not None else a})
    tbs = cbor(["Signature1", prot, b"", payload])
    r, s = decode_dss_signature(key.sign(tbs, ec.ECDSA(h)))
    return cbor(Tag(18, [prot, {}, payload, r.to_bytes(n, "big") + s.to_bytes(n, "big")]))


def point(key):
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def cose_key(key):
    p = point(key)
    return cbor({1: 2, -1: 2, -2: p[1:49], -3: p[49:]})


def jwk(key):
    p, n = point(key), ALG[curve_name(key)][2]
    b = lambda x: base64.urlsafe_b64encode(x).decode().rstrip("=")  # noqa: E731
    return {"kty": "EC", "crv": curve_name(key), "x": b(p[1:1 + n]), "y": b(p[1 + n:])}


IMPL_ID = bytes(range(32))
INST_ID = b"\x01" + bytes(range(100, 132))
RIM = hashlib.sha256(b"realm image").digest()
SW = [("BL", hashlib.sha256(b"bl").digest()), ("RMM", hashlib.sha256(b"rmm").digest())]
SIGNER = hashlib.sha256(b"signer").digest()
CONFIG = b"\xcf\xcf\xcf\xcf"


def token(cpak, rak, challenge, perso=bytes(64), rak_form="raw", rak_hash="sha-256",
          binding=None, lifecycle=0x3003, realm_signer=None, platform_alg=None, rim=RIM,
          rak_claim=None, cmw=False):
    """A CCA token. binding overrides the platform challenge (default: hash of the RAK claim);
    realm_signer signs the realm token instead of the RAK; rak_claim replaces the RAK bytes."""
    if rak_claim is None:
        rak_claim = point(rak) if rak_form == "raw" else cose_key(rak)
    realm = {10: challenge, 44235: perso, 44236: "sha-256", 44237: rak_claim, 44238: rim,
             44239: [bytes(32)] * 4, 44240: rak_hash}
    if rak_form == "cose":
        realm[265] = "tag:arm.com,2023:realm#1.0.0"
    if binding is None:
        binding = hashlib.new(rak_hash.replace("-", ""), rak_claim).digest()
    platform = {265: "http://arm.com/CCA-SSD/1.0.0", 10: binding, 2396: IMPL_ID, 256: INST_ID,
                2401: CONFIG, 2395: lifecycle, 2402: "sha-256",
                2399: [{1: t, 2: m, 5: SIGNER, 6: "sha-256"} for t, m in SW]}
    if cmw:  # the CMW collection form: tag 907, entries [263 (EAT CWT), token]
        platform[265] = "tag:arm.com,2023:cca_platform#1.0.0"
        return cbor(Tag(907, {44234: [263, sign1(cpak, cbor(platform), platform_alg)],
                              44241: [263, sign1(realm_signer or rak, cbor(realm))]}))
    return cbor(Tag(399, {44234: sign1(cpak, cbor(platform), platform_alg),
                          44241: sign1(realm_signer or rak, cbor(realm))}))


def ta_store(cpak):
    return [{"pkey": jwk(cpak), "implementation-id": IMPL_ID.hex(), "instance-id": INST_ID.hex()}]


def rv_store(rim=RIM, rak_hash="sha-256"):
    return {"platform": [{"implementation-id": IMPL_ID.hex(), "platform-configuration": CONFIG.hex(),
                          "sw-components": [{"component-type": t, "measurement-value": m.hex(),
                                             "signer-id": SIGNER.hex()} for t, m in SW]}],
            "realm": [{"initial-measurement": rim.hex(), "rak-hash-algorithm": rak_hash,
                       "extensible-measurements": [bytes(32).hex()] * 4,
                       "personalization-value": bytes(64).hex()}]}


def write_config(d, cpak):
    """TA and RV stores for cpak in directory d; returns the CCA_CONFIG_FILE path."""
    import os
    ta, rv, cfg = (os.path.join(d, n) for n in ("ta.json", "rv.json", "cca.json"))
    json.dump(ta_store(cpak), open(ta, "w"))
    json.dump(rv_store(), open(rv, "w"))
    json.dump({"cca-verifier": {"type": "local", "ta-store": ta, "rv-store": rv}}, open(cfg, "w"))
    return cfg


def decode(b, i=0):
    """(item, next offset) of the CBOR item at b[i]: the subset the tokens use (definite
    lengths; tags become Tag)."""
    ib = b[i]
    mt, ai, i = ib >> 5, ib & 31, i + 1
    if ai < 24:
        n = ai
    elif ai < 28:
        k = 1 << (ai - 24)
        n, i = int.from_bytes(b[i:i + k], "big"), i + k
    else:
        raise ValueError("indefinite or reserved")
    if mt == 0:
        return n, i
    if mt == 1:
        return -1 - n, i
    if mt in (2, 3):
        v = bytes(b[i:i + n])
        return (v if mt == 2 else v.decode()), i + n
    if mt == 4:
        out = []
        for _ in range(n):
            v, i = decode(b, i)
            out.append(v)
        return out, i
    if mt == 5:
        out = {}
        for _ in range(n):
            k, i = decode(b, i)
            out[k], i = decode(b, i)
        return out, i
    if mt == 6:
        v, i = decode(b, i)
        return Tag(n, v), i
    return {20: False, 21: True, 22: None}[n], i


def claims(tok):
    """(platform claims, realm claims) of a token, signatures NOT checked."""
    coll = decode(tok)[0].value
    out = []
    for k in (44234, 44241):
        sign1 = decode(coll[k])[0].value
        out.append(decode(sign1[2])[0])
    return out
