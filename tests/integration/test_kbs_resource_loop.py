#!/usr/bin/python3
"""A resource read whose session, policy and resource are all in memory is answered on the
kbs's event loop (issue 13), by the worker pool's own stages told not to wait; anything else is
handed to the pool. The same script of reads runs against three kbs that differ only in where
their state lives: all in Memory (the loop answers), policy and resources in LocalFs with
sessions in Redis (the pool answers everything: no peek, no session in memory), and policy and
resources in Redis with sessions in Memory (the pool, or the loop once Redis's tracked cache
knows a key), and sessions in Redis with policy and resources in Memory (the loop when this
replica kept the session's claims at /attest, the pool when the store must be asked). Every
answer --
status, problem type and detail, the decrypted secret -- must be the same on all three:
allowed, denied by the policy, a missing resource, an unknown or expired session, a session
not attested, a token past its exp, a Bearer token, a policy or a resource changed between
two reads (seen by the very next read), a policy that needs more steps than the loop's budget
(evaluated again on a worker under the configured one) and one over the configured budget.
kbs_event_loop_answers_total shows which reads the loop answered on the Memory kbs, and that
the pool answered every read of the other."""
import json
import time

from harness import Redis, Tap, tmpdir
from kbs_testlib import ALLOW_ALL, DENY_ALL, ERR, Attester, FakeAs, Kbs, Pki, kbs_config, \
    require_kbs, scrape

PATH = "default/loop/key"
# allow, but only after counting 200,000 numbers: past the loop's 50,000 steps, well inside
# the configured 1,000,000
HEAVY = ('package policy\nimport rego.v1\ndefault allow := false\n'
         'allow if {\n\tdata.plugin == "resource"\n'
         '\tcount([x | some x in numbers.range(1, 200000)]) == 200000\n}\n')
# past the configured budget too
HEAVIER = HEAVY.replace("200000", "3000000")


def answer(att, st, data):
    """What a client sees: the status and the secret, or the problem's type and detail."""
    if st == 200:
        return (st, att.decrypt(data))
    try:
        p = json.loads(data)
        return (st, p.get("type", "").replace(ERR, ""), p.get("detail"))
    except ValueError:
        return (st, data)


def loop_answers(kbs):
    return scrape(kbs).get(("kbs_event_loop_answers_total", ()), 0)


def script(kbs, pki, asvc, late, t_late, redis=None):
    """The reads, in order: [(name, answer, loop answers it took or None when any)]. `late`
    attested at t_late with a token whose exp was 57 s past: inside the 60 s leeway for 3 s."""
    out = []
    kbs.set_policy(pki, ALLOW_ALL)
    kbs.set_resource(pki, PATH, b"first secret")
    a = Attester(kbs)
    a.rcar()

    def read(name, att=None, path=PATH, loop=None, **kw):
        att = att or a
        before = loop_answers(kbs)
        st, _, data = att.get(path, **kw)
        out.append((name, answer(att, st, data), loop_answers(kbs) - before, loop))

    read("an allowed read (the claims /attest kept)", loop=1)
    read("a second allowed read (claims decoded from the session's token)", loop=1)
    read("a missing resource", path="default/loop/none", loop=1)
    read("an invalid resource path", path="default/loop", loop=1)
    kbs.set_resource(pki, PATH, b"second secret")
    read("the resource changed since the last read", loop=1)
    kbs.set_policy(pki, DENY_ALL)
    read("a policy that denies, set since the last read", loop=1)
    read("the same policy again", loop=1)
    kbs.set_policy(pki, ALLOW_ALL)
    read("the policy that allows again", loop=1)
    if redis is not None:  # a change another replica makes, straight into the store
        redis.command("SET", "repository:" + PATH, b"third secret")
        read("the resource changed in Redis by someone else")
        redis.command("SET", "kbs:resource-policy.rego", DENY_ALL.encode())
        read("the policy changed in Redis by someone else")
        redis.command("SET", "kbs:resource-policy.rego", ALLOW_ALL.encode())
        redis.command("SET", "repository:" + PATH, b"second secret")
        read("both changed back in Redis")
    kbs.set_policy(pki, HEAVY)
    read("a policy over the loop's step budget: evaluated again on a worker", loop=0)
    kbs.set_policy(pki, HEAVIER)
    read("a policy over the configured budget too", loop=0)
    kbs.set_policy(pki, ALLOW_ALL)
    read("allowed once more", loop=1)

    stranger = Attester(kbs)
    stranger.cookie = "kbs-session-id=" + "0" * 32
    read("an unknown or expired session, no Bearer token", att=stranger, loop=1)
    half = Attester(kbs)
    half.auth()
    read("a session not attested yet", att=half, loop=1)
    read("a Bearer token and no cookie (verified on a worker)", cookie=False, bearer=a.token,
         loop=0)
    read("no cookie and no token", cookie=False, loop=1)

    time.sleep(max(0.0, t_late + 4 - time.time()))
    # in memory the session keeps the claims verified at /attest, not the token: past their
    # deadline the loop refuses it with the sentence the token's check gives on a worker
    read("a session whose token is past exp plus the leeway (refused on the loop in memory)",
         att=late, loop=1)
    return out


