"""Arm CCA tokens through evidence-verify and a real grpc-as (on Redis). Trustee's synthetic
example token, with its TA and RV stores as the CCA_CONFIG_FILE local configuration, becomes
an EAR token whose cpu0 submod carries §5.9's claims. Tokens forged under test keys
(cca_forge.py: its own CBOR encoder, python3-cryptography signatures) drive the refusals the
example token cannot: a RAK the platform does not vouch for, a realm token signed by another
key than its RAK, a CPAK other than the store's, a debug platform, a header naming another
algorithm, and the COSE_Key form of the RAK that later profiles use."""
import base64
import hashlib
import json
import os
import subprocess

import grpc
from cryptography.hazmat.primitives.asymmetric import ec

import cca_forge as F
import harness
from harness import BIN, Daemon, Redis, free_port, tmpdir

import attestation_pb2 as A  # noqa: E402

CHALLENGE = bytes.fromhex(
    "57e979ae2618de0c1ab73144c440d741cf9236dc9d52ed190053382a4d190252"
    "f9f0370403c35dcb155fb4362d73c66d5b0494bf939315d3dc52b8cdc8b85a96")


def b64u(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def claims_of(token):
    p = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


def evidence_verify(d, cfg, tok, report_data):
    path = os.path.join(d, "token.cbor")
    open(path, "wb").write(tok)
    p = subprocess.run([os.path.join(BIN, "evidence-verify"), "--tee", "cca", "--evidence", path,
                        "--report-data", report_data.hex()], capture_output=True, text=True,
                       env=dict(os.environ, CCA_CONFIG_FILE=cfg), timeout=60)
    return p.returncode, p.stdout


def forged_cases(t, d):
    cpak, rak = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1())
    other = ec.generate_private_key(ec.SECP384R1())
    cfg = F.write_config(d, cpak)
    nonce = hashlib.sha512(b"nonce").digest()

    rc, out = evidence_verify(d, cfg, F.token(cpak, rak, nonce), nonce)
    t.ok(rc == 0, "forged token under the test CPAK verifies", out)
    if rc == 0:
        c = json.loads(out)
        t.eq(c["cca"]["realm"]["cca-realm-initial-measurement"],
             base64.b64encode(F.RIM).decode(), "forged token: initial measurement claim")
        t.eq(c["cca"]["platform"]["cca-platform-instance-id"],
             base64.b64encode(F.INST_ID).decode(), "forged token: instance id claim")
        t.eq(c["report_data"], nonce.hex(), "forged token: report_data is the realm challenge")

    rc, out = evidence_verify(d, cfg, F.token(cpak, rak, nonce, rak_form="cose"), nonce)
    t.ok(rc == 0, "RAK as a COSE_Key (realm profile present) verifies", out)
    rc, out = evidence_verify(d, cfg, F.token(cpak, rak, nonce, rak_form="cose", cmw=True), nonce)
    t.ok(rc == 0, "the CMW collection form (tag 907, 2023 profiles) verifies", out)
    rc, out = evidence_verify(d, cfg, F.token(cpak, rak, nonce, cmw=True, binding=bytes(32)),
                              nonce)
    t.ok(rc == 1 and "platform challenge is not the sha-256" in out,
         "the CMW form is bound like the other", out)

    cases = [
        ("wrong RAK binding: the platform vouches for another key",
         F.token(cpak, rak, nonce, binding=hashlib.sha256(F.point(other)).digest()),
         "the platform challenge is not the sha-256 of the realm public key"),
        ("realm token signed by a key other than its RAK",
         F.token(cpak, rak, nonce, realm_signer=other),
         "CCA realm token not signed by its realm attestation key"),
        ("platform token signed by a CPAK the store does not hold",
         F.token(other, rak, nonce),
         "CCA platform token not signed by the CPAK of its instance"),
        ("wrong challenge", F.token(cpak, rak, hashlib.sha512(b"other").digest()),
         "CCA realm token challenge does not match the expected report_data"),
        ("platform in a debug lifecycle state", F.token(cpak, rak, nonce, lifecycle=0x5000),
         "lifecycle 0x5000 is not \"secured\""),
        ("platform header names ES256 for a P-384 CPAK",
         F.token(cpak, rak, nonce, platform_alg=-7),
         "signed with ES256 (-7) but the key is for ES384"),
        ("a RAK hashed with sha-512 while the RV store expects sha-256",
         F.token(cpak, rak, nonce, rak_hash="sha-512"),
         "CCA realm appraisal: no reference value"),
        ("a RAK that is not a point on P-384 (the platform vouches for its bytes)",
         F.token(cpak, rak, nonce, rak_claim=b"\x04" + bytes(96)),
         "the realm public key is not a point on P-384"),
        ("a realm image the RV store does not list",
         F.token(cpak, rak, nonce, rim=hashlib.sha256(b"other image").digest()),
         "CCA realm appraisal: no reference value"),
    ]
    for name, tok, reason in cases:
        rc, out = evidence_verify(d, cfg, tok, nonce)
        t.ok(rc == 1 and reason in out, "refused: " + name, out)
    return cpak, rak, cfg


