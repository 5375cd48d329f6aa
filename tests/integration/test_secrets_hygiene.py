#!/usr/bin/python3
"""Secrets hygiene: no secret in any daemon's log at the most verbose level, and private key
files that other users can read refused at start (grpc-as's token-signing key, kbs's HTTPS key).

Logs: kbs, grpc-as and rvps run at LOG_LEVEL=trace on a password-protected Redis (sessions
there too) while the test drives what an operator and attesters do: admin uploads (resources,
resource and attestation policies, reference values), full RCAR handshakes, resource reads by
cookie and by Bearer token, and the refusals (bad, expired and foreign admin tokens, a wrong
nonce, a missing resource, a forged EAR token). Then every log is searched for each secret in
raw, hex, base64 and base64url form.

What counts as a secret here, and why:
  - resource bytes: what the KBS exists to protect;
  - private keys: the AS's token-signing key (scalar and PEM text), the admin's Ed25519 key
    and the attester's TEE key (neither is ever sent, so they also catch a log of our own
    test's material);
  - bearer credentials: admin JWTs and EAR tokens (a token lets its holder ask for resources
    and an admin JWT lets its holder change them), searched by their signature part, which is
    unique to each token (header and claims are not secret);
  - the Redis password in the storage URL.
Not secrets, so not searched: nonces (the challenge is sent in clear and its worth is its
freshness and single use, not its secrecy), session ids (logged on purpose to correlate a
refusal with its session; the cookie alone cannot read a resource, which is encrypted to the
TEE key), evidence, public keys, policies and reference values."""
import base64
import glob
import json
import os
import re
import shutil
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from harness import BIN, BUILD, Redis, Tap, free_port, start_or_exit, tmpdir
from kbs_testlib import (ALLOW_ALL, Attester, Kbs, Pki, RealAs, b64u, b64u_dec, kbs_config,
                         real_as_available, require_kbs)

LOGDIR = os.path.join(BUILD, "test-logs", "test_secrets_hygiene")


def forms(b):
    """The spellings of b a log line could carry."""
    out = {b, b.hex().encode(), b.hex().upper().encode(), base64.b64encode(b),
           base64.b64encode(b).rstrip(b"="), b64u(b).encode()}
    return {f for f in out if len(f) >= 16}


def check_logs(t, secrets):
    logs = {}
    for p in sorted(glob.glob(os.path.join(LOGDIR, "*.log"))):
        name = os.path.basename(p)[:-4]
        if name.startswith("redis"):
            continue  # not ours
        with open(p, "rb") as f:
            logs[name] = f.read()
    t.ok(set(logs) >= {"kbs", "grpc-as", "rvps"}, "logs of kbs, grpc-as and rvps were written",
         sorted(logs))
    t.ok(re.search(rb"^\[[^]]* debug ", logs.get("kbs", b""), re.M),
         "the kbs log is at debug level or more verbose")
    # the search itself finds a secret planted in any of its spellings
    planted = {"plant": b"x " + base64.b64encode(secrets[0][1][0]) + b" y"}
    t.ok(leaks(planted, secrets[0][1]), "self-check: a planted base64 resource is found")
    for what, values in secrets:
        found = leaks(logs, values)
        t.ok(not found, "no log holds %s" % what, "\n".join(found[:5]))


def leaks(logs, values):
    found = []
    for v in values:
        for f in forms(v):
            for name, text in logs.items():
                i = text.find(f)
                if i >= 0:
                    found.append("%s: %r" % (name, text[max(0, i - 80):i + 40]))
    return found


def sig_part(jwt):
    return b64u_dec(jwt.split(".")[2])


def pem_body_lines(pem):
    return [l.encode() for l in pem.decode().splitlines() if len(l) >= 40 and "-----" not in l]


