#!/usr/bin/env bash
# The msrp command end to end over loopback (127.0.0.1 only): quick mode and SDP offer/answer,
# TCP and TLS, a large file, bad input, peers that die mid-transfer, and a tshark capture that
# the Wireshark MSRP dissector must read without complaint.
#
#   bash tests/net/cli_test.sh build/debug/apps/msrp/msrp
#
# MSRP_CLI_BIG_MB sets the size of the large file (default 256) for quick local runs.
# Exit statuses the checks rely on (apps/msrp/cli.hpp): 0 delivered, 1 not delivered,
# 2 bad input, 3 network.
set -u
msrp_built=$1
big_mb=${MSRP_CLI_BIG_MB:-256}
abort_mb=128  # the transfer the abort checks interrupt; larger than any socket buffer

source "$(dirname "$0")/lib.sh"
binary msrp "$msrp_built"

unfinished() {  # unfinished PID FILE: the sender PID still runs and FILE is not there yet
  kill -0 "$1" && [ ! -e "$2" ]
}
tls_media() {  # tls_media SDP: an m= line for MSRP over TLS and a sha-256 fingerprint
  grep -q "^m=message [0-9]* TCP/TLS/MSRP" "$1" && grep -q "^a=fingerprint:sha-256 " "$1"
}

# listen NAME DIR [OPTIONS...]: starts `msrp recv` in quick mode and waits for its URI file.
# Sets `uri` and `fingerprint`, and `peer` to the send options that reach it.
listen() {
  local name=$1 dir=$2
  shift 2
  rm -f "$scratch/$name.uri"
  spawn "$name" 120 "$msrp" recv --listen 127.0.0.1:0 --uri-file "$scratch/$name.uri" \
    --dir "$dir" "$@"
  uri=""
  fingerprint=""
  peer=()
  if ! wait_until 20 -s "$scratch/$name.uri"; then
    echo "   $name: no URI file; stderr:" && cat "$scratch/$name.err"
    return 1
  fi
  uri=$(sed -n "s/^'\([^']*\)'.*/\1/p" "$scratch/$name.uri")
  fingerprint=$(sed -n "s/.*--fingerprint '\([^']*\)'.*/\1/p" "$scratch/$name.uri")
  peer=(--connect "$uri")
  [ -n "$fingerprint" ] && peer+=(--fingerprint "$fingerprint")
  return 0
}

port_of() { sed -n 's|^msrp[s]*://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' <<<"$1"; }

# ---------------------------------------------------------------------------------------------
section "quick mode, text over TCP"
dir=$scratch/text
listen recv "$dir"
check "recv writes a msrp:// URI ending in ;tcp" \
  mentions "$scratch/recv.uri" "^'msrp://127\.0\.0\.1:[0-9]+/[^']+;tcp'$"
run send 60 "$msrp" send "${peer[@]}" --text "hello over msrp"
check "send exits 0" test $? -eq 0
check "send prints delivered" mentions "$scratch/send.out" '^delivered 15 bytes$'
finish recv
check "recv exits 0" test $? -eq 0
check "recv prints one line" one_line "$scratch/recv.out"
check "the line is path<TAB>size<TAB>type" \
  mentions "$scratch/recv.out" "^$dir/[^	]+	15	text/plain"
saved=$(cut -f1 "$scratch/recv.out" | head -1)
check "the file holds the text" equal "$(cat "$saved" 2>/dev/null)" "hello over msrp"

# ---------------------------------------------------------------------------------------------
section "large file (${big_mb} MiB) over TCP and TLS"
head -c "${big_mb}M" /dev/urandom >"$scratch/big.bin"
for transport in tcp tls; do
  dir=$scratch/big-$transport
  if [ "$transport" = tls ]; then listen recv "$dir" --tls; else listen recv "$dir"; fi
  [ "$transport" = tls ] &&
    check "tls: URI file gives msrps and a sha-256 fingerprint" \
      mentions "$scratch/recv.uri" \
      "^'msrps://[^']+;tcp' --fingerprint 'sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}'$"
  started=$(date +%s.%N)
  run send 300 "$msrp" send "${peer[@]}" --file "$scratch/big.bin"
  status=$?
  finish recv
  recv_status=$?
  echo "   $transport: $big_mb MiB in $(elapsed "$started") s"
  check "$transport: send exits 0" test $status -eq 0
  check "$transport: recv exits 0" test $recv_status -eq 0
  check "$transport: recv names big.bin with its size" \
    mentions "$scratch/recv.out" \
    "^$dir/big\.bin	$((big_mb * 1024 * 1024))	application/octet-stream$"
  check "$transport: sha256sum equal" same_file "$scratch/big.bin" "$dir/big.bin"
  check "$transport: no .part file left" no_part "$dir"
  rm -rf "$dir"
