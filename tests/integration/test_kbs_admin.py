#!/usr/bin/python3
"""KBS admin API and configuration refusals (kbs-protocol.md §5, §1.2, §8, §11.15-19, 29):
Ed25519 bearer JWTs against identity providers (wrong key, expired, issuer, audience, missing
role, wrong role), regex ACLs, DenyAll and InsecureAllowAll, every admin endpoint (resource,
resource-policy, attestation-policy and reference-value through the AS), the sample plugin,
policy parse errors, and the configurations kbs must refuse to start with."""
import json
import os
import subprocess

from cryptography.hazmat.primitives.asymmetric import ed25519

from harness import BIN, Tap, tmpdir
from kbs_testlib import (ALLOW_ALL, ERR, Kbs, Pki, b64u, kbs_config, require_kbs,
                         start_as, to_toml)


def denied(t, resp, variant, needle, name):
    st, h, data = resp
    try:
        body = json.loads(data)
    except ValueError:
        body = {}
    t.ok(st == 401 and body.get("type") == ERR + variant and needle in body.get("detail", ""),
         name, data)


def check_authenticated(t, kbs, pki, asvc):
    ok = pki.admin_token()
    st, _, data = kbs.admin("POST", "/kbs/v0/resource/default/admin/one", b"v1", pki, ok)
    t.ok(st == 200 and data == b"", "admin: resource POST with a valid Ed25519 token", data)
    st, h, data = kbs.admin("POST", "/kbs/v0/resource-policy", {"policy": b64u(ALLOW_ALL)}, pki)
    t.eq(st, 200, "admin: resource-policy POST")
    st, h, data = kbs.admin("GET", "/kbs/v0/resource-policy", None, pki)
    t.ok(st == 200 and json.loads(data) == ["resource-policy"],
         "admin: resource-policy GET lists the policy ids", data)
    pol = b64u("package policy\nimport rego.v1\ndefault allow := true\n")
    st, h, data = kbs.admin("POST", "/kbs/v0/attestation-policy",
                            {"policy_id": "default_cpu", "policy": pol, "type": "rego"}, pki)
    t.eq(st, 200, "admin: attestation-policy POST forwarded to the AS")
    if hasattr(asvc, "policies"):
        t.ok("default allow := true" in asvc.policies.get("default_cpu", ""),
             "admin: the AS received the attestation policy")
    msg = json.dumps({"version": "0.1.0", "type": "sample",
                      "payload": __import__("base64").b64encode(
                          json.dumps({"svn": ["1"]}).encode()).decode()})
    st, h, data = kbs.admin("POST", "/kbs/v0/reference-value", msg, pki)
    t.ok(st == 200 and data == b"", "admin: reference-value POST", data)
    st, h, data = kbs.admin("GET", "/kbs/v0/reference-value/svn", None, pki)
    t.ok(st == 200 and "1" in data.decode(), "admin: reference-value GET returns the value", data)
    denied(t, kbs.admin("GET", "/kbs/v0/reference-value/nosuch", None, pki), "RvpsError",
           "RVPS configuration failed", "admin: unknown reference value -> 401 RvpsError")
    denied(t, kbs.admin("POST", "/kbs/v0/reference-value", "{bad", pki), "RvpsError",
           "RVPS configuration failed", "admin: bad reference value message -> RvpsError")
    denied(t, kbs.admin("POST", "/kbs/v0/resource-policy", {"policy": "%%%"}, pki),
           "ParsePolicyError", "Failed to parse policy", "admin: bad base64 -> ParsePolicyError")
    denied(t, kbs.admin("POST", "/kbs/v0/resource-policy", "not json", pki),
           "ParsePolicyError", "Failed to parse policy", "admin: bad JSON -> ParsePolicyError")
    denied(t, kbs.admin("POST", "/kbs/v0/resource-policy", {"policy": b64u("this is not rego")},
                        pki), "PolicyEngineError", "Policy engine error",
           "admin: policy that does not compile -> PolicyEngineError")
    denied(t, kbs.admin("POST", "/kbs/v0/resource/default/admin/.bad", b"x", pki),
           "PluginInternalError", "Plugin internal error", "admin: invalid path refused")
    denied(t, kbs.admin("DELETE", "/kbs/v0/resource/default/admin/none", None, pki),
           "PluginInternalError", "Plugin internal error", "admin: DELETE of a missing resource")
    st, h, data = kbs.admin("GET", "/kbs/v0/sample/anything", None, pki)
    t.ok(st == 200 and data == b"sample plugin response", "admin: sample plugin answers admins",
         data)


