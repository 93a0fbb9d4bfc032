#!/usr/bin/env bash
# One run, one machine: the same msrp-bench scenarios against msrp-relay, against Kamailio's
# MSRP relay (Debian's kamailio 5.6, module msrp, configured by tests/interop/kamailio.cfg.in,
# logging errors only) and over the direct client-to-client path (no relay: the ceiling),
# taking turns scenario by scenario. Small messages over TCP with 1 and 8 sessions run twice:
# closed loop for the maximum rate, then open loop (msrp-bench --rate) at half of the rate each
# path reached, for its p99 latency there. Everything listens on 127.0.0.1 only.
#
#   bash scripts/bench-compare.sh [SECONDS]        (default 5 s per run)
#
# Prints a table with the ratios; writes it, the command, the machine and the date into
# docs/benchmarks.md (between the bench-compare markers) and draws docs/plots/*.png with
# gnuplot. Installs what it needs when missing (the build's packages, kamailio, gnuplot-nox,
# jq). The raw JSON lines stay in build/bench-compare.jsonl. Relay CPU is read from /proc over each whole run (Kamailio: all its processes), and
# divided by the messages the run moved.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}
root=$(pwd)

bash scripts/deps.sh
missing=()
for package in gnuplot-nox jq; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
cmake --preset release >/dev/null
cmake --build --preset release --target msrp-bench msrp-relay >/dev/null

source tests/net/lib.sh
source tests/interop/kamailio.sh
binary bench "$root/build/release/apps/msrp-bench/msrp-bench"
binary relay "$root/build/release/apps/msrp-relay/msrp-relay"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "== Kamailio"
kamailio_install
kamailio_prepare bench
# Errors only in its log; write queues of 16 MiB per connection (its defaults, 32 KiB over TCP,
# drop a receiver as soon as a bulk transfer gets ahead of it) and 1 GiB of shared memory.
export KAMAILIO_DEBUG=-1 KAMAILIO_QUEUE_KB=16384 KAMAILIO_SHM_MB=1024
start_kamailio
kamailio_group=${pid[kamailio]}
kamailio_crashes=0

echo "== msrp-relay"
state=$scratch/relay-state
mkdir -p "$state"
"$relay" user add bench --state-dir "$state" --realm "$realm" <"$k/bench.password"
printf '[limits]\nmax_sessions_per_user = 100000\nmax_connections = 30000\n' >"$scratch/relay.toml"
spawn msrp_relay 36000 "$relay" --config "$scratch/relay.toml" --state-dir "$state" \
  --demo-user '' --host 127.0.0.1 --realm "$realm" --listen 127.0.0.1:0 --listen-tcp 127.0.0.1:0
timeout 20 bash -c 'until grep -qs "as msrp://" "$0"; do sleep 0.05; done' "$scratch/msrp_relay.err"
relay_pid=$(process msrp_relay)
ours_tls=$(sed -n 's|.*as msrps://127.0.0.1:\([0-9]*\);tcp.*|\1|p' "$scratch/msrp_relay.err")
ours_tcp=$(sed -n 's|.*as msrp://127.0.0.1:\([0-9]*\);tcp.*|\1|p' "$scratch/msrp_relay.err")

# target_options PATH TRANSPORT: msrp-bench's options for one path ("msrp-relay", "kamailio",
# "direct") over "tcp" or "tls", in `options`.
target_options() {
  local auth=(--user bench --password-file "$k/bench.password")
  case $1/$2 in
    msrp-relay/tcp) options=(--relay "msrp://127.0.0.1:$ours_tcp;tcp" "${auth[@]}") ;;
    msrp-relay/tls) options=(--relay "msrps://127.0.0.1:$ours_tls;tcp" "${auth[@]}"
      --ca-file "$state/cert.pem") ;;
    kamailio/tcp) options=(--relay "msrp://127.0.0.1:$tcp_port;tcp" "${auth[@]}") ;;
    kamailio/tls) options=(--relay "msrps://127.0.0.1:$tls_port;tcp" "${auth[@]}"
      --ca-file "$k/cert.pem") ;;
    direct/tcp) options=(--direct) ;;
    direct/tls) options=(--direct --tls) ;;
  esac
}

# cpu_ticks PATH: CPU clock ticks (user + system) the relay of PATH has used so far.
cpu_ticks() {
  local pids
  case $1 in
    msrp-relay) pids=$relay_pid ;;
    kamailio) pids=$(pgrep -g "$kamailio_group" | paste -sd' ') ;;
    *) echo 0 && return ;;
  esac
  for p in $pids; do
    # Fields 14 and 15 of /proc/PID/stat; the name in field 2 has no spaces here.
    awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0
  done | awk '{ s += $1 } END { print s + 0 }'
}

