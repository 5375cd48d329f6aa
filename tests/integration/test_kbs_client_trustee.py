#!/usr/bin/python3
"""kbs-client driven by Trustee's own command lines: the shell recipes of Trustee's
kbs/test/Makefile (confidential-containers/trustee at 78962cd4, the revision kbs-protocol.md
§0 names) copied below with only URLs, ports and the client's path rewritten, run by bash in
a directory laid out like kbs/test (work/, config/) against a real kbs:
the key and certificate recipes, the EdDSA admin token minted by openssl, test-bgcheck
(HTTPS, `config --admin-token-file`, `get-resource | base64 -d | diff`), the attestation token
and test-passport (a resource-only KBS on resource-kbs.toml, `--attestation-token`). Then
the README's examples and every other subcommand and flag of Trustee's client: delete-resource,
the named resource policies, set-attestation-policy --type/--id, set-sample-reference-value
--as-integer/--as-bool/--as-single-value with get-reference-value, init-data as a positional
argument, the admin-token search path, --cert-file adding a root (not replacing the
default ones), and our --auth-private-key extension minting a token
an `audience = "kbs"` identity provider accepts.

kbs/test's kbs.toml runs as written, with its built-in AS (coco_as_builtin) and no grpc-as."""
import base64
import hashlib
import json
import os
import subprocess

from harness import BIN, Daemon, Tap, free_port, tmpdir
from kbs_testlib import b64u_dec, require_kbs

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
CLIENT = os.path.join(BIN, "kbs-client")

# kbs/test/Makefile: the policy test-bgcheck and test-passport install (TEE = sample).
TEE_POLICY_REGO = """package policy

default allow = false

allow if {
	data.plugin == "resource"
	data["resource-path"][0] == "one"
	data["resource-path"][1] == "two"
	data["resource-path"][2] == "three"
	input["submods"]["cpu0"]["ear.veraison.annotated-evidence"]["sample"]
}"""

# kbs/test/Makefile recipes, in the order `make e2e-test` runs them; $(VAR)s expanded to the
# paths below (WORK_DIR = work), `$$` unescaped to `$`. Nothing else is changed.
RECIPES = [
    ("CA_KEY", "openssl genrsa -traditional -out work/ca.key 2048"),
    ("CA_CERT", 'openssl req -new -key "work/ca.key" -out "work/ca-req.csr" \\\n'
     '\t\t-subj "/O=CNCF/OU=CoCo/CN=KBS-test-root" && \\\n'
     '\topenssl req -x509 -days 3650 -key "work/ca.key" -in "work/ca-req.csr" '
     '-out "work/ca-cert.pem"'),
    ("TOKEN_KEY", 'openssl ecparam -name prime256v1 -genkey -noout -out "work/token.key"'),
    ("TOKEN_CERT", 'openssl req -new -key "work/token.key" -out "work/token-req.csr" \\\n'
     '\t\t-subj "/O=CNCF/OU=CoCo/CN=CoCo-AS" && \\\n'
     '\topenssl x509 -req -in "work/token-req.csr" -CA "work/ca-cert.pem" '
     '-CAkey "work/ca.key" \\\n\t\t-CAcreateserial -out work/token-cert.pem -extensions req_ext'),
    ("TOKEN_CERT_CHAIN", 'cat "work/token-cert.pem" "work/ca-cert.pem" > '
     '"work/token-cert-chain.pem"'),
    ("HTTPS_KEY HTTPS_CERT", 'openssl req -x509 -out "work/https.crt" -keyout "work/https.key" \\\n'
     "\t\t-newkey rsa:2048 -nodes -sha256 \\\n\t\t-subj '/CN=kbs.coco' \\\n"
     '\t\t--addext "subjectAltName=IP:127.0.0.1" \\\n'
     '\t\t--addext "basicConstraints=CA:FALSE"'),
    ("KBS_KEY", 'openssl genpkey -algorithm ed25519 > "work/kbs.key"'),
    ("KBS_PEM", 'openssl pkey -in "work/kbs.key" -pubout -out "work/kbs.pem"'),
    ("ADMIN_TOKEN", """{ \\
		set -e; \\
		b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }; \\
		header='{"alg":"EdDSA","typ":"JWT"}'; \\
		iat=$(date +%s); \\
		exp=$((iat + 315360000)); \\
		payload="{\\"iss\\":\\"issuer\\",\\"role\\":\\"admin\\",\\"aud\\":[\\"kbs\\"],\\"iat\\":${iat},\\"exp\\":${exp}}"; \\
		h64=$(printf '%s' "$header" | b64url); \\
		p64=$(printf '%s' "$payload" | b64url); \\
		msg_file=$(mktemp); \\
		printf '%s' "${h64}.${p64}" > "$msg_file"; \\
		sig=$(openssl pkeyutl -sign -inkey "work/kbs.key" -rawin -in "$msg_file" | b64url); \\
		rm -f "$msg_file"; \\
		printf '%s.%s.%s\\n' "$h64" "$p64" "$sig" > "work/admin-token"; \\
	}"""),
    ("TEE_KEY", 'openssl genrsa -traditional -out "work/tee.key" 2048'),
    ("SECRET_FILE", 'mkdir -p $(dirname "work/storage/repository/one\\x2Ftwo\\x2Fthree") && \\\n'
     '\topenssl rand 16 > "work/storage/repository/one\\x2Ftwo\\x2Fthree"'),
]

