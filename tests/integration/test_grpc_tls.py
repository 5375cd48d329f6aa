#!/usr/bin/python3
"""TLS and mutual TLS on the gRPC links (kbs -> grpc-as -> rvps), and the plain HTTP/1.1 pages
grpc-as and rvps serve on their gRPC port (as-rvps.md §1.2, §4.6).

Certificates come from python3-cryptography: a root CA, server certificates (good, expired,
for another host name), client certificates (good, from another CA, expired). The independent
gRPC client is python3-grpcio with ssl_channel_credentials; the pages are fetched with urllib
and curl; tokens are verified against the fetched JWK set with python3-jwcrypto.

- rvps and grpc-as with -t/-k and --https-client-ca: a good client certificate is served; no
  client certificate, one from another CA and an expired one are refused; a plaintext client
  is refused; one TLS flag alone is a startup error with a sentence;
- a full KBS attestation (sample TEE) with kbs -> AS and AS -> RVPS both over mutual TLS, and
  reference values registered through the KBS admin API reaching the RVPS over those links;
- the KBS's /attest says which TLS check failed (wrong CA, expired server certificate, host
  name mismatch, missing client certificate) in a retryable refusal, and logs the link;
- over TLS and mutual TLS, by IP and by host name, the KBS's /attest calls the AS from its event
  loops (common/grpcx_async.c) and answers as the worker pool does;
- JWKS from the gRPC port over plaintext and TLS (urllib and curl), an AS-issued EAR token
  verified against it with jwcrypto; /healthz, /metrics (AS and RVPS counters), 404, 405;
- a connection that sends nothing does not delay gRPC calls; garbage bytes get a 400 or a
  close, and the daemon keeps serving both gRPC and HTTP.
"""
import datetime
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.request

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jwcrypto import jwk as jjwk
from jwcrypto import jws as jjws

import attestation_pb2
import health_pb2
import reference_pb2
from harness import BIN, Daemon, Redis, Tap, free_port, start_or_exit, tmpdir
from kbs_testlib import (ALLOW_ALL, Attester, Kbs, Pki, b64u, b64u_dec, kbs_config,
                         require_kbs, scrape)

HEALTH = "/grpc.health.v1.Health/Check"
QUERY = "/reference.ReferenceValueProviderService/QueryReferenceValue"
REGISTER = "/reference.ReferenceValueProviderService/RegisterReferenceValue"
EVALUATE = "/attestation.AttestationService/AttestationEvaluate"


# ------------------------------------------------------------------ certificates

def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class TlsPki:
    """Files in a fresh directory; keys are written owner-only (the daemons refuse others)."""

    def __init__(self):
        self.dir = tmpdir("grpc-tls-")
        self.ca_key, self.ca = self._ca("gRPC Test Root")
        self.other_key, self.other = self._ca("Another Root")
        self.write("ca.pem", self.pem(self.ca))
        self.write("other-ca.pem", self.pem(self.other))
        self.issue("server", ("127.0.0.1", "localhost"), server=True)
        self.issue("server-expired", ("127.0.0.1", "localhost"), server=True, expired=True)
        self.issue("server-otherhost", ("other.example",), server=True)
        self.issue("client", (), server=False)
        self.issue("client-expired", (), server=False, expired=True)
        self.issue("client-othe", (), server=False, ca=(self.other_key, self.other))

    def path(self, f):
        return os.path.join(self.dir, f)

    def write(self, name, data, mode=0o644):
        fd = os.open(self.path(name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)

    @staticmethod
    def pem(cert):
        return cert.public_bytes(serialization.Encoding.PEM)

    def _ca(self, cn):
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                             crl_sign=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        return key, cert

    def issue(self, name, hosts, server, expired=False, ca=None):
        ca_key, ca_cert = ca or (self.ca_key, self.ca)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        start, end = ((now - datetime.timedelta(days=10), now - datetime.timedelta(days=1))
                      if expired else (now - datetime.timedelta(minutes=5),
                                       now + datetime.timedelta(days=30)))
        b = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca_cert.subject)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(start).not_valid_after(end)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                   else ExtendedKeyUsageOID.CLIENT_AUTH]),
                            critical=False))
        if hosts:
            sans = []
            for h in hosts:
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(h)))
                except ValueError:
                    sans.append(x509.DNSName(h))
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = b.sign(ca_key, hashes.SHA256())
        self.write(name + ".pem", self.pem(cert))
        self.write(name + ".key", key.private_bytes(serialization.Encoding.PEM,
                                                    serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()), 0o600)

    def creds(self, client=None):
        """grpcio channel credentials trusting our root, with client `client` (a name)."""
        root = open(self.path("ca.pem"), "rb").read()
        if client is None:
            return grpc.ssl_channel_credentials(root)
        return grpc.ssl_channel_credentials(root, open(self.path(client + ".key"), "rb").read(),
                                            open(self.path(client + ".pem"), "rb").read())

    def tls_args(self, server="server", mtls=True):
        a = ["-t", self.path(server + ".pem"), "-k", self.path(server + ".key")]
        return a + ["--https-client-ca", self.path("ca.pem")] if mtls else a


