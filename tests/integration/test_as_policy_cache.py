"""The AS compiles an attestation policy once per distinct text and still sees every change at
once: two grpc-as replicas share one Redis; a SetAttestationPolicy on either one, or a text
written straight into storage, decides the very next evaluation on both. More policy ids than
the cache holds all evaluate with their own text."""
import base64
import hashlib
import json
import os

import grpc

import harness
from harness import BIN, Daemon, Redis, free_port, tmpdir

import attestation_pb2 as A  # noqa: E402


def b64u(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def policy(executables):
    return ("package policy\nimport rego.v1\n"
            'trust_claims := {"executables": %d, "hardware": 2}\n' % executables)


def this_run(d):
    """The daemon's log since its last start (a log file collects every run of the test)."""
    return d.log_text().rsplit("\n=== start ", 1)[-1]


def main():
    t = harness.Tap()
    redis = Redis().start()
    d = tmpdir("as-pcache-")
    storage = {"storage_type": "Redis", "backends": {"redis": {"url": redis.url}}}
    json.dump({"storage_backend": storage}, open(os.path.join(d, "as.json"), "w"))
    stubs, daemons = [], []
    for name in ("a", "b"):
        port = free_port()
        daemons.append(Daemon("grpc-as-" + name, [os.path.join(BIN, "grpc-as"), "--socket",
                                   "127.0.0.1:%d" % port, "--config-file",
                                   os.path.join(d, "as.json")], port).start())
        ch = grpc.insecure_channel("127.0.0.1:%d" % port)
        stubs.append((
            ch.unary_unary("/attestation.AttestationService/AttestationEvaluate",
                           request_serializer=A.AttestationRequest.SerializeToString,
                           response_deserializer=A.AttestationResponse.FromString),
            ch.unary_unary("/attestation.AttestationService/SetAttestationPolicy",
                           request_serializer=A.SetPolicyRequest.SerializeToString,
                           response_deserializer=A.SetPolicyResponse.FromString)))

    runtime = {"nonce": "bm9uY2U=", "tee-pubkey": {"kty": "EC", "crv": "P-256"}}
    canon = json.dumps(runtime, sort_keys=True, separators=(",", ":")).encode()
    ev = {"svn": "1", "report_data": base64.b64encode(hashlib.sha384(canon).digest()).decode()}

    def executables(stub, pid):
        req = A.AttestationRequest(verification_requests=[A.IndividualAttestationRequest(
            tee="sample", evidence=b64u(json.dumps(ev).encode()),
            structured_runtime_data=json.dumps(runtime))], policy_ids=[pid])
        tok = stub[0](req, timeout=30).attestation_token
        p = tok.split(".")[1]
        c = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
        return c["submods"]["cpu0"]["ear.trustworthiness-vector"]["executables"]

    def set_policy(stub, pid, text):
        stub[1](A.SetPolicyRequest(policy_id=pid, policy=b64u(text.encode())), timeout=10)

    a, b = stubs
    set_policy(a, "pc_cpu", policy(3))
    t.eq((executables(a, "pc"), executables(b, "pc")), (3, 3),
         "both replicas appraise with the stored policy")
    t.eq([executables(b, "pc") for _ in range(5)], [3] * 5, "repeated appraisals agree")
    t.eq(this_run(daemons[1]).count("policy pc_cpu.rego compiled"), 1,
         "six appraisals with one text compile it once")
    set_policy(a, "pc_cpu", policy(33))
    t.eq((executables(a, "pc"), executables(b, "pc")), (33, 33),
         "a SetAttestationPolicy on one replica decides the next appraisal on both")
    set_policy(b, "pc_cpu", policy(3))
    t.eq((executables(a, "pc"), executables(b, "pc")), (3, 3),
         "and back, set through the other replica")
    redis.command("SET", "attestation_service_policy:pc_cpu.rego", policy(96))
    t.eq((executables(a, "pc"), executables(b, "pc")), (96, 96),
         "a text written straight into storage is seen at once")
    t.eq(this_run(daemons[1]).count("policy pc_cpu.rego compiled"), 4,
         "each new text is compiled once on each replica that uses it")
    redis.command("SET", "attestation_service_policy:pc_cpu.rego", "package policy\nnot rego {")
    try:
        executables(a, "pc")
        t.ok(False, "a stored text that does not compile fails the appraisal (no stale copy)")
    except grpc.RpcError as e:
        t.ok("rego_parse_error" in e.details() or "parse" in e.details(),
             "a stored text that does not compile fails the appraisal (no stale copy)",
             e.details())
    ids = ["many%02d" % i for i in range(80)]  # more than the 64 the cache keeps
    for i, pid in enumerate(ids):
        set_policy(a, pid + "_cpu", policy(i % 30 + 2))
    got = [executables(b, pid) for pid in ids] + [executables(b, pid) for pid in ids[:5]]
    t.eq(got, [i % 30 + 2 for i in range(80)] + [i % 30 + 2 for i in range(5)],
         "80 policy ids (more than the cache holds) each appraise with their own text")
    t.ok(all(x.alive() for x in daemons), "both replicas still serve")
    t.done()


if __name__ == "__main__":
    main()
