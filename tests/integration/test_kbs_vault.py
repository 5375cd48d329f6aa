#!/usr/bin/python3
"""The resource plugin on HashiCorp Vault KV v1 (kbs-protocol.md §7.2), against a small
Vault-API-compatible server on loopback (vault_server.py): admin writes land in Vault as
{"data": [byte values]} under <mount_path>/repo/type/tag with the configured X-Vault-Token,
reads come back as JWE (byte arrays and strings written by other tools), deletes remove the
secret; a missing secret, a secret without `data`, a wrong token and a Vault that is down are
clean 401 PluginInternalError refusals and say why in the log, never with the token; HTTPS
with verify_ssl and ca_certs; the start-up refusals."""
import json
import subprocess
import time

from harness import Tap
from kbs_testlib import ALLOW_ALL, ERR, Attester, Kbs, Pki, kbs_config, require_kbs
from vault_server import VaultServer

TOKEN = "hvs.test-root-token-7f3a"
BIN_SECRET = bytes(range(256)) + b"\x00end"


def vault_kbs(pki, vault, name, **plugin):
    cfg = kbs_config(pki)
    p = {"name": "resource", "storage_backend_type": "Vault", "vault_url": vault.url,
         "token": TOKEN}
    p.update(plugin)
    cfg["plugins"] = [p]
    k = Kbs(cfg, name=name).start()
    k.set_policy(pki, ALLOW_ALL)
    return k


PKI = None  # the test's Pki, set in main


def read(a, path):
    """A Bearer read with an EAR token for a's key, endorsed by the test CA."""
    tok = PKI.ear_token({"tee-pubkey": a.pubkey, "nonce": "n"})
    return a.get(path, cookie=False, bearer=tok)


def plugin_err(st, data):
    try:
        b = json.loads(data)
        return (st == 401 and b["type"] == ERR + "PluginInternalError" and
                b["detail"].startswith("Plugin internal error") and TOKEN not in b["detail"] and
                "127.0.0.1" not in b["detail"])
    except ValueError:
        return False


def check_round_trip(t, pki, vault, k):
    a = Attester(k, "EC-P256")
    k.set_resource(pki, "default/vault/bin", BIN_SECRET)
    stored = vault.secrets.get(("kbs", "default/vault/bin"))
    t.eq(stored, {"data": list(BIN_SECRET)},
         "admin write: Vault holds {\"data\": [byte values]} at kbs/default/vault/bin")
    writes = [l for l in vault.log if l[0] in ("POST", "PUT")]
    t.ok(writes and writes[-1][1] == "/v1/kbs/default/vault/bin" and writes[-1][2] == TOKEN,
         "admin write: POST /v1/<mount_path>/repo/type/tag with X-Vault-Token", writes[-1:])
    st, _, data = read(a, "default/vault/bin")
    t.ok(st == 200 and a.decrypt(data) == BIN_SECRET,
         "read: every byte value comes back through the JWE", data[:200])
    vault.secrets[("kbs", "default/vault/text")] = {"data": "written by vault kv put ✓"}
    st, _, data = read(a, "default/vault/text")
    t.ok(st == 200 and a.decrypt(data) == "written by vault kv put ✓".encode(),
         "read: a string `data` is returned as its UTF-8 bytes", data[:200])
    b = Attester(k, "RSA")
    st, _, data = read(b, "default/vault/bin")
    t.ok(st == 200 and b.decrypt(data) == BIN_SECRET, "read: RSA tee key", data[:200])
    st, _, data = k.request("GET", "/metrics")
    t.ok(b'kbs_resource_reads_total{resource_path="default/vault/bin"} 2' in data,
         "metrics count Vault reads per resource path")
    k.set_resource(pki, "default/vault/bin", b"replaced")
    st, _, data = read(a, "default/vault/bin")
    t.ok(st == 200 and a.decrypt(data) == b"replaced", "write overwrites", data[:200])
    st, _, _ = k.admin("DELETE", "/kbs/v0/resource/default/vault/bin", None, pki)
    t.ok(st == 200 and ("kbs", "default/vault/bin") not in vault.secrets,
         "admin DELETE removes the secret from Vault")
    st, _, data = k.admin("DELETE", "/kbs/v0/resource/default/vault/bin", None, pki)
    t.ok(plugin_err(st, data), "DELETE of a missing secret is refused (as kvstorage)", data)


def check_refusals(t, pki, vault, k):
    a = Attester(k, "EC-P256")
    mark = len(k.log_text())
    st, _, data = read(a, "default/vault/missing")
    t.ok(plugin_err(st, data), "missing secret (Vault 404) -> 401 PluginInternalError", data)
    vault.secrets[("kbs", "default/vault/nodata")] = {"value": [1, 2, 3]}
    st, _, data = read(a, "default/vault/nodata")
    t.ok(plugin_err(st, data), "secret without `data` -> 401 PluginInternalError", data)
    vault.secrets[("kbs", "default/vault/badbytes")] = {"data": [1, 300]}
    st, _, data = read(a, "default/vault/badbytes")
    t.ok(plugin_err(st, data), "`data` with a value above 255 -> 401", data)
    vault.secrets[("kbs", "default/vault/obj")] = {"data": {"x": 1}}
    st, _, data = read(a, "default/vault/obj")
    t.ok(plugin_err(st, data), "`data` that is an object -> 401", data)
    time.sleep(0.2)
    log = k.log_text()[mark:]
    t.ok("resource not found" in log and "missing required 'data' key" in log and
         "neither a string nor a byte array" in log and "other than bytes" in log,
         "the log says why each read was refused", log[-800:])
    # the policy runs before the backend: a denied read never reaches Vault
    k.set_policy(pki, "package policy\nimport rego.v1\ndefault allow := false\n")
    n = len(vault.log)
    st, _, data = read(a, "default/vault/text")
    t.ok(st == 401 and json.loads(data)["type"] == ERR + "PolicyDeny" and len(vault.log) == n,
         "a policy denial never asks Vault", data)
    k.set_policy(pki, ALLOW_ALL)


