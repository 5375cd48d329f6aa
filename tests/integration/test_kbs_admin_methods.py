#!/usr/bin/python3
"""ACL entries may name methods (issue 14, W6): a role whose ACL regex was meant for reads
(`allowed_methods = ["GET"]`) reads the resource policy but cannot POST a new one nor write or
delete a resource on the same path; an entry without allowed_methods still grants every method
as Trustee does; a misspelt method stops the kbs at start-up with a sentence."""
import json
import os
import subprocess

from harness import BIN, Tap
from kbs_testlib import ALLOW_ALL, Kbs, Pki, b64u, kbs_config, require_kbs, to_toml


def main():
    require_kbs()
    t = Tap()
    pki = Pki()
    acls = [{"role": "admin", "allowed_endpoints": "^/kbs/.+$"},
            {"role": "reader", "allowed_endpoints": "^/kbs/v0/resource-policy$",
             "allowed_methods": ["GET"]},
            {"role": "reader", "allowed_endpoints": "^/kbs/v0/resource/.+$",
             "allowed_methods": ["get"]},
            {"role": "writer", "allowed_endpoints": "^/kbs/v0/resource/.+$",
             "allowed_methods": ["POST", "DELETE"]}]
    kbs = Kbs(kbs_config(pki, as_addr=None, acls=acls), name="kbs-admin-methods").start()
    kbs.set_policy(pki, ALLOW_ALL)
    reader, writer = pki.admin_token(role="reader"), pki.admin_token(role="writer")

    st, _, data = kbs.admin("GET", "/kbs/v0/resource-policy", None, pki, token=reader)
    t.ok(st == 200 and "resource-policy" in json.loads(data),
         "a GET-only role reads the resource policy list", data)
    st, _, data = kbs.admin("POST", "/kbs/v0/resource-policy", {"policy": b64u(b"package x")},
                            pki, token=reader)
    body = json.loads(data)
    t.ok(st == 401 and "Role reader not allowed for path /kbs/v0/resource-policy with method "
         "POST" in body.get("detail", ""), "the same role cannot POST the resource policy", body)
    st, _, data = kbs.admin("POST", "/kbs/v0/resource/default/ro/key", b"overwrite", pki,
                            token=reader)
    body = json.loads(data)
    t.ok(st == 401 and "with method POST" in body.get("detail", ""),
         "a GET-only role cannot write a resource", body)
    st, _, data = kbs.admin("DELETE", "/kbs/v0/resource/default/ro/key", None, pki, token=reader)
    t.eq(st, 401, "nor delete one")

    st, _, data = kbs.admin("POST", "/kbs/v0/resource/default/ro/key", b"v1", pki, token=writer)
    t.eq(st, 200, "a role listing POST writes a resource")
    st, _, data = kbs.admin("POST", "/kbs/v0/resource-policy", {"policy": b64u(b"package x")},
                            pki, token=writer)
    body = json.loads(data)
    t.ok(st == 401 and body.get("detail", "").endswith(
        "Role writer not allowed for path /kbs/v0/resource-policy"),
        "a path outside every entry keeps Trustee's refusal text", body)
    st, _, _ = kbs.admin("POST", "/kbs/v0/resource-policy",
                         {"policy": b64u(ALLOW_ALL.encode())}, pki)
    t.eq(st, 200, "an entry without allowed_methods grants every method, as in Trustee")
    t.ok(kbs.alive(), "kbs still serving")
    kbs.stop()

    bad = kbs_config(pki, as_addr=None, acls=[{"role": "r", "allowed_endpoints": "^/kbs/.+$",
                                               "allowed_methods": ["FETCH"]}])
    path = os.path.join(pki.dir, "bad-methods.toml")
    with open(path, "w") as f:
        f.write(to_toml(bad))
    r = subprocess.run([os.path.join(BIN, "kbs"), "--config-file", path], capture_output=True,
                       timeout=20)
    out = (r.stdout + r.stderr).decode(errors="replace")
    t.ok(r.returncode != 0 and 'allowed_methods: "FETCH" is not one of' in out,
         "an unknown method in allowed_methods stops the kbs with a sentence", out[-400:])
    t.done()


if __name__ == "__main__":
    main()
