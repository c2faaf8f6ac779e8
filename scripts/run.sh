#!/usr/bin/env bash
# make run: packages, release build, the private PostgreSQL unless a database is configured,
# the schema, then the server in the foreground. Ctrl-C stops the server and the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

ensure_packages
ensure_swift
ensure_env_file
swift build -c release 2>&1 | grep -vE '^(\[[0-9]+/[0-9]+\]|Building|Compiling|Write|Emitting|Planning)' || true
bin="$(swift build -c release --show-bin-path)/ChatServer"
[ -x "$bin" ] || { echo "build failed" >&2; exit 1; }

private_cluster=""
if database_configured; then
    echo "using the database configured in the environment or .env" >&2
else
    private_cluster=.pgdata
    export "$(scripts/pg-cluster.sh start "$private_cluster" "${PRIVATE_PG_PORT:-54329}")"
fi

stop_cluster() {
    [ -n "$private_cluster" ] && scripts/pg-cluster.sh stop "$private_cluster" && echo "private PostgreSQL stopped" >&2
    return 0
}
trap stop_cluster EXIT
trap ':' INT  # the server gets Ctrl-C itself and stops gracefully; then this script stops the cluster

"$bin" migrate schema.sql
status=0
"$bin" serve || status=$?
exit $status