SECRET_FILE = "work/storage/repository/one\\x2Ftwo\\x2Fthree"

# kbs/test/Makefile test-bgcheck; URL_A stands for https://127.0.0.1:8080.
TEST_BGCHECK = """./client \\
		--url URL_A \\
		--cert-file "work/https.crt" \\
		config \\
		--admin-token-file "work/admin-token" \\
		set-resource-policy \\
		--policy-file <(echo "$TEE_POLICY_REGO") && \\
	./client \\
		--url URL_A \\
		--cert-file "work/https.crt" \\
		get-resource \\
		--path "one/two/three" \\
		| base64 -d > "work/secret" && \\
	diff "work/secret" "work/storage/repository/one\\x2Ftwo\\x2Fthree\""""

# kbs/test/Makefile $(ATTESTATION_TOKEN)
ATTESTATION_TOKEN = """./client \\
		--url URL_A \\
		--cert-file "work/https.crt" \\
		attest \\
		--tee-key-file "work/tee.key" \\
		> "work/attestation_token\""""

# kbs/test/Makefile test-passport; URL_B stands for http://127.0.0.1:50002.
TEST_PASSPORT = """./client --url URL_B \\
		config --admin-token-file "work/admin-token" \\
		set-resource-policy --policy-file <(echo "$TEE_POLICY_REGO") && \\
	./client --url URL_B get-resource \\
		--attestation-token "work/attestation_token" \\
		--tee-key-file "work/tee.key" \\
		--path one/two/three \\
		| base64 -d > "work/secret" && \\
	diff "work/storage/repository/one\\x2Ftwo\\x2Fthree" "work/secret\""""


class Env:
    """A directory laid out like Trustee's kbs/test: ./client, ./config, ./work."""

    def __init__(self):
        self.dir = tmpdir("kbs-test-")
        os.makedirs(os.path.join(self.dir, "work"))
        os.makedirs(os.path.join(self.dir, "config"))
        os.symlink(CLIENT, os.path.join(self.dir, "client"))
        self.home = tmpdir("kbs-client-home-")

    def path(self, f):
        return os.path.join(self.dir, f)

    def sh(self, script, urls=None, env=None, timeout=60):
        for k, v in (urls or {}).items():
            script = script.replace(k, v)
        e = dict(os.environ, TEE_POLICY_REGO=TEE_POLICY_REGO, HOME=self.home)
        e.update(env or {})
        # umask 077: the AS refuses a signing key other users can read (openssl writes 0644)
        return subprocess.run(["bash", "-c", "umask 077\n" + script], cwd=self.dir, env=e,
                              capture_output=True, text=True, timeout=timeout)

    def client(self, *args, url=None, cwd=None, env=None, stdin=None):
        e = dict(os.environ, HOME=self.home)
        e.update(env or {})
        argv = [CLIENT] + (["--url", url] if url else []) + list(args)
        return subprocess.run(argv, cwd=cwd or self.dir, env=e, capture_output=True,
                              timeout=60, input=stdin)


def read_config(name, subs):
    with open(os.path.join(HERE, name)) as f:
        text = f.read()
    for a, b in subs:
        assert a in text, (name, a)
        text = text.replace(a, b)
    return text


def start_kbs(env, name, text):
    """Started as kbs/test's kbs.PID recipe starts it: --config-file ./config/<name>.toml."""
    port = int(text.split('sockets = ["127.0.0.1:')[1].split('"')[0])
    with open(env.path("config/%s.toml" % name), "w") as f:
        f.write(text)
    return Daemon(name, [os.path.join(BIN, "kbs"), "--config-file", "./config/%s.toml" % name],
                  port, cwd=env.dir).start()


