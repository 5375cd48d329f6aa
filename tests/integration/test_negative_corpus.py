"""The negative corpus: one table of hostile or wrong inputs, each refused with its specific reason,
against the real daemons (redis + rvps + grpc-as + kbs) and the operator tools (evidence-verify,
rego). Each row names the attack and the words the refusal must contain; after every row the KBS
must still serve a good attester."""
import base64
import json
import os
import socket
import subprocess
import time

from cryptography.hazmat.primitives.asymmetric import ec

import harness
from harness import BIN, Tap
from kbs_testlib import (ERR, Attester, Kbs, Pki, b64u, ec_jwk, kbs_config, make_jwt,
                         require_kbs, start_as)

EV = os.path.join(BIN, "evidence-verify")
E = harness.testdata("evidence")
SECRET = b"corpus secret"


def problem(data):
    try:
        return json.loads(data)
    except ValueError:
        return {"type": "", "detail": data.decode(errors="replace") if isinstance(data, bytes) else data}


def refused(st, data, variant, words, status=401):
    b = problem(data)
    return st == status and b.get("type") == ERR + variant and all(w in b.get("detail", "") for w in words), b


def tool(*args):
    r = subprocess.run([EV] + list(args), capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


# ------------------------------------------------------------------ handshake rows

def replayed_attest(kbs, pki):
    a = Attester(kbs)
    a.auth()
    body = a.attest_body()
    st, _, data = a.attest(body=body)
    assert st == 200, data
    st, _, data = a.attest(body=body)
    return refused(st, data, "AttestationError", ["already used"])


def nonce_from_other_session(kbs, pki):
    a, b = Attester(kbs), Attester(kbs)
    a.auth()
    b.auth()
    st, _, data = a.attest(nonce=b.nonce)
    return refused(st, data, "AttestationError", ["nonce does not match"])


def report_data_for_other_key(kbs, pki):
    a = Attester(kbs)
    a.auth()
    st, _, data = a.attest(bind=False)
    return refused(st, data, "AttestationError", ["report_data"])


def unknown_tee(kbs, pki):
    a = Attester(kbs)
    st, _, data = a.auth(tee="nosuchtee")
    return refused(st, data, "AttestationError", ["Auth failed"])


# ------------------------------------------------------------------ token rows (passport)

def rd(a):
    return {"tee-pubkey": a.pubkey, "nonce": "n", "additional-evidence": ""}


def token_alg_none(kbs, pki):
    a = Attester(kbs)
    claims = json.loads(base64.urlsafe_b64decode(pki.ear_token(rd(a)).split(".")[1] + "=="))
    hdr = {"typ": "JWT", "alg": "none", "jwk": dict(ec_jwk(pki.token_key.public_key()), x5c=pki.x5c())}
    st, _, data = a.get("default/corpus/key", cookie=False, bearer=make_jwt(hdr, claims))
    return refused(st, data, "TokenVerifierError", ["Token Verifier error: "])


def token_hs256_public_key(kbs, pki):
    a = Attester(kbs)
    claims = json.loads(base64.urlsafe_b64decode(pki.ear_token(rd(a)).split(".")[1] + "=="))
    pub = json.dumps(ec_jwk(pki.token_key.public_key())).encode()
    hdr = {"typ": "JWT", "alg": "HS256", "jwk": dict(ec_jwk(pki.token_key.public_key()), alg="HS256",
                                                    x5c=pki.x5c())}
    st, _, data = a.get("default/corpus/key", cookie=False, bearer=make_jwt(hdr, claims, pub))
    return refused(st, data, "TokenVerifierError", ["Token Verifier error: "])


def token_expired(kbs, pki):
    a = Attester(kbs)
    st, _, data = a.get("default/corpus/key", cookie=False, bearer=pki.ear_token(rd(a), exp_in=-120))
    return refused(st, data, "TokenVerifierError", ["expired"])


def token_untrusted_ca(kbs, pki):
    a = Attester(kbs)
    other = Pki(name="Other")
    st, _, data = a.get("default/corpus/key", cookie=False, bearer=other.ear_token(rd(a)))
    return refused(st, data, "TokenVerifierError", ["Token Verifier error: "])


def token_kid_not_in_jwks(kbs, pki):
    a = Attester(kbs)
    tok = pki.ear_token(rd(a), x5c=False, extra_header={"kid": "no-such-key"})
    st, _, data = a.get("default/corpus/key", cookie=False, bearer=tok)
    return refused(st, data, "TokenVerifierError", ["Token Verifier error: "])


def token_not_affirming(kbs, pki):
    a = Attester(kbs)
    st, _, data = a.get("default/corpus/key", cookie=False,
                        bearer=pki.ear_token(rd(a), status="contraindicated"))
    b = problem(data)
    return st == 401 and b.get("type") == ERR + "PolicyDeny", b


def jwe_curve_mismatch(kbs, pki):
    a = Attester(kbs)
    k = ec.generate_private_key(ec.SECP384R1()).public_key().public_numbers()
    bad = dict(a.pubkey, crv="P-384", x=b64u(k.x.to_bytes(48, "big")), y=b64u(k.y.to_bytes(48, "big")))
    st, _, data = a.get("default/corpus/key", cookie=False, bearer=pki.ear_token({"tee-pubkey": bad, "nonce": "n"}))
    return refused(st, data, "JweError", ["not supported"])


# ------------------------------------------------------------------ request rows

def traversal(path):
    def row(kbs, pki):
        a = Attester(kbs)
        a.rcar()
        st, _, data = a.get(path)
        b = problem(data)
        ok = st in (401, 404) and b.get("type") in (ERR + "PluginInternalError", ERR + "InvalidRequestPath",
                                                   ERR + "PluginNotFound")
        return ok and SECRET not in data, b
    row.__name__ = "resource path %r" % path
    return row


def oversized_body(kbs, pki):
    """A body over payload_request_size (1 MiB here) is answered without being read."""
    s = socket.create_connection(("127.0.0.1", kbs.port), timeout=10)
    s.sendall(b"POST /kbs/v0/auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n{" % (3 << 20))
    try:
        s.sendall(b" " * (256 << 10))
    except OSError:
        pass
    resp = b""
    try:
        while b"\r\n" not in resp:
            chunk = s.recv(4096)
            if not chunk:
                break
            resp += chunk
    except OSError:
        pass
    s.close()
    line = resp.split(b"\r\n", 1)[0]
    return line.startswith(b"HTTP/1.1 413") or line.startswith(b"HTTP/1.1 400"), line


def deeply_nested(kbs, pki):
    body = b'{"version":"0.4.0","tee":"sample","extra-params":' + b"[" * 100000 + b"]" * 100000 + b"}"
    st, _, data = kbs.request("POST", "/kbs/v0/auth", body, {"Content-Type": "application/json"})
    return refused(st, data, "AttestationError", ["Auth failed"])


def not_json(kbs, pki):
    st, _, data = kbs.request("POST", "/kbs/v0/auth", b"\xff\xfe not json", {"Content-Type": "application/json"})
    return refused(st, data, "AttestationError", ["Auth failed"])


def slowloris(kbs, pki):
    """Connections that send a header byte at a time must not stop others being served."""
    socks = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", kbs.port), timeout=5)
        s.sendall(b"POST /kbs/v0/auth HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    t0 = time.time()
    a = Attester(kbs)
    tok = a.rcar()
    served = tok is not None and time.time() - t0 < 10
    for s in socks:
        try:
            s.sendall(b"X-Slow: 1\r\n")
        except OSError:
            pass
        s.close()
    return served, "a full handshake took %.1f s beside 20 stalled connections" % (time.time() - t0)


# ------------------------------------------------------------------ evidence rows (tools)

def snp_vmpl_not_zero(kbs, pki):
    s = os.path.join(E, "snp", "trustee")
    rc, out = tool("--tee", "snp", "--evidence", os.path.join(s, "test-vlek-report.bin"), "--vcek",
                   os.path.join(s, "test-vlek.der"), "--time", "2025-06-01T00:00:00Z")
    return rc == 1 and "VMPL" in out, out


def snp_wrong_chip(kbs, pki):
    rc, out = tool("--tee", "snp", "--evidence", os.path.join(E, "snp", "go-sev-guest", "attestation.bin"),
                   "--vcek", os.path.join(E, "snp", "trustee", "test-vcek.der"), "--time", "2025-06-01T00:00:00Z")
    return rc == 1 and out.startswith("refused:") and ("chip" in out or "signature" in out), out


def tdx_expired_collateral(kbs, pki):
    rc, out = tool("--tee", "tdx", "--evidence", os.path.join(E, "tdx", "dcap-qvl", "tdx_quote"), "--collateral",
                   os.path.join(E, "tdx", "dcap-qvl", "tdx_quote_collateral.json"), "--time", "2025-08-01T00:00:00Z")
    return rc == 1 and "expired" in out, out


def tdx_tcb_not_supported(kbs, pki):
    rc, out = tool("--tee", "tdx", "--evidence", os.path.join(E, "tdx", "dcap-qvl", "tdx_quote_outdated"),
                   "--collateral", os.path.join(E, "tdx", "dcap-qvl", "tdx_quote_outdated_collateral.json"),
                   "--time", "2026-03-20T10:00:00Z")
    return rc == 1 and "TCB level not supported" in out, out


def debug_td_default_policy(kbs, pki):
    """A debug TD (trustee q4) never gets the default policy's configuration 2, even with its XFAM
    registered; the same check passes for a production TD (dcap-qvl)."""
    d = harness.tmpdir("corpus-")
    pol = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "as", "policies", "default_cpu.rego"))
    res = {}
    for name, q, coll, when in (
            ("debug", ("trustee", "tdx_quote_4.dat"), ("go-tdx-guest", "collateral_2023.json"), "2023-07-01T01:00:00Z"),
            ("prod", ("dcap-qvl", "tdx_quote"), ("dcap-qvl", "tdx_quote_collateral.json"), "2025-07-19T10:00:00Z")):
        rc, out = tool("--tee", "tdx", "--evidence", os.path.join(E, "tdx", *q), "--collateral",
                       os.path.join(E, "tdx", *coll), "--time", when)
        if rc != 0:
            return False, out
        inp = json.loads(out)
        ip, rp = os.path.join(d, name + "-in.json"), os.path.join(d, name + "-rv.json")
        json.dump(inp, open(ip, "w"))
        json.dump({"xfam": [inp["tdx"]["quote"]["body"]["xfam"]]}, open(rp, "w"))
        r = subprocess.run([os.path.join(BIN, "rego"), "eval", "-i", ip, "--ref-values", rp, "-p", pol,
                            "data.policy.configuration"], capture_output=True, text=True, timeout=30)
        res[name] = r.stdout
    val = {k: json.loads(v)["result"][0]["expressions"][0]["value"] if v.strip() not in ("", "{}") else None
           for k, v in res.items()}
    return val["prod"] == 2 and val["debug"] != 2, val


