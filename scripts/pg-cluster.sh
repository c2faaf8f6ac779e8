#!/usr/bin/env bash
# A private PostgreSQL cluster in a folder, for `make run` (kept across runs) and `make test`
# (thrown away). PostgreSQL refuses to run as root, so as root the cluster belongs to the
# `postgres` OS user. It listens on 127.0.0.1 only, with a generated password.
#
#   pg-cluster.sh start DIR [PORT] [--throwaway]   start (creating on first use); prints DATABASE_URL=…
#                                                   A PORT given for an existing cluster moves it there
#                                                   (it must be stopped); without one it keeps its port
#                                                   (a new one gets a free port).
#   pg-cluster.sh stop DIR                          stop it (fast shutdown)
#   pg-cluster.sh status DIR                        exit status 0 when it is running, 3 when not
set -euo pipefail
. "$(dirname "$0")/common.sh"  # port_user, free_port

die() { echo "pg-cluster: $*" >&2; exit 1; }

pg_bin() {
    local name=$1 found
    found=$(command -v "$name" 2>/dev/null || true)
    [ -n "$found" ] || found=$(ls /usr/lib/postgresql/*/bin/"$name" 2>/dev/null | sort -V | tail -n 1)
    [ -n "$found" ] || die "$name not found: install PostgreSQL (apt-get install postgresql)"
    echo "$found"
}

as_owner() {
    # From /: the postgres user may not be allowed into the current folder.
    if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# Stops with who holds port $1 when someone does (rather than leave it to PostgreSQL's log).
must_be_free() {
    local holder
    holder=$(port_user "$1")
    [ -z "$holder" ] || die "port $1 is already in use $holder; give the cluster another port (make run: PRIVATE_PG_PORT=N)"
}

running() {
    [ -f "$data/PG_VERSION" ] && as_owner "$(pg_bin pg_ctl)" -D "$data" status >/dev/null 2>&1
}

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: pg-cluster.sh start|stop|status DIR [PORT] [--throwaway]"
if [ "$cmd" = start ]; then
    mkdir -p "$dir"
elif [ ! -d "$dir" ]; then
    # stop or status of a folder that is not there: nothing runs there (and nothing is created).
    case "$cmd" in stop) exit 0 ;; status) exit 3 ;; *) die "unknown command $cmd" ;; esac
fi
dir=$(cd "$dir" && pwd)
data="$dir/data"

case "$cmd" in
start)
    port=${3:-}
    throwaway=${4:-}
    if [ -n "$port" ]; then
        [[ "$port" =~ ^[0-9]{1,5}$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] ||
            die "port '$port' is not a TCP port number (1-65535)"
    fi
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || die "no 'postgres' OS user to own the cluster (apt-get install postgresql creates it)"
        chown postgres: "$dir"
        runuser -u postgres -- test -w "$dir" ||
            die "the postgres user cannot reach $dir (a parent folder is private); run from a folder others can enter"
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
        [ -n "$port" ] || port=$(free_port)
        must_be_free "$port"  # before initdb, which takes seconds
        password=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
        umask 077
        echo "$password" > "$dir/password"
        [ "$(id -u)" = 0 ] && chown postgres: "$dir/password"
        as_owner "$(pg_bin initdb)" -D "$data" -U chat --pwfile="$dir/password" --auth-host=scram-sha-256 \
            --auth-local=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
            { cat "$dir/initdb.log" >&2; die "initdb failed"; }
        echo "$port" > "$dir/port"
        mkdir -p "$dir/run"
        [ "$(id -u)" = 0 ] && chown postgres: "$dir/run" "$dir/port"
        {
            echo "listen_addresses = '127.0.0.1'"
            echo "port = $port"
            echo "unix_socket_directories = '$dir/run'"
            echo "max_connections = 200"
            echo "shared_buffers = 128MB"
            if [ "$throwaway" = "--throwaway" ]; then
                # Test data only: no crash safety needed, so no waiting on the disk.
                echo "fsync = off"
                echo "full_page_writes = off"
                echo "synchronous_commit = off"
            fi
        } >> "$data/postgresql.conf"
    fi
    # The port: the one asked for, else the one the cluster has (kept in $dir/port).
    stored=$(cat "$dir/port")
    port=${port:-$stored}
    password=$(cat "$dir/password")
    if running; then
        # Moving it needs a restart, and a cluster that runs may be in use: not ours to restart.
        [ "$port" = "$stored" ] ||
            die "it is running on port $stored; stop it first (pg-cluster.sh stop $dir) to move it to port $port"
    else
        must_be_free "$port"  # before moving there
        if [ "$port" != "$stored" ]; then
            # `port = N` is the line this script appended to postgresql.conf at initdb.
            as_owner sed -i -E "s/^port = [0-9]+\$/port = $port/" "$data/postgresql.conf"
            grep -qE "^port = $port\$" "$data/postgresql.conf" || die "could not set port = $port in $data/postgresql.conf"
            echo "$port" > "$dir/port"
            echo "pg-cluster: moved from port $stored to port $port" >&2
        fi
        # setsid: a Ctrl-C in the terminal goes to the server, not to PostgreSQL; we stop it ourselves.
        as_owner setsid "$(pg_bin pg_ctl)" -D "$data" -l "$dir/postgresql.log" -w -t 60 start >/dev/null ||
            { tail -n 20 "$dir/postgresql.log" >&2; die "PostgreSQL did not start (port $port busy?)"; }
    fi
    url="postgres://chat:$password@127.0.0.1:$port/chat"
    if ! psql "$url" -Atqc 'SELECT 1' >/dev/null 2>&1; then
        psql "postgres://chat:$password@127.0.0.1:$port/postgres" -Atqc 'CREATE DATABASE chat' >/dev/null ||
            die "cannot create database chat"
    fi
    echo "DATABASE_URL=$url"
    ;;
stop)
    if running; then
        as_owner "$(pg_bin pg_ctl)" -D "$data" -m fast -w -t 60 stop >/dev/null
    fi
    ;;
status)
    running || exit 3
    ;;
*)
    die "unknown command $cmd"
    ;;
esac
