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

# The independent client: python-socketio, pinned, in a venv of its own.
requirements=Tests/IntegrationTests/python/requirements.txt
if [ ! -x .venv/bin/python ] || ! cmp -s "$requirements" .venv/requirements.txt; then
    rm -rf .venv
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -r "$requirements"
    cp "$requirements" .venv/requirements.txt
fi

status=0
swift test --skip-build --disable-swift-testing "$@" || status=$?
(cd Tests/IntegrationTests/python && ../../../.venv/bin/python -m pytest -q -p no:cacheprovider) || status=$?
scripts/conformance.sh || status=$?
exit $status
