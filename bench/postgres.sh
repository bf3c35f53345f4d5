#!/usr/bin/env bash
# make bench-postgres: the read, search, create, import and export workloads on SQLite and on
# PostgreSQL, one after the other on the same machine, in one table. PostgreSQL is a throwaway
# cluster with durable settings (tests/support/postgres.sh with PG_DURABLE=1: fsync on,
# synchronous_commit on, shared_buffers 1GB), on loopback; SQLite is a WAL file.
#   seed:   COUNT Patients written one by one through the store (bench_seed, one thread)
#   read:   GET /fhir/Patient/ID, 64 connections (wrk) and 1 (bench_latency)
#   search: GET /fhir/Patient?_id=10 ids, 64 connections
#   create: POST /fhir/Patient, 64 connections (group commit)
#   import: fhirstone import of Synthea small-10 (every search parameter indexed)
#   export: system $export of everything (bench/export_run.py)
# Writes bench/results/DATE-postgres.md. Environment: BENCH_SECONDS (default 5), THREADS (server
# I/O threads, default 2), COUNT (default 20000), BUILD_JOBS (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_DIR=$PWD/bench
SECONDS_PER_RUN=${BENCH_SECONDS:-5}
THREADS=${THREADS:-2}
COUNT=${COUNT:-20000}
BUILD=${BUILD:-build/release}
WORK=$PWD/bench/work
SYNTHEA=${SYNTHEA:-../shared/data/synthea/small-10}
PORT=18191
mkdir -p "$WORK" bench/results
cmake --build "$BUILD" --target fhirstone bench_seed bench_latency --parallel "${BUILD_JOBS:-1}" >/dev/null
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
source bench/lib.sh
export COUNT
pg_dir=$WORK/pg-bench
cleanup_pg() { bash tests/support/postgres.sh stop "$pg_dir" >/dev/null 2>&1 || true; cleanup; }
trap cleanup_pg EXIT
PG_DURABLE=1 bash tests/support/postgres.sh start "$pg_dir" >/dev/null
pg_base=$(cat "$pg_dir/url")

