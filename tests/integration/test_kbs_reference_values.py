#!/usr/bin/python3
"""Signed reference values through the KBS admin API: `kbs-client config set-reference-value
--type corim|swid --payload-file F` -> kbs POST /kbs/v0/reference-value -> grpc-as -> rvps
(GrpcRemote) on a real redis-server, the rvps requiring signatures at a pinned clock.
Veraison's COSE-signed CoRIM and an NVIDIA RIM register and read back through the KBS; a
CoRIM with a flipped byte, an unsigned one and a disabled sample message are refused with
their reasons through the whole chain, storing nothing."""
import json
import os
import subprocess

from harness import BIN, Daemon, Redis, Tap, free_port, tmpdir
from kbs_testlib import Kbs, Pki, kbs_config, require_kbs
from test_rvps_supply_chain import (NVTRUST, PINNED, RIM_ROOT, RV, RV_VALUE, VERAISON,
                                    veraison_key)
from harness import testdata

CLIENT = os.path.join(BIN, "kbs-client")
RIM = "1010_0200_882_96005E0001_test_no_gpu.swidtag"


def start_stack(d, pub_path):
    redis = Redis().start()
    storage = {"storage_type": "Redis", "backends": {"redis": {"url": redis.url}}}
    rport, aport = free_port(), free_port()
    with open(os.path.join(d, "rvps.json"), "w") as f:
        json.dump({"storage": storage, "verification_time": PINNED,
                   "extractors": {"corim_extractor": {"trusted_keys": [pub_path],
                                                      "require_signature": True},
                                  "swid_extractor": {"trust_anchors": [RIM_ROOT],
                                                     "require_signature": True},
                                  "sample_extractor": {"enabled": False}}}, f)
    rvps = Daemon("rvps", [os.path.join(BIN, "rvps"), "--config", os.path.join(d, "rvps.json"),
                           "--address", "127.0.0.1:%d" % rport], rport).start()
    pki = Pki()
    with open(os.path.join(d, "as.json"), "w") as f:
        json.dump({"storage_backend": storage,
                   "rvps_config": {"type": "GrpcRemote", "address": "127.0.0.1:%d" % rport},
                   "attestation_token_broker": {"signer": {
                       "key_path": pki.path("token.key"),
                       "cert_path": pki.path("token-cert-chain.pem")}}}, f)
    gas = Daemon("grpc-as", [os.path.join(BIN, "grpc-as"), "--socket", "127.0.0.1:%d" % aport,
                             "--config-file", os.path.join(d, "as.json")], aport).start()
    kbs = Kbs(kbs_config(pki, as_addr="http://127.0.0.1:%d" % aport)).start()
    return pki, kbs, redis, [kbs, gas, rvps, redis]


def client(kbs, token_file, *args):
    p = subprocess.run([CLIENT, "--url", "http://127.0.0.1:%d" % kbs.port, "config",
                        "--admin-token-file", token_file] + list(args),
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def main():
    require_kbs()
    t = Tap()
    d = tmpdir("kbs-rv-")
    jwk, _priv = veraison_key()
    pub_path = os.path.join(d, "signer.jwk")
    with open(pub_path, "w") as f:
        json.dump({k: jwk[k] for k in ("kty", "crv", "x", "y", "kid")}, f)
    signed_path = os.path.join(VERAISON, "signed-good-corim.cbor")
    signed = open(signed_path, "rb").read()
    flipped = bytearray(signed)
    flipped[len(flipped) // 2] ^= 1
    files = {"flipped.cbor": bytes(flipped),
             "unsigned.cbor": open(testdata("rvps", "corim", "trustee",
                                            "unsigned-example-corim.cbor"), "rb").read(),
             "sample.json": b'{"x":["y"]}'}
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    pki, kbs, redis, procs = start_stack(d, pub_path)
    try:
        tok = os.path.join(d, "admin-token")
        with open(tok, "w") as f:
            f.write(pki.admin_token())
        for what, typ, name, want in [
                ("a CoRIM with a flipped byte", "corim", "flipped.cbor", "does not verify"),
                ("an unsigned CoRIM", "corim", "unsigned.cbor", "unsigned CoRIM is refused"),
                ("a sample message", "sample", "sample.json", "sample extractor: disabled")]:
            rc, out = client(kbs, tok, "set-reference-value", "--type", typ, "--payload-file",
                             os.path.join(d, name))
            t.ok(rc != 0 and want in out,
                 "kbs-client set-reference-value: %s is refused through kbs, grpc-as and rvps, "
                 "saying why" % what, out[-600:])
        t.eq(redis.command("KEYS", "reference_value:*"), [],
             "the refused messages stored nothing")
        rc, out = client(kbs, tok, "set-reference-value", "--type", "corim", "--payload-file",
                         signed_path)
        t.ok(rc == 0 and "Reference Values Updated" in out,
             "kbs-client set-reference-value --type corim: Veraison's signed CoRIM registers "
             "through the KBS", out[-600:])
        doc = redis.command("GET", "reference_value:" + RV)
        t.ok(doc is not None and json.loads(doc)["value"] == json.loads(RV_VALUE),
             "the rvps stored the CoRIM's digests under Trustee's name", doc)
        prov = json.loads(redis.command("GET", "rvps_provenance:" + RV) or "{}")
        t.ok(prov.get("extractor") == "corim" and prov.get("signed") is True,
             "its provenance says it came signed, through the corim extractor", prov)
        rc, out = client(kbs, tok, "get-reference-value", "--id", RV)
        t.ok(rc == 0 and json.loads(RV_VALUE)[0] in out,
             "kbs-client get-reference-value reads it back through the KBS", out[-600:])
        rc, out = client(kbs, tok, "set-reference-value", "--type", "swid", "--payload-file",
                         os.path.join(NVTRUST, RIM))
        t.ok(rc == 0, "kbs-client set-reference-value --type swid: an NVIDIA RIM registers",
             out[-600:])
        keys = redis.command("KEYS", "reference_value:NVIDIA_Corporation.GPU.*")
        t.eq(len(keys), 9, "its 9 VBIOS measurements are stored")
        rc, out = client(kbs, "/dev/null", "set-reference-value", "--type", "corim",
                         "--payload-file", signed_path)
        t.ok(rc != 0 and "HTTP 401" in out, "without an admin token the KBS refuses the write",
             out[-300:])
        rc, out = client(kbs, tok, "set-reference-value", "--payload-file", signed_path)
        t.ok(rc == 2 and "--type" in out, "set-reference-value without --type is a usage error",
             out)
        t.ok(all(p.alive() for p in procs[:3]), "kbs, grpc-as and rvps kept serving")
    finally:
        for p in procs:
            p.stop()
    t.done()


if __name__ == "__main__":
    main()
