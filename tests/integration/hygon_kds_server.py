"""A stand-in for Hygon's key distribution service (cert.hygon.cn) on loopback HTTPS, for the
HSK/CEK fetch tests of the csv and hygondcu verifiers.

usage: hygon_kds_server.py PORT CERT KEY HSK_CEK_DIR MODE

Serves GET /hsk_cek?snumber=<serial> with the bytes of HSK_CEK_DIR/<serial>/hsk_cek.cert (the
layout tests/unit/csv_forge.py writes), 404 when there is none, and prints each request line
to stdout. MODE:
  ok       answer as above
  429xN    429 with Retry-After: 1 to the first N requests, then as "ok"
  500      always 500
  slow     wait 5 s before answering (longer than the tests' deadline)
  big      200 with 1 MiB of bytes, whatever the serial
  short    200 with the first 100 bytes of the pair

What it does NOT check or imitate: the real service's TLS certificate, host name and headers;
its rate limits (beyond the 429 mode) and any other status codes it may use; the format of a
serial (any name that is a directory here is served; the path is not sanitised beyond
refusing '/' and '..'); query parameters other than `snumber`; HEAD or other methods.
"""
import http.server
import os
import ssl
import sys
import time
import urllib.parse

port, cert, key, root, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
state = {"n": 0}


class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def answer(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        state["n"] += 1
        print("GET %s" % self.path, flush=True)
        if mode.startswith("429x") and state["n"] <= int(mode[4:]):
            return self.answer(429, headers=[("Retry-After", "1")])
        if mode == "500":
            return self.answer(500, b"internal error")
        if mode == "slow":
            time.sleep(5)
        if mode == "big":
            return self.answer(200, bytes(1 << 20))
        u = urllib.parse.urlsplit(self.path)
        sn = urllib.parse.parse_qs(u.query).get("snumber", [""])[0]
        f = os.path.join(root, sn, "hsk_cek.cert")
        if u.path != "/hsk_cek" or not sn or "/" in sn or ".." in sn or not os.path.isfile(f):
            return self.answer(404)
        body = open(f, "rb").read()
        if mode == "short":
            body = body[:100]
        self.answer(200, body, [("Content-Type", "application/octet-stream")])


class Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client that hangs up early (oversize, deadline) is expected, not news


srv = Server(("127.0.0.1", port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("ready", flush=True)
srv.serve_forever()
