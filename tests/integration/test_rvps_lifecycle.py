#!/usr/bin/python3
"""Reference value lifecycle end to end: a real rvps (and grpc-as in front of it) on a real
redis-server or LocalFs directory, spoken to by python3-grpcio with protoc's reference_pb2
and by rvps-tool. ListReferenceValues and DeleteReferenceValue, expiration enforced at a
pinned verification_time with a short per-extractor lifetime, a message's values stored all
or none when the store refuses one midway, and the audit trail of registrations and
deletions kept in the same store."""
import base64
import datetime
import hashlib
import json
import os
import re
import subprocess

import grpc

import reference_pb2
from harness import BIN, Daemon, Redis, Tap, free_port, tmpdir
from test_rvps import SERVICE, Rvps, rpc_error, sample_message, tool

T0 = "2025-06-01T00:00:00Z"


def redis_storage(redis):
    return {"storage_type": "Redis", "backends": {"redis": {"url": redis.url}}}


class Lifecycle:
    """The Trustee RPCs added after the spec's snapshot, plus ours, on a channel."""

    def __init__(self, port):
        self.channel = grpc.insecure_channel("127.0.0.1:%d" % port)
        # a daemon just started on a loaded machine: let the HTTP/2 connection settle before
        # the first call, so a connection the server is still setting up is not the call's
        grpc.channel_ready_future(self.channel).result(timeout=20)
        mk = self.channel.unary_unary
        self.list_rpc = mk("/%s/ListReferenceValues" % SERVICE,
                           request_serializer=reference_pb2.ReferenceValueListRequest.SerializeToString,
                           response_deserializer=reference_pb2.ReferenceValueListResponse.FromString)
        self.delete_rpc = mk("/%s/DeleteReferenceValue" % SERVICE,
                             request_serializer=reference_pb2.ReferenceValueDeleteRequest.SerializeToString,
                             response_deserializer=reference_pb2.ReferenceValueDeleteResponse.FromString)
        self.audit_rpc = mk("/%s/ListReferenceValueAudit" % SERVICE,
                            request_serializer=reference_pb2.ReferenceValueListRequest.SerializeToString,
                            response_deserializer=reference_pb2.ReferenceValueListResponse.FromString)
        self.register_rpc = mk("/%s/RegisterReferenceValue" % SERVICE,
                               request_serializer=reference_pb2.ReferenceValueRegisterRequest.SerializeToString,
                               response_deserializer=reference_pb2.ReferenceValueRegisterResponse.FromString)
        self.query_rpc = mk("/%s/QueryReferenceValue" % SERVICE,
                            request_serializer=reference_pb2.ReferenceValueQueryRequest.SerializeToString,
                            response_deserializer=reference_pb2.ReferenceValueQueryResponse.FromString)

    def list(self):
        return json.loads(self.list_rpc(reference_pb2.ReferenceValueListRequest(),
                                        timeout=10).reference_value_results)

    def delete(self, rv_id):
        return self.delete_rpc(reference_pb2.ReferenceValueDeleteRequest(reference_value_id=rv_id),
                               timeout=10).deleted

    def audit(self):
        return json.loads(self.audit_rpc(reference_pb2.ReferenceValueListRequest(),
                                         timeout=10).reference_value_results)

    def register(self, message):
        return self.register_rpc(reference_pb2.ReferenceValueRegisterRequest(message=message),
                                 timeout=10)

    def query(self, rv_id):
        r = self.query_rpc(reference_pb2.ReferenceValueQueryRequest(reference_value_id=rv_id),
                           timeout=10)
        return r.reference_value_results if r.HasField("reference_value_results") else None

    def close(self):
        self.channel.close()


def this_run_log(r):
    """The daemon's log since its last start (the file is appended across runs and daemons)."""
    return r.daemon.log_text().rsplit("=== start", 1)[-1]


def redis_keys(redis, pattern):
    return sorted(k.decode() for k in redis.command("KEYS", pattern))


def store_reads(redis):
    """GET + MGET calls Redis has answered so far."""
    stats = redis.command("INFO", "commandstats").decode()
    return sum(int(n) for n in re.findall(r"^cmdstat_m?get:calls=(\d+)", stats, re.M))


