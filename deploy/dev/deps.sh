#!/usr/bin/env bash
# Install every Debian package listed in deploy/dev/packages.txt (or in the list file given as
# the argument, e.g. deploy/container/packages.txt for `make images`) that is not installed yet.
# Idempotent: a machine that has them all does nothing (and says so).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
list=${1:-$here/packages.txt}
mapfile -t pkgs < <(grep -v '^\s*#' "$list" | sed 's/\s.*//' | grep -v '^$')
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#pkgs[@]} packages present"
  exit 0
fi
echo "deps: installing ${#missing[@]} missing package(s): ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# redis-server may be started by the package; our tests start their own on free ports.
echo "deps: done"