# ------------------------------------------------------------------ daemons and clients
# Our daemons and tools are given 127.0.0.1 (the certificates carry it as an IP SAN); grpcio and
# urllib use "localhost".

def start_rvps(tp, name, tls=True, mtls=True, storage=None):
    d = tmpdir("rvps-conf-")
    with open(os.path.join(d, "rvps.json"), "w") as f:
        json.dump({"storage": storage or {"storage_type": "Memory"}}, f)
    port = free_port()
    args = [os.path.join(BIN, "rvps"), "-c", os.path.join(d, "rvps.json"),
            "-a", "127.0.0.1:%d" % port]
    if tls:
        args += tp.tls_args(mtls=mtls)
    return Daemon(name, args, port).start()


def start_as(tp, pki, name, server="server", tls=True, mtls=True, rvps=None, rvps_tls=True,
             rvps_client_cert=True):
    d = tmpdir("as-conf-")
    cfg = {"attestation_token_broker": {"signer": {
        "key_path": pki.path("token.key"), "cert_path": pki.path("token-cert-chain.pem")}}}
    if rvps is not None:
        rc = {"type": "GrpcRemote"}
        if rvps_tls:
            rc.update({"address": "https://127.0.0.1:%d" % rvps.port,
                       "ca_cert": tp.path("ca.pem")})
            if rvps_client_cert:
                rc.update({"client_cert": tp.path("client.pem"),
                           "client_key": tp.path("client.key")})
        else:
            rc["address"] = "http://127.0.0.1:%d" % rvps.port
        cfg["rvps_config"] = rc
    with open(os.path.join(d, "as.json"), "w") as f:
        json.dump(cfg, f)
    port = free_port()
    args = [os.path.join(BIN, "grpc-as"), "--socket", "127.0.0.1:%d" % port,
            "--config-file", os.path.join(d, "as.json")]
    if tls:
        args += tp.tls_args(server, mtls)
    return Daemon(name, args, port).start()


def call(target, method, req, resp_cls, creds=None, timeout=5):
    ch = grpc.secure_channel(target, creds) if creds else grpc.insecure_channel(target)
    try:
        m = ch.unary_unary(method, request_serializer=lambda x: x.SerializeToString(),
                           response_deserializer=resp_cls.FromString)
        return m(req, timeout=timeout)
    finally:
        ch.close()


def health(target, creds=None, timeout=5):
    r = call(target, HEALTH, health_pb2.HealthCheckRequest(service=""),
             health_pb2.HealthCheckResponse, creds, timeout)
    return r.status == health_pb2.HealthCheckResponse.SERVING


def refused(target, creds):
    """The grpc status code of a health call that should fail, or None if it succeeded."""
    try:
        health(target, creds, timeout=3)
        return None
    except grpc.RpcError as e:
        return e.code()


def register_message(name, values):
    payload = json.dumps({name: values}).encode()
    import base64
    return json.dumps({"version": "0.1.0", "type": "sample",
                       "payload": base64.b64encode(payload).decode()})


def http_get(url, ctx=None, method="GET"):
    """(status, headers, body) with urllib; errors as statuses."""
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def tls_ctx(tp, client=None):
    ctx = ssl.create_default_context(cafile=tp.path("ca.pem"))
    if client:
        ctx.load_cert_chain(tp.path(client + ".pem"), tp.path(client + ".key"))
    return ctx


def verify_with_jwks(token, jwks_bytes):
    """jwcrypto verifies the token's signature with the one key of the fetched set."""
    keys = jjwk.JWKSet.from_json(jwks_bytes.decode())
    key = list(keys["keys"])[0]
    s = jjws.JWS()
    s.deserialize(token)
    s.verify(key, alg="ES256")
    return json.loads(s.payload)


