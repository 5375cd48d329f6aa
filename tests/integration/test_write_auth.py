#!/usr/bin/python3
"""Writes to grpc-as and rvps are authorized (issue 14 V7): SetAttestationPolicy and
RegisterReferenceValue only from a client whose mutual-TLS certificate is listed in the
daemon's "admin".allowed_identities or that sends the "admin".bearer_token_file credential;
AttestationEvaluate and the reads stay open. The client is python3-grpcio; the daemons are the
real kbs, grpc-as and rvps.

- grpc-as with a bearer credential: SetAttestationPolicy with no credential is UNAUTHENTICATED
  and one with a wrong token PERMISSION_DENIED, each with a sentence; a sample TEE attested
  through the kbs afterwards still gets its normal verdict, not the "affirming" the refused
  policy would give; the right token is accepted;
- the kbs's admin attestation-policy endpoint works end to end through
  [attestation_service] as_bearer_token_file, and a kbs without it is refused by the AS;
- rvps under mutual TLS with allowed_identities: a certificate from the trusted CA but not
  listed may query and not register; listed ones (dns SAN, subject, public key hash) register;
- grpc-as proxying to that rvps with its own listed certificate: a register reaches the rvps
  only when the AS's own write check passed (the AS's credential is not lent to strangers);
- RegisterReferenceValue with 100,000 names in one message is refused with a sentence, and
  the configured cap is honoured;
- open writes: on loopback no warning, beyond loopback one warning at start; a bad identity
  in the config stops the daemon with a sentence.
"""
import base64
import hashlib
import json
import os
import subprocess

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import attestation_pb2
import reference_pb2
from harness import BIN, Daemon, Tap, free_port, tmpdir
from kbs_testlib import Attester, Kbs, Pki, b64u_dec, kbs_config, require_kbs
from test_grpc_tls import TlsPki

SET_POLICY = "/attestation.AttestationService/SetAttestationPolicy"
QUERY = "/reference.ReferenceValueProviderService/QueryReferenceValue"
REGISTER = "/reference.ReferenceValueProviderService/RegisterReferenceValue"
TOKEN = "s3cret-admin-token-for-writes-0123456789"

# the default CPU policy with every claim's default raised to affirming: what an attacker
# who could set policies would install
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "as",
                       "policies", "default_cpu.rego")) as _f:
    AFFIRM_ALL = (_f.read().replace("default executables := 33", "default executables := 2")
                  .replace("default hardware := 97", "default hardware := 2")
                  .replace("default configuration := 36", "default configuration := 2"))


def write_file(d, name, text, mode=0o600):
    p = os.path.join(d, name)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return p


def call(target, method, req, resp_cls, creds=None, token=None, timeout=10):
    ch = grpc.secure_channel(target, creds) if creds else grpc.insecure_channel(target)
    try:
        m = ch.unary_unary(method, request_serializer=lambda x: x.SerializeToString(),
                           response_deserializer=resp_cls.FromString)
        md = [("authorization", "Bearer " + token)] if token is not None else None
        return m(req, timeout=timeout, metadata=md)
    finally:
        ch.close()


def outcome(fn):
    """(None, None) on success, else (status code, details)."""
    try:
        fn()
        return None, None
    except grpc.RpcError as e:
        return e.code(), e.details() or ""


def set_policy(target, text, **kw):
    req = attestation_pb2.SetPolicyRequest(
        policy_id="default_cpu", policy=base64.urlsafe_b64encode(text.encode()).decode()
        .rstrip("="))
    return outcome(lambda: call(target, SET_POLICY, req, attestation_pb2.SetPolicyResponse, **kw))


def register(target, names, **kw):
    payload = base64.b64encode(json.dumps(names).encode()).decode()
    msg = json.dumps({"version": "0.1.0", "type": "sample", "payload": payload})
    req = reference_pb2.ReferenceValueRegisterRequest(message=msg)
    return outcome(lambda: call(target, REGISTER, req,
                                reference_pb2.ReferenceValueRegisterResponse, **kw))


def query(target, name, **kw):
    r = call(target, QUERY, reference_pb2.ReferenceValueQueryRequest(reference_value_id=name),
             reference_pb2.ReferenceValueQueryResponse, **kw)
    return json.loads(r.reference_value_results) if r.reference_value_results else None