def drive(t, kbs, pki, secret, text_secret):
    """Everything an operator and attesters do, successes and refusals; returns the tokens."""
    tokens = []
    tok = pki.admin_token()
    tokens.append(tok)
    for path, data in (("default/hygiene/bin", secret), ("default/hygiene/text", text_secret)):
        st, _, body = kbs.admin("POST", "/kbs/v0/resource/" + path, data, pki, tok)
        t.ok(st == 200, "admin: resource %s uploaded" % path, body)
    st, _, body = kbs.admin("POST", "/kbs/v0/resource-policy", {"policy": b64u(ALLOW_ALL)}, pki,
                            tok)
    t.ok(st == 200, "admin: resource policy set", body)
    msg = json.dumps({"version": "0.1.0", "type": "sample", "payload": base64.b64encode(
        json.dumps({"svn": ["1"], "launch_digest": ["abcde"], "major_version": 1,
                    "minimum_minor_version": 0}).encode()).decode()})
    st, _, body = kbs.admin("POST", "/kbs/v0/reference-value", msg, pki, tok)
    t.ok(st == 200, "admin: reference values registered", body)
    st, _, body = kbs.admin("GET", "/kbs/v0/reference-value/svn", None, pki, tok)
    t.ok(st == 200, "admin: reference value read back", body)
    # refused admin tokens: a forged signature, expired, from another key
    forged = tok.rsplit(".", 1)[0] + "." + b64u(os.urandom(64))
    expired = pki.admin_token(exp_in=-600)  # past the 60 s leeway
    other = pki.admin_token(key=ed25519.Ed25519PrivateKey.generate())
    for name, bad in (("forged", forged), ("expired", expired), ("foreign", other)):
        tokens.append(bad)
        st, _, body = kbs.admin("POST", "/kbs/v0/resource/default/hygiene/x", b"no", pki, bad)
        t.ok(st == 401, "admin: %s token refused" % name, body)

    a = Attester(kbs)
    ear = a.rcar()
    tokens.append(ear)
    st, _, body = a.get("default/hygiene/bin")
    t.ok(st == 200 and a.decrypt(body) == secret, "attester: resource read by cookie", body[:200])
    st, _, body = a.get("default/hygiene/text")
    t.ok(st == 200 and a.decrypt(body) == text_secret, "attester: text resource read", body[:200])
    st, _, body = a.get("default/hygiene/text", cookie=False, bearer=ear)
    t.ok(st == 200 and a.decrypt(body) == text_secret, "attester: resource read by Bearer token",
         body[:200])
    st, _, body = a.get("default/hygiene/none")
    t.ok(st == 401, "attester: a missing resource is refused", body)
    # a token whose signature is not the AS's
    forged_ear = ear.rsplit(".", 1)[0] + "." + b64u(os.urandom(64))
    tokens.append(forged_ear)
    st, _, body = a.get("default/hygiene/bin", cookie=False, bearer=forged_ear)
    t.ok(st == 401, "attester: a forged EAR token is refused", body)
    b = Attester(kbs)
    b.auth()
    st, _, body = b.attest(nonce=base64.b64encode(os.urandom(32)).decode())
    t.ok(st == 401, "attester: evidence for another nonce is refused", body)
    c = Attester(kbs)
    c.auth()
    st, _, body = c.attest(bind=False)
    t.ok(st == 401, "attester: evidence bound to another key is refused", body)
    return tokens, [a.key, b.key, c.key]


