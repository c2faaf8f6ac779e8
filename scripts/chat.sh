#!/usr/bin/env bash
# make chat-a / make chat-b: build (release, once) and start a terminal client.
# Extra options go through CHAT_ARGS, e.g. make chat-a CHAT_ARGS="--transport polling".
# Unless CHAT_SERVER_URL or --server says otherwise, the client goes to the server `make run`
# starts from the same settings: `ChatServer address` reads PORT and HOST from the
# environment and .env exactly as the server does (so the server is built too, then).
#   CHAT_BIN_DIR  take chat-cli-a/-b and ChatServer from this folder instead of building them
#                 (make test runs this script so, with its debug build)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh
product="chat-cli-$1"
shift
needs_address=no
[ -n "${CHAT_SERVER_URL:-}" ] || [[ " $* " == *" --server "* ]] || needs_address=yes

if [ -n "${CHAT_BIN_DIR:-}" ]; then
    bin=$CHAT_BIN_DIR
else
    ensure_packages
    ensure_swift
    bin=$(swift build -c release --show-bin-path)
    targets=("$product")
    [ "$needs_address" = no ] || targets+=(ChatServer)
    for target in "${targets[@]}"; do
        output=$(swift build -c release --product "$target" 2>&1) || { echo "$output" >&2; die "building $target failed"; }
    done
fi
if [ "$needs_address" = yes ]; then
    CHAT_SERVER_URL=$("$bin/ChatServer" address) || die "no server address from PORT and HOST (see above)"
    export CHAT_SERVER_URL
fi
exec "$bin/$product" "$@"