def main():
    t = harness.Tap()
    d = tmpdir("as-cca-")
    cpak, rak, _ = forged_cases(t, d)

    # --- grpc-as with Trustee's example token and stores
    td = harness.testdata("evidence", "cca", "trustee")
    cfg = os.path.join(d, "trustee-cca.json")
    json.dump({"cca-verifier": {"type": "local", "ta-store": os.path.join(td, "tastore.json"),
                                "rv-store": os.path.join(td, "rvstore.json")}}, open(cfg, "w"))
    redis = Redis().start()
    storage = {"storage_type": "Redis", "backends": {"redis": {"url": redis.url}}}
    json.dump({"storage_backend": storage}, open(os.path.join(d, "as.json"), "w"))
    aport = free_port()
    Daemon("grpc-as", [os.path.join(BIN, "grpc-as"), "--socket", "127.0.0.1:%d" % aport,
                       "--config-file", os.path.join(d, "as.json")], aport,
           env={"CCA_CONFIG_FILE": cfg}).start()
    ch = grpc.insecure_channel("127.0.0.1:%d" % aport)
    evaluate = ch.unary_unary("/attestation.AttestationService/AttestationEvaluate",
                              request_serializer=A.AttestationRequest.SerializeToString,
                              response_deserializer=A.AttestationResponse.FromString)

    def request(tok, rd):
        ev = {"token": list(tok)}
        return A.AttestationRequest(verification_requests=[A.IndividualAttestationRequest(
            tee="cca", evidence=b64u(json.dumps(ev).encode()), raw_runtime_data=b64u(rd))],
            policy_ids=["default"])

    example = open(os.path.join(td, "cca-example-token.cbor"), "rb").read()
    c = claims_of(evaluate(request(example, CHALLENGE), timeout=30).attestation_token)
    sub = c["submods"].get("cpu0", {})
    ae = sub.get("ear.veraison.annotated-evidence", {})
    t.eq(sorted(c["submods"]), ["cpu0"], "example token through grpc-as: one cpu0 submod")
    t.eq(ae.get("cca", {}).get("platform", {}).get("cca-platform-implementation-id"),
         base64.b64encode(bytes.fromhex(
             "7f454c4602010100000000000000000003003e00010000005058000000000000")).decode(),
         "cpu0 carries the platform implementation id of tastore.json")
    t.eq(ae.get("cca", {}).get("realm", {}).get("cca-realm-challenge"),
         base64.b64encode(CHALLENGE).decode(), "cpu0 carries the realm challenge")
    t.eq(ae.get("report_data"), CHALLENGE.hex(), "report_data is the expected report data")

    for name, tok, rd, reason in [
            ("example token for other report data", example, b"\0" * 64,
             "realm token challenge does not match"),
            ("example token with a flipped byte in the realm signature",
             example[:-1] + bytes([example[-1] ^ 1]), CHALLENGE,
             "not signed by its realm attestation key"),
            ("example token truncated", example[:-40], CHALLENGE, "CBOR:"),
            ("forged token under a CPAK the example store does not hold",
             F.token(cpak, rak, CHALLENGE), CHALLENGE, "has no CPAK in the trust anchor store")]:
        try:
            evaluate(request(tok, rd), timeout=30)
            t.ok(False, "grpc-as refuses the " + name)
        except grpc.RpcError as e:
            t.ok(e.code() == grpc.StatusCode.ABORTED and reason in e.details(),
                 "grpc-as refuses the " + name, (e.code(), e.details()))
    c = claims_of(evaluate(request(example, CHALLENGE), timeout=30).attestation_token)
    t.ok("cpu0" in c["submods"], "grpc-as still serves after the refusals")
    t.done()


if __name__ == "__main__":
    main()
