"""evidence-verify, the operator's tool: exit 0 with the policy input (as-rvps.md §2.5) on
success, exit 1 with one line saying why on refusal, exit 2 on a usage error."""
import base64
import hashlib
import json
import os
import subprocess

import harness

EV = os.path.join(harness.BIN, "evidence-verify")


def run(*args):
    r = subprocess.run([EV] + list(args), capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout, r.stderr


def main():
    t = harness.Tap()
    d = harness.tmpdir("evv-")
    digest = hashlib.sha384(b'{"nonce":"n","tee-pubkey":{}}').digest()
    path = os.path.join(d, "sample.json")
    with open(path, "w") as f:
        json.dump({"svn": "1", "report_data": base64.b64encode(digest).decode()}, f)

    rc, out, err = run("--tee", "sample", "--evidence", path, "--report-data", digest.hex(),
                       "--init-data", "00" * 32)
    t.ok(rc == 0, "sample evidence bound to its report data is accepted", err + out)
    if rc == 0:
        doc = json.loads(out)
        t.eq(sorted(doc), ["init_data", "init_data_claims", "report_data", "runtime_data_claims",
                           "sample"], "policy input has the §2.5 keys")
        t.eq(doc["sample"], {"debug": False, "launch_digest": "abcde",
                             "platform_version": {"major": 1, "minor": 4}, "svn": "1"},
             "sample claims as Trustee's sample verifier")
        t.eq(doc["init_data"], base64.b64encode(b"\0" * 32).decode(), "init_data is b64 of the hash")

    rc, out, _ = run("--tee", "sample", "--evidence", path, "--report-data", "00" * 48)
    t.ok(rc == 1 and out.startswith("refused:") and "report_data" in out,
         "sample evidence for other report data is refused with the reason", out)

    snp = harness.testdata("evidence", "snp", "trustee")
    rc, out, _ = run("--tee", "snp", "--evidence", os.path.join(snp, "test-report.bin"),
                     "--vcek", os.path.join(snp, "test-vcek.der"), "--time", "2025-01-01T00:00:00Z")
    t.ok(rc == 0 and json.loads(out)["snp"]["measurement"].startswith("a1f39304"),
         "raw SNP report with its VCEK verifies at a pinned time", out)
    rc, out, _ = run("--tee", "snp", "--evidence", os.path.join(snp, "test-report.bin"),
                     "--vcek", os.path.join(snp, "test-vcek.der"), "--time", "2031-01-01T00:00:00Z")
    t.ok(rc == 1 and "expired" in out, "the same report after the VCEK expired is refused", out)

    rc, out, _ = run("--tee", "nosuchtee", "--evidence", path)
    t.ok(rc == 1 and "no verifier" in out, "unknown TEE is refused", out)
    rc, _, err = run("--tee", "sample", "--evidence", path, "--time", "yesterday")
    t.ok(rc == 2 and "RFC 3339" in err, "bad --time is a usage error", err)
    rc, _, err = run("--evidence", path)
    t.ok(rc == 2 and "usage" in err, "missing --tee is a usage error", err)
    rc, out, _ = run("--tee", "sample", "--evidence", os.path.join(d, "missing.json"))
    t.ok(rc == 1 and "cannot open" in out, "unreadable evidence file is refused", out)
    t.done()


if __name__ == "__main__":
    main()
