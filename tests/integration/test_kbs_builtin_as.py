#!/usr/bin/python3
"""[attestation_service] type = "coco_as_builtin": Trustee's three default KBS configs
(configs/kbs-config.toml, configs/kubernetes-base-kbs-config.toml, configs/test-kbs.toml, copied
from Trustee with only ports and paths rewritten here) start a kbs that attests a sample TEE with
no grpc-as running: the EAR token is checked against its header key (or its x5c chain) by
python3-jwcrypto / python3-cryptography, the secret is decrypted by the attester, the admin
attestation-policy and reference-value endpoints reach the in-process AS, and the AS stores its
policies in the kbs's own [storage_backend]."""
import base64
import json
import os
import subprocess

from cryptography import x509
from jwcrypto import jwk as jjwk
from jwcrypto import jws as jjws
from prometheus_client.parser import text_string_to_metric_families

from harness import BIN, Daemon, Tap, free_port, tmpdir
from kbs_testlib import ALLOW_ALL, Attester, Kbs, KbsClient, Pki, b64u, b64u_dec, require_kbs

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")

AFFIRMING = """package policy
import rego.v1
default hardware := 2
default configuration := 2
default executables := 3
trust_claims := {"hardware": hardware, "configuration": configuration,
                 "executables": executables}
"""


def config(name, subs):
    with open(os.path.join(HERE, name)) as f:
        text = f.read()
    for a, b in subs:
        assert a in text, (name, a)
        text = text.replace(a, b)
    return text


def token_parts(tok):
    h, p, _ = tok.split(".")
    return json.loads(b64u_dec(h)), json.loads(b64u_dec(p))


def header_key_verifies(tok):
    """The token verified by jwcrypto with the public key its header carries (ES256 only)."""
    hdr, _ = token_parts(tok)
    key = jjwk.JWK(**{k: hdr["jwk"][k] for k in ("kty", "crv", "x", "y")})
    s = jjws.JWS()
    s.deserialize(tok)
    s.verify(key, alg="ES256")
    return hdr["alg"] == "ES256"


def handshake_and_read(t, kbs, label, admin):
    """admin(method, path, body) -> (status, headers, data)."""
    st, _, data = admin("POST", "/kbs/v0/resource-policy", {"policy": b64u(ALLOW_ALL)})
    t.eq(st, 200, "%s: admin sets the resource policy" % label)
    st, _, data = admin("POST", "/kbs/v0/resource/default/key/one", b"builtin secret")
    t.eq(st, 200, "%s: admin stores a resource" % label)
    a = Attester(kbs)
    st, _, data = a.auth()
    t.eq(st, 200, "%s: /auth" % label)
    st, _, data = a.attest()
    t.ok(st == 200 and a.token, "%s: /attest answered by the built-in AS" % label, data[:300])
    st, _, data = a.get("default/key/one")
    t.ok(st == 200 and a.decrypt(data) == b"builtin secret",
         "%s: the resource, decrypted with the attester's key" % label, data[:200])
    return a


