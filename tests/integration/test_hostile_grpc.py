#!/usr/bin/python3
"""The gRPC port's front is a budget past the sniffer too (issue 14 V6), against the real rvps
and grpc-as with a lowered cap in their config ("grpc_front": max_connections, idle_timeout):

V6  300 connections that send the HTTP/2 preface and an empty SETTINGS frame and then nothing.
    Before, each went into gRPC core for good (19,985 of them: new channels got
    DEADLINE_EXCEEDED, rvps RSS 120 -> 412 MB, 538 MB of EMFILE log). Now the front keeps at
    most max_connections of them, closing the one quiet longest for a newcomer; every new real
    gRPC call (python3-grpcio, a fresh channel each) succeeds during the attack; the idle ones
    are closed after idle_timeout; RSS stays bounded; the cap's log line is rate-limited.
"""
import json
import os
import socket
import time

import grpc

import health_pb2
from harness import BIN, Daemon, Tap, free_port, tmpdir

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # empty SETTINGS, stream 0
CAP, IDLE_S, ATTACK = 40, 2, 300


def start(kind, cfg):
    d = tmpdir("hostile-grpc-")
    path = os.path.join(d, kind + ".json")
    json.dump(cfg, open(path, "w"))
    port = free_port()
    if kind == "rvps":
        args = [os.path.join(BIN, "rvps"), "--address", "127.0.0.1:%d" % port, "--config", path]
    else:
        args = [os.path.join(BIN, "grpc-as"), "--socket", "127.0.0.1:%d" % port,
                "--config-file", path]
    dmn = Daemon(kind, args, port)
    if os.path.exists(dmn.logpath):
        os.remove(dmn.logpath)
    return dmn.start()


