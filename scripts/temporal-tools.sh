#!/usr/bin/env bash
# Builds the Temporal cluster's binaries, temporal-server (the server
# module's cmd/server), temporal-sql-tool (cmd/tools/sql) and
# temporal-ns-setup (tools/temporal/nssetup: registers a namespace and its
# search attributes through the SDK), from the pinned
# tools modfile tools/temporal/go.mod into .cache/tools/bin, skipping any that
# are already there and were built from the same pins. One binary at a time
# (a cold parallel build of the server exhausts a small machine); the tools
# module's versions match the main module's, so a warm build cache from
# `go build ./cmd/accord` makes most of the server's packages cache hits
# (hence no -trimpath, which would change every package's cache key).
# Concurrent callers wait for one build (flock).
# Usage: scripts/temporal-tools.sh [BINDIR]   (prints BINDIR on success)
set -euo pipefail
cd "$(dirname "$0")/.."
bindir=${1:-$(pwd)/.cache/tools/bin}
mkdir -p "$bindir"
bindir=$(cd "$bindir" && pwd)
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
# name:package
tools=(
	temporal-server:go.temporal.io/server/cmd/server
	temporal-sql-tool:go.temporal.io/server/cmd/tools/sql
	temporal-ns-setup:github.com/accordmesh/accord/tools/temporal/nssetup
)
exec 9>"$bindir/.temporal-tools.lock"
flock 9
# A stamp records which tools modfile the binaries came from, so that a
# change of pins (or an interrupted build) rebuilds them.
stamp="$bindir/.temporal-tools.sum"
want=$(sha256sum tools/temporal/go.mod tools/temporal/go.sum | sha256sum | cut -d" " -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
	for t in "${tools[@]}"; do rm -f "$bindir/${t%%:*}"; done
fi
rm -f "$stamp"
for t in "${tools[@]}"; do
	name=${t%%:*} pkg=${t#*:}
	[ -x "$bindir/$name" ] && continue
	echo "temporal-tools: building $name (minutes with a cold build cache, seconds once go build ./cmd/accord warmed it)" >&2
	start=$(date +%s)
	(cd tools/temporal && go build -ldflags=-s -o "$bindir/$name.tmp" "$pkg")
	mv "$bindir/$name.tmp" "$bindir/$name"
	echo "temporal-tools: built $name in $(($(date +%s) - start)) s" >&2
done
echo "$want" >"$stamp"
echo "$bindir"
