"""KBS test kit: a PKI (token-signing CA + ES256 chain, Ed25519 admin key) made with
python3-cryptography, JWTs signed by hand (so tests can also forge alg:none / HS256 ones), a
sample-TEE attester on python3-jwcrypto keys (P-256, P-521, RSA) that speaks RCAR over
http.client and decrypts the JWE independently, a kbs daemon wrapper, and the AS side: the
real grpc-as + rvps when they are built, else a small gRPC stand-in (grpcio) that verifies
sample evidence exactly as the AS does (JCS + SHA-384) and issues EAR tokens."""
import base64
import concurrent.futures
import datetime
import hashlib
import http.client
import json
import os
import time

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from jwcrypto import jwe as jjwe
from jwcrypto import jwk as jjwk

import attestation_pb2
import health_pb2
import reference_pb2
from harness import BIN, Daemon, Redis, free_port, tmpdir

ERR = "https://github.com/confidential-containers/kbs/errors/"


def b64u(b):
    if isinstance(b, str):
        b = b.encode()
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64u_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jcs(obj):
    """RFC 8785 for the values tests use (ASCII keys, strings, small integers)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def pem_priv(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def pem_pub(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def ec_jwk(pub, alg="ES256"):
    n = pub.public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": b64u(n.x.to_bytes(32, "big")),
            "y": b64u(n.y.to_bytes(32, "big")), "alg": alg}


def es256_sign(key, signing_input):
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def make_jwt(header, claims, key=None, alg=None, sig=None):
    """Compact JWS. key: EC P-256 (ES256), Ed25519 (EdDSA), bytes (HS256), None (no signature)."""
    si = (b64u(json.dumps(header, separators=(",", ":"))) + "." +
          b64u(json.dumps(claims, separators=(",", ":")))).encode()
    if sig is None:
        if key is None:
            sig = b""
        elif isinstance(key, bytes):
            import hmac
            sig = hmac.new(key, si, hashlib.sha256).digest()
        elif isinstance(key, ed25519.Ed25519PrivateKey):
            sig = key.sign(si)
        else:
            sig = es256_sign(key, si)
    return si.decode() + "." + b64u(sig)


def _cert(subject, issuer, pub, signer, ca, days=30):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
         .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
         .public_key(pub).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                          content_commitment=False, key_encipherment=False,
                                          data_encipherment=False, key_agreement=False,
                                          encipher_only=False, decipher_only=False), critical=True)
    return b.sign(signer, hashes.SHA256())


class Pki:
    """Files in `dir`: ca-cert.pem, token.key, token-cert-chain.pem (leaf, intermediate),
    admin.key / admin.pub (Ed25519)."""

    def __init__(self, d=None, name="Test"):
        self.dir = d or tmpdir("kbs-pki-")
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = _cert(name + " Root CA", name + " Root CA", self.ca_key.public_key(), self.ca_key, True)
        self.int_key = ec.generate_private_key(ec.SECP256R1())
        self.inter = _cert(name + " Intermediate", name + " Root CA", self.int_key.public_key(),
                           self.ca_key, True)
        self.token_key = ec.generate_private_key(ec.SECP256R1())
        self.leaf = _cert(name + " Token Signer", name + " Intermediate",
                          self.token_key.public_key(), self.int_key, False)
        self.admin_key = ed25519.Ed25519PrivateKey.generate()
        self.path = lambda f: os.path.join(self.dir, f)
        self._write("ca-cert.pem", self.ca.public_bytes(serialization.Encoding.PEM))
        self._write("token.key", pem_priv(self.token_key))
        self._write("token-cert-chain.pem", self.leaf.public_bytes(serialization.Encoding.PEM) +
                    self.inter.public_bytes(serialization.Encoding.PEM))
        self._write("admin.key", pem_priv(self.admin_key))
        self._write("admin.pub", pem_pub(self.admin_key))

    def _write(self, name, data):
        # private keys owner-only: the AS refuses a key file other users can read
        mode = 0o600 if name.endswith(".key") else 0o644
        fd = os.open(os.path.join(self.dir, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)

    def server_cert(self, name="server", key_type="RSA", hosts=("127.0.0.1", "localhost")):
        """A TLS server key and certificate issued by the intermediate for `hosts`; writes
        <name>.key and <name>-chain.pem (leaf + intermediate) and returns their paths."""
        import ipaddress
        key = (rsa.generate_private_key(public_exponent=65537, key_size=2048)
               if key_type == "RSA" else ec.generate_private_key(ec.SECP256R1()))
        now = datetime.datetime.now(datetime.timezone.utc)
        sans = []
        for h in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                sans.append(x509.DNSName(h))
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(self.inter.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .sign(self.int_key, hashes.SHA256()))
        self._write(name + ".key", pem_priv(key))
        self._write(name + "-chain.pem", cert.public_bytes(serialization.Encoding.PEM) +
                    self.inter.public_bytes(serialization.Encoding.PEM))
        return self.path(name + ".key"), self.path(name + "-chain.pem")

    def client_context(self, **kw):
        """An ssl.SSLContext that trusts only this PKI's root (kw: minimum_version, ...)."""
        import ssl
        ctx = ssl.create_default_context(cafile=self.path("ca-cert.pem"))
        for k, v in kw.items():
            setattr(ctx, k, v)
        return ctx

    def x5c(self, certs=None):
        certs = certs if certs is not None else [self.leaf, self.inter]
        return [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in certs]

    def admin_token(self, role="admin", iss="issuer", aud=("kbs",), exp_in=3600, key=None,
                    drop=()):
        now = int(time.time())
        claims = {"iss": iss, "role": role, "aud": list(aud), "iat": now, "exp": now + exp_in}
        for d in drop:
            claims.pop(d, None)
        return make_jwt({"alg": "EdDSA", "typ": "JWT"}, claims, key or self.admin_key)

    def ear_token(self, runtime_data, tee="sample", exp_in=300, key=None, x5c=None, jwk=None,
                  status="affirming", extra_header=None, evidence_claims=None):
        key = key or self.token_key
        j = dict(jwk or ec_jwk(key.public_key()))
        if x5c is None:
            x5c = self.x5c()
        if x5c is not False:
            j["x5c"] = x5c
        header = {"typ": "JWT", "alg": "ES256", "jwk": j}
        header.update(extra_header or {})
        now = int(time.time())
        ann = {tee: evidence_claims or {"svn": "1", "launch_digest": "abcde"},
               "runtime_data_claims": runtime_data}
        claims = {
            "eat_profile": "tag:github.com,2024:confidential-containers/Trustee", "iat": now,
            "ear.verifier-id": {"developer": "https://confidentialcontainers.org",
                                "build": "kbs-testlib"},
            "submods": {"cpu0": {
                "ear.status": status,
                "ear.trustworthiness-vector": {"hardware": 2 if status == "affirming" else 97},
                "ear.appraisal-policy-id": "default",
                "ear.veraison.annotated-evidence": ann}},
            "exp": now + exp_in, "iss": "CoCo-Attestation-Service"}
        return make_jwt(header, claims, key)


