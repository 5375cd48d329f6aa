"""Real TPM quotes from swtpm + tpm2-tools through the `tpm` verifier (evidence-verify):
nonce and PCR8 init-data binding accepted, and every tampering refused with its reason."""
import base64
import copy
import hashlib
import json
import os
import subprocess

import harness
from swtpm import SwTpm

EV = os.path.join(harness.BIN, "evidence-verify")


def verify(evidence, report_data=None, init_data=None):
    path = os.path.join(harness.tmpdir("ev-"), "ev.json")
    with open(path, "w") as f:
        json.dump(evidence, f)
    args = [EV, "--tee", "tpm", "--evidence", path]
    if report_data is not None:
        args += ["--report-data", report_data.hex()]
    if init_data is not None:
        args += ["--init-data", init_data.hex()]
    r = subprocess.run(args, capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout


def flip_b64(s, index):
    raw = bytearray(base64.b64decode(s))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def main():
    t = harness.Tap()
    tpm = SwTpm().start()
    init_hash = hashlib.sha256(b"version = \"0.1.0\"\nalgorithm = \"sha256\"\n").digest()
    tpm.extend_pcr8(init_hash)
    report = hashlib.sha384(b"runtime data of this test").digest()  # 48 bytes, as the KBS sends
    nonce = report[:32]  # the tpm verifier resizes report data to 32 bytes
    ev = tpm.quote(nonce)

    rc, out = verify(ev, report, init_hash)
    t.ok(rc == 0, "fresh swtpm quote verifies with its nonce and init data", out)
    if rc == 0:
        claims = json.loads(out)
        t.eq(claims["report_data"], nonce.hex(), "report_data claim is the quoted nonce")
        want8 = hashlib.sha256(b"\0" * 32 + init_hash).hexdigest()
        t.eq(claims["tpm"].get("pcr08"), want8, "pcr08 is SHA-256(0^32 || init-data hash)")
        t.eq(claims["init_data"], want8, "init_data claim is PCR8")
        t.eq(claims["tpm"]["ak_public"], ev["ak_public"], "ak_public is passed to the policy")
        t.ok(len([k for k in claims["tpm"] if k.startswith("pcr")]) == 24, "all 24 PCRs claimed")

    rc, out = verify(ev, hashlib.sha384(b"another session").digest(), init_hash)
    t.ok(rc == 1 and "nonce" in out, "quote for another nonce is refused", out)

    rc, out = verify(ev, report, hashlib.sha256(b"other init data").digest())
    t.ok(rc == 1 and "PCR8" in out, "other init data is refused (PCR8)", out)

    rc, out = verify(ev, report, hashlib.sha384(b"x").digest())
    t.ok(rc == 1 and "32-byte" in out, "a 48-byte init-data hash cannot bind PCR8", out)

    bad = copy.deepcopy(ev)
    bad["tpm_quote"]["message"] = flip_b64(ev["tpm_quote"]["message"], 40)
    rc, out = verify(bad, report, init_hash)
    t.ok(rc == 1 and "signature" in out, "flipped quote byte is refused", out)

    bad = copy.deepcopy(ev)
    bad["tpm_quote"]["signature"] = flip_b64(ev["tpm_quote"]["signature"], 10)
    rc, out = verify(bad, report, init_hash)
    t.ok(rc == 1 and "signature" in out, "flipped signature byte is refused", out)

    bad = copy.deepcopy(ev)
    pcrs = bad["tpm_quote"]["pcrs"]
    pcrs[7] = ("1" if pcrs[7][0] != "1" else "2") + pcrs[7][1:]
    rc, out = verify(bad, report, init_hash)
    t.ok(rc == 1 and "PCR" in out, "a PCR value other than the quoted digest is refused", out)

    bad = copy.deepcopy(ev)
    bad["tpm_quote"]["pcrs"] = ev["tpm_quote"]["pcrs"][:23]
    rc, out = verify(bad, report, init_hash)
    t.ok(rc == 1 and "PCR" in out, "a missing PCR value is refused", out)

    # a second AK on the same TPM: its key cannot verify the first AK's quote
    other = SwTpm().start()
    other.create_ak()
    bad = copy.deepcopy(ev)
    bad["ak_public"] = other.ak_public
    rc, out = verify(bad, report, init_hash)
    t.ok(rc == 1 and "signature" in out, "quote checked against another AK is refused", out)

    bad = copy.deepcopy(ev)
    bad["ak_public"] = "not base64!"
    rc, out = verify(bad, report, init_hash)
    t.ok(rc == 1 and "ak_public" in out, "malformed ak_public is refused", out)

    bad = copy.deepcopy(ev)
    bad["tpm_quote"]["message"] = base64.b64encode(b"\xff\x54\x43\x47\x80\x18\x00").decode()
    rc, out = verify(bad, report, init_hash)
    t.ok(rc == 1, "truncated TPMS_ATTEST is refused", out)
    t.done()


if __name__ == "__main__":
    main()
