#!/usr/bin/env bash
# msrp-dump from the command line: frames of the example capture, JSON lines, and a one-line
# error with the byte offset and exit status 1 for malformed or truncated input.
set -u
dump=$1
capture=$2
failures=0
check() {  # check NAME CONDITION...
  local name=$1
  shift
  if "$@"; then echo "ok: $name"; else echo "FAILED: $name"; failures=$((failures + 1)); fi
}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

"$dump" "$capture" >"$scratch/text" 2>"$scratch/err"
check "example capture exits 0" test $? -eq 0
check "example capture has six frames" grep -q '^6 frames, 2361 bytes$' "$scratch/text"
check "aborted chunk is shown" grep -q 'end: # (aborted)' "$scratch/text"
check "binary body shown as hex" grep -q 'hex 89 50 4e 47' "$scratch/text"

"$dump" --json - <"$capture" >"$scratch/json"
check "json from stdin exits 0" test $? -eq 0
check "json has one line per frame" test "$(wc -l <"$scratch/json")" -eq 6
check "json names the flag" grep -q '"flag":"#"' "$scratch/json"

printf 'MSRP abcd SEND\r\nTo-Path: msrp://a.example.com:1/s;tcp\r\nBad Header\r\n' >"$scratch/bad"
"$dump" "$scratch/bad" >/dev/null 2>"$scratch/err"
check "malformed input exits 1" test $? -eq 1
check "malformed input names offset and reason" \
  grep -qx "msrp-dump: $scratch/bad: byte 55: malformed header field" "$scratch/err"

head -c 300 "$capture" >"$scratch/cut"
"$dump" "$scratch/cut" >/dev/null 2>"$scratch/err"
check "truncated input exits 1" test $? -eq 1
check "truncated input says so" grep -q 'byte 246: input ends inside a frame' "$scratch/err"

"$dump" "$scratch/missing" >/dev/null 2>"$scratch/err"
check "missing file exits non-zero" test $? -ne 0
check "missing file gets one line" test "$(wc -l <"$scratch/err")" -eq 1

exit $((failures > 0))
