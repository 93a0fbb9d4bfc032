#!/usr/bin/env bash
# msrp-bench end to end over loopback (127.0.0.1 only): each mode briefly, direct and through
# msrp-relay over TCP and TLS, on one thread and on two (--threads), checking correctness only
# (exit 0, every message accounted for, one well-formed JSON line), never a speed. Then the
# failures: a wrong password, more sessions than the relay allows a user, the relay dying
# mid-run.
#
#   bash tests/net/bench_test.sh build/debug/apps/msrp-bench/msrp-bench \
#     build/debug/apps/msrp-relay/msrp-relay
#
# Exit statuses (apps/msrp-bench/bench.hpp): 0 all delivered, 1 refused or not delivered,
# 2 bad input, 3 network.
set -u
bench_built=$1
relay_built=$2

source "$(dirname "$0")/lib.sh"
binary bench "$bench_built"
binary relay "$relay_built"

# field NAME: the value of NAME in the JSON line of the last run ($scratch/run.out).
field() {
  sed -n "s/.*\"$1\":\"\{0,1\}\([^,}\"]*\).*/\1/p" "$scratch/run.out"
}
# well_formed: run.out is one line holding one JSON object.
well_formed() {
  one_line "$scratch/run.out" || return 1
  if command -v python3 >/dev/null; then
    python3 -c 'import json, sys; json.loads(open(sys.argv[1]).read())' "$scratch/run.out"
  elif command -v jq >/dev/null; then
    jq -e . "$scratch/run.out" >/dev/null
  else
    grep -q '^{.*}$' "$scratch/run.out"
  fi
}
# accounted: every message sent was delivered byte-exact, and some were sent.
accounted() {
  [ "$(field sent)" -gt 0 ] && [ "$(field sent)" -eq "$(field delivered)" ] &&
    [ "$(field failed)$(field lost)$(field corrupt)$(field unexpected)" = "0000" ] &&
    [ "$(field ok)" = true ]
}

# bench_ok NAME ARGS...: runs msrp-bench and checks a correct run.
bench_ok() {
  local name=$1
  shift
  run run 120 "$bench" "$@"
  local status=$?
  check "$name: exit 0" test $status -eq 0
  check "$name: one well-formed JSON line" well_formed
  check "$name: every message delivered byte-exact" accounted
  [ $status -eq 0 ] || { show "$scratch/run.out"; show "$scratch/run.err"; }
}

# start_relay NAME CONFIG: a relay with its state in $scratch/NAME; sets tls_port, tcp_port.
start_relay() {
  mkdir -p "$scratch/$1"
  spawn "$1" 600 "$relay" --config "$2" --state-dir "$scratch/$1" --demo-user '' \
    --listen 127.0.0.1:0 --listen-tcp 127.0.0.1:0 --metrics 127.0.0.1:0
  timeout 20 bash -c 'until grep -qs "metrics on" "$0"; do sleep 0.05; done' \
    "$scratch/$1.err" || { echo "   $1 did not start:" && show "$scratch/$1.err"; }
  tls_port=$(sed -n 's|.*as msrps://localhost:\([0-9]*\);tcp.*|\1|p' "$scratch/$1.err" | head -1)
  tcp_port=$(sed -n 's|.*as msrp://localhost:\([0-9]*\);tcp.*|\1|p' "$scratch/$1.err" | head -1)
}

# ---------------------------------------------------------------------------------------------
section "direct, no relay"
bench_ok "messages over TCP" messages --direct --sessions 8 --window 4 --duration 1
check "the counts of sessions are reported" test "$(field ready)" -eq 8 -a "$(field active)" -eq 8
check "with latency percentiles" test "$(field p50)" -gt 0
check "and a human summary on stderr" mentions "$scratch/run.err" 'messages/s'
bench_ok "messages over TLS" messages --direct --tls --sessions 2 --window 4 --duration 1
bench_ok "bulk, 8 KiB chunks" bulk --direct --sessions 2 --message-size 300000 --chunk-size 8192 \
  --duration 1
bench_ok "bulk, one chunk per message" bulk --direct --message-size 1000000 --chunk-size 0 \
  --duration 1
