#!/usr/bin/python3
"""Test TEEs cannot crowd out real ones (issue 14 V1, V2), against the real daemons: grpc-as
(sample and DCAP verifiers; TDX quotes forged under a test root by dcap_forge.py), the kbs, and
Redis for sessions kept in a store.

V2  200 sample handshakes fill a kbs with max_sessions=200: a sample /auth is still refused
    (attested sessions outlive a flood of their own kind), but a TDX guest's /auth evicts the
    oldest sample session and its whole handshake and resource read succeed. The same with the
    table bounded in bytes (max_sessions_bytes) instead of in count.
V1  40 sample handshakes whose evidence carries a 1.4 MB `svn`: each EAR token is over
    max_session_token_size and /attest is refused with a sentence naming the key; the kbs's
    RSS stays bounded; with sessions in Redis, Redis does not grow.
    allow_sample_tee = false: sample and sampledevice are refused at /auth with a sentence, and
    sample evidence cannot ride along as additional evidence of a real TEE.
"""
import base64
import hashlib
import json
import os
import threading

import dcap_forge as F
from harness import BIN, Daemon, Tap, free_port, tmpdir
from kbs_testlib import (ALLOW_ALL, Attester, Kbs, Pki, Redis, jcs, kbs_config, require_kbs,
                         scrape)

WHEN = "2025-06-01T00:00:00Z"  # inside dcap_forge's collateral windows
SECRET = b"real tee secret"


class Tdx:
    """Forged TDX quotes under a test root, and a grpc-as that trusts that root."""

    def __init__(self, pki):
        self.d = tmpdir("hostile-sessions-")
        self.scenario = F.Scenario(F.PKI())
        _, self.bundle = self.scenario.write(self.d, "base")
        self.root = os.path.join(self.d, "root.pem")
        open(self.root, "wb").write(F.pem(self.scenario.pki.root))
        self.pki = pki
        self.n = 0

    def start_as(self):
        port = free_port()
        cfg = os.path.join(self.d, "as.json")
        json.dump({"work_dir": self.d, "attestation_token_broker": {"signer": {
            "key_path": self.pki.path("token.key"),
            "cert_path": self.pki.path("token-cert-chain.pem")}},
            "verifier_config": {"dcap_verifier": {
                "collateral_service": "file://" + self.bundle, "root_ca_file": self.root,
                "verification_time": WHEN}}}, open(cfg, "w"))
        self.asd = Daemon("grpc-as", [os.path.join(BIN, "grpc-as"), "--socket",
                                      "127.0.0.1:%d" % port, "--config-file", cfg], port).start()
        return "http://127.0.0.1:%d" % port

    def attest_body(self, a, additional=""):
        """/attest body with a quote whose REPORT_DATA binds a's nonce and key."""
        rd = {"tee-pubkey": a.pubkey, "nonce": a.nonce, "additional-evidence": additional}
        s = F.copy_scenario(self.scenario)
        s.body["report_data"] = hashlib.sha384(jcs(rd)).digest() + bytes(16)
        self.n += 1
        qp, _ = s.write(self.d, "q%d" % self.n)
        body = a.attest_body(additional=additional)
        body["tee-evidence"]["primary_evidence"] = {
            "quote": base64.b64encode(open(qp, "rb").read()).decode(), "cc_eventlog": None}
        return body

    def handshake(self, kbs):
        """A TDX guest's /auth, /attest and resource read: the three statuses and details."""
        a = Attester(kbs, tee="tdx")
        st, _, body = a.auth()
        if st != 200:
            return [st], body
        st2, _, body = a.attest(body=self.attest_body(a))
        if st2 != 200:
            return [st, st2], body
        st3, _, data = a.get("default/real/key")
        ok = st3 == 200 and a.decrypt(data) == SECRET
        return [st, st2, 200 if ok else st3], data[:200]


