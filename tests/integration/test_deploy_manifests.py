"""Deployment files: every manifest parses, every kustomization names files that exist, every
config file uses only configuration keys the daemons know (kbs-protocol.md §8, as-rvps.md §3,
§7.4), every file a config points at is mounted into the container that reads it, and every
container runs one of our binaries with the flags it accepts."""
import glob
import json
import os
import re
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
    "storage_backend.backends.redis.url",
}
RVPS_KEYS = {
    "storage", "storage.storage_type", "storage.backends", "storage.backends.local_fs",
    "storage.backends.local_fs.dir_path", "storage.backends.local_json",
    "storage.backends.local_json.file_dir_path", "storage.backends.redis",
    "storage.backends.redis.url", "extractors", "extractors.swid_extractor",
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


if __name__ == "__main__":
    t = harness.Tap()
    for fn in (test_manifests, test_kustomizations_and_configs,
               test_containers_mount_what_configs_name, test_tls_overlay_authorizes_writes,
               test_systemd_and_container_files):
        t.run(fn)
    t.done()
