#!/usr/bin/env bash
# The msrp-bench scenarios against msrp-relay on loopback (and the direct path as the ceiling),
# briefly: small messages over 1, 8, 64 and 1,000 sessions; bulk with 8 KiB, 64 KiB, 1 MiB
# chunks and one chunk over 1 and 4 sessions; 9,900 sessions held open. One JSON line per
# run on stdout (the lines docs/benchmarks.md quotes), the summaries on stderr.
#   bash scripts/bench-load.sh [SECONDS]     (default 3 per run)
# Builds the release preset in build/bench-rel. The relay runs with limits raised for the
# bench: its defaults allow a user 64 sessions and the relay 10,000 connections.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-3}
cmake --preset release -B build/bench-rel >/dev/null
ninja -C build/bench-rel msrp-bench msrp-relay >/dev/null
bench=build/bench-rel/apps/msrp-bench/msrp-bench
relay=build/bench-rel/apps/msrp-relay/msrp-relay

work=$(mktemp -d)
relay_pid=""
trap '[ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null; rm -rf "$work"' EXIT
(umask 077 && head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/password")
"$relay" user add bench --state-dir "$work" <"$work/password"
printf '[limits]\nmax_sessions_per_user = 100000\nmax_connections = 30000\n' >"$work/relay.toml"
# 10,000 sessions need 20,000 connections on each side: more descriptors than a hard limit of
# 20,000 allows (here); 9,900 sessions fit. Raise the limit where permitted.
ulimit -n 65536 2>/dev/null || true
"$relay" --config "$work/relay.toml" --state-dir "$work" --demo-user '' \
  --listen 127.0.0.1:0 --listen-tcp 127.0.0.1:0 --metrics 127.0.0.1:0 2>"$work/relay.err" &
relay_pid=$!
timeout 20 bash -c 'until grep -qs "metrics on" "$0"; do sleep 0.05; done' "$work/relay.err"
tls_port=$(sed -n 's|.*as msrps://localhost:\([0-9]*\);tcp.*|\1|p' "$work/relay.err" | head -1)
tcp_port=$(sed -n 's|.*as msrp://localhost:\([0-9]*\);tcp.*|\1|p' "$work/relay.err" | head -1)
tls=(--relay "msrps://localhost:$tls_port;tcp" --user bench --password-file "$work/password"
  --ca-file "$work/cert.pem" --relay-pid "$relay_pid")
tcp=(--relay "msrp://localhost:$tcp_port;tcp" --user bench --password-file "$work/password"
  --relay-pid "$relay_pid")

for sessions in 1 8 64 1000; do
  "$bench" messages "${tls[@]}" --sessions "$sessions" --window 16 --size 100 --duration "$seconds"
done
"$bench" messages --direct --tls --sessions 64 --window 16 --size 100 --duration "$seconds"
"$bench" messages --direct --sessions 64 --window 16 --size 100 --duration "$seconds"
for sessions in 1 4; do
  for chunk in 8192 65536 1048576 0; do
    "$bench" bulk "${tls[@]}" --sessions "$sessions" --message-size 16777216 \
      --chunk-size "$chunk" --duration "$seconds"
  done
done
"$bench" bulk --direct --tls --message-size 16777216 --chunk-size 65536 --duration "$seconds"
"$bench" hold "${tcp[@]}" --sessions 9900 --active 0.01 --duration "$seconds" \
  --setup-parallel 16 --transaction-timeout 300
"$bench" hold "${tls[@]}" --sessions 9900 --active 0.01 --duration "$seconds" \
  --setup-parallel 16 --transaction-timeout 300
