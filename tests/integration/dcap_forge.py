"""dcap_forge: Intel DCAP quotes and collateral forged under a test root CA of our own.

Real Intel quotes and collateral cannot be re-signed, so the refusal paths that need a
*validly signed* but wrong document (a revoked PCK, a Revoked TCB level, a QE of the wrong
signer, an expired CRL ...) cannot be reached with them. This module builds the whole
thing from the public format descriptions instead, as an independent oracle for the
verifier (as/evidence/dcap_*.c):

  PKI       a test "Intel SGX Root CA", the PCK Platform and Processor CAs, a PCK leaf with
            the SGX extension (OID 1.2.840.113741.1.13.1) DER-encoded here per Intel's PCK
            Certificate and CRL Profile, the TCB signing certificate, the PCK CRL and the
            Root CA CRL;
  quote     SGX v3, TDX v4 and TDX v5 (TDX 1.0 or 1.5 body): header, body, attestation key,
            the QE report signed by the PCK leaf with report_data = SHA-256(attestation key ||
            QE auth data) || 32 zero bytes, and the quote signature over header || body;
  bundle    the collateral bundle of testdata/evidence/MANIFEST.md section 0, with TCB Info v3
            and QE Identity v2 texts signed (ECDSA P-256, raw r || s hex) by the TCB signing key.

Everything is deterministic except ECDSA nonces: keys are derived from fixed labels, serial
numbers and times are fixed. A test takes a `Scenario`, edits its plain-Python fields (the
TCB Info and QE Identity are dicts, the TD body and QE report are dicts of byte strings),
and writes it out with `Scenario.write(dir)`.

Run as a program (`/usr/bin/python3 dcap_forge.py OUTDIR`) it writes one good TDX v4 case:
quote.dat, collateral.json, root.pem and as-config.json for `evidence-verify --config`.

Uses Debian's python3-cryptography only (run it with /usr/bin/python3).
"""
import copy
import datetime
import hashlib
import json
import os
import struct
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

# ---- time ----------------------------------------------------------------------------------


def utc(s):
    """'2025-06-01T12:00:00Z' -> aware datetime."""
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def rfc3339(d):
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


# The verification time every scenario is built around, and the default collateral windows.
VERIFY_TIME = "2025-06-01T12:00:00Z"
TIMES = {
    "tcb_issue": "2025-05-20T08:00:00Z", "tcb_next": "2025-06-19T08:00:00Z",
    "qe_issue": "2025-05-21T09:00:00Z", "qe_next": "2025-06-20T09:00:00Z",
    "pck_crl_this": "2025-05-22T10:00:00Z", "pck_crl_next": "2025-06-21T10:00:00Z",
    "root_crl_this": "2025-04-01T00:00:00Z", "root_crl_next": "2026-04-01T00:00:00Z",
}

# ---- DER, written out by hand for the SGX extension ---------------------------------------


def der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def tlv(tag, content):
    return bytes([tag]) + der_len(len(content)) + content


def der_seq(*items):
    return tlv(0x30, b"".join(items))


def der_oid(dotted):
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for a in arcs[2:]:
        chunk = [a & 0x7F]
        a >>= 7
        while a:
            chunk.append(0x80 | (a & 0x7F))
            a >>= 7
        out += bytes(reversed(chunk))
    return tlv(0x06, bytes(out))


def der_uint(tag, n):
    """Non-negative INTEGER (0x02) or ENUMERATED (0x0a): minimal two's complement."""
    b = n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")
    if b[0] & 0x80:
        b = b"\x00" + b
    return tlv(tag, b)


def der_octets(b):
    return tlv(0x04, bytes(b))


def der_bool(v):
    return tlv(0x01, b"\xff" if v else b"\x00")


SGX_EXT_OID = "1.2.840.113741.1.13.1"


