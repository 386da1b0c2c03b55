#!/usr/bin/env bash
# Runs every cargo-fuzz target for a fixed number of iterations and prints
# one JSON line per target: {"target", "runs", "seconds", "result"}.
#
#   scripts/fuzz.sh [RUNS [TARGET...]]   (default 100000 per target, every target;
#                                        needs nightly and cargo-fuzz)
#
# The corpus of each target lives in fuzz/corpus/<target> and grows across
# runs; a crash leaves its input in fuzz/artifacts/<target>/ and makes this
# script exit non-zero after the other targets have run.
set -uo pipefail

runs="${1:-100000}"
shift || true
cd "$(dirname "$0")/../fuzz"
targets="${*:-$(cargo +nightly fuzz list)}"
cargo +nightly fuzz build -O >&2 || exit 2

status=0
for t in $targets; do
    log=$(mktemp)
    start=$(date +%s.%N)
    if cargo +nightly fuzz run -O "$t" -- -runs="$runs" -seed=1 >"$log" 2>&1; then
        result=ok
    else
        result=crash
        status=1
    fi
    end=$(date +%s.%N)
    done_runs=$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' | tail -1)
    seconds=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    if [ "$result" = crash ]; then
        grep -E 'panicked|ERROR: libFuzzer|SUMMARY' "$log" | head -5 >&2
        # A crash ends the run early; report how far it got.
        done_runs=$(grep -oE '^#[0-9]+' "$log" | tr -d '#' | tail -1)
    fi
    printf '{"target":"%s","runs":%s,"seconds":%s,"result":"%s"}\n' \
        "$t" "${done_runs:-0}" "$seconds" "$result"
    rm -f "$log"
done
exit $status