def check_key_file_modes(t, pki):
    """grpc-as refuses a signing key that other users can write, with a sentence naming it, and
    starts with one they can read (a Kubernetes Secret's 0644), warning about it."""
    d = tmpdir("as-keymode-")
    key = os.path.join(d, "token.key")
    shutil.copy(pki.path("token.key"), key)
    cfg = os.path.join(d, "as.json")
    with open(cfg, "w") as f:
        json.dump({"rvps_config": {"type": "BuiltIn"},
                   "attestation_token_broker": {"signer": {
                       "key_path": key, "cert_path": pki.path("token-cert-chain.pem")}}}, f)

    def start(mode, owner=None):
        os.chmod(key, mode)
        if owner is not None:
            os.chown(key, owner, owner)
        port = free_port()
        return start_or_exit([os.path.join(BIN, "grpc-as"), "--socket", "127.0.0.1:%d" % port,
                              "--config-file", cfg], port)

    for mode in (0o666, 0o602, 0o646):
        rc, out = start(mode)
        t.ok(rc not in (0, None) and key in out and "written by every user" in out and
             "chmod 600" in out,
             "grpc-as refuses a signing key with mode %04o, naming the file and the fix" % mode,
             out[-400:])
    for mode in (0o644, 0o604):  # a Kubernetes Secret mounted without defaultMode
        rc, out = start(mode)
        t.ok(rc is None and key in out and "readable by every user" in out,
             "grpc-as starts with a signing key at mode %04o and warns, naming the file" % mode,
             out[-400:])
    rc, out = start(0o600)
    t.ok(rc is None and "readable by" not in out,
         "grpc-as starts with the signing key at mode 0600, no warning", out[-400:])
    if os.geteuid() == 0:
        rc, out = start(0o440)
        t.ok(rc is None, "grpc-as starts with a root-owned key its group may read (0440)",
             out[-400:])
        rc, out = start(0o640, owner=65534)
        t.ok(rc is None and "readable by its group" in out,
             "grpc-as starts with a group-readable key that root does not own, and warns",
             out[-400:])
        rc, out = start(0o660, owner=65534)
        t.ok(rc not in (0, None) and "written by its group" in out,
             "grpc-as refuses a key its group may write", out[-400:])
    else:
        t.skip("root-owned 0440 key accepted", "needs root to chown")
        t.skip("group-readable key of another owner accepted with a warning",
               "needs root to chown")
        t.skip("group-writable key refused", "needs root to chown")


def check_kbs_tls_key_modes(t, pki):
    """kbs refuses an HTTPS private key that other users can write, starts with one they can
    read (with a warning) and with one at 0600."""
    key, chain = pki.server_cert("hygiene-tls", "EC")
    for mode, refused in ((0o646, True), (0o644, False), (0o600, False)):
        os.chmod(key, mode)
        cfg = kbs_config(pki)
        cfg["http_server"].update(insecure_http=False, private_key=key, certificate=chain)
        k = Kbs(cfg, name="kbs-tls-%o" % mode)
        rc, out = start_or_exit(k.args, k.port)
        if refused:
            t.ok(rc not in (0, None) and "[http_server] private_key" in out and key in out and
                 "written by every user" in out,
                 "kbs refuses an HTTPS key with mode %04o, naming it" % mode, out[-400:])
        elif mode & 0o004:
            t.ok(rc is None and key in out and "readable by every user" in out,
                 "kbs starts with its HTTPS key at mode %04o and warns, naming it" % mode,
                 out[-400:])
        else:
            t.ok(rc is None, "kbs starts with its HTTPS key at mode 0600", out[-400:])


def scan_memory(pid, needles):
    """How often each needle occurs in the writable mappings of a live process (heap, arenas,
    stacks), and how many bytes were read. Mappings above 1 GiB are address space reserved by
    a sanitizer (ASan's shadow), not memory the process wrote, and are left out."""
    counts, total, block, keep = {n: 0 for n in needles}, 0, 8 << 20, 256
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            f = line.split()
            if "w" not in f[1]:
                continue
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            if hi - lo > 1 << 30:
                continue
            tail = b""
            for at in range(lo, hi, block):
                try:
                    mem.seek(at)
                    chunk = mem.read(min(block, hi - at))
                except (OSError, ValueError, OverflowError):
                    tail = b""
                    continue  # guard pages and the like
                total += len(chunk)
                data = tail + chunk
                for n in needles:  # a match across the seam is counted once, in `data`
                    counts[n] += data.count(n) - tail.count(n)
                tail = data[-keep:]
    return counts, total


