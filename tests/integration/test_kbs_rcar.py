#!/usr/bin/python3
"""KBS end to end over HTTP: the RCAR handshake (kbs-protocol.md §2), resource reads by cookie
and Bearer decrypted by jwcrypto for P-256, P-521, RSA-OAEP-256 and RSA1_5 keys (§3), the
resource policy (§6), routing and status codes (§1), metrics (§9), hostile bodies, and 32
attesters at once. The AS is the real grpc-as + rvps + redis when built, else a gRPC stand-in
that checks sample evidence the same way."""
import base64
import concurrent.futures
import email.utils
import json
import re
import socket
import time

from harness import Redis, Tap
from kbs_testlib import (ALLOW_ALL, DENY_ALL, ERR, Attester, FakeAs, Kbs, Pki, b64u_dec, kbs_config,
                         require_kbs, start_as)

COOKIE_RE = re.compile(r"^kbs-session-id=([0-9a-f]{32}); Expires=(\w{3}, \d\d \w{3} \d{4} "
                       r"\d\d:\d\d:\d\d GMT)$")


def check_auth(t, kbs):
    a = Attester(kbs)
    nonces = set()
    for _ in range(3):
        st, h, data = a.auth()
        t.eq(st, 200, "auth: 200")
        body = json.loads(data)
        t.eq(sorted(body), ["extra-params", "nonce"], "auth: challenge has nonce and extra-params")
        t.eq(body["extra-params"], "", "auth: extra-params is \"\" for sample")
        t.ok(len(body["nonce"]) == 44 and body["nonce"].endswith("=") and
             len(base64.b64decode(body["nonce"])) == 32, "auth: nonce is 32 bytes std-base64")
        nonces.add(body["nonce"])
        t.eq(h.get("content-type"), "application/json", "auth: application/json")
        m = COOKIE_RE.match(h.get("set-cookie", ""))
        t.ok(m, "auth: Set-Cookie is kbs-session-id=<32 hex>; Expires=<IMF date>",
             h.get("set-cookie"))
        if m:
            exp = email.utils.parsedate_to_datetime(m.group(2)).timestamp()
            t.ok(abs(exp - (time.time() + 300)) < 5, "auth: cookie expires in 5 minutes")
    t.eq(len(nonces), 3, "auth: nonces are unique")


def check_auth_se(t, pki):
    """`se` takes its challenge from the AS's SE verifier, which needs the SE keys on the AS's
    host; the stand-in answers as an AS that has them, so the kbs's side can be checked here."""
    asvc = FakeAs(pki)
    kbs = Kbs(kbs_config(pki, as_addr=asvc.addr), name="kbs-se").start()
    a = Attester(kbs)
    st, h, data = a.auth(tee="se", extra={"supported-hash-algorithms": ["sha256", "sha384"]})
    t.eq(st, 401, "auth: se without sha512 refused")
    st, h, data = a.auth(tee="se", extra={"supported-hash-algorithms": ["sha384", "SHA512"]})
    t.ok(st == 200 and json.loads(data)["extra-params"] == {"selected-hash-algorithm": "sha512"},
         "auth: se selects sha512", data)
    # an /auth of more than 4 KiB is answered by the pool, not the loop (server.c): the same
    b = Attester(kbs)
    st, h, data = b.auth(extra={"pad": "x" * 8192})
    t.ok(st == 200 and json.loads(data).get("nonce"), "auth: an 8 KiB /auth body", data[:200])
    st, _, data = b.attest()
    t.eq(st, 200, "attest: after an 8 KiB /auth body")
    kbs.stop()
    asvc.stop()


def check_auth_refusals(t, kbs):
    a = Attester(kbs)
    for v in ("0.3.0", "1.0.0", "0.4.0-rc1", "not-semver"):
        st, h, data = a.auth(version=v)
        body = json.loads(data)
        t.ok(st == 401 and body["type"] == ERR + "AttestationError" and
             "Version Mismatch" in body["detail"], "auth: version %s refused" % v, data)
    st, h, data = a.auth(version="0.3.0")
    t.eq(json.loads(data)["detail"],
         "Attestation error: RCAR handshake Auth failed: KBS Client Protocol Version Mismatch: "
         "expect =0.4.0 while the request is 0.3.0", "auth: version mismatch detail text")
    st, h, data = a.auth(drop_extra=True)
    t.ok(st == 401 and json.loads(data)["type"] == ERR + "AttestationError",
         "auth: missing extra-params -> 401 AttestationError", data)
    st, h, data = a.auth(tee="Sample")
    t.ok(st == 401 and json.loads(data)["type"] == ERR + "AttestationError",
         "auth: unknown tee -> 401 AttestationError", data)
    t.ok("set-cookie" not in h, "auth: no cookie on failure")


