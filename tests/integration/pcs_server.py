"""A stand-in for Intel PCS v4 (or a PCCS) on loopback, over HTTPS, serving testdata collateral
with Intel's response shapes and issuer-chain headers, for the DCAP collateral fetch tests.

usage: pcs_server.py PORT CERT KEY MODE TDX_BUNDLE SGX_BUNDLE
  GET /{tdx|sgx}/certification/v4/tcb?fmspc=..   {"tcbInfo": ..., "signature": ..}, TCB-Info-Issuer-Chain
  GET /{tdx|sgx}/certification/v4/qe/identity     {"enclaveIdentity": ..}, SGX-Enclave-Identity-Issuer-Chain
  GET /sgx/certification/v4/pckcrl?ca=platform|processor&encoding=der   DER, SGX-PCK-CRL-Issuer-Chain
  GET /sgx/certification/v4/rootcacrl             hex text (as a PCCS answers)
MODE: "ok", "404", "429", "slow" (answers after 3 s); a line "GET <path>" is printed per request.
The mode can be changed at run time with GET /control/<mode>.
"""
import http.server
import json
import ssl
import sys
import time
import urllib.parse

port, cert, key, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
tdx, sgx = json.load(open(sys.argv[5])), json.load(open(sys.argv[6]))
state = {"mode": mode}


def chain_header(pem):
    return urllib.parse.quote(pem, safe="")


def fmspc_of(bundle):
    return json.loads(bundle["tcb_info"])["fmspc"].upper()


class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if status == 429:
            self.send_header("Retry-After", "2")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(u.query)
        if u.path.startswith("/control/"):
            state["mode"] = u.path.split("/")[-1]
            return self.reply(200, b"ok")
        print("GET %s" % self.path, flush=True)
        m = state["mode"]
        if m == "404":
            return self.reply(404)
        if m == "429":
            return self.reply(429)
        if m == "slow":
            time.sleep(3)
        parts = u.path.strip("/").split("/")
        if len(parts) < 4 or parts[1:3] != ["certification", "v4"]:
            return self.reply(404)
        b = tdx if parts[0] == "tdx" else sgx
        what = "/".join(parts[3:])
        if what == "tcb":
            if q.get("fmspc", [""])[0] != fmspc_of(b) or q.get("update", [""])[0] not in ("early", "standard"):
                return self.reply(404)
            body = '{"tcbInfo":%s,"signature":"%s"}' % (b["tcb_info"], b["tcb_info_signature"])
            return self.reply(200, body.encode(), [("Content-Type", "application/json"),
                                                   ("TCB-Info-Issuer-Chain", chain_header(b["tcb_info_issuer_chain"]))])
        if what == "qe/identity":
            body = '{"enclaveIdentity":%s,"signature":"%s"}' % (b["qe_identity"], b["qe_identity_signature"])
            return self.reply(200, body.encode(), [
                ("Content-Type", "application/json"),
                ("SGX-Enclave-Identity-Issuer-Chain", chain_header(b["qe_identity_issuer_chain"]))])
        if what == "pckcrl":
            b = tdx if q.get("ca", [""])[0] == "platform" else sgx
            return self.reply(200, bytes.fromhex(b["pck_crl"]), [
                ("Content-Type", "application/pkix-crl"),
                ("SGX-PCK-CRL-Issuer-Chain", chain_header(b["pck_crl_issuer_chain"]))])
        if what == "rootcacrl":
            return self.reply(200, b["root_ca_crl"].encode(), [("Content-Type", "text/plain")])
        return self.reply(404)


srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("ready", flush=True)
srv.serve_forever()
