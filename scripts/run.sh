#!/usr/bin/env bash
# The README's first command: installs what is missing, builds msrpkit (release) and runs the
# main job, the relay, on localhost with its embedded defaults: TLS on 127.0.0.1:2855 and
# [::1]:2855, a self-signed certificate and an SQLite user store made on first run in
# .state/relay (or $MSRP_RELAY_STATE), with one demo user. It prints how to connect a client
# and runs until Ctrl-C. Extra arguments go to msrp-relay (e.g. --listen-tcp 127.0.0.1:2856).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target msrp-relay msrp msrp-dump
state=${MSRP_RELAY_STATE:-.state/relay}
listen=(--listen 127.0.0.1:2855)
# IPv6 too where the machine has ::1 (some containers do not).
if grep -qs '^0\{31\}1 ' /proc/net/if_inet6; then listen+=(--listen '[::1]:2855'); fi
via="--relay 'msrps://localhost:2855;tcp' --user demo --password-file $state/demo-password \\
    --ca-file $state/cert.pem"
cat <<HINT

msrp-relay starts below (Ctrl-C stops it). To pass a message through it, in two more terminals:
  build/release/apps/msrp/msrp recv $via \\
    --uri-file peer.uri --dir inbox
  build/release/apps/msrp/msrp send $via \\
    --connect "\$(tr -d "'" <peer.uri)" --text 'hello through the relay'
(README: "The relay" and "Chat and send files" for chat, files and your own users.)

HINT
exec ./build/release/apps/msrp-relay/msrp-relay --state-dir "$state" "${listen[@]}" "$@"
