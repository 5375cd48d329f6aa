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
. tests/bench/stack.sh
stack_up || exit 1
"$bin/bench-kbs" --url "$url" --path "$STACK_RESOURCE_PATH" --seconds "$secs" --concurrency "$conc" \
  --expect "$STACK_SECRET" || status=1
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
  out=$("$bin/bench-kbs" --url "$2" --path "$STACK_RESOURCE_PATH" --seconds "$secs" \
    --concurrency "$rconc" --expect "$STACK_SECRET") || status=1
  printf '%-46s %s\n' "$1" "$(echo "$out" | sed -n 's/.*attesters: *//p')"
  echo "$out" | grep 'last failure' || true
}
rate "1 kbs, in-memory sessions (direct)" "$url"
rate "1 kbs, Redis sessions (direct)" "http://127.0.0.1:$port_r1"
rate "1 kbs replica, Redis sessions, via HAProxy" "http://127.0.0.1:$lb1"
rate "3 kbs replicas, Redis sessions, via HAProxy" "http://127.0.0.1:$lb3"
exit $status
