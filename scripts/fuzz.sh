#!/usr/bin/env bash
# The libFuzzer targets of Fuzz/ (docs/fuzzing.md): builds them with libFuzzer and
# AddressSanitizer in .build/fuzz, then runs each in turn and prints, per target, its
# executions, exec/s, final coverage (cov/ft), corpus and findings (each run's whole libFuzzer
# log in .build/fuzz/logs/).
#
#   scripts/fuzz.sh [options] [TARGET...]      (make fuzz; every target when none is named)
#     FUZZ_SECONDS=N   seconds per target (default 60; 5 with --regress)
#     FUZZ_RUNS=N      executions per target instead (e.g. 10000000)
#     FUZZ_JOBS=N      N fuzzing processes per target (libFuzzer's -fork=N: N cores, N times the
#                      executions a second; FUZZ_SECONDS only, as -runs does not bound a fork run)
#     FUZZ_CONFIG=debug|release   how the fuzzers are compiled (default release; debug with --regress)
#     --regress        make test's run: the committed corpus, then FUZZ_SECONDS of fuzzing from
#                      it into a throw-away folder; the committed corpus is not changed
#     --build-only, --no-build
#
# make fuzz keeps what it learns in .build/fuzz/corpus/<target> (seeded from Fuzz/corpus/<target>,
# which stays small). A crash, a broken invariant, a leak or a time-out (-timeout, 10 s per
# input) stops that target: its input is left in .build/fuzz/artifacts/<target>/ and copied to
# Fuzz/corpus/<target>/ (commit it with the fix: make test then replays it for good), and the
# script exits 1 after the other targets.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

all_targets=(FuzzHTTPRequest FuzzWebSocket FuzzUTF8 FuzzEngineIO FuzzSocketIO FuzzJSON FuzzJWT FuzzDotEnv)
regress=false build=true run=true targets=()
for arg in "$@"; do
    case "$arg" in
        --regress) regress=true ;;
        --build-only) run=false ;;
        --no-build) build=false ;;
        -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $arg (see --help)" ;;
        *) [[ " ${all_targets[*]} " == *" $arg "* ]] || die "no target $arg (targets: ${all_targets[*]})"; targets+=("$arg") ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
seconds=${FUZZ_SECONDS:-$($regress && echo 5 || echo 60)}
# Optimized code runs about seven times the inputs a second; make test's few seconds are
# better spent without its longer build.
config=${FUZZ_CONFIG:-$($regress && echo debug || echo release)}

build_path=.build/fuzz
bin_dir=$build_path/$config
# Swift's own crash reporter would start beside libFuzzer's and hang on a crash under ASan.
export SWIFT_BACKTRACE=enable=no

if $build; then
    ensure_swift
    # Every module instrumented for coverage and AddressSanitizer, with testable imports (the
    # HTTP parser's interface is internal); one product at a time (SwiftPM builds the modules
    # they share once). --sanitize fuzzer tells SwiftPM that libFuzzer supplies main; -Xswiftc
    # then gives the compiler both sanitizers (two --sanitize options reach the linker only).
    log=$(mktemp)
    for target in "${targets[@]}"; do
        if ! CHAT_FUZZ=1 swift build --build-path "$build_path" -c "$config" --sanitize fuzzer -Xswiftc -sanitize=fuzzer,address \
            -Xswiftc -enable-testing --product "$target" > "$log" 2>&1; then
            # ld.gold warns about every AddressSanitizer helper it cannot export: noise.
            grep -v "Cannot export local symbol" "$log" >&2 || true
            rm -f "$log"
            die "building $target failed (above)"
        fi
    done
    # Warnings in the fuzzers' own code fail the build, as they do in Sources/ and Tests/.
    if grep -E "/Fuzz/Sources/[^:]+:[0-9]+:[0-9]+: warning:" "$log" >&2; then rm -f "$log"; die "compiler warnings in Fuzz/ (above)"; fi
    rm -f "$log"
fi
$run || exit 0

# The longest input tried. The targets that feed their input a byte at a time, or go through it
# by characters, stop earlier: past the small limits they also run with (or a few lines of
# .env), longer inputs only cost time.
max_len() {
    case "$1" in
        FuzzUTF8) echo 1024 ;;
        FuzzHTTPRequest) echo 1280 ;;  # room for a chunk-size line past its 1 KiB limit
        FuzzWebSocket|FuzzDotEnv) echo 2048 ;;
        *) echo 4096 ;;
    esac
}