# ------------------------------------------------------------------ AS side

class FakeAs:
    """gRPC stand-in for grpc-as: AttestationEvaluate (sample / sampledevice evidence checked
    like the AS: b64(report_data) == H(JCS(runtime data))), SetAttestationPolicy, and the RVPS
    API. Tokens are EAR JWTs signed by the Pki's token key with its x5c chain."""

    def __init__(self, pki):
        self.pki = pki
        self.policies = {}
        self.rv = {}
        self.calls = 0
        self.port = free_port()
        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=64))
        h = grpc.method_handlers_generic_handler
        A, R = attestation_pb2, reference_pb2
        u = grpc.unary_unary_rpc_method_handler
        self.server.add_generic_rpc_handlers((
            h("attestation.AttestationService", {
                "AttestationEvaluate": u(self._evaluate, A.AttestationRequest.FromString,
                                         A.AttestationResponse.SerializeToString),
                "SetAttestationPolicy": u(self._set_policy, A.SetPolicyRequest.FromString,
                                          A.SetPolicyResponse.SerializeToString),
                "GetAttestationChallenge": u(self._challenge, A.ChallengeRequest.FromString,
                                             A.ChallengeResponse.SerializeToString)}),
            h("grpc.health.v1.Health", {
                "Check": u(self._health, health_pb2.HealthCheckRequest.FromString,
                           health_pb2.HealthCheckResponse.SerializeToString)}),
            h("reference.ReferenceValueProviderService", {
                "QueryReferenceValue": u(self._rv_query, R.ReferenceValueQueryRequest.FromString,
                                         R.ReferenceValueQueryResponse.SerializeToString),
                "RegisterReferenceValue": u(self._rv_register,
                                            R.ReferenceValueRegisterRequest.FromString,
                                            R.ReferenceValueRegisterResponse.SerializeToString)}),
        ))
        self.server.add_insecure_port("127.0.0.1:%d" % self.port)
        self.server.start()
        self.addr = "http://127.0.0.1:%d" % self.port

    def stop(self):
        self.server.stop(0)

    delay = 0.0  # seconds each AttestationEvaluate takes (tests of calls in progress)
    challenge = '{"se":"challenge"}'  # GetAttestationChallenge's answer ("" = an AS without one)
    token_exp_in = 300  # seconds from issue to the tokens' exp

    def _evaluate(self, req, ctx):
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        submods = {}
        counts = {}
        for r in req.verification_requests:
            ev = json.loads(b64u_dec(r.evidence))
            rd = json.loads(r.structured_runtime_data)
            alg = r.runtime_data_hash_algorithm or "sha384"
            want = hashlib.new(alg, jcs(rd)).digest()
            if r.tee not in ("sample", "sampledevice"):
                ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "stand-in AS knows only sample")
            if base64.b64decode(ev.get("report_data", "")) != want:
                ctx.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "Verifier evaluate failed: REPORT_DATA is different from that in "
                          "Sample Quote")
            cls = "cpu" if r.tee == "sample" else "gpu"
            idx = counts.get(cls, 0)
            counts[cls] = idx + 1
            submods["%s%d" % (cls, idx)] = {
                "ear.status": "contraindicated",
                "ear.trustworthiness-vector": {"configuration": 2, "executables": 33,
                                               "hardware": 97},
                "ear.appraisal-policy-id": "default",
                "ear.veraison.annotated-evidence": {
                    r.tee: {"svn": ev.get("svn"), "launch_digest": "abcde", "debug": False},
                    "report_data": ev.get("report_data"), "runtime_data_claims": rd}}
        now = int(time.time())
        claims = {"eat_profile": "tag:github.com,2024:confidential-containers/Trustee",
                  "iat": now, "ear.verifier-id": {"developer": "https://confidentialcontainers.org",
                                                  "build": "fake-as"},
                  "submods": submods, "exp": now + self.token_exp_in,
                  "iss": "CoCo-Attestation-Service"}
        j = ec_jwk(self.pki.token_key.public_key())
        j["x5c"] = self.pki.x5c()
        tok = make_jwt({"typ": "JWT", "alg": "ES256", "jwk": j}, claims, self.pki.token_key)
        return attestation_pb2.AttestationResponse(attestation_token=tok)

    def _health(self, req, ctx):
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    def _set_policy(self, req, ctx):
        try:
            self.policies[req.policy_id] = b64u_dec(req.policy).decode()
        except Exception:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "policy is not base64url")
        return attestation_pb2.SetPolicyResponse()

    def _challenge(self, req, ctx):
        return attestation_pb2.ChallengeResponse(attestation_challenge=self.challenge)

    def _rv_query(self, req, ctx):
        if req.reference_value_id in self.rv:
            return reference_pb2.ReferenceValueQueryResponse(
                reference_value_results=json.dumps(self.rv[req.reference_value_id]))
        return reference_pb2.ReferenceValueQueryResponse()

    def _rv_register(self, req, ctx):
        try:
            m = json.loads(req.message)
            vals = json.loads(base64.b64decode(m["payload"]))
            for k, v in vals.items():
                self.rv[k] = v
        except Exception as e:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad message: %s" % e)
        return reference_pb2.ReferenceValueRegisterResponse()


