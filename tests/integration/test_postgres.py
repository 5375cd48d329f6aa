#!/usr/bin/python3
"""The storage tests that run against Redis, run against a real postgres (Debian's package,
initdb'd into a temporary directory, on a free loopback port) with the same assertions:

- rvps (test_rvps.py's cases): register, query, errors, a 6 MB value, concurrency, rvps-tool,
  restart; values in Trustee's table `reference_value` (value BYTEA, key TEXT PRIMARY KEY);
  with the server stopped a query is UNAVAILABLE (retry), and served again once it is back.
- three kbs replicas, one grpc-as, one rvps, all on one postgres, behind HAProxy
  (test_kbs_replicas.py's cases): round robin, single-use nonces, a replica killed, and the
  server restarted under load: every completed read decrypts to the right secret, every
  failure is a 401 or 503 + Retry-After problem body (or a transport error) naming the store
  and its cause without an address, nothing fails once the server is back, sessions and
  resources survive, every replica recovers without a restart.
- the admin API (test_kbs_admin.py's authenticated and refused calls) on a kbs and AS whose
  resources, resource policy, attestation policies and reference values are in postgres.
- grpc-as with its policies and the rvps with its values in postgres answer UNAVAILABLE
  while postgres is down, so a kbs keeping sessions in memory answers /attest with 503 +
  Retry-After naming the AS as unavailable (no address), and succeeds once postgres is back.
- faults under load (test_faults.py's run): postgres stopped (fast shutdown), killed
  (SIGKILL) and stalled (SIGSTOP), as well as the rvps and the AS, with the same checks.
- sessions follow [storage_backend] when session_storage_type is absent, as in Trustee: two
  replicas whose config names only `storage_type = "Redis"` (or "Postgres") share sessions,
  replica B accepts A's cookie; `session_storage_type = "Memory"` keeps them in process.
"""

import json

import grpc

import test_faults as tf
import test_kbs_admin as adm
import test_kbs_replicas as rep
import test_rvps as rv
from harness import Postgres, Redis, Tap
from kbs_testlib import (ALLOW_ALL, Attester, Haproxy, Kbs, Pki, RealAs, haproxy_available,
                         kbs_config, real_as_available, require_kbs)


def check_rvps_table_layout(t, r, pg):
    r.register(rv.sample_message({"rv-a": ["x", "y"], "rv.b/c": {"z": 1, "a": [True, None]}}))
    t.eq(r.query("rv-a"), '["x","y"]', "query returns the compact JSON of the value")
    t.eq(r.query("rv.b/c"), '{"a":[true,null],"z":1}',
         "object values come back compact, keys sorted")
    for name, value in (("rv-a", '["x","y"]'), ("rv.b/c", '{"a":[true,null],"z":1}')):
        raw = pg.psql("SELECT encode(value, 'hex') FROM reference_value WHERE key = '%s'" % name)
        rv.check_doc(t, bytes.fromhex(raw), name, value, "postgres %s" % name)
    t.eq(pg.psql("SELECT string_agg(key, ',' ORDER BY key) FROM reference_value"),
         "rv-a,rv.b/c", "postgres rows of table reference_value are keyed by name")
    t.eq(pg.psql("SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY "
                 "column_name) FROM information_schema.columns WHERE table_name = "
                 "'reference_value'"),
         "key text, value bytea", "Trustee's table shape: (value BYTEA, key TEXT PRIMARY KEY)")
    r.register(rv.sample_message({"rv-a": ["z"]}))
    t.eq(r.query("rv-a"), '["z"]', "register overwrites an existing value")


def check_rvps_outage(t, r, pg):
    pg.stop()
    try:
        r.query("rv-a")
        t.ok(False, "postgres down: the query is not answered")
    except grpc.RpcError as e:
        t.ok(e.code() == grpc.StatusCode.UNAVAILABLE and "postgres" in e.details() and
             "unavailable" in e.details(),
             "postgres down: UNAVAILABLE (retryable), the store and cause named",
             (e.code(), e.details()))
    pg.start()
    t.eq(r.query("rv-a"), '["z"]', "postgres back: the same query succeeds, no rvps restart")


def rvps_suite(t, pg):
    r = rv.Rvps({"storage": pg.storage}, name="rvps-postgres")
    t.run(rv.test_health, r)
    t.run(check_rvps_table_layout, r, pg)
    t.run(rv.test_unknown_id, r)
    t.run(rv.test_register_errors, r)
    t.run(rv.test_garbage_bytes, r)
    t.run(rv.test_large_value, r)
    t.run(rv.test_concurrent_queries, r)
    t.run(rv.test_tool, r, pg)
    t.run(check_rvps_outage, r, pg)
    t.run(rv.test_restart_persists, r, pg)


