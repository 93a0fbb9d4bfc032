#!/usr/bin/env bash
# File transfer with the msrp command over loopback: peer to peer over TCP and TLS, and through
# msrp-relay over TLS, beside iperf3 on the same loopback as the ceiling (issues: network edge,
# msrp-relay). Prints one line each.
#   bash scripts/bench-p2p.sh [SIZE_MB]     (default 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-1024}
bash scripts/deps.sh
for tool in iperf3 python3; do
  command -v "$tool" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null
done
cmake --preset release >/dev/null
cmake --build --preset release --target msrp >/dev/null
msrp=build/release/apps/msrp/msrp

work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT

# The ceiling: one TCP stream on loopback.
iperf3 -s -1 -B 127.0.0.1 -p 5299 >/dev/null 2>&1 &
pids+=($!)
sleep 0.5
iperf3_gbit=$(iperf3 -c 127.0.0.1 -p 5299 -t 5 -J | python3 -c \
  'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9)')
printf 'iperf3 loopback: %.0f MB/s\n' "$(python3 -c "print($iperf3_gbit*1e3/8)")"

head -c "$((size_mb * 1024 * 1024))" /dev/urandom >"$work/file"
for mode in tcp tls; do
  flags=()
  [ "$mode" = tls ] && flags=(--tls)
  rm -rf "$work/out" "$work/uri"
  "$msrp" recv "${flags[@]}" --listen 127.0.0.1:0 --uri-file "$work/uri" --dir "$work/out" \
    >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do [ -s "$work/uri" ] && break; sleep 0.1; done
  start=$(date +%s.%N)
  eval "\"$msrp\" send --file \"$work/file\" --connect $(cat "$work/uri")" >/dev/null
  end=$(date +%s.%N)
  wait "${pids[-1]}"
  cmp -s "$work/file" "$work/out/file" || { echo "msrp $mode: received file differs" >&2; exit 1; }
  python3 -c "print('msrp send/recv over %s: %.0f MB/s (%d MiB in %.2f s)' % ('$mode'.upper(), $size_mb*1048576/1e6/($end-$start), $size_mb, $end-$start))"
done

# Through msrp-relay on loopback, TLS on both legs: what the relay costs (issue: msrp-relay).
cmake --build --preset release --target msrp-relay >/dev/null
"build/release/apps/msrp-relay/msrp-relay" --state-dir "$work/relay" --listen 127.0.0.1:0 \
  2>"$work/relay.log" &
pids+=($!)
for _ in $(seq 50); do grep -q 'as msrps://' "$work/relay.log" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's|.*as msrps://localhost:\([0-9]*\);tcp.*|\1|p' "$work/relay.log" | head -1)
via=(--relay "msrps://localhost:$port;tcp" --user demo --password-file "$work/relay/demo-password"
  --ca-file "$work/relay/cert.pem")
rm -rf "$work/out" "$work/uri"
"$msrp" recv "${via[@]}" --uri-file "$work/uri" --dir "$work/out" --count 1 >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/uri" ] && break; sleep 0.1; done
start=$(date +%s.%N)
"$msrp" send "${via[@]}" --file "$work/file" --connect "$(tr -d "'" <"$work/uri")" >/dev/null
end=$(date +%s.%N)
wait "${pids[-1]}"
cmp -s "$work/file" "$work/out/file" || { echo "msrp via relay: received file differs" >&2; exit 1; }
python3 -c "print('msrp send/recv through msrp-relay, TLS: %.0f MB/s (%d MiB in %.2f s)' % ($size_mb*1048576/1e6/($end-$start), $size_mb, $end-$start))"
