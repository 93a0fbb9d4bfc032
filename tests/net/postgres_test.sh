#!/usr/bin/env bash
# Two msrp-relay processes sharing a PostgreSQL credential store (apps/msrp-relay/
# postgres_store.hpp), end to end with the msrp command as the clients:
# - users added through one relay's configuration authenticate on the other;
# - while PostgreSQL is down a new AUTH gets 500 (the client exits 1 saying so in one line),
#   a session established before keeps delivering, and the relays keep running;
# - once PostgreSQL is back a new AUTH succeeds, with no relay restarted.
#
#   bash tests/net/postgres_test.sh build/debug/apps/msrp/msrp build/debug/apps/msrp-relay/msrp-relay
#
# PostgreSQL runs from a temporary folder (tests/net/postgres.sh: initdb, a unix socket in that
# folder only, random passwords; installed when missing, skipped with exit 77 when it cannot
# be). Everything started is stopped at exit.
# Exit statuses of msrp (apps/msrp/cli.hpp): 0 delivered, 1 not delivered, 2 bad input, 3 network.
set -u
msrp_built=$1
relay_built=$2

source "$(dirname "$0")/lib.sh"
binary msrp "$msrp_built"
binary relay "$relay_built"

source "$(dirname "$0")/postgres.sh"

# ---------------------------------------------------------------------------------------------
section "two relays, one store"
# relay_config NAME HOST [TOML...]: $scratch/NAME.toml, owner only (it holds the password).
# Relays that share a store share its realm too.
relay_config() {
  local name=$1 host=$2
  shift 2
  mkdir -p "$scratch/$name"
  (umask 077 && printf '%s\n' "host = \"$host\"" 'realm = "msrp.test"' \
    "state_dir = \"$scratch/$name\"" 'demo_user = ""' "$@" '[store]' "url = \"$store_url\"" \
    >"$scratch/$name.toml")
}
# start_relay NAME: starts the relay of $scratch/NAME.toml on free ports; sets tls_port and
# metrics_port.
start_relay() {
  spawn "$1" 600 "$relay" --config "$scratch/$1.toml" --listen 127.0.0.1:0 \
    --metrics 127.0.0.1:0
  timeout 20 bash -c 'until grep -qs "metrics on" "$0"; do sleep 0.05; done' \
    "$scratch/$1.err" || { echo "   $1 did not start:" && show "$scratch/$1.err"; }
  tls_port=$(sed -n 's|.*as msrps://[^:]*:\([0-9]*\);tcp.*|\1|p' "$scratch/$1.err" | head -1)
  metrics_port=$(sed -n 's|.*metrics on http://127.0.0.1:\([0-9]*\)/.*|\1|p' \
    "$scratch/$1.err" | head -1)
}
# add_user RELAY NAME: adds NAME with a random password through RELAY's configuration and
# writes the password to $scratch/NAME.password.
add_user() {
  (umask 077 && random_secret >"$scratch/$2.password")
  "$relay" user add "$2" --config "$scratch/$1.toml" <"$scratch/$2.password"
}
# client RELAY USER: the options that make msrp use relay RELAY (r1 or r2) as USER.
client() {
  local port=$r1_tls host=localhost
  [ "$1" = r2 ] && port=$r2_tls host=127.0.0.1
  client_options=(--relay "msrps://$host:$port;tcp" --user "$2"
    --password-file "$scratch/$2.password" --ca-file "$scratch/$1/cert.pem")
}
# delivered DIR TEXT: a message with TEXT was saved in DIR.
delivered() { grep -rqsx -- "$2" "$1"; }

# Alice's messages to bob go from relay 1 to relay 2, his REPORTs back: the relays trust each
# other's certificates, made on a first start. Their names differ, as two relays' names do:
# OpenSSL finds a CA by its subject name.
relay_config r1 localhost
relay_config r2 127.0.0.1
"$relay" --config "$scratch/r2.toml" --check-config >"$scratch/check.out" 2>&1
check "a configuration with [store] url checks" mentions "$scratch/check.out" 'configuration ok'
for name in r1 r2; do
  start_relay "$name"
  stop "$name"
done
cat "$scratch/r1/cert.pem" "$scratch/r2/cert.pem" >"$scratch/relays.pem"
relay_config r1 localhost '[tls]' "ca_file = \"$scratch/relays.pem\""
relay_config r2 127.0.0.1 '[tls]' "ca_file = \"$scratch/relays.pem\""
start_relay r1
r1_tls=$tls_port
start_relay r2
r2_tls=$tls_port r2_metrics=$metrics_port
check "both relays run" test -n "$r1_tls" -a -n "$r2_tls" -a -n "$r2_metrics"
check "naming their store without the password" mentions "$scratch/r2.err" \
  "user store postgresql://msrp:\*\*\*@/msrp"
check "the password is nowhere in their logs" \
  test "$(cat "$scratch/r1.err" "$scratch/r2.err" | grep -c "$relay_password")" -eq 0

