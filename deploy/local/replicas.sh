#!/usr/bin/env bash
# Bulwark gateway replicas on one machine, without containers: N `bulwark
# serve` processes on one PostgreSQL database and one Redis, behind HAProxy
# (Debian package `haproxy`, run as this user with a generated config on
# loopback). For trying the topology and for tests (tests/it/replicas).
#
#   deploy/local/replicas.sh [--replicas N] [--port PORT] [--bin PATH]
#                            [--dir DIR] [--config FILE]
#
#   BULWARK_PG_URL     use this PostgreSQL; unset: start a throwaway one
#                      (initdb + postgres from /usr/lib/postgresql/*/bin, as
#                      the user `postgres` when run as root) on a free port
#   BULWARK_REDIS_URL  use this Redis; unset: start a throwaway redis-server
#                      on a free port (no persistence)
#   BULWARK_MASTER_KEY shared by every replica (generated into DIR if unset)
#
# Prints "services dir D", "postgres pid P url U", "redis pid P url U" for
# what it started, one line per replica once it is ready ("replica I pid P
# url U"), "haproxy pid P" and then "Bulwark replicas behind HAProxy on
# http://127.0.0.1:PORT/mcp"; runs until SIGINT/SIGTERM, then stops
# everything it started and deletes the throwaway databases (DIR, with the
# replicas' and HAProxy's logs, is kept). A replica that dies is not
# restarted: HAProxy takes it out of rotation, and `kill -USR1 <script pid>`
# starts the missing ones again.
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
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
command -v haproxy >/dev/null || { echo "haproxy is not installed (apt-get install haproxy)" >&2; exit 1; }
[[ -n $dir ]] || dir=$(mktemp -d -t bulwark-replicas.XXXXXX)
mkdir -p "$dir"
if [[ -z ${BULWARK_MASTER_KEY:-} ]]; then
    [[ -s $dir/master.key.hex ]] || od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$dir/master.key.hex"
    BULWARK_MASTER_KEY=$(cat "$dir/master.key.hex")
fi
export BULWARK_MASTER_KEY

declare -a pids=() ports=()
pg_pid="" redis_pid="" haproxy_pid=""
# The throwaway PostgreSQL and Redis live here; deleted on exit.
services=""

# A free loopback port below the kernel's ephemeral range: a port from that
# range (what binding port 0 gives) can be taken by any outgoing connection
# while its replica is down, and the restart then fails.
free_port() {
    python3 - <<'PY'
import random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
for port in [random.randrange(1024, low) for _ in range(1000) if low > 1025] + [0]:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        print(s.getsockname()[1])
        break
PY
}

