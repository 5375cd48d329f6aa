#!/usr/bin/env bash
# Checks the images `make images` built (TAP on stdout): for kbs, grpc-as, restful-as and rvps,
# the image runs as the unprivileged user, every binary in it finds all its shared libraries,
# the entrypoint answers --version, and the entrypoint started with the image's own command
# line (Trustee's: config at /etc/kbs/kbs-config.toml, /etc/attestation-service/config.json,
# /etc/rvps.json) comes up and answers GET /healthz (kbs also /readyz). The configs are mounted
# at those paths: the kbs gets deploy/kubernetes/base/kbs-config.toml with a fresh admin key
# at /kbs/kbs.pem; the AS and RVPS get `{}` (their defaults). `buildah run` under chroot
# isolation shares the host's network, so when an image's port (8080, 50004, 50003) is taken
# on this machine the test moves that one daemon to a free port and says so.
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${CTRUSTEE_BUILD:-build}
IMG=$B/images
export BUILDAH_ISOLATION=chroot
BAH=(buildah --storage-driver vfs --root "$PWD/$IMG/storage" --runroot "$PWD/$IMG/run")
bah() { "${BAH[@]}" "$@"; }

n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }
check() { # $1: description, rest: command
  local d=$1; shift
  if "$@"; then ok "$d"; else notok "$d"; fi
}

tmp=$(mktemp -d)
chmod 755 "$tmp"
ctrs=()
pgids=()
cleanup() {
  for p in "${pgids[@]}"; do kill -TERM -- "-$p" 2>/dev/null; done
  sleep 0.5
  for p in "${pgids[@]}"; do kill -KILL -- "-$p" 2>/dev/null; done
  for c in "${ctrs[@]}"; do bah rm "$c" >/dev/null 2>&1; done
  rm -rf "$tmp"
}
trap cleanup EXIT

port_free() { /usr/bin/python3 -c 'import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try: s.bind(("0.0.0.0", int(sys.argv[1])))
except OSError: sys.exit(1)' "$1"; }
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The configs, readable by the image's user.
openssl genpkey -algorithm ed25519 -out "$tmp/admin.key" 2>/dev/null
openssl pkey -in "$tmp/admin.key" -pubout -out "$tmp/kbs.pem"
echo '{}' >"$tmp/as.json"
echo '{}' >"$tmp/rvps.json"
chmod 644 "$tmp"/*

for t in kbs grpc-as restful-as rvps; do
  if ! bah inspect --type image "localhost/ctrustee/$t" >/dev/null 2>&1; then
    notok "$t: image localhost/ctrustee/$t exists (run make images)"
    continue
  fi
  ctr=$(bah from --pull-never "localhost/ctrustee/$t")
  ctrs+=("$ctr")
  user=$(bah inspect --format '{{.OCIv1.Config.User}}' "$ctr")
  uid=$(bah run "$ctr" -- id -u 2>&1)
  check "$t: runs as uid 65532, not root (User=$user, id -u: $uid)" test "$user" = "65532:65532" -a "$uid" = 65532
  mapfile -t argv < <(bah inspect --format '{{range .OCIv1.Config.Entrypoint}}{{println .}}{{end}}{{range .OCIv1.Config.Cmd}}{{println .}}{{end}}' "$ctr" | sed '/^$/d')
  echo "# $t: entrypoint + cmd: ${argv[*]}"

  missing=$(bah run "$ctr" -- sh -c 'for f in /usr/local/bin/*; do ldd "$f" | sed "s|^|$f: |"; done' 2>&1 | grep 'not found')
  check "$t: every binary finds its shared libraries${missing:+ ($missing)}" test -z "$missing"

  ver=$(bah run "$ctr" -- "${argv[0]}" --version 2>&1)
  rc=$?
  check "$t: ${argv[0]} --version answers ($(echo "$ver" | head -1))" test $rc -eq 0 -a -n "$ver"

  # Start it with the image's command line; the port is the one in that line (kbs: its config).
  vols=()
  case $t in
  kbs)
    port=8080
    port_free $port || { port=$(free_port); echo "# kbs: 8080 is taken here, config moved to $port"; }
    sed "s/0\.0\.0\.0:8080/127.0.0.1:$port/" deploy/kubernetes/base/kbs-config.toml >"$tmp/kbs-config.toml"
    chmod 644 "$tmp/kbs-config.toml"
    vols=(-v "$tmp/kbs-config.toml:/etc/kbs/kbs-config.toml:ro" -v "$tmp/kbs.pem:/kbs/kbs.pem:ro")
    paths=(/healthz /readyz)
    ;;
  grpc-as | restful-as | rvps)
    case $t in grpc-as) port=50004 ;; restful-as) port=8080 ;; rvps) port=50003 ;; esac
    if ! port_free $port; then
      new=$(free_port)
      echo "# $t: $port is taken here, moved to $new"
      argv=("${argv[@]/0.0.0.0:$port/0.0.0.0:$new}")
      port=$new
    fi
    if [ "$t" = rvps ]; then
      vols=(-v "$tmp/rvps.json:/etc/rvps.json:ro")
    else
      vols=(-v "$tmp/as.json:/etc/attestation-service/config.json:ro")
    fi
    paths=(/healthz)
    ;;
  esac
  log=$tmp/$t.log
  setsid "${BAH[@]}" run "${vols[@]}" "$ctr" -- "${argv[@]}" >"$log" 2>&1 &
  pid=$!
  pgids+=("$pid")
  up=0
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port${paths[0]}" 2>/dev/null; then up=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  check "$t: starts with '${argv[*]}' and answers GET ${paths[0]} on port $port" test $up -eq 1
  for p in "${paths[@]:1}"; do
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port$p" 2>/dev/null)
    check "$t: GET $p answers 200 (got $code)" test "$code" = 200
  done
  if [ $up -ne 1 ]; then sed 's/^/# /' "$log" | tail -15; fi
  kill -TERM -- "-$pid" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  stopped=1
  kill -0 "$pid" 2>/dev/null && { stopped=0; kill -KILL -- "-$pid" 2>/dev/null; }
  wait "$pid" 2>/dev/null
  [ $up -ne 1 ] || check "$t: stops within 5 s of SIGTERM" test $stopped -eq 1
done
echo "1..$n"
[ $fails -eq 0 ]
