"""A stand-in for Intel Trust Authority (ITA), the attestation SaaS the intel_ta backend talks to,
for tests on loopback: HTTPS (a certificate from the test PKI) in a thread of the test process.

It follows ITA's published REST API as far as a relying party sees it:
  GET  /appraisal/v2/nonce                 {"val","iat","signature"} (base64), x-api-key required
  POST /appraisal/v2/attest[/azure]        {"policy_ids","policy_must_match","tdx"|"sgx"|"nvgpu"}
                                           -> {"token": JWT}; errors as {"error": "<message>"}
  GET  /certs                              the token-signing JWK set (PS384 and RS256 keys, kid)
  GET  /.well-known/openid-configuration   {"issuer", "jwks_uri": ".../certs"}
  GET  /                                   an HTML page, as the portal URL Trustee's config names
Tokens are signed by python3-jwcrypto (PS384 by default, RS256 on request) and carry ITA's v2
claim names: top-level ver, iss, iat, nbf, exp, jti, policy_ids_matched / policy_ids_unmatched,
verifier_instance_ids, and per TEE under "tdx" / "sgx" / "nvgpu": attester_type,
attester_tcb_status, attester_held_data (runtime data, base64), attester_runtime_data (the
runtime data parsed, when it is JSON) or attester_user_data (azure), tdx_mrtd, tdx_rtmr0..3,
tdx_tee_tcb_svn, tdx_report_data, sgx_mrenclave, sgx_mrsigner, ...

What it checks: the x-api-key; that the JSON body has a quote for tdx or sgx (or a GPU evidence
list); the quote's version and length; the runtime-data binding ITA specifies: for TDX the
quote's REPORT_DATA equals SHA-512(runtime_data), for SGX the first 32 bytes of REPORT_DATA equal
SHA-256(runtime_data); for azure, only that the quote and user_data are present; policy ids must
match when policy_must_match (ids listed in `unmatched` never do).
What it does NOT check: no quote signature, PCK chain, collateral, TCB level or QE identity (the
quote may be forged; attester_tcb_status is always "UpToDate"), no HCL report or vTPM binding for
azure, no GPU evidence (nvgpu claims are echoed), no nonce from /nonce is required in the quote,
no real policy evaluation. It is a stand-in for a service we cannot reach, not a verifier.

Faults for the hostile-answer tests (set `server.mode`): "slow" (answer after `slow_s`),
"huge" (a 2 MiB body), "nonjson", "unknown_key" (signed by a key not in /certs), "expired",
"other_nonce" (the token names another nonce), "429" (with Retry-After), "500".
"""
import base64
import hashlib
import http.server
import json
import ssl
import threading
import time
import uuid

from jwcrypto import jwk as jjwk
from jwcrypto import jws as jjws

API = "/appraisal/v2"


def _b64(b):
    return base64.b64encode(b).decode()


