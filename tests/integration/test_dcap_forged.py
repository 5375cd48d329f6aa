"""DCAP verification against quotes and collateral forged under a test root CA (dcap_forge.py).

Real Intel data cannot reach the refusal paths that need a validly signed but wrong document;
these can. Every case goes through `evidence-verify` with `dcap_verifier.root_ca_file` set to
the forged root, and a refusal must name its specific reason on the `refused:` line. The first
case (a forged good quote verifies as UpToDate) proves the generator builds what Intel would.
"""
import hashlib
import json
import os
import subprocess

import harness
import dcap_forge as F
from cryptography.hazmat.primitives import serialization

EV = os.path.join(harness.BIN, "evidence-verify")
PKI = F.PKI()
D = harness.tmpdir("dcap-forged-")
CFG = F.write_trust(PKI, D)
_n = [0]


def run(s, time=F.VERIFY_TIME, config=CFG, extra=()):
    _n[0] += 1
    q, b = s.write(D, "c%03d" % _n[0])
    args = [EV, "--tee", s.tee, "--evidence", q, "--collateral", b, "--time", time]
    if config:
        args += ["--config", config]
    r = subprocess.run(args + list(extra), capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout, r.stderr


def accepted(t, s, name, **kw):
    """Assert s verifies; returns its TEE claims (or None)."""
    rc, out, err = run(s, **kw)
    if not t.ok(rc == 0, name, (out + err)[-2000:]):
        return None
    return json.loads(out)[s.tee]


def refused(t, s, want, name, **kw):
    rc, out, err = run(s, **kw)
    line = out.strip().splitlines()[0] if out.strip() else ""
    return t.ok(rc == 1 and line.startswith("refused:") and want in line,
                "%s: refused with \"%s\"" % (name, want), "rc=%d\n%s%s" % (rc, out[-1500:], err[-500:]))


def tdx(**kw):
    return F.Scenario(PKI, "tdx", **kw)


def sgx():
    return F.Scenario(PKI, "sgx")


def tee_svn(s, *svn):
    v = bytes(list(svn) + [0] * (16 - len(svn)))
    s.body["tee_tcb_svn"] = v


# ---- the generator produces what a verifier accepts --------------------------------------


def good_quotes(t):
    s = tdx()
    c = accepted(t, s, "forged TDX v4 quote with forged collateral verifies")
    if c:
        t.eq((c["tcb_status"], c["advisory_ids"]), ("UpToDate", []), "forged TDX v4: UpToDate, no advisories")
        t.eq((c["quote"]["header"]["version"], c["quote"]["body"]["mr_td"], c["quote"]["body"]["report_data"]),
             ("0400", s.body["mr_td"].hex(), s.body["report_data"].hex()),
             "forged TDX v4: header version, MRTD and report data as built")
    s = tdx(version=5, body_type=3)
    c = accepted(t, s, "forged TDX v5 quote with a TDX 1.5 body verifies")
    if c:
        q = c["quote"]
        t.eq((c["tcb_status"], q["type"], q["size"], q["body"]["tee_tcb_svn2"], q["body"]["mr_servicetd"]),
             ("UpToDate", "0300", "88020000", s.body["tee_tcb_svn2"].hex(), "00" * 48),
             "forged TDX 1.5: UpToDate, body type 3 of 648 bytes, tee_tcb_svn2 and mr_servicetd claims")
    s = tdx(version=5, body_type=2)
    c = accepted(t, s, "forged TDX v5 quote with a TDX 1.0 body verifies")
    if c:
        t.eq((c["quote"]["type"], c["quote"]["size"], "mr_servicetd" in c["quote"]["body"]),
             ("0200", "48020000", False), "forged TDX v5/1.0: body type 2 of 584 bytes, no TDX 1.5 fields")
    s = sgx()
    c = accepted(t, s, "forged SGX v3 quote with forged collateral verifies")
    if c:
        t.eq((c["tcb_status"], c["header"]["version"], c["body"]["mr_enclave"], c["body"]["mr_signer"]),
             ("UpToDate", "0300", s.body["mr_enclave"].hex(), s.body["mr_signer"].hex()),
             "forged SGX v3: UpToDate, MRENCLAVE and MRSIGNER as built")
    refused(t, tdx(), "does not end at the trusted Intel SGX Root CA",
            "forged collateral without root_ca_file (the built-in Intel root)", config=None)


def generator_cli_and_tcb_info_v2(t):
    d = harness.tmpdir("dcap-forge-cli-")
    r = subprocess.run(["/usr/bin/python3", os.path.join(os.path.dirname(__file__), "dcap_forge.py"), d],
                       capture_output=True, text=True, timeout=60)
    if not t.ok(r.returncode == 0 and r.stdout.startswith("evidence-verify "),
                "dcap_forge.py OUTDIR writes a case and prints its evidence-verify command", r.stdout + r.stderr):
        return
    r2 = subprocess.run([EV] + r.stdout.split()[1:], capture_output=True, text=True, timeout=30)
    t.ok(r2.returncode == 0 and '"tcb_status": "UpToDate"' in r2.stdout,
         "the printed command verifies the written TDX case as UpToDate", (r2.stdout + r2.stderr)[-500:])
    s = sgx()
    s.tcb_info["version"] = 2
    del s.tcb_info["id"], s.tcb_info["tcbType"]
    for lv in s.tcb_info["tcbLevels"]:
        comps = lv["tcb"].pop("sgxtcbcomponents")
        for i, c in enumerate(comps):
            lv["tcb"]["sgxtcbcomp%02dsvn" % (i + 1)] = c["svn"]
    c = accepted(t, s, "SGX quote with a TCB Info v2 (sgxtcbcompNNsvn keys) verifies")
    if c:
        t.eq(c["tcb_status"], "UpToDate", "TCB Info v2: UpToDate")


# ---- revocation, chains and signatures ---------------------------------------------------


def revocation(t):
    s = tdx()
    s.pck_crl_revoked.append(F.serial("pck-leaf"))
    refused(t, s, "PCK certificate is revoked by the PCK CRL", "PCK leaf listed in the PCK CRL")
    s = tdx()
    s.root_crl_revoked.append(F.serial("platform-ca"))
    refused(t, s, "PCK CA certificate (the PCK CRL's issuer) is revoked by the Root CA CRL",
            "Platform CA listed in the Root CA CRL")
    s = tdx()
    s.root_crl_revoked.append(F.serial("tcb-signing"))
    refused(t, s, "TCB Info signing certificate is revoked by the Root CA CRL",
            "TCB signing certificate listed in the Root CA CRL")
    s = tdx()
    s.pck_crl_issuer = "processor"
    refused(t, s, "PCK CRL is issued by the Processor CA but the quote's PCK is issued by the Platform CA",
            "Processor CA's PCK CRL for a Platform-CA quote")
    s = sgx()
    s.pck_ca = "processor"
    s.ext.platform_instance_id, s.ext.config, s.ext.sgx_type = None, None, 0
    c = accepted(t, s, "Processor-CA SGX quote with the Processor CA's PCK CRL verifies")
    if c:
        t.ok("platform_instance_id" not in c and c["sgx_type"] == "Standard" and "is_smt_enabled" not in c,
             "Processor-CA PCK: sgx_type Standard, no platform_instance_id, no configuration flags", c)
    s.pck_crl_issuer = "platform"
    refused(t, s, "PCK CRL is issued by the Platform CA but the quote's PCK is issued by the Processor CA",
            "Platform CA's PCK CRL for a Processor-CA quote")


def chains(t):
    s = tdx()
    s.pck_chain = [PKI.pck_leaf(s.ext), PKI.rogue_ca(), PKI.other_root]
    refused(t, s, "PCK certificate chain does not end at the trusted Intel SGX Root CA",
            "PCK chain under another root of the same name")
    s = tdx()
    s.pck_chain = [PKI.pck_leaf(s.ext), PKI.rogue_ca(), PKI.root]
    refused(t, s, "PCK CA certificate signature does not verify with the Intel SGX Root CA",
            "PCK CA signed by another root key, chain ending at the trusted root")
    s = tdx()
    s.pck_chain = [PKI.pck_leaf(s.ext, issuer_key=F.key("rogue-issuer")), PKI.ca["platform"], PKI.root]
    refused(t, s, "PCK certificate signature does not verify with the PCK CA",
            "PCK leaf signed by a key that is not the Platform CA's")
    s = tdx()
    s.pck_chain = [PKI.pck_leaf(s.ext), PKI.ca["platform"]]
    refused(t, s, "PCK certificate chain holds 2 certificates", "PCK chain of two certificates")
    s = tdx()
    s.quote_signer = F.key("not-the-attestation-key")
    refused(t, s, "quote signature does not verify with the attestation key", "quote signed by another key")
    s = tdx()
    s.qe_report_signer = F.key("not-the-pck-key")
    refused(t, s, "QE report signature does not verify with the PCK certificate",
            "QE report signed by a key that is not the PCK leaf's")
    ak = F.pub_xy(PKI.att_key)
    s = tdx()
    s.qe_report_data = hashlib.sha256(ak).digest() + bytes(32)
    refused(t, s, "QE report data does not commit to the attestation key",
            "QE report data = SHA-256(key) without the auth data")
    s = tdx()
    s.qe_report_data = hashlib.sha256(ak + s.auth_data).digest() + b"\x01" + bytes(31)
    refused(t, s, "QE report data does not commit to the attestation key",
            "QE report data with a non-zero second half")
    s = sgx()
    s.qe_report_data = hashlib.sha256(F.pub_xy(F.key("other-ak")) + s.auth_data).digest() + bytes(32)
    refused(t, s, "QE report data does not commit to the attestation key",
            "SGX QE report committing to another attestation key")
    s = tdx()
    s.tcb_signing_cert = F.make_cert("Intel SGX TCB Signing", PKI.tcb_key, PKI.other_root.subject,
                                     PKI.other_root_key, "tcb-rogue", "2024-01-01T00:00:00Z",
                                     "2031-12-31T23:59:59Z", False)
    refused(t, s, "TCB Info issuer chain: certificate 0 is not signed by the next one",
            "TCB signing certificate signed by another root key")


# ---- validity windows --------------------------------------------------------------------


def windows(t):
    s = tdx()
    s.times["pck_crl_next"] = "2025-05-31T00:00:00Z"
    refused(t, s, "PCK CRL has expired at the verification time", "expired PCK CRL")
    s = tdx()
    s.times["root_crl_next"] = "2025-05-31T00:00:00Z"
    refused(t, s, "Root CA CRL has expired at the verification time", "expired Root CA CRL")
    s = tdx()
    s.tcb_info["issueDate"] = "2025-06-02T00:00:00Z"
    refused(t, s, "TCB Info is not yet valid at the verification time", "TCB Info issued after the verification time")
    s = tdx()
    s.tcb_info["nextUpdate"] = "2025-06-01T11:59:59Z"
    refused(t, s, "TCB Info has expired at the verification time", "TCB Info past its nextUpdate")
    s = tdx()
    s.qe_identity["nextUpdate"] = "2025-05-30T00:00:00Z"
    refused(t, s, "QE Identity has expired at the verification time", "expired QE Identity")
    s = tdx()
    s.tcb_signing_cert = PKI.tcb_signing_cert("2020-01-01T00:00:00Z", "2025-05-31T23:59:59Z", "tcb-expired")
    refused(t, s, "TCB Info signing certificate chain has expired at the verification time",
            "expired TCB signing certificate")
    s = tdx()
    s.pck_chain = [PKI.pck_leaf(s.ext, not_before="2025-06-02T00:00:00Z"), PKI.ca["platform"], PKI.root]
    refused(t, s, "PCK certificate chain is not yet valid at the verification time",
            "PCK certificate not yet valid")
    s = tdx()
    s.pck_chain = [PKI.pck_leaf(s.ext, not_after="2025-05-01T00:00:00Z"), PKI.ca["platform"], PKI.root]
    refused(t, s, "PCK certificate chain has expired at the verification time", "expired PCK certificate")


# ---- the collateral applies to this platform ---------------------------------------------


def platform_identity(t):
    s = tdx()
    s.tcb_info["pceId"] = "0100"
    refused(t, s, "PCEID mismatch", "TCB Info for another PCE-ID")
    s = tdx()
    s.ext.pceid = b"\x00\x01"
    refused(t, s, "PCEID mismatch", "PCK certificate with another PCE-ID")
    s = tdx()
    s.tcb_info["fmspc"] = "00906ED50001"
    refused(t, s, "FMSPC mismatch: TCB Info is for 00906ed50001, the PCK certificate says 00906ed50000",
            "TCB Info for another FMSPC")
    s = sgx()
    s.tcb_info = tdx().tcb_info
    refused(t, s, "collateral mixes TDX TCB Info with a QE identity", "TDX TCB Info with an SGX QE identity")
    s = sgx()
    s.tcb_info, s.qe_identity = tdx().tcb_info, tdx().qe_identity
    refused(t, s, "collateral mismatch: the collateral is for TDX but the quote is SGX", "TDX collateral for an SGX quote")


# ---- TCB levels --------------------------------------------------------------------------


def tcb_levels(t):
    s = tdx()
    s.ext.pcesvn = 7
    refused(t, s, "TCB status is Revoked", "platform matching a Revoked TCB level")
    s = tdx()
    s.level(0)["tcbStatus"] = "Revoked"
    refused(t, s, "TCB status is Revoked (platform Revoked", "first level Revoked")
    s = tdx()
    s.ext.pcesvn = 11
    c = accepted(t, s, "platform matching the OutOfDate level is accepted")
    if c:
        t.eq((c["tcb_status"], c["advisory_ids"], c["tcb_date"]),
             ("OutOfDate", ["INTEL-SA-00837", "INTEL-SA-00828"], "2023-02-15T00:00:00Z"),
             "OutOfDate level: status, its advisories and its tcbDate")
    s = tdx()
    s.ext.pcesvn = 4
    refused(t, s, "TCB level not supported: no TCB Info level matches this platform's SVNs (PCESVN 4)",
            "PCESVN below every level")
    s = tdx()
    s.ext.comp_svn[7] = 2
    refused(t, s, "TCB level not supported", "SGX component 8 below every level")
    s = tdx()
    tee_svn(s, 5, 1, 1)
    refused(t, s, "TCB level not supported", "tee_tcb_svn below every level")
    s = tdx()
    tee_svn(s, 5, 1, 2, 1)
    s.level(0)["tcb"]["tdxtcbcomponents"][3]["svn"] = 2
    c = accepted(t, s, "tee_tcb_svn[3] below the first level falls to the second")
    if c:
        t.eq(c["tcb_status"], "OutOfDate", "tee_tcb_svn[3] below the first level: OutOfDate")
    s = tdx()
    s.level(0)["tcb"]["tdxtcbcomponents"][0]["svn"] = 9
    s.level(0)["tcb"]["tdxtcbcomponents"][1]["svn"] = 9
    c = accepted(t, s, "module version 1: TDX components 1-2 are judged by the module identity, not the level")
    if c:
        t.eq(c["tcb_status"], "UpToDate", "module version 1: levels compare tee_tcb_svn from index 2")
    s = tdx()
    tee_svn(s, 4, 0, 2)
    c = accepted(t, s, "module version 0: tee_tcb_svn[0] is compared with the levels")
    if c:
        t.eq(c["tcb_status"], "OutOfDate", "module version 0, tee_tcb_svn[0] 4 < 5: the OutOfDate level")
    for key in ("sgxtcbcomponents", "tdxtcbcomponents"):
        for n in (8, 20):
            s = tdx()
            lv = s.level(1)["tcb"][key]
            s.level(1)["tcb"][key] = (lv + lv)[:n]
            refused(t, s, "%s TCB component count mismatch" % key[:3].upper(),
                    "%d entries in %s" % (n, key))
    s = sgx()
    s.level(0)["tcb"]["sgxtcbcomponents"] = s.level(0)["tcb"]["sgxtcbcomponents"][:8]
    refused(t, s, "SGX TCB component count mismatch", "SGX TCB Info with 8 SGX components")
    s = tdx()
    s.level(0)["tcbStatus"] = "SomethingNew"
    refused(t, s, "TCB status is SomethingNew", "an unknown TCB status")


def revoked_sgx_only_level_does_not_decide_tdx(t):
    """Intel's TDX matching takes the first level whose SGX components, PCESVN and TDX components
    all match; a Revoked level that matches only the SGX components is passed over (Intel's QVL
    logs "SGX TCB is revoked" and goes on). Asserted so a change here is a deliberate one."""
    s = tdx()
    lo = [2, 2, 2, 2, 3, 1, 0, 3] + [0] * 8
    mid = [3, 3, 2, 2, 3, 1, 0, 4] + [0] * 8
    hi = [3, 3, 2, 2, 3, 1, 0, 5] + [0] * 8
    s.ext.comp_svn = list(mid)
    s.tcb_info["tcbLevels"] = [
        F.tcb_level(hi, 13, [0, 0, 4] + [0] * 13, "UpToDate", "2024-11-13T00:00:00Z"),
        F.tcb_level(mid, 13, [0, 0, 4] + [0] * 13, "Revoked", "2024-01-01T00:00:00Z", ["INTEL-SA-09999"]),
        F.tcb_level(lo, 11, [0, 0, 2] + [0] * 13, "OutOfDate", "2023-02-15T00:00:00Z"),
    ]
    tee_svn(s, 5, 1, 2)
    c = accepted(t, s, "TDX: a Revoked level matching only the SGX TCB is passed over")
    if c:
        t.eq((c["tcb_status"], c["tcb_date"]), ("OutOfDate", "2023-02-15T00:00:00Z"),
             "TDX: the first level matching SGX and TDX components decides (Intel QVL)")
    s.body["tee_tcb_svn"] = bytes([5, 1, 4] + [0] * 13)
    refused(t, s, "TCB status is Revoked", "TDX: the same Revoked level refuses once the TDX TCB matches it too")


# ---- TDX module identity -----------------------------------------------------------------


def tdx_module(t):
    s = tdx()
    tee_svn(s, 3, 1, 2)
    c = accepted(t, s, "TDX_01 module SVN 3 matches the module's OutOfDate level")
    if c:
        t.eq((c["tcb_status"], c["advisory_ids"]), ("OutOfDate", ["INTEL-SA-00960"]),
             "module OutOfDate turns UpToDate into OutOfDate, with the module level's advisories")
    for plat, want in (("ConfigurationNeeded", "OutOfDateConfigurationNeeded"),
                       ("SWHardeningNeeded", "OutOfDate"),
                       ("ConfigurationAndSWHardeningNeeded", "OutOfDateConfigurationNeeded"),
                       ("OutOfDate", "OutOfDate")):
        s = tdx()
        tee_svn(s, 3, 1, 2)
        s.level(0)["tcbStatus"] = plat
        c = accepted(t, s, "platform %s with an OutOfDate module is accepted" % plat)
        if c:
            t.eq(c["tcb_status"], want, "platform %s + module OutOfDate = %s" % (plat, want))
    s = tdx()
    tee_svn(s, 1, 1, 2)
    refused(t, s, "TCB level not supported: TDX module TDX_01 SVN 1 is below every level",
            "TDX module SVN below every module level")
    s = tdx()
    s.module("TDX_01")["tcbLevels"][0]["tcbStatus"] = "Revoked"
    refused(t, s, "TCB status is Revoked", "TDX module level Revoked")
    s = tdx()
    s.module("TDX_01")["tcbLevels"][0]["tcbStatus"] = "ConfigurationNeeded"
    refused(t, s, "TDX module identity TDX_01 level has status \"ConfigurationNeeded\"",
            "a module level status modules cannot have is refused, as Intel's QVL does")
    s = tdx()
    s.module("TDX_01")["id"] = "tdx_01"
    accepted(t, s, "module identity ids compare case-insensitively")
    s = tdx()
    tee_svn(s, 5, 2, 2)
    refused(t, s, "TCB Info has no TDX module identity TDX_02", "module version 2 without an identity")
    s = tdx()
    tee_svn(s, 3, 3, 2)
    c = accepted(t, s, "module version 3 is judged by TDX_03")
    if c:
        t.eq(c["tcb_status"], "UpToDate", "TDX_03 module SVN 3: UpToDate")
    s = tdx()
    s.body["mrsigner_seam"] = F.pattern("other-seam-signer", 48)
    refused(t, s, "TD report MRSIGNERSEAM does not match TDX module identity TDX_01",
            "MRSIGNERSEAM not the module identity's")
    s = tdx()
    s.body["seam_attributes"] = bytes([0, 0, 0, 0, 0, 0, 0, 0x80])
    refused(t, s, "TD report SEAM attributes do not match TDX module identity TDX_01",
            "SEAM attributes not the module identity's")
    s = tdx()
    s.body["seam_attributes"] = bytes([0, 0, 0, 0, 0, 0, 0, 0x80])
    s.module("TDX_01")["attributesMask"] = "FFFFFFFFFFFFFF7F"
    accepted(t, s, "SEAM attribute bits outside the module identity's mask are ignored")
    s = tdx()
    tee_svn(s, 5, 0, 2)
    s.body["mrsigner_seam"] = F.pattern("other-seam-signer", 48)
    refused(t, s, "TD report MRSIGNERSEAM does not match the TCB Info TDX module signer",
            "module version 0: MRSIGNERSEAM not tdxModule's")
    s = tdx()
    tee_svn(s, 5, 0, 2)
    s.body["seam_attributes"] = bytes([1, 0, 0, 0, 0, 0, 0, 0])
    refused(t, s, "TD report SEAM attributes do not match the TCB Info TDX module attributes",
            "module version 0: SEAM attributes not tdxModule's")
    s = tdx()
    tee_svn(s, 5, 0, 2)
    c = accepted(t, s, "module version 0 with tdxModule's signer and attributes verifies")
    if c:
        t.eq(c["tcb_status"], "UpToDate", "module version 0: UpToDate")


# ---- the QE identity ---------------------------------------------------------------------


def qe_identity(t):
    for tee in ("tdx", "sgx"):
        s = F.Scenario(PKI, tee)
        s.qe_report["isv_svn"] = F.u16(7)
        c = accepted(t, s, "%s: QE ISVSVN 7 matches the QE's OutOfDate level" % tee)
        if c:
            t.eq((c["tcb_status"], c["advisory_ids"]), ("OutOfDate", ["INTEL-SA-00615"]),
                 "%s: QE OutOfDate turns UpToDate into OutOfDate, with the QE level's advisories" % tee)
        s = F.Scenario(PKI, tee)
        s.qe_report["isv_svn"] = F.u16(7)
        s.level(0)["tcbStatus"] = "ConfigurationNeeded"
        s.level(0)["advisoryIDs"] = ["INTEL-SA-00289"]
        c = accepted(t, s, "%s: ConfigurationNeeded platform with an OutOfDate QE is accepted" % tee)
        if c:
            t.eq((c["tcb_status"], c["advisory_ids"]),
                 ("OutOfDateConfigurationNeeded", ["INTEL-SA-00289", "INTEL-SA-00615"]),
                 "%s: ConfigurationNeeded + QE OutOfDate = OutOfDateConfigurationNeeded, advisories merged" % tee)
    s = tdx()
    s.qe_report["isv_svn"] = F.u16(3)
    refused(t, s, "TCB status is Revoked", "QE ISVSVN matching a Revoked QE level")
    s = tdx()
    s.qe_report["isv_svn"] = F.u16(1)
    refused(t, s, "TCB level not supported: QE ISVSVN 1 is below every QE Identity level", "QE ISVSVN below every level")
    s = tdx()
    s.qe_report["mr_signer"] = F.QE_SIGNER
    refused(t, s, "QE report MRSIGNER does not match the QE Identity", "QE MRSIGNER not the TD QE's")
    s = tdx()
    s.qe_report["isv_prod_id"] = F.u16(1)
    refused(t, s, "QE report ISVPRODID 1 does not match the QE Identity's 2", "QE ISVPRODID mismatch")
    s = tdx()
    s.qe_report["misc_select"] = bytes([1, 0, 0, 0])
    refused(t, s, "QE report MISCSELECT does not match the QE Identity", "QE MISCSELECT mismatch")
    s = tdx()
    s.qe_report["misc_select"] = bytes([1, 0, 0, 0])
    s.qe_identity["miscselectMask"] = "FEFFFFFF"
    accepted(t, s, "QE MISCSELECT bits outside miscselectMask are ignored")
    s = tdx()
    s.qe_report["attributes"] = bytes.fromhex("1300000000000000e700000000000000")
    refused(t, s, "QE report ATTRIBUTES do not match the QE Identity", "QE ATTRIBUTES with DEBUG set")
    s = tdx()
    s.qe_report["attributes"] = bytes.fromhex("15000000000000000300000000000000")
    accepted(t, s, "QE ATTRIBUTES bits outside attributesMask (bit 2, XFRM) are ignored")
    s = sgx()
    s.qe_report["mr_signer"] = F.TDQE_SIGNER
    refused(t, s, "QE report MRSIGNER does not match the QE Identity", "SGX QE MRSIGNER mismatch")


# ---- statuses and advisories -------------------------------------------------------------

ACCEPTED = ["UpToDate", "SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded",
            "OutOfDate", "OutOfDateConfigurationNeeded", "TDRelaunchAdvised", "TDRelaunchAdvisedConfigurationNeeded"]


def statuses(t):
    for st in ACCEPTED:
        s = tdx()
        s.level(0)["tcbStatus"] = st
        c = accepted(t, s, "platform status %s is accepted" % st)
        if c:
            t.eq(c["tcb_status"], st, "tcb_status is %s verbatim" % st)
    for st in ("SWHardeningNeeded", "ConfigurationAndSWHardeningNeeded"):
        s = sgx()
        s.level(0)["tcbStatus"] = st
        c = accepted(t, s, "SGX platform status %s is accepted" % st)
        if c:
            t.eq(c["tcb_status"], st, "SGX tcb_status is %s verbatim" % st)


def td_relaunch(t):
    """Intel's QVL evaluates a TDX 1.5 quote twice, with TEE_TCB_SVN (launch) and TEE_TCB_SVN2
    (current): launch OutOfDate[ConfigurationNeeded] with a current UpToDate, SWHardeningNeeded,
    ConfigurationNeeded or ConfigurationAndSWHardeningNeeded gives TDRelaunchAdvised
    [ConfigurationNeeded]."""
    for plat, want in (("UpToDate", "TDRelaunchAdvised"),
                       ("ConfigurationNeeded", "TDRelaunchAdvisedConfigurationNeeded")):
        s = tdx(version=5, body_type=3)
        s.level(0)["tcbStatus"] = plat
        tee_svn(s, 3, 1, 2)  # launched on TDX_01 SVN 3: the module's OutOfDate level
        s.body["tee_tcb_svn2"] = bytes([5, 1, 2] + [0] * 13)  # now on SVN 5: UpToDate
        c = accepted(t, s, "TDX 1.5 launched on an OutOfDate module, now up to date (platform %s)" % plat)
        if c is None:
            continue
        t.eq(c["tcb_status"], want, "launch OutOfDate, current %s: %s as Intel's QVL" % (plat, want))


def advisories(t):
    s = tdx()
    tee_svn(s, 3, 1, 2)
    s.qe_report["isv_svn"] = F.u16(7)
    s.level(0)["tcbStatus"] = "SWHardeningNeeded"
    s.level(0)["advisoryIDs"] = ["INTEL-SA-00001", "INTEL-SA-00002", "INTEL-SA-00001"]
    s.module("TDX_01")["tcbLevels"][1]["advisoryIDs"] = ["INTEL-SA-00002", "INTEL-SA-00003"]
    s.qe_identity["tcbLevels"][1]["advisoryIDs"] = ["INTEL-SA-00003", "INTEL-SA-00004", "INTEL-SA-00001"]
    c = accepted(t, s, "platform, module and QE levels with overlapping advisories")
    if c:
        t.eq(c["advisory_ids"], ["INTEL-SA-00001", "INTEL-SA-00002", "INTEL-SA-00003", "INTEL-SA-00004"],
             "advisory ids merged in platform, module, QE order without duplicates")
        t.eq(c["tcb_status"], "OutOfDate", "SWHardeningNeeded + module and QE OutOfDate = OutOfDate")


# ---- supplemental claims -----------------------------------------------------------------


def root_key_id():
    der = PKI.root.public_key().public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint)
    return hashlib.sha384(der).hexdigest()


