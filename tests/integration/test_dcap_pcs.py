"""TDX and SGX quotes through grpc-as with collateral fetched from a PCS stand-in over HTTPS
(tests/integration/pcs_server.py serving testdata collateral with Intel's headers): verified
and appraised into an EAR token, served from the memory cache on the next request, from the
disk cache after a restart while the PCS is down, and refused with a clean, precise error when
the PCS answers 404, 429 or too slowly — the AS keeps serving throughout. Also the KBS flow:
a TDX quote reaches the tdx verifier through kbs → grpc-as and is refused for its report data
(a canned quote cannot carry the KBS's nonce), with that reason in the problem detail."""
import base64
import json
import os
import subprocess

import grpc

import harness
from harness import BIN, Daemon, free_port, tmpdir

import attestation_pb2 as A  # noqa: E402

E = harness.testdata("evidence")
TDX_Q = os.path.join(E, "tdx", "dcap-qvl", "tdx_quote")
SGX_Q = os.path.join(E, "sgx", "dcap-qvl", "sgx_quote")
TDX_B = os.path.join(E, "tdx", "dcap-qvl", "tdx_quote_collateral.json")
SGX_B = os.path.join(E, "sgx", "dcap-qvl", "sgx_quote_collateral.json")
WHEN = "2025-07-19T10:00:00Z"  # inside both bundles' validity windows


