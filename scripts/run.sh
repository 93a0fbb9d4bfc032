#!/usr/bin/env bash
# The README's first command: installs what is missing, builds msrpkit (release) and runs the
# main job. Until msrp-relay exists, that is msrp-dump on the bundled example capture.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target msrp-dump
./build/release/apps/msrp-dump/msrp-dump examples/rfc4975-session.msrp
