#!/usr/bin/python3
"""/attest served by the kbs's event loop (issue 13): with sessions in memory and the AS at a
plaintext address (an IP or a host name, resolved on the loop), the loop that read the request
runs the checks, calls the AS through its own non-blocking gRPC client (common/grpcx_async.c)
and replies when the answer comes back to it; everything else keeps the worker pool. Against
the real grpc-as + rvps + redis:

- the loop serves /attest (kbs_event_loop_answers_total counts it), with the AS at an IP and at
  http://localhost:PORT alike, and a kbs whose round trips stay on the worker pool
  ([http_server] loop_round_trips = false, sessions in Redis) gives the very same answers -- status, problem type and detail -- for every refusal and for success;
- an AS host name that does not resolve: 503 on the loop as on the pool, the kbs log naming it;
- 48 attesters at once on their own connections, and 16 /attest pipelined on one connection;
- the AS stopped with calls in flight, then killed: those calls get 503 (the link lost), the
  next one 503 (cannot connect), and once the AS is back the next /attest succeeds;
- an AS that accepts and reads HTTP/2 but never answers: 503 after [attestation_service]
  timeout, the kbs still serving meanwhile;
- more calls in flight than a loop's budget (64): the rest go to the pool, and all attest;
- sessions in Redis: on the loop too (its Redis client; test_kbs_redis_loop.py)."""
import concurrent.futures
import json
import os
import signal
import socket
import threading
import time

from harness import Redis, Tap, free_port
from kbs_testlib import ALLOW_ALL, ERR, Attester, Kbs, Pki, RealAs, kbs_config, real_as_available, \
    require_kbs, scrape


def loop_answers(kbs):
    return scrape(kbs).get(("kbs_event_loop_answers_total", ()), 0)


def attest_counts(kbs):
    m = scrape(kbs)
    return (m.get(("kbs_attestation_requests_total", ()), 0),
            m.get(("kbs_attestation_successes_total", (("tee_type", "sample"),)), 0),
            m.get(("kbs_attestation_failures_total", (("tee_type", "sample"),)), 0))


def answer(st, h, data):
    """What a client sees of an /attest answer."""
    if st == 200:
        return (st, sorted(json.loads(data)), h.get("set-cookie", "").startswith("kbs-session"))
    try:
        p = json.loads(data)
        return (st, p.get("type", "").replace(ERR, ""), p.get("detail"), h.get("retry-after"))
    except ValueError:
        return (st, data)


def script(kbs):
    """Each /attest case once: [(name, answer)]. Session ids differ by run, so none is shown."""
    out = []
    a = Attester(kbs)
    st, h, data = a.attest(cookie=False, nonce="x")
    out.append(("no cookie", answer(st, h, data)))
    a.cookie = "kbs-session-id=" + "0" * 32
    st, h, data = a.attest(nonce="x")
    out.append(("unknown session", answer(st, h, data)))
    a.auth()
    st, h, data = a.kbs.request("POST", "/kbs/v0/attest", b"{not json",
                                {"Cookie": a.cookie, "Content-Type": "application/json"})
    out.append(("malformed body", answer(st, h, data)))
    st, h, data = a.attest(nonce="AAAA" + a.nonce[4:])
    out.append(("nonce that is not the challenge", answer(st, h, data)))
    st, h, data = a.attest(bind=False)
    out.append(("evidence the AS refuses", answer(st, h, data)))
    b = Attester(kbs)
    b.auth()
    st, h, data = b.attest()
    out.append(("good evidence", answer(st, h, data)))
    st, h, data = b.attest()
    out.append(("the nonce used again", answer(st, h, data)))
    return out


def redis_sessions(cfg, redis, pool=True):
    """cfg with sessions in Redis; pool (the default): [http_server] loop_round_trips = false
    keeps /auth and /attest on the worker pool, the reference for the loop's answers."""
    url = "redis://127.0.0.1:%d" % redis.port
    cfg["storage_backend"] = {"storage_type": "Redis", "backends": {"redis": {"url": url}}}
    cfg["session_storage_type"] = "Redis"
    if pool:
        cfg["http_server"]["loop_round_trips"] = False
    return cfg


