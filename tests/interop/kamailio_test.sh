#!/usr/bin/env bash
# Interop: the msrp command as an RFC 4976 client through Kamailio's MSRP relay (the msrp
# module of Debian 12's kamailio 5.6) and through msrp-relay, with digest AUTH, over TCP and
# over TLS, on loopback: the same scenarios through both relays, checked by one set of
# expectations (where the relays differ, the table `expect` below says how), then mixed paths
# where each relay forwards to the other.
#
#   bash tests/interop/kamailio_test.sh build/debug/apps/msrp/msrp \
#     build/debug/apps/msrp-relay/msrp-relay
#
# It installs kamailio and kamailio-tls-modules when missing (root, Debian's apt), writes a
# Kamailio configuration (kamailio.cfg.in beside this script, filled in), a TLS profile and a
# self-signed certificate for 127.0.0.1 into a scratch directory, with random passwords and free
# ports, runs Kamailio in the foreground and msrp-relay beside it, and stops both at exit.
# KAMAILIO_TEST_LOGS=DIR keeps both relays' logs, Kamailio's configuration, every client's
# output and (where tshark is installed) a capture of Kamailio's plain-TCP listeners in DIR;
# KAMAILIO_DEBUG=3 makes Kamailio's log verbose; KAMAILIO_TEST_BIG_MB sets the size of the
# large file (16 MiB); INTEROP_RELAYS="kamailio" (or "msrp-relay", or "") limits the shared
# scenarios to those relays.
#
# What was found (kamailio 5.6.3-2, the msrp module), each checked below unless said otherwise:
#
# 1. AUTH as the module does it: our client takes it over TLS only. msrp_cmap_save(), the module's AUTH
#    handler (its README's Example 1.18), answers
#        MSRP <tid> 200 OK / To-Path / From-Path / Use-Path: msrp://127.0.0.1:PORT/msrp-...;tcp /
#        Expires: 3600
#    with no Authentication-Info. RFC 4976 §9.1 says the relay "MUST include rspauth, cnonce,
#    nc, and qop parameters" in the 200 to AUTH. Our client checks rspauth, which proves the
#    relay knows the password (src/endpoint.cpp, on_auth_success); a 200 without it is taken
#    only from the first relay over TLS, whose certificate authenticated it (§5.1). Over plain
#    TCP `msrp recv` exits 3 with "msrp: relay msrp://127.0.0.1:PORT;tcp refused AUTH: 0 relay
#    did not prove it knows the password". The module README's other example (1.17, an htable)
#    builds its 200 in the script, with no Authentication-Info either (and its Expires check
#    answers 423 to every AUTH that has an Expires header). Everything else about AUTH suits
#    our client: the 401 is `WWW-Authenticate: Digest realm="REALM", nonce="...", qop="auth"`
#    (no algorithm: MD5), the digest uri we send (the To-Path URI, msrps://127.0.0.1:PORT;tcp)
#    is accepted, the realm is the script's, the Use-Path is well formed (session-id
#    "msrp-<hex>-<n>-<n>"), Expires is 3600 (auth_max_expires) unless asked. No nextnonce.
#
# 2. With an Authentication-Info computed in the Kamailio script (route[AUTH] in
#    kamailio.cfg.in: rspauth = MD5(HA1:nonce:nc:cnonce:auth:MD5(":" digest-uri))), our client
#    authenticates, and text and files with a success REPORT go through Kamailio, over TLS and
#    over TCP. Both peers on one Kamailio: the sender's To-Path is "K/alice K/bob bob";
#    msrp_relay() takes one URI off per pass, so Kamailio connects to itself (as a TLS client,
#    hence the [client:default] profile with verify_certificate = no) and routes the frame
#    again. Responses are hop by hop: Kamailio answers each SEND 200 itself and drops the 200s
#    coming back (their To-Path has one URI); REPORTs go end to end. Differences our client
#    takes in its stride: Kamailio keeps the sender's transaction id when it passes a request
#    on (our relay, citing RFC 4976 §6.4, makes a new one) and echoes Message-ID in its
#    responses. msrp_reply() answers REPORTs too (RFC 4975 §7.1.2: never): it means to skip
#    them but tests fline.msgtypeid (request or reply) against MSRP_REQ_REPORT (a method id),
#    so the script must not call it for a REPORT (seen in a capture; the check below is that
#    no REPORT is answered).
#
# 3. Wrong password or unknown user: 401 again with a fresh nonce; our client gives up after
#    the second 401 and exits 1: "msrp: relay msrps://...;tcp refused AUTH: 401 relay refused
#    the credentials".
#
# 4. Frames of 11239 bytes or more (start line, headers, body and end-line) cannot be routed:
#    the module builds no SIP message for them (msrp_env.c, MSRP_FAKED_SIPMSG_EXTRA = 11240),
#    so every $msrp(...), $var(...) and xlog in the script fails ("pv_get_spec_value(): bad
#    parameters") and the README configuration's last branch answers 501 (ours 413). Frames
#    over about 16 KB make Kamailio drop the connection ("tcp_read(): buffer overrun,
#    dropping"): our sender exits 3 "not delivered: failed: connection closed". Our client
#    sends a message in one chunk unless --chunk-size is given (endpoint::config chunk_ceiling
#    defaults to none, apps/msrp/cli.hpp chunk_size 0), so anything over about 10.8 KB needs
#    --chunk-size (10240 works: frames of about 10.6 KB).
#
# 5. No failure REPORTs, no back-pressure. A SEND to an unknown session: Kamailio answers the
#    sender's hop 200, then its second pass answers 481 to itself, and nobody tells the sender
#    (RFC 4976 §6.4.3: an error response becomes a REPORT for the sender): our client waits
#    for its success REPORT until --timeout (exit 3, "timed out") or its report_timeout
#    (120 s, then 408 "no success report", exit 1). A large file: Kamailio reads the sender as
#    fast as it comes and queues for the next hop, up to tcp_conn_wq_max (32 KB): "write queue
#    full or timeout", the next hop's connection is closed, the chunks after it are dropped
#    ("TCP/TLS connection not found") while the sender keeps getting its hop 200s, and waits
#    for a REPORT that never comes. Over TLS also the tls module's ct_wq_max (64 KB: "ct write
#    buffer full"). Whether it happens depends on how fast the receiver drains: a few MB pass
#    on loopback; 32 MB over TLS failed in every run here, over TCP in about half. By hand, with
#    tcp_conn_wq_max and the tls module's ct_wq_max and con_ct_wq_max raised to 256 MB,
#    tcp_wq_max to 512 MB, and 1 GB of shared memory (-m 1024), 64 MB passed over TLS in
#    1.5 s: Kamailio then holds the whole file in memory.
#
# 6. Mixed paths work both ways. Kamailio passes a request on to msrp-relay when its To-Path
#    names msrp-relay next (msrp_relay(), as a TLS client with no certificate: msrp-relay takes
#    it like any client sending to one of its sessions), and msrp-relay to Kamailio over TLS,
#    checking Kamailio's certificate (its --ca-file). A client with Kamailio as its inner relay
#    and msrp-relay as its outer one authenticates to msrp-relay through Kamailio (RFC 4976
#    §5.1) once the Kamailio script sends the response back over the client's session
#    connection: msrp_relay() alone looks the client's URI (client.invalid) up in DNS and drops
#    the response ("msrp_uri_to_dstinfo(): failed to resolve").
#
# Exit statuses (apps/msrp/cli.hpp): 0 delivered, 1 not delivered, 2 bad input, 3 network.
set -u
msrp_built=${1:?usage: kamailio_test.sh MSRP_BINARY MSRP_RELAY_BINARY}
relay_built=${2:?usage: kamailio_test.sh MSRP_BINARY MSRP_RELAY_BINARY}
here=$(cd "$(dirname "$0")" && pwd)
big_mb=${KAMAILIO_TEST_BIG_MB:-16}

