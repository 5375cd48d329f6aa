"""A stand-in for NVIDIA's Remote Attestation Service (NRAS), enough to exercise the nvidia
verifier's remote mode: POST <prefix>/gpu and <prefix>/switch take NVIDIA's published request
({"nonce": hex, "arch": "HOPPER"|"BLACKWELL"|"LS10", "evidence_list": [{"evidence": b64,
"certificate": ...}], "claims_version": "3.0"}) and answer a detached EAT bundle
[["JWT", <overall token>], {"GPU-0"|"SWITCH-0": <device token>}], both ES384 JWTs signed with a
test P-384 key whose JWK (kid) it serves at /.well-known/jwks.json. The overall token carries
eat_nonce, x-nvidia-overall-att-result and the SHA-256 digest of the device token under
`submods`; the device token carries claims version 3.0 names (x-nvidia-gpu-...).

What it does NOT check: it verifies no evidence. It reads the nonce from the SPDM request at
the front of the evidence (bytes 4..36) and says whether it equals the posted nonce; it checks
no signature, certificate chain, OCSP status or RIM, and reports all of them good. The device
identity (ueid) is derived from the certificate text. It speaks plain HTTP.

`mode` makes it misbehave on purpose: "bad-signature", "unknown-kid" (signed with a key it does
not publish), "nonce-false", "overall-false", "hs256", "none", "expired", "other-eat-nonce",
"digest-mismatch", "http-500", "http-503", "http-429", "slow" (answers after `slow_s`),
"oversize", "not-json", "shape-object", "shape-three", "shape-two-eats", "shape-jwt-number".
`extra(endpoint, evidence_bytes)` may return claims to add to a device token (PPCIe PDIs)."""
import base64
import hashlib
import hmac
import http.server
import json
import threading
import time
import uuid

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ISS = "https://nras.attestation.nvidia.com"


def b64u(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def jwk(key, kid):
    n = key.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-384", "use": "sig", "alg": "ES384", "kid": kid,
            "x": b64u(n.x.to_bytes(48, "big")), "y": b64u(n.y.to_bytes(48, "big"))}


def sign(key, kid, payload, alg="ES384"):
    h = b64u(json.dumps({"alg": alg, "typ": "JWT", "kid": kid}).encode())
    p = b64u(json.dumps(payload).encode())
    msg = (h + "." + p).encode()
    if alg == "none":
        return h + "." + p + "."
    if alg == "HS256":  # keyed with the published public key: the classic confusion
        pub = json.dumps(jwk(key, kid), sort_keys=True).encode()
        return h + "." + p + "." + b64u(hmac.new(pub, msg, hashlib.sha256).digest())
    r, s = decode_dss_signature(key.sign(msg, ec.ECDSA(hashes.SHA384())))
    return h + "." + p + "." + b64u(r.to_bytes(48, "big") + s.to_bytes(48, "big"))


def chain_claims():
    return {"x-nvidia-cert-status": "valid", "x-nvidia-cert-ocsp-status": "good",
            "x-nvidia-cert-expiration-date": "2030-01-01T00:00:00", "x-nvidia-cert-revocation-reason": None}


def device_claims(endpoint, nonce, match, ok, cert):
    now = int(time.time())
    ueid = str(int(hashlib.sha256(cert.encode()).hexdigest()[:30], 16))
    c = {"sub": "NVIDIA-%s-ATTESTATION" % endpoint.upper(), "iss": ISS, "iat": now, "nbf": now,
         "exp": now + 3600, "jti": str(uuid.uuid4()), "eat_nonce": nonce, "ueid": ueid,
         "oemid": "5703", "secboot": True, "dbgstat": "disabled",
         "measres": "success" if ok else "fail",
         "x-nvidia-mismatch-measurement-records": None if ok else [{"index": 9}],
         "x-nvidia-attestation-type": endpoint.upper(),
         "x-nvidia-%s-manufacturer" % endpoint: "NVIDIA Corporation",
         "x-nvidia-%s-arch-check" % endpoint: True,
         "x-nvidia-%s-attestation-report-cert-chain" % endpoint: chain_claims(),
         "x-nvidia-%s-attestation-report-cert-chain-fwid-match" % endpoint: True,
         "x-nvidia-%s-attestation-report-parsed" % endpoint: True,
         "x-nvidia-%s-attestation-report-nonce-match" % endpoint: match,
         "x-nvidia-%s-attestation-report-signature-verified" % endpoint: True}
    if endpoint == "gpu":
        c.update({"hwmodel": "GH100 A01 GSP BROM", "x-nvidia-gpu-driver-version": "550.90.07",
                  "x-nvidia-gpu-vbios-version": "96.00.9F.00.01"})
        rims = ("driver", "vbios")
    else:
        c.update({"hwmodel": "LS_10", "x-nvidia-switch-bios-version": "96.10.6D.00.01"})
        rims = ("bios",)
    for rim in rims:
        for check in ("fetched", "schema-validated", "signature-verified", "version-match",
                      "measurements-available"):
            c["x-nvidia-%s-%s-rim-%s" % (endpoint, rim, check)] = True
        c["x-nvidia-%s-%s-rim-cert-chain" % (endpoint, rim)] = chain_claims()
    return c