done

# ---------------------------------------------------------------------------------------------
section "SDP offer/answer"
for transport in tcp tls; do
  dir=$scratch/sdp-$transport
  offer=$scratch/offer-$transport.sdp
  answer=$scratch/answer-$transport.sdp
  tls=()
  [ "$transport" = tls ] && tls=(--tls)
  spawn recv 120 "$msrp" recv "${tls[@]}" --write-offer "$offer" --read-answer "$answer" \
    --dir "$dir"
  run send 60 "$msrp" send --read-offer "$offer" --write-answer "$answer" --text "hello by SDP"
  status=$?
  finish recv
  recv_status=$?
  check "$transport: send exits 0" test $status -eq 0
  check "$transport: send prints delivered" mentions "$scratch/send.out" '^delivered 12 bytes$'
  check "$transport: recv exits 0" test $recv_status -eq 0
  check "$transport: the offer is an SDP with an MSRP path" mentions "$offer" '^a=path:msrps?://'
  if [ "$transport" = tls ]; then
    check "tls: the offer is TCP/TLS/MSRP with a fingerprint" tls_media "$offer"
    check "tls: the answer is TCP/TLS/MSRP with a fingerprint" tls_media "$answer"
  fi
  check "$transport: recv prints one line" one_line "$scratch/recv.out"
  saved=$(cut -f1 "$scratch/recv.out" | head -1)
  check "$transport: the text arrives" equal "$(cat "$saved" 2>/dev/null)" "hello by SDP"
done

# ---------------------------------------------------------------------------------------------
section "bad input"
# The file is checked before the peer is reached: a bad file is bad input (2) even when the
# peer is unreachable, and the waiting recv is stopped afterwards.
listen recv "$scratch/bad-missing"
run send 30 "$msrp" send "${peer[@]}" --file "$scratch/no-such-file"
check "missing file: send exits 2" test $? -eq 2
check "missing file: one line on stderr" one_line "$scratch/send.err"
show "$scratch/send.err"
check "missing file: names the file" mentions "$scratch/send.err" "no-such-file"
stop recv
run send 30 "$msrp" send --connect 'msrp://127.0.0.1:1/abcd;tcp' --file "$scratch/no-such-file"
check "missing file, unreachable peer: still exit 2" test $? -eq 2

mkdir -p "$scratch/a-folder"
listen recv "$scratch/bad-folder"
run send 30 "$msrp" send "${peer[@]}" --file "$scratch/a-folder"
check "folder as file: send exits 2" test $? -eq 2
check "folder as file: one line on stderr" one_line "$scratch/send.err"
show "$scratch/send.err"
stop recv

if [ "$(id -u)" -ne 0 ]; then  # root reads any file
  echo secret >"$scratch/unreadable"
  chmod 000 "$scratch/unreadable"
  listen recv "$scratch/bad-unreadable"
  run send 30 "$msrp" send "${peer[@]}" --file "$scratch/unreadable"
  check "unreadable file: send exits 2" test $? -eq 2
  check "unreadable file: one line on stderr" one_line "$scratch/send.err"
  show "$scratch/send.err"
  finish recv
fi

run send 30 "$msrp" send --connect 'msrp://127.0.0.1:notaport/x;tcp' --text hi
check "malformed URI: send exits 2" test $? -eq 2
check "malformed URI: one line on stderr" one_line "$scratch/send.err"
show "$scratch/send.err"
run send 30 "$msrp" send --connect 'http://127.0.0.1/' --text hi
check "not an MSRP URI: send exits 2" test $? -eq 2

printf 'v=0\r\nthis is not SDP\r\n' >"$scratch/bad.sdp"
run send 30 "$msrp" send --read-offer "$scratch/bad.sdp" --write-answer "$scratch/bad-answer.sdp" \
  --text hi