def start_as(pki, name, cfg_extra, args=(), listen="127.0.0.1"):
    d = tmpdir("wa-as-")
    cfg = {"attestation_token_broker": {"signer": {
        "key_path": pki.path("token.key"), "cert_path": pki.path("token-cert-chain.pem")}}}
    cfg.update(cfg_extra)
    with open(os.path.join(d, "as.json"), "w") as f:
        json.dump(cfg, f)
    port = free_port()
    return Daemon(name, [os.path.join(BIN, "grpc-as"), "--socket", "%s:%d" % (listen, port),
                         "--config-file", os.path.join(d, "as.json")] + list(args), port)


def start_rvps(name, cfg, args=(), listen="127.0.0.1"):
    d = tmpdir("wa-rvps-")
    with open(os.path.join(d, "rvps.json"), "w") as f:
        json.dump(dict({"storage": {"storage_type": "Memory"}}, **cfg), f)
    port = free_port()
    return Daemon(name, [os.path.join(BIN, "rvps"), "-c", os.path.join(d, "rvps.json"), "-a",
                         "%s:%d" % (listen, port)] + list(args), port)


def last_run(d):
    """The log of the daemon's latest start (the log file is appended to across runs)."""
    return d.log_text().rsplit("\n=== start", 1)[-1]


def ear_status(token):
    claims = json.loads(b64u_dec(token.split(".")[1]))
    return claims["submods"]["cpu0"]["ear.status"]


def test_bearer_on_the_as(t, pki):
    d = tmpdir("wa-tok-")
    tok = write_file(d, "as-admin-token", TOKEN + "\n")
    asd = start_as(pki, "grpc-as-bearer", {"admin": {"bearer_token_file": tok}}).start()
    target = "127.0.0.1:%d" % asd.port
    code, msg = set_policy(target, AFFIRM_ALL)
    t.ok(code == grpc.StatusCode.UNAUTHENTICATED and "SetAttestationPolicy" in msg and
         "bearer credential" in msg,
         "SetAttestationPolicy without a credential: UNAUTHENTICATED with a sentence",
         (code, msg))
    code, msg = set_policy(target, AFFIRM_ALL, token="not-the-token")
    t.ok(code == grpc.StatusCode.PERMISSION_DENIED and "not allowed" in msg,
         "SetAttestationPolicy with a wrong bearer token: PERMISSION_DENIED with a sentence",
         (code, msg))
    code, msg = set_policy(target, AFFIRM_ALL, token=TOKEN[:-1])
    t.ok(code == grpc.StatusCode.PERMISSION_DENIED,
         "a token one character short is refused too", (code, msg))
    code, msg = register(target, {"svn": ["1"]})
    t.ok(code == grpc.StatusCode.UNAUTHENTICATED and "RegisterReferenceValue" in msg,
         "RegisterReferenceValue on the AS's built-in RVPS without a credential is refused",
         (code, msg))

    # the kbs with the credential: attestation still open, the verdict is the default one
    cfg = kbs_config(pki, as_addr="http://127.0.0.1:%d" % asd.port)
    cfg["attestation_service"]["as_bearer_token_file"] = tok
    kbs = Kbs(cfg, name="kbs-bearer").start()
    a = Attester(kbs)
    st, _, data = a.auth()
    st, _, data = a.attest() if st == 200 else (st, None, data)
    t.ok(st == 200 and ear_status(a.token) == "contraindicated",
         "after the refused policy a sample TEE gets its normal verdict (contraindicated), "
         "not affirming", data[:300] if st != 200 else ear_status(a.token))

    # the kbs admin path: kbs -> AS with the bearer credential
    st, _, data = kbs.admin("POST", "/kbs/v0/attestation-policy",
                            {"policy_id": "default_cpu", "type": "rego",
                             "policy": base64.urlsafe_b64encode(AFFIRM_ALL.encode()).decode()
                             .rstrip("=")}, pki)
    a2 = Attester(kbs)
    ok2 = a2.auth()[0] == 200 and a2.attest()[0] == 200
    t.ok(st == 200 and ok2 and ear_status(a2.token) == "affirming",
         "the kbs's admin attestation-policy reaches the AS through as_bearer_token_file and "
         "takes effect", (st, data[:300], ok2 and ear_status(a2.token)))
    st, _, data = kbs.admin("POST", "/kbs/v0/reference-value",
                            json.dumps({"version": "0.1.0", "type": "sample",
                                        "payload": base64.b64encode(
                                            json.dumps({"svn": ["7"]}).encode()).decode()}),
                            pki)
    t.ok(st == 200 and query(target, "svn") == ["7"],
         "the kbs's admin reference-value reaches the AS's RVPS with the credential and reads "
         "stay open", (st, data[:300]))
    kbs.stop()

    code, msg = set_policy(target, AFFIRM_ALL, token=TOKEN)
    t.ok(code is None, "SetAttestationPolicy with the bearer token is accepted", (code, msg))

    # a kbs without the credential file: attestation works, its policy writes are refused
    cfg = kbs_config(pki, as_addr="http://127.0.0.1:%d" % asd.port)
    kbs = Kbs(cfg, name="kbs-nocred").start()
    st, _, data = kbs.admin("POST", "/kbs/v0/attestation-policy",
                            {"policy_id": "default_cpu", "type": "rego",
                             "policy": base64.urlsafe_b64encode(b"package policy").decode()
                             .rstrip("=")}, pki)
    a3 = Attester(kbs)
    ok3 = a3.auth()[0] == 200 and a3.attest()[0] == 200
    t.ok(st == 401 and b"Set Attestation Policy failed" in data and ok3 and
         "refused SetAttestationPolicy from a client with no credential" in last_run(asd),
         "a kbs without as_bearer_token_file still attests but cannot set policies",
         (st, data[:300], ok3))
    kbs.stop()

    # the cap on names per message: 100k names refused whole, with a sentence
    names = {"n%06d" % i: ["v"] for i in range(100000)}
    code, msg = register(target, names, token=TOKEN, timeout=60)
    t.ok(code is not None and "100000 reference values" in msg and
         "max_reference_values_per_message" in msg and query(target, "n000001") is None,
         "RegisterReferenceValue with 100,000 names is refused whole with a sentence",
         (code, msg[:300]))
    t.ok(asd.alive(), "grpc-as keeps serving after the refusals")
    log = last_run(asd)
    t.ok(TOKEN not in log, "the bearer token is not in the AS log")
    t.ok("beyond loopback" not in log, "no open-writes warning on loopback")
    asd.stop()


