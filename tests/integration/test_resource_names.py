#!/usr/bin/python3
"""A resource name a LocalFs store cannot hold (issue 14 W3): a tag of 256 or more characters
becomes a file name longer than NAME_MAX. Reading or writing it through the real kbs is a
refusal (401 PluginInternalError) whose detail says the name is too long, names no server path
and does not call it an outage; names that fit still work, and the kbs keeps serving."""
import json
import os

from harness import Tap, tmpdir
from kbs_testlib import ALLOW_ALL, Attester, Kbs, Pki, kbs_config, require_kbs, start_as


def check_refusal(t, st, data, store, what):
    try:
        detail = json.loads(data).get("detail", "")
    except ValueError:
        detail = data.decode(errors="replace")
    t.ok(st == 401 and "too long" in detail, "%s: 401 saying the name is too long" % what,
         (st, detail))
    t.ok(store not in detail and "/opt/" not in detail and "<path>" not in detail,
         "%s: the detail names no server path" % what, detail)
    t.ok("unavailable" not in detail and "try again" not in detail,
         "%s: not called a retryable outage" % what, detail)


def test_long_tag_on_local_fs(t, pki):
    store = tmpdir("kbs-localfs-")
    asd = start_as(pki)
    cfg = kbs_config(pki, as_addr=asd.addr,
                     storage={"storage_type": "LocalFs",
                              "backends": {"local_fs": {"dir_path": store}}})
    kbs = Kbs(cfg, name="kbs-longname").start()
    try:
        kbs.set_policy(pki, ALLOW_ALL)
        long_tag = "t" * 300
        st, _, data = kbs.admin("POST", "/kbs/v0/resource/default/key/" + long_tag, b"x", pki)
        check_refusal(t, st, data, store, "admin write of a 300-character tag")
        a = Attester(kbs)
        a.rcar()
        st, _, data = a.get("default/key/" + long_tag)
        check_refusal(t, st, data, store, "attested read of a 300-character tag")
        st, _, data = a.get("default/key/" + "u" * 256)
        check_refusal(t, st, data, store, "attested read of a 256-character tag")
        fits = "v" * 220
        kbs.set_resource(pki, "default/key/" + fits, b"fits")
        st, _, body = a.get("default/key/" + fits)
        t.ok(st == 200 and a.decrypt(body) == b"fits",
             "a 220-character tag still fits and is released", (st, body[:200]))
        log = kbs.log_text()
        t.ok("too long for the LocalFs store" in log,
             "the kbs log keeps the storage sentence for the operator")
        t.ok(kbs.alive(), "the kbs keeps serving")
    finally:
        kbs.stop()
        asd.stop()


def main():
    require_kbs()
    t = Tap()
    pki = Pki()
    t.run(test_long_tag_on_local_fs, pki)
    t.done()


if __name__ == "__main__":
    main()