def check_refusals(t, kbs, pki):
    other = ed25519.Ed25519PrivateKey.generate()
    for path, body, variant, prefix in (
            ("/kbs/v0/resource-policy", {"policy": b64u(ALLOW_ALL)}, "AdminAuthAccess",
             "admin access denied for endpoint resource-policy: "),
            ("/kbs/v0/resource/default/admin/x", b"x", "AdminAuthInitialization",
             "failed to initialize [admin] configuration: ")):
        name = path.split("/")[3]
        denied(t, kbs.admin("POST", path, body, pki, pki.admin_token(key=other)), variant,
               prefix + "Admin access denied: Cannot verify token with any of the issuers",
               "admin %s: token signed by another key" % name)
        denied(t, kbs.admin("POST", path, body, pki, pki.admin_token(exp_in=-3600)), variant,
               "Cannot verify token with any of the issuers", "admin %s: expired token" % name)
        denied(t, kbs.admin("POST", path, body, pki, pki.admin_token(iss="someone-else")),
               variant, "Cannot verify token with any of the issuers",
               "admin %s: issuer mismatch" % name)
        denied(t, kbs.admin("POST", path, body, pki, pki.admin_token(aud=("other",))), variant,
               "Cannot verify token with any of the issuers", "admin %s: audience mismatch" % name)
        denied(t, kbs.admin("POST", path, body, pki, pki.admin_token(drop=("role",))), variant,
               "Admin access denied: Missing required `role` claim in JWT",
               "admin %s: missing role" % name)
        denied(t, kbs.admin("POST", path, body, pki, pki.admin_token(role="tester")), variant,
               "Admin access denied: Role tester not allowed for path " + path,
               "admin %s: role not in the ACL" % name)
        st, h, data = kbs.request("POST", path, json.dumps(body) if isinstance(body, dict) else body)
        denied(t, (st, h, data), variant, "Failed to parse HTTP Auth Bearer header",
               "admin %s: no Authorization header" % name)
    denied(t, kbs.admin("GET", "/kbs/v0/sample/x", None, pki, pki.admin_token(key=other)),
           "AdminAuthInitialization", "Cannot verify token", "admin: sample plugin needs admin")


def check_acl_and_modes(t, pki, asvc):
    acls = [{"role": "tester", "allowed_endpoints": "^/kbs/v0/reference-value/[a-zA-Z0-9]+$"}]
    kbs = Kbs(kbs_config(pki, as_addr=asvc.addr, acls=acls), name="kbs-acl").start()
    tok = pki.admin_token(role="tester")
    st, h, data = kbs.admin("GET", "/kbs/v0/reference-value/svn", None, pki, tok)
    t.ok(st == 200 or (st == 401 and b"RvpsError" in data),
         "acl: tester may use reference-value/<id>", data)
    denied(t, kbs.admin("POST", "/kbs/v0/resource-policy", {"policy": b64u(ALLOW_ALL)}, pki, tok),
           "AdminAuthAccess", "Role tester not allowed for path /kbs/v0/resource-policy",
           "acl: tester refused resource-policy")
    denied(t, kbs.admin("GET", "/kbs/v0/reference-value/svn?x=1", None, pki, tok),
           "AdminAuthAccess", "Role tester not allowed for path /kbs/v0/reference-value/svn?x=1",
           "acl: the regex sees the full URI with its query")
    kbs.stop()
    kbs = Kbs(kbs_config(pki, as_addr=asvc.addr, admin="DenyAll"), name="kbs-denyall").start()
    denied(t, kbs.admin("POST", "/kbs/v0/resource-policy", {"policy": b64u(ALLOW_ALL)}, pki),
           "AdminAuthAccess", "Admin access denied: Admin access denied as DenyAll "
           "authorization_mode is enabled", "DenyAll refuses a valid token")
    kbs.stop()
    kbs = Kbs(kbs_config(pki, as_addr=asvc.addr, admin="InsecureAllowAll"),
              name="kbs-allowall").start()
    st, h, data = kbs.request("POST", "/kbs/v0/resource/a/b/c", b"x")
    t.eq(st, 200, "InsecureAllowAll: no token needed")
    kbs.stop()
    # JWK set identity provider with kid
    d = tmpdir("admin-jwks-")
    k = ed25519.Ed25519PrivateKey.generate()
    from cryptography.hazmat.primitives import serialization
    raw = k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    with open(os.path.join(d, "jwks.json"), "w") as f:
        json.dump({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": b64u(raw), "alg": "EdDSA",
                             "kid": "admin-1"}]}, f)
    idps = [{"jwk_set_uri": "file://" + os.path.join(d, "jwks.json")}]
    kbs = Kbs(kbs_config(pki, as_addr=asvc.addr, idps=idps), name="kbs-jwks-admin").start()
    from kbs_testlib import make_jwt
    import time
    tok = make_jwt({"alg": "EdDSA", "typ": "JWT", "kid": "admin-1"},
                   {"role": "admin", "exp": int(time.time()) + 60}, k)
    st, h, data = kbs.admin("POST", "/kbs/v0/resource/a/b/c", b"x", pki, tok)
    t.eq(st, 200, "jwk_set_uri: token with a known kid accepted")
    tok = make_jwt({"alg": "EdDSA", "typ": "JWT", "kid": "admin-2"},
                   {"role": "admin", "exp": int(time.time()) + 60}, k)
    st, h, data = kbs.admin("POST", "/kbs/v0/resource/a/b/c", b"x", pki, tok)
    t.eq(st, 401, "jwk_set_uri: unknown kid refused")
    kbs.stop()


