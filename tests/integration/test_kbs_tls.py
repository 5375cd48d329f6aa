#!/usr/bin/python3
"""HTTPS on the KBS (kbs-protocol.md §8): insecure_http = false with private_key and a
certificate chain, tls_profile old / intermediate / modern / custom, tls_min_version /
tls_max_version / tls_ciphers overriding a profile, tls_groups; each checked with Python ssl
clients (the version and cipher they negotiate, the ones they are refused) and openssl s_client
for groups. Then the full RCAR handshake and a resource read over HTTPS, kbs-client
--cert-file trusting the private CA, and the start-up refusals."""
import base64
import os
import shutil
import socket
import ssl
import subprocess
import warnings

from harness import BIN, Tap
from kbs_testlib import ALLOW_ALL, Attester, Kbs, Pki, kbs_config, require_kbs, start_as

SECRET = b"over https"
warnings.filterwarnings("ignore", category=DeprecationWarning)
V12, V13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3


def https_kbs(pki, name, cert="rsa", as_addr=None, **http):
    key, chain = pki.server_cert("server-" + cert, "RSA" if cert == "rsa" else "EC")
    cfg = kbs_config(pki, as_addr=as_addr)
    cfg["http_server"].update(insecure_http=False, private_key=key, certificate=chain, **http)
    k = Kbs(cfg, name=name)
    k.tls = pki.client_context()
    return k


def hs(pki, port, minv=None, maxv=None, ciphers=None):
    """One TLS handshake trusting only the test CA: (version, cipher) or None if refused."""
    ctx = pki.client_context()
    if minv:
        ctx.minimum_version = minv
    if maxv:
        ctx.maximum_version = maxv
    if ciphers:
        ctx.set_ciphers(ciphers)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname="127.0.0.1") as ss:
                return ss.version(), ss.cipher()[0]
    except (ssl.SSLError, OSError):
        return None


def tls11(pki, port):
    """A TLS 1.1-only client (its own policy lowered so only the server can refuse)."""
    ctx = pki.client_context()
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    try:
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ValueError, ssl.SSLError):
        return "client cannot"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname="127.0.0.1") as ss:
                return ss.version()
    except (ssl.SSLError, OSError):
        return None


def s_client(pki, port, groups, tls13=True):
    """openssl s_client with only `groups` offered; True if the handshake completed."""
    exe = shutil.which("openssl")
    args = [exe, "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile",
            pki.path("ca-cert.pem"), "-groups", groups, "-verify_return_error", "-brief",
            "-tls1_3" if tls13 else "-tls1_2"]
    p = subprocess.run(args, input=b"", capture_output=True, timeout=15)
    out = (p.stdout + p.stderr).decode(errors="replace")
    return p.returncode == 0 and "Protocol version" in out, out


