#!/usr/bin/env bash
# make run: the whole ctrustee stack on loopback — redis-server (AOF on), rvps, grpc-as, kbs —
# then the sample attester (kbs-client) fetching a demo secret through the full background-check
# flow. Keys, configs, logs and Redis data live in deploy/dev/state/ (gitignored); the first run
# generates an admin Ed25519 key pair and a token-signing CA + ES256 certificate chain, later
# runs reuse them. Stop everything with deploy/dev/stop.sh.
#
# KBS_REPLICAS=N (N > 1) runs N kbs processes sharing their sessions in Redis
# (session_storage_type = "Redis") behind HAProxy (a session's requests stick to the replica that
# began it, any replica takes over when it is down; readiness checks on /readyz; config from
# deploy/dev/haproxy-kbs.cfg.in) listening on KBS_PORT.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) bin=$BUILD/bin ;; *) bin=$root/$BUILD/bin ;; esac
state=$here/state
keys=$state/keys
logs=$state/logs
pids=$state/pids

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

for b in kbs grpc-as rvps kbs-client; do
  [ -x "$bin/$b" ] || die "$bin/$b is missing: run 'make' first (make run builds it)"
done
command -v redis-server >/dev/null || die "redis-server is not installed: run 'make deps'"
command -v openssl >/dev/null || die "openssl is not installed: run 'make deps'"

# A previous run still up? Stop it first so ports and pid files are ours.
"$here/stop.sh" --quiet || true
mkdir -p "$keys" "$logs" "$pids" "$state/redis" "$state/config"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() { # preferred port, or a free one the kernel picks
  if port_free "$1"; then echo "$1"; else
    /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
  fi
}
KBS_PORT=$(pick_port "${KBS_PORT:-8080}")
AS_PORT=$(pick_port "${AS_PORT:-50004}")
RVPS_PORT=$(pick_port "${RVPS_PORT:-50003}")
REDIS_PORT=$(pick_port "${REDIS_PORT:-6390}")
REPLICAS=${KBS_REPLICAS:-1}
[[ $REPLICAS =~ ^[1-9][0-9]?$ ]] || die "KBS_REPLICAS must be a number from 1 to 99"
if [ "$REPLICAS" -gt 1 ]; then
  command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] ||
    die "haproxy is not installed: run 'make deps'"
  haproxy_bin=$(command -v haproxy || echo /usr/sbin/haproxy)
fi

# ---------------------------------------------------------------- keys (first run only)
if [ ! -f "$keys/admin.key" ]; then
  say "first run: generating the admin Ed25519 key pair"
  openssl genpkey -algorithm ed25519 -out "$keys/admin.key" 2>/dev/null
  openssl pkey -in "$keys/admin.key" -pubout -out "$keys/admin.pub"
else
  say "reusing the admin key in $keys"
fi
if [ ! -f "$keys/token-cert-chain.pem" ]; then
  say "first run: generating the token-signing CA (10 years) and ES256 signer certificate (90 days)"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
    -keyout "$keys/ca.key" -out "$keys/ca-cert.pem" -days 3650 -subj "/CN=ctrustee dev token CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$keys/token.key"
  openssl req -new -key "$keys/token.key" -subj "/CN=ctrustee dev token signer" \
    -out "$keys/token.csr"
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n' > "$keys/token.ext"
  openssl x509 -req -in "$keys/token.csr" -CA "$keys/ca-cert.pem" -CAkey "$keys/ca.key" \
    -CAcreateserial -days 90 -sha256 -extfile "$keys/token.ext" -out "$keys/token.crt" 2>/dev/null
  cat "$keys/token.crt" > "$keys/token-cert-chain.pem"
  rm -f "$keys/token.csr" "$keys/token.ext"
else
  say "reusing the token-signing CA and chain in $keys"