def check_attest(t, kbs):
    a = Attester(kbs)
    a.auth()
    st, h, data = a.attest()
    t.eq(st, 200, "attest: 200 with valid sample evidence")
    if st != 200:
        t.ok(False, "attest body", data)
        return
    tok = json.loads(data)["token"]
    parts = tok.split(".")
    t.eq(len(parts), 3, "attest: token is a three-part JWT")
    claims = json.loads(b64u_dec(parts[1]))
    t.eq(claims["exp"] - claims["iat"], 300, "attest: token lifetime 300 s")
    ann = claims["submods"]["cpu0"]["ear.veraison.annotated-evidence"]
    t.eq(ann["runtime_data_claims"]["tee-pubkey"], a.pubkey, "attest: token echoes tee-pubkey")
    t.eq(h.get("set-cookie"), a.set_cookie, "attest: same cookie, same expiry re-sent")
    st, h, data2 = a.attest()
    t.ok(st == 401 and "already used" in json.loads(data2)["detail"],
         "attest: a second attest on the session is refused (the nonce is single-use)", data2)


def check_additional_evidence(t, kbs):
    a = Attester(kbs)
    a.auth()
    dev_rd = {"nonce": a.nonce, "tee-pubkey": a.pubkey}
    import hashlib
    from kbs_testlib import jcs
    dev = {"svn": "2", "report_data": base64.b64encode(hashlib.sha384(jcs(dev_rd)).digest()).decode()}
    add = json.dumps({"sampledevice": dev})
    st, h, data = a.attest(additional=add)
    t.eq(st, 200, "attest: primary + additional (sampledevice) evidence")
    if st == 200:
        claims = json.loads(b64u_dec(json.loads(data)["token"].split(".")[1]))
        t.eq(sorted(claims["submods"]), ["cpu0", "gpu0"], "attest: one submod per device")
        cpu_rd = claims["submods"]["cpu0"]["ear.veraison.annotated-evidence"]["runtime_data_claims"]
        t.eq(cpu_rd.get("additional-evidence"), add,
             "attest: primary runtime data carries the additional-evidence string")
    b = Attester(kbs)
    b.auth()
    st, h, data = b.attest(additional=json.dumps({"nosuchtee": dev}))
    t.eq(st, 401, "attest: additional evidence for an unknown TEE refused")
    st, h, data = b.attest(additional="not a map")
    t.eq(st, 401, "attest: additional evidence that is not a JSON map refused")


def check_attest_refusals(t, kbs):
    def is_attest_err(st, data):
        try:
            b = json.loads(data)
        except ValueError:
            return False
        return (st == 401 and b.get("type") == ERR + "AttestationError" and sorted(b) == ["detail", "type"]
                and b["detail"].startswith("Attestation error: RCAR handshake Attest failed: "))
    a = Attester(kbs)
    a.auth()
    st, h, data = a.attest(cookie=False)
    t.ok(is_attest_err(st, data), "attest: no cookie -> 401 AttestationError", data)
    st, h, data = kbs.request("POST", "/kbs/v0/attest", a.attest_body(),
                              {"Cookie": "kbs-session-id=" + "0" * 32})
    t.ok(is_attest_err(st, data), "attest: unknown session -> 401", data)
    wrong = base64.b64encode(b"\x01" * 32).decode()
    st, h, data = a.attest(nonce=wrong)
    t.ok(is_attest_err(st, data), "attest: wrong nonce -> 401", data)
    st, h, data = a.attest(bind=False)
    t.ok(is_attest_err(st, data), "attest: unbound report data -> 401", data)
    st, h, data = kbs.request("POST", "/kbs/v0/attest", "{not json",
                              {"Cookie": a.cookie})
    t.ok(is_attest_err(st, data), "attest: malformed body -> 401", data)
    body = a.attest_body()
    del body["tee-evidence"]["additional_evidence"]
    st, h, data = a.attest(body=body)
    t.ok(is_attest_err(st, data), "attest: missing additional_evidence -> 401", data)
    body = a.attest_body(init_data={"format": "json", "body": "{}"})
    st, h, data = a.attest(body=body)
    t.ok(is_attest_err(st, data), "attest: init-data format json -> 401", data)
    st, h, data = a.attest()
    t.eq(st, 200, "attest: the session survives failed attempts")


