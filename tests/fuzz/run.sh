#!/usr/bin/env bash
# The fuzz harness. Builds the four libraries with clang + ASan + UBSan + libFuzzer coverage
# in their own build dir (make's dependency tracking keeps it incremental), links every
# tests/fuzz/fuzz_*.c into a libFuzzer binary, and runs the binaries one after the other.
#
#   tests/fuzz/run.sh fuzz-smoke [target...]   every seed and regression input, then FUZZ_RUNS
#       (default 5000) mutations from a fixed random seed, cut short after FUZZ_SMOKE_SECONDS
#       (default 8) for the slow targets; one TAP line per target. Part of `make test`
#       through tests/fuzz/test_fuzz_smoke.sh.
#   tests/fuzz/run.sh fuzz [target...]         each target for FUZZ_SECONDS (default 60) under
#       nice, growing a corpus in $FUZZ_BUILD/corpus/<target>; reports executions per target.
#       FUZZ_MAX_RUNS=N stops a target earlier once it has run N inputs (a release run:
#       FUZZ_SECONDS=1800 FUZZ_MAX_RUNS=1000000, "a million executions or half an hour").
#   tests/fuzz/run.sh build                    only build.
#
# Env: FUZZ_BUILD (build dir, default build-fuzz), FUZZ_RUNS, FUZZ_SECONDS, FUZZ_TIMEOUT
# (seconds one input may take, default 30), FUZZ_JOBS (smoke targets run at once, default the
# CPUs), CTRUSTEE_SHARED (default ../shared), FUZZ_CC.
# Seeds: tests/fuzz/seeds.txt, tests/fuzz/seeds/<target>/, tests/fuzz/regressions/<target>/;
# dictionaries: tests/fuzz/dicts/<target>.dict when present.
#
# A finding leaves its input in $FUZZ_BUILD/artifacts/<target>/. Reproduce and minimise it:
#   build-fuzz/fuzz/<target> <input>
#   build-fuzz/fuzz/<target> -minimize_crash=1 -max_total_time=60 <input>
# then commit the minimised input under tests/fuzz/regressions/<target>/ with the fix, so
# every smoke run replays it.
set -u
cd "$(dirname "$0")/../.."
mode=${1:-fuzz-smoke}
shift || true
FB=${FUZZ_BUILD:-build-fuzz}
CC_FUZZ=${FUZZ_CC:-clang}
FUZZ_RUNS=${FUZZ_RUNS:-5000}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_SMOKE_SECONDS=${FUZZ_SMOKE_SECONDS:-8}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-30}
export CTRUSTEE_SHARED=${CTRUSTEE_SHARED:-$(cd .. && pwd)/shared}
SHARED=$CTRUSTEE_SHARED
TESTDATA=$SHARED/testdata
# The pkg-config packages the Makefile links with (one list, there).
PKGS=$(sed -n 's/^PKGS *:= *//p' Makefile)
# Libraries: coverage hooks and sanitizers, no libFuzzer main (that comes at link time).
# UBSan findings abort so libFuzzer records them like any crash.
SAN_LIB="-fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=all -fno-omit-frame-pointer"
SAN_BIN="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
LIBS="$FB/lib/libas.a $FB/lib/libcommon.a $FB/lib/libkbs.a $FB/lib/librvps.a"
# Our own options, not inherited ones (make test-asan sends reports to files; libFuzzer must
# see them on stderr).
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1

case "$mode" in
  fuzz-smoke | fuzz | build) ;;
  *)
    echo "usage: $0 fuzz-smoke|fuzz|build [target...]" >&2
    exit 2
    ;;
esac

n=0 failed=0
tap() { # tap ok|not-ok "description"
  n=$((n + 1))
  if [ "$1" = ok ]; then echo "ok $n - $2"; else
    echo "not ok $n - $2"
    failed=$((failed + 1))
  fi
}

# The targets, by wildcard: targets added later are picked up without an edit here.
targets=()
for src in tests/fuzz/fuzz_*.c; do
  [ -f "$src" ] || continue
  t=$(basename "$src" .c)
  if [ $# -gt 0 ]; then
    want=0
    for a in "$@"; do [ "$a" = "$t" ] || [ "fuzz_$a" = "$t" ] && want=1; done
    [ $want -eq 1 ] || continue
  fi
  targets+=("$t")
done
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz: no target matches ${*:-tests/fuzz/fuzz_*.c}" >&2
  exit 2
fi

mkdir -p "$FB/fuzz" "$FB/logs"

# Can this machine build a libFuzzer binary at all? If not, the smoke is skipped, not failed.
probe_fuzzer() {
  command -v "$CC_FUZZ" >/dev/null 2>&1 || {
    why="$CC_FUZZ not found (make deps installs clang and libclang-rt-14-dev)"
    return 1
  }
  echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }' |
    "$CC_FUZZ" -x c $SAN_BIN -o "$FB/fuzz/.probe" - >"$FB/logs/probe.log" 2>&1 || {
    why="$CC_FUZZ cannot link -fsanitize=fuzzer (libFuzzer runtime missing: libclang-rt-14-dev)"
    return 1
  }
  rm -f "$FB/fuzz/.probe"
}
if ! probe_fuzzer; then
  if [ "$mode" = fuzz-smoke ]; then
    echo "ok 1 - fuzz # SKIP $why"
    exit 0
  fi
  echo "fuzz: $why" >&2
  exit 1