# the real AS calls the sample TEE contraindicated; refuse that status only in forged tokens
POLICY = """package policy
import rego.v1
default allow := false
allow if {
	data.plugin == "resource"
	not forged_contraindicated
}
forged_contraindicated if {
	input.submods.cpu0["ear.status"] == "contraindicated"
	input["ear.verifier-id"].build == "kbs-testlib"
}
"""

ROWS = [
    ("replayed /attest with a consumed nonce", replayed_attest),
    ("nonce from another session", nonce_from_other_session),
    ("report data bound to another key", report_data_for_other_key),
    ("/auth for an unknown TEE", unknown_tee),
    ("token with alg:none", token_alg_none),
    ("token HS256-signed with the public key", token_hs256_public_key),
    ("expired token", token_expired),
    ("token from an untrusted CA", token_untrusted_ca),
    ("token kid not in any JWKS and no x5c", token_kid_not_in_jwks),
    ("token whose status is contraindicated", token_not_affirming),
    ("JWE to a P-384 tee key", jwe_curve_mismatch),
    ("resource path with ..", traversal("default/../key")),
    ("resource path with %2F", traversal("default%2Fcorpus/key")),
    ("resource path with a leading .", traversal("default/.corpus/key")),
    ("resource path with an encoded ..", traversal("default/%2e%2e/corpus")),
    ("oversized request body", oversized_body),
    ("deeply nested JSON", deeply_nested),
    ("request body that is not JSON", not_json),
    ("slowloris connections", slowloris),
    ("SNP report from VMPL 1", snp_vmpl_not_zero),
    ("SNP report with another chip's VCEK", snp_wrong_chip),
    ("TDX quote with expired collateral", tdx_expired_collateral),
    ("TDX quote whose TCB level Intel does not list", tdx_tcb_not_supported),
    ("debug TD under the default CPU policy", debug_td_default_policy),
]


def main():
    require_kbs()
    t = Tap()
    pki = Pki()
    aserv = start_as(pki)
    cfg = kbs_config(pki, as_addr=aserv.addr, payload=1)
    kbs = Kbs(cfg).start()
    kbs.set_policy(pki, POLICY)
    kbs.set_resource(pki, "default/corpus/key", SECRET)
    for name, fn in ROWS:
        try:
            ok, diag = fn(kbs, pki)
        except Exception as e:  # a crash in the row is a failure of that row
            ok, diag = False, repr(e)
        t.ok(ok, "refused: " + name, diag)
        a = Attester(kbs)
        a.rcar()
        st, _, data = a.get("default/corpus/key")
        if not (st == 200 and a.decrypt(data) == SECRET and kbs.alive()):
            t.ok(False, "KBS still serves after: " + name, data)
    t.ok(kbs.alive(), "KBS alive after the whole corpus")
    t.done()


if __name__ == "__main__":
    main()
