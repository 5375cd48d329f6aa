#!/usr/bin/python3
"""/auth and /attest with sessions in Redis on the kbs's event loop (issue 13): the session's
round trips (SET NX at /auth, MGET and the nonce's SET NX at /attest) go out on the loop's own
non-blocking Redis connection (common/kv/redis_loop.c), and the request is finished from their
answers. Against the real grpc-as + rvps and a real redis-server:

- the loop takes /auth and /attest (the start-up line, kbs_event_loop_answers_total), also
  with a Redis URL naming a host (looked up on the loop), and a kbs whose round trips stay on
  the worker pool ([http_server] loop_round_trips = false) gives the very same answers --
  status, problem type and detail -- for every refusal and for success, over both;
- a session authed on one of two replicas sharing one Redis, /attest raced on both: exactly
  one wins, the rest are told the nonce was used;
- Redis killed: /auth and /attest answer 503 with a sentence, the same one the pool gives;
  Redis back on its port: the next handshake attests on the loop again;
- Redis stopped (SIGSTOP): the loop goes on answering, an /auth waiting on Redis gets the
  pool's 503 after the 2 s deadline, and once Redis goes on the next handshake attests;
- the Redis records a loop handshake leaves are the pool's: the same keys and fields;
- Redis restarted and LOADING its data set: /auth waits it out on the loop and answers 200;
- more round trips than a loop's budget (128) while Redis is stopped: the rest take the pool,
  and every one is answered once Redis goes on;
- a URL with a database or a password: the loop sends no command before Redis accepted the
  SELECT / AUTH (records in the database named), and a refused AUTH is the pool's 503."""
import concurrent.futures
import json
import os
import signal
import subprocess
import time

from harness import Redis, Tap
from kbs_testlib import (Attester, Kbs, kbs_config, real_as_available, require_kbs, RealAs, Pki,
                         scrape)
from test_kbs_attest_loop import answer, attest_counts, loop_answers, script


def redis_kbs(pki, asvc, redis, name, host="127.0.0.1", db="", userinfo="", pool=False,
              loops=None):
    """A kbs with sessions in redis; pool: its round trips kept on the worker pool
    ([http_server] loop_round_trips = false), the reference the loop's answers are held to."""
    cfg = kbs_config(pki, as_addr=asvc.addr)
    if pool:
        cfg["http_server"]["loop_round_trips"] = False
    if loops:
        cfg["http_server"]["worker_count"] = loops
        cfg["http_server"]["worker_threads"] = 32  # a pool that takes the overflow at once
    url = "redis://%s%s:%d%s" % (userinfo, host, redis.port, db)
    cfg["storage_backend"] = {"storage_type": "Redis", "backends": {"redis": {"url": url}}}
    cfg["session_storage_type"] = "Redis"
    return Kbs(cfg, name=name).start()


def auth_script(kbs):
    """Each /auth case once."""
    a = Attester(kbs)
    out = [("bad version", answer(*a.auth(version="0.0.1"))[:3])]
    st, h, data = a.auth()
    out.append(("good /auth", (st, sorted(json.loads(data)), "kbs-session-id=" in
                               h.get("set-cookie", ""))))
    return out


def check_same_answers(t, pki, asvc, redis):
    loop = redis_kbs(pki, asvc, redis, "kbs-redis-loop", host="localhost")
    pool = redis_kbs(pki, asvc, redis, "kbs-redis-pool", pool=True)
    try:
        t.ok("read and write sessions in Redis from the event loops" in loop.log_text(),
             "the kbs says the loop reads and writes the sessions", loop.log_tail(5))
        t.ok("read and write sessions from the worker pool" in pool.log_text(),
             "loop_round_trips = false keeps them on the pool, said once", pool.log_tail(5))
        b0, p0 = loop_answers(loop), loop_answers(pool)
        c0 = attest_counts(loop)
        got_loop = auth_script(loop) + script(loop)
        got_pool = auth_script(pool) + script(pool)
        for (name, al), (_, ap) in zip(got_loop, got_pool):
            t.eq(al, ap, "sessions in Redis: same answer on the loop and the pool: " + name)
        t.eq(attest_counts(loop), tuple(x + d for x, d in zip(c0, (7, 1, 3))),
             "the loop counts requests, successes and failures as the pool does")
        t.eq(attest_counts(pool), attest_counts(loop), "both kbs count the same")
        t.eq(loop_answers(loop) - b0, 2 + 2 + 7, "the loop answered every /auth and /attest")
        t.eq(loop_answers(pool) - p0, 0, "the other kbs answered none on its loops")
    finally:
        loop.stop()
        pool.stop()


ON_LOOP = "read and write sessions in Redis from the event loops"


