#!/usr/bin/env bash
# Relay discovery by DNS end to end (RFC 4976 §8) over loopback: a dnsmasq on 127.0.0.1 serves
# a test zone whose SRV records _msrps._tcp.example.test name two msrp-relay processes (priority
# 10 and 20); the msrp command, given --relay 'msrps://example.test;tcp' and --dns-server,
# finds the first, delivers through it, fails over to the second once the first is stopped,
# and exits 3 with a one-line error for a domain without records or a relay whose certificate
# does not name the domain.
#
#   bash tests/net/dns_test.sh build/debug/apps/msrp/msrp build/debug/apps/msrp-relay/msrp-relay
#
# It installs dnsmasq-base when missing (root, Debian's apt): the binary alone, without the
# `dnsmasq` package's system service. dnsmasq runs in the foreground with no configuration
# beyond its arguments (no /etc/dnsmasq.conf, /etc/resolv.conf or /etc/hosts) and is stopped
# at exit. Certificates (each relay makes its own, for example.test) and passwords are made
# here, in a scratch directory.
# Exit statuses (apps/msrp/cli.hpp): 0 delivered, 1 not delivered, 2 bad input, 3 network.
set -u
msrp_built=$1
relay_built=$2

source "$(dirname "$0")/lib.sh"
binary msrp "$msrp_built"
binary relay "$relay_built"

# ---------------------------------------------------------------------------------------------
section "install dnsmasq (only what is missing)"
if ! command -v dnsmasq >/dev/null; then
  [ "$(id -u)" -eq 0 ] || { echo "dnsmasq is missing: apt-get install dnsmasq-base"; exit 2; }
  echo "   installing dnsmasq-base"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dnsmasq-base \
    >"$scratch/apt.log" 2>&1 ||
    { apt-get update >>"$scratch/apt.log" 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dnsmasq-base \
        >>"$scratch/apt.log" 2>&1; } ||
    { echo "apt-get install dnsmasq-base failed:" && tail -5 "$scratch/apt.log"; exit 2; }
fi
check "dnsmasq is there" test -x "$(command -v dnsmasq)"

