#!/usr/bin/env bash
# gRPC figure for `make bench`: RVPS QueryReferenceValue round trips/s at 1 and 16 client
# threads, against the real rvps daemon (Redis storage, separate process), plus its peak RSS.
# Usage: tests/bench/run_grpc.sh        env BUILD (default build), BENCH_SECONDS (default 3)
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
secs=${BENCH_SECONDS:-3}
free_port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
pids+=($!)
wait_port "$rport"
printf '{"storage":{"storage_type":"Redis","backends":{"redis":{"url":"redis://127.0.0.1:%s"}}}}' "$rport" >"$tmp/rvps.json"
port=$(free_port)
LOG_LEVEL=warn "$BUILD/bin/rvps" -c "$tmp/rvps.json" -a "127.0.0.1:$port" >"$tmp/rvps.log" 2>&1 &
rvps_pid=$!
pids+=($rvps_pid)
wait_port "$port"
"$BUILD/bin/bench-grpc" --addr "http://127.0.0.1:$port" --seconds "$secs" --threads 1,16
echo "rvps peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/$rvps_pid/status)"