def check_resources(t, kbs, pki):
    secret = b"top secret \x00\xff bytes"
    kbs.set_resource(pki, "default/key/read", secret)
    kbs.set_resource(pki, "myrepo/License/key", b"license")
    # default policy: the sample TEE is refused
    a = Attester(kbs)
    a.rcar()
    st, h, data = a.get("default/key/read")
    body = json.loads(data)
    t.ok(st == 401 and body["type"] == ERR + "PolicyDeny" and
         body["detail"].startswith("Access denied by policy"),
         "resource: default policy denies the sample TEE", data)
    kbs.set_policy(pki, ALLOW_ALL)
    for kt in ("EC-P256", "EC-P521", "RSA", "RSA1_5"):
        a = Attester(kbs, kt)
        a.rcar()
        st, h, data = a.get("default/key/read")
        t.eq(st, 200, "resource: %s read by cookie" % kt)
        if st != 200:
            t.ok(False, "body", data)
            continue
        jwe = json.loads(data)
        t.eq(list(jwe), ["protected", "encrypted_key", "iv", "ciphertext", "tag"],
             "resource: %s flattened JWE members in order, no aad" % kt)
        t.eq(h.get("content-type"), "application/json", "resource: application/json")
        t.ok("set-cookie" not in h, "resource: no Set-Cookie on a resource read")
        t.eq(a.decrypt(data), secret, "resource: %s JWE decrypted by jwcrypto" % kt)
        prot = b64u_dec(jwe["protected"]).decode()
        if kt == "RSA":
            t.eq(jwe["protected"], "eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMjU2R0NNIn0",
                 "resource: RSA-OAEP-256 protected header bytes")
        elif kt == "RSA1_5":
            t.eq(jwe["protected"], "eyJhbGciOiJSU0ExXzUiLCJlbmMiOiJBMjU2R0NNIn0",
                 "resource: RSA1_5 protected header bytes")
        else:
            t.ok(re.match(r'^\{"alg":"ECDH-ES\+A256KW","enc":"A256GCM","epk":\{"crv":"P-(256|521)",'
                          r'"kty":"EC","x":"[A-Za-z0-9_-]+","y":"[A-Za-z0-9_-]+"\}\}$', prot),
                 "resource: %s protected header layout" % kt, prot)
        # Bearer (passport) read with the same token and no cookie
        st, h, data = a.get("myrepo/License/key", cookie=False, bearer=a.token)
        t.ok(st == 200 and a.decrypt(data) == b"license", "resource: %s read by Bearer" % kt,
             data[:200])
    # Authed-only cookie, no bearer
    b = Attester(kbs)
    b.auth()
    st, h, data = b.get("default/key/read")
    t.ok(st == 401 and json.loads(data)["type"] == ERR + "TokenNotFound",
         "resource: Authed-only cookie -> TokenNotFound", data)
    st, h, data = kbs.request("GET", "/kbs/v0/resource/default/key/read")
    t.ok(st == 401 and json.loads(data) == {"type": ERR + "TokenNotFound",
                                            "detail": "Attestation Token not found"},
         "resource: nothing -> TokenNotFound", data)
    a = Attester(kbs)
    a.rcar()
    st, h, data = a.get("default/key/missing")
    t.ok(st == 401 and json.loads(data) == {"type": ERR + "PluginInternalError",
                                            "detail": "Plugin internal error: resource not found"},
         "resource: missing resource -> 401 PluginInternalError", data)
    st, h, data = a.get("default/.key/read")
    t.ok(st == 401 and json.loads(data)["type"] == ERR + "PluginInternalError",
         "resource: invalid path -> 401 PluginInternalError", data)
    # deny-all
    kbs.set_policy(pki, DENY_ALL)
    st, h, data = a.get("default/key/read")
    t.ok(st == 401 and json.loads(data)["type"] == ERR + "PolicyDeny", "resource: deny-all "
         "policy -> PolicyDeny", data)
    kbs.set_policy(pki, ALLOW_ALL)
    # delete
    st, _, _ = kbs.admin("DELETE", "/kbs/v0/resource/myrepo/License/key", None, pki)
    t.eq(st, 200, "resource: admin DELETE")
    st, h, data = a.get("myrepo/License/key")
    t.ok(st == 401 and json.loads(data)["type"] == ERR + "PluginInternalError",
         "resource: deleted resource is gone", data)