def check_recipes(t, env):
    for target, script in RECIPES:
        p = env.sh(script)
        if not t.ok(p.returncode == 0, "kbs/test recipe %s" % target, p.stderr[-500:]):
            raise RuntimeError("cannot set kbs/test up")


def check_bgcheck(t, env, url_a):
    p = env.sh(TEST_BGCHECK, {"URL_A": url_a})
    t.ok(p.returncode == 0, "kbs/test test-bgcheck: set-resource-policy, get-resource | "
         "base64 -d | diff", p.stdout[-300:] + p.stderr[-600:])
    t.ok("Set resource policy success \n policy: " in p.stdout,
         "set-resource-policy prints Trustee's success line", p.stdout[-300:])
    p = env.sh(ATTESTATION_TOKEN, {"URL_A": url_a})
    tok = open(env.path("work/attestation_token")).read().strip()
    t.ok(p.returncode == 0 and tok.count(".") == 2,
         "kbs/test attestation_token: attest --tee-key-file writes the token", p.stderr[-400:])
    claims = json.loads(b64u_dec(tok.split(".")[1]))
    tpk = claims["submods"]["cpu0"]["ear.veraison.annotated-evidence"]["runtime_data_claims"][
        "tee-pubkey"]
    t.ok(tpk.get("kty") == "RSA", "the token carries the RSA tee key of work/tee.key", tpk)


def check_passport(t, env, url_b):
    p = env.sh(TEST_PASSPORT, {"URL_B": url_b})
    t.ok(p.returncode == 0, "kbs/test test-passport: --attestation-token on a resource-only "
         "KBS, base64 -d | diff", p.stdout[-300:] + p.stderr[-600:])
    p = env.client("get-resource", "--attestation-token", "work/attestation_token", "--path",
                   "one/two/three", url=url_b)
    t.ok(p.returncode != 0 and b"--tee-key-file" in p.stderr,
         "--attestation-token without --tee-key-file is refused, naming the flag", p.stderr)


def get_b64(env, url, path, *extra):
    p = env.client("--cert-file", "work/https.crt", "get-resource", "--path", path, *extra,
                   url=url)
    if p.returncode != 0:
        return None, p
    return base64.b64decode(p.stdout, validate=False), p


def check_readme(t, env, url):
    tok = ["config", "--admin-token-file", "work/admin-token"]
    with open(env.path("test_resource"), "wb") as f:
        f.write(b"readme \x00 secret\n")
    p = env.client("--cert-file", "work/https.crt", *tok, "set-resource", "--path",
                   "my_repo/resource_type/123abc", "--resource-file", "test_resource", url=url)
    t.eq(p.stdout.decode(), "Set resource success \n resource: %s\n" %
         base64.b64encode(b"readme \x00 secret\n").decode(),
         "README: set-resource prints Trustee's line with the resource in base64")
    p = env.client("--cert-file", "work/https.crt", *tok, "set-resource-policy", "--allow-all",
                   url=url)
    t.ok(p.returncode == 0, "set-resource-policy --allow-all", p.stderr)
    got, p = get_b64(env, url, "my_repo/resource_type/123abc")
    t.eq(got, b"readme \x00 secret\n", "README: get-resource prints the bytes in base64")
    p = env.client("--cert-file", "work/https.crt", *tok, "delete-resource", "--path",
                   "my_repo/resource_type/123abc", url=url)
    t.ok(p.returncode == 0 and p.stdout == b"Delete resource success\n",
         "delete-resource prints Trustee's line", p.stdout + p.stderr)
    got, p = get_b64(env, url, "my_repo/resource_type/123abc")
    t.ok(got is None and p.returncode != 0, "the deleted resource is gone", p.stderr[-300:])


def check_named_policies(t, env, url):
    tok = ["--cert-file", "work/https.crt", "config", "--admin-token-file", "work/admin-token"]
    p = env.client("--cert-file", "work/https.crt", "attest", url=url)
    claims = json.loads(b64u_dec(p.stdout.decode().strip().split(".")[1]))
    affirming = all(s.get("ear.status") == "affirming" for s in claims["submods"].values())
    for flag, want in (("--deny-all", False), ("--allow-all", True), ("--default", False),
                       ("--affirming", affirming)):
        p = env.client(*tok, "set-resource-policy", flag, url=url)
        ok = p.returncode == 0
        got, gp = get_b64(env, url, "one/two/three")
        t.ok(ok and (got is not None) == want, "set-resource-policy %s: resource %s" %
             (flag, "released" if want else "refused"), p.stderr + gp.stderr[-300:])
    p = env.client(*tok, "set-resource-policy", "--allow-all", "--deny-all", url=url)
    t.ok(p.returncode == 2, "set-resource-policy takes one policy only", p.stderr)