results=$root/build/bench-compare.jsonl  # every run's JSON line, kept for a closer look
: >"$results"
# run_bench SCENARIO PATH TRANSPORT MODE THREADS OPTIONS...: one msrp-bench run with THREADS
# event loops; appends its JSON line with the scenario, path, threads asked for and the relay's
# CPU per message to $results.
run_bench() {
  local scenario=$1 path=$2 transport=$3 mode=$4 threads=$5 before after line status
  shift 5
  if [ "$path" = kamailio ] && ! kill -0 "$(pgrep -g "$kamailio_group" -x kamailio | head -1)" 2>/dev/null; then
    # Kamailio 5.6 has died under TLS load here (a child aborting: "qm_free(): BUG: freeing
    # already freed pointer ... tls_init.c"): count it, start a fresh one.
    kamailio_crashes=$((kamailio_crashes + 1))
    echo "   Kamailio is gone (crash $kamailio_crashes, log: $(grep -m1 -E 'BUG|signal' "$scratch/kamailio.err" | sed 's/^ *//'))"
    cp "$scratch/kamailio.err" "$scratch/kamailio-crash-$kamailio_crashes.err"
    stop kamailio || true
    start_kamailio
    kamailio_group=${pid[kamailio]}
  fi
  target_options "$path" "$transport"
  before=$(cpu_ticks "$path")
  set +e
  line=$("$bench" "$mode" "${options[@]}" --threads "$threads" --duration "$seconds" --quiet "$@" \
    2>"$scratch/run.err")
  status=$?
  set -e
  after=$(cpu_ticks "$path")
  [ -n "$line" ] || line='{"ok":false}'
  jq -c --arg scenario "$scenario" --arg path "$path" --arg transport "$transport" \
    --argjson status "$status" --argjson ticks "$((after - before))" \
    --argjson hz "$(getconf CLK_TCK)" --argjson threads "$threads" \
    '. + {scenario: $scenario, path: $path, transport: $transport, status: $status,
          threads_asked: $threads,
          relay_cpu_us_per_msg: (if ($path == "direct" or (.delivered // 0) == 0) then null
            else ($ticks / $hz * 1e6 / .delivered) end)}' <<<"$line" >>"$results"
  printf '   %-22s %-10s %-3s %d loop(s), exit %d: %s\n' "$scenario" "$path" "$transport" \
    "$threads" "$status" \
    "$(jq -r 'if .mb_per_s then "\(.msgs_per_s | floor) msg/s, \(.mb_per_s) MB/s" else "no result" end' <<<"$line")"
  [ "$status" -eq 0 ] || sed 's/^/      /' "$scratch/run.err" | tail -2
}

# run_best SCENARIO PATH TRANSPORT MODE SESSIONS OPTIONS...: the run with one generator loop,
# then, with several sessions, the run with one loop per core. On this machine generator and
# relay share the cores: a second loop takes CPU from a relay as much as it adds load, so which
# one drives a path hardest differs from path to path; the table takes each path's best run.
run_best() {
  local scenario=$1 path=$2 transport=$3 mode=$4 sessions=$5
  shift 5
  run_bench "$scenario" "$path" "$transport" "$mode" 1 --sessions "$sessions" "$@"
  [ "$sessions" -gt 1 ] && [ "$(nproc)" -gt 1 ] || return 0
  run_bench "$scenario" "$path" "$transport" "$mode" "$(nproc)" --sessions "$sessions" "$@"
}

value() {  # value SCENARIO PATH TRANSPORT FIELD: the field of that path's best run, or "-"
  jq -rs --arg s "$1" --arg p "$2" --arg t "$3" \
    "map(select(.scenario == \$s and .path == \$p and .transport == \$t and .ok == true)) |
     if length == 0 then empty else max_by(.mb_per_s) | $4 end" \
    "$results" | grep . || echo -
}

paths=(msrp-relay kamailio direct)
echo "== small messages (100 bytes, window 16; over TCP with 1 and 8 sessions also at half the rate reached, open loop)"
for transport in tcp tls; do
  for sessions in 1 8 64; do
    for path in "${paths[@]}"; do
      run_best "messages/$sessions" "$path" "$transport" messages "$sessions" --window 16 \
        --size 100
      # Issue #7: p99 latency at half of the maximum rate. The closed-loop run above says what
      # the maximum is; at half of it, sent at fixed intervals, latency is the path's own and
      # not queueing in a full window.
      [ "$transport" = tcp ] && [ "$sessions" -le 8 ] || continue
      half=$(value "messages/$sessions" "$path" tcp '.msgs_per_s / 2 | floor')
      [ "$half" != - ] && [ "$half" -gt 0 ] || continue
      # With the generator loops of the run that reached the maximum.
      run_bench "half/$sessions" "$path" tcp messages \
        "$(value "messages/$sessions" "$path" tcp .threads_asked)" --sessions "$sessions" \
        --size 100 --rate "$half"
    done
  done
done
echo "== bulk (16 MiB messages, TCP)"
for chunk in 8192 65536 1048576 0; do
  for sessions in 1 4; do
    for path in "${paths[@]}"; do
      # Kamailio cannot route frames over about 11 KB (docs/relay-compatibility.md).
      [ "$path" = kamailio ] && [ "$chunk" != 8192 ] && continue
      run_best "bulk/$chunk/$sessions" "$path" tcp bulk "$sessions" --message-size 16777216 \
        --chunk-size "$chunk"
    done
  done
done

# --- The table and the plots
cpu_model=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
when=$(date -u '+%Y-%m-%d %H:%M UTC')
table=$scratch/table.md
ratio() {  # ratio A B: A/B with one decimal, or "-"
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.1f×", a / b }'
}
round() { awk -v v="$1" 'BEGIN { if (v == "-" || v == "null") print "-"; else printf "%.'"${2:-0}"'f", v }'; }
cell() {  # cell SCENARIO PATH TRANSPORT FIELD: the rounded value; "failed" or "n/a" without one
  local v
  v=$(value "$@")
  if [ "$v" != - ]; then
    round "$v"
    return
  fi
  v=$(jq -r --arg s "$1" --arg p "$2" --arg t "$3" \
    "select(.scenario == \$s and .path == \$p and .transport == \$t) |
     \"failed (exit \(.status)\" + (if (.sent // 0) > 0 then \"; \(.delivered) of \(.sent) delivered; \($4 | floor)\" else \"\" end) + \")\"" \
    "$results" | head -1)
  if [ -n "$v" ]; then
    echo "$v"
  else
    echo "n/a"
  fi
}
at_rate() {  # at_rate SCENARIO PATH: p99 in ms at the rate the TCP run asked for, or its failure
  local line
  line=$(jq -r --arg s "$1" --arg p "$2" \
    'select(.scenario == $s and .path == $p and .transport == "tcp") |
     if .ok == true then "\(.latency_us.p99 / 10 | round / 100) (\(.rate)/s)"
     else "failed (exit \(.status); \(.delivered // 0) of \(.sent // 0) delivered at \(.rate // "-")/s)" end' \
    "$results" | head -1)
  echo "${line:-n/a}"
}
loops() {  # loops SCENARIO TRANSPORT: the generator loops of each path's best run
  echo "$(value "$1" msrp-relay "$2" .threads_asked), $(value "$1" kamailio "$2" .threads_asked), $(value "$1" direct "$2" .threads_asked)"
}
{
  echo "Command: \`bash scripts/bench-compare.sh $seconds\`; $when; $(nproc) cores, $cpu_model;"
  echo "$(kamailio -v 2>/dev/null | head -1 | sed 's/^version: //; s/ *$//'), crashed and restarted $kamailio_crashes times during the run."
  echo
  echo "| Scenario | Transport | msrp-relay | Kamailio | direct | msrp-relay / Kamailio | msrp-relay / direct | relay CPU µs/msg (ours, Kamailio) | p99 ms (ours, Kamailio) | generator loops (ours, Kamailio, direct) |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for transport in tcp tls; do
    for sessions in 1 8 64; do
      s=messages/$sessions
      a=$(value "$s" msrp-relay "$transport" .msgs_per_s) b=$(value "$s" kamailio "$transport" .msgs_per_s)
      c=$(value "$s" direct "$transport" .msgs_per_s)
      echo "| messages/s, sessions: $sessions | $transport | $(cell "$s" msrp-relay "$transport" .msgs_per_s) | $(cell "$s" kamailio "$transport" .msgs_per_s) | $(round "$c") | $(ratio "$a" "$b") | $(ratio "$a" "$c") | $(round "$(value "$s" msrp-relay "$transport" .relay_cpu_us_per_msg)" 1), $(round "$(value "$s" kamailio "$transport" .relay_cpu_us_per_msg)" 1) | $(round "$(value "$s" msrp-relay "$transport" '.latency_us.p99 / 1000')" 2), $(round "$(value "$s" kamailio "$transport" '.latency_us.p99 / 1000')" 2) | $(loops "$s" "$transport") |"
    done
  done
  for sessions in 1 8; do
    s=half/$sessions
    echo "| p99 ms at half of the max messages/s (that rate), sessions: $sessions | tcp | $(at_rate "$s" msrp-relay) | $(at_rate "$s" kamailio) | $(at_rate "$s" direct) | | | $(round "$(value "$s" msrp-relay tcp .relay_cpu_us_per_msg)" 1), $(round "$(value "$s" kamailio tcp .relay_cpu_us_per_msg)" 1) | | $(loops "$s" tcp) |"
  done
  for chunk in 8192 65536 1048576 0; do
    for sessions in 1 4; do
      s=bulk/$chunk/$sessions
      a=$(value "$s" msrp-relay tcp .mb_per_s) b=$(value "$s" kamailio tcp .mb_per_s)
      c=$(value "$s" direct tcp .mb_per_s)
      label=$([ "$chunk" = 0 ] && echo "one chunk" || echo "$((chunk / 1024)) KiB chunks")
      echo "| MB/s, $label, sessions: $sessions | tcp | $(cell "$s" msrp-relay tcp .mb_per_s) | $(cell "$s" kamailio tcp .mb_per_s) | $(round "$c") | $(ratio "$a" "$b") | $(ratio "$a" "$c") | | | $(loops "$s" tcp) |"
    done
  done
  echo
  echo "p99 latency at half of the maximum rate over TCP (goal: under 1 ms): msrp-relay $(round "$(value half/1 msrp-relay tcp '.latency_us.p99 / 1000')" 2) ms with 1 session, $(round "$(value half/8 msrp-relay tcp '.latency_us.p99 / 1000')" 2) ms with 8; Kamailio $(round "$(value half/1 kamailio tcp '.latency_us.p99 / 1000')" 2) and $(round "$(value half/8 kamailio tcp '.latency_us.p99 / 1000')" 2) ms."
  echo
  jq -r 'select(.ok != true) | "Failed: \(.scenario) through \(.path) over \(.transport), exit \(.status): \(.error // "no result")."' \
    "$results" | sed 's/$/  /'
} >"$table"
echo
cat "$table"

mkdir -p docs/plots
{
  for path in "${paths[@]}"; do
    for sessions in 1 8 64; do
      echo "$sessions $(value "messages/$sessions" "$path" tcp .msgs_per_s)"
    done
    printf '\n\n'
  done
} | sed 's/ -$/ NaN/' >"$scratch/messages.dat"
{
  for path in "${paths[@]}"; do
    for chunk in 8192 65536 1048576 16777216; do
      key=$([ "$chunk" = 16777216 ] && echo 0 || echo "$chunk")
      echo "$((chunk / 1024)) $(value "bulk/$key/1" "$path" tcp .mb_per_s)"
    done
    printf '\n\n'
  done
} | sed 's/ -$/ NaN/' >"$scratch/bulk.dat"
{
  for path in msrp-relay kamailio direct; do
    echo "$path $(value messages/64 "$path" tcp '"\(.latency_us.p50 / 1000) \(.latency_us.p99 / 1000) \(.latency_us.p999 / 1000)"')"
  done
} | sed 's/ -$/ NaN NaN NaN/' >"$scratch/latency.dat"
gnuplot <<EOF
set terminal pngcairo size 800,500 noenhanced
set grid
set key top left
set output "docs/plots/messages.png"
set title "Small messages over TCP (100 bytes, window 16), $when"
set xlabel "sessions"; set ylabel "messages/s"; set logscale x 2; set xrange [0.8:80]; set xtics (1, 8, 64)
plot "$scratch/messages.dat" index 0 with linespoints title "msrp-relay", \
     "" index 1 with linespoints title "Kamailio", "" index 2 with linespoints title "direct"
unset logscale
set output "docs/plots/bulk.png"
set title "Bulk over TCP (16 MiB messages, 1 session), $when"
set xlabel "chunk size (KiB; 16384: one chunk)"; set ylabel "MB/s"; set logscale x 2
set xrange [6:20000]; set xtics (8, 64, 1024, 16384)
plot "$scratch/bulk.dat" index 0 with linespoints title "msrp-relay", \
     "" index 1 with linespoints title "Kamailio (8 KiB only)", "" index 2 with linespoints title "direct"
unset logscale; set xtics autofreq; set autoscale x
set output "docs/plots/latency.png"
set title "Latency, small messages over TCP, 64 sessions x window 16, $when"
set ylabel "ms"; set xlabel ""; set logscale y
set style data histograms; set style histogram clustered; set style fill solid 0.8
plot "$scratch/latency.dat" using 2:xtic(1) title "p50", "" using 3 title "p99", "" using 4 title "p99.9"
EOF

# The table goes between the markers of docs/benchmarks.md.
awk -v table="$table" '
  /<!-- bench-compare:begin -->/ { print; while ((getline line < table) > 0) print line; skip = 1; next }
  /<!-- bench-compare:end -->/ { skip = 0 }
  !skip' docs/benchmarks.md >"$scratch/benchmarks.md"
cp "$scratch/benchmarks.md" docs/benchmarks.md
echo "written: docs/benchmarks.md, docs/plots/messages.png, bulk.png, latency.png"