def test_replicas_see_each_others_writes_at_once(t, redis):
    """Two rvps on one Redis each keep reference values in memory (the Redis backend's cache,
    kept fresh by Redis's invalidation messages): a value registered, replaced or deleted
    through one is what the other's very next query answers."""
    a = Rvps({"storage": redis_storage(redis)}, name="rvps-a")
    b = Rvps({"storage": redis_storage(redis)}, name="rvps-b")
    la = Lifecycle(a.port)
    try:
        t.eq(b.query("rv-shared"), None, "replica b: rv-shared is absent (and remembered so)")
        a.register(sample_message({"rv-shared": ["v1"]}))
        got = b.query("rv-shared")
        t.ok(got is not None and json.loads(got) == ["v1"],
             "replica b sees the value registered through a at its next query", got)
        before = store_reads(redis)
        for _ in range(5):
            b.query("rv-shared")
        t.eq(store_reads(redis) - before, 0, "replica b answers repeated queries from memory")
        for i in range(2, 6):
            a.register(sample_message({"rv-shared": ["v%d" % i]}))
            got = b.query("rv-shared")
            t.ok(got is not None and json.loads(got) == ["v%d" % i],
                 "replica b sees replacement v%d from a at its next query" % i, got)
        t.eq(la.delete("rv-shared"), True, "deleted through a")
        t.eq(b.query("rv-shared"), None, "replica b's next query no longer finds it")
    finally:
        la.close()
        a.stop()
        b.stop()
        redis.command("FLUSHALL")


def test_proto_declares_every_method(t):
    methods = {m.name for m in
               reference_pb2.DESCRIPTOR.services_by_name["ReferenceValueProviderService"].methods}
    t.ok({"QueryReferenceValue", "RegisterReferenceValue", "ListReferenceValues",
          "DeleteReferenceValue", "QueryReferenceValueProvenance",
          "ListReferenceValueAudit"} <= methods,
         "reference.proto declares List, Delete, Provenance and Audit beside Query and Register",
         sorted(methods))
    fields = reference_pb2.ReferenceValueDeleteResponse.DESCRIPTOR.fields_by_name
    t.ok("deleted" in fields and fields["deleted"].number == 1,
         "ReferenceValueDeleteResponse.deleted is field 1")


def test_list_and_delete(t, redis):
    r = Rvps({"storage": redis_storage(redis)})
    lc = Lifecycle(r.port)
    try:
        t.eq(lc.list(), [], "list on an empty store is an empty array")
        lc.register(sample_message({"rv-b": ["b1"], "rv-a": ["a1", "a2"]}))
        got = lc.list()
        t.eq([(v["name"], v["value"], v["expired"], v["version"]) for v in got],
             [("rv-a", ["a1", "a2"], False, "0.1.0"), ("rv-b", ["b1"], False, "0.1.0")],
             "list returns every stored value sorted by name, not expired")
        stored = json.loads(redis.command("GET", "reference_value:rv-a"))
        t.eq(got[0]["expiration"], stored["expiration"], "list shows the stored expiration")
        t.eq(lc.delete("rv-a"), True, "DeleteReferenceValue of a stored value answers deleted=true")
        t.eq(r.query("rv-a"), None, "a deleted value is no longer returned by query")
        t.eq(redis_keys(redis, "*:rv-a"), [], "its value and provenance keys are gone from Redis")
        t.eq([v["name"] for v in lc.list()], ["rv-b"], "list no longer shows it")
        t.eq(lc.delete("rv-a"), False, "deleting it again is OK with deleted=false")
        t.eq(lc.delete(""), False, "deleting the empty id is OK with deleted=false")
        code, _ = rpc_error(r.raw, "/%s/DeleteReferenceValue" % SERVICE, b"\xff\xff\xff")
        t.eq(code, grpc.StatusCode.INVALID_ARGUMENT, "a Delete request that is not the message "
             "is INVALID_ARGUMENT")
        code, _ = rpc_error(r.raw, "/%s/ListReferenceValues" % SERVICE, b"\x0a\xff")
        t.eq(code, grpc.StatusCode.INVALID_ARGUMENT, "so is a bad List request")
        rc, out, err = tool("list", "-a", r.addr())
        t.ok(rc == 0 and [v["name"] for v in json.loads(out)] == ["rv-b"],
             "rvps-tool list prints the values as JSON", out + err)
        rc, out, err = tool("delete", "-r", "rv-b", "-a", r.addr())
        t.ok(rc == 0 and out.strip() == "Reference value rv-b deleted",
             "rvps-tool delete -r ID deletes", out + err)
        rc, out, err = tool("delete", "--reference-value-id", "rv-b", "-a", r.addr())
        t.ok(rc == 0 and "nothing deleted" in out, "rvps-tool delete of a missing id says so, "
             "exit 0", out + err)
        rc, out, err = tool("delete", "-a", r.addr())
        t.eq(rc, 2, "rvps-tool delete without an id is a usage error")
        t.eq(redis_keys(redis, "reference_value:*"), [], "the store is empty again")
    finally:
        lc.close()
        r.stop()
        redis.command("FLUSHALL")


