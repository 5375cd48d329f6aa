#!/usr/bin/python3
"""Three kbs replicas, one grpc-as, one rvps, all on one redis-server (sessions, resources,
policies), behind HAProxy on loopback (deploy/dev/haproxy-kbs.cfg.in: leastconn for a new
attester, then stickiness by the kbs-session-id cookie).

- Through the proxy, an attester's /auth, /attest and resource read land on one replica (read
  back from each replica's log), and the attesters spread over the replicas.
- Without the proxy, /auth, /attest and the read on three different replicas succeed: the
  stickiness is an optimisation, every replica serves every step from Redis.
- Each replica keeps the resource policy and resources in memory: a resource or a policy
  written through one replica decides the very next read on every other.
- A nonce is good for one successful /attest across replicas: a replay to any replica is
  refused, and of one /attest sent to all three at once exactly one wins.
- A replica killed (SIGKILL) during a load run: every completed read is correct, every failure
  is a proxy 5xx or a dropped connection (retryable), sessions begun on the dead replica carry
  on elsewhere, and the replica rejoins when restarted.
- Redis restarted during a load run: completed reads stay correct, failures are clean 401
  problem bodies, 503 problem bodies with Retry-After, or transport errors, each KBS refusal
  names the store that is unavailable and why (without its address), sessions and resources
  survive (AOF), and every replica recovers without a restart."""
import concurrent.futures
import http.client
import json
import re
import socket
import threading
import time

from harness import Redis, Tap
from kbs_testlib import (ALLOW_ALL, DENY_ALL, ERR, Attester, Haproxy, Kbs, Pki, RealAs,
                         haproxy_available, kbs_config, real_as_available, require_kbs)

SECRET = b"replicated secret \x00\x01"
PATH = "default/replica/key"
EVENT_RE = re.compile(r"kbs: session ([0-9a-f]{32}): (/auth|attested|resource \S+ released)")


def replica_events(replicas):
    """{session id: {"/auth": {replica names}, "attested": {...}, "read": {...}}}."""
    ev = {}
    for r in replicas:
        for m in EVENT_RE.finditer(r.log_text()):
            kind = "read" if m.group(2).startswith("resource") else m.group(2)
            ev.setdefault(m.group(1), {}).setdefault(kind, set()).add(r.name)
    return ev


def sid_of(a):
    return a.cookie.split("=", 1)[1]


def classify(stage, st, h, data):
    """A failed step: ("kbs401", ..) / ("kbs503", ..) for a KBS problem body (a 503 must carry
    Retry-After), ("proxy", ..) for a 5xx from HAProxy itself (not a KBS problem body), else
    ("unexpected", ...)."""
    try:
        body = json.loads(data)
    except ValueError:
        body = None
    problem = (isinstance(body, dict) and sorted(body) == ["detail", "type"] and
               body["type"].startswith(ERR))
    if problem and (st == 401 or (st == 503 and h.get("retry-after") == "1")):
        return ("kbs%d" % st, "%s %d %s: %s" % (stage, st, body["type"][len(ERR):],
                                                  body["detail"]))
    if not problem and st in (502, 503, 504):
        return ("proxy", "%s %d" % (stage, st))
    return ("unexpected", "%s %d %r" % (stage, st, data[:200]))


def handshake(ep):
    """RCAR + one read through `ep`, as guest-components does it; (class, detail)."""
    a = Attester(ep)
    try:
        st, h, data = a.auth()
        if st != 200:
            return classify("auth", st, h, data)
        st, h, data = a.attest()
        if st != 200:
            return classify("attest", st, h, data)
        st, h, data = a.get(PATH)
        if st != 200:
            return classify("get", st, h, data)
        got = a.decrypt(data)
        return ("ok", "") if got == SECRET else ("WRONG", repr(got[:40]))
    except (OSError, http.client.HTTPException) as e:
        return ("transport", type(e).__name__)


def load_run(ep, seconds, threads, action_at=None, action=None):
    """`threads` attesters looping handshakes for `seconds`; `action()` runs once at
    `action_at` seconds. Returns [(t, class, detail)]."""
    out, lock = [], threading.Lock()
    t0 = time.time()
    stop = t0 + seconds

    def worker():
        while time.time() < stop:
            c, d = handshake(ep)
            with lock:
                out.append((time.time() - t0, c, d))

    ths = [threading.Thread(target=worker) for _ in range(threads)]
    for th in ths:
        th.start()
    if action:
        time.sleep(max(0.0, action_at - (time.time() - t0)))
        action()
    for th in ths:
        th.join()
    return out


