"""The kbs `external` plugin (kbs-protocol.md §7.1) against an example gRPC backend
(plugin_backend.py: an echo and a small secret store), in plaintext and over TLS with
ca_cert_path: the backend name stripped from the path, query and body forwarded, admin gating
decided by the backend (ValidateAuth), the attestation path (token, resource policy) and a JWE
when the backend asks for one (NeedsEncryption), per-backend timeouts, errors as 401
PluginInternalError, kbs_plugin_* metrics, start-up refusals (a backend down, https without
ca_cert_path, a name used twice), and Trustee's external-plugin*.toml configs (built-in AS, only addresses and the CA path
rewritten)."""
import json
import os
import subprocess
import urllib.parse

import harness
from harness import BIN, tmpdir
from kbs_testlib import (ERR, Attester, Kbs, Pki, b64u, kbs_config, require_kbs, scrape,
                         start_as)
from plugin_backend import PluginBackend

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
POLICY = ('package policy\nimport rego.v1\ndefault allow := false\n'
          'allow if data.plugin == "external"\nallow if data.plugin == "resource"\n')


def ext_cfg(pki, as_addr, backends):
    cfg = kbs_config(pki, as_addr=as_addr)
    cfg["plugins"] = [{"name": "resource"}, {"name": "external", "backends": backends}]
    return cfg