def check_routing(t, kbs):
    st, body = kbs.problem("GET", "/kbs/v0/nosuch/a/b")
    t.ok(st == 404 and body == {"type": ERR + "PluginNotFound", "detail": "Plugin nosuch not "
                                "found"}, "routing: unknown plugin -> 404 PluginNotFound", body)
    st, body = kbs.problem("GET", "/kbs/v0/auth")
    t.ok(st == 404 and body["type"] == ERR + "PluginNotFound",
         "routing: GET /auth falls through to the plugins (404)", body)
    st, _, _ = kbs.request("PATCH", "/kbs/v0/resource/a/b/c")
    t.eq(st, 405, "routing: PATCH -> 405")
    st, h, data = kbs.request("GET", "/healthz")
    t.ok(st == 200 and data == b"", "routing: /healthz 200 empty")
    st, _, _ = kbs.request("POST", "/metrics")
    t.eq(st, 405, "routing: POST /metrics -> 405")
    st, _, _ = kbs.request("GET", "/other")
    t.eq(st, 404, "routing: path outside /kbs/v0 -> 404")


def check_metrics(t, kbs, pki):
    kbs.set_resource(pki, "default/key/read2", b"m")
    a = Attester(kbs)
    a.rcar()
    for _ in range(2):
        st, _, _ = a.get("default/key/read2")
    st, h, data = kbs.request("GET", "/metrics")
    text = data.decode()
    t.ok(st == 200 and 'kbs_resource_reads_total{resource_path="default/key/read2"} 2' in text,
         "metrics: reads counted per resource path", text[-400:])
    for name in ("kbs_http_requests_total", "kbs_auth_requests_total",
                 "kbs_attestation_requests_total", "kbs_policy_evaluations_total",
                 "kbs_http_request_duration_seconds_bucket", "kbs_http_response_size_bytes_count",
                 "kbs_http_active_connections", "kbs_build_info{",
                 'kbs_attestation_successes_total{tee_type="sample"}'):
        t.ok(name in text, "metrics: %s exposed" % name)
    m = re.search(r"^kbs_http_response_size_bytes_count (\d+)$", text, re.M)
    t.ok(m and int(m.group(1)) > 0, "metrics: response sizes observed in their own histogram")


