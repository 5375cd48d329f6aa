#!/usr/bin/python3
"""Configuration names and formats as Trustee's `config` crate reads them: each daemon started
with `--config-file cfg/NAME` where only cfg/NAME.toml, .json, .yaml or .yml exists, and with
YAML configurations written by an independent emitter (python3-yaml) from the same documents
the other tests write as TOML or JSON: the kbs serving its admin API and a full RCAR through
grpc-as and rvps, all three configured in YAML; and the refusals a wrong name or a broken YAML
file gets (the names tried, the line)."""
import base64
import json
import os
import subprocess

import yaml

from harness import BIN, Daemon, Redis, Tap, free_port, tmpdir
from kbs_testlib import ALLOW_ALL, Attester, KbsClient, Pki, b64u, kbs_config, require_kbs


def write(d, name, doc, fmt):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        if fmt == "json":
            json.dump(doc, f)
        else:
            yaml.safe_dump(doc, f, default_flow_style=False)
    return path


class Kbs(KbsClient, Daemon):
    def __init__(self, args, port, name):
        self.port = port
        Daemon.__init__(self, name, [os.path.join(BIN, "kbs")] + args, port)


def start_as_stack(t, pki, d):
    """rvps (cfg/rvps.yml) and grpc-as (cfg/as.yaml), both named without extension."""
    redis = Redis().start()
    storage = {"storage_type": "Redis", "backends": {"redis": {"url": redis.url}}}
    write(d, "rvps.yml", {"storage": storage}, "yaml")
    rport = free_port()
    rvps = Daemon("rvps", [os.path.join(BIN, "rvps"), "--config", os.path.join(d, "rvps"),
                           "--address", "127.0.0.1:%d" % rport], rport).start()
    t.ok(rvps.alive(), "rvps --config cfg/rvps finds cfg/rvps.yml (YAML)")
    write(d, "as.yaml", {
        "storage_backend": storage,
        "rvps_config": {"type": "GrpcRemote", "address": "127.0.0.1:%d" % rport},
        "attestation_token_broker": {"signer": {
            "key_path": pki.path("token.key"), "cert_path": pki.path("token-cert-chain.pem")}}},
        "yaml")
    aport = free_port()
    gas = Daemon("grpc-as", [os.path.join(BIN, "grpc-as"), "--socket", "127.0.0.1:%d" % aport,
                             "--config-file", os.path.join(d, "as")], aport).start()
    t.ok(gas.alive(), "grpc-as --config-file cfg/as finds cfg/as.yaml (YAML)")
    return "http://127.0.0.1:%d" % aport, [gas, rvps, redis]


def check_kbs_yaml_rcar(t, pki, d, as_addr):
    port = free_port()
    cfg = kbs_config(pki, as_addr=as_addr, port=port)
    write(d, "kbs-config.yaml", cfg, "yaml")
    kbs = Kbs(["--config-file", os.path.join(d, "kbs-config")], port, "kbs-yaml").start()
    kbs.set_policy(pki, ALLOW_ALL)
    kbs.set_resource(pki, "default/yaml/key", b"from a yaml config")
    a = Attester(kbs)
    a.rcar()
    st, _, data = a.get("default/yaml/key")
    t.ok(st == 200 and a.decrypt(data) == b"from a yaml config",
         "kbs -c cfg/kbs-config (kbs-config.yaml): admin, RCAR through grpc-as + rvps, read",
         data[:200])
    kbs.stop()


def check_kbs_extension_order(t, pki, d):
    """With several candidates the first of .toml, .json, .yaml, .yml wins; the exact name
    wins over all."""
    port = free_port()
    good = kbs_config(pki, admin="InsecureAllowAll", port=port)
    bad = {"http_server": {"sockets": ["not an address"]}}
    sub = tmpdir("kbs-order-")
    write(sub, "k.json", good, "json")
    write(sub, "k.yaml", bad, "yaml")
    write(sub, "k.yml", bad, "yaml")
    kbs = Kbs(["-c", os.path.join(sub, "k")], port, "kbs-order").start()
    st, _, _ = kbs.request("POST", "/kbs/v0/resource-policy",
                           json.dumps({"policy": b64u(ALLOW_ALL)}))
    t.eq(st, 200, "kbs -c cfg/k takes cfg/k.json before cfg/k.yaml and cfg/k.yml")
    kbs.stop()
    p = subprocess.run([os.path.join(BIN, "kbs"), "-c", os.path.join(sub, "k.yaml")],
                       capture_output=True, text=True, timeout=20)
    t.ok(p.returncode != 0 and "k.yaml" in p.stderr,
         "an exact name is read as given (k.yaml, not k.json)", p.stderr[-300:])


def check_refusals(t, d):
    kbs = os.path.join(BIN, "kbs")
    p = subprocess.run([kbs, "-c", os.path.join(d, "nothing-here")], capture_output=True,
                       text=True, timeout=20)
    t.ok(p.returncode != 0 and "nothing-here" in p.stderr and ".yaml" in p.stderr,
         "a name with no file under any extension: the names tried", p.stderr[-300:])
    with open(os.path.join(d, "broken.yaml"), "w") as f:
        f.write("http_server:\n  sockets: [\"127.0.0.1:1\"]\nhttp_server:\n  x: 1\n")
    p = subprocess.run([kbs, "-c", os.path.join(d, "broken")], capture_output=True, text=True,
                       timeout=20)
    t.ok(p.returncode != 0 and "broken.yaml" in p.stderr and "line 3" in p.stderr and
         "duplicate key" in p.stderr, "a duplicate key in YAML: file, line and key",
         p.stderr[-300:])
    with open(os.path.join(d, "alias.yml"), "w") as f:
        f.write("a: &x [1]\nb: *x\n")
    p = subprocess.run([os.path.join(BIN, "grpc-as"), "--socket", "127.0.0.1:%d" % free_port(),
                        "-c", os.path.join(d, "alias")], capture_output=True, text=True,
                       timeout=20)
    t.ok(p.returncode != 0 and "aliases" in p.stderr, "grpc-as refuses a YAML alias",
         p.stderr[-300:])


def main():
    require_kbs()
    t = Tap()
    pki = Pki()
    d = tmpdir("cfg-names-")
    as_addr, procs = start_as_stack(t, pki, d)
    t.run(check_kbs_yaml_rcar, pki, d, as_addr)
    t.run(check_kbs_extension_order, pki, d)
    t.run(check_refusals, d)
    for p in procs:
        p.stop()
    t.done()


if __name__ == "__main__":
    main()
