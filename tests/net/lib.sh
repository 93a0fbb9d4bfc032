# Shared by the end-to-end scripts in tests/net/: checks, a scratch directory removed at exit,
# background jobs bounded by `timeout`, and small predicates. Source it; it sets `scratch`.
passed=0
failed=0
check() {  # check NAME CONDITION...
  local name=$1
  shift
  if "$@"; then
    echo "ok: $name"
    passed=$((passed + 1))
  else
    echo "FAILED: $name"
    failed=$((failed + 1))
  fi
}

scratch=$(mktemp -d)
declare -A pid  # background jobs by name: the pid of the `timeout` that runs each

cleanup() {
  local name
  # `timeout` leads a process group of its own: the command and whatever it started.
  for name in "${!pid[@]}"; do kill -KILL -- "-${pid[$name]}"; done 2>/dev/null
  wait 2>/dev/null
  rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# binary NAME PATH: copies PATH into the scratch directory and sets $NAME to the copy, so that
# a rebuild while the test runs cannot pull it away.
binary() {
  printf -v "$1" '%s' "$scratch/$(basename "$2")"
  cp "$2" "${!1}" || exit 2
}

elapsed() {  # elapsed START: seconds since START, a `date +%s.%N`
  awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $1 }"
}

section_start=$(date +%s.%N)
section_name=""
section() {  # section NAME: ends the previous section with its time, starts the next
  [ -n "$section_name" ] && echo "-- $section_name: $(elapsed "$section_start") s"
  section_name=$1
  section_start=$(date +%s.%N)
  [ -n "$section_name" ] && echo "== $section_name"
}

# spawn NAME SECONDS COMMAND...: runs COMMAND in the background, ended by `timeout` after
# SECONDS; its output goes to $scratch/NAME.out and NAME.err.
spawn() {
  local name=$1 seconds=$2
  shift 2
  timeout -k 5 "$seconds" "$@" >"$scratch/$name.out" 2>"$scratch/$name.err" &
  pid[$name]=$!
}

# finish NAME: waits for a spawned job (its timeout bounds the wait); returns its status.
finish() {
  local status
  { wait "${pid[$1]}"; } 2>/dev/null
  status=$?
  unset "pid[$1]"
  [ $status -eq 124 ] && echo "   $1: ended by its timeout"
  return $status
}

# stop NAME: ends a spawned job that would keep running (SIGTERM) and waits for it.
stop() {
  kill -TERM "${pid[$1]}" 2>/dev/null
  finish "$1"
}

# kill_job NAME PID: kills PID, the command of job NAME, with SIGKILL and waits for the job;
# quietly, as bash would report "Killed".
kill_job() {
  { kill -KILL "$2"; finish "$1"; } 2>/dev/null
}

# process NAME: the pid of the command a spawned job runs (the child of its timeout).
process() {
  timeout 5 bash -c 'until pgrep -P "$0"; do sleep 0.01; done' "${pid[$1]}" | head -1
}

# run NAME SECONDS COMMAND...: runs COMMAND like spawn and waits for it; returns its status.
# (A job in the background, so that a signal to this script is handled at once.)
run() {
  spawn "$@"
  finish "$1"
}

# wait_until SECONDS TEST...: waits until `test TEST...` holds; fails after SECONDS.
wait_until() {
  local seconds=$1
  shift
  timeout "$seconds" bash -c 'until test "$@"; do sleep 0.01; done' wait_until "$@"
}

one_line() {  # one_line FILE: FILE has exactly one line
  [ "$(wc -l <"$1")" -eq 1 ]
}
mentions() {  # mentions FILE REGEX
  grep -Eq -- "$2" "$1"
}
equal() { [ "$1" = "$2" ]; }
status_in() {  # status_in STATUS ALLOWED...
  local status=$1 allowed
  shift
  for allowed in "$@"; do [ "$status" -eq "$allowed" ] && return 0; done
  return 1
}
same_file() { [ "$(sha256sum <"$1")" = "$(sha256sum <"$2")" ]; }
# has_part DIR: a temporary .part file with data in it exists in DIR.
has_part() {
  [ -n "$(find "$1" -maxdepth 1 -name '.msrp-*.part' -size +0 2>/dev/null)" ]
}
no_part() {
  [ -z "$(find "$1" -maxdepth 1 -name '*.part' 2>/dev/null)" ]
}
wait_for_part() {  # wait_for_part SECONDS DIR
  timeout "$1" bash -c 'until [ -n "$(find "$0" -maxdepth 1 -name ".msrp-*.part" -size +0)" ];
    do sleep 0.005; done' "$2" 2>/dev/null
}

# receive_path NAME DIR [OPTIONS...]: `msrp recv` (job NAME) with $client_options into DIR,
# writing its path to $scratch/NAME.uri; waits for the path (at most 20 s, less if the command
# ends) and sets `path` to it. Fails, showing the command's stderr, if none came.
receive_path() {
  local name=$1 dir=$2
  shift 2
  mkdir -p "$dir"
  rm -f "$scratch/$name.uri"
  spawn "$name" 300 "$msrp" recv "${client_options[@]}" --uri-file "$scratch/$name.uri" \
    --dir "$dir" "$@"
  path=""
  timeout 20 bash -c 'until [ -s "$0" ] || ! kill -0 "$1" 2>/dev/null; do sleep 0.02; done' \
    "$scratch/$name.uri" "${pid[$name]}"
  [ -s "$scratch/$name.uri" ] && path=$(sed -n "s/^'\([^']*\)'.*/\1/p" "$scratch/$name.uri")
  [ -n "$path" ] || { echo "   $name: no path; stderr:" && show "$scratch/$name.err" && return 1; }
}

metric() {  # metric PORT NAME: the value of NAME in the metrics of the relay serving them on PORT
  timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"
    printf "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n" >&3; cat <&3' "$1" |
    sed -n "s/^$2 \([0-9]*\)\r*$/\1/p"
}

# show FILE: prints what a command said, indented, for the log.
show() {
  sed 's/^/   > /' "$1"
}

