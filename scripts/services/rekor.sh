#!/usr/bin/env bash
# The real Rekor v1 stack for tests, on loopback only:
#   MariaDB (private datadir) → Trillian log server + signer → rekor-server.
#
#   rekor.sh start ENVFILE   start everything (building the tools first when
#                            they are missing, ~13 min cold) and append
#                            ACCORD_TEST_REKOR_URL and ACCORD_TEST_REKOR_CLI
#                            to ENVFILE
#   rekor.sh stop            stop what start started, by recorded PID
#   rekor.sh status          exit 0 and print the KEY=VALUE lines when the
#                            whole stack is running
#
# State lives in .cache/services/rekor (override with ACCORD_REKOR_STATE):
# the MariaDB datadir, the Trillian tree ID, rekor's signing key and the
# attestation bucket survive restarts, so a warm start takes a few seconds
# and the log keeps its entries. Delete the directory for a fresh log.
set -euo pipefail
envarg=${2:-}
case $envarg in "" | /*) ;; *) envarg=$(pwd)/$envarg ;; esac
cd "$(dirname "$0")/../.."
root=$(pwd)
state=${ACCORD_REKOR_STATE:-$root/.cache/services/rekor}
run=$state/run
logs=$state/logs

log() { echo "rekor.sh: $*" >&2; }
die() {
	log "$*"
	exit 1
}

# pid_alive PIDFILE NAME: the recorded process is running and is NAME (a
# recycled PID belonging to something else is never signalled).
pid_alive() {
	local pid
	[ -f "$1" ] || return 1
	pid=$(cat "$1")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"
}

# stop_all TIMEOUT_S NAME:BINARY...: SIGTERM the recorded processes together,
# wait for them, SIGKILL what is left after TIMEOUT_S.
stop_all() {
	local secs=$1 spec name bin i pids=() left
	shift
	for spec in "$@"; do
		name=${spec%%:*} bin=${spec#*:}
		if pid_alive "$run/$name.pid" "$bin"; then
			pids+=("$(cat "$run/$name.pid")")
			kill -TERM "${pids[-1]}" 2>/dev/null || true
		fi
		rm -f "$run/$name.pid"
	done
	for ((i = 0; i < secs * 10; i++)); do
		left=()
		for pid in ${pids[@]+"${pids[@]}"}; do
			kill -0 "$pid" 2>/dev/null && left+=("$pid")
		done
		[ ${#left[@]} -eq 0 ] && return 0
		sleep 0.1
	done
	log "pids ${left[*]} did not stop in $secs s; killing them"
	kill -KILL "${left[@]}" 2>/dev/null || true
}

stop() {
	[ -d "$run" ] || return 0
	# Trillian keeps its state in MariaDB transactions, so a slow graceful
	# stop may be cut short; MariaDB itself gets time for a clean shutdown.
	stop_all 5 rekor-server:rekor-server trillian_log_signer:trillian_log_signer \
		trillian_log_server:trillian_log_server
	stop_all 60 mariadb:mariadbd
	if [ -f "$run/sockdir" ]; then
		rm -rf "$(cat "$run/sockdir")"
		rm -f "$run/sockdir"
	fi
	rm -f "$run/env"
}

status() {
	pid_alive "$run/mariadb.pid" mariadbd &&
		pid_alive "$run/trillian_log_server.pid" trillian_log_server &&
		pid_alive "$run/trillian_log_signer.pid" trillian_log_signer &&
		pid_alive "$run/rekor-server.pid" rekor-server &&
		[ -f "$run/env" ] || return 1
	cat "$run/env"
}

# port_busy PORT: something listens on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port VAR: set VAR to a port that nothing listens on and that this
# script has not handed out before. The ports come from below the kernel's
# ephemeral range: one inside it can be taken, between this check and the
# daemon's bind, as the local end of an outgoing connection (such as the
# Trillian servers' own MySQL connections), and the bind then fails.
taken=" "
free_port() {
	local p i lo
	read -r lo _ </proc/sys/net/ipv4/ip_local_port_range || lo=32768
	((lo > 11000)) || die "the ephemeral port range starts at $lo, leaving no ports below it"
	for ((i = 0; i < 200; i++)); do
		p=$((10000 + RANDOM % (lo - 10000)))
		case $taken in *" $p "*) continue ;; esac
		if ! port_busy "$p"; then
			taken+="$p "
			printf -v "$1" %s "$p"
			return 0
		fi
	done
	die "no free port found"
}

# launch NAME BINARY ARGS...: start a daemon in its own session, logging to
# logs/NAME.log, and record its PID. Until the forked shell has exec'd the
# daemon, that PID still runs this script, and pid_alive (which checks the
# name) would take the daemon for exited: so wait for the exec, or the exit.
launch() {
	local name=$1 bin=${2##*/} i
	shift
	setsid "$@" >>"$logs/$name.log" 2>&1 </dev/null &
	local pid=$!
	echo "$pid" >"$run/$name.pid"
	for ((i = 0; i < 50; i++)); do
		if pid_alive "$run/$name.pid" "$bin" || ! kill -0 "$pid" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
}