def test_proxied_by_grpc_as(t, redis):
    r = Rvps({"storage": redis_storage(redis)})
    d = tmpdir("as-conf-")
    aport = free_port()
    with open(os.path.join(d, "as.json"), "w") as f:
        json.dump({"storage_backend": redis_storage(redis),
                   "rvps_config": {"type": "GrpcRemote", "address": "127.0.0.1:%d" % r.port}}, f)
    a = Daemon("grpc-as", [os.path.join(BIN, "grpc-as"), "--socket", "127.0.0.1:%d" % aport,
                           "--config-file", os.path.join(d, "as.json")], aport).start()
    lc = Lifecycle(aport)
    try:
        lc.register(sample_message({"px-1": ["v"]}))
        t.eq([v["name"] for v in lc.list()], ["px-1"], "grpc-as forwards ListReferenceValues")
        t.eq(lc.delete("px-1"), True, "grpc-as forwards DeleteReferenceValue")
        t.eq(r.query("px-1"), None, "the rvps behind it no longer has the value")
        t.eq([e["action"] for e in lc.audit()], ["register", "delete"],
             "grpc-as forwards ListReferenceValueAudit")
        rc, out, err = tool("list", "-a", "http://127.0.0.1:%d" % aport)
        t.ok(rc == 0 and json.loads(out) == [], "rvps-tool list through grpc-as", out + err)
    finally:
        lc.close()
        a.stop()
        r.stop()
        redis.command("FLUSHALL")


def test_delete_is_a_write(t):
    d = tmpdir("rvps-admin-")
    tok = os.path.join(d, "token")
    with open(tok, "w") as f:
        f.write("s3cret-delete-token\n")
    r = Rvps({"admin": {"bearer_token_file": tok}})
    lc = Lifecycle(r.port)
    try:
        r.register_rpc(reference_pb2.ReferenceValueRegisterRequest(
            message=sample_message({"guarded": ["g"]})), timeout=10,
            metadata=[("authorization", "Bearer s3cret-delete-token")])
        code, _ = rpc_error(lc.delete, "guarded")
        t.eq(code, grpc.StatusCode.UNAUTHENTICATED,
             "with admin configured, DeleteReferenceValue without a credential is refused")
        t.eq(r.query("guarded"), '["g"]', "and the value stays")
        got = lc.delete_rpc(reference_pb2.ReferenceValueDeleteRequest(reference_value_id="guarded"),
                            timeout=10, metadata=[("authorization", "Bearer s3cret-delete-token")])
        t.eq(got.deleted, True, "with the bearer token it deletes")
        r.register_rpc(reference_pb2.ReferenceValueRegisterRequest(
            message=sample_message({"guarded": ["g"]})), timeout=10,
            metadata=[("authorization", "Bearer s3cret-delete-token")])
        rc, out, err = tool("delete", "-r", "guarded", "-a", r.addr())
        t.ok(rc == 1 and "delete failed" in err and "deleted" not in out,
             "rvps-tool delete without a token is refused (exit 1)", out + err)
        rc, out, err = tool("delete", "-r", "guarded", "-a", r.addr(), "--bearer-token-file", tok)
        t.ok(rc == 0 and "deleted" in out, "rvps-tool delete --bearer-token-file deletes",
             out + err)
        t.eq(r.query("guarded"), None, "the value is gone")
    finally:
        lc.close()
        r.stop()


