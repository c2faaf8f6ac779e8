#!/usr/bin/env bash
# make cluster: several ChatServer processes on one database behind nginx (README, Several
# processes) — on this machine, one command. Packages (nginx among them), .env, the private
# PostgreSQL unless a database is configured, a release build and the schema as `make run`
# does; then PROCESSES servers (default 3) on 127.0.0.1, ports PORT+1…PORT+N, each named by
# INSTANCE_ID n1…nN, and nginx on PORT (default 5001) in front of them. Ctrl-C (SIGINT or
# SIGTERM to this script) stops nginx, then each server gracefully, then the private
# PostgreSQL if this run started it.
#
#   scripts/cluster.sh                         serve (make cluster; PROCESSES=N, PORT=P)
#   scripts/cluster.sh nginx-config LISTEN PREFIX BACKEND...
#                                              print the nginx configuration for nginx on
#                                              LISTEN (host:port) with its files in PREFIX and
#                                              the servers at BACKEND (host:port, named n1, n2, …
#                                              in that order); deploy/nginx-chat.conf is its
#                                              output for three servers
#
# The routing: a polling request names its Engine.IO session (`sid`), whose id starts with
# the INSTANCE_ID of the process that has it, so it goes there; everything else (a new
# session, a WebSocket opened directly, the REST API) goes to the process with the fewest
# connections, and to another when one does not answer. Every server trusts nginx's
# X-Forwarded-For (TRUSTED_PROXIES), so the per-address limits see the real clients.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

die() { echo "make cluster: $*" >&2; exit 1; }