check "malformed SDP offer: send exits 2" test $? -eq 2
check "malformed SDP offer: one line on stderr" one_line "$scratch/send.err"
show "$scratch/send.err"
check "malformed SDP offer: no answer written" test ! -e "$scratch/bad-answer.sdp"

# A port nothing listens on: one a recv listened on until it was stopped.
listen recv "$scratch/bad-port"
stop recv
port=$(port_of "$uri")
started=$(date +%s)
run send 60 "$msrp" send --connect "msrp://127.0.0.1:$port/abcd;tcp" --text hi
status=$?
check "unreachable peer: send exits 3" test $status -eq 3
check "unreachable peer: one line on stderr" one_line "$scratch/send.err"
show "$scratch/send.err"
check "unreachable peer: fails within 10 s" test $(($(date +%s) - started)) -le 10

listen recv "$scratch/bad-fingerprint" --tls
wrong="sha-256 $(printf '00:%.0s' $(seq 31))00"
run send 30 "$msrp" send --connect "$uri" --fingerprint "$wrong" --text hi
check "TLS fingerprint mismatch: send exits 3" test $? -eq 3
check "TLS fingerprint mismatch: one line on stderr" one_line "$scratch/send.err"
show "$scratch/send.err"
stop recv  # a failed handshake does not end a listening recv
check "TLS fingerprint mismatch: nothing received" test ! -s "$scratch/recv.out"

head -c 3000 /dev/urandom >"$scratch/binary.bin"
dir=$scratch/bad-type
listen recv "$dir" --accept-types text/plain
run send 30 "$msrp" send "${peer[@]}" --file "$scratch/binary.bin"
status=$?
check "type refused: send exits 1" test $status -eq 1
check "type refused: one line on stderr" one_line "$scratch/send.err"
show "$scratch/send.err"
check "type refused: says 415 or that the type is not accepted" \
  mentions "$scratch/send.err" '415|accept'
finish recv
echo "   recv exit $?:" && grep -v 'listening' "$scratch/recv.err" | show /dev/stdin
check "type refused: no file saved" test ! -e "$dir/binary.bin"
check "type refused: no .part file left" no_part "$dir"

head -c 5000 /dev/urandom >"$scratch/five-thousand.bin"
dir=$scratch/bad-size
listen recv "$dir" --max-size 1000
run send 30 "$msrp" send "${peer[@]}" --file "$scratch/five-thousand.bin"
status=$?
check "too large: send exits 1" test $status -eq 1
check "too large: one line on stderr mentioning 413" \
  bash -c 'test "$(wc -l <"$0")" -eq 1 && grep -q 413 "$0"' "$scratch/send.err"
show "$scratch/send.err"
finish recv
echo "   recv exit $?:" && grep -v 'listening' "$scratch/recv.err" | show /dev/stdin
check "too large: no file under the final name" test ! -e "$dir/five-thousand.bin"
check "too large: no .part file left" no_part "$dir"

# ---------------------------------------------------------------------------------------------
# Each abort check freezes the receiver (SIGSTOP) once data has arrived, so the transfer is
# surely unfinished when one side is killed, however fast loopback is.
section "chat"
# Two chats, their input piped: each line reaches the other side with the sender shown, each
# sent line reports its fate, and /send delivers a file into the other side's --dir.
head -c 100000 /dev/urandom >"$scratch/chat-file.bin"
rm -f "$scratch/alice.uri"
mkdir -p "$scratch/alice-files"
(sleep 2; echo "hello from alice"; sleep 2; echo /quit) |
  timeout -k 5 30 "$msrp" chat --listen 127.0.0.1:0 --uri-file "$scratch/alice.uri" \
    --dir "$scratch/alice-files" >"$scratch/alice.out" 2>"$scratch/alice.err" &
pid[alice]=$!
if wait_until 20 -s "$scratch/alice.uri"; then
  alice_uri=$(cut -d"'" -f2 "$scratch/alice.uri")
  (echo "hello from bob"; echo "/send $scratch/chat-file.bin"; sleep 3; echo /quit) |
    timeout -k 5 30 "$msrp" chat --connect "$alice_uri" >"$scratch/bob.out" 2>"$scratch/bob.err"
  check "chat: bob leaves with status 0" test $? -eq 0
