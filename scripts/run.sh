#!/usr/bin/env bash
# What `make run` runs after building accord and the example image: makes
# sure containerd and runc are installed (installs the Debian packages when
# root; otherwise says what to install) and runs the quickstart spec end to
# end in one process, topping up the demo tenant's ledger account first.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
for bin in containerd runc; do
	command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "accord needs ${missing[*]}: install them with: sudo apt-get install -y ${missing[*]}" >&2
		exit 1
	fi
	echo "installing ${missing[*]} ..."
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "$(id -u)" != 0 ]; then
	echo "accord run starts a private containerd, which needs root: run 'sudo make run'" >&2
	exit 1
fi
export ACCORD_HOME="${ACCORD_HOME:-$PWD/.cache/home}"
# --fund tops the tenant up to 10.00 USD when its balance is lower (a local
# demo ledger starts empty); the spec's budget is 5.00 USD.
exec bin/accord run examples/quickstart.md --fund 10.00 "$@"