def exists(redis, db, sid):
    return redis_cli(redis, db, "EXISTS", "kbs_protocol_session:" + sid) == "1"


def redis_cli(redis, db, *args):
    pw = ["-a", redis.password, "--no-auth-warning"] if redis.password else []
    return subprocess.run(["redis-cli", "-p", str(redis.port), "-n", str(db)] + pw + list(args),
                          capture_output=True, text=True, timeout=10).stdout.strip()


def attests_on_the_loop(t, kbs, what):
    """One handshake's /auth and /attest, both answered on the loop; the session id."""
    t.ok(ON_LOOP in kbs.log_text(), "a Redis URL with %s keeps the loop" % what,
         kbs.log_tail(5))
    b0 = loop_answers(kbs)
    a = Attester(kbs)
    t.eq(a.auth()[0], 200, what + ": /auth")
    t.eq(a.attest()[0], 200, what + ": /attest")
    t.eq(loop_answers(kbs) - b0, 2, what + ": both on the loop")
    return a.cookie.split("=", 1)[1]


def check_database_on_the_loop(t, pki, asvc, redis):
    """A URL naming a database takes the loop too: each connection's SELECT is answered before
    any session command goes out on it, so the records land in the database named."""
    kbs = redis_kbs(pki, asvc, redis, "kbs-redis-db", db="/3")
    try:
        sid = attests_on_the_loop(t, kbs, "a database")
        t.ok(exists(redis, 3, sid) and not exists(redis, 0, sid),
             "the session's record is in database 3, not 0")
    finally:
        kbs.stop()


def check_credentials_on_the_loop(t, pki, asvc):
    """A Redis ACL user named in the URL, the default user left open (no password): the loop
    authenticates each new connection before any command, and the handshake attests on the
    loop. The user's password then changed and every connection cut: the loop's new
    connection's AUTH is refused, /auth is the pool's 503 with its sentence, and nothing is
    written -- a command pipelined behind the refused AUTH would have run as the open default
    user. The password back, the next handshake attests on the loop again."""
    redis = Redis().start()
    redis.command("ACL", "SETUSER", "kbs", "on", ">s3cret-pw", "~*", "+@all")
    kbs = redis_kbs(pki, asvc, redis, "kbs-redis-auth", userinfo="kbs:s3cret-pw@")
    pool = redis_kbs(pki, asvc, redis, "kbs-redis-auth-pool", pool=True,
                     userinfo="kbs:s3cret-pw@")
    try:
        sid = attests_on_the_loop(t, kbs, "an ACL user's credentials")
        t.ok(exists(redis, 0, sid), "the record is written")
        t.eq(Attester(pool).auth()[0], 200, "the pool's kbs authenticates too")
        redis.command("ACL", "SETUSER", "kbs", "resetpass", ">changed-pw")
        redis.command("CLIENT", "KILL", "TYPE", "normal")
        keys = redis_cli(redis, 0, "DBSIZE")
        got = [answer(*Attester(k).auth()) for k in (kbs, pool)]
        t.eq(got[0][0], 503, "the password refused: 503: %s" % (got[0],))
        t.ok("refused the credentials" in str(got[0][2]), "said why", got[0])
        t.ok("s3cret" not in str(got[0]), "the answer shows no password", got[0])
        t.eq(got[0], got[1], "the pool's answer for refused credentials")
        t.eq(redis_cli(redis, 0, "DBSIZE"), keys,
             "nothing written as the open default user behind the refused AUTH")
        redis.command("ACL", "SETUSER", "kbs", "resetpass", ">s3cret-pw")
        b = Attester(kbs)
        t.eq((b.auth()[0], b.attest()[0]), (200, 200), "the password back: the next handshake attests")
    finally:
        kbs.stop()
        pool.stop()
        redis.stop()


def check_same_records(t, pki, asvc, redis):
    loop = redis_kbs(pki, asvc, redis, "kbs-redis-rec-loop")
    pool = redis_kbs(pki, asvc, redis, "kbs-redis-rec-pool", pool=True)
    try:
        shapes = []
        for kbs in (loop, pool):
            a = Attester(kbs)
            a.rcar()
            sid = a.cookie.split("=", 1)[1]
            sess = json.loads(redis.command("GET", "kbs_protocol_session:" + sid))
            claim = json.loads(redis.command("GET", "kbs_protocol_nonce:" + sid))
            ttls = (redis.command("TTL", "kbs_protocol_session:" + sid),
                    redis.command("TTL", "kbs_protocol_nonce:" + sid))
            shapes.append((sorted(sess), sess["state"], sorted(claim), claim["state"],
                           all(0 < x <= 300 * 60 for x in ttls)))
        t.eq(shapes[0], shapes[1], "a loop handshake leaves the pool's records and expiries")
        t.eq(shapes[0][1:4:2], ("Authed", "Attested"), "Authed record, Attested claim")
    finally:
        loop.stop()
        pool.stop()