# ---------------------------------------------------------------------------------------------
section "two relays for example.test and a DNS server"
# start_relay NAME [OPTIONS...]: a relay for example.test with its state in $scratch/NAME, TLS
# on a free port; sets `port`.
start_relay() {
  local name=$1
  shift
  mkdir -p "$scratch/$name"
  spawn "$name" 300 "$relay" --state-dir "$scratch/$name" --demo-user '' --host example.test \
    --realm example.test --listen 127.0.0.1:0 "$@"
  wait_for_log 20 "$name" "listening on" ||
    { echo "   $name did not start:" && show "$scratch/$name.err"; }
  port=$(sed -n 's|.*as msrps://example.test:\([0-9]*\);tcp.*|\1|p' "$scratch/$name.err" | head -1)
}
# wait_for_log SECONDS NAME TEXT: waits until job NAME's stderr holds TEXT.
wait_for_log() {
  timeout "$1" bash -c 'until grep -qs "$1" "$0"; do sleep 0.05; done' "$scratch/$2.err" "$3"
}
start_relay r1
r1_port=$port
# A relay farm with one certificate for its domain: r1 made it, r2 presents it too.
start_relay r2 --cert "$scratch/r1/cert.pem" --key "$scratch/r1/key.pem"
r2_port=$port
check "both relays listen" test -n "$r1_port" -a -n "$r2_port"
# The same users on both, with one password.
(umask 077 && head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$scratch/password")
for r in r1 r2; do
  "$relay" user add alice --state-dir "$scratch/$r" --realm example.test <"$scratch/password"
  "$relay" user add bob --state-dir "$scratch/$r" --realm example.test <"$scratch/password"
done

# The zone: SRV records whose targets are not in the certificates (RFC 4976 §9.2 checks the
# URI's host, example.test); mixed.test leads to a relay whose certificate names example.test,
# then to the first relay's port.
zone=(--local=/test/
  --srv-host=_msrps._tcp.example.test,relay-a.example.test,"$r1_port",10,1
  --srv-host=_msrps._tcp.example.test,relay-b.example.test,"$r2_port",20,1
  --srv-host=_msrps._tcp.mixed.test,relay-b.example.test,"$r2_port",10,1
  --srv-host=_msrps._tcp.mixed.test,relay-a.example.test,"$r1_port",20,1
  --host-record=relay-a.example.test,127.0.0.1
  --host-record=relay-b.example.test,127.0.0.1)
# A free UDP and TCP port is found by trying: dnsmasq exits at once when it cannot bind.
for attempt in 1 2 3 4 5 6 7 8; do
  dns_port=$((20000 + RANDOM % 40000))
  rm -f "$scratch/dnsmasq.log"
  spawn dnsmasq 300 dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
    --listen-address=127.0.0.1 --bind-interfaces --port="$dns_port" --user="$(id -un)" \
    --log-queries --log-facility="$scratch/dnsmasq.log" "${zone[@]}"
  timeout 10 bash -c 'until grep -qs "started" "$0" || ! kill -0 "$1"; do sleep 0.05; done' \
    "$scratch/dnsmasq.log" "${pid[dnsmasq]}" 2>/dev/null
  kill -0 "${pid[dnsmasq]}" 2>/dev/null && break
  finish dnsmasq
done
check "dnsmasq serves the zone on 127.0.0.1:$dns_port" kill -0 "${pid[dnsmasq]}"

# via USER: the options that make msrp use the relay for $domain (example.test unless set) as
# USER; with "${dns[@]}", found through our DNS server.
via() {
  client_options=(--relay "msrps://${domain:-example.test};tcp" --user "$1"
    --password-file "$scratch/password" --ca-file "$scratch/r1/cert.pem")
}
dns=(--dns-server "127.0.0.1:$dns_port")
# receive NAME DIR: `msrp recv --count 1` as bob through the relay; sets `path` to his path.
receive() {
  via bob
  rm -f "$scratch/$1.uri"
  spawn "$1" 120 "$msrp" recv "${client_options[@]}" "${dns[@]}" --uri-file "$scratch/$1.uri" --dir "$2" \
    --count 1
  path=""
  wait_until 20 -s "$scratch/$1.uri" || { echo "   $1: no path" && show "$scratch/$1.err"; }
  path=$(sed -n "s/^'\([^']*\)'.*/\1/p" "$scratch/$1.uri")
}
# sessions NAME: how many sessions relay NAME opened.
sessions() {
  grep -c 'session .* opened for' "$scratch/$1.err"
}

# ---------------------------------------------------------------------------------------------
section "SRV: the client finds the first relay"
receive bob "$scratch/bob1"
check "bob's path starts at the first relay" mentions "$scratch/bob.uri" \
  "^'msrps://example.test:$r1_port/"
via alice
run alice 60 "$msrp" send "${client_options[@]}" "${dns[@]}" --connect "$path" --text "found by SRV"
check "alice's send exits 0" test $? -eq 0
check "and says delivered" mentions "$scratch/alice.out" '^delivered 12 bytes$'
finish bob
check "bob's recv exits 0" test $? -eq 0
check "bob got the text" equal "$(cat "$scratch"/bob1/*.txt 2>/dev/null)" "found by SRV"
check "the client asked for the SRV records" \
  mentions "$scratch/dnsmasq.log" 'query\[SRV\] _msrps._tcp.example.test'
check "and the target's address" mentions "$scratch/dnsmasq.log" 'query\[A\] relay-a.example.test'
check "both sessions on the first relay" equal "$(sessions r1)" 2
check "none on the second" equal "$(sessions r2)" 0

# ---------------------------------------------------------------------------------------------
section "failover: the first relay stopped"
stop r1
receive bob "$scratch/bob2"
check "bob's path starts at the second relay" mentions "$scratch/bob.uri" \
  "^'msrps://example.test:$r2_port/"
check "after saying the first did not answer" \
  mentions "$scratch/bob.err" "relay relay-a.example.test \(127.0.0.1 port $r1_port\) did not answer"
via alice # and the DNS server from the environment this time
MSRP_DNS_SERVER=127.0.0.1:$dns_port run alice 60 "$msrp" send "${client_options[@]}" \
  --connect "$path" --text "failed over"
check "alice's send (MSRP_DNS_SERVER) exits 0" test $? -eq 0
finish bob
check "bob's recv exits 0" test $? -eq 0
check "bob got the text" equal "$(cat "$scratch"/bob2/*.txt 2>/dev/null)" "failed over"
check "both sessions on the second relay" equal "$(sessions r2)" 2

# ---------------------------------------------------------------------------------------------
section "errors (the first relay still stopped)"
domain=nothing.test via alice
run alice 30 "$msrp" send "${client_options[@]}" "${dns[@]}" --connect "$path" --text x
check "a domain without records exits 3" test $? -eq 3
check "with one line" one_line "$scratch/alice.err"
check "that says so" mentions "$scratch/alice.err" \
  '^msrp: cannot find relay msrps://nothing.test;tcp: no SRV, A or AAAA records for nothing.test$'
domain=mixed.test via alice
run alice 30 "$msrp" send "${client_options[@]}" "${dns[@]}" --connect "$path" --text x
check "no relay that answers with a certificate for the domain: exit 3" test $? -eq 3
check "a certificate for another domain is a relay that does not answer" \
  mentions "$scratch/alice.err" '^msrp: relay relay-b.example.test .* did not answer: certificate verify failed.*; trying the next$'
check "the last one refused" mentions "$scratch/alice.err" \
  "^msrp: cannot connect to relay relay-a.example.test \(127.0.0.1 port $r1_port\): Connection refused$"
via alice
run alice 30 "$msrp" send "${client_options[@]}" --dns-server 'not-an-address' \
  --connect "$path" --text x
check "a bad --dns-server exits 2" test $? -eq 2

stop r2
check "the second relay stops cleanly" test $? -eq 0
stop dnsmasq
section ""

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
