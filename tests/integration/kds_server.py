"""A stand-in for AMD KDS on loopback, over HTTPS, for the VCEK fetch tests.

usage: kds_server.py PORT CERT KEY VCEK_DIR MODE
Serves GET /vcek/v1/<Gen>/<hwid>?... from VCEK_DIR/<hwid>.der and logs each request
line to stdout. MODE: "ok"; "429xN" answers 429 with Retry-After: 1 to the first N requests;
"404" always 404; "slow" waits 5 s before answering.
"""
import http.server
import os
import ssl
import sys
import time

port, cert, key, vdir, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
state = {"n": 0}


class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        state["n"] += 1
        print("GET %s" % self.path, flush=True)
        if mode.startswith("429x") and state["n"] <= int(mode[4:]):
            self.send_response(429)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if mode == "slow":
            time.sleep(5)
        parts = self.path.split("?")[0].split("/")
        f = os.path.join(vdir, parts[-1] + ".der") if len(parts) == 5 else ""
        if mode == "404" or not f or not os.path.exists(f):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = open(f, "rb").read()
        self.send_response(200)
        self.send_header("Content-Type", "application/pkix-cert")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("ready", flush=True)
srv.serve_forever()
