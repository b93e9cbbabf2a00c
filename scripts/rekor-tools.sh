#!/usr/bin/env bash
# Builds the Rekor v1 test stack's binaries (trillian_log_server,
# trillian_log_signer, createtree, rekor-server, rekor-cli) from the pinned
# tools modfile tools/rekor/go.mod into .cache/tools/bin, skipping any that
# are already there. A cold build takes about 13 minutes on 2 idle cores.
# Concurrent callers wait for one build (flock).
# Usage: scripts/rekor-tools.sh [BINDIR]   (prints BINDIR on success)
set -euo pipefail
cd "$(dirname "$0")/.."
bindir=${1:-$(pwd)/.cache/tools/bin}
mkdir -p "$bindir"
bindir=$(cd "$bindir" && pwd)
export GOTOOLCHAIN=local
tools=(
	github.com/google/trillian/cmd/trillian_log_server
	github.com/google/trillian/cmd/trillian_log_signer
	github.com/google/trillian/cmd/createtree
	github.com/sigstore/rekor/cmd/rekor-server
	github.com/sigstore/rekor/cmd/rekor-cli
)
exec 9>"$bindir/.rekor-tools.lock"
flock 9
# A stamp records which tools modfile the binaries came from, so that a
# change of pins rebuilds them.
stamp="$bindir/.rekor-tools.sum"
want=$(sha256sum tools/rekor/go.mod tools/rekor/go.sum | sha256sum | cut -d" " -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" != "$want" ]; then
	for t in "${tools[@]}"; do rm -f "$bindir/$(basename "$t")"; done
fi
missing=()
for t in "${tools[@]}"; do
	[ -x "$bindir/$(basename "$t")" ] || missing+=("$t")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "building ${missing[*]##*/} into $bindir (about 13 min cold)" >&2
	start=$(date +%s)
	(cd tools/rekor && GOBIN="$bindir" go install -trimpath -ldflags=-s "${missing[@]}")
	echo "built in $(($(date +%s) - start)) s" >&2
fi
echo "$want" >"$stamp"
echo "$bindir"
