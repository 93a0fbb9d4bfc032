#!/usr/bin/env bash
# Runs every libFuzzer target (or those named) from its committed seeds in fuzz/corpus/.
#   bash scripts/fuzz.sh                 smoke run: 20,000 inputs per target (MSRP_FUZZ_RUNS)
#   bash scripts/fuzz.sh 1800 [TARGET…]  a long run: 1,800 seconds per target, one after the
#                                        other; docs/fuzzing.md records the latest results
# New inputs of a long run are kept in build/fuzz-corpus/<target>/ (reused by the next long
# run); crashes go there too, as crash-*, and end the run with exit 1 and the log's tail.
# Each target prints one line: inputs run, inputs per second, coverage, corpus, peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- parser uri endpoint relay

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$(nproc)" --target fuzzers

for name in "$@"; do
  if [ -n "$seconds" ]; then
    work=build/fuzz-corpus/$name
    limit=(-max_total_time="$seconds" -print_final_stats=1)
  else
    work=$(mktemp -d)
    limit=(-runs="${MSRP_FUZZ_RUNS:-20000}")
  fi
  mkdir -p "$work"
  log=$work.log
  # New inputs go to $work; the committed seeds are only read.
  "build/fuzz/fuzz/fuzz_$name" "${limit[@]}" -max_len=4096 -artifact_prefix="$work/" "$work" \
    "fuzz/corpus/$name" >"$log" 2>&1 || { tail -n 40 "$log"; exit 1; }
  last=$(grep -E '^#[0-9]+.*(DONE|pulse)' "$log" | tail -n 1)
  if [ -n "$seconds" ]; then
    rate=$(grep -E '^stat::average_exec_per_sec' "$log" | awk '{print $2}')
    echo "fuzz_$name, ${seconds} s: $last; $rate inputs/s; log $log"
  else
    echo "fuzz_$name: $last"
    rm -rf "$work" "$log"
  fi
done
