"""A stand-in for a Veraison verifier's challenge-response API (discovery at
/.well-known/veraison/verification, newSession with a nonce, evidence posted to the session,
the session polled and deleted), enough to exercise the cca verifier's remote mode.

What it does NOT check: it verifies no signature of the token and appraises nothing against
reference values; it reads the token's claims (cca_forge.claims) and vouches for them in an
ES256 EAR signed with its own key, as a real Veraison would after its checks. It speaks plain
HTTP (no TLS) and keeps sessions in memory. `mode` makes it misbehave on purpose: "wrong-nonce",
"other-key" (sign with a key it did not publish), "realm-not-affirmed", "drop-realm",
"other-rim" (an EAR describing another realm image), "processing" (answer once processing, then
complete on the poll), "elsewhere" (a session Location at another host)."""
import base64
import http.server
import json
import threading
import time
import urllib.parse

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

import cca_forge as F

MEDIA = 'application/eat-collection; profile="http://arm.com/CCA-SSD/1.0.0"'
SESSION = "application/vnd.veraison.challenge-response-session+json"


def b64u(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def es256(key, payload):
    h = b64u(json.dumps({"alg": "ES256", "typ": "JWT"}).encode())
    p = b64u(json.dumps(payload).encode())
    r, s = decode_dss_signature(key.sign((h + "." + p).encode(), ec.ECDSA(hashes.SHA256())))
    return h + "." + p + "." + b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def b64(b):
    return base64.b64encode(b).decode()


class Veraison:
    def __init__(self, port):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.mode, self.sessions, self.requests, self.port = "", {}, [], port
        srv = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def send(self, code, body=None, headers=()):
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(code)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                srv.requests.append(("GET", self.path))
                if self.path == "/.well-known/veraison/verification":
                    return self.send(200, {
                        "ear-verification-key": F.jwk(srv.key), "media-types": [MEDIA],
                        "service-state": "READY",
                        "api-endpoints": {"newChallengeResponseSession":
                                          "/challenge-response/v1/newSession"}})
                sid = self.path.rsplit("/", 1)[-1]
                if sid in srv.sessions:
                    s = srv.sessions[sid]
                    s["status"] = "complete" if "result" in s else s["status"]
                    return self.send(200, {k: v for k, v in s.items() if k != "_nonce"})
                self.send(404, {"title": "no such session"})

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                u = urllib.parse.urlparse(self.path)
                srv.requests.append(("POST", u.path))
                if u.path == "/challenge-response/v1/newSession":
                    q = urllib.parse.parse_qs(u.query).get("nonce", [""])[0]
                    nonce = base64.urlsafe_b64decode(q)
                    sid = str(len(srv.sessions) + 1)
                    srv.sessions[sid] = {"nonce": b64(nonce), "status": "waiting",
                                         "accept": [MEDIA], "_nonce": nonce}
                    loc = ("http://attacker.example/" if srv.mode == "elsewhere" else "") + \
                        "session/" + sid
                    out = {k: v for k, v in srv.sessions[sid].items() if k != "_nonce"}
                    return self.send(201, out, [("Location", loc)])
                sid = u.path.rsplit("/", 1)[-1]
                if sid not in srv.sessions:
                    return self.send(404, {"title": "no such session"})
                if self.headers.get("Content-Type") != MEDIA:
                    return self.send(415, {"title": "unsupported media type"})
                s = srv.sessions[sid]
                ear = srv.ear(body, s["_nonce"])
                if srv.mode == "processing":
                    s["status"] = "processing"
                    s_out = dict(s)
                    s["result"] = ear
                    return self.send(200, {k: v for k, v in s_out.items() if k != "_nonce"})
                s.update(status="complete", result=ear)
                self.send(200, {k: v for k, v in s.items() if k != "_nonce"})

            def do_DELETE(self):
                srv.requests.append(("DELETE", self.path))
                srv.sessions.pop(self.path.rsplit("/", 1)[-1], None)
                self.send(204)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def ear(self, tok, nonce):
        p, r = F.claims(tok)
        tv = {"instance-identity": 2, "configuration": 0, "executables": 2, "file-system": 0,
              "hardware": 2, "runtime-opaque": 2, "storage-opaque": 0, "sourced-data": 0}
        realm = {"cca-realm-challenge": b64(r[10]), "cca-realm-personalization-value": b64(r[44235]),
                 "cca-realm-initial-measurement": b64(r[44238]),
                 "cca-realm-extensible-measurements": [b64(x) for x in r[44239]],
                 "cca-realm-hash-algo-id": r[44236]}
        if self.mode == "other-rim":
            realm["cca-realm-initial-measurement"] = b64(bytes(len(r[44238])))
        platform = {"cca-platform-instance-id": b64(p[256]),
                    "cca-platform-implementation-id": b64(p[2396])}
        rtv = dict(tv, **({"instance-identity": 96} if self.mode == "realm-not-affirmed" else {}))
        submods = {"CCA_SSD_PLATFORM": {"ear.status": "affirming", "ear.trustworthiness-vector": tv,
                                        "ear.veraison.annotated-evidence": platform},
                   "CCA_REALM": {"ear.status": "affirming", "ear.trustworthiness-vector": rtv,
                                 "ear.veraison.annotated-evidence": realm}}
        if self.mode == "drop-realm":
            del submods["CCA_REALM"]
        if self.mode == "wrong-nonce":
            nonce = bytes(64)
        key = ec.generate_private_key(ec.SECP256R1()) if self.mode == "other-key" else self.key
        return es256(key, {"eat_profile": "tag:github.com,2023:veraison/ear", "iat": int(time.time()),
                           "ear.verifier-id": {"build": "stand-in", "developer": "ctrustee tests"},
                           "eat_nonce": b64u(nonce), "submods": submods})

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
