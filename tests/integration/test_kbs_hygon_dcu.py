"""Hygon DCUs as additional evidence, end to end. A sample CPU plus the reports of two DCUs
(forged under a test HRK by tests/unit/dcu_forge.py, configured as the AS's Hygon root; no real
DCU evidence exists) bound to a fresh KBS nonce, through a real kbs -> grpc-as -> rvps: the
token carries cpu0, dcu0 and dcu1, each DCU appraised by default_dcu (genuine hardware, its
measure unrecognized: warning), and a resource policy requiring both DCUs affirming refuses;
once the DCUs' measures are registered as reference values through the KBS they are affirming
and the resource is released. DCU reports bound to another nonce do not refuse the attestation:
the token keeps cpu0 and carries one contraindicated dcu0 naming the mismatch.

Then a Hygon CSV guest as the CPU (tests/unit/csv_forge.py: a v2 report whose rtmr1..4 are the
SM3 replay of its cc_eventlog, the chip's HSK/CEK not in the evidence but served by the Hygon KDS
stand-in, tests/integration/hygon_kds_server.py) with the two DCUs: cpu0 carries the csv claims
with uefi_event_logs, and a resource policy over rtmr3 and the DCUs releases. A chip the KDS does
not know is refused naming its serial (401); a KDS that rate-limits is an outage (503 +
Retry-After) while the chip already fetched keeps attesting from the cache."""
import base64
import hashlib
import json
import os
import subprocess
import sys

import harness
from harness import BIN, Daemon, Redis, free_port, tmpdir
from kbs_testlib import Attester, Kbs, Pki, b64u_dec, jcs, kbs_config, require_kbs

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "unit"))
import csv_forge  # noqa: E402
import dcu_forge  # noqa: E402

CHIPS = ["DCU0CHIP0001", "DCU1CHIP0002"]
SECRET = b"dcu secret"
RESOURCE_POLICY = """package policy
import rego.v1
default allow := false
allow if {
	input.submods.cpu0
	input.submods.dcu0["ear.status"] == "affirming"
	input.submods.dcu1["ear.status"] == "affirming"
}
"""


def start_stack(d, forge, csv=None):
    redis = Redis().start()
    storage = {"storage_type": "Redis", "backends": {"redis": {"url": redis.url}}}
    rport, aport = free_port(), free_port()
    json.dump({"storage": storage}, open(os.path.join(d, "rvps.json"), "w"))
    rvps = Daemon("rvps", [os.path.join(BIN, "rvps"), "--config", os.path.join(d, "rvps.json"),
                           "--address", "127.0.0.1:%d" % rport], rport).start()
    pki = Pki()
    json.dump({"storage_backend": storage,
               "rvps_config": {"type": "GrpcRemote", "address": "127.0.0.1:%d" % rport},
               "attestation_token_broker": {"signer": {
                   "key_path": pki.path("token.key"), "cert_path": pki.path("token-cert-chain.pem")}},
               "verifier_config": {"hygon_dcu_verifier": {
                   "hrk_file": forge.hrk_path, "hsk_cek_dir": forge.certs, "kds_base_url": ""},
                   "csv_verifier": csv or {"kds_base_url": ""}}},
              open(os.path.join(d, "as.json"), "w"))
    gas = Daemon("grpc-as", [os.path.join(BIN, "grpc-as"), "--socket", "127.0.0.1:%d" % aport,
                             "--config-file", os.path.join(d, "as.json")], aport).start()
    kbs = Kbs(kbs_config(pki, as_addr="http://127.0.0.1:%d" % aport)).start()
    return pki, kbs, [kbs, gas, rvps, redis]


def dcu_report_data(a):
    """The report data the KBS gives additional devices: SHA-384(JCS({nonce, tee-pubkey}));
    the verifier zero-pads it to the 64-byte user_data."""
    return hashlib.sha384(jcs({"nonce": a.nonce, "tee-pubkey": a.pubkey})).digest()


def attest_with_dcus(kbs, forge, rd=None):
    a = Attester(kbs)
    st, _, body = a.auth()
    assert st == 200, (st, body)
    extra = json.dumps({"hygondcu": forge.evidence(rd if rd is not None else dcu_report_data(a))})
    st, _, body = a.attest(additional=extra)
    return a, st, body


def submods(a):
    return json.loads(b64u_dec(a.token.split(".")[1]))["submods"]


