#!/usr/bin/python3
"""RVPS end to end: the real rvps daemon on a free port with a real redis-server, spoken to
by an independent gRPC implementation (python3-grpcio + protoc's reference_pb2/health_pb2)
and by rvps-tool. Checks the wire behaviour of as-rvps.md §7 and Trustee's storage layout
for the Redis, LocalFs and LocalJson backends."""
import base64
import concurrent.futures
import datetime
import json
import os
import re
import subprocess
import time

import grpc

import health_pb2
import reference_pb2
from harness import BIN, Daemon, Redis, Tap, free_port, tmpdir

SERVICE = "reference.ReferenceValueProviderService"
DOC_RE = re.compile(rb'^\{"version":"0\.1\.0","name":(".*?"),"expiration":"'
                    rb'(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)","value":(.*)\}$', re.S)


def sample_message(values, version="0.1.0", typ="sample"):
    payload = base64.b64encode(json.dumps(values).encode()).decode()
    msg = {"type": typ, "payload": payload}
    if version is not None:
        msg["version"] = version
    return json.dumps(msg)


class Rvps:
    """An rvps daemon plus a grpcio channel to it."""

    def __init__(self, config=None, name="rvps", config_path=None):
        self.port = free_port()
        if config_path is None and config is not None:
            config_path = os.path.join(tmpdir("rvps-conf-"), "rvps.json")
            with open(config_path, "w") as f:
                json.dump(config, f)
        args = [os.path.join(BIN, "rvps"), "--address", "127.0.0.1:%d" % self.port]
        if config_path is not None:
            args += ["--config", config_path]
        self.daemon = Daemon(name, args, self.port).start()
        self.connect()

    def connect(self):
        self.channel = grpc.insecure_channel(
            "127.0.0.1:%d" % self.port,
            options=[("grpc.max_receive_message_length", 64 << 20)])
        mk = self.channel.unary_unary
        self.query_rpc = mk("/%s/QueryReferenceValue" % SERVICE,
                            request_serializer=reference_pb2.ReferenceValueQueryRequest.SerializeToString,
                            response_deserializer=reference_pb2.ReferenceValueQueryResponse.FromString)
        self.register_rpc = mk("/%s/RegisterReferenceValue" % SERVICE,
                               request_serializer=reference_pb2.ReferenceValueRegisterRequest.SerializeToString,
                               response_deserializer=reference_pb2.ReferenceValueRegisterResponse.FromString)
        self.health_rpc = mk("/grpc.health.v1.Health/Check",
                             request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                             response_deserializer=health_pb2.HealthCheckResponse.FromString)

    def register(self, message, timeout=10):
        return self.register_rpc(reference_pb2.ReferenceValueRegisterRequest(message=message),
                                 timeout=timeout)

    def query(self, rv_id, timeout=10):
        """The value's JSON text, or None when the response leaves the field unset."""
        r = self.query_rpc(reference_pb2.ReferenceValueQueryRequest(reference_value_id=rv_id),
                           timeout=timeout)
        return r.reference_value_results if r.HasField("reference_value_results") else None

    def raw(self, method, data, timeout=10):
        rpc = self.channel.unary_unary(method, request_serializer=lambda b: b,
                                       response_deserializer=lambda b: b)
        return rpc(data, timeout=timeout)

    def addr(self):
        return "http://127.0.0.1:%d" % self.port

    def restart(self):
        self.channel.close()
        self.daemon.restart()
        self.connect()

    def stop(self):
        self.channel.close()
        return self.daemon.stop()


def rpc_error(fn, *args):
    try:
        fn(*args)
    except grpc.RpcError as e:
        return e.code(), e.details()
    return None, None


