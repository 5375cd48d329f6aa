"""An HGX board forged under a test root, for PPCIe flows that need transcripts bound to a fresh
KBS nonce (nvtrust's real 8 H100 + 4 LS10 sample is bound to its own nonce): 8 GPUs and 4
NVSwitches, each with a chain leaf <- device identity certificate <- ICA <- root whose identity
certificate's subject serialNumber is a kind byte and the device's 8-byte PDI (as on the real
GH100 and LS_10 chains), and an SPDM 1.1 GET_MEASUREMENTS transcript signed by the leaf, laid
out as each device writes it: a GPU's opaque data lists, per NVLink, its switch's PDI
byte-reversed; a switch's reports its own PDI (switch_pdi), its BIOS version as text and, in
type 26, the PDIs of the 8 GPUs followed by one byte per port."""
import base64
import datetime
import hashlib
import struct

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

FWID_OID = x509.ObjectIdentifier("2.23.133.5.4.1")


def _name(cn, serial=None):
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if serial is not None:
        attrs.insert(0, x509.NameAttribute(NameOID.SERIAL_NUMBER, serial))
    return x509.Name(attrs)


def _cert(subject, issuer, pub, signer, ca, ext=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
         .public_key(pub).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ext is not None:
        b = b.add_extension(ext, critical=False)
    return b.sign(signer, hashes.SHA384())


def _pem(*certs):
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


class Dev:
    def __init__(self, board, i, is_switch):
        self.is_switch = is_switch
        self.pdi = hashlib.sha256(b"pdi %d %d" % (is_switch, i)).digest()[:8]
        self.fwid = hashlib.sha384(b"fw %d %d" % (is_switch, i)).digest()
        kind = "50" if is_switch else "41"
        self.id_key = ec.generate_private_key(ec.SECP384R1())
        self.key = ec.generate_private_key(ec.SECP384R1())
        id_name = _name("Test %s BROM" % ("LS_10" if is_switch else "GH100"),
                        kind + self.pdi.hex().upper())
        self.id_cert = _cert(id_name, board.ica.subject, self.id_key.public_key(),
                             board.ica_key, True)
        tcb = bytes([0x30, 0x32, 0x04, 0x30]) + self.fwid
        self.leaf = _cert(_name("Test FMC LF"), id_name, self.key.public_key(), self.id_key,
                          False, x509.UnrecognizedExtension(FWID_OID, tcb))
        self.board = board

    def chain_pem(self):
        b = self.board
        return _pem(self.leaf, self.id_cert, b.ica, b.root)


class Board:
    """8 GPUs and 4 switches fully linked: each GPU has 18 NVLinks spread over the switches
    (5, 4, 4, 5), each switch lists the 8 GPUs."""

    def __init__(self):
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.ica_key = ec.generate_private_key(ec.SECP384R1())
        self.root = _cert(_name("Test NVIDIA Device Identity CA"),
                          _name("Test NVIDIA Device Identity CA"),
                          self.root_key.public_key(), self.root_key, True)
        self.ica = _cert(_name("Test Provisioner ICA"), self.root.subject,
                         self.ica_key.public_key(), self.root_key, True)
        self.gpus = [Dev(self, i, False) for i in range(8)]
        self.switches = [Dev(self, i, True) for i in range(4)]

    def root_pem(self):
        return _pem(self.root)

    def _sign(self, dev, nonce, opaque, measurements):
        req = bytes([0x11, 0xE0, 0x01, 0xFF]) + nonce + b"\x00"
        record = b""
        for idx, value in sorted(measurements.items()):
            dmtf = bytes([0x01]) + struct.pack("<H", len(value)) + value
            record += bytes([idx, 0x01]) + struct.pack("<H", len(dmtf)) + dmtf
        op = b"".join(struct.pack("<HH", t, len(v)) + v for t, v in opaque)
        resp = (bytes([0x11, 0x60, 0x00, 0x00, len(measurements)]) +
                struct.pack("<I", len(record))[:3] + record + bytes(32) +
                struct.pack("<H", len(op)) + op)
        signed = req + resp
        r, s = decode_dss_signature(dev.key.sign(signed, ec.ECDSA(hashes.SHA384())))
        return signed + r.to_bytes(48, "big") + s.to_bytes(48, "big")

    def gpu_transcript(self, g, nonce, switches=None):
        links = []
        for k, sw in enumerate(switches if switches is not None else self.switches):
            links += [sw.pdi[::-1]] * (5 if k in (0, 3) else 4)
        opaque = [(3, b"550.90.07\x00"), (6, b"\x00\x9f\x00\x96\x01\x00\x00\x00"),
                  (20, g.fwid), (22, b"".join(links)), (36, b"\x02\x00")]
        return self._sign(g, nonce, opaque, {1: bytes(48), 2: hashlib.sha384(b"vbios").digest()})

    def switch_transcript(self, s, nonce, lock=b"\x01\x00", gpus=None, fwid=None):
        """fwid: an opaque fwid item (real switches report none)."""
        gp = b"".join(g.pdi for g in (gpus if gpus is not None else self.gpus))
        ports = bytes(range(8)) * 2 + b"\xff" * 48
        opaque = [(6, b"96.10.73.00.01"), (22, s.pdi), (26, gp + ports), (23, b"\xec\x00"),
                  (24, struct.pack("<H", self.switches.index(s))), (25, lock)]
        if fwid is not None:
            opaque.append((20, fwid))
        return self._sign(s, nonce, opaque, {1: hashlib.sha384(b"switch bios").digest()})

    def entry(self, dev, transcript, uuid):
        return {"arch": "LS10" if dev.is_switch else "HOPPER", "uuid": uuid,
                "evidence": base64.b64encode(transcript).decode(),
                "certificate": base64.b64encode(dev.chain_pem()).decode()}

    def evidence(self, nonce, drop_switch=None, lock=None):
        """The `nvidia` additional evidence: the 8 GPUs, then the switches (one left out with
        drop_switch; switch 0 with another lock status with lock)."""
        lst = [self.entry(g, self.gpu_transcript(g, nonce), "GPU-%d" % i)
               for i, g in enumerate(self.gpus)]
        for i, s in enumerate(self.switches):
            if i == drop_switch:
                continue
            t = self.switch_transcript(s, nonce, **({"lock": lock} if lock and i == 0 else {}))
            lst.append(self.entry(s, t, "SW-%d" % i))
        return {"device_evidence_list": lst}
