#!/usr/bin/python3
"""KBS request limits: the body limit (http_server.payload_request_size, 413), and how many
/auth + /attest calls may be in progress at once, in all (attestation_concurrency_limit) and
per client address (attestation_concurrency_limit_per_ip): a call over a limit gets 429 with
Retry-After and a problem body at once, other endpoints are not limited, and the counts return
to zero when the calls end. The AS is the gRPC stand-in made slow, so calls stay in progress.

Behind a proxy (trusted_proxies): through HAProxy (deploy/dev/haproxy-kbs.cfg.in, `option
forwardfor`) the per-address limit keys on the client HAProxy saw, and headers a client sends,
through the proxy or directly, do not move it to another key. The bounded session table
(max_sessions): a flood of /auth evicts sessions that have not attested, never attested ones,
and a table full of attested sessions refuses /auth with 503. An AS that accepts the TCP
connection and never answers makes /attest fail with 503 within as_timeout while the KBS
keeps serving."""
import concurrent.futures
import http.client
import json
import socket
import threading
import time

from harness import Tap
from kbs_testlib import (ALLOW_ALL, ERR, Attester, FakeAs, Haproxy, Kbs, KbsClient, Pki,
                         haproxy_available, kbs_config, require_kbs, scrape)

SECRET = b"limited"


class From(KbsClient):
    """A client whose connections come from another loopback address (and that may add
    headers of its own, e.g. a spoofed X-Forwarded-For, to every request)."""

    def __init__(self, port, src, extra=None):
        self.port, self.src, self.extra = port, src, extra or {}

    def request(self, method, path, body=None, headers=None, timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout,
                                       source_address=(self.src, 0))
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            c.request(method, path, body=body, headers=dict(headers or {}, **self.extra))
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()


def too_many(st, h, data):
    try:
        b = json.loads(data)
    except ValueError:
        return False
    return (st == 429 and h.get("retry-after") == "1" and
            b.get("type") == ERR + "TooManyRequests" and "retry later" in b.get("detail", ""))


def attest_all(attesters):
    """Every attester's /attest at the same moment; [(status, headers, body)]."""
    barrier = threading.Barrier(len(attesters))

    def one(a):
        barrier.wait()
        return a.attest()
    with concurrent.futures.ThreadPoolExecutor(len(attesters)) as ex:
        return list(ex.map(one, attesters))


def check_global(t, pki, fas):
    cfg = kbs_config(pki, as_addr=fas.addr)
    cfg["http_server"]["attestation_concurrency_limit"] = 2
    k = Kbs(cfg, name="kbs-limit-global").start()
    k.set_policy(pki, ALLOW_ALL)
    k.set_resource(pki, "default/lim/key", SECRET)
    ready = Attester(k)
    ready.rcar()
    atts = [Attester(k) for _ in range(5)]
    for a in atts:
        st, _, _ = a.auth()
        assert st == 200
    fas.delay = 1.5
    res = attest_all(atts)
    sts = sorted(st for st, _, _ in res)
    t.eq(sts, [200, 200, 429, 429, 429], "global limit 2: five /attest at once, two admitted")
    t.ok(all(too_many(*r) for r in res if r[0] == 429),
         "429 carries Retry-After: 1 and a TooManyRequests problem body",
         [r for r in res if r[0] == 429][:1])
    # while the limit is full, a resource read (not an attestation) still goes through
    busy = [Attester(k), Attester(k)]
    for a in busy:
        a.auth()
    th = threading.Thread(target=attest_all, args=(busy,))
    th.start()
    time.sleep(0.5)
    st, _, data = ready.get("default/lim/key")
    t.ok(st == 200 and ready.decrypt(data) == SECRET,
         "a resource read is not held up by the attestation limit", data[:200])
    st, h, data = Attester(k).auth()
    t.ok(too_many(st, h, data), "/auth counts toward the limit too", data)
    th.join()
    fas.delay = 0
    # the refused ones retry once the calls ended
    for a in atts:
        if a.token is None:
            st, _, data = a.attest()
            t.eq(st, 200, "a refused /attest succeeds when retried later")
    st, _, data = k.request("GET", "/metrics")
    t.ok(k.alive(), "daemon alive after the burst")
    k.stop()


