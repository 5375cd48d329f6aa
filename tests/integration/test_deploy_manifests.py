"""Deployment files: every manifest parses, every kustomization names files that exist, every
config file uses only configuration keys the daemons know (kbs-protocol.md §8, as-rvps.md §3,
§7.4), every file a config points at is mounted into the container that reads it, and every
container runs one of our binaries with the flags it accepts."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib

import yaml

import harness

ROOT = harness.ROOT
DEPLOY = os.path.join(ROOT, "deploy")

KBS_KEYS = {
    "session_storage_type",
    "http_server", "http_server.sockets", "http_server.insecure_http", "http_server.private_key",
    "http_server.certificate", "http_server.payload_request_size", "http_server.worker_count",
    "http_server.tls_profile", "http_server.tls_min_version", "http_server.tls_max_version",
    "http_server.tls_ciphers", "http_server.tls_groups",
    "admin", "admin.authorization_mode", "admin.authentication", "admin.authentication.bearer_jwt",
    "admin.authentication.bearer_jwt.identity_providers",
    "admin.authentication.bearer_jwt.identity_providers[].issuer",
    "admin.authentication.bearer_jwt.identity_providers[].audience",
    "admin.authentication.bearer_jwt.identity_providers[].public_key_uri",
    "admin.authentication.bearer_jwt.identity_providers[].jwk_set_uri",
    "admin.authorization", "admin.authorization.regex_acl", "admin.authorization.regex_acl.acls",
    "admin.authorization.regex_acl.acls[].role",
    "admin.authorization.regex_acl.acls[].allowed_endpoints",
    "attestation_token", "attestation_token.trusted_certs_paths",
    "attestation_token.trusted_jwk_sets", "attestation_token.extra_teekey_paths",
    "attestation_token.insecure_header_jwk",
    "attestation_service", "attestation_service.type", "attestation_service.as_addr",
    "attestation_service.pool_size", "attestation_service.timeout",
    "attestation_service.as_ca_cert", "attestation_service.as_client_cert",
    "attestation_service.as_client_key", "attestation_service.as_bearer_token_file",
    "attestation_service.base_url", "attestation_service.api_key",
    "attestation_service.certs_file", "attestation_service.rvps_config",
    "attestation_service.rvps_config.type", "attestation_service.attestation_token_broker",
    "attestation_service.attestation_token_broker.duration_min",
    "storage_backend.backends.postgres", "storage_backend.backends.postgres.host",
    "storage_backend.backends.postgres.port", "storage_backend.backends.postgres.db",
    "storage_backend.backends.postgres.username",
    "storage_backend", "storage_backend.storage_type", "storage_backend.backends",
    "storage_backend.backends.local_fs", "storage_backend.backends.local_fs.dir_path",
    "storage_backend.backends.local_json", "storage_backend.backends.local_json.file_dir_path",
    "storage_backend.backends.redis", "storage_backend.backends.redis.url",
    "plugins", "plugins[].name", "plugins[].storage_backend_type", "plugins[].item",
}
AS_KEYS = {
    "rvps_config", "rvps_config.type", "rvps_config.address", "rvps_config.extractors",
    "rvps_config.ca_cert", "rvps_config.client_cert", "rvps_config.client_key",
    "rvps_config.storage_type", "rvps_config.bearer_token_file",
    "rvps_config.max_reference_values_per_message", "admin", "admin.allowed_identities",
    "admin.bearer_token_file", "attestation_token_broker",
    "attestation_token_broker.duration_min", "attestation_token_broker.issuer_name",
    "attestation_token_broker.developer_name", "attestation_token_broker.build_name",
    "attestation_token_broker.profile_name", "attestation_token_broker.verbose_token",
    "attestation_token_broker.signer", "attestation_token_broker.signer.key_path",
    "attestation_token_broker.signer.cert_path", "attestation_token_broker.signer.cert_url",
    "verifier_config", "storage_backend", "storage_backend.storage_type",
    "storage_backend.backends", "storage_backend.backends.local_fs",
    "storage_backend.backends.local_fs.dir_path", "storage_backend.backends.local_json",
    "storage_backend.backends.local_json.file_dir_path", "storage_backend.backends.redis",
    "storage_backend.backends.redis.url", "storage_backend.backends.postgres",
    "storage_backend.backends.postgres.host", "storage_backend.backends.postgres.port",
    "storage_backend.backends.postgres.db", "storage_backend.backends.postgres.username",
}
RVPS_KEYS = {
    "storage", "storage.storage_type", "storage.backends", "storage.backends.local_fs",
    "storage.backends.local_fs.dir_path", "storage.backends.local_json",
    "storage.backends.local_json.file_dir_path", "storage.backends.redis",
    "storage.backends.redis.url", "storage.backends.postgres", "storage.backends.postgres.host",
    "storage.backends.postgres.port", "storage.backends.postgres.db",
    "storage.backends.postgres.username", "extractors", "extractors.swid_extractor",
    "admin", "admin.allowed_identities", "admin.bearer_token_file",
    "max_reference_values_per_message",
}
IDENTITY = re.compile(r"^(dns|uri|email|subject):.+$|^sha256:[0-9a-fA-F]{64}$")
BINARIES = {
    "/usr/local/bin/kbs": ("kbs", {"--config-file"}),
    "/usr/local/bin/grpc-as": ("grpc-as", {"--socket", "--config-file", "--https-pubkey-cert",
                                           "--https-prikey", "--https-client-ca"}),
    "/usr/local/bin/rvps": ("rvps", {"--address", "--config", "--https-pubkey-cert",
                                     "--https-prikey", "--https-client-ca"}),
}


def key_paths(doc, prefix=""):
    if isinstance(doc, dict):
        for k, v in doc.items():
            p = prefix + "." + k if prefix else k
            yield p
            yield from key_paths(v, p)
    elif isinstance(doc, list) and doc and all(isinstance(x, dict) for x in doc):
        for x in doc:
            yield from key_paths(x, prefix + "[]")


def check_keys(t, path, doc, known):
    unknown = sorted(set(key_paths(doc)) - known)
    t.ok(not unknown, "%s uses only known config keys" % os.path.relpath(path, ROOT),
         "unknown: %s" % unknown)


def strings(doc):
    if isinstance(doc, dict):
        for v in doc.values():
            yield from strings(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from strings(v)
    elif isinstance(doc, str):
        yield doc


def load_config(path):
    with open(path, "rb") as f:
        return tomllib.load(f) if path.endswith(".toml") else json.load(f)


def test_manifests(t):
    yamls = sorted(glob.glob(os.path.join(DEPLOY, "kubernetes", "**", "*.yaml"), recursive=True))
    t.ok(len(yamls) >= 8, "deploy/kubernetes has the base and three overlays", yamls)
    for y in yamls:
        with open(y) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        t.ok(all(isinstance(d, dict) for d in docs), "%s parses" % os.path.relpath(y, ROOT))


def kustomize_files(kdir):
    """Files a kustomization pulls in (resources, generators, patches), overlays followed."""
    with open(os.path.join(kdir, "kustomization.yaml")) as f:
        k = yaml.safe_load(f)
    out = []
    for r in k.get("resources", []):
        p = os.path.normpath(os.path.join(kdir, r))
        out.append(p)
        if os.path.isdir(p):
            out.extend(kustomize_files(p))
    for g in k.get("configMapGenerator", []) + k.get("secretGenerator", []):
        for f in g.get("files", []):
            out.append(os.path.join(kdir, f.split("=")[-1]))
    for p in k.get("patches", []):
        if "path" in p:
            out.append(os.path.join(kdir, p["path"]))
    return out


def test_kustomizations_and_configs(t):
    kdirs = sorted(os.path.dirname(k) for k in glob.glob(
        os.path.join(DEPLOY, "kubernetes", "**", "kustomization.yaml"), recursive=True))
    for kdir in kdirs:
        rel = os.path.relpath(kdir, ROOT)
        files = kustomize_files(kdir)
        missing = [f for f in files if not os.path.exists(f)]
        t.ok(not missing, "%s references only existing files" % rel, missing)
    for cfg in glob.glob(os.path.join(DEPLOY, "kubernetes", "**", "*.toml"), recursive=True):
        check_keys(t, cfg, load_config(cfg), KBS_KEYS)
    for cfg in glob.glob(os.path.join(DEPLOY, "kubernetes", "**", "as-config.json"), recursive=True):
        check_keys(t, cfg, load_config(cfg), AS_KEYS)
    for cfg in glob.glob(os.path.join(DEPLOY, "kubernetes", "**", "rvps.json"), recursive=True):
        check_keys(t, cfg, load_config(cfg), RVPS_KEYS)


def deployments(kdir):
    for f in kustomize_files(kdir):
        if f.endswith(".yaml") and not f.endswith("kustomization.yaml") and os.path.isfile(f):
            with open(f) as fh:
                for d in yaml.safe_load_all(fh):
                    # a strategic-merge patch has no selector; only whole Deployments count
                    if isinstance(d, dict) and d.get("kind") == "Deployment" and \
                            "selector" in d.get("spec", {}):
                        yield d


def config_for(kdir, configmap, key):
    """The file a configMapGenerator entry of this overlay (or its bases) turns into `key`."""
    with open(os.path.join(kdir, "kustomization.yaml")) as f:
        k = yaml.safe_load(f)
    for g in k.get("configMapGenerator", []):
        if g["name"] == configmap:
            for spec in g.get("files", []):
                name, _, src = spec.partition("=")
                if (name if src else os.path.basename(name)) == key:
                    return os.path.join(kdir, src or name)
    for r in k.get("resources", []):
        p = os.path.normpath(os.path.join(kdir, r))
        if os.path.isdir(p):
            found = config_for(p, configmap, key)
            if found:
                return found
    return None


def test_containers_mount_what_configs_name(t):
    overlays = sorted(glob.glob(os.path.join(DEPLOY, "kubernetes", "overlays", "*")))
    for kdir in overlays:
        rel = os.path.relpath(kdir, ROOT)
        for dep in deployments(kdir):
            spec = dep["spec"]["template"]["spec"]
            vols = {v["name"]: v for v in spec.get("volumes", [])}
            t.ok(spec.get("automountServiceAccountToken") is False,
                 "%s %s: no service account token" % (rel, dep["metadata"]["name"]))
            for c in spec["containers"]:
                cmd = c.get("command", [])
                if not cmd or cmd[0] not in BINARIES:
                    continue
                name, flags = BINARIES[cmd[0]]
                what = "%s %s/%s" % (rel, dep["metadata"]["name"], c["name"])
                used = {a for a in cmd[1:] if a.startswith("--")}
                t.ok(used <= flags, "%s: %s runs with flags it accepts" % (what, name),
                     used - flags)
                sc = c.get("securityContext", {})
                t.ok(sc.get("allowPrivilegeEscalation") is False and
                     sc.get("capabilities", {}).get("drop") == ["ALL"],
                     "%s: hardened container" % what)
                mounts = {m["mountPath"]: vols.get(m["name"]) for m in c.get("volumeMounts", [])}
                cfg_path = cmd[cmd.index("--config-file") + 1] if "--config-file" in cmd else \
                    cmd[cmd.index("--config") + 1]
                mdir, fname = os.path.split(cfg_path)
                vol = mounts.get(mdir)
                ok = vol is not None and "configMap" in vol
                t.ok(ok, "%s: config %s is mounted from a ConfigMap" % (what, cfg_path))
                if not ok:
                    continue
                src = config_for(kdir, vol["configMap"]["name"], fname)
                t.ok(src is not None, "%s: ConfigMap %s provides %s" %
                     (what, vol["configMap"]["name"], fname))
                if src is None:
                    continue
                paths = [s for s in strings(load_config(src)) if s.startswith("/")]
                paths += [s[len("file://"):] for s in strings(load_config(src))
                          if s.startswith("file://")]
                unmounted = [p for p in paths if not any(
                    p == m or p.startswith(m.rstrip("/") + "/") for m in mounts)]
                t.ok(not unmounted, "%s: every path in %s is on a mounted volume" %
                     (what, os.path.relpath(src, ROOT)), unmounted)


def test_tls_overlay_authorizes_writes(t):
    """The mutual-TLS overlay lists who may write to the AS and the RVPS (issue 14 V7)."""
    kdir = os.path.join(DEPLOY, "kubernetes", "overlays", "tls")
    for cm, key, what in (("as-config", "config.json", "grpc-as"),
                          ("rvps-config", "rvps.json", "rvps")):
        src = config_for(kdir, cm, key)
        ids = (load_config(src).get("admin") or {}).get("allowed_identities") if src else None
        t.ok(isinstance(ids, list) and ids and all(IDENTITY.match(i) for i in ids),
             "tls overlay: %s writes are limited to listed client identities" % what, ids)
    kbs = load_config(os.path.join(kdir, "kbs-config.toml"))["attestation_service"]
    asc = load_config(config_for(kdir, "as-config", "config.json"))
    t.ok(kbs.get("as_client_cert") and asc["admin"]["allowed_identities"] == ["dns:kbs-client"] and
         asc["rvps_config"].get("client_cert"),
         "tls overlay: the KBS and the AS present the client certificates those lists name")


def test_systemd_and_container_files(t):
    for unit in sorted(glob.glob(os.path.join(DEPLOY, "systemd", "*.service"))):
        text = open(unit).read()
        m = re.search(r"^ExecStart=(\S+)(.*)$", text, re.M)
        t.ok(m and m.group(1) in BINARIES, "%s starts one of our daemons" %
             os.path.relpath(unit, ROOT))
        if m:
            flags = set(re.findall(r"--[a-z-]+", m.group(2)))
            t.ok(flags <= BINARIES[m.group(1)][1], "%s passes accepted flags" %
                 os.path.relpath(unit, ROOT), flags)
    cf = open(os.path.join(DEPLOY, "container", "Containerfile")).read()
    for target in ("kbs", "grpc-as", "rvps"):
        t.ok(re.search(r"^FROM \S+ AS %s$" % re.escape(target), cf, re.M),
             "Containerfile has a %s target" % target)
    container_libraries(t, cf)


def stage_packages(cf, target):
    """The packages a Containerfile stage's apt-get install lines name."""
    m = re.search(r"^FROM \S+ AS %s$(.*?)(?=^FROM |\Z)" % re.escape(target), cf, re.M | re.S)
    text = m.group(1).replace("\\\n", " ") if m else ""
    pkgs = set()
    for line in re.findall(r"apt-get install[^&\n]*", text):
        pkgs |= {w for w in line.split()[2:] if not w.startswith("-")}
    return pkgs