def check_hostile(t, kbs):
    st, body = kbs.problem("POST", "/kbs/v0/auth", b"\xff\xfe garbage")
    t.ok(st == 401 and body["type"] == ERR + "AttestationError",
         "hostile: garbage /auth body -> 401 with a problem body", body)
    st, body = kbs.problem("POST", "/kbs/v0/auth", b"[" * 100000)
    t.ok(st == 401, "hostile: deeply nested JSON refused", body)
    # announce 3 MiB (limit 2 MiB): refused before the body is read
    with socket.create_connection(("127.0.0.1", kbs.port), timeout=10) as s:
        s.sendall(b"POST /kbs/v0/auth HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" %
                  (3 << 20) + b"x" * 65536)
        status = s.makefile("rb").readline()
    t.ok(status.startswith(b"HTTP/1.1 413"), "hostile: 3 MiB body -> 413", status)
    # chunked body growing past the limit
    with socket.create_connection(("127.0.0.1", kbs.port), timeout=10) as s:
        s.sendall(b"POST /kbs/v0/auth HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(40):
                s.sendall(b"10000\r\n" + b"y" * 65536 + b"\r\n")
        except OSError:
            pass
        try:
            status = s.makefile("rb").readline()
        except OSError:
            status = b""
    t.ok(status.startswith(b"HTTP/1.1 413") or status == b"",
         "hostile: oversized chunked body refused", status)
    # a client that sends half a request and stalls does not block others
    s = socket.create_connection(("127.0.0.1", kbs.port))
    s.sendall(b"POST /kbs/v0/auth HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    a = Attester(kbs)
    st, _, _ = a.auth()
    t.eq(st, 200, "hostile: a stalled client does not block the daemon")
    s.close()
    t.ok(kbs.alive(), "hostile: daemon still running")


def check_concurrency(t, kbs, pki, n=32):
    def one(i):
        a = Attester(kbs, ("EC-P256", "EC-P521", "RSA")[i % 3])
        a.rcar()
        st, h, data = a.get("default/key/read")
        return st == 200 and a.decrypt(data) == b"top secret \x00\xff bytes"
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(n) as ex:
        res = list(ex.map(one, range(n)))
    t.eq(sum(res), n, "concurrency: %d attesters at once all get the secret (%.1fs)" %
         (n, time.time() - t0))


def check_shared_sessions(t, pki, asvc, redis, storage):
    """Two replicas on one Redis: /auth on one, /attest on the other, the read on the first."""
    cfg = kbs_config(pki, as_addr=asvc.addr, storage=storage)
    cfg["session_storage_type"] = "Redis"
    ka = Kbs(cfg, name="kbs-replica-a").start()
    kb = Kbs(cfg, name="kbs-replica-b").start()
    ka.set_policy(pki, ALLOW_ALL)
    ka.set_resource(pki, "default/replica/key", b"shared")
    a = Attester(ka)
    st, h, _ = a.auth()
    sid = a.cookie.split("=", 1)[1]
    ttl = redis.command("TTL", "kbs_protocol_session:" + sid)
    t.ok(isinstance(ttl, int) and 290 <= ttl <= 300,
         "replicas: the session is in Redis under kbs_protocol_session:<id> with its TTL", ttl)
    a.kbs = kb
    st, h, data = a.attest()
    t.eq(st, 200, "replicas: /attest on the other replica finds the session")
    a.kbs = ka
    st, h, data = a.get("default/replica/key")
    t.ok(st == 200 and a.decrypt(data) == b"shared",
         "replicas: the attested session reads on the first replica", data[:200])
    a.kbs = kb
    st, h, data = a.attest()
    t.ok(st == 401 and "already used" in json.loads(data)["detail"],
         "replicas: replaying /attest on the other replica is refused (nonce consumed)", data)
    ka.stop()
    kb.stop()


def check_as_down(t, pki):
    """An unreachable AS fails /attest fast with 503 + Retry-After and a detail saying the AS is
    unavailable (without its address); /auth and the daemon keep working."""
    from harness import free_port
    kbs = Kbs(kbs_config(pki, as_addr="http://127.0.0.1:%d" % free_port()), name="kbs-no-as").start()
    a = Attester(kbs)
    st, _, _ = a.auth()
    t.eq(st, 200, "AS down: /auth still answers")
    t0 = time.time()
    st, h, data = a.attest()
    detail = json.loads(data).get("detail", "") if st == 503 else ""
    t.ok(st == 503 and h.get("retry-after") == "1" and time.time() - t0 < 20 and
         "attestation service is unavailable" in detail and "127.0.0.1" not in detail,
         "AS down: /attest -> 503, Retry-After, the AS named as the cause (%.1fs)" %
         (time.time() - t0), data)
    st, _, _ = kbs.request("GET", "/healthz")
    t.eq(st, 200, "AS down: daemon healthy")
    kbs.stop()


def main():
    require_kbs()
    t = Tap()
    pki = Pki()
    asvc = start_as(pki)
    redis = Redis().start()
    storage = {"storage_type": "Redis", "backends": {"redis": {"url": redis.url}}}
    kbs = Kbs(kbs_config(pki, as_addr=asvc.addr, storage=storage)).start()
    print("# AS: %s" % type(asvc).__name__)
    for fn in (check_auth, check_auth_refusals, check_attest, check_additional_evidence,
               check_attest_refusals):
        t.run(fn, kbs)
    t.run(check_auth_se, pki)
    t.run(check_resources, kbs, pki)
    t.run(check_routing, kbs)
    t.run(check_metrics, kbs, pki)
    t.run(check_hostile, kbs)
    t.run(check_concurrency, kbs, pki)
    t.run(check_shared_sessions, pki, asvc, redis, storage)
    t.run(check_as_down, pki)
    t.ok(kbs.alive(), "kbs survived the whole run")
    kbs.stop()
    t.done()


if __name__ == "__main__":
    main()