def summary(res):
    counts = {}
    for _, c, _ in res:
        counts[c] = counts.get(c, 0) + 1
    return counts


def check_sticky(t, lb, replicas):
    attesters = []
    for i in range(6):
        a = Attester(lb, ("EC-P256", "RSA", "EC-P521")[i % 3])
        a.rcar()
        st, _, data = a.get(PATH)
        t.ok(st == 200 and a.decrypt(data) == SECRET,
             "sticky: attester %d reads the secret through the proxy" % i, data[:200])
        attesters.append(a)
    time.sleep(0.2)
    ev = replica_events(replicas)
    spread = []
    for a in attesters:
        e = ev.get(sid_of(a), {})
        spread.append([min(e.get(k, {"?"})) for k in ("/auth", "attested", "read")])
    t.ok(all("?" not in w for w in spread), "sticky: every step is in some replica's log",
         spread)
    t.ok(all(len(set(w)) == 1 for w in spread),
         "sticky: each attester's /auth, /attest and read land on one replica", spread)
    t.ok(len({w[0] for w in spread}) >= 2, "sticky: the attesters spread over the replicas",
         spread)


def check_any_replica(t, replicas):
    for i in range(3):
        a = Attester(replicas[i % 3])
        st, _, data = a.auth()
        t.eq(st, 200, "any replica: /auth on %s" % replicas[i % 3].name)
        a.kbs = replicas[(i + 1) % 3]
        st, _, data = a.attest()
        t.eq(st, 200, "any replica: /attest on %s" % a.kbs.name)
        a.kbs = replicas[(i + 2) % 3]
        st, _, data = a.get(PATH)
        t.ok(st == 200 and a.decrypt(data) == SECRET, "any replica: read on %s" % a.kbs.name,
             data[:200])
        # back on the replica of /auth, whose copy of the session is still Authed
        a.kbs = replicas[i % 3]
        st, _, data = a.get(PATH)
        t.ok(st == 200 and a.decrypt(data) == SECRET,
             "any replica: read on %s, which only saw the /auth" % a.kbs.name, data[:200])


def check_write_seen_by_every_replica(t, replicas, pki):
    """Each replica keeps the resource policy and resources in memory (the Redis backend's
    cache); a write through one replica decides the very next read on every other."""
    att = []
    for r in replicas:
        a = Attester(r)
        ok = a.auth()[0] == 200 and a.attest()[0] == 200
        st, _, data = a.get(PATH)
        t.ok(ok and st == 200 and a.decrypt(data) == SECRET,
             "cache: %s reads the resource (now in its memory)" % r.name, data[:200])
        att.append(a)
    for i in range(6):
        writer = replicas[i % 3]
        new = b"version %d of the secret" % i
        writer.set_resource(pki, PATH, new)
        got = []
        for a in att:
            st, _, data = a.get(PATH)
            got.append(a.decrypt(data) if st == 200 else st)
        t.ok(all(g == new for g in got),
             "cache: a resource written through %s is read by the next request on every "
             "replica (%d)" % (writer.name, i), got)
    replicas[1].set_policy(pki, DENY_ALL)
    sts = [a.get(PATH)[0] for a in att]
    t.ok(all(st in (401, 403) for st in sts),
         "cache: a deny-all policy set through one replica refuses the next read on each", sts)
    replicas[2].set_policy(pki, ALLOW_ALL)
    replicas[2].set_resource(pki, PATH, SECRET)
    got = []
    for a in att:
        st, _, data = a.get(PATH)
        got.append(a.decrypt(data) if st == 200 else st)
    t.ok(all(g == SECRET for g in got), "cache: the policy and secret restored, every replica "
         "serves it at once", got)


