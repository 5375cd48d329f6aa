#!/usr/bin/env bash
# The fuzz smoke as part of `make test`: every fuzz target replays its seeds and committed
# regression inputs, then runs a fixed number of mutations from a fixed random seed (see
# tests/fuzz/run.sh). One TAP line per target; a SKIP line when clang/libFuzzer is missing.
cd "$(dirname "$0")/../.." || exit 1
exec tests/fuzz/run.sh fuzz-smoke
