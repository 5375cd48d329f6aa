#!/usr/bin/env bash
# make bench: every build/bin/bench-* (through tests/bench/run_<name>.sh when that wrapper
# exists), then the KBS handshake bench: redis + rvps + grpc-as + kbs started on free loopback
# ports, full handshakes (auth + attest + resource + JWE) at 1, 16 and 64 concurrent attesters
# with handshakes/s and p50/p99 latency, and each daemon's peak RSS (VmHWM); then the same
# handshake with sessions in Redis on 1 and 3 kbs replicas behind HAProxy.
# env BUILD (default build), BENCH_SECONDS (default 5), BENCH_CONCURRENCY (default 1,16,64)
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
export BUILD
bin=$BUILD/bin
secs=${BENCH_SECONDS:-5}
conc=${BENCH_CONCURRENCY:-1,16,64}
status=0

for b in "$bin"/bench-*; do
  [ -x "$b" ] || continue
  name=${b##*/bench-}
  [ "$name" = kbs ] && continue
  echo "=== bench-$name"
  if [ -f "tests/bench/run_$name.sh" ]; then
    bash "tests/bench/run_$name.sh" || status=1
  else
    "$b" || status=1
  fi
done

echo "=== bench-kbs (full KBS handshakes against redis + rvps + grpc-as + kbs)"
for b in kbs grpc-as rvps bench-kbs; do
  if [ ! -x "$bin/$b" ]; then
    echo "bench-kbs: $bin/$b is not built; skipped"
    exit $status
  fi
done
if nm "$bin/kbs" 2>/dev/null | grep -qE ' w (jws_verify|jwe_encrypt|rego_compile)$'; then
  echo "bench-kbs: $bin/kbs was linked without JOSE or Rego (common/jose.c, common/rego/); skipped"
  exit $status
fi
free_port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 150); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
start() { # name port cmd...
  local name=$1 port=$2
  shift 2
  LOG_LEVEL=warn "$@" >"$tmp/$name.log" 2>&1 &
  pids+=($!)
  eval "pid_${name//-/_}=$!"
  if ! wait_port "$port"; then
    echo "bench-kbs: $name did not start:"
    tail -20 "$tmp/$name.log"
    exit 1
  fi
}

# keys: admin Ed25519, token CA + ES256 signer
openssl genpkey -algorithm ed25519 -out "$tmp/admin.key" 2>/dev/null
openssl pkey -in "$tmp/admin.key" -pubout -out "$tmp/admin.pub"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$tmp/ca.key" \
  -out "$tmp/ca.pem" -days 30 -subj "/CN=bench CA" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/token.key"
openssl req -new -key "$tmp/token.key" -subj "/CN=bench signer" -out "$tmp/token.csr"
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n' >"$tmp/ext"
openssl x509 -req -in "$tmp/token.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
  -days 30 -extfile "$tmp/ext" -out "$tmp/token.pem" 2>/dev/null

redis_port=$(free_port)
start redis "$redis_port" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' \
  --appendonly no --dir "$tmp"
storage="{\"storage_type\":\"Redis\",\"backends\":{\"redis\":{\"url\":\"redis://127.0.0.1:$redis_port\"}}}"
rvps_port=$(free_port)
echo "{\"storage\":$storage}" >"$tmp/rvps.json"
start rvps "$rvps_port" "$bin/rvps" --config "$tmp/rvps.json" --address "127.0.0.1:$rvps_port"
as_port=$(free_port)
cat >"$tmp/as.json" <<EOF
{"storage_backend":$storage,"rvps_config":{"type":"GrpcRemote","address":"127.0.0.1:$rvps_port"},
 "attestation_token_broker":{"signer":{"key_path":"$tmp/token.key","cert_path":"$tmp/token.pem"}}}
EOF
start grpc-as "$as_port" "$bin/grpc-as" --socket "127.0.0.1:$as_port" --config-file "$tmp/as.json"
kbs_port=$(free_port)
cat >"$tmp/kbs.json" <<EOF
{"http_server":{"sockets":["127.0.0.1:$kbs_port"],"insecure_http":true},
 "admin":{"authorization_mode":"AuthenticatedAuthorization",
  "authentication":{"bearer_jwt":{"identity_providers":[{"public_key_uri":"$tmp/admin.pub"}]}},
  "authorization":{"regex_acl":{"acls":[{"role":"admin","allowed_endpoints":"^/kbs/.+\$"}]}}},
 "attestation_token":{"trusted_certs_paths":["$tmp/ca.pem"]},
 "attestation_service":{"type":"coco_as_grpc","as_addr":"http://127.0.0.1:$as_port","pool_size":100},
 "storage_backend":$storage,
 "plugins":[{"name":"resource","storage_backend_type":"kvstorage"}]}