fi

# --- build -----------------------------------------------------------------------------
# One builder at a time per build dir (make test and make fuzz may overlap).
exec 9>"$FB/.lock"
flock 9
t0=$(date +%s)
if ! env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory -j"${FUZZ_MAKE_JOBS:-2}" \
  B="$FB" CC="$CC_FUZZ" OPT="-O1" SAN="$SAN_LIB" $LIBS >"$FB/logs/build.log" 2>&1; then
  tap not-ok "fuzz: building the libraries with $CC_FUZZ failed (see $FB/logs/build.log)"
  tail -20 "$FB/logs/build.log" | sed 's/^/# /'
  exit 1
fi
pkg_cflags=$(pkg-config --cflags $PKGS)
pkg_libs=$(pkg-config --libs $PKGS)

# Relink a target when its source, a header it includes, a library or this script changed.
stale() { # stale bin
  local bin=$1 d
  [ -x "$bin" ] && [ -f "$bin.d" ] || return 0
  for d in $(sed -e 's/^[^:]*://' -e 's/\\$//' "$bin.d") $LIBS "$0"; do
    [ "$d" -nt "$bin" ] && return 0
  done
  return 1
}
# lld links these big static binaries faster than bfd when it is there.
fuse_ld=""
command -v ld.lld >/dev/null 2>&1 && fuse_ld=-fuse-ld=lld
link_one() { # link_one target: compile and link it; the binary exists only on success
  local t=$1 bin=$FB/fuzz/$1
  # shellcheck disable=SC2086
  "$CC_FUZZ" $fuse_ld -std=gnu11 -O1 -g -Wall -Wextra -Werror -Wno-unused-parameter \
    -D_GNU_SOURCE -I. -Icommon -I"$FB/gen" $pkg_cflags $SAN_BIN -MMD -MF "$bin.d" \
    -o "$bin" "tests/fuzz/$t.c" -Wl,--start-group "$FB/lib/libkbs.a" "$FB/lib/libas.a" \
    "$FB/lib/librvps.a" "$FB/lib/libcommon.a" -Wl,--end-group $pkg_libs -lpthread -lm \
    >"$FB/logs/$t.build.log" 2>&1 || rm -f "$bin"
}
for t in "${targets[@]}"; do
  stale "$FB/fuzz/$t" || continue
  rm -f "$FB/fuzz/$t"
  link_one "$t" &
  while [ "$(jobs -rp | wc -l)" -ge "${FUZZ_MAKE_JOBS:-2}" ]; do wait -n; done
done
wait
built=()
for t in "${targets[@]}"; do
  if [ ! -x "$FB/fuzz/$t" ]; then
    tap not-ok "$t: does not build (see $FB/logs/$t.build.log)"
    head -10 "$FB/logs/$t.build.log" | sed 's/^/# /'
    continue
  fi
  built+=("$t")
done
flock -u 9
echo "# fuzz: ${#built[@]} target(s) built in $FB/fuzz in $(($(date +%s) - t0))s"
[ "$mode" = build ] && { [ $failed -eq 0 ]; exit; }