class ItaStandIn:
    def __init__(self, cert_chain, key, api_key="test-api-key"):
        self.api_key = api_key
        self.mode = "ok"
        self.slow_s = 6
        self.unmatched = set()
        self.requests = []  # (path, headers, body) of each attest call, for the tests
        self.ps384 = jjwk.JWK.generate(kty="RSA", size=3072, kid="ita-ps384", alg="PS384")
        self.rs256 = jjwk.JWK.generate(kty="RSA", size=2048, kid="ita-rs256", alg="RS256")
        self.rogue = jjwk.JWK.generate(kty="RSA", size=3072, kid="ita-rogue", alg="PS384")
        self.sign_with = self.ps384
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def reply(self, status, obj=None, raw=None, ctype="application/json", extra=None):
                data = raw if raw is not None else json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (ssl.SSLError, OSError):
                    pass  # the client hung up first (the huge answer's case)

            def do_GET(self):
                if self.path == "/":
                    return self.reply(200, raw=b"<html><body>Intel Trust Authority</body></html>",
                                      ctype="text/html")
                if self.path == "/.well-known/openid-configuration":
                    return self.reply(200, {"issuer": outer.url, "jwks_uri": outer.url + "/certs"})
                if self.path == "/certs":
                    return self.reply(200, {"keys": [json.loads(outer.ps384.export_public()),
                                                     json.loads(outer.rs256.export_public())]})
                if self.path == API + "/nonce":
                    if self.headers.get("x-api-key") != outer.api_key:
                        return self.reply(401, {"error": "Invalid API key"})
                    val, iat = _b64(uuid.uuid4().bytes * 2), _b64(str(int(time.time())).encode())
                    return self.reply(200, {"val": val, "iat": iat, "signature": _b64(b"\0" * 64)})
                return self.reply(404, {"error": "Not found"})

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                if self.path not in (API + "/attest", API + "/attest/azure"):
                    return self.reply(404, {"error": "Not found"})
                outer.requests.append((self.path, dict(self.headers), body))
                if self.headers.get("x-api-key") != outer.api_key:
                    return self.reply(401, {"error": "Invalid API key"})
                m = outer.mode
                if m == "slow":
                    time.sleep(outer.slow_s)
                if m == "429":
                    return self.reply(429, {"error": "Too many requests: rate limit exceeded"},
                                      extra={"Retry-After": "7"})
                if m == "500":
                    return self.reply(500, {"error": "Internal server error"})
                if m == "huge":
                    return self.reply(200, raw=b'{"token":"' + b"A" * (2 << 20) + b'"}')
                if m == "nonjson":
                    return self.reply(200, raw=b"<html>maintenance</html>", ctype="text/html")
                try:
                    req = json.loads(body)
                    claims = outer.appraise(req, azure=self.path.endswith("/azure"))
                except ValueError as e:
                    return self.reply(400, {"error": str(e)})
                return self.reply(200, {"token": outer.sign(claims)})

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_chain, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = "https://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    # ------------------------------------------------------------------ appraisal

    def appraise(self, req, azure):
        if not isinstance(req, dict):
            raise ValueError("request body must be a JSON object")
        ids = req.get("policy_ids") or []
        matched = [{"id": i, "version": "v1"} for i in ids if i not in self.unmatched]
        unmatched = [{"id": i, "version": "v1"} for i in ids if i in self.unmatched]
        if req.get("policy_must_match") and unmatched:
            raise ValueError("one or more policies did not match: " +
                             ",".join(p["id"] for p in unmatched))
        now = int(time.time())
        claims = {"ver": "2.0.0", "iss": "Intel Trust Authority", "iat": now, "nbf": now,
                  "exp": now + 300 if self.mode != "expired" else now - 3600,
                  "jti": str(uuid.uuid4()), "verifier_instance_ids": [str(uuid.uuid4())]}
        if ids:
            claims["policy_ids_matched"] = matched
            claims["policy_ids_unmatched"] = unmatched
        if "tdx" in req:
            claims["tdx"] = self.tdx_claims(req["tdx"], azure)
        elif "sgx" in req:
            claims["sgx"] = self.sgx_claims(req["sgx"])
        elif "nvgpu" not in req:
            raise ValueError("no tdx, sgx or nvgpu evidence in the request")
        if "nvgpu" in req:
            g = req["nvgpu"]
            if not g.get("gpu_nonce") or not g.get("evidence_list"):
                raise ValueError("nvgpu needs gpu_nonce and evidence_list")
            claims["nvgpu"] = {"attester_type": "NVGPU", "arch": g.get("arch"),
                               "gpu_nonce": g["gpu_nonce"], "attester_tcb_status": "UpToDate"}
        return claims

    def runtime(self, part, field):
        try:
            rd = base64.b64decode(part[field], validate=True)
        except (KeyError, TypeError, ValueError):
            raise ValueError("%s is missing or not base64" % field)
        try:
            parsed = json.loads(rd)
        except ValueError:
            parsed = None
        if self.mode == "other_nonce" and isinstance(parsed, dict):
            parsed["nonce"] = _b64(b"\x01" * 32)
        return rd, parsed

    @staticmethod
    def quote_bytes(part):
        try:
            return base64.b64decode(part["quote"], validate=True)
        except (KeyError, TypeError, ValueError):
            raise ValueError("quote is missing or not base64")

    def tdx_claims(self, part, azure):
        q = self.quote_bytes(part)
        ver = int.from_bytes(q[0:2], "little") if len(q) >= 2 else 0
        if ver not in (4, 5) or len(q) < 632:
            raise ValueError("not a TDX quote (version %d, %d bytes)" % (ver, len(q)))
        body = 48 if ver == 4 else 54  # v5: type(2) + size(4) before the body
        f = lambda off, n: q[body + off:body + off + n]
        report_data = f(520, 64)
        c = {"attester_type": "TDX", "attester_tcb_status": "UpToDate", "dbgstat": "disabled",
             "tdx_tee_tcb_svn": f(0, 16).hex(), "tdx_mrseam": f(16, 48).hex(),
             "tdx_seam_attributes": f(112, 8).hex(), "tdx_td_attributes": f(120, 8).hex(),
             "tdx_xfam": f(128, 8).hex(), "tdx_mrtd": f(136, 48).hex(),
             "tdx_mrconfigid": f(184, 48).hex(), "tdx_mrowner": f(232, 48).hex(),
             "tdx_mrownerconfig": f(280, 48).hex(), "tdx_rtmr0": f(328, 48).hex(),
             "tdx_rtmr1": f(376, 48).hex(), "tdx_rtmr2": f(424, 48).hex(),
             "tdx_rtmr3": f(472, 48).hex(), "tdx_report_data": report_data.hex(),
             "tdx_is_debuggable": bool(f(120, 1)[0] & 1)}
        if azure:
            if "user_data" not in part:
                raise ValueError("azure evidence needs user_data")
            ud, parsed = self.runtime(part, "user_data")
            c["attester_user_data"] = parsed
            c["attester_held_data"] = _b64(ud)
            return c
        rd, parsed = self.runtime(part, "runtime_data")
        if hashlib.sha512(rd).digest() != report_data:
            raise ValueError("TDX report data does not match the SHA-512 hash of runtime_data")
        c["attester_held_data"] = _b64(rd)
        if parsed is not None:
            c["attester_runtime_data"] = parsed
        return c

    def sgx_claims(self, part):
        q = self.quote_bytes(part)
        if len(q) < 48 + 384 or int.from_bytes(q[0:2], "little") != 3:
            raise ValueError("not an SGX quote")
        b = q[48:48 + 384]
        rd, parsed = self.runtime(part, "runtime_data")
        if hashlib.sha256(rd).digest() != b[320:352]:
            raise ValueError("SGX report data does not match the SHA-256 hash of runtime_data")
        c = {"attester_type": "SGX", "attester_tcb_status": "UpToDate",
             "sgx_mrenclave": b[64:96].hex(), "sgx_mrsigner": b[128:160].hex(),
             "sgx_isvprodid": int.from_bytes(b[256:258], "little"),
             "sgx_isvsvn": int.from_bytes(b[258:260], "little"),
             "sgx_report_data": b[320:384].hex(), "sgx_is_debuggable": bool(b[48] & 2),
             "attester_held_data": _b64(rd)}
        if parsed is not None:
            c["attester_runtime_data"] = parsed
        return c

    def sign(self, claims, key=None):
        key = key or (self.rogue if self.mode == "unknown_key" else self.sign_with)
        alg = key.export_public(as_dict=True)["alg"]
        s = jjws.JWS(json.dumps(claims).encode())
        s.add_signature(key, alg=alg, protected=json.dumps(
            {"alg": alg, "kid": key.key_id, "typ": "JWT", "jku": self.url + "/certs"}))
        return s.serialize(compact=True)