class PckExt:
    """The values of the PCK certificate's SGX extension (Intel PCK Certificate Profile)."""

    def __init__(self):
        self.ppid = bytes(range(0x10, 0x20))
        self.comp_svn = [3, 3, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0]  # sgxtcbcomp01..16svn
        self.pcesvn = 13
        self.cpusvn = bytes(self.comp_svn)
        self.pceid = b"\x00\x00"
        self.fmspc = bytes.fromhex("00906ed50000")
        self.sgx_type = 1  # 0 Standard, 1 Scalable, 2 Scalable with Integrity
        self.platform_instance_id = bytes.fromhex("0102030405060708090a0b0c0d0e0f10")  # None: absent
        self.config = (True, True, False)  # (dynamicPlatform, cachedKeys, SMTEnabled); None: absent

    def der(self):
        o = SGX_EXT_OID
        tcb = [der_seq(der_oid("%s.2.%d" % (o, i + 1)), der_uint(0x02, v))
               for i, v in enumerate(self.comp_svn)]
        tcb.append(der_seq(der_oid(o + ".2.17"), der_uint(0x02, self.pcesvn)))
        tcb.append(der_seq(der_oid(o + ".2.18"), der_octets(self.cpusvn)))
        items = [
            der_seq(der_oid(o + ".1"), der_octets(self.ppid)),
            der_seq(der_oid(o + ".2"), der_seq(*tcb)),
            der_seq(der_oid(o + ".3"), der_octets(self.pceid)),
            der_seq(der_oid(o + ".4"), der_octets(self.fmspc)),
            der_seq(der_oid(o + ".5"), der_uint(0x0A, self.sgx_type)),
        ]
        if self.platform_instance_id is not None:
            items.append(der_seq(der_oid(o + ".6"), der_octets(self.platform_instance_id)))
        if self.config is not None:
            names = ("1", "2", "3")
            items.append(der_seq(der_oid(o + ".7"), der_seq(
                *[der_seq(der_oid(o + ".7." + n), der_bool(v)) for n, v in zip(names, self.config)])))
        return der_seq(*items)


# ---- keys, certificates, CRLs --------------------------------------------------------------

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def key(label):
    """A P-256 private key derived from a label, so every run uses the same keys."""
    d = int.from_bytes(hashlib.sha256(b"ctrustee-dcap-forge:" + label.encode()).digest(), "big")
    return ec.derive_private_key(d % (P256_N - 1) + 1, ec.SECP256R1())


def serial(label):
    return int.from_bytes(hashlib.sha256(b"serial:" + label.encode()).digest()[:16], "big") >> 1


def name(cn):
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ctrustee forged test PKI (not Intel)"),
        x509.NameAttribute(NameOID.LOCALITY_NAME, "Santa Clara"),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CA"),
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
    ])


def raw_sig(priv, data):
    """ECDSA P-256 / SHA-256 as 64 bytes r || s (big-endian), the form quotes and Intel JSON use."""
    r, s = decode_dss_signature(priv.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def pub_xy(priv):
    pt = priv.public_key().public_bytes(serialization.Encoding.X962,
                                        serialization.PublicFormat.UncompressedPoint)
    return pt[1:]


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def make_cert(subject_cn, subject_key, issuer_name, issuer_key, label, not_before, not_after,
              ca, extra=()):
    b = (x509.CertificateBuilder()
         .subject_name(name(subject_cn))
         .issuer_name(issuer_name)
         .public_key(subject_key.public_key())
         .serial_number(serial(label))
         .not_valid_before(utc(not_before))
         .not_valid_after(utc(not_after))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                        critical=False))
    if ca:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                            critical=True)
    for ext, crit in extra:
        b = b.add_extension(ext, critical=crit)
    return b.sign(issuer_key, hashes.SHA256())


def make_crl(issuer_cert, issuer_key, revoked_serials, this_update, next_update, number):
    b = (x509.CertificateRevocationListBuilder()
         .issuer_name(issuer_cert.subject)
         .last_update(utc(this_update))
         .next_update(utc(next_update))
         .add_extension(x509.CRLNumber(number), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                        critical=False))
    for s in revoked_serials:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(s)
                                      .revocation_date(utc(this_update)).build())
    return b.sign(issuer_key, hashes.SHA256())


