#!/usr/bin/env bash
# Generates BENCHMARKS.md: runs every measurement below, and writes each
# figure beside the command that produced it, the goal it is held to, and
# the machine it ran on. Nothing in the output is typed in by hand.
#
#   scripts/benchmarks.sh                 full sizes, writes BENCHMARKS.md
#   QUICK=1 scripts/benchmarks.sh         small sizes (a check that the script works)
#
# Environment:
#   OUT         output file (default BENCHMARKS.md at the repository root)
#   STARLING    a built `starling` binary (default: cargo build --release)
#   FUZZ_RUNS   iterations per fuzz target (default 100000, QUICK 2000; 0 skips fuzzing)
#   FUZZ_RESULTS  a file of `scripts/fuzz.sh` output lines to report instead of
#               fuzzing again (fuzzing takes most of an hour; the lines carry
#               their own iteration counts)
#   QUICK       1 for small sizes
#   SKIP        an extended regex: runs whose label matches are listed as
#               skipped, not run (e.g. SKIP='churn|million' for a shorter run)
#
# To add or change a run, edit the RUNS list: one line per run,
#   label | starling arguments | goals (jq tests on the JSON, ';'-separated "text=test")
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${OUT:-$root/BENCHMARKS.md}"
quick="${QUICK:-0}"
fuzz_runs="${FUZZ_RUNS:-$([ "$quick" = 1 ] && echo 2000 || echo 100000)}"
skip="${SKIP:-}"

if [ -z "${STARLING:-}" ]; then
    cargo build --release -q -p starling-node >&2
    target="${CARGO_TARGET_DIR:-$root/target}"
    STARLING="$target/release/starling"
fi

if [ "$quick" = 1 ]; then
    RUNS=(
        "trust core | bench trust --agents 2000 --rules 100 --json | decide p99 under 1 µs=.decide_ns_p99 < 1000"
        "gossip core | bench gossip-core --messages 2000 --nodes 200 --json | "
        "real nodes on loopback | bench node --nodes 6 --messages 30 --burst 200 --json | "
        "Starling vs gossipsub | bench vs-gossipsub --nodes 6 --messages 30 --settle-s 2 --drain-s 2 --runs 2 --json | p99 latency no worse than gossipsub's=.ratio_latency_p99 <= 1; at most a third of gossipsub's wire bytes per delivery=.ratio_wire_bytes <= (1/3)"
        "simulator: steady | sim steady --set nodes=1000 --json | "
    )
else
    RUNS=(
        "trust core | bench trust --json | decide p99 under 1 µs=.decide_ns_p99 < 1000; score recompute (100k agents, 1M records) under 1 s=.score_recompute_ms < 1000"
        "gossip core | bench gossip-core --json | "
        "real nodes on loopback | bench node --json | "
        "Starling vs gossipsub | bench vs-gossipsub --runs 5 --json | p99 latency no worse than gossipsub's=.ratio_latency_p99 <= 1; at most a third of gossipsub's wire bytes per delivery=.ratio_wire_bytes <= (1/3)"
        "Starling vs gossipsub, 48 nodes | bench vs-gossipsub --nodes 48 --runs 5 --json | p99 latency no worse than gossipsub's=.ratio_latency_p99 <= 1; at most a third of gossipsub's wire bytes per delivery=.ratio_wire_bytes <= (1/3)"
        "simulator: steady, 10k nodes | sim steady --set nodes=10000 --json | delivery at least 99.9%=.delivered_ratio >= 0.999; RMR at most 0.1=.rmr <= 0.1; last delivery at most 1.5 x shortest path=(.last_delivery_vs_shortest // 1e18) <= 1.5"
        "simulator: kill switch, 10k nodes | sim kill-switch --set nodes=10000 --json | revocation to 99.9% within 2 s=(.reach_ms.revocation // 1e18) <= 2000; termination to 99.9% within 2 s=(.reach_ms.termination // 1e18) <= 2000"
        "simulator: Sybils | sim sybil-ring --json | no Sybil above probationary=(.sybil_tier_max == \"untrusted\" or .sybil_tier_max == \"probationary\")"
        "simulator: attacks | sim attacks --json | nothing forged delivered=.attacks.forged_delivered == 0; no stale replay delivered=.attacks.replayed_delivered == 0"
        "simulator: churn, 10k nodes | sim churn --set nodes=10000 --json | "
        "simulator: million (stops at 15 min) | sim million --set limits.wall_s_max=900 --json | completes=.complete"
    )
fi

trim() { sed -e 's/^ *//' -e 's/ *$//' <<<"$1"; }

