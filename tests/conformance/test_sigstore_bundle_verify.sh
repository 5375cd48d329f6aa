#!/usr/bin/env bash
# Sigstore's own conformance cases (sigstore-conformance test/assets/bundle-verify/) through
# `rvps-tool verify-bundle`, driven as the conformance suite drives a client: each folder with
# its key or identity/issuer (defaults otherwise), its trusted_root.json or the public-good root,
# its artifact or ../a.txt; once with the artifact's path and once with sha256:<hex>. A folder
# ending in _fail must exit non-zero, every other one exit 0. One TAP line per run.
set -u
cd "$(dirname "$0")/../.."
BUILD=${CTRUSTEE_BUILD:-build}
SHARED=${CTRUSTEE_SHARED:-$(cd .. && pwd)/shared}
[ -d "$SHARED/testdata" ] || SHARED=../shared
SIG=$SHARED/testdata/rvps/sigstore
CASES=$SIG/bundle-verify
TOOL=$BUILD/bin/rvps-tool
DEF_ID='https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main'
DEF_ISS='https://token.actions.githubusercontent.com'
if [ ! -x "$TOOL" ] || [ ! -d "$CASES" ]; then
	echo "1..0 # SKIP rvps-tool or $CASES missing"
	exit 0
fi
dirs=$(cd "$CASES" && ls -d */ | tr -d / | sort)
n=$(($(echo "$dirs" | wc -l) * 2))
echo "1..$n"
i=0
pass=0
for d in $dirs; do
	c=$CASES/$d
	args=(verify-bundle --bundle "$c/bundle.sigstore.json")
	if [ -f "$c/key.pub" ]; then
		args+=(--key "$c/key.pub")
	else
		id=$DEF_ID
		iss=$DEF_ISS
		[ -f "$c/identity" ] && id=$(cat "$c/identity")
		[ -f "$c/issuer" ] && iss=$(cat "$c/issuer")
		args+=(--certificate-identity "$id" --certificate-oidc-issuer "$iss")
	fi
	if [ -f "$c/trusted_root.json" ]; then
		args+=(--trusted-root "$c/trusted_root.json")
	else
		args+=(--trusted-root "$SIG/trusted_root.prod.json")
	fi
	art=$CASES/a.txt
	[ -f "$c/artifact" ] && art=$c/artifact
	dig="sha256:$(sha256sum "$art" | cut -d' ' -f1)"
	for form in path digest; do
		i=$((i + 1))
		a=$art
		[ $form = digest ] && a=$dig
		out=$("$TOOL" "${args[@]}" "$a" 2>&1)
		rc=$?
		want=0
		case $d in *_fail) want=1 ;; esac
		if { [ $want = 0 ] && [ $rc = 0 ]; } || { [ $want = 1 ] && [ $rc = 1 ]; }; then
			echo "ok $i - $d ($form)$( [ $want = 1 ] && echo ": refused: ${out//$'\n'/ }")"
			pass=$((pass + 1))
		else
			echo "not ok $i - $d ($form): exit $rc, wanted $( [ $want = 0 ] && echo success || echo failure): ${out//$'\n'/ }"
		fi
	done
done
echo "# $pass of $n conformance runs gave the expected outcome"