def check_default_config(t):
    """kbs/config/kbs-config.toml: HTTP, InsecureAllowAll, insecure_header_jwk, LocalFs."""
    store = tmpdir("kbs-builtin-store-")
    text = config("kbs-config.toml", [
        ("[http_server]\n", '[http_server]\nsockets = ["127.0.0.1:@PORT@"]\n'),
        ('dir_path = "/opt/confidential-containers/storage"', 'dir_path = "%s"' % store)])
    kbs = Kbs(text=text, name="kbs-builtin-default").start()
    try:
        admin = lambda m, p, b: kbs.request(m, p, b)
        a = handshake_and_read(t, kbs, "kbs-config.toml", admin)
        hdr, claims = token_parts(a.token)
        t.ok(header_key_verifies(a.token), "kbs-config.toml: the EAR token verifies (jwcrypto) "
             "with the ES256 key in its header")
        cpu = claims.get("submods", {}).get("cpu0", {})
        t.ok(cpu.get("ear.appraisal-policy-id") == "default" and
             claims.get("iss") == "CoCo-Attestation-Service" and
             claims.get("exp", 0) - claims.get("iat", 0) == 300,
             "kbs-config.toml: EAR claims (policy id default, issuer, duration_min 5)", claims)
        rd = cpu.get("ear.veraison.annotated-evidence", {}).get("runtime_data_claims", {})
        t.eq(rd.get("tee-pubkey"), a.pubkey, "kbs-config.toml: the token binds the tee-pubkey")
        t.ok(os.path.isfile(os.path.join(store, "attestation_service_policy",
                                         "default_cpu.rego")),
             "kbs-config.toml: the AS keeps its policies in the kbs's [storage_backend] "
             "(LocalFs attestation_service_policy/default_cpu.rego)")

        # the admin attestation-policy endpoint reaches the in-process AS
        st, _, data = kbs.request("POST", "/kbs/v0/attestation-policy",
                                  {"policy_id": "default_cpu", "policy": b64u(AFFIRMING)})
        t.eq(st, 200, "attestation-policy: default_cpu replaced")
        a2 = Attester(kbs)
        a2.rcar()
        _, c2 = token_parts(a2.token)
        t.eq(c2["submods"]["cpu0"]["ear.status"], "affirming",
             "attestation-policy: the next appraisal uses the new policy")
        with open(os.path.join(store, "attestation_service_policy", "default_cpu.rego")) as f:
            t.eq(f.read(), AFFIRMING, "attestation-policy: stored as sent")
        st, data = kbs.problem("POST", "/kbs/v0/attestation-policy",
                               {"policy_id": "broken_cpu", "policy": b64u("package policy\n{")})
        t.ok(st == 401 and "Set Attestation Policy failed" in data.get("detail", ""),
             "attestation-policy: a policy that does not compile is refused", data)

        # the admin reference-value endpoints reach the built-in RVPS
        msg = json.dumps({"version": "0.1.0", "type": "sample", "payload": base64.b64encode(
            json.dumps({"builtin-rv": ["v1", "v2"]}).encode()).decode()})
        st, _, data = kbs.request("POST", "/kbs/v0/reference-value", msg)
        t.eq(st, 200, "reference-value: registered through the kbs")
        st, _, data = kbs.request("GET", "/kbs/v0/reference-value/builtin-rv")
        t.ok(st == 200 and json.loads(data) == ["v1", "v2"],
             "reference-value: queried back from the built-in RVPS", data[:300])
        t.ok(os.path.isdir(os.path.join(store, "reference_value")),
             "reference-value: kept in the kbs's store (reference_value namespace)")
        st, _, data = kbs.request("GET", "/kbs/v0/reference-value/no-such-rv")
        t.eq(st, 401, "reference-value: an unknown id is refused")

        check_builtin_metrics(t, kbs)

        st, _, _ = kbs.request("GET", "/readyz")
        t.eq(st, 200, "/readyz: ready with the AS in process")
        st, _, _ = kbs.request("GET", "/healthz")
        t.eq(st, 200, "/healthz")

        # evidence for another nonce is refused by the in-process verifier, with a reason
        a3 = Attester(kbs)
        a3.auth()
        st, data = kbs.problem("POST", "/kbs/v0/attest", a3.attest_body(bind=False),
                               {"Content-Type": "application/json", "Cookie": a3.cookie})
        t.ok(st == 401 and "report_data does not match" in data.get("detail", ""),
             "unbound evidence refused by the built-in AS, saying why", data)
    finally:
        kbs.stop()
    # policies and the token signer survive a restart of the kbs (LocalFs store)
    kbs = Kbs(text=text, name="kbs-builtin-default-2").start()
    try:
        a4 = Attester(kbs)
        a4.rcar()
        _, c4 = token_parts(a4.token)
        t.eq(c4["submods"]["cpu0"]["ear.status"], "affirming",
             "restart: the stored attestation policy is kept (defaults do not overwrite it)")
    finally:
        kbs.stop()