def check_per_ip(t, pki, fas):
    cfg = kbs_config(pki, as_addr=fas.addr)
    cfg["http_server"]["attestation_concurrency_limit_per_ip"] = 1
    k = Kbs(cfg, name="kbs-limit-ip").start()
    try:
        socket.create_connection(("127.0.0.1", k.port), source_address=("127.0.0.2", 0)).close()
    except OSError as e:
        t.skip("per-address limit", "cannot connect from 127.0.0.2: %s" % e)
        k.stop()
        return
    local = [Attester(k), Attester(k)]
    other = Attester(From(k.port, "127.0.0.2"))
    for a in local + [other]:
        st, _, _ = a.auth()
        assert st == 200
    fas.delay = 1.5
    res = attest_all(local + [other])
    fas.delay = 0
    t.eq(sorted(st for st, _, _ in res[:2]), [200, 429],
         "per-address limit 1: two /attest at once from 127.0.0.1, one admitted")
    t.eq(res[2][0], 200, "... while 127.0.0.2 is admitted at the same moment")
    refused = [r for r in res[:2] if r[0] == 429]
    t.ok(refused and "from this address" in json.loads(refused[0][2])["detail"],
         "the 429 says the limit is per address", refused[:1])
    # the addresses' counts went back to zero
    a = Attester(k)
    a.rcar()
    t.ok(a.token is not None, "127.0.0.1 is admitted again once its call ended")
    k.stop()


def check_body_limit(t, pki, fas):
    cfg = kbs_config(pki, as_addr=fas.addr, payload=1)
    k = Kbs(cfg, name="kbs-limit-body").start()
    a = Attester(k)
    a.auth()
    body = a.attest_body()
    with socket.create_connection(("127.0.0.1", k.port), timeout=10) as s:
        s.sendall(b"POST /kbs/v0/attest HTTP/1.1\r\nHost: x\r\nCookie: %s\r\n"
                  b"Content-Length: %d\r\n\r\n" % (a.cookie.encode(), 1536 << 10) +
                  b"x" * 65536)
        status = s.makefile("rb").readline()
    t.ok(status.startswith(b"HTTP/1.1 413"),
         "payload_request_size 1 MiB: a 1.5 MiB /attest body gets 413", status)
    body["tee-evidence"]["primary_evidence"]["pad"] = "x" * (512 << 10)
    st, _, data = a.attest(body=body)
    t.ok(st != 413, "... and a 0.5 MiB body is read (and judged on its content)", st)
    t.ok(k.alive(), "daemon alive")
    k.stop()


def can_bind(src):
    try:
        with socket.socket() as s:
            s.bind((src, 0))
        return True
    except OSError:
        return False


def limited_pair(clients):
    """/auth for every client, then all their /attest at once; statuses in client order."""
    atts = [Attester(c) for c in clients]
    for a in atts:
        st, _, data = a.auth()
        assert st == 200, (st, data)
    return [st for st, _, _ in attest_all(atts)]


def check_spoofed_headers_direct(t, pki, fas):
    """A client talking to the KBS directly cannot pick its key with forwarding headers."""
    cfg = kbs_config(pki, as_addr=fas.addr)
    cfg["http_server"]["attestation_concurrency_limit_per_ip"] = 1
    cfg["http_server"]["trusted_proxies"] = ["127.0.0.3/32", "10.0.0.0/8"]
    k = Kbs(cfg, name="kbs-spoof-direct").start()
    fas.delay = 1.5
    for hdr in ("X-Forwarded-For", "Forwarded"):
        spoof = [From(k.port, "127.0.0.1", {hdr: v}) for v in
                 (("198.51.100.1", "for=198.51.100.1") if hdr == "Forwarded" else
                  ("198.51.100.1", "198.51.100.2"))]
        sts = limited_pair(spoof)
        t.eq(sorted(sts), [200, 429], "direct: two /attest from 127.0.0.1 with different %s "
             "headers share one per-address limit" % hdr)
    fas.delay = 0
    k.stop()