def supplemental(t):
    s = tdx()
    c = accepted(t, s, "supplemental claims of a forged TDX quote")
    if c:
        got = {k: c.get(k) for k in ("tcb_date", "pck_crl_num", "root_ca_crl_num", "tcb_eval_num",
                                     "earliest_issue_date", "latest_issue_date", "earliest_expiration_date",
                                     "platform_provider_id", "platform_instance_id", "root_key_id",
                                     "collateral_expiration_status", "sgx_type", "is_dynamic_platform",
                                     "is_cached_keys", "is_smt_enabled")}
        want = {"tcb_date": "2024-11-13T00:00:00Z", "pck_crl_num": 412, "root_ca_crl_num": 7,
                "tcb_eval_num": 16,
                "earliest_issue_date": "2020-01-01T00:00:00Z", "latest_issue_date": "2025-05-22T10:00:00Z",
                "earliest_expiration_date": "2025-06-19T08:00:00Z",
                "platform_provider_id": s.ext.ppid.hex(),
                "platform_instance_id": s.ext.platform_instance_id[::-1].hex(),
                "root_key_id": root_key_id(), "collateral_expiration_status": "0", "sgx_type": "Scalable",
                "is_dynamic_platform": True, "is_cached_keys": True, "is_smt_enabled": False}
        t.eq(got, want, "TDX supplemental claims as as-rvps.md 5.2 (instance id byte-reversed; the dates span "
             "the certificates too, so the earliest issue is the root's notBefore)")
    # Intel's QvE takes the collateral dates over the CRLs, the TCB Info and QE Identity, and the
    # validity of every certificate of the PCK chain and of the three issuer chains.
    s = tdx()
    s.pck_chain = [PKI.pck_leaf(s.ext, not_before="2025-05-30T00:00:00Z"), PKI.ca["platform"], PKI.root]
    s.tcb_signing_cert = PKI.tcb_signing_cert("2024-01-01T00:00:00Z", "2025-06-10T00:00:00Z", "tcb-short")
    c = accepted(t, s, "PCK issued after the collateral, TCB signing certificate expiring before it")
    if c:
        t.eq((c["earliest_issue_date"], c["latest_issue_date"], c["earliest_expiration_date"]),
             ("2020-01-01T00:00:00Z", "2025-05-30T00:00:00Z", "2025-06-10T00:00:00Z"),
             "latest_issue_date is the PCK's notBefore, earliest_expiration_date the TCB signing certificate's notAfter")
    s = tdx()
    s.tcb_info["tcbEvaluationDataNumber"] = 15
    s.qe_identity["tcbEvaluationDataNumber"] = 19
    s.pck_crl_number, s.root_crl_number = 1, 3000
    c = accepted(t, s, "TCB Info evaluation number below the QE Identity's")
    if c:
        t.eq((c["tcb_eval_num"], c["pck_crl_num"], c["root_ca_crl_num"]), (15, 1, 3000),
             "tcb_eval_num is the lower evaluation number; CRL numbers as issued")
    for sgx_type, config, name, flags in (
            (0, (True, True, True), "Standard", None),
            (1, (False, True, True), "Scalable", (False, True, True)),
            (2, (True, False, True), "Scalable with Integrity", (True, False, True)),
            (3, None, "Unknown (3)", None),
            (3, (True, True, True), "Unknown (3)", None)):
        s = sgx()
        s.ext.sgx_type, s.ext.config = sgx_type, config
        c = accepted(t, s, "SGX PCK with sgx_type %d" % sgx_type)
        if c:
            got = (c["sgx_type"], tuple(c[k] for k in ("is_dynamic_platform", "is_cached_keys", "is_smt_enabled"))
                   if "is_dynamic_platform" in c else None)
            t.eq(got, (name, flags), "sgx_type %d: \"%s\", configuration flags %s" %
                 (sgx_type, name, "only for sgx_type 1 and 2" if flags is None else "as in the certificate"))


def main():
    t = harness.Tap()
    for fn in (good_quotes, generator_cli_and_tcb_info_v2, revocation, chains, windows, platform_identity,
               tcb_levels, revoked_sgx_only_level_does_not_decide_tdx, tdx_module, qe_identity, statuses,
               td_relaunch, advisories, supplemental):
        t.run(fn)
    t.done()


if __name__ == "__main__":
    main()
