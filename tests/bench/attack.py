#!/usr/bin/python3
"""Background attack for `make bench`'s "handshakes/s while under attack" row (issue 14):
slow request heads and slow bodies to the kbs, and idle HTTP/2 connections (preface + empty
SETTINGS, then silence) to grpc-as, each kept at its count (a connection the server closes is
opened again) until SIGTERM or --seconds. One thread, non-blocking sockets, a byte per
connection per tick, from 127.0.0.2.. so the kbs's per-address cap does not touch the bench
client on 127.0.0.1. Prints what it did when it stops."""
import argparse
import errno
import signal
import socket
import sys
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
HEAD = b"POST /kbs/v0/auth HTTP/1.1\r\nHost: kbs\r\nContent-Type: application/json\r\n"


class Conn:
    def __init__(self, kind, port, src, burst, drip):
        self.kind, self.port, self.src = kind, port, src
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.s.setblocking(False)
        self.s.bind((src, 0))
        err = self.s.connect_ex(("127.0.0.1", port))
        if err not in (0, errno.EINPROGRESS):
            raise OSError(err, "connect")
        self.burst, self.pending = burst, drip

    def tick(self):
        """Send the next byte (or the opening bytes); False when the server closed."""
        try:
            while True:  # drain what the server sent (core's SETTINGS, a 408)
                b = self.s.recv(65536)
                if not b:
                    return False
        except BlockingIOError:
            pass
        except OSError:
            return False
        try:
            if self.burst:  # the opening bytes at once, once connected
                self.burst = self.burst[self.s.send(self.burst):]
            elif self.pending:  # then a byte per tick (idle HTTP/2: silence)
                self.pending = self.pending[self.s.send(self.pending[:1]):]
        except BlockingIOError:
            pass
        except OSError:
            return False
        return True


def opening(kind):
    """(burst, drip): what a connection of this kind sends at once, then a byte per tick."""
    if kind == "head":  # a head that never ends
        return b"", HEAD + b"X-Slow: " + b"a" * 100000
    if kind == "body":  # a whole head, then a body that never ends
        return HEAD + b"Content-Length: 1000000\r\n\r\n", b'{"version":"0.4.0",' + b" " * 99980
    return PREFACE, b""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kbs-port", type=int, required=True)
    ap.add_argument("--as-port", type=int, required=True)
    ap.add_argument("--slow-headers", type=int, default=100)
    ap.add_argument("--slow-bodies", type=int, default=100)
    ap.add_argument("--idle-h2", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--tick", type=float, default=0.5)
    a = ap.parse_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    want = [("head", a.kbs_port, a.slow_headers), ("body", a.kbs_port, a.slow_bodies),
            ("h2", a.as_port, a.idle_h2)]
    conns = {k: [] for k, _, _ in want}
    opened = {k: 0 for k, _, _ in want}
    closed = {k: 0 for k, _, _ in want}
    nsrc = [0]

    def src():
        nsrc[0] += 1
        return "127.0.%d.%d" % (1 + nsrc[0] // 250 % 200, 2 + nsrc[0] % 250)

    end = time.time() + a.seconds
    while not stop and time.time() < end:
        for kind, port, n in want:
            live = []
            for c in conns[kind]:
                if c.tick():
                    live.append(c)
                else:
                    c.s.close()
                    closed[kind] += 1
            while len(live) < n:
                try:
                    live.append(Conn(kind, port, src(), *opening(kind)))
                    opened[kind] += 1
                except OSError:
                    break
            conns[kind] = live
        time.sleep(a.tick)
    print("attack: " + ", ".join("%s %d open, %d opened, %d closed by the server" %
                                 (k, len(conns[k]), opened[k], closed[k]) for k in conns))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