nginx_config() {
    local listen=$1 prefix=$2
    shift 2
    local count=$#
    cat <<EOF
# nginx in front of $count ChatServer processes on one database (README, Several processes).
# Made by scripts/cluster.sh nginx-config; run as: nginx -p $prefix -c <this file>
worker_processes 1;
daemon off;
pid $prefix/nginx.pid;
error_log $prefix/error.log warn;
events { worker_connections 16384; }

http {
    access_log off;
    client_body_temp_path $prefix/client_body;
    proxy_temp_path $prefix/proxy;
    fastcgi_temp_path $prefix/fastcgi;
    uwsgi_temp_path $prefix/uwsgi;
    scgi_temp_path $prefix/scgi;
    # Polling POSTs stay in memory (nginx's workers may not write to a temp folder of root's).
    client_max_body_size 2m;
    client_body_buffer_size 2m;

    # A new session, a direct WebSocket, the REST API: the process with the fewest
    # connections; one that refuses is passed over for a few seconds.
    upstream chat_any {
        least_conn;
EOF
    local backend
    for backend in "$@"; do echo "        server $backend max_fails=1 fail_timeout=3s;"; done
    cat <<EOF
        keepalive 32;
        # Shorter than the servers' idle time-out (60 s): nginx never reuses a connection a
        # server is closing (a POST sent on one would get a 502).
        keepalive_timeout 30s;
    }
EOF
    local n=0
    for backend in "$@"; do
        n=$((n + 1))
        echo "    upstream chat_n$n { server $backend; keepalive 8; keepalive_timeout 30s; }"
    done
    cat <<EOF

    # An Engine.IO request naming its session goes to the process that has it: session ids
    # start with the process's INSTANCE_ID and a dot.
    map \$arg_sid \$chat_upstream {
        default chat_any;
EOF
    for n in $(seq "$count"); do echo "        ~^n$n\\. chat_n$n;"; done
    cat <<EOF
    }
    map \$http_upgrade \$chat_connection {
        default upgrade;
        ''      '';
    }

    server {
        listen $listen;

        location /socket.io/ {
            proxy_pass http://\$chat_upstream;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$chat_connection;
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            # Long polls and quiet WebSockets: longer than the Engine.IO ping interval (25 s).
            proxy_read_timeout 120s;
            proxy_send_timeout 120s;
            proxy_buffering off;
            # A process that is stopping refuses new sessions (503): the next one takes them.
            # (nginx never passes a POST on, so no polling packet is sent twice.)
            proxy_next_upstream error timeout http_503;
        }

        location / {
            proxy_pass http://chat_any;
            proxy_http_version 1.1;
            proxy_set_header Connection '';
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
}
EOF
}

if [ "${1:-}" = nginx-config ]; then
    [ $# -ge 4 ] || die "usage: scripts/cluster.sh nginx-config LISTEN PREFIX BACKEND..."
    shift
    nginx_config "$@"
    exit 0
fi
[ $# -eq 0 ] || die "unknown arguments $* (see the top of scripts/cluster.sh)"

processes=${PROCESSES:-3}
[[ "$processes" =~ ^[0-9]+$ ]] && [ "$processes" -ge 1 ] && [ "$processes" -le 32 ] || die "PROCESSES must be 1…32, not '$processes'"
ensure_env_file
port=$(server_port)
[[ "$port" =~ ^[0-9]{1,5}$ ]] && [ "$port" -ge 1 ] && [ "$port" -le $((65535 - processes)) ] || die "PORT must be a port number with room for $processes above it, not '$port'"
for p in $(seq "$port" $((port + processes))); do
    holder=$(port_user "$p")
    [ -z "$holder" ] || die "port $p is already in use $holder (nginx takes PORT, the servers the $processes ports above it)"
done

ensure_packages nginx
[ -n "${CHAT_SERVER_BIN:-}" ] || ensure_swift

private_cluster="" started_cluster=no
pids=() nginx_pid=""
cleanup() {
    # nginx first, at once (a graceful stop would wait for every open WebSocket), then each
    # server gracefully: its clients reconnect to nothing, the run is over.
    [ -z "$nginx_pid" ] || { kill -TERM "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true; }
    local pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ "$started_cluster" = yes ] && scripts/pg-cluster.sh status "$private_cluster"; then
        scripts/pg-cluster.sh stop "$private_cluster" && echo "private PostgreSQL stopped" >&2
    fi
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if database_configured; then
    echo "using the database configured in the environment or .env" >&2
else
    private_cluster=.build/cluster/pgdata
    mkdir -p "$private_cluster"
    chmod 755 .build .build/cluster 2>/dev/null || true
    scripts/pg-cluster.sh status "$private_cluster" || started_cluster=yes
    start_cluster "$private_cluster" "${PRIVATE_PG_PORT:-}"
fi

if [ -n "${CHAT_SERVER_BIN:-}" ]; then
    bin=$CHAT_SERVER_BIN
else
    swift build -c release 2>&1 | grep -vE '^(\[[0-9]+/[0-9]+\]|Building|Compiling|Write|Emitting|Planning)' || true
    bin="$(swift build -c release --show-bin-path)/ChatServer"
fi
[ -x "$bin" ] || die "no server binary at $bin"
"$bin" migrate schema.sql || die "the schema could not be applied (see above)"

prefix=$(pwd -P)/.build/cluster/nginx
mkdir -p "$prefix"
backends=()
for n in $(seq "$processes"); do
    PORT=$((port + n)) HOST=127.0.0.1 INSTANCE_ID=n$n TRUSTED_PROXIES=127.0.0.1 "$bin" serve < /dev/null > "$prefix/server-n$n.log" 2>&1 &
    pids+=($!)
    backends+=("127.0.0.1:$((port + n))")
done
nginx_config "127.0.0.1:$port" "$prefix" "${backends[@]}" > "$prefix/nginx.conf"
nginx -p "$prefix" -c "$prefix/nginx.conf" &
nginx_pid=$!
echo "nginx on http://127.0.0.1:$port in front of $processes servers (${backends[*]}); their logs in $prefix/server-n*.log; Ctrl-C stops them all" >&2
wait "$nginx_pid" || true
nginx_pid=""
