#!/usr/bin/python3
"""Forge Hygon DCU attestation reports under a test HRK, for tests/unit/test_hygon_dcu.c.

No real DCU evidence exists in the shared testdata, so the reports are made here: one test
HRK and HSK, one CEK per chip (signed by the HSK), and per chip a 252-byte report body
(version, chip_id[16], user_data[64], measure[32], reserved[128], sig_usage, sig_algo; the
csv-rs `api::dcu::Body` layout) signed SM2/SM3 by that chip's CEK with the CEK's user id, the
signature as r[72] ‖ s[72] little-endian. Signing goes through the `openssl` CLI via
csv_forge.py, so the C verifier is checked against an independent signer. Writes into OUTDIR:
  hrk.cert                          the test HRK
  certs/<CHIP>_hsk_cek.cert         each chip's HSK+CEK, the DCU local-directory layout
  kds/<CHIP>/hsk_cek.cert           the same pairs as hygon_kds_server.py serves them
  evidence.json                     {"attestation_reports": [one report per CHIP, in order]}
usage: dcu_forge.py OUTDIR REPORT_DATA_HEX CHIP [CHIP...]
"""
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import csv_forge as cf  # noqa: E402

DCU_BODY_LEN = 252


def body(chip, rd, measure):
    b = struct.pack("<I", 1) + chip.encode().ljust(16, b"\0") + rd + measure + bytes(128)
    b += struct.pack("<II", cf.CEK, cf.SM2_SA)
    assert len(b) == DCU_BODY_LEN
    return b


def report_json(b, sig):
    u = lambda o: struct.unpack_from("<I", b, o)[0]
    return {"body": {"version": u(0), "chip_id": list(b[4:20]), "user_data": list(b[20:84]),
                     "measure": list(b[84:116]), "reserved": list(b[116:244]),
                     "sig_usage": u(244), "sig_algo": u(248)},
            "sig": {"r": list(sig[:72]), "s": list(sig[72:])}}


class Forge:
    """One test HRK and HSK, a CEK per chip; files written into `out` at once, reports made
    for any report data later (the KBS's nonce is known only after /auth)."""

    def __init__(self, out, chips):
        self.chips = chips
        hrk, self.hsk = cf.Key("HYGON-SSD-HRK"), cf.Key("HYGON-SSD-HSK")
        hsk_c = cf.ca_cert(self.hsk, cf.HSK, hrk)
        self.hrk_path = os.path.join(out, "hrk.cert")
        self.certs = os.path.join(out, "certs")
        open(self.hrk_path, "wb").write(cf.ca_cert(hrk, cf.HRK, hrk))
        os.makedirs(self.certs, exist_ok=True)
        self.ceks = []
        for chip in chips:
            cek = cf.Key("HYGON-SSD-CEK")
            pair = hsk_c + cf.csv_cert(cek, cf.CEK, [(cf.HSK, self.hsk)])
            open(os.path.join(self.certs, chip + "_hsk_cek.cert"), "wb").write(pair)
            os.makedirs(os.path.join(out, "kds", chip), exist_ok=True)
            open(os.path.join(out, "kds", chip, "hsk_cek.cert"), "wb").write(pair)
            self.ceks.append(cek)

    def measure(self, i):
        return bytes([i + 1]) * 32

    def evidence(self, rd):
        rd = rd[:64].ljust(64, b"\0")
        reports = []
        for i, (chip, cek) in enumerate(zip(self.chips, self.ceks)):
            b = body(chip, rd, self.measure(i))
            reports.append(report_json(b, cek.sign(b)))
        return {"attestation_reports": reports}

    def close(self):
        cf.run("rm", "-rf", cf.TMP)


def main():
    out, rd, chips = sys.argv[1], bytes.fromhex(sys.argv[2]), sys.argv[3:]
    f = Forge(out, chips)
    json.dump(f.evidence(rd), open(os.path.join(out, "evidence.json"), "w"))
    f.close()


if __name__ == "__main__":
    main()
