"""An example backend for the kbs `external` plugin (kbs.plugin.v1.KbsPlugin, proto/plugin.proto)
on grpcio, for tests: an echo and a small secret store, in plaintext or TLS.

  <any>/...                GET: answers JSON {path, query, method, body} (not encrypted)
  secret/<name>            POST stores the body, DELETE removes it (both admin-gated by the
                           backend's ValidateAuth), GET returns it, encrypted to the guest
  slow                     GET: answers after `slow_s` seconds
  fail                     GET: Handle answers status_code 500
A missing secret answers status_code 404. Every call is recorded in `calls` as (method, path).
"""
import concurrent.futures
import json
import threading
import time

import grpc

import plugin_pb2 as P
from harness import free_port


class PluginBackend:
    def __init__(self, tls=None):
        """tls: (key_path, chain_path) to serve TLS, else plaintext."""
        self.secrets = {}
        self.calls = []
        self.slow_s = 3.0
        self.lock = threading.Lock()
        self.port = free_port()
        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=16))
        u = grpc.unary_unary_rpc_method_handler
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "kbs.plugin.v1.KbsPlugin", {
                "Handle": u(self.handle, P.PluginRequest.FromString,
                            P.PluginResponse.SerializeToString),
                "ValidateAuth": u(self.validate_auth, P.ValidateAuthRequest.FromString,
                                  P.ValidateAuthResponse.SerializeToString),
                "NeedsEncryption": u(self.needs_encryption, P.NeedsEncryptionRequest.FromString,
                                     P.NeedsEncryptionResponse.SerializeToString)}),))
        addr = "127.0.0.1:%d" % self.port
        if tls:
            key, chain = tls
            creds = grpc.ssl_server_credentials([(open(key, "rb").read(), open(chain, "rb").read())])
            self.server.add_secure_port(addr, creds)
            self.endpoint = "https://" + addr
        else:
            self.server.add_insecure_port(addr)
            self.endpoint = "http://" + addr
        self.server.start()

    def stop(self):
        self.server.stop(0)

    def _log(self, what, req):
        with self.lock:
            self.calls.append((what, req.method, list(req.path), dict(req.query)))

    def validate_auth(self, req, ctx):
        self._log("ValidateAuth", req)
        return P.ValidateAuthResponse(requires_admin_auth=req.method in ("POST", "DELETE"))

    def needs_encryption(self, req, ctx):
        self._log("NeedsEncryption", req)
        return P.NeedsEncryptionResponse(
            requires_payload_encryption=len(req.path) > 0 and req.path[0] == "secret")

    def handle(self, req, ctx):
        self._log("Handle", req)
        path = list(req.path)
        if path[:1] == ["secret"] and len(path) == 2:
            name = path[1]
            if req.method == "POST":
                self.secrets[name] = bytes(req.body)
                return P.PluginResponse(body=b"stored", status_code=200)
            if req.method == "DELETE":
                if self.secrets.pop(name, None) is None:
                    return P.PluginResponse(status_code=404)
                return P.PluginResponse(status_code=200)
            if name not in self.secrets:
                return P.PluginResponse(body=b"no such secret", status_code=404)
            return P.PluginResponse(body=self.secrets[name], status_code=200)
        if path == ["slow"]:
            time.sleep(self.slow_s)
        if path == ["fail"]:
            return P.PluginResponse(body=b"boom", status_code=500)
        echo = {"path": path, "query": dict(req.query), "method": req.method,
                "body": bytes(req.body).decode("latin-1")}
        return P.PluginResponse(body=json.dumps(echo, sort_keys=True).encode(),
                                content_type="application/json")