class PKI:
    """The test root and everything it certifies, built once per test program.

    `root` is the trusted root (give it to the verifier with dcap_verifier.root_ca_file);
    `other_root` has the same name and a different key, for chains the verifier must refuse.
    """

    def __init__(self):
        self.root_key, self.other_root_key = key("root"), key("other-root")
        self.root = make_cert("Intel SGX Root CA", self.root_key, name("Intel SGX Root CA"), self.root_key,
                              "root", "2020-01-01T00:00:00Z", "2049-12-31T23:59:59Z", True)
        self.other_root = make_cert("Intel SGX Root CA", self.other_root_key, name("Intel SGX Root CA"),
                                    self.other_root_key, "other-root", "2020-01-01T00:00:00Z",
                                    "2049-12-31T23:59:59Z", True)
        self.ca_key = {"platform": key("platform-ca"), "processor": key("processor-ca")}
        self.ca = {k: make_cert("Intel SGX PCK %s CA" % k.capitalize(), self.ca_key[k], self.root.subject,
                                self.root_key, k + "-ca", "2020-01-01T00:00:00Z", "2035-12-31T23:59:59Z", True)
                   for k in ("platform", "processor")}
        self.tcb_key = key("tcb-signing")
        self.tcb_cert = self.tcb_signing_cert("2024-01-01T00:00:00Z", "2031-12-31T23:59:59Z")
        self.pck_key = key("pck-leaf")
        self.att_key = key("attestation-key")

    def tcb_signing_cert(self, not_before, not_after, label="tcb-signing"):
        return make_cert("Intel SGX TCB Signing", self.tcb_key, self.root.subject, self.root_key, label,
                         not_before, not_after, False)

    def pck_leaf(self, ext, ca="platform", issuer_key=None, label="pck-leaf",
                 not_before="2024-01-01T00:00:00Z", not_after="2031-12-31T23:59:59Z"):
        """A PCK certificate carrying `ext` (PckExt), issued by the Platform or Processor CA (or,
        with issuer_key, by another key under that CA's name)."""
        sgx = x509.UnrecognizedExtension(x509.ObjectIdentifier(SGX_EXT_OID), ext.der())
        return make_cert("Intel SGX PCK Certificate", self.pck_key, self.ca[ca].subject,
                         issuer_key or self.ca_key[ca], label, not_before, not_after, False,
                         extra=[(sgx, False)])

    def rogue_ca(self, ca="platform"):
        """A PCK CA certificate with the right name signed by other_root's key."""
        return make_cert("Intel SGX PCK %s CA" % ca.capitalize(), self.ca_key[ca], self.other_root.subject,
                         self.other_root_key, ca + "-ca-rogue", "2020-01-01T00:00:00Z",
                         "2035-12-31T23:59:59Z", True)


# ---- quotes --------------------------------------------------------------------------------

INTEL_QE_VENDOR = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")

# (offset, size) of the fields of a TD report body (TDX 1.0; 1.5 appends the last two)
TD_FIELDS = {
    "tee_tcb_svn": (0, 16), "mr_seam": (16, 48), "mrsigner_seam": (64, 48), "seam_attributes": (112, 8),
    "td_attributes": (120, 8), "xfam": (128, 8), "mr_td": (136, 48), "mr_config_id": (184, 48),
    "mr_owner": (232, 48), "mr_owner_config": (280, 48), "rtmr0": (328, 48), "rtmr1": (376, 48),
    "rtmr2": (424, 48), "rtmr3": (472, 48), "report_data": (520, 64),
    "tee_tcb_svn2": (584, 16), "mr_servicetd": (600, 48),
}
# SGX report body (the enclave's in a v3 quote, and the QE report in every quote)
SGX_FIELDS = {
    "cpu_svn": (0, 16), "misc_select": (16, 4), "isv_ext_prod_id": (32, 16), "attributes": (48, 16),
    "mr_enclave": (64, 32), "mr_signer": (128, 32), "config_id": (192, 64), "isv_prod_id": (256, 2),
    "isv_svn": (258, 2), "config_svn": (260, 2), "isv_family_id": (304, 16), "report_data": (320, 64),
}


def pack_fields(layout, size, values):
    b = bytearray(size)
    for k, v in values.items():
        off, n = layout[k]
        if off + n > size:
            continue
        v = bytes(v)
        if len(v) != n:
            raise ValueError("%s must be %d bytes, not %d" % (k, n, len(v)))
        b[off:off + n] = v
    return bytes(b)


def u16(n):
    return struct.pack("<H", n)


def u32(n):
    return struct.pack("<I", n)


def pattern(label, n):
    """n recognisable bytes for a measurement field."""
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(("%s:%d" % (label, i)).encode()).digest()
        i += 1
    return out[:n]


# ---- TCB Info / QE Identity ----------------------------------------------------------------


def comps(svns):
    return [{"svn": v} for v in svns]