def container_libraries(t, cf):
    """Each image installs the Debian package of every shared library its daemon is linked
    against (readelf's NEEDED, the package from dpkg -S on this Debian): a library linked in
    and not installed would stop the daemon at start in its image."""
    libc = {"libc6", "libgcc-s1"}  # in debian:12-slim already
    for target, binary in (("kbs", "kbs"), ("grpc-as", "grpc-as"), ("rvps", "rvps")):
        path = os.path.join(harness.BIN, binary)
        if not os.path.exists(path) or not shutil.which("readelf"):
            t.skip("%s image libraries" % target, "no %s built or no readelf" % binary)
            continue
        dyn = subprocess.run(["readelf", "-d", path], capture_output=True, text=True).stdout
        if "libasan" in dyn or "libubsan" in dyn:
            t.skip("%s image libraries" % target, "a sanitizer build, not what the image ships")
            continue
        have = stage_packages(cf, target) | stage_packages(cf, "base") | libc
        missing = []
        for soname in re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn):
            where = subprocess.run(["dpkg", "-S", "*/" + soname], capture_output=True,
                                   text=True).stdout
            owners = {line.split(":")[0] for line in where.splitlines() if ":" in line}
            if owners and not owners & have:
                missing.append("%s (%s)" % (soname, ", ".join(sorted(owners))))
        t.eq(missing, [], "the %s image installs every library %s is linked against" %
             (target, binary))