def sample_handshakes(kbs, n, threads=8, svn=None):
    """n sample handshakes over `threads` threads: the /attest statuses and details."""
    out, lock = [], threading.Lock()

    def worker(k):
        for _ in range(k):
            a = Attester(kbs)
            st, _, data = a.auth()
            if st == 200:
                body = a.attest_body()
                if svn is not None:
                    body["tee-evidence"]["primary_evidence"]["svn"] = svn
                st, _, data = a.attest(body=body)
            with lock:
                out.append((st, data))

    ts = [threading.Thread(target=worker, args=(n // threads + (i < n % threads),))
          for i in range(threads)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    return out


def start_kbs(cfg, name, pki, **asvc):
    cfg = dict(cfg, attestation_service=dict(cfg["attestation_service"], **asvc))
    k = Kbs(cfg, name=name)
    if os.path.exists(k.logpath):
        os.remove(k.logpath)
    k.start()
    k.set_policy(pki, ALLOW_ALL)
    k.set_resource(pki, "default/real/key", SECRET)
    return k


def check_sample_flood_count(t, cfg, pki, tdx):
    """V2: the table full by count."""
    k = start_kbs(cfg, "kbs-flood", pki, max_sessions=200)
    res = sample_handshakes(k, 200)
    t.eq(sorted(st for st, _ in res), [200] * 200, "200 sample handshakes on max_sessions=200")
    st, _, data = Attester(k).auth()
    t.ok(st == 503 and b"session table full" in data,
         "a further sample /auth is refused (attested sessions outlive a sample flood)", data)
    sts, data = tdx.handshake(k)
    t.eq(sts, [200, 200, 200], "then a TDX guest's /auth, /attest and resource read succeed "
         "(was 503 'session table full' for the session lifetime)")
    m = scrape(k)
    t.eq(m.get(("kbs_session_evictions_total", (("reason", "test_tee"),))), 1,
         "one attested sample session was evicted for it (metric reason=test_tee)")
    sts, _ = tdx.handshake(k)
    t.eq(sts, [200, 200, 200], "and a second TDX guest too")
    t.ok(k.alive(), "kbs alive")
    k.stop()


def check_sample_flood_bytes(t, cfg, pki, tdx):
    """V2 with the bound in bytes: 64 KiB holds a few dozen attested sample sessions."""
    k = start_kbs(cfg, "kbs-flood-bytes", pki, max_sessions_bytes=65536,
                  max_session_token_size=16384)
    res = sample_handshakes(k, 60, threads=1)
    full = [d for st, d in res if st == 503]
    t.ok(full and all(b"max_sessions_bytes" in d for d in full),
         "60 sample handshakes in 64 KiB: the excess is refused naming max_sessions_bytes "
         "(%d of 60)" % len(full), full[:1])
    sts, data = tdx.handshake(k)
    t.eq(sts, [200, 200, 200], "a TDX guest's handshake in the full table succeeds")
    m = scrape(k)
    t.ok(m.get(("kbs_limit_refusals_total", (("limit", "max_sessions_bytes"),)), 0) >= 1,
         "kbs_limit_refusals_total{limit=max_sessions_bytes} counts the refusals")
    k.stop()


def redis_used(redis):
    info = redis.command("INFO", "memory")
    info = info.decode() if isinstance(info, bytes) else str(info)
    for line in info.splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":")[1])
    return 0


def check_big_svn(t, cfg, pki, redis):
    """V1: a 1.4 MB svn made 1.87 MB tokens, kbs RSS 26 -> 113 MB after 40."""
    svn = "9" * (1400 * 1000)
    c = dict(cfg, http_server=dict(cfg["http_server"], worker_threads=2))
    k = start_kbs(c, "kbs-svn", pki)
    sample_handshakes(k, 4, threads=1)  # warm
    rss0 = k.rss_kb()
    res = sample_handshakes(k, 40, threads=4, svn=svn)
    rss1 = k.rss_kb()
    res += sample_handshakes(k, 40, threads=4, svn=svn)
    rss2 = k.rss_kb()
    refused = [d for st, d in res if st == 401 and b"max_session_token_size (262144)" in d]
    t.eq(len(refused), 80, "80 handshakes with a 1.4 MB svn: every /attest refused, naming "
         "max_session_token_size (262144)")
    # what is left is the allocator keeping the buffers of the 2 workers' requests (the
    # body, its base64 for the AS, the answer), not tokens (80 kept would be 150 MB)
    msg = ("kbs RSS %d -> %d KiB after 40, %d KiB after 80 (was 26 -> 113 MB after 40, "
           "growing with each)" % (rss0, rss1, rss2))
    if os.environ.get("SANITIZER_REPORTS"):
        t.skip(msg, "RSS under ASan (its quarantine holds freed memory)")
    else:
        t.ok(rss1 - rss0 < 40 * 1024 and rss2 - rss0 < 48 * 1024, msg)
    t.eq(sample_handshakes(k, 1)[0][0], 200, "an ordinary sample handshake still succeeds")
    k.stop()
    c = dict(cfg, session_storage_type="Redis")
    k = start_kbs(c, "kbs-svn-redis", pki)
    used0 = redis_used(redis)
    res = sample_handshakes(k, 10, threads=2, svn=svn)
    grew = redis_used(redis) - used0
    t.eq(sum(st == 401 and b"max_session_token_size" in d for st, d in res), 10,
         "sessions in Redis: the 10 over-cap tokens are refused too")
    t.ok(grew < 1 << 20, "Redis grew %d KiB" % (grew >> 10))
    k.stop()


def check_sample_switch(t, cfg, pki, tdx):
    k = start_kbs(cfg, "kbs-nosample", pki, allow_sample_tee=False)
    for tee in ("sample", "sampledevice"):
        st, _, data = Attester(k, tee=tee).auth()
        t.ok(st == 401 and b"allow_sample_tee = false" in data,
             "allow_sample_tee = false: /auth as %s refused with a sentence" % tee, data)
    sts, _ = tdx.handshake(k)
    t.eq(sts, [200, 200, 200], "a TDX guest is served")
    a = Attester(k, tee="tdx")
    a.auth()
    extra = json.dumps({"sample": Attester(k).evidence(nonce=a.nonce)})
    st, _, data = a.attest(body=tdx.attest_body(a, additional=extra))
    t.ok(st == 401 and b"additional_evidence" in data and b"allow_sample_tee" in data,
         "sample evidence as additional evidence of a TDX guest is refused", data)
    k.stop()
    k = start_kbs(cfg, "kbs-sample-default", pki)
    t.eq(sample_handshakes(k, 1)[0][0], 200, "by default the sample TEE is served (Trustee's "
         "tests use it)")
    k.stop()


def main():
    require_kbs()
    t = Tap()
    if not os.access(os.path.join(BIN, "grpc-as"), os.X_OK):
        t.skip("test_hostile_sessions", "grpc-as not built")
        t.done()
    pki = Pki()
    redis = Redis().start()
    tdx = Tdx(pki)
    as_addr = tdx.start_as()
    storage = {"storage_type": "Redis", "backends": {"redis": {"url": redis.url}}}
    cfg = kbs_config(pki, as_addr=as_addr, storage=storage, payload=4)
    cfg["session_storage_type"] = "Memory"
    t.run(check_sample_flood_count, cfg, pki, tdx)
    t.run(check_sample_flood_bytes, cfg, pki, tdx)
    t.run(check_big_svn, cfg, pki, redis)
    t.run(check_sample_switch, cfg, pki, tdx)
    tdx.asd.stop()
    t.done()


if __name__ == "__main__":
    main()
