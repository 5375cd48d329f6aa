"""Every Intel case of testdata/evidence/MANIFEST.md through evidence-verify at its pinned time:
the asserted TCB status and advisories, the parsed fields of expected_values.json and Trustee's
parse_tdx_claims_expected.json, and each negative case refused with its reason."""
import json
import os
import subprocess

import harness

EV = os.path.join(harness.BIN, "evidence-verify")
E = harness.testdata("evidence")
TDX, SGX = os.path.join(E, "tdx"), os.path.join(E, "sgx")
COLL = {
    "qvl-tdx": (os.path.join(TDX, "dcap-qvl", "tdx_quote_collateral.json"), "2025-07-19T10:00:34Z"),
    "qvl-sgx": (os.path.join(SGX, "dcap-qvl", "sgx_quote_collateral.json"), "2025-07-19T10:01:17Z"),
    "qvl-v5": (os.path.join(TDX, "dcap-qvl", "tdx_quote_outdated_collateral.json"),
               "2026-03-20T10:41:14Z"),
    "gtg-2023": (os.path.join(TDX, "go-tdx-guest", "collateral_2023.json"), "2023-07-01T01:00:00Z"),
}


def run(*args):
    r = subprocess.run([EV] + list(args), capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def verify(tee, quote, coll, time=None, *extra):
    path, pinned = COLL[coll]
    return run("--tee", tee, "--evidence", quote, "--collateral", path, "--time", time or pinned,
               *extra)


def claims(out, tee):
    return json.loads(out)[tee]


def positive(t):
    q = os.path.join(TDX, "dcap-qvl", "tdx_quote")
    rc, out, err = verify("tdx", q, "qvl-tdx")
    if t.ok(rc == 0, "dcap-qvl TDX v4 quote verifies with its collateral", out + err):
        c = claims(out, "tdx")
        t.eq((c["tcb_status"], c["advisory_ids"]), ("UpToDate", []), "dcap-qvl TDX: UpToDate, no advisories")
        t.eq((c["latest_issue_date"], c["earliest_expiration_date"]),
             ("2025-06-19T10:32:27Z", "2025-07-19T10:00:35Z"), "dcap-qvl TDX: collateral window as MANIFEST")
        t.eq(c["collateral_expiration_status"], "0", "no collateral expired")
    rc, out, err = verify("sgx", os.path.join(SGX, "dcap-qvl", "sgx_quote"), "qvl-sgx")
    if t.ok(rc == 0, "dcap-qvl SGX v3 quote verifies with its collateral", out + err):
        c = claims(out, "sgx")
        t.eq((c["tcb_status"], c["advisory_ids"]),
             ("ConfigurationAndSWHardeningNeeded", ["INTEL-SA-00289", "INTEL-SA-00615"]),
             "dcap-qvl SGX: ConfigurationAndSWHardeningNeeded with INTEL-SA-00289/00615")
        t.eq(c["sgx_type"], "Standard", "SGX Processor-CA PCK: sgx_type Standard")
        t.ok("platform_instance_id" not in c, "Processor-CA PCK has no platform_instance_id")
    rc, out, err = verify("tdx", os.path.join(TDX, "go-tdx-guest", "quote_v5_sample.dat"), "qvl-v5")
    if t.ok(rc == 0, "go-tdx-guest v5 quote verifies with dcap-qvl's 2026 collateral", out + err):
        c = claims(out, "tdx")
        t.eq(c["tcb_status"], "UpToDate", "go-tdx-guest v5: UpToDate")
        t.eq((c["quote"]["type"], c["quote"]["size"]), ("0300", "88020000"), "v5 body type and size claims")
        t.eq(c["tcb_date"], "2024-11-13T00:00:00Z", "go-tdx-guest v5: platform tcbDate 2024-11-13")
    q4 = os.path.join(TDX, "trustee", "tdx_quote_4.dat")
    rc, out, err = verify("tdx", q4, "gtg-2023")
    if t.ok(rc == 0, "trustee q4 verifies with go-tdx-guest's 2023 collateral", out + err):
        c = claims(out, "tdx")
        t.eq(c["tcb_status"], "UpToDate", "trustee q4: UpToDate")
        t.eq(c["td_attributes"]["debug"], True, "trustee q4 is a debug TD, visible as td_attributes.debug")
        want = json.load(open(os.path.join(TDX, "trustee", "parse_tdx_claims_expected.json")))
        for k in ("quote", "td_attributes", "platform_instance_id"):
            t.eq(c[k], want[k], "trustee q4 claim %s equals parse_tdx_claims_expected.json" % k)
        doc = json.loads(out)
        t.eq((doc["report_data"], doc["init_data"]), (want["report_data"], want["init_data"]),
             "report_data and init_data hoisted as Trustee's")
        rd = want["report_data"]
        rc, out, _ = verify("tdx", q4, "gtg-2023", None, "--report-data", rd, "--init-data", "00" * 48)
        t.ok(rc == 0, "bound to its report data and a zero init-data hash", out)
        rc, out, _ = verify("tdx", q4, "gtg-2023", None, "--report-data", "ab" * 64)
        t.ok(rc == 1 and "report_data does not match" in out, "other report data is refused", out)
        rc, out, _ = verify("tdx", q4, "gtg-2023", None, "--init-data", "ab" * 32)
        t.ok(rc == 1 and "MRCONFIGID" in out, "other init-data hash is refused", out)
        ccel = os.path.join(TDX, "trustee", "CCEL_data")
        rc, out, err = run("--tee", "tdx", "--evidence", q4, "--event-log", ccel, "--parse-only")
        t.ok(rc == 0 and claims(out, "tdx").get("uefi_event_logs") == want["uefi_event_logs"],
             "trustee CCEL_data decodes to parse_tdx_claims_expected.json's uefi_event_logs", out[:300] + err)
        rc, out, _ = verify("tdx", q4, "gtg-2023", None, "--event-log", ccel)
        t.ok(rc == 1 and "measurement replay" in out,
             "CCEL_data does not replay to q4's RTMRs, so verification refuses it", out)
    cos = os.path.join(TDX, "go-tdx-guest", "ccel")
    rc, out, err = run("--tee", "tdx", "--evidence", os.path.join(cos, "cos-113-tdx-quote.dat"), "--event-log",
                       os.path.join(cos, "ccel_data.dat"), "--parse-only")
    t.ok(rc == 0 and len(claims(out, "tdx")["uefi_event_logs"]) > 0, "cos-113 CCEL parses", out[:300] + err)


NEGATIVE = [
    # (name, tee, quote, collateral, time, expected substring)
    ("dcap-qvl outdated v5 quote: no matching platform TCB level", "tdx",
     ("dcap-qvl", "tdx_quote_outdated"), "qvl-v5", None, "TCB level not supported"),
    ("trustee q5 with the 2026 collateral: no matching platform TCB level", "tdx",
     ("trustee", "tdx_quote_5.dat"), "qvl-v5", None, "TCB level not supported"),
    ("go-tdx-guest SPR_E4 with unmodified 2023 tcbInfo: no matching level", "tdx",
     ("go-tdx-guest", "tdx_prod_quote_SPR_E4.dat"), "gtg-2023", None, "TCB level not supported"),
    ("go-tdx-guest SPR_E4 at 2053: expired", "tdx", ("go-tdx-guest", "tdx_prod_quote_SPR_E4.dat"),
     "gtg-2023", "2053-07-01T01:00:00Z", "expired"),
    ("dcap-qvl TDX before its collateral was issued", "tdx", ("dcap-qvl", "tdx_quote"), "qvl-tdx",
     "2025-06-19T10:00:00Z", "not yet valid"),
    ("trustee q4 against FMSPC 90c06f000000 collateral: FMSPC mismatch", "tdx",
     ("trustee", "tdx_quote_4.dat"), "qvl-v5", None, "FMSPC mismatch"),
    ("cos-113 quote (FMSPC 00806f050000) has no collateral here", "tdx",
     ("go-tdx-guest", "ccel", "cos-113-tdx-quote.dat"), "qvl-v5", None, "FMSPC mismatch"),
    ("SGX collateral for a TDX quote", "tdx", ("dcap-qvl", "tdx_quote"), "qvl-sgx",
     "2025-07-19T10:00:34Z", "mismatch"),
]

# go-tdx-guest TestNegativeVerification: set byte at offset to value (SPR_E4, 2023-07-01).
FLIPS = [
    (0x00, 3, "quote format not supported"),
    (0x278, 0x10, "size"),
    (0x1343, 0x32, "PCK"),
    (0x1329, 0x32, "PCK"),
    (0xF5F, 0x32, "PCK"),
    (0xB77, 0x32, "PCK"),
    (0x1E, 0x32, "quote signature does not verify"),
    (0x3C, 0x32, "quote signature does not verify"),
]


def negative(t):
    for name, tee, parts, coll, time, want in NEGATIVE:
        rc, out, err = verify(tee, os.path.join(TDX, *parts), coll, time)
        t.ok(rc == 1 and out.startswith("refused:") and want in out, name, out + err)
    spr = open(os.path.join(TDX, "go-tdx-guest", "tdx_prod_quote_SPR_E4.dat"), "rb").read()
    d = harness.tmpdir("dcap-")
    for off, val, want in FLIPS:
        b = bytearray(spr)
        b[off] = val
        p = os.path.join(d, "flip-%x.dat" % off)
        open(p, "wb").write(bytes(b))
        rc, out, err = verify("tdx", p, "gtg-2023")
        t.ok(rc == 1 and want in out, "SPR_E4 byte 0x%x := 0x%x refused (%s)" % (off, val, want), out + err)
    for n in (0, 47, 48, 600, 1000, len(spr) - 1):
        p = os.path.join(d, "trunc-%d.dat" % n)
        open(p, "wb").write(spr[:n])
        rc, out, err = verify("tdx", p, "gtg-2023")
        t.ok(rc == 1 and out.startswith("refused:"), "quote truncated to %d bytes is refused" % n, out + err)
    rc, out, _ = run("--tee", "tdx", "--evidence", os.path.join(SGX, "dcap-qvl", "sgx_quote"), "--parse-only")
    t.ok(rc == 1 and "SGX quote" in out, "an SGX quote offered as tdx evidence is refused", out)
    rc, out, _ = run("--tee", "sgx", "--evidence", os.path.join(TDX, "dcap-qvl", "tdx_quote"), "--parse-only")
    t.ok(rc == 1 and "TDX quote" in out, "a TDX quote offered as sgx evidence is refused", out)
    bad = os.path.join(d, "bad-bundle.json")
    b = json.load(open(COLL["qvl-tdx"][0]))
    b["tcb_info"] = b["tcb_info"].replace('"tcbEvaluationDataNumber":17', '"tcbEvaluationDataNumber":18')
    json.dump(b, open(bad, "w"))
    rc, out, _ = run("--tee", "tdx", "--evidence", os.path.join(TDX, "dcap-qvl", "tdx_quote"), "--collateral", bad,
                     "--time", COLL["qvl-tdx"][1])
    t.ok(rc == 1 and "TCB Info signature" in out, "an edited TCB Info is refused by its signature", out)
    b = json.load(open(COLL["qvl-tdx"][0]))
    b["qe_identity_signature"] = "00" * 64
    json.dump(b, open(bad, "w"))
    rc, out, _ = run("--tee", "tdx", "--evidence", os.path.join(TDX, "dcap-qvl", "tdx_quote"), "--collateral", bad,
                     "--time", COLL["qvl-tdx"][1])
    t.ok(rc == 1 and "QE Identity signature" in out, "a forged QE identity signature is refused", out)


TD_NAMES = {"tee_tcb_svn": "tcb_svn", "mr_signer_seam": "mrsigner_seam", "rtmr0": "rtmr_0",
            "rtmr1": "rtmr_1", "rtmr2": "rtmr_2", "rtmr3": "rtmr_3"}


def parsed_fields(t):
    """Every Intel quote's fields (--parse-only) against expected_values.json."""
    ev = json.load(open(os.path.join(E, "expected_values.json")))["files"]
    for rel, want in sorted(ev.items()):
        if want.get("kind") != "intel-quote":
            continue
        tee = "tdx" if want["header"]["tee_type"] == 0x81 else "sgx"
        rc, out, err = run("--tee", tee, "--evidence", os.path.join(E, rel), "--parse-only")
        if not t.ok(rc == 0, "%s parses" % rel, out + err):
            continue
        c = claims(out, tee)
        body = c["quote"]["body"] if tee == "tdx" else c["body"]
        header = c["quote"]["header"] if tee == "tdx" else c["header"]
        got, exp = {}, {}
        for k, v in want["body"].items():
            if tee == "sgx" and k == "attributes":
                got[k] = body["attributes.flags"] + body["attributes.xfrm"]
            elif tee == "sgx" and k in ("isv_prod_id", "isv_svn", "config_svn"):
                got[k] = int.from_bytes(bytes.fromhex(body[k]), "little")
            else:
                got[k] = body[TD_NAMES.get(k, k)]
            exp[k] = v
        got["version"] = int.from_bytes(bytes.fromhex(header["version"]), "little")
        exp["version"] = want["header"]["version"]
        got["user_data"], exp["user_data"] = header["user_data"], want["header"]["user_data"]
        t.eq(got, exp, "%s: header and body fields equal expected_values.json" % rel)
    occ = os.path.join(SGX, "trustee", "occlum_quote.dat")
    rc, out, _ = run("--tee", "sgx", "--evidence", occ, "--parse-only")
    c = claims(out, "sgx")
    t.eq((c["header"]["version"], c["header"]["qe_svn"], c["header"]["pce_svn"], c["body"]["misc_select"],
          c["body"]["attributes.flags"], c["body"]["attributes.xfrm"], c["platform_instance_id"]),
         ("0300", "0800", "0d00", "01000000", "0700000000000000", "e700000000000000",
          "7a3a6941065cd5060bd93d3db2cfc0c8"), "Occlum SGX claims as Trustee's sgx/claims.rs asserts")
    t.ok("tcb_status" not in c, "--parse-only adds no verification claims")


def main():
    t = harness.Tap()
    t.run(positive)
    t.run(negative)
    t.run(parsed_fields)
    t.done()


if __name__ == "__main__":
    main()
