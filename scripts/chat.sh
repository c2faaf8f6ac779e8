#!/usr/bin/env bash
# make chat-a / make chat-b: build (release, once) and start a terminal client.
# Extra options go through CHAT_ARGS, e.g. make chat-a CHAT_ARGS="--transport polling".
# Unless CHAT_SERVER_URL or --server says otherwise, the client goes to the server `make run`
# starts from the same settings: `ChatServer address` reads PORT and HOST from the
# environment and .env exactly as the server does.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh
ensure_swift
product="chat-cli-$1"
shift
bin=$(swift build -c release --show-bin-path)
for target in "$product" ChatServer; do
    output=$(swift build -c release --product "$target" 2>&1) || { echo "$output" >&2; echo "building $target failed" >&2; exit 1; }
done
if [ -z "${CHAT_SERVER_URL:-}" ] && [[ " $* " != *" --server "* ]]; then
    CHAT_SERVER_URL=$("$bin/ChatServer" address) || exit 2
    export CHAT_SERVER_URL
fi
exec "$bin/$product" "$@"
