#!/usr/bin/env bash
# Installs the Debian packages that building, running and testing Fhirstone need.
# Only what is missing is installed; uses sudo when not root. Usage: tools/install-deps.sh [build|test|bench]
set -euo pipefail
what=${1:-build}
pkgs=(cmake ninja-build ccache g++ pkg-config python3 libboost1.81-dev libboost-url1.81-dev
      libsimdjson-dev libssl-dev libsqlite3-dev libspdlog-dev libfmt-dev libcli11-dev zlib1g-dev libarchive-dev
      libkainjow-mustache-dev libcjose-dev libjansson-dev libsodium-dev libpq-dev libmimalloc-dev libxxhash-dev
      nodejs npm)
case "$what" in
  test) pkgs+=(libgtest-dev libgmock-dev clang-14 libclang-rt-14-dev curl sqlite3 procps chromium nodejs npm
               postgresql) ;;
  bench) pkgs+=(libgtest-dev libgmock-dev libbenchmark-dev wrk hyperfine curl sqlite3 procps postgresql) ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' && continue
  # Some nodejs builds (e.g. NodeSource's) bring npm and conflict with Debian's npm package.
  [ "$p" = npm ] && command -v npm >/dev/null 2>&1 && continue
  missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing: ${missing[*]}"
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
