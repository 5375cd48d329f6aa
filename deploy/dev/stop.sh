#!/usr/bin/env bash
# Stop the stack deploy/dev/run.sh started (HAProxy and kbs replicas too): each process named by a pid file in
# deploy/dev/state/pids/, in reverse start order, SIGTERM then SIGKILL after 5 s.
# Keys and Redis data stay in deploy/dev/state/. --quiet: say nothing when nothing runs.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pids=$here/state/pids
quiet=0
[ "${1:-}" = "--quiet" ] && quiet=1
stopped=0
names="haproxy"
for f in "$pids"/kbs-*.pid; do [ -f "$f" ] && names+=" $(basename "$f" .pid)"; done
for name in $names kbs grpc-as rvps redis; do
  f=$pids/$name.pid
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  want=${name/redis/redis-server}
  want=${want%%-[0-9]*} # kbs-2 runs bin/kbs
  # only a process that is still the one we started (its command line names it)
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null |
    grep -q -- "$want"; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    [ $quiet -eq 1 ] || echo "stopped $name (pid $pid)"
    stopped=$((stopped + 1))
  fi
  rm -f "$f"
done
[ $quiet -eq 1 ] || [ $stopped -gt 0 ] || echo "nothing was running"
exit 0