def pinned(redis, when, lifetimes=None):
    cfg = {"storage": redis_storage(redis), "verification_time": when}
    if lifetimes is not None:
        cfg["lifetime_seconds"] = lifetimes
    return Rvps(cfg)


def test_expiration_enforced(t, redis):
    r = pinned(redis, T0, {"sample": 60})
    try:
        r.register(sample_message({"short-lived": ["s"]}))
        doc = json.loads(redis.command("GET", "reference_value:short-lived"))
        t.eq(doc["expiration"], "2025-06-01T00:01:00Z",
             "expiration = pinned verification_time + the sample extractor's 60 s lifetime")
        t.eq(r.query("short-lived"), '["s"]', "queried at the pinned time it is returned")
    finally:
        r.stop()
    r = pinned(redis, "2025-06-01T00:00:59Z")
    lc = Lifecycle(r.port)
    try:
        t.eq(r.query("short-lived"), '["s"]', "one second before the expiration it is returned")
        t.eq(lc.list()[0]["expired"], False, "and listed as not expired")
    finally:
        lc.close()
        r.stop()
    r = pinned(redis, "2025-06-01T00:02:00Z")
    lc = Lifecycle(r.port)
    try:
        t.eq(r.query("short-lived"), None,
             "after its expiration the value is not returned to a query (the AS's path)")
        got = lc.list()
        t.ok(len(got) == 1 and got[0]["name"] == "short-lived" and got[0]["expired"] is True,
             "list still shows it, marked expired", got)
        t.ok("expired at 2025-06-01T00:01:00Z" in r.daemon.log_text(),
             "the rvps logs that it withheld an expired value")
        r.register(sample_message({"default-life": ["d"]}))
        doc = json.loads(redis.command("GET", "reference_value:default-life"))
        t.eq(doc["expiration"], "2026-06-01T00:02:00Z",
             "without a configured lifetime a value lives 12 months from the pinned time")
    finally:
        lc.close()
        r.stop()
        redis.command("FLUSHALL")
    d = tmpdir("rvps-badlife-")
    path = os.path.join(d, "rvps.json")
    with open(path, "w") as f:
        json.dump({"lifetime_seconds": {"sample": 0}}, f)
    p = subprocess.run([os.path.join(BIN, "rvps"), "-c", path, "-a", "127.0.0.1:%d" % free_port()],
                       capture_output=True, text=True, timeout=20)
    t.ok(p.returncode != 0 and "lifetime_seconds.sample" in p.stderr + p.stdout,
         "a lifetime of 0 s is refused at start with the key named", p.stderr[-500:])