def passport(t, pki, attester, jwks_url, label, env=None):
    """A resource-only KBS that trusts nothing but the AS's JWKS on its gRPC port releases a
    secret to the attester's EAR token (passport mode), and refuses a forged token."""
    cfg = kbs_config(pki)
    cfg["attestation_token"] = {"trusted_jwk_sets": [jwks_url]}
    kbs = Kbs(cfg, name="kbs-passport-" + label.split()[0], env=env).start()
    kbs.set_policy(pki, ALLOW_ALL)
    kbs.set_resource(pki, "default/passport/key", b"via jwks")
    home, attester.kbs = attester.kbs, kbs  # the token travels to the other KBS
    st, _, body = attester.get("default/passport/key", cookie=False, bearer=attester.token)
    t.ok(st == 200 and attester.decrypt(body) == b"via jwks",
         "passport KBS trusting only the AS's JWKS (%s) releases the secret to its token" % label,
         "%s %s\n%s" % (st, body[:300], kbs.log_tail(5)))
    # the same claims signed by a key the JWKS does not hold: refused
    from kbs_testlib import ec_jwk, make_jwt
    h, c, _ = attester.token.split(".")
    hdr, claims = json.loads(b64u_dec(h)), json.loads(b64u_dec(c))
    other = ec.generate_private_key(ec.SECP256R1())
    hdr["jwk"] = ec_jwk(other.public_key())
    hdr.pop("x5c", None)
    forged = make_jwt(hdr, claims, other)
    st, _, body = attester.get("default/passport/key", cookie=False, bearer=forged)
    t.ok(st == 401 and b"not a key of trusted_jwk_sets" in body,
         "passport KBS (%s) refuses a token whose header key is not in the JWKS"
         % label, "%s %s" % (st, body[:300]))
    attester.kbs = home
    kbs.stop()


# ------------------------------------------------------------------ tests

def test_flags_go_together(t, tp):
    for name, extra in (("cert without key", ["-t", tp.path("server.pem")]),
                        ("key without cert", ["-k", tp.path("server.key")]),
                        ("client CA without TLS", ["--https-client-ca", tp.path("ca.pem")])):
        for daemon, addr_flag in (("grpc-as", "--socket"), ("rvps", "--address")):
            p = subprocess.run([os.path.join(BIN, daemon), addr_flag,
                                "127.0.0.1:%d" % free_port()] + extra,
                               capture_output=True, text=True, timeout=10)
            out = p.stdout + p.stderr
            t.ok(p.returncode != 0 and ("go together" in out or "needs TLS" in out),
                 "%s refuses to start with %s, saying why" % (daemon, name),
                 "rc=%s out=%s" % (p.returncode, out[-400:]))
    # a TLS key other users can write is refused like the token signing key
    os.chmod(tp.path("server.key"), 0o646)
    try:
        p = subprocess.run([os.path.join(BIN, "rvps"), "--address",
                            "127.0.0.1:%d" % free_port()] + tp.tls_args(mtls=False),
                           capture_output=True, text=True, timeout=10)
        t.ok(p.returncode != 0 and "TLS private key" in p.stdout + p.stderr,
             "rvps refuses a TLS key file other users can write", p.stdout + p.stderr)
        # one they can only read (a Kubernetes Secret's 0644) starts, with a warning
        os.chmod(tp.path("server.key"), 0o644)
        port = free_port()
        rc, out = start_or_exit([os.path.join(BIN, "rvps"), "--address",
                                 "127.0.0.1:%d" % port] + tp.tls_args(mtls=False), port)
        t.ok(rc is None and "readable by every user" in out,
             "rvps starts with a TLS key file other users can read, and warns", out[-400:])
    finally:
        os.chmod(tp.path("server.key"), 0o600)