def real_as_available():
    return os.access(os.path.join(BIN, "grpc-as"), os.X_OK) and \
        os.access(os.path.join(BIN, "rvps"), os.X_OK)


class RealAs:
    """redis-server (or the given store) + rvps + grpc-as with the Pki's signer (tokens chain
    to its CA)."""

    def __init__(self, pki, redis=None, env=None, redis_url=None, storage=None):
        """storage: the storage_backend table for both (default: a Redis, started if none)."""
        if storage is None:
            self.redis = redis or Redis().start()
            storage = {"storage_type": "Redis",
                       "backends": {"redis": {"url": redis_url or self.redis.url}}}
        d = tmpdir("as-conf-")
        rport = free_port()
        with open(os.path.join(d, "rvps.json"), "w") as f:
            json.dump({"storage": storage}, f)
        self.rvps = Daemon("rvps", [os.path.join(BIN, "rvps"), "--config",
                                    os.path.join(d, "rvps.json"), "--address",
                                    "127.0.0.1:%d" % rport], rport, env=env).start()
        aport = free_port()
        with open(os.path.join(d, "as.json"), "w") as f:
            json.dump({"storage_backend": storage,
                       "rvps_config": {"type": "GrpcRemote", "address": "127.0.0.1:%d" % rport},
                       "attestation_token_broker": {"signer": {
                           "key_path": pki.path("token.key"),
                           "cert_path": pki.path("token-cert-chain.pem")}}}, f)
        self.grpc_as = Daemon("grpc-as", [os.path.join(BIN, "grpc-as"), "--socket",
                                          "127.0.0.1:%d" % aport, "--config-file",
                                          os.path.join(d, "as.json")], aport, env=env).start()
        self.addr = "http://127.0.0.1:%d" % aport

    def stop(self):
        self.grpc_as.stop()
        self.rvps.stop()


