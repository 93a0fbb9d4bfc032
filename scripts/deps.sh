#!/usr/bin/env bash
# Installs the Debian 12 packages msrpkit needs to build, test and run; only what is missing.
# Idempotent: a second run installs nothing. Called by scripts/run.sh, scripts/test.sh and .ci/run.
set -euo pipefail

packages=(
  cmake ninja-build g++ clang-14 libclang-rt-14-dev llvm-14 ccache clang-format
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev libssl-dev libsqlite3-dev
  libboost1.81-dev libtomlplusplus-dev libpq-dev
  tshark procps
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing packages and not root; run: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