def check_nonce_single_use(t, lb, replicas):
    a = Attester(lb)
    a.auth()
    body = a.attest_body()
    st, _, data = a.attest(body=body)
    t.eq(st, 200, "nonce: first /attest through the proxy succeeds")
    for r in replicas:
        st, _, data = r.request("POST", "/kbs/v0/attest", body,
                                {"Cookie": a.cookie, "Content-Type": "application/json"})
        ok = st == 401 and json.loads(data)["type"] == ERR + "AttestationError" and \
            "already used" in json.loads(data)["detail"]
        t.ok(ok, "nonce: the replayed /attest is refused by %s" % r.name, data)
    st, _, data = a.get(PATH)
    t.ok(st == 200 and a.decrypt(data) == SECRET, "nonce: the attested session still reads",
         data[:200])
    # one /attest sent to all three replicas at the same moment
    wins = 0
    for round_ in range(3):
        b = Attester(lb)
        b.auth()
        body = b.attest_body()
        barrier = threading.Barrier(len(replicas))

        def send(r):
            barrier.wait()
            return r.request("POST", "/kbs/v0/attest", body,
                             {"Cookie": b.cookie, "Content-Type": "application/json"})
        with concurrent.futures.ThreadPoolExecutor(len(replicas)) as ex:
            res = list(ex.map(send, replicas))
        sts = sorted(st for st, _, _ in res)
        refused = [json.loads(d)["detail"] for st, _, d in res if st == 401]
        t.ok(sts == [200] + [401] * (len(replicas) - 1) and
             all("already used" in d for d in refused),
             "nonce: a race of %d replicas on one nonce has one winner (round %d)" %
             (len(replicas), round_ + 1), res)
        wins += sts.count(200)
    t.eq(wins, 3, "nonce: one token per nonce")


def pinned_sessions(victim, n=3):
    """Sessions begun on `victim` directly: n only authed, n attested."""
    authed, attested = [], []
    for _ in range(n):
        a = Attester(victim)
        st, _, _ = a.auth()
        assert st == 200
        authed.append(a)
        b = Attester(victim)
        b.rcar()
        attested.append(b)
    return authed, attested


def sticky_sessions(lb, victim, replicas, n=2):
    """Sessions begun through the proxy that stick to `victim`: n only authed, n attested."""
    authed, attested = [], []
    for _ in range(60):
        if len(authed) >= n and len(attested) >= n:
            break
        a = Attester(lb)
        st, _, _ = a.auth()
        assert st == 200
        time.sleep(0.05)
        if sid_of(a) not in victim.log_text():
            continue
        if len(authed) < n:
            authed.append(a)
        else:
            st, _, _ = a.attest()
            assert st == 200
            attested.append(a)
    return authed, attested


def check_replica_killed(t, lb, replicas, haproxy):
    victim = replicas[1]
    authed, attested = pinned_sessions(victim)
    s_authed, s_attested = sticky_sessions(lb, victim, replicas)
    t.ok(len(s_authed) == 2 and len(s_attested) == 2,
         "kill: sessions through the proxy stick to the victim", (s_authed, s_attested))
    res = load_run(lb, 6.0, 6, action_at=2.0, action=victim.kill)
    c = summary(res)
    print("# replica killed mid-run: %s" % c)
    t.ok(c.get("ok", 0) >= 20, "kill: handshakes completed during the run", c)
    t.eq(c.get("WRONG", 0), 0, "kill: every completed read returned the right secret")
    bad = [r for r in res if r[1] not in ("ok", "proxy", "transport")]
    t.ok(not bad, "kill: every failure is a proxy 5xx or a dropped connection", bad[:5])
    before = [r for r in res if r[0] < 1.9 and r[1] != "ok"]
    t.ok(not before, "kill: no failure before the kill", before[:5])
    fails = [r for r in res if r[1] != "ok"]
    t.ok(len(fails) <= 12, "kill: only requests in flight on the dead replica failed (%d)" %
         len(fails), fails)
    t.ok(haproxy.wait_state("kbs2", "DOWN"), "kill: the proxy took the dead replica out",
         haproxy.states())
    for i, a in enumerate(authed):
        a.kbs = lb
        st, _, data = a.attest()
        t.eq(st, 200, "kill: a session authed on the dead replica attests elsewhere (%d)" % i)
        st, _, data = a.get(PATH)
        t.ok(st == 200 and a.decrypt(data) == SECRET,
             "kill: ... and reads elsewhere (%d)" % i, data[:200])
    for i, a in enumerate(attested):
        a.kbs = lb
        st, _, data = a.get(PATH)
        t.ok(st == 200 and a.decrypt(data) == SECRET,
             "kill: a session attested on the dead replica reads elsewhere (%d)" % i, data[:200])
    for i, a in enumerate(s_authed):
        st, _, data = a.attest()
        t.eq(st, 200, "kill: a session stuck to the dead replica attests through the proxy "
             "(%d)" % i)
        st, _, data = a.get(PATH)
        t.ok(st == 200 and a.decrypt(data) == SECRET,
             "kill: ... and reads through the proxy (%d)" % i, data[:200])
    for i, a in enumerate(s_attested):
        st, _, data = a.get(PATH)
        t.ok(st == 200 and a.decrypt(data) == SECRET,
             "kill: an attested session stuck to the dead replica reads through the proxy "
             "(%d)" % i, data[:200])
    after = [handshake(lb) for _ in range(12)]
    t.ok(all(c == "ok" for c, _ in after), "kill: handshakes after the proxy noticed all succeed",
         after)
    # the replica comes back and takes its share again
    victim.start()
    t.ok(haproxy.wait_state("kbs2", "UP"), "kill: the restarted replica is back in rotation",
         haproxy.states())
    mark = len(victim.log_text())
    after = [handshake(lb) for _ in range(9)]
    t.ok(all(c == "ok" for c, _ in after), "kill: handshakes after the restart succeed", after)
    t.ok(EVENT_RE.search(victim.log_text()[mark:]), "kill: the restarted replica serves again")


