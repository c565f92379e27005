#!/usr/bin/env bash
# make fuzz: every target for FUZZ_SECONDS (default 60), one after another,
# from the seed corpus in fuzz/corpus/<target>; a crash stops the run with
# its input in fuzz/artifacts/<target>/. Needs the nightly toolchain and
# cargo-fuzz (cargo install cargo-fuzz); CI never runs it.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH="${FUZZ_SECONDS:-60}"
TARGETS="${FUZZ_TARGETS:-runtime_state extension_state eventstream config invoke_api control_api runtime_api}"
LOGS="${FUZZ_LOGS:-${TMPDIR:-/tmp}/rapid-fuzz-logs}"
mkdir -p "$LOGS"
cargo +nightly fuzz build -O
for t in $TARGETS; do
    mkdir -p "corpus/$t"
    echo "fuzz: $t for ${SECONDS_EACH}s (log: $LOGS/$t.log)"
    # A scratch corpus (FUZZ_WORK keeps it): what the run adds stays out of the repository.
    if [ -n "${FUZZ_WORK:-}" ]; then work="$FUZZ_WORK/$t"; mkdir -p "$work"; else work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT; fi
    cargo +nightly fuzz run -O "$t" "$work" "corpus/$t" -- \
        -max_total_time="$SECONDS_EACH" -print_final_stats=1 -rss_limit_mb=2048 \
        >"$LOGS/$t.log" 2>&1 || { tail -40 "$LOGS/$t.log"; exit 1; }
    execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$LOGS/$t.log" | grep -o '[0-9]*$' || echo '?')"
    cov="$(grep -o 'cov: [0-9]*' "$LOGS/$t.log" | tail -1 | grep -o '[0-9]*' || echo '?')"
    ft="$(grep -o 'ft: [0-9]*' "$LOGS/$t.log" | tail -1 | grep -o '[0-9]*' || echo '?')"
    echo "fuzz: $t clean: $execs execs, cov $cov, ft $ft"
    if [ -z "${FUZZ_WORK:-}" ]; then rm -rf "$work"; trap - EXIT; fi
done