def health(port, service="", timeout=5):
    """One Health/Check on a fresh channel (a new connection through the front)."""
    ch = grpc.insecure_channel("127.0.0.1:%d" % port)
    try:
        rpc = ch.unary_unary("/grpc.health.v1.Health/Check",
                             request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                             response_deserializer=health_pb2.HealthCheckResponse.FromString)
        r = rpc(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        return r.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError as e:
        return "%s: %s" % (e.code(), e.details())
    finally:
        ch.close()


def open_idle(port, n):
    out = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(PREFACE + SETTINGS)
        s.setblocking(False)
        out.append(s)
    return out


def closed(s):
    """Has the server closed this connection? (reads what core sent: its SETTINGS, acks)"""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def nfds(dmn):
    return len(os.listdir("/proc/%d/fd" % dmn.proc.pid))


def check_front(t, kind, dmn):
    port = dmn.port
    t.ok(health(port) is True, "%s: a gRPC call before the attack" % kind)
    fds0 = nfds(dmn)
    got = [health(port) for _ in range(2 * CAP)]
    time.sleep(0.5)
    t.ok(got == [True] * len(got) and nfds(dmn) - fds0 < 8,
         "%s: %d channels opened and closed in turn (cap %d) leave no descriptor behind "
         "(%d -> %d)" % (kind, len(got), CAP, fds0, nfds(dmn)))
    rss0 = dmn.rss_kb()
    socks, calls = [], []
    for i in range(ATTACK // 50):
        socks += open_idle(port, 50)
        time.sleep(0.05)
        calls.append(health(port))
    time.sleep(0.5)
    calls.append(health(port))
    t.eq(calls, [True] * len(calls), "%s: %d new gRPC calls during %d preface+SETTINGS-only "
         "connections (cap %d) all succeed" % (kind, len(calls), ATTACK, CAP))
    shut = sum(closed(s) for s in socks)
    t.ok(shut >= ATTACK - CAP, "%s: the front holds at most max_connections=%d of them "
         "(%d of %d closed)" % (kind, CAP, shut, ATTACK))
    deadline = time.time() + IDLE_S + 1.5  # looked at every 0.1 s up to the same limit
    while True:
        shut = sum(closed(s) for s in socks)
        if shut == ATTACK or time.time() > deadline:
            break
        time.sleep(0.1)
    t.eq(shut, ATTACK, "%s: after idle_timeout=%d s every silent connection is closed" %
         (kind, IDLE_S))
    for s in socks:
        s.close()
    rss1 = dmn.rss_kb()
    if os.environ.get("SANITIZER_REPORTS"):
        t.skip("%s: RSS %d -> %d KiB" % (kind, rss0, rss1), "RSS under ASan")
    else:
        t.ok(rss1 - rss0 < 16 * 1024, "%s: RSS %d -> %d KiB (rvps was 120 -> 412 MB)" %
             (kind, rss0, rss1))
    t.ok(health(port) is True, "%s: a gRPC call after the attack" % kind)
    log = dmn.log_text()
    cap_lines = log.count("(max_connections)")
    t.ok(1 <= cap_lines <= 2, "%s: the cap is logged once per 10 s with a count (%d lines for "
         "%d closures)" % (kind, cap_lines, ATTACK - CAP))
    t.ok("Too many open files" not in log, "%s: no EMFILE" % kind)
    t.ok(dmn.alive(), "%s alive" % kind)


def check_h2(t, kind, dmn):
    """The server's own HTTP/2 (grpcx_h2.c) against python3-grpcio: many concurrent streams
    on one connection (more than SETTINGS_MAX_CONCURRENT_STREAMS=100: the client queues the
    rest), and a gzip-compressed request refused with a clear message."""
    ch = grpc.insecure_channel("127.0.0.1:%d" % dmn.port)
    rpc = ch.unary_unary("/grpc.health.v1.Health/Check",
                         request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                         response_deserializer=health_pb2.HealthCheckResponse.FromString)
    futs = [rpc.future(health_pb2.HealthCheckRequest(), timeout=20) for _ in range(250)]
    got = [f.result().status == health_pb2.HealthCheckResponse.SERVING for f in futs]
    t.eq(got.count(True), 250, "%s: 250 concurrent calls on one grpcio connection" % kind)
    try:
        rpc(health_pb2.HealthCheckRequest(service="x" * 200), timeout=5,
            compression=grpc.Compression.Gzip)
        code = None
    except grpc.RpcError as e:
        code = (e.code(), e.details())
    t.eq(code, (grpc.StatusCode.UNIMPLEMENTED, "compression is not supported"),
         "%s: a gzip-compressed request is UNIMPLEMENTED, saying why" % kind)
    t.ok(rpc(health_pb2.HealthCheckRequest(), timeout=5).status ==
         health_pb2.HealthCheckResponse.SERVING, "%s: the connection still serves" % kind)
    ch.close()


def main():
    t = Tap()
    front = {"grpc_front": {"max_connections": CAP, "idle_timeout": IDLE_S}}
    rvps = start("rvps", dict(front, storage={"storage_type": "Memory"}))
    t.run(check_front, "rvps", rvps)
    t.run(check_h2, "rvps", rvps)
    rvps.stop()
    asd = start("grpc-as", dict(front))
    t.run(check_front, "grpc-as", asd)
    asd.stop()
    d = tmpdir("hostile-grpc-bad-")
    path = os.path.join(d, "rvps.json")
    json.dump({"grpc_front": {"idle_timeout": 0}}, open(path, "w"))
    port = free_port()
    dmn = Daemon("rvps-bad", [os.path.join(BIN, "rvps"), "--address", "127.0.0.1:%d" % port,
                              "--config", path], port)
    try:
        dmn.start(timeout=3)
        started = True
    except RuntimeError:
        started = False
    t.ok(not started and "grpc_front.idle_timeout must be" in dmn.log_text(),
         "a bad grpc_front value refuses the start naming the key", dmn.log_tail(3))
    dmn.stop()
    t.done()


if __name__ == "__main__":
    main()