def check_attestation_policy(t, env, url):
    tok = ["--cert-file", "work/https.crt", "config", "--admin-token-file", "work/admin-token"]
    pol = env.path("work/ap.rego")
    with open(pol, "w") as f:
        f.write("package policy\nimport rego.v1\ndefault executables := 3\n"
                "default hardware := 2\ndefault configuration := 2\n")
    p = env.client(*tok, "set-attestation-policy", "--type", "rego", "--id", "mine",
                   "--policy-file", pol, url=url)
    t.ok(p.returncode == 0 and p.stdout.decode().startswith(
        "Set attestation policy success \n policy: "),
        "set-attestation-policy --type rego --id ID", p.stdout + p.stderr)


def rust_debug_unquote(s):
    """Undo Rust's `{:?}` of a string (the escapes JSON text produces)."""
    assert s.startswith('"') and s.endswith('"'), s
    return json.loads(s)


def check_reference_values(t, env, url):
    tok = ["--cert-file", "work/https.crt", "config", "--admin-token-file", "work/admin-token"]
    cases = [(["svn", "1", "--as-integer"], [1]),
             (["debug", "false", "--as-bool"], [False]),
             (["launch", "abc", "--as-single-value"], "abc"),
             (["plain", "7"], ["7"])]
    for args, want in cases:
        p = env.client(*tok, "set-sample-reference-value", *args, url=url)
        t.ok(p.returncode == 0 and p.stdout == b"Reference Values Updated\n",
             "set-sample-reference-value %s" % " ".join(args), p.stdout + p.stderr)
        p = env.client(*tok, "get-reference-value", "--id", args[0], url=url)
        out = p.stdout.decode().strip()
        try:
            got = json.loads(rust_debug_unquote(out))
        except (ValueError, AssertionError):
            got = out
        t.ok(p.returncode == 0 and got == want,
             "get-reference-value --id %s prints %r as Trustee's client does" % (args[0], want),
             out + p.stderr.decode())
    p = env.client(*tok, "set-sample-reference-value", "svn", "x1", "--as-integer", url=url)
    t.ok(p.returncode != 0 and b"integer" in p.stderr,
         "--as-integer refuses a value that is not an integer", p.stderr)


def check_init_data(t, env, url):
    p = env.client("--cert-file", "work/https.crt", "config", "--admin-token-file",
                   "work/admin-token", "set-resource-policy", "--allow-all", url=url)
    initdata = 'version = "0.1.0"\nalgorithm = "sha256"\n[data]\n"hello" = "world"\n'
    p = env.client("--cert-file", "work/https.crt", "attest", initdata, url=url)
    ok = p.returncode == 0
    claims = json.loads(b64u_dec(p.stdout.decode().strip().split(".")[1])) if ok else {}
    ann = claims.get("submods", {}).get("cpu0", {}).get("ear.veraison.annotated-evidence", {})
    want = base64.b64encode(hashlib.sha256(initdata.encode()).digest()).decode()
    t.ok(ok and ann.get("init_data") == want and
         ann.get("init_data_claims") == {"hello": "world"},
         "attest INIT_DATA: the positional init-data is sent and bound",
         p.stderr.decode()[-300:] + json.dumps(ann)[:600])
    got, gp = get_b64(env, url, "one/two/three", initdata)
    t.ok(got is not None, "get-resource --path P INIT_DATA", gp.stderr[-300:])