fi
chmod 600 "$keys"/*.key

# ---------------------------------------------------------------- configs
redis_url="redis://127.0.0.1:$REDIS_PORT"
storage="{\"storage_type\":\"Redis\",\"backends\":{\"redis\":{\"url\":\"$redis_url\"}}}"
cat > "$state/config/rvps.json" <<EOF
{"storage": $storage}
EOF
cat > "$state/config/as-config.json" <<EOF
{
  "storage_backend": $storage,
  "rvps_config": {"type": "GrpcRemote", "address": "127.0.0.1:$RVPS_PORT"},
  "attestation_token_broker": {
    "duration_min": 5,
    "signer": {"key_path": "$keys/token.key", "cert_path": "$keys/token-cert-chain.pem"}
  }
}
EOF
# one kbs keeps its sessions in memory on purpose (without the line they would follow
# [storage_backend] into Redis, as Trustee does)
session_line='session_storage_type = "Memory"'
proxy_line=""
if [ "$REPLICAS" -gt 1 ]; then
  session_line='session_storage_type = "Redis"'
  # HAProxy on loopback names the client in X-Forwarded-For (per-address limits)
  proxy_line='trusted_proxies = ["127.0.0.1"]'
fi
cat > "$state/config/kbs-config.toml" <<EOF
$session_line

[http_server]
sockets = ["127.0.0.1:$KBS_PORT"]
insecure_http = true
$proxy_line

[admin]
authorization_mode = "AuthenticatedAuthorization"

[admin.authentication.bearer_jwt]
identity_providers = [{ public_key_uri = "file://$keys/admin.pub" }]

[admin.authorization.regex_acl]
acls = [{ role = "admin", allowed_endpoints = "^/kbs/.+\$" }]

[attestation_token]
trusted_certs_paths = ["$keys/ca-cert.pem"]

[attestation_service]
type = "coco_as_grpc"
as_addr = "http://127.0.0.1:$AS_PORT"
pool_size = 100
timeout = 5

[storage_backend]
storage_type = "Redis"

[storage_backend.backends.redis]
url = "$redis_url"

[[plugins]]
name = "resource"
storage_backend_type = "kvstorage"
EOF
kbs_conf=$state/config/kbs-config.toml
if ! nm "$bin/kbs" 2>/dev/null | grep -q ' T toml_parse$'; then
  # a kbs built before the TOML parser landed reads the same document as JSON
  /usr/bin/python3 -c 'import json,sys,tomllib;print(json.dumps(tomllib.load(open(sys.argv[1],"rb"))))' \
    "$kbs_conf" > "$state/config/kbs-config.json"
  kbs_conf=$state/config/kbs-config.json
fi

# ---------------------------------------------------------------- daemons
wait_port() { # name port pid
  for _ in $(seq 1 100); do
    kill -0 "$3" 2>/dev/null || { tail -20 "$logs/$1.log" >&2; die "$1 exited; log: $logs/$1.log"; }
    port_free "$2" || return 0
    sleep 0.1
  done
  die "$1 did not listen on port $2; log: $logs/$1.log"
}
start() { # name port cmd...
  local name=$1 port=$2
  shift 2
  "$@" >>"$logs/$name.log" 2>&1 &
  echo $! > "$pids/$name.pid"
  wait_port "$name" "$port" "$!"
  printf '    %-8s pid %-7s 127.0.0.1:%s   log %s\n' "$name" "$(cat "$pids/$name.pid")" "$port" \
    "$logs/$name.log"
}
say "starting the stack"
start redis "$REDIS_PORT" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$state/redis" \
  --appendonly yes --save '' --protected-mode no
start rvps "$RVPS_PORT" "$bin/rvps" --config "$state/config/rvps.json" --address "127.0.0.1:$RVPS_PORT"
start grpc-as "$AS_PORT" "$bin/grpc-as" --socket "127.0.0.1:$AS_PORT" \
  --config-file "$state/config/as-config.json"
if [ "$REPLICAS" -gt 1 ]; then
  servers=""
  for i in $(seq 1 "$REPLICAS"); do
    port=$(/usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
    conf=$state/config/kbs-$i.${kbs_conf##*.}
    sed "s/127.0.0.1:$KBS_PORT/127.0.0.1:$port/" "$kbs_conf" > "$conf"
    start "kbs-$i" "$port" "$bin/kbs" --config-file "$conf"
    servers+="    server kbs$i 127.0.0.1:$port check"$'\n'
  done
  sed -e "s|@LISTEN@|127.0.0.1:$KBS_PORT|" -e "s|@SOCKET@|$state/haproxy.sock|" \
    "$here/haproxy-kbs.cfg.in" | awk -v s="$servers" '/@SERVERS@/ {printf "%s", s; next} {print}' \
    > "$state/config/haproxy.cfg"
  start haproxy "$KBS_PORT" "$haproxy_bin" -db -f "$state/config/haproxy.cfg"
else
  start kbs "$KBS_PORT" "$bin/kbs" --config-file "$kbs_conf"
fi
url=http://127.0.0.1:$KBS_PORT

# ---------------------------------------------------------------- demo resource and policy
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
admin_token() { # EdDSA JWT with the admin key, role admin, valid 10 minutes
  local now h p sig
  now=$(date +%s)
  h=$(printf '{"alg":"EdDSA","typ":"JWT"}' | b64url)
  p=$(printf '{"iss":"ctrustee-dev","role":"admin","iat":%d,"exp":%d}' "$now" $((now + 600)) | b64url)
  printf '%s.%s' "$h" "$p" > "$state/jwt.in"
  sig=$(openssl pkeyutl -sign -rawin -inkey "$keys/admin.key" -in "$state/jwt.in" | b64url)
  rm -f "$state/jwt.in"
  printf '%s.%s.%s' "$h" "$p" "$sig"
}
admin_post() { # path data-file
  local code
  code=$(curl -s -o "$state/admin.out" -w '%{http_code}' -X POST \
    -H "Authorization: Bearer $(admin_token)" --data-binary "@$2" "$url$1")
  [ "$code" = 200 ] || die "POST $1 answered $code: $(cat "$state/admin.out")"
}
demo_path=default/demo/secret
cat > "$state/config/demo-policy.rego" <<'EOF'
package policy

import rego.v1

# The default policy refuses the sample (test) TEE; the demo opens exactly one resource to it.
default allow := false

allow if {
	data.plugin == "resource"
	data["resource-path"][0] == "default"
	data["resource-path"][1] == "demo"
	data["resource-path"][2] == "secret"
}
EOF
printf '{"policy":"%s"}' "$(b64url < "$state/config/demo-policy.rego")" > "$state/policy.json"
say "admin: setting a resource policy that lets the sample TEE read $demo_path"
admin_post /kbs/v0/resource-policy "$state/policy.json"
[ -f "$keys/demo-secret" ] || printf 'ctrustee demo secret %s' "$(openssl rand -hex 8)" > "$keys/demo-secret"
say "admin: storing the demo secret at $demo_path"
admin_post "/kbs/v0/resource/$demo_path" "$keys/demo-secret"

# ---------------------------------------------------------------- attester
say "attester: kbs-client runs RCAR as the sample TEE and fetches $demo_path"
# kbs-client prints the resource in base64, as Trustee's does
if ! got=$("$bin/kbs-client" --url "$url" get-resource --path "$demo_path" 2>"$logs/kbs-client.log"); then
  tail -5 "$logs/kbs-client.log" >&2
  die "kbs-client failed; see $logs/kbs-client.log and $logs/kbs.log"
fi
got=$(printf '%s' "$got" | base64 -d)
want=$(cat "$keys/demo-secret")
if [ "$got" = "$want" ]; then
  say "success: the attester decrypted the secret: \"$got\""
else
  die "the attester got \"$got\", expected \"$want\""
fi
cat <<EOF

What happened:
  1. kbs-client asked $url/kbs/v0/auth for a challenge (sample TEE, protocol 0.4.0);
  2. it sent sample evidence binding the nonce and its ephemeral P-256 key to /kbs/v0/attest;
     kbs forwarded it over gRPC to grpc-as (127.0.0.1:$AS_PORT), which appraised it with the
     default policy and reference values from rvps (127.0.0.1:$RVPS_PORT) and signed an EAR token
     with the ES256 key whose chain ends in $keys/ca-cert.pem;
  3. kbs verified that token, evaluated the resource policy, and returned $demo_path as a JWE
     for the attester's key. $(if [ "$REPLICAS" -gt 1 ]; then
  echo "HAProxy on :$KBS_PORT spread these calls over $REPLICAS kbs replicas"
  echo "     (logs $logs/kbs-*.log); sessions, resources, policies and reference values are"
  echo "     in Redis (127.0.0.1:$REDIS_PORT, AOF in $state/redis)."
else
  echo "Sessions are in kbs memory; resources, policies and reference"
  echo "     values are in Redis (127.0.0.1:$REDIS_PORT, AOF in $state/redis)."
fi)

Try:   $bin/kbs-client --url $url get-resource --path $demo_path | base64 -d
       curl -s $url/metrics | grep kbs_resource_reads_total
Stop:  deploy/dev/stop.sh        (keys and Redis data stay in $state; rm -rf it to start over)
EOF
