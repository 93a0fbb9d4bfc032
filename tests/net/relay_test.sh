#!/usr/bin/env bash
# msrp-relay end to end over loopback (127.0.0.1 only), with the msrp command as the clients:
# text and a large file through a relay over TLS, two relays in a chain with mutual TLS,
# wrong password, unknown session, garbage and misaddressed frames, metrics, a receiver and
# the relay dying mid-transfer, graceful stop, configuration checks and user management.
#
#   bash tests/net/relay_test.sh build/debug/apps/msrp/msrp build/debug/apps/msrp-relay/msrp-relay
#
# MSRP_RELAY_BIG_MB sets the size of the large file (default 1024: the 1 GiB of the issue).
# Exit statuses (apps/msrp/cli.hpp): 0 delivered, 1 not delivered, 2 bad input, 3 network.
set -u
msrp_built=$1
relay_built=$2
big_mb=${MSRP_RELAY_BIG_MB:-1024}

source "$(dirname "$0")/lib.sh"
binary msrp "$msrp_built"
binary relay "$relay_built"

# add_user STATE NAME [OPTIONS...]: adds NAME with a random password to the relay's store in
# STATE and writes the password to STATE/NAME.password.
add_user() {
  (umask 077 && head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$1/$2.password")
  "$relay" user add "$2" --state-dir "$1" "${@:3}" <"$1/$2.password"
}

# start_relay NAME [OPTIONS...]: starts a relay with its state in $scratch/NAME, TLS and plain
# TCP listeners and metrics on free ports; sets tls_port, tcp_port, metrics_port.
start_relay() {
  local name=$1
  shift
  mkdir -p "$scratch/$name"
  spawn "$name" 600 "$relay" --state-dir "$scratch/$name" --demo-user '' \
    --listen 127.0.0.1:0 --listen-tcp 127.0.0.1:0 --metrics 127.0.0.1:0 "$@"
  timeout 20 bash -c 'until grep -qs "metrics on" "$0"; do sleep 0.05; done' \
    "$scratch/$name.err" || { echo "   $name did not start:" && show "$scratch/$name.err"; }
  tls_port=$(sed -n 's|.*as msrps://localhost:\([0-9]*\);tcp.*|\1|p' "$scratch/$name.err" | head -1)
  tcp_port=$(sed -n 's|.*as msrp://localhost:\([0-9]*\);tcp.*|\1|p' "$scratch/$name.err" | head -1)
  metrics_port=$(sed -n 's|.*metrics on http://127.0.0.1:\([0-9]*\)/.*|\1|p' \
    "$scratch/$name.err" | head -1)
}

# client NAME STATE USER PORT: the options that make msrp use the relay on PORT as USER; the
# relay's host name is $relay_host (localhost unless set).
client() {
  client_options=(--relay "msrps://${relay_host:-localhost}:$4;tcp" --user "$3"
    --password-file "$2/$3.password" --ca-file "$2/cert.pem")
}

# receive NAME DIR STATE USER PORT [OPTIONS...]: `msrp recv` through a relay; waits for its
# path and sets `path` to it.
receive() {
  client "$1" "$3" "$4" "$5"
  receive_path "$1" "$2" "${@:6}"
}

# raw PORT BYTES: writes BYTES (printf format) to the relay's plain TCP port and prints what
# comes back until the relay closes the connection (at most 5 s).
raw() {
  timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"; printf "$1" >&3; cat <&3' "$1" "$2"
}

# scrape PORT: the relay's metrics.
scrape() {
  timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"
    printf "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n" >&3; cat <&3' "$1"
}
metric() {  # metric PORT NAME: the value of NAME
  scrape "$1" | sed -n "s/^$2 \([0-9]*\)\r*$/\1/p"
}

r1=$scratch/r1
mkdir -p "$r1"
# ---------------------------------------------------------------------------------------------
section "user management"
check "user add alice" add_user "$r1" alice
check "user add bob" add_user "$r1" bob
echo secret | "$relay" user add alice --state-dir "$r1" 2>"$scratch/dup.err"
check "adding alice again exits 1" test $? -eq 1
check "with one line on stderr" one_line "$scratch/dup.err"
"$relay" user list --state-dir "$r1" >"$scratch/users.txt"
check "user list shows both, sorted" equal "$(cut -f1 "$scratch/users.txt" | tr '\n' ' ')" \
  "alice bob "
check "no password in the store" bash -c '! grep -qaF "$(cat "$0/alice.password")" "$0/users.db"' \
  "$r1"
"$relay" user add carol --state-dir "$r1" </dev/null 2>"$scratch/empty.err"
check "an empty password is refused with exit 2" test $? -eq 2

# ---------------------------------------------------------------------------------------------
section "configuration"
printf 'host = "localhost"\n[listen]\ntls = ["127.0.0.1:0"]\n' >"$scratch/good.toml"
"$relay" --config "$scratch/good.toml" --check-config >"$scratch/check.out" 2>&1
check "--check-config accepts a good file" test $? -eq 0
printf 'host = "localhost"\nlisten_port = 5\n' >"$scratch/typo.toml"
"$relay" --config "$scratch/typo.toml" --check-config 2>"$scratch/typo.err"
check "an unknown key exits 2" test $? -eq 2
check "naming the key in one line" mentions "$scratch/typo.err" 'unknown key listen_port'
mkdir -p "$scratch/realm"
echo secret | "$relay" user add carol --state-dir "$scratch/realm" --host relay.test
"$relay" user list --state-dir "$scratch/realm" --host relay.test >"$scratch/realm.out"
check "the realm is the host unless set (--host relay.test)" \
  mentions "$scratch/realm.out" $'^carol\trelay.test$'
printf '[timeouts]\nmin_expires = 100\nmax_expires = 10\n' >"$scratch/bounds.toml"
"$relay" --config "$scratch/bounds.toml" --check-config 2>"$scratch/bounds.err"
check "min_expires above max_expires exits 2" test $? -eq 2

# ---------------------------------------------------------------------------------------------
section "text through a relay over TLS"
start_relay r1
r1_tls=$tls_port r1_tcp=$tcp_port r1_metrics=$metrics_port
check "the relay listens on TLS and TCP" test -n "$r1_tls" -a -n "$r1_tcp" -a -n "$r1_metrics"
check "it made its certificate" test -s "$r1/cert.pem"
receive bob "$scratch/bob" "$r1" bob "$r1_tls" --count 1
check "bob's path is the relay's URI then his own" \
  mentions "$scratch/bob.uri" "^'msrps://localhost:$r1_tls/[A-Za-z0-9]{16};tcp msrps://client.invalid:9/"
client alice "$r1" alice "$r1_tls"
run alice 60 "$msrp" send "${client_options[@]}" --connect "$path" --text "hello through the relay"
check "alice's send exits 0" test $? -eq 0
check "and says delivered" mentions "$scratch/alice.out" '^delivered 23 bytes$'
finish bob
check "bob's recv exits 0" test $? -eq 0
saved=$(cut -f1 "$scratch/bob.out" | head -1)
check "bob got the text" equal "$(cat "$saved" 2>/dev/null)" "hello through the relay"
check "the relay logged both sessions" \
  test "$(grep -c 'session .* opened for' "$scratch/r1.err")" -ge 2

# RFC 4976 §5.1 with SDP: each side's a=path is its Use-Path reversed, then its own URI.
client alice "$r1" alice "$r1_tls"
alice_via=("${client_options[@]}")
client bob "$r1" bob "$r1_tls"
spawn alice 60 "$msrp" send "${alice_via[@]}" --write-offer "$scratch/offer.sdp" \
  --read-answer "$scratch/answer.sdp" --text "offered through the relay"
run bob 60 "$msrp" recv "${client_options[@]}" --read-offer "$scratch/offer.sdp" \
  --write-answer "$scratch/answer.sdp" --dir "$scratch/bob-sdp" --count 1
check "SDP offer/answer through the relay: recv exits 0" test $? -eq 0
finish alice
check "and send exits 0" test $? -eq 0
check "the offer's path is the relay's URI, then alice's" \
  mentions "$scratch/offer.sdp" "^a=path:msrps://localhost:$r1_tls/[A-Za-z0-9]{16};tcp msrps://client.invalid:9/"
check "bob got it" equal "$(cat "$scratch"/bob-sdp/*.txt 2>/dev/null)" "offered through the relay"

# ---------------------------------------------------------------------------------------------
section "a $big_mb MiB file through the relay"
head -c $((big_mb * 1024 * 1024)) /dev/urandom >"$scratch/big.bin"
receive bob "$scratch/bob-big" "$r1" bob "$r1_tls" --count 1
client alice "$r1" alice "$r1_tls"
run alice 300 "$msrp" send "${client_options[@]}" --connect "$path" --file "$scratch/big.bin"
check "the send exits 0" test $? -eq 0
finish bob
check "the recv exits 0" test $? -eq 0
check "the file arrived whole (sha256)" same_file "$scratch/big.bin" "$scratch/bob-big/big.bin"
relayed=$(metric "$r1_metrics" msrp_relay_bytes_relayed_total)
check "metrics count the bytes relayed" test "${relayed:-0}" -ge $((big_mb * 1024 * 1024))
check "metrics count AUTH successes" test "$(metric "$r1_metrics" msrp_relay_auth_successes_total)" -ge 4

# ---------------------------------------------------------------------------------------------
section "wrong password, unknown session"
(umask 077 && echo wrong >"$r1/mallory.password")
run mallory 30 "$msrp" send --relay "msrps://localhost:$r1_tls;tcp" --user alice \
  --password-file "$r1/mallory.password" --ca-file "$r1/cert.pem" \
  --connect "msrps://localhost:$r1_tls/nosuchsession0000;tcp msrps://client.invalid/x;tcp" \
  --text "let me in"
check "a wrong password exits 1" test $? -eq 1
check "saying the relay refused AUTH" mentions "$scratch/mallory.err" 'relay .* refused AUTH: (401|403)'
check "in one line" one_line "$scratch/mallory.err"
check "the relay logged the failure" mentions "$scratch/r1.err" 'AUTH failed for user "alice"'
client alice "$r1" alice "$r1_tls"
run alice 60 "$msrp" send "${client_options[@]}" --text "to nobody" \
  --connect "msrps://localhost:$r1_tls/nosuchsession0000;tcp msrps://client.invalid/x;tcp"
check "a send to an unknown session exits 1" test $? -eq 1
check "with 481" mentions "$scratch/alice.err" '481'
cp "$r1/alice.password" "$scratch/open.password"
chmod 644 "$scratch/open.password"
run alice 30 "$msrp" send --relay "msrps://localhost:$r1_tls;tcp" --user alice \
  --password-file "$scratch/open.password" --ca-file "$r1/cert.pem" --text x \
  --connect "msrps://localhost:$r1_tls/nosuchsession0000;tcp msrps://client.invalid/x;tcp"
check "a password file others can read is refused (exit 2)" test $? -eq 2
check "saying so" mentions "$scratch/alice.err" 'readable by others'

# ---------------------------------------------------------------------------------------------
section "garbage and misaddressed frames"
raw "$r1_tcp" 'MSRP abcd1234 SEND\r\nTo-Path msrp://x\r\n\r\n' >"$scratch/garbage.out"
closed=$?
check "a malformed frame is answered 400" mentions "$scratch/garbage.out" '^MSRP abcd1234 400'
check "and the relay closes the connection" test $closed -eq 0
raw "$r1_tcp" 'MSRP abcd1234 SEND\r\nTo-Path: msrp://elsewhere.example.com:9/s;tcp\r\nFrom-Path: msrp://client.invalid/c;tcp\r\n-------abcd1234$\r\n' \
  >"$scratch/elsewhere.out"
closed=$?
check "a frame for another host: connection dropped" test $closed -eq 0
check "with nothing answered" test ! -s "$scratch/elsewhere.out"
check "the relay is still up" kill -0 "${pid[r1]}"

# ---------------------------------------------------------------------------------------------
section "receiver dies mid-transfer"
receive bob "$scratch/bob-dies" "$r1" bob "$r1_tls" --count 1
client alice "$r1" alice "$r1_tls"
spawn alice 120 "$msrp" send "${client_options[@]}" --connect "$path" --file "$scratch/big.bin"
wait_for_part 30 "$scratch/bob-dies"
kill_job bob "$(process bob)"
finish alice
status=$?
check "the sender is told: exit 1 (failure REPORT) or 3" status_in $status 1 3
check "one line on stderr" one_line "$scratch/alice.err"
show "$scratch/alice.err"
check "the relay is still up" kill -0 "${pid[r1]}"

# ---------------------------------------------------------------------------------------------
section "two relays in a chain, mutual TLS"
r2=$scratch/r2
mkdir -p "$r2"
add_user "$r2" dave --host 127.0.0.1  # the realm: the host
# Each relay trusts the other's self-signed certificate (both made theirs on a first start).
# Their names differ, as two relays' names do: OpenSSL finds a CA by its subject name.
stop r1
start_relay r2 --host 127.0.0.1
stop r2
cat "$r1/cert.pem" "$r2/cert.pem" >"$scratch/relays.pem"
start_relay r1 --ca-file "$scratch/relays.pem"
r1_tls=$tls_port r1_tcp=$tcp_port r1_metrics=$metrics_port
start_relay r2 --host 127.0.0.1 --ca-file "$scratch/relays.pem"
r2_tls=$(sed -n 's|.*as msrps://127.0.0.1:\([0-9]*\);tcp.*|\1|p' "$scratch/r2.err" | head -1)
relay_host=127.0.0.1 receive dave "$scratch/dave" "$r2" dave "$r2_tls" --count 1
client alice "$r1" alice "$r1_tls"
head -c 300000 /dev/urandom >"$scratch/mid.bin"
run alice 120 "$msrp" send "${client_options[@]}" --connect "$path" --file "$scratch/mid.bin"
check "alice (relay 1) to dave (relay 2) exits 0" test $? -eq 0
finish dave
check "dave got the file whole" same_file "$scratch/mid.bin" "$scratch/dave/mid.bin"
check "relay 2 took relay 1 as a relay by its certificate" \
  mentions "$scratch/r2.err" 'relay connected, certificate verified'
# RFC 4976 §5.1: a client with two relays of its own authenticates to the outer one through
# the inner one, and its messages go through both.
"$relay" user add alice --state-dir "$r2" --host 127.0.0.1 <"$r1/alice.password"
relay_host=127.0.0.1 receive dave "$scratch/dave2" "$r2" dave "$r2_tls" --count 1
run alice 60 "$msrp" send --relay "msrps://localhost:$r1_tls;tcp" \
  --relay "msrps://127.0.0.1:$r2_tls;tcp" --user alice --password-file "$r1/alice.password" \
  --ca-file "$scratch/relays.pem" --connect "$path" --text "through both my relays"
check "alice through her two relays (AUTH to the outer through the inner) exits 0" test $? -eq 0
finish dave
check "dave got it" equal "$(cat "$scratch"/dave2/*.txt 2>/dev/null)" "through both my relays"
check "relay 2 opened a session for alice behind relay 1" \
  mentions "$scratch/r2.err" 'opened for "alice"'

# ---------------------------------------------------------------------------------------------
section "relay dies mid-transfer"
receive bob "$scratch/bob-r1" "$r1" bob "$r1_tls" --count 1
client alice "$r1" alice "$r1_tls"
spawn alice 120 "$msrp" send "${client_options[@]}" --connect "$path" --file "$scratch/big.bin"
wait_for_part 30 "$scratch/bob-r1"
kill_job r1 "$(process r1)"
finish alice
check "the sender exits 3 (connection lost)" test $? -eq 3
finish bob
check "the receiver exits 3" test $? -eq 3
check "no file under the final name" test ! -e "$scratch/bob-r1/big.bin"
check "no .part left" no_part "$scratch/bob-r1"
start_relay r1 --ca-file "$scratch/relays.pem"
r1_tls=$tls_port
receive bob "$scratch/bob-again" "$r1" bob "$r1_tls" --count 1
client alice "$r1" alice "$r1_tls"
run alice 60 "$msrp" send "${client_options[@]}" --connect "$path" --text "after the restart"
check "after a restart, delivery works again" test $? -eq 0
finish bob

# ---------------------------------------------------------------------------------------------
section "reload"
kill -HUP "$(process r1)"
timeout 10 bash -c 'until grep -q "reloaded" "$0"; do sleep 0.05; done' "$scratch/r1.err"
check "SIGHUP reloads configuration and certificate" mentions "$scratch/r1.err" 'reloaded'
receive bob "$scratch/bob-reload" "$r1" bob "$r1_tls" --count 1
client alice "$r1" alice "$r1_tls"
run alice 60 "$msrp" send "${client_options[@]}" --connect "$path" --text "after the reload"
status=$?
check "and the relay still delivers" test $status -eq 0
finish bob
[ $status -eq 0 ] || { show "$scratch/alice.err"; show "$scratch/bob.err"; tail -5 "$scratch/r1.err"; }

# ---------------------------------------------------------------------------------------------
section "graceful stop"
stop r1
check "SIGTERM: the relay exits 0" test $? -eq 0
check "after saying so" mentions "$scratch/r1.err" 'stopped$'
stop r2
section ""

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