# Signals `pid`s with `sig` and waits up to 10 s for them to go, then SIGKILLs.
stop_pids() {
    local sig=$1; shift
    local pid alive
    [[ $# -gt 0 ]] || return 0
    kill "-$sig" "$@" 2>/dev/null || true
    for _ in $(seq 1 100); do
        alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [[ $alive == 1 ]] || break
        sleep 0.1
    done
    kill -KILL "$@" 2>/dev/null || true
    for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}

# Stops what the script started (replicas first: they hold connections to the
# database and Redis) and deletes the throwaway data. Runs on every exit.
cleanup() {
    trap - EXIT INT TERM USR1
    local running=() pid
    for pid in "${pids[@]}" $haproxy_pid; do
        [[ -n $pid ]] && running+=("$pid")
    done
    stop_pids TERM "${running[@]}"
    # SIGQUIT: PostgreSQL's immediate shutdown; its data is thrown away.
    [[ -n $pg_pid ]] && stop_pids QUIT "$pg_pid"
    [[ -n $redis_pid ]] && stop_pids TERM "$redis_pid"
    [[ -n $services ]] && rm -rf "$services"
    return 0
}
trap cleanup EXIT
trap 'exit 0' INT TERM

# A throwaway PostgreSQL: initdb into $services/pg, `postgres` on a free
# loopback port (a child of this script, so it stays in its process group),
# trust authentication, a database `bulwark`.
start_postgres() {
    local initdb pgbin data sock pg_port as_user=()
    initdb=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n1 || true)
    if [[ -z $initdb ]]; then
        echo "no PostgreSQL server in /usr/lib/postgresql/*/bin (Debian package postgresql); or set BULWARK_PG_URL" >&2
        exit 1
    fi
    pgbin=${initdb%/initdb}
    data=$services/pg
    sock=$services/pg-socket
    mkdir -p "$data" "$sock"
    if [[ $(id -u) == 0 ]]; then
        # PostgreSQL refuses to run as root.
        local user=${BULWARK_PG_OS_USER:-postgres}
        chown "$user:" "$data" "$sock"
        as_user=(setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups --)
    fi
    # From a directory that user may read (the caller's may be /root).
    pushd "$services" >/dev/null
    if ! "${as_user[@]}" "$pgbin/initdb" -D "$data" -U postgres -A trust -E UTF8 --no-sync \
        >"$services/initdb.log" 2>&1; then
        echo "initdb failed:" >&2
        cat "$services/initdb.log" >&2
        exit 1
    fi
    pg_port=$(free_port)
    "${as_user[@]}" "$pgbin/postgres" -D "$data" -p "$pg_port" -k "$sock" \
        -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
        -c full_page_writes=off >"$services/postgres.log" 2>&1 &
    pg_pid=$!
    popd >/dev/null
    for _ in $(seq 1 300); do
        "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" -U postgres && break
        kill -0 "$pg_pid" 2>/dev/null || { echo "postgres failed:" >&2; cat "$services/postgres.log" >&2; exit 1; }
        sleep 0.1
    done
    "$pgbin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres bulwark
    pg_url=postgres://postgres@127.0.0.1:$pg_port/bulwark
    echo "postgres pid $pg_pid url $pg_url"
}

# Whether a Redis answers PING on port $1.
redis_answers() {
    if command -v redis-cli >/dev/null; then
        [[ $(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null) == PONG ]]
    else
        (
            exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
            printf 'PING\r\n' >&3
            read -r -t 1 reply <&3 && [[ $reply == +PONG* ]]
        ) 2>/dev/null
    fi
}

# A throwaway Redis on a free loopback port, nothing saved.
start_redis() {
    local redis_port
    command -v redis-server >/dev/null || {
        echo "redis-server is not installed (Debian package redis-server); or set BULWARK_REDIS_URL" >&2
        exit 1
    }
    redis_port=$(free_port)
    mkdir -p "$services/redis"
    redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$services/redis" \
        --save "" --appendonly no --logfile "$services/redis.log" &
    redis_pid=$!
    for _ in $(seq 1 300); do
        redis_answers "$redis_port" && break
        kill -0 "$redis_pid" 2>/dev/null || { echo "redis-server failed:" >&2; cat "$services/redis.log" >&2; exit 1; }
        sleep 0.1
    done
    redis_url=redis://127.0.0.1:$redis_port
    echo "redis pid $redis_pid url $redis_url"
}

pg_url=${BULWARK_PG_URL:-}
redis_url=${BULWARK_REDIS_URL:-}
if [[ -z $pg_url || -z $redis_url ]]; then
    services=$(mktemp -d -t bulwark-services.XXXXXX)
    # The `postgres` user must reach its data directory inside.
    chmod 711 "$services"
    echo "services dir $services"
fi
[[ -n $pg_url ]] || start_postgres
[[ -n $redis_url ]] || start_redis

config="$dir/bulwark.toml"
{
    printf '[store]\nurl = "%s"\n\n' "$pg_url"
    printf '[sessions]\nbackend = "redis"\nredis_url = "%s"\n\n' "$redis_url"
    printf '[auth.rate_limits]\nbackend = "redis"\nredis_url = "%s"\n\n' "$redis_url"
    [[ -n $extra_config ]] && cat "$extra_config"
} >"$config"

start_replica() {
    local i=$1
    local data="$dir/replica-$i"
    mkdir -p "$data"
    BULWARK__SERVER__LISTEN="127.0.0.1:${ports[$i]}" BULWARK__SERVER__DATA_DIR="$data" \
        "$bin" serve --config "$config" >"$data/stdout.log" 2>"$data/stderr.log" &
    pids[$i]=$!
    # Up when it prints its URL, ready when /ready says so (its upstreams
    # started), or gone when it failed.
    for _ in $(seq 1 600); do
        if grep -q "/mcp" "$data/stdout.log" 2>/dev/null; then
            command -v curl >/dev/null || break
            curl -fsS -o /dev/null "http://127.0.0.1:${ports[$i]}/ready" 2>/dev/null && break
        fi
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
    log stdout format raw local0 info
defaults
    mode http
    log global
    option httplog
    # Also the pause before retrying when one replica is left (min(this,
    # 1 s)); a loopback or LAN connect takes well under a millisecond.
    timeout connect 200ms
    timeout client 5m
    timeout server 5m
    # What may be retried on another replica, and how often. An MCP POST is
    # not idempotent (a tools/call runs a tool), so:
    # - conn-failure: the request never reached a replica (refused: the
    #   replica is gone but not yet marked down). Always safe.
    # - empty-response: the replica closed without answering (it died with
    #   the request queued or being handled). A replay runs a tools/call
    #   only if no replica saw it: each request carries one Bulwark-Attempt
    #   id (below), kept on its replays, which the gateway claims in Redis
    #   before serving it. A replay of a call a dying replica had read is
    #   answered -32002 without running; one that reached only a dead
    #   socket runs once, where it is replayed to.
    # - not response-timeout: the call may still be running (and "timeout
    #   server" must outlast long calls and SSE streams anyway); nor 5xx:
    #   those are answers, e.g. an upstream's failure passed on.
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response
    # A request is replayable only when it is whole in one buffer, so wait
    # for the body (MCP POST bodies are small, complete JSON messages).
    option http-buffer-request
frontend bulwark
    bind 127.0.0.1:$port
    # One id per client request, set here once (a client's own value is
    # replaced) and so the same on every replay of it.
    unique-id-format %[uuid()]
    http-request set-header Bulwark-Attempt %[unique-id]
    default_backend replicas
backend replicas
    balance roundrobin
    # In rotation only when able to serve (/ready: its upstreams are up).
    option httpchk
    http-check send meth GET uri /ready ver HTTP/1.1 hdr Host 127.0.0.1
    # Checked every 500 ms, out at the first failed check, back after two
    # good ones; three errors in a row on real traffic (refused connections,
    # resets, 5xx) take a replica out at once, without waiting for a check.
    default-server check inter 500ms fastinter 250ms downinter 500ms fall 1 rise 2 observe layer7 error-limit 3 on-error mark-down
CFG
    for i in $(seq 1 "$replicas"); do
        echo "    server replica$i 127.0.0.1:${ports[$i]}"
    done
} >"$dir/haproxy.cfg"
haproxy -f "$dir/haproxy.cfg" -db >"$dir/haproxy.log" 2>&1 &
haproxy_pid=$!
echo "haproxy pid $haproxy_pid"
# Announced once it listens (clients told the URL earlier were refused).
for _ in $(seq 1 100); do
    if command -v curl >/dev/null; then
        curl -s -o /dev/null "http://127.0.0.1:$port/ready" && break
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    fi
    kill -0 "$haproxy_pid" 2>/dev/null || { echo "haproxy failed:" >&2; cat "$dir/haproxy.log" >&2; exit 1; }
    sleep 0.05
done

# Whether process $1 runs (a killed child not reaped yet is a zombie: gone).
running() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    [[ ${stat##*) } != Z* ]]
}
restart_missing() {
    for i in $(seq 1 "$replicas"); do
        running "${pids[$i]}" || start_replica "$i" || true
    done
}
trap restart_missing USR1
echo "Bulwark replicas behind HAProxy on http://127.0.0.1:$port/mcp"
while true; do
    # `wait` returns on any signal, so traps run at once.
    wait "$haproxy_pid" 2>/dev/null || true
    kill -0 "$haproxy_pid" 2>/dev/null || { echo "haproxy exited" >&2; exit 1; }
done
