#!/usr/bin/python3
"""restful-as (as-rvps.md §1.4) end to end: Trustee's command line, a sample-TEE evidence
appraised into an EAR token that python3-jwcrypto verifies against the daemon's JWKS, policies
set and listed, the challenge call, CORS as -r configures it, HTTPS with -t/-k, the metrics, and
bad bodies refused with a 4xx and a sentence (or Trustee's 500 cause chain when the AS refuses)."""
import base64
import hashlib
import http.client
import json
import socket
import os
import subprocess

from jwcrypto import jwk as jjwk
from jwcrypto import jws as jjws

from harness import BIN, Daemon, Tap, free_port, tmpdir
from kbs_testlib import Pki, b64u, b64u_dec, jcs

AFFIRMING = """package policy
import rego.v1
default hardware := 2
default configuration := 2
default executables := 3
trust_claims := {"hardware": hardware, "configuration": configuration,
                 "executables": executables}
"""


class RestAs(Daemon):
    def __init__(self, pki, args=(), tls=False, name="restful-as"):
        self.port = free_port()
        d = tmpdir("restful-as-")
        self.store = os.path.join(d, "store")
        cfg = os.path.join(d, "as.json")
        with open(cfg, "w") as f:
            json.dump({"storage_backend": {"storage_type": "LocalFs", "backends": {
                "local_fs": {"dir_path": self.store}}},
                "rvps_config": {"type": "BuiltIn"},
                "attestation_token_broker": {"duration_min": 7, "signer": {
                    "key_path": pki.path("token.key"),
                    "cert_path": pki.path("token-cert-chain.pem")}}}, f)
        argv = [os.path.join(BIN, "restful-as"), "--socket", "127.0.0.1:%d" % self.port,
                "--config-file", cfg] + list(args)
        self.ctx = None
        if tls:
            key, chain = pki.server_cert("rest", key_type="EC")
            argv += ["-t", chain, "-k", key]
            self.ctx = pki.client_context()
        super().__init__(name, argv, self.port)

    def request(self, method, path, body=None, headers=None, ctype="application/json"):
        if self.ctx:
            c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30, context=self.ctx)
        else:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = dict(headers or {})
        if body is not None and ctype:
            h.setdefault("Content-Type", ctype)
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()


def sample_request(rd, bind=True, tee="sample", policy_ids=()):
    digest = hashlib.sha384(jcs(rd) if bind else b"other").digest()
    ev = {"svn": "1", "report_data": base64.b64encode(digest).decode()}
    return {"verification_requests": [{
        "tee": tee, "evidence": b64u(json.dumps(ev)), "runtime_data": {"structured": rd},
        "runtime_data_hash_algorithm": "sha384"}], "policy_ids": list(policy_ids)}


def verify_with_jwks(token, jwks_text):
    keys = jjwk.JWKSet.from_json(jwks_text)
    s = jjws.JWS()
    s.deserialize(token)
    for k in keys:
        try:
            s.verify(k, alg="ES256")
            return True
        except Exception:
            pass
    return False


def claims(token):
    return json.loads(b64u_dec(token.split(".")[1]))


def check_attestation(t, pki, asvc):
    st, _, jwks = asvc.request("GET", "/.well-known/jwks.json")
    keys = json.loads(jwks)["keys"] if st == 200 else []
    t.ok(st == 200 and len(keys) == 1 and keys[0]["alg"] == "ES256" and "x5c" in keys[0],
         "GET /.well-known/jwks.json: the ES256 signer with its x5c", jwks[:200])
    rd = {"nonce": "restful-nonce", "tee-pubkey": {"kty": "EC", "crv": "P-256", "x": "a",
                                                   "y": "b"}}
    st, h, tok = asvc.request("POST", "/attestation", sample_request(rd))
    t.eq(st, 200, "POST /attestation: sample evidence appraised")
    tok = tok.decode()
    t.ok(verify_with_jwks(tok, jwks), "the token verifies against the JWKS (jwcrypto)")
    c = claims(tok)
    cpu = c["submods"]["cpu0"]
    t.ok(cpu["ear.appraisal-policy-id"] == "default" and c["exp"] - c["iat"] == 7 * 60 and
         cpu["ear.veraison.annotated-evidence"]["runtime_data_claims"] == rd,
         "EAR claims: policy default, duration_min 7, the runtime data", c)
    t.eq(cpu["ear.status"], "contraindicated", "the default policy with no reference values")

    # raw runtime data: the bytes are the expected report data as they are
    raw = hashlib.sha384(b"raw runtime data").digest()
    ev = {"svn": "1", "report_data": base64.b64encode(raw).decode()}
    body = {"verification_requests": [{"tee": "sample", "evidence": b64u(json.dumps(ev)),
                                       "runtime_data": {"raw": b64u(raw)}}], "policy_ids": []}
    st, _, tok2 = asvc.request("POST", "/attestation", body)
    t.ok(st == 200 and verify_with_jwks(tok2.decode(), jwks),
         "POST /attestation with raw runtime data", tok2[:300])

    st, _, data = asvc.request("POST", "/attestation", sample_request(rd, bind=False))
    text = data.decode()
    t.ok(st == 500 and text.startswith("An internal error occured: \n0: attestation report "
                                       "evaluate\n1: ") and "report_data" in text,
         "evidence for other runtime data: 500 with Trustee's numbered causes", text)


