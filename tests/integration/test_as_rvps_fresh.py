#!/usr/bin/python3
"""grpc-as with a remote RVPS asks it once per appraisal, and still sees every registration at
once. After the first appraisal of a kind (policy, TEE), grpc-as fetches every reference value
that kind of appraisal read before in one QueryReferenceValues call; it remembers the ids, never
the values, so a value registered, replaced or deleted through the rvps decides the very next
appraisal. An RVPS without QueryReferenceValues (Trustee's) is asked one id at a time."""
import base64
import concurrent.futures
import hashlib
import json
import os
import re
import urllib.request

import grpc

import attestation_pb2 as A
import reference_pb2 as R
from harness import BIN, Daemon, Tap, free_port, tmpdir

SERVICE = "reference.ReferenceValueProviderService"


def b64u(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def sample_message(values):
    payload = base64.b64encode(json.dumps(values).encode()).decode()
    return json.dumps({"version": "0.1.0", "type": "sample", "payload": payload})


def metric(port, name):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read()
    m = re.search(r"^%s (\d+)$" % re.escape(name), text.decode(), re.M)
    return int(m.group(1)) if m else None


def start_as(rvps_port):
    d = tmpdir("as-rvps-fresh-")
    path = os.path.join(d, "as.json")
    json.dump({"rvps_config": {"type": "GrpcRemote",
                               "address": "127.0.0.1:%d" % rvps_port}}, open(path, "w"))
    port = free_port()
    dmn = Daemon("grpc-as", [os.path.join(BIN, "grpc-as"), "--socket", "127.0.0.1:%d" % port,
                             "--config-file", path], port).start()
    ch = grpc.insecure_channel("127.0.0.1:%d" % port)
    evaluate = ch.unary_unary("/attestation.AttestationService/AttestationEvaluate",
                              request_serializer=A.AttestationRequest.SerializeToString,
                              response_deserializer=A.AttestationResponse.FromString)
    runtime = {"nonce": "bm9uY2U=", "tee-pubkey": {"kty": "EC", "crv": "P-256"}}
    canon = json.dumps(runtime, sort_keys=True, separators=(",", ":")).encode()
    ev = {"svn": "1", "report_data": base64.b64encode(hashlib.sha384(canon).digest()).decode()}

    def executables():
        req = A.AttestationRequest(verification_requests=[A.IndividualAttestationRequest(
            tee="sample", evidence=b64u(json.dumps(ev).encode()),
            structured_runtime_data=json.dumps(runtime))], policy_ids=["default"])
        p = evaluate(req, timeout=30).attestation_token.split(".")[1]
        c = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
        return c["submods"]["cpu0"]["ear.trustworthiness-vector"]["executables"]
    return dmn, executables


def test_fresh(t):
    rport = free_port()
    rvps = Daemon("rvps", [os.path.join(BIN, "rvps"), "--address", "127.0.0.1:%d" % rport],
                  rport).start()
    ch = grpc.insecure_channel("127.0.0.1:%d" % rport)
    register = ch.unary_unary("/%s/RegisterReferenceValue" % SERVICE,
                              request_serializer=R.ReferenceValueRegisterRequest.SerializeToString,
                              response_deserializer=R.ReferenceValueRegisterResponse.FromString)
    delete = ch.unary_unary("/%s/DeleteReferenceValue" % SERVICE,
                            request_serializer=R.ReferenceValueDeleteRequest.SerializeToString,
                            response_deserializer=R.ReferenceValueDeleteResponse.FromString)
    batch = ch.unary_unary("/%s/QueryReferenceValues" % SERVICE,
                           request_serializer=R.ReferenceValueBatchQueryRequest.SerializeToString,
                           response_deserializer=R.ReferenceValueBatchQueryResponse.FromString)

    def reg(values):
        register(R.ReferenceValueRegisterRequest(message=sample_message(values)), timeout=10)

    reg({"b1": [1], "b2": {"k": "v"}})
    got = batch(R.ReferenceValueBatchQueryRequest(reference_value_ids=["b1", "nosuch", "b2"]),
                timeout=10)
    t.eq(json.loads(got.reference_value_results), {"b1": [1], "b2": {"k": "v"}},
         "QueryReferenceValues answers the ids that have a value as one JSON object")
    try:
        batch(R.ReferenceValueBatchQueryRequest(reference_value_ids=["x"] * 257), timeout=10)
        t.ok(False, "more than 256 ids in one QueryReferenceValues is refused")
    except grpc.RpcError as e:
        t.eq(e.code(), grpc.StatusCode.INVALID_ARGUMENT,
             "more than 256 ids in one QueryReferenceValues is refused")

    asd, executables = start_as(rport)
    t.eq(executables(), 33, "no launch_digest registered: executables stays 33")
    reg({"launch_digest": ["abcde"]})
    t.eq(executables(), 3, "a launch_digest registered through the rvps decides the next "
         "appraisal (executables 3)")
    single = "rvps_query_calls_total{method=\"QueryReferenceValue\"}"
    many = "rvps_query_calls_total{method=\"QueryReferenceValues\"}"
    s0, m0 = metric(rport, single), metric(rport, many)
    got = [executables() for _ in range(5)]
    s1, m1 = metric(rport, single), metric(rport, many)
    t.eq(got, [3] * 5, "repeated appraisals agree")
    t.eq((s1 - s0, m1 - m0), (0, 5), "each appraisal after the first is one RVPS call "
         "(QueryReferenceValues), none id by id")
    reg({"launch_digest": ["other"]})
    t.eq(executables(), 33, "a replaced value decides the very next appraisal")
    reg({"launch_digest": ["other", "abcde"]})
    t.eq(executables(), 3, "and its replacement the one after")
    delete(R.ReferenceValueDeleteRequest(reference_value_id="launch_digest"), timeout=10)
    t.eq(executables(), 33, "a deleted value is gone from the next appraisal")

    # registrations racing appraisals: every appraisal that starts after a registration
    # returned sees it
    def flip(i):
        reg({"launch_digest": ["abcde"] if i % 2 else ["zzz"]})
        return executables()
    t.eq([flip(i) for i in range(10)], [33, 3] * 5,
         "ten alternating registrations, each followed at once by an appraisal that sees it")
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        t.eq(list(ex.map(lambda _: executables(), range(32))), [3] * 32,
             "32 concurrent appraisals agree")
    t.ok(asd.alive() and rvps.alive(), "both daemons still serve")
    asd.stop()
    rvps.stop()


class OldRvps:
    """A Trustee-like RVPS: QueryReferenceValue only (python3-grpcio)."""

    def __init__(self, values):
        self.values, self.calls = values, 0

        def query(req, ctx):
            self.calls += 1
            v = self.values.get(req.reference_value_id)
            return R.ReferenceValueQueryResponse(reference_value_results=json.dumps(v)) \
                if v is not None else R.ReferenceValueQueryResponse()
        h = grpc.method_handlers_generic_handler(SERVICE, {
            "QueryReferenceValue": grpc.unary_unary_rpc_method_handler(
                query, request_deserializer=R.ReferenceValueQueryRequest.FromString,
                response_serializer=R.ReferenceValueQueryResponse.SerializeToString)})
        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(4))
        self.server.add_generic_rpc_handlers((h,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()


def test_trustee_rvps(t):
    old = OldRvps({"launch_digest": ["abcde"]})
    asd, executables = start_as(old.port)
    got = [executables() for _ in range(3)]
    t.eq(got, [3, 3, 3], "an RVPS without QueryReferenceValues: appraisals still read values")
    old.values["launch_digest"] = ["x"]
    t.eq(executables(), 33, "and see a change at once")
    t.ok("has no QueryReferenceValues" in asd.log_text(),
         "grpc-as says once it asks that RVPS id by id", asd.log_tail(5))
    asd.stop()
    old.server.stop(0)


def main():
    t = Tap()
    t.run(test_fresh)
    t.run(test_trustee_rvps)
    t.done()


if __name__ == "__main__":
    main()
