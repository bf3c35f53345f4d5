#!/usr/bin/env bash
# Runs a libFuzzer target briefly over a copy of its seed corpus; fails on any crash, leak or
# sanitizer report. Usage: smoke.sh FUZZER SEED_DIR SECONDS
set -euo pipefail
fuzzer=$1 seeds=$2 seconds=$3
[ -x "$fuzzer" ] || { echo "fuzzer not built: $fuzzer (run make fuzz-build)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$seeds"/. "$work/"
cd "$work"
"$fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 "$work" 2>&1 | tail -n 20