def tcb_level(sgx, pcesvn, tdx, status, date, advisories=None):
    lv = {"tcb": {"sgxtcbcomponents": comps(sgx), "pcesvn": pcesvn}, "tcbDate": date, "tcbStatus": status}
    if tdx is not None:
        lv["tcb"]["tdxtcbcomponents"] = comps(tdx)
    if advisories:
        lv["advisoryIDs"] = list(advisories)
    return lv


def isv_level(isvsvn, status, date, advisories=None):
    lv = {"tcb": {"isvsvn": isvsvn}, "tcbDate": date, "tcbStatus": status}
    if advisories:
        lv["advisoryIDs"] = list(advisories)
    return lv


ZERO48 = "00" * 48
SEAM_SIGNER = pattern("mrsigner-seam", 48)
QE_SIGNER = pattern("qe-mrsigner", 32)
TDQE_SIGNER = pattern("td-qe-mrsigner", 32)


class Scenario:
    """One quote and its collateral. Edit the fields, then write(dir).

    tee "tdx" (version 4, or 5 with body_type 2 = TDX 1.0 / 3 = TDX 1.5) or "sgx" (version 3).
    """

    def __init__(self, pki, tee="tdx", version=None, body_type=2):
        self.pki = pki
        self.tee = tee
        self.version = version or (4 if tee == "tdx" else 3)
        self.body_type = body_type
        self.ext = PckExt()
        self.pck_ca = "platform"
        self.times = dict(TIMES)
        # the certification data: chain = [leaf, CA, root] PEM; None entries use the defaults
        self.pck_chain = None
        self.pem_padding = b"\x00"
        self.header_user_data = pattern("user-data", 20)
        self.auth_data = bytes(range(32))
        # the TD report body or the SGX enclave report
        if tee == "tdx":
            self.body = {
                "tee_tcb_svn": bytes([5, 1, 2] + [0] * 13),
                "mr_seam": pattern("mr-seam", 48), "mrsigner_seam": SEAM_SIGNER,
                "seam_attributes": bytes(8), "td_attributes": bytes.fromhex("0000001000000000"),
                "xfam": bytes.fromhex("e702060000000000"), "mr_td": pattern("mr-td", 48),
                "mr_config_id": bytes(48), "mr_owner": bytes(48), "mr_owner_config": bytes(48),
                "rtmr0": pattern("rtmr0", 48), "rtmr1": pattern("rtmr1", 48), "rtmr2": bytes(48),
                "rtmr3": bytes(48), "report_data": pattern("td-report-data", 64),
                "tee_tcb_svn2": bytes([5, 1, 2] + [0] * 13), "mr_servicetd": bytes(48),
            }
        else:
            self.body = {
                "cpu_svn": bytes(self.ext.comp_svn), "misc_select": bytes(4),
                "attributes": bytes.fromhex("0700000000000000e700000000000000"),
                "mr_enclave": pattern("mr-enclave", 32), "mr_signer": pattern("enclave-signer", 32),
                "config_id": bytes(64), "isv_prod_id": u16(1), "isv_svn": u16(3),
                "report_data": pattern("enclave-report-data", 64),
            }
        # the QE's own report (report_data is filled in from the attestation key unless set here)
        self.qe_report = {
            "cpu_svn": bytes(self.ext.comp_svn), "misc_select": bytes(4),
            "attributes": bytes.fromhex("1100000000000000e700000000000000"),
            "mr_enclave": pattern("qe-mrenclave", 32),
            "mr_signer": TDQE_SIGNER if tee == "tdx" else QE_SIGNER,
            "isv_prod_id": u16(2 if tee == "tdx" else 1), "isv_svn": u16(8),
        }
        self.qe_report_data = None   # override of the 64-byte QE report data
        self.qe_report_signer = None  # key signing the QE report instead of the PCK leaf's
        self.quote_signer = None     # key signing the quote instead of the attestation key
        self.tcb_info = self.default_tcb_info()
        self.qe_identity = self.default_qe_identity()
        self.tcb_info_text = None    # exact text to sign instead of the dict's serialisation
        # revocation: serial numbers listed in the CRLs, and the CRL numbers
        self.pck_crl_revoked = [serial("pck-leaf-unrelated")]
        self.root_crl_revoked = [serial("unrelated-ca")]
        self.pck_crl_number, self.root_crl_number = 412, 7
        self.pck_crl_issuer = None   # "processor" for a CRL from the other CA
        self.tcb_signing_cert = None  # another TCB signing certificate (same key)

    # -- collateral texts --

    def default_tcb_info(self):
        tdx = self.tee == "tdx"
        sgx_hi = [3, 3, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0]
        sgx_lo = [2, 2, 2, 2, 3, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0]
        tdx_hi = [5, 0, 2] + [0] * 13
        tdx_lo = [3, 0, 2] + [0] * 13
        ti = {"id": "TDX" if tdx else "SGX", "version": 3,
              "issueDate": self.times["tcb_issue"], "nextUpdate": self.times["tcb_next"],
              "fmspc": "00906ED50000", "pceId": "0000", "tcbType": 0, "tcbEvaluationDataNumber": 17}
        if tdx:
            ti["tdxModule"] = {"mrsigner": SEAM_SIGNER.hex().upper(), "attributes": "0000000000000000",
                               "attributesMask": "FFFFFFFFFFFFFFFF"}
            ti["tdxModuleIdentities"] = [
                {"id": "TDX_03", "mrsigner": SEAM_SIGNER.hex().upper(), "attributes": "0000000000000000",
                 "attributesMask": "FFFFFFFFFFFFFFFF",
                 "tcbLevels": [isv_level(3, "UpToDate", "2024-03-13T00:00:00Z")]},
                {"id": "TDX_01", "mrsigner": SEAM_SIGNER.hex().upper(), "attributes": "0000000000000000",
                 "attributesMask": "FFFFFFFFFFFFFFFF",
                 "tcbLevels": [isv_level(4, "UpToDate", "2024-03-13T00:00:00Z"),
                               isv_level(2, "OutOfDate", "2023-08-09T00:00:00Z", ["INTEL-SA-00960"])]},
            ]
        ti["tcbLevels"] = [
            tcb_level(sgx_hi, 13, tdx_hi if tdx else None, "UpToDate", "2024-11-13T00:00:00Z"),
            tcb_level(sgx_lo, 11, tdx_lo if tdx else None, "OutOfDate", "2023-02-15T00:00:00Z",
                      ["INTEL-SA-00837", "INTEL-SA-00828"]),
            tcb_level(sgx_lo, 5, tdx_lo if tdx else None, "Revoked", "2018-01-04T00:00:00Z",
                      ["INTEL-SA-00106"]),
        ]
        return ti

    def default_qe_identity(self):
        tdx = self.tee == "tdx"
        return {"id": "TD_QE" if tdx else "QE", "version": 2,
                "issueDate": self.times["qe_issue"], "nextUpdate": self.times["qe_next"],
                "tcbEvaluationDataNumber": 16,
                "miscselect": "00000000", "miscselectMask": "FFFFFFFF",
                "attributes": "11000000000000000000000000000000",
                "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
                "mrsigner": (TDQE_SIGNER if tdx else QE_SIGNER).hex().upper(),
                "isvprodid": 2 if tdx else 1,
                "tcbLevels": [isv_level(8, "UpToDate", "2024-03-13T00:00:00Z"),
                              isv_level(6, "OutOfDate", "2023-08-09T00:00:00Z", ["INTEL-SA-00615"]),
                              isv_level(2, "Revoked", "2019-01-01T00:00:00Z", ["INTEL-SA-00202"])]}

    def level(self, i=0):
        return self.tcb_info["tcbLevels"][i]

    def module(self, mid):
        return next(m for m in self.tcb_info["tdxModuleIdentities"] if m["id"] == mid)

    # -- building --

    def chain(self):
        if self.pck_chain is not None:
            return self.pck_chain
        leaf = self.pki.pck_leaf(self.ext, self.pck_ca)
        return [leaf, self.pki.ca[self.pck_ca], self.pki.root]

    def body_bytes(self):
        if self.tee == "tdx":
            size = 648 if self.version == 5 and self.body_type == 3 else 584
            return pack_fields(TD_FIELDS, size, self.body)
        return pack_fields(SGX_FIELDS, 384, self.body)

    def header_bytes(self):
        qe_svn = int.from_bytes(self.qe_report.get("isv_svn", b"\0\0"), "little")
        return (u16(self.version) + u16(2) + u32(0x81 if self.tee == "tdx" else 0) + u16(qe_svn)
                + u16(self.ext.pcesvn) + INTEL_QE_VENDOR + self.header_user_data)

    def quote(self):
        pki = self.pki
        signed = self.header_bytes()
        body = self.body_bytes()
        if self.version == 5:
            signed += u16(self.body_type) + u32(len(body))
        signed += body
        ak = pub_xy(pki.att_key)
        qe = dict(self.qe_report)
        qe["report_data"] = self.qe_report_data if self.qe_report_data is not None else \
            hashlib.sha256(ak + self.auth_data).digest() + bytes(32)
        qe_report = pack_fields(SGX_FIELDS, 384, qe)
        qe_sig = raw_sig(self.qe_report_signer or pki.pck_key, qe_report)
        chain_pem = b"".join(pem(c) for c in self.chain()) + self.pem_padding
        qe_part = (qe_report + qe_sig + u16(len(self.auth_data)) + self.auth_data
                   + u16(5) + u32(len(chain_pem)) + chain_pem)
        if self.version != 3:
            qe_part = u16(6) + u32(len(qe_part)) + qe_part
        sig = raw_sig(self.quote_signer or pki.att_key, signed)
        sig_data = sig + ak + qe_part
        return signed + u32(len(sig_data)) + sig_data

    def bundle(self):
        pki = self.pki
        t = self.times
        ti = self.tcb_info_text or json.dumps(self.tcb_info, separators=(",", ":"))
        qi = json.dumps(self.qe_identity, separators=(",", ":"))
        crl_ca = self.pck_crl_issuer or self.pck_ca
        pck_crl = make_crl(pki.ca[crl_ca], pki.ca_key[crl_ca], self.pck_crl_revoked, t["pck_crl_this"],
                           t["pck_crl_next"], self.pck_crl_number)
        root_crl = make_crl(pki.root, pki.root_key, self.root_crl_revoked, t["root_crl_this"],
                            t["root_crl_next"], self.root_crl_number)
        tcb_chain = (pem(self.tcb_signing_cert or pki.tcb_cert) + pem(pki.root)).decode()
        der = serialization.Encoding.DER
        return {
            "pck_crl_issuer_chain": (pem(pki.ca[crl_ca]) + pem(pki.root)).decode(),
            "pck_crl": pck_crl.public_bytes(der).hex(),
            "root_ca_crl": root_crl.public_bytes(der).hex(),
            "tcb_info_issuer_chain": tcb_chain,
            "tcb_info": ti,
            "tcb_info_signature": raw_sig(pki.tcb_key, ti.encode()).hex(),
            "qe_identity_issuer_chain": tcb_chain,
            "qe_identity": qi,
            "qe_identity_signature": raw_sig(pki.tcb_key, qi.encode()).hex(),
        }

    def write(self, d, tag="case"):
        """Write <tag>.quote and <tag>.json into d; returns (quote_path, bundle_path)."""
        qp, bp = os.path.join(d, tag + ".quote"), os.path.join(d, tag + ".json")
        with open(qp, "wb") as f:
            f.write(self.quote())
        with open(bp, "w") as f:
            json.dump(self.bundle(), f, indent=1)
        return qp, bp


def write_trust(pki, d):
    """root.pem and an AS config that trusts it; returns the config's path."""
    rp, cp = os.path.join(d, "root.pem"), os.path.join(d, "as-config.json")
    with open(rp, "wb") as f:
        f.write(pem(pki.root))
    with open(cp, "w") as f:
        json.dump({"verifier_config": {"dcap_verifier": {"collateral_service": "file:///dev/null",
                                                         "root_ca_file": rp}}}, f)
    return cp


def copy_scenario(s):
    """A deep copy sharing the (immutable) PKI."""
    pki, s.pki = s.pki, None
    try:
        c = copy.deepcopy(s)
    finally:
        s.pki = pki
    c.pki = pki
    return c


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: dcap_forge.py OUTDIR   (writes quote.dat, collateral.json, root.pem, as-config.json)")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    pki = PKI()
    s = Scenario(pki)
    q, b = s.write(out, "case")
    os.replace(q, os.path.join(out, "quote.dat"))
    os.replace(b, os.path.join(out, "collateral.json"))
    cfg = write_trust(pki, out)
    print("evidence-verify --tee tdx --evidence %s/quote.dat --collateral %s/collateral.json --config %s --time %s"
          % (out, out, cfg, VERIFY_TIME))
