#!/usr/bin/env bash
# Runs every Go test with the services the tests need. Each executable
# scripts/services/NAME.sh is called as `NAME.sh start ENVFILE` (it starts its
# service on loopback, records its PID under .cache/services, and appends
# KEY=VALUE lines for the tests to ENVFILE) and `NAME.sh stop` afterwards,
# whatever the outcome.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache/services
envfile=.cache/services/test.env
: > "$envfile"
started=()
stop_all() {
	for s in "${started[@]}"; do "$s" stop || true; done
}
trap stop_all EXIT
for s in scripts/services/*.sh; do
	[ -x "$s" ] || continue
	echo "== starting $(basename "$s" .sh)"
	if "$s" start "$envfile"; then
		started+=("$s")
	else
		echo "service $(basename "$s" .sh) failed to start" >&2
		exit 1
	fi
done
set -a
. "$envfile"
set +a
# go test -json feeds tools/testreport: each package's ok/FAIL line as it
# finishes and the output of failed tests, then the skipped tests with their
# reasons and go test's closing lines. Under CI=true a skip that
# scripts/test-skips-allowed.txt does not list fails the run. The exit status
# is go test's when it failed, else the report's.
go build -o .cache/bin/testreport ./tools/testreport || exit 1
go test -json -count=1 -timeout 45m ./... "$@" | .cache/bin/testreport -allow scripts/test-skips-allowed.txt
codes=("${PIPESTATUS[@]}")
if [ "${codes[0]}" -ne 0 ]; then
	exit "${codes[0]}"
fi
exit "${codes[1]}"