def check_policy(t, asvc):
    st, _, data = asvc.request("POST", "/policy", {"policy_id": "mine_cpu",
                                                   "policy": b64u(AFFIRMING), "type": "rego"})
    t.ok(st == 200 and data == b"", "POST /policy: mine_cpu set, empty body", data)
    st, _, data = asvc.request("GET", "/policy")
    ids = sorted(p["policy-id"] for p in json.loads(data)) if st == 200 else []
    t.eq(ids, ["default_cpu", "default_dcu", "default_gpu", "default_ppcie",
                "default_switch", "mine_cpu"],
         "GET /policy lists the built-in policies and the new one")
    t.ok(os.path.isfile(os.path.join(asvc.store, "attestation_service_policy", "mine_cpu.rego")),
         "the policy is stored in the configured storage_backend")
    rd = {"nonce": "n2", "tee-pubkey": {"kty": "EC"}}
    st, _, tok = asvc.request("POST", "/attestation", sample_request(rd, policy_ids=["mine"]))
    cpu = claims(tok.decode())["submods"]["cpu0"] if st == 200 else {}
    t.ok(cpu.get("ear.status") == "affirming" and cpu.get("ear.appraisal-policy-id") == "mine",
         "policy_ids [\"mine\"] appraises with mine_cpu", cpu)
    st, _, data = asvc.request("POST", "/policy", {"policy_id": "broken_cpu",
                                                   "policy": b64u("package policy\n{")})
    t.ok(st == 500 and data.startswith(b"An internal error occured: \n0: set policy\n1: ")
         and b"Set Attestation Policy Failed" in data,
         "a policy that does not compile: 500 with the cause", data)


def check_challenge(t, asvc):
    st, _, data = asvc.request("POST", "/challenge", {"tee": "sample", "tee_params": "{}"})
    t.ok(st == 200 and data == b"", "POST /challenge: an empty challenge for sample", data)
    st, _, data = asvc.request("POST", "/challenge", {"tee": "sample"})
    t.ok(st == 500 and b"tee_params" in data, "POST /challenge without tee_params", data)


def check_bad_bodies(t, asvc):
    good = sample_request({"nonce": "x"})
    cases = [
        ("not JSON", "/attestation", b"{not json", None, 400, b"Json deserialize error"),
        ("a JSON array", "/attestation", b"[]", None, 400, b"JSON object"),
        ("no policy_ids", "/attestation",
         json.dumps({"verification_requests": good["verification_requests"]}), None, 400,
         b"policy_ids"),
        ("a request without evidence", "/attestation",
         json.dumps({"verification_requests": [{"tee": "sample"}], "policy_ids": []}), None,
         400, b"evidence"),
        ("runtime_data with two variants", "/attestation",
         json.dumps({"verification_requests": [dict(good["verification_requests"][0],
                                                    runtime_data={"raw": "", "structured": 1})],
                     "policy_ids": []}), None, 400, b"runtime_data"),
        ("a text/plain body", "/attestation", json.dumps(good), "text/plain", 400,
         b"Content type"),
        ("a policy without policy_id", "/policy", json.dumps({"policy": "eA"}), None, 400,
         b"policy_id"),
        ("a challenge of non-strings", "/challenge", json.dumps({"tee": 1}), None, 400,
         b"strings"),
    ]
    for name, path, body, ctype, want, sentence in cases:
        st, _, data = asvc.request("POST", path, body, ctype=ctype or "application/json")
        t.ok(st == want and sentence in data, "refused with %d and a sentence: %s" % (want, name),
             (st, data[:200]))
    st, _, data = asvc.request("POST", "/attestation",
                               sample_request({"nonce": "x"}, tee="tpm"))
    t.ok(st == 500 and b"tee `tpm` not supported" in data,
         "a TEE restful-as does not take (tpm): 500 with Trustee's sentence", data)
    # the size is refused from Content-Length, before any body byte is read: send the head
    # alone, since a client still writing a body the server refused can race its close
    if asvc.ctx is None:
        with socket.create_connection(("127.0.0.1", asvc.port), timeout=30) as so:
            so.sendall(b"POST /attestation HTTP/1.1\r\nHost: x\r\nContent-Type: "
                       b"application/json\r\nContent-Length: %d\r\n\r\n" % (2 * 1024 * 1024 + 1))
            head = so.recv(4096)
        st = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else head
    else:
        st, _, _ = asvc.request("POST", "/attestation", b"x" * (2 * 1024 * 1024 + 1))
    t.eq(st, 413, "a body over 2 MiB: 413")
    st, _, _ = asvc.request("GET", "/attestation")
    t.eq(st, 405, "GET /attestation: 405")
    st, _, _ = asvc.request("GET", "/nowhere")
    t.eq(st, 404, "an unknown path: 404")
    st, _, _ = asvc.request("GET", "/healthz")
    t.eq(st, 200, "GET /healthz")


