#!/usr/bin/env bash
# An OCI registry (Debian docker-registry, distribution 2.8.2) on loopback,
# for the model benchmarks and manual use.
#   registry.sh start DIR [PORT]  start it with filesystem storage under
#                                 DIR/storage, deletes enabled (the referrers
#                                 tag-schema fallback deletes superseded
#                                 indexes), on 127.0.0.1:PORT (default: a free
#                                 port below the ephemeral range); prints
#                                 127.0.0.1:PORT and records it in DIR/addr
#   registry.sh stop DIR          stop it by the PID in DIR/registry.pid
#   registry.sh status DIR        exit 0 if it is running
set -euo pipefail
bin=/usr/bin/docker-registry

running() {
	local pidfile=$1/registry.pid
	[ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

# free_port: a port nothing listens on, below the kernel's ephemeral range,
# where no outgoing connection can take it before the registry binds it.
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
	local dir=$1 port=${2:-} addr
	[ -x "$bin" ] || {
		echo "registry.sh: $bin missing; install Debian's docker-registry (scripts/install-deps.sh)" >&2
		return 1
	}
	mkdir -p "$dir/storage"
	dir=$(cd "$dir" && pwd)
	if running "$dir"; then
		cat "$dir/addr"
		return 0
	fi
	[ -n "$port" ] || port=$(free_port)
	addr=127.0.0.1:$port
	cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: "$dir/storage"
  delete:
    enabled: true
http:
  addr: "$addr"
  secret: accord-local
YAML
	setsid "$bin" serve "$dir/config.yml" >>"$dir/registry.log" 2>&1 </dev/null &
	echo $! >"$dir/registry.pid"
	for _ in $(seq 1 300); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$addr" >"$dir/addr"
			echo "$addr"
			return 0
		fi
		running "$dir" || break
		sleep 0.1
	done
	echo "registry.sh: docker-registry did not start on $addr:" >&2
	tail -n 20 "$dir/registry.log" >&2 || true
	stop "$dir"
	return 1
}

stop() {
	local dir=$1 pid
	running "$dir" || { rm -f "$dir/registry.pid"; return 0; }
	pid=$(cat "$dir/registry.pid")
	kill -TERM "$pid"
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || { rm -f "$dir/registry.pid"; return 0; }
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$dir/registry.pid"
}

# scripts/test.sh calls every service as `start ENVFILE` and `stop`: for
# this one both are no-ops, since the tests that need a registry start
# their own (models/registry/registrytest).
if { [ "${1:-}" = start ] && [ -f "${2:-}" ]; } || { [ "${1:-}" = stop ] && [ -z "${2:-}" ]; }; then
	echo "registry.sh: nothing to ${1} for scripts/test.sh: the model tests start their own registries" >&2
	exit 0
fi
case "${1:-}" in
start) start "${2:?usage: registry.sh start DIR [PORT]}" "${3:-}" ;;
stop) stop "${2:?usage: registry.sh stop DIR}" ;;
status) running "${2:?usage: registry.sh status DIR}" ;;
*)
	echo "usage: registry.sh start DIR [PORT] | stop DIR | status DIR" >&2
	exit 2
	;;
esac
