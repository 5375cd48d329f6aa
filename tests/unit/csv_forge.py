#!/usr/bin/python3
"""Forge a Hygon CSV chain and reports under a test HRK, for tests/unit/test_csv.c.

The SM2/SM3 signatures are made by the `openssl` CLI (pkeyutl -rawin -digest sm3 with the
signer's user id as distid), the byte layouts written here from the csv-rs structure sizes,
so the C parser and verifier are checked against an independent signer. Writes into OUTDIR:
  hrk.cert                               test HRK (832 bytes, self-signed)
  hsk_cek/<SERIAL>/hsk_cek.cert          HSK (signed by the HRK) + CEK (signed by the HSK)
  evidence_v1.json                       v1 report (masked with anonce), no hsk_cek inside
  evidence_v2.json                       v2 report, hsk_cek inside the evidence
  evidence_v2_eventlog.json              v2 report whose rtmr1..4 are the SM3 replay of a
                                         synthetic CC event log carried as cc_eventlog
  evidence_v2_eventlog_bad3.json         the same report with a log whose last CC-MR 3 event
                                         was measured differently (does not replay to rtmr3)
usage: csv_forge.py OUTDIR REPORT_DATA_HEX SERIAL
"""
import base64
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile

from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

HRK, HSK, OCA, PEK, CEK = 0x0000, 0x0013, 0x1001, 0x1002, 0x1004
SM2_SA = 4
TMP = tempfile.mkdtemp(prefix="csv-forge-")


def run(*args, data=None):
    return subprocess.run(args, input=data, check=True, capture_output=True).stdout


class Key:
    n = 0

    def __init__(self, uid):
        Key.n += 1
        os.makedirs(TMP, exist_ok=True)  # a closed forge may be followed by another
        self.path = os.path.join(TMP, "k%d.pem" % Key.n)
        run("openssl", "genpkey", "-algorithm", "SM2", "-out", self.path)
        der = run("openssl", "pkey", "-in", self.path, "-pubout", "-outform", "DER")
        pt = der[-65:]
        assert pt[0] == 4
        self.x, self.y = pt[1:33], pt[33:65]
        self.uid = uid.encode()

    def pub(self):  # group u32, x[72], y[72], little-endian
        return struct.pack("<I", 3) + self.x[::-1] + bytes(40) + self.y[::-1] + bytes(40)

    def uid_field(self):
        return struct.pack("<H", len(self.uid)) + self.uid.ljust(254, b"\0")

    def sign(self, msg):
        m = os.path.join(TMP, "msg")
        open(m, "wb").write(msg)
        der = run("openssl", "pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey",
                  self.path, "-pkeyopt", "distid:" + self.uid.decode(), "-in", m)
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "little") + bytes(40) + s.to_bytes(32, "little") + bytes(40)


def ca_cert(key, usage, signer):
    body = struct.pack("<I", 1) + os.urandom(16) + os.urandom(16) + struct.pack("<I", usage)
    body += bytes(24) + key.pub() + key.uid_field() + bytes(108)
    assert len(body) == 576
    c = body + signer.sign(body) + bytes(112)
    assert len(c) == 832
    return c


def csv_cert(key, usage, signers):
    body = struct.pack("<IBBHII", 1, 1, 3, 0, usage, SM2_SA) + key.pub() + key.uid_field()
    body += bytes(16) + bytes(608)
    assert len(body) == 1044
    sigs = b""
    for s_usage, s_key in signers:
        sigs += struct.pack("<II", s_usage, SM2_SA) + s_key.sign(body) + bytes(368)
    while len(sigs) < 1040:
        sigs += bytes(520)
    return body + sigs


def arr(b):
    return list(b)


def ca_json(c):
    u = lambda o, f="<I": struct.unpack_from(f, c, o)[0]
    return {"body": {"preamble": {"ver": u(0), "data": {"kid": arr(c[4:20]), "sid": arr(c[20:36]),
                                                        "usage": u(36), "reserved": arr(c[40:64])}},
                     "pubkey": {"g": u(64), "x": arr(c[68:140]), "y": arr(c[140:212])},
                     "uid_size": u(212, "<H"), "user_id": arr(c[214:468]),
                     "reserved": arr(c[468:576])},
            "signature": {"r": arr(c[576:648]), "s": arr(c[648:720])},
            "_reserved": arr(c[720:832])}


