#!/usr/bin/env bash
# A private PostgreSQL cluster in a folder, for `make run` (kept across runs) and `make test`
# (thrown away). PostgreSQL refuses to run as root, so as root the cluster belongs to the
# `postgres` OS user. It listens on 127.0.0.1 only, with a generated password.
#
#   pg-cluster.sh start DIR [PORT] [--throwaway]   start (creating on first use); prints DATABASE_URL=…
#   pg-cluster.sh stop DIR                          stop it (fast shutdown)
set -euo pipefail

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

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: pg-cluster.sh start|stop DIR [PORT] [--throwaway]"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
data="$dir/data"

case "$cmd" in
start)
    port=${3:-}
    throwaway=${4:-}
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || die "no 'postgres' OS user to own the cluster (apt-get install postgresql creates it)"
        chown postgres: "$dir"
        runuser -u postgres -- test -w "$dir" ||
            die "the postgres user cannot reach $dir (a parent folder is private); run from a folder others can enter"
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
        password=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
        umask 077
        echo "$password" > "$dir/password"
        [ "$(id -u)" = 0 ] && chown postgres: "$dir/password"
        as_owner "$(pg_bin initdb)" -D "$data" -U chat --pwfile="$dir/password" --auth-host=scram-sha-256 \
            --auth-local=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
            { cat "$dir/initdb.log" >&2; die "initdb failed"; }
        [ -n "$port" ] || port=$(free_port)
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
    port=$(cat "$dir/port")
    password=$(cat "$dir/password")
    if ! as_owner "$(pg_bin pg_ctl)" -D "$data" status >/dev/null 2>&1; then
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
    if [ -f "$data/PG_VERSION" ] && as_owner "$(pg_bin pg_ctl)" -D "$data" status >/dev/null 2>&1; then
        as_owner "$(pg_bin pg_ctl)" -D "$data" -m fast -w -t 60 stop >/dev/null
    fi
    ;;
*)
    die "unknown command $cmd"
    ;;
esac