def test_rvps_mtls(t, tp):
    rv = start_rvps(tp, "rvps-mtls")
    target = "localhost:%d" % rv.port
    good = tp.creds("client")
    call(target, REGISTER, reference_pb2.ReferenceValueRegisterRequest(
        message=register_message("tls-rv", ["abc"])),
        reference_pb2.ReferenceValueRegisterResponse, good)
    r = call(target, QUERY, reference_pb2.ReferenceValueQueryRequest(reference_value_id="tls-rv"),
             reference_pb2.ReferenceValueQueryResponse, good)
    t.eq(json.loads(r.reference_value_results), ["abc"],
         "rvps over mutual TLS: a good client certificate registers and queries")
    for who in (None, "client-othe", "client-expired"):
        code = refused(target, tp.creds(who))
        t.ok(code == grpc.StatusCode.UNAVAILABLE,
             "rvps over mutual TLS refuses %s" % {None: "a client without a certificate",
                                                  "client-othe": "a certificate from another CA",
                                                  "client-expired": "an expired certificate"}[who],
             "code %s" % code)
    t.ok(refused("127.0.0.1:%d" % rv.port, None) is not None,
         "rvps over TLS refuses a plaintext gRPC client")
    t.ok(rv.alive() and health(target, good), "rvps keeps serving after the refusals")
    tool = [os.path.join(BIN, "rvps-tool"), "query", "--reference-value-id", "tls-rv",
            "--addr", "https://127.0.0.1:%d" % rv.port, "--ca-cert", tp.path("ca.pem")]
    p = subprocess.run(tool + ["--client-cert", tp.path("client.pem"), "--client-key",
                               tp.path("client.key")], capture_output=True, text=True, timeout=20)
    t.ok(p.returncode == 0 and json.loads(p.stdout) == ["abc"],
         "rvps-tool queries over mutual TLS with --ca-cert/--client-cert/--client-key",
         p.stdout + p.stderr)
    p = subprocess.run(tool, capture_output=True, text=True, timeout=20)
    t.ok(p.returncode != 0 and "certificate required" in p.stderr,
         "rvps-tool without a client certificate is told the server requires one", p.stderr)
    # RVPS pages on the same port, without a client certificate (HTTP/1.1 is public)
    st, _, body = http_get("https://localhost:%d/metrics" % rv.port, tls_ctx(tp))
    t.ok(st == 200 and b'rvps_registrations_total{result="ok"} 1' in body and
         b'rvps_queries_total{result="found"} 2' in body,
         "rvps /metrics over TLS counts the registration and the queries (grpcio, rvps-tool)",
         body[:400])
    rv.stop()


def test_kbs_as_rvps_mtls(t, tp, pki):
    """The whole chain over mutual TLS: attester -> kbs -> grpc-as -> rvps."""
    redis = Redis().start()
    rv = start_rvps(tp, "rvps-chain", storage={"storage_type": "Redis",
                                               "backends": {"redis": {"url": redis.url}}})
    asd = start_as(tp, pki, "grpc-as-chain", rvps=rv)
    cfg = kbs_config(pki, as_addr="https://127.0.0.1:%d" % asd.port)
    cfg["attestation_service"].update({"as_ca_cert": tp.path("ca.pem"),
                                       "as_client_cert": tp.path("client.pem"),
                                       "as_client_key": tp.path("client.key")})
    kbs = Kbs(cfg, name="kbs-chain").start()
    a = Attester(kbs)
    st, _, _ = a.auth()
    st, _, data = a.attest() if st == 200 else (st, None, b"")
    t.ok(st == 200 and a.token, "sample attestation through kbs -> AS -> RVPS over mutual TLS",
         data[:400])
    kbs.set_policy(pki, ALLOW_ALL)
    kbs.set_resource(pki, "default/tls/key", b"over mtls")
    st, _, body = a.get("default/tls/key")
    t.ok(st == 200 and a.decrypt(body) == b"over mtls",
         "the attested session gets its resource", body[:200])
    # reference values: KBS admin API -> AS (proxy) -> RVPS, all over mutual TLS
    st, _, body = kbs.admin("POST", "/kbs/v0/reference-value", register_message("chain-rv", ["x"]),
                            pki)
    got = call("localhost:%d" % rv.port, QUERY,
               reference_pb2.ReferenceValueQueryRequest(reference_value_id="chain-rv"),
               reference_pb2.ReferenceValueQueryResponse, tp.creds("client"))
    t.ok(st == 200 and json.loads(got.reference_value_results or "null") == ["x"],
         "a reference value registered at the KBS reaches the RVPS over both TLS links",
         "status %s %s; rvps has %r" % (st, body[:200], got.reference_value_results))
    # the AS's JWKS on its gRPC port over TLS, no client certificate needed
    st, hdr, jwks = http_get("https://localhost:%d/.well-known/jwks.json" % asd.port, tls_ctx(tp))
    t.ok(st == 200 and hdr.get("Content-Type") == "application/json",
         "JWKS over TLS on the gRPC port (urllib, HTTP/1.1)", (st, hdr))
    try:
        claims = verify_with_jwks(a.token, jwks)
        t.ok("ear.status" in claims.get("submods", {}).get("cpu0", {}),
             "the EAR token the KBS returned verifies against the AS's JWKS (jwcrypto)", claims)
    except Exception as e:  # noqa: BLE001 - reported as a failure
        t.ok(False, "the EAR token the KBS returned verifies against the AS's JWKS (jwcrypto)", e)
    p = subprocess.run(["curl", "-sS", "--cacert", tp.path("ca.pem"),
                        "https://localhost:%d/.well-known/jwks.json" % asd.port],
                       capture_output=True, timeout=10)
    t.ok(p.returncode == 0 and p.stdout == jwks,
         "curl (offering h2 and http/1.1) gets the same JWKS over TLS", p.stderr[-300:])
    passport(t, pki, a, "https://127.0.0.1:%d/.well-known/jwks.json" % asd.port, "https JWKS",
             env={"SSL_CERT_FILE": tp.path("ca.pem")})
    st, _, m = http_get("https://localhost:%d/metrics" % asd.port, tls_ctx(tp, "client"))
    evals = sum(int(l.rsplit(b" ", 1)[1]) for l in m.splitlines()
                if l.startswith(b"as_policy_evaluations_total{"))
    t.ok(st == 200 and b'as_attestation_successes_total{tee_type="sample"} 1' in m and
         b'as_attestation_requests_total{tee_type="sample"} 1' in m and evals == 1 and
         b"as_evaluation_duration_seconds_count 1" in m,
         "AS /metrics counts the attestation, its policy appraisal and its duration", m[:600])
    # refusals by the AS itself, while it keeps serving the KBS
    target = "localhost:%d" % asd.port
    for who in (None, "client-othe", "client-expired"):
        t.ok(refused(target, tp.creds(who)) == grpc.StatusCode.UNAVAILABLE,
             "grpc-as over mutual TLS refuses %s" % (who or "a client without a certificate"))
    a2 = Attester(kbs)
    t.ok(a2.auth()[0] == 200 and a2.attest()[0] == 200, "the KBS still attests after them")
    kbs.stop()
    asd.stop()
    rv.stop()
    redis.stop()


