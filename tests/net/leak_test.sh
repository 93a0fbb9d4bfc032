#!/usr/bin/env bash
# msrp-relay after a million relayed messages (issue #8): built with AddressSanitizer, the relay
# must exit cleanly with LeakSanitizer finding nothing, and its gauges must be back to zero once
# the clients are gone (growth that stays reachable, which LeakSanitizer cannot see).
# msrp-bench drives it over 127.0.0.1 in rounds until MSRP_LEAK_MESSAGES (default 1,000,000)
# small messages were delivered: over TCP and TLS, with many sessions and with few, with a
# failed AUTH and a client killed mid-run in between, so that every path that frees something
# is taken.
#
#   bash tests/net/leak_test.sh build/asan/apps/msrp-bench/msrp-bench \
#     build/asan/apps/msrp-relay/msrp-relay
set -u
bench_built=$1
relay_built=$2
goal=${MSRP_LEAK_MESSAGES:-1000000}

source "$(dirname "$0")/lib.sh"
binary bench "$bench_built"
binary relay "$relay_built"

# field NAME: the value of NAME in the JSON line of the last run ($scratch/run.out).
field() {
  sed -n "s/.*\"$1\":\"\{0,1\}\([^,}\"]*\).*/\1/p" "$scratch/run.out"
}

state=$scratch/relay
mkdir -p "$state"
(umask 077 && head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$scratch/password" &&
  echo wrong >"$scratch/wrong")
"$relay" user add alice --state-dir "$state" <"$scratch/password"
printf '[limits]\nmax_sessions_per_user = 100000\nmax_connections = 30000\n' >"$scratch/relay.toml"
spawn relay 3000 "$relay" --config "$scratch/relay.toml" --state-dir "$state" --demo-user '' \
  --listen 127.0.0.1:0 --listen-tcp 127.0.0.1:0 --metrics 127.0.0.1:0
timeout 20 bash -c 'until grep -qs "metrics on" "$0"; do sleep 0.05; done' "$scratch/relay.err"
tls_port=$(sed -n 's|.*as msrps://localhost:\([0-9]*\);tcp.*|\1|p' "$scratch/relay.err" | head -1)
tcp_port=$(sed -n 's|.*as msrp://localhost:\([0-9]*\);tcp.*|\1|p' "$scratch/relay.err" | head -1)
metrics_port=$(sed -n 's|.*metrics on http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$scratch/relay.err")
check "the relay runs" test -n "$tls_port" -a -n "$tcp_port" -a -n "$metrics_port"
[ -n "$metrics_port" ] || { show "$scratch/relay.err"; exit 1; }
relay_pid=$(process relay)

via_tcp=(--relay "msrp://localhost:$tcp_port;tcp" --user alice --password-file "$scratch/password")
via_tls=(--relay "msrps://localhost:$tls_port;tcp" --user alice --password-file "$scratch/password"
  --ca-file "$state/cert.pem")
rss_kib() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$relay_pid/status"; }

section "a million messages"
delivered=0
rounds=0
bad_rounds=0
while [ "$delivered" -lt "$goal" ]; do
  case $((rounds % 4)) in
    0) options=("${via_tcp[@]}" --sessions 8 --window 32) ;;
    1) options=("${via_tls[@]}" --sessions 8 --window 32) ;;
    2) options=("${via_tcp[@]}" --sessions 200 --window 2) ;;
    3) options=("${via_tls[@]}" --sessions 1 --window 64 --size 3000) ;;
  esac
  run run 120 "$bench" messages "${options[@]}" --duration 5
  status=$?
  sent=$(field sent) moved=$(field delivered)
  if [ $status -ne 0 ] || [ "${moved:-0}" -ne "${sent:--1}" ]; then
    bad_rounds=$((bad_rounds + 1))
    show "$scratch/run.err"
    [ "$bad_rounds" -lt 3 ] || break
  fi
  delivered=$((delivered + ${moved:-0}))
  rounds=$((rounds + 1))
  [ $rounds -eq 1 ] && first_rss=$(rss_kib)
  # Paths that end early: a wrong password, and a client killed while its messages are in flight.
  run wrong 60 "$bench" messages --relay "msrp://localhost:$tcp_port;tcp" --user alice \
    --password-file "$scratch/wrong" --duration 1
  spawn killed 60 "$bench" messages "${via_tcp[@]}" --sessions 16 --window 32 --duration 30
  sleep 1
  kill_job killed "$(process killed)"
done
echo "   $delivered messages in $rounds rounds; relay RSS $first_rss KiB after the first, $(rss_kib) KiB now"
check "every round delivered all it sent" test "$bad_rounds" -eq 0
check "a million messages relayed" test "$delivered" -ge "$goal"

section "back to zero"
gauges_zero() {
  local name
  for name in connections sessions streams queued_bytes credential_lookups; do
    [ "$(metric "$metrics_port" "msrp_relay_$name")" = 0 ] || return 1
  done
}
timeout 30 bash -c "$(declare -f metric gauges_zero); metrics_port=$metrics_port;
  until gauges_zero; do sleep 0.2; done"
check "connections, sessions, streams, queued bytes and lookups back to 0" test $? -eq 0

stop relay
status=$?
check "the relay exits cleanly" test $status -eq 0
check "and LeakSanitizer found nothing" bash -c "! grep -q 'LeakSanitizer' '$scratch/relay.err'"
[ $status -eq 0 ] || tail -n 40 "$scratch/relay.err"
section ""

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