def start_as(pki, want_real=None):
    """The real AS when built (or when want_real is True), else the stand-in."""
    if want_real is None:
        want_real = real_as_available() and os.environ.get("KBS_TEST_FAKE_AS") != "1"
    return RealAs(pki) if want_real else FakeAs(pki)


# ------------------------------------------------------------------ KBS

def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(v)


def to_toml(doc, prefix=""):
    """Enough TOML for kbs configs: scalars, arrays of scalars, tables, arrays of tables."""
    lines = []
    scal = [(k, v) for k, v in doc.items() if not isinstance(v, dict) and
            not (isinstance(v, list) and v and isinstance(v[0], dict))]
    for k, v in scal:
        lines.append("%s = %s" % (k, toml_value(v)))
    for k, v in doc.items():
        name = prefix + k
        if isinstance(v, dict):
            body = to_toml(v, name + ".")
            lines.append("\n[%s]" % name)
            lines.append(body)
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for item in v:
                lines.append("\n[[%s]]" % name)
                lines.append(to_toml(item, name + "."))
    return "\n".join(l for l in lines if l != "")


def kbs_config(pki, as_addr=None, admin="auth", storage=None, plugins=("resource",), port=0,
               extra_token=None, payload=None, acls=None, idps=None):
    cfg = {"http_server": {"sockets": ["127.0.0.1:%d" % port], "insecure_http": True}}
    if payload:
        cfg["http_server"]["payload_request_size"] = payload
    if admin == "auth":
        cfg["admin"] = {
            "authorization_mode": "AuthenticatedAuthorization",
            "authentication": {"bearer_jwt": {"identity_providers": idps or [
                {"issuer": "issuer", "audience": "kbs",
                 "public_key_uri": "file://" + pki.path("admin.pub")}]}},
            "authorization": {"regex_acl": {"acls": acls or [
                {"role": "admin", "allowed_endpoints": "^/kbs/.+$"}]}}}
    else:
        cfg["admin"] = {"authorization_mode": admin}
    cfg["attestation_token"] = {"trusted_certs_paths": [pki.path("ca-cert.pem")]}
    cfg["attestation_token"].update(extra_token or {})
    if as_addr:
        cfg["attestation_service"] = {"type": "coco_as_grpc", "as_addr": as_addr,
                                      "pool_size": 64, "timeout": 5}
    if storage:
        cfg["storage_backend"] = storage
    cfg["plugins"] = [{"name": p} if p != "sample" else {"name": "sample", "item": "x"}
                      for p in plugins]
    return cfg


def require_kbs():
    """Fail the program (one TAP failure) when the kbs binary is not built."""
    import sys
    if not os.access(os.path.join(BIN, "kbs"), os.X_OK):
        print("not ok 1 - %s: %s/kbs not built\n1..1" % (os.path.basename(sys.argv[0]), BIN))
        sys.exit(1)


