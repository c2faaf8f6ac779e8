#!/usr/bin/env bash
# make test: packages, build, a throw-away PostgreSQL, every test; stops all it started.
# The exit status is the verdict.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

# The web page is tested in a real browser (Debian's Chromium and its driver); /metrics is
# scraped by a real Prometheus (Debian's).
ensure_packages chromium chromium-driver prometheus
ensure_swift
# The project's own code builds without a warning: make test fails on a new one. CI (CI=true)
# also builds in release, where the optimizer has warnings of its own; locally that build is
# left to make run, to keep make test short.
check_build() {
    local log warnings
    log=$(mktemp)
    "$@" 2>&1 | tee "$log" || { rm -f "$log"; echo "the build failed: $*" >&2; exit 1; }
    warnings=$(grep -F -e "$(pwd -P)/" -e "$(pwd)/" "$log" | grep -E "/(Sources|Tests)/[^:]+:[0-9]+:[0-9]+: warning:" | sort -u || true)
    rm -f "$log"
    if [ -n "$warnings" ]; then
        echo "$warnings" >&2
        echo "the build printed compiler warnings in the project's own code (above): fix them ($*)" >&2
        exit 1
    fi
}
# SANITIZE=thread|address (make sanitize): everything built with that sanitizer in a build
# folder of its own, every test run against it, and any report the sanitizer writes (the
# tests' processes and every server they start) fails the run.
swift_args=()
if [ -n "${SANITIZE:-}" ]; then
    swift_args=(--sanitize="$SANITIZE" --build-path ".build/sanitize-$SANITIZE")
    # ThreadSanitizer cannot see Swift's Mutex lock: Locked announces each critical section.
    [ "$SANITIZE" != thread ] || swift_args+=(-Xswiftc -DCHAT_TSAN)
    reports=$(mktemp -d /tmp/chat-sanitizer.XXXXXX)
    # halt_on_error=0: a report does not stop the server mid-test; the reports are read at the end.
    export TSAN_OPTIONS="log_path=$reports/tsan halt_on_error=0 second_deadlock_stack=1"
    export ASAN_OPTIONS="log_path=$reports/asan halt_on_error=0 detect_leaks=1"
    export LSAN_OPTIONS="log_path=$reports/lsan suppressions=$(pwd)/scripts/lsan-suppressions.txt"
fi
check_build swift build --build-tests ${swift_args[@]+"${swift_args[@]}"}
[ "${CI:-}" != true ] || [ -n "${SANITIZE:-}" ] || check_build swift build -c release

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
start_cluster "$cluster" "" --throwaway

export TEST_DATABASE_URL="$DATABASE_URL"
unset DATABASE_URL
export CHAT_SERVER_BIN="$(swift build ${swift_args[@]+"${swift_args[@]}"} --show-bin-path)/ChatServer"
export CHAT_SCHEMA_FILE="$(pwd)/schema.sql"