def spki_sha256(tp, name):
    cert = x509.load_pem_x509_certificate(open(tp.path(name + ".pem"), "rb").read())
    der = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def test_identities_on_rvps(t, tp, pki):
    tp.issue("writer", ("writer.example",), server=False)
    tp.issue("by-key", (), server=False)
    tp.issue("by-subject", (), server=False)
    tp.issue("as-link", ("grpc-as.example",), server=False)
    ids = ["dns:writer.example", "sha256:" + spki_sha256(tp, "by-key"),
           "subject:CN=by-subject", "dns:grpc-as.example"]
    rv = start_rvps("rvps-ids", {"admin": {"allowed_identities": ids},
                                 "max_reference_values_per_message": 10},
                    tp.tls_args()).start()
    target = "localhost:%d" % rv.port
    code, msg = register(target, {"a": ["1"]}, creds=tp.creds("client"))
    t.ok(code == grpc.StatusCode.PERMISSION_DENIED and "allowed_identities" in msg,
         "rvps: a client certificate from the CA but not listed cannot register", (code, msg))
    code, msg = register(target, {"a": ["1"]}, creds=tp.creds("client"), token=TOKEN)
    t.ok(code == grpc.StatusCode.PERMISSION_DENIED,
         "rvps: a bearer token is refused when none is configured", (code, msg))
    t.ok(query(target, "a", creds=tp.creds("client")) is None,
         "rvps: the unlisted client may still query")
    for who, how in (("writer", "dns SAN"), ("by-key", "public key SHA-256"),
                     ("by-subject", "subject")):
        code, msg = register(target, {"by-" + who: ["ok"]}, creds=tp.creds(who))
        t.ok(code is None and query(target, "by-" + who, creds=tp.creds(who)) == ["ok"],
             "rvps: a certificate listed by its %s registers" % how, (code, msg))
    code, msg = register(target, {"k%d" % i: ["v"] for i in range(11)}, creds=tp.creds("writer"))
    t.ok(code is not None and "limit of 10" in msg,
         "rvps: max_reference_values_per_message = 10 refuses 11 names", (code, msg))
    code, msg = register(target, {"k%d" % i: ["v"] for i in range(10)}, creds=tp.creds("writer"))
    t.ok(code is None, "rvps: and accepts 10", (code, msg))

    # grpc-as proxying to this rvps with a listed certificate and its own bearer check
    d = tmpdir("wa-tok2-")
    tok = write_file(d, "token", TOKEN)
    asd = start_as(pki, "grpc-as-proxy", {
        "admin": {"bearer_token_file": tok},
        "rvps_config": {"type": "GrpcRemote", "address": "https://127.0.0.1:%d" % rv.port,
                        "ca_cert": tp.path("ca.pem"), "client_cert": tp.path("as-link.pem"),
                        "client_key": tp.path("as-link.key")}}).start()
    at = "127.0.0.1:%d" % asd.port
    code, msg = register(at, {"via-as": ["x"]})
    t.ok(code == grpc.StatusCode.UNAUTHENTICATED and query(target, "via-as",
                                                           creds=tp.creds("client")) is None,
         "grpc-as does not lend its RVPS credential to an unauthenticated register", (code, msg))
    code, msg = register(at, {"via-as": ["x"]}, token=TOKEN)
    t.ok(code is None and query(at, "via-as") == ["x"],
         "an authorized register through grpc-as reaches the rvps under the AS's identity",
         (code, msg))
    asd.stop()
    rv.stop()