def cert_json(c):
    u = lambda o, f="<I": struct.unpack_from(f, c, o)[0]
    sigs = []
    for i in range(2):
        o = 1044 + 520 * i
        sigs.append({"usage": u(o), "algo": u(o + 4),
                     "signature": {"r": arr(c[o + 8:o + 80]), "s": arr(c[o + 80:o + 152])},
                     "_reserved": arr(c[o + 152:o + 520])})
    return {"body": {"ver": u(0), "data": {
        "firmware": {"major": c[4], "minor": c[5]}, "reserved1": u(6, "<H"),
        "pubkey": {"usage": u(8), "algo": u(12),
                   "key": {"g": u(16), "x": arr(c[20:92]), "y": arr(c[92:164])}},
        "uid_size": u(164, "<H"), "user_id": arr(c[166:420]), "sid": arr(c[420:436]),
        "reserved2": arr(c[436:1044])}}, "sigs": sigs}


def mask(b, anonce):
    a = struct.pack("<I", anonce)
    return bytes(x ^ a[i % 4] for i, x in enumerate(b))


def report_v1(pek_key, pek, rd, serial, anonce=0x5dc7d726):
    policy = 0x01030001 | (1 << 5)  # nodbg, csv, hsk 0, cek 0, api 3.1
    fields = os.urandom(32) + os.urandom(16) + os.urandom(16) + rd + os.urandom(16) + os.urandom(32)
    fields += struct.pack("<III", policy, 0x1002, SM2_SA)
    masked = mask(fields, anonce)
    signed = masked[:180]
    tee = masked + struct.pack("<I", anonce) + pek_key.sign(signed)
    assert len(tee) == 336
    signer = pek + serial.encode().ljust(64, b"\0") + bytes(64)  # as the attester restores it
    return (tee + signer).ljust(4096, b"\0")


def sm3(b):
    return hashlib.new("sm3", b).digest()


EV_SEPARATOR, EV_IPL, EV_EFI_ACTION = 0x4, 0xd, 0x80000007
SM3_ALG = 0x0012


def sm3_eventlog(events):
    """A TCG2 crypto-agile log declaring SM3 only; events = [(index, type, data, measured)]
    where `measured` is what the SM3 digest covers (normally data itself)."""
    spec = b"Spec ID Event03\0" + struct.pack("<IBBBBI", 0, 0, 2, 0, 2, 1)
    spec += struct.pack("<HH", SM3_ALG, 32) + b"\0"
    log = struct.pack("<II", 0, 3) + bytes(20) + struct.pack("<I", len(spec)) + spec
    for index, typ, data, measured in events:
        log += struct.pack("<IIIH", index, typ, 1, SM3_ALG) + sm3(measured)
        log += struct.pack("<I", len(data)) + data
    return log + b"\xff" * 8


def replay(events):
    mr = {i: bytes(32) for i in range(5)}
    for index, _, _, measured in events:
        mr[index] = sm3(mr[index] + sm3(measured))
    return mr


BOOT_EVENTS = [
    (1, EV_SEPARATOR, bytes(4), bytes(4)),
    (2, EV_EFI_ACTION, b"Calling EFI Application from Boot Option",
     b"Calling EFI Application from Boot Option"),
    (2, EV_SEPARATOR, bytes(4), bytes(4)),
    (3, EV_IPL, b"grub_cmd: linux /vmlinuz root=/dev/vda1\0",
     b"grub_cmd: linux /vmlinuz root=/dev/vda1\0"),
    (3, EV_IPL, b"kernel_cmdline: /vmlinuz root=/dev/vda1\0",
     b"kernel_cmdline: /vmlinuz root=/dev/vda1\0"),
    (4, EV_EFI_ACTION, b"csv guest ready", b"csv guest ready"),
]


def report_v2(pek_key, pek, rd, serial, rtmrs=None):
    fields = os.urandom(32) + os.urandom(16) + os.urandom(16) + rd + os.urandom(16) + os.urandom(32)
    fields += struct.pack("<IIIIH", 0x01040041, 0x1002, SM2_SA, 2097, 1) + bytes(14)
    rtmrs = rtmrs or [os.urandom(32) for _ in range(5)]
    fields += b"".join(rtmrs) + bytes(656)
    assert len(fields) == 1024
    tee = fields + pek_key.sign(fields)
    return (tee + pek + serial.encode().ljust(64, b"\0") + bytes(64)).ljust(4096, b"\0")