class Nras:
    def __init__(self, port, prefix="/v3/attest"):
        self.key = ec.generate_private_key(ec.SECP384R1())
        self.other = ec.generate_private_key(ec.SECP384R1())
        self.kid = "nras-test-key-1"
        self.mode, self.requests, self.jwks_gets, self.port = "", [], 0, port
        self.slow_s, self.extra = 5, None
        self.url = "http://127.0.0.1:%d%s" % (port, prefix)
        self.jwks_url = "http://127.0.0.1:%d/.well-known/jwks.json" % port
        srv = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def send(self, code, data, headers=()):
                if not isinstance(data, bytes):
                    data = json.dumps(data).encode()
                try:
                    self.send_response(code)
                    for k, v in headers:
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self):
                if self.path == "/.well-known/jwks.json":
                    srv.jwks_gets += 1
                    return self.send(200, {"keys": [jwk(srv.key, srv.kid)]})
                self.send(404, {"errorCode": 404, "message": "not found"})

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                endpoint = self.path.rsplit("/", 1)[-1]
                try:
                    req = json.loads(body)
                except ValueError:
                    return self.send(400, {"errorCode": 400, "message": "not JSON"})
                srv.requests.append((self.path, req, self.headers.get("Content-Type")))
                if not self.path.startswith(prefix + "/") or endpoint not in ("gpu", "switch"):
                    return self.send(404, {"errorCode": 404, "message": "not found"})
                code, data, headers = srv.answer(endpoint, req)
                self.send(code, data, headers)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, endpoint, req):
        m = self.mode
        if m.startswith("http-"):
            code = int(m[5:])
            return code, {"errorCode": code, "message": "stand-in failure"}, \
                [("Retry-After", "30")] if code == 429 else []
        if m == "slow":
            time.sleep(self.slow_s)
        if m == "oversize":
            return 200, b"[" + b" " * (2 << 20) + b"]", []
        if m == "not-json":
            return 200, b"<html>maintenance</html>", []
        nonce = req.get("nonce", "")
        ev = base64.b64decode(req["evidence_list"][0]["evidence"])
        cert = req["evidence_list"][0]["certificate"]
        match = len(ev) >= 36 and ev[4:36].hex() == nonce.lower() and m != "nonce-false"
        ok = m != "overall-false"
        dc = device_claims(endpoint, nonce, match, ok, cert)
        if self.extra:
            dc.update(self.extra(endpoint, ev))
        if m == "expired":
            dc["exp"] = int(time.time()) - 3600
        alg = {"hs256": "HS256", "none": "none"}.get(m, "ES384")
        key, kid = (self.other, "rotated-key-2") if m == "unknown-kid" else (self.key, self.kid)
        dev = sign(key, kid, dc, alg)
        if m == "bad-signature":
            dev = dev[:-4] + ("AAAA" if not dev.endswith("AAAA") else "BBBB")
        name = "GPU-0" if endpoint == "gpu" else "SWITCH-0"
        digest = hashlib.sha256(dev.encode()).hexdigest()
        if m == "digest-mismatch":
            digest = hashlib.sha256(b"another token").hexdigest()
        now = int(time.time())
        overall = {"sub": "NVIDIA-PLATFORM-ATTESTATION", "iss": ISS, "iat": now, "nbf": now,
                   "exp": now + 3600, "jti": str(uuid.uuid4()), "x-nvidia-ver": "3.0",
                   "eat_nonce": "00" * 32 if m == "other-eat-nonce" else nonce,
                   "x-nvidia-overall-att-result": bool(match and ok),
                   "submods": {name: ["DIGEST", ["SHA256", digest]]}}
        top = sign(key, kid, overall, alg)
        bundle = [["JWT", top], {name: dev}]
        if m == "shape-object":
            bundle = {"JWT": top, name: dev}
        elif m == "shape-three":
            bundle = [["JWT", top], {name: dev}, {}]
        elif m == "shape-two-eats":
            bundle = [["JWT", top], {name: dev, name + "b": dev}]
        elif m == "shape-jwt-number":
            bundle = [["JWT", 42], {name: dev}]
        return 200, bundle, []