def check_admin_token_sources(t, env, url):
    base = ["--cert-file", "work/https.crt", "config"]
    pol = ["set-resource-policy", "--allow-all"]
    cwd = tmpdir("kbs-client-cwd-")
    home = tmpdir("kbs-client-home2-")
    ca = env.path("work/https.crt")
    argv = ["--cert-file", ca, "config"] + pol
    p = env.client(*argv, url=url, cwd=cwd, env={"HOME": home})
    t.ok(p.returncode != 0 and b"anonymous" in p.stderr,
         "no admin token anywhere: an anonymous request, refused by this KBS", p.stderr)
    os.makedirs(os.path.join(home, ".trustee"))
    with open(env.path("work/admin-token")) as f:
        token = f.read()
    with open(os.path.join(home, ".trustee", "admin-token"), "w") as f:
        f.write(token)
    p = env.client(*argv, url=url, cwd=cwd, env={"HOME": home})
    t.ok(p.returncode == 0, "the admin token is found in ~/.trustee/admin-token", p.stderr)
    os.makedirs(os.path.join(cwd, "kbs/config/docker-compose"))
    with open(os.path.join(cwd, "kbs/config/docker-compose/admin-token"), "w") as f:
        f.write("not-a-token\n")
    p = env.client(*argv, url=url, cwd=cwd, env={"HOME": home})
    t.ok(p.returncode != 0, "kbs/config/docker-compose/admin-token comes before "
         "~/.trustee/admin-token", p.stderr)
    p = env.client(*base, "--auth-private-key", "work/kbs.key", *pol, url=url)
    t.ok(p.returncode == 0, "--auth-private-key mints a token an audience = \"kbs\" identity "
         "provider accepts", p.stderr)
    p = env.client(*base, "--auth-private-key", "work/kbs.key", "--audience", "other", *pol,
                   url=url)
    t.ok(p.returncode != 0, "... and one for another audience is refused", p.stderr)


def check_trust(t, env, url):
    """--cert-file adds to the trusted roots (reqwest's add_root_certificate in Trustee's
    client) rather than replacing them; SSL_CERT_FILE names the default bundle.
    work/ca-cert.pem is a CA that did not issue the KBS's self-signed work/https.crt."""
    crt, other = env.path("work/https.crt"), env.path("work/ca-cert.pem")
    p = env.client("--cert-file", other, "attest", url=url, env={"SSL_CERT_FILE": crt})
    t.ok(p.returncode == 0, "--cert-file adds a root: the default bundle still verifies the "
         "KBS", p.stderr[-300:])
    p = env.client("--cert-file", crt, "attest", url=url, env={"SSL_CERT_FILE": other})
    t.ok(p.returncode == 0, "... and the added root verifies it too", p.stderr[-300:])
    p = env.client("--cert-file", other, "attest", url=url, env={"SSL_CERT_FILE": other})
    t.ok(p.returncode != 0 and b"certificate" in p.stderr,
         "neither the bundle nor the added root knows the KBS: refused, saying why",
         p.stderr[-300:])
    p = env.client("--cert-file", env.path("work/none.pem"), "attest", url=url)
    t.ok(p.returncode == 1 and b"Failed to read" in p.stderr,
         "an unreadable --cert-file stops the client", p.stderr[-300:])
    p = env.client("--cert-file", env.path("work/kbs.pem"), "attest", url=url)
    t.ok(p.returncode == 1 and b"no PEM certificate" in p.stderr,
         "a --cert-file without a certificate stops the client", p.stderr[-300:])


def check_cli(t, env):
    p = env.client("--help")
    t.ok(p.returncode == 0 and b"http://127.0.0.1:8080" in p.stdout,
         "--help names the default URL http://127.0.0.1:8080", p.stdout[-400:])
    p = env.client("--url", "http://127.0.0.1:1", "get-resource")
    t.ok(p.returncode == 2 and b"--path" in p.stderr, "get-resource without --path", p.stderr)
    p = env.client("config", "--admin-token-file", "work/admin-token", "frobnicate")
    t.ok(p.returncode == 2 and b"frobnicate" in p.stderr, "an unknown config subcommand",
         p.stderr)


def main():
    require_kbs()
    t = Tap()
    env = Env()
    check_recipes(t, env)
    port_a, port_b = free_port(), free_port()
    text = read_config("test-kbs.toml", [('"127.0.0.1:8080"', '"127.0.0.1:%d"' % port_a)])
    kbs = start_kbs(env, "kbs", text)  # coco_as_builtin, as kbs/test runs it
    url_a = "https://127.0.0.1:%d" % port_a
    rtext = read_config("test-resource-kbs.toml",
                        [('"127.0.0.1:50002"', '"127.0.0.1:%d"' % port_b)])
    rkbs = start_kbs(env, "resource-kbs", rtext)
    url_b = "http://127.0.0.1:%d" % port_b
    t.run(check_bgcheck, env, url_a)
    t.run(check_passport, env, url_b)
    t.run(check_readme, env, url_a)
    t.run(check_named_policies, env, url_a)
    t.run(check_attestation_policy, env, url_a)
    t.run(check_reference_values, env, url_a)
    t.run(check_init_data, env, url_a)
    t.run(check_admin_token_sources, env, url_a)
    t.run(check_trust, env, url_a)
    t.run(check_cli, env)
    rkbs.stop()
    kbs.stop()
    t.done()


if __name__ == "__main__":
    main()
