#!/usr/bin/env bash
# Run every test program and count TAP results.
# A test program prints TAP lines ("ok N - name", "not ok N - name", "ok N - name # SKIP why");
# cmocka binaries do so with CMOCKA_MESSAGE_OUTPUT=TAP. A program that exits non-zero without
# reporting a failure counts as one failure, so a crash is never silent.
# Usage: tests/run.sh [filter-substring]      env BUILD (default build), TEST_TIMEOUT (s, default 600)
# Each program's exit status and seconds go to $BUILD/test-logs/<its log>.rc; the ten slowest
# are listed at the end.
# Under sanitizers (make test-asan sets SANITIZER_REPORTS=dir) every process writes its
# ASan/UBSan/LSan reports into files in that dir instead of stderr; a program after which a
# report appears counts one failure whatever its exit status, so a report from a daemon an
# integration test started, or from a tool a test expected to fail, is never lost in a log.
# GCC's UBSan runtime ignores log_path when ASan is linked too and writes to stderr, so its
# reports ("<file>:<line>:<col>: runtime error: ...") are also looked for in the program's log
# and in the logs of the daemons it started (tests/integration/harness.py writes those to
# $BUILD/test-logs/<test>/, cleared before the test runs).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD CTRUSTEE_BUILD=$BUILD CTRUSTEE_SHARED=${CTRUSTEE_SHARED:-$(cd .. && pwd)/shared}
export CMOCKA_MESSAGE_OUTPUT=TAP PYTHONPATH=$PWD/$BUILD/gen/py:$PWD/tests/integration${PYTHONPATH:+:$PYTHONPATH}
filter=${1:-}
logs=$BUILD/test-logs
mkdir -p "$logs"
san=${SANITIZER_REPORTS:-}
if [ -n "$san" ]; then
  mkdir -p "$san" "$logs/sanitizer"
  san=$(cd "$san" && pwd)
  rm -f "$san"/report.* "$san"/bin_*
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$san/report"
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$san/report"
fi
progs=()
for f in $BUILD/tests/unit/* $BUILD/tests/conformance/*; do
  [ -x "$f" ] && [ -f "$f" ] && progs+=("$f")
done
for f in tests/unit/test_*.py tests/integration/test_*.py tests/conformance/test_*.py tests/*/test_*.sh; do
  [ -f "$f" ] && progs+=("$f")
done
pass=0 fail=0 skip=0
times=()
start=$(date +%s)
# The compiled test programs (unit and conformance) first, TEST_JOBS at a time (default: the
# CPUs), each with its status and time in <log>.rc and, under sanitizers, its reports under its
# own name; the scripts then run one at a time, and every result is read in the order above.
run_bin() { # run_bin prog log
  local t0 rc
  t0=$(date +%s)
  if [ -n "$san" ]; then
    ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$san/bin_${2##*/}" \
      UBSAN_OPTIONS="$UBSAN_OPTIONS:log_path=$san/bin_${2##*/}" \
      timeout -k 10 "${TEST_TIMEOUT:-600}" "$1" >"$2" 2>&1
  else
    timeout -k 10 "${TEST_TIMEOUT:-600}" "$1" >"$2" 2>&1
  fi
  rc=$?
  echo "$rc $(($(date +%s) - t0))" >"$2.rc"
}
for p in "${progs[@]}"; do
  case "$p" in *"$filter"*) ;; *) continue ;; esac
  case "$p" in *.py | *.sh) continue ;; esac
  rm -f "$logs/${p//\//_}.log.rc"
  run_bin "$p" "$logs/${p//\//_}.log" &
  while [ "$(jobs -rp | wc -l)" -ge "${TEST_JOBS:-$(nproc 2>/dev/null || echo 2)}" ]; do wait -n; done
done
wait
for p in "${progs[@]}"; do
  case "$p" in *"$filter"*) ;; *) continue ;; esac
  name=${p//\//_}
  log=$logs/$name.log
  dlogs=$logs/$(basename "${p%.*}")
  [ -n "$san" ] && [ "${p%.py}" != "$p" ] && rm -rf "$dlogs"
  t0=$(date +%s)
  case "$p" in
    *.py) timeout -k 10 "${TEST_TIMEOUT:-600}" /usr/bin/python3 "$p" >"$log" 2>&1 ;;
    *.sh) timeout -k 10 "${TEST_TIMEOUT:-600}" bash "$p" >"$log" 2>&1 ;;
    *) (exit 1) ;;
  esac
  rc=$?
  case "$p" in
    *.py | *.sh) ;;
    *)
      read -r rc secs <"$log.rc" 2>/dev/null || rc=1 secs=0
      t0=$(($(date +%s) - secs))
      ;;
  esac
  p_ok=$(grep -cE '^ok [0-9]+' "$log" | head -1)
  p_skip=$(grep -cE '^ok [0-9]+.*# *(SKIP|skip)' "$log" | head -1)
  p_fail=$(grep -cE '^not ok [0-9]+' "$log" | head -1)
  p_ok=$((p_ok - p_skip))
  if [ "$rc" -ne 0 ] && [ "$p_fail" -eq 0 ]; then
    p_fail=1
    echo "not ok - $p exited with status $rc" >>"$log"
  fi
  if [ -n "$san" ] && compgen -G "$san/report.*" >/dev/null ||
    { [ -n "$san" ] && compgen -G "$san/bin_$name.log.*" >/dev/null; }; then
    p_fail=$((p_fail + 1))
    for r in "$san"/report.* "$san"/bin_"$name".log.*; do
      [ -f "$r" ] || continue
      echo "not ok - sanitizer report ${r##*/} during $p:" >>"$log"
      cat "$r" >>"$log"
      mv "$r" "$logs/sanitizer/$name.${r##*/}"
    done
  fi
  if [ -n "$san" ]; then
    ub=$( { grep -sH -E '^[^ ]+:[0-9]+:[0-9]+: runtime error: ' "$log"
            [ "${p%.py}" != "$p" ] && [ -d "$dlogs" ] && grep -rsH -E '^[^ ]+:[0-9]+:[0-9]+: runtime error: ' "$dlogs"; } | head -20)
    if [ -n "$ub" ]; then
      p_fail=$((p_fail + 1))
      printf 'not ok - UBSan report during %s:\n%s\n' "$p" "$ub" >>"$log"
    fi
  fi
  pass=$((pass + p_ok)) fail=$((fail + p_fail)) skip=$((skip + p_skip))
  status=PASS
  [ "$p_fail" -gt 0 ] && status=FAIL
  secs=$(($(date +%s) - t0))
  times+=("$secs $p")
  case "$p" in *.py | *.sh) echo "$rc $secs" >"$log.rc" ;; esac
  printf '%-4s %-60s %4d passed %3d failed %3d skipped (%ds)\n' "$status" "$p" "$p_ok" "$p_fail" "$p_skip" "$secs"
  if [ "$p_fail" -gt 0 ]; then
    grep -E '^not ok' "$log" | head -20 | sed 's/^/     /'
    echo "     --- last lines of $log:"
    tail -15 "$log" | sed 's/^/     | /'
  fi
done
# The slowest programs, to see where the 20-minute budget of make test goes (the compiled
# ones ran TEST_JOBS at a time, the scripts one by one).
printf '%s\n' "${times[@]}" | sort -rn | head -10 | awk 'NR == 1 { print "slowest programs:" } { printf "  %4ds %s\n", $1, $2 }'
echo "test run took $(( $(date +%s) - start ))s; logs in $logs/"
echo "$pass passed, $fail failed, $skip skipped"
echo "$pass $fail $skip" >"$logs/summary"
[ "$fail" -eq 0 ]
