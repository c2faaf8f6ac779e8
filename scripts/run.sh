#!/usr/bin/env bash
# make run: packages, .env, the private PostgreSQL unless a database is configured, a release
# build, the schema, then the server. Ctrl-C (or SIGINT/SIGTERM to this script) stops the server
# gracefully, then the private PostgreSQL if this run started it.
#
# What can be found wrong without the server binary (a second run, a taken or malformed PORT,
# PRIVATE_PG_PORT, the private PostgreSQL) is checked before the (long) build, each problem told
# in one line starting with "make run:"; the server's other settings are judged by the server.
#
# Settings of this script, read from the environment only (they are not the server's, so they
# are not in .env; `make run PRIVATE_PG_PORT=5433` works too):
#   PRIVATE_PG_PORT  port of the private PostgreSQL on 127.0.0.1. A new cluster gets 54329
#                    unless this is given; given later, the existing cluster moves to it (the
#                    port is kept in the cluster, so it need not be given again).
#   CHAT_SERVER_BIN  serve with this ChatServer binary instead of building one; no Swift is
#                    needed then. The tests of this script (make test) use the debug build so.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh
checkout=$(pwd -P)

die() { echo "make run: $*" >&2; exit 1; }

# One `make run` per checkout, for the whole life of this script: a second one used to get as
# far as "Address already in use" and then, on its way out, stop the first one's PostgreSQL.
# The lock is an flock on .build/make-run.lock (ignored by git); its text, "PID PORT", says
# who holds it. Descriptor 9 holds the lock; it is closed (9>&-) for every program that may
# outlive this script (PostgreSQL, the server, the build, apt-get, whose postgresql package
# starts the system's cluster), so the lock ends when this script does.
mkdir -p .build
lock=.build/make-run.lock
exec 9<>"$lock"
if ! flock -n 9; then
    read -r holder_pid holder_port < "$lock" || true
    die "another \`make run\` from this checkout is serving (pid ${holder_pid:-unknown}) on port ${holder_port:-unknown}; stop it first (Ctrl-C in its terminal, or kill ${holder_pid:-PID})"
fi
echo "$$" > "$lock"

ensure_env_file

# The port the server will take (PORT from the environment, else from .env, else 5001), checked
# now rather than after the build: the server would only say "Address already in use" then.
port=$(server_port)
[[ "$port" =~ ^[0-9]{1,5}$ ]] && [ "$port" -le 65535 ] || die "PORT must be a whole number in 0…65535, not '$port'"
if [ "$port" != 0 ]; then
    holder=$(port_user "$port")
    [ -z "$holder" ] || die "port $port is already in use $holder; stop that program or choose another PORT (PORT=N make run, or PORT= in .env)"
fi
echo "$$ $port" > "$lock"
if [ -n "${PRIVATE_PG_PORT:-}" ]; then
    [[ "$PRIVATE_PG_PORT" =~ ^[0-9]{1,5}$ ]] && [ "$PRIVATE_PG_PORT" -ge 1 ] && [ "$PRIVATE_PG_PORT" -le 65535 ] ||
        die "PRIVATE_PG_PORT must be a TCP port number (1…65535), not '$PRIVATE_PG_PORT'"
fi

ensure_packages 9>&-
if [ -n "${CHAT_SERVER_BIN:-}" ]; then
    [ -x "$CHAT_SERVER_BIN" ] && [ -f "$CHAT_SERVER_BIN" ] || die "CHAT_SERVER_BIN=$CHAT_SERVER_BIN is not an executable file"
else
    ensure_swift
fi

private_cluster=""   # the private PostgreSQL's folder, when one is used
started_cluster=no   # only a cluster this run started is stopped when it ends
server=""
cleanup() {
    # Normally the server has ended by now; if this script is ending first, the server goes first.
    if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
        kill -TERM "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    if [ "$started_cluster" = yes ] && scripts/pg-cluster.sh status "$private_cluster"; then
        scripts/pg-cluster.sh stop "$private_cluster" && echo "private PostgreSQL stopped" >&2
    fi
    return 0
}
trap cleanup EXIT
# Until the server runs, a signal ends this script (and cleanup runs).
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