bench_ok "hold, a tenth sending" hold --direct --sessions 50 --active 0.1 --duration 1
check "5 of 50 sessions sent" test "$(field active)" -eq 5
bench_ok "messages at a fixed rate" messages --direct --sessions 4 --rate 400 --duration 2
check "rate × duration sent (800)" test "$(field sent)" -eq 800
check "and delivered" test "$(field delivered)" -eq "$(field sent)"
check "the rate asked for is reported" test "$(field rate)" = 400
run run 60 "$bench" messages --direct --rate 0 --duration 1
check "a rate of 0: exit 2" test $? -eq 2
check "with one line on stderr" one_line "$scratch/run.err"
check "naming the option" mentions "$scratch/run.err" 'rate'
run run 60 "$bench" messages --direct --rate fast --duration 1
check "a rate that is no number: exit 2" test $? -eq 2
check "with one line on stderr" one_line "$scratch/run.err"

section "direct, on two threads"
bench_ok "messages, 5 sessions on 2 threads" messages --direct --sessions 5 --window 4 --threads 2 \
  --duration 1
check "two threads and 5 sessions reported" test "$(field threads)" -eq 2 -a "$(field ready)" -eq 5
check "with latency percentiles" test "$(field p50)" -gt 0
bench_ok "bulk, 3 sessions on 2 threads" bulk --direct --sessions 3 --message-size 300000 \
  --chunk-size 8192 --threads 2 --duration 1
bench_ok "bulk over TLS on 2 threads" bulk --direct --tls --sessions 2 --message-size 300000 \
  --threads 2 --duration 1
bench_ok "hold, 3 of 30 sending on 2 threads" hold --direct --sessions 30 --active 0.1 \
  --threads 2 --duration 1
check "3 of 30 sessions sent" test "$(field active)" -eq 3
# 3 sending sessions on 2 threads: one thread paces 2 of them, the other 1.
bench_ok "messages at a fixed rate on 2 threads" messages --direct --sessions 3 --rate 333 \
  --threads 2 --duration 2
check "rate × duration sent over both threads (666)" test "$(field sent)" -eq 666
check "and delivered" test "$(field delivered)" -eq "$(field sent)"
bench_ok "more threads than sessions" messages --direct --sessions 1 --threads 4 --duration 1
check "one thread per session at most" test "$(field threads)" -eq 1
for threads in 0 x; do
  run run 60 "$bench" messages --direct --threads "$threads" --duration 1
  check "--threads $threads: exit 2" test $? -eq 2
  check "with one line on stderr" one_line "$scratch/run.err"
  check "naming the option" mentions "$scratch/run.err" 'threads'
done