source "$here/../net/lib.sh"
source "$here/kamailio.sh"
binary msrp "$msrp_built"
binary msrp_relay "$relay_built"

# ---------------------------------------------------------------------------------------------
section "install Kamailio (only what is missing)"
kamailio_install || exit 2
check "kamailio with the msrp module" test -f "$modules/msrp.so"
check "and the tls module" test -f "$modules/tls.so"
kamailio -v 2>/dev/null | head -1 | sed 's/^/   /'

# ---------------------------------------------------------------------------------------------
section "configuration: certificate, users, ports"
users=(alice bob)
kamailio_prepare "${users[@]}"
check "a self-signed certificate for 127.0.0.1" test -s "$k/cert.pem"

# ---------------------------------------------------------------------------------------------
section "start Kamailio"
start_kamailio || { echo "FAILED: Kamailio did not start"; exit 1; }
check "Kamailio started and accepts on its four ports" kill -0 "${pid[kamailio]}"
kamailio_pid=$(process kamailio)
echo "   module AUTH: msrp://127.0.0.1:$module_tcp;tcp msrps://127.0.0.1:$module_tls;tcp"
echo "   script AUTH: msrp://127.0.0.1:$tcp_port;tcp msrps://127.0.0.1:$tls_port;tcp"
if command -v ss >/dev/null; then
  # The listening sockets belong to Kamailio's tcp_main child: any process of its group.
  # Looked at a few times: ss and pgrep see the processes at slightly different moments.
  listeners() {
    ss -Hltunp | grep -E "pid=($(pgrep -g "${pid[kamailio]}" | paste -sd'|'))," \
      >"$scratch/listeners.txt"
    test "$(grep -c ' 127\.0\.0\.1:' "$scratch/listeners.txt")" -eq 4 -a \
      "$(wc -l <"$scratch/listeners.txt")" -eq 4
  }
  for try in 1 2 3 4 5; do listeners && break; sleep 1; done
  check "four listening sockets, all on 127.0.0.1 (ss)" listeners
  listeners || { show "$scratch/listeners.txt"; ss -Hltnp | grep kamailio | sed 's/^/   ss: /'; }