def check_memory_after_reads(t, pki, asvc):
    """After resource reads from the LocalFs and LocalJson stores, the kbs's memory holds no
    copy of the resource bytes: every buffer that held them was wiped before it was freed.
    The resources are written into the store's files directly, so the only copies the kbs
    ever makes are those of a read. A freed copy that was not wiped loses its first 16 bytes
    to the allocator's free-list pointers, so the search is for the tail of the secret."""
    secret = os.urandom(64)
    tail = secret[24:]
    for backend in ("LocalFs", "LocalJson"):
        d = tmpdir("hygiene-%s-" % backend.lower())
        if backend == "LocalFs":
            os.makedirs(os.path.join(d, "repository"))
            with open(os.path.join(d, "repository", "default\\x2Fmem\\x2Fkey"), "wb") as f:
                f.write(secret)
            storage = {"storage_type": "LocalFs", "backends": {"local_fs": {"dir_path": d}}}
        else:
            with open(os.path.join(d, "repository"), "w") as f:
                json.dump({"default/mem/key": base64.urlsafe_b64encode(secret).decode()}, f)
            storage = {"storage_type": "LocalJson",
                       "backends": {"local_json": {"file_dir_path": d}}}
        kbs = Kbs(kbs_config(pki, as_addr=asvc.addr, storage=storage),
                  name="kbs-mem-%s" % backend.lower())
        kbs.start()
        st, _, body = kbs.admin("POST", "/kbs/v0/resource-policy", {"policy": b64u(ALLOW_ALL)},
                                pki, pki.admin_token())
        a = Attester(kbs)
        a.rcar()
        got = []
        for _ in range(5):
            st, _, body = a.get("default/mem/key")
            got.append(st == 200 and a.decrypt(body) == secret)
        t.ok(all(got), "%s: the resource is read five times" % backend, got)
        # the worker wipes its copy just after handing the reply to the event loop, so the
        # last read's buffer may still be live for a moment: look again before judging
        here = kbs.config_path.encode()
        for _ in range(5):
            counts, total = scan_memory(kbs.proc.pid, [tail, here])
            if counts[tail] == 0:
                break
            time.sleep(0.2)
        t.ok(total > 1 << 20 and counts[tail] == 0,
             "%s: no copy of the resource bytes is left in the kbs's memory" % backend,
             "%d copies in %d bytes" % (counts[tail], total))
        t.ok(counts[here] > 0,
             "%s: self-check: the search finds a string the kbs holds (its config path)"
             % backend)
        kbs.stop()


def main():
    require_kbs()
    t = Tap()
    if not real_as_available():
        t.skip("secrets hygiene", "grpc-as or rvps not built")
        t.done()
    for p in glob.glob(os.path.join(LOGDIR, "*.log")):
        os.unlink(p)
    pki = Pki()
    t.run(check_key_file_modes, pki)
    t.run(check_kbs_tls_key_modes, pki)

    password = "redis-pw-" + os.urandom(12).hex()
    redis = Redis()
    redis.args += ["--requirepass", password]
    redis.start()
    url = "redis://:%s@127.0.0.1:%d" % (password, redis.port)
    env = {"LOG_LEVEL": "trace"}
    asvc = RealAs(pki, redis, env=env, redis_url=url)
    storage = {"storage_type": "Redis", "backends": {"redis": {"url": url}}}
    cfg = kbs_config(pki, as_addr=asvc.addr, storage=storage)
    cfg["session_storage_type"] = "Redis"
    kbs = Kbs(cfg)
    kbs.env.update(env)
    kbs.start()

    secret = os.urandom(40)
    text_secret = ("hygiene-secret-%s" % os.urandom(16).hex()).encode()
    tokens, tee_keys = drive(t, kbs, pki, secret, text_secret)
    t.run(check_memory_after_reads, pki, asvc)
    for d in (kbs, asvc.grpc_as, asvc.rvps):
        t.ok(d.alive(), "%s still running" % d.name)
        d.stop()

    tk = pki.token_key.private_numbers().private_value.to_bytes(32, "big")
    admin_seed = pki.admin_key.private_bytes(serialization.Encoding.Raw,
                                             serialization.PrivateFormat.Raw,
                                             serialization.NoEncryption())
    tee = [b64u_dec(k.export_private(as_dict=True)["d"]) for k in tee_keys]
    with open(pki.path("token.key"), "rb") as f:
        token_pem = f.read()
    check_logs(t, [
        ("the resource bytes", [secret, text_secret]),
        ("the AS token-signing private key", [tk] + pem_body_lines(token_pem)),
        ("the admin private key", [admin_seed]),
        ("the attesters' TEE private keys", tee),
        ("an admin token's or EAR token's signature", [sig_part(x) for x in tokens]),
        ("an admin token or EAR token", [x.encode() for x in tokens]),
        ("the Redis password", [password.encode()]),
    ])
    t.done()


if __name__ == "__main__":
    main()
