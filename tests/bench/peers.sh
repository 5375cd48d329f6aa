#!/usr/bin/env bash
# make bench-peers: our Intel quote verification beside a peer's, in one run. The peer is
# @phala/dcap-qvl, the JavaScript build of the dcap-qvl verifier, installed from the npm registry
# into $BUILD/peers/ when it is not there yet. Both verify the same testdata quotes with the same
# offline collateral bundle at the same pinned time (MANIFEST.md: one second before the bundle's
# earliest nextUpdate), and must reach the same verdict (the TCB status, or a refusal) on every
# quote; a disagreement fails the run.
#   warm  one process, the verification called in a loop: ours through the AS verifier
#         (build/bin/quote-loop), the peer's verify() in node; median per call; the first call
#         of ours and the first 20 of the peer's (JIT warm-up) are left out
#   cold  one process per verification: build/bin/evidence-verify vs the peer's test_case.js
#         CLI, runs interleaved, median wall time, beside /bin/true started the same way
# env BUILD (default build), PEERS_ITERS (warm calls, default 500), PEERS_RUNS (cold processes
# per side and quote, default 15), PEERS_VERSION (default 0.3.9)
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
iters=${PEERS_ITERS:-500}
runs=${PEERS_RUNS:-15}
ver=${PEERS_VERSION:-0.3.9}
shared=${CTRUSTEE_SHARED:-/work/shared}
[ -d "$shared/testdata" ] || shared=../shared
E=$shared/testdata/evidence
peer=$BUILD/peers/node_modules/@phala/dcap-qvl

for b in quote-loop evidence-verify; do
  [ -x "$BUILD/bin/$b" ] || { echo "bench-peers: $BUILD/bin/$b is not built (make first)" >&2; exit 1; }
done
command -v node >/dev/null || { echo "bench-peers: node is not installed" >&2; exit 1; }
if [ ! -f "$peer/package.json" ] || ! grep -q "\"version\": \"$ver\"" "$peer/package.json"; then
  echo "installing @phala/dcap-qvl@$ver into $BUILD/peers/"
  mkdir -p "$BUILD/peers"
  npm install --silent --no-audit --no-fund --prefix "$BUILD/peers" "@phala/dcap-qvl@$ver" ||
    { echo "bench-peers: npm install @phala/dcap-qvl@$ver failed" >&2; exit 1; }
fi

# The peer's warm loop: verify() on bytes already in memory, prints the same two lines as
# quote-loop ("verdict X", "warm_us N").
cat >"$BUILD/peers/warm.js" <<'JS'
const fs = require('fs');
const { verify } = require(process.argv[2] + '/src/verify');
const quote = new Uint8Array(fs.readFileSync(process.argv[3]));
const coll = JSON.parse(fs.readFileSync(process.argv[4], 'utf8'));
const now = Number(process.argv[5]), iters = Number(process.argv[6]);
const once = () => { try { return verify(quote, coll, now).status; } catch (e) { return 'refused: ' + e.message; } };
let first = once();
for (let i = 0; i < 19; i++) once();
const t = [];
for (let i = 0; i < iters; i++) {
  const t0 = process.hrtime.bigint();
  once();
  t.push(Number(process.hrtime.bigint() - t0) / 1e3);
}
t.sort((a, b) => a - b);
console.log('verdict ' + first);
console.log('warm_us ' + t[Math.floor(iters / 2)].toFixed(1));
JS

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
echo "peer: @phala/dcap-qvl $(sed -n 's/.*"version": "\(.*\)".*/\1/p' "$peer/package.json" | head -1) on node $(node --version); warm $iters calls, cold $runs processes per side"
/usr/bin/python3 - "$BUILD" "$peer" "$E" "$iters" "$runs" <<'PY'
import calendar, json, os, subprocess, sys, time
build, peer, E, iters, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
# (name, tee, quote, collateral bundle, pinned time = earliest nextUpdate - 1 s)
cases = [
    ("TDX v4 (dcap-qvl)", "tdx", "tdx/dcap-qvl/tdx_quote", "tdx/dcap-qvl/tdx_quote_collateral.json", "2025-07-19T10:00:34Z"),
    ("TDX v5 (go-tdx-guest)", "tdx", "tdx/go-tdx-guest/quote_v5_sample.dat", "tdx/dcap-qvl/tdx_quote_outdated_collateral.json", "2026-03-20T10:41:14Z"),
    ("TDX v5, no TCB level", "tdx", "tdx/dcap-qvl/tdx_quote_outdated", "tdx/dcap-qvl/tdx_quote_outdated_collateral.json", "2026-03-20T10:41:14Z"),
    ("SGX v3 (dcap-qvl)", "sgx", "sgx/dcap-qvl/sgx_quote", "sgx/dcap-qvl/sgx_quote_collateral.json", "2025-07-19T10:01:17Z"),
]

