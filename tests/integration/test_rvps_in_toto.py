#!/usr/bin/python3
"""in-toto reference values end to end: a real rvps on a real redis-server with
extractors.in_toto_extractor configured. The test signs its own in-toto statements as DSSE
envelopes with python3-cryptography (the independent oracle for the PAE and the ECDSA
signature); keyless input is Sigstore's own conformance bundle happy-path-intoto-in-dsse-v3,
checked offline against the public-good trusted root. A wrong key, a tampered statement, a
non-matching identity and malformed input are each refused with their reason, store nothing,
and leave the daemon serving; accepted values carry their signer in the provenance."""
import base64
import hashlib
import json
import os
import subprocess

import grpc
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from harness import BIN, Redis, Tap, testdata, tmpdir
from test_rvps import Rvps

SIG = testdata("rvps", "sigstore")
PROD_ROOT = os.path.join(SIG, "trusted_root.prod.json")
CASES = os.path.join(SIG, "bundle-verify")
ISSUER = "https://token.actions.githubusercontent.com"
IDENTITY = ("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
            ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main")
A_TXT = "a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf"
PT = "application/vnd.in-toto+json"


def pae(ptype, payload):
    t = ptype.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def sign(key, data):
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def envelope(statement, key, ptype=PT, over_pae=True):
    payload = json.dumps(statement).encode()
    sig = sign(key, pae(ptype, payload) if over_pae else payload)
    return {"payloadType": ptype, "payload": base64.b64encode(payload).decode(),
            "signatures": [{"keyid": "", "sig": base64.b64encode(sig).decode()}]}


def message(raw):
    return json.dumps({"version": "0.1.0", "type": "in-toto",
                       "payload": base64.b64encode(raw).decode()})


def refused(r, msg, want):
    try:
        r.register(msg)
        return False, "registered"
    except grpc.RpcError as e:
        return want in (e.details() or ""), e.details()


def provenance(r, name):
    p = subprocess.run([os.path.join(BIN, "rvps-tool"), "query", "--reference-value-id", name,
                        "--provenance", "--addr", r.addr()], capture_output=True, text=True)
    lines = p.stdout.splitlines()
    if len(lines) == 2 and lines[1].startswith("provenance: "):
        return json.loads(lines[1][len("provenance: "):])
    return {}


def main():
    t = Tap()
    d = tmpdir("rvps-intoto-")
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    pub_path = os.path.join(d, "pipeline.pub.pem")
    with open(pub_path, "wb") as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))
    edkey = ed25519.Ed25519PrivateKey.generate()
    ed_path = os.path.join(d, "release.ed25519.pem")
    with open(ed_path, "wb") as f:
        f.write(edkey.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo))
    fw, kern = hashlib.sha256(b"firmware").hexdigest(), hashlib.sha384(b"kernel").hexdigest()
    kern256 = hashlib.sha256(b"kernel").hexdigest()
    stmt = {"_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "guest/firmware.fd", "digest": {"sha256": fw}},
                        {"name": "guest/vmlinuz", "digest": {"sha384": kern, "sha256": kern256}}],
            "predicateType": "https://slsa.dev/provenance/v1", "predicate": {}}
    good = envelope(stmt, key)
    # the oracle: what we send verifies under python3-cryptography, and a tampered copy does not
    raw_payload = base64.b64decode(good["payload"])
    key.public_key().verify(base64.b64decode(good["signatures"][0]["sig"]), pae(PT, raw_payload),
                            ec.ECDSA(hashes.SHA256()))
    t.ok(True, "oracle: the test's DSSE envelope verifies over its PAE (python3-cryptography)")
    tampered = dict(good)
    evil = json.loads(raw_payload)
    evil["subject"][0]["digest"]["sha256"] = "00" * 32
    tampered["payload"] = base64.b64encode(json.dumps(evil).encode()).decode()

    redis = Redis().start()
    storage = {"storage_type": "Redis", "backends": {"redis": {"url": redis.url}}}
    a = Rvps({"storage": storage,
              "extractors": {"in_toto_extractor": {
                  "trusted_keys": [pub_path, ed_path],
                  "sigstore": {"trusted_root": PROD_ROOT,
                               "identities": [{"issuer": ISSUER,
                                               "subject_regex": "^https://github.com/other-org/"}]}},
                  "sample_extractor": {"enabled": False}}}, name="rvps-intoto")
    bundle_dsse = open(os.path.join(CASES, "happy-path-intoto-in-dsse-v3",
                                    "bundle.sigstore.json"), "rb").read()
    cases = [
        ("a statement signed by another key",
         message(json.dumps(envelope(stmt, other)).encode()), "verify with none of the 2 trusted keys"),
        ("a tampered statement", message(json.dumps(tampered).encode()),
         "verify with none of the 2 trusted keys"),
        ("an Ed25519 signature over the payload instead of the PAE",
         message(json.dumps(envelope(stmt, edkey, over_pae=False)).encode()),
         "verify with none of the 2 trusted keys"),
        ("a signed non-in-toto payload",
         message(json.dumps(envelope(stmt, key, "text/plain")).encode()),
         "payloadType is text/plain"),
        ("a signed statement of another _type",
         message(json.dumps(envelope(dict(stmt, _type="x"), key)).encode()), "_type is not"),
        ("a keyless bundle whose identity matches none",
         message(bundle_dsse), "matches no trusted identity"),
        ("a message-signature bundle",
         message(open(os.path.join(CASES, "happy-path-v0.3", "bundle.sigstore.json"), "rb").read()),
         "holds a message signature"),
        ("a bundle with a bad DSSE signature",
         message(open(os.path.join(CASES, "dsse-invalid-sig_fail", "bundle.sigstore.json"),
                      "rb").read()), "does not verify"),
        ("malformed JSON", message(b'{"payloadType":'), "not JSON"),
        ("a non-base64 payload", json.dumps({"version": "0.1.0", "type": "in-toto",
                                             "payload": "!!"}), "not valid standard base64"),
    ]
    for what, msg, want in cases:
        ok, details = refused(a, msg, want)
        t.ok(ok, "rvps refuses %s, saying why" % what, details)
    t.eq(redis.command("KEYS", "*"), [], "refused messages stored nothing (no value, no provenance)")
    t.ok(a.daemon.alive(), "rvps serving after the refusals")

    a.register(message(json.dumps(good).encode()))
    t.eq(a.query("guest/firmware.fd"), json.dumps([fw]), "a keyful DSSE statement registers "
         "its first subject, valued by its digest")
    t.eq(a.query("guest/vmlinuz"), json.dumps([kern256, kern], separators=(",", ":")),
         "every digest algorithm of a subject is kept (sha256, sha384)")
    ed_stmt = {"_type": "https://in-toto.io/Statement/v1",
               "subject": [{"name": "guest/initrd", "digest": {"sha256": fw}}]}
    a.register(message(json.dumps(envelope(ed_stmt, edkey)).encode()))
    t.eq(a.query("guest/initrd"), json.dumps([fw]), "an Ed25519-signed envelope registers "
         "(the key pins its algorithm)")
    prov = provenance(a, "guest/vmlinuz")
    t.ok(prov.get("extractor") == "in-toto" and prov.get("signed") is True and
         prov.get("signer_key") == "sha256:" + hashlib.sha256(spki).hexdigest(),
         "the provenance names the signing key's SPKI fingerprint", prov)

    b = Rvps({"storage": {"storage_type": "Memory"},
              "extractors": {"in_toto_extractor": {
                  "sigstore": {"trusted_root": PROD_ROOT,
                               "identities": [{"issuer": ISSUER,
                                               "subject_regex": "^https://github.com/sigstore-conformance/"}]}}}},
             name="rvps-intoto-keyless")
    ok, details = refused(b, message(json.dumps(good).encode()), "needs extractors.in_toto_extractor.trusted_keys")
    t.ok(ok, "without trusted_keys a keyful envelope is refused", details)
    b.register(message(bundle_dsse))
    t.eq(b.query("a.txt"), json.dumps([A_TXT]), "Sigstore's keyless in-toto bundle registers a.txt "
         "with its sha256")
    prov = provenance(b, "a.txt")
    t.ok(prov.get("signer") == IDENTITY and prov.get("signer_issuer") == ISSUER and
         prov.get("signed") is True, "its provenance names the certificate identity and issuer",
         prov)
    t.ok(a.daemon.alive() and b.daemon.alive(), "both daemons still serving")
    t.done()


if __name__ == "__main__":
    main()