class KbsClient:
    """HTTP calls to a KBS (or to a proxy in front of KBS replicas) at 127.0.0.1:self.port;
    HTTPS when `tls` is an ssl.SSLContext."""
    tls = None

    def request(self, method, path, body=None, headers=None, timeout=30):
        if self.tls is not None:
            c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                            context=self.tls)
        else:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def problem(self, method, path, body=None, headers=None):
        st, h, data = self.request(method, path, body, headers)
        try:
            return st, json.loads(data)
        except ValueError:
            return st, data

    def admin(self, method, path, body, pki, token=None):
        tok = token or pki.admin_token()
        return self.request(method, path, body, {"Authorization": "Bearer " + tok})

    def set_resource(self, pki, path, data):
        st, _, body = self.admin("POST", "/kbs/v0/resource/" + path, data, pki)
        assert st == 200, (st, body)

    def set_policy(self, pki, rego):
        st, _, body = self.admin("POST", "/kbs/v0/resource-policy",
                                 {"policy": b64u(rego)}, pki)
        assert st == 200, (st, body)


class Kbs(KbsClient, Daemon):
    def __init__(self, cfg=None, text=None, ext=None, name="kbs", port=None, env=None):
        if ext is None:
            ext = ".toml"
        self.port = port or free_port()
        d = tmpdir("kbs-conf-")
        self.config_path = os.path.join(d, "kbs-config" + ext)
        if cfg is not None:
            cfg = json.loads(json.dumps(cfg))
            cfg["http_server"]["sockets"] = ["127.0.0.1:%d" % self.port]
            text = to_toml(cfg) if ext == ".toml" else json.dumps(cfg, indent=1)
        else:
            text = text.replace("@PORT@", str(self.port))
        with open(self.config_path, "w") as f:
            f.write(text)
        super().__init__(name, [os.path.join(BIN, "kbs"), "--config-file", self.config_path],
                         self.port, env=env)


HAPROXY_TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy",
                                "dev", "haproxy-kbs.cfg.in")


def haproxy_available():
    import shutil
    return shutil.which("haproxy") or os.access("/usr/sbin/haproxy", os.X_OK)