check "user add alice through relay 1's configuration" add_user r1 alice
check "user add bob through relay 1's configuration" add_user r1 bob
"$relay" user list --config "$scratch/r2.toml" >"$scratch/list.out"
check "relay 2's configuration lists them" \
  equal "$(cat "$scratch/list.out")" "$(printf 'alice\tmsrp.test\nbob\tmsrp.test')"

# Bob receives through relay 2, with the user relay 1 added.
client r2 bob
spawn bob 300 "$msrp" recv "${client_options[@]}" --uri-file "$scratch/bob.uri" \
  --dir "$scratch/bob"
wait_until 20 -s "$scratch/bob.uri" || { echo "   bob: no path" && show "$scratch/bob.err"; }
path=$(sed -n "s/^'\([^']*\)'.*/\1/p" "$scratch/bob.uri")
check "bob authenticates on relay 2" mentions "$scratch/bob.uri" "^'msrps://127.0.0.1:$r2_tls/"

# Alice chats through relay 1; the test types her lines into a FIFO.
mkfifo "$scratch/alice.in"
exec 7<>"$scratch/alice.in"
client r1 alice
# As `spawn` does, with standard input from the FIFO (a job's would be /dev/null).
timeout -k 5 300 "$msrp" chat "${client_options[@]}" --connect "$path" --dir "$scratch/alice" \
  <"$scratch/alice.in" >"$scratch/alice.out" 2>"$scratch/alice.err" 7>&- &
pid[alice]=$!
echo "before the outage" >&7
timeout 30 bash -c 'until grep -rqsx "before the outage" "$0"; do sleep 0.05; done' "$scratch/bob"
check "alice (relay 1) to bob (relay 2): delivered" delivered "$scratch/bob" "before the outage"

# ---------------------------------------------------------------------------------------------
section "PostgreSQL down"
pg stop -m fast -w >/dev/null
check "PostgreSQL stopped" test -z "$(pg_pid)"
client r2 bob
run carol 60 "$msrp" send "${client_options[@]}" --connect "$path" --text "during the outage"
status=$?
check "a new AUTH on relay 2 fails: msrp exits 1" test $status -eq 1
check "saying so in one line" one_line "$scratch/carol.err"
check "naming the 500 of the store" mentions "$scratch/carol.err" \
  'refused AUTH: 500 Credential Store Unavailable'
show "$scratch/carol.err"
client r1 alice
run dave 60 "$msrp" send "${client_options[@]}" --connect "$path" --text "during the outage"
check "and on relay 1 too" mentions "$scratch/dave.err" 'refused AUTH: 500'
check "relay 2 logged why" mentions "$scratch/r2.err" 'credential store unavailable: postgresql://msrp:\*\*\*@'
check "and counts it" test "$(metric "$r2_metrics" msrp_relay_auth_store_unavailable_total)" -ge 1
check "the failure is not counted against the client" \
  test "$(metric "$r2_metrics" msrp_relay_auth_failures_total)" -eq 0
echo "through the outage" >&7
timeout 30 bash -c 'until grep -rqsx "through the outage" "$0"; do sleep 0.05; done' "$scratch/bob"
check "the session established before keeps delivering" \
  delivered "$scratch/bob" "through the outage"
check "both relays still run" kill -0 "${pid[r1]}" "${pid[r2]}"

# ---------------------------------------------------------------------------------------------
section "PostgreSQL back"
pg_start
check "PostgreSQL started again" test -n "$(pg_pid)"
client r2 bob
run erin 60 "$msrp" send "${client_options[@]}" --connect "$path" --text "after the outage"
check "a new AUTH on relay 2 succeeds, no restart: msrp exits 0" test $? -eq 0 ||
  show "$scratch/erin.err"
timeout 30 bash -c 'until grep -rqsx "after the outage" "$0"; do sleep 0.05; done' "$scratch/bob"
check "and delivers" delivered "$scratch/bob" "after the outage"
client r1 alice
run frank 60 "$msrp" send "${client_options[@]}" --connect "$path" --text "relay 1 is back"
check "relay 1 recovered too" test $? -eq 0

check "relay 2 logged the recovery" mentions "$scratch/r2.err" 'credential store available again'
echo "the chat goes on" >&7
timeout 30 bash -c 'until grep -rqsx "the chat goes on" "$0"; do sleep 0.05; done' "$scratch/bob"
check "alice's chat still delivers" delivered "$scratch/bob" "the chat goes on"

# ---------------------------------------------------------------------------------------------
section "stop"
echo /quit >&7
finish alice
check "alice's chat exits 0" test $? -eq 0
exec 7>&-
stop bob
for name in r1 r2; do
  stop "$name"
  check "relay ${name#r} exits 0 on SIGTERM" test $? -eq 0
done
pg stop -m fast -w >/dev/null
check "PostgreSQL stops" test -z "$(pg_pid)"
section ""

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
