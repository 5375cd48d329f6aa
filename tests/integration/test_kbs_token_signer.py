#!/usr/bin/python3
"""A token signer must be a signer (issue 14, W5): a passport KBS trusting a CA refuses an EAR
token whose x5c leaf, though issued under that CA, is a TLS certificate: keyUsage without
digitalSignature, or an extendedKeyUsage naming only TLS purposes. A leaf meant for signing
(digitalSignature, codeSigning or no EKU) is accepted. `trusted_signer_ekus` lets an operator
accept a purpose, `trusted_signer_subjects` pins the leaf subjects, and a malformed OID stops
the kbs at start-up with a sentence."""
import datetime
import json
import os
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness import BIN, Tap
from kbs_testlib import ALLOW_ALL, ERR, Attester, Kbs, Pki, kbs_config, require_kbs, to_toml

SECRET = b"signer secret"


def leaf(pki, cn, ku=None, eku=None):
    """A key and certificate issued by the PKI's intermediate, with the given usages."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
         .issuer_name(pki.inter.subject).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    if ku is not None:
        flags = dict(digital_signature=False, content_commitment=False, key_encipherment=False,
                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                     crl_sign=False, encipher_only=False, decipher_only=False)
        flags.update({k: True for k in ku})
        b = b.add_extension(x509.KeyUsage(**flags), critical=True)
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return key, b.sign(pki.int_key, hashes.SHA256())


def fetch(kbs, pki, key, cert):
    a = Attester(kbs, "EC-P256")
    rd = {"tee-pubkey": a.pubkey, "nonce": "n", "additional-evidence": ""}
    tok = pki.ear_token(rd, key=key, x5c=pki.x5c([cert, pki.inter]))
    st, _, data = a.get("default/sig/key", cookie=False, bearer=tok)
    if st == 200:
        return st, a.decrypt(data)
    try:
        return st, json.loads(data)
    except ValueError:
        return st, data


def refused(t, got, want, name):
    st, body = got
    t.ok(st == 401 and isinstance(body, dict) and body.get("type") == ERR + "TokenVerifierError"
         and want in body.get("detail", ""), name, got)


def start(pki, name, **token):
    kbs = Kbs(kbs_config(pki, as_addr=None, extra_token=token), name=name).start()
    kbs.set_policy(pki, ALLOW_ALL)
    kbs.set_resource(pki, "default/sig/key", SECRET)
    return kbs


def main():
    require_kbs()
    t = Tap()
    pki = Pki()
    tls_ku = leaf(pki, "tls.example", ku=["key_encipherment"])
    tls_eku = leaf(pki, "tls2.example", ku=["digital_signature"],
                   eku=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    signer = leaf(pki, "Token Signer", ku=["digital_signature"],
                  eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    plain = leaf(pki, "Plain Signer")

    kbs = start(pki, "kbs-signer")
    refused(t, fetch(kbs, pki, *tls_ku), "keyUsage does not allow digitalSignature",
            "a keyEncipherment-only leaf under the trusted CA is refused")
    refused(t, fetch(kbs, pki, *tls_eku), "extendedKeyUsage is for TLS only",
            "a leaf whose extendedKeyUsage is serverAuth+clientAuth is refused")
    t.eq(fetch(kbs, pki, *signer), (200, SECRET), "a digitalSignature + codeSigning leaf signs")
    t.eq(fetch(kbs, pki, *plain), (200, SECRET), "a leaf without usage extensions signs")
    t.ok(kbs.alive(), "kbs still serving")
    kbs.stop()

    kbs = start(pki, "kbs-signer-pinned", trusted_signer_ekus=["serverAuth"],
                trusted_signer_subjects=["CN=tls2.example", "CN=Plain Signer"])
    t.eq(fetch(kbs, pki, *tls_eku), (200, SECRET),
         "an operator who lists serverAuth in trusted_signer_ekus accepts that leaf")
    refused(t, fetch(kbs, pki, *signer), "none of trusted_signer_ekus",
            "with trusted_signer_ekus set, a leaf with another purpose is refused")
    t.eq(fetch(kbs, pki, *plain), (200, SECRET), "a pinned subject without an EKU signs")
    other = leaf(pki, "Someone Else")
    refused(t, fetch(kbs, pki, *other), 'subject "CN=Someone Else" is not one of '
            "trusted_signer_subjects", "a subject outside trusted_signer_subjects is refused")
    kbs.stop()

    cfg = kbs_config(pki, as_addr=None, extra_token={"trusted_signer_ekus": ["not an oid"]})
    path = os.path.join(pki.dir, "bad-eku.toml")
    with open(path, "w") as f:
        f.write(to_toml(cfg))
    r = subprocess.run([os.path.join(BIN, "kbs"), "--config-file", path], capture_output=True,
                       timeout=20)
    out = (r.stdout + r.stderr).decode(errors="replace")
    t.ok(r.returncode != 0 and 'trusted_signer_ekus: "not an oid" is not an OID' in out,
         "a malformed trusted_signer_ekus entry stops the kbs with a sentence", out[-500:])
    t.done()


if __name__ == "__main__":
    main()