def b64u(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def claims_of(token):
    p = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


def self_signed(d):
    key, crt = os.path.join(d, "pcs.key"), os.path.join(d, "pcs.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return crt, key


class Pcs(Daemon):
    def __init__(self, d, mode="ok", tdx_bundle=TDX_B, sgx_bundle=SGX_B):
        port = free_port()
        crt, key = self_signed(d)
        self.ca = crt
        super().__init__("pcs", ["/usr/bin/python3", os.path.join(os.path.dirname(__file__), "pcs_server.py"), str(port), crt, key, mode,
                                 tdx_bundle, sgx_bundle], port)
        self.url = "https://127.0.0.1:%d/sgx/certification/v4/" % port

    def start(self, timeout=15.0):
        self.base = self.log_text().count("GET /")  # the log file is appended across runs
        return super().start(timeout)

    def requests(self):
        return self.log_text().count("GET /") - self.base

    def mode(self, m):
        import ssl
        import urllib.request
        ctx = ssl.create_default_context(cafile=self.ca)
        urllib.request.urlopen(self.url.split("/sgx")[0] + "/control/" + m, context=ctx, timeout=10).read()


class As:
    def __init__(self, d, pcs, cache_dir, timeout_ms=10000, name="grpc-as", when=WHEN, root=None):
        self.port = free_port()
        dv = {"collateral_service": pcs.url, "tcb_update_type": "standard", "ca_file": pcs.ca,
              "cache_dir": cache_dir, "timeout_ms": timeout_ms}
        if when:
            dv["verification_time"] = when
        if root:
            dv["root_ca_file"] = root
        cfg = {"work_dir": d, "verifier_config": {"dcap_verifier": dv}}
        path = os.path.join(d, name + ".json")
        json.dump(cfg, open(path, "w"))
        self.d = Daemon(name, [os.path.join(BIN, "grpc-as"), "--socket", "127.0.0.1:%d" % self.port,
                               "--config-file", path], self.port).start()
        ch = grpc.insecure_channel("127.0.0.1:%d" % self.port)
        self.evaluate = ch.unary_unary("/attestation.AttestationService/AttestationEvaluate",
                                       request_serializer=A.AttestationRequest.SerializeToString,
                                       response_deserializer=A.AttestationResponse.FromString)

    def attest(self, tee, quote_path):
        q = open(quote_path, "rb").read()
        off = 48 + 520 if tee == "tdx" else 48 + 320
        ev = {"quote": base64.b64encode(q).decode()}
        req = A.AttestationRequest(verification_requests=[A.IndividualAttestationRequest(
            tee=tee, evidence=b64u(json.dumps(ev).encode()), raw_runtime_data=b64u(q[off:off + 64]))],
            policy_ids=["default"])
        try:
            return claims_of(self.evaluate(req, timeout=30).attestation_token), None
        except grpc.RpcError as e:
            return None, e


def main():
    t = harness.Tap()
    d = tmpdir("dcap-pcs-")
    cache = os.path.join(d, "cache")
    os.makedirs(cache)
    pcs = Pcs(d).start()
    a = As(d, pcs, cache)

    c, e = a.attest("tdx", TDX_Q)
    if t.ok(c is not None, "TDX quote verified with collateral fetched from the PCS", e and e.details()):
        sub = c["submods"]["cpu0"]
        tdx = sub["ear.veraison.annotated-evidence"]["tdx"]
        t.eq((tdx["tcb_status"], tdx["advisory_ids"]), ("UpToDate", []), "TCB status UpToDate in the EAR token")
        t.eq(tdx["quote"]["body"]["mr_td"][:16], "91eb2b44d141d4ec", "MRTD claim in the token")
        t.ok(sub["ear.status"] in ("affirming", "warning", "contraindicated"), "appraised by the default policy")
    n = pcs.requests()
    t.eq(n, 4, "first TDX verification fetched TCB Info, QE identity, PCK CRL and root CA CRL")
    c, e = a.attest("tdx", TDX_Q)
    t.ok(c is not None and pcs.requests() == n, "second TDX verification served from the memory cache",
         "requests %d -> %d" % (n, pcs.requests()))
    c, e = a.attest("sgx", SGX_Q)
    if t.ok(c is not None, "SGX quote verified with collateral fetched from the PCS (Processor CA CRL)",
            e and e.details()):
        sgx = c["submods"]["cpu0"]["ear.veraison.annotated-evidence"]["sgx"]
        t.eq((sgx["tcb_status"], sgx["advisory_ids"]),
             ("ConfigurationAndSWHardeningNeeded", ["INTEL-SA-00289", "INTEL-SA-00615"]), "SGX TCB status and advisories")
    files = sorted(os.listdir(cache))
    t.eq(files, ["sgx-00A067110000-processor-standard.json", "tdx-B0C06F000000-platform-standard.json"],
         "fetched collateral written to cache_dir in the bundle format")

    # restart the AS while the PCS is down: the disk cache serves
    a.d.stop()
    pcs.mode("404")
    before = pcs.requests()
    a = As(d, pcs, cache, name="grpc-as-2")
    c, e = a.attest("tdx", TDX_Q)
    t.ok(c is not None and pcs.requests() == before, "after a restart with the PCS down, the disk cache serves",
         (e and e.details()) or "requests %d -> %d" % (before, pcs.requests()))

    # no cache: each PCS failure is a clean answer naming the cause, and the AS keeps serving;
    # collateral that does not exist is a refusal (ABORTED), a PCS that is rate-limiting or too
    # slow is an outage the caller should retry (UNAVAILABLE: the KBS answers 503 + Retry-After)
    A_, U_ = grpc.StatusCode.ABORTED, grpc.StatusCode.UNAVAILABLE
    for mode, want, tmo, code in (("404", "collateral not available", 10000, A_),
                                  ("429", "rate-limited", 10000, U_), ("slow", "Timeout", 1000, U_)):
        empty = tmpdir("dcap-empty-")
        pcs.mode(mode)
        b = As(empty, pcs, empty, timeout_ms=tmo, name="grpc-as-" + mode)
        c, e = b.attest("tdx", TDX_Q)
        t.ok(c is None and e.code() == code and want in e.details(),
             "PCS answering %s: %s with \"%s\"" % (mode, code.name, want),
             e and (e.code(), e.details()))
        pcs.mode("ok")
        if mode == "429":
            n = pcs.requests()
            c, e = b.attest("tdx", TDX_Q)
            t.ok(c is None and "Retry-After" in e.details() and pcs.requests() == n,
                 "within the PCS's Retry-After the AS does not ask again", e and e.details())
            import time
            time.sleep(2.2)
        c, e = b.attest("tdx", TDX_Q)
        t.ok(c is not None and b.d.alive(), "after the PCS recovers (%s), the same AS verifies" % mode,
             e and e.details())
        b.d.stop()
    kbs_flow(t, d, pcs)
    background_refresh(t)
    t.done()


def background_refresh(t):
    """Forged collateral (tests/integration/dcap_forge.py, a test root) that is valid now but
    within its last tenth of life: served at once, refreshed in the background, and still served
    from memory when the PCS then fails."""
    import time
    from datetime import datetime, timedelta, timezone
    import dcap_forge as F
    d = tmpdir("dcap-refresh-")
    now = datetime.now(timezone.utc)
    iso = lambda x: x.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    s = F.Scenario(F.PKI())
    s.times.update({"tcb_issue": iso(now - timedelta(days=20)), "tcb_next": iso(now + timedelta(hours=2)),
                    "qe_issue": iso(now - timedelta(days=20)), "qe_next": iso(now + timedelta(hours=2)),
                    "pck_crl_this": iso(now - timedelta(days=20)), "pck_crl_next": iso(now + timedelta(hours=2)),
                    "root_crl_this": iso(now - timedelta(days=20)), "root_crl_next": iso(now + timedelta(days=300))})
    s.tcb_info = s.default_tcb_info()
    s.qe_identity = s.default_qe_identity()
    qp, bp = s.write(d)
    root = os.path.join(d, "root.pem")
    open(root, "wb").write(F.pem(s.pki.root))
    pcs = Pcs(d, tdx_bundle=bp, sgx_bundle=bp).start()
    a = As(d, pcs, "", when=None, root=root, name="grpc-as-refresh")
    c, e = a.attest("tdx", qp)
    t.ok(c is not None and pcs.requests() == 4, "forged TDX quote verified now with fetched collateral",
         (e and e.details()) or pcs.requests())
    c, e = a.attest("tdx", qp)
    deadline = time.time() + 15
    while pcs.requests() < 8 and time.time() < deadline:
        time.sleep(0.2)
    t.ok(c is not None and pcs.requests() == 8,
         "collateral near its nextUpdate is refreshed in the background after a cached answer",
         (e and e.details()) or "requests: %d" % pcs.requests())
    pcs.mode("404")
    c, e = a.attest("tdx", qp)
    t.ok(c is not None, "with the PCS failing, the cached collateral (still valid) keeps serving",
         e and e.details())
    time.sleep(1)
    t.ok(pcs.requests() <= 9, "a failing refresh is retried at most once a minute", pcs.requests())
    a.d.stop()


def kbs_flow(t, d, pcs):
    import kbs_testlib as K
    if not os.path.exists(os.path.join(BIN, "kbs")):
        t.skip("KBS flow with a TDX quote", "kbs not built")
        return
    a = As(d, pcs, os.path.join(d, "cache"), name="grpc-as-kbs")
    pki = K.Pki(d)
    cfg = K.kbs_config(pki, as_addr="127.0.0.1:%d" % a.port)
    kbs = K.Kbs(cfg).start()
    quote = open(TDX_Q, "rb").read()
    att = K.Attester(kbs, tee="tdx")
    st, _, body = att.auth()
    t.ok(st == 200, "KBS /auth for tee tdx", body)
    req = att.attest_body()
    req["tee-evidence"]["primary_evidence"] = {"quote": base64.b64encode(quote).decode(), "cc_eventlog": None}
    st, _, body = att.attest(body=req)
    t.ok(st == 401 and b"report_data does not match" in body,
         "KBS /attest with a canned TDX quote reaches the tdx verifier, which refuses its report data", body)
    kbs.stop()
    a.d.stop()


if __name__ == "__main__":
    main()
