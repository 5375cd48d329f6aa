"""NVIDIA H100 evidence forged under a test root, for flows that need a transcript bound to a
fresh KBS nonce (a real GPU cannot be run here): a P-384 root -> intermediate -> device leaf whose
FWID extension (2.23.133.5.4.1, FWID in its last 48 bytes) matches the transcript's opaque fwid,
and an SPDM 1.1 GET_MEASUREMENTS request || MEASUREMENTS response signed by the leaf, laid out
as the device writes it. Also the independent oracle the tests check the C verifier against."""
import base64
import datetime
import hashlib
import struct

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (decode_dss_signature,
                                                             encode_dss_signature)
from cryptography.x509.oid import NameOID

FWID_OID = x509.ObjectIdentifier("2.23.133.5.4.1")


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(cn, issuer_cn, pub, signer, ca, ext=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(issuer_cn))
         .public_key(pub).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ext is not None:
        b = b.add_extension(ext, critical=False)
    return b.sign(signer, hashes.SHA384())


class Device:
    """A test root, an intermediate and one device leaf certifying `fwid`."""

    def __init__(self, fwid=None):
        self.fwid = fwid or hashlib.sha384(b"test gpu firmware").digest()
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.ica_key = ec.generate_private_key(ec.SECP384R1())
        self.key = ec.generate_private_key(ec.SECP384R1())
        self.root = _cert("Test NVIDIA Device Identity CA", "Test NVIDIA Device Identity CA",
                          self.root_key.public_key(), self.root_key, True)
        self.ica = _cert("Test GH100 ICA", "Test NVIDIA Device Identity CA",
                         self.ica_key.public_key(), self.root_key, True)
        # DICE TcbInfo-like value: SEQUENCE { OCTET STRING fwid }, the FWID its last 48 bytes
        tcb = bytes([0x30, 0x32, 0x04, 0x30]) + self.fwid
        self.leaf = _cert("Test GH100 FMC LF", "Test GH100 ICA", self.key.public_key(),
                          self.ica_key, False, x509.UnrecognizedExtension(FWID_OID, tcb))

    def root_pem(self):
        return self.root.public_bytes(serialization.Encoding.PEM)

    def chain_pem(self):
        return b"".join(c.public_bytes(serialization.Encoding.PEM)
                        for c in (self.leaf, self.ica, self.root))

    def transcript(self, nonce, measurements=None, vbios=b"\x00\x9f\x00\x96\x01\x00\x00\x00",
                   driver=b"550.90.07\x00"):
        """request || response || raw P-384 signature over everything before it."""
        assert len(nonce) == 32
        measurements = measurements or {1: bytes(48), 2: hashlib.sha384(b"vbios").digest()}
        req = bytes([0x11, 0xE0, 0x01, 0xFF]) + nonce + b"\x00"
        record = b""
        for idx, value in sorted(measurements.items()):
            dmtf = bytes([0x01]) + struct.pack("<H", len(value)) + value
            record += bytes([idx, 0x01]) + struct.pack("<H", len(dmtf)) + dmtf
        opaque = b""
        for t, v in ((3, driver), (6, vbios), (20, self.fwid)):
            opaque += struct.pack("<HH", t, len(v)) + v
        resp = (bytes([0x11, 0x60, 0x00, 0x00, len(measurements)]) +
                struct.pack("<I", len(record))[:3] + record + bytes(32) +
                struct.pack("<H", len(opaque)) + opaque)
        signed = req + resp
        r, s = decode_dss_signature(self.key.sign(signed, ec.ECDSA(hashes.SHA384())))
        return signed + r.to_bytes(48, "big") + s.to_bytes(48, "big")

    def evidence(self, nonce, **kw):
        """The `nvidia` additional evidence of as-rvps.md 5.13 for one Hopper GPU."""
        return {"device_evidence_list": [{
            "arch": "HOPPER", "uuid": "GPU-test-0",
            "evidence": base64.b64encode(self.transcript(nonce, **kw)).decode(),
            "certificate": base64.b64encode(self.chain_pem()).decode()}]}


def oracle_verify(transcript, chain_pem):
    """Independent check: the last 96 bytes are r || s of ECDSA P-384/SHA-384 by the chain's
    first certificate over the bytes before them. True or False."""
    leaf = x509.load_pem_x509_certificate(chain_pem.split(b"-----END CERTIFICATE-----")[0] +
                                          b"-----END CERTIFICATE-----\n")
    sig, signed = transcript[-96:], transcript[:-96]
    der = encode_dss_signature(int.from_bytes(sig[:48], "big"), int.from_bytes(sig[48:], "big"))
    try:
        leaf.public_key().verify(der, signed, ec.ECDSA(hashes.SHA384()))
        return True
    except Exception:
        return False


def oracle_fwid(cert_pem):
    """The last 48 bytes of the FWID extension, hex."""
    c = x509.load_pem_x509_certificate(cert_pem)
    return c.extensions.get_extension_for_oid(FWID_OID).value.value[-48:].hex()
