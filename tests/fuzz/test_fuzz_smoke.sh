#!/usr/bin/env bash
# The fuzz smoke as part of `make test`: every fuzz target replays its seeds and committed
# regression inputs, then runs a fixed number of mutations from a fixed random seed (see
# tests/fuzz/run.sh). One TAP line per target; a SKIP line when clang/libFuzzer is missing.
cd "$(dirname "$0")/../.." || exit 1
if [ -n "${SANITIZER_REPORTS:-}" ]; then
  # make test-asan: the fuzz binaries carry ASan + UBSan already and make test runs them.
  echo "ok 1 - fuzz smoke # SKIP under make test-asan (the fuzz build is sanitized and runs in make test)"
  exit 0
fi
exec tests/fuzz/run.sh fuzz-smoke