def test_atomic_registration(t, redis, fsdir):
    r = Rvps({"storage": redis_storage(redis)})
    lc = Lifecycle(r.port)
    try:
        first = sample_message({"atom-1": ["old"]})
        r.register(first)
        prov_before = redis.command("GET", "rvps_provenance:atom-1")
        bad = sample_message({"atom-1": ["new"], "atom-2": ["x"], "bad key!": ["y"],
                              "atom-3": ["z"]})
        code, detail = rpc_error(r.register, bad)
        t.ok(code == grpc.StatusCode.ABORTED and "bad key!" in (detail or ""),
             "a message with a value the store refuses midway is ABORTED naming it",
             "%s %s" % (code, detail))
        t.eq(r.query("atom-1"), '["old"]', "the value it would have replaced is back as it was")
        t.eq(redis.command("GET", "rvps_provenance:atom-1"), prov_before,
             "and so is that value's provenance")
        t.eq(redis_keys(redis, "reference_value:*"), ["reference_value:atom-1"],
             "nothing of the refused message is stored in Redis")
        t.eq(redis_keys(redis, "rvps_provenance:*"), ["rvps_provenance:atom-1"],
             "no provenance of it either")
        t.ok("rolled back" not in this_run_log(r),
             "on Redis the message is one MULTI/EXEC batch: nothing was written, nothing rolled back")
        t.eq(len(lc.audit()), 1, "the audit trail has only the first registration")
        r.register(sample_message({"atom-2": ["x"], "atom-3": ["z"]}))
        t.eq([v["name"] for v in lc.list()], ["atom-1", "atom-2", "atom-3"],
             "the daemon keeps serving and a good message lands whole")
    finally:
        lc.close()
        r.stop()
        redis.command("FLUSHALL")
    # Redis itself refuses a write midway (not a pre-check: every key is valid): a user whose
    # ACL lets it write reference_value:atom-* only. The batch is discarded whole.
    redis.command("ACL", "SETUSER", "rvlimited", "on", ">pw", "~reference_value:atom-*",
                  "~rvps_provenance:*", "~rvps_audit:*", "+@all")
    url = redis.url.replace("redis://", "redis://rvlimited:pw@")
    r = Rvps({"storage": {"storage_type": "Redis", "backends": {"redis": {"url": url}}}})
    try:
        r.register(sample_message({"atom-5": ["ok"]}))
        code, detail = rpc_error(r.register, sample_message({"atom-6": ["a"], "denied-1": ["b"]}))
        t.ok(code == grpc.StatusCode.ABORTED and "NOPERM" in (detail or ""),
             "a write Redis refuses inside the batch makes the register ABORTED with Redis's reason",
             "%s %s" % (code, detail))
        t.eq(redis_keys(redis, "reference_value:*"), ["reference_value:atom-5"],
             "the write queued before the refused one is not kept either")
        t.eq(len(redis_keys(redis, "rvps_audit:*")), 1, "nor its audit entry")
    finally:
        r.stop()
        redis.command("ACL", "DELUSER", "rvlimited")
        redis.command("FLUSHALL")
    r = Rvps({"storage": {"storage_type": "LocalFs", "backends": {"local_fs": {"dir_path": fsdir}}}})
    try:
        code, _ = rpc_error(r.register, sample_message({"fs-1": ["a"], "bad key!": ["b"]}))
        rvdir = os.path.join(fsdir, "reference_value")
        left = os.listdir(rvdir) if os.path.isdir(rvdir) else []
        t.ok(code == grpc.StatusCode.ABORTED and left == [],
             "LocalFs: the refused message leaves no file behind", left)
        r.register(sample_message({"afs-1": ["old"]}))
        code, _ = rpc_error(r.register, sample_message({"afs-1": ["new"], "bad key!": ["b"]}))
        t.ok(code == grpc.StatusCode.ABORTED and r.query("afs-1") == '["old"]',
             "LocalFs: the value a refused message replaced is back as it was")
        t.ok("rolled back reference value afs-1" in this_run_log(r),
             "LocalFs (no batch): the values written before the refusal were rolled back "
             "(not merely pre-checked)")
    finally:
        r.stop()


def test_audit_trail(t, redis, fsdir):
    r = Rvps({"storage": redis_storage(redis)})
    lc = Lifecycle(r.port)
    try:
        msg = sample_message({"au-1": ["1"], "au-2": ["2"]})
        r.register(msg)
        lc.delete("au-1")
        lc.delete("au-1")  # nothing deleted: no entry
        entries = lc.audit()
        t.eq([(e["action"], e["names"]) for e in entries],
             [("register", ["au-1", "au-2"]), ("delete", ["au-1"])],
             "the audit trail lists the registration and the deletion, oldest first")
        t.eq(entries[0]["provenance"]["message_sha256"], hashlib.sha256(msg.encode()).hexdigest(),
             "a registration entry carries the message's provenance (its SHA-256)")
        t.eq(entries[0]["provenance"]["extractor"], "sample", "and its extractor")
        keys = redis_keys(redis, "rvps_audit:*")
        t.eq(len(keys), 2, "one Redis key per entry, namespace rvps_audit")
        t.eq(sorted(e["id"] for e in entries), [k.split(":", 1)[1] for k in keys],
             "each entry's id is its key")
        for e in entries:
            datetime.datetime.strptime(e["time"], "%Y-%m-%dT%H:%M:%SZ")
        t.ok(entries[0]["id"] < entries[1]["id"], "ids sort by time")
        rc, out, err = tool("audit", "-a", r.addr())
        t.ok(rc == 0 and [e["action"] for e in json.loads(out)] == ["register", "delete"],
             "rvps-tool audit prints the trail", out + err)
        r.restart()
        lc.close()
        lc = Lifecycle(r.port)
        t.eq(len(lc.audit()), 2, "the trail survives a restart (it lives in the store)")
    finally:
        lc.close()
        r.stop()
        redis.command("FLUSHALL")
    r = Rvps({"storage": {"storage_type": "LocalFs", "backends": {"local_fs": {"dir_path": fsdir}}}})
    lc = Lifecycle(r.port)
    try:
        r.register(sample_message({"fs-au": ["1"]}))
        lc.delete("fs-au")
        files = sorted(os.listdir(os.path.join(fsdir, "rvps_audit")))
        t.eq(len(files), 2, "LocalFs: one file per entry under rvps_audit/")
        t.eq([e["action"] for e in lc.audit()], ["register", "delete"], "LocalFs: listed in order")
    finally:
        lc.close()
        r.stop()