def check_metrics(t, asvc):
    st, _, data = asvc.request("GET", "/metrics")
    text = data.decode()
    ok_line = [l for l in text.splitlines()
               if l.startswith('as_attestation_successes_total{tee_type="sample"}')]
    t.ok(st == 200 and ok_line and int(ok_line[0].split()[-1]) >= 3,
         "GET /metrics counts the sample attestations", ok_line)


def check_cors(t, pki):
    asvc = RestAs(pki, ["-r", "http://a.example,https://b.example", "--allowed_origin",
                        "http://c.example", "-r", "bad.example"], name="restful-as-cors").start()
    try:
        pre = {"Origin": "https://b.example", "Access-Control-Request-Method": "POST"}
        st, h, _ = asvc.request("OPTIONS", "/attestation", headers=pre)
        t.ok(st == 200 and h.get("access-control-allow-origin") == "https://b.example" and
             h.get("access-control-max-age") == "86400" and
             "POST" in h.get("access-control-allow-methods", ""),
             "CORS preflight from an allowed origin", h)
        st, h, _ = asvc.request("GET", "/healthz", headers={"Origin": "http://c.example"})
        t.ok(st == 200 and h.get("access-control-allow-origin") == "http://c.example",
             "a request from a repeated -r origin carries Access-Control-Allow-Origin", h)
        st, _, data = asvc.request("OPTIONS", "/attestation",
                                   headers={"Origin": "http://bad.example",
                                            "Access-Control-Request-Method": "POST"})
        t.ok(st == 400 and b"not allowed" in data, "an origin -r refused (no scheme) is not "
             "allowed", data)
        t.ok("Invalid CORS origin format" in asvc.log_text(),
             "an origin without http(s):// is logged as invalid")
    finally:
        asvc.stop()


def check_https(t, pki):
    asvc = RestAs(pki, tls=True, name="restful-as-tls").start()
    try:
        st, _, jwks = asvc.request("GET", "/.well-known/jwks.json")
        rd = {"nonce": "tls"}
        st2, _, tok = asvc.request("POST", "/attestation", sample_request(rd))
        t.ok(st == 200 and st2 == 200 and verify_with_jwks(tok.decode(), jwks),
             "HTTPS (-t/-k): attestation and JWKS over TLS")
    finally:
        asvc.stop()


def check_cli(t):
    p = subprocess.run([os.path.join(BIN, "restful-as")], capture_output=True, text=True,
                       timeout=20)
    t.ok(p.returncode == 2 and "--socket" in p.stderr, "no --socket: usage and exit 2", p.stderr)
    cfg = os.path.join(tmpdir("restful-admin-"), "as.json")
    with open(cfg, "w") as f:
        json.dump({"admin": {"bearer_token_file": "/nonexistent"}}, f)
    p = subprocess.run([os.path.join(BIN, "restful-as"), "-s", "127.0.0.1:%d" % free_port(),
                        "-c", cfg], capture_output=True, text=True, timeout=20)
    t.ok(p.returncode == 1 and "`admin`" in p.stderr,
         "a config asking for grpc-as's admin write guard is refused, not served open",
         p.stderr[-300:])


def main():
    t = Tap()
    pki = Pki()
    asvc = RestAs(pki).start()
    try:
        t.run(check_attestation, pki, asvc)
        t.run(check_policy, asvc)
        t.run(check_challenge, asvc)
        t.run(check_bad_bodies, asvc)
        t.run(check_metrics, asvc)
    finally:
        asvc.stop()
    t.run(check_cors, pki)
    t.run(check_https, pki)
    t.run(check_cli)
    t.done()


if __name__ == "__main__":
    main()