fi
finish alice
check "chat: alice leaves with status 0" test $? -eq 0
check "chat: alice shows bob's line" grep -q "client.invalid.*: hello from bob" "$scratch/alice.out"
check "chat: bob shows alice's line" grep -q ": hello from alice" "$scratch/bob.out"
check "chat: bob's line is delivered" grep -q "message delivered" "$scratch/bob.out"
check "chat: bob's file is delivered" grep -q "chat-file.bin delivered" "$scratch/bob.out"
check "chat: alice saved the file" cmp -s "$scratch/chat-file.bin" "$scratch/alice-files/chat-file.bin"

section "sender killed mid-transfer"
head -c "${abort_mb}M" /dev/urandom >"$scratch/abort.bin"
dir=$scratch/abort-sender
listen recv "$dir"
receiver=$(process recv)
spawn send 120 "$msrp" send "${peer[@]}" --file "$scratch/abort.bin"
sender=$(process send)
wait_for_part 60 "$dir"
check "sender killed: data arrived" has_part "$dir"
kill -STOP "$receiver"
check "sender killed: transfer still running" unfinished "$sender" "$dir/abort.bin"
kill_job send "$sender"
kill -CONT "$receiver"
finish recv
status=$?
check "sender killed: recv reports the failure" \
  bash -c 'test "$0" -ne 0 || grep -q "^msrp: " "$1"' "$status" "$scratch/recv.err"
echo "   recv exit $status: $(tail -1 "$scratch/recv.err")"
check "sender killed: no abort.bin under the final name" test ! -e "$dir/abort.bin"
check "sender killed: no .bin file at all" test -z "$(find "$dir" -name '*.bin')"
check "sender killed: no .part file left" no_part "$dir"

section "receiver killed mid-transfer"
dir=$scratch/abort-receiver
listen recv "$dir"
receiver=$(process recv)
spawn send 120 "$msrp" send "${peer[@]}" --file "$scratch/abort.bin"
sender=$(process send)
wait_for_part 60 "$dir"
check "receiver killed: data arrived" has_part "$dir"
kill -STOP "$receiver"
check "receiver killed: transfer still running" unfinished "$sender" "$dir/abort.bin"
killed=$(date +%s)
kill_job recv "$receiver"
# Bounded: the sender must notice on its own, long before its 120 s timeout.
timeout 60 bash -c 'while kill -0 "$0" 2>/dev/null; do sleep 0.05; done' "$sender"
finish send
status=$?
echo "   send exit $status after $(($(date +%s) - killed)) s: $(tail -1 "$scratch/send.err")"
check "receiver killed: send exits 3 or 1" status_in $status 3 1
check "receiver killed: send gives up within 60 s" test $(($(date +%s) - killed)) -lt 60
check "receiver killed: one line on stderr" one_line "$scratch/send.err"

# ---------------------------------------------------------------------------------------------
section "tshark capture"
if ! command -v tshark >/dev/null; then
  echo "SKIPPED: tshark capture: tshark is not installed (scripts/deps.sh installs it)"