def check_race(t, pki, asvc, redis):
    a_kbs = redis_kbs(pki, asvc, redis, "kbs-race-a")
    b_kbs = redis_kbs(pki, asvc, redis, "kbs-race-b")
    try:
        wins = []
        for _ in range(6):
            a = Attester(a_kbs)
            assert a.auth()[0] == 200
            body = a.attest_body()
            hdr = {"Content-Type": "application/json", "Cookie": a.cookie}
            kbss = [a_kbs, b_kbs] * 4
            with concurrent.futures.ThreadPoolExecutor(len(kbss)) as ex:
                res = list(ex.map(lambda k: k.request("POST", "/kbs/v0/attest", body, hdr),
                                  kbss))
            ok = [r for r in res if r[0] == 200]
            lost = [r for r in res if r[0] == 401 and b"already used" in r[2]]
            wins.append((len(ok), len(lost)))
        t.eq(wins, [(1, 7)] * 6, "/attest raced 8 ways on two replicas, 6 times: one winner "
             "each time, the others told the nonce was used")
    finally:
        a_kbs.stop()
        b_kbs.stop()


def outage(kbs):
    a = Attester(kbs)
    st, h, data = a.auth()
    return a, answer(st, h, data)


def outage_both(loop, pool, after):
    """An /auth on each kbs at once, and after `after` seconds a /metrics on the loop kbs
    timed: (their answers, its status, how long it took)."""
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        futs = [ex.submit(outage, k) for k in (loop, pool)]
        time.sleep(after)
        t0 = time.time()
        st, _, _ = loop.request("GET", "/metrics")
        took = time.time() - t0
        return [f.result(timeout=30)[1] for f in futs], st, took


def check_redis_killed(t, pki, asvc):
    redis = Redis().start()
    loop = redis_kbs(pki, asvc, redis, "kbs-kill-loop")
    pool = redis_kbs(pki, asvc, redis, "kbs-kill-pool", pool=True)
    try:
        la, pa = Attester(loop), Attester(pool)
        assert la.auth()[0] == 200 and pa.auth()[0] == 200
        Attester(loop).rcar()  # the loop's connection is open
        redis.kill()
        got = []
        for kbs, att in ((loop, la), (pool, pa)):
            _, auth_ans = outage(kbs)
            got.append((auth_ans, answer(*att.attest())))
        for (name, i) in (("/auth", 0), ("/attest", 1)):
            t.eq(got[0][i][:1], (503,), "Redis killed: %s on the loop answers 503: %s" % (name, got[0][i]))
            t.ok("session store unavailable" in (got[0][i][2] or ""),
                 "with a sentence that says the session store is unavailable", got[0][i])
            t.eq(got[0][i], got[1][i], "the pool gives the same %s answer" % name)
        redis = Redis(port=redis.port).start()
        before = loop_answers(loop)
        a = Attester(loop)
        st, _, data = a.auth()
        st2, _, data2 = a.attest() if st == 200 else (st, None, data)
        t.ok((st, st2) == (200, 200), "Redis back on its port: the next handshake attests",
             (st, data, st2, data2))
        t.eq(loop_answers(loop) - before, 2, "on the loop")
    finally:
        loop.stop()
        pool.stop()
        redis.stop()


def check_redis_loading(t, pki, asvc):
    """Redis restarted on a data set it loads slowly (about 0.6 s: Redis's key-load-delay),
    answering LOADING meanwhile: an /auth on the loop is asked again on a timer until Redis
    has loaded, and answers 200 as the pool does; the loop answers /metrics meanwhile."""
    redis = Redis().start()
    loop = redis_kbs(pki, asvc, redis, "kbs-load-loop")
    pool = redis_kbs(pki, asvc, redis, "kbs-load-pool", pool=True)
    slow = None
    try:
        Attester(loop).rcar()
        Attester(pool).rcar()
        redis.command("MSET", *[x for i in range(600) for x in ("filler:%d" % i, "v" * 64)])
        redis.command("SAVE")
        redis.stop()
        slow = Redis(port=redis.port, datadir=redis.datadir,
                     extra=("--key-load-delay", "1000",
                            "--loading-process-events-interval-bytes", "1024")).start()
        loading = "loading:1" in redis_cli(slow, 0, "INFO", "persistence")
        t0 = time.time()
        got, st, took = outage_both(loop, pool, 0.1)
        waited = time.time() - t0
        t.ok(loading and "loading:0" in redis_cli(slow, 0, "INFO", "persistence"),
             "Redis was loading when the /auth went out, and is done now")
        t.eq(got[0][0], 200, "an /auth sent while Redis loads: 200 once it has loaded (%.2fs)"
             % waited)
        t.eq(got[0], got[1], "the pool gives the same answer")
        t.ok(st == 200 and took < 0.5, "the loop answers /metrics meanwhile (%.3fs)" % took)
        t.ok(Attester(loop).rcar(), "and the next handshake attests")
    finally:
        loop.stop()
        pool.stop()
        if slow:
            slow.stop()
        redis.stop()