fi
if command -v tshark >/dev/null && [ -n "${KAMAILIO_TEST_LOGS:-}" ]; then
  spawn tshark 1800 tshark -q -i lo -w "$scratch/lo.pcapng" \
    -f "tcp port $module_tcp or tcp port $tcp_port"
  sleep 1
fi

# log_mark: the number of lines Kamailio has logged; log_since MARK: what it logged after them.
log_mark() { wc -l <"$scratch/kamailio.err"; }
log_since() { tail -n +"$(($1 + 1))" "$scratch/kamailio.err"; }

# The relays under test, by name: port_of[RELAY/SCHEME] and the CA file that verifies RELAY.
# "kamailio-module" is Kamailio's pair of listeners whose AUTH the msrp module answers.
declare -A port_of=(
  [kamailio/msrp]=$tcp_port [kamailio/msrps]=$tls_port
  [kamailio-module/msrp]=$module_tcp [kamailio-module/msrps]=$module_tls
)
declare -A ca_of=([kamailio]=$k/cert.pem [kamailio-module]=$k/cert.pem)

# relay_options RELAY SCHEME USER: the options that make msrp use RELAY over SCHEME as USER, in
# `client_options`; the password comes from $password_file if set, else from USER's file.
relay_options() {
  client_options=(--relay "$2://127.0.0.1:${port_of[$1/$2]};tcp" --user "$3"
    --password-file "${password_file:-$k/$3.password}")
  [ "$2" = msrps ] && client_options+=(--ca-file "${ca_of[$1]}")
}

# receive NAME DIR RELAY SCHEME USER [OPTIONS...]: `msrp recv` through RELAY; waits for its path
# and sets `path` to it (empty if none came; lib.sh's receive_path).
receive() {
  relay_options "$3" "$4" "$5"
  receive_path "$1" "$2" "${@:6}"
}

# send NAME RELAY SCHEME USER SECONDS [OPTIONS...]: `msrp send` through RELAY to `path`, bounded
# by SECONDS; returns its status.
send() {
  local name=$1 seconds=$5
  relay_options "$2" "$3" "$4"
  shift 5
  run "$name" "$seconds" "$msrp" send "${client_options[@]}" --connect "$path" "$@"
}

