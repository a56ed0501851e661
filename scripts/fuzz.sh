#!/usr/bin/env bash
# Runs each cargo-fuzz target for a fixed time and prints how many inputs it tried.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
#
# Not part of CI. Crashes are saved under fuzz/artifacts/<target>/; replay one with
# `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>` from the repository root.
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# cargo-fuzz passes nightly-only flags (`-Zsanitizer=address`, …) to rustc. Only the stable
# toolchain is installed here, and RUSTC_BOOTSTRAP=1 lets it accept them.
export RUSTC_BOOTSTRAP=1

status=0
for target in model_ref index gguf safetensors signing_bundle modelscope_cookies; do
    log="$(mktemp)"
    echo "== ${target}: ${seconds}s"
    # New inputs go to fuzz/corpus/<target> (ignored by git); fuzz/seeds/<target> holds the
    # hand-written starting points, such as an index laid out exactly as the catalog writes it.
    mkdir -p "fuzz/corpus/${target}"
    if cargo fuzz run "$target" "fuzz/corpus/${target}" "fuzz/seeds/${target}" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        result="ok"
    else
        result="FAILED (see fuzz/artifacts/${target}/)"
        status=1
        grep -E "panicked|ERROR|Test unit written" "$log" || tail -n 30 "$log"
    fi
    execs="$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')"
    per_s="$(grep -E '^stat::average_exec_per_sec' "$log" | awk '{print $2}')"
    echo "${target}: ${result}; ${execs:-?} executions, ${per_s:-?} exec/s"
    rm -f "$log"
done
exit "$status"