def check_same_answers(t, pki, asvc, redis):
    port = asvc.addr.rsplit(":", 1)[1]
    loop = Kbs(kbs_config(pki, as_addr=asvc.addr), name="kbs-loop").start()
    named = Kbs(kbs_config(pki, as_addr="http://localhost:" + port), name="kbs-loop-named").start()
    pool = Kbs(redis_sessions(kbs_config(pki, as_addr=asvc.addr), redis), name="kbs-pool").start()
    try:
        b0, n0, p0 = loop_answers(loop), loop_answers(named), loop_answers(pool)
        c0 = attest_counts(loop)
        got_loop, got_named, got_pool = script(loop), script(named), script(pool)
        for (name, al), (_, an), (_, ap) in zip(got_loop, got_named, got_pool):
            t.eq(al, ap, "same answer on the loop and on the pool: " + name)
            t.eq(an, ap, "same answer on the loop with the AS by name: " + name)
        t.eq(attest_counts(loop), tuple(x + d for x, d in zip(c0, (7, 1, 3))),
             "the loop counts requests, successes and failures as the pool does")
        t.eq(attest_counts(pool), attest_counts(loop), "both kbs count the same")
        # /auth is answered on the loop by all; /attest only by the first two
        t.eq(loop_answers(loop) - b0, 2 + 7, "the loop answered every /attest (and /auth)")
        t.eq(loop_answers(named) - n0, 2 + 7,
             "with the AS at http://localhost:PORT the loop answered every /attest too")
        t.eq(loop_answers(pool) - p0, 0, "loop_round_trips = false keeps /auth and /attest on the pool")
        t.ok("/attest calls the AS from the event loops" in loop.log_text(),
             "the kbs says the loop calls the AS")
        t.ok("/attest calls the AS from the event loops" in named.log_text(),
             "the kbs with the AS by name says so too", named.log_tail(5))
    finally:
        loop.stop()
        named.stop()
        pool.stop()


def check_name_does_not_resolve(t, pki, redis):
    """An AS address whose host name does not resolve: 503 + Retry-After on the loop, the same
    answer as the pool's (the detail names the host), and so does the kbs log."""
    addr = "http://no-such-as.invalid:50004"
    loop = Kbs(kbs_config(pki, as_addr=addr), name="kbs-unresolved").start()
    pool = Kbs(redis_sessions(kbs_config(pki, as_addr=addr), redis),
               name="kbs-unresolved-pool").start()
    try:
        got = []
        for kbs in (loop, pool):
            before = loop_answers(kbs)
            a = Attester(kbs)
            a.auth()
            t0 = time.time()
            got.append((answer(*a.attest()), time.time() - t0, loop_answers(kbs) - before))
        (al, took, on_loop), (ap, _, on_pool) = got
        t.ok(al[0] == 503 and al[3] == "1" and "the attestation service is unavailable" in al[2],
             "AS name does not resolve: /attest -> 503 with Retry-After (%.2fs)" % took, al)
        t.eq(on_loop, 2, "the loop answered it")
        t.eq(on_pool, 0, "the pool answered the other")
        # the resolver's own words may differ (evdns on the loop, getaddrinfo on the pool)
        name = "cannot resolve the server's host name no-such-as.invalid"
        t.eq((al[0], al[1], al[3]), (ap[0], ap[1], ap[3]),
             "the same status, problem type and Retry-After as the pool's")
        t.ok(name in al[2] and name in ap[2], "both details name the host", (al, ap))
        t.ok("cannot resolve the server's host name no-such-as.invalid" in loop.log_text(),
             "the kbs log names the host", loop.log_tail(3))
    finally:
        loop.stop()
        pool.stop()


def check_concurrent(t, kbs, pki):
    n = 48
    kbs.set_policy(pki, ALLOW_ALL)
    kbs.set_resource(pki, "default/loop/key", b"loop secret")
    atts = [Attester(kbs) for _ in range(n)]
    for a in atts:
        assert a.auth()[0] == 200
    before = loop_answers(kbs)
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(n) as ex:
        res = list(ex.map(lambda a: a.attest(), atts))
    bad = [(st, d[:200]) for st, _, d in res if st != 200]
    t.ok(not bad, "%d attesters at once on their own connections all attested (%.2fs)" %
         (n, time.time() - t0), bad[:3])
    t.eq(loop_answers(kbs) - before, n, "the loop answered all %d" % n)
    ok = 0
    for a in atts:
        st, _, data = a.get("default/loop/key")
        ok += st == 200 and a.decrypt(data) == b"loop secret"
    t.eq(ok, n, "every attested session reads the secret")


def read_response(f):
    line = f.readline()
    st = int(line.split()[1])
    hdrs = {}
    while True:
        line = f.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        k, v = line.decode().split(":", 1)
        hdrs[k.strip().lower()] = v.strip()
    body = f.read(int(hdrs.get("content-length", "0")))
    return st, hdrs, body