# ---------------------------------------------------------------------------------------------
# raw_auth PORT USER PASSWORD: AUTH by hand over plain TCP (bash and md5sum): an AUTH without
# credentials, then one answering the 401 (MD5, qop=auth, nc=00000001), printing each frame
# Kamailio sends back and, last, "expected rspauth=..." as the client computes it.
raw_auth() {
  local port=$1 user=$2 password=$3
  local to="msrp://127.0.0.1:$port;tcp" from="msrp://client.invalid/rawclient;tcp"
  local frame challenge realm nonce ha1 response cnonce=0a4f113b nc=00000001
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  read_frame() {  # read_frame TID: one frame from fd 3, up to the end-line of TID
    local line
    while IFS= read -r -t 5 line <&3; do
      line=${line%$'\r'}
      printf '%s\n' "$line"
      case $line in "-------$1"[\$+#]) return 0 ;; esac
    done
    return 1
  }
  md5() { printf '%s' "$1" | md5sum | cut -d' ' -f1; }
  printf 'MSRP rawauth1 AUTH\r\nTo-Path: %s\r\nFrom-Path: %s\r\n-------rawauth1$\r\n' \
    "$to" "$from" >&3
  frame=$(read_frame rawauth1) || { printf '%s\n' "$frame"; return 1; }
  printf '%s\n' "$frame"
  challenge=$(sed -n 's/^WWW-Authenticate: //p' <<<"$frame")
  realm=$(sed -n 's/.*realm="\([^"]*\)".*/\1/p' <<<"$challenge")
  nonce=$(sed -n 's/.*nonce="\([^"]*\)".*/\1/p' <<<"$challenge")
  ha1=$(md5 "$user:$realm:$password")
  response=$(md5 "$ha1:$nonce:$nc:$cnonce:auth:$(md5 "AUTH:$to")")
  printf 'MSRP rawauth2 AUTH\r\nTo-Path: %s\r\nFrom-Path: %s\r\nAuthorization: Digest username="%s", realm="%s", nonce="%s", uri="%s", qop=auth, nc=%s, cnonce="%s", response="%s"\r\n-------rawauth2$\r\n' \
    "$to" "$from" "$user" "$realm" "$nonce" "$to" "$nc" "$cnonce" "$response" >&3
  read_frame rawauth2 || return 1
  echo "expected rspauth=\"$(md5 "$ha1:$nonce:$nc:$cnonce:auth:$(md5 ":$to")")\""
  exec 3>&-
}

section "AUTH on the wire (by hand, plain TCP)"
(raw_auth "$module_tcp" alice "$(cat "$k/alice.password")") >"$scratch/raw-module.txt" 2>&1
check "module AUTH: the exchange completes" test $? -eq 0
show "$scratch/raw-module.txt"
check "the 401 has WWW-Authenticate: Digest realm, nonce, qop=\"auth\"" \
  mentions "$scratch/raw-module.txt" "^WWW-Authenticate: Digest realm=\"$realm\", nonce=\"[^\"]+\", qop=\"auth\""
check "the 200 has Use-Path msrp://127.0.0.1:PORT/msrp-...;tcp" \
  mentions "$scratch/raw-module.txt" "^Use-Path: msrp://127.0.0.1:$module_tcp/msrp-[^ ]+;tcp$"
check "and Expires: 3600 (auth_max_expires)" mentions "$scratch/raw-module.txt" '^Expires: 3600$'
check "but no Authentication-Info (RFC 4976 §9.1: MUST)" \
  bash -c '! grep -q "^Authentication-Info:" "$0"' "$scratch/raw-module.txt"
(raw_auth "$tcp_port" alice "$(cat "$k/alice.password")") >"$scratch/raw-script.txt" 2>&1
check "script AUTH: the exchange completes" test $? -eq 0
show "$scratch/raw-script.txt"
expected=$(sed -n 's/^expected \(rspauth="[0-9a-f]*"\)$/\1/p' "$scratch/raw-script.txt")
check "its 200 has Authentication-Info with the rspauth a client expects" \
  mentions "$scratch/raw-script.txt" "^Authentication-Info: ${expected:-none}, cnonce=\"0a4f113b\", nc=00000001, qop=auth$"

# ---------------------------------------------------------------------------------------------
section "our client, AUTH answered by the module (msrp_cmap_save)"
# The module's 200 carries no Authentication-Info. Over TLS the relay's certificate has
# authenticated it (RFC 4976 §5.1), so our client takes the 200 and messages go through.
mark=$(log_mark)
receive bob "$scratch/bob-module" kamailio-module msrps bob --count 1 --timeout 30
check "over TLS: bob gets a path with the module's Use-Path" \
  mentions "$scratch/bob.uri" "^'msrps?://127.0.0.1:$module_tls/msrp-[^ ]+;tcp msrps://client.invalid:9/"
check "while Kamailio answered the AUTH with msrp_cmap_save" \
  bash -c 'grep -q "AUTH of .bob. accepted, answered by msrp_cmap_save" <(tail -n +"$0" "$1")' \
  "$((mark + 1))" "$scratch/kamailio.err"
send alice kamailio-module msrps alice 60 --text "through the module's AUTH"
check "alice's send through it exits 0" test $? -eq 0
[ -s "$scratch/alice.err" ] && show "$scratch/alice.err"
finish bob
check "bob's recv exits 0" test $? -eq 0
# Over plain TCP nothing vouches for the relay: the missing proof is refused.
receive bob "$scratch/bob-module-tcp" kamailio-module msrp bob --count 1 --timeout 20
finish bob
status=$?
check "over TCP: msrp recv gets no path: exit 3" test $status -eq 3
check "saying the relay did not prove it knows the password" \
  mentions "$scratch/bob.err" 'relay did not prove it knows the password'

# ---------------------------------------------------------------------------------------------
section "start msrp-relay beside it"
# Our relay, with the same users and passwords, on free ports of 127.0.0.1, TLS and plain TCP.
# It trusts Kamailio's certificate: in the mixed paths below it opens TLS connections to
# Kamailio as a next hop, and checks who answers (RFC 4976 §6.4; §9.3 wants TLS between relays).
r=$scratch/relay-state
mkdir -p "$r"
for user in "${users[@]}"; do
  "$msrp_relay" user add "$user" --state-dir "$r" --realm "$realm" <"$k/$user.password"
done
spawn msrp_relay 1800 "$msrp_relay" --state-dir "$r" --demo-user '' --host 127.0.0.1 --realm "$realm" \
  --listen 127.0.0.1:0 --listen-tcp 127.0.0.1:0 --ca-file "$k/cert.pem"
timeout 20 bash -c 'until grep -qs "as msrp://" "$0"; do sleep 0.05; done' "$scratch/msrp_relay.err"
port_of[msrp-relay/msrps]=$(sed -n 's|.*as msrps://127.0.0.1:\([0-9]*\);tcp.*|\1|p' "$scratch/msrp_relay.err")
port_of[msrp-relay/msrp]=$(sed -n 's|.*as msrp://127.0.0.1:\([0-9]*\);tcp.*|\1|p' "$scratch/msrp_relay.err")
ca_of[msrp-relay]=$r/cert.pem
check "msrp-relay started, TLS and TCP" test -n "${port_of[msrp-relay/msrps]}" -a \
  -n "${port_of[msrp-relay/msrp]}"
echo "   msrp-relay: msrp://127.0.0.1:${port_of[msrp-relay/msrp]};tcp msrps://127.0.0.1:${port_of[msrp-relay/msrps]};tcp"

# ---------------------------------------------------------------------------------------------
# The same scenarios through each relay, checked by the same expectations, except where the
# relays differ in what the client can learn (docs/relay-compatibility.md):
#   unknown session  Kamailio sends no failure REPORT: the sender waits until --timeout (3);
#                    msrp-relay sends a REPORT 481: not delivered (1).
#   12000-byte chunks  Kamailio cannot route frames over 11238 bytes: 413 (1); msrp-relay: 0.
#   one 30000-byte frame  Kamailio drops the connection (3); msrp-relay: 0.
#   unpaced $big_mb MiB  Kamailio, with no back-pressure, may lose it: the sender is then told
#                    (1 or 3) and nothing is saved; msrp-relay delivers it (0).
declare -A expect=(
  [kamailio/unknown_session]=3 [msrp-relay/unknown_session]=1
  [kamailio/12000_chunks]=1 [msrp-relay/12000_chunks]=0
  [kamailio/one_frame]=3 [msrp-relay/one_frame]=0
  [kamailio/unpaced]="0 1 3" [msrp-relay/unpaced]=0
)
declare -A expect_error=(
  [kamailio/unknown_session]='timed out' [msrp-relay/unknown_session]='failed: 481'
  [kamailio/12000_chunks]='failed: 413' [kamailio/one_frame]='connection closed'
)

# expected RELAY/SCENARIO STATUS NAME: checks a status against `expect`, and the sender's error
# against `expect_error` when it failed.
expected() {
  check "$2: $4 (exit ${expect[$1]// / or })" status_in "$3" ${expect[$1]}
  if [ "$3" -ne 0 ]; then
    [ -n "${expect_error[$1]:-}" ] &&
      check "$2: the sender says: ${expect_error[$1]}" mentions "$scratch/alice.err" "${expect_error[$1]}"
    show "$scratch/alice.err"
  fi
}

# text RELAY SCHEME TEXT: bob receives through RELAY, alice sends TEXT to him.
text() {
  local relay=$1 scheme=$2 text=$3
  receive bob "$scratch/bob-$relay-$scheme" "$relay" "$scheme" bob --count 1
  check "$relay $scheme: bob's path is the relay's Use-Path then his own" \
    mentions "$scratch/bob.uri" "^'$scheme://127.0.0.1:${port_of[$relay/$scheme]}/[^/ ;]+;tcp $scheme://client.invalid:9/"
  send alice "$relay" "$scheme" alice 60 --text "$text"
  check "$relay $scheme: alice's send exits 0" test $? -eq 0
  check "$relay $scheme: and says delivered (the success REPORT came back)" \
    mentions "$scratch/alice.out" "^delivered ${#text} bytes$"
  [ -s "$scratch/alice.err" ] && show "$scratch/alice.err"
  finish bob
  check "$relay $scheme: bob's recv exits 0" test $? -eq 0
  local saved
  saved=$(cut -f1 "$scratch/bob.out" | head -1)
  check "$relay $scheme: bob got the text" equal "$(cat "$saved" 2>/dev/null)" "$text"
}

# chat RELAY: two `msrp chat`s through RELAY over TLS, their input piped: each line reaches the
# other side and each sent line is reported delivered (the success REPORT came back).
chat() {
  local relay=$1
  rm -f "$scratch/alice-chat.uri"
  relay_options "$relay" msrps alice
  (sleep 2; echo "hello from alice"; sleep 3; echo /quit) |
    timeout -k 5 40 "$msrp" chat "${client_options[@]}" --uri-file "$scratch/alice-chat.uri" \
      --dir "$scratch/alice-chat-$relay" >"$scratch/alice-chat.out" 2>"$scratch/alice-chat.err" &
  pid[alice_chat]=$!
  if timeout 20 bash -c 'until [ -s "$0" ]; do sleep 0.05; done' "$scratch/alice-chat.uri"; then
    relay_options "$relay" msrps bob
    (echo "hello from bob"; sleep 4; echo /quit) |
      timeout -k 5 40 "$msrp" chat "${client_options[@]}" \
        --connect "$(tr -d "'" <"$scratch/alice-chat.uri")" --dir "$scratch/bob-chat-$relay" \
        >"$scratch/bob-chat.out" 2>"$scratch/bob-chat.err"
    check "$relay chat: bob leaves with status 0" test $? -eq 0
  fi
  finish alice_chat
  check "$relay chat: alice leaves with status 0" test $? -eq 0
  check "$relay chat: alice shows bob's line" grep -q ": hello from bob" "$scratch/alice-chat.out"
  check "$relay chat: bob shows alice's line" grep -q ": hello from alice" "$scratch/bob-chat.out"
  check "$relay chat: bob's line is delivered" grep -q "delivered" "$scratch/bob-chat.out"
  check "$relay chat: alice's line is delivered" grep -q "delivered" "$scratch/alice-chat.out"
}

# big RELAY SCHEME NAME OPTIONS...: bob receives the big file through RELAY, alice sends it with
# OPTIONS; returns alice's status, bob stopped or finished, and checks what arrived.
big() {
  local relay=$1 scheme=$2 name=$3 status start
  shift 3
  receive bob "$scratch/bob-$name-$relay-$scheme" "$relay" "$scheme" bob --count 1 --timeout 120 \
    --progress-reports 4096
  start=$(date +%s.%N)
  send alice "$relay" "$scheme" alice 120 --file "$scratch/big.bin" --chunk-size 10240 "$@"
  status=$?
  echo "   $relay $scheme: alice exited $status after $(elapsed "$start") s"
  if [ $status -eq 0 ]; then
    finish bob
    check "$relay $scheme $name: the file arrived whole (sha256)" same_file "$scratch/big.bin" \
      "$scratch/bob-$name-$relay-$scheme/big.bin"
  else
    stop bob
    check "$relay $scheme $name: nothing under the final name" \
      test ! -e "$scratch/bob-$name-$relay-$scheme/big.bin"
  fi
  return $status
}

head -c 1048576 /dev/urandom >"$scratch/1m.bin"
head -c 30000 /dev/urandom >"$scratch/30k.bin"
head -c $((big_mb * 1024 * 1024)) /dev/urandom >"$scratch/big.bin"
path_to_nobody() {  # path_to_nobody RELAY: a path through RELAY to a session it does not have
  path="msrps://127.0.0.1:${port_of[$1/msrps]}/0000000000000000;tcp msrps://client.invalid/x;tcp"
}

for relay in ${INTEROP_RELAYS-kamailio msrp-relay}; do
  section "$relay: text over TLS and TCP"
  mark=$(log_mark)
  text "$relay" msrps "hello through $relay over tls"
  if [ "$relay" = kamailio ]; then
    check "Kamailio saw the SEND twice (it routes to itself: both sessions are its own)" \
      test "$(log_since "$mark" | grep -c 'frame in on tls:.* MSRP [^ ]* SEND')" -ge 2
    check "and passed the REPORT on" \
      test "$(log_since "$mark" | grep -c 'frame in on tls:.* MSRP [^ ]* REPORT')" -ge 1
    reports=$(log_since "$mark" | sed -n 's/.* MSRP \([^ ]*\) REPORT.*/\1/p' | sort -u | paste -sd'|')
    check "and no one answered it (RFC 4975 §7.1.2; responses are logged as <null>CODE)" \
      bash -c '! grep -Eq "MSRP ($0) <null>" <(tail -n +"$1" "$2")' "${reports:-none}" \
      "$((mark + 1))" "$scratch/kamailio.err"
  fi
  text "$relay" msrp "hello through $relay over tcp"

  section "$relay: chat both ways over TLS"
  chat "$relay"

  section "$relay: wrong password, unknown user"
  mark=$(log_mark)
  path_to_nobody "$relay"
  password_file=$k/wrong.password send mallory "$relay" msrps alice 30 --text "let me in"
  check "$relay: a wrong password exits 1" test $? -eq 1
  check "$relay: saying the relay refused AUTH with 401" mentions "$scratch/mallory.err" 'refused AUTH: 401'
  check "$relay: in one line" one_line "$scratch/mallory.err"
  show "$scratch/mallory.err"
  password_file=$k/wrong.password send mallory "$relay" msrp mallory 30 --text "let me in"
  check "$relay: an unknown user exits 1 too" test $? -eq 1
  check "$relay: saying the relay refused AUTH with 401" mentions "$scratch/mallory.err" 'refused AUTH: 401'
  if [ "$relay" = kamailio ]; then
    check "Kamailio logged the failures" \
      test "$(log_since "$mark" | grep -c "AUTH failed for user")" -ge 2
  else
    check "msrp-relay logged the failures" \
      test "$(grep -c 'AUTH failed for user' "$scratch/msrp_relay.err")" -ge 2
  fi

  section "$relay: unknown session"
  mark=$(log_mark)
  path_to_nobody "$relay"
  send alice "$relay" msrps alice 60 --text "to nobody" --timeout 5
  expected "$relay/unknown_session" "$relay" $? "a send to a session the relay does not have"
  [ "$relay" = kamailio ] &&
    check "while Kamailio answered 481 to itself (the second pass) and no one else" \
      bash -c 'grep -q "for unknown session .0000000000000000.: 481" <(tail -n +"$0" "$1")' \
      "$((mark + 1))" "$scratch/kamailio.err"

  section "$relay: frame sizes"
  for scheme in msrps msrp; do
    receive bob "$scratch/bob-1m-$relay-$scheme" "$relay" "$scheme" bob --count 1
    send alice "$relay" "$scheme" alice 60 --file "$scratch/1m.bin" --chunk-size 10240
    check "$relay $scheme: 1 MiB in 10240-byte chunks: the send exits 0" test $? -eq 0
    finish bob
    check "$relay $scheme: the file arrived whole (sha256)" same_file "$scratch/1m.bin" \
      "$scratch/bob-1m-$relay-$scheme/1m.bin"
  done
  mark=$(log_mark)
  receive bob "$scratch/bob-12k-$relay" "$relay" msrp bob --count 1 --timeout 20
  send alice "$relay" msrp alice 30 --file "$scratch/30k.bin" --chunk-size 12000
  expected "$relay/12000_chunks" "$relay" $? "30000 bytes in 12000-byte chunks"
  [ "$relay" = kamailio ] && check "Kamailio's script could not read the frame" \
    bash -c 'grep -q "pv_get_spec_value(): bad parameters" <(tail -n +"$0" "$1")' \
    "$((mark + 1))" "$scratch/kamailio.err"
  stop bob
  mark=$(log_mark)
  receive bob "$scratch/bob-1chunk-$relay" "$relay" msrp bob --count 1 --timeout 20
  send alice "$relay" msrp alice 30 --file "$scratch/30k.bin"
  status=$?
  expected "$relay/one_frame" "$relay" $status "30000 bytes in one chunk (no --chunk-size)"
  if [ $status -eq 0 ]; then
    finish bob
    check "$relay: the file arrived whole" same_file "$scratch/30k.bin" "$scratch/bob-1chunk-$relay/30k.bin"
  else
    stop bob
    check "$relay: nothing under the final name" test ! -e "$scratch/bob-1chunk-$relay/30k.bin"
  fi
  [ "$relay" = kamailio ] && check "Kamailio dropped the connection: buffer overrun" \
    bash -c 'grep -q "buffer overrun, dropping" <(tail -n +"$0" "$1")' \
    "$((mark + 1))" "$scratch/kamailio.err"

  section "$relay: $big_mb MiB, unpaced"
  for scheme in msrp msrps; do
    mark=$(log_mark)
    big "$relay" "$scheme" unpaced --timeout 30
    expected "$relay/unpaced" "$relay $scheme" $? "$big_mb MiB in 10240-byte chunks, unpaced"
    [ "$relay" = kamailio ] && log_since "$mark" |
      grep -E 'write queue full|write buffer full|connection not found' |
      sed 's/^ *[0-9]*([0-9]*) //' | sort | uniq -c | sort -rn | head -3 | sed 's/^/   kamailio: /'
  done

  # Pacing (RFC 4975 §7.1.3): the receiver confirms every 4 KiB with a success REPORT and the
  # sender keeps at most 20 KiB unconfirmed, under Kamailio's 32 KiB (TCP) and 64 KiB (TLS)
  # write queues, so Kamailio never has to queue more than it can.
  section "$relay: $big_mb MiB, paced by success REPORTs"
  for scheme in msrp msrps; do
    big "$relay" "$scheme" paced --pace 20480 --timeout 100
    check "$relay $scheme: the paced send exits 0" test $? -eq 0
  done
done

# ---------------------------------------------------------------------------------------------
# Mixed paths (RFC 4976 §6.4): a relay forwards to the next To-Path URI, whoever's it is.
section "mixed path: alice through Kamailio, bob through msrp-relay"
mark=$(log_mark)
receive bob "$scratch/bob-mixed" msrp-relay msrps bob --count 2 --timeout 90 \
  --progress-reports 4096
send alice kamailio msrps alice 60 --text "from kamailio to msrp-relay" --timeout 20
check "alice's send exits 0, delivered (bob's success REPORT came back through both)" test $? -eq 0
send alice kamailio msrps alice 120 --file "$scratch/1m.bin" --chunk-size 10240 --pace 20480 \
  --timeout 60
status=$?
check "1 MiB the same way, paced, exits 0" test $status -eq 0
[ $status -eq 0 ] || show "$scratch/alice.err"
finish bob
check "bob's recv exits 0" test $? -eq 0
check "bob got the text" grep -rqx "from kamailio to msrp-relay" "$scratch/bob-mixed"
check "and the file whole" same_file "$scratch/1m.bin" "$scratch/bob-mixed/1m.bin"

section "mixed path: alice through msrp-relay, bob through Kamailio"
receive bob "$scratch/bob-mixed2" kamailio msrps bob --count 1 --timeout 30
send alice msrp-relay msrps alice 60 --text "from msrp-relay to kamailio" --timeout 20
check "alice's send exits 0, delivered" test $? -eq 0
finish bob
check "bob got the text" grep -rqx "from msrp-relay to kamailio" "$scratch/bob-mixed2"

section "mixed path: alice with two relays, Kamailio then msrp-relay"
# RFC 4976 §5.1: the client authenticates to its outer relay through the inner one; Kamailio
# passes the AUTH on (its To-Path has a further URI) and the response back.
receive bob "$scratch/bob-two" msrp-relay msrps bob --count 1 --timeout 30
relay_options kamailio msrps alice
run alice 60 "$msrp" send "${client_options[@]}" \
  --relay "msrps://127.0.0.1:${port_of[msrp-relay/msrps]};tcp" --connect "$path" \
  --text "through kamailio and msrp-relay" --timeout 20
status=$?
check "alice's send through both her relays exits 0" test $status -eq 0
[ $status -eq 0 ] || show "$scratch/alice.err"
finish bob
check "bob got the text" grep -rqx "through kamailio and msrp-relay" "$scratch/bob-two"

# ---------------------------------------------------------------------------------------------
section "stop msrp-relay and Kamailio"
stop msrp_relay
check "msrp-relay stops cleanly on SIGTERM (exit 0)" test $? -eq 0
if [ -n "${KAMAILIO_TEST_LOGS:-}" ]; then
  [ -n "${pid[tshark]:-}" ] && stop tshark
  mkdir -p "$KAMAILIO_TEST_LOGS"
  cp "$k/kamailio.cfg" "$k/tls.cfg" "$k/cert.pem" "$scratch"/*.err "$scratch"/*.out \
    "$scratch"/raw-*.txt "$KAMAILIO_TEST_LOGS/" 2>/dev/null
  [ -f "$scratch/lo.pcapng" ] && cp "$scratch/lo.pcapng" "$KAMAILIO_TEST_LOGS/"
  echo "   logs in $KAMAILIO_TEST_LOGS"
fi
kamailio_group=${pid[kamailio]}  # `timeout` leads the process group: Kamailio and its children
stop kamailio
check "SIGTERM: Kamailio is gone" bash -c '! kill -0 "$0" 2>/dev/null' "$kamailio_pid"
check "with all its processes" bash -c '! pgrep -g "$0" >/dev/null' "$kamailio_group"
section ""

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