class Haproxy(KbsClient, Daemon):
    """HAProxy from deploy/dev/haproxy-kbs.cfg.in over `backends` (ports): leastconn for a new
    attester, then sticky by the kbs-session-id cookie, HTTP mode, readiness checks on /readyz,
    an admin socket for server states."""

    def __init__(self, backends, name="haproxy", port=None):
        import shutil
        self.port = port or free_port()
        d = tmpdir("haproxy-")
        self.socket = os.path.join(d, "admin.sock")
        self.names = ["kbs%d" % (i + 1) for i in range(len(backends))]
        servers = "\n".join("    server %s 127.0.0.1:%d check" % (n, p)
                            for n, p in zip(self.names, backends))
        with open(HAPROXY_TEMPLATE) as f:
            text = f.read()
        text = (text.replace("@LISTEN@", "127.0.0.1:%d" % self.port)
                .replace("@SOCKET@", self.socket).replace("@SERVERS@", servers))
        self.config_path = os.path.join(d, "haproxy.cfg")
        with open(self.config_path, "w") as f:
            f.write(text)
        exe = shutil.which("haproxy") or "/usr/sbin/haproxy"
        super().__init__(name, [exe, "-db", "-f", self.config_path], self.port)

    def admin_cmd(self, cmd):
        import socket as _s
        with _s.socket(_s.AF_UNIX, _s.SOCK_STREAM) as c:
            c.settimeout(5)
            c.connect(self.socket)
            c.sendall(cmd.encode() + b"\n")
            out = b""
            while True:
                b = c.recv(65536)
                if not b:
                    break
                out += b
        return out.decode()

    def states(self):
        """{server name: "UP"|"DOWN"|...} from `show stat`."""
        lines = self.admin_cmd("show stat").splitlines()
        if not lines:
            return {}
        head = lines[0].lstrip("# ").split(",")
        res = {}
        for l in lines[1:]:
            f = dict(zip(head, l.split(",")))
            if f.get("pxname") == "kbs_replicas" and f.get("svname") in self.names:
                res[f["svname"]] = f.get("status", "")
        return res

    def wait_state(self, name, want, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                st = self.states().get(name, "")
            except (FileNotFoundError, ConnectionRefusedError):
                st = ""  # HAProxy has not made its admin socket yet
            if st.startswith(want):
                return True
            time.sleep(0.1)
        return False


def scrape(kbs):
    """GET /metrics parsed by prometheus_client's parser (an independent oracle of the text
    format): {(sample name, ((label, value), ...) sorted): value}. Raises on a malformed
    exposition."""
    from prometheus_client.parser import text_string_to_metric_families
    st, h, data = kbs.request("GET", "/metrics")
    assert st == 200, (st, data)
    out = {}
    for fam in text_string_to_metric_families(data.decode()):
        for smp in fam.samples:
            key = (smp.name, tuple(sorted(smp.labels.items())))
            assert key not in out, "duplicate sample %r" % (key,)
            out[key] = smp.value
    return out


ALLOW_ALL = 'package policy\nimport rego.v1\ndefault allow := false\nallow if data.plugin == "resource"\n'
DENY_ALL = "package policy\nimport rego.v1\ndefault allow := false\n"


# ------------------------------------------------------------------ attester

class Attester:
    """The sample TEE attester: RCAR as guest-components does it, with its own key."""

    def __init__(self, kbs, key_type="EC-P256", tee="sample"):
        self.kbs, self.tee = kbs, tee
        if key_type == "EC-P256":
            self.key = jjwk.JWK.generate(kty="EC", crv="P-256")
            alg = "ECDH-ES+A256KW"
        elif key_type == "EC-P521":
            self.key = jjwk.JWK.generate(kty="EC", crv="P-521")
            alg = "ECDH-ES+A256KW"
        elif key_type == "RSA":
            self.key = jjwk.JWK.generate(kty="RSA", size=2048)
            alg = "RSA-OAEP-256"
        elif key_type == "RSA1_5":
            self.key = jjwk.JWK.generate(kty="RSA", size=2048)
            alg = "RSA1_5"
        else:
            raise ValueError(key_type)
        pub = self.key.export_public(as_dict=True)
        pub.pop("kid", None)
        pub["alg"] = alg
        self.pubkey = pub
        self.cookie = None
        self.nonce = None
        self.token = None

    def auth(self, version="0.4.0", extra="", tee=None, drop_extra=False):
        req = {"version": version, "tee": tee or self.tee, "extra-params": extra}
        if drop_extra:
            del req["extra-params"]
        st, h, data = self.kbs.request("POST", "/kbs/v0/auth", req)
        if st == 200:
            self.cookie = h["set-cookie"].split(";")[0]
            self.set_cookie = h["set-cookie"]
            self.nonce = json.loads(data)["nonce"]
        return st, h, data

    def evidence(self, nonce=None, bind=True, additional=""):
        rd = {"tee-pubkey": self.pubkey, "nonce": nonce or self.nonce,
              "additional-evidence": additional}
        digest = hashlib.sha384(jcs(rd)).digest() if bind else hashlib.sha384(b"other").digest()
        return {"svn": "1", "report_data": base64.b64encode(digest).decode()}

    def attest_body(self, nonce=None, bind=True, additional="", init_data=None):
        body = {"runtime-data": {"nonce": nonce or self.nonce, "tee-pubkey": self.pubkey},
                "tee-evidence": {"primary_evidence": self.evidence(nonce, bind, additional),
                                 "additional_evidence": additional}}
        if init_data is not None:
            body["init-data"] = init_data
        return body

    def attest(self, body=None, cookie=True, **kw):
        hdr = {"Content-Type": "application/json"}
        if cookie and self.cookie:
            hdr["Cookie"] = self.cookie
        st, h, data = self.kbs.request("POST", "/kbs/v0/attest", body or self.attest_body(**kw),
                                       hdr)
        if st == 200:
            self.token = json.loads(data)["token"]
        return st, h, data

    def rcar(self):
        st, _, data = self.auth()
        assert st == 200, (st, data)
        st, _, data = self.attest()
        assert st == 200, (st, data)
        return self.token

    def get(self, path, cookie=True, bearer=None):
        hdr = {}
        if cookie and self.cookie:
            hdr["Cookie"] = self.cookie
        if bearer:
            hdr["Authorization"] = "Bearer " + bearer
        return self.kbs.request("GET", "/kbs/v0/resource/" + path, None, hdr)

    def decrypt(self, body):
        obj = jjwe.JWE()
        obj.allowed_algs = ["ECDH-ES+A256KW", "RSA-OAEP-256", "RSA1_5", "A256GCM"]
        obj.deserialize(body.decode(), key=self.key)
        return obj.payload
