#!/usr/bin/env bash
# Lint as part of `make test` (and `make lint`): every tracked C file formatted as
# .clang-format says, and cppcheck's warnings clean. One TAP line each, naming the files that
# fail. jansson.h is force-included so cppcheck knows its foreach macros instead of giving up
# on the files that use them; one preprocessor configuration per file (the one we build) keeps
# it to about half a minute.
cd "$(dirname "$0")/../.." || exit 1
if [ -n "${SANITIZER_REPORTS:-}" ]; then
  echo "ok 1 - lint # SKIP under make test-asan (lint reads sources, it ran in the first pass)"
  exit 0
fi
mapfile -t src < <(git ls-files '*.c' '*.h')
mapfile -t csrc < <(git ls-files '*.c')
rc=0
mapfile -t bad < <(clang-format --dry-run "${src[@]}" 2>&1 | sed -n 's/^\([^:]*\):[0-9]*:[0-9]*: .*/\1/p' | sort -u)
if [ ${#bad[@]} -eq 0 ]; then
  echo "ok 1 - clang-format: ${#src[@]} files as .clang-format says"
else
  echo "not ok 1 - clang-format: ${#bad[@]} files differ (clang-format -i them): ${bad[*]}"
  rc=1
fi
out=$(cppcheck -j "$(nproc)" --max-configs=1 --quiet --error-exitcode=1 --enable=warning --inline-suppr \
  --include=/usr/include/jansson.h -I common -I . "${csrc[@]}" 2>&1)
if [ $? -eq 0 ]; then
  echo "ok 2 - cppcheck --enable=warning: ${#csrc[@]} files clean"
else
  echo "not ok 2 - cppcheck --enable=warning:"
  printf '%s\n' "$out" | sed 's/^/#   /'
  rc=1
fi
echo "1..2"
exit $rc
