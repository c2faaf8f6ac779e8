#!/usr/bin/env bash
# WebSocket conformance: the Autobahn|Testsuite fuzzing client (groups 1-7, 9, 10) against the
# echo endpoint of `ChatServer conformance`. Every case must be OK or NON-STRICT.
# Called by make test (and `make conformance`); needs Debian's mirror and PyPI the first time
# (scripts/autobahn/setup.sh keeps what it fetched in a cache folder outside the checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh
ensure_swift

bin="${CHAT_SERVER_BIN:-$(swift build --show-bin-path)/ChatServer}"
[ -x "$bin" ] || swift build --product ChatServer
# The wstest set-up is made once per machine (see cache_dir), not once per checkout.
AUTOBAHN_VENV=$(cache_dir autobahn scripts/autobahn/setup.sh scripts/autobahn/requirements-py3.txt scripts/autobahn/requirements-pypy2.txt)
export AUTOBAHN_VENV
build_once "$AUTOBAHN_VENV" scripts/autobahn/setup.sh

port=$(free_port)
PORT=$port HOST=127.0.0.1 ENV_FILE=/nonexistent LOG_LEVEL=warning "$bin" conformance > /dev/null &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done

summary=$(scripts/autobahn/run.sh "ws://127.0.0.1:$port/echo" full --quiet | tail -n 1) || true
echo "$summary"
# AUTOBAHN ok=.. non_strict=.. failed=.. unimplemented=.. informational=..
failed=$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' <<< "$summary")
unimplemented=$(sed -n 's/.*unimplemented=\([0-9]*\).*/\1/p' <<< "$summary")
ok=$(sed -n 's/.*ok=\([0-9]*\).*/\1/p' <<< "$summary")
if [ -z "$ok" ] || [ "$ok" = 0 ] || [ "$failed" != 0 ] || [ "$unimplemented" != 0 ]; then
    echo "WebSocket conformance: FAILED (see scripts/autobahn/.reports/latest)" >&2
    exit 1
fi
echo "WebSocket conformance: every Autobahn case OK or NON-STRICT"