def start_fails(t, cfg, needle, name, raw=None):
    d = tmpdir("kbs-bad-")
    ext = ".toml"
    path = os.path.join(d, "kbs-config" + ext)
    with open(path, "w") as f:
        if raw is not None:
            f.write(raw)
        else:
            f.write(to_toml(cfg) if ext == ".toml" else json.dumps(cfg))
    p = subprocess.run([os.path.join(BIN, "kbs"), "--config-file", path], capture_output=True,
                       text=True, timeout=20)
    t.ok(p.returncode != 0 and needle in p.stderr, "refuses to start: " + name, p.stderr[-500:])


def check_start_refusals(t, pki):
    base = kbs_config(pki, as_addr="http://127.0.0.1:1")

    def mod(f):
        c = json.loads(json.dumps(base))
        f(c)
        return c
    start_fails(t, mod(lambda c: c["admin"]["authorization"]["regex_acl"]["acls"][0].update(
        allowed_endpoints="/kbs/.*")), "Admin Role regex must be anchored", "unanchored ACL regex")
    start_fails(t, mod(lambda c: c["admin"]["authorization"]["regex_acl"]["acls"][0].update(
        allowed_endpoints="^/kbs/.*")), "anchored", "ACL regex without $")
    start_fails(t, mod(lambda c: c["admin"]["authentication"]["bearer_jwt"].update(
        identity_providers=[])), "identity_providers", "empty identity provider list")
    start_fails(t, mod(lambda c: c["admin"].update(authorization_mode="AllowAll")),
                "AllowAll", "authorization_mode AllowAll")
    start_fails(t, mod(lambda c: c["admin"].update(type="Simple")), "unknown key `type`",
                "legacy [admin] type key")
    start_fails(t, mod(lambda c: c.pop("admin")), "[admin]", "no [admin] section")
    start_fails(t, mod(lambda c: c.update(attestation_token={})), "trust material",
                "no token trust material")
    start_fails(t, mod(lambda c: c["http_server"].update(tls_min_version="1.3",
                                                         tls_max_version="1.2")),
                "exceeds", "tls_min_version 1.3 with tls_max_version 1.2")
    start_fails(t, mod(lambda c: c["http_server"].update(insecure_http=False)),
                "private_key and certificate", "HTTPS without key and certificate")
    start_fails(t, mod(lambda c: c["attestation_service"].update(type="coco_as_nonesuch")),
                "unknown type", "an unknown [attestation_service] type")
    start_fails(t, mod(lambda c: c.pop("http_server")), "[http_server]", "no [http_server]")
    start_fails(t, mod(lambda c: c["plugins"].append({"name": "nebula-ca"})), "nebula-ca",
                "unknown plugin")
    start_fails(t, None, "line", "syntax error in the file",
                raw="[http_server\n")


def main():
    require_kbs()
    t = Tap()
    pki = Pki()
    asvc = start_as(pki)
    kbs = Kbs(kbs_config(pki, as_addr=asvc.addr, plugins=("resource", "sample"))).start()
    t.run(check_authenticated, kbs, pki, asvc)
    t.run(check_refusals, kbs, pki)
    t.ok(kbs.alive(), "kbs survived")
    kbs.stop()
    t.run(check_acl_and_modes, pki, asvc)
    t.run(check_start_refusals, pki)
    t.done()


if __name__ == "__main__":
    main()