# --- seeds -----------------------------------------------------------------------------
shopt -s globstar nullglob
[ -d "$TESTDATA" ] || echo "# fuzz: $TESTDATA not found; the shared: seeds are left out"
# Copies target t's seeds into $FB/seeds/t, under repo/, shared/ and committed/ with their
# paths kept (so none collide; libFuzzer reads a corpus dir recursively); prints how many
# there are. One cp per seeds.txt line, not one per file: fuzz_toml alone has ~800 seeds, and
# a fork or three per file cost ~30 s of CPU per smoke run.
collect_seeds() {
  local t=$1 dir=$FB/seeds/$1 target pat base sub f files
  rm -rf "$dir"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  while read -r target pat; do
    [ "$target" = "$t" ] || continue
    case "$pat" in
      shared:*) base=$TESTDATA pat=${pat#shared:} sub=shared ;;
      *) base=. sub=repo ;;
    esac
    [ -d "$base" ] || continue
    files=()
    # shellcheck disable=SC2206
    for f in $base/$pat; do
      [ -f "$f" ] && files+=("${f#"$base"/}")
    done
    [ ${#files[@]} -gt 0 ] || continue
    mkdir -p "$dir/$sub"
    (cd "$base" && cp --parents -- "${files[@]}" "$dir/$sub/")
  done < <(grep -vE '^\s*(#|$)' tests/fuzz/seeds.txt)
  files=()
  for f in tests/fuzz/seeds/"$t"/*; do
    [ -f "$f" ] && files+=("$f")
  done
  if [ ${#files[@]} -gt 0 ]; then
    mkdir -p "$dir/committed"
    cp -- "${files[@]}" "$dir/committed/"
  fi
  find "$dir" -type f | wc -l
}

# --- run -------------------------------------------------------------------------------
stat_of() { # stat_of log name -> the value of libFuzzer's final "stat::name"
  sed -n "s/^stat::$2: *\([0-9]*\).*/\1/p" "$1" | tail -1
}
finding_of() { # the first line that says what went wrong, and the saved input
  local what input
  what=$(grep -m1 -E '^(SUMMARY: |==[0-9]+== *ERROR: |.*runtime error: |ALARM: )' "$1" |
    sed -e 's/^==[0-9]*== *//' -e 's/ on address 0x.*//' | cut -c1-160)
  input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$1" | tail -1)
  echo "${what:-libFuzzer exited non-zero}${input:+; input saved to $input}"
}

# One target's run into its log; its exit status and seconds into $log.rc.
run_one() { # run_one target
  local t=$1 bin=$FB/fuzz/$1 nseeds reg nreg=0 work rc t1
  nseeds=$(collect_seeds "$t")
  reg=tests/fuzz/regressions/$t
  local dirs=("$FB/seeds/$t")
  if [ -d "$reg" ]; then
    dirs+=("$reg")
    nreg=$(find "$reg" -type f | wc -l)
  fi
  local opts=(-timeout="$FUZZ_TIMEOUT" -rss_limit_mb=2048 -print_final_stats=1
    -artifact_prefix="$FB/artifacts/$t/")
  [ -f "tests/fuzz/dicts/$t.dict" ] && opts+=(-dict="tests/fuzz/dicts/$t.dict")
  mkdir -p "$FB/artifacts/$t"
  local log=$FB/logs/$t.$mode.log
  t1=$(date +%s)
  if [ "$mode" = fuzz-smoke ]; then
    # A fresh first corpus dir (libFuzzer writes new inputs there, never into the seeds);
    # -runs counts the seed executions too, so add them.
    work=$(mktemp -d "$FB/smoke.XXXXXX")
    "$bin" "${opts[@]}" -seed=1 -runs=$((FUZZ_RUNS + nseeds + nreg)) \
      -max_total_time="$FUZZ_SMOKE_SECONDS" \
      "$work" "${dirs[@]}" >"$log" 2>&1
    rc=$?
    rm -rf "$work"
  else
    mkdir -p "$FB/corpus/$t"
    nice -n 10 "$bin" "${opts[@]}" -max_total_time="$FUZZ_SECONDS" -runs="${FUZZ_MAX_RUNS:--1}" \
      "$FB/corpus/$t" "${dirs[@]}" >"$log" 2>&1
    rc=$?
  fi
  echo "$rc $(($(date +%s) - t1)) $nseeds $nreg" >"$log.rc"
}

# The smoke runs FUZZ_JOBS targets at a time (default: the CPUs); long fuzzing one at a time.
jobs_max=1
[ "$mode" = fuzz-smoke ] && jobs_max=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
for t in "${built[@]}"; do
  rm -f "$FB/logs/$t.$mode.log.rc"
  run_one "$t" &
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n; done
done
wait

total_execs=0
summary=()
for t in "${built[@]}"; do
  log=$FB/logs/$t.$mode.log
  read -r rc secs nseeds nreg <"$log.rc" 2>/dev/null || { rc=1 secs=0 nseeds=0 nreg=0; }
  execs=$(stat_of "$log" number_of_executed_units)
  execs=${execs:-0}
  total_execs=$((total_execs + execs))
  cov=$(sed -n 's/.*\bcov: \([0-9]*\).*/\1/p' "$log" | tail -1)
  if [ "$rc" -ne 0 ]; then
    tap not-ok "$t: $(finding_of "$log") (log: $log)"
    grep -m1 -B2 -A12 -E '^==[0-9]+== *ERROR|runtime error:|ALARM:' "$log" | sed 's/^/# /'
  else
    tap ok "$t: $execs executions in ${secs}s (${nseeds} seeds, ${nreg} regressions, cov ${cov:-?})"
  fi
  summary+=("$(printf '%-24s %12s %6ss %8s' "$t" "$execs" "$secs" "${cov:-?}")")
done
if [ "$mode" = fuzz ]; then
  printf '# %-24s %12s %7s %8s\n' target executions time cov
  for s in "${summary[@]}"; do echo "# $s"; done
fi
echo "1..$n"
echo "# fuzz $mode: ${#built[@]} target(s), $total_execs executions, $failed failure(s)"
[ $failed -eq 0 ]
