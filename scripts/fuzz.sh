#!/usr/bin/env bash
# `make fuzz`: coverage-guided fuzzing (cargo-fuzz, libFuzzer) of the CSV reader and the data
# contract, the pipeline validator and compiler, and pm-serve's request readers (fuzz/), each for
# SECONDS (default 600). Fails on the first crash; libFuzzer keeps the input in
# fuzz/artifacts/<target>/ (rerun it with `cargo fuzz run <target> -s none <file>`).
#
# Built optimised with debug assertions (so overflows panic), without a sanitizer: the machine's
# one Rust toolchain is stable, and the code forbids `unsafe`.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_EACH="${1:-600}"
shift || true
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(csv pipeline serve_request)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
cd "$ROOT/fuzz"
cargo fuzz build -s none --debug-assertions
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t"
  echo "fuzz: $t for $SECONDS_EACH s"
  cargo fuzz run "$t" -s none --debug-assertions "corpus/$t" -- \
    -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 -print_final_stats=1 2>&1 | tail -n 12
done
echo "fuzz: no crash in ${#TARGETS[@]} target(s), $SECONDS_EACH s each"