def check_behind_haproxy(t, pki, fas):
    if not haproxy_available():
        t.skip("behind haproxy", "haproxy is not installed (make deps)")
        return
    if not can_bind("127.0.0.2") or not can_bind("127.0.0.3"):
        t.skip("behind haproxy", "cannot use 127.0.0.2/127.0.0.3 as source addresses")
        return
    for trusted in (False, True):
        cfg = kbs_config(pki, as_addr=fas.addr)
        cfg["http_server"]["attestation_concurrency_limit_per_ip"] = 1
        if trusted:
            cfg["http_server"]["trusted_proxies"] = ["127.0.0.1"]
        k = Kbs(cfg, name="kbs-proxied-%s" % ("trusted" if trusted else "untrusted")).start()
        lb = Haproxy([k.port], name="haproxy-%s" % ("trusted" if trusted else "untrusted")).start()
        if not lb.wait_state("kbs1", "UP"):
            t.ok(False, "haproxy sees the kbs up", lb.states())
            lb.stop()
            k.stop()
            continue
        fas.delay = 1.5
        sts = limited_pair([From(lb.port, "127.0.0.2"), From(lb.port, "127.0.0.3")])
        if not trusted:
            t.eq(sorted(sts), [200, 429], "proxy not trusted: clients 127.0.0.2 and 127.0.0.3 "
                 "share the proxy's limit (why trusted_proxies exists)")
        else:
            t.eq(sts, [200, 200], "trusted proxy: 127.0.0.2 and 127.0.0.3 are limited apart "
                 "(X-Forwarded-For from HAProxy's option forwardfor)")
            sts = limited_pair([From(lb.port, "127.0.0.2"), From(lb.port, "127.0.0.2")])
            t.eq(sorted(sts), [200, 429], "trusted proxy: two /attest from 127.0.0.2 at once, "
                 "one admitted")
            sts = limited_pair([From(lb.port, "127.0.0.2", {"X-Forwarded-For": "127.0.0.50"}),
                                From(lb.port, "127.0.0.2", {"X-Forwarded-For": "127.0.0.1, "
                                                            "127.0.0.51"})])
            t.eq(sorted(sts), [200, 429], "trusted proxy: X-Forwarded-For values a client "
                 "sends through the proxy do not move it off its own address")
            m = scrape(k)
            t.eq(m.get(("kbs_limit_refusals_total",
                        (("limit", "attestation_concurrency_limit_per_ip"),)), 0), 2,
                 "trusted proxy: kbs_limit_refusals_total counts the two per-address 429s")
        fas.delay = 0
        lb.stop()
        k.stop()


def check_session_table_bound(t, pki, fas):
    cfg = kbs_config(pki, as_addr=fas.addr)
    cfg["attestation_service"]["max_sessions"] = 4
    k = Kbs(cfg, name="kbs-sessions").start()
    k.set_policy(pki, ALLOW_ALL)
    k.set_resource(pki, "default/lim/key", SECRET)
    real = [Attester(k), Attester(k)]
    for a in real:
        a.rcar()
    pending = Attester(k)
    pending.auth()
    flood = 20
    sts = [Attester(k).auth()[0] for _ in range(flood)]
    t.eq(sts, [200] * flood, "max_sessions 4: a flood of %d /auth is served" % flood)
    m = scrape(k)
    # table: 2 attested + `pending` + 1 free; the flood evicts `pending` and all but its last
    t.eq(m.get(("kbs_session_evictions_total", (("reason", "unattested"),))), flood - 1,
         "the flood evicted %d sessions that had not attested (metric)" % (flood - 1))
    for i, a in enumerate(real):
        st, _, data = a.get("default/lim/key")
        t.ok(st == 200 and a.decrypt(data) == SECRET,
             "attested session %d still reads after the flood" % i, data[:200])
    st, _, data = pending.attest()
    t.ok(st == 401 and "not found" in json.loads(data)["detail"],
         "the oldest unattested session was evicted: its /attest is refused", data)
    more = [Attester(k), Attester(k)]
    for a in more:
        a.rcar()
    st, h, data = Attester(k).auth()
    body = json.loads(data) if st == 503 else {}
    t.ok(st == 503 and h.get("retry-after") == "1" and
         body.get("type") == ERR + "AttestationError" and
         "session table full" in body.get("detail", ""),
         "table full of attested sessions: /auth -> 503 + Retry-After, 'session table full'",
         data)
    for i, a in enumerate(real + more):
        st, _, data = a.get("default/lim/key")
        t.ok(st == 200 and a.decrypt(data) == SECRET,
             "attested session %d is not logged out by the refused /auth" % i, data[:200])
    m = scrape(k)
    t.eq(m.get(("kbs_limit_refusals_total", (("limit", "max_sessions"),))), 1,
         "kbs_limit_refusals_total{limit=max_sessions} counts the refusal")
    t.ok(k.alive(), "daemon alive")
    k.stop()