def loop_answers(kbs):
    return scrape(kbs).get(("kbs_event_loop_answers_total", ()), 0)


def attest_script(kbs):
    """Good evidence, a nonce that is not the challenge, evidence the AS refuses: what a client
    sees of each (session ids and tokens differ by run, so neither is shown)."""
    out = []
    for case in ("good", "nonce", "refused"):
        a = Attester(kbs)
        a.auth()
        if case == "nonce":
            st, _, data = a.attest(nonce="AAAA" + a.nonce[4:])
        else:
            st, _, data = a.attest(bind=case == "good")
        p = json.loads(data)
        out.append((case, st, sorted(p) if st == 200 else (p.get("type"), p.get("detail"))))
    return out


def test_kbs_tls_on_the_loop(t, tp, pki):
    """kbs -> AS over mutual TLS (by IP and by name) and one-way TLS: /attest is served by the
    event loops, with the same answers as a kbs whose sessions in Redis keep the pool."""
    redis = Redis().start()
    mtls = start_as(tp, pki, "grpc-as-loop-mtls")
    oneway = start_as(tp, pki, "grpc-as-loop-tls", mtls=False)
    files = {"as_ca_cert": tp.path("ca.pem"), "as_client_cert": tp.path("client.pem"),
             "as_client_key": tp.path("client.key")}
    kbss = {}
    for name, addr, keys, pool in (
            ("ip", "https://127.0.0.1:%d" % mtls.port, files, False),
            ("name", "https://localhost:%d" % mtls.port, files, False),
            ("pool", "https://127.0.0.1:%d" % mtls.port, files, True),
            ("one-way", "https://127.0.0.1:%d" % oneway.port, {"as_ca_cert": tp.path("ca.pem")},
             False)):
        cfg = kbs_config(pki, as_addr=addr)
        cfg["attestation_service"].update(keys)
        if pool:
            # the worker pool's AS client, the reference for the loop's answers; sessions in
            # Redis so that /auth too leaves the loop
            cfg["http_server"]["loop_round_trips"] = False
            url = "redis://127.0.0.1:%d" % redis.port
            cfg["storage_backend"] = {"storage_type": "Redis", "backends": {"redis": {"url": url}}}
            cfg["session_storage_type"] = "Redis"
        kbss[name] = Kbs(cfg, name="kbs-tls-loop-" + name).start()
    try:
        before = {n: loop_answers(k) for n, k in kbss.items()}
        got = {n: attest_script(k) for n, k in kbss.items()}
        t.ok([c[1] for c in got["pool"]] == [200, 401, 401],
             "over mutual TLS the pool attests and refuses", got["pool"])
        for n in ("ip", "name", "one-way"):
            t.eq(got[n], got["pool"], "TLS AS (%s): the same answers on the loop as on the pool" % n)
            t.eq(loop_answers(kbss[n]) - before[n], 6,
                 "TLS AS (%s): the loop answered every /auth and /attest" % n)
            t.ok("/attest calls the AS from the event loops" in kbss[n].log_text(),
                 "TLS AS (%s): the kbs says the loop calls the AS" % n, kbss[n].log_tail(5))
        t.eq(loop_answers(kbss["pool"]) - before["pool"], 0, "loop_round_trips = false: on the pool")
    finally:
        for k in kbss.values():
            k.stop()
        mtls.stop()
        oneway.stop()
        redis.stop()


