#!/usr/bin/env bash
# Builds the kbs, grpc-as, restful-as and rvps images from deploy/container/Containerfile with
# Debian's buildah (chroot isolation, vfs storage under build/images/, so no daemon, overlay
# module or user namespace is needed). No image registry is reachable here, so the `debian:12`
# base (also tagged `debian:12-slim`) is imported from a `debootstrap --variant=minbase bookworm`
# root made from the machine's own apt mirror and cached as build/images/debian-12.tar.
# The binaries are the host's build/bin/ ones (the host is Debian 12 as well), passed in with
# --build-arg BINS=prebuilt. Usage: deploy/container/images.sh [target...]
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${CTRUSTEE_BUILD:-build}
IMG=$B/images
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(kbs grpc-as restful-as rvps)
export BUILDAH_ISOLATION=chroot
BAH=(buildah --storage-driver vfs --root "$PWD/$IMG/storage" --runroot "$PWD/$IMG/run")
bah() { "${BAH[@]}" "$@"; }

# The machine's Debian mirrors (one-line and deb822 sources), first one for each archive.
mirror() { # $1: debian | debian-security
  { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } |
    grep -v '^\s*#' | grep -oE '(https?|file)://[^ ]*/'"$1"'/?( |$)' | head -1 | sed 's:/\?\s*$::' || true
}
MAIN=$(mirror debian)
SEC=$(mirror debian-security)
[ -n "$MAIN" ] || { echo "images: no Debian mirror in /etc/apt/sources.list*" >&2; exit 1; }

mkdir -p "$IMG"
if [ ! -s "$IMG/debian-12.tar" ]; then
  echo "images: debootstrap --variant=minbase bookworm from $MAIN"
  root=$IMG/rootfs.tmp
  rm -rf "$root"
  debootstrap --variant=minbase bookworm "$root" "$MAIN" >"$IMG/debootstrap.log" 2>&1 ||
    { tail -20 "$IMG/debootstrap.log" >&2; echo "images: debootstrap failed" >&2; exit 1; }
  {
    echo "deb $MAIN bookworm main"
    echo "deb $MAIN bookworm-updates main"
    [ -z "$SEC" ] || echo "deb $SEC bookworm-security main"
  } >"$root/etc/apt/sources.list"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log
  tar -C "$root" --numeric-owner -cf "$IMG/debian-12.tar.tmp" .
  mv "$IMG/debian-12.tar.tmp" "$IMG/debian-12.tar"
  rm -rf "$root"
fi

# Import the root as debian:12 once per tarball (a newer tarball is imported again).
if ! bah inspect --type image debian:12 >/dev/null 2>&1 || [ "$IMG/debian-12.tar" -nt "$IMG/imported" ]; then
  echo "images: importing $IMG/debian-12.tar as debian:12"
  ctr=$(bah from scratch)
  bah add "$ctr" "$IMG/debian-12.tar" / >/dev/null
  bah config --cmd /bin/bash --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --os linux --arch amd64 "$ctr"
  bah commit --rm -q "$ctr" localhost/debian:12 >/dev/null
  bah tag localhost/debian:12 localhost/debian:12-slim docker.io/library/debian:12 docker.io/library/debian:12-slim
  touch "$IMG/imported"
fi

# Context: the six binaries only (the build stage, which compiles from source, is not used).
make -s -j2 "$B/bin/kbs" "$B/bin/kbs-client" "$B/bin/grpc-as" "$B/bin/restful-as" "$B/bin/rvps" "$B/bin/rvps-tool"
ctx=$IMG/context
rm -rf "$ctx" && mkdir -p "$ctx/build/bin"
cp "$B"/bin/{kbs,kbs-client,grpc-as,restful-as,rvps,rvps-tool} "$ctx/build/bin/"

before=$(bah containers -q | sort)
for t in "${TARGETS[@]}"; do
  echo "images: building ctrustee/$t"
  start=$(date +%s)
  bah bud --isolation chroot --pull-never --layers=false --build-arg BINS=prebuilt \
    -f deploy/container/Containerfile --target "$t" -t "localhost/ctrustee/$t:latest" "$ctx" \
    >"$IMG/build-$t.log" 2>&1 || { tail -30 "$IMG/build-$t.log" >&2; echo "images: $t failed" >&2; exit 1; }
  echo "images: ctrustee/$t built in $(($(date +%s) - start)) s"
done
# buildah 1.28 leaves a working container for a stage that is only a FROM (bins); drop those
# the builds made, then the stages' unnamed images.
comm -13 <(echo "$before") <(bah containers -q | sort) | xargs -r "${BAH[@]}" rm >/dev/null
bah rmi --prune >/dev/null 2>&1 || true
bah images