def check_budget(t, pki, asvc):
    """One event loop, Redis stopped, 140 /auth at once: 128 wait on the loop's Redis client
    (its budget of round trips in flight), the other 12 go to the worker pool (32 threads, so
    none waits for a thread); Redis going on, every one is answered 200, the loop having
    answered 128."""
    redis = Redis().start()
    kbs = redis_kbs(pki, asvc, redis, "kbs-redis-budget", loops=1)
    n = 140
    try:
        Attester(kbs).rcar()
        before = loop_answers(kbs)
        auths = scrape(kbs).get(("kbs_auth_requests_total", ()), 0)
        atts = [Attester(kbs) for _ in range(n)]  # their keys made before the clock starts
        ex = concurrent.futures.ThreadPoolExecutor(n)
        list(ex.map(lambda i: None, range(n)))  # the threads started too
        os.kill(redis.proc.pid, signal.SIGSTOP)
        try:
            futs = [ex.submit(lambda a: a.auth()[0], a) for a in atts]
            deadline = time.time() + 10
            while time.time() < deadline and \
                    scrape(kbs).get(("kbs_auth_requests_total", ()), 0) - auths < n:
                time.sleep(0.02)
        finally:
            os.kill(redis.proc.pid, signal.SIGCONT)
        sts = [f.result(timeout=30) for f in futs]
        ex.shutdown()
        t.eq(sts, [200] * n, "%d /auth at once on one loop, Redis stopped then going on: all 200" % n)
        t.eq(loop_answers(kbs) - before, 128, "the loop answered 128 (its Redis budget), the pool the rest")
    finally:
        kbs.stop()
        redis.stop()


def check_redis_stalled(t, pki, asvc, password=None):
    """Redis stopped (SIGSTOP). With a password, every connection is cut first, so the one
    left unanswered is the loop's new connection's AUTH, with the session command held behind
    it: the same deadline, the same resend and the same answer as the pool's."""
    redis = Redis(password=password).start()
    auth = ":%s@" % password if password else ""
    loop = redis_kbs(pki, asvc, redis, "kbs-stall-loop", userinfo=auth)
    pool = redis_kbs(pki, asvc, redis, "kbs-stall-pool", pool=True, userinfo=auth)
    try:
        Attester(loop).rcar()
        Attester(pool).rcar()
        if password:
            redis.command("CLIENT", "KILL", "TYPE", "normal")
        os.kill(redis.proc.pid, signal.SIGSTOP)
        try:
            got, st, took = outage_both(loop, pool, 0.5)
        finally:
            os.kill(redis.proc.pid, signal.SIGCONT)
        t.ok(st == 200 and took < 0.5, "Redis stopped: the loop answers /metrics meanwhile "
             "(%.3fs)" % took)
        t.eq(got[0][:1], (503,), "an /auth waiting on a stopped Redis: 503 after its deadline")
        t.ok("no answer within 2 s" in (got[0][2] or ""), "saying Redis did not answer", got)
        t.eq(got[0], got[1], "the pool gives the same answer")
        t.ok(Attester(loop).rcar(), "Redis going on: the next handshake attests")
    finally:
        loop.stop()
        pool.stop()
        redis.stop()


def main():
    require_kbs()
    t = Tap()
    if not real_as_available():
        t.skip("test_kbs_redis_loop", "grpc-as or rvps not built")
        t.done()
    pki = Pki()
    asvc = RealAs(pki)
    redis = Redis().start()
    t.run(check_same_answers, pki, asvc, redis)
    t.run(check_same_records, pki, asvc, redis)
    t.run(check_database_on_the_loop, pki, asvc, redis)
    t.run(check_credentials_on_the_loop, pki, asvc)
    t.run(check_race, pki, asvc, redis)
    t.run(check_redis_killed, pki, asvc)
    t.run(check_redis_loading, pki, asvc)
    t.run(check_budget, pki, asvc)
    t.run(check_redis_stalled, pki, asvc)
    t.run(check_redis_stalled, pki, asvc, "stall-pw")
    redis.stop()
    asvc.stop()
    t.done()


if __name__ == "__main__":
    main()