def through_kbs(t):
    d = tmpdir("kbs-hygon-dcu-")
    forge = dcu_forge.Forge(d, CHIPS)
    pki, kbs, procs = start_stack(d, forge)
    try:
        kbs.set_policy(pki, RESOURCE_POLICY)
        kbs.set_resource(pki, "default/dcu/key", SECRET)

        a, st, body = attest_with_dcus(kbs, forge)
        if t.ok(st == 200, "/attest with sample CPU + two DCU reports bound to the nonce", body):
            sm = submods(a)
            t.eq(sorted(sm), ["cpu0", "dcu0", "dcu1"], "one submod per device: cpu0, dcu0, dcu1")
            for i in range(2):
                dcu = sm["dcu%d" % i]
                ann = dcu["ear.veraison.annotated-evidence"]
                t.eq((ann["hygondcu"]["body"]["chip_id"],
                      ann["hygondcu"]["body"]["measure"], ann["report_data"][:96]),
                     (CHIPS[i].encode().ljust(16, b"\0").hex(), forge.measure(i).hex(),
                      dcu_report_data(a).hex()),
                     "dcu%d carries its chip's claims, report_data the bound nonce" % i)
                tv = dcu["ear.trustworthiness-vector"]
                t.eq((tv["hardware"], tv["executables"], dcu["ear.status"]), (2, 33, "warning"),
                     "dcu%d by default_dcu: genuine hardware, measure not a reference value" % i)
            st, _, data = a.get("default/dcu/key")
            t.ok(st == 401 and b"PolicyDeny" in data, "resource refused while the DCUs warn", data)

        b, st, body = attest_with_dcus(kbs, forge, rd=bytes(48))
        if t.ok(st == 200, "DCU reports for another nonce: /attest still yields a token", body):
            sm = submods(b)
            t.eq(sorted(sm), ["cpu0", "dcu0"], "the token keeps cpu0 and one failed dcu0")
            err = sm["dcu0"]["ear.veraison.annotated-evidence"]["hygondcu"]["verification_error"]
            t.ok(sm["dcu0"]["ear.status"] == "contraindicated" and
                 "DCU user_data does not match the expected report data" in err,
                 "dcu0 contraindicated, annotated with the refusal", sm["dcu0"])

        rv = {"hygon_dcu_measure": [forge.measure(0).hex(), forge.measure(1).hex()]}
        msg = json.dumps({"version": "0.1.0", "type": "sample",
                          "payload": base64.b64encode(json.dumps(rv).encode()).decode()})
        st, _, data = kbs.admin("POST", "/kbs/v0/reference-value", msg, pki)
        t.ok(st == 200, "the DCUs' measures registered in the RVPS through the KBS", data)

        a, st, body = attest_with_dcus(kbs, forge)
        if t.ok(st == 200, "/attest again with the reference values", body):
            sm = submods(a)
            t.eq((sm["dcu0"]["ear.status"], sm["dcu1"]["ear.status"]), ("affirming", "affirming"),
                 "dcu0 and dcu1 affirming: their measures are reference values")
            st, _, data = a.get("default/dcu/key")
            t.ok(st == 200 and a.decrypt(data) == SECRET, "resource released to the guest's key",
                 data[:200])
    finally:
        for p in procs:
            p.stop()
        forge.close()


CSV_POLICY = """package policy
import rego.v1
default allow := false
allow if {
	csv := input.submods.cpu0["ear.veraison.annotated-evidence"].csv
	csv.version == "2"
	csv.rtmr3 == "%s"
	count(csv.uefi_event_logs) == 6
	input.submods.dcu0["ear.veraison.annotated-evidence"].hygondcu.body.measure
	input.submods.dcu1["ear.veraison.annotated-evidence"].hygondcu.body.measure
}
"""


