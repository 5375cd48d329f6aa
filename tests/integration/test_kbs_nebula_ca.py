"""The kbs `nebula-ca` plugin (kbs-protocol.md §7.1) with Debian's nebula-cert: a self-signed CA
made under work_dir at start-up (kept across restarts), a credential issued to an attested node
as a JWE whose certificate nebula-cert itself verifies and prints with the requested name, IP
and groups; hostile inputs (flags as names, bad CIDRs, lists, durations) refused with a reason
before any command runs; no per-request directory left behind."""
import json
import os
import shutil
import subprocess
import urllib.parse

import harness
from harness import tmpdir
from kbs_testlib import Attester, Kbs, Pki, kbs_config, require_kbs, start_as

POLICY = ('package policy\nimport rego.v1\ndefault allow := false\n'
          'allow if data.plugin == "nebula-ca"\n')


def main():
    require_kbs()
    t = harness.Tap()
    nc = shutil.which("nebula-cert")
    if not nc:
        t.skip("nebula-ca plugin", "nebula-cert is not installed (make deps: nebula)")
        t.done()
    d = tmpdir("kbs-nebula-")
    wd = os.path.join(d, "work")
    pki = Pki()
    asd = start_as(pki)
    cfg = kbs_config(pki, as_addr=asd.addr)
    cfg["plugins"] = [{"name": "nebula-ca", "work_dir": wd, "nebula_cert_bin_path": nc,
                       "ca_config": {"name": "Test Nebula CA", "duration": "48h",
                                     "groups": "web,db,ops"}}]
    kbs = Kbs(cfg, name="kbs-nebula").start()
    ca_crt = os.path.join(wd, "ca", "ca.crt")
    t.ok(os.path.exists(ca_crt) and os.path.exists(os.path.join(wd, "ca", "ca.key")),
         "start-up creates a self-signed Nebula CA under work_dir/ca")
    ca_before = open(ca_crt, "rb").read()
    kbs.set_policy(pki, POLICY)
    a = Attester(kbs)
    a.rcar()
    ck = {"Cookie": a.cookie}

    def cred(q, cookie=True):
        return kbs.request("GET", "/kbs/v0/nebula-ca/credential?" + urllib.parse.urlencode(q),
                           None, ck if cookie else {})

    st, _, data = cred({"name": "node1", "ip": "10.1.0.5/16", "groups": "web,db",
                        "duration": "1h30m"})
    ok = st == 200
    if ok:
        c = json.loads(a.decrypt(data))
        node_crt = os.path.join(d, "node.crt")
        open(node_crt, "wb").write(bytes(c["node_crt"]))
        v = subprocess.run([nc, "verify", "-ca", ca_crt, "-crt", node_crt], capture_output=True)
        p = subprocess.run([nc, "print", "-json", "-path", node_crt], capture_output=True)
        det = json.loads(p.stdout)["details"] if p.returncode == 0 else {}
        ok = (v.returncode == 0 and det.get("name") == "node1" and
              det.get("ips") == ["10.1.0.5/16"] and det.get("groups") == ["web", "db"] and
              bytes(c["ca_crt"]) == ca_before and
              b"PRIVATE KEY" in bytes(c["node_key"]))
    t.ok(ok, "an attested node gets its credential as a JWE; nebula-cert verifies it against "
         "the CA and prints the requested name, IP and groups", data[:200])
    st, _, data = cred({"name": "node1", "ip": "10.1.0.5/16"}, cookie=False)
    t.ok(st == 401 and b"TokenNotFound" in data, "no token, no credential", data)

    bad = [({"name": "-ca-key", "ip": "10.1.0.6/16"}, b"name", "a flag as the name"),
           ({"name": "a b", "ip": "10.1.0.6/16"}, b"name", "a name with a space"),
           ({"ip": "10.1.0.6/16"}, b"name", "no name"),
           ({"name": "n", "ip": "10.1.0.6"}, b"ip", "an IP without a prefix length"),
           ({"name": "n", "ip": "10.1.0.6/33"}, b"ip", "a prefix longer than 32"),
           ({"name": "n", "ip": "10.1.0.6/16;id"}, b"ip", "an IP with trailing text"),
           ({"name": "n", "ip": "10.1.0.6/16", "groups": "a,,b"}, b"groups", "an empty group"),
           ({"name": "n", "ip": "10.1.0.6/16", "groups": "-x"}, b"groups", "a flag as a group"),
           ({"name": "n", "ip": "10.1.0.6/16", "duration": "1d"}, b"duration",
            "a duration in days (not Go's form)"),
           ({"name": "n", "ip": "10.1.0.6/16", "subnets": "10.0.0.0/8,x"}, b"subnets",
            "a subnet that is not a CIDR")]
    for q, word, name in bad:
        st, _, data = cred(q)
        t.ok(st == 401 and b"PluginInternalError" in data and word in data,
             "refused before nebula-cert runs: %s" % name, data)
    st, _, data = kbs.request("POST", "/kbs/v0/nebula-ca/credential?name=n&ip=10.1.0.7/16", b"",
                              ck)
    t.ok(st == 401, "only GET is served", data)
    left = [e for e in os.listdir(wd) if e != "ca"]
    t.eq(left, [], "no per-request directory is left in work_dir")

    kbs.stop()
    kbs.start()
    t.ok(open(ca_crt, "rb").read() == ca_before, "a restart keeps the CA")
    kbs.stop()
    asd.stop()
    t.done()


if __name__ == "__main__":
    main()
