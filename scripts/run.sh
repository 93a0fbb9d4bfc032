#!/usr/bin/env bash
# The README's first command: installs what is missing, builds msrpkit (release) and runs the
# main job. Until msrp-relay exists, that is msrp-dump on the bundled example capture; it
# also builds the msrp command (README: "Chat and send files").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target msrp-dump msrp
./build/release/apps/msrp-dump/msrp-dump examples/rfc4975-session.msrp
cat <<'HINT'

To chat or send a file between two terminals (README, "Chat and send files"):
  terminal 1:  build/release/apps/msrp/msrp chat --listen 127.0.0.1:7777 --tls
  terminal 2:  build/release/apps/msrp/msrp chat --connect '<URI it prints>' --fingerprint '<...>'
HINT