def check_intermediate_default(t, pki):
    k = https_kbs(pki, "kbs-tls-intermediate").start()
    st, h, data = k.request("GET", "/healthz")
    t.eq(st, 200, "intermediate (default): /healthz over HTTPS")
    r = hs(pki, k.port)
    t.ok(r and r[0] == "TLSv1.3", "intermediate: a default client negotiates TLS 1.3", r)
    r = hs(pki, k.port, maxv=V12)
    t.ok(r and r[0] == "TLSv1.2" and r[1].startswith("ECDHE-RSA-"),
         "intermediate: TLS 1.2 with an ECDHE cipher", r)
    r = hs(pki, k.port, maxv=V12, ciphers="AES128-GCM-SHA256")
    t.eq(r, None, "intermediate: TLS 1.2 without forward secrecy (AES128-GCM-SHA256) refused")
    r = hs(pki, k.port, maxv=V12, ciphers="ECDHE-RSA-AES128-SHA")
    t.eq(r, None, "intermediate: TLS 1.2 CBC-SHA1 cipher refused")
    r = tls11(pki, k.port)
    t.ok(r in (None, "client cannot"), "intermediate: TLS 1.1 refused", r)
    ok, out = s_client(pki, k.port, "X25519")
    t.ok(ok, "intermediate: default groups include X25519", out[-300:])
    ok, out = s_client(pki, k.port, "secp384r1")
    t.ok(ok, "intermediate: default groups include secp384r1", out[-300:])
    ok, out = s_client(pki, k.port, "ffdhe2048")
    t.ok(not ok, "intermediate: a group outside the default list (ffdhe2048) is refused",
         out[-300:])
    # plain HTTP to the HTTPS port gets no HTTP answer, and the daemon carries on
    with socket.create_connection(("127.0.0.1", k.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            got = s.recv(100)
        except OSError:
            got = b""
    t.ok(not got.startswith(b"HTTP/1.1 200"), "plain HTTP on the HTTPS port is not served", got)
    t.ok(k.alive() and k.request("GET", "/healthz")[0] == 200, "daemon still serves HTTPS")
    t.ok("HTTPS with TLS 1.2-1.3 (tls_profile intermediate)" in k.log_text(),
         "start-up log names the TLS range and profile")
    k.stop()


def check_old(t, pki):
    k = https_kbs(pki, "kbs-tls-old", tls_profile="old").start()
    r = hs(pki, k.port, maxv=V12, ciphers="AES128-GCM-SHA256")
    t.ok(r == ("TLSv1.2", "AES128-GCM-SHA256"),
         "old: TLS 1.2 with RSA key exchange (AES128-GCM-SHA256) accepted", r)
    r = hs(pki, k.port, maxv=V12, ciphers="ECDHE-RSA-AES128-SHA")
    t.ok(r == ("TLSv1.2", "ECDHE-RSA-AES128-SHA"), "old: TLS 1.2 CBC-SHA1 cipher accepted", r)
    r = hs(pki, k.port)
    t.ok(r and r[0] == "TLSv1.3", "old: TLS 1.3 too", r)
    r = tls11(pki, k.port)
    t.ok(r in (None, "client cannot"), "old: still TLS 1.2 at least (1.1 refused)", r)
    k.stop()


def check_modern(t, pki):
    k = https_kbs(pki, "kbs-tls-modern", tls_profile="modern").start()
    r = hs(pki, k.port)
    t.ok(r and r[0] == "TLSv1.3", "modern: TLS 1.3", r)
    t.eq(hs(pki, k.port, maxv=V12), None, "modern: TLS 1.2 refused")
    k.stop()
    # a version override applies to a non-custom profile too
    k = https_kbs(pki, "kbs-tls-int13", tls_profile="intermediate",
                  tls_min_version="1.3").start()
    t.eq(hs(pki, k.port, maxv=V12), None, "intermediate + tls_min_version 1.3: TLS 1.2 refused")
    r = hs(pki, k.port)
    t.ok(r and r[0] == "TLSv1.3", "intermediate + tls_min_version 1.3: TLS 1.3", r)
    k.stop()


def check_custom(t, pki):
    k = https_kbs(pki, "kbs-tls-custom12", tls_profile="custom", tls_min_version="1.2",
                  tls_max_version="1.2", tls_ciphers="ECDHE-RSA-AES256-GCM-SHA384").start()
    r = hs(pki, k.port)
    t.ok(r == ("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384"),
         "custom 1.2-only: the one configured cipher is negotiated", r)
    t.eq(hs(pki, k.port, minv=V13), None, "custom 1.2-only: TLS 1.3 refused")
    t.eq(hs(pki, k.port, ciphers="ECDHE-RSA-AES128-GCM-SHA256"), None,
         "custom 1.2-only: another cipher refused")
    k.stop()
    k = https_kbs(pki, "kbs-tls-suite13", tls_ciphers="TLS_CHACHA20_POLY1305_SHA256",
                  tls_groups="secp384r1").start()
    r = hs(pki, k.port)
    t.ok(r == ("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256"),
         "tls_ciphers with a TLS_ name sets the TLS 1.3 suite", r)
    r = hs(pki, k.port, maxv=V12)
    t.ok(r and r[0] == "TLSv1.2" and r[1].startswith("ECDHE-RSA-"),
         "... and TLS 1.2 keeps the profile's ciphers", r)
    ok, out = s_client(pki, k.port, "secp384r1")
    t.ok(ok, "tls_groups secp384r1: a client offering secp384r1 connects", out[-300:])
    ok, out = s_client(pki, k.port, "X25519")
    t.ok(not ok, "tls_groups secp384r1: a client offering only X25519 is refused", out[-300:])
    ok, out = s_client(pki, k.port, "X25519", tls13=False)
    temp = [l for l in out.splitlines() if l.startswith("Server Temp Key")]
    t.ok(ok and "ECDHE" not in out and "X25519" not in "".join(temp),
         "tls_groups secp384r1: over TLS 1.2 an X25519-only client gets no ECDHE (DHE instead)",
         out[-300:])
    k.stop()


def check_ec_certificate(t, pki):
    k = https_kbs(pki, "kbs-tls-ec", cert="ec").start()
    r = hs(pki, k.port, maxv=V12)
    t.ok(r and r[0] == "TLSv1.2" and r[1].startswith("ECDHE-ECDSA-"),
         "EC P-256 certificate: ECDHE-ECDSA cipher over TLS 1.2", r)
    t.eq(k.request("GET", "/healthz")[0], 200, "EC certificate: served over TLS 1.3")
    k.stop()


def check_startup_refusals(t, pki):
    other_key, _ = pki.server_cert("other", "EC")
    key, chain = pki.server_cert("server-rsa", "RSA")
    cases = [
        ({"insecure_http": False}, "private_key and certificate", "HTTPS without key material"),
        ({"insecure_http": False, "private_key": other_key, "certificate": chain},
         "does not match the certificate", "a key that is not the certificate's"),
        ({"insecure_http": False, "private_key": key, "certificate": key},
         "certificate", "a certificate file that holds no certificate"),
        ({"insecure_http": False, "private_key": key, "certificate": chain,
          "tls_ciphers": "NOT-A-CIPHER"}, "tls_ciphers", "an unknown cipher"),
        ({"insecure_http": False, "private_key": key, "certificate": chain,
          "tls_groups": "nosuchgroup"}, "tls_groups", "an unknown group"),
        ({"insecure_http": False, "private_key": key, "certificate": chain,
          "tls_groups": "X25519:nosuchgroup:secp384r1"},
         "tls_groups names nosuchgroup, which OpenSSL", "an unknown group among known ones, named"),
        ({"insecure_http": False, "private_key": key, "certificate": chain,
          "tls_profile": "modern", "tls_max_version": "1.2"}, "leaves no TLS version",
         "modern profile capped at TLS 1.2"),
        ({"insecure_http": False, "private_key": key, "certificate": chain,
          "tls_min_version": "1.3", "tls_ciphers": "ECDHE-RSA-AES128-GCM-SHA256"},
         "no TLS 1.3 suite", "TLS 1.3 only with TLS 1.2 ciphers"),
    ]
    for http, want, name in cases:
        cfg = kbs_config(pki)
        cfg["http_server"].update(http)
        k = Kbs(cfg, name="kbs-refused")
        p = subprocess.run(k.args, capture_output=True, text=True, timeout=20)
        t.ok(p.returncode != 0 and want in p.stderr, "refused at start: %s" % name,
             p.stderr[-400:])
    # an ML-KEM hybrid on an OpenSSL older than 3.5: the refusal names the group, not an
    # unrelated error left over from reading files earlier ("PEM routines::no start line")
    if ssl.OPENSSL_VERSION_INFO < (3, 5):
        cfg = kbs_config(pki)
        cfg["http_server"].update({"insecure_http": False, "private_key": key,
                                   "certificate": chain,
                                   "tls_groups": "X25519MLKEM768:X25519:secp256r1"})
        p = subprocess.run(Kbs(cfg, name="kbs-refused").args, capture_output=True, text=True,
                           timeout=20)
        t.ok(p.returncode != 0 and "tls_groups names X25519MLKEM768, which OpenSSL" in p.stderr
             and "OpenSSL 3.5" in p.stderr and "PEM" not in p.stderr,
             "refused at start: X25519MLKEM768 on %s, the group named as the cause" %
             ssl.OPENSSL_VERSION, p.stderr[-400:])
    else:
        t.skip("X25519MLKEM768 refused on an OpenSSL without it",
               "%s supports ML-KEM hybrids" % ssl.OPENSSL_VERSION)


def check_rcar_over_https(t, pki):
    asvc = start_as(pki)
    k = https_kbs(pki, "kbs-tls-rcar", as_addr=asvc.addr).start()
    k.set_policy(pki, ALLOW_ALL)
    k.set_resource(pki, "default/tls/key", SECRET)
    for kt in ("EC-P256", "RSA"):
        a = Attester(k, kt)
        a.rcar()
        st, _, data = a.get("default/tls/key")
        t.ok(st == 200 and a.decrypt(data) == SECRET, "RCAR + resource over HTTPS (%s)" % kt,
             data[:200])
    url = "https://127.0.0.1:%d" % k.port
    client = os.path.join(BIN, "kbs-client")
    p = subprocess.run([client, "--url", url, "--cert-file", pki.path("ca-cert.pem"),
                        "get-resource", "--path", "default/tls/key"], capture_output=True,
                       timeout=60)
    t.ok(p.returncode == 0 and base64.b64decode(p.stdout) == SECRET,
         "kbs-client --cert-file trusts the private CA", p.stderr[-300:])
    p = subprocess.run([client, "--url", url, "get-resource", "--path", "default/tls/key"],
                       capture_output=True, text=True, timeout=60)
    t.ok(p.returncode != 0 and "certificate" in p.stderr,
         "kbs-client without --cert-file refuses the unknown CA and says why", p.stderr[-300:])
    other = Pki(name="Other")
    p = subprocess.run([client, "--url", url, "--cert-file", other.path("ca-cert.pem"),
                        "get-resource", "--path", "default/tls/key"], capture_output=True,
                       text=True, timeout=60)
    t.ok(p.returncode != 0, "kbs-client with another CA's --cert-file refuses", p.stderr[-300:])
    st, _, data = k.request("GET", "/metrics")
    t.ok(st == 200 and b"kbs_resource_reads_total" in data, "/metrics over HTTPS")
    k.stop()
    asvc.stop()


def main():
    require_kbs()
    t = Tap()
    pki = Pki()
    for fn in (check_intermediate_default, check_old, check_modern, check_custom,
               check_ec_certificate, check_startup_refusals, check_rcar_over_https):
        t.run(fn, pki)
    t.done()


if __name__ == "__main__":
    main()