def as_samples(kbs):
    """The built-in AS's series on the kbs's /metrics, parsed by prometheus_client."""
    st, _, data = kbs.request("GET", "/metrics")
    out = {}
    for fam in text_string_to_metric_families(data.decode()):
        for s in fam.samples:
            if s.name.startswith("as_") or s.name.startswith("kbs_http_requests"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return st, out


def check_builtin_metrics(t, kbs):
    """The in-process AS counts its evaluations on the kbs's /metrics, as grpc-as does on its
    port: one more handshake adds one sample request and success and one policy outcome."""
    ok_key = ("as_attestation_successes_total", (("tee_type", "sample"),))
    req_key = ("as_attestation_requests_total", (("tee_type", "sample"),))
    st, before = as_samples(kbs)
    t.ok(st == 200 and req_key in before and ok_key in before,
         "metrics: the kbs's /metrics carries the built-in AS's counters", sorted(before)[:8])
    Attester(kbs).rcar()
    _, after = as_samples(kbs)
    t.ok(after.get(req_key, 0) - before.get(req_key, 0) == 1 and
         after.get(ok_key, 0) - before.get(ok_key, 0) == 1,
         "metrics: one handshake counts one sample request and one success",
         (before.get(req_key), after.get(req_key)))
    t.ok(("kbs_http_requests_total", ()) in after,
         "metrics: the kbs's own series are still there")


def check_kubernetes_base(t, pki):
    """kbs/config/kubernetes/base/kbs-config.toml: AuthenticatedAuthorization, LocalFs."""
    store = tmpdir("kbs-k8s-store-")
    text = config("kubernetes-base-kbs-config.toml", [
        ('"0.0.0.0:8080"', '"127.0.0.1:@PORT@"'),
        ('"/kbs/kbs.pem"', '"%s"' % pki.path("admin.pub")),
        ('dir_path = "/opt/confidential-containers/kbs"', 'dir_path = "%s"' % store)])
    kbs = Kbs(text=text, name="kbs-builtin-k8s").start()
    try:
        st, _, _ = kbs.request("POST", "/kbs/v0/resource-policy", {"policy": b64u(ALLOW_ALL)})
        t.eq(st, 401, "kubernetes base: admin calls need the admin token")
        admin = lambda m, p, b: kbs.admin(m, p, b, pki)
        a = handshake_and_read(t, kbs, "kubernetes base", admin)
        t.ok(header_key_verifies(a.token), "kubernetes base: token verifies with its header key")
    finally:
        kbs.stop()


def check_kbs_test_config(t, pki):
    """kbs/test/config/kbs.toml: HTTPS, the AS signs with work/token.key and publishes
    work/token-cert-chain.pem as x5c; the kbs trusts work/ca-cert.pem."""
    d = tmpdir("kbs-test-cfg-")
    work = os.path.join(d, "work")
    os.makedirs(work)
    key, chain = pki.server_cert("https", key_type="EC")
    for src, dst in [(key, "https.key"), (chain, "https.crt"),
                     (pki.path("ca-cert.pem"), "ca-cert.pem"),
                     (pki.path("token.key"), "token.key"),
                     (pki.path("token-cert-chain.pem"), "token-cert-chain.pem"),
                     (pki.path("admin.pub"), "kbs.pem")]:
        with open(src, "rb") as f:
            data = f.read()
        fd = os.open(os.path.join(work, dst), os.O_WRONLY | os.O_CREAT,
                     0o600 if dst.endswith(".key") else 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    port = free_port()
    text = config("test-kbs.toml", [('"127.0.0.1:8080"', '"127.0.0.1:%d"' % port)])
    os.makedirs(os.path.join(d, "config"))
    with open(os.path.join(d, "config", "kbs.toml"), "w") as f:
        f.write(text)
    kbs = Daemon("kbs-builtin-test", [os.path.join(BIN, "kbs"), "--config-file",
                                      "./config/kbs.toml"], port, cwd=d).start()

    class Https(KbsClient):
        pass
    c = Https()
    c.port, c.tls = port, pki.client_context()
    try:
        admin = lambda m, p, b: c.admin(m, p, b, pki)
        a = handshake_and_read(t, c, "kbs/test kbs.toml (HTTPS)", admin)
        hdr, _ = token_parts(a.token)
        leaf = x509.load_der_x509_certificate(
            base64.b64decode(hdr["jwk"]["x5c"][0]))
        t.eq(leaf.subject.rfc4514_string(), pki.leaf.subject.rfc4514_string(),
             "kbs/test kbs.toml: the token's x5c is the configured signer chain")
        t.ok(header_key_verifies(a.token) and
             leaf.public_key().public_numbers() == pki.token_key.public_key().public_numbers(),
             "kbs/test kbs.toml: signed by work/token.key (jwcrypto)")
        t.ok(os.path.isfile(os.path.join(work, "storage", "attestation_service_policy",
                                         "default_cpu.rego")),
             "kbs/test kbs.toml: policies under ./work/storage")
    finally:
        kbs.stop()


def check_refusals(t):
    """A built-in AS that cannot start stops the kbs with a sentence naming the key."""
    d = tmpdir("kbs-builtin-bad-")
    for name, extra, want in [
        ("signer", '[attestation_service.attestation_token_broker.signer]\n'
         'key_path = "%s/none.key"\n' % d, "key_path"),
        ("storage_type", 'storage_type = 3\n', "storage_type"),
    ]:
        text = config("kbs-config.toml", [
            ("[http_server]\n", '[http_server]\nsockets = ["127.0.0.1:%d"]\n' % free_port()),
            ('dir_path = "/opt/confidential-containers/storage"', 'dir_path = "%s"' % d)])
        if name == "storage_type":
            text = text.replace('type = "coco_as_builtin"\n',
                                'type = "coco_as_builtin"\n' + extra)
        else:
            text = text.replace("[attestation_service.rvps_config]", extra +
                                "\n[attestation_service.rvps_config]")
        path = os.path.join(d, name + ".toml")
        with open(path, "w") as f:
            f.write(text)
        p = subprocess.run([os.path.join(BIN, "kbs"), "-c", path], capture_output=True,
                           text=True, timeout=30)
        t.ok(p.returncode != 0 and want in p.stderr,
             "a built-in AS with a bad %s stops the start, naming it" % name, p.stderr[-300:])


def main():
    require_kbs()
    t = Tap()
    pki = Pki()
    t.run(check_default_config)
    t.run(check_kubernetes_base, pki)
    t.run(check_kbs_test_config, pki)
    t.run(check_refusals)
    t.done()


if __name__ == "__main__":
    main()