class Chip:
    """One test HRK and one chip's HSK, CEK and PEK, written into `out` at once (hrk.cert,
    hsk_cek/<serial>/hsk_cek.cert); evidence made later for any report data (the KBS's nonce
    is known only after /auth)."""

    def __init__(self, out, serial):
        self.serial = serial
        hrk, hsk, self.cek, self.pek, oca = (Key("HYGON-SSD-HRK"), Key("HYGON-SSD-HSK"),
                                             Key("HYGON-SSD-CEK"), Key("HYGON-SSD-PEK"),
                                             Key("HYGON-SSD-OCA"))
        self.hsk_c = ca_cert(hsk, HSK, hrk)
        self.cek_c = csv_cert(self.cek, CEK, [(HSK, hsk)])
        self.pek_c = csv_cert(self.pek, PEK, [(CEK, self.cek), (OCA, oca)])
        self.hrk_path = os.path.join(out, "hrk.cert")
        self.hsk_cek_dir = os.path.join(out, "hsk_cek")
        open(self.hrk_path, "wb").write(ca_cert(hrk, HRK, hrk))
        os.makedirs(os.path.join(self.hsk_cek_dir, serial), exist_ok=True)
        open(os.path.join(self.hsk_cek_dir, serial, "hsk_cek.cert"), "wb").write(
            self.hsk_c + self.cek_c)

    def _sn(self):
        return arr(self.serial.encode().ljust(64, b"\0"))

    def v1(self, rd):
        rd = rd[:64].ljust(64, b"\0")
        return {"attestation_report": {"magic": [0] * 16, "flags": 0,
                                       "data": arr(report_v1(self.pek, self.pek_c, rd,
                                                             self.serial))},
                "cert_chain": {"pek": cert_json(self.pek_c)}, "serial_number": self._sn()}

    def v2(self, rd, events=None, inline_hsk_cek=True, measured=None):
        """A v2 report; with `events` its rtmr1..4 are their SM3 replay and the log goes along
        as cc_eventlog (`measured`, if given, replaces the events in the log only)."""
        rd = rd[:64].ljust(64, b"\0")
        rtmrs = None
        if events is not None:
            mr = replay(events)
            rtmrs = [os.urandom(32)] + [mr[i] for i in range(1, 5)]
        chain = {"pek": cert_json(self.pek_c)}
        if inline_hsk_cek:
            chain["hsk_cek"] = {"hsk": ca_json(self.hsk_c), "cek": cert_json(self.cek_c)}
        ev = {"attestation_report": {"magic": arr(b"ATTESTATION_EXT\0"), "flags": 1,
                                     "data": arr(report_v2(self.pek, self.pek_c, rd, self.serial,
                                                           rtmrs))},
              "cert_chain": chain, "serial_number": self._sn()}
        if events is not None:
            ev["cc_eventlog"] = base64.b64encode(sm3_eventlog(measured or events)).decode()
        return ev

    def close(self):
        run("rm", "-rf", TMP)


def tampered_boot_events():
    """BOOT_EVENTS with the last CC-MR 3 event measured differently (rtmr3 will not replay)."""
    bad = list(BOOT_EVENTS)
    i, t, d, _ = bad[4]
    bad[4] = (i, t, d, b"kernel_cmdline: /vmlinuz root=/dev/vda1 init=/bin/sh\0")
    return bad


def main():
    out, rd, serial = sys.argv[1], bytes.fromhex(sys.argv[2]), sys.argv[3]
    c = Chip(out, serial)
    dump = lambda ev, name: json.dump(ev, open(os.path.join(out, name), "w"))
    dump(c.v1(rd), "evidence_v1.json")
    dump(c.v2(rd), "evidence_v2.json")
    dump(c.v2(rd, BOOT_EVENTS), "evidence_v2_eventlog.json")
    dump(c.v2(rd, BOOT_EVENTS, measured=tampered_boot_events()),
         "evidence_v2_eventlog_bad3.json")
    c.close()


if __name__ == "__main__":
    main()