class SilentAs:
    """Accepts TCP connections and never sends a byte (a hung AS)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.addr = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.conns = []
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)  # held open, never answered

    def stop(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def check_as_never_answers(t, pki, fas):
    silent = SilentAs()
    cfg = kbs_config(pki, as_addr=silent.addr)
    cfg["attestation_service"]["as_timeout"] = 2
    k = Kbs(cfg, name="kbs-silent-as").start()
    k.set_policy(pki, ALLOW_ALL)
    k.set_resource(pki, "default/lim/key", SECRET)
    a = Attester(k)
    st, _, _ = a.auth()
    t.eq(st, 200, "silent AS: /auth answers (it needs no AS for sample)")
    res = {}

    def attest():
        t0 = time.time()
        res["r"] = a.attest()
        res["s"] = time.time() - t0
    th = threading.Thread(target=attest)
    th.start()
    time.sleep(0.5)
    t0 = time.time()
    side = [k.request("GET", "/healthz")[0], Attester(k).auth()[0],
            k.request("GET", "/metrics")[0]]
    # a Bearer read needs no AS: a token from the test PKI, as a passport
    b = Attester(k)
    tok = pki.ear_token({"tee-pubkey": b.pubkey})
    st, _, data = b.get("default/lim/key", bearer=tok)
    side.append(st)
    t.ok(side == [200] * 4 and time.time() - t0 < 1.5 and th.is_alive(),
         "silent AS: /healthz, /auth, /metrics and a Bearer resource read answer while an "
         "/attest waits on the AS (%.2f s)" % (time.time() - t0), side)
    m = scrape(k)
    t.eq(m.get(("kbs_http_active_connections", ())), 1,
         "kbs_http_active_connections is 1 while the /attest waits")
    th.join(30)
    st, h, data = res["r"]
    detail = json.loads(data).get("detail", "") if st == 503 else ""
    t.ok(st == 503 and h.get("retry-after") == "1" and 1.5 <= res["s"] <= 6 and
         "did not answer within 2 s" in detail,
         "silent AS: /attest -> 503 + Retry-After within as_timeout 2 s (%.2f s)" %
         res.get("s", -1), data)
    st, _, data = a.attest()
    t.eq(st, 503, "silent AS: a retry fails the same clean way (the session is still Authed)")
    t.eq(scrape(k).get(("kbs_http_active_connections", ())), 0,
         "kbs_http_active_connections back to 0")
    t.ok(k.alive(), "daemon alive")
    k.stop()
    silent.stop()


def main():
    require_kbs()
    t = Tap()
    pki = Pki()
    fas = FakeAs(pki)
    t.run(check_global, pki, fas)
    t.run(check_per_ip, pki, fas)
    t.run(check_body_limit, pki, fas)
    t.run(check_spoofed_headers_direct, pki, fas)
    t.run(check_behind_haproxy, pki, fas)
    t.run(check_session_table_bound, pki, fas)
    t.run(check_as_never_answers, pki, fas)
    fas.stop()
    t.done()


if __name__ == "__main__":
    main()