def test_builtin_rvps_takes_extractors(t, redis):
    """grpc-as with its built-in RVPS reads the rvps's keys from rvps_config."""
    from test_rvps_supply_chain import PINNED, RV, RV_VALUE, VERAISON, message, veraison_key
    from harness import testdata
    d = tmpdir("as-builtin-")
    jwk, _ = veraison_key()
    pub = os.path.join(d, "signer.jwk")
    with open(pub, "w") as f:
        json.dump({k: jwk[k] for k in ("kty", "crv", "x", "y", "kid")}, f)
    signed = open(os.path.join(VERAISON, "signed-good-corim.cbor"), "rb").read()
    unsigned = open(testdata("rvps", "corim", "trustee", "unsigned-example-corim.cbor"), "rb").read()

    def start(rvps_config):
        port = free_port()
        path = os.path.join(d, "as-%d.json" % port)
        with open(path, "w") as f:
            json.dump({"storage_backend": redis_storage(redis), "rvps_config": rvps_config}, f)
        a = Daemon("grpc-as", [os.path.join(BIN, "grpc-as"), "--socket", "127.0.0.1:%d" % port,
                               "--config-file", path], port).start()
        return a, Lifecycle(port)

    a, lc = start({"type": "BuiltIn", "verification_time": PINNED, "lifetime_seconds": {"corim": 3600},
                   "extractors": {"corim_extractor": {"trusted_keys": [pub],
                                                      "require_signature": True}}})
    try:
        code, detail = rpc_error(lc.register, message("corim", unsigned))
        t.ok(code == grpc.StatusCode.ABORTED and "unsigned CoRIM is refused" in (detail or ""),
             "built-in RVPS: require_signature from rvps_config refuses an unsigned CoRIM", detail)
        lc.register(message("corim", signed))
        t.eq(lc.query(RV), RV_VALUE, "built-in RVPS: the signed CoRIM registers with the trusted "
             "key at the pinned verification_time")
        got = [v for v in lc.list() if v["name"] == RV]
        t.ok(len(got) == 1 and got[0]["expiration"] == "2025-06-01T01:00:00Z",
             "built-in RVPS: lifetime_seconds from rvps_config sets the expiration", got)
        t.eq([e["action"] for e in lc.audit()], ["register"], "built-in RVPS: audit trail kept")
    finally:
        lc.close()
        a.stop()
    a, lc = start({"type": "BuiltIn"})
    try:
        code, detail = rpc_error(lc.register, message("corim", signed))
        t.ok(code == grpc.StatusCode.ABORTED,
             "built-in RVPS without the key or the pinned time refuses the signed CoRIM "
             "(today its signer has expired)", detail)
    finally:
        lc.close()
        a.stop()
        redis.command("FLUSHALL")


def main():
    t = Tap()
    redis = Redis().start()
    try:
        t.run(test_proto_declares_every_method)
        t.run(test_list_and_delete, redis)
        t.run(test_replicas_see_each_others_writes_at_once, redis)
        t.run(test_delete_is_a_write)
        t.run(test_proxied_by_grpc_as, redis)
        t.run(test_expiration_enforced, redis)
        t.run(test_atomic_registration, redis, tmpdir("rvps-atomic-"))
        t.run(test_audit_trail, redis, tmpdir("rvps-audit-"))
        t.run(test_builtin_rvps_takes_extractors, redis)
    finally:
        redis.stop()
    t.done()


if __name__ == "__main__":
    main()