# The independent client: python-socketio, pinned, in a venv of its own, made once per
# machine and set of requirements (.venv links to it).
requirements=Tests/IntegrationTests/python/requirements.txt
venv=$(cache_dir python-venv "$requirements")
make_venv() { python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"; }
build_once "$venv" make_venv
[ -L .venv ] || rm -rf .venv
ln -sfn "$venv" .venv
# schemathesis, the OpenAPI fuzzer test_openapi.py runs, in a venv of its own (its pytest
# is not the suite's).
fuzzer_requirements=Tests/IntegrationTests/python/schemathesis-requirements.txt
fuzzer_venv=$(cache_dir schemathesis-venv "$fuzzer_requirements")
make_fuzzer_venv() { python3 -m venv "$fuzzer_venv" && "$fuzzer_venv/bin/pip" install -q --disable-pip-version-check -r "$fuzzer_requirements"; }
build_once "$fuzzer_venv" make_fuzzer_venv
export SCHEMATHESIS="$fuzzer_venv/bin/schemathesis"

# --- The fuzzers (docs/fuzzing.md) -------------------------------------------------------
# Every libFuzzer target replays its committed corpus (Fuzz/corpus/<target>: the seeds and
# every input that ever crashed it), then fuzzes a few seconds from it; a finding fails make
# test here. Built in .build/fuzz (debug: the shortest build). (Not again under make sanitize:
# the fuzzers are built with AddressSanitizer already.)
[ -n "${SANITIZE:-}" ] || scripts/fuzz.sh --regress
# --- end of the fuzzers ------------------------------------------------------------------

log=$(mktemp)
ab_log=$(mktemp)
trap 'cleanup; rm -f "$log" "$ab_log"' EXIT
# The Autobahn suite needs only the conformance mode and its own client: it runs beside the
# other two (mostly waiting on sockets and the database), which shortens make test by its
# half a minute; its output is shown after theirs.
scripts/conformance.sh > "$ab_log" 2>&1 &
ab_pid=$!
xc_status=0 py_status=0 ab_status=0
swift test --skip-build --disable-swift-testing ${swift_args[@]+"${swift_args[@]}"} "$@" 2>&1 | tee -a "$log" || xc_status=$?
(cd Tests/IntegrationTests/python && "$venv/bin/python" -m pytest -q -p no:cacheprovider --durations=5) 2>&1 | tee -a "$log" || py_status=$?
wait "$ab_pid" || ab_status=$?
tee -a "$log" < "$ab_log"

# One closing line for all three runners; a runner that failed without its own count of
# failures (it crashed, or failed to start) counts as one failure.
# XCTest's total follows its "All tests" line; without that line the test process died.
xctest=$(grep -A1 -E "^Test Suite 'All tests' (passed|failed)" "$log" | grep -E 'Executed [0-9]+ tests?, with [0-9]+ failures?' | tail -n 1 || true)
if [ -n "$xctest" ]; then
    xc_run=$(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<< "$xctest"); xc_failed=$(sed -E 's/.*with ([0-9]+) failures?.*/\1/' <<< "$xctest")
else
    xc_run=0; xc_failed=0
    echo "the XCTest process ended before its summary (crashed or killed)" >&2
fi
py_summary=$(grep -E '^=*[ ]*[0-9]+ (passed|failed).* in [0-9.]+s' "$log" | tail -n 1 || true)
py_passed=$(grep -oE '[0-9]+ passed' <<< "$py_summary" | grep -oE '[0-9]+' || echo 0)
py_failed=$(( $(grep -oE '[0-9]+ failed' <<< "$py_summary" | grep -oE '[0-9]+' || echo 0) + $(grep -oE '[0-9]+ errors?' <<< "$py_summary" | grep -oE '[0-9]+' || echo 0) ))
ab=$(grep '^AUTOBAHN ' "$log" | tail -n 1 || true)
ab_passed=$(( $(sed -E 's/.* ok=([0-9]+).*/\1/' <<< "${ab:- ok=0}") + $(sed -E 's/.*non_strict=([0-9]+).*/\1/' <<< "${ab:-non_strict=0}") ))
ab_failed=$(sed -E 's/.*failed=([0-9]+).*/\1/' <<< "${ab:-failed=0}")
[ "$xc_status" = 0 ] || [ "${xc_failed:-0}" != 0 ] || xc_failed=1
[ "$py_status" = 0 ] || [ "$py_failed" != 0 ] || py_failed=1
[ "$ab_status" = 0 ] || [ "${ab_failed:-0}" != 0 ] || ab_failed=1
# Under a sanitizer, each process that reported counts as one failure; the reports are shown.
san_failed=0
if [ -n "${SANITIZE:-}" ]; then
    # A file holding only the list of suppressions used is no report.
    reported=$(grep -l -r -E "ERROR: (Address|Leak|Thread)Sanitizer|WARNING: ThreadSanitizer" "$reports" || true)
    san_failed=$(grep -c . <<< "$reported" || true)
    for report in $reported; do
        echo "== $SANITIZE sanitizer report $report"
        head -c 30000 "$report"
    done
    echo "$SANITIZE sanitizer: $san_failed processes reported"
fi
echo "tests: $(( ${xc_run:-0} - ${xc_failed:-0} + py_passed + ab_passed )) passed, $(( ${xc_failed:-0} + py_failed + ab_failed + san_failed )) failed"
[ "$xc_status$py_status$ab_status" = 000 ] && [ "$san_failed" = 0 ]
