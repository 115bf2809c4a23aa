#!/usr/bin/env bash
# Bulwark gateway replicas on one machine, without containers: N `bulwark
# serve` processes on one PostgreSQL database and one Redis, behind HAProxy
# (Debian package `haproxy`, run as this user with a generated config on
# loopback). For trying the topology and for tests (tests/it/replicas).
#
# PostgreSQL and Redis are not started here: point at running ones.
#
#   deploy/local/replicas.sh [--replicas N] [--port PORT] [--bin PATH]
#                            [--dir DIR] [--config FILE]
#
#   BULWARK_PG_URL     default postgres://postgres@127.0.0.1:5432/test
#   BULWARK_REDIS_URL  default redis://127.0.0.1:6379
#   BULWARK_MASTER_KEY shared by every replica (generated into DIR if unset)
#
# Prints one line per replica ("replica I pid P url U") and then
# "Bulwark replicas behind HAProxy on http://127.0.0.1:PORT/mcp"; runs until
# SIGINT/SIGTERM, then stops everything it started. A replica that dies is
# not restarted: HAProxy's health check takes it out of rotation, and
# `kill -USR1 <script pid>` starts the missing ones again.
set -euo pipefail

replicas=3
port=8080
bin=${BULWARK_BIN:-bulwark}
dir=""
extra_config=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --replicas) replicas=$2; shift 2 ;;
        --port) port=$2; shift 2 ;;
        --bin) bin=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        --config) extra_config=$2; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
command -v haproxy >/dev/null || { echo "haproxy is not installed (apt-get install haproxy)" >&2; exit 1; }
[[ -n $dir ]] || dir=$(mktemp -d -t bulwark-replicas.XXXXXX)
mkdir -p "$dir"
pg_url=${BULWARK_PG_URL:-postgres://postgres@127.0.0.1:5432/test}
redis_url=${BULWARK_REDIS_URL:-redis://127.0.0.1:6379}
if [[ -z ${BULWARK_MASTER_KEY:-} ]]; then
    [[ -s $dir/master.key.hex ]] || od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$dir/master.key.hex"
    BULWARK_MASTER_KEY=$(cat "$dir/master.key.hex")
fi
export BULWARK_MASTER_KEY

# One free loopback port per replica.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

config="$dir/bulwark.toml"
{
    printf '[store]\nurl = "%s"\n\n' "$pg_url"
    printf '[sessions]\nbackend = "redis"\nredis_url = "%s"\n\n' "$redis_url"
    printf '[auth.rate_limits]\nbackend = "redis"\nredis_url = "%s"\n\n' "$redis_url"
    [[ -n $extra_config ]] && cat "$extra_config"
} >"$config"

declare -a pids ports
start_replica() {
    local i=$1
    local data="$dir/replica-$i"
    mkdir -p "$data"
    BULWARK__SERVER__LISTEN="127.0.0.1:${ports[$i]}" BULWARK__SERVER__DATA_DIR="$data" \
        "$bin" serve --config "$config" >"$data/stdout.log" 2>"$data/stderr.log" &
    pids[$i]=$!
    # Ready when it prints its URL (or gone when it failed).
    for _ in $(seq 1 600); do
        grep -q "/mcp" "$data/stdout.log" 2>/dev/null && break
        kill -0 "${pids[$i]}" 2>/dev/null || { echo "replica $i failed:" >&2; cat "$data/stderr.log" >&2; return 1; }
        sleep 0.1
    done
    echo "replica $i pid ${pids[$i]} url http://127.0.0.1:${ports[$i]}/mcp"
}

for i in $(seq 1 "$replicas"); do ports[$i]=$(free_port); done
# The first replica migrates the database and creates the admin key (shown
# in its stdout.log); the others start once it is up.
for i in $(seq 1 "$replicas"); do start_replica "$i"; done
admin_key=$(grep -m1 '^bk_' "$dir/replica-1/stdout.log" || true)
[[ -n $admin_key ]] && echo "admin key (shown once): $admin_key"

{
    cat <<CFG
global
    maxconn 4096
defaults
    mode http
    timeout connect 1s
    timeout client 5m
    timeout server 5m
    # A refused connection (a dead replica) is retried on another one.
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
frontend bulwark
    bind 127.0.0.1:$port
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk
    http-check send meth GET uri /health ver HTTP/1.1 hdr Host 127.0.0.1
    default-server check inter 500ms fall 1 rise 2
CFG
    for i in $(seq 1 "$replicas"); do
        echo "    server replica$i 127.0.0.1:${ports[$i]}"
    done
} >"$dir/haproxy.cfg"
haproxy -q -f "$dir/haproxy.cfg" -db &
haproxy_pid=$!
echo "haproxy pid $haproxy_pid"

stop() {
    trap - INT TERM
    kill "${pids[@]}" "$haproxy_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    exit 0
}
restart_missing() {
    for i in $(seq 1 "$replicas"); do
        kill -0 "${pids[$i]}" 2>/dev/null || start_replica "$i" || true
    done
}
trap stop INT TERM
trap restart_missing USR1
echo "Bulwark replicas behind HAProxy on http://127.0.0.1:$port/mcp"
while true; do
    # `wait` returns on any signal, so traps run at once.
    wait "$haproxy_pid" 2>/dev/null || true
    kill -0 "$haproxy_pid" 2>/dev/null || { echo "haproxy exited" >&2; stop; }
done