EOF
start kbs "$kbs_port" "$bin/kbs" --config-file "$tmp/kbs.json"

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
now=$(date +%s)
h=$(printf '{"alg":"EdDSA","typ":"JWT"}' | b64url)
p=$(printf '{"role":"admin","exp":%d}' $((now + 600)) | b64url)
printf '%s.%s' "$h" "$p" >"$tmp/jwt.in"
tok="$h.$p.$(openssl pkeyutl -sign -rawin -inkey "$tmp/admin.key" -in "$tmp/jwt.in" | b64url)"
url=http://127.0.0.1:$kbs_port
policy='package policy
import rego.v1
default allow := false
allow if data.plugin == "resource"'
printf '{"policy":"%s"}' "$(printf '%s\n' "$policy" | b64url)" >"$tmp/policy.json"
for req in "resource-policy $tmp/policy.json" "resource/default/bench/key $tmp/secret"; do
  set -- $req
  [ -f "$tmp/secret" ] || printf 'bench secret' >"$tmp/secret"
  code=$(curl -s -o "$tmp/out" -w '%{http_code}' -X POST -H "Authorization: Bearer $tok" \
    --data-binary "@$2" "$url/kbs/v0/$1")
  if [ "$code" != 200 ]; then
    echo "bench-kbs: POST /kbs/v0/$1 answered $code: $(cat "$tmp/out")"
    exit 1
  fi
done
"$bin/bench-kbs" --url "$url" --path default/bench/key --seconds "$secs" --concurrency "$conc" \
  --expect "bench secret" || status=1
for d in redis rvps grpc-as kbs; do
  v=pid_${d//-/_}
  printf 'peak RSS %-8s %s\n' "$d" "$(awk '/VmHWM/ {print $2, $3}' "/proc/${!v}/status")"
done

# ---- replicas: the same handshake with sessions in the shared Redis, 1 and 3 kbs processes
# behind HAProxy (deploy/dev/haproxy-kbs.cfg.in, round robin), beside the single process with
# in-memory sessions measured in this run. env BENCH_REPLICA_CONCURRENCY (default 16).
rconc=${BENCH_REPLICA_CONCURRENCY:-16}
haproxy_bin=$(command -v haproxy || echo /usr/sbin/haproxy)
echo "=== bench-kbs replicas (sessions in Redis, HAProxy round robin; $rconc attesters)"
if [ ! -x "$haproxy_bin" ]; then
  echo "bench-kbs replicas: haproxy is not installed (make deps); skipped"
  exit $status
fi
servers3=""
for i in 1 2 3; do
  p=$(free_port)
  sed -e "s/127.0.0.1:$kbs_port/127.0.0.1:$p/" -e 's/^{/{"session_storage_type":"Redis",/' \
    "$tmp/kbs.json" >"$tmp/kbs-r$i.json"
  start "kbs-r$i" "$p" "$bin/kbs" --config-file "$tmp/kbs-r$i.json"
  eval "port_r$i=$p"
  servers3+="    server kbs$i 127.0.0.1:$p check"$'\n'
done
haproxy_cfg() { # listen-port servers-text
  sed -e "s|@LISTEN@|127.0.0.1:$1|" -e "s|@SOCKET@|$tmp/haproxy-$1.sock|" \
    deploy/dev/haproxy-kbs.cfg.in | awk -v s="$2" '/@SERVERS@/ {printf "%s", s; next} {print}' \
    >"$tmp/haproxy-$1.cfg"
}
lb1=$(free_port)
haproxy_cfg "$lb1" "    server kbs1 127.0.0.1:$port_r1 check"$'\n'
start haproxy-1 "$lb1" "$haproxy_bin" -db -f "$tmp/haproxy-$lb1.cfg"
lb3=$(free_port)
haproxy_cfg "$lb3" "$servers3"
start haproxy-3 "$lb3" "$haproxy_bin" -db -f "$tmp/haproxy-$lb3.cfg"
sleep 1 # first health checks
rate() { # label url
  local out
  out=$("$bin/bench-kbs" --url "$2" --path default/bench/key --seconds "$secs" \
    --concurrency "$rconc" --expect "bench secret") || status=1
  printf '%-46s %s\n' "$1" "$(echo "$out" | sed -n 's/.*attesters: *//p')"
  echo "$out" | grep 'last failure' || true
}
rate "1 kbs, in-memory sessions (direct)" "$url"
rate "1 kbs, Redis sessions (direct)" "http://127.0.0.1:$port_r1"
rate "1 kbs replica, Redis sessions, via HAProxy" "http://127.0.0.1:$lb1"
rate "3 kbs replicas, Redis sessions, via HAProxy" "http://127.0.0.1:$lb3"
exit $status
