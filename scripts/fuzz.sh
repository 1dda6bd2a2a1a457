#!/usr/bin/env bash
# Builds the libFuzzer targets in Fuzz/ into .build/fuzz/ and runs each for a fixed
# number of inputs. Exit status 1 if any target crashed or broke an invariant.
#
#   FUZZ_RUNS     inputs per target (default 1000000)
#   FUZZ_TIME     seconds per target before libFuzzer stops early (default 900)
#   FUZZ_TARGETS  which targets (default "http-head frames")
#   SWIFTC        compiler (default: swiftc next to $SWIFT, else swiftc on PATH)
#
# Each target is compiled together with Fuzz/FuzzSupport.swift and
# Sources/WebSocketProtocol/*.swift as one
# module, so the fuzz code sees internal API without an import. The repository's
# corpus is copied, so new inputs found while fuzzing stay in .build/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_RUNS=${FUZZ_RUNS:-1000000}
FUZZ_TIME=${FUZZ_TIME:-900}
FUZZ_TARGETS=${FUZZ_TARGETS:-"http-head frames"}
if [ -z "${SWIFTC:-}" ]; then
    if [ -n "${SWIFT:-}" ] && [ -x "$(dirname "$(command -v "$SWIFT")")/swiftc" ]; then
        SWIFTC="$(dirname "$(command -v "$SWIFT")")/swiftc"
    else
        SWIFTC=swiftc
    fi
fi
OUT=.build/fuzz
mkdir -p "$OUT"
# Swift's backtracer would wait forever on a crashing fuzz input; libFuzzer reports instead.
export SWIFT_BACKTRACE=enable=no
# Not recording a stack for every allocation makes the runs about a quarter faster; set
# ASAN_OPTIONS= (empty) to get allocation stacks back when reproducing a crash.
export ASAN_OPTIONS=${ASAN_OPTIONS-malloc_context_size=0}

source_file() {
    case "$1" in
        http-head) echo Fuzz/FuzzHTTPHead.swift ;;
        frames) echo Fuzz/FuzzFrames.swift ;;
        *) echo "unknown fuzz target: $1" >&2; exit 2 ;;
    esac
}

# Longest input libFuzzer may try. Frame recipes reach 64-bit lengths by repeating the input,
# so frames needs no long inputs, and longer ones only slow each run down.
max_len() {
    case "$1" in
        frames) echo 1024 ;;
        *) echo 4096 ;;
    esac
}

build() {
    local target=$1 src bin
    src=$(source_file "$target")
    bin="$OUT/fuzz-$target"
    # Rebuild only when the target or the library changed.
    if [ -x "$bin" ] && [ -z "$(find "$src" Fuzz/FuzzSupport.swift Tests/WebSocketProtocolTests/SplitMix64.swift Sources/WebSocketProtocol Sources/CCrypto scripts/fuzz.sh -newer "$bin" -type f)" ]; then
        return
    fi
    echo "building $bin" >&2
    # -module-name: the output name is not an identifier. -I: Handshake.swift imports CCrypto,
    # whose module map links libcrypto.
    "$SWIFTC" -sanitize=fuzzer,address -parse-as-library -O -g -swift-version 6 -use-ld=lld \
        -module-name WebSocketProtocol -I Sources/CCrypto \
        Sources/WebSocketProtocol/*.swift Fuzz/FuzzSupport.swift \
        Tests/WebSocketProtocolTests/SplitMix64.swift "$src" -o "$bin"
}

status=0
summaries=()
for target in $FUZZ_TARGETS; do
    build "$target"
    corpus="$OUT/corpus/$target"
    artifacts="$OUT/artifacts/$target/"
    log="$OUT/$target.log"
    rm -rf "$corpus" "$artifacts"
    mkdir -p "$corpus" "$artifacts"
    cp Fuzz/corpus/"$target"/* "$corpus"/
    dict=()
    if [ -f "Fuzz/$target.dict" ]; then dict=(-dict="Fuzz/$target.dict"); fi

    echo "fuzzing $target: $FUZZ_RUNS runs, at most $FUZZ_TIME s (log: $log)" >&2
    start=$(date +%s.%N)
    rc=0
    # timeout is a backstop in case libFuzzer itself hangs; -timeout fails one slow input.
    timeout --kill-after=10 $((FUZZ_TIME + 120)) "$OUT/fuzz-$target" \
        -runs="$FUZZ_RUNS" -max_total_time="$FUZZ_TIME" -max_len="$(max_len "$target")" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts" "${dict[@]}" "$corpus" >"$log" 2>&1 || rc=$?
    seconds=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    runs=$(awk '/stat::number_of_executed_units:/ { n = $2 } END { print n }' "$log")
    if [ -z "$runs" ]; then runs=$(grep -o '^#[0-9]*' "$log" | tail -n 1 | tr -d '#'); fi
    crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)

    if [ "$rc" -eq 0 ] && [ -z "$crash" ]; then
        note=""
        if [ "${runs:-0}" -lt "$FUZZ_RUNS" ]; then note=" (stopped by the ${FUZZ_TIME} s time bound)"; fi
        summaries+=("fuzz $target: ${runs:-?} runs in ${seconds} s, no crash$note")
    else
        status=1
        summaries+=("fuzz $target: FAILED (exit $rc) after ${runs:-?} runs in ${seconds} s; input: ${crash:-none written}; log: $log")
        grep -m 3 -E 'invariant violated|ERROR: (AddressSanitizer|libFuzzer)|Fatal error' "$log" >&2 || true
        if [ -n "$crash" ]; then echo "reproduce: SWIFT_BACKTRACE=enable=no $OUT/fuzz-$target $crash" >&2; fi
    fi
    echo "${summaries[-1]}" >&2
done

echo "---"
printf '%s\n' "${summaries[@]}"
exit $status