# wait_for NAME BINARY SECONDS CHECK...: poll CHECK until it succeeds, failing
# early (with the log's tail) when the daemon has exited.
wait_for() {
	local name=$1 bin=$2 secs=$3 i
	shift 3
	for ((i = 0; i < secs * 5; i++)); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		if ! pid_alive "$run/$name.pid" "$bin"; then
			tail -n 30 "$logs/$name.log" >&2 || true
			die "$name exited during start (log: $logs/$name.log)"
		fi
		sleep 0.2
	done
	tail -n 30 "$logs/$name.log" >&2 || true
	die "$name not ready after $secs s (log: $logs/$name.log)"
}

start() {
	local envfile=$1 t0 bindir
	t0=$(date +%s)
	[ -n "$envfile" ] || die "usage: rekor.sh start ENVFILE"
	for b in mariadbd mariadb-install-db mariadb mariadb-admin openssl curl setsid; do
		command -v "$b" >/dev/null || die "$b not found: run scripts/install-deps.sh (scripts/deps/rekor.txt)"
	done
	bindir=$(scripts/rekor-tools.sh)
	mkdir -p "$state" "$run" "$logs" "$state/attestations"
	stop # leftovers of an interrupted run

	# MariaDB on loopback with a private datadir. The socket path must stay
	# under the kernel's 108-byte limit, so it lives in a short temp dir
	# when the checkout path is long.
	local datadir=$state/mysql sockdir user
	user=$(id -un)
	sockdir=$run
	if [ ${#sockdir} -gt 80 ]; then
		sockdir=$(mktemp -d /tmp/accord-rekor.XXXXXX)
		echo "$sockdir" >"$run/sockdir"
	fi
	local sock=$sockdir/mysqld.sock dbport
	free_port dbport
	if [ ! -d "$datadir/mysql" ]; then
		log "initialising MariaDB in $datadir"
		rm -rf "$datadir" "$state/tree_id" "$state/schema.done"
		mariadb-install-db --no-defaults --datadir="$datadir" --user="$user" \
			--auth-root-authentication-method=normal --skip-test-db \
			>"$logs/mariadb-install.log" 2>&1 ||
			{
				tail -n 30 "$logs/mariadb-install.log" >&2
				die "mariadb-install-db failed"
			}
	fi
	launch mariadb mariadbd --no-defaults --datadir="$datadir" --socket="$sock" \
		--port="$dbport" --bind-address=127.0.0.1 --user="$user" --skip-name-resolve \
		--pid-file="$run/mariadbd.pidfile" --log-error="$logs/mariadb-error.log" \
		--innodb-buffer-pool-size=64M --skip-log-bin --max-connections=500
	wait_for mariadb mariadbd 60 mariadb-admin --no-defaults --socket="$sock" -uroot ping
	local sql=(mariadb --no-defaults --socket="$sock" -uroot)
	if [ ! -f "$state/schema.done" ]; then
		local trillian_dir schema
		trillian_dir=$(cd tools/rekor && GOTOOLCHAIN=local go mod download -json github.com/google/trillian |
			sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
		schema=$trillian_dir/storage/mysql/schema/storage.sql
		[ -f "$schema" ] || die "trillian schema not found at $schema"
		# root keeps only its socket login; the services use their own user.
		"${sql[@]}" <<-'EOF'
			DELETE FROM mysql.global_priv WHERE User = 'root' AND Host <> 'localhost';
			DELETE FROM mysql.global_priv WHERE User = '';
			FLUSH PRIVILEGES;
			CREATE DATABASE IF NOT EXISTS trillian;
			CREATE DATABASE IF NOT EXISTS rekor;
			CREATE USER IF NOT EXISTS 'accord'@'127.0.0.1' IDENTIFIED BY 'accord';
			GRANT ALL ON trillian.* TO 'accord'@'127.0.0.1';
			GRANT ALL ON rekor.* TO 'accord'@'127.0.0.1';
		EOF
		"${sql[@]}" trillian <"$schema"
		touch "$state/schema.done"
	fi
	local dsn="accord:accord@tcp(127.0.0.1:$dbport)"

	# Trillian: the log server (gRPC API) and a signer that is always master.
	local lsrpc lshttp sgrpc sghttp
	free_port lsrpc
	free_port lshttp
	free_port sgrpc
	free_port sghttp
	launch trillian_log_server "$bindir/trillian_log_server" \
		--rpc_endpoint="127.0.0.1:$lsrpc" --http_endpoint="127.0.0.1:$lshttp" \
		--storage_system=mysql --quota_system=mysql --mysql_uri="$dsn/trillian" \
		--tree_gc=false
	launch trillian_log_signer "$bindir/trillian_log_signer" \
		--rpc_endpoint="127.0.0.1:$sgrpc" --http_endpoint="127.0.0.1:$sghttp" \
		--storage_system=mysql --quota_system=mysql --mysql_uri="$dsn/trillian" \
		--force_master --sequencer_interval=50ms --batch_size=1000 --num_sequencers=2
	wait_for trillian_log_server trillian_log_server 30 curl -sf "http://127.0.0.1:$lshttp/healthz"
	wait_for trillian_log_signer trillian_log_signer 30 curl -sf "http://127.0.0.1:$sghttp/healthz"

	# One tree for the life of the datadir; rekor-server would otherwise
	# create a new one on every start.
	if [ ! -s "$state/tree_id" ]; then
		"$bindir/createtree" --admin_server="127.0.0.1:$lsrpc" --max_root_duration=0 \
			>"$state/tree_id.tmp" 2>"$logs/createtree.log" ||
			{
				tail -n 20 "$logs/createtree.log" >&2
				die "createtree failed"
			}
		mv "$state/tree_id.tmp" "$state/tree_id"
	fi
	local tree_id
	tree_id=$(tr -dc 0-9 <"$state/tree_id")
	[ -n "$tree_id" ] || die "empty tree id in $state/tree_id"

	# A file signing key, so checkpoints and SETs verify across restarts.
	if [ ! -s "$state/signer.pem" ]; then
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
			-out "$state/signer.pem.tmp" 2>/dev/null
		mv "$state/signer.pem.tmp" "$state/signer.pem"
	fi

	local port
	free_port port
	launch rekor-server "$bindir/rekor-server" serve \
		--rekor_server.address=127.0.0.1 --port="$port" \
		--rekor_server.hostname=accord-test-rekor \
		--rekor_server.signer="$state/signer.pem" \
		--trillian_log_server.address=127.0.0.1 --trillian_log_server.port="$lsrpc" \
		--trillian_log_server.tlog_id="$tree_id" \
		--search_index.storage_provider=mysql --search_index.mysql.dsn="$dsn/rekor" \
		--enable_attestation_storage --attestation_storage_bucket="file://$state/attestations" \
		--max_attestation_size=1048576 --log_type=prod
	wait_for rekor-server rekor-server 60 curl -sf "http://127.0.0.1:$port/api/v1/log"

	{
		echo "ACCORD_TEST_REKOR_URL=http://127.0.0.1:$port"
		echo "ACCORD_TEST_REKOR_CLI=$bindir/rekor-cli"
	} >"$run/env"
	cat "$run/env" >>"$envfile"
	log "up at http://127.0.0.1:$port (tree $tree_id) in $(($(date +%s) - t0)) s"
}

case ${1:-} in
start) start "$envarg" ;;
stop) stop ;;
status) status ;;
*) die "usage: rekor.sh start ENVFILE | stop | status" ;;
esac