machine() {
    echo "| fact | value |"
    echo "|---|---|"
    echo "| date (UTC) | $(date -u '+%Y-%m-%d %H:%M') |"
    echo "| CPU | $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') |"
    echo "| cores (nproc) | $(nproc) |"
    echo "| memory | $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) |"
    echo "| kernel | $(uname -r) |"
    echo "| rustc | $(rustc -V) |"
    echo "| commit | $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with local changes)') |"
    echo "| load average at start | $(cut -d' ' -f1-3 /proc/loadavg) |"
}

# Flattens a JSON object into "| key | value |" rows.
figures() {
    jq -r 'paths(type != "object" and type != "array") as $p | "| \($p | map(tostring) | join(".")) | \(getpath($p)) |"' <<<"$1"
}

# "text=test; text=test" against the JSON: one row per goal.
goals() {
    local json="$1" spec="$2"
    [ -z "$(trim "$spec")" ] && return 0
    echo
    echo "| goal | test | met |"
    echo "|---|---|---|"
    IFS=';' read -ra items <<<"$spec"
    for item in "${items[@]}"; do
        local text test met
        text="$(trim "${item%%=*}")"
        test="$(trim "${item#*=}")"
        met="$(jq -r "if ($test) then \"yes\" else \"**no**\" end" <<<"$json")"
        echo "| $text | \`$test\` | $met |"
    done
}

body="$(mktemp)"
trap 'rm -f "$body"' EXIT
{
    echo "## Machine"
    echo
    machine
    for run in "${RUNS[@]}"; do
        IFS='|' read -r label args spec <<<"$run"
        label="$(trim "$label")"
        args="$(trim "$args")"
        echo "bench: $label" >&2
        echo
        echo "## $label"
        echo
        echo '```'
        echo "starling $args"
        echo '```'
        echo
        if [ -n "$skip" ] && grep -Eq -- "$skip" <<<"$label"; then
            echo "Skipped in this run (SKIP='$skip')."
            continue
        fi
        # shellcheck disable=SC2086 # the arguments are words on purpose
        if json="$("$STARLING" $args | tail -1)" && jq -e . >/dev/null 2>&1 <<<"$json"; then
            echo "| figure | value |"
            echo "|---|---|"
            figures "$json"
            goals "$json" "${spec:-}"
        else
            echo "**The run failed** (its error is on the generator's stderr)."
        fi
    done
    echo
    echo "## Fuzzing"
    echo
    fuzz_table() {
        echo "Goal: no decoder panics on any input."
        echo
        echo "| target | runs | seconds | result |"
        echo "|---|---|---|---|"
        jq -r '"| \(.target) | \(.runs) | \(.seconds) | \(.result) |"'
    }
    if [ -n "${FUZZ_RESULTS:-}" ]; then
        echo '```'
        echo "scripts/fuzz.sh RUNS"
        echo '```'
        echo
        echo "Reported from an earlier run's output (\`FUZZ_RESULTS\`), not fuzzed again here."
        echo
        fuzz_table <"$FUZZ_RESULTS"
    elif [ "$fuzz_runs" = 0 ]; then
        echo "Skipped (FUZZ_RUNS=0)."
    else
        echo '```'
        echo "scripts/fuzz.sh $fuzz_runs"
        echo '```'
        echo
        "$root/scripts/fuzz.sh" "$fuzz_runs" | fuzz_table || true
    fi
} >"$body"

{
    echo "# Benchmarks"
    echo
    echo "Generated by \`scripts/benchmarks.sh\`$([ "$quick" = 1 ] && echo ' with QUICK=1 (small sizes: a check of the script, not figures to quote)'). Every figure below was"
    echo "measured by the command printed above it, on the machine described first. Wall-clock"
    echo "figures depend on the machine and on whatever else ran on it; run the script again"
    echo "rather than compare with another machine's numbers."
    echo
    echo "How \`bench vs-gossipsub\` measures (see \`benches/src/vs/mod.rs\`): each system runs in"
    echo "its own process on 127.0.0.1 over TCP + TLS + yamux, with the same seeded topology"
    echo "(each node dials the same peers) and the same publishers, payloads and pacing;"
    echo "gossipsub runs its default config. Wire bytes are the kernel's \`bytes_sent\` of the"
    echo "process's TCP sockets (everything on the connection, both systems alike), CPU is"
    echo "getrusage over the measurement window, duplicates are each system's own count of copies"
    echo "received beyond the first. With \`--runs N\` both systems run N times, in alternating"
    echo "order; each figure is its lower median over the runs, the ratios and goals are those"
    echo "of the medians, and \`runs_ratio_*\` give every run's own ratio."
    echo
    cat "$body"
} >"$out"
echo "wrote $out" >&2
