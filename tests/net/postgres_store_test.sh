#!/usr/bin/env bash
# store_test's PostgreSQL tests (tests/store_test.cpp) on a server of their own, run from a
# temporary folder by tests/net/postgres.sh (installed when missing; exit 77: skipped).
#
#   bash tests/net/postgres_store_test.sh build/debug/tests/store_test
set -u
store_test=$1

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/postgres.sh"

section "store_test on PostgreSQL"
MSRP_TEST_POSTGRES=$store_url "$store_test" --gtest_filter='*Postgres*' >"$scratch/gtest.log" 2>&1
status=$?
check "store_test's PostgreSQL tests pass" test $status -eq 0
grep -E '^\[ +(OK|FAILED|SKIPPED) +\]' "$scratch/gtest.log" | sed 's/^/   /'
check "they ran, none skipped" test "$(grep -c '^\[       OK \]' "$scratch/gtest.log")" -ge 5 \
  -a "$(grep -c '^\[  SKIPPED \]' "$scratch/gtest.log")" -eq 0
[ $status -eq 0 ] || show "$scratch/gtest.log"
section ""

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