class StandIn:
    """The Hygon KDS stand-in on a fixed port, restartable in another mode."""

    def __init__(self, d, served):
        self.d, self.served, self.port, self.proc = d, served, free_port(), None
        self.cert, self.key = os.path.join(d, "kds.pem"), os.path.join(d, "kds.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.key, "-out",
                        self.cert, "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                        "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)

    def start(self, mode):
        self.stop()
        here = os.path.dirname(os.path.abspath(__file__))
        self.proc = subprocess.Popen(["/usr/bin/python3", os.path.join(here, "hygon_kds_server.py"),
                                      str(self.port), self.cert, self.key, self.served, mode],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.proc.stdout.readline().strip() == b"ready"

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def csv_attest(kbs, chip, forge):
    """A CSV v2 guest (its event log replays to rtmr1..4) with the two DCUs as additional
    evidence, both bound to the session's nonce."""
    a = Attester(kbs, tee="csv")
    st, _, body = a.auth()
    assert st == 200, (st, body)
    extra = json.dumps({"hygondcu": forge.evidence(dcu_report_data(a))})
    rd = hashlib.sha384(jcs({"tee-pubkey": a.pubkey, "nonce": a.nonce,
                             "additional-evidence": extra})).digest()
    body = a.attest_body(additional=extra)
    body["tee-evidence"]["primary_evidence"] = chip.v2(rd, csv_forge.BOOT_EVENTS,
                                                       inline_hsk_cek=False)
    st, h, data = a.attest(body=body)
    return a, st, h, data


def csv_guest_with_dcus(t):
    d = tmpdir("kbs-hygon-csv-")
    forge = dcu_forge.Forge(d, CHIPS)
    os.makedirs(os.path.join(d, "csv1"))
    os.makedirs(os.path.join(d, "csv2"))
    os.makedirs(os.path.join(d, "empty"))
    chip = csv_forge.Chip(os.path.join(d, "csv1"), "CSVCHIP01")
    unknown = csv_forge.Chip(os.path.join(d, "csv2"), "CSVCHIP02")  # not served by the KDS
    kds = StandIn(d, chip.hsk_cek_dir)
    kds.start("ok")
    csv_cfg = {"hrk_file": chip.hrk_path, "hsk_cek_dir": os.path.join(d, "empty"),
               "kds_base_url": "https://127.0.0.1:%d" % kds.port, "kds_ca_file": kds.cert,
               "kds_cache_dir": os.path.join(d, "kds-cache"), "kds_retry_budget_ms": 0,
               "kds_timeout_ms": 3000}
    pki, kbs, procs = start_stack(d, forge, csv_cfg)
    try:
        rtmr3 = csv_forge.replay(csv_forge.BOOT_EVENTS)[3].hex()
        kbs.set_policy(pki, CSV_POLICY % rtmr3)
        kbs.set_resource(pki, "default/csv/key", SECRET)
        a, st, _, body = csv_attest(kbs, chip, forge)
        if t.ok(st == 200, "/attest: a CSV v2 guest (HSK/CEK from the KDS) + two DCUs", body):
            sm = submods(a)
            t.eq(sorted(sm), ["cpu0", "dcu0", "dcu1"], "submods cpu0 (csv), dcu0, dcu1")
            csv = sm["cpu0"]["ear.veraison.annotated-evidence"]["csv"]
            t.eq((csv["serial_number"], csv["rtmr3"], len(csv["uefi_event_logs"]),
                  csv["uefi_event_logs"][3]["digests"][0]["alg"]),
                 ("CSVCHIP01", rtmr3, 6, "SM3"),
                 "cpu0: csv claims with the SM3 event log that replays to the RTMRs")
            st, _, data = a.get("default/csv/key")
            t.ok(st == 200 and a.decrypt(data) == SECRET,
                 "a policy over rtmr3 and both DCUs releases the resource", data[:200])

        _, st, _, body = csv_attest(kbs, unknown, forge)
        t.ok(st == 401 and b"has no HSK/CEK for chip CSVCHIP02 (HTTP 404)" in body,
             "a chip the KDS does not know: refused naming its serial", body)

        kds.start("429x1000")
        _, st, h, body = csv_attest(kbs, unknown, forge)
        t.ok(st == 503 and h.get("retry-after") == "1" and b"rate-limiting" in body,
             "a rate-limiting KDS with nothing cached: 503 + Retry-After, retry later", (st, body))
        a, st, _, body = csv_attest(kbs, chip, forge)
        t.ok(st == 200, "the chip fetched before still attests from the cache meanwhile", body)
    finally:
        kds.stop()
        for p in procs:
            p.stop()
        forge.close()
        chip.close()


def main():
    require_kbs()
    t = harness.Tap()
    t.run(through_kbs)
    t.run(csv_guest_with_dcus)
    t.done()


if __name__ == "__main__":
    main()