if database_configured; then
    echo "using the database configured in the environment or .env" >&2
else
    # The private PostgreSQL lives in .pgdata/, kept across runs. As root it belongs to the
    # postgres OS user, which must be able to enter this checkout. When it cannot (a clone
    # under /root, mode 700), the cluster lives outside the checkout, where postgres can reach
    # it and where it is kept as well: /var/lib/swift-chat-server/<hash of the checkout's
    # path>/, with a file `checkout` naming the checkout it belongs to.
    private_cluster=.pgdata
    if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$checkout" 2>/dev/null; then
        outside=/var/lib/swift-chat-server/$(printf '%s' "$checkout" | sha256sum | cut -c1-16)
        [ ! -f .pgdata/data/PG_VERSION ] ||
            die "the private PostgreSQL's data is in .pgdata/, but the postgres user cannot enter $checkout (a folder above it is private): let it in (chmod o+x on those folders), or remove .pgdata/ to start afresh in $outside"
        mkdir -p "$outside"
        chmod 755 /var/lib/swift-chat-server  # postgres must pass through it, whatever root's umask
        echo "$checkout" > "$outside/checkout"
        private_cluster=$outside
    fi
    # A new cluster gets 54329; an existing one keeps its port unless PRIVATE_PG_PORT is given.
    pg_port=${PRIVATE_PG_PORT:-}
    [ -n "$pg_port" ] || [ -f "$private_cluster/port" ] || pg_port=54329
    # One that already runs was not started by this run (but by hand, or by a run that was
    # killed): it is used, and left running at the end.
    scripts/pg-cluster.sh status "$private_cluster" || started_cluster=yes  # set before start: one that fails half-way is stopped too
    start_cluster "$private_cluster" "$pg_port"
    [ "$started_cluster" = yes ] ||
        echo "the private PostgreSQL in $private_cluster was already running: using it, and leaving it running (scripts/pg-cluster.sh stop $private_cluster stops it)" >&2
    pg_port=${DATABASE_URL##*:}; pg_port=${pg_port%%/*}
    echo "private PostgreSQL in $private_cluster on 127.0.0.1:$pg_port" >&2
fi

if [ -n "${CHAT_SERVER_BIN:-}" ]; then
    bin=$CHAT_SERVER_BIN
    echo "serving with $bin (CHAT_SERVER_BIN), not building" >&2
else
    build_status=0
    swift build -c release 9>&- 2>&1 | grep -vE '^(\[[0-9]+/[0-9]+\]|Building|Compiling|Write|Emitting|Planning)' ||
        build_status=${PIPESTATUS[0]}  # grep finding nothing to show is no failure; the build's is
    [ "$build_status" = 0 ] || die "the build failed (swift build -c release, status $build_status)"
    bin="$(swift build -c release --show-bin-path)/ChatServer"
    [ -x "$bin" ] || die "the build made no $bin"
fi

# The server's own settings (WORKERS, LOG_LEVEL, …) are judged here, by the binary that reads
# them, before the schema is touched: a bad one ends this run with the server's one-line reason.
"$bin" migrate schema.sql 9>&- || die "the server did not start: see its reason above"

# The server runs in a process group of its own (set -m), so a Ctrl-C in the terminal reaches
# it once, forwarded by this script, rather than twice (a second signal cuts its graceful stop
# short); SIGINT, SIGTERM or SIGHUP sent to this script alone reach it the same way.
set -m
"$bin" serve < /dev/null 9>&- &
server=$!
set +m
trap 'kill -INT "$server" 2>/dev/null || true' INT
trap 'kill -TERM "$server" 2>/dev/null || true' TERM HUP
status=0
while :; do
    # wait returns early (128 + the signal) when a signal is forwarded; the loop ends once the
    # server has ended, with its exit status.
    wait "$server" && status=0 || status=$?
    kill -0 "$server" 2>/dev/null && continue
    # It ended while that wait was being cut short: the next wait gives its own status (127,
    # nothing left to wait for, means the status above was the server's already).
    if [ "$status" -gt 128 ]; then
        wait "$server" 2>/dev/null && status=0 || { again=$?; [ "$again" = 127 ] || status=$again; }
    fi
    break
done
server=""
exit $status