def main():
    require_kbs()
    t = Tap()
    pki = Pki()
    asvc = FakeAs(pki)
    redis = Redis().start()
    red_cfg = {"redis": {"url": redis.url}}
    stores = [
        ("Memory", {"storage_type": "Memory"}, "Memory", None),
        ("pool", {"storage_type": "LocalFs", "backends": dict(
            red_cfg, local_fs={"dir_path": tmpdir("kbs-loop-fs-")})}, "Redis", None),
        ("Redis", {"storage_type": "Redis", "backends": red_cfg}, "Memory", redis),
        ("sessions in Redis", {"storage_type": "Memory", "backends": red_cfg}, "Redis", None),
    ]
    runs = {}
    kbss = []
    for name, storage, sessions, rd in stores:
        cfg = kbs_config(pki, as_addr=asvc.addr, storage=storage)
        cfg["session_storage_type"] = sessions
        kbss.append(Kbs(cfg, name="kbs-loop-" + name.lower()).start())
    # each kbs's session with a token whose exp is 57 s past, made before any script, so the
    # 4 s its read at the end must wait (past the leeway) pass once, not once per kbs
    asvc.token_exp_in = -57
    lates = []
    for kbs in kbss:
        lates.append(Attester(kbs))
        lates[-1].rcar()
    asvc.token_exp_in = 300
    t_late = time.time()
    for (name, _, _, rd), kbs, late in zip(stores, kbss, lates):
        runs[name] = script(kbs, pki, asvc, late, t_late, rd)
        t.ok(kbs.alive(), "%s: kbs alive after the script" % name)
        kbs.stop()

    mem, fs = runs["Memory"], runs["pool"]
    for (what, got, took, loop), (_, want, fs_took, _) in zip(mem, fs):
        t.eq(got, want, "the loop answers as the pool: " + what)
        if loop is not None:
            t.eq(took, loop, "Memory: %s on the event loop: " % ("answered" if loop else "not")
                 + what)
        t.eq(fs_took, 0, "LocalFs and sessions in Redis: the pool answers: " + what)
    t.ok(mem[0][1][0] == 200 and mem[0][1][1] == b"first secret", "the first read is allowed",
         mem[0][1])
    t.ok(mem[4][1] == (200, b"second secret"), "the changed resource is seen at once", mem[4][1])
    t.ok(mem[5][1][:2] == (401, "PolicyDeny"), "the denying policy applies at once", mem[5][1])
    t.ok(mem[2][1][:2] == (401, "PluginInternalError") and "not found" in mem[2][1][2],
         "a missing resource is refused as not found", mem[2][1])
    heavier = [x for x in mem if "configured budget" in x[0]][0][1]
    t.ok(heavier[:2] == (401, "PolicyEngineError") and "budget" in heavier[2],
         "a policy over the configured budget is a policy engine error", heavier)
    expired = mem[-1][1]
    t.ok(expired[:2] == (401, "TokenVerifierError") and "expired" in expired[2],
         "a token past exp plus the leeway is refused as expired", expired)

    # Redis: the same answers whether its tracked cache knows a key (loop) or not (pool)
    red = {what: got for what, got, _, _ in runs["Redis"]}
    for what, got, _, _ in mem:
        t.eq(red.get(what), got, "Redis answers as Memory: " + what)
    t.eq(red["the resource changed in Redis by someone else"], (200, b"third secret"),
         "Redis: a resource another replica wrote is seen by the next read")
    t.eq(red["the policy changed in Redis by someone else"][:2], (401, "PolicyDeny"),
         "Redis: a policy another replica wrote applies to the next read")
    t.eq(red["both changed back in Redis"], (200, b"second secret"),
         "Redis: and both changed back")

    # sessions in Redis (replicas): the claims this replica kept at /attest are memory, so a
    # read with them is answered on the loop; a session it must look up goes to the pool
    shared = runs["sessions in Redis"]
    for (what, got, took, loop), (_, want, _, _) in zip(shared, mem):
        t.eq(got, want, "sessions in Redis answer as in memory: " + what)
    took = {what: n for what, _, n, _ in shared}
    for what in ("an allowed read (the claims /attest kept)",
                 "the resource changed since the last read",
                 "a policy that denies, set since the last read"):
        t.eq(took[what], 1, "sessions in Redis, on the event loop: " + what)
    for what in ("an unknown or expired session, no Bearer token",
                 "a session not attested yet",
                 "a Bearer token and no cookie (verified on a worker)"):
        t.eq(took[what], 0, "sessions in Redis, the pool (the store is asked): " + what)
    redis.stop()
    asvc.stop()
    t.done()


if __name__ == "__main__":
    main()
