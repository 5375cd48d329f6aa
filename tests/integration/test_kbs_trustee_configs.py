#!/usr/bin/python3
"""kbs started with Trustee's own configuration files (tests/integration/configs/, copied
from Trustee at the spec's revision), with only addresses and paths rewritten for a test
machine: the docker-compose KBS behind an AS, the gRPC-AS developer config
(InsecureAllowAll + insecure_header_jwk), the passport resource-KBS of kbs/test trusting the
first KBS's token CA (RSA tee key, §11.20), and kbs/test's HTTPS + built-in-AS config, which
starts (its handshakes are in test_kbs_builtin_as.py)."""
import json
import os
import shutil

from harness import BIN, Daemon, Tap, free_port, tmpdir
from kbs_testlib import (ALLOW_ALL, Attester, Kbs, KbsClient, Pki, b64u, require_kbs,
                         start_as)

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def config(name, subs):
    with open(os.path.join(HERE, name)) as f:
        text = f.read()
    for a, b in subs:
        assert a in text, (name, a)
        text = text.replace(a, b)
    return text


EXT = ".toml"


def check_docker_compose(t, pki, asvc, store):
    keys = pki.dir
    shutil.copy(pki.path("admin.pub"), os.path.join(keys, "public.pub"))
    text = config("docker-compose-kbs-config.toml", [
        ("/opt/confidential-containers/kbs/user-keys", keys),
        ('"0.0.0.0:8080"', '"127.0.0.1:@PORT@"'),
        ("http://as:50004", asvc.addr),
        ('dir_path = "/opt/confidential-containers/kbs"', 'dir_path = "%s"' % store)])
    kbs = Kbs(text=text, ext=EXT, name="kbs-docker-compose").start()
    tok = pki.admin_token(iss="TrusteeInDocker")
    st, _, data = kbs.admin("POST", "/kbs/v0/resource-policy", {"policy": b64u(ALLOW_ALL)}, pki,
                            tok)
    t.eq(st, 200, "docker-compose config: admin sets the policy (issuer TrusteeInDocker)")
    st, _, data = kbs.admin("POST", "/kbs/v0/resource/default/key/one", b"compose secret", pki,
                            tok)
    t.eq(st, 200, "docker-compose config: admin stores a resource")
    t.ok(os.path.isfile(os.path.join(store, "repository", "default\\x2Fkey\\x2Fone")),
         "docker-compose config: LocalFs layout repository/default\\x2Fkey\\x2Fone")
    a = Attester(kbs, "RSA")
    a.rcar()
    st, _, data = a.get("default/key/one")
    t.ok(st == 200 and a.decrypt(data) == b"compose secret",
         "docker-compose config: RCAR and resource read", data[:200])
    return kbs, a


def check_passport(t, pki, a):
    store = tmpdir("kbs-b-store-")
    text = config("test-resource-kbs.toml", [
        ('"127.0.0.1:50002"', '"127.0.0.1:@PORT@"'),
        ("./work/kbs.pem", pki.path("admin.pub")),
        ("./work/ca-cert.pem", pki.path("ca-cert.pem")),
        ("./work/storage", store)])
    kbs_b = Kbs(text=text, ext=EXT, name="kbs-resource").start()
    kbs_b.set_policy(pki, ALLOW_ALL)
    kbs_b.set_resource(pki, "default/passport/key", b"kbs-b secret")
    b = Attester(kbs_b, "RSA")
    b.key, b.pubkey = a.key, a.pubkey
    st, _, data = b.get("default/passport/key", cookie=False, bearer=a.token)
    t.ok(st == 200 and b.decrypt(data) == b"kbs-b secret",
         "passport: KBS-A's token opens KBS-B (resource-kbs.toml)", data[:200])
    kbs_b.stop()


def check_grpc_dev_config(t, asvc):
    store = tmpdir("kbs-grpc-store-")
    text = config("kbs-config-grpc.toml", [
        ("[http_server]\n", '[http_server]\nsockets = ["127.0.0.1:@PORT@"]\n'),
        ("http://127.0.0.1:50004", asvc.addr),
        ("/opt/confidential-containers/storage", store)])
    kbs = Kbs(text=text, ext=EXT, name="kbs-grpc-dev").start()
    st, _, _ = kbs.request("POST", "/kbs/v0/resource-policy",
                           json.dumps({"policy": b64u(ALLOW_ALL)}))
    t.eq(st, 200, "kbs-config-grpc.toml: InsecureAllowAll admin")
    st, _, _ = kbs.request("POST", "/kbs/v0/resource/a/b/c", b"dev")
    a = Attester(kbs)
    a.rcar()
    st, _, data = a.get("a/b/c")
    t.ok(st == 200 and a.decrypt(data) == b"dev", "kbs-config-grpc.toml: insecure_header_jwk "
         "token verification and read", data[:200])
    kbs.stop()


def check_builtin_https_starts(t, pki):
    d = tmpdir("kbs-test-toml-")
    work = os.path.join(d, "work")
    os.makedirs(work)
    key, chain = pki.server_cert("https", key_type="EC")
    for src, dst in [(key, "https.key"), (chain, "https.crt"),
                     (pki.path("token.key"), "token.key"),
                     (pki.path("token-cert-chain.pem"), "token-cert-chain.pem"),
                     (pki.path("ca-cert.pem"), "ca-cert.pem"), (pki.path("admin.pub"), "kbs.pem")]:
        shutil.copy(src, os.path.join(work, dst))
    port = free_port()
    path = os.path.join(d, "kbs" + EXT)
    with open(path, "w") as f:
        f.write(config("test-kbs.toml", [('"127.0.0.1:8080"', '"127.0.0.1:%d"' % port)]))
    kbs = Daemon("kbs-test-toml", [os.path.join(BIN, "kbs"), "-c", path], port, cwd=d).start()
    try:
        c = KbsClient()
        c.port, c.tls = port, pki.client_context()
        st, _, _ = c.request("GET", "/readyz")
        t.eq(st, 200, "kbs/test kbs.toml (HTTPS, built-in AS) starts and is ready")
    finally:
        kbs.stop()


def main():
    require_kbs()
    t = Tap()
    pki = Pki()
    asvc = start_as(pki)
    kbs, a = check_docker_compose(t, pki, asvc, tmpdir("kbs-compose-store-"))
    t.run(check_passport, pki, a)
    kbs.stop()
    t.run(check_grpc_dev_config, asvc)
    t.run(check_builtin_https_starts, pki)
    t.done()


if __name__ == "__main__":
    main()
