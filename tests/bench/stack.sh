# Sourced by tests/bench/run.sh (make bench) and tests/bench/soak.sh (make soak): the whole
# stack on free loopback ports — redis-server, rvps, grpc-as, kbs with Redis storage — with a
# fresh token CA and Ed25519 admin key, an allow-all resource policy and one resource.
# Needs $bin. stack_up sets url, tmp, pid_redis pid_rvps pid_grpc_as pid_kbs and the resource
# (STACK_RESOURCE_PATH, STACK_SECRET), and the ports redis_port rvps_port as_port kbs_port;
# start NAME PORT CMD... starts one more process the same way; everything stops at exit.
# env STACK_REDIS_AOF (no|yes, default no), STACK_SESSION_MINUTES (kbs session lifetime, default 5)
STACK_RESOURCE_PATH=default/bench/key
STACK_SECRET="bench secret"
free_port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 150); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
tmp=$(mktemp -d)
pids=()
stack_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap stack_cleanup EXIT
start() { # name port cmd...
  local name=$1 port=$2
  shift 2
  LOG_LEVEL=warn "$@" >"$tmp/$name.log" 2>&1 &
  pids+=($!)
  eval "pid_${name//-/_}=$!"
  if ! wait_port "$port"; then
    echo "stack: $name did not start:"
    tail -20 "$tmp/$name.log"
    exit 1
  fi
}

stack_up() {
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
  chmod 600 "$tmp"/*.key

  local storage
  redis_port=$(free_port)
  start redis "$redis_port" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' \
    --appendonly "${STACK_REDIS_AOF:-no}" --dir "$tmp" || return 1
  storage="{\"storage_type\":\"Redis\",\"backends\":{\"redis\":{\"url\":\"redis://127.0.0.1:$redis_port\"}}}"
  rvps_port=$(free_port)
  echo "{\"storage\":$storage}" >"$tmp/rvps.json"
  start rvps "$rvps_port" "$bin/rvps" --config "$tmp/rvps.json" --address "127.0.0.1:$rvps_port" ||
    return 1
  as_port=$(free_port)
  cat >"$tmp/as.json" <<EOS
{"storage_backend":$storage,"rvps_config":{"type":"GrpcRemote","address":"127.0.0.1:$rvps_port"},
 "attestation_token_broker":{"signer":{"key_path":"$tmp/token.key","cert_path":"$tmp/token.pem"}}}
EOS
  start grpc-as "$as_port" "$bin/grpc-as" --socket "127.0.0.1:$as_port" --config-file "$tmp/as.json" ||
    return 1
  kbs_port=$(free_port)
  cat >"$tmp/kbs.json" <<EOS
{"session_storage_type":"Memory","http_server":{"sockets":["127.0.0.1:$kbs_port"],"insecure_http":true},
 "admin":{"authorization_mode":"AuthenticatedAuthorization",
  "authentication":{"bearer_jwt":{"identity_providers":[{"public_key_uri":"$tmp/admin.pub"}]}},
  "authorization":{"regex_acl":{"acls":[{"role":"admin","allowed_endpoints":"^/kbs/.+\$"}]}}},
 "attestation_token":{"trusted_certs_paths":["$tmp/ca.pem"]},
 "attestation_service":{"type":"coco_as_grpc","as_addr":"http://127.0.0.1:$as_port","pool_size":100,
  "timeout":${STACK_SESSION_MINUTES:-5}},
 "storage_backend":$storage,
 "plugins":[{"name":"resource","storage_backend_type":"kvstorage"}]}
EOS
  start kbs "$kbs_port" "$bin/kbs" --config-file "$tmp/kbs.json" || return 1

  b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
  local now h p tok policy req code
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
  printf '%s' "$STACK_SECRET" >"$tmp/secret"
  for req in "resource-policy $tmp/policy.json" "resource/$STACK_RESOURCE_PATH $tmp/secret"; do
    set -- $req
    code=$(curl -s -o "$tmp/out" -w '%{http_code}' -X POST -H "Authorization: Bearer $tok" \
      --data-binary "@$2" "$url/kbs/v0/$1")
    if [ "$code" != 200 ]; then
      echo "stack: POST /kbs/v0/$1 answered $code: $(cat "$tmp/out")"
      return 1
    fi
  done
}

# Prints "name=pid,..." for bench-kbs --rss.
stack_pids() {
  printf 'kbs=%s,grpc-as=%s,rvps=%s,redis=%s' "$pid_kbs" "$pid_grpc_as" "$pid_rvps" "$pid_redis"
}
