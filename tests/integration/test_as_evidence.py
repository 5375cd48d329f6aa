"""Real evidence through grpc-as → rvps on Redis (AttestationEvaluate over grpcio): a testdata
SNP report and a fresh swtpm quote are verified, appraised by our default CPU policy with
reference values registered through the AS's RVPS API, and come back as signed EAR tokens.
With their Redis stopped, an appraisal is answered UNAVAILABLE (retry), not ABORTED (refused),
and works again by itself once Redis is back."""
import base64
import hashlib
import json
import os

import grpc

import harness
from harness import BIN, Daemon, Redis, free_port, tmpdir
from swtpm import SwTpm

import attestation_pb2 as A  # noqa: E402
import reference_pb2 as R  # noqa: E402


def b64u(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def claims_of(token):
    p = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


def main():
    t = harness.Tap()
    redis = Redis(aof=True).start()
    d = tmpdir("as-ev-")
    storage = {"storage_type": "Redis", "backends": {"redis": {"url": redis.url}}}
    rport, aport = free_port(), free_port()
    json.dump({"storage": storage}, open(os.path.join(d, "rvps.json"), "w"))
    Daemon("rvps", [os.path.join(BIN, "rvps"), "--config", os.path.join(d, "rvps.json"),
                    "--address", "127.0.0.1:%d" % rport], rport).start()
    json.dump({"storage_backend": storage,
               "rvps_config": {"type": "GrpcRemote", "address": "127.0.0.1:%d" % rport}},
              open(os.path.join(d, "as.json"), "w"))
    Daemon("grpc-as", [os.path.join(BIN, "grpc-as"), "--socket", "127.0.0.1:%d" % aport,
                       "--config-file", os.path.join(d, "as.json")], aport).start()
    ch = grpc.insecure_channel("127.0.0.1:%d" % aport)
    evaluate = ch.unary_unary("/attestation.AttestationService/AttestationEvaluate",
                              request_serializer=A.AttestationRequest.SerializeToString,
                              response_deserializer=A.AttestationResponse.FromString)
    register = ch.unary_unary("/reference.ReferenceValueProviderService/RegisterReferenceValue",
                              request_serializer=R.ReferenceValueRegisterRequest.SerializeToString,
                              response_deserializer=R.ReferenceValueRegisterResponse.FromString)

    def rv(values):
        msg = {"version": "0.1.0", "type": "sample",
               "payload": base64.b64encode(json.dumps(values).encode()).decode()}
        register(R.ReferenceValueRegisterRequest(message=json.dumps(msg)), timeout=10)

    # --- SNP: Trustee's Genoa evidence (VCEK in cert_chain); its report_data is fixed, so the
    # runtime data is given raw, exactly the 64 bytes the report carries
    ev = json.load(open(harness.testdata("evidence", "snp", "trustee", "e2e-evidence.json")))
    rep = ev["attestation_report"]
    req = A.AttestationRequest(verification_requests=[A.IndividualAttestationRequest(
        tee="snp", evidence=b64u(json.dumps(ev).encode()),
        raw_runtime_data=b64u(bytes(rep["report_data"])))], policy_ids=["default"])
    tok = evaluate(req, timeout=30).attestation_token
    c = claims_of(tok)["submods"]["cpu0"]
    t.eq(c["ear.veraison.annotated-evidence"]["snp"]["measurement"], bytes(rep["measurement"]).hex(),
         "SNP evidence verified: measurement claim")
    t.eq(c["ear.trustworthiness-vector"]["executables"], 33, "no reference values: executables 33")
    rv({"snp_launch_measurement": [bytes(rep["measurement"]).hex()]})
    c = claims_of(evaluate(req, timeout=30).attestation_token)["submods"]["cpu0"]
    t.eq(c["ear.trustworthiness-vector"]["executables"], 3,
         "measurement registered in the RVPS: executables 3")
    bad = A.AttestationRequest(verification_requests=[A.IndividualAttestationRequest(
        tee="snp", evidence=b64u(json.dumps(ev).encode()), raw_runtime_data=b64u(b"\0" * 64))])
    try:
        evaluate(bad, timeout=30)
        t.ok(False, "SNP evidence with other report data is refused")
    except grpc.RpcError as e:
        t.ok(e.code() == grpc.StatusCode.ABORTED and "report_data" in e.details(),
             "SNP evidence with other report data is refused", e.details())

    # --- TPM: a fresh swtpm quote bound to the structured runtime data
    runtime = {"nonce": "bm9uY2U=", "tee-pubkey": {"kty": "EC", "crv": "P-256"}}
    canon = json.dumps(runtime, sort_keys=True, separators=(",", ":")).encode()
    nonce = hashlib.sha384(canon).digest()[:32]
    tpm = SwTpm().start()
    tev = tpm.quote(nonce)
    req = A.AttestationRequest(verification_requests=[A.IndividualAttestationRequest(
        tee="tpm", evidence=b64u(json.dumps(tev).encode()),
        structured_runtime_data=json.dumps(runtime))])
    c = claims_of(evaluate(req, timeout=30).attestation_token)["submods"]["cpu0"]
    t.eq(c["ear.veraison.annotated-evidence"]["runtime_data_claims"], runtime,
         "TPM quote verified; runtime data claims carried")
    t.eq(c["ear.status"], "warning", "unknown AK: executables 33 -> warning")
    rv({"trusted_aks": [tev["ak_public"]], "tpm_pcr11": [tev["tpm_quote"]["pcrs"][11]]})
    c = claims_of(evaluate(req, timeout=30).attestation_token)["submods"]["cpu0"]
    t.eq((c["ear.status"], c["ear.trustworthiness-vector"]["executables"]), ("affirming", 3),
         "AK and PCR11 registered: affirming")

    # --- storage outage: the AS's policies and the RVPS's values are out of reach
    redis.stop()
    try:
        evaluate(req, timeout=30)
        t.ok(False, "Redis down: the appraisal is not completed")
    except grpc.RpcError as e:
        t.ok(e.code() == grpc.StatusCode.UNAVAILABLE and "unavailable" in e.details(),
             "Redis down: UNAVAILABLE (retryable), the cause named", (e.code(), e.details()))
    try:
        evaluate(bad, timeout=30)
        t.ok(False, "Redis down: evidence for other report data is still refused")
    except grpc.RpcError as e:
        t.ok(e.code() == grpc.StatusCode.ABORTED and "report_data" in e.details(),
             "Redis down: evidence for other report data is still refused (ABORTED)",
             (e.code(), e.details()))
    redis.start()
    c = claims_of(evaluate(req, timeout=30).attestation_token)["submods"]["cpu0"]
    t.eq(c["ear.status"], "affirming", "Redis back: the same appraisal succeeds again")
    t.done()


if __name__ == "__main__":
    main()