# ---- rendered overlays: `kubectl kustomize`, then the real daemons on the rendered configs ----
OVERLAYS = ["base", "overlays/microservices-redis", "overlays/tls", "overlays/postgres",
            "overlays/ita"]
IMAGES = re.compile(r"^(ctrustee/(kbs|grpc-as|rvps):\S+|busybox:1\.36|redis:7)$")
PORTS = {"kbs": 8080, "grpc-as": 50004, "rvps": 50003}


def render(kdir):
    r = subprocess.run(["kubectl", "kustomize", kdir], capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        raise RuntimeError("kubectl kustomize %s: %s" % (kdir, r.stderr[-2000:]))
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def config_data(docs, vol):
    """The files of the ConfigMap or Secret a volume names, as {name: text}."""
    import base64
    src = vol.get("configMap") or vol.get("secret")
    kind, name = ("ConfigMap", src["name"]) if "configMap" in vol else ("Secret", src["secretName"])
    for d in docs:
        if d["kind"] == kind and d["metadata"]["name"] == name:
            if kind == "Secret":
                return {k: base64.b64decode(v).decode() for k, v in d.get("data", {}).items()}
            return d.get("data", {})
    return None


def daemon_containers(docs):
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        spec = d["spec"]["template"]["spec"]
        for c in spec["containers"]:
            if c.get("command") and c["command"][0] in BINARIES:
                yield d, spec, c


def test_rendered(t, rendered):
    for rel, docs in rendered.items():
        services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
        t.ok(all(d["metadata"].get("namespace") == "coco-tenant" for d in docs
                 if d["kind"] != "Namespace"), "%s: everything in coco-tenant" % rel)
        for dep, spec, c in daemon_containers(docs):
            name, flags = BINARIES[c["command"][0]]
            what = "%s %s/%s" % (rel, dep["metadata"]["name"], c["name"])
            imgs = [x["image"] for x in spec["containers"] + spec.get("initContainers", [])]
            t.ok(all(IMAGES.match(i) for i in imgs) and c["image"].startswith("ctrustee/%s:" % name),
                 "%s: images are ours or pinned helpers" % what, imgs)
            used = {a for a in c["command"][1:] if a.startswith("--")}
            t.ok(used <= flags, "%s: flags %s accepted" % (what, sorted(used)), used - flags)
            port = PORTS[name]
            svc = services.get({"kbs": "kbs", "grpc-as": "as", "rvps": "rvps"}[name])
            t.ok(svc and any(p["targetPort"] == port for p in svc["spec"]["ports"]) and
                 any(p["containerPort"] == port for p in c.get("ports", [])),
                 "%s: service and container port %d" % (what, port))
            tls = "--https-prikey" in c["command"] or (
                name == "kbs" and "insecure_http = false" in
                "".join(config_data(docs, {v["name"]: v for v in spec["volumes"]}["kbs-config"]).values()))
            probes = [c.get(k) for k in ("readinessProbe", "livenessProbe", "startupProbe") if c.get(k)]
            good = bool(probes) and c.get("readinessProbe") is not None
            for pr in probes:
                if "httpGet" in pr:
                    good &= pr["httpGet"]["port"] == port and \
                        pr["httpGet"].get("scheme", "HTTP") == ("HTTPS" if tls else "HTTP") and \
                        pr["httpGet"]["path"] in ("/healthz", "/readyz")
                else:  # kubelet's gRPC probe is plaintext only
                    good &= not tls and pr.get("grpc", {}).get("port") == port
            t.ok(good, "%s: probes on port %d over %s" % (what, port, "HTTPS" if tls else "HTTP"))
            sc = spec.get("securityContext", {})
            for v in spec["volumes"]:
                if "secret" in v:
                    mode = v["secret"].get("defaultMode", 0o644)
                    t.ok(mode & 0o022 == 0 and (mode & 0o077 == 0 or mode & 0o004 or
                                                sc.get("fsGroup") is not None),
                         "%s: Secret %s mode %04o: not writable by others, readable by the pod" %
                         (what, v["secret"]["secretName"], mode))


def rewrite(text, tmp, ports, env_ports):
    """A rendered config with cluster names and absolute paths moved to this machine."""
    out = text
    for host, port in (("as", 50004), ("rvps", 50003), ("redis", 6379)):
        out = out.replace("%s:%d" % (host, port), "127.0.0.1:%d" % env_ports[host])
    out = out.replace("0.0.0.0:8080", "127.0.0.1:%d" % ports["kbs"])
    out = re.sub(r'(host"?\s*[:=]\s*)"postgres"', r'\g<1>"127.0.0.1"', out)
    out = re.sub(r'(port"?\s*[:=]\s*)5432', r"\g<1>%d" % env_ports["postgres"], out)
    return re.sub(r'(?<=["/])(/(opt|etc|kbs)/[^"\s]*)', lambda m: tmp + m.group(1), out)


def keys(tmp):
    """What the Secrets hold, written as a Secret without defaultMode mounts it (0644)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.x509.oid import NameOID
    import datetime
    uk = os.path.join(tmp, "opt/confidential-containers/kbs/user-keys")
    os.makedirs(uk, exist_ok=True)
    os.makedirs(os.path.join(tmp, "kbs"), exist_ok=True)
    tk = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token signer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(tk.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(tk, hashes.SHA256()))
    ak = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    files = {os.path.join(uk, "token.key"): tk.private_bytes(
                 serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                 serialization.NoEncryption()),
             os.path.join(uk, "token-cert-chain.pem"): cert.public_bytes(serialization.Encoding.PEM),
             os.path.join(uk, "public.pub"): ak, os.path.join(tmp, "kbs", "kbs.pem"): ak}
    for path, data in files.items():
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o644)


def healthy(port, proc):
    import urllib.request
    if not harness.wait_port(port, 15, proc):
        return False
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def test_daemons_start_on_rendered_configs(t, rendered):
    """Each rendered config file, moved to loopback ports and a temporary root, starts the real
    daemon that reads it (a token key mounted at 0644 included), which answers /healthz."""
    bindir = os.path.join(harness.BUILD, "bin")
    backing = {}
    for rel, docs in rendered.items():
        if rel == "overlays/tls":
            t.skip("%s: daemons started on its configs" % rel,
                   "needs the cert-manager Secrets; tests/integration/test_grpc_tls.py covers the flags")
            continue
        tmp = harness.tmpdir("deploy-")
        keys(tmp)
        env_ports = {"as": harness.free_port(), "rvps": harness.free_port()}
        env = {}
        if "overlays/microservices-redis" == rel:
            backing.setdefault("redis", harness.Redis().start())
        if rel == "overlays/postgres":
            backing.setdefault("postgres", harness.Postgres().start())
            env = {"POSTGRES_URL": backing["postgres"].url}
        env_ports["redis"] = backing["redis"].port if "redis" in backing else 1
        env_ports["postgres"] = backing["postgres"].port if "postgres" in backing else 1
        started = []
        order = sorted(daemon_containers(docs),
                       key=lambda x: ["rvps", "grpc-as", "kbs"].index(BINARIES[x[2]["command"][0]][0]))
        for dep, spec, c in order:
            cmd = c["command"]
            name = BINARIES[cmd[0]][0]
            port = {"kbs": harness.free_port(), "grpc-as": env_ports["as"],
                    "rvps": env_ports["rvps"]}[name]
            flag = "--config-file" if "--config-file" in cmd else "--config"
            cfg = cmd[cmd.index(flag) + 1]
            vols = {v["name"]: v for v in spec["volumes"]}
            mount = next(m for m in c["volumeMounts"] if m["mountPath"] == os.path.dirname(cfg))
            data = config_data(docs, vols[mount["name"]])[os.path.basename(cfg)]
            path = os.path.join(tmp, name + "-" + os.path.basename(cfg))
            with open(path, "w") as f:
                f.write(rewrite(data, tmp, {"kbs": port}, env_ports))
            argv = {"kbs": [os.path.join(bindir, "kbs"), "--config-file", path],
                    "grpc-as": [os.path.join(bindir, "grpc-as"), "--socket",
                                "127.0.0.1:%d" % port, "--config-file", path],
                    "rvps": [os.path.join(bindir, "rvps"), "--address", "127.0.0.1:%d" % port,
                             "--config", path]}[name]
            d = harness.Daemon("%s-%s" % (rel.replace("/", "-"), name), argv, port, env=env)
            try:
                d.start()
                ok = healthy(port, d.proc)
            except RuntimeError as e:
                ok = False
                print("# " + str(e).replace("\n", "\n# "))
            t.ok(ok, "%s: %s starts on the rendered %s and answers /healthz" %
                 (rel, name, os.path.basename(cfg)), d.log_tail())
            if name == "grpc-as" and ok:
                t.ok("token.key is readable by every user (mode 0644)" in d.log_text(),
                     "%s: grpc-as takes the token key as a Secret without defaultMode "
                     "mounts it, with a warning" % rel, d.log_tail())
            started.append(d)
        for d in reversed(started):
            d.stop()
    for b in backing.values():
        b.stop()


def test_kustomize(t):
    if not shutil.which("kubectl"):
        for rel in OVERLAYS:
            t.skip("%s renders with kubectl kustomize" % rel, "no kubectl on this machine")
        return
    rendered = {}
    for rel in OVERLAYS:
        try:
            rendered[rel] = render(os.path.join(DEPLOY, "kubernetes", rel))
            t.ok(True, "%s renders with kubectl kustomize" % rel)
        except RuntimeError as e:
            t.ok(False, "%s renders with kubectl kustomize" % rel, str(e))
    test_rendered(t, rendered)
    test_daemons_start_on_rendered_configs(t, rendered)


if __name__ == "__main__":
    t = harness.Tap()
    for fn in (test_manifests, test_kustomizations_and_configs,
               test_containers_mount_what_configs_name, test_tls_overlay_authorizes_writes,
               test_systemd_and_container_files, test_kustomize):
        t.run(fn)
    t.done()