# The final "#N DONE cov: C ft: F corp: U/Sb …" line (the last status line when it stopped early;
# a fork run's lines are "#N: cov: C ft: F corp: U exec/s: …", N counting every process's runs).
stat_line() { grep -E '^#[0-9]+:?[[:space:]]' "$1" | grep -E 'cov: ' | tail -n 1 || true; }
field() { sed -nE "s/.* $2: ([0-9]+[A-Za-z]*).*/\1/p" <<< "$1"; }

failed=()
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
    bin=$bin_dir/$target
    [ -x "$bin" ] || die "$bin is not built (run without --no-build)"
    seeds=Fuzz/corpus/$target
    corpus=$build_path/corpus/$target
    ! $regress || corpus=$scratch/corpus-$target
    artifacts=$scratch/artifacts-$target/
    mkdir -p "$corpus" "$artifacts"
    limit=(-max_total_time="$seconds")
    [ -z "${FUZZ_RUNS:-}" ] || limit=(-runs="$FUZZ_RUNS")
    if [ -n "${FUZZ_JOBS:-}" ]; then
        [ -z "${FUZZ_RUNS:-}" ] || die "FUZZ_JOBS takes FUZZ_SECONDS, not FUZZ_RUNS"
        limit+=(-fork="$FUZZ_JOBS")
    fi
    dict=()
    [ ! -f "Fuzz/dict/$target.dict" ] || dict=(-dict="Fuzz/dict/$target.dict")
    # make fuzz writes the log where it stays, so a run stopped early (Ctrl-C) keeps it.
    log=$scratch/$target.log
    $regress || { mkdir -p "$build_path/logs" && log=$build_path/logs/$target.log; }
    started=$(date +%s)
    status=0
    # New inputs go to the first folder; the committed seeds are only read.
    "$bin" "${limit[@]}" "${dict[@]}" -max_len="$(max_len "$target")" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts" "$corpus" "$seeds" > "$log" 2>&1 || status=$?
    elapsed=$(( $(date +%s) - started ))

    line=$(stat_line "$log")
    runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log" | tail -n 1)
    rate=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+)/\1/p' "$log" | tail -n 1)
    [ -n "$runs" ] || runs=$(sed -nE 's/^#([0-9]+):?[[:space:]].*/\1/p' <<< "$line")
    # A fork run's exec/s is its last job's; the run's is its executions over its time.
    [ -n "$rate" ] || { [ -n "${FUZZ_JOBS:-}" ] && [ -n "$runs" ] && rate=$(( runs / (elapsed > 0 ? elapsed : 1) )); } || true
    [ -n "$rate" ] || rate=$(field "$line" exec/s)
    units=$(find "$corpus" -type f | wc -l)
    seed_count=$(find "$seeds" -type f | wc -l)
    # corp: inputs/bytes in libFuzzer's corpus at the end; then the files kept and committed.
    printf '%-16s %10s runs %8s exec/s  cov %5s  ft %6s  corp %-12s (%s kept, %s committed)  %ss  ' \
        "$target" "${runs:-?}" "${rate:-?}" "$(field "$line" cov)" "$(field "$line" ft)" "$(sed -nE 's/.* corp: ([0-9]+(\/[0-9]+[a-zA-Z]*)?).*/\1/p' <<< "$line")" \
        "$units" "$seed_count" "$elapsed"
    if [ "$status" = 0 ]; then
        echo "no finding"
        continue
    fi
    echo "FINDING (exit $status)"
    failed+=("$target")
    grep -E "FUZZ INVARIANT BROKEN|^==[0-9]+== ?ERROR|Swift runtime failure|Fatal error|^SUMMARY|ALARM: working on the last Unit|out-of-memory|leak" "$log" | head -n 8 | sed 's/^/    /' >&2 || true
    for artifact in "$artifacts"*; do
        [ -f "$artifact" ] || continue
        kept=$build_path/artifacts/$target/$(basename "$artifact")
        mkdir -p "$(dirname "$kept")"
        cp "$artifact" "$kept"
        sha=$(sha1sum < "$artifact" | cut -c1-40)
        if find "$seeds" -type f -exec sha1sum {} + | cut -c1-40 | grep -qFx "$sha"; then
            echo "    reproducer: $kept, a committed input of $seeds/ (a regression); replay: $bin $kept" >&2
        else
            cp "$artifact" "$seeds/"
            echo "    reproducer: $kept (copied to $seeds/: commit it with the fix); replay: $bin $kept" >&2
        fi
    done
    if $regress; then
        echo "    --- last lines of $target's log ---" >&2
        tail -n 40 "$log" | sed 's/^/    /' >&2
    else
        echo "    whole log: $build_path/logs/$target.log" >&2
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: findings in ${failed[*]}" >&2
    exit 1
fi