def check_postgres_restart(t, lb, replicas, pg):
    pre = Attester(lb)
    pre.rcar()
    res = rep.load_run(lb, 7.0, 6, action_at=2.0, action=lambda: pg.restart())
    c = rep.summary(res)
    print("# postgres restarted mid-run: %s" % c)
    for d in sorted({d for _, k, d in res if k != "ok"}):
        print("#   %s" % d[:200].replace("\n", " "))
    t.ok(c.get("ok", 0) >= 20, "postgres: handshakes completed during the run", c)
    t.eq(c.get("WRONG", 0), 0, "postgres: every completed read returned the right secret")
    bad = [r for r in res if r[1] not in ("ok", "proxy", "transport", "kbs401", "kbs503")]
    t.ok(not bad, "postgres: every failure is a 401 or 503 + Retry-After problem body, or a "
         "transport error", bad[:5])
    vague = [r for r in res if r[1] in ("kbs401", "kbs503") and
             (not any(w in r[2] for w in ("unavailable: ", "unreachable")) or
              "127.0.0.1" in r[2] or str(pg.port) in r[2])]
    t.ok(not vague, "postgres: every KBS refusal says which store is unavailable and why "
         "(no address)", vague[:5])
    late = [r for r in res if r[0] > 5.0 and r[1] != "ok"]
    t.ok(not late, "postgres: no failure once the server is back", late[:5])
    st, _, data = pre.get(rep.PATH)
    t.ok(st == 200 and pre.decrypt(data) == rep.SECRET,
         "postgres: a session attested before the restart still reads", data[:200])
    after = [rep.handshake(lb) for _ in range(9)]
    t.ok(all(c == "ok" for c, _ in after), "postgres: every replica works after the restart",
         after)
    t.ok(all(r.alive() for r in replicas), "postgres: no replica died")


def check_sessions_in_postgres(t, lb, pg):
    a = Attester(lb)
    a.rcar()
    sid = rep.sid_of(a)
    t.eq(pg.psql("SELECT count(*) FROM kbs_protocol_session WHERE key = '%s'" % sid), "1",
         "the session is a row of table kbs_protocol_session")
    t.eq(pg.psql("SELECT count(*) FROM kbs_protocol_nonce WHERE key = '%s'" % sid), "1",
         "its nonce claim is a row of table kbs_protocol_nonce")
    t.eq(pg.psql("SELECT count(*) FROM repository WHERE key = '%s'" % rep.PATH), "1",
         "the resource is a row of table repository")


def replicas_suite(t, pki, pg):
    if not haproxy_available():
        t.skip("replicas on postgres", "haproxy is not installed (make deps)")
        return
    asvc = RealAs(pki, storage=pg.storage)
    cfg = kbs_config(pki, as_addr=asvc.addr, storage=pg.storage)
    cfg["session_storage_type"] = "Postgres"
    replicas = [Kbs(cfg, name="kbs-pg%d" % (i + 1)).start() for i in range(3)]
    haproxy = Haproxy([r.port for r in replicas]).start()
    for r in replicas:
        st, _, _ = r.request("GET", "/readyz")
        t.eq(st, 200, "%s is ready (its AS answers)" % r.name)
    t.ok(all(haproxy.wait_state(n, "UP") for n in haproxy.names),
         "proxy sees three replicas up", haproxy.states())
    haproxy.set_policy(pki, ALLOW_ALL)
    haproxy.set_resource(pki, rep.PATH, rep.SECRET)
    t.run(rep.check_sticky, haproxy, replicas)
    t.run(rep.check_any_replica, replicas)
    t.run(check_sessions_in_postgres, haproxy, pg)
    t.run(rep.check_nonce_single_use, haproxy, replicas)
    t.run(rep.check_replica_killed, haproxy, replicas, haproxy)
    t.run(check_postgres_restart, haproxy, replicas, pg)
    t.ok(haproxy.alive() and asvc.grpc_as.alive(), "proxy and AS survived")
    for d in replicas + [haproxy]:
        d.stop()
    asvc.stop()


