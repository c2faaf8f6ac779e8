#!/usr/bin/env bash
# make test: packages, build, a throw-away PostgreSQL, every test; stops all it started.
# The exit status is the verdict.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

ensure_packages
ensure_swift
swift build --build-tests

cluster=$(pwd)/.pgtest
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$(pwd)" 2>/dev/null; then
    # This checkout sits in a folder the postgres user cannot enter (e.g. a private mktemp).
    cluster=$(mktemp -d /tmp/chat-pgtest.XXXXXX)
fi
cleanup() {
    scripts/pg-cluster.sh stop "$cluster" || true
    rm -rf "$cluster"
}
trap cleanup EXIT
rm -rf "$cluster"
export "$(scripts/pg-cluster.sh start "$cluster" "" --throwaway)"

export TEST_DATABASE_URL="$DATABASE_URL"
unset DATABASE_URL
export CHAT_SERVER_BIN="$(swift build --show-bin-path)/ChatServer"
export CHAT_SCHEMA_FILE="$(pwd)/schema.sql"

swift test --skip-build --disable-swift-testing "$@"
