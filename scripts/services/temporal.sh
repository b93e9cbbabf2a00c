#!/usr/bin/env bash
# A real multi-service Temporal cluster on PostgreSQL, on loopback only:
# a private PostgreSQL (scripts/services/postgres.sh) → the `temporal` and
# `temporal_visibility` databases (temporal-sql-tool) → temporal-server
# (frontend, history, matching and worker services in one process) → the
# namespace `default` with Accord's search attributes (temporal-ns-setup).
#
#   temporal.sh start DIR [PORT]  start everything (building the tools first
#                                 when they are missing) and print the
#                                 frontend's host:port; the frontend listens
#                                 on PORT (default: the port of the previous
#                                 start in DIR, else one drawn below the
#                                 ephemeral range). A running cluster is
#                                 reused; a stopped server restarts on the
#                                 same databases.
#   temporal.sh stop-server DIR   stop temporal-server only (PostgreSQL and
#                                 the data stay: start resumes)
#   temporal.sh stop DIR          stop the server, then PostgreSQL
#   temporal.sh status DIR        exit 0 and print DIR/env when all runs
#
# scripts/test.sh calls every service as `start ENVFILE` and `stop`: for
# this one both are no-ops, since the test that needs a cluster
# (integration/temporal_pg_test.go) restarts its server and so starts a
# private one; a shared cluster would also change the default Temporal
# address (ACCORD_TEMPORAL_ADDRESS) of every other test.
#
# DIR (absolute or relative to the current directory) holds everything:
# pg/ (the cluster, as postgres.sh keeps it), config/, logs/, run/ (PIDs)
# and env, whose lines are
#   ACCORD_TEMPORAL_ADDRESS=127.0.0.1:PORT   the frontend
#   ACCORD_TEMPORAL_PG=postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable
# (the PostgreSQL superuser: tests create their own databases there).
set -euo pipefail
cmd=${1:-}
dir=${2:-}
port_arg=${3:-}
case $dir in "" | /*) ;; *) dir=$(pwd)/$dir ;; esac
cd "$(dirname "$0")/../.."
root=$(pwd)

# The job workflow's custom search attributes (workers/stack.SearchAttributes).
search_attributes=(AccordTenant=Keyword AccordSpec=Keyword AccordStatus=Keyword)
namespace=default
retention=24h
history_shards=4 # fixed once the schema exists

log() { echo "temporal.sh: $*" >&2; }
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

# port_busy PORT: something listens on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port VAR: set VAR to a port that nothing listens on and that this
# script has not handed out before, from below the kernel's ephemeral range
# (a port inside it can be taken as the local end of an outgoing connection,
# such as the server's own PostgreSQL connections, between check and bind).
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

pg() { ACCORD_PG_STATE="$dir/pg" scripts/services/postgres.sh "$@"; }

# start_postgres: the private cluster; sets pgport.
start_postgres() {
	local envf
	mkdir -p "$dir/pg"
	envf=$dir/pg/env
	: >"$envf"
	pg start "$envf" >&2 || die "PostgreSQL did not start"
	pgport=$(cat "$dir/pg/port")
}

# setup_schema: create both databases and bring their schemas to the
# version this server needs; a database already set up is only updated.
setup_schema() {
	local srv db name
	srv=$(cd tools/temporal && GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download -json go.temporal.io/server |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
	[ -d "$srv/schema/postgresql/v12" ] || die "server module schema not found (go mod download go.temporal.io/server in tools/temporal): $srv"
	local sql=("$bindir/temporal-sql-tool" --plugin postgres12 --ep 127.0.0.1 -p "$pgport" -u postgres)
	for db in temporal:temporal temporal_visibility:visibility; do
		name=${db%%:*}
		if ! psql -h 127.0.0.1 -p "$pgport" -U postgres -Atqc "SELECT 1 FROM pg_database WHERE datname='$name'" postgres | grep -q 1; then
			"${sql[@]}" --db "$name" create >>"$logs/sql-tool.log" 2>&1 || die "create database $name failed (log: $logs/sql-tool.log)"
		fi
		if [ ! -f "$dir/run/$name.schema" ]; then
			"${sql[@]}" --db "$name" setup-schema -v 0.0 >>"$logs/sql-tool.log" 2>&1 ||
				die "setup-schema $name failed (log: $logs/sql-tool.log)"
			touch "$dir/run/$name.schema"
		fi
		"${sql[@]}" --db "$name" update-schema --schema-dir "$srv/schema/postgresql/v12/${db#*:}/versioned" \
			>>"$logs/sql-tool.log" 2>&1 || die "update-schema $name failed (log: $logs/sql-tool.log)"
	done
}

# keep_port VAR OLD: set VAR to OLD when that port is still free, else draw
# a fresh one.
keep_port() {
	if [[ $2 =~ ^[0-9]+$ ]] && ! port_busy "$2" && [[ $taken != *" $2 "* ]]; then
		taken+="$2 "
		printf -v "$1" %s "$2"
	else
		free_port "$1"
	fi
}

# write_config FRONTEND: the server's config and dynamic config. The
# internal services keep their ports across restarts (DIR/run/ports) while
# those are free: a restarted host then has the address the membership ring
# and the task-queue partition owners knew, and matching answers at once
# (with fresh ports, requests went to the dead host's address until its
# membership expired, about a minute).
write_config() {
	local fe=$1 fehttp hist match work m1 m2 m3 m4 old=()
	[ -s "$dir/run/ports" ] && read -r -a old <"$dir/run/ports"
	keep_port fehttp "${old[0]:-}"
	keep_port hist "${old[1]:-}"
	keep_port match "${old[2]:-}"
	keep_port work "${old[3]:-}"
	keep_port m1 "${old[4]:-}"
	keep_port m2 "${old[5]:-}"
	keep_port m3 "${old[6]:-}"
	keep_port m4 "${old[7]:-}"
	echo "$fehttp $hist $match $work $m1 $m2 $m3 $m4" >"$dir/run/ports"
	cat >"$dir/config/dynamic.yaml" <<-EOF
		# Jobs are short and many: do not throttle a single-host cluster.
		frontend.namespaceRPS:
		  - value: 10000
		frontend.namespaceRPS.visibility:
		  - value: 100
		frontend.enableUpdateWorkflowExecution:
		  - value: true
		system.forceSearchAttributesCacheRefreshOnRead:
		  - value: true
		system.namespaceCacheRefreshInterval:
		  - value: 2s
	EOF
	ds() {
		cat <<-EOF
			      sql:
			        pluginName: postgres12
			        databaseName: $1
			        connectAddr: "127.0.0.1:$pgport"
			        connectProtocol: tcp
			        user: postgres
			        password: ""
			        maxConns: $2
			        maxIdleConns: $2
			        maxConnLifetime: 1h
		EOF
	}
	{
		cat <<-EOF
			log:
			  stdout: true
			  level: warn
			persistence:
			  defaultStore: default
			  visibilityStore: visibility
			  numHistoryShards: $history_shards
			  datastores:
			    default:
		EOF
		ds temporal 20
		echo "    visibility:"
		ds temporal_visibility 10
		cat <<-EOF
			global:
			  membership:
			    maxJoinDuration: 30s
			    broadcastAddress: 127.0.0.1
			services:
			  frontend:
			    rpc: {grpcPort: $fe, membershipPort: $m1, httpPort: $fehttp, bindOnIP: 127.0.0.1}
			  history:
			    rpc: {grpcPort: $hist, membershipPort: $m2, bindOnIP: 127.0.0.1}
			  matching:
			    rpc: {grpcPort: $match, membershipPort: $m3, bindOnIP: 127.0.0.1}
			  worker:
			    rpc: {grpcPort: $work, membershipPort: $m4, bindOnIP: 127.0.0.1}
			clusterMetadata:
			  enableGlobalNamespace: false
			  failoverVersionIncrement: 10
			  masterClusterName: active
			  currentClusterName: active
			  clusterInformation:
			    active:
			      enabled: true
			      initialFailoverVersion: 1
			      rpcName: frontend
			      rpcAddress: "127.0.0.1:$fe"
			      httpAddress: "127.0.0.1:$fehttp"
			dcRedirectionPolicy:
			  policy: noop
			archival:
			  history: {state: disabled}
			  visibility: {state: disabled}
			namespaceDefaults:
			  archival:
			    history: {state: disabled}
			    visibility: {state: disabled}
			dynamicConfigClient:
			  filepath: "$dir/config/dynamic.yaml"
			  pollInterval: 10s
		EOF
	} >"$dir/config/temporal.yaml"
}

# launch: start temporal-server in its own session, logging to
# logs/temporal-server.log, and record its PID once it has exec'd.
launch() {
	local i
	setsid "$bindir/temporal-server" --config-file "$dir/config/temporal.yaml" --allow-no-auth start \
		>>"$logs/temporal-server.log" 2>&1 </dev/null &
	local pid=$!
	echo "$pid" >"$dir/run/temporal-server.pid"
	for ((i = 0; i < 50; i++)); do
		if pid_alive "$dir/run/temporal-server.pid" temporal-server || ! kill -0 "$pid" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
}

server_running() { pid_alive "$dir/run/temporal-server.pid" temporal-server; }

# frontend_port: PORT, else the previous start's, else a fresh one.
frontend_port() {
	if [ -n "$port_arg" ]; then
		[[ $port_arg =~ ^[0-9]+$ ]] && ((port_arg > 0 && port_arg < 65536)) || die "bad port: $port_arg"
		feport=$port_arg
	elif [ -s "$dir/run/frontend.port" ]; then
		feport=$(cat "$dir/run/frontend.port")
	else
		free_port feport
	fi
	taken+="$feport "
	echo "$feport" >"$dir/run/frontend.port"
}

start() {
	local t0 feport pgport bindir
	t0=$(date +%s)
	[ -n "$dir" ] || die "usage: temporal.sh start DIR [PORT]"
	for b in psql setsid; do
		command -v "$b" >/dev/null || die "$b not found: install Debian's postgresql (scripts/install-deps.sh)"
	done
	logs=$dir/logs
	mkdir -p "$dir/config" "$dir/run" "$logs"
	bindir=$(scripts/temporal-tools.sh)
	start_postgres
	if server_running; then
		feport=$(cat "$dir/run/frontend.port")
		[ -z "$port_arg" ] || [ "$port_arg" = "$feport" ] || die "running on port $feport, not $port_arg: stop it first"
		log "already running on 127.0.0.1:$feport"
	else
		setup_schema
		frontend_port
		port_busy "$feport" && die "port $feport is in use"
		write_config "$feport"
		launch
	fi
	local i
	for ((i = 0; ; i++)); do
		"$bindir/temporal-ns-setup" -address "127.0.0.1:$feport" -namespace "$namespace" -retention "$retention" \
			-timeout 5s $(printf -- '-search-attribute %s ' "${search_attributes[@]}") >>"$logs/ns-setup.log" 2>&1 && break
		if ! server_running; then
			tail -n 30 "$logs/temporal-server.log" >&2 || true
			die "temporal-server exited during start (log: $logs/temporal-server.log)"
		fi
		((i < 24)) || {
			tail -n 10 "$logs/ns-setup.log" >&2 || true
			die "namespace $namespace not ready after 2 min (logs: $logs)"
		}
	done
	{
		echo "ACCORD_TEMPORAL_ADDRESS=127.0.0.1:$feport"
		echo "ACCORD_TEMPORAL_PG=postgres://postgres@127.0.0.1:$pgport/postgres?sslmode=disable"
	} >"$dir/env"
	log "up at 127.0.0.1:$feport (PostgreSQL 127.0.0.1:$pgport) in $(($(date +%s) - t0)) s"
	echo "127.0.0.1:$feport"
}

# stop_server: SIGTERM temporal-server, SIGKILL after 20 s.
stop_server() {
	[ -n "$dir" ] || die "usage: temporal.sh stop-server DIR"
	local pid i
	if server_running; then
		pid=$(cat "$dir/run/temporal-server.pid")
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 200; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "temporal-server $pid did not stop in 20 s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$dir/run/temporal-server.pid" "$dir/env"
}

stop() {
	[ -n "$dir" ] || die "usage: temporal.sh stop DIR"
	stop_server
	[ -d "$dir/pg" ] && pg stop
	return 0
}

status() {
	[ -n "$dir" ] || die "usage: temporal.sh status DIR"
	server_running && pg status && [ -f "$dir/env" ] || return 1
	cat "$dir/env"
}

if { [ "$cmd" = start ] && [ -f "$dir" ]; } || { [ "$cmd" = stop ] && [ -z "$dir" ]; }; then
	log "nothing to $cmd for scripts/test.sh: the Temporal test starts its own cluster (temporal.sh start DIR)"
	exit 0
fi
case $cmd in
start) start ;;
stop-server) stop_server ;;
stop) stop ;;
status) status ;;
*) die "usage: temporal.sh start DIR [PORT] | stop-server DIR | stop DIR | status DIR" ;;
esac