else
  # Two receivers listen before the capture starts, so their ports are known to the filter.
  listen recv_text "$scratch/capture-text"
  text_peer=("${peer[@]}")
  text_port=$(port_of "$uri")
  listen recv_file "$scratch/capture-file"
  file_peer=("${peer[@]}")
  file_port=$(port_of "$uri")
  pcap=$scratch/capture.pcapng
  spawn tshark 120 tshark -i lo -f "tcp port $text_port or tcp port $file_port" -w "$pcap"
  capturer=$(process tshark)
  if ! timeout 20 bash -c 'until grep -q "Capturing on" "$0"; do
         kill -0 "$1" 2>/dev/null || exit 1; sleep 0.1; done' "$scratch/tshark.err" "$capturer"
  then
    why=$(grep -v 'Running as user' "$scratch/tshark.err" | head -1)
    echo "SKIPPED: tshark capture: cannot capture on lo: $why"
    stop tshark
    stop recv_text
    stop recv_file
  else
    # Text, not random bytes: Wireshark 4.0's MSRP dissector throws on about one random binary
    # body in 40 (an exception after the headers, whatever the framing), which would judge the
    # dissector rather than our frames. Binary bodies are checked byte for byte above.
    seq 1 1000 | head -c 2000 >"$scratch/small.bin"
    run send 30 "$msrp" send "${text_peer[@]}" --text "captured text"
    check "capture: text send exits 0" test $? -eq 0
    run send 30 "$msrp" send "${file_peer[@]}" --file "$scratch/small.bin"
    check "capture: file send exits 0" test $? -eq 0
    finish recv_text
    finish recv_file
    sleep 1  # let dumpcap write the last packets
    kill -INT "$capturer"
    finish tshark
    decode=(-d "tcp.port==$text_port,msrp" -d "tcp.port==$file_port,msrp")
    timeout 60 tshark -r "$pcap" "${decode[@]}" -Y msrp >"$scratch/frames" 2>/dev/null
    # Wireshark's MSRP dissector reads only the first MSRP message of a TCP segment (the 200
    # the receiver sends right after a REPORT goes undissected), so the counts are kept
    # twice: "wire", every start line in the payload; "first", the start line that opens a
    # segment; "seen", what the dissector shows. It must show every segment's first message.
    timeout 60 tshark -r "$pcap" "${decode[@]}" -Y 'tcp.len > 0' -T fields \
      -e tcp.payload -e msrp.method -e msrp.status.code 2>/dev/null >"$scratch/segments"
    declare -A count=()
    while IFS='=' read -r key value; do count[$key]=$value; done < <(perl -ne '
      chomp;
      my ($hex, $method, $code) = split /\t/, $_, -1;
      my $text = pack "H*", $hex =~ s/[^0-9a-fA-F]//gr;
      $n{"wire $_"}++ for $text =~ /^MSRP \S+ (\S+)/mg;
      $n{"first $1"}++ if $text =~ /^MSRP \S+ (\S+)/;
      $n{"seen $_"}++ for grep { $_ ne "" } split(/,/, $method), split(/,/, $code);
      END { print "$_=$n{$_}\n" for sort keys %n }' "$scratch/segments")
    for kind in SEND 200 REPORT; do
      for key in "wire $kind" "first $kind" "seen $kind"; do : "${count[$key]:=0}"; done
      echo "   $kind: ${count[wire $kind]} on the wire, ${count[first $kind]} opening a segment," \
        "${count[seen $kind]} dissected"
    done
    timeout 60 tshark -r "$pcap" "${decode[@]}" \
      -Y '_ws.malformed || _ws.expert.severity >= "Error"' >"$scratch/malformed" 2>/dev/null
    malformed_status=$?
    # Per session: the empty SEND that opens it (RFC 4975 §5.4) and the message, a 200 for
    # each, and the success REPORT.
    check "capture: tshark -Y msrp shows MSRP frames" test -s "$scratch/frames"
    check "capture: at least 4 SEND requests on the wire" test "${count[wire SEND]}" -ge 4
    check "capture: at least 4 200 responses on the wire" test "${count[wire 200]}" -ge 4
    check "capture: at least 2 success REPORTs on the wire" test "${count[wire REPORT]}" -ge 2
    check "capture: the dissector shows at least 2 SEND frames" test "${count[seen SEND]}" -ge 2
    for kind in SEND 200 REPORT; do
      check "capture: the dissector shows every $kind that opens a segment" \
        test "${count[seen $kind]}" -ge "${count[first $kind]}"
    done
    check "capture: the malformed filter ran" test $malformed_status -eq 0
    # A capture that lost packets (dumpcap drops them when the machine is loaded, as under a
    # parallel sanitizer run) leaves the dissector gaps it reports as malformed: such a
    # capture cannot show every frame, so it is inconclusive rather than a failure. The
    # capture is kept for whoever wants to look.
    timeout 60 tshark -r "$pcap" -Y 'tcp.analysis.lost_segment || tcp.analysis.ack_lost_segment' \
      >"$scratch/lost" 2>/dev/null
    if [ -s "$scratch/malformed" ] && { [ -s "$scratch/lost" ] ||
      grep -Eq '[1-9][0-9]* packets? dropped' "$scratch/tshark.err"; }; then
      kept=$(mktemp /tmp/msrpkit-capture-XXXXXX.pcapng)
      cp "$pcap" "$kept"
      echo "SKIPPED: capture: packets were lost, malformed frames cannot be judged (kept $kept)"
      head -5 "$scratch/malformed"
    else
      check "capture: no malformed or error-level frames" test ! -s "$scratch/malformed"
      [ -s "$scratch/malformed" ] && head -5 "$scratch/malformed"
    fi
  fi
fi
section ""

echo "$passed passed, $failed failed"
exit $((failed > 0))