def lines(out):
    return dict(l.split(" ", 1) for l in out.splitlines() if " " in l)

def verdict_class(v):
    return "refused" if v.startswith("refused") else v

def tcb_status(doc):
    if isinstance(doc, dict):
        if isinstance(doc.get("tcb_status"), str):
            return doc["tcb_status"]
        for v in doc.values():
            s = tcb_status(v)
            if s:
                return s
    return None

def ours_cold(tee, q, c, when):
    p = subprocess.run([f"{build}/bin/evidence-verify", "--tee", tee, "--evidence", q,
                        "--collateral", c, "--time", when], capture_output=True, text=True)
    if p.returncode != 0:
        return "refused: " + p.stdout.strip() + p.stderr.strip()
    return tcb_status(json.loads(p.stdout)) or "verified"

def peer_cold(q, c, ts):
    p = subprocess.run(["node", f"{peer}/test_case.js", "verify", "--time", str(ts), q, c],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return "refused: " + p.stderr.strip()
    st = [l.split(": ", 1)[1] for l in p.stdout.splitlines() if l.startswith("Status: ")]
    return st[0] if st else "verified"

def timed(f, *a):
    t0 = time.perf_counter()
    v = f(*a)
    return (time.perf_counter() - t0) * 1e3, v

def median(v):
    return sorted(v)[len(v) // 2]

bad = 0
true_ms = median([timed(subprocess.run, ["/bin/true"])[0] for _ in range(runs)])
print(f"{'quote':24} {'verdict (ours = peer)':36} {'warm ours':>10} {'peer':>10} {'ratio':>6}  "
      f"{'cold ours':>9} {'peer':>8} {'ratio':>6}")
for name, tee, q, c, when in cases:
    q, c = f"{E}/{q}", f"{E}/{c}"
    ts = calendar.timegm(time.strptime(when, "%Y-%m-%dT%H:%M:%SZ"))
    o = subprocess.run([f"{build}/bin/quote-loop", tee, q, c, when, iters], capture_output=True, text=True)
    p = subprocess.run(["node", f"{os.getcwd()}/{build}/peers/warm.js", os.path.abspath(peer), q, c,
                        str(ts), iters], capture_output=True, text=True)
    ow, pw = lines(o.stdout), lines(p.stdout)
    if "warm_us" not in ow or "warm_us" not in pw:
        print(f"{name}: a warm loop failed: {o.stderr.strip()} {p.stderr.strip()}")
        bad = 1
        continue
    oc, pc, verdicts = [], [], set()
    for _ in range(runs):  # interleaved, so load changes hit both sides alike
        t, v = timed(ours_cold, tee, q, c, when); oc.append(t); verdicts.add(("ours", verdict_class(v)))
        t, v = timed(peer_cold, q, c, ts); pc.append(t); verdicts.add(("peer", verdict_class(v)))
    ov, pv = verdict_class(ow["verdict"]), verdict_class(pw["verdict"])
    verdicts |= {("ours", ov), ("peer", pv)}
    agree = len({v for _, v in verdicts}) == 1
    bad |= not agree
    shown = ov if agree else f"DISAGREE: ours {ow['verdict']} / peer {pw['verdict']}"
    wo, wp, co, cp = float(ow["warm_us"]), float(pw["warm_us"]), median(oc), median(pc)
    print(f"{name:24} {shown:36} {wo:8.0f}us {wp:8.0f}us {wp / wo:5.1f}x  "
          f"{co:7.1f}ms {cp:6.1f}ms {cp / co:5.1f}x")
    if not agree:
        print(f"  every verdict seen: {sorted(verdicts)}; ours: {ow['verdict']}; peer: {pw['verdict']}")
print(f"baseline: /bin/true started the same way, median {true_ms:.1f} ms "
      f"(cold ours minus it: the verification and our start-up)")
sys.exit(bad)
PY
rc=$?
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
[ $rc = 0 ] || echo "bench-peers: ours and the peer disagree on a verdict, or a run failed" >&2
exit $rc
