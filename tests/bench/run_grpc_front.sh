#!/usr/bin/env bash
# The cost of the gRPC port's front (common/grpcfront.c) on gRPC throughput: bench-grpc's
# in-process RVPS served four ways in one run, rounds interleaved so that load from other
# processes hits every mode alike. Since the server runs on nghttp2 (grpcx_h2.c) every mode
# is a front: "core" and "core-tls" are grpcx_server_new/_new_tls (a front of the server's
# own, no pages), "front" and "front-tls" a daemon's front made with gfront_new; the names
# stay for comparison with older runs. Prints the median req/s per mode and thread count,
# and front/core ratios.
# Usage: tests/bench/run_grpc_front.sh     env BUILD (default build), BENCH_SECONDS (default 2),
#        ROUNDS (default 3)
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
secs=${BENCH_SECONDS:-2}
rounds=${ROUNDS:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/k.pem" \
  -out "$tmp/c.pem" -days 1 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
chmod 600 "$tmp/k.pem"
modes="core front core-tls front-tls"
for r in $(seq "$rounds"); do
  for m in $modes; do
    "$BUILD/bin/bench-grpc" --serve "$m" --cert "$tmp/c.pem" --key "$tmp/k.pem" \
      --seconds "$secs" --threads 1,16 2>/dev/null |
      awk -v m="$m" '/client threads/ {print m, $4, $7, $(NF-1)}' >>"$tmp/out"
  done
done
/usr/bin/python3 - "$tmp/out" <<'PY'
import statistics, sys
rps, cpu = {}, {}
for line in open(sys.argv[1]):
    m, th, r, c = line.split()
    rps.setdefault((m, int(th)), []).append(float(r))
    cpu.setdefault((m, int(th)), []).append(float(c))
def med(d, m, th):
    return statistics.median(d[(m, th)])
for th in (1, 16):
    print("grpc front, %2d client threads (median of %d): req/s core %.0f, front %.0f (x%.2f); "
          "core-tls %.0f, front-tls %.0f (x%.2f)" %
          (th, len(rps[("core", th)]), med(rps, "core", th), med(rps, "front", th),
           med(rps, "front", th) / med(rps, "core", th), med(rps, "core-tls", th),
           med(rps, "front-tls", th), med(rps, "front-tls", th) / med(rps, "core-tls", th)))
    print("grpc front, %2d client threads: CPU us/call core %.0f, front %.0f (x%.2f); "
          "core-tls %.0f, front-tls %.0f (x%.2f)" %
          (th, med(cpu, "core", th), med(cpu, "front", th),
           med(cpu, "front", th) / med(cpu, "core", th), med(cpu, "core-tls", th),
           med(cpu, "front-tls", th), med(cpu, "front-tls", th) / med(cpu, "core-tls", th)))
PY