def check_one_connection(t, kbs):
    n = 16
    atts = [Attester(kbs) for _ in range(n)]
    for a in atts:
        assert a.auth()[0] == 200
    reqs = b""
    for a in atts:
        body = json.dumps(a.attest_body()).encode()
        reqs += (b"POST /kbs/v0/attest HTTP/1.1\r\nHost: kbs\r\nCookie: %s\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" %
                 (a.cookie.encode(), len(body))) + body
    before = loop_answers(kbs)
    with socket.create_connection(("127.0.0.1", kbs.port), timeout=30) as s:
        s.sendall(reqs)
        f = s.makefile("rb")
        res = [read_response(f) for _ in range(n)]
    sts = [st for st, _, _ in res]
    t.eq(sts, [200] * n, "%d /attest pipelined on one connection all attested, in order" % n)
    toks = [json.loads(b)["token"] for st, _, b in res if st == 200]
    t.eq(len(set(toks)), n, "each got its own token")
    t.eq(loop_answers(kbs) - before, n, "the loop answered all %d" % n)


def attest_in_threads(atts):
    ex = concurrent.futures.ThreadPoolExecutor(len(atts))
    return ex, [ex.submit(a.attest) for a in atts]


def check_as_killed(t, kbs, asvc):
    atts = [Attester(kbs) for _ in range(6)]
    for a in atts:
        assert a.auth()[0] == 200
    pgid = asvc.grpc_as.proc.pid
    os.killpg(pgid, signal.SIGSTOP)
    try:
        ex, futs = attest_in_threads(atts)
        time.sleep(1.0)  # the calls are on the AS's socket, unanswered
        st, _, _ = kbs.request("GET", "/healthz", timeout=5)
        t.eq(st, 200, "AS stalled with calls in flight: the kbs still answers")
        asvc.grpc_as.kill()
    finally:
        try:
            os.killpg(pgid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    res = [f.result(timeout=30) for f in futs]
    ex.shutdown()
    ans = [answer(*r) for r in res]
    t.ok(all(a[0] == 503 and a[3] == "1" and
             "the attestation service is unavailable" in a[2] and "127.0.0.1" not in a[2]
             for a in ans),
         "AS killed mid-flight: every call in flight -> 503, Retry-After, the AS named", ans[:2])
    b = Attester(kbs)
    b.auth()
    st, h, data = b.attest()
    a = answer(st, h, data)
    t.ok(a[0] == 503 and "unavailable" in a[2], "AS down: the next /attest -> 503", a)
    asvc.grpc_as.start()
    st, h, data = b.attest()
    t.eq(st, 200, "AS back: the next /attest succeeds on a new connection")
    c = Attester(kbs)
    c.auth()
    t.eq(c.attest()[0], 200, "and the one after it")


class SilentPeer:
    """A TCP listener that accepts and reads everything (HTTP/2 preface, SETTINGS, HEADERS,
    DATA) and never sends a byte: an AS that never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.got = 0
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._read, args=(c,), daemon=True).start()

    def _read(self, c):
        while True:
            try:
                b = c.recv(65536)
            except OSError:
                return
            if not b:
                return
            self.got += len(b)

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def check_remote_jwks_keeps_the_pool(t, pki, asvc):
    """A trusted_jwk_sets URL may be fetched while the AS token is verified, which takes
    seconds when its server is slow: /attest then stays on the pool, said at start, and still
    attests (the token is endorsed by the CA; the JWKS server here never answers)."""
    peer = SilentPeer()
    cfg = kbs_config(pki, as_addr=asvc.addr,
                     extra_token={"trusted_jwk_sets": ["http://127.0.0.1:%d/jwks" % peer.port]})
    kbs = Kbs(cfg, name="kbs-remote-jwks").start()
    try:
        t.ok("/attest calls the AS from the worker pool: [attestation_token] trusted_jwk_sets "
             "names a URL" in kbs.log_text(), "the kbs says why /attest stays on the pool",
             kbs.log_tail(5))
        before = loop_answers(kbs)
        a = Attester(kbs)
        a.auth()
        st, _, _ = a.attest()
        t.eq(st, 200, "/attest attests on the pool")
        t.eq(loop_answers(kbs) - before, 1, "only /auth was answered on the loop")
    finally:
        kbs.stop()
        peer.close()


def check_deadline(t, pki):
    peer = SilentPeer()
    cfg = kbs_config(pki, as_addr="http://127.0.0.1:%d" % peer.port)
    cfg["attestation_service"]["as_timeout"] = 1
    kbs = Kbs(cfg, name="kbs-silent-as").start()
    try:
        atts = [Attester(kbs) for _ in range(4)]
        for a in atts:
            assert a.auth()[0] == 200
        t0 = time.time()
        ex, futs = attest_in_threads(atts)
        time.sleep(0.3)
        t1 = time.time()
        st, _, _ = kbs.request("GET", "/healthz", timeout=5)
        c = Attester(kbs)
        ast = c.auth()[0]
        t.ok(st == 200 and ast == 200 and time.time() - t1 < 0.5,
             "AS silent: the kbs answers /healthz and /auth meanwhile (%.3fs)" % (time.time() - t1))
        res = [answer(*f.result(timeout=30)) for f in futs]
        took = time.time() - t0
        ex.shutdown()
        want = "the attestation service did not answer within 1 s"
        t.ok(all(a[0] == 503 and a[3] == "1" and want in a[2] for a in res) and 0.9 < took < 4,
             "AS silent: every /attest -> 503 after the 1 s deadline (%.2fs)" % took, res[:2])
        t.ok(peer.got > 24, "the silent AS was sent the calls (%d bytes)" % peer.got)
        st, h, data = atts[0].attest()
        a = answer(st, h, data)
        t.ok(a[0] == 503 and want in a[2], "a second call on the same link also times out", a)
    finally:
        kbs.stop()
        peer.close()


def check_budget(t, pki, asvc, redis=None):
    """One event loop, the AS stopped, 80 /attest at once: 64 wait on the loop's AS client,
    the other 16 on pool workers; once the AS runs again every one attests. With sessions in
    Redis the AS client fills while sessions are read on the loop: those handed to the pool
    then are the pool's answers, not the loop's."""
    cfg = kbs_config(pki, as_addr=asvc.addr)
    if redis:
        cfg = redis_sessions(cfg, redis, pool=False)
    cfg["http_server"]["worker_count"] = 1
    kbs = Kbs(cfg, name="kbs-one-loop" + ("-redis" if redis else "")).start()
    pgid = asvc.grpc_as.proc.pid
    try:
        atts = [Attester(kbs) for _ in range(80)]
        for a in atts:
            assert a.auth()[0] == 200
        before = loop_answers(kbs)
        os.killpg(pgid, signal.SIGSTOP)
        try:
            ex, futs = attest_in_threads(atts)
            deadline = time.time() + 10
            while time.time() < deadline and \
                    scrape(kbs).get(("kbs_attestation_requests_total", ()), 0) < 80:
                time.sleep(0.05)
        finally:
            os.killpg(pgid, signal.SIGCONT)
        sts = [f.result(timeout=30)[0] for f in futs]
        ex.shutdown()
        how = " (sessions in Redis)" if redis else ""
        t.eq(sts, [200] * 80,
             "80 /attest at once on one loop with a budget of 64: all attest" + how)
        t.eq(loop_answers(kbs) - before, 64, "the loop served 64, the pool the rest" + how)
    finally:
        kbs.stop()


def check_redis_sessions(t, pki, asvc, redis):
    kbs = Kbs(redis_sessions(kbs_config(pki, as_addr=asvc.addr), redis, pool=False),
              name="kbs-redis-sessions").start()
    try:
        before = loop_answers(kbs)
        atts = [Attester(kbs) for _ in range(8)]
        for a in atts:
            assert a.auth()[0] == 200
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            sts = [r[0] for r in ex.map(lambda a: a.attest(), atts)]
        t.eq(sts, [200] * 8, "sessions in Redis: 8 attesters at once attest")
        t.eq(loop_answers(kbs) - before, 16,
             "sessions in Redis: /auth and /attest on the loop (test_kbs_redis_loop.py)")
    finally:
        kbs.stop()


def main():
    require_kbs()
    t = Tap()
    if not real_as_available():
        t.skip("test_kbs_attest_loop", "grpc-as or rvps not built")
        t.done()
    pki = Pki()
    asvc = RealAs(pki)
    redis = Redis().start()
    kbs = Kbs(kbs_config(pki, as_addr=asvc.addr)).start()
    t.run(check_same_answers, pki, asvc, redis)
    t.run(check_name_does_not_resolve, pki, redis)
    t.run(check_concurrent, kbs, pki)
    t.run(check_one_connection, kbs)
    t.run(check_as_killed, kbs, asvc)
    t.run(check_deadline, pki)
    t.run(check_remote_jwks_keeps_the_pool, pki, asvc)
    t.run(check_budget, pki, asvc)
    t.run(check_budget, pki, asvc, redis)
    t.run(check_redis_sessions, pki, asvc, redis)
    t.ok(kbs.alive(), "kbs survived the whole run")
    kbs.stop()
    asvc.stop()
    redis.stop()
    t.done()


if __name__ == "__main__":
    main()
