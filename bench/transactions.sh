#!/usr/bin/env bash
# make bench-transactions: small transactions (one Patient and one Observation that refers to it,
# POST /fhir) from 64 concurrent clients and from one, against the machine's database ceiling
# measured in the same run: the same rows inserted straight into SQLite by bench_txn_ceiling, one
# commit per transaction and one per 64 (the server's largest group commit). Audit log on (the
# default) and off. Writes bench/results/DATE-transactions.md.
# Environment: BENCH_SECONDS (default 10), THREADS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_DIR=$PWD/bench
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
THREADS=${THREADS:-2}
BUILD=${BUILD:-build/release}
WORK=bench/work
PORT=18181
mkdir -p "$WORK" bench/results
cmake --build "$BUILD" --target benchmarks >/dev/null
source bench/lib.sh

export PATIENT_JSON='{"resourceType":"Patient","identifier":[{"system":"urn:oid:2.16.840.1.113883.4.3.25","value":"999-41-7713"}],"name":[{"use":"official","family":"Quigley","given":["Ana","Maria"]}],"gender":"female","birthDate":"1984-03-12","address":[{"line":["12 Elm St"],"city":"Worcester","state":"MA","postalCode":"01608","country":"US"}]}'
export OBSERVATION_JSON='{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"subject":{"reference":"urn:uuid:6f1a3c52-4d7e-4b8a-9c2f-1e5d7a9b3c41"},"effectiveDateTime":"2026-11-29T09:30:00Z","valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}'

server_run() {  # label extra-flags... -> "rps p50 p99 errors" at 64 and at 1 connection
  local db="$WORK/txn-$1.db"
  rm -f "$db" "$db-wal" "$db-shm"
  shift
  "$BUILD/fhirstone" serve --open --listen "127.0.0.1:$PORT" --db "sqlite:$db" --threads "$THREADS" \
    --access-log off --log-level warn "$@" >"$WORK/txn-server.log" 2>&1 &
  pids+=($!)
  local pid=$!
  wait_port "$PORT"
  run_wrk 64 2 "http://127.0.0.1:$PORT" bench/wrk/transaction.lua >/dev/null  # warm-up
  run_wrk 64 2 "http://127.0.0.1:$PORT" bench/wrk/transaction.lua
  run_wrk 1 1 "http://127.0.0.1:$PORT" bench/wrk/transaction.lua
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
{ read -r a64 a64_p50 a64_p99 a64_err; read -r a1 a1_p50 a1_p99 a1_err; } < <(server_run audit)
{ read -r n64 n64_p50 n64_p99 n64_err; read -r n1 n1_p50 n1_p99 n1_err; } < <(server_run plain --no-audit)
ceiling() {
  local db="$WORK/txn-ceiling.db"
  rm -f "$db" "$db-wal" "$db-shm"
  OBSERVATION_JSON=${OBSERVATION_JSON/urn:uuid:6f1a3c52-4d7e-4b8a-9c2f-1e5d7a9b3c41/Patient\/cp0} \
    "$BUILD/bench/bench_txn_ceiling" "sqlite:$db" "$SECONDS_PER_RUN" "$1"
}
ceil1=$(ceiling 1)
ceil64=$(ceiling 64)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
out="bench/results/$(date +%F)-transactions.md"
{
  echo "# Small transactions, $(date +%F)"
  echo
  echo "Command: \`BENCH_SECONDS=$SECONDS_PER_RUN THREADS=$THREADS make bench-transactions\` (bench/transactions.sh)."
  echo "Machine: $(nproc) cores shared by wrk and the server. Load average before: $load_before; after: $load_after."
  echo "Each request: POST /fhir, a transaction Bundle of one Patient and one Observation referring to it"
  echo "by urn:uuid (bench/wrk/transaction.lua), every search parameter indexed, SQLite WAL with"
  echo "synchronous=NORMAL, a fresh database per run, server with $THREADS I/O threads."
  echo
  echo "| run | transactions/s | p50 µs | p99 µs | errors | / ceiling (64 per commit) |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: |"
  echo "| 64 clients, audit on | $a64 | $a64_p50 | $a64_p99 | $a64_err | $(ratio "$a64" "$ceil64") |"
  echo "| 1 client, audit on | $a1 | $a1_p50 | $a1_p99 | $a1_err | $(ratio "$a1" "$ceil64") |"
  echo "| 64 clients, --no-audit | $n64 | $n64_p50 | $n64_p99 | $n64_err | $(ratio "$n64" "$ceil64") |"
  echo "| 1 client, --no-audit | $n1 | $n1_p50 | $n1_p99 | $n1_err | $(ratio "$n1" "$ceil64") |"
  echo
  echo "Ceiling: the same rows (each resource's row, its history row and its index rows) inserted"
  echo "straight into the store's schema through the SQLite driver by one thread (bench/txn_ceiling.cc):"
  echo "$ceil1 transactions/s with a commit each, $ceil64 with a commit per 64."
} >"$out"
cat "$out"
