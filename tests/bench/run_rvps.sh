#!/usr/bin/env bash
# RVPS figures for `make bench`: bench-rvps (registration and query with 100 and 100,000
# values stored, beside plain store writes and reads) against a throwaway redis-server on a
# free loopback port. env BUILD (default build), BENCH_RVPS_VALUES (default 100000)
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
free_port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
tmp=$(mktemp -d)
rpid=
cleanup() { [ -n "$rpid" ] && kill "$rpid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
rpid=$!
wait_port "$rport"
"$BUILD/bin/bench-rvps" --redis "127.0.0.1:$rport" --values "${BENCH_RVPS_VALUES:-100000}"
echo "redis used_memory after the run: $(redis-cli -p "$rport" info memory | awk -F: '/^used_memory_human/ {print $2}' | tr -d '\r')"
