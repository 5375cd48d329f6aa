"""The kbs `pkcs11` plugin (kbs-protocol.md §7.1) against SoftHSM2: a token initialised by the test
in a temporary directory, an RSA key pair imported under the wrap label. Secrets stored (admin),
read by an attested guest as a JWE, deleted; wrap-key POST wraps with the HSM's public key
(checked by unwrapping with python3-cryptography), wrap-key GET unwraps what the test wrapped
(RSA-OAEP; SHA-1 here, as SoftHSM 2.6 has no other); secrets outlive a kbs restart; a wrong PIN or a library that is not a
PKCS#11 module stops the start, and the PIN appears in no log."""
import os
import shutil
import subprocess

import harness
from harness import BIN, tmpdir
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from kbs_testlib import Attester, Kbs, Pki, kbs_config, require_kbs, start_as, to_toml

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "4711-secret-pin"
POLICY = ('package policy\nimport rego.v1\ndefault allow := false\n'
          'allow if data.plugin == "pkcs11"\n')
# SoftHSM 2.6 (Debian's) does RSA-OAEP with SHA-1 only, so the plugin runs with Trustee's
# RsaPkcsTest mechanism here; RsaPkcsOaep (SHA-256) is what an HSM in production uses.
OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


def main():
    require_kbs()
    t = harness.Tap()
    util = shutil.which("softhsm2-util")
    if not util or not os.path.exists(MODULE):
        t.skip("pkcs11 plugin against SoftHSM2", "softhsm2 is not installed (make deps)")
        t.done()
    d = tmpdir("kbs-p11-")
    os.makedirs(os.path.join(d, "tokens"))
    conf = os.path.join(d, "softhsm2.conf")
    open(conf, "w").write("directories.tokendir = %s/tokens\nobjectstore.backend = file\n"
                          "log.level = ERROR\n" % d)
    env = {"SOFTHSM2_CONF": conf}
    run = lambda *a: subprocess.run([util] + list(a), env=dict(os.environ, **env), check=True,
                                    capture_output=True)
    run("--init-token", "--free", "--label", "kbs", "--pin", PIN, "--so-pin", "so-" + PIN)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kp = os.path.join(d, "wrap.pem")
    open(kp, "wb").write(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    run("--import", kp, "--label", "wrap", "--id", "01", "--token", "kbs", "--pin", PIN)
    os.unlink(kp)

    pki = Pki()
    asd = start_as(pki)
    cfg = kbs_config(pki, as_addr=asd.addr)
    cfg["plugins"] = [{"name": "resource"},
                      {"name": "pkcs11", "module": MODULE, "pin": PIN, "lookup_label": "wrap",
                       "rsa_mechanism": "RsaPkcsTest"}]
    kbs = Kbs(cfg, name="kbs-pkcs11", env=env).start()
    t.ok(True, "kbs starts with the pkcs11 plugin on a SoftHSM2 token")
    kbs.set_policy(pki, POLICY)
    a = Attester(kbs)
    a.rcar()
    ck = {"Cookie": a.cookie}
    res = "/kbs/v0/pkcs11/resource/default/hsm/key1"

    st, _, body = kbs.request("POST", res, b"hsm secret")
    t.ok(st == 401 and b"AdminAuthAccess" in body, "storing needs admin credentials", body)
    st, _, body = kbs.admin("POST", res, b"hsm secret", pki)
    t.ok(st == 200, "an admin stores a secret in the HSM", body)
    st, _, data = kbs.request("GET", res, None, ck)
    t.ok(st == 200 and a.decrypt(data) == b"hsm secret",
         "an attested guest reads it as a JWE to its key", data[:200])
    st, _, data = kbs.request("GET", "/kbs/v0/pkcs11/resource/default/hsm/../x", None, ck)
    t.ok(st in (401, 404), "a path that is not repo/type/tag is refused", data)

    st, _, wrapped = kbs.admin("POST", "/kbs/v0/pkcs11/wrap-key", b"data encryption key", pki)
    ok = st == 200
    if ok:
        try:
            ok = key.decrypt(wrapped, OAEP) == b"data encryption key"
        except ValueError:
            ok = False
    t.ok(ok, "wrap-key POST wraps with the HSM's public key (RSA-OAEP, checked by "
         "python3-cryptography)", wrapped[:100])
    ct = key.public_key().encrypt(b"unwrap me", OAEP)
    st, _, data = kbs.request("GET", "/kbs/v0/pkcs11/wrap-key", ct, ck)
    t.ok(st == 200 and a.decrypt(data) == b"unwrap me",
         "wrap-key GET unwraps in the HSM and answers as a JWE to the guest", data[:200])
    st, _, data = kbs.request("GET", "/kbs/v0/pkcs11/wrap-key", b"\0" * 256, ck)
    t.ok(st == 401 and b"PluginInternalError" in data, "garbage to unwrap is refused", data)

    kbs.stop()
    kbs.start()
    kbs.set_policy(pki, POLICY)  # the policy store is in memory; the HSM is not
    a.rcar()
    st, _, data = kbs.request("GET", res, None, {"Cookie": a.cookie})
    t.ok(st == 200 and a.decrypt(data) == b"hsm secret", "the secret outlives a kbs restart",
         data[:200])
    st, _, body = kbs.admin("DELETE", res, None, pki)
    t.ok(st == 200, "an admin deletes it", body)
    st, _, data = kbs.request("GET", res, None, {"Cookie": a.cookie})
    t.ok(st == 401 and b"no object labelled default/hsm/key1" in data,
         "a deleted secret is gone", data)
    kbs.stop()
    t.ok(PIN.encode() not in open(kbs.logpath, "rb").read(), "the PIN is in no log line")

    def refused(plugin):
        c = kbs_config(pki, as_addr=asd.addr)
        c["plugins"] = [plugin]
        c["http_server"]["sockets"] = ["127.0.0.1:0"]
        p = os.path.join(tmpdir("kbs-p11-bad-"), "kbs.toml")
        open(p, "w").write(to_toml(c))
        r = subprocess.run([os.path.join(BIN, "kbs"), "--config-file", p], capture_output=True,
                           timeout=30, env=dict(os.environ, **env))
        return r.returncode, (r.stdout + r.stderr).decode(errors="replace")

    rc, out = refused({"name": "pkcs11", "module": MODULE, "pin": "wrong-" + PIN})
    t.ok(rc != 0 and "refused the configured pin" in out and PIN not in out,
         "a wrong PIN stops the start without printing it", out[-300:])
    libc = "/lib/x86_64-linux-gnu/libc.so.6"
    rc, out = refused({"name": "pkcs11", "module": libc, "pin": PIN})
    t.ok(rc != 0 and "not a PKCS#11 module" in out, "a library without C_GetFunctionList is refused",
         out[-300:])
    rc, out = refused({"name": "pkcs11", "module": "libsofthsm2.so", "pin": PIN})
    t.ok(rc != 0 and "absolute path" in out, "a module path that is not absolute is refused",
         out[-300:])
    asd.stop()
    t.done()


if __name__ == "__main__":
    main()
