#!/usr/bin/env bash
# make bench: builds in release, starts a throw-away PostgreSQL and the server, and runs
# chat-bench: saturation (closed loop), a steady 2,500 msg/s (open loop), idle connections.
# Every phase is bounded; loopback only. BENCH_ARGS adds options to every phase;
# BENCH_PHASES picks phases (default "saturation steady idle").
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh
ensure_packages
ensure_swift
swift build -c release --product ChatServer --product chat-bench 2>&1 | grep -E 'error' || true
bin=$(swift build -c release --show-bin-path)

cluster=$(pwd)/.pgbench
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$(pwd)" 2>/dev/null; then cluster=$(mktemp -d /tmp/chat-pgbench.XXXXXX); fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
server=""
users_file=$(mktemp /tmp/chat-bench-users.XXXXXX)
cleanup() {
    rm -f "$users_file"
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
    scripts/pg-cluster.sh stop "$cluster" || true
    rm -rf "$cluster"
}
trap cleanup EXIT
rm -rf "$cluster"
# A durable cluster (fsync on), as in production: the figures include real commits.
export "$(scripts/pg-cluster.sh start "$cluster")"
"$bin/ChatServer" migrate schema.sql > /dev/null
JWT_SECRET=bench-secret PORT=$port HOST=127.0.0.1 ENV_FILE=/nonexistent LOG_LEVEL=warning "$bin/ChatServer" serve &
server=$!
sleep 1
idle_rss=$(awk '/VmRSS/ {print $2}' /proc/$server/status)
echo "idle server RSS: $idle_rss KiB"

bench() { "$bin/chat-bench" --server "http://127.0.0.1:$port" --pid "$server" --users-file "$users_file" "$@" ${BENCH_ARGS:-}; }
for phase in ${BENCH_PHASES:-saturation steady idle}; do
    case $phase in
    saturation)
        echo "== saturation: 200 users, 8 in flight each"
        bench --users 200 --window 8 --seconds 10 ;;
    steady)
        echo "== steady: 2,500 msg/s"
        bench --users 200 --rate 2500 --seconds 10 ;;
    idle)
        echo "== idle: 10,000 Socket.IO connections"
        bench --users 2 --rate 10 --seconds 1 --warmup 0.5 --idle 10000 | grep idle ;;
    *) echo "unknown phase $phase" >&2; exit 2 ;;
    esac
done
