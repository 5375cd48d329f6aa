#!/usr/bin/python3
"""Connection churn on the gRPC front does not flood the log (issue 14 W8). The lines a
stranger can cause once per connection go through log_ratelimited: at most one per 10 s per
call site, the next one counting those left out. Against a real rvps:

- 520 silent connections fill the front's waiting stage (512), then 1,000 connect-and-close
  connections each evict the oldest waiting one: a bounded number of lines, not 1,000;
- under mutual TLS, 1,000 TLS clients without a certificate that send the HTTP/2 preface are
  each refused: again a bounded number of lines;
- the rvps answers gRPC health checks (python3-grpcio) afterwards.
"""
import json
import os
import socket
import ssl
import time

import grpc

import health_pb2
from harness import BIN, Daemon, Tap, free_port, tmpdir
from test_grpc_tls import TlsPki

HEALTH = "/grpc.health.v1.Health/Check"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
CHURN = 1000
BOUND = 3  # 10 s per line; each phase takes a few seconds


def start_rvps(name, args=()):
    d = tmpdir("churn-rvps-")
    with open(os.path.join(d, "rvps.json"), "w") as f:
        json.dump({}, f)
    port = free_port()
    return Daemon(name, [os.path.join(BIN, "rvps"), "-c", os.path.join(d, "rvps.json"), "-a",
                         "127.0.0.1:%d" % port] + list(args), port).start()


def last_run(d):
    return d.log_text().rsplit("\n=== start", 1)[-1]


def healthy(target, creds=None):
    ch = grpc.secure_channel(target, creds) if creds else grpc.insecure_channel(target)
    try:
        m = ch.unary_unary(HEALTH, request_serializer=lambda x: x.SerializeToString(),
                           response_deserializer=health_pb2.HealthCheckResponse.FromString)
        return m(health_pb2.HealthCheckRequest(service=""), timeout=5).status == \
            health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False
    finally:
        ch.close()


def test_eviction_churn(t):
    rv = start_rvps("rvps-churn")
    held = [socket.create_connection(("127.0.0.1", rv.port)) for _ in range(520)]
    time.sleep(0.5)
    t0 = time.monotonic()
    for _ in range(CHURN):
        socket.create_connection(("127.0.0.1", rv.port)).close()
    time.sleep(0.5)
    for s in held:
        s.close()
    lines = [l for l in last_run(rv).splitlines() if "have not made their request yet" in l]
    t.ok(1 <= len(lines) <= BOUND,
         "%d churned connections evicting waiting ones: %d log lines (at most %d)" %
         (CHURN, len(lines), BOUND), "%.1f s; %s" % (time.monotonic() - t0, lines[:4]))
    t.ok(healthy("127.0.0.1:%d" % rv.port), "rvps serves gRPC after the churn")
    rv.stop()


def test_mtls_refusal_churn(t, tp):
    rv = start_rvps("rvps-churn-mtls", tp.tls_args())
    ctx = ssl.create_default_context(cafile=tp.path("ca.pem"))
    # h2 beside http/1.1: the handshake passes without a certificate (the pages are public),
    # and the HTTP/2 preface is then refused by the front, one refusal per connection
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    t0 = time.monotonic()
    refused = 0
    for _ in range(CHURN):
        with socket.create_connection(("127.0.0.1", rv.port)) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                try:
                    s.sendall(PREFACE)
                    refused += s.recv(1) == b""
                except (ssl.SSLError, OSError):
                    refused += 1  # closed (or alerted) by the front
    lines = [l for l in last_run(rv).splitlines()
             if "refused a gRPC connection without a client certificate" in l]
    t.ok(refused == CHURN, "all %d TLS clients without a certificate are refused" % CHURN,
         refused)
    t.ok(1 <= len(lines) <= BOUND,
         "%d refused mutual-TLS connections: %d log lines (at most %d)" %
         (CHURN, len(lines), BOUND), "%.1f s; %s" % (time.monotonic() - t0, lines[:4]))
    t.ok(healthy("localhost:%d" % rv.port, tp.creds("client")),
         "rvps serves a client with a certificate after the churn")
    rv.stop()


def main():
    t = Tap()
    if not os.access(os.path.join(BIN, "rvps"), os.X_OK):
        t.skip("log churn", "rvps not built")
        t.done()
    t.run(test_eviction_churn)
    t.run(test_mtls_refusal_churn, TlsPki())
    t.done()


if __name__ == "__main__":
    main()