def tool(*args):
    p = subprocess.run([os.path.join(BIN, "rvps-tool")] + list(args), capture_output=True,
                       text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def check_doc(t, raw, name, value_json, what):
    m = DOC_RE.match(raw or b"")
    if not t.ok(m is not None, what + ": stored bytes are the §7.3 document", repr(raw)):
        return
    t.eq(json.loads(m.group(1)), name, what + ": stored name")
    t.eq(m.group(3).decode(), value_json, what + ": stored value is compact JSON")
    exp = datetime.datetime.strptime(m.group(2).decode(), "%Y-%m-%dT%H:%M:%SZ")
    now = datetime.datetime.utcnow()
    try:
        want = now.replace(year=now.year + 1)
    except ValueError:  # Feb 29
        want = now.replace(year=now.year + 1, day=28)
    t.ok(abs((exp - want).total_seconds()) < 30, what + ": expiration is now + 12 months",
         "expiration %s, now %s" % (exp, now))


def test_health(t, r):
    t.eq(r.health_rpc(health_pb2.HealthCheckRequest(service=""), timeout=5).status,
         health_pb2.HealthCheckResponse.SERVING, "health: server SERVING")
    t.eq(r.health_rpc(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5).status,
         health_pb2.HealthCheckResponse.SERVING, "health: %s SERVING" % SERVICE)
    code, _ = rpc_error(r.health_rpc, health_pb2.HealthCheckRequest(service="no.such.Service"))
    t.eq(code, grpc.StatusCode.NOT_FOUND, "health: unknown service is NOT_FOUND")


def test_register_and_query(t, r, redis):
    r.register(sample_message({"rv-a": ["x", "y"], "rv.b/c": {"z": 1, "a": [True, None]}}))
    t.eq(r.query("rv-a"), '["x","y"]', "query returns the compact JSON of the value")
    t.eq(r.query("rv.b/c"), '{"a":[true,null],"z":1}', "object values come back compact, keys sorted")
    check_doc(t, redis.command("GET", "reference_value:rv-a"), "rv-a", '["x","y"]', "redis rv-a")
    check_doc(t, redis.command("GET", "reference_value:rv.b/c"), "rv.b/c",
              '{"a":[true,null],"z":1}', "redis rv.b/c")
    keys = sorted(redis.command("KEYS", "reference_value:*"))
    t.eq(keys, [b"reference_value:rv-a", b"reference_value:rv.b/c"], "redis keys are reference_value:<name>")
    r.register(sample_message({"rv-a": ["z"]}))
    t.eq(r.query("rv-a"), '["z"]', "register overwrites an existing value")
    r.register(json.dumps({"type": "sample",
                           "payload": base64.b64encode(b'{"no-version": 7}').decode()}))
    t.eq(r.query("no-version"), "7", "a message without version defaults to 0.1.0")


def test_batch_query(t, r, redis):
    """QueryReferenceValues (ours): several ids in one call, one MGET against Redis."""
    r.register(sample_message({"bq-a": [1], "bq-b": "x"}))
    redis.command("SET", "reference_value:bq-old",
                  '{"version":"0.1.0","name":"bq-old","expiration":"2000-01-01T00:00:00Z",'
                  '"value":[9]}')
    batch = r.channel.unary_unary(
        "/%s/QueryReferenceValues" % SERVICE,
        request_serializer=reference_pb2.ReferenceValueBatchQueryRequest.SerializeToString,
        response_deserializer=reference_pb2.ReferenceValueBatchQueryResponse.FromString)
    got = batch(reference_pb2.ReferenceValueBatchQueryRequest(
        reference_value_ids=["bq-a", "nosuch", "bq-old", "bq-b", ""]), timeout=10)
    t.eq(json.loads(got.reference_value_results), {"bq-a": [1], "bq-b": "x"},
         "QueryReferenceValues: the values found, unknown, expired and empty ids left out")
    got = batch(reference_pb2.ReferenceValueBatchQueryRequest(), timeout=10)
    t.eq(json.loads(got.reference_value_results), {}, "no ids: an empty object")
    redis.command("SET", "reference_value:bq-bad", "not json")
    code, details = rpc_error(batch, reference_pb2.ReferenceValueBatchQueryRequest(
        reference_value_ids=["bq-a", "bq-bad"]), 10)
    t.ok(code == grpc.StatusCode.ABORTED and details.startswith("Query reference values: ")
         and "bq-bad" in details, "a stored document that is not ours fails the batch, "
         "naming it", "%s %s" % (code, details))
    redis.command("DEL", "reference_value:bq-bad")


def test_unknown_id(t, r):
    t.eq(r.query("never-registered"), None, "unknown id: OK with the field unset")
    t0 = time.time()
    for _ in range(20):
        r.query("__healthcheck__", timeout=1)
    t.ok(time.time() - t0 < 2.0, "the AS health probe (__healthcheck__) answers fast",
         "%.2fs for 20 probes" % (time.time() - t0))
    t.eq(r.query(""), None, "empty id: OK with the field unset")


def test_register_errors(t, r):
    cases = [
        (sample_message({"a": 1}, version="0.2.0"),
         "Register reference value: Version unmatched! Need 0.1.0, given 0.2.0.", True, "bad version"),
        (sample_message({"a": 1}, typ="nosuch"),
         "Register reference value: Could not find extractor for nosuch", True, "unknown type"),
        (json.dumps({"version": "0.1.0", "type": "sample", "payload": "%%%not base64"}),
         "Register reference value: sample extractor: the payload is not valid standard base64",
         True, "bad base64"),
        (json.dumps({"version": "0.1.0", "type": "sample",
                     "payload": base64.b64encode(b"not json").decode()}),
         "Register reference value: sample extractor: the decoded payload is not JSON", False,
         "payload not JSON"),
        (json.dumps({"version": "0.1.0", "type": "sample",
                     "payload": base64.b64encode(b"[1,2]").decode()}),
         "Register reference value: sample extractor: the decoded payload must be a JSON object",
         False, "payload not an object"),
        ("this is not json", "Register reference value: parse message:", False, "non-JSON message"),
        (json.dumps({"version": "0.1.0", "payload": "e30="}),
         "Register reference value: parse message: missing field `type`", False, "missing type"),
    ]
    for msg, want, exact, name in cases:
        code, details = rpc_error(r.register, msg)
        t.eq(code, grpc.StatusCode.ABORTED, "%s: ABORTED" % name)
        if exact:
            t.eq(details, want, "%s: message" % name)
        else:
            t.ok(details is not None and details.startswith(want), "%s: message" % name,
                 "got %r, want prefix %r" % (details, want))
    code, details = rpc_error(r.register, sample_message({"bad key": 1}))
    t.eq(code, grpc.StatusCode.ABORTED, "a name Redis refuses: ABORTED")
    t.ok(details is not None and details.startswith("Register reference value: "),
         "a name Redis refuses: message", details)


def test_garbage_bytes(t, r):
    for method in ("QueryReferenceValue", "RegisterReferenceValue"):
        code, details = rpc_error(r.raw, "/%s/%s" % (SERVICE, method), b"\xff\xff\xff\xff\x0f")
        t.eq(code, grpc.StatusCode.INVALID_ARGUMENT, "garbage protobuf to %s: INVALID_ARGUMENT" % method)
        t.ok(details and "not a valid" in details, "garbage protobuf to %s: says why" % method, details)
    code, _ = rpc_error(r.raw, "/%s/NoSuchReferenceValueMethod" % SERVICE, b"")
    t.eq(code, grpc.StatusCode.UNIMPLEMENTED, "unknown method: UNIMPLEMENTED")
    t.eq(r.query("rv-a"), '["z"]', "still serving after bad requests")
    t.ok(r.daemon.alive(), "daemon alive after bad requests")


def test_large_value(t, r):
    big = ["%06d-%s" % (i, "v" * 40) for i in range(120000)]  # ~6 MB, above gRPC's 4 MB default
    r.register(sample_message({"big": big}), timeout=60)
    got = r.query("big", timeout=60)
    t.ok(got is not None and json.loads(got) == big, "a 6 MB value registers and reads back",
         "len %d" % len(got or ""))


def test_concurrent_queries(t, r):
    def one(i):
        return r.query("rv-a") == '["z"]' and r.query("missing-%d" % i) is None
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        results = list(ex.map(one, range(320)))
    t.ok(all(results), "320 queries from 16 threads all correct")


def test_tool(t, r, redis):
    d = tmpdir("rvps-tool-")
    path = os.path.join(d, "message.json")
    with open(path, "w") as f:
        f.write(sample_message({"tool-rv": ["a", "b"]}))
    rc, out, err = tool("register", "--path", path, "--addr", r.addr())
    t.eq(rc, 0, "rvps-tool register exits 0")
    rc, out, err = tool("query", "--reference-value-id", "tool-rv", "--addr", r.addr())
    t.eq((rc, out.strip()), (0, '["a","b"]'), "rvps-tool query prints the value")
    t.eq(r.query("tool-rv"), '["a","b"]', "grpcio sees what rvps-tool registered")
    rc, out, err = tool("query", "--reference-value-id", "nope", "--addr", r.addr())
    t.eq((rc, out.strip()), (0, "No reference values found"), "rvps-tool query of an unknown id")
    with open(path, "w") as f:
        f.write(sample_message({"x": 1}, version="9"))
    rc, out, err = tool("register", "--path", path, "--addr", r.addr())
    t.ok(rc != 0 and "Version unmatched! Need 0.1.0, given 9." in err,
         "rvps-tool register reports the server's error", err)
    rc, out, err = tool("query", "--reference-value-id", "x", "--addr",
                        "http://127.0.0.1:%d" % free_port())
    t.ok(rc != 0 and err, "rvps-tool against a dead address fails", err)


def test_restart_persists(t, r, redis):
    r.restart()
    t.eq(r.query("rv-a"), '["z"]', "after an rvps restart the value is read back from Redis")
    t.eq(r.query("tool-rv"), '["a","b"]', "after an rvps restart the rvps-tool value is there")
    t0 = time.time()
    rc = r.daemon.stop()  # the grpcio channel stays connected: an idle client must not delay exit
    t.eq(rc, 0, "SIGTERM: rvps exits 0")
    t.ok(time.time() - t0 < 2, "SIGTERM: rvps exits promptly with an idle client connected",
         "%.2fs" % (time.time() - t0))
    r.channel.close()


def test_local_fs(t):
    d = tmpdir("rvps-fs-")
    r = Rvps({"storage": {"storage_type": "LocalFs", "backends": {"local_fs": {"dir_path": d}}}},
             name="rvps-localfs")
    r.register(sample_message({"dir/name.v1": {"k": "v"}, "plain": [1]}))
    p = os.path.join(d, "reference_value", "dir\\x2Fname.v1")
    t.ok(os.path.isfile(p), "LocalFs: file <dir>/reference_value/<key with / as \\x2F>",
         str(os.listdir(os.path.join(d, "reference_value")) if os.path.isdir(os.path.join(d, "reference_value")) else d))
    if os.path.isfile(p):
        with open(p, "rb") as f:
            check_doc(t, f.read(), "dir/name.v1", '{"k":"v"}', "LocalFs")
    r.restart()
    t.eq(r.query("dir/name.v1"), '{"k":"v"}', "LocalFs: value persists across restarts")
    t.eq(r.query("plain"), "[1]", "LocalFs: second value persists")
    r.stop()


def test_local_json(t):
    d = tmpdir("rvps-json-")
    r = Rvps({"storage": {"storage_type": "LocalJson", "backends": {"local_json": {"file_dir_path": d}}}},
             name="rvps-localjson")
    r.register(sample_message({"j1": ["a"], "rvps:///github.com/x:tag": "v"}))
    p = os.path.join(d, "reference_value")
    t.ok(os.path.isfile(p), "LocalJson: one file <file_dir_path>/reference_value", str(os.listdir(d)))
    if os.path.isfile(p):
        with open(p) as f:
            obj = json.load(f)
        t.eq(sorted(obj), ["j1", "rvps:///github.com/x:tag"], "LocalJson: keys are the names")
        raw = base64.urlsafe_b64decode(obj.get("j1", ""))
        t.ok(obj.get("j1", "").endswith("=") or len(obj.get("j1", "")) % 4 == 0,
             "LocalJson: values are padded base64url")
        check_doc(t, raw, "j1", '["a"]', "LocalJson")
    r.restart()
    t.eq(r.query("j1"), '["a"]', "LocalJson: value persists across restarts")
    t.eq(r.query("rvps:///github.com/x:tag"), '"v"', "LocalJson: URI-style ids work")
    r.stop()


def test_default_config(t):
    r = Rvps(config_path="/nonexistent/rvps.json", name="rvps-memory")
    t.ok("/nonexistent/rvps.json" in r.daemon.log_text(), "unreadable config: a warning names the file")
    r.register(sample_message({"m": 1}))
    t.eq(r.query("m"), "1", "unreadable config: serves from Memory")
    r.restart()
    t.eq(r.query("m"), None, "Memory storage is lost on restart")
    r.stop()
    d = tmpdir("rvps-bad-")
    bad = os.path.join(d, "rvps.json")
    with open(bad, "w") as f:
        f.write("{not json")
    r = Rvps(config_path=bad, name="rvps-badconf")
    r.register(sample_message({"m2": 2}))
    t.eq(r.query("m2"), "2", "invalid config file: serves from Memory")
    r.stop()
    # Trustee's docker-compose rvps.json: stale keys that select nothing -> Memory (§10.16)
    r = Rvps({"storage": {"type": "LocalFs",
                          "file_path": "/opt/confidential-containers/attestation-service/reference_values"},
              "extractors": {"swid_extractor": {}}}, name="rvps-compose")
    r.register(sample_message({"m3": [3]}))
    t.eq(r.query("m3"), "[3]", "Trustee's compose rvps.json (stale keys): serves from Memory")
    r.stop()


def test_address_in_use(t, r):
    port = r.port
    p = subprocess.run([os.path.join(BIN, "rvps"), "-a", "127.0.0.1:%d" % port, "-c", "/nonexistent"],
                       capture_output=True, text=True, timeout=20)
    t.ok(p.returncode != 0, "a second rvps on a taken port exits non-zero",
         p.stderr[-500:])


def main():
    t = Tap()
    redis = Redis().start()
    r = Rvps({"storage": {"storage_type": "Redis", "backends": {"redis": {"url": redis.url}}}})
    t.run(test_health, r)
    t.run(test_register_and_query, r, redis)
    t.run(test_unknown_id, r)
    t.run(test_batch_query, r, redis)
    t.run(test_register_errors, r)
    t.run(test_garbage_bytes, r)
    t.run(test_large_value, r)
    t.run(test_concurrent_queries, r)
    t.run(test_tool, r, redis)
    t.run(test_address_in_use, r)
    t.run(test_restart_persists, r, redis)
    t.run(test_local_fs)
    t.run(test_local_json)
    t.run(test_default_config)
    t.done()


if __name__ == "__main__":
    main()
