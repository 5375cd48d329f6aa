#!/usr/bin/python3
"""KBS metrics (kbs-protocol.md §9, with our fixes): a scripted sequence of requests, each kind
with a known effect, between two scrapes of /metrics parsed by prometheus_client's parser (an
independent reader of the text format). Every counter must move by exactly what the sequence
causes; the request- and response-size histograms by exactly the body bytes the client sent
and received (each request once, responses in the response histogram, not the request one);
the duration histogram once per /kbs request; buckets cumulative and ending at the count;
/metrics and /healthz not counted; active connections back at 0."""
import json

from harness import Tap
from kbs_testlib import (ALLOW_ALL, DENY_ALL, ERR, Attester, FakeAs, Kbs, KbsClient, Pki, b64u,
                         kbs_config, require_kbs, scrape)

PATH = "default/metrics/key"
SECRET = b"metered secret"


class Recorder(KbsClient):
    """Talks to `kbs` and records (request body bytes, response body bytes) of /kbs calls."""

    def __init__(self, kbs):
        self.kbs, self.port, self.calls = kbs, kbs.port, []

    def request(self, method, path, body=None, headers=None, timeout=30):
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        st, h, data = self.kbs.request(method, path, body, headers, timeout)
        if path.startswith("/kbs"):
            self.calls.append((len(body or b""), len(data)))
        return st, h, data


def delta(m0, m1, name, labels=()):
    key = (name, tuple(sorted(labels)))
    return m1.get(key, 0) - m0.get(key, 0)


def buckets_ok(m, name):
    """Cumulative, non-decreasing buckets ending at +Inf == _count."""
    bs = sorted((float(dict(l)["le"]), v) for (n, l), v in m.items() if n == name + "_bucket")
    vals = [v for _, v in bs]
    return (bs and bs[-1][0] == float("inf") and vals == sorted(vals) and
            vals[-1] == m[(name + "_count", ())])


def main():
    require_kbs()
    t = Tap()
    pki = Pki()
    fas = FakeAs(pki)
    k = Kbs(kbs_config(pki, as_addr=fas.addr), name="kbs-metrics").start()
    k.set_policy(pki, ALLOW_ALL)
    m0 = scrape(k)
    for n in ("kbs_http_request_duration_seconds", "kbs_http_request_size_bytes",
              "kbs_http_response_size_bytes"):
        t.ok((n + "_count", ()) in m0, "%s is exposed" % n)
    t.ok(any(n == "kbs_build_info" for n, _ in m0), "kbs_build_info is exposed")

    r = Recorder(k)
    r.set_resource(pki, PATH, SECRET)                          # write
    a = Attester(r)
    st, _, _ = a.auth()                                        # auth ok
    assert st == 200
    st, _, _ = Attester(r).auth(version="0.3.0")               # auth error
    t.eq(st, 401, "sequence: /auth with a wrong version is refused")
    st, _, _ = a.attest()                                      # attest ok (sample)
    t.eq(st, 200, "sequence: /attest succeeds")
    b = Attester(r)
    b.auth()                                                   # auth ok
    st, _, _ = b.attest(bind=False)                            # attest failure (sample)
    t.eq(st, 401, "sequence: /attest with unbound evidence is refused")
    st, _, _ = r.request("POST", "/kbs/v0/attest", a.attest_body(),
                         {"Content-Type": "application/json"})  # attest error: no cookie
    t.eq(st, 401, "sequence: /attest without a cookie is refused")
    st, _, data = a.get(PATH)                                  # policy approval + read
    t.ok(st == 200 and a.decrypt(data) == SECRET, "sequence: the resource is read", data[:100])
    st, _, data = a.get("default/metrics/missing")             # approval, no read
    t.eq(json.loads(data)["type"], ERR + "PluginInternalError", "sequence: a missing resource")
    st, _, _ = r.admin("POST", "/kbs/v0/resource-policy", {"policy": b64u(DENY_ALL)}, pki)
    t.eq(st, 200, "sequence: deny-all policy set")
    st, _, data = a.get(PATH)                                  # violation
    t.eq(json.loads(data)["type"], ERR + "PolicyDeny", "sequence: the read is denied")
    st, _, _ = r.admin("DELETE", "/kbs/v0/resource/" + PATH, None, pki)   # delete
    t.eq(st, 200, "sequence: the resource is deleted")
    st, _, _ = r.request("GET", "/kbs/v0/nosuchplugin/x")       # 404, counted as a request
    t.eq(st, 404, "sequence: an unknown plugin is 404")
    for p in ("/healthz", "/metrics", "/readyz"):              # not /kbs: not counted
        k.request("GET", p)
    m1 = scrape(k)

    n = len(r.calls)
    want = {
        ("kbs_http_requests_total", ()): n,
        ("kbs_auth_requests_total", ()): 3,
        ("kbs_auth_successes_total", ()): 2,
        ("kbs_auth_errors_total", ()): 1,
        ("kbs_attestation_requests_total", ()): 3,
        ("kbs_attestation_successes_total", (("tee_type", "sample"),)): 1,
        ("kbs_attestation_failures_total", (("tee_type", "sample"),)): 1,
        ("kbs_attestation_errors_total", ()): 1,
        ("kbs_policy_evaluations_total", ()): 3,
        ("kbs_policy_approvals_total", ()): 2,
        ("kbs_policy_violations_total", ()): 1,
        ("kbs_policy_errors_total", ()): 0,
        ("kbs_resource_reads_total", (("resource_path", PATH),)): 1,
        ("kbs_resource_writes_total", (("resource_path", PATH),)): 1,
        ("kbs_resource_deletes_total", (("resource_path", PATH),)): 1,
        ("kbs_http_request_duration_seconds_count", ()): n,
        ("kbs_http_request_size_bytes_count", ()): n,
        ("kbs_http_response_size_bytes_count", ()): n,
        ("kbs_http_request_size_bytes_sum", ()): sum(q for q, _ in r.calls),
        ("kbs_http_response_size_bytes_sum", ()): sum(p for _, p in r.calls),
    }
    for (name, labels), v in sorted(want.items()):
        got = delta(m0, m1, name, labels)
        t.eq(got, v, "%s%s moved by %s" % (name, "{%s}" % ",".join("%s=%s" % l for l in labels)
                                           if labels else "", v))
    # the response-size histogram holds response bodies: its buckets see the JWE (> 512 B)
    big = sum(1 for _, p in r.calls if p > 512)
    def above_512(m):
        le512 = [v for (nm, l), v in m.items() if nm == "kbs_http_response_size_bytes_bucket"
                 and float(dict(l)["le"]) == 512]
        return m[("kbs_http_response_size_bytes_count", ())] - le512[0]
    got = above_512(m1) - above_512(m0)
    t.eq(got, big, "response bodies above 512 bytes land above the 512 bucket (%d)" % big)
    for name in ("kbs_http_request_duration_seconds", "kbs_http_request_size_bytes",
                 "kbs_http_response_size_bytes"):
        t.ok(buckets_ok(m1, name), "%s: buckets cumulative, +Inf equals _count" % name)
    t.eq(m1[("kbs_http_active_connections", ())], 0, "no /kbs request in progress")
    t.eq(m1.get(("kbs_session_evictions_total", (("reason", "unattested"),)), 0), 0,
         "no session evicted (table far from full)")
    t.ok(k.alive(), "daemon alive")
    k.stop()
    fas.stop()
    t.done()


if __name__ == "__main__":
    main()