def test_kbs_names_tls_failures(t, tp, pki):
    """Each broken TLS setup: /attest is refused with a retryable error naming the failure,
    and the KBS log has one line naming the AS link."""
    good = start_as(tp, pki, "grpc-as-good")
    expired = start_as(tp, pki, "grpc-as-expired", server="server-expired")
    otherhost = start_as(tp, pki, "grpc-as-otherhost", server="server-otherhost")
    cases = [
        ("a server certificate from an untrusted CA", good, "127.0.0.1",
         {"as_ca_cert": tp.path("other-ca.pem"), "as_client_cert": tp.path("client.pem"),
          "as_client_key": tp.path("client.key")}, "the server's certificate is refused"),
        ("an expired server certificate", expired, "127.0.0.1",
         {"as_ca_cert": tp.path("ca.pem"), "as_client_cert": tp.path("client.pem"),
          "as_client_key": tp.path("client.key")}, "certificate has expired"),
        ("a server certificate for another host", otherhost, "127.0.0.1",
         {"as_ca_cert": tp.path("ca.pem"), "as_client_cert": tp.path("client.pem"),
          "as_client_key": tp.path("client.key")}, "mismatch"),
        ("no client certificate under mutual TLS", good, "127.0.0.1",
         {"as_ca_cert": tp.path("ca.pem")}, "certificate required"),
    ]
    for i, (what, asd, host, keys, want) in enumerate(cases):
        cfg = kbs_config(pki, as_addr="https://%s:%d" % (host, asd.port))
        cfg["attestation_service"].update(keys)
        kbs = Kbs(cfg, name="kbs-refused-%d" % i).start()
        a = Attester(kbs)
        a.auth()
        st, _, data = a.attest()
        try:
            detail = json.loads(data).get("detail", "")
        except ValueError:
            detail = data.decode(errors="replace")
        t.ok((st == 401 or 500 <= st < 600) and want in detail and "TLS" in detail,
             "KBS /attest with %s: retryable refusal naming it (%s)" % (what, want),
             "status %s detail %s" % (st, detail))
        log = kbs.log_text()
        t.ok("AS link https://%s:%d" % (host, asd.port) in log and want in log,
             "KBS logs the AS link and why (%s)" % what, kbs.log_tail(5))
        t.ok("/attest calls the AS from the event loops" in log,
             "and it was the event loop's TLS client that said so (%s)" % what)
        kbs.stop()
    # the AS's own link to the RVPS: no client certificate under mutual TLS
    rv = start_rvps(tp, "rvps-refusing")
    as_nocert = start_as(tp, pki, "grpc-as-rvps-nocert", tls=False, rvps=rv,
                         rvps_client_cert=False)
    kbs = Kbs(kbs_config(pki, as_addr="http://127.0.0.1:%d" % as_nocert.port),
              name="kbs-rvps-refused").start()
    a = Attester(kbs)
    a.auth()
    st, _, data = a.attest()
    try:
        detail = json.loads(data).get("detail", "")
    except ValueError:
        detail = data.decode(errors="replace")
    t.ok(st in (401, 503) and "certificate required" in detail and "TLS" in detail and
         str(rv.port) not in detail,
         "an AS whose RVPS link lacks a client certificate: /attest says so, without the "
         "RVPS address", "status %s detail %s" % (st, detail))
    log = as_nocert.log_text()
    t.ok("RVPS link https://127.0.0.1:%d" % rv.port in log and "certificate required" in log,
         "grpc-as logs the RVPS link and why", as_nocert.log_tail(4))
    for d in (kbs, as_nocert, rv):
        d.stop()
    # a plaintext as_addr with TLS files is a startup error, not a silently plaintext link
    cfg = kbs_config(pki, as_addr="http://127.0.0.1:%d" % good.port)
    cfg["attestation_service"]["as_ca_cert"] = tp.path("ca.pem")
    kbs = Kbs(cfg, name="kbs-plain-with-ca")
    try:
        kbs.start(timeout=3)
        started = True
    except RuntimeError:
        started = False
    t.ok(not started and "write https://" in kbs.log_text(),
         "KBS refuses as_ca_cert with an http:// as_addr, saying why", kbs.log_tail(3))
    kbs.stop()
    for d in (good, expired, otherhost):
        d.stop()


