"""A small HashiCorp Vault stand-in on loopback for the KBS's Vault resource backend: the KV
version 1 secrets engine at one or more mounts, behind X-Vault-Token, over HTTP or HTTPS.

  GET    /v1/<mount>/<path>  200 {"request_id","lease_id":"","renewable":false,
                                  "lease_duration":2764800,"data":{...},"wrap_info":null,
                                  "warnings":null,"auth":null}   | 404 {"errors":[]}
  POST   /v1/<mount>/<path>  (or PUT) a JSON object body replaces the secret; 204
  DELETE /v1/<mount>/<path>  204, whether or not the secret existed (as Vault)
  a missing or wrong token: 403 {"errors":["permission denied"]}
  an unknown mount: 404 {"errors":["no handler for route \\"<mount>/<path>\\"..."]}

`secrets` is {(mount, path): dict}; `log` records (method, path, token) of every request."""
import http.server
import json
import ssl
import threading
import uuid

from harness import free_port


class VaultServer:
    def __init__(self, token, mounts=("secret",), port=None, tls=None):
        """tls: (key_path, chain_path) to serve HTTPS."""
        self.token = token
        self.mounts = set(mounts)
        self.port = port or free_port()
        self.tls = tls
        self.secrets = {}
        self.log = []
        self.srv = None
        scheme = "https" if tls else "http"
        self.url = "%s://127.0.0.1:%d" % (scheme, self.port)

    def _handler(self):
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def reply(self, status, obj=None):
                data = json.dumps(obj).encode() if obj is not None else b""
                self.send_response(status)
                if obj is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def route(self):
                tok = self.headers.get("X-Vault-Token")
                outer.log.append((self.command, self.path, tok))
                if tok != outer.token:
                    self.reply(403, {"errors": ["permission denied"]})
                    return None
                if not self.path.startswith("/v1/"):
                    self.reply(404, {"errors": []})
                    return None
                rest = self.path[4:]
                for m in sorted(outer.mounts, key=len, reverse=True):
                    if rest.startswith(m + "/") and len(rest) > len(m) + 1:
                        return m, rest[len(m) + 1:]
                self.reply(404, {"errors": ["no handler for route \"%s\". route entry not "
                                            "found." % rest]})
                return None

            def do_GET(self):
                r = self.route()
                if r is None:
                    return
                if r not in outer.secrets:
                    self.reply(404, {"errors": []})
                    return
                self.reply(200, {"request_id": str(uuid.uuid4()), "lease_id": "",
                                 "renewable": False, "lease_duration": 2764800,
                                 "data": outer.secrets[r], "wrap_info": None, "warnings": None,
                                 "auth": None})

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                r = self.route()
                if r is None:
                    return
                try:
                    obj = json.loads(body)
                    assert isinstance(obj, dict)
                except Exception:
                    self.reply(400, {"errors": ["failed to parse JSON input"]})
                    return
                outer.secrets[r] = obj
                self.reply(204)

            do_PUT = do_POST

            def do_DELETE(self):
                r = self.route()
                if r is None:
                    return
                outer.secrets.pop(r, None)
                self.reply(204)

        return H

    def start(self):
        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.tls[1], self.tls[0])
            self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.srv:
            self.srv.shutdown()
            self.srv.server_close()
            self.srv = None
