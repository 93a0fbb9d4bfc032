#!/usr/bin/env bash
# The README's second command, and what .ci/run runs: installs what is missing, then builds
# and runs every test: the g++ suite, the clang suite under ASan+UBSan, and a fuzz smoke run
# of each libFuzzer target over its committed seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh

jobs=$(nproc)

for preset in debug asan; do
  echo "== build and test: $preset"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  # The randomized endpoint test draws message sizes up to 64 MiB in the plain build
  # (MSRP_BIG), and up to 4 MiB under the sanitizers, 200 seeds each.
  big=0
  [ "$preset" = debug ] && big=1
  MSRP_BIG=$big ctest --preset "$preset" -j "$jobs"
done

echo "== fuzz smoke run: ${MSRP_FUZZ_RUNS:-20000} runs per target"
bash scripts/fuzz.sh
echo "all tests passed"