declare -A result=()
for dialect in sqlite postgres; do
  if [ "$dialect" = sqlite ]; then
    rm -f "$WORK/pg-bench.db"* "$WORK/pg-bench-import.db"*
    url="sqlite:$WORK/pg-bench.db" import_url="sqlite:$WORK/pg-bench-import.db"
  else
    psql "$pg_base" -qc "CREATE DATABASE bench" -qc "CREATE DATABASE bench_import" >/dev/null
    url="${pg_base%/*}/bench" import_url="${pg_base%/*}/bench_import"
  fi
  start=$(date +%s.%N)
  "$BUILD/bench/bench_seed" "$url" "$COUNT"
  result[$dialect,seed]=$(awk -v n="$COUNT" -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", n / (e - s) }')
  "$BUILD/fhirstone" serve --listen "127.0.0.1:$PORT" --db "$url" --threads "$THREADS" --open \
    --log-level warn --access-log off --bulk-dir "$WORK/pg-bench-bulk" >"$WORK/pg-bench-server.log" 2>&1 &
  server=$!
  pids+=("$server")
  wait_port "$PORT"
  base="http://127.0.0.1:$PORT"
  SECONDS_PER_RUN=1 run_wrk 64 2 "$base" bench/wrk/read.lua >/dev/null
  # Each run starts once the audit records of the runs before are in the log (the reads' records
  # are appended after them; a run that starts before would time that work too: with PostgreSQL,
  # creates waited seconds behind the batches of the reads' records).
  wait_audit "$PORT" || echo "warning: the audit backlog did not drain" >&2
  read -r result[$dialect,read64] _ _ e_read64 < <(run_wrk 64 2 "$base" bench/wrk/read.lua)
  wait_audit "$PORT" || echo "warning: the audit backlog did not drain" >&2
  read -r result[$dialect,read1] result[$dialect,read1_p50] _ e_read1 _ < <(run_latency "$base/fhir/Patient/p{i}" "$COUNT")
  wait_audit "$PORT" || echo "warning: the audit backlog did not drain" >&2
  read -r result[$dialect,search] _ _ e_search < <(run_wrk 64 2 "$base" bench/wrk/search.lua)
  # The export before the creates: both dialects export the same COUNT seeded Patients.
  wait_audit "$PORT" || echo "warning: the audit backlog did not drain" >&2
  line=$(python3 bench/export_run.py "$base" "$WORK/pg-bench-bulk" "$server" 10 | grep '^RESULT')
  result[$dialect,export]=$(awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    printf "%.0f", v["resources"] / v["seconds"] }' <<<"$line")
  result[$dialect,export_n]=$(grep -o 'resources=[0-9]*' <<<"$line" | cut -d= -f2)
  wait_audit "$PORT" || echo "warning: the audit backlog did not drain" >&2
  read -r result[$dialect,create] _ _ e_create < <(run_wrk 64 2 "$base/fhir/Patient" bench/wrk/create.lua)
  # A request answered with an error is no measurement: the counts go in the table's notes.
  result[$dialect,errors]="read $e_read64 (64) $e_read1 (1), search $e_search, create $e_create"
  kill "$server"
  wait "$server" 2>/dev/null || true
  imported=$("$BUILD/fhirstone" import --db "$import_url" "$SYNTHEA" 2>/dev/null | tail -1)
  result[$dialect,import]=$(grep -Eo '[0-9]+ resources/s' <<<"$imported" | cut -d' ' -f1)
  result[$dialect,import_n]=$(grep -Eo '\([0-9]+ resources\)' <<<"$imported" | tr -dc 0-9)
  echo "$dialect: seed ${result[$dialect,seed]}/s, read ${result[$dialect,read64]}/s (64) ${result[$dialect,read1]}/s (1)," \
    "search ${result[$dialect,search]}/s, create ${result[$dialect,create]}/s, export ${result[$dialect,export]} res/s," \
    "import ${result[$dialect,import]} res/s"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
out="bench/results/$(date +%F)-postgres.md"
{
  echo "# SQLite and PostgreSQL, $(date +%F)"
  echo
  echo "Command: \`BENCH_SECONDS=$SECONDS_PER_RUN COUNT=$COUNT THREADS=$THREADS make bench-postgres\` (bench/postgres.sh)."
  echo "Machine: $(nproc) cores, shared by wrk, the server and the database. Load average before: $load_before; after: $load_after."
  echo "SQLite: WAL, synchronous=NORMAL. PostgreSQL $(psql "$pg_base" -Atc 'SHOW server_version' | cut -d' ' -f1): a local cluster on"
  echo "127.0.0.1 (TCP), fsync on, synchronous_commit on, shared_buffers 1GB, other settings default; the"
  echo "server's write transactions serialized by one advisory lock (docs/decisions/0011-postgresql.md)."
  echo "The audit log is on (the default) for both."
  echo
  echo "| workload | SQLite | PostgreSQL | PostgreSQL / SQLite |"
  echo "| --- | ---: | ---: | ---: |"
  row() { echo "| $1 | ${result[sqlite,$2]} | ${result[postgres,$2]} | $(ratio "${result[postgres,$2]}" "${result[sqlite,$2]}") |"; }
  row "seed: $COUNT Patients, one thread, writes/s" seed
  row "read by id, 64 connections, req/s" read64
  row "read by id, 1 connection, req/s" read1
  row "search (_id, 10 Patients), 64 connections, req/s" search
  row "create Patient, 64 connections, req/s" create
  row "import Synthea small-10 (${result[sqlite,import_n]} resources), resources/s" import
  row "system \$export (${result[sqlite,export_n]} resources on SQLite, ${result[postgres,export_n]} on PostgreSQL), resources/s" export
  echo
  echo "Read p50 at one connection (bench_latency, random ids): SQLite ${result[sqlite,read1_p50]} µs, PostgreSQL ${result[postgres,read1_p50]} µs."
  echo "Requests answered with an error: SQLite ${result[sqlite,errors]}; PostgreSQL ${result[postgres,errors]}."
} >"$out"
cat "$out"