def test_plaintext_pages_and_robustness(t, tp, pki):
    rv = start_rvps(tp, "rvps-plain", tls=False)
    asd = start_as(tp, pki, "grpc-as-plain", tls=False, rvps=rv, rvps_tls=False)
    base = "http://127.0.0.1:%d" % asd.port
    target = "127.0.0.1:%d" % asd.port
    # a slow drip: one byte of a request head every 0.5 s; the front allows 10 s in all
    import threading
    drip = {"closed_after": None}

    def dripper():
        s = socket.create_connection(("127.0.0.1", asd.port))
        t0 = time.time()
        head = b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 200
        try:
            for b in head:
                s.sendall(bytes([b]))
                time.sleep(0.5)
                s.setblocking(False)
                try:
                    if s.recv(1) == b"":
                        break
                except BlockingIOError:
                    pass
                finally:
                    s.setblocking(True)
        except OSError:
            pass
        drip["closed_after"] = time.time() - t0
        s.close()
    drip_th = threading.Thread(target=dripper, daemon=True)
    drip_th.start()
    st, hdr, jwks = http_get(base + "/.well-known/jwks.json")
    keys = json.loads(jwks).get("keys", []) if st == 200 else []
    t.ok(st == 200 and len(keys) == 1 and keys[0].get("kty") == "EC" and
         keys[0].get("crv") == "P-256" and keys[0].get("alg") == "ES256" and
         len(b64u_dec(keys[0]["x"])) == 32 and len(b64u_dec(keys[0]["y"])) == 32 and
         "d" not in keys[0],
         "plaintext JWKS on the gRPC port: one public ES256 P-256 key", jwks[:300])
    p = subprocess.run(["curl", "-sS", base + "/.well-known/jwks.json"], capture_output=True,
                       timeout=10)
    t.ok(p.returncode == 0 and p.stdout == jwks, "curl gets the same JWKS", p.stderr)
    # an AS-issued token (direct AttestationEvaluate, sample evidence) verifies against it
    import hashlib
    rd = {"nonce": "n-1", "tee-pubkey": {"kty": "EC", "crv": "P-256", "alg": "ES256",
                                          "x": keys[0]["x"], "y": keys[0]["y"]}}
    canon = json.dumps(rd, sort_keys=True, separators=(",", ":")).encode()
    import base64
    ev = {"svn": "1", "report_data": base64.b64encode(hashlib.sha384(canon).digest()).decode()}
    req = attestation_pb2.AttestationRequest(policy_ids=["default"])
    ir = req.verification_requests.add()
    ir.tee = "sample"
    ir.evidence = b64u(json.dumps(ev))
    ir.structured_runtime_data = json.dumps(rd)
    ir.runtime_data_hash_algorithm = "sha384"
    tok = call(target, EVALUATE, req, attestation_pb2.AttestationResponse).attestation_token
    try:
        claims = verify_with_jwks(tok, jwks)
        t.ok(claims.get("iss") == "CoCo-Attestation-Service",
             "an AS-issued EAR token verifies against the plaintext JWKS (jwcrypto)", claims)
    except Exception as e:  # noqa: BLE001
        t.ok(False, "an AS-issued EAR token verifies against the plaintext JWKS (jwcrypto)", e)
    # passport: KBS-A attests through this AS, KBS-B trusts only the JWKS on its gRPC port
    kbs_a = Kbs(kbs_config(pki, as_addr=base), name="kbs-a-plain").start()
    att = Attester(kbs_a)
    att.rcar()
    passport(t, pki, att, base + "/.well-known/jwks.json", "http JWKS")
    kbs_a.stop()
    st, _, body = http_get(base + "/healthz")
    t.ok(st == 200 and body == b"ok\n", "/healthz answers 200 on the gRPC port")
    st, hdr, body = http_get(base + "/healthz", method="HEAD")
    t.ok(st == 200 and body == b"" and hdr.get("Content-Length") == "3",
         "HEAD /healthz: headers without the body", (st, hdr, body))
    t.eq(http_get(base + "/nothing-here")[0], 404, "an unknown path is 404")
    st, hdr, _ = http_get(base + "/.well-known/jwks.json", method="POST")
    t.ok(st == 405 and "GET" in hdr.get("Allow", ""), "POST is 405 with Allow", (st, hdr))

    # a silent connection must not delay anyone: gRPC and HTTP go on at once
    silent = [socket.create_connection(("127.0.0.1", asd.port)) for _ in range(5)]
    t0 = time.time()
    ok = health(target, timeout=5)
    st = http_get(base + "/healthz")[0]
    dt = time.time() - t0
    t.ok(ok and st == 200 and dt < 3.0,
         "5 silent connections delay neither gRPC nor HTTP (%.3f s)" % dt)
    # a partial HTTP/2 preface, then nothing: still no effect on others
    half = socket.create_connection(("127.0.0.1", asd.port))
    half.sendall(b"PRI * HTT")
    t0 = time.time()
    t.ok(health(target, timeout=5) and time.time() - t0 < 3.0,
         "a half-sent HTTP/2 preface does not hold up gRPC calls")

    # garbage: a 400 or a close, never a hang; the daemon keeps serving
    def send_garbage(payload):
        s = socket.create_connection(("127.0.0.1", asd.port), timeout=5)
        s.sendall(payload)
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            data = b"<timeout>"
        except ConnectionResetError:
            pass  # closed while we were still sending: a close
        s.close()
        return data
    outs = [send_garbage(os.urandom(64)), send_garbage(b"\x16\x03\x01\x00\x05hello"),
            send_garbage(b"GET /x\x00y HTTP/1.1\r\n\r\n"), send_garbage(b"A" * 9000),
            send_garbage(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + os.urandom(100))]
    t.ok(all(o == b"" or o.startswith(b"HTTP/1.1 400") or b"\x00\x00" in o[:9] for o in outs)
         and b"<timeout>" not in outs,
         "garbage gets a 400 or is closed (HTTP/2 garbage by the server's HTTP/2 session)",
         [o[:40] for o in outs])
    t.ok(asd.alive() and health(target) and http_get(base + "/healthz")[0] == 200,
         "grpc-as keeps serving gRPC and HTTP after the garbage")
    for s in silent + [half]:
        s.close()
    drip_th.join(20)
    t.ok(drip["closed_after"] is not None and 9 <= drip["closed_after"] <= 13,
         "a client dripping its request head is closed after the 10 s allowance (%s s)"
         % (drip["closed_after"] and round(drip["closed_after"], 1)))

    # under TLS too: silent TCP connections and a stalled handshake do not block a TLS client
    tls_as = start_as(tp, pki, "grpc-as-tls-silent", mtls=False)
    silent = [socket.create_connection(("127.0.0.1", tls_as.port)) for _ in range(5)]
    hello = socket.create_connection(("127.0.0.1", tls_as.port))
    hello.sendall(b"\x16\x03\x01")
    t0 = time.time()
    ok = health("localhost:%d" % tls_as.port, tp.creds(), timeout=5)
    t.ok(ok and time.time() - t0 < 3.0,
         "silent connections and a stalled handshake delay no TLS gRPC call")
    tls_garbage = socket.create_connection(("127.0.0.1", tls_as.port), timeout=5)
    tls_garbage.sendall(os.urandom(300))
    try:
        closed = tls_garbage.recv(4096) is not None
    except (socket.timeout, ConnectionResetError):
        closed = True
    t.ok(closed and tls_as.alive() and health("localhost:%d" % tls_as.port, tp.creds()),
         "non-TLS bytes on the TLS port are dropped and grpc-as keeps serving")
    for s in silent + [hello, tls_garbage]:
        s.close()
    tls_as.stop()
    rc = asd.stop()
    t.ok(rc == 0, "grpc-as stops cleanly on SIGTERM with the front (exit %s)" % rc)
    rv.stop()


def main():
    require_kbs()
    t = Tap()
    if not (os.access(os.path.join(BIN, "grpc-as"), os.X_OK) and
            os.access(os.path.join(BIN, "rvps"), os.X_OK)):
        t.skip("grpc tls", "grpc-as or rvps not built")
        t.done()
    tp = TlsPki()
    pki = Pki()
    t.run(test_flags_go_together, tp)
    t.run(test_rvps_mtls, tp)
    t.run(test_kbs_as_rvps_mtls, tp, pki)
    t.run(test_kbs_tls_on_the_loop, tp, pki)
    t.run(test_kbs_names_tls_failures, tp, pki)
    t.run(test_plaintext_pages_and_robustness, tp, pki)
    t.done()


if __name__ == "__main__":
    main()