# ---------------------------------------------------------------------------------------------
section "through msrp-relay"
state=$scratch/r1
mkdir -p "$state"
(umask 077 && head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$scratch/password")
for user in alice bob; do "$relay" user add "$user" --state-dir "$state" <"$scratch/password"; done
# The defaults cap a user at 64 sessions (each bench session takes two) and the relay at 10,000
# connections; a bench needs more.
printf '[limits]\nmax_sessions_per_user = 100000\nmax_connections = 30000\n' >"$scratch/big.toml"
start_relay r1 "$scratch/big.toml"
via_tls=(--relay "msrps://localhost:$tls_port;tcp" --user alice --user bob
  --password-file "$scratch/password" --ca-file "$state/cert.pem")
via_tcp=(--relay "msrp://localhost:$tcp_port;tcp" --user alice --password-file "$scratch/password")
bench_ok "messages over TLS, two users" messages "${via_tls[@]}" --sessions 8 --window 8 \
  --duration 1
bench_ok "messages over TCP" messages "${via_tcp[@]}" --sessions 2 --size 2000 --duration 1
bench_ok "messages over TCP at a fixed rate" messages "${via_tcp[@]}" --sessions 2 --rate 500 \
  --duration 1
check "rate × duration sent (500)" test "$(field sent)" -eq 500
bench_ok "messages over TLS on 2 threads" messages "${via_tls[@]}" --sessions 6 --window 8 \
  --threads 2 --duration 1
check "on two threads" test "$(field threads)" -eq 2
bench_ok "messages over TCP on 2 threads at a fixed rate" messages "${via_tcp[@]}" --sessions 3 \
  --rate 500 --threads 2 --duration 1
check "rate × duration sent over both threads (500)" test "$(field sent)" -eq 500
bench_ok "bulk over TCP on 2 threads" bulk "${via_tcp[@]}" --sessions 3 --message-size 1000000 \
  --threads 2 --duration 1
bench_ok "bulk over TCP, 64 KiB chunks" bulk "${via_tcp[@]}" --sessions 2 --message-size 1000000 \
  --duration 1
bench_ok "bulk over TLS, one chunk" bulk "${via_tls[@]}" --message-size 1000000 --chunk-size 0 \
  --duration 1
bench_ok "hold with the relay's memory" hold "${via_tcp[@]}" --sessions 100 --active 0.05 \
  --duration 1 --relay-pid "$(process r1)"
check "the relay's RSS is reported" test "$(field relay_rss_kib_ready)" -gt 0
check "per session" mentions "$scratch/run.out" '"relay_rss_kib_per_session":-?[0-9.]+'

# ---------------------------------------------------------------------------------------------
section "failures"
(umask 077 && echo wrong >"$scratch/wrong")
run run 60 "$bench" messages --relay "msrps://localhost:$tls_port;tcp" --user alice \
  --password-file "$scratch/wrong" --ca-file "$state/cert.pem" --duration 1
check "a wrong password exits 1" test $? -eq 1
check "with one line on stderr" one_line "$scratch/run.err"
check "saying the relay refused AUTH" mentions "$scratch/run.err" '^msrp-bench: error: relay .* refused AUTH for user alice: 401'
check "and a JSON line that says so" mentions "$scratch/run.out" '"ok":false,"error":"relay'
run run 60 "$bench" messages --relay "msrps://localhost:$tls_port;tcp" --user alice \
  --password-file "$scratch/wrong" --ca-file "$state/cert.pem" --sessions 4 --threads 2 \
  --duration 1
check "a wrong password on 2 threads: exit 1" test $? -eq 1
check "with one line on stderr (the first thread's error)" one_line "$scratch/run.err"
check "saying the relay refused AUTH" mentions "$scratch/run.err" 'refused AUTH for user alice: 401'
# Defect: a thread stopped by another's failure while its own TLS handshakes were in progress
# called the close of a connection not yet served (std::bad_function_call, exit 134).
run run 60 "$bench" messages --relay "msrps://localhost:$tls_port;tcp" --user alice \
  --password-file "$scratch/wrong" --ca-file "$state/cert.pem" --sessions 64 \
  --setup-parallel 64 --threads 2 --duration 1
check "a wrong password with handshakes in progress on the other thread: exit 1" test $? -eq 1
check "with one line on stderr" one_line "$scratch/run.err"
run run 60 "$bench" messages --relay "msrps://localhost:$tls_port;tcp" --user alice \
  --password-file "$scratch/password" --duration 1
check "an unknown CA: exit 3" test $? -eq 3
check "saying TLS failed" mentions "$scratch/run.err" 'TLS with relay .* failed'
run run 60 "$bench" messages --user alice --password-file "$scratch/password" --duration 1
check "neither --relay nor --direct: exit 2" test $? -eq 2

printf '' >"$scratch/default.toml"
start_relay r2 "$scratch/default.toml"
"$relay" user add carol --state-dir "$scratch/r2" <"$scratch/password"
run run 60 "$bench" messages --relay "msrp://localhost:$tcp_port;tcp" --user carol \
  --password-file "$scratch/password" --sessions 40 --duration 1
check "80 relay sessions for one user with the default limit (64): exit 1" test $? -eq 1
check "refused with 403" mentions "$scratch/run.err" 'refused AUTH for user carol: 403'
stop r2

# On two threads: the loop that sees its connection lost first stops the other.
spawn run 60 "$bench" messages "${via_tcp[@]}" --sessions 4 --threads 2 --duration 10
wait_until 20 -s "$scratch/r1.err"
sleep 2
kill_job r1 "$(process r1)"
finish run
status=$?
check "the relay dying mid-run: exit 3" test $status -eq 3
[ $status -eq 3 ] || show "$scratch/run.err"
check "saying the connection was lost" mentions "$scratch/run.err" 'connection to relay .* lost'
check "with the JSON line all the same" well_formed
section ""

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
