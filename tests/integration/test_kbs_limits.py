#!/usr/bin/python3
"""KBS request limits: the body limit (http_server.payload_request_size, 413), and how many
/auth + /attest calls may be in progress at once, in all (attestation_concurrency_limit) and
per client address (attestation_concurrency_limit_per_ip): a call over a limit gets 429 with
Retry-After and a problem body at once, other endpoints are not limited, and the counts return
to zero when the calls end. The AS is the gRPC stand-in made slow, so calls stay in progress."""
import concurrent.futures
import http.client
import json
import socket
import threading
import time

from harness import Tap
from kbs_testlib import ALLOW_ALL, ERR, Attester, FakeAs, Kbs, KbsClient, Pki, kbs_config, require_kbs

SECRET = b"limited"


class From(KbsClient):
    """A client whose connections come from another loopback address."""

    def __init__(self, port, src):
        self.port, self.src = port, src

    def request(self, method, path, body=None, headers=None, timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout,
                                       source_address=(self.src, 0))
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            c.request(method, path, body=body, headers=headers or {})
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


def main():
    require_kbs()
    t = Tap()
    pki = Pki()
    fas = FakeAs(pki)
    t.run(check_global, pki, fas)
    t.run(check_per_ip, pki, fas)
    t.run(check_body_limit, pki, fas)
    fas.stop()
    t.done()


if __name__ == "__main__":
    main()
