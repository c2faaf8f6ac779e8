#!/usr/bin/env bash
# make chat-a / make chat-b: build (release, once) and start a terminal client.
# Extra options go through CHAT_ARGS, e.g. make chat-a CHAT_ARGS="--transport polling".
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh
ensure_swift
product="chat-cli-$1"
shift
swift build -c release --product "$product" 2>&1 | grep -E 'error|warning: unre' || true
exec "$(swift build -c release --show-bin-path)/$product" "$@"