def check_sessions_follow_storage_backend(t, pki, asvc, storage, name):
    cfg = kbs_config(pki, as_addr=asvc.addr, storage=storage)
    cfg.pop("session_storage_type", None)
    ka = Kbs(cfg, name="kbs-%s-a" % name).start()
    kb = Kbs(cfg, name="kbs-%s-b" % name).start()
    ka.set_policy(pki, ALLOW_ALL)
    ka.set_resource(pki, "default/follow/key", b"followed")
    a = Attester(ka)
    st, _, _ = a.auth()
    t.eq(st, 200, "%s storage_backend only: /auth on replica A" % name)
    a.kbs = kb
    st, _, data = a.attest()
    t.eq(st, 200, "%s storage_backend only: replica B accepts A's cookie for /attest" % name)
    a.kbs = ka
    st, _, data = a.get("default/follow/key")
    t.ok(st == 200 and a.decrypt(data) == b"followed",
         "%s storage_backend only: the attested session reads on replica A" % name, data[:200])
    ka.stop()
    kb.stop()
    cfg["session_storage_type"] = "Memory"
    ka = Kbs(cfg, name="kbs-%s-mem-a" % name).start()
    kb = Kbs(cfg, name="kbs-%s-mem-b" % name).start()
    a = Attester(ka)
    st, _, _ = a.auth()
    a.kbs = kb
    st, _, data = a.attest()
    t.ok(st == 401 and b"not found" in data,
         "%s with session_storage_type = \"Memory\": replica B does not know A's session"
         % name, (st, data[:200]))
    ka.stop()
    kb.stop()


def check_as_store_down(t, pki, pg):
    asvc = RealAs(pki, storage=pg.storage)
    cfg = kbs_config(pki, as_addr=asvc.addr, storage={"storage_type": "Memory"})
    kbs = Kbs(cfg, name="kbs-as-pg").start()
    kbs.set_policy(pki, ALLOW_ALL)
    kbs.set_resource(pki, "default/as/key", b"as secret")
    a = Attester(kbs)
    a.rcar()  # the AS's default policies are in postgres now
    pg.stop()
    try:
        b = Attester(kbs)
        st, _, _ = b.auth()
        t.eq(st, 200, "postgres under the AS down: /auth on a memory-session kbs still answers")
        st, h, data = b.attest()
        detail = json.loads(data).get("detail", "") if st == 503 else ""
        t.ok(st == 503 and h.get("retry-after") == "1" and "unavailable" in detail and
             "postgres" in detail and "127.0.0.1" not in detail and str(pg.port) not in detail,
             "postgres under the AS down: /attest -> 503 + Retry-After, the AS's store named "
             "(no address)", (st, data[:300]))
    finally:
        pg.start()
    b = Attester(kbs)
    b.rcar()
    st, _, data = b.get("default/as/key")
    t.ok(st == 200 and b.decrypt(data) == b"as secret",
         "postgres back: the next handshake and read succeed, no daemon restarted", data[:200])
    kbs.stop()
    asvc.stop()


def admin_suite(t, pki, pg):
    asvc = RealAs(pki, storage=pg.storage)
    kbs = Kbs(kbs_config(pki, as_addr=asvc.addr, storage=pg.storage,
                         plugins=("resource", "sample")), name="kbs-admin-pg").start()
    t.run(adm.check_authenticated, kbs, pki, asvc)
    t.run(adm.check_refusals, kbs, pki)
    t.eq(pg.psql("SELECT encode(value, 'escape') FROM repository WHERE key = "
                 "'default/admin/one'"), "v1", "admin: the resource is a row of repository")
    t.eq(pg.psql("SELECT count(*) FROM attestation_service_policy WHERE key LIKE "
                 "'default_cpu%'"), "1", "admin: the attestation policy is a row of "
         "attestation_service_policy")
    t.ok(kbs.alive(), "kbs survived")
    kbs.stop()
    asvc.stop()


def main():
    t = Tap()
    pg = Postgres().start()
    rvps_suite(t, pg)
    if not real_as_available():
        t.skip("replicas on postgres", "grpc-as or rvps not built")
    else:
        require_kbs()
        pki = Pki()
        replicas_suite(t, pki, pg)
        t.run(check_as_store_down, pki, pg)
        redis = Redis().start()
        for name, storage in (("Postgres", pg.storage),
                              ("Redis", {"storage_type": "Redis",
                                         "backends": {"redis": {"url": redis.url}}})):
            asvc = RealAs(pki, storage=storage)
            t.run(check_sessions_follow_storage_backend, pki, asvc, storage, name)
            asvc.stop()
        redis.stop()
        tf.run(t, "postgres", pg, pg.storage)
        admin_suite(t, pki, pg)  # last: it replaces the attestation policy the others use
    pg.stop()
    t.done()


if __name__ == "__main__":
    main()