def check_wrong_token_and_outage(t, pki, vault):
    k = vault_kbs(pki, vault, "kbs-vault-badtoken", mount_path="kbs", token="not-the-token")
    a = Attester(k, "EC-P256")
    vault.secrets[("kbs", "default/vault/t")] = {"data": [104, 105]}
    st, _, data = read(a, "default/vault/t")
    t.ok(plugin_err(st, data), "wrong Vault token: read refused with 401", data)
    st, _, data = k.admin("POST", "/kbs/v0/resource/default/vault/t", b"x", pki)
    t.ok(plugin_err(st, data), "wrong Vault token: write refused with 401", data)
    time.sleep(0.2)
    t.ok("Vault answered HTTP 403: permission denied" in k.log_text(),
         "the log has Vault's answer", k.log_tail(5))
    k.stop()
    k = vault_kbs(pki, vault, "kbs-vault-outage", mount_path="kbs")
    a = Attester(k, "EC-P256")
    vault.stop()
    st, _, data = read(a, "default/vault/t")
    t.ok(plugin_err(st, data) and k.alive(), "Vault down: 401 and the KBS carries on", data)
    vault.start()
    st, _, data = read(a, "default/vault/t")
    t.ok(st == 200 and a.decrypt(data) == b"hi", "Vault back: reads work again", data[:200])
    t.ok(TOKEN not in k.log_text() and "not-the-token" not in k.log_text(),
         "the Vault token never appears in a log")
    k.stop()


def check_default_mount(t, pki, vault):
    k = vault_kbs(pki, vault, "kbs-vault-default-mount")
    k.set_resource(pki, "a/b/c", b"default mount")
    t.eq(vault.secrets.get(("secret", "a/b/c")), {"data": list(b"default mount")},
         "mount_path defaults to secret")
    k.stop()


def check_https(t, pki):
    key, chain = pki.server_cert("vault-tls", "EC")
    v = VaultServer(TOKEN, mounts=("kv",), tls=(key, chain)).start()
    k = vault_kbs(pki, v, "kbs-vault-tls", mount_path="kv", verify_ssl=True,
                  ca_certs=[pki.path("ca-cert.pem")])
    a = Attester(k, "EC-P256")
    k.set_resource(pki, "default/tls/key", b"over tls")
    st, _, data = read(a, "default/tls/key")
    t.ok(st == 200 and a.decrypt(data) == b"over tls",
         "HTTPS Vault with verify_ssl and ca_certs", data[:200])
    k.stop()
    k = vault_kbs(pki, v, "kbs-vault-tls-unknown-ca", mount_path="kv", verify_ssl=True)
    st, _, data = read(Attester(k, "EC-P256"), "default/tls/key")
    t.ok(plugin_err(st, data), "verify_ssl without the CA: the unknown certificate is refused",
         data)
    time.sleep(0.2)
    t.ok("certificate" in k.log_text(), "... and the log says it was the certificate",
         k.log_tail(3))
    k.stop()
    k = vault_kbs(pki, v, "kbs-vault-tls-noverify", mount_path="kv")
    st, _, data = read(Attester(k, "EC-P256"), "default/tls/key")
    t.ok(st == 200, "verify_ssl false (the default, as Trustee): HTTPS without checks")
    t.ok("verify_ssl is false" in k.log_text(), "... with a warning at start", k.log_tail(5))
    k.stop()
    v.stop()


def check_startup_refusals(t, pki, vault):
    cases = [({"vault_url": None}, "vault_url must be"),
             ({"vault_url": "ftp://x"}, "vault_url must be"),
             ({"token": None}, "token is required"),
             ({"mount_path": "../sys"}, "mount_path"),
             ({"verify_ssl": "yes"}, "verify_ssl true or false"),
             ({"ca_certs": [pki.path("token.key")]}, "holds no PEM certificate")]
    for change, want in cases:
        cfg = kbs_config(pki)
        p = {"name": "resource", "storage_backend_type": "Vault", "vault_url": vault.url,
             "token": TOKEN}
        for key, val in change.items():
            if val is None:
                p.pop(key)
            else:
                p[key] = val
        cfg["plugins"] = [p]
        k = Kbs(cfg, name="kbs-vault-refused")
        r = subprocess.run(k.args, capture_output=True, text=True, timeout=20)
        t.ok(r.returncode != 0 and want in r.stderr, "refused at start: %s" % change,
             r.stderr[-300:])


def main():
    require_kbs()
    t = Tap()
    global PKI
    pki = PKI = Pki()
    vault = VaultServer(TOKEN, mounts=("kbs", "secret")).start()
    k = vault_kbs(pki, vault, "kbs-vault", mount_path="/kbs/")
    t.run(check_round_trip, pki, vault, k)
    t.run(check_refusals, pki, vault, k)
    k.stop()
    t.run(check_wrong_token_and_outage, pki, vault)
    t.run(check_default_mount, pki, vault)
    t.run(check_https, pki)
    t.run(check_startup_refusals, pki, vault)
    vault.stop()
    t.done()


if __name__ == "__main__":
    main()