def test_bearer_to_remote_rvps(t, pki):
    d = tmpdir("wa-tok3-")
    tok = write_file(d, "token", TOKEN + "\n")
    rv = start_rvps("rvps-bearer", {"admin": {"bearer_token_file": tok}}).start()
    asd = start_as(pki, "grpc-as-bearer-link", {
        "admin": {"bearer_token_file": tok},
        "rvps_config": {"type": "GrpcRemote", "address": "127.0.0.1:%d" % rv.port,
                        "bearer_token_file": tok}}).start()
    code, msg = register("127.0.0.1:%d" % rv.port, {"direct": ["1"]})
    t.ok(code == grpc.StatusCode.UNAUTHENTICATED, "rvps with a bearer credential: none refused",
         (code, msg))
    code, msg = register("127.0.0.1:%d" % asd.port, {"linked": ["2"]}, token=TOKEN)
    t.ok(code is None and query("127.0.0.1:%d" % rv.port, "linked") == ["2"],
         "grpc-as sends rvps_config.bearer_token_file to a plaintext remote rvps", (code, msg))
    asd.stop()
    rv.stop()


def test_start_checks(t, tp, pki):
    rv = start_rvps("rvps-open-any", {}, listen="0.0.0.0").start()
    rv.stop()
    log = last_run(rv)
    t.ok(log.count("beyond loopback with unauthenticated writes") == 1,
         "rvps on 0.0.0.0 with open writes logs one warning at start", log[-600:])
    rv = start_rvps("rvps-open-lo", {}).start()
    code, _ = register("127.0.0.1:%d" % rv.port, {"open": ["1"]})
    rv.stop()
    t.ok(code is None and "beyond loopback" not in last_run(rv),
         "rvps on loopback without admin config: writes open as in Trustee, no warning")
    asd = start_as(pki, "grpc-as-mtls-any", {}, tp.tls_args(), listen="0.0.0.0").start()
    asd.stop()
    t.ok("beyond loopback" not in last_run(asd),
         "grpc-as beyond loopback requiring client certificates: no warning")
    bad = start_as(pki, "grpc-as-badid", {"admin": {"allowed_identities": ["kbs"]}})
    p = subprocess.run(bad.args, capture_output=True, text=True, timeout=20)
    t.ok(p.returncode != 0 and "allowed_identities[0]" in p.stderr,
         "grpc-as refuses to start with an identity of no known form", p.stderr[-300:])
    d = tmpdir("wa-tok4-")
    empty = write_file(d, "empty", "\n")
    bad = start_rvps("rvps-empty-token", {"admin": {"bearer_token_file": empty}})
    p = subprocess.run(bad.args, capture_output=True, text=True, timeout=20)
    t.ok(p.returncode != 0 and "no token" in p.stderr,
         "rvps refuses to start with an empty token file", p.stderr[-300:])


def main():
    require_kbs()
    t = Tap()
    if not (os.access(os.path.join(BIN, "grpc-as"), os.X_OK) and
            os.access(os.path.join(BIN, "rvps"), os.X_OK)):
        t.skip("write auth", "grpc-as or rvps not built")
        t.done()
    tp = TlsPki()
    pki = Pki()
    t.run(test_bearer_on_the_as, pki)
    t.run(test_identities_on_rvps, tp, pki)
    t.run(test_bearer_to_remote_rvps, pki)
    t.run(test_start_checks, tp, pki)
    t.done()


if __name__ == "__main__":
    main()
