#!/usr/bin/env bash
# PostgreSQL for the settlement tests and benchmarks.
#   postgres.sh start ENVFILE   start a private cluster on 127.0.0.1 and a free port
#                               (or reuse the running one) and append
#                               ACCORD_TEST_PG_DSN=postgres://... to ENVFILE
#   postgres.sh stop            stop it by its recorded PID
#   postgres.sh status          exit 0 if it is running
# The cluster lives under .cache/services/pg (or $ACCORD_PG_STATE, an
# absolute directory of its own, PID file included: scripts/services/temporal.sh
# runs a private cluster that way) and runs as the `postgres` user
# (PostgreSQL refuses to run as root). If that user cannot reach the
# repository (e.g. a checkout under /root), the data goes to a directory
# under /tmp and .cache/services/pg/data links to it.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -n "${ACCORD_PG_STATE:-}" ]; then
	case $ACCORD_PG_STATE in
	/*) ;;
	*)
		echo "postgres.sh: ACCORD_PG_STATE must be absolute: $ACCORD_PG_STATE" >&2
		exit 2
		;;
	esac
	dir=$ACCORD_PG_STATE
	pidfile=$dir/postgres.pid
else
	dir=$PWD/.cache/services/pg
	pidfile=.cache/services/postgres.pid
fi
db=accord_test

bindir() {
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		[ -x "$d/initdb" ] && { echo "$d"; return 0; }
	done
	command -v initdb >/dev/null && { dirname "$(readlink -f "$(command -v initdb)")"; return 0; }
	echo "postgres.sh: no PostgreSQL server binaries; install Debian's postgresql (scripts/install-deps.sh)" >&2
	return 1
}

as_pg() {
	if [ "$(id -u)" = 0 ]; then
		(cd / && runuser -u postgres -- "$@") # postgres may not be allowed into $PWD
	else
		"$@"
	fi
}

running() {
	[ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

# free_port: print a port nothing listens on, from below the kernel's
# ephemeral range, where no outgoing connection can take it before
# postgres binds it (rekor.sh's free_port explains).
free_port() {
	local p i lo
	read -r lo _ </proc/sys/net/ipv4/ip_local_port_range || lo=32768
	((lo > 11000)) || lo=11000
	for ((i = 0; i < 200; i++)); do
		p=$((10000 + RANDOM % (lo - 10000)))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || {
			echo "$p"
			return 0
		}
	done
	return 1
}

start() {
	local envfile=$1 bin port data
	bin=$(bindir)
	mkdir -p "$dir"
	if running && [ -s "$dir/port" ]; then
		port=$(cat "$dir/port")
	else
		data="$dir/data"
		if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$dir"; then
			# postgres cannot traverse the checkout: keep the data in /tmp.
			local tmp
			tmp=$(readlink -f "$data" 2>/dev/null || true)
			if [ -z "$tmp" ] || [ ! -d "$tmp" ] || [ "$tmp" = "$(readlink -f "$dir")/data" ]; then
				tmp=$(mktemp -d /tmp/accord-pg.XXXXXX)
				chmod 755 "$tmp"
				rm -rf "$data"
				ln -s "$tmp" "$data"
			fi
			data=$tmp
		fi
		if [ ! -s "$data/PG_VERSION" ]; then
			mkdir -p "$data"
			[ "$(id -u)" = 0 ] && chown postgres: "$data"
			chmod 700 "$data"
			as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 || {
				cat "$dir/initdb.log" >&2
				return 1
			}
		fi
		port=$(free_port)
		# The socket directory must be writable by postgres; keep it in data.
		as_pg "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
			-o "-c listen_addresses=127.0.0.1 -p $port -k $data -c max_connections=200" start >/dev/null || {
			tail -n 30 "$data/server.log" >&2 || true
			return 1
		}
		head -n 1 "$data/postmaster.pid" >"$pidfile"
		echo "$port" >"$dir/port"
	fi
	if ! as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -Atqc "SELECT 1 FROM pg_database WHERE datname='$db'" postgres | grep -q 1; then
		as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres "$db"
	fi
	echo "ACCORD_TEST_PG_DSN=postgres://postgres@127.0.0.1:$port/$db?sslmode=disable" >>"$envfile"
	echo "postgres: 127.0.0.1:$port (pid $(cat "$pidfile"))"
}

stop() {
	running || { rm -f "$pidfile"; return 0; }
	local pid
	pid=$(cat "$pidfile")
	kill -INT "$pid" # fast shutdown
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$pidfile"
}

case "${1:-}" in
start) start "${2:?usage: postgres.sh start ENVFILE}" ;;
stop) stop ;;
status) running ;;
*)
	echo "usage: postgres.sh start ENVFILE | stop | status" >&2
	exit 2
	;;
esac
