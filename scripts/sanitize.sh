#!/usr/bin/env bash
# make sanitize: every test (unit, integration with its servers, python-socketio, the browser,
# Autobahn) once under ThreadSanitizer and once under AddressSanitizer (with LeakSanitizer),
# each in a build folder of its own. SANITIZERS="thread" (or "address") runs one.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
for sanitizer in ${SANITIZERS:-thread address}; do
    echo "===== make test under the $sanitizer sanitizer"
    SANITIZE=$sanitizer scripts/test.sh "$@" || status=1
done
exit $status