def refused_start(cfg, name):
    """Runs kbs with cfg expecting it to refuse to start; returns its output."""
    from kbs_testlib import to_toml
    d = tmpdir("kbs-ext-bad-")
    path = os.path.join(d, "kbs.toml")
    cfg = json.loads(json.dumps(cfg))
    cfg["http_server"]["sockets"] = ["127.0.0.1:0"]
    open(path, "w").write(to_toml(cfg))
    p = subprocess.run([os.path.join(BIN, "kbs"), "--config-file", path], capture_output=True,
                       timeout=30)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def main():
    require_kbs()
    t = harness.Tap()
    pki = Pki()
    key, chain = pki.server_cert("plugin")
    plain = PluginBackend()
    tls = PluginBackend(tls=(key, chain))
    asd = start_as(pki)
    backends = [{"name": "echo", "endpoint": plain.endpoint, "timeout_ms": 1000},
                {"name": "echo-tls", "endpoint": tls.endpoint,
                 "ca_cert_path": pki.path("ca-cert.pem"), "timeout_ms": 5000}]
    kbs = Kbs(ext_cfg(pki, asd.addr, backends), name="kbs-external").start()
    t.ok(True, "kbs starts with an external plugin of two backends (plaintext and TLS)")
    kbs.set_policy(pki, POLICY)

    a = Attester(kbs)
    a.rcar()
    ck = {"Cookie": a.cookie}

    st, h, body = kbs.request("GET", "/kbs/v0/external/echo/hello/world?x=1&y=two", None, ck)
    echo = json.loads(body) if st == 200 else {}
    t.ok(st == 200 and h.get("content-type", "").startswith("text/xml") and
         echo.get("path") == ["hello", "world"] and echo.get("query") == {"x": "1", "y": "two"} and
         echo.get("method") == "GET",
         "attested GET reaches the backend with its name stripped, query forwarded, raw answer",
         (st, body))
    st, _, body = kbs.request("GET", "/kbs/v0/external/echo-tls/over/tls", None, ck)
    t.ok(st == 200 and json.loads(body)["path"] == ["over", "tls"],
         "the same over TLS with ca_cert_path", body)

    st, _, body = kbs.request("POST", "/kbs/v0/external/echo/secret/k1", b"s3cret")
    t.ok(st == 401 and b"AdminAuthAccess" in body,
         "a POST the backend marks admin-only is refused without admin credentials", body)
    st, _, body = kbs.admin("POST", "/kbs/v0/external/echo/secret/k1", b"s3cret", pki)
    t.ok(st == 200 and body == b"stored" and plain.secrets.get("k1") == b"s3cret",
         "with admin credentials the body reaches Handle and its answer comes back raw", body)
    st, _, data = kbs.request("GET", "/kbs/v0/external/echo/secret/k1", None, ck)
    t.ok(st == 200 and a.decrypt(data) == b"s3cret",
         "a GET the backend wants encrypted comes back as a JWE to the guest's key", data[:200])
    st, _, data = kbs.request("GET", "/kbs/v0/external/echo/secret/k1")
    t.ok(st == 401 and b"TokenNotFound" in data, "the attestation path needs a token", data)
    kbs.set_policy(pki, 'package policy\nimport rego.v1\ndefault allow := false\n'
                        'allow if data.plugin == "resource"\n')
    st, _, data = kbs.request("GET", "/kbs/v0/external/echo/secret/k1", None, ck)
    t.ok(st == 401 and b"PolicyDeny" in data,
         "the resource policy gates external calls (data.plugin is \"external\")", data)
    kbs.set_policy(pki, POLICY)

    def plugin_err(path, want, name):
        st, _, body = kbs.request("GET", path, None, ck)
        ok = st == 401 and want in body
        try:
            ok = ok and json.loads(body)["type"] == ERR + "PluginInternalError"
        except ValueError:
            ok = False
        t.ok(ok, name, body)

    plugin_err("/kbs/v0/external/nobody/x", b"unknown backend", "an unknown backend: 401")
    plugin_err("/kbs/v0/external/echo/secret/none", b"status 404",
               "a backend status other than 2xx: 401 naming it")
    plugin_err("/kbs/v0/external/echo/fail", b"status 500", "a 500 from Handle: 401")
    plugin_err("/kbs/v0/external/echo/slow", b"within 1000 ms",
               "a backend slower than its timeout_ms: 401 naming the deadline")
    st, _, _ = kbs.request("GET", "/kbs/v0/external/echo-tls/slow", None, ck)
    t.ok(st == 200, "the TLS backend's own timeout_ms (5000) lets the same call finish")
    st, _, body = kbs.admin("DELETE", "/kbs/v0/external/echo/secret/k1", None, pki)
    t.ok(st == 200 and "k1" not in plain.secrets, "an admin DELETE reaches the backend", body)

    m = scrape(kbs)
    req = m.get(("kbs_plugin_requests_total", (("plugin_name", "echo"),)), 0)
    err = m.get(("kbs_plugin_errors_total", (("plugin_name", "echo"),)), 0)
    req_tls = m.get(("kbs_plugin_requests_total", (("plugin_name", "echo-tls"),)), 0)
    t.ok(req >= 10 and err >= 3 and req_tls >= 2,
         "kbs_plugin_requests_total and kbs_plugin_errors_total count per backend",
         (req, err, req_tls))
    cnt = m.get(("kbs_plugin_request_duration_seconds_count", (("plugin_name", "echo-tls"),)), 0)
    slow = next((v for (n, lab), v in m.items()
                 if n == "kbs_plugin_request_duration_seconds_bucket" and
                 dict(lab).get("plugin_name") == "echo-tls" and
                 dict(lab).get("le") not in (None, "+Inf") and float(dict(lab)["le"]) == 1.0), -1)
    t.ok(cnt >= 2 and 0 <= slow < cnt,
         "kbs_plugin_request_duration_seconds observes Handle per backend (the 3 s call is "
         "above the 1 s bucket)", (cnt, slow))
    kbs.stop()

    # ------------------------------------------------------------- start-up refusals
    down = PluginBackend()
    down_ep = down.endpoint
    down.stop()
    rc, out = refused_start(ext_cfg(pki, asd.addr, [{"name": "gone", "endpoint": down_ep}]), "down")
    t.ok(rc != 0 and "unreachable" in out and "gone" in out,
         "a backend that is down stops the start with its name", out[-400:])
    rc, out = refused_start(ext_cfg(pki, asd.addr, [{"name": "x", "endpoint": tls.endpoint}]), "noca")
    t.ok(rc != 0 and "ca_cert_path" in out, "https:// without ca_cert_path is refused", out[-300:])
    rc, out = refused_start(ext_cfg(pki, asd.addr, [backends[0], dict(backends[0])]), "dup")
    t.ok(rc != 0 and "used twice" in out, "a backend name used twice is refused", out[-300:])
    rc, out = refused_start(ext_cfg(pki, asd.addr, []), "empty")
    t.ok(rc != 0 and "non-empty" in out, "an empty backends list is refused", out[-300:])

    # ------------------------------------------------------------- Trustee's configs
    ca = pki.path("ca-cert.pem")
    for name, be in (("trustee-external-plugin.toml", plain), ("trustee-external-plugin-tls.toml", tls)):
        text = open(os.path.join(CONFIGS, name)).read()
        text = (text.replace("127.0.0.1:8085", "127.0.0.1:@PORT@")
                .replace("127.0.0.1:8086", "127.0.0.1:@PORT@")
                .replace("http://127.0.0.1:50051", be.endpoint)
                .replace("https://127.0.0.1:50052", be.endpoint)
                .replace("./work/echo-plugin-ca.pem", ca))
        k = Kbs(text=text, name=name[:-5]).start()
        st, _, body = k.request("POST", "/kbs/v0/external/echo-test/secret/t", b"v")
        t.ok(st == 200 and body == b"stored",
             "Trustee's %s starts and its echo-test backend answers" % name, body)
        k.stop()
    # the resource variants: a backend named "resource", tokens from the built-in AS signed by
    # the test PKI's token key, a sample guest through the whole flow
    for name, be in (("trustee-external-plugin-resource.toml", plain),
                     ("trustee-external-plugin-resource-tls.toml", tls)):
        text = open(os.path.join(CONFIGS, name)).read()
        text = (text.replace("127.0.0.1:8088", "127.0.0.1:@PORT@")
                .replace("127.0.0.1:8089", "127.0.0.1:@PORT@")
                .replace("http://127.0.0.1:50053", be.endpoint)
                .replace("https://127.0.0.1:50054", be.endpoint)
                .replace("./work/echo-plugin-ca.pem", ca)
                .replace("./work/ca-cert.pem", ca)
                .replace("./work/token.key", pki.path("token.key"))
                .replace("./work/token-cert-chain.pem", pki.path("token-cert-chain.pem")))
        k = Kbs(text=text, name=name[:-5]).start()
        k.request("POST", "/kbs/v0/resource-policy", {"policy": b64u(POLICY)})
        st, _, body = k.request("POST", "/kbs/v0/external/resource/secret/r1", b"ext resource")
        g = Attester(k)
        g.rcar()
        st2, _, data = k.request("GET", "/kbs/v0/external/resource/secret/r1", None,
                                 {"Cookie": g.cookie})
        t.ok(st == 200 and st2 == 200 and g.decrypt(data) == b"ext resource",
             "Trustee's %s starts with its built-in AS; a sample guest attests and gets the "
             "backend's secret as a JWE" % name, (st, body, st2, data[:200]))
        k.stop()
    plain.stop()
    tls.stop()
    asd.stop()
    t.done()


if __name__ == "__main__":
    main()
