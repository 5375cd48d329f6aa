#!/usr/bin/env bash
# Lint as part of `make test` (and `make lint`): every tracked C file formatted as
# .clang-format says, and cppcheck's warnings clean. One TAP line each, naming the files that
# fail. jansson.h is force-included so cppcheck knows its foreach macros instead of giving up
# on the files that use them.
cd "$(dirname "$0")/../.." || exit 1
if [ -n "${SANITIZER_REPORTS:-}" ]; then
  echo "ok 1 - lint # SKIP under make test-asan (lint reads sources, it ran in the first pass)"
  exit 0
fi
mapfile -t src < <(git ls-files '*.c' '*.h')
mapfile -t csrc < <(git ls-files '*.c')
rc=0
bad=()
for f in "${src[@]}"; do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -eq 0 ]; then
  echo "ok 1 - clang-format: ${#src[@]} files as .clang-format says"
else
  echo "not ok 1 - clang-format: ${#bad[@]} files differ (clang-format -i them): ${bad[*]}"
  rc=1
fi
out=$(cppcheck -j "$(nproc)" --quiet --error-exitcode=1 --enable=warning --inline-suppr \
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