def check_redis_restart(t, lb, replicas, redis):
    pre = Attester(lb)
    pre.rcar()
    res = load_run(lb, 7.0, 6, action_at=2.0, action=lambda: redis.restart())
    c = summary(res)
    print("# redis restarted mid-run: %s" % c)
    for d in sorted({d for _, k, d in res if k != "ok"}):
        print("#   %s" % d[:200].replace("\n", " "))
    t.ok(c.get("ok", 0) >= 20, "redis: handshakes completed during the run", c)
    t.eq(c.get("WRONG", 0), 0, "redis: every completed read returned the right secret")
    bad = [r for r in res if r[1] not in ("ok", "proxy", "transport", "kbs401", "kbs503")]
    t.ok(not bad, "redis: every failure is a 401 or 503 + Retry-After problem body, or a "
         "transport error", bad[:5])
    # a KBS refusal during the outage names what failed: the store, precisely, without its host
    vague = [r for r in res if r[1] in ("kbs401", "kbs503") and
             (not any(w in r[2] for w in ("unavailable: ", "unreachable", "LOADING")) or
              "127.0.0.1" in r[2])]
    t.ok(not vague, "redis: every KBS refusal says which store is unavailable and why "
         "(no address)", vague[:5])
    late = [r for r in res if r[0] > 5.0 and r[1] != "ok"]
    t.ok(not late, "redis: no failure once Redis is back", late[:5])
    st, _, data = pre.get(PATH)
    t.ok(st == 200 and pre.decrypt(data) == SECRET,
         "redis: a session attested before the restart still reads (AOF)", data[:200])
    after = [handshake(lb) for _ in range(9)]
    t.ok(all(c == "ok" for c, _ in after), "redis: every replica works after the restart", after)
    t.ok(all(r.alive() for r in replicas), "redis: no replica died")


def main():
    require_kbs()
    t = Tap()
    if not haproxy_available():
        t.skip("test_kbs_replicas", "haproxy is not installed (make deps)")
        t.done()
    if not real_as_available():
        t.skip("test_kbs_replicas", "grpc-as or rvps not built")
        t.done()
    pki = Pki()
    redis = Redis(aof=True).start()
    asvc = RealAs(pki, redis)
    storage = {"storage_type": "Redis", "backends": {"redis": {"url": redis.url}}}
    cfg = kbs_config(pki, as_addr=asvc.addr, storage=storage)
    cfg["session_storage_type"] = "Redis"
    replicas = [Kbs(cfg, name="kbs-r%d" % (i + 1)).start() for i in range(3)]
    haproxy = Haproxy([r.port for r in replicas]).start()
    for r in replicas:
        st, _, _ = r.request("GET", "/readyz")
        t.eq(st, 200, "%s is ready (its AS answers)" % r.name)
    t.ok(all(haproxy.wait_state(n, "UP") for n in haproxy.names), "proxy sees three replicas up",
         haproxy.states())
    haproxy.set_policy(pki, ALLOW_ALL)
    haproxy.set_resource(pki, PATH, SECRET)
    t.run(check_sticky, haproxy, replicas)
    t.run(check_any_replica, replicas)
    t.run(check_write_seen_by_every_replica, replicas, pki)
    t.run(check_nonce_single_use, haproxy, replicas)
    t.run(check_replica_killed, haproxy, replicas, haproxy)
    t.run(check_redis_restart, haproxy, replicas, redis)
    t.ok(haproxy.alive() and asvc.grpc_as.alive(), "proxy and AS survived")
    t.done()


if __name__ == "__main__":
    main()
